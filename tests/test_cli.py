import errno
import json

import av
import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from gyrodeblur import fileio
from gyrodeblur.cli import app
from gyrodeblur.geometry.camera import Camera, save_camera
from gyrodeblur.geometry.gyro import GyroLog, read_gyro, write_csv
from gyrodeblur.geometry.rotation import integrate

W, H, FX = 160, 120, 150.0
CAM = Camera(width=W, height=H, fx=FX, fy=FX, cx=79.5, cy=59.5)
YAW = 0.4  # rad/s about the camera y axis
FPS, EXPOSURE = 10.0, 0.04
SHIFT = (3.0, -2.0)  # px per frame of image translation the gyro cannot see

runner = CliRunner()


def write_frames_csv(path, n, header="frame,t_start,exposure"):
    rows = [f"{i + 1},{0.5 + i / FPS:.6f},{EXPOSURE}" for i in range(n)]
    path.write_text(header + "\n" + "\n".join(rows) + "\n")


def texture(seed=0):
    rng = np.random.default_rng(seed)
    noise = rng.normal(0, 1, (3 * H, 3 * W)).astype(np.float32)
    img = sum(cv2.GaussianBlur(noise, (0, 0), s) for s in (1.5, 4.0, 9.0))
    return cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)


def frame_warps(n):
    """Warps from the big texture to each frame: the constant yaw plus a shift per frame."""
    orientation = integrate(np.array([0.0, 3.0]), np.array([[0.0, YAW, 0.0]] * 2))
    to_big = np.array([[1, 0, W], [0, 1, H], [0, 0, 1.0]])
    t_mid = [0.5 + i / FPS + EXPOSURE / 2 for i in range(n)]
    warps = []
    for i in range(n):
        Hrot = CAM.K @ orientation.relative(t_mid[i], t_mid[0]) @ CAM.K_inv
        shift = np.array([[1, 0, SHIFT[0] * i], [0, 1, SHIFT[1] * i], [0, 0, 1]])
        warps.append(shift @ Hrot @ np.linalg.inv(to_big))
    return warps, orientation, t_mid


def render_frames(n):
    big = texture()
    return [cv2.cvtColor(cv2.warpPerspective(big, M, (W, H), flags=cv2.INTER_CUBIC),
                         cv2.COLOR_GRAY2RGB) for M in frame_warps(n)[0]]


def true_tau(f, n):
    """Exact px/s of frame f, averaged over its neighbours: the displacement ``r`` in frame
    f's own axes that the gyro's turn takes to the true target, ``true(p) = G(p + r)``."""
    warps, orientation, t_mid = frame_warps(n)
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float64)
    p = np.stack([xs, ys], -1).reshape(1, -1, 2)
    taus = []
    for g in (f - 1, f + 1):
        if 0 <= g < n:
            true = cv2.perspectiveTransform(p, warps[g] @ np.linalg.inv(warps[f]))
            back = cv2.perspectiveTransform(
                true, CAM.K @ orientation.relative(t_mid[f], t_mid[g]) @ CAM.K_inv)
            taus.append((back - p).reshape(H, W, 2) / (t_mid[g] - t_mid[f]))
    return np.mean(taus, axis=0)


@pytest.fixture
def clip(tmp_path):
    """Camera, gyro, frames CSV and a folder of 4 frames."""
    save_camera(CAM, tmp_path / "camera.json")
    t = np.arange(0.0, 2.0, 0.005)
    write_csv(GyroLog(t, np.tile([0.0, YAW, 0.0], (len(t), 1))), tmp_path / "gyro.csv")
    write_frames_csv(tmp_path / "frames.csv", 4)
    (tmp_path / "frames").mkdir()
    for i, frame in enumerate(render_frames(4)):
        cv2.imwrite(str(tmp_path / "frames" / f"{i:04d}.png"), frame)
    return tmp_path


def kernels(clip, *extra, frames="frames", gyro="gyro.csv", frames_csv="frames.csv"):
    args = ["kernels"] + ([str(clip / frames)] if frames else [])
    args += ["--gyro", str(clip / gyro), "--camera", str(clip / "camera.json"),
             *(["--frames-csv", str(clip / frames_csv)] if frames_csv else []),
             "-o", str(clip / "out.npz"), *extra]
    return runner.invoke(app, args)


def test_a_given_bias_is_what_the_gyro_reads_beyond_the_motion(clip):
    # The clip's gyro is a constant yaw: given as the bias, nothing turns; a bias of 0.05 rad/s
    # on pitch added to the log and given back leaves the kernels as they were.
    result = kernels(clip, "--no-translation", "--size", "80x60", "--bias", f"0,{YAW},0",
                     frames=None)
    assert result.exit_code == 0, result.output
    assert np.abs(np.load(clip / "out.npz")["rot"]).max() < 1e-6
    assert kernels(clip, "--no-translation", "--size", "80x60", frames=None).exit_code == 0
    plain = np.load(clip / "out.npz")["rot"]
    log = read_gyro(clip / "gyro.csv")
    write_csv(GyroLog(log.t, log.w + [0.05, 0.0, 0.0]), clip / "biased.csv")
    result = kernels(clip, "--no-translation", "--size", "80x60", "--bias", "0.05,0,0",
                     frames=None, gyro="biased.csv")
    assert result.exit_code == 0, result.output
    np.testing.assert_allclose(np.load(clip / "out.npz")["rot"], plain, atol=1e-4)


