"""Optical flow backends and forward-backward consistency.

A flow backend is a plain function ``(a, b) -> flow``: ``a`` and ``b`` are grayscale uint8
images of one size, ``flow (H, W, 2)`` float32 such that ``a(p) ~ b(p + flow(p))``.
``FLOW_BACKENDS`` maps the names the CLI accepts to those functions; pass any other
function of that form to plug in another estimator (RAFT, a hardware flow engine...).
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

FlowBackend = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _dis(preset: int) -> FlowBackend:
    def flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return cv2.DISOpticalFlow.create(preset).calc(a, b, None)

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


def to_gray_u8(image: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` float RGB in ``[0, 1]`` (or uint8) to a uint8 gray image for flow."""
    if image.dtype != np.uint8:
        image = np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image


def sample_field(field: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Bilinear sample of an ``(H, W, C)`` field at pixel positions ``at (H, W, 2)``.

    Positions outside the image clamp to the border.

    Example:
        >>> f = np.arange(6, dtype=np.float32).reshape(2, 3, 1)
        >>> float(sample_field(f, np.full((1, 1, 2), 0.5, np.float32))[0, 0, 0])
        2.0
    """
    at = at.astype(np.float32, copy=False)
    return cv2.remap(field, at[..., 0], at[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE).reshape(at.shape[:2] + field.shape[2:])


def pixel_grid(height: int, width: int) -> np.ndarray:
    """``(H, W, 2)`` float32 pixel-centre coordinates ``(x, y)``."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    return np.stack([xs, ys], axis=-1)


def consistent(forward: np.ndarray, backward: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Forward-backward consistency mask of a flow pair (Sundaram et al., ECCV 2010).

    ``p`` is valid where following ``forward`` then ``backward`` returns near ``p``:
    ``|f + b(p + f)|^2 <= 0.01 (|f|^2 + |b(p + f)|^2) + 0.5`` and ``p + f`` is inside.

    Example:
        >>> g = pixel_grid(4, 5); f = np.full((4, 5, 2), 0.5, np.float32)
        >>> ok = consistent(f, -f, g)  # the last row and column flow out of the image
        >>> bool(ok[:3, :4].all()), bool(ok[3].any()), bool(consistent(f, f, g).any())
        (True, False, False)
    """
    height, width = forward.shape[:2]
    target = grid + forward
    back = sample_field(backward, target)
    err = np.sum((forward + back) ** 2, axis=-1)
    bound = 0.01 * (np.sum(forward**2, axis=-1) + np.sum(back**2, axis=-1)) + 0.5
    inside = ((target[..., 0] >= 0) & (target[..., 0] <= width - 1)
              & (target[..., 1] >= 0) & (target[..., 1] <= height - 1))
    return (err <= bound) & inside
