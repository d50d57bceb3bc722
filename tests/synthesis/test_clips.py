import errno
import os
from types import SimpleNamespace

import numpy as np
import pytest
from typer.testing import CliRunner

from gyrodeblur.cli import app
from gyrodeblur.errors import InputError
from gyrodeblur.footage import write_image
from gyrodeblur.geometry.camera import Camera
from gyrodeblur.geometry.gyro import GyroLog, read_gyro
from gyrodeblur.geometry.rotation import integrate, log_so3
from gyrodeblur.kernels.rotation import camera_orientation, rotation_trajectories
from gyrodeblur.synthesis.clips import ClipSettings, export_clip, synthesize_clip
from gyrodeblur.synthesis.datasets import ClipFolderDataset, SyntheticDataset, observed_kernels
from gyrodeblur.synthesis.images import ImageBank
from gyrodeblur.synthesis.sampler import ClipSampler, SamplerSettings
from gyrodeblur.synthesis.scene import Scene
from gyrodeblur.synthesis.sensor_errors import SensorErrorRanges

NO_ERRORS = SensorErrorRanges(delay=0.0, bias=0.0, scale=0.0, noise=0.0, readout=0.0)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Two clean clips with strong parallax, exported, then re-read by `gyrodeblur kernels`."""
    settings = SamplerSettings(width=192, height=128, frames=5, noise=(0.0, 0.0),
                               saturation=(0.0, 1.0, 1.0), errors=NO_ERRORS,
                               speed=(0.8, 1.2), depth=(1.0, 2.0))
    sampler = ClipSampler(ImageBank(dead_leaves=0), settings, seed=5)
    root = tmp_path_factory.mktemp("clips")
    pairs = []
    for i in (0, 2):
        clip = root / f"clip{i}"
        export_clip(sampler.sample(i), clip)
        out = root / f"kernels{i}.npz"
        result = CliRunner().invoke(app, [
            "kernels", str(clip / "blurred"), "--gyro", str(clip / "gyro.csv"),
            "--camera", str(clip / "camera.json"), "--frames-csv", str(clip / "frames.csv"),
            "-o", str(out)])
        assert result.exit_code == 0, result.output
        pairs.append((np.load(clip / "kernels.npz"), np.load(out)))
    return pairs


def test_rotation_kernels_come_back_exactly(exported):
    for truth, measured in exported:
        assert np.abs(truth["rot"]).max() > 0.3  # a real motion
        np.testing.assert_allclose(measured["rot"], truth["rot"], atol=1e-5)
        np.testing.assert_allclose(measured["times"], truth["times"], atol=1e-9)


def test_translation_kernels_come_back_within_tolerance(exported):
    # Stated tolerance: where the flow is consistent, the error of the translation extent
    # traj_tran[T-1] - traj_tran[0] has median < 0.15 px and 90th percentile < 0.35 px, and it
    # is far below the extent itself (so a zero estimate would fail).
    for truth, measured in exported:
        extent = truth["tran"][:, -1] - truth["tran"][:, 0]
        error = np.linalg.norm(measured["tran"][:, -1] - measured["tran"][:, 0] - extent, axis=1)
        valid = measured["mask"]
        assert valid.mean() > 0.9
        assert np.median(error[valid]) < 0.15 and np.percentile(error[valid], 90) < 0.35
        assert np.median(error[valid]) < 0.5 * np.median(np.linalg.norm(extent, axis=1))


def test_exported_layout_and_frames_csv(tmp_path):
    sampler = ClipSampler(ImageBank(dead_leaves=1, dead_leaves_size=96),
                          SamplerSettings(width=48, height=32, frames=3), seed=1)
    export_clip(sampler.sample(0), tmp_path / "c")
    names = sorted(p.name for p in (tmp_path / "c").iterdir())
    assert names == ["blurred", "camera.json", "frames.csv", "gyro.csv", "kernels.npz", "sharp"]
    assert len(list((tmp_path / "c" / "blurred").iterdir())) == 3
    assert (tmp_path / "c" / "frames.csv").read_text().startswith("frame,t_start,exposure\n1,")
    assert not list(tmp_path.glob(".*"))  # no temporary folder left
    (tmp_path / "empty").mkdir()
    export_clip(sampler.sample(0), tmp_path / "empty")
    assert (tmp_path / "empty" / "frames.csv").is_file()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("mine")
    with pytest.raises(InputError, match="mine: exists and is not an empty folder"):
        export_clip(sampler.sample(0), tmp_path / "mine")
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["thesis.tex"]


def test_an_export_that_fails_names_the_clip_and_leaves_nothing(tmp_path, monkeypatch):
    from gyrodeblur.synthesis import clips

    sampler = ClipSampler(ImageBank(dead_leaves=1, dead_leaves_size=96),
                          SamplerSettings(width=48, height=32, frames=2), seed=1)
    export_clip(sampler.sample(0), tmp_path / "ok")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "ok").stat().st_mode & 0o777 == 0o777 & ~umask  # as mkdir makes it

    def full_disk(path, image):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(clips, "write_image", full_disk)
    with pytest.raises(OSError, match=r"No space left on device: .*new/c'$"):
        export_clip(sampler.sample(0), tmp_path / "new" / "c")
    assert [p.name for p in tmp_path.iterdir()] == ["ok"]

    class TooLarge:
        def __init__(self, path):
            raise InputError(path, "cannot be written: 62 MB needed, 3 MB free")

    monkeypatch.undo()
    monkeypatch.setattr(clips, "NpzWriter", TooLarge)
    with pytest.raises(InputError, match=r"^\S*/new/c/kernels\.npz: cannot be written: 62 MB"):
        export_clip(sampler.sample(0), tmp_path / "new" / "c")
    assert [p.name for p in tmp_path.iterdir()] == ["ok"]


def test_a_log_and_camera_read_as_the_kernel_functions_read_them(tmp_path):
    # The log in the gyro's axes, turned into the camera's by imu_to_camera: a roll about
    # the gyro's x is a pan about the camera's y, and the device's file is the log itself.
    t = np.arange(0.0, 1.0, 0.005)
    log = GyroLog(t, np.tile([0.5, 0.0, 0.0], (len(t), 1)))
    camera = Camera(64, 48, 60.0, 60.0, 31.5, 23.5, time_offset=0.03,
                    imu_to_camera=((0, 1, 0), (1, 0, 0), (0, 0, -1)))
    sharp = np.random.default_rng(1).random((80, 100, 3), np.float32)  # colour, as clips are
    clip = synthesize_clip(sharp, camera, log, Scene(),
                           ClipSettings(frames=1, exposure=0.03, samples=3, gyro_start=0.2),
                           np.random.default_rng(0))
    rot, times = rotation_trajectories(camera_orientation(log, camera), camera,
                                       clip.timing.t_start[0], 0.03, 3)
    np.testing.assert_allclose(clip.rot[0], rot, atol=1e-5)
    np.testing.assert_allclose(clip.times[0], times, atol=1e-12)
    assert times[0, 0] == pytest.approx(0.2)
    # Half the exposure from the reference time, across the rows: x moves, y does not.
    assert abs(rot[-1, 0, 24, 32]) == pytest.approx(60 * np.tan(0.5 * 0.015), rel=1e-3)
    assert abs(rot[-1, 1, 24, 32]) < 1e-3
    export_clip(clip, tmp_path / "clip", kernels=False)
    np.testing.assert_allclose(read_gyro(tmp_path / "clip" / "gyro.csv").w, log.w, atol=1e-9)
    # The datasets read the log as read, and turn it as the kernel functions do.
    seen = observed_kernels(clip.blurred, log, camera, clip.timing, 3)
    np.testing.assert_allclose(seen["rot"][0], rot, atol=1e-5)
    folder = ClipFolderDataset(tmp_path, frames=1, samples=3)[0]
    np.testing.assert_allclose(folder["rot"].numpy(), rot, atol=1e-3)  # blurred/ at 8 bits
    drawn = SimpleNamespace(settings=SimpleNamespace(width=64, height=48),
                            sample=lambda index: clip)  # a sampler that draws this clip
    np.testing.assert_allclose(SyntheticDataset(drawn, 1)[0]["rot"].numpy(), rot, atol=1e-5)


def test_clips_longer_than_every_real_trace_take_the_hand_shake_model():
    # 25.2 s of motion: both bundled traces (15 s, 24 s) are shorter.
    settings = SamplerSettings(width=16, height=16, frames=250, fps=(10.0, 10.0), samples=2,
                               real_motion=1.0)
    clip = ClipSampler(ImageBank(dead_leaves=1, dead_leaves_size=64), settings, seed=0).sample(0)
    assert clip.blurred.shape[0] == 250 and clip.log.t[-1] - clip.log.t[0] >= 25.0
    scale = clip.meta["motion"]["shake_model"]
    assert set(clip.meta["motion"]) == {"shake_model"}
    lo, hi = settings.shake_scale
    assert lo <= scale <= hi
    # A hand's shake moves the camera throughout, not a still log under that name.
    rms = np.sqrt((clip.log.w**2).sum(axis=1))
    assert np.median([r.mean() for r in np.array_split(rms, 25)]) > 0.1  # about 0.9 rad/s


def test_readout_stays_within_the_frame_interval():
    settings = SamplerSettings(width=32, height=24, frames=2, fps=(50.0, 60.0),
                               readout=(0.02, 0.03))
    sampler = ClipSampler(ImageBank(dead_leaves=1, dead_leaves_size=96), settings, seed=3)
    for i in range(4):
        clip = sampler.sample(i)
        interval = float(np.diff(clip.timing.t_start)[0])
        assert 0.016 < clip.camera.readout_time <= interval + 1e-12


def test_jpeg_compresses_only_the_blurred_frames():
    def clip(jpeg):
        settings = SamplerSettings(width=48, height=32, frames=2, noise=(0.0, 0.0), jpeg=jpeg)
        return ClipSampler(ImageBank(dead_leaves=1, dead_leaves_size=96), settings,
                           seed=4).sample(0)

    lossless, coded = clip((0.0, 60.0, 95.0)), clip((1.0, 30.0, 30.0))
    np.testing.assert_array_equal(coded.sharp, lossless.sharp)
    np.testing.assert_array_equal(coded.rot, lossless.rot)
    assert coded.meta["settings"]["jpeg"] == 30 and lossless.meta["settings"]["jpeg"] is None
    error = np.abs(coded.blurred - lossless.blurred)
    assert 0.002 < error.mean() < 0.05  # quality 30: visible, not destructive
    np.testing.assert_allclose(coded.blurred * 255, np.round(coded.blurred * 255), atol=1e-4)


def test_settings_and_sources_out_of_their_domain_are_refused():
    with pytest.raises(ValueError, match=r"exposure must be in \(0, 1/fps\]"):
        ClipSettings(fps=30.0, exposure=0.05)
    with pytest.raises(ValueError, match=r"fps: \[0.0, 0.0\] is out of range"):
        SamplerSettings(fps=(0.0, 0.0))
    with pytest.raises(ValueError, match=r"noise: \[0.02, 0.01\] is out of range.*low <= high"):
        SamplerSettings(noise=(0.02, 0.01))
    camera = Camera(width=64, height=48, fx=60.0, fy=60.0, cx=31.5, cy=23.5)
    log = GyroLog(np.arange(0.0, 1.0, 0.005), np.zeros((200, 3)))
    with pytest.raises(ValueError, match=r"source image \(40x30\) is smaller than the view"):
        synthesize_clip(np.zeros((30, 40, 3), np.float32), camera, log, Scene(),
                        ClipSettings(frames=1, gyro_start=0.2), np.random.default_rng(0))


def test_an_8_bit_source_renders_as_its_unit_range_twin():
    camera = Camera(width=32, height=24, fx=30.0, fy=30.0, cx=15.5, cy=11.5)
    t = np.arange(0.0, 1.0, 0.005)
    log = GyroLog(t, np.tile([0.0, 0.3, 0.1], (len(t), 1)))
    source = np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    settings = ClipSettings(frames=2, gyro_start=0.2, samples=3)
    byte, unit = (synthesize_clip(image, camera, log, Scene(), settings,
                                  np.random.default_rng(0))
                  for image in (source, source / np.float32(255)))
    np.testing.assert_allclose(byte.blurred, unit.blurred, atol=1e-6)
    with pytest.raises(ValueError, match=r"0\.\.255 floats"):
        synthesize_clip(source.astype(np.float32), camera, log, Scene(), settings,
                        np.random.default_rng(0))


def test_sources_much_smaller_than_a_clip_are_named_in_a_warning(tmp_path):
    write_image(tmp_path / "tiny.png", np.full((8, 8, 3), 0.5, np.float32))
    settings = SamplerSettings(width=48, height=32, frames=1)
    with pytest.warns(UserWarning, match=r"tiny.png: 8x8 is enlarged 9.5x"):
        ClipSampler(ImageBank(tmp_path), settings, seed=0).sample(0)


def test_meta_tells_how_much_of_a_frame_the_view_saw_beyond_the_source():
    camera = Camera(width=32, height=24, fx=30.0, fy=30.0, cx=15.5, cy=11.5)
    t = np.arange(0.0, 1.0, 0.005)
    source = np.random.default_rng(1).random((48, 64, 3), np.float32)
    settings = ClipSettings(frames=3, fps=10.0, gyro_start=0.2, samples=3)

    def outside(rate):
        log = GyroLog(t, np.broadcast_to(rate, t.shape)[:, None] * [0.0, 1.0, 0.0])
        clip = synthesize_clip(source, camera, log, Scene(), settings, np.random.default_rng(0))
        return clip.meta["outside_source"]

    assert outside(0.0) == 0.0
    # A global-shutter pan: the first and last frames look 0.5 rad either side of the middle
    # one, whose view is the source's centre; column x of the view then sees the source's
    # column 31.5 + fx tan(atan((x - 15.5) / fx) + 0.5), beyond 63 for some columns.
    columns = 31.5 + 30 * np.tan(np.arctan((np.arange(32) - 15.5) / 30) + 0.5)
    assert (columns > 63).any()
    assert outside(5.0) == pytest.approx((columns > 63).mean(), abs=1e-6)
    # The largest over the frames: a pan between the first two frames' exposures (0.2 and
    # 0.3 s, 1/60 s long), then still. The first frame alone looks 0.5 rad aside.
    rate = np.where((t > 0.22) & (t < 0.295), 0.5 / 0.075, 0.0)
    # The turn between the two still exposures, as the log integrates (about 0.5 rad).
    turn = log_so3(integrate(t, rate[:, None] * [0.0, 1.0, 0.0]).relative(0.31, 0.21))[1]
    columns = 31.5 + 30 * np.tan(np.arctan((np.arange(32) - 15.5) / 30) + abs(turn))
    assert (columns > 63).any()
    assert outside(rate) == pytest.approx((columns > 63).mean(), abs=1e-6)
