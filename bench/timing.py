"""Timing shared by the bench scripts."""

from __future__ import annotations

import time

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
