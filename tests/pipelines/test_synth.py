"""Synthesis jobs: one image blurred along a gyro log, and resumable folders of clips."""

import json
import shutil

import numpy as np
import pytest

from gyrodeblur.errors import InputError
from gyrodeblur.footage import read_image
from gyrodeblur.geometry.camera import Camera
from gyrodeblur.geometry.gyro import GyroLog
from gyrodeblur.pipelines.synth import synth_clips, synth_image
from gyrodeblur.synthesis.images import ImageBank
from gyrodeblur.synthesis.sampler import ClipSampler, SamplerSettings

CAM = Camera(width=40, height=30, fx=36.0, fy=36.0, cx=20.0, cy=15.0, readout_time=0.01)


def constant_log(w):
    t = np.arange(0.0, 1.0, 0.0025)
    return GyroLog(t, np.tile(w, (len(t), 1)), source="gyro.csv")


def sharp_image():
    # 8-bit values, so that an 8-bit output of an unchanged image is exact.
    return np.random.default_rng(0).integers(0, 256, (30, 40, 3)).astype(np.float32) / 255


def test_a_still_gyro_leaves_the_image_sharp_and_its_kernels_zero(tmp_path):
    sharp = sharp_image()
    synth_image(sharp, constant_log([0.0, 0.0, 0.0]), CAM, 0.4, 0.03, tmp_path / "b.png",
                tmp_path / "k.npz", samples=3, seed=7)
    np.testing.assert_allclose(read_image(tmp_path / "b.png"), sharp, atol=1e-6)
    with np.load(tmp_path / "k.npz") as npz:
        assert set(npz.files) == {"rot", "mask", "times", "frames", "meta"}
        assert npz["rot"].shape == (1, 3, 2, 30, 40) and np.abs(npz["rot"]).max() < 1e-6
        assert npz["mask"].shape == (1, 30, 40) and not npz["mask"].any()
        assert npz["frames"].tolist() == [1]
        # Row y starts readout * y / (H - 1) after the first; samples span the exposure.
        want = 0.4 + 0.01 * np.arange(30) / 29 + 0.03 * np.arange(3)[:, None] / 2
        np.testing.assert_allclose(npz["times"][0], want, atol=1e-12)
        meta = json.loads(str(npz["meta"]))
    assert meta["start"] == 0.4 and meta["exposure"] == 0.03 and meta["samples"] == 3
    assert meta["seed"] == 7 and meta["translation"] is False and meta["gyro"] == "gyro.csv"
    assert Camera(**meta["camera"]) == CAM


def test_a_yaw_gives_closed_form_kernels_and_keeps_a_flat_image_flat(tmp_path):
    flat = np.full((30, 40, 3), 0.5, np.float32)
    synth_image(flat, constant_log([0.0, 4.0, 0.0]), CAM, 0.4, 0.03, tmp_path / "b.png",
                tmp_path / "k.npz", samples=5)
    with np.load(tmp_path / "k.npz") as npz:
        rot, times = npz["rot"][0], npz["times"][0]
    # The principal point moves by fx tan(rate (t_i - t_ref)), t_ref mid-exposure.
    dt = times[:, 15] - (times[0, 15] + 0.015)
    np.testing.assert_allclose(rot[:, 0, 15, 20], CAM.fx * np.tan(4.0 * dt), atol=2e-4)
    assert np.abs(rot[-1, 0, 15, 20]) > 2.0  # a blur of several pixels
    # Weights that sum to one average a constant to itself, edges included.
    np.testing.assert_allclose(read_image(tmp_path / "b.png"), 0.5, atol=1 / 255)


def test_exposures_the_gyro_misses_or_blurs_past_the_image_write_nothing(tmp_path):
    log = constant_log([0.0, 1.5, 0.0])
    with pytest.raises(InputError, match=r"^gyro.csv: gyro covers .* \(check --start"):
        synth_image(sharp_image(), log, CAM, 0.99, 0.03, tmp_path / "b.png", tmp_path / "k.npz")
    with pytest.raises(InputError, match="more than the 40x30 image: is --exposure in seconds"):
        synth_image(sharp_image(), log, CAM, 0.05, 0.9, tmp_path / "b.png", tmp_path / "k.npz")
    with pytest.raises(TypeError, match=r"^synth_image\(sharp, log, camera, start, exposure, "
                                        r"\.\.\.\) takes a GyroLog and a Camera"):
        synth_image(sharp_image(), CAM, log, 0.05, 0.03, tmp_path / "b.png")
    assert list(tmp_path.iterdir()) == []


def test_clips_are_written_once_and_a_missing_one_is_made_again_the_same(tmp_path):
    settings = SamplerSettings(width=32, height=24, frames=1, samples=3)
    sampler = ClipSampler(ImageBank(dead_leaves=1, dead_leaves_size=64), settings, seed=2)
    done = []
    assert synth_clips(sampler, 2, tmp_path, progress=done.append) == 2 and done == [1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip_000000", "clip_000001"]
    first = (tmp_path / "clip_000001" / "gyro.csv").read_bytes()
    stamp = (tmp_path / "clip_000000" / "gyro.csv").stat().st_mtime_ns
    shutil.rmtree(tmp_path / "clip_000001")
    done.clear()
    assert synth_clips(sampler, 3, tmp_path, progress=done.append) == 2 and done == [1, 2, 3]
    assert (tmp_path / "clip_000000" / "gyro.csv").stat().st_mtime_ns == stamp  # skipped
    assert (tmp_path / "clip_000001" / "gyro.csv").read_bytes() == first  # clip i: seed, i
    assert (tmp_path / "clip_000002" / "frames.csv").exists()
