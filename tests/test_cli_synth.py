import json

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from gyrodeblur.cli import app
from gyrodeblur.footage import write_image
from gyrodeblur.geometry.camera import Camera, save_camera
from gyrodeblur.geometry.gyro import GyroLog, write_csv
from gyrodeblur.synthesis.blur import (
    blur_image,
    continuous_subsamples,
    linear_to_srgb,
    srgb_to_linear,
)
from gyrodeblur.synthesis.images import dead_leaves, read_image

runner = CliRunner()
CAM = Camera(width=96, height=64, fx=80.0, fy=80.0, cx=47.5, cy=31.5, readout_time=0.01)


@pytest.fixture
def files(tmp_path):
    write_image(tmp_path / "sharp.png", dead_leaves(96, np.random.default_rng(0))[:64])
    save_camera(CAM, tmp_path / "camera.json")
    t = np.arange(0.0, 1.0, 0.0025)
    write_csv(GyroLog(t, np.tile([0.0, 1.5, 0.0], (len(t), 1))), tmp_path / "yaw.csv")
    write_csv(GyroLog(t, np.zeros((len(t), 3))), tmp_path / "still.csv")
    return tmp_path


def synth(files, gyro, *extra, out="blurred.png"):
    return runner.invoke(app, ["synth", "image", str(files / "sharp.png"), "--gyro",
                               str(files / gyro), "--camera", str(files / "camera.json"),
                               "--start", "0.4", "--exposure", "0.03", "-o", str(files / out),
                               *extra])


def test_still_camera_gives_the_sharp_image(files):
    assert synth(files, "still.csv").exit_code == 0
    np.testing.assert_allclose(read_image(files / "blurred.png"), read_image(files / "sharp.png"),
                               atol=1 / 255 + 1e-6)


def test_yaw_blur_matches_its_kernels_and_closed_form(files):
    result = synth(files, "yaw.csv", "--kernels", str(files / "k.npz"), "--samples", "7")
    assert result.exit_code == 0, result.output
    npz = np.load(files / "k.npz")
    rot = npz["rot"][0]
    meta = json.loads(str(npz["meta"]))
    assert rot.shape == (7, 2, 64, 96) and meta["samples"] == 7
    assert meta["size"] == [96, 64] and meta["gyro_unit"] == "rad"  # as `kernels` records
    # Principal point (47.5, 31.5) is between pixels; pixel (48, 32) sits at atan(0.5/fx).
    dt = 0.03 * (np.arange(7) / 6 - 0.5)
    expected = 80 * np.tan(np.arctan(0.5 / 80) + 1.5 * dt) - 0.5
    np.testing.assert_allclose(rot[:, 0, 32, 48], expected, atol=2e-3)
    blurred = read_image(files / "blurred.png")
    # Blurred continuously along the kernels: their 7 samples and the straight lines between.
    continuous = blur_image(read_image(files / "sharp.png"), rot,
                            subsamples=continuous_subsamples(rot))
    np.testing.assert_allclose(blurred, continuous, atol=1 / 255 + 1e-6)
    assert np.abs(blurred - read_image(files / "sharp.png")).mean() > 0.02  # visibly blurred


def test_noise_only_when_asked_and_reproducible(files):
    synth(files, "yaw.csv", out="a.png")
    synth(files, "yaw.csv", out="b.png")
    synth(files, "yaw.csv", "--noise", "0.05", "--seed", "3", out="c.png")
    synth(files, "yaw.csv", "--noise", "0.05", "--seed", "3", out="d.png")
    a, b, c, d = (read_image(files / n) for n in ("a.png", "b.png", "c.png", "d.png"))
    assert np.array_equal(a, b) and np.array_equal(c, d)
    assert 0.01 < np.std(c - a) < 0.2


