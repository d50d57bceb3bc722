import json
import re
from dataclasses import replace

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from gyrodeblur.cli import app, sync_doubt
from gyrodeblur.errors import InputError
from gyrodeblur.footage import FrameTiming, VideoWriter, read_image
from gyrodeblur.geometry.camera import Camera, load_camera
from gyrodeblur.geometry.gyro import GyroLog
from gyrodeblur.kernels.synchronization import FULL_SUPPORT_PAIRS, estimate_sync
from gyrodeblur.synthesis.clips import ClipSettings, export_clip, synthesize_clip
from gyrodeblur.synthesis.images import dead_leaves
from gyrodeblur.synthesis.motion import load_shake_model
from gyrodeblur.synthesis.scene import Plane, Scene

W, H, FRAMES, FPS = 192, 108, 16, 30.0
MARGIN = 0.3  # gyro before the first and after the last frame: covers a +-0.2 s search
OFFSET = 0.0437  # the true time_offset


def make_clip(seed, readout=0.01, direction="top_to_bottom", fps=FPS, exposure=0.5,
              shake=3.0, samples=5):
    """A blurred clip under hand shake whose device believes time_offset 0 (truth OFFSET);
    ``exposure`` is a fraction of the frame interval."""
    rng = np.random.default_rng(seed)
    fx = W / 2 / np.tan(np.radians(65) / 2)
    camera = Camera(W, H, fx, fx, (W - 1) / 2, (H - 1) / 2, readout_time=readout,
                    readout_direction=direction, time_offset=OFFSET)
    log = load_shake_model().sample(2 * MARGIN + FRAMES / fps + readout, 400.0, rng, scale=shake)
    image = cv2.resize(dead_leaves(int(1.6 * W), rng), (int(1.6 * W), int(1.6 * H)))
    scene = Scene((Plane((0.0, 0.0, 1.0), 3.0),), (0.2, 0.0, 0.05))
    settings = ClipSettings(frames=FRAMES, fps=fps, exposure=exposure / fps, samples=samples,
                            gyro_start=MARGIN)
    return synthesize_clip(image, camera, log, scene, settings, rng)


def source(images):
    return lambda numbers: ((int(n), images[int(n) - 1]) for n in numbers)


@pytest.fixture(scope="module")
def clip():
    return make_clip(0)


def believed(clip, **changes):
    return clip.recorded_camera.replace(**({"time_offset": 0.0} | changes))


def test_recovers_a_known_offset(clip):
    result = estimate_sync(source(clip.blurred), clip.timing, clip.recorded_log, believed(clip))
    assert abs(result.time_offset - OFFSET) < 1e-3, result.time_offset
    assert result.confidence > 0.5 and result.readout_time is None
    assert result.pairs_used == FRAMES - 1
    assert result.offsets.shape == result.costs.shape and result.offsets[0] == pytest.approx(-0.2)


def test_recovers_it_from_downscaled_frames_and_a_shifted_search(clip):
    # The search is centred on the camera's offset: start it 120 ms off, process at 128 px.
    result = estimate_sync(source(clip.blurred), clip.timing, clip.recorded_log,
                           believed(clip, time_offset=OFFSET + 0.12), width=128, max_pairs=10)
    assert abs(result.time_offset - OFFSET) < 1e-3 and result.pairs_used == 10


def test_imu_axes_are_turned_into_camera_axes(clip):
    # A gyro mounted with its axes permuted: the camera's imu_to_camera undoes it.
    swap = np.array([[0.0, 1, 0], [0, 0, 1], [1, 0, 0]])
    log = GyroLog(clip.recorded_log.t, clip.recorded_log.w @ swap)  # w_imu = swap^T w_cam
    camera = believed(clip, imu_to_camera=tuple(map(tuple, swap)))
    result = estimate_sync(source(clip.blurred), clip.timing, log, camera, max_pairs=8)
    assert abs(result.time_offset - OFFSET) < 1e-3


