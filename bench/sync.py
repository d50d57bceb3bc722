"""Accuracy and speed of gyro-video synchronisation (``estimate_sync``) on synthetic clips.

Clip ``i`` is drawn from seed ``i`` only (not from a stored benchmark): 30 frames of 320x180
at 24-60 fps, exposure 20-80 % of the frame interval, rolling-shutter readout 0-30 ms (and
at most 90 % of the frame interval), real
gyro segments or the hand-shake model (the training sampler's ranges), 1-3 planes and a
camera speed up to 0.6 m/s (parallax), image noise, and gyro bias, scale error and noise. The
true offset is drawn in +-150 ms; the camera given to the estimator believes 0, and the
search is +-200 ms. Prints a table; with ``--json`` one JSON object with
``sync_median_error_ms``, ``sync_max_error_ms`` and ``sync_seconds_per_clip`` (estimation
only, not the clip synthesis), plus the other figures of the table.

``--controls`` also runs three negative controls per clip, which must not be found reliable:
the first frame repeated (a still video under a moving gyro), the gyro's samples shuffled,
and its x and y axes swapped (a wrong ``imu_to_camera``); ``--pairs N`` uses the first N + 1
frames only (few pairs are where unrelated data can fit).

Target: median error <= 1 ms.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import cv2
import numpy as np

from gyrodeblur.geometry.camera import Camera
from gyrodeblur.kernels.synchronization import estimate_sync
from gyrodeblur.synthesis.clips import Clip, ClipSettings, synthesize_clip
from gyrodeblur.synthesis.images import ImageBank
from gyrodeblur.synthesis.motion import bundled_traces, load_shake_model, random_segment
from gyrodeblur.synthesis.scene import Plane, Scene
from gyrodeblur.synthesis.sensor_errors import SensorErrorRanges, SensorErrors

WIDTH, HEIGHT, FRAMES = 320, 180, 30
SEARCH = 0.2
MARGIN = SEARCH + 0.15  # gyro before the first and after the last frame


def draw_clip(seed: int, bank: ImageBank) -> tuple[Clip, float]:
    """Synthetic clip ``seed`` and its true time offset."""
    rng = np.random.default_rng([2024, seed])
    fps = rng.uniform(24.0, 60.0)
    readout = rng.uniform(0.0, min(0.03, 0.9 / fps))  # a sensor reads out within a frame
    offset = rng.uniform(-0.15, 0.15)
    fx = WIDTH / 2 / np.tan(np.radians(rng.uniform(55.0, 80.0)) / 2)
    camera = Camera(WIDTH, HEIGHT, fx, fx, (WIDTH - 1) / 2, (HEIGHT - 1) / 2,
                    readout_time=readout, time_offset=offset)
    duration = 2 * MARGIN + FRAMES / fps + readout
    if rng.random() < 0.5:
        traces = bundled_traces()
        log = random_segment(traces[rng.integers(len(traces))], duration, rng)
        log = replace(log, w=log.w * rng.uniform(1.0, 2.5))
    else:
        log = load_shake_model().sample(duration, 400.0, rng, scale=rng.uniform(1.0, 6.0))
    planes = [Plane((0.0, 0.0, 1.0), float(rng.uniform(0.8, 8.0)))]
    for _ in range(rng.integers(0, 3)):
        tilt, azimuth = rng.uniform(0, np.radians(60)), rng.uniform(0, 2 * np.pi)
        normal = (np.sin(tilt) * np.cos(azimuth), np.sin(tilt) * np.sin(azimuth), np.cos(tilt))
        planes.append(Plane(tuple(float(v) for v in normal), float(rng.uniform(0.8, 8.0))))
    direction = rng.normal(size=3)
    velocity = direction / np.linalg.norm(direction) * rng.uniform(0.0, 0.6)
    scene = Scene(tuple(planes), tuple(float(v) for v in velocity))
    image = bank.image(int(rng.integers(len(bank))))
    image = cv2.resize(image, (int(1.6 * WIDTH), int(1.6 * HEIGHT)), interpolation=cv2.INTER_AREA)
    settings = ClipSettings(frames=FRAMES, fps=fps, exposure=rng.uniform(0.2, 0.8) / fps,
                            samples=9, gyro_start=MARGIN, noise=float(rng.uniform(0.0, 0.02)))
    errors = SensorErrors.sample(SensorErrorRanges(delay=0.0, readout=0.0), rng)
    return synthesize_clip(image, camera, log, scene, settings, rng, errors), offset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--clips", type=int, default=20)
    parser.add_argument("--readout", action="store_true", help="also estimate the readout time")
    parser.add_argument("--controls", action="store_true",
                        help="also count negative controls found reliable")
    parser.add_argument("--pairs", type=int, default=FRAMES - 1,
                        help="use the first PAIRS + 1 frames")
    args = parser.parse_args()
    if args.clips < 1:
        parser.error(f"--clips {args.clips}: at least 1")
    if not 3 <= args.pairs <= FRAMES - 1:  # the estimate needs 3; a clip has FRAMES frames
        parser.error(f"--pairs {args.pairs}: 3 to {FRAMES - 1}")

    bank = ImageBank(dead_leaves=4, dead_leaves_size=512)
    rows, seconds, reliable_controls = [], [], 0
    for seed in range(args.clips):
        clip, truth = draw_clip(seed, bank)
        clip = replace(clip, timing=clip.timing.select(None, args.pairs + 1))
        # The device believes offset 0 and, when estimating it, knows no readout time.
        camera = clip.recorded_camera.replace(time_offset=0.0)
        if args.readout:
            camera = camera.replace(readout_time=0.0)

        def frames(numbers, clip=clip):
            return ((int(n), clip.blurred[int(n) - 1]) for n in numbers)

        t0 = time.perf_counter()
        result = estimate_sync(frames, clip.timing, clip.recorded_log, camera, search=SEARCH,
                               estimate_readout=args.readout)
        seconds.append(time.perf_counter() - t0)
        rows.append({"seed": seed, "truth_ms": truth * 1e3,
                     "error_ms": (result.time_offset - truth) * 1e3,
                     "confidence": result.confidence,
                     "readout_ms": clip.camera.readout_time * 1e3,
                     "readout_error_ms": None if result.readout_time is None else
                     (result.readout_time - clip.camera.readout_time) * 1e3})
        if args.controls:
            rng = np.random.default_rng(seed)
            log = clip.recorded_log
            controls = [
                (lambda numbers, c=clip: ((int(n), c.blurred[0]) for n in numbers), log, camera),
                (frames, replace(log, w=rng.permutation(log.w)), camera),
                (frames, log, camera.replace(imu_to_camera=np.array([[0.0, 1.0, 0.0],
                                                                      [-1.0, 0.0, 0.0],
                                                                      [0.0, 0.0, 1.0]])))]
            reliable_controls += sum(
                estimate_sync(f, clip.timing, g, c, search=SEARCH,
                              estimate_readout=args.readout).reliable for f, g, c in controls)
    errors = np.abs([r["error_ms"] for r in rows])
    figures = {"sync_median_error_ms": round(float(np.median(errors)), 3),
               "sync_max_error_ms": round(float(errors.max()), 3),
               "sync_seconds_per_clip": round(float(np.mean(seconds)), 2),
               "sync_within_1ms": round(float(np.mean(errors <= 1.0)), 3),
               "sync_median_confidence": round(float(np.median([r["confidence"] for r in rows])),
                                               3),
               "clips": args.clips, "pairs": args.pairs}
    if args.controls:
        figures["sync_reliable_controls"] = f"{reliable_controls}/{3 * args.clips}"
    if args.readout:
        figures["readout_median_error_ms"] = round(float(np.median(np.abs(
            [r["readout_error_ms"] for r in rows]))), 3)
    if args.json:
        print(json.dumps(figures))
        return
    print(f"{'seed':>4s} {'truth ms':>9s} {'error ms':>9s} {'conf':>5s} {'readout ms':>10s}"
          + (f" {'readout err':>11s}" if args.readout else ""))
    for r in rows:
        print(f"{r['seed']:4d} {r['truth_ms']:9.2f} {r['error_ms']:9.3f} {r['confidence']:5.2f} "
              f"{r['readout_ms']:10.2f}"
              + (f" {r['readout_error_ms']:11.3f}" if args.readout else ""))
    for key, value in figures.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
