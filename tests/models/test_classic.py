import numba
import numpy as np
import pytest
import torch

from gyrodeblur.geometry.camera import Camera
from gyrodeblur.geometry.rotation import integrate
from gyrodeblur.kernels.rotation import rotation_trajectories
from gyrodeblur.metrics import psnr
from gyrodeblur.models.classic import (
    auto_iterations,
    auto_subsamples,
    auto_tv_weight,
    blur_adjoint,
    blur_linear,
    deconvolve,
    noise_sigma,
)
from gyrodeblur.synthesis.blur import (
    blur_image,
    continuous_subsamples,
    interpolate_samples,
    srgb_to_linear,
)
from gyrodeblur.synthesis.images import dead_leaves, skimage_image
from gyrodeblur.synthesis.motion import bundled_traces, random_segment
from gyrodeblur.synthesis.noise import add_noise_image


def random_traj(T, H, W, amp, seed):
    """Independent random displacements: many taps fall outside the image and get clamped."""
    return (amp * np.random.default_rng(seed).normal(size=(T, 2, H, W))).astype(np.float32)


def gyro_case(size=192, seed=3):
    """Half-size astronaut crop blurred along a real gyro segment (~8 px), 8-bit-like noise."""
    sharp = skimage_image("astronaut")[::2, ::2][16:16 + size, 48:48 + size].copy()
    log = random_segment(bundled_traces()[0], 0.2, np.random.default_rng(seed))
    c = (size - 1) / 2
    cam = Camera(size, size, fx=300.0, fy=300.0, cx=c, cy=c, readout_time=0.01)
    traj, _ = rotation_trajectories(integrate(log.t, log.w), cam, 0.05, 0.04, samples=9)
    blurred = add_noise_image(blur_image(sharp, traj), 0.005, 1)
    return sharp, blurred, traj


@pytest.mark.parametrize(("H", "W", "T", "amp"),
                         [(8, 8, 1, 2.0), (13, 29, 4, 6.0), (40, 24, 9, 25.0), (64, 64, 9, 0.7)])
def test_adjoint(H, W, T, amp):
    rng = np.random.default_rng(H * W)
    traj = random_traj(T, H, W, amp, seed=T)
    x = rng.random((H, W, 3), dtype=np.float32)
    y = rng.random((H, W, 3), dtype=np.float32)
    lhs = np.vdot(blur_linear(x, traj).astype(np.float64), y)
    rhs = np.vdot(x.astype(np.float64), blur_adjoint(y, traj))
    assert abs(lhs - rhs) <= 1e-5 * abs(lhs)


def test_forward_operator_is_the_synthesis_blur():
    rng = np.random.default_rng(0)
    sharp = rng.random((21, 34, 3), dtype=np.float32)
    traj = random_traj(5, 21, 34, 8.0, seed=1)
    expected = srgb_to_linear(blur_image(sharp, traj))
    np.testing.assert_allclose(blur_linear(srgb_to_linear(sharp), traj), expected, atol=1e-6)


def test_adjoint_does_not_depend_on_the_thread_count():
    y = np.random.default_rng(2).random((50, 37, 3), dtype=np.float32)
    traj = random_traj(6, 50, 37, 3.0, seed=3)
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        serial = blur_adjoint(y, traj)
    finally:
        numba.set_num_threads(threads)
    assert np.array_equal(serial, blur_adjoint(y, traj))


def test_deconvolve_raises_psnr_on_real_gyro_blur():
    sharp, blurred, traj = gyro_case()
    restored = deconvolve(blurred, traj)
    # Measured: 20.62 dB blurred -> 26.29 dB restored (+5.7 dB).
    assert psnr(restored, sharp) > psnr(blurred, sharp) + 4.0
    assert restored.dtype == np.float32 and restored.min() >= 0 and restored.max() <= 1
    assert np.array_equal(restored, deconvolve(blurred, traj))


def test_zero_trajectory_returns_the_input():
    image = np.random.default_rng(4).random((9, 12, 3), dtype=np.float32)
    np.testing.assert_array_equal(deconvolve(image, np.zeros((5, 2, 9, 12), np.float32)), image)