def test_the_axes_and_readout_a_gyro_file_gives_are_taken(clip):
    # A gcsv's orientation and frame_readout_time, where the camera says nothing of them.
    swap = np.array([[0.0, 1, 0], [0, 0, 1], [1, 0, 0]])
    log = GyroLog(clip.recorded_log.t, clip.recorded_log.w @ swap, "a.gcsv",
                  readout_time=0.01 * H / (H - 1), imu_to_camera=swap)
    camera = believed(clip, readout_time=0.0)
    result = estimate_sync(source(clip.blurred), clip.timing, log, camera, max_pairs=8)
    assert abs(result.time_offset - OFFSET) < 1e-3


def test_long_exposures_are_matched_at_the_mean_pose():
    # 95 ms exposures at 10 fps under changing motion: the blurred frames show the mean pose
    # over each exposure, which here lies 4.5 ms of motion away from the mid-exposure pose.
    clip = make_clip(1, fps=10.0, exposure=0.95, shake=1.0, samples=17)
    result = estimate_sync(source(clip.blurred), clip.timing, clip.recorded_log, believed(clip))
    assert abs(result.time_offset - OFFSET) < 1e-3, result.time_offset


@pytest.mark.parametrize("believed_direction", ["bottom_to_top", "top_to_bottom"])
def test_readout_time_and_direction_are_estimated(believed_direction):
    # Read bottom to top; a camera file that says top to bottom fits best with no readout
    # and an offset half a readout off, unless the other direction is tried.
    clip = make_clip(1, readout=0.025, direction="bottom_to_top")
    camera = believed(clip, readout_time=0.0, readout_direction=believed_direction)
    result = estimate_sync(source(clip.blurred), clip.timing, clip.recorded_log, camera,
                           estimate_readout=True)
    assert abs(result.readout_time - 0.025) < 2e-3, result.readout_time
    assert abs(result.time_offset - OFFSET) < 1e-3, result.time_offset
    assert result.readout_direction == "bottom_to_top"


@pytest.mark.parametrize("readout_time", [0.025, 0.0])
def test_cli_sync_names_a_readout_direction_that_differs_from_the_cameras(tmp_path,
                                                                          readout_time):
    # Read bottom to top: a rolling-shutter camera file that says top to bottom is named as
    # wrong; a global shutter's (readout 0) says no direction.
    clip = make_clip(1, readout=0.025, direction="bottom_to_top")
    export_clip(replace(clip, recorded_camera=believed(
        clip, readout_time=readout_time, readout_direction="top_to_bottom")), tmp_path / "c")
    folder = tmp_path / "c"
    result = CliRunner().invoke(app, [
        "sync", str(folder / "blurred"), "--gyro", str(folder / "gyro.csv"), "--camera",
        str(folder / "camera.json"), "--frames-csv", str(folder / "frames.csv"), "--readout",
        "--max-pairs", "8"])
    assert result.exit_code == 0, result.output
    assert "readout_time 0.02" in result.stdout and "bottom_to_top" in result.stdout
    said = "the rows are read bottom to top, not top to bottom as camera.json says"
    assert (said in result.stderr) == (readout_time > 0)