def test_an_estimated_bias_is_said_and_recorded_as_numbers(clip):
    # A gyro at rest reading a constant bias: estimated exactly, all of it removed.
    log = read_gyro(clip / "gyro.csv")
    write_csv(GyroLog(log.t, np.tile([0.01, -0.02, 0.005], (len(log.t), 1))), clip / "rest.csv")
    result = kernels(clip, "--no-translation", "--size", "80x60", "--bias", "auto",
                     frames=None, gyro="rest.csv")
    assert result.exit_code == 0, result.output
    assert "gyro bias estimated on the still parts of rest.csv: --bias 0.01,-0.02,0.005 " \
           "(rad/s)" in " ".join(result.output.split())
    npz = np.load(clip / "out.npz")
    assert np.abs(npz["rot"]).max() < 1e-6
    np.testing.assert_allclose(json.loads(str(npz["meta"]))["bias_removed"],
                               [0.01, -0.02, 0.005], atol=1e-12)


def test_a_rad_log_read_as_degrees_is_noted(clip):
    # The clip's gyro turns at 0.4 rad/s: read as deg/s, 0.4 deg/s, a tripod's at most.
    result = kernels(clip, "--no-translation", "--size", "80x60", "--gyro-unit", "deg",
                     frames=None)
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "gyro.csv read in deg/s (--gyro-unit deg) turns at most 0.4 deg/s (99th " \
           "percentile): if it is in rad/s, leave --gyro-unit auto" in said
    assert "--gyro-unit" not in kernels(clip, "--no-translation", "--size", "80x60",
                                        frames=None).output


def test_rotation_only_matches_closed_form(clip):
    result = kernels(clip, "--no-translation", "--size", "80x60", "--samples", "5", frames=None)
    assert result.exit_code == 0, result.output
    npz = np.load(clip / "out.npz")
    assert npz["rot"].shape == (4, 5, 2, 60, 80) and npz["rot"].dtype == np.float32
    assert npz["times"].shape == (4, 5, 60) and npz["times"].dtype == np.float64
    assert npz["mask"].shape == (4, 60, 80) and npz["mask"].dtype == bool
    assert "tran" not in npz.files
    meta = json.loads(str(npz["meta"]))
    assert meta["camera"]["width"] == 80 and meta["samples"] == 5 and meta["gyro_unit"] == "rad"
    fx = meta["camera"]["fx"]
    assert fx == pytest.approx(FX / 2)
    dt = EXPOSURE * (np.arange(5) / 4 - 0.5)
    # The half-size principal point is (39.5, 29.5): pixel (40, 30) lies 0.5 px right of it, at
    # angle a = atan(0.5 / fx), and the yaw moves it by fx tan(a + w dt) - 0.5.
    assert (meta["camera"]["cx"], meta["camera"]["cy"]) == (39.5, 29.5)
    expected = fx * np.tan(np.arctan(0.5 / fx) + YAW * dt) - 0.5
    np.testing.assert_allclose(npz["rot"][2, :, 0, 30, 40], expected, atol=2e-3)


def test_translation_from_frames_recovers_the_image_shift(clip):
    result = kernels(clip, "--samples", "3", "--plot", str(clip / "plots"))
    assert result.exit_code == 0, result.output
    npz = np.load(clip / "out.npz")
    tran, mask = npz["tran"], npz["mask"]
    assert tran.shape == npz["rot"].shape == (4, 3, 2, H, W)
    # traj_tran[0] - traj_tran[T-1] = exposure * tau (about SHIFT * FPS px/s): the point seen
    # at p at the end of the exposure was behind it, against the motion, at mid-exposure.
    inner = (slice(20, -20), slice(20, -20))
    for f in range(4):
        extent = np.moveaxis(tran[f, 0] - tran[f, -1], 0, -1)[inner]
        expected = EXPOSURE * true_tau(f, 4)[inner]
        ok = mask[f][inner]
        assert ok.mean() > 0.8
        assert np.abs(np.median(expected[..., 0]) - EXPOSURE * SHIFT[0] * FPS) < 0.05
        error = np.linalg.norm(extent - expected, axis=-1)[ok]
        # 0.025 px of extent is 0.06 px of flow over a frame interval: DIS accuracy here.
        assert np.median(error) < 0.025, np.median(error)
    assert sorted(p.name for p in (clip / "plots").iterdir()) == [
        f"kernels_{i:06d}.png" for i in range(1, 5)]


@pytest.mark.parametrize(("override", "spread"), [([], 0.012 * (H - 1) / H),
                                                   (["--readout-time", "0"], 0.0)])
def test_readout_time_overrides_a_gcsv_readout_even_with_a_global_shutter(clip, override,
                                                                          spread):
    (clip / "gyro.csv").write_text(
        "GYROFLOW IMU LOG\norientation,yxz\nframe_readout_time,12\ntscale,0.01\n"
        "t,gx,gy,gz\n" + "".join(f"{i},0,0.4,0\n" for i in range(300)))
    result = kernels(clip, "--no-translation", *override, frames=None)
    assert result.exit_code == 0, result.output
    times = np.load(clip / "out.npz")["times"]
    np.testing.assert_allclose(times[0, 0, -1] - times[0, 0, 0], spread, atol=1e-9)


