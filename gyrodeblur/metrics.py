"""Image quality metrics with the restoration convention of CONVENTIONS.

RGB, data range 1.0, no border crop; SSIM with an 11x11 Gaussian window (sigma 1.5),
``K1 = 0.01``, ``K2 = 0.03``, computed per channel on the valid (unpadded) window positions
and averaged, as scikit-image's ``structural_similarity(..., gaussian_weights=True,
use_sample_covariance=False)`` and the usual restoration code do.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

CONVENTION = ("RGB, data range 1.0, no border crop; SSIM: 11x11 Gaussian window sigma 1.5, "
              "per channel then averaged")


def psnr(restored: np.ndarray, reference: np.ndarray) -> float:
    """PSNR in dB of ``(H, W, 3)`` images in ``[0, 1]``.

    Example:
        >>> a = np.zeros((4, 4, 3)); b = np.full((4, 4, 3), 0.1)
        >>> round(psnr(a, b), 6)
        20.0
    """
    mse = float(np.mean((np.asarray(restored, np.float64) - reference) ** 2))
    return float("inf") if mse == 0 else float(10.0 * np.log10(1.0 / mse))


def _window_mean(v: np.ndarray) -> np.ndarray:
    # truncate=3.5 gives the 11x11 window (radius 5) for sigma 1.5; keep valid positions.
    return ndimage.gaussian_filter(v, 1.5, truncate=3.5, mode="reflect")[5:-5, 5:-5]


def ssim(restored: np.ndarray, reference: np.ndarray) -> float:
    """SSIM of ``(H, W, 3)`` images in ``[0, 1]`` (see the module docstring).

    Example:
        >>> rng = np.random.default_rng(0); a = rng.random((32, 32, 3))
        >>> round(ssim(a, a), 6)
        1.0
    """
    x = np.asarray(restored, np.float64)
    y = np.asarray(reference, np.float64)
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