@pytest.mark.parametrize("unbuffered", ["1", ""])
def test_cli_sync_writes_its_camera_also_where_stdouts_reader_has_left(tmp_path, unbuffered):
    import os
    import subprocess
    import sys

    clip = make_clip(0)
    export_clip(replace(clip, recorded_camera=believed(clip)), tmp_path / "c")
    folder = tmp_path / "c"
    # `gyrodeblur sync ... -o cam.json | true`: the reader gone before the result is printed.
    run = subprocess.Popen(
        [sys.executable, "-m", "gyrodeblur", "sync", folder / "blurred", "--gyro",
         folder / "gyro.csv", "--camera", folder / "camera.json", "--frames-csv",
         folder / "frames.csv", "--max-pairs", "8", "-o", tmp_path / "cam.json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=os.environ | {"PYTHONUNBUFFERED": unbuffered})
    run.stdout.close()
    stderr = run.stderr.read()
    assert run.wait() == 141, stderr  # a shell's status for a reader gone
    assert "Exception" not in stderr and "Traceback" not in stderr
    assert abs(load_camera(tmp_path / "cam.json").time_offset - OFFSET) < 1e-3


def test_periodic_motion_gives_low_confidence():
    # A 6 Hz shake alone: offsets a period apart fit alike, whatever the coarse grid says.
    t = np.arange(0.0, 2 * MARGIN + FRAMES / FPS + 0.02, 1 / 400)
    w = np.stack([a * np.sin(2 * np.pi * 6 * t) for a in (0.6, 0.8, 0.3)], axis=1)
    fx = W / 2 / np.tan(np.radians(65) / 2)
    camera = Camera(W, H, fx, fx, (W - 1) / 2, (H - 1) / 2, time_offset=OFFSET)
    rng = np.random.default_rng(3)
    image = cv2.resize(dead_leaves(int(1.6 * W), rng), (int(1.6 * W), int(1.6 * H)))
    settings = ClipSettings(frames=FRAMES, fps=FPS, exposure=0.004, samples=3, gyro_start=MARGIN)
    clip = synthesize_clip(image, camera, GyroLog(t, w), Scene((Plane((0.0, 0.0, 1.0), 3.0),),
                                                                 (0.0, 0.0, 0.0)), settings, rng)
    result = estimate_sync(source(clip.blurred), clip.timing, GyroLog(t, w),
                           camera.replace(time_offset=0.0))
    assert not result.reliable, (result.time_offset, result.confidence)


def test_a_still_video_gives_low_confidence(clip):
    still = source([clip.blurred[0]] * FRAMES)
    for frames in (FRAMES, 4):  # 3 pairs: the bias removal alone absorbs much of the gyro
        timing = FrameTiming(clip.timing.frame[:frames], clip.timing.t_start[:frames],
                             clip.timing.exposure[:frames])
        result = estimate_sync(still, timing, clip.recorded_log, believed(clip))
        assert result.explained == 0.0 and result.confidence == 0.0 and not result.reliable
        assert result.gain == np.inf and "video shows no rotation" in sync_doubt(result, 0.2)
    # Under a gyro turning steadily, which the bias removal takes for a still one, nothing
    # either side turns: nothing to match, whatever the offset.
    log = clip.recorded_log
    steady = replace(log, w=np.tile([0.0, 1.0, 0.0], (len(log.t), 1)))
    result = estimate_sync(still, clip.timing, steady, believed(clip))
    assert result.explained == 0.0 and result.confidence == 0.0 and not result.reliable


def test_an_unrelated_gyro_gives_low_confidence(clip):
    rng = np.random.default_rng(0)
    shuffled = replace(clip.recorded_log, w=rng.permutation(clip.recorded_log.w))
    result = estimate_sync(source(clip.blurred), clip.timing, shuffled, believed(clip))
    assert result.explained < 0.5 and not result.reliable


def test_gain_finds_a_gyro_in_other_units_than_it_claims(clip):
    right = estimate_sync(source(clip.blurred), clip.timing, clip.recorded_log, believed(clip),
                          max_pairs=8)
    # A log in degrees per second read as radians: 57.3 times the rotation.
    degrees = replace(clip.recorded_log, w=np.degrees(clip.recorded_log.w))
    wrong = estimate_sync(source(clip.blurred), clip.timing, degrees, believed(clip),
                          max_pairs=8)
    assert 0.9 < right.gain < 1.1, right.gain
    assert 30 < wrong.gain < 60 and not wrong.reliable, wrong.gain
    assert "a log in degrees read as radians: --gyro-unit deg" in sync_doubt(wrong, 0.2)
    # A bias, which the fit takes out, adds nothing to how far the gyro turns (1 rad/s here,
    # some 30 times the median turn between frames; it read 3.9).
    biased = replace(clip.recorded_log, w=clip.recorded_log.w + [1.0, -0.5, 0.3])
    result = estimate_sync(source(clip.blurred), clip.timing, biased, believed(clip),
                           max_pairs=8)
    assert abs(result.time_offset - OFFSET) < 1e-3 and 0.9 < result.gain < 1.1, result


@pytest.mark.parametrize("axes", [np.diag([1.0, -1.0, -1.0]),  # a phone's, on another camera
                                  np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])])