def test_frames_the_frames_csv_does_not_time_are_noted(clip):
    import shutil

    shutil.copy(clip / "frames" / "0001.png", clip / "frames" / "0001 copy.png")  # a stray
    result = kernels(clip, "--no-translation")
    assert result.exit_code == 0, result.output
    assert "frames.csv times frames up to 4, the footage has 5: 1 frame after it left out" \
        in result.output
    ranged = kernels(clip, "--no-translation", "--range", "2:3")  # a range says it too
    assert ranged.exit_code == 0 and "1 frame after it left out" in ranged.output


def test_a_range_does_not_hide_timing_of_more_frames_than_the_footage_has(clip):
    # Frames 2 and 4 copied out alone: with the whole clip's times, frame 1 is 0002.png.
    for name in ("0001.png", "0003.png"):
        (clip / "frames" / name).unlink()
    assert kernels(clip, "--no-translation").exit_code == 2
    result = kernels(clip, "--no-translation", "--range", "1:2")
    assert result.exit_code == 0, result.output  # a video cut short is timed right so
    assert "frames.csv times frames up to 4, the footage has 2: its frames are numbered by " \
           "their place in it (frames copied out of a longer clip would each get another's " \
           "times)" in " ".join(result.output.split())


def test_frames_the_frames_csv_skips_are_noted(clip):
    rows = (clip / "frames.csv").read_text().splitlines()
    (clip / "gap.csv").write_text("\n".join(rows[:2] + rows[3:]) + "\n")  # no frame 2
    result = kernels(clip, "--no-translation", frames_csv="gap.csv")
    assert result.exit_code == 0, result.output
    assert "gap.csv has no row for frame 2 of the footage: left out" in result.output
    np.testing.assert_array_equal(np.load(clip / "out.npz")["frames"], [1, 3, 4])


def test_exposure_is_refused_for_a_gyrovd_folder_whose_names_time_its_frames(clip):
    (clip / "seq" / "blur").mkdir(parents=True)
    for n in range(2):
        start = 1_000_000_000 + n * 100_000_000
        name = f"{n + 1:06d}_{start}_{start}_{start + 40_000_000}_blur.png"
        cv2.imwrite(str(clip / "seq" / "blur" / name), np.zeros((120, 160, 3), np.uint8))
    result = kernels(clip, "--no-translation", "--exposure", "0.01", frames="seq",
                     frames_csv=None)
    assert result.exit_code == 2
    assert "--exposure is for a video without --frames-csv (the names of" in result.output


def test_a_frames_csv_reads_comments_and_names_in_any_case_as_a_gyro_csv_does(clip):
    write_frames_csv(clip / "app.csv", 4, header="# exported by the app\nFrame,T_Start,Exposure")
    expected = kernels(clip, "--no-translation", "--size", "80x60", frames=None)
    assert expected.exit_code == 0, expected.output
    plain = np.load(clip / "out.npz")["times"]
    result = kernels(clip, "--no-translation", "--size", "80x60", frames=None,
                     frames_csv="app.csv")
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(np.load(clip / "out.npz")["times"], plain)


def test_paths_are_printed_as_they_are_not_read_as_markup(clip):
    # "[edited]" would be a style, "[/...]" an error after the work.
    out = clip / "take [/final]" / "photo [edited].npz"
    result = kernels(clip, "--no-translation", "--size", "80x60", "-o", str(out), frames=None)
    assert result.exit_code == 0 and f"wrote {out} (4 frames" in result.output, result.output
    again = kernels(clip, "--no-translation", "--size", "80x60", "-o", str(out / "x.npz"),
                    frames=None)
    assert again.exit_code == 2 and f"error: {out}/x.npz: cannot be created: {out} is not a " \
        "folder" in again.output, again.output


def test_frame_range_without_footage_names_the_timed_frames(clip):
    # Only frames 1, 3 and 5 are timed: "numbered 1..5" would promise frames 2 and 4.
    lines = (clip / "frames.csv").read_text().splitlines()
    (clip / "gaps.csv").write_text("\n".join([lines[0], lines[1], lines[3], "5,0.9,0.02"]))
    result = kernels(clip, "--no-translation", "--size", "80x60", "--range", "2:6",
                     frames=None, frames_csv="gaps.csv")
    assert result.exit_code == 2 and "--range 2:6: " in result.output and \
        "gaps.csv times frames 1, 3, 5" in result.output, result.output
    result = kernels(clip, "--no-translation", "--size", "80x60", "--range", "2:5",
                     frames=None, frames_csv="gaps.csv")
    assert result.exit_code == 0 and np.load(clip / "out.npz")["frames"].tolist() == [3, 5]


