"""NAFNet building blocks (Chen et al., ECCV 2022) shared by the restoration networks.

A ``NAFBlock`` is LayerNorm -> 1x1 -> 3x3 depthwise -> SimpleGate -> simplified channel
attention -> 1x1, added back with a learned per-channel scale ``beta``; then an FFN half
(LayerNorm -> 1x1 -> SimpleGate -> 1x1) added with ``gamma``. Both scales start at zero, so a
freshly built block is the identity.

Also here: sampling an image along per-pixel trajectories (``along_path``), which both
networks use to see the blurred input moved along its own kernel, and the scale of their
kernel inputs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: Trajectories (pixels) are divided by this before they enter a network: displacements of a
#: few to tens of pixels then enter the first conv at order one.
KERNEL_SCALE = 16.0


def parameter_count(model: nn.Module) -> int:
    """Number of trainable parameters.

    Example:
        >>> parameter_count(nn.Conv2d(2, 3, 1))
        9
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel axis of ``(B, C, H, W)``, with per-channel affine.

    Example:
        >>> y = LayerNorm2d(4)(torch.randn(2, 4, 3, 5))
        >>> bool(y.mean(1).abs().max() < 1e-5)
        True
    """

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        # F.layer_norm on a channels-last view: one fused kernel, several times faster on CPU
        # than spelling out mean/var; the result comes back channels-last, which convs accept.
        y = F.layer_norm(x.permute(0, 2, 3, 1), self.weight.shape, self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)


class SimpleGate(nn.Module):
    """Split channels in two halves and multiply them: ``(B, 2C, H, W) -> (B, C, H, W)``.

    Example:
        >>> SimpleGate()(torch.arange(4.0).view(1, 4, 1, 1)).flatten().tolist()
        [0.0, 3.0]
    """

    def forward(self, x: Tensor) -> Tensor:
        a, b = x.chunk(2, dim=1)
        return a * b


def box_mean(x: Tensor, radius: int) -> Tensor:
    """Mean of ``(B, C, H, W)`` over the ``(2r+1)^2`` window around each pixel, cut at the
    borders (the mean of the pixels inside).

    Example:
        >>> box_mean(torch.arange(4.0).view(1, 1, 1, 4), 1).flatten().tolist()
        [0.5, 1.0, 2.0, 2.5]
    """
    # One pooling op: about 1.2x faster for the whole deepgyro-s on CPU than summed-area
    # tables (cumsum, two gathers, divide), and a single ONNX AveragePool.
    return F.avg_pool2d(x, 2 * radius + 1, 1, radius, count_include_pad=False)


def local_mean(x: Tensor, radius: int) -> Tensor:
    """``box_mean`` of radius about ``radius`` computed on a grid ``q = radius // 4`` times
    coarser (``q x q`` block means, 9x9 blocks, bilinear back): the same statistic at a
    fraction of the memory traffic. Inputs whose origin is a multiple of ``q`` see the same
    blocks, which keeps tiled inference exact.

    Example:
        >>> x = torch.randn(1, 2, 40, 48)
        >>> bool((local_mean(x, 4) - box_mean(x, 4)).abs().max() < 1e-6)  # q = 1: exact
        True
    """
    q = max(1, radius // 4)
    if q == 1:
        return box_mean(x, radius)
    blocks = F.avg_pool2d(x, q, q, ceil_mode=True)
    # Back by the factor q itself, then cut: resizing to a size that is not a multiple of q
    # would stretch the grid (block k's centre is at q k + (q - 1) / 2 whatever the size).
    height, width = x.shape[-2:]
    return F.interpolate(box_mean(blocks, radius // q), scale_factor=q, mode="bilinear",
                         align_corners=False)[..., :height, :width]


class ChannelPool(nn.Module):
    """Per-channel mean for channel attention: over the whole map (``radius = None``, as in
    training) or over a window of about ``radius`` pixels around each pixel (``local_mean``).

    A local window is TLC's test-time local converter (Chu et al., ECCV 2022): it keeps the
    statistics of the training crops on large inputs and gives the net a finite receptive
    field, so tiled inference equals whole-image inference (tiles at multiples of the pooling
    blocks, see ``local_mean``). :func:`localize_attention` sets the radii of a whole net.

    Example:
        >>> pool = ChannelPool()
        >>> pool(torch.ones(1, 2, 3, 3)).shape
        torch.Size([1, 2, 1, 1])
        >>> pool.radius = 1
        >>> pool(torch.ones(1, 2, 3, 3)).shape
        torch.Size([1, 2, 3, 3])
    """

    def __init__(self) -> None:
        super().__init__()
        self.radius: int | None = None

    def forward(self, x: Tensor) -> Tensor:
        if self.radius is None:
            return x.mean((-2, -1), keepdim=True)
        return local_mean(x, self.radius)


def localize_attention(net: nn.Module, radius: int | None, levels: dict[str, int]) -> None:
    """Give every ``ChannelPool`` of ``net`` a window of ``radius`` input pixels (``None``:
    global pooling again); ``levels`` maps a pool's module name to its downsampling level
    (the window shrinks by 2 per level, at least 1 pixel).
    """
    for name, module in net.named_modules():
        if isinstance(module, ChannelPool):
            module.radius = None if radius is None else max(1, radius >> levels[name])


def pool_levels(net: nn.Module, *example: Tensor) -> dict[str, int]:
    """Downsampling level of every ``ChannelPool`` of ``net``, found by one forward pass on
    ``example`` inputs whose last axis is the image width (a power of 2 at least 2^levels).
    """
    width = example[0].shape[-1]
    levels: dict[str, int] = {}

    def record(name: str, x: Tensor) -> None:
        levels.setdefault(name, (width // x.shape[-1]).bit_length() - 1)

    hooks = [m.register_forward_pre_hook(lambda m, args, name=name: record(name, args[0]))
             for name, m in net.named_modules() if isinstance(m, ChannelPool)]
    try:
        with torch.no_grad():
            net(*example)
    finally:
        for h in hooks:
            h.remove()
    return levels


class NAFBlock(nn.Module):
    """NAFNet block at ``channels`` width (expansion 2 in both halves).

    Example:
        >>> x = torch.randn(1, 8, 5, 7)
        >>> bool(torch.equal(NAFBlock(8)(x), x))  # beta = gamma = 0 at init
        True
    """

    def __init__(self, channels: int, expand: int = 2, ffn_expand: int = 2) -> None:
        super().__init__()
        c, dw, ffn = channels, channels * expand, channels * ffn_expand
        self.norm1 = LayerNorm2d(c)
        self.conv1 = nn.Conv2d(c, dw, 1)
        self.conv2 = nn.Conv2d(dw, dw, 3, padding=1, groups=dw)
        self.sg = SimpleGate()
        # Simplified channel attention: pool -> 1x1, no nonlinearity.
        self.sca = nn.Sequential(ChannelPool(), nn.Conv2d(dw // 2, dw // 2, 1))
        self.conv3 = nn.Conv2d(dw // 2, c, 1)
        self.norm2 = LayerNorm2d(c)
        self.conv4 = nn.Conv2d(c, ffn, 1)
        self.conv5 = nn.Conv2d(ffn // 2, c, 1)
        # Zero residual scales: each block starts as the identity, which keeps deep nets stable.
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        y = self.sg(self.conv2(self.conv1(self.norm1(x))))
        y = self.conv3(y * self.sca(y))
        x = x + y if self.beta is None else x + self.beta * y
        y = self.conv5(self.sg(self.conv4(self.norm2(x))))
        return x + y if self.gamma is None else x + self.gamma * y

    def fold_scales(self) -> None:
        """Fold ``beta`` into ``conv3`` and ``gamma`` into ``conv5`` (both become ``None``):
        the same function with two fewer full-size multiplies, for inference.

        Example:
            >>> block = NAFBlock(4)
            >>> _ = torch.nn.init.normal_(block.beta), torch.nn.init.normal_(block.gamma)
            >>> x = torch.randn(1, 4, 5, 6)
            >>> y = block(x)
            >>> block.fold_scales()
            >>> bool((block(x) - y).abs().max() < 1e-5), block.beta
            (True, None)
        """
        for name, conv in (("beta", self.conv3), ("gamma", self.conv5)):
            scale = getattr(self, name)
            if scale is None:
                continue
            with torch.no_grad():
                conv.weight.mul_(scale.view(-1, 1, 1, 1))
                conv.bias.mul_(scale.view(-1))
            setattr(self, name, None)


def shuffle_as_transposed_conv(conv: nn.Conv2d, factor: int) -> nn.ConvTranspose2d:
    """The transposed convolution (kernel = stride = ``factor``) equal to the bias-free 1x1
    ``conv`` followed by ``PixelShuffle(factor)``: one op instead of a convolution and a copy.

    Example:
        >>> conv = nn.Conv2d(4, 8, 1, bias=False)
        >>> up = nn.Sequential(conv, nn.PixelShuffle(2))
        >>> x = torch.randn(1, 4, 3, 5)
        >>> bool((shuffle_as_transposed_conv(conv, 2)(x) - up(x)).abs().max() < 1e-6)
        True
    """
    c_in, c_out = conv.in_channels, conv.out_channels // factor**2
    transposed = nn.ConvTranspose2d(c_in, c_out, factor, stride=factor, bias=False)
    # PixelShuffle takes channel c * f^2 + i * f + j to channel c, offset (i, j).
    weight = conv.weight.detach()[:, :, 0, 0].view(c_out, factor, factor, c_in)
    transposed.weight.data.copy_(weight.permute(3, 0, 1, 2))
    return transposed


def fuse_for_inference(net: nn.Module) -> nn.Module:
    """Rewrite ``net`` in place into a faster form of the same function and return it: the
    residual scales of every ``NAFBlock`` folded into its convolutions, every bias-free 1x1
    convolution followed by a ``PixelShuffle`` turned into one transposed convolution. The
    result computes the same outputs (to float rounding) but no longer has the training
    parameters: fuse loaded models only, never one that is trained further.
    """
    for name, module in list(net.named_modules()):
        if isinstance(module, NAFBlock):
            module.fold_scales()
        elif (isinstance(module, nn.Sequential) and len(module) == 2
              and isinstance(module[0], nn.Conv2d) and module[0].kernel_size == (1, 1)
              and module[0].bias is None and isinstance(module[1], nn.PixelShuffle)):
            net.set_submodule(name, shuffle_as_transposed_conv(module[0],
                                                               module[1].upscale_factor))
    return net


def sampling_grid(offset: Tensor) -> Tensor:
    """``grid_sample``'s grid for ``out(p) = x(p + offset(p))``, ``offset`` ``(N, 2, H, W)``
    in pixels: pixel centres mapped to ``[-1, 1]`` with ``align_corners=False`` (exact, any
    size)."""
    h, w = offset.shape[-2:]
    xs = torch.arange(w, device=offset.device, dtype=offset.dtype)
    ys = torch.arange(h, device=offset.device, dtype=offset.dtype)[:, None]
    return torch.stack(((2 * (xs + offset[:, 0]) + 1) / w - 1,
                        (2 * (ys + offset[:, 1]) + 1) / h - 1), -1)


def along_path(frames: Tensor, traj: Tensor) -> Tensor:
    """Each frame sampled along its trajectory: ``(N, 3, H, W)``, ``(N, T, 2, H, W)`` pixels ->
    ``(N, 3T, H, W)`` of ``y(p + traj_t(p)) - y(p)``; bilinear, borders extended.

    Example:
        >>> y = torch.arange(4.0).view(1, 1, 1, 4).expand(1, 3, 1, 4)
        >>> traj = torch.zeros(1, 2, 2, 1, 4); traj[0, 1, 0] = 1.0  # second sample: 1 px right
        >>> along_path(y, traj)[0, :, 0].tolist()[2:4]
        [[0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 0.0]]
    """
    n, c, h, w = frames.shape
    T = traj.shape[1]
    grid = sampling_grid(traj.reshape(n * T, 2, h, w))
    moved = F.grid_sample(frames.repeat_interleave(T, 0), grid, mode="bilinear",
                          padding_mode="border", align_corners=False)
    return (moved.view(n, T, c, h, w) - frames[:, None]).reshape(n, T * c, h, w)


def require_tensors(**inputs: object) -> None:
    """Refuse inputs of a net that are given and not torch tensors (NumPy arrays, mostly).

    Example:
        >>> import numpy as np
        >>> require_tensors(blurred=torch.zeros(1), rot=None)
        >>> require_tensors(blurred=np.zeros(1))
        Traceback (most recent call last):
        ...
        TypeError: the net takes torch tensors: blurred is a ndarray (torch.from_numpy)
    """
    wrong = [f"{name} is a {type(x).__name__}" for name, x in inputs.items()
             if x is not None and not isinstance(x, Tensor)]
    if wrong:
        raise TypeError(f"the net takes torch tensors: {', '.join(wrong)} (torch.from_numpy)")


def pad_to_multiple(x: Tensor, multiple: int, mode: str = "reflect") -> Tensor:
    """Pad the bottom/right of ``(B, C, H, W)`` so that H and W are multiples of ``multiple``.

    Reflect padding needs the pad to be smaller than the side; otherwise replicate is used.

    Example:
        >>> pad_to_multiple(torch.zeros(1, 3, 37, 53), 8).shape
        torch.Size([1, 3, 40, 56])
    """
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if ph == 0 and pw == 0:
        return x
    if mode == "reflect" and (ph >= h or pw >= w):
        mode = "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def crop_to(x: Tensor, height: int, width: int) -> Tensor:
    """Undo ``pad_to_multiple``: keep the top-left ``height x width``.

    Example:
        >>> crop_to(torch.zeros(1, 3, 40, 56), 37, 53).shape
        torch.Size([1, 3, 37, 53])
    """
    return x[..., :height, :width]


def require_sound_values(images: dict[str, Tensor | None],
                         kernels: dict[str, Tensor | None]) -> None:
    """Refuse the values a net would silently turn into garbage: images (sRGB in ``[0, 1]``)
    beyond ``[-0.5, 1.5]`` (0..255 floats, most likely; unclamped restorations pass) and NaN
    or infinite values anywhere. Not while tracing (the ONNX export), where values are not
    known.

    Example:
        >>> require_sound_values({"blurred": torch.rand(1, 3, 4, 4)}, {"rot": None})
        >>> require_sound_values({"blurred": torch.full((1, 3, 4, 4), 200.0)}, {})
        Traceback (most recent call last):
        ...
        ValueError: blurred: float values must lie in [0, 1], got 200 to 200 (0..255 floats?)
    """
    if torch.jit.is_tracing():
        return
    for name, image in images.items():
        if image is None or not image.numel():
            continue
        low, high = (float(v) for v in torch.aminmax(image.detach()))
        if not (math.isfinite(low) and math.isfinite(high)):
            raise ValueError(f"{name}: NaN or infinite values")
        if low < -0.5 or high > 1.5:
            raise ValueError(f"{name}: float values must lie in [0, 1], got {low:.4g} to "
                             f"{high:.4g}" + (" (0..255 floats?)" if high > 1.5 else ""))
    for name, k in kernels.items():
        # The sum first: one pass without a mask as large as the kernels.
        if k is not None and not (bool(torch.isfinite(k.detach().sum()))
                                  or bool(torch.isfinite(k.detach()).all())):
            raise ValueError(f"{name} has NaN or infinite values (pixels without a ray "
                             "through the lens: kernels.rotation.still_where_no_ray makes "
                             "them still)")