def test_wrong_axes_are_named_among_the_doubts(clip, axes):
    # The gyro turns as far as the video does, but about other axes: not reliable, and the
    # doubt says the axes may be wrong whatever else it says.
    camera = believed(clip)
    result = estimate_sync(source(clip.blurred), clip.timing, clip.recorded_log,
                           camera.replace(imu_to_camera=axes @ camera.imu_to_camera),
                           max_pairs=8)
    assert not result.reliable and "wrong axes" in sync_doubt(result, 0.2), result


def test_a_gyro_scaled_down_is_told_from_a_wrong_offset(clip):
    halved = replace(clip.recorded_log, w=clip.recorded_log.w / 2)  # a wrong gscale
    result = estimate_sync(source(clip.blurred), clip.timing, halved, believed(clip),
                           max_pairs=8)
    assert 0.4 < result.gain < 0.6 and result.explained > result.gain - 0.25
    assert "(a wrong gscale" in sync_doubt(result, 0.2)
    # As little turn, but far less explained than a scale accounts for: the offset is wrong.
    wrong_offset = replace(result, explained=0.1)
    assert "an offset beyond the searched" in sync_doubt(wrong_offset, 0.2)
    assert "gscale" not in sync_doubt(wrong_offset, 0.2)


def test_an_offset_beyond_the_search_is_named_as_the_doubt(clip):
    # Searched over +-30 ms around a point 80 ms from the truth.
    result = estimate_sync(source(clip.blurred), clip.timing, clip.recorded_log,
                           believed(clip, time_offset=OFFSET + 0.08), search=0.03)
    assert result.at_search_edge and not result.reliable
    assert abs(result.time_offset - (OFFSET + 0.05)) < 2e-3
    assert result.search == pytest.approx(0.03)
    assert sync_doubt(result, 0.03).startswith("the best offset lies at the edge of the search")
    assert "widen --sync-search" in sync_doubt(result, 0.03, "--sync-search")


def test_a_gyro_starting_near_the_frames_narrows_the_search_to_full_support(clip):
    # From 0.45 s the gyro covers 3 of the 15 pairs over 0.02 +- 0.2 s (confidence at most
    # 3/8), and 8 of them at offsets from about -0.04 to 0.22 s: the search moves there,
    # narrowed to keep 8 pairs, and holds the truth.
    log = clip.recorded_log
    late = replace(log, t=log.t[log.t >= 0.45], w=log.w[log.t >= 0.45])
    result = estimate_sync(source(clip.blurred), clip.timing, late,
                           believed(clip, time_offset=0.02))
    assert result.pairs_used == FULL_SUPPORT_PAIRS and result.confidence > 0.5
    assert result.search < 0.2 and result.offsets[0] > 0.02 - 0.1
    assert result.offsets[-1] == pytest.approx(0.22) and abs(result.time_offset - OFFSET) < 1e-3


def test_a_gyro_log_that_starts_with_the_video_is_searched_where_it_has_room(clip):
    # The log starts 2 ms before the first of 8 frames (0.23 s): no pair is covered at
    # offsets below -2 ms, so the search lies on the positive side, and finds the truth
    # there with every pair (a symmetric one would have had +-2 ms).
    log, timing = clip.recorded_log, clip.timing.select(1, 8)
    start = timing.t_start[0] - 0.002
    tight = replace(log, t=log.t[log.t >= start], w=log.w[log.t >= start])
    result = estimate_sync(source(clip.blurred), timing, tight, believed(clip))
    assert -0.0025 < result.offsets[0] <= 0 and result.offsets[-1] == pytest.approx(0.2)
    assert result.pairs_used == 7 and abs(result.time_offset - OFFSET) < 1e-3


