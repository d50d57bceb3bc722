"""The C heap's policy for the large buffers of tensors (glibc; elsewhere these do nothing).

PyTorch frees and reallocates its multi-megabyte activations on every forward pass. By default
glibc hands such buffers back to the system when they are freed (as mmap chunks, or by
trimming the top of the heap), so the next pass faults every page back in, zero-filled:
``deepgyro-s`` on a 480x270 frame took 23 k page faults (90 MB) per frame and ran 1.3-1.5x
slower than with the freed buffers kept. :func:`keep_freed_memory` keeps them for reuse;
:func:`release_memory` hands them back where the resident size matters more (between the tiles
of a large frame, whose changing sizes otherwise leave the heap creeping up).
"""

from __future__ import annotations

import ctypes
import functools

_M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_MAX = 32 << 20  # glibc's largest on 64-bit systems
_TRIM_THRESHOLD = 1 << 30


@functools.cache
def _libc() -> ctypes.CDLL | None:
    process = ctypes.CDLL(None)  # the symbols already loaded, the C library's among them
    return process if hasattr(process, "malloc_trim") else None  # glibc only


def keep_freed_memory() -> bool:
    """Keep freed buffers of up to 32 MB in the heap for reuse, for the whole process.

    Returns whether the policy was set (False where the C library is not glibc).

    Example:
        >>> keep_freed_memory() in (True, False)
        True
    """
    libc = _libc()
    if libc is None:
        return False
    # A fixed mmap threshold at glibc's maximum (the default one starts at 128 kB), and no
    # automatic trimming of the heap top below 1 GB free.
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)
                and libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))


def release_memory() -> None:
    """Hand the heap's free memory back to the system now."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
