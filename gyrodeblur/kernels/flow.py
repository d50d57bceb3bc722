"""Optical flow backends and forward-backward consistency.

A flow backend is a plain function ``(a, b) -> flow``: ``a`` and ``b`` are grayscale uint8
images of one size, ``flow (H, W, 2)`` float32 such that ``a(p) ~ b(p + flow(p))``.
``FLOW_BACKENDS`` maps the names the CLI accepts to those functions; pass any other
function of that form to plug in another estimator (RAFT, a hardware flow engine...).
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numba
import numpy as np

from gyrodeblur.footage import check_unit_range, to_float

FlowBackend = Callable[[np.ndarray, np.ndarray], np.ndarray]


#: Smallest side DIS takes (its pyramid refuses frames under about 12 px).
DIS_MIN_SIDE = 16


def _dis(preset: int) -> FlowBackend:
    def flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        h, w = a.shape
        if min(h, w) >= DIS_MIN_SIDE:
            return cv2.DISOpticalFlow.create(preset).calc(a, b, None)
        # Tiny frames (thumbnails, tests): edges repeated up to the smallest size DIS takes.
        pad = ((0, max(0, DIS_MIN_SIDE - h)), (0, max(0, DIS_MIN_SIDE - w)))
        big = cv2.DISOpticalFlow.create(preset).calc(np.pad(a, pad, mode="edge"),
                                                     np.pad(b, pad, mode="edge"), None)
        return np.ascontiguousarray(big[:h, :w])

    flow.__doc__ = "OpenCV DIS optical flow (Kroeger et al., ECCV 2016)."
    return flow


def farneback_flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """OpenCV Farneback dense flow: slower and smoother than DIS, no learned parts."""
    return cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 5, 21, 5, 7, 1.5,
                                        cv2.OPTFLOW_FARNEBACK_GAUSSIAN)


FLOW_BACKENDS: dict[str, FlowBackend] = {
    "dis": _dis(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM),
    "dis-fast": _dis(cv2.DISOPTICAL_FLOW_PRESET_FAST),
    "farneback": farneback_flow,
}


def check_flow_name(name: str) -> None:
    """Refuse a flow backend name that ``FLOW_BACKENDS`` does not have.

    Example:
        >>> check_flow_name("raft")
        Traceback (most recent call last):
        ...
        ValueError: flow 'raft': choose one of dis, dis-fast, farneback
    """
    if name not in FLOW_BACKENDS:
        raise ValueError(f"flow {name!r}: choose one of {', '.join(FLOW_BACKENDS)}")


def flow_backend(flow: str | FlowBackend) -> FlowBackend:
    """The backend ``FLOW_BACKENDS`` names ``flow``, or ``flow`` itself when it is a function
    ``(prev, next) -> (H, W, 2)`` flow.

    Example:
        >>> flow_backend("farneback") is flow_backend(farneback_flow) is farneback_flow
        True
        >>> flow_backend(3)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        TypeError: flow is a backend's name (dis, dis-fast, farneback) or a function ...
    """
    if isinstance(flow, str):
        check_flow_name(flow)
        return FLOW_BACKENDS[flow]
    if not callable(flow):
        raise TypeError(f"flow is a backend's name ({', '.join(FLOW_BACKENDS)}) or a function "
                        f"(prev, next) -> flow, got {type(flow).__name__}")
    return flow


def to_gray_u8(image: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` float RGB in ``[0, 1]`` (or uint8, uint16; or a gray ``(H, W)``) to a
    uint8 gray image for flow.

    Raises:
        ValueError: other integer types, float values far outside ``[0, 1]`` (0..255 floats
            would be all white), non-finite ones.

    Example:
        >>> to_gray_u8(np.full((1, 1, 3), 65535, np.uint16)).tolist()
        [[255]]
    """
    image = np.asarray(image)
    check_unit_range(image, "frame")
    if image.dtype != np.uint8:
        image = np.clip(to_float(image) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image


@numba.njit(parallel=True, cache=True, fastmath=True)
def _consistent(forward: np.ndarray, backward: np.ndarray, out: np.ndarray) -> None:
    height, width = out.shape
    for y in numba.prange(height):
        for x in range(width):
            fx, fy = forward[y, x, 0], forward[y, x, 1]
            tx, ty = x + fx, y + fy
            if not (0.0 <= tx <= width - 1 and 0.0 <= ty <= height - 1):
                out[y, x] = False
                continue
            x0, y0 = min(int(tx), max(width - 2, 0)), min(int(ty), max(height - 2, 0))
            x1, y1 = min(x0 + 1, width - 1), min(y0 + 1, height - 1)
            ax, ay = tx - x0, ty - y0
            b = np.empty(2, np.float32)
            for c in range(2):
                top = (1 - ax) * backward[y0, x0, c] + ax * backward[y0, x1, c]
                bottom = (1 - ax) * backward[y1, x0, c] + ax * backward[y1, x1, c]
                b[c] = (1 - ay) * top + ay * bottom
            err = (fx + b[0]) ** 2 + (fy + b[1]) ** 2
            out[y, x] = err <= 0.01 * (fx * fx + fy * fy + b[0] * b[0] + b[1] * b[1]) + 0.5


def consistent(forward: np.ndarray, backward: np.ndarray) -> np.ndarray:
    """Forward-backward consistency mask of a flow pair (Sundaram et al., ECCV 2010).

    ``p`` is valid where following ``forward`` then ``backward`` (sampled bilinearly at
    ``p + f``) returns near ``p``: ``|f + b(p + f)|^2 <= 0.01 (|f|^2 + |b(p + f)|^2) + 0.5``,
    and ``p + f`` is inside the image.

    Example:
        >>> f = np.full((4, 5, 2), 0.5, np.float32)
        >>> ok = consistent(f, -f)  # the last row and column flow out of the image
        >>> bool(ok[:3, :4].all()), bool(ok[3].any()), bool(consistent(f, f).any())
        (True, False, False)
    """
    forward, backward = np.asarray(forward), np.asarray(backward)
    if forward.ndim != 3 or forward.shape[2] != 2 or backward.shape != forward.shape:
        raise ValueError(f"need two flows (H, W, 2) of one size; got {forward.shape} and "
                         f"{backward.shape}")
    out = np.empty(forward.shape[:2], bool)
    _consistent(np.ascontiguousarray(forward, np.float32),
                np.ascontiguousarray(backward, np.float32), out)
    return out
