"""NAFNet building blocks (Chen et al., ECCV 2022) shared by the restoration networks.

A ``NAFBlock`` is LayerNorm -> 1x1 -> 3x3 depthwise -> SimpleGate -> simplified channel
attention -> 1x1, added back with a learned per-channel scale ``beta``; then an FFN half
(LayerNorm -> 1x1 -> SimpleGate -> 1x1) added with ``gamma``. Both scales start at zero, so a
freshly built block is the identity.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


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
        y = F.layer_norm(x.permute(0, 2, 3, 1), x.shape[1:2], self.weight, self.bias, self.eps)
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
        # Simplified channel attention: global pool -> 1x1, no nonlinearity.
        self.sca = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(dw // 2, dw // 2, 1))
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
        x = x + self.beta * y
        y = self.conv5(self.sg(self.conv4(self.norm2(x))))
        return x + self.gamma * y


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