def test_video_input_and_frame_range(clip):
    with av.open(str(clip / "clip.mp4"), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.options = {"crf": "0"}
        for frame in render_frames(4):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    result = kernels(clip, "--range", "2:3", "--samples", "3", frames="clip.mp4")
    assert result.exit_code == 0, result.output
    npz = np.load(clip / "out.npz")
    assert npz["frames"].tolist() == [2, 3] and npz["tran"].shape[0] == 2
    beyond = kernels(clip, "--range", "2:9", "-o", str(clip / "beyond.npz"), frames="clip.mp4")
    assert beyond.exit_code == 2 and "numbered 1..4" in beyond.output, beyond.output
    long_readout = kernels(clip, "--readout-time", "0.5", frames="clip.mp4")
    assert long_readout.exit_code == 2 and "error: --readout-time: readout time 0.5 s" in \
        long_readout.output
    backwards = kernels(clip, "--range", "3:2", frames="clip.mp4")
    assert backwards.exit_code == 2 and "first frame is after the last" in backwards.output
    extent = np.moveaxis(npz["tran"][0, 0] - npz["tran"][0, -1], 0, -1)[20:-20, 20:-20]
    expected = EXPOSURE * true_tau(1, 4)[20:-20, 20:-20]
    assert np.median(np.linalg.norm(extent - expected, axis=-1)) < 0.03


def bad_gyro(text):
    return lambda clip: (clip / "gyro.csv").write_text(text)


BAD_INPUTS = {
    "gyro NaN": (bad_gyro("t,wx,wy,wz\n0,0,0,0\n1,nan,0,0\n2,0,0,0\n"), "gyro.csv", "NaN"),
    "gyro unsorted": (bad_gyro("t,wx,wy,wz\n0,0,0,0\n2,0,0,0\n1,0,0,0\n3,0,0,0\n"),
                      "gyro.csv", "increasing"),
    "gyro duplicated": (bad_gyro("t,wx,wy,wz\n0,0,0,0\n1,0,0,0\n1,0,0,0\n3,0,0,0\n"),
                        "gyro.csv", "duplicate"),
    "gyro missing column": (bad_gyro("t,wx,wy\n0,0,0\n1,0,0\n"), "gyro.csv", "wz"),
    "gyro in deg/s": (bad_gyro("t,wx,wy,wz\n" + "".join(f"{i / 100},90,-120,60\n"
                                                        for i in range(300))),
                      "gyro.csv", "deg/s"),
    "gyro not covering frames": (bad_gyro("t,wx,wy,wz\n" + "".join(
        f"{i / 100},0,0,0\n" for i in range(61))), "gyro.csv", "cover"),
    "gyro with a hole in the frames": (bad_gyro("t,wx,wy,wz\n" + "".join(
        f"{i / 100},0,0,0\n" for i in range(300) if not 60 <= i < 70)),
        "gyro.csv", "no samples from 0.590000 to 0.700000 s (110 ms)"),
    "gcsv mirroring the axes": (bad_gyro(
        "GYROFLOW IMU LOG\nversion,1.3\nid,x\ntscale,0.01\ngscale,1\nt,gx,gy,gz\n" + "".join(
            f"{i},0,0,0\n" for i in range(300))), "gyro.csv", "mirrors the axes"),
    "frames CSV missing column": (lambda c: (c / "frames.csv").write_text("frame,t\n1,0.5\n"),
                                  "frames.csv", "t_start"),
    "frame of another size": (lambda c: cv2.imwrite(str(c / "frames" / "0003.png"),
                                                    np.zeros((H, W + 2, 3), np.uint8)),
                              "frames", "not 160x120"),
    "camera of another aspect": (lambda c: save_camera(CAM.replace(width=W, height=W),
                                                       c / "camera.json"),
                                 "aspect"),
    "exposure in ms": (lambda c: (c / "frames.csv").write_text(
        "frame,t_start,exposure\n1,0.5,40\n2,0.6,40\n3,0.7,40\n4,0.8,40\n"),
        "frames.csv", "exposure 40 s, over 1 s: no video frame's; is it in seconds (not ms, "
                      "us or ns)?"),
    "frame times in ms": (lambda c: (c / "frames.csv").write_text(
        "frame,t_start,exposure\n1,500,0.01\n2,600,0.01\n3,700,0.01\n4,800,0.01\n"),
        "frames.csv", "frames 100 s apart (median): is t_start in seconds (not ms, us or ns)?"),
    "readout in ms": (lambda c: (c / "camera.json").write_text(json.dumps(
        {**json.loads((c / "camera.json").read_text()), "readout_time": 33})),
        "camera.json", "readout_time 33"),
    "readout longer than a frame": (lambda c: save_camera(CAM.replace(readout_time=0.2),
                                                          c / "camera.json"),
                                    "camera.json", "readout time 0.2 s is longer"),
    "negative frame numbers": (lambda c: (c / "frames.csv").write_text(
        "frame,t_start,exposure\n-1,0.5,0.04\n0,0.6,0.04\n1,0.7,0.04\n2,0.8,0.04\n"),
        "frames.csv", "negative frame number -1"),
    "frames CSV short row": (lambda c: (c / "frames.csv").write_text(
        "frame,t_start,exposure\n1,0.5,0.04\n2,0.6\n"), "frames.csv", "line 3 has 2 fields"),
    "frames CSV zero exposure after blank lines": (lambda c: (c / "frames.csv").write_text(
        "frame,t_start,exposure\n\n1,0.5,0.04\n\n2,0.6,0\n"), "frames.csv",
        "non-positive exposure at line 5"),
    "frames CSV separated by semicolons": (lambda c: (c / "frames.csv").write_text(
        "frame;t_start;exposure\n1;0.5;0.04\n"), "frames.csv", "fields separated by ';'"),
    "frame number of 20 digits": (lambda c: (c / "frames.csv").write_text(
        "frame,t_start,exposure\n1,0.5,0.04\n99999999999999999999,0.6,0.04\n"),
        "frames.csv", "frame number 100000000000000000000 at line 3 is beyond any footage"),
    "lens profile readout longer than a frame": (lambda c: (c / "camera.json").write_text(
        json.dumps({"calib_dimension": {"w": W, "h": H}, "frame_readout_time": 200,
                    "fisheye_params": {"camera_matrix": [[FX, 0, 79.5], [0, FX, 59.5],
                                                         [0, 0, 1]],
                                       "distortion_coeffs": [0, 0, 0, 0]}})),
        "camera.json", "is longer than the frame interval 0.1 s: is the lens profile for "
                       "this video mode? (frame_readout_time, ms)"),
    "gcsv readout longer than a frame": (lambda c: (
        save_camera(CAM.replace(readout_time=0.0), c / "camera.json"),
        bad_gyro("GYROFLOW IMU LOG\norientation,yxz\nframe_readout_time,200\ntscale,0.01\n"
                 "t,gx,gy,gz\n" + "".join(f"{i},0,0,0\n" for i in range(300)))(c)),
        "gyro.csv", "readout time 0.198333 s is longer than the frame interval 0.1 s: its "
                    "frame_readout_time is in ms"),
}


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_bad_input_gives_one_line_error_and_no_output(clip, name):
    spoil, *expected = BAD_INPUTS[name]
    spoil(clip)
    result = kernels(clip)
    assert result.exit_code == 2
    message = result.output.strip().splitlines()[-1]  # after the progress bar, if it started
    assert message.startswith("error:"), result.output
    for text in expected:
        assert text in message, message
    assert not (clip / "out.npz").exists()
    assert not [p for p in clip.iterdir() if p.name.startswith(".out.npz")]


@pytest.mark.parametrize(("command", "extra", "message"), [
    ("kernels", ["--bias", "nan,0,0"], "--bias 'nan,0,0': expected three finite numbers X,Y,Z"),
    ("kernels", ["--readout-time", "inf"], "--readout-time inf: not a finite number"),
    ("sync", ["--search", "inf"], "--search inf: not a finite number"),
])
def test_infinite_or_nan_options_are_refused_in_one_line(clip, command, extra, message):
    args = [command, str(clip / "frames"), "--gyro", str(clip / "gyro.csv"), "--camera",
            str(clip / "camera.json"), "--frames-csv", str(clip / "frames.csv"), *extra]
    result = runner.invoke(app, [*args, "-o", str(clip / "out.npz")] if command == "kernels"
                           else args)
    assert result.exit_code == 2 and result.output == f"error: {message}\n"
    assert not (clip / "out.npz").exists()


def test_failed_run_leaves_no_pictures(clip):
    cv2.imwrite(str(clip / "frames" / "0003.png"), np.zeros((H, W + 2, 3), np.uint8))
    result = kernels(clip, "--plot", str(clip / "plots" / "run"))
    assert result.exit_code == 2 and "not 160x120" in result.output
    assert not (clip / "plots").exists()  # nor the folders it made for them
    (clip / "plots").mkdir()  # one that was there stays
    assert kernels(clip, "--plot", str(clip / "plots")).exit_code == 2
    assert (clip / "plots").is_dir() and not list((clip / "plots").iterdir())


def test_pictures_at_the_npz_path_are_refused_before_the_work(clip, monkeypatch):
    from gyrodeblur.pipelines import kernels as pipeline

    monkeypatch.setattr(pipeline, "compute_kernels", lambda *a, **k: pytest.fail("computed"))
    result = kernels(clip, "--no-translation", "--plot", str(clip / "out.npz"))
    assert result.exit_code == 2
    assert "out.npz: is the -o file too; give the pictures a folder of their own" in \
        " ".join(result.output.split())


def test_pictures_wait_for_the_npz_and_a_failed_run_keeps_earlier_ones(clip, monkeypatch):
    assert kernels(clip, "--samples", "3", "--plot", str(clip / "plots")).exit_code == 0
    earlier = {p.name: p.read_bytes() for p in (clip / "plots").iterdir()}
    assert len(earlier) == 4

    def full_disk(*args, **kwargs):  # every frame done, the zip not written
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fileio.zipfile, "ZipFile", full_disk)
    for plots in ("plots", "new"):
        result = kernels(clip, "--samples", "5", "--plot", str(clip / plots))
        assert result.exit_code == 2
        assert "out.npz: cannot be written: No space left" in result.output
    assert {p.name: p.read_bytes() for p in (clip / "plots").iterdir()} == earlier
    assert not (clip / "new").exists()


