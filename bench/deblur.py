"""End-to-end deblurring speed and memory on this machine (``gyrodeblur deblur video``).

Prints a table; with ``--json`` one JSON object. Each figure is one run of the whole pipeline
(decode, kernels with optical flow, tiled restoration, PNG output) in a fresh process on
synthetic footage written as H.264, timed after a run on its first frame (numba compiles its
kernels on first use, once per installation; the model's loading is not timed):

- ``s_per_frame_720p_<method>``: seconds per 1280x720 frame for the classical method and each
  shipped model (CPU, 2 threads); ``s_per_frame_720p_<model>_cuda`` the same with the
  network on the GPU (``--device cuda``), when torch has CUDA;
- ``peak_rss_mb_4k_<method>_<frames>f``: peak resident memory of the process deblurring a
  3840x2160 clip of that many frames; two lengths show that it does not grow with the
  length.

Target: peak resident memory at most 3 GB for 4K input of any length on CPU.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

from timing import measured_in_child, peak_rss_mb  # bench/ is on sys.path as a script

SIZES = {"720p": (1280, 720), "4k": (3840, 2160)}


def write_footage(folder: Path, size: str, frames: int, yaw: float = 0.3) -> None:
    """A textured clip panning under a known rotation (``yaw`` rad/s about the vertical axis,
    plus a wobble): video, gyro CSV, camera, frames CSV."""
    import cv2
    import numpy as np

    from gyrodeblur.footage import FrameTiming, VideoWriter, write_frames_csv
    from gyrodeblur.geometry.camera import Camera, save_camera
    from gyrodeblur.geometry.gyro import GyroLog, write_csv
    from gyrodeblur.synthesis.images import skimage_image

    width, height = SIZES[size]
    fps, exposure = 30.0, 1 / 60
    fx = width / 2 / np.tan(np.radians(35))
    save_camera(Camera(width=width, height=height, fx=fx, fy=fx, cx=(width - 1) / 2,
                       cy=(height - 1) / 2, readout_time=0.02), folder / "camera.json")
    t = np.arange(0, frames / fps + 0.5, 1 / 400)
    w = np.stack([0.05 * np.sin(7 * t), yaw + 0.1 * np.sin(5 * t), 0.02 * np.cos(3 * t)], 1)
    write_csv(GyroLog(t, w), folder / "gyro.csv")
    write_frames_csv(FrameTiming(np.arange(1, frames + 1), 0.1 + np.arange(frames) / fps,
                                 np.full(frames, exposure)), folder / "frames.csv")
    big = cv2.resize(skimage_image("astronaut"), (width + 40 * frames, height),
                     interpolation=cv2.INTER_CUBIC)
    with VideoWriter(folder / "clip.mp4", fps) as video:
        for n in range(frames):
            video.write(big[:, 40 * n:40 * n + width])


def measure(method: str, folder: Path, device: str = "cpu") -> dict:
    """One run (in a child process) on the footage in ``folder``: seconds per frame and peak
    resident memory of the process."""
    import torch

    from gyrodeblur.footage import Footage, read_frames_csv
    from gyrodeblur.geometry.camera import load_camera
    from gyrodeblur.geometry.gyro import read_gyro
    from gyrodeblur.heap import keep_freed_memory
    from gyrodeblur.pipelines.deblur import VideoJob, deblur_video, make_restorer

    torch.set_num_threads(2)
    keep_freed_memory()  # as the command line runs
    restorer = (make_restorer("classic", None, True) if method == "classic"
                else make_restorer("net", method, True, device=device))
    timing = read_frames_csv(folder / "frames.csv")
    job = VideoJob(Footage(folder / "clip.mp4"), timing, timing.frame,
                   read_gyro(folder / "gyro.csv"), load_camera(folder / "camera.json"), restorer)
    with tempfile.TemporaryDirectory() as out:
        first = VideoJob(job.footage, timing, timing.frame[:1], job.log, job.camera, restorer)
        deblur_video(first, Path(out) / "warm-up")
        start = time.perf_counter()
        deblur_video(job, Path(out) / "frames")
        seconds = (time.perf_counter() - start) / len(timing)
    return {"s_per_frame": round(seconds, 2), "peak_rss_mb": peak_rss_mb()}


def child(method: str, size: str, frames: int, yaw: float, device: str = "cpu") -> dict:
    """Write the footage here, deblur it in a fresh process."""
    with tempfile.TemporaryDirectory() as tmp:
        write_footage(Path(tmp), size, frames, yaw)
        out = measured_in_child([__file__, "--child", method, tmp, device],
                                f"{method} at {size} on {device}")
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--frames", type=int, default=3, help="frames of the 720p clips")
    parser.add_argument("--methods", nargs="+", metavar="NAME",
                        help="only these methods (classic or shipped model names)")
    parser.add_argument("--sizes", nargs="+", choices=SIZES, help="only these sizes")
    parser.add_argument("--yaw", type=float, default=0.3,
                        help="pan in rad/s: blur of 14 px at 4K (default 0.3), 55 px (1.2)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.frames < 1:
        parser.error(f"--frames {args.frames}: at least 1")
    if not math.isfinite(args.yaw):
        parser.error(f"--yaw {args.yaw}: a number of rad/s")
    if args.child:
        print(json.dumps(measure(args.child[0], Path(args.child[1]), args.child[2])))
        return

    import torch

    from gyrodeblur.models import shipped_weights
    from gyrodeblur.pipelines.deblur import DEFAULT_MODEL

    unknown = set(args.methods or []) - {"classic", *shipped_weights()}
    if unknown:
        parser.error(f"neither classic nor shipped: {', '.join(sorted(unknown))}")
    figures: dict[str, float] = {}
    if not args.json:
        print("| method | size | frames | s / frame | peak RSS (MB) |")
        print("|---|---|---:|---:|---:|", flush=True)
    runs = [(m, "720p", args.frames, "cpu") for m in ["classic", *sorted(shipped_weights())]]
    if torch.cuda.is_available():
        runs += [(m, "720p", args.frames, "cuda") for m in sorted(shipped_weights())]
    # Two lengths for the default net show that memory does not grow with the clip.
    runs_4k = [(m, "4k", f, "cpu") for m, f in ((DEFAULT_MODEL, 2), (DEFAULT_MODEL, 4),
                                                ("deepgyro-path-s", 2), ("gyrodvd-s", 2),
                                                ("classic", 1))]
    runs += runs_4k
    runs = [(m, s, f, d) for m, s, f, d in runs
            if (not args.methods or m in args.methods) and (not args.sizes or s in args.sizes)]
    if not runs:
        parser.error("no run of those methods at those sizes (4K: "
                     f"{', '.join(sorted({m for m, s, _, _ in runs_4k}))})")
    for method, size, frames, device in runs:
        r = child(method, size, frames, args.yaw, device)
        on = "" if device == "cpu" else f"_{device}"
        if size == "720p":
            figures[f"s_per_frame_720p_{method}{on}"] = r["s_per_frame"]
        else:
            figures[f"peak_rss_mb_4k_{method}_{frames}f"] = r["peak_rss_mb"]
        if not args.json:
            width, height = SIZES[size]
            print(f"| {method}{' (GPU)' * bool(on)} | {width}x{height} | {frames} | "
                  f"{r['s_per_frame']:.2f} | {r['peak_rss_mb']} |", flush=True)
    if args.json:
        print(json.dumps(figures))
    else:
        print("target: peak resident memory at most 3072 MB for 4K input of any length")


if __name__ == "__main__":
    main()
