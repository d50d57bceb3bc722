"""The C heap's policy for the large buffers of tensors (glibc; elsewhere these do nothing).

PyTorch frees and reallocates its multi-megabyte activations on every forward pass. By default
glibc hands freed memory at the top of the heap back to the system, so the next pass faults
every page back in, zero-filled: ``deepgyro-s`` on a 480x270 frame took 23 k page faults
(90 MB) per frame and ran 1.3-1.5x slower than with the freed memory kept.
:func:`keep_freed_memory` keeps up to 256 MB of it for reuse; :func:`release_memory` hands it
back where the resident size matters more (between the tiles of a large frame, whose changing
sizes otherwise leave the heap creeping up).
"""

from __future__ import annotations

import ctypes
import functools

_M_TOP_PAD = -2  # mallopt parameters, from glibc's malloc.h
_M_MMAP_THRESHOLD = -3
_TOP_PAD = 256 << 20
_MMAP_THRESHOLD_MAX = 32 << 20  # glibc's largest on 64-bit systems


@functools.cache
def _libc() -> ctypes.CDLL | None:
    process = ctypes.CDLL(None)  # the symbols already loaded, the C library's among them
    return process if hasattr(process, "malloc_trim") else None  # glibc only


def keep_freed_memory() -> bool:
    """Keep up to 256 MB of freed memory at the top of the heap for reuse, for the whole process
    (glibc's ``M_TOP_PAD``), and serve buffers of up to 32 MB from the heap.

    Returns whether the policy was set (False where the C library is not glibc).

    Example:
        >>> keep_freed_memory() in (True, False)
        True
    """
    # Setting any of these fixes glibc's mmap threshold, which otherwise adapts upwards from
    # 128 kB: hence 32 MB, its adaptive maximum. Measured against no trimming at all: both
    # remove the page faults, but that raised a 4K gyrodvd-s tile's peak by 166 MB (1904
    # against 1738 MB by default); this policy does not (1737 MB).
    libc = _libc()
    return libc is not None and bool(libc.mallopt(_M_TOP_PAD, _TOP_PAD)
                                     and libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX))


def release_memory() -> None:
    """Hand the heap's free memory back to the system now."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