def test_small_tile_with_blur_beyond_its_borders():
    image = np.random.default_rng(5).random((8, 8, 3), dtype=np.float32)
    out = deconvolve(image, random_traj(9, 8, 8, 20.0, seed=6), iterations=10)
    assert out.shape == (8, 8, 3) and np.isfinite(out).all()
    assert out.min() >= 0 and out.max() <= 1


def test_auto_tv_weight_grows_with_noise():
    _, blurred, _ = gyro_case(96)
    rng = np.random.default_rng(7)
    weights = [auto_tv_weight(blurred + rng.normal(0, s, blurred.shape)) for s in (0.0, 0.01, 0.03)]
    assert weights[0] < weights[1] < weights[2] == 0.03


def fine_texture(size=256):
    """Stripes of 5-7 px periods, as blur leaves them sharp: no noise at all."""
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    return 0.5 + 0.3 * np.sin(1.3 * xx) * np.sin(0.9 * yy)


@pytest.mark.parametrize("sigma", [0.003, 0.01, 0.03])
def test_noise_sigma_finds_added_noise_under_fine_texture(sigma):
    texture = np.repeat(fine_texture()[..., None], 3, axis=2)
    noisy = texture + np.random.default_rng(1).normal(0, sigma, texture.shape)
    assert noise_sigma(noisy) == pytest.approx(sigma, rel=0.1)


@pytest.mark.parametrize("shared", [0.5, 0.9, 1.0])
def test_noise_sigma_per_channel_whatever_noise_the_channels_share(shared):
    # Demosaicing and JPEG correlate the channels' noise; a gray image stored as RGB (as
    # footage reads a gray PNG) shares all of it. The std of each channel is 0.02.
    rng = np.random.default_rng(2)
    texture = np.repeat(fine_texture()[..., None], 3, axis=2)
    common, own = rng.normal(0, 1, texture.shape[:2] + (1,)), rng.normal(0, 1, texture.shape)
    noisy = texture + 0.02 * (np.sqrt(shared) * common + np.sqrt(1 - shared) * own)
    assert noise_sigma(noisy) == pytest.approx(0.02, rel=0.1)


def test_noise_sigma_refuses_channels_first():
    noisy = np.random.default_rng(0).normal(0.5, 0.02, (3, 64, 80)).astype(np.float32)
    with pytest.raises(ValueError, match=r"got \(3, 64, 80\) \(\(C, H, W\)\? put the channels"):
        noise_sigma(noisy)


def test_auto_settings_refuse_what_they_would_misread():
    with pytest.raises(ValueError, match=r"0\.\.255 floats"):
        auto_tv_weight(np.full((16, 16, 3), 128.0, np.float32))
    with pytest.raises(ValueError, match="uint8 or uint16, got int64"):
        auto_tv_weight(np.full((16, 16, 3), 128, np.int64))
    traj = np.zeros((3, 2, 4, 4), np.float32)
    traj[:, :, 0, 0] = np.nan  # a corner without a ray through a fisheye lens
    for auto in (auto_iterations, auto_subsamples):
        with pytest.raises(ValueError, match="non-finite values .*still_where_no_ray"):
            auto(traj)


def test_noise_sigma_of_noise_free_texture_and_clutter_is_near_zero():
    # The patch PCA alone reads 0.09 on dead leaves, the filter alone 0.03 on the stripes.
    clutter = dead_leaves(256, np.random.default_rng(0))
    assert noise_sigma(fine_texture()) < 1e-3 and noise_sigma(clutter) < 2e-3
    assert noise_sigma(np.full((3, 3), 0.5, np.float32)) == 0.0
    with pytest.raises(ValueError, match="H, W >= 3"):
        noise_sigma(np.zeros((2, 8, 3), np.float32))


