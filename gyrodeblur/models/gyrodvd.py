"""GyroDVD: gyro-guided video deblurring (Rim, Chang et al., CVPR 2026), reimplemented.

Data flow (``N = B*F`` frames side by side; the clip axis is only used by the shifts)::

    frames [+ path samples] --stem--> x0, r0, s0     (width0, full resolution)
    k_rot  --stem_rot--+
                       +--> K = f_rot(k_rot) + f_tran(k_tran)      (feature-domain fusion)
    k_tran --stem_tran-+
    (s0 + K, K) --GuidedUNet--> d  3 levels: DCNv2 blocks whose offsets/masks come from K,
                                   then kernel-guided shift (KGS) blocks at 1/4 and 1/2 scale
    [x0, r0, d] --conv, UNet, 5x5 conv--> residual added to the blurred frames

A stem is ``conv3x3 -> (+ three-level UNet of channel-attention blocks) -> conv3x3``. The KGS
block is a grouped spatial-temporal shift (as in Shift-Net) whose per-group spatial shifts are
predicted from ``K``: half of the channels come from the next (or previous) frame, and a copy of
them, split into 8 groups, is warped by the group's predicted ``(dx, dy)`` with ``grid_sample``;
the block's gated NAF-style body then fuses current, shifted and warped channels. The layout,
widths and block counts follow the authors' code (``GyroDVD_arch.py``), so ``gyrodvd-64`` and
``gyrodvd-128`` have the paper's 5.0 M and 17.2 M parameters.

Differences from the authors' code: every frame is restored (theirs drops the first and last
frame of the window; a training loop may do the same), the batch axis is kept (theirs takes
``B = 1``), inputs may have any size (padded to a multiple of 4), kernels are divided by a fixed
``kernel_scale`` (theirs takes raw pixels), ``T`` is a constructor argument (theirs is 8), offset
heads start at zero (a plain conv / an unwarped shift), ``K`` is also added to the image features
entering the body (with zero-initialised heads, the authors' net sends the kernel encoders no
gradient at the first step, and small nets on short budgets learned to ignore ``K``), and the
ablations below are added.

Ablations (constructor arguments, as a YAML config passes them):

- ``kernel``: ``"rot+tran"`` (the paper), ``"rot"`` (gyro only; ``tran`` is ignored),
  ``"flow"`` (a kernel derived from optical flow alone, e.g. ``traj_tran`` computed without
  removing the rotational flow, passed as ``tran``; ``rot`` is ignored and may be ``None``),
  ``"none"`` (no kernel branch: the guide stream is a copy of the image features, so the DCN
  offsets and KGS shifts are predicted from the blurred frames, as in a plain deformable net).
- ``fusion``: ``"feature"`` (``f_rot(k_rot) + f_tran(k_tran)``) or ``"pixel"``
  (``f(k_rot + k_tran)``, one encoder on the full trajectory); only ``"rot+tran"`` has two parts.
- ``path_samples`` (ours, off in the paper's nets): the image encoder also sees each blurred
  frame sampled along its own kernel, ``y(p + k_t(p)) - y(p)`` for the ``T`` trajectory
  samples (``k = k_rot + k_tran``, ``k_rot``, or the flow kernel, as ``kernel`` says). Their
  mean is the frame blurred once more by its kernel, so a first deconvolution step
  (Van Cittert: ``2y - Ay``) is one linear layer away; small nets on CPU budgets did not learn
  to use the kernel from its trajectory alone.
- ``decoder``: ``"kgs"`` (the paper), ``"shift"`` (the same grouped spatial-temporal shift with
  fixed, unguided shifts of ``FIXED_SHIFT_PX`` in the 8 compass directions; no kernel in the
  decoder), ``"concat"`` (temporal shift without warps; a 1x1 projection of the kernel features
  is concatenated in place of the warped channels).
"""

from __future__ import annotations

