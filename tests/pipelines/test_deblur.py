import json
import shutil
from dataclasses import replace
from fractions import Fraction

import av
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from gyrodeblur.cli import app
from gyrodeblur.errors import InputError
from gyrodeblur.footage import (
    Footage,
    StoredFormat,
    VideoWriter,
    read_image,
    read_image_and_format,
    write_image,
)
from gyrodeblur.geometry.camera import Camera, load_camera
from gyrodeblur.geometry.gyro import GyroLog, read_gyro, write_csv
from gyrodeblur.kernels.rotation import camera_orientation, rotation_trajectories
from gyrodeblur.metrics import psnr
from gyrodeblur.models import build_model, load_model, set_pool_radius
from gyrodeblur.models.classic import auto_tv_weight, deconvolve
from gyrodeblur.pipelines import deblur as deblur_module
from gyrodeblur.pipelines.deblur import (
    FrameData,
    Restorer,
    deblur_image,
    image_kernels,
    make_restorer,
    read_kernels,
    resample_samples,
    restore_frame,
    side_by_side_frame,
    tile_halo,
    torch_device,
    upsample_kernels,
    windows,
)
from gyrodeblur.pipelines.evaluate import BenchmarkSpec, synthetic_benchmark
from gyrodeblur.pipelines.tiling import tile_grid
from gyrodeblur.synthesis.blur import blur_image, continuous_subsamples
from gyrodeblur.synthesis.images import skimage_image

