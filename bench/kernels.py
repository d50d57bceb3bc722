"""Speed of the kernel computation on this machine.

Prints a table; with ``--json`` one JSON object with ``rot_1080p_t9_ms`` (rotation
trajectories of one 1920x1080 frame, T = 9, rolling shutter, into a preallocated output: the
kernel's own speed; the pipelines allocate a new array per frame, the ``alloc`` figure, and
``gyrodeblur kernels`` then copies it into its memory-mapped npz, disk writes not timed
here) and ``tran_540p_ms`` (the translation step of one 960x540 frame pair: flow both ways,
gyro flow, consistency, fill), plus the other figures of the table.

With ``--long-log``, also reading an hour of 1 kHz plain CSV log (epoch timestamps) and the
camera's orientation over one frame's span of it against over the whole hour (what every
command integrated before the span: seconds per hour of log).

Targets on the 2-core machines: rotation <= 60 ms per 1080p frame, translation <= 250 ms per
960x540 pair. The write-only figure is the bound of the rotation kernel: its 150 MB output
written once on all cores, nothing computed. The numpy column is the straightforward
vectorised implementation the compiled kernel replaced, timed in the same run, for the
speed-up ratio; likewise scipy's exact distance transform for the nearest-valid fill of the
translation step.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import cv2
import numba
import numpy as np
from scipy import ndimage
from timing import best_ms  # bench/ is on sys.path when run as a script

from gyrodeblur.geometry.camera import Camera
from gyrodeblur.geometry.gyro import read_gyro
from gyrodeblur.geometry.rotation import integrate
from gyrodeblur.kernels.rotation import camera_orientation, rotation_trajectories, sample_times
from gyrodeblur.kernels.translation import combine_velocities, fill_nearest, pair_velocity

SAMPLE = Path(__file__).resolve().parents[1] / "gyrodeblur" / "data" / "gyrovd_real"


def numpy_rotation(orientation, camera: Camera, t_start: float, exposure: float, T: int):
    """Reference: the same trajectories with numpy broadcasting (pinhole)."""
    times, t_ref = sample_times(camera, t_start, exposure, T)
    H = camera.K @ orientation.relative(t_ref[None], times) @ camera.K_inv  # (T, H, 3, 3)
    xs = np.arange(camera.width, dtype=np.float32)[None, None, :]
    ys = np.arange(camera.height, dtype=np.float32)[None, :, None]
    H = H.astype(np.float32)
    h = [[H[:, :, r, c, None] for c in range(3)] for r in range(3)]
    den = h[2][0] * xs + h[2][1] * ys + h[2][2]
    out = np.empty((T, 2, camera.height, camera.width), np.float32)
    out[:, 0] = (h[0][0] * xs + h[0][1] * ys + h[0][2]) / den - xs
    out[:, 1] = (h[1][0] * xs + h[1][1] * ys + h[1][2]) / den - ys
    return out


@numba.njit(parallel=True)
def write_only(out: np.ndarray) -> None:
    """The bound: every output value written once, in the kernel's order, on all cores."""
    T, _, rows, cols = out.shape
    for y in numba.prange(rows):
        for i in range(T):
            for x in range(cols):
                out[i, 0, y, x] = x
                out[i, 1, y, x] = y