from typing import Any, Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gyrodeblur.models.blocks import (
    KERNEL_SCALE,
    ChannelPool,
    LayerNorm2d,
    along_path,
    crop_to,
    pad_to_multiple,
    parameter_count,
    require_sound_values,
    require_tensors,
    sampling_grid,
)
from gyrodeblur.models.deform import ModulatedDeformConv2d

__all__ = ["GYRODVD_VARIANTS", "GyroDVD", "KGSBlock", "group_warp",
           "parameter_count", "temporal_shift"]

KernelMode = Literal["rot+tran", "rot", "flow", "none"]
FusionMode = Literal["feature", "pixel"]
DecoderMode = Literal["kgs", "shift", "concat"]

#: Shift of every group in the unguided ``decoder="shift"`` ablation, in pixels of its level.
FIXED_SHIFT_PX = 2.0
#: Spatial-shift groups of a KGS block (the authors' 8).
SHIFT_GROUPS = 8
#: The forward's kernel inputs each ``kernel`` mode reads, and the one that is (or, for
#: ``"rot+tran"``, whose sum is) the full trajectory of the blur.
KERNEL_INPUTS = {"rot+tran": ("rot", "tran"), "rot": ("rot",), "flow": ("tran",), "none": ()}
FULL_KERNEL = {"rot+tran": "rot+tran", "rot": "rot", "flow": "tran"}

GYRODVD_VARIANTS: dict[str, dict[str, Any]] = {
    # The paper's sizes: decoder width 64 / 128, full-resolution width 24, 6 + 6 KGS blocks.
    "gyrodvd-64": {"width": 64},
    "gyrodvd-128": {"width": 128},
    # CPU variants: narrower everywhere and 2 + 2 KGS blocks.
    "gyrodvd-s": {"width": 16, "width0": 8, "blocks": (2, 2)},
    "gyrodvd-m": {"width": 24, "width0": 12, "blocks": (2, 2)},
    # The kernel-source ablation's size: trains in minutes per hundred steps on 2 cores.
    "gyrodvd-xs": {"width": 16, "width0": 4, "blocks": (1, 1)},
}


def temporal_shift(x: Tensor, frames: int, step: int) -> Tensor:
    """Frame ``t`` of ``(B*F, C, H, W)`` gets frame ``t + step`` (``step`` = +-1), clip ends
    repeated.

    Example:
        >>> temporal_shift(torch.arange(3.0).view(3, 1, 1, 1), 3, 1).flatten().tolist()
        [1.0, 2.0, 2.0]
    """
    # reshape, not unflatten/flatten: the ONNX exporter loses the batch size of the latter and
    # bakes the traced one into later reshapes.
    v = x.reshape(-1, frames, *x.shape[1:])
    v = torch.cat((v[:, 1:], v[:, -1:]), 1) if step > 0 else torch.cat((v[:, :1], v[:, :-1]), 1)
    return v.reshape(x.shape)


def group_warp(x: Tensor, offset: Tensor, groups: int = SHIFT_GROUPS) -> Tensor:
    """Warp each of ``groups`` channel groups by its own flow: ``out(p) = x(p + d_g(p))``.

    ``offset`` is ``(N, 2*groups, H, W)`` ordered ``(group, (dx, dy))`` in pixels (or broadcast
    from ``(1, 2*groups, 1, 1)``); bilinear, zeros outside.

    Example:
        >>> x = torch.arange(8.0).view(1, 1, 1, 8).repeat(1, 8, 1, 1)
        >>> off = torch.zeros(1, 16, 1, 1); off[:, 0] = 1.0  # group 0 samples one pixel right
        >>> group_warp(x, off)[0, :2, 0, :3].tolist()
        [[1.0, 2.0, 3.0], [0.0, 1.0, 2.0]]
    """
    n, c, h, w = x.shape
    grid = sampling_grid(offset.expand(n, -1, h, w).reshape(n * groups, 2, h, w))
    out = F.grid_sample(x.reshape(n * groups, c // groups, h, w), grid, mode="bilinear",
                        padding_mode="zeros", align_corners=False)
    return out.view(n, c, h, w)


def _conv(cin: int, cout: int, k: int, bias: bool = False, stride: int = 1,
          groups: int = 1) -> nn.Conv2d:
    # (k - 1) // 2 keeps the size for odd k and gives the exact halving of a 2x2, stride-2 conv.
    return nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=bias)


