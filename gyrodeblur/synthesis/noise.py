"""Sensor noise and compression for synthetic blurred images.

Noise follows the Poisson-Gaussian model of raw sensor data, applied in linear light:
``y = shot * Poisson(x / shot) + N(0, read^2)``, so ``Var[y] = shot * x + read^2``. It is
simpler than a full camera pipeline (no demosaicking, no per-channel gains) but has the
signal-dependent variance that a denoising or deblurring network must learn.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
from scipy.optimize import brentq

from gyrodeblur.footage import check_unit_range, float_image, to_float
from gyrodeblur.synthesis.blur import linear_to_srgb, srgb_to_linear

#: Linear level at which ``noise_params`` defines its noise level (18 % mid-grey).
MID_GREY = 0.18
# Brooks et al., "Unprocessing Images for Learned Raw Denoising" (CVPR 2019), fitted on phone
# sensors (Google Pixel, HDR+ data): log(read variance) = 2.18 log(shot) + 1.20.
_READ_SLOPE, _READ_OFFSET = 2.18, 1.20


def noise_params(level: float) -> tuple[float, float]:
    """``(shot, read)`` of a phone-like sensor whose noise std at linear mid-grey is ``level``.

    ``level`` is the std of the noise, in linear units, at linear ``MID_GREY`` (0.18):
    ``shot * 0.18 + read^2 = level^2``. The split between shot and read noise follows the
    log-linear relation of Brooks et al. (CVPR 2019) for phone sensors,
    ``read^2 = exp(1.20) * shot^2.18``: shot noise dominates at mid-grey, read noise gains
    weight as the level rises (the ratio ``read^2 / (0.18 shot)`` is ~1 % at ``level = 0.02``,
    ~8 % at 0.044). ``level = 0`` is no noise.

    Example:
        >>> shot, read = noise_params(0.02)
        >>> round(math.sqrt(shot * MID_GREY + read**2), 6), noise_params(0.0)
        (0.02, (0.0, 0.0))
    """
    if not 0 <= level <= 1:
        raise ValueError(f"noise level must be in [0, 1] (its std at mid-grey, images on "
                         f"[0, 1]), got {level}")
    if level == 0:
        return 0.0, 0.0

    def excess(shot: float) -> float:
        return MID_GREY * shot + math.exp(_READ_OFFSET) * shot**_READ_SLOPE - level**2

    # excess is increasing, negative at 0 and >= 0 where the shot term alone reaches level^2.
    shot = brentq(excess, 0.0, level**2 / MID_GREY, xtol=1e-15, rtol=1e-12)
    return shot, math.sqrt(math.exp(_READ_OFFSET) * shot**_READ_SLOPE)


def poisson_gaussian(image: np.ndarray, shot: float, read: float,
                     rng: np.random.Generator | int | None = None) -> np.ndarray:
    """Poisson-Gaussian sensor noise on an sRGB image, in linear light.

    ``y = shot * Poisson(x / shot) + N(0, read^2)`` with ``x`` the linear image, clipped to
    ``[0, 1]`` and re-encoded to sRGB. ``shot = 0`` or ``read = 0`` leaves that part out.

    Args:
        image: sRGB, any shape: float in ``[0, 1]``, or uint8 or uint16.
        shot: variance per unit linear signal.
        read: read-noise std, linear units.
        rng: a ``np.random.Generator`` or a seed, for reproducible noise.

    Returns:
        The noisy sRGB image, float32, same shape.

    Example:
        >>> img = np.full((4, 4, 3), 0.5, np.float32)
        >>> a, b = (poisson_gaussian(img, 1e-3, 1e-3, 0) for _ in range(2))
        >>> bool(np.array_equal(a, b)), bool((a != img).any())
        (True, True)
    """
    if not (0 <= shot < math.inf and 0 <= read < math.inf):
        raise ValueError(f"shot and read must be finite numbers >= 0, got {shot}, {read}")
    image = to_float(np.asarray(image))
    if not np.isfinite(image).all():
        raise ValueError("image: has non-finite values")
    check_unit_range(image)
    rng = np.random.default_rng(rng)
    x = np.clip(srgb_to_linear(image), 0.0, None)
    if shot > 0:
        x = rng.poisson(x / shot).astype(np.float32) * np.float32(shot)
    if read > 0:
        x = x + rng.normal(0.0, read, x.shape).astype(np.float32)
    return linear_to_srgb(np.clip(x, 0.0, 1.0)).astype(np.float32)


def jpeg(image: torch.Tensor, quality: int) -> torch.Tensor:
    """JPEG round trip (OpenCV, 4:2:0) of a ``(B, 3, H, W)`` sRGB tensor; quality 1..100.

    Example:
        >>> img = torch.linspace(0, 1, 16).expand(1, 3, 16, 16)
        >>> out = jpeg(img, 90)
        >>> out.shape, bool((out - img).abs().max() < 0.05)
        (torch.Size([1, 3, 16, 16]), True)
    """
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
    if not (isinstance(image, torch.Tensor) and image.ndim == 4 and image.shape[1] == 3
            and image.is_floating_point()):
        raise TypeError(f"image must be a (B, 3, H, W) float tensor (jpeg_image takes an "
                        f"(H, W, 3) array), got {type(image).__name__} "
                        f"{getattr(image, 'dtype', '')} {tuple(np.shape(image))}")
    check_unit_range(image.detach().float().cpu().numpy())  # numpy has no bfloat16
    frames = (image.detach().clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).cpu()
    out = []
    for rgb in frames.numpy():
        ok, buf = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        if not ok:
            raise RuntimeError("OpenCV failed to encode JPEG")
        out.append(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])
    decoded = torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 255
    return decoded.to(image.device)


def add_noise_image(hwc: np.ndarray, level: float,
                    rng: np.random.Generator | int | None = None) -> np.ndarray:
    """:func:`poisson_gaussian` with ``noise_params(level)`` on one image.

    Args:
        hwc: ``(H, W, 3)`` sRGB: float in ``[0, 1]``, or uint8 or uint16.
        level: noise std at linear mid-grey (see ``noise_params``); 0 returns the image
            as float32, unchanged.
        rng: a ``np.random.Generator`` or a seed, for reproducible noise.

    Returns:
        ``(H, W, 3)`` float32 noisy sRGB.

    Example:
        >>> img = np.full((8, 8, 3), 0.5, np.float32)
        >>> a, b = add_noise_image(img, 0.02, 7), add_noise_image(img, 0.02, 7)
        >>> bool(np.array_equal(a, b)), a.dtype, bool(np.array_equal(add_noise_image(img, 0), img))
        (True, dtype('float32'), True)
    """
    shot, read = noise_params(level)
    image = float_image(hwc)
    if level == 0:
        return image.copy()
    return poisson_gaussian(image, shot, read, rng)


def jpeg_image(hwc: np.ndarray, quality: int) -> np.ndarray:
    """NumPy convenience: :func:`jpeg` on one ``(H, W, 3)`` sRGB image (float in ``[0, 1]``,
    or uint8 or uint16); returns float32 sRGB on the 8-bit grid.

    Example:
        >>> img = np.full((8, 8, 3), 0.5, np.float32)
        >>> out = jpeg_image(img, 90)
        >>> out.shape, out.dtype, bool(np.allclose(out, 128 / 255))
        ((8, 8, 3), dtype('float32'), True)
    """
    image = torch.from_numpy(float_image(hwc)).permute(2, 0, 1)[None]
    return jpeg(image, quality)[0].permute(1, 2, 0).numpy()
