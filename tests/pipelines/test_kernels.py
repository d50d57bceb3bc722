"""Kernels of a clip streamed to an npz: its arrays against closed forms, the gyro's coverage
and the neighbours translation reads."""

import json

import numpy as np
import pytest

from gyrodeblur.errors import InputError
from gyrodeblur.footage import FrameTiming
from gyrodeblur.geometry.camera import Camera
from gyrodeblur.geometry.gyro import GyroLog
from gyrodeblur.pipelines.kernels import KernelJob, check_frames_covered, compute_kernels

CAM = Camera(width=32, height=24, fx=30.0, fy=30.0, cx=16.0, cy=12.0, readout_time=0.01)
YAW, EXPOSURE = 3.0, 0.02


def yaw_log(end=1.0):
    t = np.arange(0.0, end + 1e-9, 0.005)
    return GyroLog(t, np.tile([0.0, YAW, 0.0], (len(t), 1)), source="gyro.csv")


def timing(frames=(1, 2, 3, 4, 5)):
    # Frame n starts at 0.1 n s: its rows are exposed from 0.1 n to 0.1 n + 0.03 s.
    frames = np.array(frames)
    return FrameTiming(frames, 0.1 * frames, np.full(len(frames), EXPOSURE), "frames.csv")


def test_rotation_only_npz_holds_closed_form_times_and_kernels(tmp_path):
    job = KernelJob(CAM, yaw_log(), timing(), np.array([2, 4]), samples=5, translation=False,
                    settings={"note": "x"})
    done = []
    compute_kernels(job, tmp_path / "k.npz", plot_dir=tmp_path / "plots", progress=done.append)
    with np.load(tmp_path / "k.npz") as npz:
        assert set(npz.files) == {"rot", "mask", "times", "frames", "meta"}
        rot, mask, times = npz["rot"], npz["mask"], npz["times"]
        assert npz["frames"].tolist() == [2, 4]
        meta = json.loads(str(npz["meta"]))
    assert rot.shape == (2, 5, 2, 24, 32) and rot.dtype == np.float32
    assert mask.shape == (2, 24, 32) and mask.dtype == bool and not mask.any()
    # Row y starts readout * y / (H - 1) after the first; samples span the exposure evenly.
    row_start = 0.1 * np.array([2, 4])[:, None, None] + 0.01 * np.arange(24) / 23
    want = row_start + EXPOSURE * np.arange(5)[None, :, None] / 4
    np.testing.assert_allclose(times, want, atol=1e-12)
    # A yaw moves the principal point by fx tan(rate (t_i - t_ref)), t_ref mid-exposure.
    dt = times[:, :, 12] - (times[:, :1, 12] + EXPOSURE / 2)
    np.testing.assert_allclose(rot[:, :, 0, 12, 16], CAM.fx * np.tan(YAW * dt), atol=2e-4)
    np.testing.assert_allclose(rot[:, :, 1, 12, 16], 0.0, atol=2e-4)
    assert meta["samples"] == 5 and meta["translation"] is False and meta["flow"] is None
    assert meta["frames"] == [2, 4] and meta["frames_source"] == "frames.csv"
    assert meta["gyro"] == "gyro.csv" and meta["note"] == "x"
    assert Camera(**meta["camera"]) == CAM
    assert done == [1, 2]
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "kernels_000002.png", "kernels_000004.png"]


def test_a_gyro_file_readout_times_the_rows_where_the_camera_has_none(tmp_path):
    log = yaw_log()
    log = GyroLog(log.t, log.w, "g.gcsv", readout_time=0.024)  # over the 24 rows
    job = KernelJob(CAM.replace(readout_time=0.0), log, timing(), np.array([2]), samples=2,
                    translation=False)
    compute_kernels(job, tmp_path / "k.npz")
    with np.load(tmp_path / "k.npz") as npz:  # first to last row: 23 of 24 row times
        np.testing.assert_allclose(npz["times"][0, 0, -1] - npz["times"][0, 0, 0], 0.023)


def test_frames_the_gyro_does_not_cover_are_refused_before_anything_is_written(tmp_path):
    log = yaw_log(end=0.45)  # covers frames 1..4 (frame 4 ends at 0.43 s), not frame 5
    check_frames_covered(log, CAM, timing(), np.array([1, 2, 3, 4]))
    with pytest.raises(InputError, match=r"^gyro.csv: gyro covers 0.000000 to 0.450000 s but "
                                         r"the frames need 0.400000 to 0.530000 s"):
        check_frames_covered(log, CAM, timing(), np.array([4, 5]))
    job = KernelJob(CAM, log, timing(), np.array([5]), translation=False)
    with pytest.raises(InputError, match="gyro covers"):
        compute_kernels(job, tmp_path / "k.npz")
    assert list(tmp_path.iterdir()) == []


def test_translation_reads_the_timed_covered_neighbours_only():
    # Frames 1, 2, 4, 5 timed, the gyro ending in frame 5's exposure: frame 1 has neighbour
    # 2; frame 4 has none (3 is not timed, 5 not covered).
    job = KernelJob(CAM, yaw_log(end=0.45), timing((1, 2, 4, 5)), np.array([1, 4]))
    assert job.needed().tolist() == [1, 2, 4]
    assert job.without_neighbours().tolist() == [4]
    with pytest.raises(InputError, match=r"^translation needs the frames; give FRAMES or "
                                         r"--no-translation \(footage, or translation=False\)$"):
        job.check()  # no footage
    with pytest.raises(TypeError, match=r"^KernelJob\(camera, log, timing, frames\.\.\.\) takes "
                                        "a GyroLog and a Camera, got Camera and GyroLog"):
        KernelJob(yaw_log(end=0.45), CAM, timing((1, 2)), np.array([1]))
    still = KernelJob(CAM, yaw_log(end=0.45), timing((1, 2, 4, 5)), np.array([1, 4]),
                      translation=False)
    assert still.needed().tolist() == [1, 4] and still.without_neighbours().tolist() == []
    still.check()


def test_frames_given_out_of_order_or_twice_are_computed_once_each_under_their_numbers(tmp_path):
    t = np.linspace(0.0, 1.0, 201)
    log = GyroLog(t, np.stack([np.sin(7 * t), np.cos(5 * t), 0.3 * t], axis=1))
    camera = Camera(64, 48, 60.0, 60.0, 31.5, 23.5)
    timing = FrameTiming([1, 3, 5], [0.2, 0.4, 0.6], [0.03] * 3, "f.csv")
    compute_kernels(KernelJob(camera, log, timing, np.array([5, 1, 5]), translation=False),
                    tmp_path / "both.npz")
    compute_kernels(KernelJob(camera, log, timing, np.array([5]), translation=False),
                    tmp_path / "five.npz")
    both, five = np.load(tmp_path / "both.npz"), np.load(tmp_path / "five.npz")
    assert both["frames"].tolist() == [1, 5] and both["rot"].shape[0] == 2
    # The same up to where the gyro's integration starts (the span of the frames asked for).
    np.testing.assert_allclose(both["rot"][1], five["rot"][0], rtol=0, atol=1e-9)
    np.testing.assert_array_equal(both["times"][:, 0, 0], [0.2, 0.6])
    with pytest.raises(InputError, match=r"f\.csv: no times for frame 7 \(it has frames 1, "
                                         r"3, 5\)"):
        compute_kernels(KernelJob(camera, log, timing, np.array([1, 7]), translation=False),
                        tmp_path / "none.npz")
    with pytest.raises(InputError, match="no frames asked for"):
        KernelJob(camera, log, timing, np.array([], int), translation=False).check()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["both.npz", "five.npz"]
