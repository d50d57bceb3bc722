"""Blur synthesis: a sharp image averaged along per-pixel trajectories, in linear light.

Implements the blur formation of CONVENTIONS in gather form,
``B(p) = (1/T) sum_i S(p + traj[i](p))``, ``S`` sampled bilinearly. Samples that fall outside
the image take the value of the nearest border pixel (the coordinate is clamped to
``[0, W-1] x [0, H-1]`` before interpolation, as ``grid_sample(padding_mode="border")``).

CPU tensors go through compiled numba loops (sRGB decode, then one fused gather, average and
re-encode; the 12 scalar loads of each bilinear sample bound the speed), about 5x faster than
``F.grid_sample`` on CPU; other devices use ``F.grid_sample``. Both agree to float32 rounding.
"""

from __future__ import annotations

import math
from typing import Any, TypeVar

import numba
import numpy as np
import torch
import torch.nn.functional as F

from gyrodeblur.errors import is_whole
from gyrodeblur.footage import float_image

Array = TypeVar("Array", torch.Tensor, np.ndarray)

#: sRGB value at or above which a pixel counts as clipped for ``saturation``.
SATURATION_THRESHOLD = 0.98


def _floats(x: Array | float, call: str) -> tuple[Array, Any]:
    """``x`` as a tensor or an array of floats (a number as a float64 array), and its module;
    integers, an image as stored, are refused: their scale is not [0, 1]."""
    if isinstance(x, torch.Tensor):
        floating = x.is_floating_point()
    else:
        x = np.asarray(x, np.float64) if isinstance(x, int | float) else np.asarray(x)
        floating = np.issubdtype(x.dtype, np.floating)
    if not floating:
        raise TypeError(f"{call} takes values in [0, 1] as floats, got {x.dtype}: an image "
                        "as stored is float_image(image) first")
    return x, torch if isinstance(x, torch.Tensor) else np