def test_noise_of_a_gray_image_is_the_level_asked(files):
    # Linear mid-grey 0.18, where the level is the noise std (noise_params), as a gray file.
    grey = np.full((64, 96), round(float(linear_to_srgb(np.float32(0.18))) * 65535), np.uint16)
    assert cv2.imwrite(str(files / "grey.png"), grey)
    result = runner.invoke(app, ["synth", "image", str(files / "grey.png"), "--gyro",
                                 str(files / "still.csv"), "--camera", str(files / "camera.json"),
                                 "--start", "0.4", "--exposure", "0.03", "--noise", "0.05",
                                 "-o", str(files / "noisy.png")])
    assert result.exit_code == 0, result.output
    stored = cv2.imread(str(files / "noisy.png"), cv2.IMREAD_UNCHANGED)
    assert stored.shape == (64, 96) and stored.dtype == np.uint16
    linear = srgb_to_linear(stored / 65535.0)
    assert np.std(linear) == pytest.approx(0.05, rel=0.05)
    assert np.mean(linear) == pytest.approx(0.18, abs=0.003)


def test_clips_refuse_an_output_inside_their_images(tmp_path):
    write_image(tmp_path / "a.png", dead_leaves(96, np.random.default_rng(0)))
    result = runner.invoke(app, ["synth", "clips", "-n", "1", "-o", str(tmp_path / "out"),
                                 "--images", str(tmp_path), "--size", "48x32"])
    assert result.exit_code == 2 and "lies inside --images" in result.output
    assert not (tmp_path / "out").exists()


def test_jpeg_only_when_asked(files):
    synth(files, "yaw.csv", out="a.png")
    assert synth(files, "yaw.csv", "--jpeg", "90", "--kernels", str(files / "k.npz"),
                 out="j90.png").exit_code == 0
    synth(files, "yaw.csv", "--jpeg", "20", out="j20.png")
    a, j90, j20 = (read_image(files / n) for n in ("a.png", "j90.png", "j20.png"))
    # Dead leaves are all edges, which 4:2:0 chroma subsampling smears at any quality.
    assert 0.002 < np.abs(j90 - a).mean() < np.abs(j20 - a).mean() < 0.2
    assert json.loads(str(np.load(files / "k.npz")["meta"]))["jpeg"] == 90


def test_gyro_not_covering_the_exposure_is_refused(files):
    result = runner.invoke(app, ["synth", "image", str(files / "sharp.png"), "--gyro",
                                 str(files / "yaw.csv"), "--camera", str(files / "camera.json"),
                                 "--start", "0.99", "--exposure", "0.03", "-o",
                                 str(files / "x.png")])
    assert result.exit_code == 2 and "yaw.csv" in result.output and "cover" in result.output
    assert "check --start" in result.output
    assert not (files / "x.png").exists()


@pytest.mark.parametrize("command", ["synth", "deblur"])
def test_an_exposure_in_ms_is_named(files, command):
    start = ["--start", "0.4"] if command == "synth" else ["--frame-time", "0.4"]
    result = runner.invoke(app, [command, "image", str(files / "sharp.png"), "--gyro",
                                 str(files / "yaw.csv"), "--camera", str(files / "camera.json"),
                                 *start, "--exposure", "30", "-o", str(files / "x.png")])
    assert result.exit_code == 2 and result.output.strip().splitlines() == [
        "error: --exposure 30: seconds, more than 0, at most 1 (is it in ms?)"]
    assert not (files / "x.png").exists()


