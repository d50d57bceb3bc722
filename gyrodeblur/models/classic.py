"""Classical non-blind deblurring with the per-pixel gyro kernels (no weights needed).

Richardson-Lucy with a total-variation regulariser (RL-TV, Dey et al. 2006) in linear light,
the FastGyro-style baseline and the fallback when no network fits. The forward operator ``A``
is exactly CONVENTIONS' blur formation in gather form,
``(A x)(p) = (1/T) sum_i x(p + traj[i](p))``, bilinear, coordinates clamped to the image as
:func:`gyrodeblur.synthesis.blur.blur` does; ``A^T`` is its exact adjoint, a bilinear
scatter-add. Both share their bilinear taps with the synthesis blur
(:func:`gyrodeblur.synthesis.blur.gather_row`, :func:`gyrodeblur.synthesis.blur.bilinear_tap`).

Images live in ``(H, W, 4)`` float32 buffers inside (the 4th channel is padding, as in the
synthesis gather: one tap reads within an aligned 16-byte slot).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from gyrodeblur.synthesis.blur import (
    _njit_scalar_loops,
    bilinear_tap,
    gather_row,
    linear_to_srgb,
    srgb_to_linear,
)

__all__ = ["blur_adjoint", "blur_linear", "deconvolve"]

# Floor of the predicted blur A x in the RL ratio y / A x (linear light): far below 8-bit
# quantisation, it only keeps black regions from dividing by zero.
_RATIO_FLOOR = 1e-6


@_njit_scalar_loops("void(f4[:, :, ::1], f4[:, :, :, ::1], f4[:, :, ::1])")
def _gather(src: np.ndarray, traj: np.ndarray, out: np.ndarray) -> None:
    """``out = A src`` on ``(H, W, 4)`` buffers (padding channel left untouched)."""
    T, _, H, W = traj.shape
    scale = np.float32(1.0 / T)
    s = src.reshape(H * W * 4)
    for y in numba.prange(H):
        acc = np.zeros(W * 4, np.float32)
        gather_row(s, traj, y, acc)
        for x in range(W):
            for c in range(3):
                out[y, x, c] = acc[4 * x + c] * scale


@_njit_scalar_loops("void(f4[:, :, ::1], f4[:, :, :, ::1], i8, f4[:, :, ::1])")
def _scatter(src: np.ndarray, traj: np.ndarray, reach: int, out: np.ndarray) -> None:
    """``out = A^T src`` on ``(H, W, 4)`` buffers; ``out`` must be zero on entry.

    Taps of row ``y`` land in rows ``y - reach .. y + reach + 1`` (``reach >= max |dy|``).
    Rows are cut into blocks at least ``2 reach + 1`` high, so blocks two apart never write
    the same pixel: even blocks run in parallel, then odd ones. No locks, no per-thread
    copies, and every pixel sums its contributions in the same order whatever the thread
    count, so the result is deterministic.
    """
    T, _, H, W = traj.shape
    scale = np.float32(1.0 / T)
    o = out.reshape(H * W * 4)
    blocks = max(H // (2 * reach + 1), 1)
    for parity in range(2):
        for half in numba.prange((blocks + 1 - parity) // 2):
            block = 2 * half + parity
            for y in range(block * H // blocks, (block + 1) * H // blocks):
                for i in range(T):
                    tdx, tdy = traj[i, 0, y], traj[i, 1, y]
                    for xi in range(W):
                        x = np.uint64(xi)
                        o00, o01, o10, o11, w00, w01, w10, w11 = bilinear_tap(
                            np.float32(xi) + tdx[x], np.float32(y) + tdy[x], W, H)
                        for k in range(3):
                            c = np.uint64(k)
                            v = src[y, xi, k] * scale
                            o[o00 + c] += w00 * v
                            o[o01 + c] += w01 * v
                            o[o10 + c] += w10 * v
                            o[o11 + c] += w11 * v


@numba.njit(parallel=True, cache=True, fastmath=True)
def _ratio(observed: np.ndarray, predicted: np.ndarray) -> None:
    """``predicted <- observed / max(predicted, floor)``, the RL correction before ``A^T``."""
    H, W, _ = predicted.shape
    floor = np.float32(_RATIO_FLOOR)
    for y in numba.prange(H):
        for x in range(W):
            for c in range(3):
                predicted[y, x, c] = observed[y, x, c] / max(predicted[y, x, c], floor)


@numba.njit(parallel=True, cache=True, fastmath=True)
def _unit_gradient(x: np.ndarray, tv_eps: float, gx: np.ndarray, gy: np.ndarray) -> None:
    """``(gx, gy) = grad x / sqrt(|grad x|^2 + tv_eps^2)`` per channel, forward differences,
    zero across the last row and column (Neumann boundary)."""
    H, W, _ = x.shape
    eps2, zero, one = np.float32(tv_eps * tv_eps), np.float32(0.0), np.float32(1.0)
    for y in numba.prange(H):
        for xi in range(W):
            for c in range(3):
                v = x[y, xi, c]
                dx = x[y, xi + 1, c] - v if xi + 1 < W else zero
                dy = x[y + 1, xi, c] - v if y + 1 < H else zero
                inv = one / np.sqrt(dx * dx + dy * dy + eps2)
                gx[y, xi, c], gy[y, xi, c] = dx * inv, dy * inv


@numba.njit(parallel=True, cache=True, fastmath=True)
def _rl_tv_update(x: np.ndarray, correction: np.ndarray, norm: np.ndarray, gx: np.ndarray,
                  gy: np.ndarray, tv_weight: float, out: np.ndarray) -> None:
    """``out = clip(x * (A^T r / A^T 1) / (1 - tv_weight * div(gx, gy)), 0, 1)``.

    Dividing ``A^T r`` by ``A^T 1`` keeps the RL factor a weighted mean of ratios even where
    few taps land (near borders the kernels leave); pixels no tap reaches keep their value.
    The TV factor stays positive for ``tv_weight < 1/4``: the divergence (backward
    differences) of a field of unit vectors lies in ``[-4, 4]``.
    """
    H, W, _ = x.shape
    lam, zero, one = np.float32(tv_weight), np.float32(0.0), np.float32(1.0)
    for y in numba.prange(H):
        for xi in range(W):
            n = norm[y, xi]
            for c in range(3):
                v = x[y, xi, c]
                if n <= zero:
                    out[y, xi, c] = v
                    continue
                div = gx[y, xi, c] + gy[y, xi, c]
                if xi > 0:
                    div -= gx[y, xi - 1, c]
                if y > 0:
                    div -= gy[y - 1, xi, c]
                new = v * correction[y, xi, c] / (n * (one - lam * div))
                out[y, xi, c] = min(max(new, zero), one)


def _check(image: np.ndarray, traj: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Validated float32 contiguous ``(H, W, 3)`` image and ``(T, 2, H, W)`` trajectory, and
    the vertical reach of the taps (for the scatter's row blocks)."""
    image = np.ascontiguousarray(image, np.float32)
    traj = np.ascontiguousarray(traj, np.float32)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be (H, W, 3), got {image.shape}")
    H, W = image.shape[:2]
    if traj.ndim != 4 or traj.shape[1] != 2 or traj.shape[2:] != (H, W) or traj.shape[0] < 1:
        raise ValueError(f"traj must be (T, 2, H, W) = (T, 2, {H}, {W}), got {traj.shape}")
    if not np.isfinite(traj).all():
        raise ValueError("traj has non-finite values")
    # Clamping keeps every tap inside the image, so the reach never exceeds H.
    reach = min(math.ceil(float(np.abs(traj[:, 1]).max())), H)
    return image, traj, reach


