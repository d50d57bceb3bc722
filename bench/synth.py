"""Speed of blur synthesis on this machine.

Prints a table; with ``--json`` one JSON object with ``blur_720p_t16_ms`` (one 1280x720 RGB
image blurred along T = 16 smooth rotation-like trajectories on CPU, sRGB in and out), plus the
other figures of the table: the same with highlight saturation, the ``F.grid_sample`` form the
compiled kernel replaced (timed in the same run, for the speed-up ratio), and the CUDA path
when ``torch.cuda.is_available()``.

Target on the 2-core machines: <= 150 ms per 720p image at T = 16.
"""

from __future__ import annotations

import argparse
import json

import torch
from timing import best_ms  # bench/ is on sys.path when run as a script

from gyrodeblur.synthesis.blur import _blur_grid_sample, blur


def scene(T: int, H: int, W: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A random sharp image and a camera-shake-like trajectory: a 0.6 degree roll about the
    centre plus a (16, 6) px shift over the exposure."""
    sharp = torch.rand(1, 3, H, W, generator=torch.Generator().manual_seed(0))
    s = torch.linspace(-0.5, 0.5, T)[:, None, None]
    ys, xs = torch.meshgrid(torch.arange(H, dtype=torch.float32) - (H - 1) / 2,
                            torch.arange(W, dtype=torch.float32) - (W - 1) / 2, indexing="ij")
    angle = 0.01 * s
    dx = (torch.cos(angle) - 1) * xs - torch.sin(angle) * ys + 16 * s
    dy = torch.sin(angle) * xs + (torch.cos(angle) - 1) * ys + 6 * s
    return sharp, torch.stack((dx, dy), 1)[None].contiguous()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error(f"--repeat {args.repeat}: at least 1")

    sharp, traj = scene(16, 720, 1280)
    figures = {
        "blur_720p_t16_ms": best_ms(lambda: blur(sharp, traj), args.repeat),
        "blur_720p_t16_saturation_ms": best_ms(lambda: blur(sharp, traj, saturation=4.0),
                                               args.repeat),
        "blur_720p_t16_grid_sample_ms": best_ms(lambda: _blur_grid_sample(sharp, traj, None),
                                                max(2, args.repeat // 3)),
    }
    if torch.cuda.is_available():
        s, t = sharp.cuda(), traj.cuda()
        figures["blur_720p_t16_cuda_ms"] = best_ms(lambda: blur(s, t), args.repeat,
                                                   torch.cuda.synchronize)
    figures = {k: round(v, 1) for k, v in figures.items()}
    figures["blur_speedup_vs_grid_sample"] = round(
        figures["blur_720p_t16_grid_sample_ms"] / figures["blur_720p_t16_ms"], 1)

    if args.json:
        print(json.dumps(figures))
        return
    rows = [
        ("blur, 1280x720, T=16, CPU (numba)", "blur_720p_t16_ms", "<= 150"),
        ("  same, with highlight saturation", "blur_720p_t16_saturation_ms", ""),
        ("  same, F.grid_sample on CPU (before)", "blur_720p_t16_grid_sample_ms", ""),
        ("  same, CUDA (F.grid_sample)", "blur_720p_t16_cuda_ms", ""),
    ]
    print(f"{'figure':52s} {'ms':>8s} {'target':>8s}")
    for label, key, target in rows:
        if key in figures:
            print(f"{label:52s} {figures[key]:8.1f} {target:>8s}")
    print(f"compiled blur vs grid_sample: {figures['blur_speedup_vs_grid_sample']}x faster")


if __name__ == "__main__":
    main()
