"""Tests of the heap policy."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gyrodeblur.heap import _libc

# A fresh process (the policy is process-wide) allocates three 8 MB buffers, touches every
# page, frees them, and again; it prints the page faults per round of the later rounds. By
# default glibc trims the heap top once more than twice the largest freed buffer lies free
# there, so each round faults two of the buffers (4096 pages) back in; kept buffers, none.
SCRIPT = """
import ctypes, resource, sys
from gyrodeblur.heap import _libc, keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
libc, size = _libc(), 8 << 20
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
def round():
    buffers = [libc.malloc(size) for _ in range(3)]
    for b in buffers:
        ctypes.memset(b, 1, size)
    for b in reversed(buffers):
        libc.free(b)
round(); round()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4):
    round()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) // 4)
"""


def faults_per_round(policy: str) -> int:
    done = subprocess.run([sys.executable, "-c", SCRIPT, policy], capture_output=True,
                          text=True, check=True)
    return int(done.stdout)


@pytest.mark.skipif(_libc() is None, reason="heap policy is glibc's")
def test_kept_buffers_are_reused_without_page_faults() -> None:
    assert faults_per_round("default") > 2048  # 8 MB is 2048 pages
    assert faults_per_round("keep") < 100
