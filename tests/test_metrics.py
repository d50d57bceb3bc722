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
