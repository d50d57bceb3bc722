import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from gyrodeblur.metrics import psnr, ssim


@pytest.mark.parametrize("noise", [0.01, 0.1, 0.3])
def test_metrics_match_scikit_image_reference(noise):
    rng = np.random.default_rng(0)
    a = rng.random((40, 50, 3))
    b = np.clip(a + rng.normal(0, noise, a.shape), 0, 1)
    assert psnr(b, a) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=1.0))
    expected = structural_similarity(a, b, channel_axis=2, data_range=1.0, gaussian_weights=True,
                                     sigma=1.5, use_sample_covariance=False)
    assert ssim(b, a) == pytest.approx(expected, abs=1e-9)


def test_eight_bit_images_have_data_range_255():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (24, 30, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-9, 10, a.shape), 0, 255).astype(np.uint8)
    assert psnr(b, a) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=255))
    assert ssim(b, a) == pytest.approx(ssim(b / 255.0, a / 255.0))


@pytest.mark.parametrize(("shape_a", "shape_b"), [
    ((20, 20, 3), (20, 20, 1)),  # would broadcast
    ((20, 20, 3), (20, 21, 3)),
    ((8, 8, 3), (8, 8, 3)),  # too small a window for SSIM
])
def test_mismatched_or_too_small_images_are_refused(shape_a, shape_b):
    with pytest.raises(ValueError, match="need two images of one shape"):
        psnr(np.zeros(shape_a), np.zeros(shape_b)) if shape_a != shape_b else \
            ssim(np.zeros(shape_a), np.zeros(shape_b))


@pytest.mark.parametrize("score", [psnr, ssim])
def test_channels_first_images_are_refused_not_scored(score):
    chw = np.random.default_rng(0).random((3, 32, 32))
    with pytest.raises(ValueError, match=r"restored: need \(H, W\[, C\]\) with at most 4 "
                                         r"channels, got shape \(3, 32, 32\) \(\(C, H, W\)\?"):
        score(chw, chw * 0.9)


def test_floats_of_0_to_255_are_refused():
    image = np.random.default_rng(0).random((16, 16, 3)) * 255
    with pytest.raises(ValueError, match=r"0\.\.255 floats"):
        psnr(image, image / 255)
    assert psnr(np.clip(image / 255 + 0.01, 0, 1.01), image / 255) > 39  # slight overshoot ok


def test_integers_without_a_data_range_and_nan_are_refused():
    black, white = np.zeros((16, 16, 3), np.int64), np.full((16, 16, 3), 255, np.int64)
    with pytest.raises(ValueError, match="restored: int64 images have no data range"):
        psnr(black, white)
    assert psnr(black.astype(np.uint8), white.astype(np.uint8)) == pytest.approx(0.0)
    nan = np.full((16, 16, 3), np.nan)
    with pytest.raises(ValueError, match="reference: NaN or infinite values"):
        ssim(np.zeros((16, 16, 3)), nan)
