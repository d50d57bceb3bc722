"""DeepGyro (Mustaniemi et al., WACV 2019) rebuilt as a gyro-guided NAFNet U-Net.

The blurred image is concatenated with a gyro-derived kernel description and passed through a
NAFNet-style U-Net that predicts a residual: ``restored = blurred + net(blurred, kernel)``.
The kernel description (``guidance``) is one of

- ``"field"``: DeepGyro's 2-channel blur field ``(U, V)`` (``batched_blur_field``);
- ``"path"`` (ours): the blur field plus the blurred image sampled at four points of its own
  trajectory, ``y(p + k_t(p)) - y(p)`` at the exposure's ends and at a quarter and three
  quarters of it (``path_points``). Each is the image moved by part of its blur, so a first
  deconvolution step is a linear layer away; the same idea gave the small GyroDVD its use of
  the kernel (``docs/models.md``);
- ``"trajectory"``: all ``2T`` channels of the per-pixel rotation trajectory;
- ``"none"``: no gyro input (DeepBlind, the blind baseline with the same body).

A net with ``refine=True`` (ours) restores from a first estimate instead, the classical
method's restoration (:func:`~gyrodeblur.models.classic.deconvolve`), given beside the blurred
image: ``restored = estimate + net(blurred, estimate, kernel)``. The deconvolution brings back
what a small net cannot reach (blur of tens of pixels); the net removes its ringing and noise.

Kernel inputs are in pixels and divided by ``KERNEL_SCALE`` so that typical blurs are O(1).
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
import torch
from torch import Tensor, nn

from gyrodeblur.models.blocks import (
    KERNEL_SCALE,
    NAFBlock,
    along_path,
    crop_to,
    pad_to_multiple,
    require_sound_values,
    require_tensors,
)
from gyrodeblur.synthesis.blur import bilinear_weights

GUIDANCES = ("field", "path", "trajectory", "none")


def path_points(rot: Tensor) -> Tensor:
    """The trajectory at the instants that ``"path"`` guidance uses, ``(B, T, 2, H, W) ->
    (B, 4, 2, H, W)``: the exposure's ends and quarter points (the middle one, the reference,
    does not move); linear between samples where none falls on a quarter, as
    ``resample_samples`` would give them (``T = 5, 9, 13...`` hold them).

    Example:
        >>> rot = torch.arange(7.0).view(1, 7, 1, 1, 1).expand(1, 7, 2, 1, 1)
        >>> path_points(rot)[0, :, 0].flatten().tolist()  # at 0, 1.5, 4.5 and 6 of 0..6
        [0.0, 1.5, 4.5, 6.0]
    """
    T = int(rot.shape[1])  # a tensor when traced (the ONNX export): fixed there too
    at = [(T - 1) * q for q in (0.0, 0.25, 0.75, 1.0)]
    if all(a.is_integer() for a in at):
        return rot[:, [int(a) for a in at]]
    low = [min(int(a), T - 2) for a in at]
    frac = torch.tensor([a - i for a, i in zip(at, low, strict=True)],
                        dtype=rot.dtype, device=rot.device).view(1, 4, 1, 1, 1)
    return rot[:, low] * (1 - frac) + rot[:, [i + 1 for i in low]] * frac


def batched_blur_field(rot: Tensor) -> Tensor:
    """Batched DeepGyro blur field in torch: ``(B, T, 2, H, W) -> (B, 2, H, W)``
    (:func:`gyrodeblur.kernels.blur_field.blur_field`: one trajectory in NumPy).

    ``d = rot[:, -1] - rot[:, 0]``, negated where ``U < 0`` (or ``U == 0`` and ``V < 0``)
    because the blur is undirected.

    Example:
        >>> rot = torch.zeros(1, 3, 2, 1, 2)
        >>> rot[0, -1, :, 0, 0] = torch.tensor([-2.0, 1.0])
        >>> rot[0, -1, :, 0, 1] = torch.tensor([0.0, -3.0])
        >>> batched_blur_field(rot)[0, :, 0].tolist()
        [[2.0, 0.0], [-1.0, 3.0]]
    """
    if not isinstance(rot, Tensor) or rot.ndim != 5 or rot.shape[2] != 2:
        raise ValueError(f"rot must be a (B, T, 2, H, W) tensor, got {type(rot).__name__} of "
                         f"shape {tuple(np.shape(rot))}")
    d = rot[:, -1] - rot[:, 0]
    flip = (d[:, 0] < 0) | ((d[:, 0] == 0) & (d[:, 1] < 0))
    return torch.where(flip[:, None], -d, d) + 0.0  # + 0.0 turns -0.0 into 0.0


@numba.njit(parallel=True, cache=True, fastmath=True)
def _path_input(blurred: np.ndarray, rot: np.ndarray, points: np.ndarray,
                out: np.ndarray) -> None:
    """The padded network input of ``"path"`` guidance in one pass, channels last.

    ``out[b, y, x]`` (``(B, Hp, Wp, 5 + 3P)``) = RGB, blur field / ``KERNEL_SCALE``, then the
    image's bilinear taps at the ``P`` trajectory ``points`` minus the pixel (borders
    extended), all at the source pixel of ``(y, x)`` under reflect padding: what
    ``pad_to_multiple(cat(blurred, kernel_input))`` computes, without the intermediates.
    Indices are unsigned so numba emits no negative-index wraparound code.
    """
    B, _, H, W = blurred.shape
    _, Hp, Wp, _ = out.shape
    T = rot.shape[1]
    xmax, ymax = np.float32(W - 1), np.float32(H - 1)
    zero = np.float32(0.0)
    u1, last_x, last_y = np.uint64(1), np.uint64(W - 1), np.uint64(H - 1)
    scale = np.float32(1.0 / KERNEL_SCALE)
    for r in numba.prange(B * Hp):
        b, y = r // Hp, r % Hp
        sy = y if y < H else 2 * (H - 1) - y
        image, row = blurred[b], out[b, y]
        first_x, first_y = rot[b, 0, 0, sy], rot[b, 0, 1, sy]
        end_x, end_y = rot[b, T - 1, 0, sy], rot[b, T - 1, 1, sy]
        for x in range(Wp):
            sx = x if x < W else 2 * (W - 1) - x
            for c in range(3):
                row[x, c] = image[c, sy, sx]
            u, v = end_x[sx] - first_x[sx], end_y[sx] - first_y[sx]
            if u < zero or (u == zero and v < zero):
                u, v = -u, -v
            row[x, 3], row[x, 4] = u * scale, v * scale
        for j in range(points.size):
            dx, dy = rot[b, points[j], 0, sy], rot[b, points[j], 1, sy]
            for x in range(Wp):
                sx = x if x < W else 2 * (W - 1) - x
                tx = min(max(np.float32(sx) + dx[sx], zero), xmax)
                ty = min(max(np.float32(sy) + dy[sx], zero), ymax)
                x0, y0 = np.uint64(tx), np.uint64(ty)
                x1, y1 = min(x0 + u1, last_x), min(y0 + u1, last_y)
                w00, w01, w10, w11 = bilinear_weights(tx - np.float32(x0), ty - np.float32(y0))
                for c in range(3):
                    row[x, 5 + 3 * j + c] = (w00 * image[c, y0, x0] + w01 * image[c, y0, x1]
                                             + w10 * image[c, y1, x0] + w11 * image[c, y1, x1]
                                             - image[c, sy, sx])


class DeepGyro(nn.Module):
    """Gyro-guided NAFNet U-Net; ``len(enc_blocks)`` levels, each halving the resolution.

    Args:
        width: channels at full resolution (doubled at each level).
        enc_blocks: NAFBlocks per encoder level, full resolution first.
        middle_blocks: NAFBlocks at the bottom.
        dec_blocks: NAFBlocks per decoder level in decoder order, i.e. deepest first and full
            resolution last (NAFNet's convention); same length as ``enc_blocks``.
        guidance: ``"field"``, ``"path"``, ``"trajectory"`` or ``"none"`` (see the module
            docstring).
        samples: trajectory samples ``T`` (``"trajectory"`` needs exactly ``T``; the others
            take any ``T``, ``"path"`` at least 5 for distinct quarter points).
        refine: restore from a first ``estimate`` (the classical method's restoration) given
            with the blurred image, instead of from the blurred image alone.

    Example:
        >>> net = DeepGyro(width=8, enc_blocks=(1, 1), dec_blocks=(1, 1), samples=3)
        >>> net(torch.rand(1, 3, 7, 9), torch.randn(1, 3, 2, 7, 9)).shape
        torch.Size([1, 3, 7, 9])
    """

    def __init__(
        self,
        width: int = 32,
        enc_blocks: tuple[int, ...] = (1, 1, 1, 1),
        middle_blocks: int = 1,
        dec_blocks: tuple[int, ...] = (1, 1, 1, 1),
        guidance: str = "field",
        samples: int = 9,
        refine: bool = False,
    ) -> None:
        super().__init__()
        if guidance not in GUIDANCES:
            raise ValueError(f"guidance must be one of {GUIDANCES}, got {guidance!r}")
        if len(enc_blocks) != len(dec_blocks) or not enc_blocks:
            raise ValueError("enc_blocks and dec_blocks need the same number of levels, 1 or "
                             f"more; got {list(enc_blocks)} and {list(dec_blocks)}")
        if min(*enc_blocks, *dec_blocks, middle_blocks) < 0 or width < 1 or samples < 2:
            raise ValueError(f"need block counts >= 0, width >= 1 and samples >= 2; got "
                             f"enc_blocks={list(enc_blocks)}, middle_blocks={middle_blocks}, "
                             f"dec_blocks={list(dec_blocks)}, width={width}, samples={samples}")
        self.guidance = guidance
        self.samples = samples
        self.refine = refine
        self.multiple = 2 ** len(enc_blocks)
        extra = {"field": 2, "path": 2 + 3 * 4, "trajectory": 2 * samples, "none": 0}[guidance]

        self.intro = nn.Conv2d(3 + 3 * refine + extra, width, 3, padding=1)
        self.encoders = nn.ModuleList()
        self.downs = nn.ModuleList()
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        c = width
        for n in enc_blocks:
            self.encoders.append(nn.Sequential(*(NAFBlock(c) for _ in range(n))))
            self.downs.append(nn.Conv2d(c, 2 * c, 2, stride=2))
            c *= 2
        self.middle = nn.Sequential(*(NAFBlock(c) for _ in range(middle_blocks)))
        for n in dec_blocks:
            # 1x1 then pixel shuffle: 2c channels -> c channels at twice the resolution
            # (NAFNet's form; fuse_for_inference makes it one transposed conv).
            self.ups.append(nn.Sequential(nn.Conv2d(c, 2 * c, 1, bias=False), nn.PixelShuffle(2)))
            c //= 2
            self.decoders.append(nn.Sequential(*(NAFBlock(c) for _ in range(n))))
        self.ending = nn.Conv2d(width, 3, 3, padding=1)

    def kernel_input(self, blurred: Tensor, rot: Tensor | None) -> Tensor | None:
        """The gyro channels for ``blurred`` ``(B, 3, H, W)`` and ``rot`` ``(B, T, 2, H, W)``
        in pixels (None for no guidance); kernels divided by ``KERNEL_SCALE``."""
        if self.guidance == "none":
            return None
        if rot is None:
            raise ValueError(f"guidance={self.guidance!r} needs rot (B, T, 2, H, W)")
        if self.guidance == "field":
            return batched_blur_field(rot) / KERNEL_SCALE
        if self.guidance == "path":
            rot = rot.to(blurred.dtype)
            return torch.cat((batched_blur_field(rot) / KERNEL_SCALE,
                              along_path(blurred, path_points(rot))), 1)
        if rot.shape[1] != self.samples:
            raise ValueError(f"rot has T={rot.shape[1]} samples, the net expects {self.samples}")
        return rot.flatten(1, 2) / KERNEL_SCALE

    def _check(self, blurred: Tensor, rot: Tensor | None, estimate: Tensor | None) -> None:
        dtype = self.intro.weight.dtype
        require_tensors(blurred=blurred, rot=rot, estimate=estimate)
        if blurred.ndim != 4 or blurred.shape[1] != 3 or blurred.dtype != dtype:
            raise ValueError(f"blurred must be (B, 3, H, W) {dtype}, got {tuple(blurred.shape)} "
                             f"{blurred.dtype}")
        if self.refine and (estimate is None or estimate.shape != blurred.shape
                            or estimate.dtype != dtype):
            got = "none" if estimate is None else f"{tuple(estimate.shape)} {estimate.dtype}"
            raise ValueError(f"a refining net needs estimate {tuple(blurred.shape)} {dtype}, "
                             f"got {got}")
        b, _, h, w = blurred.shape
        if self.guidance != "none" and rot is not None and (
                rot.ndim != 5 or rot.shape[0] != b or rot.shape[2:] != (2, h, w)
                or rot.shape[1] < 2 or not rot.is_floating_point()):
            raise ValueError(f"rot must be (B, T, 2, H, W) = ({b}, T, 2, {h}, {w}) floats, "
                             f"T >= 2, got {tuple(rot.shape)} {rot.dtype}")
        require_sound_values({"blurred": blurred, "estimate": estimate},
                             {"rot": rot if self.guidance != "none" else None})

    def _compiled_input_applies(self, blurred: Tensor, rot: Tensor | None) -> bool:
        """Path input on CPU outside autograd and tracing (the ONNX export), padded by
        reflection: ``_path_input`` builds it in one pass (1.1x for the whole net at
        480x270); the tensor code is the reference and the path elsewhere."""
        h, w = blurred.shape[-2:]
        return (self.guidance == "path" and not self.refine and rot is not None
                and blurred.device.type == "cpu"
                and blurred.dtype == rot.dtype == torch.float32
                and not (torch.is_grad_enabled() and (blurred.requires_grad or rot.requires_grad))
                and not torch.jit.is_tracing()
                and -h % self.multiple < h and -w % self.multiple < w)

    def _compiled_path_input(self, blurred: Tensor, rot: Tensor) -> Tensor:
        b, _, h, w = blurred.shape
        out = torch.empty(b, h + -h % self.multiple, w + -w % self.multiple,
                          self.intro.in_channels)
        _path_input(blurred.detach().contiguous().numpy(),
                    path_points(rot.detach()).contiguous().numpy(), np.arange(4), out.numpy())
        return out.permute(0, 3, 1, 2)  # NCHW indexing of channels-last memory

    def forward(self, blurred: Tensor, rot: Tensor | None = None,
                estimate: Tensor | None = None) -> Tensor:
        """Restore ``blurred`` ``(B, 3, H, W)``; ``rot`` ``(B, T, 2, H, W)`` in pixels;
        ``estimate`` ``(B, 3, H, W)``, the first estimate of a refining net.

        Returns ``blurred`` (``estimate`` when refining) plus the predicted residual (not
        clamped), ``(B, 3, H, W)``.

        Raises:
            ValueError: inputs of other shapes than these, or of another dtype than the net's.
        """
        if not torch.jit.is_tracing():
            self._check(blurred, rot, estimate)
        h, w = blurred.shape[-2:]
        if self._compiled_input_applies(blurred, rot):
            x = self._compiled_path_input(blurred, rot)
        else:
            k = self.kernel_input(blurred, rot)
            parts = [blurred] + [estimate] * self.refine
            parts += [] if k is None else [k.to(blurred.dtype)]
            x = torch.cat(parts, dim=1) if len(parts) > 1 else blurred
            # Channels-last: about 1.4x faster on CPU (mkldnn 1x1 convs, LayerNorm without
            # copies).
            x = pad_to_multiple(x, self.multiple).contiguous(memory_format=torch.channels_last)
        x = self.intro(x)
        skips = []
        for enc, down in zip(self.encoders, self.downs, strict=True):
            x = enc(x)
            skips.append(x)
            x = down(x)
        x = self.middle(x)
        for up, dec, skip in zip(self.ups, self.decoders, reversed(skips), strict=True):
            x = dec(up(x) + skip)
        base = estimate if self.refine else blurred
        return (base + crop_to(self.ending(x), h, w)).contiguous()


def _variant(width: int, enc: tuple[int, ...], middle: int, dec: tuple[int, ...]) -> dict:
    return dict(width=width, enc_blocks=enc, middle_blocks=middle, dec_blocks=dec)


_SIZES = {
    # -s: no blocks at full resolution, where LayerNorm/gating are memory-bound and cost the
    # most on CPU; >= 10 frames/s at 480x270 on 2 CPU threads (float32, eval).
    "s": _variant(16, (0, 1, 1), 1, (1, 1, 0)),
    "m": _variant(32, (1, 1, 1, 1), 1, (1, 1, 1, 1)),
    "l": _variant(32, (1, 1, 2, 4), 4, (2, 1, 1, 1)),
}

DEEPGYRO_VARIANTS: dict[str, dict[str, Any]] = {
    **{f"deepgyro-{k}": {**v, "guidance": "field"} for k, v in _SIZES.items()},
    **{f"deepgyro-path-{k}": {**v, "guidance": "path"} for k, v in _SIZES.items()},
    **{f"deepgyro-traj-{k}": {**v, "guidance": "trajectory"} for k, v in _SIZES.items()},
    **{f"deepgyro-refine-{k}": {**v, "guidance": "path", "refine": True}
       for k, v in _SIZES.items()},
    **{f"deepblind-{k}": {**v, "guidance": "none"} for k, v in _SIZES.items()},
}
"""Named configurations: ``DeepGyro(**DEEPGYRO_VARIANTS[name])``."""