runner = CliRunner()
FPS = Fraction(30)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A synthetic clip (7 frames, 320x192) with its gyro, camera and frames CSV, and the
    same frames as an H.264 video with an audio track."""
    root = tmp_path_factory.mktemp("clips")
    result = runner.invoke(app, ["synth", "clips", "-n", "1", "--seed", "5", "-o", str(root)])
    assert result.exit_code == 0, result.output
    folder = root / "clip_000000"
    frames = [read_image(p) for p in sorted((folder / "blurred").iterdir())]
    with av.open(str(folder / "video.mp4"), "w") as out:
        video = out.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = 320, 192, "yuv420p"
        audio = out.add_stream("aac", rate=48000)
        for f in frames:
            image = (f * 255).round().astype(np.uint8)
            out.mux(video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(video.encode(None))
        samples = np.sin(np.arange(48000 * len(frames) // 30) / 20).astype(np.float32)
        for i in range(0, len(samples) - 1024, 1024):
            chunk = av.AudioFrame.from_ndarray(samples[None, i:i + 1024], format="fltp",
                                               layout="mono")
            chunk.sample_rate, chunk.pts = 48000, i
            out.mux(audio.encode(chunk))
        out.mux(audio.encode(None))
    return folder


def motion_args(folder):
    return ["--gyro", str(folder / "gyro.csv"), "--camera", str(folder / "camera.json"),
            "--frames-csv", str(folder / "frames.csv")]


def deblur_video(*args):
    return runner.invoke(app, ["deblur", "video", *map(str, args)])


def test_image_kernels_take_the_readout_and_axes_a_gyro_file_gives():
    t = np.linspace(0.0, 1.0, 401)
    w = np.stack([np.zeros_like(t), 1.5 * np.sin(6 * np.pi * t), 0.3 * t], axis=1)
    swap = np.array([[0.0, 1, 0], [0, 0, 1], [1, 0, 0]])
    camera = Camera(64, 48, 50.0, 50.0, 31.5, 23.5)
    # As a gcsv says them: 30 ms over the 48 rows, gyro axes permuted.
    from_log = image_kernels(GyroLog(t, w @ swap, "g.gcsv", readout_time=-0.03,
                                     imu_to_camera=swap), camera, 0.5, 0.01, 5)
    told = camera.replace(readout_time=0.03 * 47 / 48, readout_direction="bottom_to_top")
    np.testing.assert_allclose(from_log, image_kernels(GyroLog(t, w), told, 0.5, 0.01, 5),
                               atol=1e-5)
    assert np.abs(from_log - image_kernels(GyroLog(t, w), camera, 0.5, 0.01, 5)).max() > 0.1
    # 6 rad/s over 0.5 s (an exposure in other units) moves pixels past the 64 px image.
    with pytest.raises(InputError, match=r"^fast\.csv: the gyro moves pixels \d+ px during "
                                         r"the exposure, more than the 64x48 image: is "
                                         r"--exposure in seconds"):
        image_kernels(GyroLog(t, np.tile([0.0, 6.0, 0.0], (401, 1)), "fast.csv"), camera, 0.2,
                      0.5, 5)


@pytest.mark.parametrize(("model", "samples"), [("deepgyro-s", 2), ("deepgyro-path-s", 5)])
def test_tiled_network_equals_whole_image(model, samples):
    torch.manual_seed(0)
    net, _ = load_model(model)
    restorer = Restorer(model, net, samples, 1, False)
    image = torch.rand(1, 3, 40, 60).numpy()
    image = np.kron(image[0].transpose(1, 2, 0), np.ones((5, 6, 1))).astype(np.float32)
    rot = np.zeros((samples, 2, *image.shape[:2]), np.float32)
    # Blur growing to the right, from -1 to 5 px at the left edge and -6 to 6 px at the right.
    reach = np.linspace(1, 6, image.shape[1])[None]
    for i in range(samples):
        rot[i, 0] = (2 * i / (samples - 1) - 1) * reach
    whole = deblur_image(image, rot, None, restorer)
    restorer.tile, restorer.halo = 96, 160
    assert len(tile_grid(*image.shape[:2], 96, 160)) == 12
    tiled = deblur_image(image, rot, None, restorer)
    assert np.abs(tiled - whole).max() < 1e-3


def test_classic_tiles_agree_with_the_whole_frame():
    # Deconvolution is global, so tiles only approximate it; with the halo (blur of 4 px
    # here, halo 128 px) and one TV weight and step count for the frame they agree closely.
    sample = synthetic_benchmark(BenchmarkSpec(count=1, width=320, height=256, preset="strong",
                                               seed=5))[0]
    frame = FrameData(1, sample["blurred"].permute(1, 2, 0).numpy(), sample["rot"].numpy(), None)
    restorer = make_restorer("classic", None, False)
    whole = restore_frame(restorer, [frame])
    restorer.tile = 128
    assert len(tile_grid(256, 320, 128, 128)) == 6
    tiled = restore_frame(restorer, [frame])
    assert np.abs(tiled - whole).mean() < 1e-5 and np.abs(tiled - whole).max() < 0.02
    # Blur of 100 px: the halo grows by its reach (without, tiles differed by up to 0.06).
    sharp = skimage_image("astronaut")[:256, :512].astype(np.float32)
    traj = np.zeros((9, 2, 256, 512), np.float32)
    traj[:, 0], traj[:, 1] = (np.linspace(-r, r, 9)[:, None, None] for r in (50, 8))
    frame = FrameData(1, blur_image(sharp, traj, subsamples=continuous_subsamples(traj)), traj,
                      None)
    assert tile_halo(restorer, [frame], (256, 512)) == 128 + 50
    whole = restore_frame(replace(restorer, tile=1280), [frame])
    assert np.abs(restore_frame(restorer, [frame]) - whole).max() < 0.03


def test_a_still_tile_of_a_moving_frame_is_restored_as_in_the_whole_frame():
    # The left half does not move: the whole frame's deconvolution still runs its TV steps
    # there, and so must a tile that holds only still pixels.
    rng = np.random.default_rng(0)
    sharp = skimage_image("astronaut")[:128, :384].astype(np.float32)
    traj = np.zeros((9, 2, 128, 384), np.float32)
    traj[:, 0, :, 192:] = np.linspace(-6, 6, 9)[:, None, None]
    blurred = np.clip(blur_image(sharp, traj) + rng.normal(0, 0.03, sharp.shape), 0, 1)
    frame = FrameData(1, blurred.astype(np.float32), traj, None)
    restorer = make_restorer("classic", None, False)
    whole = restore_frame(restorer, [frame])
    assert np.abs(whole[:, :64] - frame.image[:, :64]).max() > 0.02  # denoised
    tiled = restore_frame(replace(restorer, tile=64, halo=32), [frame])
    assert np.abs(tiled - whole)[:, :128].max() < 1e-4
    # A frame still everywhere comes back as it is, as deconvolve gives it back whole.
    still = FrameData(1, frame.image, np.zeros_like(traj), None)
    np.testing.assert_allclose(restore_frame(replace(restorer, tile=64), [still]),
                               frame.image, atol=1e-6)


def test_path_model_tiles_get_the_kernels_reach_as_extra_halo():
    # deepgyro-path-s samples its input up to the kernels' reach (here 40 px) away: a halo
    # of 48 px covers its receptive field only when that reach is added.
    torch.manual_seed(0)
    net, _ = load_model("deepgyro-path-s")
    image = torch.rand(1, 3, 40, 60).numpy()
    image = np.kron(image[0].transpose(1, 2, 0), np.ones((5, 6, 1))).astype(np.float32)
    rot = np.zeros((5, 2, *image.shape[:2]), np.float32)
    for i in range(5):
        rot[i, 0], rot[i, 1] = (i / 2 - 1) * 40, (i / 2 - 1) * 15
    whole = deblur_image(image, rot, None, Restorer("p", net, 5, 1, False))
    errors = {}
    for along_path in (False, True):
        restorer = Restorer("p", net, 5, 1, False, tile=96, halo=48, along_path=along_path)
        assert tile_halo(restorer, [FrameData(0, image, rot, None)], image.shape[:2]) == (
            88 if along_path else 48)
        errors[along_path] = np.abs(deblur_image(image, rot, None, restorer) - whole).max()
    assert errors[True] < 1e-3 < 1e-2 < errors[False], errors
    # The whole kernel where the net takes the translation: its reach counts too.
    still = np.zeros_like(rot)
    restorer = Restorer("p", net, 5, 1, True, tile=96, halo=48, along_path=True)
    assert tile_halo(restorer, [FrameData(0, image, still, rot)], image.shape[:2]) == 88
    assert tile_halo(replace(restorer, translation=False),
                     [FrameData(0, image, still, rot)], image.shape[:2]) == 48


def test_tiled_video_network_equals_whole_frames():
    net, _ = load_model("gyrodvd-s")
    rng = np.random.default_rng(1)
    frames = [FrameData(n, rng.random((120, 200, 3), dtype=np.float32),
                        rng.normal(0, 2, (5, 2, 120, 200)).astype(np.float32),
                        rng.normal(0, 1, (5, 2, 120, 200)).astype(np.float32)) for n in range(3)]
    restorer = Restorer("gyrodvd-s", net, 5, 3, True)
    whole = restore_frame(restorer, frames)
    restorer.tile, restorer.halo = 64, 128
    assert np.abs(restore_frame(restorer, frames) - whole).max() < 1e-3


def test_upsampled_kernels_match_full_resolution(clip):
    camera = load_camera(clip / "camera.json")
    orientation = camera_orientation(read_gyro(clip / "gyro.csv"), camera)
    full, _ = rotation_trajectories(orientation, camera, 0.2, 0.02, 5)
    small_cam = camera.no_wider_than(160)
    small, _ = rotation_trajectories(orientation, small_cam, 0.2, 0.02, 5)
    up = upsample_kernels(small, (camera.height, camera.width))
    assert up.shape == full.shape
    # The half-resolution camera has whole rows read at half the row spacing: same times.
    # Bilinear between smooth samples: within 1e-3 of the length.
    assert np.abs(up - full)[..., 2:-2, 2:-2].max() < 1e-3 * max(1.0, np.abs(full).max())


def test_upsampled_kernels_are_exact_on_an_affine_field_and_crop_to_the_tile():
    # Bilinear interpolation reproduces an affine field: at full resolution, pixel x sees
    # small-image coordinate (x + 0.5) / s - 0.5, and displacements scale by s.
    h, w, H, W = 30, 40, 75, 130
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    small = np.stack([np.stack([0.5 + 0.03 * xs - 0.02 * ys, -1 + 0.01 * xs + 0.04 * ys])] * 2)
    up = upsample_kernels(small, (H, W))
    Y, X = np.mgrid[0:H, 0:W].astype(np.float64)
    sx, sy = W / w, H / h
    u, v = (X + 0.5) / sx - 0.5, (Y + 0.5) / sy - 0.5
    inside = (u >= 0) & (u <= w - 1) & (v >= 0) & (v <= h - 1)  # no border replication
    # OpenCV's remap places samples to 1/32 px: slopes of 0.04 px/px, scaled ~3x, give 4e-3.
    np.testing.assert_allclose(up[1, 0][inside], (0.5 + 0.03 * u - 0.02 * v)[inside] * sx,
                               atol=4e-3)
    np.testing.assert_allclose(up[1, 1][inside], (-1 + 0.01 * u + 0.04 * v)[inside] * sy,
                               atol=4e-3)
    for t in tile_grid(H, W, 48, 16):
        np.testing.assert_array_equal(upsample_kernels(small, (H, W), t),
                                      up[..., t.y0:t.y1, t.x0:t.x1])


def test_deblur_video_to_mp4_keeps_rate_audio_and_frames(clip, tmp_path):
    out = tmp_path / "out.mp4"
    result = deblur_video(clip / "video.mp4", *motion_args(clip), "--side-by-side", "-o", out)
    assert result.exit_code == 0, result.output
    footage = Footage(out)
    assert footage.count == 7 and footage.size == (640, 192) and footage.fps == FPS
    with av.open(str(out)) as container:
        assert len(container.streams.audio) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]


def test_the_audio_note_names_the_frames_written_of_a_video_with_audio(clip, tmp_path):
    args = [*motion_args(clip), "--method", "classic", "--iterations", "2"]
    part = deblur_video(clip / "video.mp4", *args, "--range", "2:3", "-o", tmp_path / "a.mp4")
    assert part.exit_code == 0 and "audio left out: frames 2..3 of 7" in part.output
    silent = tmp_path / "silent.mp4"
    with VideoWriter(silent, 30) as video:
        for _, frame in Footage(clip / "video.mp4").frames(np.arange(1, 4)):
            video.write(frame)
    alone = deblur_video(silent, *args, "--range", "2:3", "-o", tmp_path / "b.mp4")
    assert alone.exit_code == 0 and "audio left out" not in alone.output


def test_the_python_api_leaves_out_the_audio_of_some_frames_and_resumes_only_its_own_run(
        clip, tmp_path):
    import av

    from gyrodeblur.footage import read_frames_csv
    from gyrodeblur.pipelines.deblur import VideoJob
    from gyrodeblur.pipelines.deblur import deblur_video as deblur_clip

    timing, log = read_frames_csv(clip / "frames.csv"), read_gyro(clip / "gyro.csv")
    camera = load_camera(clip / "camera.json")
    classic = make_restorer("classic", video=True, iterations=2)
    some = VideoJob(Footage(clip / "video.mp4"), timing, [2, 3], log, camera, classic)
    notes = deblur_clip(some, tmp_path / "some.mp4")
    assert notes == ["audio left out: frames 2..3 of 7 are written"]
    with av.open(str(tmp_path / "some.mp4")) as container:
        assert not container.streams.audio
    # A folder records the job itself: another method, or other frames, do not resume it.
    frames = VideoJob(Footage(clip / "blurred"), timing, [2, 3], log, camera, classic)
    assert deblur_clip(frames, tmp_path / "out") == []
    assert deblur_clip(frames, tmp_path / "out") == [
        "resumed: 2 of the 2 frames were there from an earlier run"]
    other = VideoJob(frames.footage, timing, [2, 3], log, camera,
                     make_restorer("classic", video=True, iterations=3))
    with pytest.raises(InputError, match=r"other settings \(changed: iterations\)"):
        deblur_clip(other, tmp_path / "out")


def test_deblur_video_keeps_a_phones_display_rotation(clip, tmp_path):
    portrait = tmp_path / "portrait.mp4"
    with VideoWriter(portrait, 30, rotation=-90) as video:
        for _, frame in Footage(clip / "video.mp4").frames(np.arange(1, 4)):
            video.write(frame)
    out = tmp_path / "out.mp4"
    result = deblur_video(portrait, *motion_args(clip), "--range", "1:3", "-o", out)
    assert result.exit_code == 0, result.output
    footage = Footage(out)
    assert (footage.rotation, footage.size, footage.count) == (-90, (320, 192), 3)
    # --size is of the frames as stored: the picture's size as shown is named so.
    shown = deblur_video(portrait, *motion_args(clip), "--size", "96x160", "-o", out)
    assert shown.exit_code == 2 and "--size 96x160: sizes are of the frames as stored " \
        "(320x192, shown turned -90 degrees): give 160x96" in " ".join(shown.output.split())


def test_frames_out_of_a_phones_video_are_written_upright(clip, tmp_path):
    portrait = tmp_path / "portrait.mp4"
    with VideoWriter(portrait, 30, rotation=90) as video:
        for _, frame in Footage(clip / "video.mp4").frames(np.arange(1, 3)):
            video.write(frame)
    out = tmp_path / "out"
    result = deblur_video(portrait, *motion_args(clip), "--range", "1:2", "--side-by-side",
                          "--method", "classic", "-o", out)
    assert result.exit_code == 0, result.output
    first = read_image(out / "frame_000001.png")
    assert first.shape == (320, 384, 3)  # 192x320 upright, input and output side by side
    stored = next(Footage(portrait).frames(np.arange(1, 2)))[1]
    np.testing.assert_allclose(first[:, :192], np.rot90(stored), atol=1 / 255 + 1e-6)


def test_a_folder_of_turned_phone_photos_is_shown_as_its_exif_says(clip, tmp_path):
    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    for i in (1, 2):
        image = Image.open(clip / "blurred" / f"{i:06d}.png")
        exif = image.getexif()
        exif[0x0112] = 6  # orientation: turn 90 degrees clockwise to display
        image.save(folder / f"{i:06d}.jpg", exif=exif.tobytes(), quality=95)
    assert Footage(folder).rotation == -90
    args = [*motion_args(clip), "--range", "1:2", "--method", "classic", "--side-by-side"]
    assert deblur_video(folder, *args, "-o", tmp_path / "out.mp4").exit_code == 0
    assert Footage(tmp_path / "out.mp4").rotation == -90  # the player turns it upright
    assert deblur_video(folder, *args, "-o", tmp_path / "out").exit_code == 0
    written = Image.open(tmp_path / "out" / "frame_000001.png")
    # 192x320 upright, input left of output, and no viewer turns it again
    assert written.size == (384, 320) and written.getexif()[0x0112] == 1
    stored = read_image(folder / "000001.jpg")
    np.testing.assert_allclose(read_image(tmp_path / "out" / "frame_000001.png")[:, :192],
                               np.rot90(stored, -1), atol=1 / 255 + 1e-6)


def test_tiny_frames_and_an_output_over_the_input_are_refused(clip, tmp_path):
    image = clip / "blurred" / "000001.png"
    common = [*motion_args(clip)[:4], "--frame-time", "0.1", "--exposure", "0.01"]
    over = runner.invoke(app, ["deblur", "image", str(image), *common, "-o", str(image)])
    assert over.exit_code == 2 and "would overwrite an input" in over.output
    thin = tmp_path / "thin.png"
    write_image(thin, np.zeros((40, 1, 3), np.float32))
    small = runner.invoke(app, ["deblur", "image", str(thin), *common, "-o",
                                str(tmp_path / "out.png")])
    assert small.exit_code == 2 and "1x40 is too small to deblur" in small.output
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("rotation", [0, 90, 180, -90])
def test_side_by_side_puts_the_input_left_as_shown(rotation):
    blurred, restored = np.zeros((4, 6, 3)), np.ones((4, 6, 3))
    shown = np.rot90(side_by_side_frame(blurred, restored, rotation), rotation // 90)
    assert shown.shape == ((4, 12, 3) if rotation % 180 == 0 else (6, 8, 3))
    half = shown.shape[1] // 2
    assert (shown[:, :half] == 0).all() and (shown[:, half:] == 1).all()


def test_frames_out_of_a_folder_keep_each_input_frames_depth_alpha_and_exif(clip, tmp_path):
    from PIL import Image

    frames = tmp_path / "frames"
    frames.mkdir()
    for n in range(1, 4):
        exif = Image.Exif()
        exif[0x010E] = f"frame {n}"  # ImageDescription
        Image.new("RGB", (4, 4)).save(tmp_path / "tag.jpg", exif=exif.tobytes())
        _, tag = read_image_and_format(tmp_path / "tag.jpg")
        image = read_image(clip / "blurred" / f"{n:06d}.png")
        alpha = np.full(image.shape[:2], 1000 * n, np.uint16)
        write_image(frames / f"{n:06d}.png", image,
                    StoredFormat(np.uint16, alpha=alpha, exif=tag.exif))
    out = tmp_path / "out"
    result = deblur_video(frames, *motion_args(clip), "--range", "1:3", "-o", out)
    assert result.exit_code == 0, result.output
    for n in range(1, 4):
        restored = Image.open(out / f"frame_{n:06d}.png")
        assert restored.getexif().get(0x010E) == f"frame {n}"
        stored = read_image_and_format(out / f"frame_{n:06d}.png")[1]
        assert stored.dtype == np.uint16 and (stored.alpha == 1000 * n).all()


def test_deblur_video_with_the_video_network(clip, tmp_path):
    # gyrodvd-s: sliding 3-frame windows with rotation and translation kernels.
    out = tmp_path / "frames"
    result = deblur_video(clip / "blurred", *motion_args(clip), "--model", "gyrodvd-s",
                          "-o", out)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == (
        ["deblur.json"] + [f"frame_{n:06d}.png" for n in range(1, 8)])
    gains = [psnr(read_image(out / f"frame_{n:06d}.png"),
                  read_image(clip / "sharp" / f"{n:06d}.png"))
             - psnr(read_image(clip / "blurred" / f"{n:06d}.png"),
                    read_image(clip / "sharp" / f"{n:06d}.png")) for n in range(1, 8)]
    assert np.mean(gains) > 0.3, gains  # about 0.9 dB


def test_deblur_video_classic_to_folder_raises_psnr_and_resumes(clip, tmp_path, monkeypatch):
    out = tmp_path / "frames"
    result = deblur_video(clip / "blurred", *motion_args(clip), "--method", "classic",
                          "-o", out)
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in out.iterdir())
    assert names == ["deblur.json"] + [f"frame_{n:06d}.png" for n in range(1, 8)]
    gains = [psnr(read_image(out / f"frame_{n:06d}.png"),
                  read_image(clip / "sharp" / f"{n:06d}.png"))
             - psnr(read_image(clip / "blurred" / f"{n:06d}.png"),
                    read_image(clip / "sharp" / f"{n:06d}.png")) for n in range(1, 8)]
    assert np.mean(gains) > 1.0

    # A rerun with the same settings restores nothing: every frame is there.
    calls = []
    monkeypatch.setattr(deblur_module, "restore_frame", lambda *a: calls.append(1))
    again = deblur_video(clip / "blurred", *motion_args(clip), "--method", "classic", "-o", out)
    assert again.exit_code == 0 and calls == []
    assert "resumed: 7 of the 7 frames were there from an earlier run" in again.output
    # The same footage by another spelling of its path is the same run.
    monkeypatch.chdir(clip)
    assert deblur_video("blurred", *motion_args(clip), "--method", "classic",
                        "-o", out).exit_code == 0
    assert calls == []
    other = deblur_video(clip / "blurred", *motion_args(clip), "-o", out)
    assert other.exit_code == 2 and "other settings" in other.output
    assert "keeps the frames" not in other.output  # a finished folder: no resume note
    offset = deblur_video(clip / "blurred", *motion_args(clip), "--method", "classic",
                          "--time-offset", "0.001", "-o", out)
    assert offset.exit_code == 2 and "other settings (changed: camera)" in offset.output
    fewer = deblur_video(clip / "blurred", *motion_args(clip), "--method", "classic",
                         "--range", "1:3", "-o", out)
    assert fewer.exit_code == 2
    assert "(changed: frames (--range), frame times, exposure times)" in fewer.output


def test_a_folder_is_not_resumed_from_inputs_rewritten_since(clip, tmp_path):
    copy = tmp_path / "clip"
    shutil.copytree(clip, copy)
    out = tmp_path / "frames"
    args = [copy / "blurred", *motion_args(copy), "--method", "classic", "--range", "1:1",
            "--no-translation", "--bias", "1e-3,0,0", "-o", out]
    assert deblur_video(*args).exit_code == 0
    record = json.loads((out / "deblur.json").read_text())
    assert record["bias"] == [1e-3, 0.0, 0.0]  # as numbers, as --bias auto's estimate is
    assert "resumed" in deblur_video(*args).output
    # The gyro rewritten in place (a corrected gscale, say): not the log those frames used.
    log = np.loadtxt(copy / "gyro.csv", delimiter=",", skiprows=1)
    log[:, 1:] *= 2
    np.savetxt(copy / "gyro.csv", log, delimiter=",", header="t,wx,wy,wz", comments="")
    changed = deblur_video(*args)
    assert changed.exit_code == 2
    assert "(changed: the gyro log's or footage's files (rewritten since))" in changed.output


def test_a_run_stopped_by_a_corrupt_frame_resumes_once_it_is_mended(clip, tmp_path):
    copy = tmp_path / "clip"
    shutil.copytree(clip, copy)
    frame = copy / "blurred" / "000005.png"
    whole = frame.read_bytes()
    frame.write_bytes(whole[:len(whole) // 3])
    out = tmp_path / "frames"
    args = [copy / "blurred", *motion_args(copy), "--method", "classic", "-o", out]
    stopped = deblur_video(*args)
    assert stopped.exit_code == 2 and "000005.png" in stopped.output
    # Frame 4's translation needs frame 5's flow: kept are the frames before it.
    assert sorted(p.name for p in out.glob("frame_*")) == [f"frame_{n:06d}.png" for n in (1, 2, 3)]
    frame.write_bytes(whole)  # mended: another size and time than the record's
    resumed = deblur_video(*args)
    assert resumed.exit_code == 0, resumed.output
    # Frames within two of the mended one are restored again, as it may have entered them.
    assert "resumed: 2 of the 7 frames were there from an earlier run" in resumed.output
    whole_run = tmp_path / "whole"
    assert deblur_video(*args[:-1], whole_run).exit_code == 0
    for n in range(1, 8):
        name = f"frame_{n:06d}.png"
        assert (out / name).read_bytes() == (whole_run / name).read_bytes(), name
    # A record of an earlier release, which named the frames in one digest, says so.
    record = json.loads((out / "deblur.json").read_text())
    del record["frame_files"]
    record["input_files"] = "0" * 64  # its digest of the gyro log and every frame file
    (out / "deblur.json").write_text(json.dumps(record | {"complete": False}))
    earlier = deblur_video(*args)
    assert earlier.exit_code == 2
    assert "recorded by an earlier release of gyrodeblur" in " ".join(earlier.output.split())


def test_frames_removed_while_a_folder_is_written_are_not_marked_complete(clip, tmp_path,
                                                                          monkeypatch):
    out, real = tmp_path / "out", deblur_module.FolderOutput.write

    def write_and_lose_the_first(self, number, image):
        real(self, number, image)
        if number == 2:  # a user's clean-up, mid-run, of the record too
            (out / "frame_000001.png").unlink()
            (out / "deblur.json").unlink()

    args = [clip / "blurred", *motion_args(clip), "--method", "classic", "--range", "1:2",
            "--size", "160x96", "-o", out]
    monkeypatch.setattr(deblur_module.FolderOutput, "write", write_and_lose_the_first)
    result = deblur_video(*args)
    assert result.exit_code == 2
    assert "out: frame 1 removed while the run wrote the folder; run it again to restore it" \
        in " ".join(result.output.split())
    assert json.loads((out / "deblur.json").read_text())["complete"] is False
    monkeypatch.setattr(deblur_module.FolderOutput, "write", real)
    again = deblur_video(*args)
    assert again.exit_code == 0 and "resumed: 1 of the 2 frames" in again.output
    assert json.loads((out / "deblur.json").read_text())["complete"] is True


@pytest.mark.parametrize("record", ["not json", "[1, 2]"])
def test_a_folder_with_an_unreadable_record_is_refused(clip, tmp_path, record):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "deblur.json").write_text(record)
    result = deblur_video(clip / "blurred", *motion_args(clip), "--method", "classic",
                          "--range", "1:1", "-o", tmp_path / "out")
    assert result.exit_code == 2 and "unreadable record of a deblur run" in result.output
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["deblur.json"]


def test_a_folder_another_run_writes_is_refused(clip, tmp_path):
    from gyrodeblur.fileio import hold_folder

    with hold_folder(tmp_path / "out"):
        result = deblur_video(clip / "blurred", *motion_args(clip), "--method", "classic",
                              "--range", "1:1", "-o", tmp_path / "out")
    assert result.exit_code == 2 and "out: another run is using it" in result.output
    assert list(tmp_path.iterdir()) == []


def test_a_frame_of_a_range_is_restored_as_in_the_whole_clip(clip, tmp_path):
    # The translation of a range's first and last frames is measured from their neighbours
    # outside it, as `kernels --range` measures it: a frame alone too.
    args = [clip / "blurred", *motion_args(clip), "--method", "classic", "--size", "160x96"]
    runs = {"all": [], "alone": ["--range", "3:3"], "edge": ["--range", "3:5"],
            "rot": ["--range", "3:3", "--no-translation"]}
    for name, extra in runs.items():
        result = deblur_video(*args, *extra, "-o", tmp_path / name)
        assert result.exit_code == 0, result.output
    frame = {name: read_image(tmp_path / name / "frame_000003.png") for name in runs}
    np.testing.assert_array_equal(frame["alone"], frame["all"])
    np.testing.assert_array_equal(frame["edge"], frame["all"])
    np.testing.assert_array_equal(read_image(tmp_path / "edge" / "frame_000005.png"),
                                  read_image(tmp_path / "all" / "frame_000005.png"))
    assert np.abs(frame["all"] - frame["rot"]).max() > 1 / 255
    assert json.loads((tmp_path / "rot" / "deblur.json").read_text())["translation"] is False
    # A frame with no timed neighbour: the rotation alone, and said so.
    (tmp_path / "one.csv").write_text("\n".join((clip / "frames.csv").read_text()
                                                  .splitlines()[:2]))
    result = deblur_video(clip / "blurred", "--gyro", clip / "gyro.csv", "--camera",
                          clip / "camera.json", "--frames-csv", tmp_path / "one.csv", "--method",
                          "classic", "--size", "160x96", "-o", tmp_path / "one")
    assert result.exit_code == 0 and "no translation for frame 1: no neighbouring frame" in \
        result.output, result.output


def test_a_video_networks_window_at_a_range_end_takes_the_frame_beyond_it(clip, tmp_path):
    args = [clip / "blurred", *motion_args(clip), "--model", "gyrodvd-s", "--size", "160x96"]
    for name, extra in {"all": [], "part": ["--range", "3:4"]}.items():
        result = deblur_video(*args, *extra, "-o", tmp_path / name)
        assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "part").glob("*.png")) == [
        "frame_000003.png", "frame_000004.png"]
    for name in ("frame_000003.png", "frame_000004.png"):
        np.testing.assert_array_equal(read_image(tmp_path / "part" / name),
                                      read_image(tmp_path / "all" / name))


def test_an_existing_folder_with_a_dot_in_its_name_takes_the_frames(clip, tmp_path):
    out = tmp_path / "restored.v2"
    out.mkdir()
    result = deblur_video(clip / "blurred", *motion_args(clip), "--method", "classic",
                          "--range", "1:1", "-o", out)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["deblur.json", "frame_000001.png"]
    new = deblur_video(clip / "blurred", *motion_args(clip), "-o", tmp_path / "new.v2")
    assert new.exit_code == 2 and "a new name without a suffix, or a name with a dot ending " \
        "in /: new.v2/)" in new.output
    assert not (tmp_path / "new.v2").exists()
    # A trailing slash asks for a folder, whatever the name (also one ending in .mp4).
    for name in ("new.v2/", "frames.mp4/"):
        slash = deblur_video(clip / "blurred", *motion_args(clip), "--method", "classic",
                             "--range", "1:1", "-o", f"{tmp_path}/{name}")
        assert slash.exit_code == 0, slash.output
        assert sorted(p.name for p in (tmp_path / name).iterdir()) == [
            "deblur.json", "frame_000001.png"]


def test_a_folder_holding_only_a_killed_runs_record_temporary_takes_the_frames(clip, tmp_path):
    left = tmp_path / "out" / ".deblur.json.a1b2c3d4.part"  # SIGKILLed writing its record
    left.mkdir(parents=True)
    (left / "deblur.json").write_text("{")
    result = deblur_video(clip / "blurred", *motion_args(clip), "--method", "classic",
                          "--range", "1:1", "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "deblur.json", "frame_000001.png"]


def test_a_folder_of_other_weights_under_the_same_path_is_not_resumed(clip, tmp_path,
                                                                      monkeypatch):
    import shutil

    from gyrodeblur.models import shipped_weights

    weights, out = tmp_path / "mine.safetensors", tmp_path / "frames"
    shutil.copyfile(shipped_weights()["deepgyro-path-s"], weights)
    args = [*motion_args(clip), "--model", str(weights), "--range", "1:1", "-o", out]
    assert deblur_video(clip / "blurred", *args).exit_code == 0
    # The same weights by another spelling of their path resume the run.
    monkeypatch.chdir(tmp_path)
    spelt = [*motion_args(clip), "--model", "./mine.safetensors", "--range", "1:1", "-o", out]
    assert "resumed" in deblur_video(clip / "blurred", *spelt).output
    shutil.copyfile(shipped_weights()["deepgyro-s"], weights)  # retrained, same file name
    again = deblur_video(clip / "blurred", *args)
    assert again.exit_code == 2 and "(changed: the model's weights)" in again.output


@pytest.mark.parametrize(("signal_name", "status"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_interrupted_video_leaves_no_file(clip, tmp_path, monkeypatch, signal_name, status):
    import os
    import signal

    def interrupted(restorer, window):
        frame = window[len(window) // 2]  # the frame restored: windows of 1 or 3 frames
        if frame.number == 3:  # Ctrl-C, or kill / timeout / a batch scheduler
            os.kill(os.getpid(), getattr(signal, signal_name))
        return frame.image

    monkeypatch.setattr(deblur_module, "restore_frame", interrupted)
    result = deblur_video(clip / "video.mp4", *motion_args(clip), "-o", tmp_path / "out.mp4")
    assert result.exit_code == status
    assert list(tmp_path.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


@pytest.mark.parametrize(("method", "computed"), [
    (["--method", "classic", "--iterations", "2"], [3, 4, 5, 6, 7]),
    (["--model", "gyrodvd-s"], [2, 3, 4, 5, 6, 7])])  # frame 3's window takes frame 2
def test_interrupted_folder_says_so_and_resumes(clip, tmp_path, monkeypatch, method, computed):
    import os
    import signal

    restore, kernels = deblur_module.restore_frame, deblur_module.iter_frame_kernels
    restored, killed, with_kernels = [], [], []

    def kernels_counted(orientation, camera, timing, numbers, *args):
        with_kernels.extend(numbers.tolist())
        return kernels(orientation, camera, timing, numbers, *args)

    def interrupted(restorer, window):
        frame = window[len(window) // 2]
        if frame.number == 3 and not killed:
            killed.append(3)
            os.kill(os.getpid(), signal.SIGINT)
        restored.append(frame.number)
        return restore(restorer, window)

    monkeypatch.setattr(deblur_module, "restore_frame", interrupted)
    monkeypatch.setattr(deblur_module, "iter_frame_kernels", kernels_counted)
    args = [*motion_args(clip), *method, "-o", tmp_path / "o"]
    result = deblur_video(clip / "blurred", *args)
    assert result.exit_code == 130
    assert result.output.strip().splitlines()[-1].startswith(  # one line, after the progress
        f"interrupted; {tmp_path / 'o'}/ keeps the frames written so far")
    assert sorted(p.name for p in (tmp_path / "o").glob("*.png")) == [
        "frame_000001.png", "frame_000002.png"]
    assert json.loads((tmp_path / "o" / "deblur.json").read_text())["complete"] is False
    restored.clear()
    with_kernels.clear()
    assert deblur_video(clip / "blurred", *args).exit_code == 0
    assert restored == [3, 4, 5, 6, 7]  # the frames done are kept
    assert with_kernels == computed  # and need no kernels
    assert json.loads((tmp_path / "o" / "deblur.json").read_text())["complete"] is True
    whole = tmp_path / "whole"
    assert deblur_video(clip / "blurred", *args[:-1], whole).exit_code == 0
    for n in range(1, 8):
        name = f"frame_{n:06d}.png"
        assert np.array_equal(read_image(tmp_path / "o" / name), read_image(whole / name)), n


def test_corrupt_video_is_an_error(clip, tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(200))
    result = deblur_video(bad, *motion_args(clip), "-o", tmp_path / "out.mp4")
    assert result.exit_code == 2 and "bad.mp4" in result.output and "corrupt" in result.output
    (tmp_path / "empty.mp4").touch()  # an interrupted copy
    result = deblur_video(tmp_path / "empty.mp4", *motion_args(clip), "-o", tmp_path / "out.mp4")
    assert result.exit_code == 2 and "empty.mp4: empty file, not a video" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.mp4", "empty.mp4"]


def test_gyro_not_covering_the_frames_is_an_error(clip, tmp_path):
    result = deblur_video(clip / "blurred", *motion_args(clip), "--time-offset", "5",
                          "-o", tmp_path / "out.mp4")
    assert result.exit_code == 2 and "gyro covers" in result.output
    assert list(tmp_path.iterdir()) == []


def test_mismatched_sizes_are_an_error(clip, tmp_path):
    camera = json.loads((clip / "camera.json").read_text())
    camera["width"] = 400
    (tmp_path / "wide.json").write_text(json.dumps(camera))
    result = deblur_video(clip / "blurred", "--gyro", clip / "gyro.csv", "--camera",
                          tmp_path / "wide.json", "--frames-csv", clip / "frames.csv",
                          "-o", tmp_path / "out.mp4")
    assert result.exit_code == 2 and "wide.json" in result.output and "mismatched" in result.output
    assert not (tmp_path / "out.mp4").exists()


def test_deblur_image_from_gyro_and_from_kernels(clip, tmp_path):
    frames = clip / "frames.csv"
    _, t_start, exposure = frames.read_text().splitlines()[3].split(",")  # frame 3
    image = clip / "blurred" / "000003.png"
    by_gyro = runner.invoke(app, ["deblur", "image", str(image), "--gyro", str(clip / "gyro.csv"),
                                  "--camera", str(clip / "camera.json"), "--frame-time", t_start,
                                  "--exposure", exposure, "--method", "classic",
                                  "-o", str(tmp_path / "gyro.png")])
    assert by_gyro.exit_code == 0, by_gyro.output
    by_kernels = runner.invoke(app, ["deblur", "image", str(image), "--kernels",
                                     str(clip / "kernels.npz"), "--frame", "3", "--method",
                                     "classic", "-o", str(tmp_path / "kernels.png")])
    assert by_kernels.exit_code == 0, by_kernels.output
    sharp, blurred = read_image(clip / "sharp" / "000003.png"), read_image(image)
    # The gyro alone misses the clip's translation, which the kernels file has; here the
    # translation undoes most of the rotation's blur (0.7 px left of 2.3), so only the whole
    # kernel restores the frame.
    whole = psnr(read_image(tmp_path / "kernels.png"), sharp)
    assert whole > psnr(blurred, sharp) + 1.0
    assert whole > psnr(read_image(tmp_path / "gyro.png"), sharp) + 1.0


def test_kernels_file_frames_are_looked_up_by_number_first_by_default(clip, tmp_path):
    npz = dict(np.load(clip / "kernels.npz"))
    # The frames 2..4 of the clip, as `kernels --range 2:4` writes them.
    np.savez(tmp_path / "k.npz", **npz | {"rot": npz["rot"][1:4], "tran": npz["tran"][1:4],
                                          "frames": np.arange(2, 5)})
    size = npz["rot"].shape[-2:]
    for frame, index in ((None, 1), (2, 1), (4, 3)):
        rot, tran = read_kernels(tmp_path / "k.npz", frame, size)
        np.testing.assert_array_equal(rot, npz["rot"][index])
        np.testing.assert_array_equal(tran, npz["tran"][index])
    with pytest.raises(InputError, match=r"k\.npz: no frame 1 \(frames 2\.\.4\)"):
        read_kernels(tmp_path / "k.npz", 1, size)
    # A colour image's array shape fits too; float64 kernels come back float32, as the format.
    np.savez(tmp_path / "k64.npz", rot=npz["rot"].astype(np.float64))
    rot, tran = read_kernels(tmp_path / "k64.npz", 2, (*size, 3))
    assert rot.dtype == np.float32 and tran is None
    np.testing.assert_array_equal(rot, npz["rot"][1])
    np.savez(tmp_path / "far.npz", rot=npz["rot"] * 1e3)  # not pixels
    with pytest.raises(InputError, match=r"far\.npz: kernels of frame 1 move pixels \d+ px, "
                                         r"beyond the 320x192 image: are they in pixels\?"):
        read_kernels(tmp_path / "far.npz", None, size)
    np.savez(tmp_path / "none.npz", rot=npz["rot"][:0], frames=np.arange(0))
    with pytest.raises(InputError, match=r"none\.npz: holds no frames"):
        read_kernels(tmp_path / "none.npz", None, size)
    # NaN marks pixels without a ray (a fisheye's corners): some are kept, all refused.
    corners = npz["rot"].copy()
    corners[..., :5, :5] = np.nan
    np.savez(tmp_path / "corners.npz", rot=corners)
    assert np.isnan(read_kernels(tmp_path / "corners.npz", 1, size)[0]).sum() == 9 * 2 * 25
    np.savez(tmp_path / "nan.npz", rot=np.full_like(npz["rot"], np.nan))
    with pytest.raises(InputError, match=r"nan\.npz: the kernels of frame 1 are NaN "
                                         r"everywhere: no pixel has a ray"):
        read_kernels(tmp_path / "nan.npz", None, size)


@pytest.mark.parametrize("damage", ["truncated", "corrupted"])
def test_a_damaged_kernels_file_is_a_one_line_error(clip, tmp_path, damage):
    data = bytearray((clip / "kernels.npz").read_bytes())
    if damage == "truncated":
        data = data[:len(data) // 2]
    else:  # bytes of the first array changed: its CRC no longer holds
        data[2000:4000] = bytes(2000)
    (tmp_path / "k.npz").write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"k\.npz: not a kernels file with 'rot'"):
        read_kernels(tmp_path / "k.npz", None, (192, 320))


def test_classic_iterations_option_runs_that_many_steps(clip, tmp_path):
    image = clip / "blurred" / "000003.png"
    args = ["deblur", "image", str(image), "--kernels", str(clip / "kernels.npz"), "--frame",
            "3", "--method", "classic", "--iterations", "7", "-o", str(tmp_path / "out.png")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    with np.load(clip / "kernels.npz") as k:
        traj = k["rot"][2] + k["tran"][2]
    expected = deconvolve(read_image(image), traj, iterations=7)
    assert np.abs(read_image(tmp_path / "out.png") - expected).max() <= 0.5 / 255 + 1e-6
    # The default net refines the classical restoration: the steps are its too.
    assert runner.invoke(app, [*args, "--method", "net"]).exit_code == 0
    for model_option in ("--model", "-m"):  # -m as in eval
        fast = runner.invoke(app, [*args, "--method", "net", model_option, "deepgyro-path-s"])
        assert fast.exit_code == 2 and "--iterations applies to --method classic" in fast.output


@pytest.mark.parametrize(("extra", "message"), [
    (["--kernels", "kernels.npz", "--time-offset", "0.01", "--samples", "5", "--method",
      "classic"],
     "--time-offset, --samples: the kernels of --kernels are used instead of gyro and camera"),
    (["--kernels", "kernels.npz", "--kernel-width", "640"],
     "--kernel-width: the kernels of --kernels are used instead of gyro and camera"),
    (["--gyro", "gyro.csv", "--camera", "camera.json", "--frame-time", "0.5", "--exposure",
      "0.01", "--frame", "3"], "--frame picks a frame of --kernels"),
])
def test_deblur_image_refuses_options_it_would_not_use(clip, tmp_path, extra, message):
    extra = [str(clip / e) if e.endswith((".npz", ".csv", ".json")) else e for e in extra]
    result = runner.invoke(app, ["deblur", "image", str(clip / "blurred" / "000003.png"),
                                 *extra, "-o", str(tmp_path / "out.png")])
    assert result.exit_code == 2 and message in " ".join(result.output.split()), result.output
    assert not (tmp_path / "out.png").exists()


def test_deblur_image_refuses_kernels_of_another_shape(clip, tmp_path):
    npz = dict(np.load(clip / "kernels.npz"))
    npz["rot"] = npz["rot"][..., :100]
    npz["tran"] = npz["tran"][..., :100]
    np.savez(tmp_path / "k.npz", **npz)
    result = runner.invoke(app, ["deblur", "image", str(clip / "blurred" / "000001.png"),
                                 "--kernels", str(tmp_path / "k.npz"), "-o",
                                 str(tmp_path / "out.png")])
    assert result.exit_code == 2 and "mismatched sizes" in result.output
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("frames", [np.arange(1, 8), np.arange(1, 4), np.ones((5, 1), int),
                                    np.linspace(1, 5, 5)])
def test_deblur_image_refuses_frame_numbers_that_do_not_fit_the_kernels(clip, tmp_path, frames):
    npz = dict(np.load(clip / "kernels.npz"))
    np.savez(tmp_path / "k.npz", **{**npz, "rot": npz["rot"][:5], "tran": npz["tran"][:5],
                                    "frames": frames})
    result = runner.invoke(app, ["deblur", "image", str(clip / "blurred" / "000001.png"),
                                 "--kernels", str(tmp_path / "k.npz"), "--frame", "1",
                                 "-o", str(tmp_path / "out.png")])
    assert result.exit_code == 2, result.output
    assert "'frames' must hold one frame number per kernel (5)" in result.output
    assert not (tmp_path / "out.png").exists()


def test_sync_auto_finds_the_offset_before_deblurring(tmp_path):
    # A clip of 9 pairs: sync trusts fewer less (FULL_SUPPORT_PAIRS).
    made = runner.invoke(app, ["synth", "clips", "-n", "1", "--seed", "5", "--frames", "10",
                               "-o", str(tmp_path / "clips")])
    assert made.exit_code == 0, made.output
    clip = tmp_path / "clips" / "clip_000000"
    # Move the frame clock 30 ms back: t_gyro = t_frame + 0.03 (plus the clip's own delay).
    rows = (clip / "frames.csv").read_text().splitlines()
    shifted = [rows[0]] + [f"{n},{float(t) - 0.03:.9f},{e}" for n, t, e in
                           (r.split(",") for r in rows[1:])]
    (tmp_path / "frames.csv").write_text("\n".join(shifted) + "\n")
    truth = 0.03 + json.loads(str(np.load(clip / "kernels.npz")["meta"]))["sensor_errors"][
        "delay"]
    result = deblur_video(clip / "blurred", "--gyro", clip / "gyro.csv", "--camera",
                          clip / "camera.json", "--frames-csv", tmp_path / "frames.csv",
                          "--sync", "auto", "--sync-search", "0.05", "--model", "deepgyro-s",
                          # Deblurred at half size; synchronised on the frames as stored.
                          "--size", "160x96", "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    found = float(result.output.split("sync: time_offset ")[1].split(" s")[0])
    assert abs(found - truth) < 0.002
    record = json.loads((tmp_path / "out" / "deblur.json").read_text())
    assert record["sync"]["applied"] and record["sync"]["confidence"] >= 0.3
    assert record["sync"]["pairs"] >= 3 and "doubt" not in record["sync"]
    assert record["camera"]["time_offset"] == record["sync"]["time_offset"]


def test_an_unreliable_sync_is_recorded_with_its_doubt_and_not_applied(clip, tmp_path):
    still = tmp_path / "still"
    still.mkdir()
    for frame in sorted((clip / "blurred").iterdir()):
        shutil.copyfile(clip / "blurred" / "000001.png", still / frame.name)
    result = deblur_video(still, *motion_args(clip), "--range", "1:2", "--sync", "auto",
                          "--method", "classic", "--iterations", "1", "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "out" / "deblur.json").read_text())["sync"]
    assert not record["applied"] and "video shows no rotation" in record["doubt"]
    assert "global shutter" not in result.output  # the camera has its readout
    # Synchronised as a global shutter: said, as sync says it.
    result = deblur_video(still, *motion_args(clip), "--range", "1:2", "--sync", "auto",
                          "--readout-time", "0", "--method", "classic", "--iterations", "1",
                          "-o", tmp_path / "global")
    assert result.exit_code == 0, result.output
    assert "note: --readout-time 0 (a global shutter): under a rolling shutter the offset " \
           "comes out off by up to half the readout; gyrodeblur sync --readout estimates it" \
           in " ".join(result.output.split())


def test_sync_auto_on_a_short_range_uses_the_neighbouring_frames(clip, tmp_path):
    result = deblur_video(clip / "blurred", *motion_args(clip), "--range", "3:4", "--sync",
                          "auto", "--method", "classic", "--iterations", "2", "-o",
                          tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "no sync" not in result.output and "sync: time_offset" in result.output
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == [
        "frame_000003.png", "frame_000004.png"]


def test_sync_auto_refuses_a_gyro_too_short_for_the_frames_before_syncing(clip, tmp_path):
    rows = (clip / "gyro.csv").read_text().splitlines()
    (tmp_path / "gyro.csv").write_text("\n".join(rows[:len(rows) // 3]) + "\n")
    result = deblur_video(clip / "blurred", "--gyro", tmp_path / "gyro.csv", *motion_args(
        clip)[2:], "--sync", "auto", "--method", "classic", "-o", tmp_path / "out")
    assert result.exit_code == 2 and "no sync" not in result.output
    assert "gyro covers" in result.output.strip().splitlines()[-1]
    assert not (tmp_path / "out").exists()


def test_sync_auto_refuses_a_hole_every_searched_offset_meets_before_syncing(clip, tmp_path,
                                                                           monkeypatch):
    from gyrodeblur.kernels import synchronization

    monkeypatch.setattr(synchronization, "estimate_sync", lambda *a, **k: pytest.fail("synced"))
    log = np.loadtxt(clip / "gyro.csv", delimiter=",", skiprows=1)
    middle = (log[0, 0] + log[-1, 0]) / 2
    log = log[np.abs(log[:, 0] - middle) > 0.03]  # 60 ms without samples
    np.savetxt(tmp_path / "gyro.csv", log, delimiter=",", header="t,wx,wy,wz", comments="")
    result = deblur_video(clip / "blurred", "--gyro", tmp_path / "gyro.csv", *motion_args(
        clip)[2:], "--sync", "auto", "--sync-search", "0.02", "--method", "classic", "-o",
        tmp_path / "out")
    assert result.exit_code == 2, result.output
    assert "gyro has no samples from" in result.output.strip().splitlines()[-1]
    assert not (tmp_path / "out").exists()


def test_sync_auto_that_cannot_run_keeps_the_cameras_offset(clip, tmp_path):
    # Two frames timed: one pair, where sync needs three.
    rows = (clip / "frames.csv").read_text().splitlines()
    (tmp_path / "frames.csv").write_text("\n".join([rows[0], rows[3], rows[4]]) + "\n")
    result = deblur_video(clip / "blurred", "--gyro", clip / "gyro.csv", "--camera",
                          clip / "camera.json", "--frames-csv", tmp_path / "frames.csv",
                          "--sync", "auto", "--method", "classic",
                          "--iterations", "2", "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "no sync (" in result.output and "synchronisation needs 3 pairs" in result.output
    record = json.loads((tmp_path / "out" / "deblur.json").read_text())
    camera = json.loads((clip / "camera.json").read_text())
    assert not record["sync"]["applied"] and "needs 3 pairs" in record["sync"]["error"]
    assert record["camera"]["time_offset"] == camera["time_offset"]
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == [
        "frame_000003.png", "frame_000004.png"]


def test_deblur_image_refuses_kernels_of_another_view():
    restorer = make_restorer("classic", None, video=False)
    image = np.zeros((60, 80, 3), np.float32)
    with pytest.raises(ValueError, match="not of the view"):
        deblur_image(image, np.zeros((5, 2, 40, 40), np.float32), None, restorer)
    with pytest.raises(ValueError, match="must be"):
        deblur_image(image, np.zeros((5, 2, 30, 40), np.float32),
                     np.zeros((5, 2, 60, 80), np.float32), restorer)
    # 41 px at half size is 82 px at the image's: beyond its 80 px, kernels in other units.
    with pytest.raises(ValueError, match="move pixels 82 px, beyond the 80x60 image: are "):
        deblur_image(image, np.full((5, 2, 30, 40), 41.0, np.float32), None, restorer)
    with pytest.raises(ValueError, match=r"a kernels file's \(F, T, 2, H, W\): take a frame's"):
        resample_samples(np.zeros((12, 9, 2, 4, 4), np.float32), 9)


def test_kernels_of_one_instant_serve_a_net_and_old_records_name_what_differs(tmp_path):
    from gyrodeblur.footage import StoredFormat
    from gyrodeblur.pipelines.deblur import FolderOutput

    rot = np.random.default_rng(0).normal(0, 1, (1, 2, 4, 4)).astype(np.float32)
    np.testing.assert_array_equal(resample_samples(rot, 5), np.repeat(rot, 5, axis=0))
    for T in (5, 9):  # float32 whether resampled or kept
        assert resample_samples(np.zeros((T, 2, 4, 4)), 5).dtype == np.float32
    image = np.full((32, 32, 3), 0.5, np.float32)
    assert deblur_image(image, np.zeros((1, 2, 32, 32), np.float32)).shape == (32, 32, 3)
    # A record of an earlier release holds a setting this one has not: named as changed.
    (tmp_path / "deblur.json").write_text('{"method": "net", "sync": null, "complete": false}')
    (tmp_path / "frame_000001.png").write_bytes(b"")
    with pytest.raises(InputError, match=r"other settings \(changed: sync\)"):
        FolderOutput(tmp_path, {"method": "net"}, lambda n: StoredFormat(np.uint8, False))


def test_a_video_job_takes_whole_frame_numbers_and_a_restorer_only(clip):
    from gyrodeblur.footage import Footage, read_frames_csv
    from gyrodeblur.pipelines.deblur import VideoJob
    from gyrodeblur.pipelines.kernels import KernelJob

    footage, timing = Footage(clip / "blurred"), read_frames_csv(clip / "frames.csv")
    log, camera = read_gyro(clip / "gyro.csv"), load_camera(clip / "camera.json")
    classic = make_restorer("classic", video=True)
    job = VideoJob(footage, timing, [3.0, 2.0], log, camera, classic)
    assert job.frames.tolist() == [2, 3] and job.frames.dtype == np.int64
    with pytest.raises(ValueError, match=r"frames: whole frame numbers, got \[2.5\]"):
        VideoJob(footage, timing, [2.5], log, camera, classic)
    with pytest.raises(TypeError, match="restorer: a Restorer"):
        VideoJob(footage, timing, [2], log, camera, "classic")
    with pytest.raises(ValueError, match="samples: need an integer of at least 2"):
        KernelJob(camera, log, timing, np.array([2]), samples=-3, translation=False)
    with pytest.raises(ValueError, match="samples: need an integer of at least 2"):
        make_restorer("classic", samples=0)
    with pytest.raises(InputError, match="samples applies to the classical method only"):
        make_restorer("net", samples=9)
    with pytest.raises(InputError, match="tile 40.5: give a whole number of pixels"):
        make_restorer("classic", tile=40.5)
    with pytest.raises(InputError, match=r"a model config is a mapping such as"):
        build_model("deepgyro-s")
    for radius in (0, -5, 2.5):
        with pytest.raises(ValueError, match=f"pool radius {radius}: a whole number of pixels"):
            load_model("deepgyro-s", pool_radius=radius)


def test_a_video_job_refuses_a_camera_of_another_view(clip):
    from gyrodeblur.footage import Footage, read_frames_csv
    from gyrodeblur.pipelines.deblur import VideoJob

    camera = load_camera(clip / "camera.json")  # 320x192
    footage, timing = Footage(clip / "blurred"), read_frames_csv(clip / "frames.csv")
    log = read_gyro(clip / "gyro.csv")
    job = VideoJob(footage, timing, timing.frame[:2], log, camera.rescaled(160, 96),
                   make_restorer("classic", None, video=True))
    job.check()  # a resize of the view
    wide = replace(camera, width=320, height=180, cy=89.5)
    job = VideoJob(footage, timing, timing.frame[:2], log, wide, job.restorer)
    with pytest.raises(InputError, match="320x192 frames are not a resize of the camera's "
                                         "320x180"):
        job.check()


def test_frames_enlarged_for_a_larger_size_are_interpolated_not_copied_in_blocks(clip):
    from gyrodeblur.footage import Footage, read_frames_csv
    from gyrodeblur.pipelines.deblur import VideoJob

    camera = load_camera(clip / "camera.json")  # 320x192, processed at 640x384
    footage, timing = Footage(clip / "blurred"), read_frames_csv(clip / "frames.csv")
    job = VideoJob(footage, timing, timing.frame[:1], read_gyro(clip / "gyro.csv"),
                   camera.rescaled(640, 384), make_restorer("classic", None, video=True))
    enlarged = next(job.stream()).image.astype(np.float64)
    a = read_image(clip / "blurred" / "000001.png").astype(np.float64) * 255
    # Pixel 2i + 1 of the enlarged frame lies a quarter of the way from pixel i to i + 1.
    quarter = 0.75 * a[:-1] + 0.25 * a[1:]
    quarter = 0.75 * quarter[:, :-1] + 0.25 * quarter[:, 1:]
    np.testing.assert_allclose(enlarged[1:-1:2, 1:-1:2], quarter, atol=1.0)


def test_deblur_image_takes_integer_images_and_tensors_and_refuses_0_to_255_floats():
    restorer = make_restorer("classic", None, video=False)
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    rot = rng.normal(0, 1, (5, 2, 24, 32)).astype(np.float32)
    with pytest.raises(TypeError, match="the third argument is the translation kernels"):
        deblur_image(image, rot, restorer)
    with pytest.raises(ValueError, match=r"by name is make_restorer\('net', 'deepgyro-s'\)"):
        deblur_image(image, rot, None, "deepgyro-s")
    expected = deblur_image(image / np.float32(255), rot, None, restorer)
    np.testing.assert_array_equal(deblur_image(image, rot, None, restorer), expected)
    np.testing.assert_array_equal(
        deblur_image(torch.from_numpy(image / np.float32(255)), torch.from_numpy(rot), None,
                     restorer), expected)
    with pytest.raises(ValueError, match=r"0\.\.255 floats"):
        deblur_image(image.astype(np.float32), rot, None, restorer)


def test_single_image_net_sees_the_whole_kernel():
    # rot + tran is what the net takes: a translation that cancels the rotation leaves the
    # net the output of no blur at all.
    restorer = make_restorer("net", None, video=True)
    rng = np.random.default_rng(0)
    image = rng.random((48, 64, 3)).astype(np.float32)
    rot = rng.normal(0, 2, (restorer.samples, 2, 48, 64)).astype(np.float32)
    zero = np.zeros_like(rot)
    np.testing.assert_allclose(restorer([image], [rot], [-rot]), restorer([image], [zero], None),
                               atol=1e-6)
    assert restorer.translation  # videos compute the flow's translation for it


def test_a_frame_restored_from_its_summed_kernel_equals_its_parts_upsampled():
    # restore_frame sums rot + tran at the kernels' resolution before upsampling them to the
    # frame; upsampling is linear, so the restorer sees the sum of the upsampled parts.
    rng = np.random.default_rng(3)
    image = rng.random((64, 96, 3)).astype(np.float32)
    rot = rng.normal(0, 1.5, (9, 2, 32, 48)).astype(np.float32)
    tran = rng.normal(0, 0.5, (9, 2, 32, 48)).astype(np.float32)
    restorer = make_restorer("classic", None, video=True, iterations=10)
    assert restorer.whole_kernel
    frame = FrameData(1, image, rot, tran)
    parts = [upsample_kernels(k, (64, 96)) for k in (rot, tran)]
    expected = restorer([image], [parts[0]], [parts[1]], iterations=10,
                        tv_weight=auto_tv_weight(image))
    np.testing.assert_allclose(restore_frame(restorer, [frame]), expected, atol=1e-4)
    assert np.abs(expected - image).max() > 0.05


def test_a_refining_net_starts_from_the_classical_restoration(tmp_path):
    # With its last convolution zeroed the net adds nothing: what is left is the classical
    # method's restoration, run on the whole kernel of T = 9 with the frame's TV weight and
    # step count, as --method classic runs it.
    from safetensors.torch import save_file

    net = build_model({"variant": "deepgyro-refine-s"})
    for p in (net.ending.weight, net.ending.bias):
        torch.nn.init.zeros_(p)
    weights = tmp_path / "refine.safetensors"
    save_file(net.state_dict(), str(weights),
              metadata={"model": json.dumps({"variant": "deepgyro-refine-s"})})
    refine, classic = make_restorer("net", weights, False), make_restorer("classic", None, False)
    assert refine.uses_classic and refine.samples == classic.samples == 9
    sample = synthetic_benchmark(BenchmarkSpec(count=1, width=96, height=64, preset="strong",
                                               seed=5))[0]
    frame = FrameData(1, sample["blurred"].permute(1, 2, 0).numpy(), sample["rot"].numpy(), None)
    expected = restore_frame(classic, [frame])
    assert np.abs(expected - frame.image).max() > 0.05
    np.testing.assert_allclose(restore_frame(refine, [frame]), expected, atol=1e-6)


def test_a_loaded_net_gets_kernels_resampled_to_its_samples():
    # gyrodvd-s takes T = 5; kernels of T = 9 along a linear path are resampled to the same
    # five instants.
    net, _ = load_model("gyrodvd-s")
    restorer = make_restorer("net", net)
    assert restorer.samples == 5 and restorer.window == 1
    image = np.random.default_rng(0).random((40, 56, 3)).astype(np.float32)
    reach = np.random.default_rng(1).normal(0, 3, (2, 40, 56)).astype(np.float32)
    rot9, rot5 = (np.linspace(-0.5, 0.5, T, dtype=np.float32)[:, None, None, None] * reach
                  for T in (9, 5))
    np.testing.assert_allclose(deblur_image(image, rot9, None, restorer),
                               deblur_image(image, rot5, None, restorer), atol=1e-5)


def test_a_file_that_is_not_weights_is_refused(clip, tmp_path):
    result = runner.invoke(app, ["deblur", "image", str(clip / "blurred" / "000001.png"),
                                 "--kernels", str(clip / "kernels.npz"), "--model",
                                 str(clip / "gyro.csv"), "-o", str(tmp_path / "out.png")])
    assert result.exit_code == 2 and "gyro.csv: not gyrodeblur weights" in result.output
    assert not (tmp_path / "out.png").exists()


def test_pixels_without_a_ray_are_left_unblurred_and_a_wide_fisheye_video_deblurs(tmp_path):
    import cv2

    # A fisheye wider than 180 degrees: its corners have no ray, their kernels are NaN.
    restorer = make_restorer("classic", None, video=False)
    rng = np.random.default_rng(0)
    image = rng.random((48, 64, 3)).astype(np.float32)
    rot = np.zeros((5, 2, 48, 64), np.float32)
    rot[:, 0] = np.linspace(-2, 2, 5)[:, None, None]
    holes = rot.copy()
    holes[:, :, :8, :8] = np.nan
    still = rot.copy()
    still[:, :, :8, :8] = 0.0
    np.testing.assert_array_equal(deblur_image(image, holes, None, restorer),
                                  deblur_image(image, still, None, restorer))
    with pytest.raises(ValueError, match="infinite kernels"):
        deblur_image(image, np.where(np.isnan(holes), np.inf, holes), None, restorer)

    cam = {"width": 64, "height": 48, "fx": 14.0, "fy": 14.0, "cx": 31.5, "cy": 23.5,
           "distortion_model": "fisheye", "distortion": [0.1, -0.05, 0.02, -0.003]}
    (tmp_path / "camera.json").write_text(json.dumps(cam))
    t = np.arange(0, 1, 0.005)
    rows = "".join(f"{ti},0.5,1.0,-0.3\n" for ti in t)
    (tmp_path / "gyro.csv").write_text("t,wx,wy,wz\n" + rows)
    (tmp_path / "frames.csv").write_text("frame,t_start,exposure\n1,0.2,0.02\n2,0.3,0.02\n")
    frames = tmp_path / "frames"
    frames.mkdir()
    for n in (1, 2):
        cv2.imwrite(str(frames / f"f{n}.png"), (image * 255).astype(np.uint8))
    result = CliRunner().invoke(app, ["deblur", "video", str(frames), "--gyro",
                                      str(tmp_path / "gyro.csv"), "--camera",
                                      str(tmp_path / "camera.json"), "--frames-csv",
                                      str(tmp_path / "frames.csv"), "--method", "classic",
                                      "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "out").glob("frame_*.png"))) == 2


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("size", [1, 3, 5])
def test_windows_hold_neighbouring_frames_only(seed, size):
    rng = np.random.default_rng(seed)
    numbers = np.cumsum(rng.choice([1, 1, 1, 2, 5], 12)).tolist()
    got = [[f.number for f in w]
           for w in windows((FrameData(n, None, None, None) for n in numbers), size)]
    # Brute force: each offset's frame if the footage has it and every frame between too,
    # else the nearest one towards the centre that it has.
    expected = []
    for n in numbers:
        window = []
        for k in range(-(size // 2), size // 2 + 1):
            step = 1 if k > 0 else -1
            reach = 0
            while reach != k and n + reach + step in numbers:
                reach += step
            window.append(n + reach)
        expected.append(window)
    assert got == expected



def test_zero_classical_iterations_give_the_input_back():
    rng = np.random.default_rng(3)
    image = rng.random((24, 32, 3)).astype(np.float32)
    rot = rng.normal(0, 2, (5, 2, 24, 32)).astype(np.float32)
    restored = deblur_image(image, rot, None, make_restorer("classic", iterations=0))
    np.testing.assert_allclose(restored, image, atol=1e-6)


def test_kernels_without_samples_are_refused_by_name():
    with pytest.raises(ValueError, match=r"rot and tran must be \(T, 2, h, w\) with T >= 1"):
        deblur_image(np.zeros((8, 8, 3), np.float32), np.zeros((0, 2, 8, 8), np.float32), None,
                     make_restorer("classic"))


def test_a_video_net_on_one_image_takes_the_translation_it_is_given():
    # A kernels file's translation reaches GyroDVD's translation encoder on a single image
    # too, as it reaches the single-image nets and the classical method.
    restorer = make_restorer("net", "gyrodvd-s")
    assert restorer.window == 1 and restorer.translation
    rng = np.random.default_rng(1)
    image = rng.random((48, 64, 3)).astype(np.float32)
    rot = rng.normal(0, 2, (restorer.samples, 2, 48, 64)).astype(np.float32)
    tran = rng.normal(0, 2, rot.shape).astype(np.float32)
    assert np.abs(deblur_image(image, rot, tran, restorer)
                  - deblur_image(image, rot, None, restorer)).max() > 1e-3


def test_deblur_image_takes_a_method_name_for_its_restorer():
    rng = np.random.default_rng(2)
    image = rng.random((40, 48, 3)).astype(np.float32)
    rot = np.zeros((9, 2, 40, 48), np.float32)
    rot[:, 0] = np.linspace(-2, 2, 9)[:, None, None]
    np.testing.assert_array_equal(deblur_image(image, rot, None, "classic"),
                                  deblur_image(image, rot, None, make_restorer("classic")))


@pytest.mark.parametrize(("extra", "output", "message"), [
    (["--sync-search", "0.1"], "out.mp4", "--sync-search applies to --sync auto only"),
    (["--crf", "30"], "out", "--crf applies to an .mp4 output only"),
])
def test_deblur_video_refuses_options_it_would_not_use(clip, tmp_path, extra, output, message):
    result = deblur_video(clip / "blurred", *motion_args(clip), "--method", "classic", *extra,
                          "-o", tmp_path / output)
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / output).exists()


def test_a_model_that_restores_nan_is_a_one_line_error(clip, tmp_path):
    from safetensors.torch import save_file

    from gyrodeblur.pipelines.evaluate import net_restore

    config = {"arch": "deepgyro", "width": 4, "enc_blocks": [1], "dec_blocks": [1],
              "samples": 5}
    # Finite weights that overflow, as a diverged run's saved before its NaN step.
    thrown = {k: v * 1e15 if v.is_floating_point() else v
              for k, v in build_model(config).state_dict().items()}
    weights = tmp_path / "thrown.safetensors"
    save_file(thrown, str(weights), metadata={"model": json.dumps(config)})
    result = runner.invoke(app, ["deblur", "image", str(clip / "blurred" / "000003.png"),
                                 "--kernels", str(clip / "kernels.npz"), "--model", str(weights),
                                 "-o", str(tmp_path / "out.png")])
    assert result.exit_code == 2 and result.output.strip() == (
        f"error: {weights}: the model restores NaN or infinite values (the weights of a "
        "diverged training run?)")
    assert not (tmp_path / "out.png").exists()
    # Into a PNG folder: nothing left, not even the record or the folders made for it.
    result = deblur_video(clip / "blurred", *motion_args(clip), "--range", "1:2", "--model",
                          weights, "-o", tmp_path / "new" / "frames")
    assert result.exit_code == 2 and "the model restores NaN" in result.output
    assert not (tmp_path / "new").exists()
    # A record of a run that wrote no frame does not hold the folder for its settings.
    (tmp_path / "frames").mkdir()
    (tmp_path / "frames" / "deblur.json").write_text('{"model": "other", "complete": false}')
    result = deblur_video(clip / "blurred", *motion_args(clip), "--range", "1:2", "--method",
                          "classic", "-o", tmp_path / "frames")
    assert result.exit_code == 0, result.output
    net, _ = load_model(weights)
    batch = {"blurred": torch.rand(1, 3, 32, 32), "rot": torch.zeros(1, 5, 2, 32, 32)}
    with pytest.raises(InputError, match="thrown.safetensors: the model restores NaN"):
        net_restore(net, weights)(batch)


def test_deblur_image_takes_a_reversed_channel_view_and_no_translation():
    rng = np.random.default_rng(0)
    bgr = rng.random((64, 72, 3)).astype(np.float32)
    rgb = bgr[..., ::-1]  # OpenCV's BGR turned RGB: a view with a negative stride
    rot = np.zeros((5, 2, 64, 72), np.float32)
    restorer = make_restorer("net", "deepgyro-path-s")
    np.testing.assert_array_equal(deblur_image(rgb, rot, restorer=restorer),
                                  deblur_image(np.ascontiguousarray(rgb), rot, None, restorer))


def test_make_restorer_refuses_a_model_it_would_not_use():
    with pytest.raises(InputError, match=r"a model applies to the net method only \(--model to "):
        make_restorer("classic", "deepgyro-s")
    with pytest.raises(InputError, match=r"method 'deepgyro-s': choose one of net, classic \(a "
                                         r"network's name or weights go in model, --model\)"):
        make_restorer("deepgyro-s")
    with pytest.raises(TypeError, match=r"load_model returns \(network, config\)"):
        make_restorer("net", load_model("deepgyro-path-s"))


def test_the_net_runs_where_the_device_says_and_a_missing_gpu_is_named():
    image = np.random.default_rng(0).random((40, 48, 3), dtype=np.float32)
    rot = np.random.default_rng(1).normal(0, 2, (9, 2, 40, 48)).astype(np.float32)
    on_cpu = make_restorer("net", "deepgyro-s", device="cpu")
    assert on_cpu.device == torch.device("cpu")
    np.testing.assert_array_equal(deblur_image(image, rot, restorer=on_cpu),
                                  deblur_image(image, rot, restorer=make_restorer("net",
                                                                                  "deepgyro-s")))
    with pytest.raises(InputError, match="device 'tpu': choose cpu, cuda or cuda:N"):
        make_restorer("net", device="tpu")
    with pytest.raises(InputError, match="device 'meta': choose cpu, cuda or cuda:N"):
        torch_device("meta")  # a torch device, but not one to deblur on
    assert make_restorer("net", load_model("deepgyro-s")[0].to("meta")).device.type == "meta"
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="device cuda: this torch sees no CUDA GPU"):
            make_restorer("net", device="cuda")
    else:
        with pytest.raises(InputError, match="the classical method runs on the CPU only"):
            make_restorer("classic", device="cuda")
        on_gpu = make_restorer("net", "deepgyro-s", device="cuda")
        np.testing.assert_allclose(deblur_image(image, rot, restorer=on_gpu),
                                   deblur_image(image, rot, restorer=on_cpu), atol=1e-4)


def test_a_gpu_that_is_not_there_or_runs_no_classical_method_is_named(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert torch_device("cuda:0") == torch.device("cuda", 0)
    with pytest.raises(InputError, match=r"device cuda:1: this machine has 1 CUDA GPU\(s\)"):
        torch_device("cuda:1")
    with pytest.raises(InputError, match="device cuda: the classical method runs on the CPU"):
        make_restorer("classic", device="cuda")


def test_deblur_image_writes_webp_as_it_reads_it(clip, tmp_path):
    result = runner.invoke(app, ["deblur", "image", str(clip / "blurred" / "000003.png"),
                                 "--kernels", str(clip / "kernels.npz"), "--frame", "3",
                                 "--method", "classic", "-o", str(tmp_path / "out.webp")])
    assert result.exit_code == 0, result.output
    # Lossless, as OpenCV writes WebP by default: the PNG output's pixels.
    runner.invoke(app, ["deblur", "image", str(clip / "blurred" / "000003.png"), "--kernels",
                        str(clip / "kernels.npz"), "--frame", "3", "--method", "classic", "-o",
                        str(tmp_path / "out.png")])
    np.testing.assert_array_equal(read_image(tmp_path / "out.webp"),
                                  read_image(tmp_path / "out.png"))


def test_a_gyro_that_blurs_every_frame_beyond_itself_is_refused(clip, tmp_path):
    # 300 rad/s of yaw: over 1 rad in any of the clip's exposures (at least 1/300 s).
    assert np.loadtxt(clip / "frames.csv", delimiter=",", skiprows=1)[:, 2].min() > 1 / 300
    log = read_gyro(clip / "gyro.csv")
    write_csv(GyroLog(log.t, np.tile([0.0, 300.0, 0.0], (len(log.t), 1))), tmp_path / "fast.csv")
    result = deblur_video(clip / "blurred", "--gyro", tmp_path / "fast.csv", "--gyro-unit", "rad",
                          "--camera", clip / "camera.json", "--frames-csv", clip / "frames.csv",
                          "--method", "classic", "-o", tmp_path / "out.mp4")
    assert result.exit_code == 2 and "during every frame's exposure, more than the 320x192 " \
        "frame: is the exposure in seconds, the gyro in rad/s?" in result.output
    assert not (tmp_path / "out.mp4").exists()


def test_frame_times_that_look_like_ms_beside_a_videos_rate_are_noted(clip, tmp_path):
    # The CSV's t_start in ms read as seconds: frames 33.3 s apart, the video's 1/30 s.
    t = np.arange(0.0, 400.0, 0.005)
    write_csv(GyroLog(t, np.tile([0.0, 0.1, 0.0], (len(t), 1))), tmp_path / "gyro.csv")
    frames = np.loadtxt(clip / "frames.csv", delimiter=",", skiprows=1)
    lines = [f"{n:.0f},{1000 * start:.3f},{exposure}" for n, start, exposure in frames]
    (tmp_path / "ms.csv").write_text("frame,t_start,exposure\n" + "\n".join(lines) + "\n")
    interval = 1000 * float(np.median(np.diff(frames[:, 1])))
    args = ["kernels", str(clip / "video.mp4"), "--gyro", str(tmp_path / "gyro.csv"),
            "--camera", str(clip / "camera.json"), "--no-translation", "--size", "80x48",
            "-o", str(tmp_path / "k.npz")]
    result = runner.invoke(app, args + ["--frames-csv", str(tmp_path / "ms.csv")])
    assert result.exit_code == 0, result.output
    assert f"note: {tmp_path / 'ms.csv'}: its frames are {interval:.4g} s apart, the video's " \
           "0.03333 s (30 fps): is t_start in ms? (right for a timelapse)" in result.output
    result = runner.invoke(app, args + ["--frames-csv", str(clip / "frames.csv")])
    assert result.exit_code == 0 and "in ms?" not in result.output


def test_a_net_pooling_over_the_whole_image_is_refused_as_its_tiles_would_differ():
    net, _ = load_model("deepgyro-path-s", pool_radius=None)
    with pytest.raises(ValueError, match=r"this DeepGyro pools its channel attention over the "
                                         r"whole image .* set_pool_radius\(net\) first"):
        make_restorer("net", net)
    assert make_restorer("net", set_pool_radius(net)).net is net