def test_the_search_reported_is_the_search_asked(clip):
    # 0.0537 +- 0.03 in floats: the grid's ends lie 1e-17 closer than 0.06, no narrowing.
    result = estimate_sync(source(clip.blurred), clip.timing, clip.recorded_log,
                           believed(clip, time_offset=OFFSET + 0.01), search=0.03, max_pairs=8)
    assert result.search == 0.03 and abs(result.time_offset - OFFSET) < 1e-3


def test_few_pairs_scale_the_confidence_down(clip):
    full = estimate_sync(source(clip.blurred), clip.timing, clip.recorded_log, believed(clip))
    few = estimate_sync(source(clip.blurred), clip.timing, clip.recorded_log, believed(clip),
                        max_pairs=4)
    assert full.pairs_used == FRAMES - 1 and few.pairs_used == 4
    assert full.explained > 0.8 and few.explained > 0.8
    assert few.confidence <= 4 / FULL_SUPPORT_PAIRS < full.confidence
    assert abs(few.time_offset - OFFSET) < 1e-3


def test_frame_pairs_that_meet_a_hole_in_the_log_are_left_out(clip):
    # 60 ms without samples by frame 12: the pairs that meet it at some offset within
    # +-30 ms are left out (the motion across it would be guessed), the others still find
    # the truth; over +-200 ms every pair of frames 9 to 16 meets it.
    log = clip.recorded_log
    start = clip.timing.t_start[11] + OFFSET
    holed = replace(log, t=log.t[(log.t < start) | (log.t > start + 0.06)],
                    w=log.w[(log.t < start) | (log.t > start + 0.06)])
    result = estimate_sync(source(clip.blurred), clip.timing, holed,
                           believed(clip, time_offset=OFFSET + 0.01), search=0.03)
    assert 3 <= result.pairs_used < FRAMES - 1 - 3
    assert abs(result.time_offset - OFFSET) < 1e-3
    with pytest.raises(InputError, match=r"gyro has no samples from \S+ to \S+ s \(6\d ms\): "
                                         "fewer than 3 frame pairs are clear of its holes"):
        estimate_sync(source(clip.blurred), clip.timing.select(9, 16), holed, believed(clip))