def scipy_fill(field: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Reference: the nearest-valid fill by scipy's exact Euclidean distance transform."""
    iy, ix = ndimage.distance_transform_edt(~valid, return_distances=False,
                                            return_indices=True)
    return field[iy, ix]


def long_log_figures() -> dict[str, float]:
    """Reading an hour of 1 kHz log, and the orientation over a frame's span and the whole of
    it (ms, one run each: seconds)."""
    n = 3_600_000
    t = 1.7e9 + np.arange(n) / 1000.0
    w = np.random.default_rng(0).normal(0.0, 0.3, (n, 3))
    cam = Camera(width=1920, height=1080, fx=1500.0, fy=1500.0, cx=959.5, cy=539.5)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "hour.csv"
        with open(path, "w") as f:
            f.write("t,wx,wy,wz\n")
            np.savetxt(f, np.column_stack([t, w]), fmt="%.6f", delimiter=",")
        start = time.perf_counter()
        log = read_gyro(path)
        figures = {"long_log_read_ms": (time.perf_counter() - start) * 1e3}
    span = (t[n // 2], t[n // 2] + 0.05)
    figures["long_log_span_ms"] = best_ms(lambda: camera_orientation(log, cam, span), 3)
    start = time.perf_counter()
    camera_orientation(log, cam)
    figures["long_log_whole_ms"] = (time.perf_counter() - start) * 1e3
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--long-log", action="store_true",
                        help="also an hour of 1 kHz log: reading it, integrating it")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error(f"--repeat {args.repeat}: at least 1")

    log = read_gyro(SAMPLE / "gyro.csv")
    orientation = integrate(log.t, log.w)
    cam = Camera(width=1920, height=1080, fx=1500.0, fy=1500.0, cx=959.5, cy=539.5,
                 readout_time=0.02)
    fisheye = cam.replace(distortion_model="fisheye", distortion=(0.03, -0.01, 0.002, -0.0005))
    out = np.empty((9, 2, 1080, 1920), np.float32)
    t0 = 5.0
    figures = {
        "rot_1080p_t9_ms": best_ms(
            lambda: rotation_trajectories(orientation, cam, t0, 0.03, 9, out=out), args.repeat),
        "rot_1080p_t9_write_only_ms": best_ms(lambda: write_only(out), args.repeat),
        "rot_1080p_t9_alloc_ms": best_ms(
            lambda: rotation_trajectories(orientation, cam, t0, 0.03, 9), args.repeat),
        "rot_1080p_t9_fisheye_ms": best_ms(
            lambda: rotation_trajectories(orientation, fisheye, t0, 0.03, 9, out=out),
            args.repeat),
        "rot_1080p_t9_numpy_ms": best_ms(
            lambda: numpy_rotation(orientation, cam, t0, 0.03, 9), max(2, args.repeat // 3)),
    }

    small = cam.rescaled(960, 540)
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 1, (1080, 1920)).astype(np.float32)
    scene = sum(cv2.GaussianBlur(noise, (0, 0), s) for s in (1.5, 4.0, 10.0))
    scene = cv2.normalize(scene, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    a = cv2.resize(scene, (960, 540), interpolation=cv2.INTER_AREA)
    b = cv2.warpAffine(a, np.float32([[1, 0, 2.5], [0, 1, -1.5]]), (960, 540))
    t_a = sample_times(small, t0, 0.03, 2)[1]
    t_b = sample_times(small, t0 + 1 / 30, 0.03, 2)[1]

    def translation_step():
        pv = pair_velocity(a, b, orientation, small, t_a, t_b)
        combine_velocities([pv.tau_a], [pv.valid_a])

    figures["tran_540p_ms"] = best_ms(translation_step, args.repeat)
    # A typical mask: the border the flow leaves and a few occluded blobs, 5% invalid.
    ys, xs = np.mgrid[0:540, 0:960]
    holes = (xs < 8) | (ys > 530) | (np.sin(xs / 41.0) * np.sin(ys / 29.0) > 0.93)
    tau = rng.normal(0, 50, (540, 960, 2)).astype(np.float32)
    figures["fill_540p_ms"] = best_ms(lambda: fill_nearest(tau, ~holes), args.repeat)
    figures["fill_540p_scipy_ms"] = best_ms(lambda: scipy_fill(tau, ~holes), args.repeat)
    if args.long_log:
        figures |= long_log_figures()
    figures = {k: round(v, 1) for k, v in figures.items()}
    figures["rot_speedup_vs_numpy"] = round(
        figures["rot_1080p_t9_numpy_ms"] / figures["rot_1080p_t9_ms"], 1)
    figures["fill_speedup_vs_scipy"] = round(
        figures["fill_540p_scipy_ms"] / figures["fill_540p_ms"], 1)

    if args.json:
        print(json.dumps(figures))
        return
    rows = [
        ("rotation, 1920x1080, T=9, pinhole + rolling shutter", "rot_1080p_t9_ms", "<= 60"),
        ("  same, allocating a fresh output", "rot_1080p_t9_alloc_ms", ""),
        ("  same, fisheye distortion", "rot_1080p_t9_fisheye_ms", ""),
        ("  same, numpy broadcasting (before)", "rot_1080p_t9_numpy_ms", ""),
        ("  writing the output only (the bound)", "rot_1080p_t9_write_only_ms", ""),
        ("translation step, 960x540 pair (DIS both ways)", "tran_540p_ms", "<= 250"),
        ("  its nearest-valid fill, 5% holes", "fill_540p_ms", ""),
        ("  same, scipy distance transform (before)", "fill_540p_scipy_ms", ""),
    ]
    if args.long_log:
        rows += [("an hour of 1 kHz plain CSV log, read", "long_log_read_ms", ""),
                 ("  its orientation over a frame's span", "long_log_span_ms", ""),
                 ("  same, over the whole hour (before)", "long_log_whole_ms", "")]
    print(f"{'figure':52s} {'ms':>8s} {'target':>8s}")
    for label, key, target in rows:
        print(f"{label:52s} {figures[key]:8.1f} {target:>8s}")
    print(f"compiled rotation kernel vs numpy: {figures['rot_speedup_vs_numpy']}x faster")
    print(f"compiled fill vs scipy: {figures['fill_speedup_vs_scipy']}x faster")


if __name__ == "__main__":
    main()
