import math
import re

import cv2
import numpy as np
import pytest
import torch

from gyrodeblur.synthesis.blur import (
    SATURATION_THRESHOLD,
    _blur_grid_sample,
    _blur_numba,
    blur,
    blur_image,
    linear_to_srgb,
    srgb_to_linear,
)

# Both implementations: the numba one (CPU tensors) and the grid_sample one (other devices).
PATHS = {"numba": _blur_numba, "grid_sample": _blur_grid_sample}
# grid_sample goes through normalised float32 coordinates, so a whole pixel can be off by ~1e-6.
EXACT = {"numba": 1e-6, "grid_sample": 1e-5}


def smooth_image(H, W, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:H, 0:W] / max(H, W)
    phase = rng.uniform(0, 2 * np.pi, (3, 1, 1))
    img = 0.5 + 0.4 * np.sin(6 * x[None] + 4 * y[None] + phase)
    return torch.from_numpy(img.astype(np.float32))[None]


def smooth_traj(T, H, W, amp, seed=0):
    """Smooth random trajectories: a random low-frequency field per sample."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:H, 0:W] / max(H, W)
    t = np.linspace(-1, 1, T)[:, None, None, None]
    a = rng.normal(size=(4, 2, 1, 1))
    field = a[0] + a[1] * x + a[2] * y + a[3] * np.sin(3 * x + 2 * y)
    return torch.from_numpy((amp * t * field[None]).astype(np.float32))[None]


@pytest.mark.parametrize("path", PATHS)
def test_zero_trajectory_is_identity(path):
    sharp = torch.rand(2, 3, 17, 23, generator=torch.Generator().manual_seed(0))
    out = PATHS[path](sharp, torch.zeros(2, 4, 2, 17, 23), None)
    assert (out - sharp).abs().max() < EXACT[path]


@pytest.mark.parametrize("path", PATHS)
def test_constant_image_stays_constant(path):
    sharp = torch.full((1, 3, 12, 15), 0.3)
    traj = 20 * torch.randn(1, 6, 2, 12, 15, generator=torch.Generator().manual_seed(1))
    assert (PATHS[path](sharp, traj, None) - 0.3).abs().max() < 1e-6


@pytest.mark.parametrize("path", PATHS)
def test_horizontal_constant_velocity_is_box_filter_in_linear_light(path):
    T, v, H, W = 5, 2, 6, 40
    sharp = torch.rand(1, 3, H, W, generator=torch.Generator().manual_seed(2))
    traj = torch.zeros(1, T, 2, H, W)
    for i in range(T):
        traj[0, i, 0] = (i - (T - 1) / 2) * v
    out = srgb_to_linear(PATHS[path](sharp, traj, None))[0].numpy()
    lin = srgb_to_linear(sharp)[0].numpy()
    reach = (T - 1) // 2 * v
    expected = np.zeros_like(lin)
    for x in range(reach, W - reach):
        for i in range(T):
            expected[..., x] += lin[..., x + (i - (T - 1) // 2) * v] / T
    inner = slice(reach, W - reach)
    np.testing.assert_allclose(out[..., inner], expected[..., inner], atol=1e-5)


def test_mean_linear_brightness_is_preserved_away_from_borders():
    H, W = 96, 128
    rng = np.random.default_rng(3)
    sharp = torch.from_numpy(rng.random((1, 3, H, W), dtype=np.float32))
    traj = smooth_traj(9, H, W, amp=3.0, seed=3)
    out = srgb_to_linear(blur(sharp, traj))
    lin = srgb_to_linear(sharp)
    m = 12  # further than any displacement
    inner = (..., slice(m, H - m), slice(m, W - m))
    assert abs(out[inner].mean() / lin[inner].mean() - 1) < 0.01
    assert out[inner].std() < 0.8 * lin[inner].std()  # and it did blur


@pytest.mark.parametrize("path", PATHS)
def test_half_pixel_offsets_average_neighbours(path):
    sharp = torch.rand(1, 3, 8, 9, generator=torch.Generator().manual_seed(4))
    lin = srgb_to_linear(sharp)
    traj = torch.full((1, 1, 2, 8, 9), 0.5)
    out = srgb_to_linear(PATHS[path](sharp, traj, None))
    four = (lin[..., :-1, :-1] + lin[..., :-1, 1:] + lin[..., 1:, :-1] + lin[..., 1:, 1:]) / 4
    assert (out[..., :-1, :-1] - four).abs().max() < 1e-5
    traj[:, :, 1] = 0.0
    out = srgb_to_linear(PATHS[path](sharp, traj, None))
    assert (out[..., :-1] - (lin[..., :-1] + lin[..., 1:]) / 2).abs().max() < 1e-5


@pytest.mark.parametrize("path", PATHS)
def test_outside_samples_clamp_to_the_border(path):
    sharp = torch.rand(1, 3, 5, 6, generator=torch.Generator().manual_seed(5))
    traj = torch.zeros(1, 1, 2, 5, 6)
    traj[:, :, 0] = -100.0  # every pixel samples far left of the image
    out = PATHS[path](sharp, traj, None)
    assert (out - sharp[..., :1]).abs().max() < EXACT[path]


@pytest.mark.parametrize("path", PATHS)
def test_saturation_streaks_clipped_light_at_full_brightness(path):
    T, H, W = 9, 5, 31
    sharp = torch.zeros(1, 3, H, W)
    sharp[..., 2, 15] = 1.0  # a clipped point light
    traj = torch.zeros(1, T, 2, H, W)
    for i in range(T):
        traj[0, i, 0] = i - (T - 1) / 2
    streak = (..., 2, slice(11, 20))
    dim = PATHS[path](sharp, traj, None)
    bright = PATHS[path](sharp, traj, 20.0)
    assert (srgb_to_linear(dim[streak]) - 1 / T).abs().max() < 1e-5
    assert (bright[streak] - 1.0).abs().max() < 1e-6
    # Off the path it stays dark (up to the gain times float32 rounding of the weights).
    assert bright[..., 2, :11].abs().max() < 1e-4 and bright[..., 1, :].abs().max() < 1e-4


def test_saturation_leaves_unclipped_pixels_alone():
    sharp = torch.rand(1, 3, 10, 12, generator=torch.Generator().manual_seed(6))
    sharp = sharp * (SATURATION_THRESHOLD - 0.01)
    traj = smooth_traj(4, 10, 12, amp=2.0)
    assert (blur(sharp, traj, saturation=5.0) - blur(sharp, traj)).abs().max() < 1e-7


@pytest.mark.parametrize("saturation", [None, 3.0])
def test_numba_and_grid_sample_agree(saturation):
    g = torch.Generator().manual_seed(7)
    sharp = torch.rand(2, 3, 33, 47, generator=g)
    sharp[sharp > 0.9] = 1.0
    traj = 4 * torch.randn(2, 5, 2, 33, 47, generator=g)
    a = _blur_numba(sharp, traj, saturation)
    b = _blur_grid_sample(sharp, traj, saturation)
    assert (a - b).abs().max() < 1e-5


@pytest.mark.parametrize("path", PATHS)
def test_subsamples_blur_the_piecewise_linear_trajectory(path):
    # Reference: the points on each interval built by hand, blurred as plain samples.
    g = torch.Generator().manual_seed(3)
    sharp = torch.rand(1, 3, 21, 26, generator=g)
    traj = 3 * torch.randn(1, 4, 2, 21, 26, generator=g)
    dense = [traj[:, i] + (k / 3) * (traj[:, i + 1] - traj[:, i]) for i in range(3)
             for k in range(3)] + [traj[:, 3]]
    reference = _blur_numba(sharp, torch.stack(dense, 1), None)
    assert (PATHS[path](sharp, traj, None, 3) - reference).abs().max() < EXACT[path] * 10


def test_continuous_blur_of_a_long_uniform_motion_is_a_box_filter_not_copies():
    # 9 samples of a 40 px horizontal motion: 5 px apart, 9 copies of a bright column; a
    # sensor integrating continuously spreads it evenly over the 41 px it crosses.
    from gyrodeblur.synthesis.blur import continuous_subsamples

    sharp = torch.zeros(1, 3, 1, 101)
    sharp[..., 50] = 1.0
    traj = torch.zeros(1, 9, 2, 1, 101)
    traj[:, :, 0] = torch.linspace(-20, 20, 9).view(1, 9, 1, 1)
    subsamples = continuous_subsamples(traj[0])
    assert subsamples == 10  # 0.5 px steps
    linear = srgb_to_linear(blur(sharp, traj, subsamples=subsamples))[0, 0, 0]
    inside = linear[31:70]
    assert (inside.max() - inside.min()) / inside.mean() < 1e-5  # even, no comb of copies
    assert float(linear.sum()) == pytest.approx(1.0, rel=1e-5)  # the light is kept
    copies = srgb_to_linear(blur(sharp, traj))[0, 0, 0, 31:70]
    assert copies.min() == 0.0  # the 9-sample blur leaves gaps


def test_subsampling_takes_one_frame_or_a_batch_and_refuses_another_layout():
    from gyrodeblur.synthesis.blur import continuous_subsamples, interpolate_samples

    traj = np.zeros((4, 2, 3, 5), np.float32)
    traj[:, 0] = np.arange(4)[:, None, None] * 3.0  # 3 px steps to the right
    one = interpolate_samples(traj, 3)  # a frame, as NumPy
    assert one.shape == (10, 2, 3, 5)
    np.testing.assert_allclose(one[:, 0, 0, 0].numpy(), np.arange(10.0))
    torch.testing.assert_close(interpolate_samples(torch.from_numpy(traj)[None], 3)[0], one)
    for wrong in (traj.transpose(2, 3, 0, 1), traj.astype(np.int64)):  # (H, W, T, 2), ints
        with pytest.raises(ValueError, match=r"traj must be \(\.\.\., T, 2, H, W\) floats"):
            continuous_subsamples(wrong)
        with pytest.raises(ValueError, match="traj must be"):
            interpolate_samples(wrong, 2)


def test_blur_uses_the_device_path_and_numpy_convenience_matches():
    sharp = smooth_image(16, 20)
    traj = smooth_traj(6, 16, 20, amp=2.5)
    out = blur(sharp, traj)
    assert out.shape == sharp.shape and out.dtype == torch.float32
    hwc = blur_image(sharp[0].permute(1, 2, 0).numpy(), traj[0].numpy())
    assert hwc.shape == (16, 20, 3) and hwc.dtype == np.float32
    np.testing.assert_allclose(hwc, out[0].permute(1, 2, 0).numpy(), atol=1e-7)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")
def test_cuda_matches_cpu():
    sharp = smooth_image(40, 50)
    traj = smooth_traj(8, 40, 50, amp=4.0)
    cuda = blur(sharp.cuda(), traj.cuda(), saturation=2.0)
    assert cuda.is_cuda
    assert (cuda.cpu() - blur(sharp, traj, saturation=2.0)).abs().max() < 1e-5


def test_bad_shapes_and_gain_are_refused():
    sharp = torch.zeros(1, 3, 4, 5)
    with pytest.raises(ValueError, match="traj"):
        blur(sharp, torch.zeros(1, 3, 2, 5, 4))
    with pytest.raises(ValueError, match="sharp"):
        blur(sharp[:, :2], torch.zeros(1, 3, 2, 4, 5))
    for gain in (0.5, math.nan, math.inf):
        with pytest.raises(ValueError, match="saturation"):
            blur(sharp, torch.zeros(1, 3, 2, 4, 5), saturation=gain)
    with pytest.raises(ValueError, match="no samples"):
        blur(sharp, torch.zeros(1, 0, 2, 4, 5))
    with pytest.raises(ValueError, match=r"0\.\.255 floats"):
        blur_image(np.full((4, 5, 3), 200.0), np.zeros((3, 2, 4, 5), np.float32))
    with pytest.raises(ValueError, match=r"\(T, 2, 4, 5\)"):
        blur_image(np.zeros((4, 5, 3)), np.zeros((3, 2, 5, 4), np.float32))
    with pytest.raises(ValueError, match="non-finite values .NaN: .*still_where_no_ray"):
        blur_image(np.zeros((4, 5, 3), np.float32), np.full((3, 2, 4, 5), np.nan, np.float32))


def test_large_finite_half_precision_trajectories_are_not_taken_for_nan():
    # Their float16 sum overflows; the values themselves are finite.
    blurred = blur(torch.full((1, 3, 8, 8), 0.5), torch.full((1, 9, 2, 8, 8), 30.0,
                                                              dtype=torch.float16))
    torch.testing.assert_close(blurred, torch.full((1, 3, 8, 8), 0.5))


def test_integer_images_are_scaled_to_unit_range():
    traj = smooth_traj(4, 6, 7, amp=2.0)[0].numpy()
    image = np.random.default_rng(0).integers(0, 256, (6, 7, 3), dtype=np.uint8)
    np.testing.assert_allclose(blur_image(image, traj), blur_image(image / 255.0, traj),
                               atol=1e-6)


def test_srgb_curves_invert_each_other_and_match_known_values():
    x = torch.linspace(0, 1, 1001)
    assert (linear_to_srgb(srgb_to_linear(x)) - x).abs().max() < 1e-6
    assert (srgb_to_linear(linear_to_srgb(x)) - x).abs().max() < 1e-6
    assert abs(float(srgb_to_linear(torch.tensor(0.5))) - 0.21404) < 1e-5
    assert abs(float(srgb_to_linear(torch.tensor(0.04045))) - 0.0031308) < 1e-6
    assert float(srgb_to_linear(torch.tensor(0.02))) == pytest.approx(0.02 / 12.92)
    assert float(linear_to_srgb(torch.tensor(0.18))) == pytest.approx(0.46135, abs=1e-5)
    np.testing.assert_allclose(srgb_to_linear(x.numpy()), srgb_to_linear(x).numpy(), atol=1e-7)
    assert srgb_to_linear(0.5) == pytest.approx(0.21404, abs=1e-5)  # a number
    for stored in (np.array([0, 128, 255], np.uint8), torch.tensor([0, 255])):
        with pytest.raises(TypeError, match="takes values in \\[0, 1\\] as floats, got "):
            srgb_to_linear(stored)
    np.testing.assert_allclose(linear_to_srgb(x.numpy()), linear_to_srgb(x).numpy(), atol=1e-7)
    assert srgb_to_linear(x.numpy()).dtype == np.float32
    # Negative inputs stay on the linear segment (finite, no warnings).
    with np.errstate(all="raise"):
        assert srgb_to_linear(np.array([-0.5])).tolist() == [-0.5 / 12.92]


def test_blur_is_differentiable_on_the_cpu_for_a_reblur_loss():
    g = torch.Generator().manual_seed(8)
    sharp = torch.rand(1, 3, 9, 11, generator=g).requires_grad_()
    traj = 2 * torch.randn(1, 4, 2, 9, 11, generator=g)
    out = blur(sharp, traj)
    assert out.requires_grad and (out - blur(sharp.detach(), traj)).abs().max() < 1e-5
    out.sum().backward()
    # Blurring moves the image's mass around: d(sum out) / d(sharp) is positive everywhere a
    # sample lands, and the whole frame is sampled by small motions.
    assert sharp.grad is not None and float(sharp.grad.sum()) > 0


def test_blur_image_returns_an_array_opencv_draws_on():
    out = blur_image(np.full((6, 8, 3), 0.5, np.float32), np.zeros((3, 2, 6, 8), np.float32))
    assert out.flags.c_contiguous
    cv2.rectangle(out, (1, 1), (4, 4), (1.0, 0.0, 0.0), 1)  # refuses a permuted view
    assert out[1, 1].tolist() == [1.0, 0.0, 0.0]


@pytest.mark.parametrize(("sharp", "traj", "error", "message"), [
    (np.zeros((1, 3, 4, 4), np.float32), np.zeros((1, 2, 2, 4, 4), np.float32), TypeError,
     "torch tensors (blur_image takes NumPy arrays)"),
    (torch.zeros(1, 3, 4, 4, dtype=torch.uint8), torch.zeros(1, 2, 2, 4, 4), ValueError,
     "must be float tensors, got torch.uint8"),
    (torch.full((1, 3, 4, 4), 200.0), torch.zeros(1, 2, 2, 4, 4), ValueError,
     r"float values must lie in [0, 1], got 200 to 200 (0..255 floats?)"),
    (torch.zeros(1, 3, 4, 4), torch.full((1, 2, 2, 4, 4), math.nan), ValueError,
     "traj has non-finite values (NaN: pixels without a ray"),
    (torch.zeros(1, 3, 4, 4), torch.full((1, 2, 2, 4, 4), math.nan, requires_grad=True),
     ValueError, "traj has non-finite values (NaN: pixels without a ray"),
])
def test_blur_refuses_what_it_would_blur_wrong(sharp, traj, error, message):
    with pytest.raises(error, match=re.escape(message)):
        blur(sharp, traj)
