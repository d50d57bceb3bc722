"""Modulated deformable convolution: plain convolutions, a kornia copy and a brute-force loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gyrodeblur.models.deform import ModulatedDeformConv2d, deform_conv2d

pytestmark = pytest.mark.usefixtures("one_thread")


def test_deform_conv_zero_offsets_unit_masks_is_conv() -> None:
    torch.manual_seed(0)
    dcn = ModulatedDeformConv2d(8, 8, 3, padding=2, dilation=2, groups=4)
    x = torch.randn(2, 8, 9, 7)
    y = dcn(x, torch.zeros(2, 2 * 4 * 9, 9, 7), torch.ones(2, 4 * 9, 9, 7))
    ref = F.conv2d(x, dcn.weight, dcn.bias, padding=2, dilation=2, groups=4)
    torch.testing.assert_close(y, ref, atol=1e-5, rtol=0)


def test_deform_conv_integer_offset_is_shifted_conv() -> None:
    # Every tap sampling one pixel to the right = the conv of the left-shifted, zero-filled input.
    torch.manual_seed(1)
    x, w = torch.randn(1, 4, 6, 8), torch.randn(5, 4, 3, 3)
    off = torch.zeros(1, 2 * 9, 6, 8)
    off[:, 1::2] = 1.0  # (dy, dx) pairs: dx = 1
    shifted = F.pad(x[..., 1:], (0, 1))
    # Column 0 differs: its left taps read x[..., 0] there but the conv's zero padding here.
    torch.testing.assert_close(deform_conv2d(x, off, w, padding=1)[..., 1:],
                               F.conv2d(shifted, w, padding=1)[..., 1:], atol=1e-5, rtol=0)


def test_deform_conv_matches_kornia_reference() -> None:
    aliked = pytest.importorskip("kornia.feature.aliked")
    torch.manual_seed(2)
    x, w, b = torch.randn(2, 8, 9, 11), torch.randn(8, 2, 3, 3), torch.randn(8)
    off, mask = 3 * torch.randn(2, 2 * 4 * 9, 9, 11), torch.rand(2, 4 * 9, 9, 11)
    ref = aliked.deform_conv2d(x, off, w, b, padding=(2, 2), dilation=(2, 2), mask=mask)
    torch.testing.assert_close(deform_conv2d(x, off, w, b, 2, 2, mask), ref, atol=1e-4, rtol=0)


def _bilinear(image: np.ndarray, y: float, x: float) -> float:
    """``image (H, W)`` at ``(y, x)`` in pixel centres: the four neighbours' bilinear mix, those
    outside the image reading zero."""
    h, w = image.shape
    y0, x0 = int(np.floor(y)), int(np.floor(x))
    total = 0.0
    for yy, wy in ((y0, 1 - (y - y0)), (y0 + 1, y - y0)):
        for xx, wx in ((x0, 1 - (x - x0)), (x0 + 1, x - x0)):
            if 0 <= yy < h and 0 <= xx < w:
                total += wy * wx * image[yy, xx]
    return total


def _brute_force(x, offset, weight, bias, padding, dilation, mask):
    """The DCNv2 sum written out: output pixel by pixel, tap by tap, input channel by channel."""
    b, c, h, w = x.shape
    c_out, c_in_g, k, _ = weight.shape
    groups, g = c // c_in_g, offset.shape[1] // (2 * k * k)
    h_out, w_out = h + 2 * padding - dilation * (k - 1), w + 2 * padding - dilation * (k - 1)
    out = np.zeros((b, c_out, h_out, w_out))
    for n in range(b):
        for o in range(c_out):
            group = o // (c_out // groups)
            for y in range(h_out):
                for xo in range(w_out):
                    total = 0.0 if bias is None else bias[o]
                    for j in range(c_in_g):
                        ch = group * c_in_g + j
                        og = ch // (c // g)  # the channel's offset group
                        for ky in range(k):
                            for kx in range(k):
                                tap = ky * k + kx
                                dy = offset[n, 2 * (og * k * k + tap), y, xo]
                                dx = offset[n, 2 * (og * k * k + tap) + 1, y, xo]
                                m = 1.0 if mask is None else mask[n, og * k * k + tap, y, xo]
                                v = _bilinear(x[n, ch], y - padding + ky * dilation + dy,
                                              xo - padding + kx * dilation + dx)
                                total += weight[o, j, ky, kx] * m * v
                    out[n, o, y, xo] = total
    return out


@pytest.mark.parametrize(("groups", "offset_groups", "padding", "dilation", "modulated"), [
    (1, 1, 1, 1, True),
    (2, 2, 2, 2, True),
    (2, 1, 0, 1, True),   # offset groups other than the conv groups
    (1, 2, 1, 1, False),  # DCNv1: no mask
])
def test_deform_conv_matches_a_brute_force_loop(groups, offset_groups, padding, dilation,
                                                modulated):
    # Random offsets of up to a few pixels (many taps fall between pixels and some outside the
    # image) and random masks, on an input small enough to loop over.
    g = torch.Generator().manual_seed(groups * 10 + offset_groups + 3 * padding)
    c_in, c_out, k, h, w = 4, 4, 3, 5, 6
    h_out, w_out = h + 2 * padding - dilation * (k - 1), w + 2 * padding - dilation * (k - 1)
    x = torch.randn(2, c_in, h, w, generator=g, dtype=torch.float64)
    weight = torch.randn(c_out, c_in // groups, k, k, generator=g, dtype=torch.float64)
    bias = torch.randn(c_out, generator=g, dtype=torch.float64)
    offset = 2.5 * torch.randn(2, 2 * offset_groups * k * k, h_out, w_out, generator=g,
                               dtype=torch.float64)
    mask = (torch.rand(2, offset_groups * k * k, h_out, w_out, generator=g, dtype=torch.float64)
            if modulated else None)
    got = deform_conv2d(x, offset, weight, bias, padding, dilation, mask)
    want = _brute_force(x.numpy(), offset.numpy(), weight.numpy(), bias.numpy(), padding,
                        dilation, None if mask is None else mask.numpy())
    assert got.shape == want.shape
    np.testing.assert_allclose(got.numpy(), want, atol=1e-9, rtol=0)