def srgb_to_linear(x: Array) -> Array:
    """Inverse sRGB transfer (IEC 61966-2-1), for a torch tensor or a numpy array.

    Example:
        >>> round(float(srgb_to_linear(torch.tensor(0.5))), 5)
        0.21404
        >>> srgb_to_linear(np.array([0.0, 1.0], np.float32)).tolist()
        [0.0, 1.0]
    """
    x, xp = _floats(x, "srgb_to_linear")
    # The clip keeps the unused branch finite for negative inputs (no NaN, no warning).
    return xp.where(x <= 0.04045, x / 12.92, ((x.clip(0.04045) + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: Array) -> Array:
    """Forward sRGB transfer (IEC 61966-2-1), for a torch tensor or a numpy array.

    Example:
        >>> round(float(linear_to_srgb(torch.tensor(0.21404))), 4)
        0.5
    """
    x, xp = _floats(x, "linear_to_srgb")
    return xp.where(x <= 0.0031308, x * 12.92, 1.055 * x.clip(0.0031308) ** (1 / 2.4) - 0.055)


# float32 constants keep numba on powf: float64 pow doubles the cost of the whole blur's
# sRGB conversions.
@numba.njit(cache=True, fastmath=True, inline="always")
def _decode(v: np.float32) -> np.float32:
    if v <= np.float32(0.04045):
        return v * np.float32(1 / 12.92)
    return ((v + np.float32(0.055)) * np.float32(1 / 1.055)) ** np.float32(2.4)


@numba.njit(cache=True, fastmath=True, inline="always")
def _encode(v: np.float32) -> np.float32:
    if v <= np.float32(0.0031308):
        return v * np.float32(12.92)
    return np.float32(1.055) * v ** np.float32(1 / 2.4) - np.float32(0.055)


@numba.njit(cache=True, fastmath=True, inline="always")
def bilinear_weights(ax: np.float32, ay: np.float32
                      ) -> tuple[np.float32, np.float32, np.float32, np.float32]:
    """Weights of the taps ``(x0, y0), (x1, y0), (x0, y1), (x1, y1)`` at fractions ``ax, ay``."""
    one = np.float32(1.0)
    return (one - ax) * (one - ay), ax * (one - ay), (one - ax) * ay, ax * ay


@numba.njit(parallel=True, cache=True, fastmath=True)
def _linearize(sharp: np.ndarray, gain: float, out: np.ndarray) -> None:
    """Planar sRGB ``(B, 3, H, W)`` -> linear ``(B, H, W, 4)``, clipped values times ``gain``.

    The 4th channel is padding, never written or read: a tap of the gather then reads within
    one aligned 16-byte slot.
    """
    B, _, H, W = sharp.shape
    gain32 = np.float32(gain)
    for r in numba.prange(B * H):
        b, y = r // H, r % H
        for x in range(W):
            for c in range(3):
                v = sharp[b, c, y, x]
                lin = _decode(v)
                out[b, y, x, c] = lin * gain32 if v >= np.float32(SATURATION_THRESHOLD) else lin


def njit_scalar_loops(signature: str):
    """``numba.njit`` with LLVM's loop vectoriser off for this one function.

    On AVX-512 it turns the gather loop into vector gathers that run slower than scalar code
    (1280x720, T = 16: ~97 ms scalar against ~140 ms vectorised). The switch is global, so
    it is flipped only around this eager compilation.
    """
    def compile_(fn):
        saved = numba.config.LOOP_VECTORIZE
        numba.config.LOOP_VECTORIZE = 0
        try:
            return numba.njit(signature, parallel=True, cache=True, fastmath=True)(fn)
        finally:
            numba.config.LOOP_VECTORIZE = saved
    return compile_


@njit_scalar_loops("void(f4[:, :, :, ::1], f4[:, :, :, :, ::1], i8, b1, f4[:, :, :, ::1])")
def _gather_mean_encode(src: np.ndarray, traj: np.ndarray, subsamples: int, clip: bool,
                        out: np.ndarray) -> None:
    """``out[b, :, y, x] = encode(mean_i bilinear(src[b], (x, y) + traj[b, i, :, y, x]))``
    over the trajectory with ``subsamples - 1`` points interpolated in each interval, clipped
    to 1 first when ``clip``. Indices are unsigned so numba emits no negative-index
    wraparound code."""
    B, T, _, H, W = traj.shape
    points = (T - 1) * subsamples + 1
    xmax, ymax = np.float32(W - 1), np.float32(H - 1)
    zero, one = np.float32(0.0), np.float32(1.0)
    u1, u4, uW = np.uint64(1), np.uint64(4), np.uint64(W)
    last_x, last_y = np.uint64(W - 1), np.uint64(H - 1)
    scale = np.float32(1.0 / points)
    for r in numba.prange(B * H):
        b, y = r // H, r % H
        s = src[b].reshape(H * W * 4)
        acc = np.zeros(W * 4, np.float32)
        between_x, between_y = np.empty(W, np.float32), np.empty(W, np.float32)
        for j in range(points):
            i = j // subsamples  # the last point is the last sample, at fraction 0
            frac = np.float32((j % subsamples) / subsamples)
            tdx, tdy = traj[b, i, 0, y], traj[b, i, 1, y]
            if frac > zero:  # a point of this row between samples i and i + 1
                for xi in range(W):
                    between_x[xi] = tdx[xi] + frac * (traj[b, i + 1, 0, y, xi] - tdx[xi])
                    between_y[xi] = tdy[xi] + frac * (traj[b, i + 1, 1, y, xi] - tdy[xi])
                tdx, tdy = between_x, between_y
            for xi in range(W):
                x = np.uint64(xi)
                tx = min(max(np.float32(xi) + tdx[x], zero), xmax)
                ty = min(max(np.float32(y) + tdy[x], zero), ymax)
                x0, y0 = np.uint64(tx), np.uint64(ty)
                x1, y1 = min(x0 + u1, last_x), min(y0 + u1, last_y)
                ax, ay = tx - np.float32(x0), ty - np.float32(y0)
                o00, o01 = (y0 * uW + x0) * u4, (y0 * uW + x1) * u4
                o10, o11 = (y1 * uW + x0) * u4, (y1 * uW + x1) * u4
                w00, w01, w10, w11 = bilinear_weights(ax, ay)
                a = u4 * x
                for k in range(3):
                    c = np.uint64(k)
                    acc[a + c] += (w00 * s[o00 + c] + w01 * s[o01 + c]
                                   + w10 * s[o10 + c] + w11 * s[o11 + c])
        for c in range(3):
            for x in range(W):
                m = acc[4 * x + c] * scale
                out[b, c, y, x] = _encode(min(m, one) if clip else m)


def _blur_numba(sharp: torch.Tensor, traj: torch.Tensor, saturation: float | None,
                subsamples: int = 1) -> torch.Tensor:
    B, _, H, W = sharp.shape
    src = np.empty((B, H, W, 4), np.float32)
    _linearize(sharp.detach().float().contiguous().numpy(),
               1.0 if saturation is None else float(saturation), src)
    out = np.empty((B, 3, H, W), np.float32)
    _gather_mean_encode(src, traj.detach().float().contiguous().numpy(), subsamples,
                        saturation is not None, out)
    return torch.from_numpy(out)


def interpolate_samples(traj: np.ndarray | torch.Tensor, subsamples: int) -> torch.Tensor:
    """``(..., T, 2, H, W)`` trajectories with ``subsamples - 1`` points on the straight line
    inside each interval: ``(..., (T - 1) * subsamples + 1, 2, H, W)``.

    Example:
        >>> traj = torch.tensor([0.0, 3.0]).view(2, 1, 1, 1).expand(2, 2, 1, 1)
        >>> interpolate_samples(traj, 3)[:, 0, 0, 0].tolist()
        [0.0, 1.0, 2.0, 3.0]
    """
    traj = _checked_layout(traj)
    if subsamples == 1 or traj.shape[-4] < 2:
        return traj
    frac = torch.arange(subsamples, dtype=traj.dtype, device=traj.device) / subsamples
    start = traj[..., :-1, None, :, :, :]
    step = (traj[..., 1:, :, :, :] - traj[..., :-1, :, :, :])[..., None, :, :, :]
    points = start + frac.view(-1, 1, 1, 1) * step  # (..., T - 1, subsamples, 2, H, W)
    return torch.cat([points.flatten(-5, -4), traj[..., -1:, :, :, :]], -4)


def continuous_subsamples(traj: np.ndarray | torch.Tensor, step: float = 0.5) -> int:
    """The ``subsamples`` of :func:`blur` that bring consecutive points of ``traj``
    ``(..., T, 2, H, W)`` within ``step`` pixels everywhere, so that a blur longer than the
    samples' spacing integrates continuously, as a sensor does, instead of adding ``T``
    shifted copies.

    Example:
        >>> traj = np.zeros((9, 2, 1, 1), np.float32); traj[:, 0, 0, 0] = np.arange(9) * 5.7
        >>> continuous_subsamples(traj)
        12
    """
    traj = _checked_layout(traj)
    gaps = (traj[..., 1:, :, :, :] - traj[..., :-1, :, :, :]).square().sum(-3).sqrt()
    gaps = gaps[gaps.isfinite()]  # pixels without a ray (NaN) have no blur to integrate
    return max(1, math.ceil(float(gaps.max()) / step)) if gaps.numel() else 1


def _checked_layout(traj: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``traj`` as a tensor, refused unless it is ``(..., T, 2, H, W)`` floats."""
    traj = torch.as_tensor(traj)
    if traj.ndim < 4 or traj.shape[-3] != 2 or not traj.is_floating_point():
        raise ValueError(f"traj must be (..., T, 2, H, W) floats, got {tuple(traj.shape)} "
                         f"{traj.dtype}")
    return traj


def _blur_grid_sample(sharp: torch.Tensor, traj: torch.Tensor, saturation: float | None,
                      subsamples: int = 1) -> torch.Tensor:
    traj = interpolate_samples(traj, subsamples)
    B, T, _, H, W = traj.shape
    linear = srgb_to_linear(sharp.float())
    if saturation is not None:
        linear = torch.where(sharp >= SATURATION_THRESHOLD, linear * saturation, linear)
    traj = traj.float()
    xs = torch.arange(W, dtype=traj.dtype, device=traj.device)
    ys = torch.arange(H, dtype=traj.dtype, device=traj.device)[:, None]
    # Normalised coordinates for align_corners=True: pixel centres 0 and W-1 map to -1 and 1.
    gx = (traj[:, :, 0] + xs) * (2 / max(W - 1, 1)) - 1
    gy = (traj[:, :, 1] + ys) * (2 / max(H - 1, 1)) - 1
    # The T samples are stacked along the height of one grid, so the image is not copied T times.
    grid = torch.stack((gx, gy), -1).reshape(B, T * H, W, 2)
    mean = F.grid_sample(linear, grid, mode="bilinear", padding_mode="border",
                         align_corners=True).view(B, 3, T, H, W).mean(2)
    return linear_to_srgb(mean if saturation is None else mean.clamp(max=1.0))


def blur(sharp: torch.Tensor, traj: torch.Tensor, *,
         saturation: float | None = None, subsamples: int = 1) -> torch.Tensor:
    """Blur sharp sRGB images along per-pixel trajectories, averaging in linear light.

    Each pixel ``p`` becomes the mean of ``T`` bilinear samples ``S(p + traj[i](p))`` of the
    linearised sharp image (CONVENTIONS' blur formation); samples outside the image clamp to
    the border. The mean is re-encoded to sRGB. With ``subsamples`` ``s > 1`` the trajectory
    is first given ``s - 1`` points on the straight line inside each interval
    (:func:`interpolate_samples`, ``(T - 1) s + 1`` points in all): what the synthesis uses
    (:func:`continuous_subsamples`) so that long blur is continuous, as a sensor integrates
    it, not ``T`` copies.

    Args:
        sharp: ``(B, 3, H, W)`` float32 sRGB in ``[0, 1]``.
        traj: ``(B, T, 2, H, W)`` float32 trajectories in pixels, on the device of ``sharp``.
        subsamples: points per interval between consecutive samples (1: the samples only).
        saturation: highlight gain ``g >= 1``, or None for none. Linear values of pixels at
            or above sRGB ``SATURATION_THRESHOLD`` (0.98: clipped in the source) are multiplied
            by ``g`` before averaging and the mean is clipped to 1, so clipped lights stay
            bright along their streaks as real lights brighter than white would.

    Returns:
        ``(B, 3, H, W)`` float32 blurred sRGB, on the device of ``sharp``; differentiable
        (for a reblur loss) where ``sharp`` or ``traj`` requires grad, on the CPU too.

    Example:
        >>> sharp = torch.zeros(1, 3, 1, 4); sharp[..., 1] = 1.0
        >>> traj = torch.zeros(1, 2, 2, 1, 4); traj[:, 1, 0] = 1.0  # half the time one px right
        >>> [round(v, 4) for v in srgb_to_linear(blur(sharp, traj))[0, 0, 0].tolist()]
        [0.5, 0.5, 0.0, 0.0]
    """
    if not (isinstance(sharp, torch.Tensor) and isinstance(traj, torch.Tensor)):
        raise TypeError("sharp and traj must be torch tensors (blur_image takes NumPy arrays)")
    if not (sharp.is_floating_point() and traj.is_floating_point()):
        raise ValueError(f"sharp and traj must be float tensors, got {sharp.dtype} and "
                         f"{traj.dtype} (an image in [0, 1], trajectories in pixels)")
    if sharp.ndim != 4 or sharp.shape[1] != 3:
        raise ValueError(f"sharp must be (B, 3, H, W), got {tuple(sharp.shape)}")
    B, _, H, W = sharp.shape
    if traj.ndim != 5 or traj.shape[0] != B or traj.shape[2] != 2 or traj.shape[3:] != (H, W):
        raise ValueError(f"traj must be (B, T, 2, H, W) = ({B}, T, 2, {H}, {W}), "
                         f"got {tuple(traj.shape)}")
    if traj.shape[1] < 1:
        raise ValueError("traj has no samples (T = 0)")
    # NaN and inf carry through a sum, 20x faster than testing each value (which is done
    # only where the sum is not finite: large finite values may overflow it).
    detached = traj.detach()
    if not (bool(torch.isfinite(detached.sum())) or bool(torch.isfinite(detached).all())):
        raise ValueError("traj has non-finite values (NaN: pixels without a ray through the "
                         "lens, which kernels.rotation.still_where_no_ray makes still)")
    if saturation is not None and not 1 <= saturation < math.inf:
        raise ValueError(f"saturation is a finite gain >= 1, got {saturation}")
    if not is_whole(subsamples, at_least=1):
        raise ValueError(f"subsamples must be an int >= 1, got {subsamples!r}")
    if sharp.numel():
        low, high = (float(v) for v in torch.aminmax(sharp.detach()))
        if low < -0.5 or high > 1.5:  # an image of 0..255 given as floats, most likely
            raise ValueError(f"sharp: float values must lie in [0, 1], got {low:.4g} to "
                             f"{high:.4g} (0..255 floats?)")
    if sharp.device.type == "cpu" and not (sharp.requires_grad or traj.requires_grad):
        return _blur_numba(sharp, traj, saturation, subsamples)
    # The same blur in torch operations: other devices, and gradients (numba has none).
    return _blur_grid_sample(sharp, traj, saturation, subsamples)


def blur_image(sharp_hwc: np.ndarray, traj: np.ndarray, **kw) -> np.ndarray:
    """NumPy convenience for one image: ``(H, W, 3)`` sRGB (float in ``[0, 1]``, or uint8 or
    uint16) and ``(T, 2, H, W)`` trajectory.

    Keyword arguments go to ``blur``. Returns the ``(H, W, 3)`` float32 blurred sRGB image.

    Example:
        >>> img = np.full((2, 3, 3), 0.25, np.float32)
        >>> out = blur_image(img, np.ones((4, 2, 2, 3), np.float32))
        >>> out.shape, bool(np.allclose(out, 0.25))
        ((2, 3, 3), True)
    """
    sharp_hwc, traj = float_image(sharp_hwc, "sharp"), np.asarray(traj, np.float32)
    H, W = sharp_hwc.shape[:2]
    if traj.ndim != 4 or traj.shape[1] != 2 or traj.shape[2:] != (H, W):
        raise ValueError(f"traj must be (T, 2, H, W) = (T, 2, {H}, {W}) for this image, got "
                         f"{traj.shape}")
    sharp = torch.from_numpy(np.ascontiguousarray(sharp_hwc, np.float32)).permute(2, 0, 1)
    out = blur(sharp[None], torch.from_numpy(traj)[None], **kw)
    return np.ascontiguousarray(out[0].permute(1, 2, 0).numpy())  # as OpenCV draws on it
