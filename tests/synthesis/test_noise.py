import math

import numpy as np
import pytest
import torch

from gyrodeblur.synthesis.blur import linear_to_srgb, srgb_to_linear
from gyrodeblur.synthesis.noise import (
    MID_GREY,
    add_noise_image,
    jpeg,
    jpeg_image,
    noise_params,
    poisson_gaussian,
)

LEVELS = (0.05, 0.18, 0.4)  # linear values of the flat patches


def flat_patches(size=192):
    """One flat sRGB image per linear level, (len(LEVELS), size, size, 3)."""
    lin = np.broadcast_to(np.float32(LEVELS)[:, None, None, None], (len(LEVELS), size, size, 3))
    return linear_to_srgb(np.ascontiguousarray(lin))


@pytest.mark.parametrize(("shot", "read"), [(1e-3, 0.0), (0.0, 0.01), (4e-4, 5e-3)])
def test_variance_of_flat_patches_is_shot_x_plus_read_squared(shot, read):
    noisy = srgb_to_linear(poisson_gaussian(flat_patches(), shot, read, 0).astype(np.float64))
    for k, x in enumerate(LEVELS):
        patch = noisy[k]
        assert abs(float(patch.mean()) - x) < 0.01 * x
        assert float(patch.var()) == pytest.approx(shot * x + read**2, rel=0.03)


def test_noise_is_deterministic_with_a_seed():
    img = flat_patches(32)
    assert np.array_equal(poisson_gaussian(img, 1e-3, 2e-3, 1),
                          poisson_gaussian(img, 1e-3, 2e-3, 1))
    assert not np.array_equal(poisson_gaussian(img, 1e-3, 2e-3, 1),
                              poisson_gaussian(img, 1e-3, 2e-3, 2))


def test_noise_output_is_clipped_srgb():
    img = np.broadcast_to(np.float32([0.0, 1.0])[:, None, None, None], (2, 16, 16, 3))
    out = poisson_gaussian(img, 0.01, 0.05, 3)
    assert out.min() >= 0 and out.max() <= 1 and out.shape == img.shape
    assert (out[0] > 0).any() and (out[1] < 1).any()


@pytest.mark.parametrize("level", [0.003, 0.01, 0.02, 0.05])
def test_noise_params_give_the_level_at_mid_grey(level):
    shot, read = noise_params(level)
    assert shot > 0 and read > 0
    assert math.sqrt(shot * MID_GREY + read**2) == pytest.approx(level, rel=1e-9)
    # The phone-sensor relation of Brooks et al.: log(read^2) = 2.18 log(shot) + 1.20.
    assert math.log(read**2) == pytest.approx(2.18 * math.log(shot) + 1.20, rel=1e-9)


def test_noise_params_zero_and_monotone():
    assert noise_params(0) == (0.0, 0.0)
    shots, reads = zip(*(noise_params(s) for s in (0.005, 0.01, 0.03, 0.1)), strict=True)
    assert list(shots) == sorted(shots) and list(reads) == sorted(reads)
    for level in (-0.1, math.nan, math.inf, 10):
        with pytest.raises(ValueError, match=r"noise level must be in \[0, 1\]"):
            noise_params(level)
    with pytest.raises(ValueError, match="finite numbers >= 0"):
        poisson_gaussian(np.zeros((2, 2, 3), np.float32), -1e-3, 0.0)


def test_add_noise_image_has_the_level_and_is_reproducible():
    level = 0.02
    img = np.full((192, 192, 3), float(linear_to_srgb(np.float32(MID_GREY))), np.float32)
    out = add_noise_image(img, level, np.random.default_rng(0))
    assert out.shape == img.shape and out.dtype == np.float32
    assert float(srgb_to_linear(out.astype(np.float64)).std()) == pytest.approx(level, rel=0.03)
    np.testing.assert_array_equal(add_noise_image(img, level, 5), add_noise_image(img, level, 5))
    assert not np.array_equal(add_noise_image(img, level, 5), add_noise_image(img, level, 6))
    np.testing.assert_array_equal(add_noise_image(img, 0.0, 1), img)


def psnr(a, b):
    return float(10 * torch.log10(1 / ((a - b) ** 2).mean()))


def test_jpeg_changes_the_image_but_keeps_quality():
    y, x = torch.meshgrid(torch.linspace(0, 1, 64), torch.linspace(0, 1, 96), indexing="ij")
    img = torch.stack([0.2 + 0.6 * x, 0.5 + 0.3 * torch.sin(6 * y), 0.8 - 0.5 * x * y])[None]
    img = img.expand(2, 3, 64, 96).contiguous()
    out = jpeg(img, 95)
    assert out.shape == img.shape and out.dtype == torch.float32
    assert not torch.equal(out, img)
    assert psnr(out, img) > 30
    assert psnr(jpeg(img, 5), img) < psnr(out, img)
    with pytest.raises(ValueError):
        jpeg(img, 0)
    with pytest.raises(ValueError, match="float values must lie in"):
        jpeg(img * 255, 90)  # 0..255 floats: refused, not clamped to white
    assert psnr(jpeg(img.to(torch.bfloat16), 95), img) > 30  # mixed precision's images too
    for wrong in (img[0].numpy(), img[0], img.to(torch.uint8)):
        with pytest.raises(TypeError, match=r"a \(B, 3, H, W\) float tensor \(jpeg_image"):
            jpeg(wrong, 90)


def test_integer_images_get_the_noise_of_their_unit_range_twin():
    img = np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    np.testing.assert_array_equal(add_noise_image(img, 0.02, 4),
                                  add_noise_image(img / np.float32(255), 0.02, 4))
    with pytest.raises(ValueError, match=r"0\.\.255 floats"):
        add_noise_image(img.astype(np.float32), 0.02, 4)


def test_jpeg_image_is_the_batched_jpeg_of_one_image():
    img = np.random.default_rng(2).random((16, 24, 3)).astype(np.float32)
    out = jpeg_image(img, 70)
    batched = jpeg(torch.from_numpy(img).permute(2, 0, 1)[None], 70)[0].permute(1, 2, 0)
    np.testing.assert_array_equal(out, batched.numpy())
    np.testing.assert_allclose(out * 255, np.round(out * 255), atol=1e-4)  # the 8-bit grid


def test_integer_images_get_poisson_gaussian_noise_of_their_unit_range_twin():
    img = np.random.default_rng(2).integers(0, 65536, (8, 8, 3), dtype=np.uint16)
    np.testing.assert_array_equal(poisson_gaussian(img, 1e-4, 1e-4, 3),
                                  poisson_gaussian(img / np.float32(65535), 1e-4, 1e-4, 3))
    with pytest.raises(ValueError, match=r"0\.\.255 floats"):
        poisson_gaussian(img.astype(np.float32) / 257, 1e-4, 1e-4, 3)
    with pytest.raises(ValueError, match="integer images must be uint8 or uint16, got int64"):
        poisson_gaussian(img.astype(np.int64) // 257, 1e-4, 1e-4, 3)