def test_rejects_bad_arguments():
    image = np.zeros((8, 8, 3), np.float32)
    with pytest.raises(ValueError, match="traj must be"):
        deconvolve(image, np.zeros((3, 2, 8, 9), np.float32))
    with pytest.raises(ValueError, match="non-finite"):
        deconvolve(image, np.full((3, 2, 8, 8), np.nan, np.float32))
    with pytest.raises(ValueError, match="tv_weight"):
        deconvolve(image, np.ones((3, 2, 8, 8), np.float32), tv_weight=0.3)
    with pytest.raises(ValueError, match="float sRGB in"):
        deconvolve(np.zeros((8, 8, 3), np.int32), np.ones((3, 2, 8, 8), np.float32))
    with pytest.raises(ValueError, match="non-finite"):
        deconvolve(np.full((8, 8, 3), np.nan, np.float32), np.ones((3, 2, 8, 8), np.float32))
    with pytest.raises(ValueError, match=r"subsamples must be an integer >= 1, got 1\.5"):
        deconvolve(image, np.ones((3, 2, 8, 8), np.float32), subsamples=1.5)


def test_auto_iterations_are_four_per_pixel_of_the_median_path_within_8_to_30():
    traj = np.zeros((9, 2, 6, 8), np.float32)
    # A diagonal path of length 5 px (3-4-5 triangle) on all but one column, 40 px there.
    traj[:, 0] = np.linspace(0, 3, 9)[:, None, None]
    traj[:, 1] = np.linspace(0, 4, 9)[:, None, None]
    traj[..., 0] *= 8
    assert auto_iterations(traj) == 20
    assert auto_iterations(traj * 0.1) == 8
    assert auto_iterations(traj * 3) == 30
    assert auto_iterations(np.zeros((1, 2, 4, 4), np.float32)) == 8


def test_taps_between_the_samples_are_the_interpolated_trajectory():
    _, blurred, traj = gyro_case(64)
    traj = traj * 6  # samples up to ~8 px apart
    dense = interpolate_samples(torch.from_numpy(traj)[None], 3)[0].numpy()
    np.testing.assert_allclose(deconvolve(blurred, traj, 5, 0.01, subsamples=3),
                               deconvolve(blurred, dense, 5, 0.01, subsamples=1), atol=1e-5)
    assert auto_subsamples(traj) == 2 and auto_subsamples(traj / 6) == 1


def test_long_blur_is_deconvolved_as_a_streak_not_copies():
    # 60 px of blur, 7.5 px between samples: the synthesis integrates it continuously.
    sharp = skimage_image("coffee")[::2, ::2][32:160, 64:256].astype(np.float32)
    traj = np.zeros((9, 2, 128, 192), np.float32)
    traj[:, 0] = np.linspace(-30, 30, 9)[:, None, None]
    blurred = blur_image(sharp, traj, subsamples=continuous_subsamples(traj))
    copies = psnr(deconvolve(blurred, traj, subsamples=1), sharp)
    assert psnr(deconvolve(blurred, traj), sharp) > copies + 0.5  # 0.70 dB


def test_auto_tv_weight_of_an_8_bit_image_is_that_of_its_unit_range_twin():
    noisy = np.random.default_rng(4).normal(0.5, 0.01, (48, 48, 3)).clip(0, 1)
    byte = (noisy * 255).round().astype(np.uint8)
    assert auto_tv_weight(byte) == pytest.approx(auto_tv_weight(byte / np.float32(255)))
    assert auto_tv_weight(byte) < 0.03  # not the cap that 0..255 values would reach


def test_deconvolve_takes_an_8_bit_image_as_its_unit_range_twin():
    byte = np.random.default_rng(5).integers(0, 256, (16, 16, 3), np.uint8)
    traj = np.zeros((3, 2, 16, 16), np.float32)
    traj[:, 0] = np.array([-1.0, 0.0, 1.0])[:, None, None]
    np.testing.assert_array_equal(deconvolve(byte, traj), deconvolve(byte / np.float32(255), traj))


def test_deconvolve_refuses_an_image_of_0_to_255_floats():
    # Clipped to [0, 1], it would come back nearly white.
    image = np.random.default_rng(0).random((16, 16, 3)).astype(np.float32) * 255
    with pytest.raises(ValueError, match=r"blurred: float values must lie in \[0, 1\]"):
        deconvolve(image, np.zeros((3, 2, 16, 16), np.float32))