@pytest.mark.parametrize("command", ["synth", "deblur"])
def test_an_image_too_large_for_the_memory_at_its_samples_is_refused_before_the_work(
        files, command, monkeypatch):
    from gyrodeblur import cli

    pages = {"SC_PAGE_SIZE": 4096, "SC_PHYS_PAGES": 2**28 // 4096}  # a machine of 256 MB
    monkeypatch.setattr(cli.os, "sysconf", pages.__getitem__)
    # The lens model's ray of every pixel is itself too large for such a job.
    monkeypatch.setattr(cli, "note_pixels_without_ray", lambda cam: pytest.fail("rays first"))
    start = ["--start", "0.4"] if command == "synth" else ["--frame-time", "0.4", "--method",
                                                              "classic"]
    result = runner.invoke(app, [command, "image", str(files / "sharp.png"), "--gyro",
                                 str(files / "yaw.csv"), "--camera", str(files / "camera.json"),
                                 *start, "--exposure", "0.03", "--samples", "1000",
                                 "-o", str(files / "x.png")])
    # As measured: 50 (blur) and 34 (deconvolution) bytes a pixel and sample.
    need = 96 * 64 * (1000 * (50 if command == "synth" else 34) + 100) / 2**30
    what = "blurring a 96x64 image along T=1000 samples" if command == "synth" else \
        "deblurring a 96x64 image with T=1000 kernel samples"
    assert result.exit_code == 2 and result.output.strip() == (
        f"error: {what} would take {need:.1f} GB of this machine's 0 GB; give fewer --samples")
    assert not (files / "x.png").exists()


def test_clips_too_large_for_the_memory_are_refused_before_anything_is_written(tmp_path):
    result = runner.invoke(app, ["synth", "clips", "-n", "1", "-o", str(tmp_path / "x"),
                                 "--size", "100000x100000"])
    assert result.exit_code == 2 and result.output.startswith(
        "error: --size 100000x100000: a clip of 7 frames and its kernels (T=9) would take "
        "10952.4 GB")
    assert not (tmp_path / "x").exists()
    result = runner.invoke(app, ["synth", "clips", "--count", "1", "-o", str(tmp_path / "x"),
                                 "--frames", "100000"])  # --count: -n by its name
    assert result.exit_code == 2 and "give a smaller --size, fewer --frames or --samples" in \
        " ".join(result.output.split())


def test_a_folder_holding_only_what_a_killed_first_run_left_is_taken_as_new(tmp_path):
    # SIGKILLed while writing its recipe: only the recipe's hidden temporary is there.
    (tmp_path / "c" / ".synth.json.a1b2c3d4.part").mkdir(parents=True)
    (tmp_path / "c" / ".synth.json.a1b2c3d4.part" / "synth.json").write_text("{")
    result = runner.invoke(app, ["synth", "clips", "-n", "1", "-o", str(tmp_path / "c"),
                                 "--size", "48x32", "--frames", "2"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["clip_000000", "synth.json"]
    # What a run killed while it wrote clip 5 left goes when the next asks for fewer clips.
    (tmp_path / "c" / ".clip_000005.a1b2c3d4.part" / "blurred").mkdir(parents=True)
    result = runner.invoke(app, ["synth", "clips", "-n", "1", "-o", str(tmp_path / "c"),
                                 "--size", "48x32", "--frames", "2"])
    assert result.exit_code == 0 and "0 new clips" in result.output
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["clip_000000", "synth.json"]
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / ".notes").write_text("a user's hidden file is not a temporary")
    result = runner.invoke(app, ["synth", "clips", "-n", "1", "-o", str(tmp_path / "mine")])
    assert result.exit_code == 2 and "not empty and not made by" in result.output


def test_clips_resume_and_refuse_other_settings(tmp_path):
    args = ["synth", "clips", "-o", str(tmp_path), "--size", "48x32", "--frames", "2"]
    first = runner.invoke(app, [*args, "-n", "2"])
    assert first.exit_code == 0, first.output
    stamp = (tmp_path / "clip_000000" / "gyro.csv").stat().st_mtime_ns
    second = runner.invoke(app, [*args, "-n", "3"])
    assert second.exit_code == 0 and "1 new clips" in second.output
    # Not a terminal (a log file): plain progress lines, the first and the last.
    assert "clips: 1/3 (33%)" in second.output and "clips: 3/3 (100%)" in second.output
    assert (tmp_path / "clip_000000" / "gyro.csv").stat().st_mtime_ns == stamp
    fewer = runner.invoke(app, [*args, "-n", "1"])
    assert "0 new clips" in fewer.output and "(1 already there; 2 more, beyond -n 1, left as " \
        "they are)" in " ".join(fewer.output.split())
    other = runner.invoke(app, [*args, "-n", "3", "--seed", "9"])
    assert other.exit_code == 2 and "other settings (changed: --seed 0 there)" in other.output
    other = runner.invoke(app, [*args, "-n", "3", "--samples", "5"])
    assert other.exit_code == 2 and "(changed: --samples 9 there)" in other.output
    other = runner.invoke(app, [*args, "-n", "3", "--jpeg", "90"])
    assert other.exit_code == 2 and "(changed: --jpeg (off) there)" in other.output
    # Settings that no option sets (another version's defaults) are named as such.
    recipe = json.loads((tmp_path / "synth.json").read_text())
    recipe["settings"] = recipe["settings"].replace("real_gain=(", "real_gain=(0.5, ")
    (tmp_path / "synth.json").write_text(json.dumps(recipe))
    other = runner.invoke(app, [*args, "-n", "3"])
    assert other.exit_code == 2 and "(changed: sampler settings that no option sets " \
        "(another version of gyrodeblur?))" in " ".join(other.output.split())


def test_clips_into_a_folder_another_run_writes_are_refused(tmp_path):
    from gyrodeblur.fileio import hold_folder

    args = ["synth", "clips", "-o", str(tmp_path / "out"), "--size", "48x32", "--frames", "2"]
    assert runner.invoke(app, [*args, "-n", "1"]).exit_code == 0
    before = sorted(p.name for p in (tmp_path / "out").iterdir())
    with hold_folder(tmp_path / "out"):  # as another run resuming it does
        result = runner.invoke(app, [*args, "-n", "2"])
    assert result.exit_code == 2 and "another run is using it" in result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == before


def test_clips_do_not_resume_from_other_images(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for i in range(2):
        write_image(images / f"{i}.png", dead_leaves(96, np.random.default_rng(i)))
    args = ["synth", "clips", "-o", str(tmp_path / "clips"), "--images", str(images),
            "--size", "48x32", "--frames", "2", "-n", "1"]
    assert runner.invoke(app, args).exit_code == 0
    # Clip 1 of a resumed run would be drawn from three images, clip 0 from two.
    write_image(images / "2.png", dead_leaves(96, np.random.default_rng(2)))
    again = runner.invoke(app, [*args[:-1], "2"])
    assert again.exit_code == 2, again.output
    assert "(changed: files in --images)" in " ".join(again.output.split())
    assert sorted(p.name for p in (tmp_path / "clips").iterdir()) == ["clip_000000",
                                                                      "synth.json"]


def test_clips_refuse_bad_images_and_foreign_folders_before_writing(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    write_image(images / "a.png", dead_leaves(96, np.random.default_rng(0)))
    (images / "b.png").write_text("not an image")
    args = ["synth", "clips", "--size", "48x32", "--frames", "2", "-n", "2"]
    bad = runner.invoke(app, [*args, "--images", str(images), "-o", str(tmp_path / "c")])
    assert bad.exit_code == 2 and "b.png: corrupt or unreadable image" in bad.output
    assert not (tmp_path / "c").exists()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    foreign = runner.invoke(app, [*args, "-o", str(tmp_path / "mine")])
    assert foreign.exit_code == 2 and "no synth.json" in " ".join(foreign.output.split())
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]
    (tmp_path / "mine" / "synth.json").write_text("[1, 2]")
    odd = runner.invoke(app, [*args, "-o", str(tmp_path / "mine")])
    assert odd.exit_code == 2 and "synth.json: unreadable recipe" in odd.output


@pytest.mark.parametrize(("extra", "out", "message"), [
    (["--seed", "-1"], "x.png", "Invalid value for '--seed'"),
    (["--saturation", "nan"], "x.png", "Invalid value for '--saturation'"),
    (["--noise", "inf"], "x.png", "Invalid value for '--noise'"),
    (["--saturation", "1e39"], "x.png", "Invalid value for '--saturation'"),
    (["--noise", "1e200"], "x.png", "Invalid value for '--noise'"),
    (["--samples", "99999999999"], "x.png", "Invalid value for '--samples'"),
    (["--kernels", "k.txt"], "x.png", "k.txt: kernels are written as an .npz file"),
    ([], "sharp.png", "would overwrite an input"),
])
def test_bad_options_are_refused_and_write_nothing(files, extra, out, message):
    extra = [str(files / e) if e.endswith(".txt") else e for e in extra]
    before = sorted(p.name for p in files.iterdir())
    result = synth(files, "yaw.csv", *extra, out=out)
    assert result.exit_code == 2 and message in " ".join(result.output.split()), result.output
    assert sorted(p.name for p in files.iterdir()) == before


def test_a_blur_longer_than_the_image_is_refused(files):
    # 1.5 rad/s for 0.9 s turns the camera 77 degrees: a blur of hundreds of pixels, with
    # rays turned behind the camera (an exposure in ms given as seconds looks like this).
    result = runner.invoke(app, ["synth", "image", str(files / "sharp.png"), "--gyro",
                                 str(files / "yaw.csv"), "--camera", str(files / "camera.json"),
                                 "--start", "0.05", "--exposure", "0.9", "-o",
                                 str(files / "out.png")])
    assert result.exit_code == 2
    assert "yaw.csv: the gyro moves pixels" in " ".join(result.output.split())
    assert "during the exposure, more than the 96x64 image: is --exposure in seconds" in \
        " ".join(result.output.split())
    assert not (files / "out.png").exists()


def test_kernels_are_not_left_when_the_image_cannot_be_written(files, monkeypatch):
    from gyrodeblur.pipelines import synth as synth_module

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device", "blurred.png")

    monkeypatch.setattr(synth_module, "write_image", fail)
    result = synth(files, "yaw.csv", "--kernels", str(files / "k.npz"))
    assert result.exit_code == 1 and "No space left on device" in result.output
    assert not (files / "k.npz").exists() and not (files / "blurred.png").exists()


def test_clips_interrupted_before_the_first_leave_the_folder_as_it_was(tmp_path, monkeypatch):
    from gyrodeblur.synthesis import sampler

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sampler, "ClipSampler", interrupted)
    (tmp_path / "empty").mkdir()
    for out in ("empty", "new"):
        result = runner.invoke(app, ["synth", "clips", "-n", "1", "-o", str(tmp_path / out),
                                     "--size", "48x32", "--frames", "2"])
        assert result.exit_code == 130 and "no output was left half-written" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]
    assert not list((tmp_path / "empty").iterdir())


def test_clips_from_an_unreadable_image_leave_no_folder(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.png").write_bytes(b"not a png")
    result = runner.invoke(app, ["synth", "clips", "-n", "1", "-o", str(tmp_path / "out"),
                                 "--images", str(tmp_path / "images"), "--size", "48x32"])
    assert result.exit_code == 2 and "a.png" in result.output
    assert not (tmp_path / "out").exists()


def test_pixels_without_a_ray_stay_sharp_and_their_kernels_nan(files):
    # fx 20 on 96 px: the corners lie past 90 degrees off axis, where a fisheye has no ray.
    fisheye = Camera(width=96, height=64, fx=20.0, fy=20.0, cx=47.5, cy=31.5,
                     distortion_model="fisheye", distortion=(0.0, 0.0, 0.0, 0.0))
    save_camera(fisheye, files / "camera.json")
    result = synth(files, "yaw.csv", "--kernels", str(files / "k.npz"))
    assert result.exit_code == 0, result.output
    assert "have no ray through the lens model" in result.output
    rot = np.load(files / "k.npz")["rot"][0]
    no_ray = np.isnan(rot).any(axis=(0, 1))
    assert no_ray[0, 0] and not no_ray[32, 48]
    blurred, sharp = read_image(files / "blurred.png"), read_image(files / "sharp.png")
    # Away from the rays' edge (where blurred neighbours' taps reach in), the corner is as shot.
    np.testing.assert_allclose(blurred[:3, :3], sharp[:3, :3], atol=1 / 255 + 1e-6)


def test_running_out_of_memory_is_one_line(files, monkeypatch):
    from gyrodeblur.pipelines import synth as synth_module

    def allocate(*args, **kwargs):
        return np.empty((1 << 55,), np.float32)  # numpy refuses it, saying how much

    monkeypatch.setattr(synth_module, "rotation_trajectories", allocate)
    result = synth(files, "yaw.csv")
    assert result.exit_code == 1
    assert result.output.startswith("error: out of memory (Unable to allocate")
    assert len(result.output.strip().splitlines()) == 1


def test_a_folder_given_as_the_image_is_named_so(files):
    result = runner.invoke(app, ["synth", "image", str(files), "--gyro", str(files / "yaw.csv"),
                                 "--camera", str(files / "camera.json"), "--start", "0.4",
                                 "--exposure", "0.03", "-o", str(files / "b.png")])
    assert result.exit_code == 2 and f"{files}: a folder, not an image" in result.output


def test_an_image_of_another_aspect_ratio_is_told_the_crop_that_fits(files):
    write_image(files / "square.png", dead_leaves(80, np.random.default_rng(1)))
    result = runner.invoke(app, ["synth", "image", str(files / "square.png"), "--gyro",
                                 str(files / "yaw.csv"), "--camera", str(files / "camera.json"),
                                 "--start", "0.4", "--exposure", "0.03", "-o",
                                 str(files / "x.png")])
    # 96x64 is 3:2: an 80x80 image holds 80 columns of 53 rows (80 * 64 / 96 = 53.3).
    assert result.exit_code == 2 and "square.png" in result.output
    assert "crop the image to 80x53" in result.output
    assert not (files / "x.png").exists()


@pytest.mark.parametrize("suffix", [".webp", ".tif", ".bmp"])
def test_an_orientation_the_output_format_would_apply_is_refused(files, suffix):
    # Those formats get the pixels turned upright, off the grid of the kernels and the sharp
    # image as read; JPEG and PNG keep the pixels as stored and the orientation in EXIF.
    from PIL import Image

    image = Image.open(files / "sharp.png")
    exif = image.getexif()
    exif[0x0112] = 6
    image.save(files / "phone.jpg", exif=exif.tobytes(), quality=95)
    common = ["synth", "image", str(files / "phone.jpg"), "--gyro", str(files / "yaw.csv"),
              "--camera", str(files / "camera.json"), "--start", "0.4", "--exposure", "0.03",
              "--kernels", str(files / "k.npz"), "-o"]
    result = runner.invoke(app, [*common, str(files / f"b{suffix}")])
    assert result.exit_code == 2 and f"b{suffix}: {suffix} holds no EXIF orientation" in \
        result.output
    assert not (files / f"b{suffix}").exists() and not (files / "k.npz").exists()
    assert runner.invoke(app, [*common, str(files / "b.png")]).exit_code == 0
    with np.load(files / "k.npz") as npz:
        assert npz["rot"].shape[-2:] == read_image(files / "b.png").shape[:2] == (64, 96)


def test_clips_draw_real_motion_from_the_gyro_logs_given(tmp_path):
    t = np.arange(0.0, 3.0, 0.0025)
    write_csv(GyroLog(t, np.tile([0.2, -0.1, 0.05], (len(t), 1))), tmp_path / "mine.csv")
    write_csv(GyroLog(t[:40], np.zeros((40, 3))), tmp_path / "short.csv")
    args = ["synth", "clips", "-o", str(tmp_path / "out"), "--size", "48x32", "--frames", "2",
            "-n", "3", "--gyro", str(tmp_path / "mine.csv")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    recipe = json.loads((tmp_path / "out" / "synth.json").read_text())
    assert recipe["gyro"] == [str(tmp_path / "mine.csv")]
    motions = [json.loads(str(np.load(tmp_path / "out" / f"clip_00000{i}" / "kernels.npz")
                              ["meta"]))["motion"] for i in range(3)]
    assert {m.get("trace") for m in motions} == {str(tmp_path / "mine.csv"), None}
    other = runner.invoke(app, args[:-2])
    assert other.exit_code == 2 and f"(changed:--gyro{tmp_path / 'mine.csv'}there);" in \
        "".join(other.output.split())
    other = runner.invoke(app, [*args, "--gyro-unit", "rad"])
    assert other.exit_code == 2 and "(changed: --gyro-unit auto there)" in other.output
    write_csv(GyroLog(t, np.tile([0.3, -0.1, 0.05], (len(t), 1))), tmp_path / "mine.csv")
    other = runner.invoke(app, args)
    assert other.exit_code == 2 and "(changed: files of --gyro)" in other.output
    short = runner.invoke(app, [*args[:-2], "-o", str(tmp_path / "new"), "--gyro",
                                str(tmp_path / "short.csv")])
    assert short.exit_code == 2 and "short.csv: its longest stretch without gaps, 0.10 s" in \
        " ".join(short.output.split())
    assert not (tmp_path / "new").exists()


def test_clips_refuse_a_gyro_unit_without_gyro_logs_to_read_it_in(tmp_path):
    for unit in ("deg", "bogus"):
        result = runner.invoke(app, ["synth", "clips", "-o", str(tmp_path / "out"), "--size",
                                     "48x32", "-n", "1", "--gyro-unit", unit])
        assert result.exit_code == 2 and result.output.strip() == (
            f"error: --gyro-unit {unit}: for --gyro logs (the bundled traces are in rad/s)")
    assert not (tmp_path / "out").exists()