def _padded(image: np.ndarray) -> np.ndarray:
    out = np.zeros((*image.shape[:2], 4), np.float32)
    out[..., :3] = image
    return out


def blur_linear(image: np.ndarray, traj: np.ndarray) -> np.ndarray:
    """The forward operator ``A``: blur a linear-light image along per-pixel trajectories.

    ``(A x)(p) = (1/T) sum_i x(p + traj[i](p))``, bilinear, coordinates clamped to the image;
    :func:`gyrodeblur.synthesis.blur.blur_image` is ``linear_to_srgb(A srgb_to_linear(.))``.
    No clipping and no transfer curve: the operator is linear.

    Args:
        image: ``(H, W, 3)`` float32 image (any values; linear light for deblurring).
        traj: ``(T, 2, H, W)`` float32 trajectories in pixels (CONVENTIONS).

    Returns:
        ``(H, W, 3)`` float32 ``A image``.

    Example:
        >>> img = np.zeros((1, 4, 3), np.float32); img[0, 1] = 1.0
        >>> traj = np.zeros((2, 2, 1, 4), np.float32); traj[1, 0] = 1.0  # half the time 1 px right
        >>> blur_linear(img, traj)[0, :, 0].tolist()
        [0.5, 0.5, 0.0, 0.0]
    """
    image, traj, _ = _check(image, traj)
    out = np.zeros((*image.shape[:2], 4), np.float32)
    _gather(_padded(image), traj, out)
    return out[..., :3].copy()