@pytest.mark.parametrize("spoil, message", [
    (lambda c: {"log": replace(c.recorded_log, w=0 * c.recorded_log.w)}, "no camera rotation"),
    (lambda c: {"log": GyroLog(c.recorded_log.t[:20], c.recorded_log.w[:20])},
     "it covers fewer than 3 frame pairs at any of those offsets"),
    (lambda c: {"timing": FrameTiming(c.timing.frame[:3], c.timing.t_start[:3],
                                      c.timing.exposure[:3])}, "synchronisation needs 3"),
    (lambda c: {"camera": believed(c).rescaled(W // 2, H // 2)}, "but the camera is"),
])
def test_bad_input_is_refused(clip, spoil, message):
    args = {"timing": clip.timing, "log": clip.recorded_log, "camera": believed(clip)}
    args |= spoil(clip)
    with pytest.raises(InputError, match=message):
        estimate_sync(source(clip.blurred), **args)


@pytest.mark.parametrize(("frames", "message"), [
    (lambda c: lambda ns: ((int(n) + 1, c.blurred[int(n) - 1]) for n in ns), "as its frame 1"),
    (lambda c: lambda ns: ((int(n), 255 * c.blurred[int(n) - 1]) for n in ns), "in [0, 1]"),
    (lambda c: lambda ns: ((int(n), c.blurred[int(n) - 1]) for n in ns[:5]), "ended after 5"),
])
def test_a_frame_source_that_is_not_what_was_asked_is_refused(clip, frames, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        estimate_sync(frames(clip), clip.timing, clip.recorded_log, believed(clip))


def test_cli_sync_json_finds_a_frames_csv_shift(clip, tmp_path):
    export_clip(replace(clip, recorded_camera=believed(clip)), tmp_path / "clip")
    folder = tmp_path / "clip"
    # Frame times written 30 ms later on the frame clock: the offset becomes 30 ms smaller.
    rows = (folder / "frames.csv").read_text().splitlines()
    shifted = [rows[0]] + [f"{n},{float(t) + 0.03:.9f},{e}" for n, t, e in
                           (row.split(",") for row in rows[1:])]
    (folder / "frames.csv").write_text("\n".join(shifted) + "\n")
    args = ["sync", str(folder / "blurred"), "--gyro", str(folder / "gyro.csv"), "--camera",
            str(folder / "camera.json"), "--frames-csv", str(folder / "frames.csv")]
    synced = tmp_path / "synced.json"
    result = CliRunner().invoke(app, args + ["--json", "--max-pairs", "8", "-o", synced])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert load_camera(synced) == believed(clip, time_offset=out["time_offset"])
    assert set(out) == {"time_offset", "confidence", "pairs", "explained", "gain", "search",
                        "searched", "reliable"}
    assert out["search"] == 0.2 and out["searched"] == pytest.approx([-0.2, 0.2])
    assert abs(out["time_offset"] - (OFFSET - 0.03)) < 1e-3 and out["confidence"] > 0.5
    assert out["explained"] > 0.8 and 0.9 < out["gain"] < 1.1
    assert out["pairs"] == 8 and out["reliable"]
    assert "no readout time" not in result.stderr
    result = CliRunner().invoke(app, args + ["-o", str(folder / "blurred" / "000001.png")])
    assert result.exit_code == 2 and "000001.png: the camera is written as a .json" in \
        result.output
    # Taken for a global shutter: the offset may be off by half a readout, and that is said.
    result = CliRunner().invoke(app, args + ["--readout-time", "0", "--max-pairs", "8"])
    assert "note: --readout-time 0 (a global shutter): under a rolling shutter the offset " \
           "comes out off by up to half the readout; --readout estimates it" in \
           " ".join(result.stderr.split())

    # A gyro that covers the frames over less than the search asked: narrowed, and said so.
    result = CliRunner().invoke(app, args + ["--search", "0.5", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert "covers too few frame pairs over +-0.5 s" in " ".join(result.stderr.split())
    assert 0.01 < out["search"] < 0.5 and abs(out["time_offset"] - (OFFSET - 0.03)) < 1e-3
    # Not even 3 pairs over +-5 steps: the frames far off the gyro's clock.
    result = CliRunner().invoke(app, args + ["--time-offset", "5"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1].startswith("error:")
    assert "gyro covers" in result.output and "set a rough --time-offset" in result.output
    assert "at the camera's time offset (5.000000 s)" in " ".join(result.output.split())
    # A --range too short to synchronise is named, not the frames file that times it.
    result = CliRunner().invoke(app, args + ["--range", "3:5"])
    assert result.exit_code == 2 and "error: --range 3:5: 3 frame(s) with 2 consecutive " \
        "pair(s); synchronisation needs 3 pairs: widen the range" in " ".join(result.output.split())

    # A still video under a turning gyro: an answer, marked unreliable, exit status 1.
    first = (folder / "blurred" / "000001.png").read_bytes()
    for frame in (folder / "blurred").iterdir():
        frame.write_bytes(first)
    result = CliRunner().invoke(app, args + ["--json", "--max-pairs", "8", "-o",
                                             tmp_path / "x.json"])
    out = json.loads(result.stdout)
    assert result.exit_code == 1 and out["reliable"] is False and out["gain"] is None
    assert "video shows no rotation" in out["doubt"]
    assert not (tmp_path / "x.json").exists()
    assert "is shown turned" not in result.stderr
    # The same in a video shown turned: its stored axes are named as a likely cause.
    still = read_image(folder / "blurred" / "000001.png")
    with VideoWriter(tmp_path / "turned.mp4", 30, rotation=90) as video:
        for _ in (folder / "blurred").iterdir():
            video.write(still)
    result = CliRunner().invoke(app, ["sync", str(tmp_path / "turned.mp4")] + args[2:])
    assert result.exit_code == 1 and "note: turned.mp4 is shown turned 90 degrees: " \
        "imu_to_camera takes the gyro to the axes of its frames as stored" in \
        " ".join(result.stderr.split())


def test_search_settings_out_of_their_domain_are_refused(clip):
    for settings in ({"search": float("nan")}, {"step": 0.0}, {"max_pairs": 2}, {"width": 0}):
        with pytest.raises(ValueError, match="must be"):
            estimate_sync(source(clip.blurred), clip.timing, clip.recorded_log, believed(clip),
                          **settings)


def test_frames_dropped_from_a_video_timed_by_its_rate_are_no_reliable_offset(clip):
    # Frame 9 dropped, the rest timed 1/30 s apart (as a video's evenly spaced stamps time
    # them): the frames after the drop are a frame later than their times say.
    kept = np.delete(clip.blurred, 8, axis=0)
    timing = FrameTiming(np.arange(1, FRAMES), clip.timing.t_start[:FRAMES - 1],
                         clip.timing.exposure[:FRAMES - 1])
    result = estimate_sync(source(kept), timing, clip.recorded_log, believed(clip))
    assert result.drift > 0.5 / FPS and result.confidence == 0.0 and not result.reliable
    assert "dropped frames need --frames-csv" in sync_doubt(result, 0.2)  # explained 67 %
    assert "the clip's halves sync 33 ms apart (frames dropped" in \
        sync_doubt(replace(result, explained=0.95), 0.2)
    # The whole clip: its halves agree.
    whole = estimate_sync(source(clip.blurred), clip.timing, clip.recorded_log, believed(clip))
    assert whole.drift == 0.0 and whole.reliable


def test_too_little_motion_is_named_as_the_doubt():
    still = make_clip(0, shake=0.1)  # a tripod's tremor: about a third of a pixel a frame
    result = estimate_sync(source(still.blurred), still.timing, still.recorded_log,
                           believed(still))
    assert 0.05 < result.motion_px < 0.5 and not result.reliable
    assert sync_doubt(result, 0.2).startswith(f"the video turns {result.motion_px:.2g} px "
                                              "between frames (median, at the --width of the "
                                              "flow): too little motion to time it by")


def test_cli_sync_names_the_gcsv_header_for_a_readout_direction_it_gave(tmp_path):
    # The camera file has no readout; the log's gcsv header gives 25 ms top to bottom, the
    # rows are read bottom to top: the header is named, not the camera file (yxz: the log in
    # camera axes).
    clip = make_clip(1, readout=0.025, direction="bottom_to_top")
    export_clip(replace(clip, recorded_camera=believed(clip, readout_time=0.0)), tmp_path / "c")
    folder = tmp_path / "c"
    rows = np.loadtxt(folder / "gyro.csv", delimiter=",", skiprows=1)
    (folder / "log.gcsv").write_text(
        "GYROFLOW IMU LOG\norientation,yxz\ntscale,1\ngscale,1\nframe_readout_time,25\n"
        "frame_readout_direction,0\nt,gx,gy,gz\n"
        + "".join(f"{t:.6f},{x:.9f},{y:.9f},{z:.9f}\n" for t, x, y, z in rows))
    result = CliRunner().invoke(app, [
        "sync", str(folder / "blurred"), "--gyro", str(folder / "log.gcsv"), "--camera",
        str(folder / "camera.json"), "--frames-csv", str(folder / "frames.csv"), "--readout",
        "--max-pairs", "8"])
    assert result.exit_code == 0, result.output
    assert "bottom_to_top" in result.stdout
    assert "the rows are read bottom to top, not top to bottom as log.gcsv's header says" in \
        result.stderr
