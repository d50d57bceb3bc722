"""Inference speed and peak memory of the shipped models on this machine.

Prints a table; with ``--json`` one JSON object. For each shipped model: milliseconds per frame
and frames per second at 480x270 and 1280x720 on the CPU (2 threads, float32, no_grad; the
models' fused inference form and the command line's heap policy), and peak resident memory of
the whole process for that run (each measurement runs in a fresh process, so the figures do not
leak into each other); on CUDA too when a GPU is there.
Video models see clips of 5 frames and the time is divided by 5. A net that refines the
classical restoration is timed without it (``bench/deblur.py`` times the two together).

Target: the shipped single-image model at least 10 frames/s at 480x270 on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from timing import measured_in_child, peak_rss_mb  # bench/ is on sys.path as a script

SIZES = {"480x270": (270, 480), "1280x720": (720, 1280)}
FRAMES = 5


def measure(name: str, size: str, device: str, repeat: int) -> dict:
    """One measurement (run in a child process)."""
    import torch

    from gyrodeblur.heap import keep_freed_memory
    from gyrodeblur.models import GyroDVD, load_model, predict

    torch.set_num_threads(2)
    keep_freed_memory()  # as the command line runs
    model, config = load_model(name)
    model = model.to(device)
    height, width = SIZES[size]
    video = isinstance(model, GyroDVD)
    frames = FRAMES if video else 1
    T = config.get("samples", 9)
    shape = (1, frames) if video else (1,)
    batch = {"blurred": torch.rand(*shape, 3, height, width, device=device),
             "rot": torch.randn(*shape, T, 2, height, width, device=device),
             "tran": torch.randn(*shape, T, 2, height, width, device=device)}
    batch["flow"] = batch["tran"]
    batch["estimate"] = torch.rand_like(batch["blurred"])  # read by refining nets only
    times = []
    with torch.no_grad():
        for i in range(repeat + 1):
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            predict(model, batch)
            if device == "cuda":
                torch.cuda.synchronize()
            if i:  # the first run warms up
                times.append((time.perf_counter() - start) / frames)
    ms = 1000 * float(np.median(times))
    result = {"ms_per_frame": round(ms, 1), "fps": round(1000 / ms, 1),
              "peak_rss_mb": peak_rss_mb()}
    if device == "cuda":
        result["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--models", nargs="+", metavar="NAME",
                        help="shipped models to measure (default: all)")
    parser.add_argument("--sizes", nargs="+", choices=SIZES, help="only these sizes")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(*args.child, repeat=args.repeat)))
        return

    import torch

    from gyrodeblur.models import shipped_weights

    if args.repeat < 1:
        parser.error(f"--repeat {args.repeat}: at least 1")
    unknown = set(args.models or []) - set(shipped_weights())
    if unknown:
        parser.error(f"not shipped: {', '.join(sorted(unknown))}")
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    figures: dict[str, dict] = {}
    for name in args.models or sorted(shipped_weights()):
        for device in devices:
            for size in args.sizes or SIZES:
                key = f"{name}/{device}/{size}"
                figures[key] = json.loads(measured_in_child(
                    [__file__, "--child", name, size, device, "--repeat", str(args.repeat)], key))
    if args.json:
        print(json.dumps(figures))
        return
    print(f"{'model / device / size':40s} {'ms/frame':>9s} {'fps':>7s} {'peak MB':>8s}")
    for key, f in figures.items():
        print(f"{key:40s} {f['ms_per_frame']:9.1f} {f['fps']:7.1f} {f['peak_rss_mb']:8d}")


if __name__ == "__main__":
    main()
