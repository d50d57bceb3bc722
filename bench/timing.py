"""Timing shared by the bench scripts."""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def best_ms(fn, repeat: int, sync=lambda: None) -> float:
    """Median wall time of ``repeat`` calls after one warm-up call, in ms.

    ``sync`` waits for asynchronous work (``torch.cuda.synchronize`` on a GPU).
    """
    fn()
    sync()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def peak_rss_mb() -> int:
    """This process's peak resident memory, MB: Linux's VmHWM, which starts afresh at exec
    (``ru_maxrss`` keeps the parent's peak across the fork and exec that made the process);
    ``ru_maxrss`` elsewhere (bytes on macOS, KB on other systems)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2**20 if sys.platform == "darwin" else 1024))


def measured_in_child(args: list[str], what: str) -> str:
    """The stdout of ``python args`` (a fresh process, so peak memory is its own); its errors
    go straight to stderr, and a failure ends the bench naming ``what`` was measured."""
    out = subprocess.run([sys.executable, *args], stdout=subprocess.PIPE, text=True)
    if out.returncode:
        sys.exit(f"{what}: the measurement failed (above)")
    return out.stdout