def test_large_kernels_are_announced_with_the_size_they_take(clip, monkeypatch):
    from gyrodeblur import cli

    monkeypatch.setattr(cli, "LARGE_KERNELS", 1e5)
    for extra in ([], ["--no-translation"]):
        result = kernels(clip, *extra)
        assert result.exit_code == 0, result.output
        said = float(result.output.split(f"4 frames at {W}x{H} take ")[1].split(" GB")[0])
        assert said == pytest.approx((clip / "out.npz").stat().st_size / 1e9, rel=0.01)


def test_kernels_of_a_frame_too_large_for_the_memory_are_refused_before_the_work(clip,
                                                                                   monkeypatch):
    from gyrodeblur import cli

    pages = {"SC_PAGE_SIZE": 4096, "SC_PHYS_PAGES": 2**20 // 4096}  # a machine of 1 MB
    monkeypatch.setattr(cli.os, "sysconf", pages.__getitem__)
    # The lens model's ray of every pixel is itself too large for such a job.
    monkeypatch.setattr(cli, "note_pixels_without_ray", lambda cam: pytest.fail("rays first"))
    result = kernels(clip, "--samples", "5")
    # As measured: T x 40 bytes a pixel with translation, and 60 besides.
    need = (5 * 40 + 60) * W * H / 2**30
    assert result.exit_code == 2 and result.output.strip() == (
        f"error: computing the kernels of a {W}x{H} frame (T=5) would take {need:.1f} GB of "
        "this machine's 0 GB; give a smaller --size or fewer --samples")
    assert not (clip / "out.npz").exists()


def test_a_folder_in_a_pictures_way_is_refused_before_the_work(clip):
    (clip / "plots" / "kernels_000003.png").mkdir(parents=True)
    result = kernels(clip, "--plot", str(clip / "plots"))
    assert result.exit_code == 2 and "kernels_000003.png: is a folder, not a file" in \
        result.output
    assert not (clip / "out.npz").exists()
    assert [p.name for p in (clip / "plots").iterdir()] == ["kernels_000003.png"]


def test_colons_in_values_and_paths_are_printed_as_given(clip):
    # Rich would turn ":100:" into an emoji.
    result = kernels(clip, "--range", "1:100:")
    assert result.exit_code == 2 and "--range '1:100:': expected" in result.output


def test_pictures_into_the_frames_folder_are_refused(clip):
    result = kernels(clip, "--plot", str(clip / "frames"))
    assert result.exit_code == 2 and "frames: would overwrite an input" in result.output
    assert len(list((clip / "frames").iterdir())) == 4


@pytest.mark.parametrize(("option", "target", "make", "problem"), [
    ("-o", "out.npz", lambda c: (c / "out.npz").mkdir(), "is a folder, not a file"),
    ("--plot", "plots", lambda c: (c / "plots").write_text("x"), "exists and is not a folder"),
    ("-o", "file/out.npz", lambda c: (c / "file").write_text("x"), "file is not a folder"),
    ("-o", "out.txt", lambda c: None, "out.txt: kernels are written as an .npz file")])
def test_unwritable_outputs_are_refused_before_work(clip, option, target, make, problem):
    make(clip)
    result = kernels(clip, option, str(clip / target))
    assert result.exit_code == 2 and problem in result.output, result.output
    assert "kernels:" not in result.output  # refused before the progress bar started


@pytest.mark.parametrize("target", ["gyro.csv", "camera.json", "frames.csv"])
def test_an_output_over_an_input_is_refused(clip, target):
    before = (clip / target).read_bytes()
    args = ["kernels", str(clip / "frames"), "--gyro", str(clip / "gyro.csv"), "--camera",
            str(clip / "camera.json"), "--frames-csv", str(clip / "frames.csv"),
            "-o", str(clip / target)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and f"{target}: would overwrite an input" in result.output
    assert (clip / target).read_bytes() == before


def test_frames_csv_with_bom_and_spaces(clip):
    (clip / "frames.csv").write_text("\ufeffframe, t_start, exposure\n" + "".join(
        f"{i + 1}, {0.5 + i / FPS:.6f}, {EXPOSURE}\n" for i in range(4)), encoding="utf-8")
    assert kernels(clip, "--no-translation", "--size", "80x60", frames=None).exit_code == 0


def test_neighbours_the_gyro_misses_are_left_out(clip):
    t = np.arange(0.55, 2.0, 0.005)  # frame 1 (0.50-0.54 s) lies before the gyro
    write_csv(GyroLog(t, np.tile([0.0, YAW, 0.0], (len(t), 1))), clip / "gyro.csv")
    result = kernels(clip, "--range", "2:3", "--samples", "3")
    assert result.exit_code == 0, result.output
    npz = np.load(clip / "out.npz")
    assert npz["frames"].tolist() == [2, 3] and npz["mask"][0].mean() > 0.8  # measured on 3
    assert "no translation" not in result.output


def test_a_frame_without_timed_neighbours_is_named(clip):
    write_frames_csv(clip / "frames.csv", 4)
    rows = (clip / "frames.csv").read_text().splitlines()
    (clip / "frames.csv").write_text("\n".join(rows[:3] + rows[4:]) + "\n")  # no frame 3
    result = kernels(clip, "--samples", "3")
    assert result.exit_code == 0, result.output
    assert "no translation for frame 4: no neighbouring frame" in result.output
    npz = np.load(clip / "out.npz")
    assert npz["frames"].tolist() == [1, 2, 4] and not npz["mask"][2].any()


def test_video_timestamps_and_exposure_give_the_frames_csv_kernels(clip):
    with av.open(str(clip / "clip.mp4"), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        for frame in render_frames(4):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    args = ["kernels", str(clip / "clip.mp4"), "--gyro", str(clip / "gyro.csv"), "--camera",
            str(clip / "camera.json"), "--no-translation", "--samples", "3"]
    result = runner.invoke(app, [*args, "--exposure", str(EXPOSURE), "--time-offset", "0.5",
                                 "-o", str(clip / "a.npz")])
    assert result.exit_code == 0, result.output
    write_frames_csv(clip / "frames.csv", 4)  # starts 0.5 + i / FPS, the same gyro times
    result = runner.invoke(app, [*args, "--frames-csv", str(clip / "frames.csv"),
                                 "-o", str(clip / "b.npz")])
    assert result.exit_code == 0, result.output
    np.testing.assert_allclose(np.load(clip / "a.npz")["times"], np.load(clip / "b.npz")["times"],
                               atol=1e-9)
    np.testing.assert_allclose(np.load(clip / "a.npz")["rot"], np.load(clip / "b.npz")["rot"],
                               atol=1e-4)


def test_an_exposure_that_is_no_time_is_blamed_on_the_option(clip):
    result = runner.invoke(app, ["kernels", str(clip / "frames"), "--gyro", str(clip / "gyro.csv"),
                                 "--camera", str(clip / "camera.json"), "--exposure", "0",
                                 "-o", str(clip / "out.npz")])
    assert result.exit_code == 2
    assert "error: --exposure 0: seconds, more than 0, at most 1 (is it in ms?)" in result.output
    result = runner.invoke(app, ["kernels", str(clip / "frames"), "--gyro", str(clip / "gyro.csv"),
                                 "--camera", str(clip / "camera.json"), "--exposure", "0.01",
                                 "-o", str(clip / "out.npz")])
    assert result.exit_code == 2 and "frames: no frame timing: give --frames-csv (--exposure " \
        "times a video's frames by its timestamps; a folder of frames has none)" in \
        " ".join(result.output.split())


def test_corrupt_video_is_refused(clip):
    (clip / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 20)
    result = kernels(clip, frames="broken.mp4")
    assert result.exit_code == 2 and "broken.mp4" in result.output
    assert "corrupt" in result.output and not (clip / "out.npz").exists()


def test_missing_frames_need_no_translation_and_default_to_the_cameras_size(clip):
    result = kernels(clip, frames=None)
    assert result.exit_code == 2 and "--no-translation" in result.output
    assert not (clip / "out.npz").exists()
    result = kernels(clip, "--no-translation", "--samples", "3", frames=None)
    assert result.exit_code == 0, result.output
    camera = json.loads((clip / "camera.json").read_text())
    assert np.load(clip / "out.npz")["rot"].shape[-2:] == (camera["height"], camera["width"])


def test_warnings_are_one_line_notes(capsys):
    import warnings

    from gyrodeblur.cli import main

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        main()  # the commands' callback
        warnings.warn("meta_info/cam_metainfo.csv: lens intrinsics change between rows",
                      stacklevel=1)
    assert capsys.readouterr().err == ("warning: meta_info/cam_metainfo.csv: lens intrinsics "
                                       "change between rows\n")


@pytest.mark.parametrize(("args", "message"), [
    (["synth", "image", "x.png", "--exposure", "0"],
     "error: Invalid value for '--exposure': Input should be greater than or equal to 0.000001 "
     "(gyrodeblur synth image --help)"),
    (["kernels"], "error: Missing option '--gyro'. (gyrodeblur kernels --help)"),
    (["deblurr"], "error: No such command 'deblurr'. Did you mean 'deblur'? (gyrodeblur --help)"),
    (["--frobnicate"], "error: No such option: --frobnicate (gyrodeblur --help)"),
    (["synth", "--seed", "1"], "error: No such option: --seed (gyrodeblur synth --help)"),
])
def test_usage_errors_are_one_line_as_every_error(args, message):
    result = CliRunner().invoke(app, args, prog_name="gyrodeblur")
    assert result.exit_code == 2 and result.output.strip() == message


def test_version_and_short_help():
    from gyrodeblur import __version__

    result = CliRunner().invoke(app, ["--version"], prog_name="gyrodeblur")
    assert result.exit_code == 0 and result.output == f"gyrodeblur {__version__}\n"
    result = CliRunner().invoke(app, ["deblur", "video", "-h"], prog_name="gyrodeblur")
    assert result.exit_code == 0 and "Usage: gyrodeblur deblur video" in result.output


def test_a_group_without_a_command_still_shows_its_help():
    for words in (["synth"], []):  # gyrodeblur alone, too
        result = CliRunner().invoke(app, words, prog_name="gyrodeblur")
        assert result.exit_code == 2, result.exception
        assert "Commands:" in result.output and "error" not in result.output


def test_frames_a_pixel_off_the_calibration_are_noted_as_taken_for_scaled(clip):
    for path in (clip / "frames").iterdir():
        cv2.imwrite(str(path), cv2.imread(str(path))[:-1, :-1])
    result = kernels(clip, "--no-translation")
    assert result.exit_code == 0, result.output
    assert f"camera.json is for {W}x{H}, the footage {W - 1}x{H - 1}: taken as the same view " \
           "scaled" in " ".join(result.output.split())
    # Asked for with --size: no note.
    result = kernels(clip, "--no-translation", "--size", f"{W - 1}x{H - 1}", frames=None)
    assert result.exit_code == 0 and "taken as the same view" not in result.output


@pytest.mark.parametrize("frames", ["frames", None])
def test_a_size_of_another_aspect_ratio_is_blamed_on_the_option(clip, frames):
    result = kernels(clip, "--no-translation", "--size", "60x80", frames=frames)
    view = "footage" if frames else f"camera of {clip / 'camera.json'}"
    assert result.exit_code == 2 and " ".join(result.output.split()).startswith(
        f"error: --size 60x80: another aspect ratio than the {view} ({W}x{H}), which it "
        f"resizes; give e.g. 60x45")
    assert not (clip / "out.npz").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["kernels", "--gyro", "g.csv", "-o", ""], "an empty value for -o"),
    (["kernels", "--gyro=", "-o", "k.npz"], "an empty value for --gyro"),
    (["deblur", "video", "", "-o", "x.mp4"], "an empty argument"),
])
def test_an_empty_value_is_not_taken_for_the_current_folder(tmp_path, monkeypatch, args,
                                                            message):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and result.output.splitlines() == [
        f"error: {message} (an unset shell variable?)"]
    assert list(tmp_path.iterdir()) == []


