"""Classical non-blind deblurring with the per-pixel gyro kernels (no weights needed).

Richardson-Lucy with a total-variation regulariser (RL-TV, Dey et al. 2006) in linear light,
the FastGyro-style baseline and the fallback when no network fits. The forward operator ``A``
is exactly CONVENTIONS' blur formation in gather form,
``(A x)(p) = (1/T) sum_i x(p + traj[i](p))``, bilinear, coordinates clamped to the image as
:func:`gyrodeblur.synthesis.blur.blur` does (for long blur, with taps added between the
samples, as the synthesis integrates it); ``A^T`` is its exact adjoint, a bilinear
scatter-add.

The loops follow the synthesis gather (``gyrodeblur.synthesis.blur``): images in
``(H, W, 4)`` float32 buffers whose 4th channel is padding (a tap reads within one aligned
16-byte slot), unsigned indices, LLVM's loop vectoriser off. The bilinear taps are computed
once per trajectory and shared by ``A`` and ``A^T`` in every iteration, which about halves
the cost of each; they take 12 bytes per sample and pixel (100 MB for 1280x720, T = 9).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numba
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from gyrodeblur.footage import check_unit_range, float_image, to_float
from gyrodeblur.synthesis.blur import (
    bilinear_weights,
    linear_to_srgb,
    njit_scalar_loops,
    srgb_to_linear,
)

__all__ = ["auto_iterations", "auto_subsamples", "auto_tv_weight", "blur_adjoint", "blur_linear",
           "deconvolve", "noise_sigma"]

# Floor of the predicted blur A x in the RL ratio y / A x (linear light): far below 8-bit
# quantisation, it only keeps black regions from dividing by zero.
_RATIO_FLOOR = 1e-6
# Smoothing of |grad x| in the TV term, linear light: below 8-bit steps, so TV stays edge-
# preserving (0.001-0.003 beat 0.01 by up to 0.3 dB on noisy synthetic blur).
_TV_EPS = 0.003
# auto_tv_weight: tv_weight = _TV_AT_1PC * (sigma / 0.01) ** _TV_EXPONENT, capped. Fitted on
# 116 synthetic cases (CBSD68 and McMaster at 384x256, sampler motion at default strength and
# at sub-pixel to 3 px, Poisson-Gaussian noise levels 0-0.02, 8-bit) against the best of 8
# weights from 0 to 0.03 per case: 0.22 dB below it on average, each set within 0.06 dB of its
# own best fit; the former fit (0.0064, 2.5, on a filter-based sigma that fine texture
# inflates) was 0.41 dB below, and up to 9 dB on single textured frames.
_TV_AT_1PC, _TV_EXPONENT, _TV_MAX = 0.01, 1.5, 0.03
# noise_sigma: patch side, and about how many patches it takes (a grid, at any image size):
# enough that the eigenvalues of pure noise spread little.
_PATCH, _PATCHES = 7, 20_000
# auto_iterations: RL steps per pixel of the kernels' median path length, and their range.
# Short blur needs few steps; more only amplify noise and kernel errors. Chosen on 256
# synthetic cases (embedded photos and CBSD68; 256x192 and 384x256; default and strong
# motion; kernels of the true and of the recorded, erroneous gyro): +0.14 dB over a fixed 30
# steps with 17 on average, no subset more than 0.06 dB below; on 144 further cases (seed 11,
# McMaster too) +0.39 to +0.65 dB with 12-18 steps.
_STEPS_PER_PIXEL, _MIN_STEPS, _MAX_STEPS = 4.0, 8, 30
# auto_subsamples: a sensor integrates a continuous streak, and T samples spread over a long
# blur are T separate copies; taps are added on the straight line between the samples where
# they lie over _TAP_GAP px apart (99th percentile of the pixels' largest gap), at most
# _MAX_SUBSAMPLES per interval (each doubles the taps' time and memory). On 8 CBSD68 images
# at 384x256 with 30-60 px blur: +0.8 dB with 2, +1.0 dB with 4, +1.1 dB with gaps of 0.5 px.
_TAP_GAP, _MAX_SUBSAMPLES = 2.0, 2


@numba.njit(parallel=True, cache=True, fastmath=True)
def _taps(traj: np.ndarray, subsamples: int, base: np.ndarray, ax: np.ndarray,
          ay: np.ndarray) -> None:
    """The bilinear taps of ``A``: tap ``j`` of pixel ``(x, y)`` reads the 2x2 pixels from
    flat pixel index ``base[j, y, x]`` with fractions ``ax, ay``. Tap ``j`` lies ``j %
    subsamples / subsamples`` of the way from sample ``j // subsamples`` to the next, on the
    straight line (``interpolate_samples``'s points, without storing them).

    Coordinates clamp to ``[0, W-1] x [0, H-1]`` as in the synthesis blur. On the last column
    (row) the block starts one pixel earlier with fraction 1, which samples the same value, so
    no tap needs a bounds check.
    """
    T, _, H, W = traj.shape
    zero, xmax, ymax = np.float32(0.0), np.float32(W - 1), np.float32(H - 1)
    for y in numba.prange(H):
        for j in range(base.shape[0]):
            i, frac = min(j // subsamples, T - 2), np.float32(j % subsamples / subsamples)
            if j == base.shape[0] - 1:  # the last sample itself
                i, frac = T - 2, np.float32(1.0)
            for x in range(W):
                dx = traj[i, 0, y, x] + frac * (traj[i + 1, 0, y, x] - traj[i, 0, y, x])
                dy = traj[i, 1, y, x] + frac * (traj[i + 1, 1, y, x] - traj[i, 1, y, x])
                tx = min(max(np.float32(x) + dx, zero), xmax)
                ty = min(max(np.float32(y) + dy, zero), ymax)
                x0, y0 = min(np.int32(tx), np.int32(W - 2)), min(np.int32(ty), np.int32(H - 2))
                base[j, y, x] = y0 * W + x0
                ax[j, y, x], ay[j, y, x] = tx - np.float32(x0), ty - np.float32(y0)


_TAPS_SIGNATURE = "f4[:, :, ::1], i4[:, :, ::1], f4[:, :, ::1], f4[:, :, ::1]"


@numba.njit(cache=True, fastmath=True, inline="always")
def _corners(base: np.int32, W: int) -> tuple[np.uint64, np.uint64, np.uint64, np.uint64]:
    """Offsets in an ``(H, W, 4)`` buffer of a tap's four corners, its top-left pixel being
    ``base`` (``y0 * W + x0``; the taps tables keep ``x0 + 1`` and ``y0 + 1`` inside)."""
    o00 = np.uint64(base) * np.uint64(4)
    o10 = o00 + np.uint64(4 * W)
    return o00, o00 + np.uint64(4), o10, o10 + np.uint64(4)


@njit_scalar_loops(f"void({_TAPS_SIGNATURE}, f4[:, :, ::1])")
def _gather(src: np.ndarray, base: np.ndarray, ax: np.ndarray, ay: np.ndarray,
            out: np.ndarray) -> None:
    """``out = A src`` on ``(H, W, 4)`` buffers (padding channel left untouched)."""
    T, H, W = base.shape
    scale = np.float32(1.0 / T)
    u4 = np.uint64(4)
    s = src.reshape(H * W * 4)
    for y in numba.prange(H):
        acc = np.zeros(W * 4, np.float32)
        for i in range(T):
            b, fx, fy = base[i, y], ax[i, y], ay[i, y]
            for xi in range(W):
                x = np.uint64(xi)
                o00, o01, o10, o11 = _corners(b[x], W)
                w00, w01, w10, w11 = bilinear_weights(fx[x], fy[x])
                a = u4 * x
                for k in range(3):
                    c = np.uint64(k)
                    acc[a + c] += (w00 * s[o00 + c] + w01 * s[o01 + c]
                                   + w10 * s[o10 + c] + w11 * s[o11 + c])
        for x in range(W):
            for c in range(3):
                out[y, x, c] = acc[4 * x + c] * scale


@njit_scalar_loops(f"void({_TAPS_SIGNATURE}, i8, f4[:, :, ::1])")
def _scatter(src: np.ndarray, base: np.ndarray, ax: np.ndarray, ay: np.ndarray, reach: int,
             out: np.ndarray) -> None:
    """``out = A^T src`` on ``(H, W, 4)`` buffers; ``out`` must be zero on entry.

    Taps of row ``y`` write rows ``y - reach .. y + reach``. Rows are cut into blocks at
    least ``2 reach`` high, so blocks two apart never write the same pixel: even blocks run
    in parallel, then odd ones. No locks, no per-thread copies, and every pixel sums its
    contributions in the same order whatever the thread count, so the result is
    deterministic.
    """
    T, H, W = base.shape
    scale = np.float32(1.0 / T)
    o = out.reshape(H * W * 4)
    blocks = max(H // (2 * reach), 1)
    for parity in range(2):
        for half in numba.prange((blocks + 1 - parity) // 2):
            block = 2 * half + parity
            for y in range(block * H // blocks, (block + 1) * H // blocks):
                for i in range(T):
                    b, fx, fy = base[i, y], ax[i, y], ay[i, y]
                    for xi in range(W):
                        o00, o01, o10, o11 = _corners(b[xi], W)
                        w00, w01, w10, w11 = bilinear_weights(fx[xi], fy[xi])
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
def _unit_gradient(x: np.ndarray, gx: np.ndarray, gy: np.ndarray) -> None:
    """``(gx, gy) = grad x / sqrt(|grad x|^2 + eps^2)`` per channel, forward differences,
    zero across the last row and column (Neumann boundary)."""
    H, W, _ = x.shape
    eps2, zero, one = np.float32(_TV_EPS * _TV_EPS), np.float32(0.0), np.float32(1.0)
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


class _Operator(NamedTuple):
    """The taps of ``A`` for one trajectory (see ``_taps``) and the scatter's row reach."""

    base: np.ndarray
    ax: np.ndarray
    ay: np.ndarray
    reach: int

    @classmethod
    def of(cls, traj: np.ndarray, subsamples: int = 1) -> _Operator:
        T, _, H, W = traj.shape
        if T == 1:  # one sample: no interval to fill
            traj, subsamples = np.concatenate([traj, traj]), 1
        taps = (len(traj) - 1) * subsamples + 1
        base = np.empty((taps, H, W), np.int32)
        ax, ay = np.empty((taps, H, W), np.float32), np.empty((taps, H, W), np.float32)
        _taps(traj, subsamples, base, ax, ay)
        # A clamped tap stays within max |dy| rows of its pixel; its 2x2 block adds one row.
        reach = min(math.ceil(float(np.abs(traj[:, 1]).max())) + 1, H)
        return cls(base, ax, ay, reach)

    def forward(self, src: np.ndarray, out: np.ndarray) -> None:
        """``out = A src``."""
        _gather(src, self.base, self.ax, self.ay, out)

    def adjoint(self, src: np.ndarray, out: np.ndarray) -> None:
        """``out = A^T src``, ``out`` overwritten."""
        out.fill(0.0)
        _scatter(src, self.base, self.ax, self.ay, self.reach, out)


_NON_FINITE = ("image or traj has non-finite values (a NaN traj: pixels without a ray "
               "through the lens, which kernels.rotation.still_where_no_ray makes still)")


def _check(image: np.ndarray, traj: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validated float32 contiguous ``(H, W, 3)`` image and ``(T, 2, H, W)`` trajectory."""
    if not np.issubdtype(np.asarray(image).dtype, np.floating):
        raise ValueError(f"image must be float sRGB in [0, 1], got {np.asarray(image).dtype}")
    image = np.ascontiguousarray(image, np.float32)
    traj = np.ascontiguousarray(traj, np.float32)
    if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 2:
        raise ValueError(f"image must be (H, W, 3) with H, W >= 2, got {image.shape}")
    H, W = image.shape[:2]
    if traj.ndim != 4 or traj.shape[1] != 2 or traj.shape[2:] != (H, W) or traj.shape[0] < 1:
        raise ValueError(f"traj must be (T, 2, H, W) = (T, 2, {H}, {W}), got {traj.shape}")
    if not (np.isfinite(traj).all() and np.isfinite(image).all()):
        raise ValueError(_NON_FINITE)
    return image, traj


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
        image: ``(H, W, 3)`` float32 image, ``H, W >= 2`` (linear light for deblurring).
        traj: ``(T, 2, H, W)`` float32 trajectories in pixels (CONVENTIONS).

    Returns:
        ``(H, W, 3)`` float32 ``A image``.

    Example:
        >>> img = np.zeros((2, 4, 3), np.float32); img[:, 1] = 1.0
        >>> traj = np.zeros((2, 2, 2, 4), np.float32); traj[1, 0] = 1.0  # half the time 1 px right
        >>> blur_linear(img, traj)[0, :, 0].tolist()
        [0.5, 0.5, 0.0, 0.0]
    """
    image, traj = _check(image, traj)
    out = np.zeros((*image.shape[:2], 4), np.float32)
    _Operator.of(traj).forward(_padded(image), out)
    return out[..., :3].copy()


def blur_adjoint(image: np.ndarray, traj: np.ndarray) -> np.ndarray:
    """The exact adjoint ``A^T`` of :func:`blur_linear`: a bilinear scatter-add.

    Each pixel ``p`` spreads ``image(p) / T`` onto the four neighbours of every tap
    ``p + traj[i](p)`` (clamped to the image) with the bilinear weights of ``A``, so
    ``<A x, y> = <x, A^T y>``. Deterministic: the sum order does not depend on threads.

    Args:
        image: ``(H, W, 3)`` float32 image, ``H, W >= 2``.
        traj: ``(T, 2, H, W)`` float32 trajectories in pixels (CONVENTIONS).

    Returns:
        ``(H, W, 3)`` float32 ``A^T image``.

    Example:
        >>> img = np.zeros((2, 4, 3), np.float32); img[0, 0] = 1.0
        >>> traj = np.zeros((2, 2, 2, 4), np.float32); traj[1, 0] = 1.5
        >>> blur_adjoint(img, traj)[0, :, 0].tolist()
        [0.5, 0.25, 0.25, 0.0]
    """
    image, traj = _check(image, traj)
    out = np.empty((*image.shape[:2], 4), np.float32)
    _Operator.of(traj).adjoint(_padded(image), out)
    return out[..., :3].copy()


# The Laplacian-of-Laplacian mask of _filter_sigma (L2 norm 6).
_LAPLACIAN2 = np.outer([1.0, -2.0, 1.0], [1.0, -2.0, 1.0])


def _patches(x: np.ndarray) -> np.ndarray:
    """About ``_PATCHES`` square patches of side ``_PATCH`` (less in a smaller image) on a
    grid over ``x`` ``(H, W, C)``, as ``(N, C, side, side)`` float64."""
    H, W = x.shape[:2]
    side = min(_PATCH, H, W)
    stride = max(1, math.isqrt((H - side + 1) * (W - side + 1) // _PATCHES))
    windows = sliding_window_view(x, (side, side), axis=(0, 1))[::stride, ::stride]
    return windows.reshape(-1, x.shape[2], side, side).astype(np.float64)


def _pca_sigma(patches: np.ndarray) -> float:
    """Noise std by PCA of the patches (Chen, Zhu and Heng, ICCV 2015): image structure lies
    in a few principal directions, white noise adds its variance to all; the smallest
    eigenvalues are taken while their mean stays their median (noise only). Channel by
    channel, as the RMS of their stds: noise that channels share (demosaicing, JPEG, a gray
    image stored as RGB) leaves their differences clean, which a joint PCA would read as
    no noise at all."""
    variances = []
    for channel in range(patches.shape[1]):
        flat = patches[:, channel].reshape(len(patches), -1)
        flat = flat - flat.mean(0)
        eigenvalues = np.linalg.eigvalsh(flat.T @ flat / len(flat))[::-1]
        for i in range(len(eigenvalues)):
            tail = eigenvalues[i:]
            variance = tail.mean()
            if (tail > variance).sum() == (tail < variance).sum():
                break
        variances.append(max(variance, 0.0))
    return math.sqrt(sum(variances) / len(variances))


def _filter_sigma(patches: np.ndarray) -> float:
    """Noise std from the median absolute response of the patches' centres to the 3x3
    Laplacian-of-Laplacian mask (Immerkaer 1996, made robust with a median)."""
    c = patches.shape[-1] // 2
    response = np.einsum("ncij,ij->nc", patches[..., c - 1:c + 2, c - 1:c + 2], _LAPLACIAN2)
    # The median of |N(0, s^2)| is 0.6745 s.
    return float(np.median(np.abs(response))) / (0.6745 * 6)


def noise_sigma(image: np.ndarray) -> float:
    """The std of the white noise in an image, robust to its texture.

    Two estimates that image content can only inflate, each by different content, and the
    smaller is kept: PCA of 7x7 patches (Chen, Zhu and Heng, ICCV 2015), which fine texture
    does not fool but dense high-contrast clutter with no low-rank structure does, and the
    median response to a 3x3 Laplacian-of-Laplacian mask (Immerkaer 1996), which any fine
    texture that blur leaves sharp inflates (on the example below it reads 0.031). Both on
    the same grid of about 20,000 patches, at any image size.

    Args:
        image: ``(H, W)`` or ``(H, W, C)`` float image, ``H, W >= 3``.

    Returns:
        The noise std in the units of ``image`` (per channel for colour images).

    Example:
        >>> yy, xx = np.mgrid[:256, :256]
        >>> texture = 0.5 + 0.3 * np.sin(1.3 * xx) * np.sin(0.9 * yy)  # fine: 5-7 px periods
        >>> noisy = texture + np.random.default_rng(0).normal(0, 0.01, texture.shape)
        >>> round(noise_sigma(noisy), 4)
        0.0098
    """
    x = np.asarray(image, np.float32)
    x = x[..., None] if x.ndim == 2 else x
    if x.ndim != 3 or min(x.shape[:2]) < 3 or x.shape[2] > 4:
        raise ValueError("image must be (H, W) or (H, W, C) with H, W >= 3 and at most 4 "
                         f"channels, got {x.shape}" + " ((C, H, W)? put the channels last)"
                         * (x.ndim == 3 and x.shape[0] <= 4 < x.shape[2]))
    patches = _patches(x)
    return min(_pca_sigma(patches), _filter_sigma(patches))


def auto_tv_weight(blurred: np.ndarray) -> float:
    """The TV weight :func:`deconvolve` uses by default, from the noise of ``blurred``.

    The weight grows as ``sigma^1.5`` of the sRGB noise std :func:`noise_sigma`, capped at
    0.03. A tiled caller estimates it once on the whole frame and passes it to every tile,
    so the tiles agree.

    Args:
        blurred: ``(H, W, 3)`` sRGB image (float in ``[0, 1]``, or uint8 or uint16),
            ``H, W >= 3``.

    Returns:
        ``tv_weight`` for :func:`deconvolve`.

    Example:
        >>> flat = np.full((64, 64, 3), 0.5, np.float32)
        >>> noisy = flat + np.random.default_rng(0).normal(0, 0.01, flat.shape)
        >>> auto_tv_weight(flat), round(auto_tv_weight(noisy), 4)  # 0.01 for a perfect estimate
        (0.0, 0.0099)
    """
    sigma = noise_sigma(float_image(blurred, "blurred"))
    return min(_TV_AT_1PC * (sigma / 0.01) ** _TV_EXPONENT, _TV_MAX)


def _steps(traj: np.ndarray) -> np.ndarray:
    """The ``(T - 1, 2, H, W)`` steps between a trajectory's samples, all finite."""
    steps = np.diff(np.asarray(traj, np.float32), axis=0)
    if not np.isfinite(steps).all():
        raise ValueError(_NON_FINITE)
    return steps


def auto_iterations(traj: np.ndarray) -> int:
    """The RL steps :func:`deconvolve` runs by default: 4 per pixel of the median length of
    the kernels' paths, from 8 to 30.

    A tiled caller computes it once on the whole frame and passes it to every tile.

    Args:
        traj: ``(T, 2, H, W)`` trajectories in pixels (a subsampled grid of pixels will do).

    Example:
        >>> traj = np.zeros((5, 2, 4, 4), np.float32)
        >>> traj[:, 0] = np.linspace(-2, 2, 5)[:, None, None]  # 4 px horizontal path
        >>> auto_iterations(traj), auto_iterations(traj / 8), auto_iterations(traj * 8)
        (16, 8, 30)
    """
    steps = _steps(traj)
    length = float(np.median(np.sqrt((steps ** 2).sum(1)).sum(0))) if len(steps) else 0.0
    return int(np.clip(round(_STEPS_PER_PIXEL * length), _MIN_STEPS, _MAX_STEPS))


def auto_subsamples(traj: np.ndarray) -> int:
    """The taps per sample interval :func:`deconvolve` uses by default: 1, or 2 where the
    samples lie more than 2 px apart (long blur), so that its blur is a streak, not copies.

    A tiled caller computes it once on the whole frame and passes it to every tile.

    Args:
        traj: ``(T, 2, H, W)`` trajectories in pixels (a subsampled grid of pixels will do).

    Example:
        >>> traj = np.zeros((9, 2, 4, 4), np.float32)
        >>> traj[:, 0] = np.linspace(-4, 4, 9)[:, None, None]  # 8 px: samples 1 px apart
        >>> auto_subsamples(traj), auto_subsamples(traj * 4)
        (1, 2)
    """
    steps = _steps(traj)
    if not len(steps):
        return 1
    gap = float(np.percentile(np.sqrt((steps ** 2).sum(1)).max(0), 99))
    return int(np.clip(math.ceil(gap / _TAP_GAP), 1, _MAX_SUBSAMPLES))


def deconvolve(blurred: np.ndarray, traj: np.ndarray, iterations: int | None = None,
               tv_weight: float | None = None, subsamples: int | None = None) -> np.ndarray:
    """Deblur an sRGB image with its per-pixel gyro kernels by RL-TV (Dey et al. 2006).

    Runs in linear light from the blurred image as the first estimate:
    ``x <- x * (A^T (y / A x) / A^T 1) / (1 - tv_weight * div(grad x / |grad x|_eps))``,
    clipped to ``[0, 1]`` after every step, which keeps ringing from running away. Borders
    follow the blur: taps outside the image clamp to the edge. Deterministic (whatever the
    thread count), any ``H, W >= 3``; a trajectory that is zero everywhere gets no steps by
    default, and the input comes back unchanged (no blur: the TV term alone would only
    denoise).

    Args:
        blurred: ``(H, W, 3)`` sRGB: float in ``[0, 1]`` (values slightly outside are
            clipped; 0..255 floats refused), or uint8 or uint16.
        traj: ``(T, 2, H, W)`` float32 trajectories of ``blurred`` in pixels (CONVENTIONS;
            ``traj_rot + traj_tran`` for the full kernel).
        iterations: RL steps; more sharpen further and amplify noise (and kernel errors)
            more. None: :func:`auto_iterations` of ``traj``, from the blur's length (0 for
            a trajectory that is zero everywhere). A tiled caller passes the frame's to
            every tile, so that a still tile is treated as in the whole frame.
        tv_weight: weight of the TV term, in ``[0, 0.25)``; 0 is plain Richardson-Lucy.
            None: :func:`auto_tv_weight` of ``blurred``, from its noise.
        subsamples: taps per sample interval of ``traj`` (on the straight line between the
            samples). None: :func:`auto_subsamples` of ``traj``.

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
    if iterations is not None and (not isinstance(iterations, int | np.integer)
                                   or isinstance(iterations, bool) or iterations < 0):
        raise ValueError(f"iterations must be an integer >= 0, got {iterations!r}")
    if subsamples is not None and (not isinstance(subsamples, int | np.integer)
                                   or isinstance(subsamples, bool) or subsamples < 1):
        raise ValueError(f"subsamples must be an integer >= 1, got {subsamples!r}")
    if tv_weight is not None and not 0 <= tv_weight < 0.25:
        raise ValueError(f"tv_weight must be in [0, 0.25), got {tv_weight}")
    blurred = np.asarray(blurred)
    if blurred.dtype in (np.uint8, np.uint16):
        blurred = to_float(blurred)
    blurred, traj = _check(blurred, traj)
    check_unit_range(blurred, "blurred")  # slightly out of range is clipped; 0..255 refused
    if min(blurred.shape[:2]) < 3:
        raise ValueError(f"blurred must be at least 3x3, got {blurred.shape}")
    blurred = np.clip(blurred, 0.0, 1.0)
    if iterations is None:
        iterations = auto_iterations(traj) if traj.any() else 0
    if iterations == 0:
        return blurred
    if tv_weight is None:
        tv_weight = auto_tv_weight(blurred)
    A = _Operator.of(traj, subsamples or auto_subsamples(traj))
    observed = _padded(srgb_to_linear(blurred))
    norm = np.empty_like(observed)
    A.adjoint(np.ones_like(observed), norm)
    norm = np.ascontiguousarray(norm[..., 0])
    x, new = observed.copy(), np.zeros_like(observed)
    predicted, correction = np.zeros_like(observed), np.zeros_like(observed)
    gx, gy = np.zeros_like(observed), np.zeros_like(observed)
    for _ in range(iterations):
        A.forward(x, predicted)
        _ratio(observed, predicted)
        A.adjoint(predicted, correction)
        _unit_gradient(x, gx, gy)
        _rl_tv_update(x, correction, norm, gx, gy, tv_weight, new)
        x, new = new, x
    return linear_to_srgb(x[..., :3])
