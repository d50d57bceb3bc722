"""Modulated deformable convolution (DCNv2, Zhu et al., CVPR 2019) in plain PyTorch.

``torchvision.ops.deform_conv2d`` is not available here (no CPU build) and kornia's pure-PyTorch
copy lives inside its ALIKED feature module rather than its public API (and kornia < 0.9 lacks
it), so this file carries its own: each of the ``k*k`` taps is gathered with ``F.grid_sample``
(bilinear, zeros outside the image, exactly like the torchvision kernel), scaled by its mask,
and reduced with the tap's weights as a grouped 1x1 convolution into the output: im2col one
tap at a time, so that memory stays at a few times the input's rather than ``k*k`` times.

Layouts follow torchvision, so weights and offset heads are interchangeable with it:
``offset (B, 2*G*k*k, H, W)`` ordered ``(group, tap, (dy, dx))``, ``mask (B, G*k*k, H, W)``
ordered ``(group, tap)``, taps in row-major order, ``G`` offset groups dividing ``C_in``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def deform_conv2d(x: Tensor, offset: Tensor, weight: Tensor, bias: Tensor | None = None,
                  padding: int = 0, dilation: int = 1, mask: Tensor | None = None) -> Tensor:
    """Stride-1 deformable convolution; ``mask=None`` is DCNv1.

    ``weight`` is ``(C_out, C_in / groups, k, k)``; the conv groups follow from its shape, the
    offset groups from ``offset``'s channels. Output size is that of ``F.conv2d`` with the same
    padding and dilation.

    Example:
        >>> x, w = torch.randn(1, 4, 6, 7), torch.randn(8, 2, 3, 3)
        >>> off = torch.zeros(1, 2 * 2 * 9, 6, 7)  # 2 offset groups, zero offsets
        >>> y = deform_conv2d(x, off, w, padding=1, mask=torch.ones(1, 18, 6, 7))
        >>> bool(torch.allclose(y, F.conv2d(x, w, padding=1, groups=2), atol=1e-5))
        True
    """
    b, c, h, w = x.shape
    c_out, c_in_g, k, _ = weight.shape
    taps = k * k
    h_out = h + 2 * padding - dilation * (k - 1)
    w_out = w + 2 * padding - dilation * (k - 1)
    g = offset.shape[1] // (2 * taps)
    off = offset.view(b, g, taps, 2, h_out, w_out)
    masks = None if mask is None else mask.view(b, g, 1, taps, h_out, w_out)
    # Sampling position of tap n at output pixel (y, x) before the learned offset: (y, x) +
    # (ty[n], tx[n]); taps in row-major order. Tensors, not ints: ONNX export traces shapes.
    tap = torch.arange(k, device=x.device, dtype=x.dtype) * dilation - padding
    ty, tx = (t.reshape(-1) for t in torch.meshgrid(tap, tap, indexing="ij"))
    ys = torch.arange(h_out, device=x.device, dtype=x.dtype).view(1, 1, h_out, 1)
    xs = torch.arange(w_out, device=x.device, dtype=x.dtype).view(1, 1, 1, w_out)
    tap_weights = weight.permute(2, 3, 0, 1).reshape(taps, c_out, c_in_g, 1, 1)
    source = x.reshape(b * g, c // g, h, w)
    out = None
    # One tap at a time: the im2col stack of all taps would be k*k times the input's size.
    for n in range(taps):
        py = ys + ty[n] + off[:, :, n, 0]
        px = xs + tx[n] + off[:, :, n, 1]
        # Pixel centres -> grid_sample's [-1, 1] (align_corners=False works for sides of 1 too).
        grid = torch.stack(((2 * px + 1) / w - 1, (2 * py + 1) / h - 1), dim=-1)
        col = F.grid_sample(source, grid.view(b * g, h_out, w_out, 2), mode="bilinear",
                            padding_mode="zeros", align_corners=False)
        col = col.view(b, g, c // g, h_out, w_out)
        if masks is not None:
            col = col * masks[:, :, :, n]
        # The tap's weights as a grouped 1x1 convolution (input channels in x's order).
        y = F.conv2d(col.view(b, c, h_out, w_out), tap_weights[n], groups=c // c_in_g)
        out = y if out is None else out.add_(y)
    assert out is not None
    return out if bias is None else out + bias.view(1, -1, 1, 1)


class ModulatedDeformConv2d(nn.Module):
    """DCNv2 layer whose offsets and masks are given by the caller (torchvision's
    ``DeformConv2d`` layout: ``groups`` is both the conv groups and, through the offset
    channels the caller makes, normally the offset groups).

    Example:
        >>> dcn = ModulatedDeformConv2d(8, 8, 3, padding=2, dilation=2, groups=4)
        >>> x = torch.randn(2, 8, 5, 6)
        >>> dcn(x, torch.zeros(2, 72, 5, 6), torch.ones(2, 36, 5, 6)).shape
        torch.Size([2, 8, 5, 6])
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int = 0,
                 dilation: int = 1, groups: int = 1, bias: bool = True) -> None:
        super().__init__()
        self.padding, self.dilation = padding, dilation
        self.weight = nn.Parameter(
            torch.empty(out_channels, in_channels // groups, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        # nn.Conv2d's default initialisation.
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    def forward(self, x: Tensor, offset: Tensor, mask: Tensor | None = None) -> Tensor:
        return deform_conv2d(x, offset, self.weight, self.bias, self.padding, self.dilation, mask)