def test_a_progress_log_says_so_when_the_end_is_centuries_away(monkeypatch, capsys):
    import time

    from gyrodeblur.cli import LoggedProgress

    monkeypatch.setattr(LoggedProgress, "LOG_EVERY_S", 0.0)  # a line at every update
    with LoggedProgress() as bar:
        task = bar.add_task("clips", total=10**20)
        bar.update(task, completed=1)
        time.sleep(0.05)
        bar.update(task, completed=2)  # a speed: 20 a second
    lines = capsys.readouterr().err.splitlines()
    assert lines[-1].startswith("clips: 2/100000000000000000000 (0%), 0:00:00 elapsed")
    assert lines[-1].endswith(", centuries left")


def test_frames_the_gyro_blurs_beyond_themselves_are_named_and_all_of_them_refused(clip):
    # 30 rad/s of yaw during frames 3 and 4 (0.7 to 0.84 s): 0.6 rad either side of the
    # mid-exposure, so at the 80x60 frame's side (fx 75 px, 0.49 rad off the axis) a pixel
    # moves 75 tan(1.09) - 40 = 102 px; frames 1 and 2 at the clip's gentle yaw.
    t = np.arange(0.0, 2.0, 0.005)
    w = np.tile([0.0, YAW, 0.0], (len(t), 1))
    w[(t > 0.68) & (t < 0.9), 1] = 30.0
    write_csv(GyroLog(t, w), clip / "fast.csv")
    result = kernels(clip, "--no-translation", "--size", "80x60", "--gyro-unit", "rad",
                     frames=None, gyro="fast.csv")
    assert result.exit_code == 0, result.output
    rot = np.load(clip / "out.npz")["rot"]
    reach = np.nanmax(np.abs(rot), axis=(1, 2, 3, 4))
    assert (reach[:2] < 80).all() and (reach[2:] > 80).all()
    said = float(result.output.split("frames 3..4: the gyro moves pixels up to ")[1].split()[0])
    assert said == pytest.approx(reach.max(), rel=0.03)
    assert "more than the 80x60 frame: nothing of them is left to restore" in result.output
    # Every frame so blurred: a unit error, refused before anything is written.
    (clip / "out.npz").unlink()
    write_csv(GyroLog(t, np.tile([0.0, 60.0, 0.0], (len(t), 1))), clip / "fast.csv")
    result = kernels(clip, "--no-translation", "--size", "80x60", "--gyro-unit", "rad",
                     frames=None, gyro="fast.csv")
    assert result.exit_code == 2 and result.output.startswith(f"error: {clip / 'fast.csv'}: "
                                                              "the gyro moves pixels ")
    assert "during every frame's exposure, more than the 80x60 frame: is the exposure in " \
           "seconds, the gyro in rad/s?" in result.output
    assert not (clip / "out.npz").exists()


def test_a_progress_log_stays_plain_lines_where_colour_is_forced(monkeypatch, capsys):
    from gyrodeblur.cli import LoggedProgress, err_console

    # FORCE_COLOR (CI jobs set it for coloured logs) makes rich take any stderr for a terminal.
    monkeypatch.setattr(err_console, "_force_terminal", True)
    assert err_console.is_terminal
    with LoggedProgress() as bar:
        task = bar.add_task("frames", total=3)
        for done in range(1, 4):
            bar.update(task, completed=done)
    err = capsys.readouterr().err
    assert "\r" not in err and err.splitlines()[-1].startswith("frames: 3/3 (100%)")
