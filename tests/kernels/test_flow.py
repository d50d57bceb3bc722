"""Flow backends, the forward-backward consistency mask and the gray conversion for flow."""

import cv2
import numpy as np
import pytest

from gyrodeblur.kernels.flow import FLOW_BACKENDS, consistent, to_gray_u8


@pytest.mark.parametrize("shape", [(5, 7), (1, 40), (40, 1), (12, 5)])
def test_every_backend_takes_frames_smaller_than_dis_pyramids(shape):
    image = (np.random.default_rng(0).random(shape) * 255).astype(np.uint8)
    for backend in FLOW_BACKENDS.values():
        flow = backend(image, image)
        assert flow.shape == (*shape, 2) and np.abs(flow).max() < 0.5


def test_consistency_mask_flags_occlusion():
    forward = np.zeros((20, 30, 2), np.float32)
    backward = np.zeros((20, 30, 2), np.float32)
    backward[5:10, 5:10] = 4.0  # disagrees with forward inside the square only
    valid = consistent(forward, backward)
    assert not valid[5:10, 5:10].any() and valid.sum() == 20 * 30 - 25


def test_consistency_mask_flags_flow_leaving_the_image():
    forward = np.zeros((10, 10, 2), np.float32)
    forward[:, :, 0] = 3.0
    valid = consistent(forward, -forward)
    assert valid[:, :7].all() and not valid[:, 7:].any()


def _consistent_brute_force(forward, backward):
    """The docstring's rule, pixel by pixel in float64: ``p + f`` inside the image and
    ``|f + b(p + f)|^2 <= 0.01 (|f|^2 + |b(p + f)|^2) + 0.5``, ``b`` sampled bilinearly.
    Also returns the distance of each pixel's test from its threshold."""
    h, w = forward.shape[:2]
    ok, margin = np.zeros((h, w), bool), np.full((h, w), np.inf)
    for y in range(h):
        for x in range(w):
            f = forward[y, x].astype(np.float64)
            tx, ty = x + f[0], y + f[1]
            if not (0 <= tx <= w - 1 and 0 <= ty <= h - 1):
                margin[y, x] = min(tx, w - 1 - tx, ty, h - 1 - ty, key=abs)
                continue
            x0, y0 = int(np.floor(tx)), int(np.floor(ty))
            ax, ay = tx - x0, ty - y0
            b = np.zeros(2)
            for yy, wy in ((y0, 1 - ay), (min(y0 + 1, h - 1), ay)):
                for xx, wx in ((x0, 1 - ax), (min(x0 + 1, w - 1), ax)):
                    b += wy * wx * backward[yy, xx]
            lhs = ((f + b) ** 2).sum()
            rhs = 0.01 * ((f ** 2).sum() + (b ** 2).sum()) + 0.5
            ok[y, x], margin[y, x] = lhs <= rhs, rhs - lhs
    return ok, margin


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_consistency_mask_matches_a_brute_force_reading_of_its_rule(seed):
    # A flow of a few pixels and a backward flow that undoes it up to noise: about half the
    # pixels pass, some flow out of the image.
    rng = np.random.default_rng(seed)
    h, w = 13, 17
    forward = (rng.normal(0, 2.0, 2) + rng.normal(0, 0.4, (h, w, 2))).astype(np.float32)
    backward = (-forward.mean((0, 1)) + rng.normal(0, 0.6, (h, w, 2))).astype(np.float32)
    want, margin = _consistent_brute_force(forward, backward)
    got = consistent(forward, backward)
    clear = np.abs(margin) > 1e-3  # float32 arithmetic may decide ties the other way
    assert clear.mean() > 0.95 and 0.2 < want.mean() < 0.9
    np.testing.assert_array_equal(got[clear], want[clear])


def test_gray_for_flow_weights_rgb_as_bt601_for_every_input_type():
    # cv2's RGB2GRAY is BT.601 luma: 0.299 R + 0.587 G + 0.114 B, rounded.
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (6, 7, 3)).astype(np.uint8)
    rgb[0, :3] = np.eye(3, dtype=np.uint8) * 255  # pure red, green, blue: 76, 150, 29
    want = np.rint(rgb.astype(np.float64) @ [0.299, 0.587, 0.114])
    for image in (rgb, rgb.astype(np.float32) / 255, rgb.astype(np.uint16) * 257):
        gray = to_gray_u8(image)
        assert gray.dtype == np.uint8 and gray.shape == (6, 7)
        assert np.abs(gray.astype(np.int16) - want).max() <= 1, image.dtype
    assert to_gray_u8(rgb)[0, :3].tolist() == [76, 150, 29]
    # Floats are clipped to [0, 1] and rounded; a gray uint8 frame passes through as it is.
    assert to_gray_u8(np.array([[[-0.4, -0.4, -0.4], [1.4, 1.4, 1.4]]], np.float32)).tolist() \
        == [[0, 255]]
    np.testing.assert_array_equal(to_gray_u8(rgb[..., 1]), rgb[..., 1])
    # What would make a frame all white: 0..255 floats, integers that are neither 8 nor 16 bit.
    with pytest.raises(ValueError, match=r"float values must lie in \[0, 1\].*0\.\.255 floats"):
        to_gray_u8(rgb.astype(np.float32))
    with pytest.raises(ValueError, match="integer images must be uint8 or uint16, got int64"):
        to_gray_u8(rgb.astype(np.int64))


@pytest.mark.parametrize("name", sorted(FLOW_BACKENDS))
def test_every_backend_measures_a_shift_with_the_documented_sign(name):
    # b is a shifted by s: a(p) = b(p + s), so the flow is s (the module's a(p) ~ b(p + flow)).
    rng = np.random.default_rng(3)
    noise = rng.normal(0, 1, (96, 128)).astype(np.float32)
    texture = sum(cv2.GaussianBlur(noise, (0, 0), s) for s in (1.5, 3.0, 6.0))
    a = cv2.normalize(texture, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    shift = (2.5, -1.5)
    b = cv2.warpAffine(a, np.array([[1, 0, shift[0]], [0, 1, shift[1]]]), (128, 96),
                       flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    flow = FLOW_BACKENDS[name](a, b)
    assert flow.shape == (96, 128, 2) and flow.dtype == np.float32
    np.testing.assert_allclose(np.median(flow[16:-16, 16:-16].reshape(-1, 2), axis=0), shift,
                               atol=0.15)


@pytest.mark.parametrize(("forward", "backward"), [
    (np.zeros((50, 60, 2), np.float32), np.full((3, 4, 2), 7, np.float32)),
    (np.zeros((5, 6), np.float32), np.zeros((5, 6), np.float32)),
])
def test_consistency_refuses_flows_of_other_shapes(forward, backward):
    with pytest.raises(ValueError, match=r"need two flows \(H, W, 2\) of one size"):
        consistent(forward, backward)