def blur_adjoint(image: np.ndarray, traj: np.ndarray) -> np.ndarray:
    """The exact adjoint ``A^T`` of :func:`blur_linear`: a bilinear scatter-add.

    Each pixel ``p`` spreads ``image(p) / T`` onto the four neighbours of every tap
    ``p + traj[i](p)`` (clamped to the image) with the bilinear weights of ``A``, so
    ``<A x, y> = <x, A^T y>``. Deterministic: the sum order does not depend on threads.

    Args:
        image: ``(H, W, 3)`` float32 image.
        traj: ``(T, 2, H, W)`` float32 trajectories in pixels (CONVENTIONS).

    Returns:
        ``(H, W, 3)`` float32 ``A^T image``.

    Example:
        >>> img = np.zeros((1, 4, 3), np.float32); img[0, 0] = 1.0
        >>> traj = np.zeros((2, 2, 1, 4), np.float32); traj[1, 0] = 1.5
        >>> blur_adjoint(img, traj)[0, :, 0].tolist()
        [0.5, 0.25, 0.25, 0.0]
    """
    image, traj, reach = _check(image, traj)
    out = np.zeros((*image.shape[:2], 4), np.float32)
    _scatter(_padded(image), traj, reach, out)
    return out[..., :3].copy()


def deconvolve(blurred: np.ndarray, traj: np.ndarray, iterations: int = 30,
               tv_weight: float = 0.003, tv_eps: float = 0.01) -> np.ndarray:
    """Deblur an sRGB image with its per-pixel gyro kernels by RL-TV (Dey et al. 2006).

    Runs in linear light from the blurred image as the first estimate:
    ``x <- x * (A^T (y / A x) / A^T 1) / (1 - tv_weight * div(grad x / |grad x|_eps))``,
    clipped to ``[0, 1]`` after every step, which keeps ringing from running away. Borders
    follow the blur: taps outside the image clamp to the edge. Deterministic, any
    ``H, W >= 1``; a trajectory that is zero everywhere returns the input unchanged (no blur:
    the TV term alone would only denoise).

    Args:
        blurred: ``(H, W, 3)`` float32 sRGB in ``[0, 1]`` (values outside are clipped).
        traj: ``(T, 2, H, W)`` float32 trajectories of ``blurred`` in pixels (CONVENTIONS;
            ``traj_rot + traj_tran`` for the full kernel).
        iterations: RL steps; more sharpen further and amplify noise more.
        tv_weight: weight of the TV term, in ``[0, 0.25)``; 0 is plain Richardson-Lucy.
        tv_eps: smoothing of the gradient norm in the TV term (linear-light units): gradients
            below it are smoothed less.

    Returns:
        ``(H, W, 3)`` float32 deblurred sRGB in ``[0, 1]``.

    Example:
        >>> img = np.zeros((16, 16, 3), np.float32); img[:, 8:] = 1.0
        >>> traj = np.zeros((5, 2, 16, 16), np.float32)
        >>> traj[:, 0] = np.linspace(-2, 2, 5)[:, None, None]  # horizontal motion, 4 px
        >>> from gyrodeblur.synthesis.blur import blur_image
        >>> blurred = blur_image(img, traj)
        >>> sharp = deconvolve(blurred, traj)
        >>> bool(np.abs(sharp - img).mean() < np.abs(blurred - img).mean() / 2)
        True
    """
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    if not 0 <= tv_weight < 0.25:
        raise ValueError(f"tv_weight must be in [0, 0.25), got {tv_weight}")
    if tv_eps <= 0:
        raise ValueError(f"tv_eps must be > 0, got {tv_eps}")
    blurred, traj, reach = _check(blurred, traj)
    blurred = np.clip(blurred, 0.0, 1.0)
    if iterations == 0 or not traj.any():
        return blurred
    observed = _padded(srgb_to_linear(blurred))
    norm4 = np.zeros_like(observed)
    _scatter(np.ones_like(observed), traj, reach, norm4)
    norm = np.ascontiguousarray(norm4[..., 0])
    x, new = observed.copy(), np.empty_like(observed)
    predicted, correction = np.zeros_like(observed), np.empty_like(observed)
    gx, gy = np.empty_like(observed), np.empty_like(observed)
    for _ in range(iterations):
        _gather(x, traj, predicted)
        _ratio(observed, predicted)
        correction.fill(0.0)
        _scatter(predicted, traj, reach, correction)
        _unit_gradient(x, tv_eps, gx, gy)
        _rl_tv_update(x, correction, norm, gx, gy, tv_weight, new)
        x, new = new, x
    return linear_to_srgb(x[..., :3])
