"""Image quality metrics with the restoration convention of CONVENTIONS.

RGB, data range 1.0 (255 for 8-bit images), no border crop; SSIM with an 11x11 Gaussian
window (sigma 1.5), ``K1 = 0.01``, ``K2 = 0.03``, computed per channel on the valid
(unpadded) window positions and averaged, as scikit-image's ``structural_similarity(...,
gaussian_weights=True, use_sample_covariance=False)`` and the usual restoration code do.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from gyrodeblur.footage import check_unit_range

CONVENTION = ("RGB, data range 1.0, no border crop, PSNR at most 100 dB; SSIM: 11x11 "
              "Gaussian window sigma 1.5, per channel then averaged")

# Identical images would score infinity and take any mean with them.
PSNR_CAP = 100.0


SSIM_WINDOW = 11
"""Side of SSIM's Gaussian window (sigma 1.5), the smallest image it scores."""


def _unit_range(restored: np.ndarray, reference: np.ndarray,
                min_size: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Both images as float64 ``(H, W, C)`` in ``[0, 1]``: 8- and 16-bit images are divided
    by their type's maximum (255 for 8 bits), so that scores keep the data range of 1.0."""
    images = []
    for image, name in zip((restored, reference), ("restored", "reference"), strict=True):
        image = np.asarray(image)
        if image.dtype.kind in "iub" and image.dtype not in (np.uint8, np.uint16):
            # int64 holds 0..255 as often as not: its maximum is no data range.
            raise ValueError(f"{name}: {image.dtype} images have no data range: give uint8, "
                             "uint16 or floats in [0, 1]")
        scale = np.iinfo(image.dtype).max if image.dtype.kind == "u" else 1.0
        image = image.astype(np.float64) / scale
        images.append(image[..., None] if image.ndim == 2 else image)
    x, y = images
    for image, name in zip(images, ("restored", "reference"), strict=True):
        check_unit_range(image, name)
        if image.ndim == 3 and image.shape[2] > 4:  # (C, H, W) scores nonsense, silently
            raise ValueError(f"{name}: need (H, W[, C]) with at most 4 channels, got shape "
                             f"{image.shape}" + " ((C, H, W)? put the channels last)" *
                             (image.shape[0] <= 4))
    if x.shape != y.shape or x.ndim != 3 or min(x.shape[:2]) < min_size:
        raise ValueError(f"need two images of one shape (H, W[, C]), at least {min_size} px "
                         f"high and wide, got {np.shape(restored)} and {np.shape(reference)}")
    return x, y


def psnr(restored: np.ndarray, reference: np.ndarray) -> float:
    """PSNR in dB of two ``(H, W, 3)`` (or ``(H, W)``) images: floats in ``[0, 1]``, or
    integers (8 bits: data range 255); at most ``PSNR_CAP``, which identical images score.

    Example:
        >>> a = np.zeros((4, 4, 3)); b = np.full((4, 4, 3), 0.1)
        >>> round(psnr(a, b), 6), round(psnr(np.uint8(255 * a), np.uint8(255 * b)), 2)
        (20.0, 20.17)
        >>> psnr(a, a)
        100.0
    """
    x, y = _unit_range(restored, reference)
    mse = float(np.mean((x - y) ** 2))
    return PSNR_CAP if mse <= 10 ** (-PSNR_CAP / 10) else float(10.0 * np.log10(1.0 / mse))


def _window_mean(v: np.ndarray) -> np.ndarray:
    # truncate=3.5 gives the 11x11 window (radius 5) for sigma 1.5; keep valid positions.
    return ndimage.gaussian_filter(v, 1.5, truncate=3.5, mode="reflect")[5:-5, 5:-5]


def ssim(restored: np.ndarray, reference: np.ndarray) -> float:
    """SSIM of two ``(H, W, 3)`` (or ``(H, W)``) images, at least 11x11, as :func:`psnr`
    takes them (see the module docstring).

    Example:
        >>> rng = np.random.default_rng(0); a = rng.random((32, 32, 3))
        >>> round(ssim(a, a), 6)
        1.0
    """
    x, y = _unit_range(restored, reference, min_size=SSIM_WINDOW)
    c1, c2 = 0.01**2, 0.03**2
    values = []
    for c in range(x.shape[2]):
        a, b = x[..., c], y[..., c]
        mu_a, mu_b = _window_mean(a), _window_mean(b)
        var_a = _window_mean(a * a) - mu_a**2
        var_b = _window_mean(b * b) - mu_b**2
        cov = _window_mean(a * b) - mu_a * mu_b
        s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
            (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
        values.append(s.mean())
    return float(np.mean(values))