def _up(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                         _conv(cin, cout, 1))


class ConvAttnBlock(nn.Module):
    """``x + CA(conv(PReLU(conv(x))))``, CA a full-width channel attention (MPRNet's CAB).

    Example:
        >>> ConvAttnBlock(4)(torch.randn(1, 4, 5, 5)).shape
        torch.Size([1, 4, 5, 5])
    """

    def __init__(self, c: int, k: int = 3) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv(c, c, k), nn.PReLU(), _conv(c, c, k))
        self.att = nn.Sequential(ChannelPool(), _conv(c, c, 1), nn.ReLU(),
                                 _conv(c, c, 1), nn.Sigmoid())

    def forward(self, x: Tensor) -> Tensor:
        y = self.body(x)
        return x + y * self.att(y)


class GatedBlock(nn.Module):
    """NAF-style gated block; with ``extra > 0`` it takes ``c + extra`` channels and returns
    ``c``, the extra ones (shifted/warped or kernel features) only feeding the body.

    ``LN -> 1x1 (2c) -> +dw3x3 -> gate -> +dw kxk +dw3x3 -> 1x1 (2c) -> sigmoid gate -> CA
    -> 1x1``, added to the first ``c`` input channels with a zero-initialised scale.

    Example:
        >>> x = torch.randn(1, 6, 5, 5)
        >>> bool(torch.equal(GatedBlock(4, extra=2)(x), x[:, :4]))  # identity at init
        True
    """

    def __init__(self, c: int, k: int = 3, extra: int = 0, bias: bool = False) -> None:
        super().__init__()
        self.c = c
        self.extra = _conv(extra, extra, 3, bias, groups=extra) if extra else None
        self.norm = LayerNorm2d(c + extra)
        self.expand = _conv(c + extra, 2 * c, 1, bias)
        self.dw_wide = _conv(2 * c, 2 * c, 3, bias, groups=2 * c)
        self.dw_k = _conv(c, c, k, bias, groups=c)
        self.dw_3 = _conv(c, c, 3, bias, groups=c)
        self.gate = _conv(c, 2 * c, 1, bias)
        self.att = nn.Sequential(ChannelPool(), _conv(c, c, 1, bias), nn.ReLU(),
                                 _conv(c, c, 1, bias), nn.Sigmoid())
        self.project = _conv(c, c, 1, bias)
        self.beta = nn.Parameter(torch.zeros(1, self.c, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        skip = x[:, : self.c]
        if self.extra is not None:
            x = torch.cat((skip, self.extra(x[:, self.c :])), 1)
        y = self.expand(self.norm(x))
        a, b = (y + self.dw_wide(y)).chunk(2, 1)
        y = a * b
        y = y + self.dw_k(y) + self.dw_3(y)
        a, b = self.gate(y).chunk(2, 1)
        y = a * torch.sigmoid(b)
        return skip + self.beta * self.project(y * self.att(y))


class ThreeLevelUNet(nn.Module):
    """Small UNet of ``ConvAttnBlock``s, ``c``, ``c+g``, ``c+2g`` channels at 1, 1/2, 1/4 scale
    (sides must be multiples of 4).

    Example:
        >>> ThreeLevelUNet(4)(torch.randn(1, 4, 8, 12)).shape
        torch.Size([1, 4, 8, 12])
    """

    def __init__(self, c: int, g: int = 4) -> None:
        super().__init__()
        c1, c2, c3 = c, c + g, c + 2 * g
        self.enc = nn.ModuleList([ConvAttnBlock(c1), ConvAttnBlock(c2), ConvAttnBlock(c3)])
        self.down = nn.ModuleList([_conv(c1, c2, 3, True, 2), _conv(c2, c3, 3, True, 2)])
        self.dec = nn.ModuleList([ConvAttnBlock(c1), ConvAttnBlock(c2), ConvAttnBlock(c3)])
        self.skip = nn.ModuleList([ConvAttnBlock(c1), ConvAttnBlock(c2)])
        self.up = nn.ModuleList([_up(c2, c1), _up(c3, c2)])

    def forward(self, x: Tensor) -> Tensor:
        e1 = self.enc[0](x)
        e2 = self.enc[1](self.down[0](e1))
        d3 = self.dec[2](self.enc[2](self.down[1](e2)))
        d2 = self.dec[1](self.up[1](d3) + self.skip[1](e2))
        return self.dec[0](self.up[0](d2) + self.skip[0](e1))


class Stem(nn.Module):
    """``conv3x3`` head, residual ``ThreeLevelUNet``, ``conv3x3`` tail; returns all three.

    Example:
        >>> [t.shape[1] for t in Stem(18, 8)(torch.randn(1, 18, 8, 8))]
        [8, 8, 8]
    """

    def __init__(self, cin: int, c: int) -> None:
        super().__init__()
        self.head, self.tail = _conv(cin, c, 3, True), _conv(c, c, 3, True)
        self.unet = ThreeLevelUNet(c)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x0 = self.head(x)
        r0 = x0 + self.unet(x0)
        return x0, r0, self.tail(r0)


class KernelDeformBlock(nn.Module):
    """Image features through a 3x3 (dilation 2) DCNv2 whose offsets and masks are predicted
    from the guide (kernel) features, fused with the undeformed features.

    Example:
        >>> blk = KernelDeformBlock(8, groups=4)
        >>> x, g = blk(torch.randn(2, 8, 6, 6), torch.randn(2, 8, 6, 6))
        >>> x.shape, g.shape
        (torch.Size([2, 8, 6, 6]), torch.Size([2, 8, 6, 6]))
    """

    def __init__(self, c: int, groups: int) -> None:
        super().__init__()
        self.image_block, self.guide_block = GatedBlock(c, bias=True), GatedBlock(c, bias=True)
        self.offsets = nn.Sequential(_conv(c, c, 1, True), nn.PReLU(),
                                     _conv(c, 3 * groups * 9, 1, True))
        # Zero offsets, masks 0.5: training starts from a plain dilated conv.
        nn.init.zeros_(self.offsets[-1].weight)
        nn.init.zeros_(self.offsets[-1].bias)
        self.dcn = ModulatedDeformConv2d(c, c, 3, padding=2, dilation=2, groups=groups)
        self.fuse = _conv(2 * c, c, 3, True)

    def forward(self, x: Tensor, guide: Tensor) -> tuple[Tensor, Tensor]:
        x, guide = self.image_block(x), self.guide_block(guide)
        o1, o2, m = self.offsets(guide).chunk(3, 1)
        y = self.dcn(x, torch.cat((o1, o2), 1), torch.sigmoid(m))
        return self.fuse(torch.cat((x, y), 1)), guide


class KGSBlock(nn.Module):
    """Kernel-guided grouped spatial-temporal shift block (``decoder`` picks the ablation).

    Four stages alternate next/previous frame: the last ``s = 8 * (c // 16)`` channels (half for
    ``c`` a multiple of 16) are replaced by the neighbour's, and a copy of those, warped per
    group by the neighbour's guide-predicted shifts (``group_warp``), is fed as extra channels to
    a ``GatedBlock`` (5x5), then a plain ``GatedBlock``. Set ``warp = False`` to feed the
    unwarped copy (the plain grouped path; with zero shifts both agree).

    Example:
        >>> blk = KGSBlock(16)
        >>> x, g = blk(torch.randn(6, 16, 8, 8), torch.randn(6, 16, 8, 8), frames=3)
        >>> x.shape
        torch.Size([6, 16, 8, 8])
    """

    def __init__(self, c: int, decoder: DecoderMode = "kgs") -> None:
        super().__init__()
        self.c, self.s, self.decoder, self.warp = c, SHIFT_GROUPS * (c // 16), decoder, True
        self.stages = nn.ModuleList(
            nn.Sequential(GatedBlock(c, 5, extra=self.s), GatedBlock(c, 5)) for _ in range(4))
        self.guide_block = GatedBlock(c) if decoder != "shift" else None
        if decoder == "kgs":
            self.offsets = nn.Sequential(_conv(c, c, 1, True), nn.PReLU(),
                                         _conv(c, 2 * SHIFT_GROUPS, 1, True))
            nn.init.zeros_(self.offsets[-1].weight)  # start as an unwarped shift
            nn.init.zeros_(self.offsets[-1].bias)
        elif decoder == "concat":
            self.project = _conv(c, self.s, 1, True)
        else:
            # The 8 compass directions, as in Shift-Net's grouped spatial shift.
            dirs = [(1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (-1, -1), (1, -1), (-1, 1)]
            fixed = torch.tensor(dirs, dtype=torch.float32).flatten() * FIXED_SHIFT_PX
            self.register_buffer("fixed", fixed.view(1, -1, 1, 1), persistent=False)

    def _shifted(self, x: Tensor, guide: Tensor | None, shifts: Tensor | None, frames: int,
                 step: int) -> Tensor:
        moved = temporal_shift(x[:, self.c - self.s :], frames, step)
        if self.decoder == "concat":
            extra = self.project(guide)
        elif not self.warp:
            extra = moved
        elif self.decoder == "kgs":
            # The neighbour's features move with the neighbour's own kernel.
            extra = group_warp(moved, temporal_shift(shifts, frames, step))
        else:
            extra = group_warp(moved, self.fixed)
        return torch.cat((x[:, : self.c - self.s], moved, extra), 1)

    def forward(self, x: Tensor, guide: Tensor | None, frames: int
                ) -> tuple[Tensor, Tensor | None]:
        if self.guide_block is not None:
            guide = self.guide_block(guide)
        shifts = self.offsets(guide) if self.decoder == "kgs" else None
        for i, stage in enumerate(self.stages):
            x = stage(self._shifted(x, guide, shifts, frames, 1 if i % 2 == 0 else -1))
        return x, guide


class GuidedUNet(nn.Module):
    """Image and guide streams side by side: DCN blocks at 1, 1/2, 1/4 scale, then
    ``blocks[0]`` KGS blocks at 1/4 and ``blocks[1]`` at 1/2, back to full resolution.

    Example:
        >>> net = GuidedUNet(8, 16, blocks=(1, 1))
        >>> net(torch.randn(2, 8, 8, 8), torch.randn(2, 8, 8, 8), frames=2).shape
        torch.Size([2, 8, 8, 8])
    """

    def __init__(self, c0: int, c: int, blocks: tuple[int, int] = (6, 6),
                 decoder: DecoderMode = "kgs") -> None:
        super().__init__()
        self.guided = decoder != "shift"
        self.image_in, self.guide_in = ConvAttnBlock(c0), ConvAttnBlock(c0)
        self.dcn = nn.ModuleList(
            [KernelDeformBlock(c0, 2), KernelDeformBlock(c, 4), KernelDeformBlock(c, 8)])
        self.down_image = nn.ModuleList(
            [nn.Sequential(_conv(c0, c, 2, stride=2), nn.PReLU()), _conv(c, c, 3, True, 2)])
        self.down_guide = nn.ModuleList(
            [nn.Sequential(_conv(c0, c, 2, stride=2), nn.PReLU()), _conv(c, c, 3, True, 2)])
        self.low = nn.ModuleList(KGSBlock(c, decoder) for _ in range(blocks[0]))
        self.up_image, self.skip_image = _up(c, c), ConvAttnBlock(c)
        if self.guided:
            self.up_guide, self.skip_guide = _up(c, c), ConvAttnBlock(c)
        self.high = nn.ModuleList(KGSBlock(c, decoder) for _ in range(blocks[1]))
        self.to_full = nn.Sequential(_conv(c, 4 * c0, 3, True), nn.PixelShuffle(2), nn.PReLU(),
                                     _conv(c0, c0, 3))
        self.skip_full, self.out = ConvAttnBlock(c0), ConvAttnBlock(c0)

    def forward(self, x: Tensor, guide: Tensor, frames: int) -> Tensor:
        x, g = self.image_in(x), self.guide_in(guide)
        skip0 = x
        x, g = self.dcn[0](x, g)
        x, g = self.down_image[0](x), self.down_guide[0](g)
        skip1, skip1_g = x, g
        x, g = self.dcn[1](x, g)
        x, g = self.dcn[2](self.down_image[1](x), self.down_guide[1](g))
        gd: Tensor | None = g if self.guided else None
        for blk in self.low:
            x, gd = blk(x, gd, frames)
        x = self.up_image(x) + self.skip_image(skip1)
        if self.guided:
            gd = self.up_guide(gd) + self.skip_guide(skip1_g)
        for blk in self.high:
            x, gd = blk(x, gd, frames)
        return self.out(self.to_full(x) + self.skip_full(skip0))


class GyroDVD(nn.Module):
    """Gyro-guided video deblurring network.

    Args:
        width: width of the 1/2 and 1/4 scale streams (64 or 128 in the paper; a multiple of 8,
            at least 16).
        width0: full-resolution width (24 in the paper; even).
        blocks: KGS blocks at 1/4 and at 1/2 scale.
        samples: ``T``, trajectory samples per exposure (the first conv takes ``2T`` channels).
        kernel, fusion, decoder: the ablations of the module docstring.
        kernel_scale: trajectories (pixels) are divided by it (``KERNEL_SCALE``).
        path_samples: the image encoder also sees the frames sampled along their kernel (see
            the module docstring); needs a kernel.

    ``forward(blurred (B, F, 3, H, W), rot (B, F, T, 2, H, W), tran (B, F, T, 2, H, W))``
    returns the deblurred ``(B, F, 3, H, W)``; any ``H, W`` (padded to multiples of 4 inside).

    Example:
        >>> net = GyroDVD(width=16, width0=8, blocks=(1, 1), samples=3)
        >>> x, k = torch.rand(1, 2, 3, 9, 7), torch.randn(1, 2, 3, 2, 9, 7)
        >>> net(x, k, k).shape
        torch.Size([1, 2, 3, 9, 7])
    """

    def __init__(self, width: int = 64, width0: int = 24, blocks: tuple[int, int] = (6, 6),
                 samples: int = 9, kernel: KernelMode = "rot+tran",
                 fusion: FusionMode = "feature", decoder: DecoderMode = "kgs",
                 kernel_scale: float = KERNEL_SCALE, path_samples: bool = False) -> None:
        super().__init__()
        for name, value, mode in (("kernel", kernel, KernelMode), ("fusion", fusion, FusionMode),
                                  ("decoder", decoder, DecoderMode)):
            if value not in get_args(mode):
                raise ValueError(f"{name}={value!r}; expected one of {get_args(mode)}")
        if width < 16 or width % 8 or width0 % 2:
            raise ValueError(f"need width >= 16, a multiple of 8, and an even width0; "
                             f"got width={width}, width0={width0}")
        if len(blocks) != 2 or min(blocks) < 0 or samples < 2 or not kernel_scale > 0:
            raise ValueError(f"need blocks [encoder, decoder] >= 0, samples >= 2 and "
                             f"kernel_scale > 0; got blocks={list(blocks)}, samples={samples}, "
                             f"kernel_scale={kernel_scale}")
        if path_samples and kernel == "none":
            raise ValueError("path_samples needs a kernel")
        self.samples, self.kernel, self.fusion, self.decoder = samples, kernel, fusion, decoder
        self.kernel_scale, self.path_samples = kernel_scale, path_samples
        self.stem = Stem(3 + 3 * samples if path_samples else 3, width0)
        # Which kernel input each encoder reads; their outputs are summed (feature fusion).
        inputs = (KERNEL_INPUTS[kernel] if kernel != "rot+tran" or fusion == "feature"
                  else ("rot+tran",))
        self.kernel_stems = nn.ModuleDict({k: Stem(2 * samples, width0) for k in inputs})
        self.body = GuidedUNet(width0, width, tuple(blocks), decoder)
        self.refine_in = _conv(3 * width0, width0, 3, True)
        self.refine = ThreeLevelUNet(width0)
        self.to_rgb = _conv(width0, 3, 5)

    def _kernel(self, k: Tensor | None, name: str, blurred: Tensor) -> Tensor:
        """``k`` checked, in the frames' dtype and flattened to ``(B * F, T, 2, H, W)``."""
        b, f, _, h, w = blurred.shape
        if k is None or k.shape != (b, f, self.samples, 2, h, w) or not k.is_floating_point():
            got = "none" if k is None else f"{tuple(k.shape)} {k.dtype}"
            raise ValueError(f"kernel={self.kernel!r} needs {name} of shape ({b}, {f}, "
                             f"{self.samples}, 2, {h}, {w}) floats, got {got}")
        return k.to(blurred.dtype).reshape(b * f, self.samples, 2, h, w)

    def _encoded(self, k: Tensor) -> Tensor:
        """Kernel encoder input: ``(n, 2T, H, W)`` scaled, padded like the frames."""
        return pad_to_multiple(k.flatten(1, 2) / self.kernel_scale, 4, mode="replicate")

    def forward(self, blurred: Tensor, rot: Tensor | None = None,
                tran: Tensor | None = None) -> Tensor:
        """Restore every frame of ``blurred`` ``(B, F, 3, H, W)`` (sRGB in ``[0, 1]``).

        ``rot`` and ``tran``: ``(B, F, T, 2, H, W)`` trajectories in pixels, ``T`` the net's
        ``samples``, those that its ``kernel`` reads (``tran`` is the flow-only kernel for
        ``kernel="flow"``; none for ``"none"``). Returns ``(B, F, 3, H, W)``, not clamped.
        """
        require_tensors(blurred=blurred, rot=rot, tran=tran)
        dtype = self.to_rgb.weight.dtype
        if blurred.ndim != 5 or blurred.shape[2] != 3 or blurred.dtype != dtype:
            raise ValueError(f"blurred must be (B, F, 3, H, W) {dtype}, got "
                             f"{tuple(blurred.shape)} {blurred.dtype}")
        given = {"rot": rot, "tran": tran}
        require_sound_values({"blurred": blurred},
                             {name: given[name] for name in KERNEL_INPUTS[self.kernel]})
        b, f, _, h, w = blurred.shape
        n = b * f
        frames = blurred.reshape(n, 3, h, w)
        x = pad_to_multiple(frames, 4)
        if self.kernel == "none":
            x0, r0, s0 = self.stem(x)
            d = self.body(s0, s0, f)
        else:
            kernels = {name: self._kernel(given[name], name, blurred)
                       for name in KERNEL_INPUTS[self.kernel]}
            if self.kernel == "rot+tran":
                kernels["rot+tran"] = kernels["rot"] + kernels["tran"]
            if self.path_samples:
                full = kernels[FULL_KERNEL[self.kernel]]
                x = torch.cat((x, pad_to_multiple(along_path(frames, full), 4)), 1)
            x0, r0, s0 = self.stem(x)
            feats = [stem(self._encoded(kernels[name]))[2]
                     for name, stem in self.kernel_stems.items()]
            guide = torch.stack(feats).sum(0) if len(feats) > 1 else feats[0]
            d = self.body(s0 + guide, guide, f)
        y = self.refine_in(torch.cat((x0, r0, d), 1))
        y = self.to_rgb(y + self.refine(y))
        return crop_to(x[:, :3] + y, h, w).reshape(b, f, 3, h, w)
