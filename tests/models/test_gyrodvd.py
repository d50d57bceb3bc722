"""GyroDVD: paper sizes, KGS against its plain counterpart, ablations, overfitting."""

from __future__ import annotations

import time

import pytest
import torch
import torch.nn.functional as F

from gyrodeblur.models import load_model
from gyrodeblur.models.blocks import along_path
from gyrodeblur.models.gyrodvd import (
    GYRODVD_VARIANTS,
    GyroDVD,
    KGSBlock,
    group_warp,
    parameter_count,
)

pytestmark = pytest.mark.usefixtures("one_thread")


TINY = {"width": 16, "width0": 4, "blocks": (1, 1), "samples": 3}


def _tiny(**kw) -> GyroDVD:
    """A tiny net whose zero-initialised parts (residual scales, offset heads) are made random,
    so that every input, kernels included, reaches the output."""
    torch.manual_seed(0)
    net = GyroDVD(**TINY, **kw)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "beta" in name or "offsets" in name:
                p.normal_(0.0, 0.5)
    return net


def _clip(b: int = 1, f: int = 3, h: int = 8, w: int = 8, t: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(b, f, 3, h, w, generator=g), torch.randn(b, f, t, 2, h, w, generator=g),
            torch.randn(b, f, t, 2, h, w, generator=g))


@pytest.mark.parametrize(("name", "millions"), [("gyrodvd-64", 5.04), ("gyrodvd-128", 17.15)])
def test_paper_parameter_counts(name: str, millions: float) -> None:
    count = parameter_count(GyroDVD(**GYRODVD_VARIANTS[name]))
    assert abs(count / 1e6 - millions) <= 0.1 * millions, count


def test_variants_are_plain_dicts() -> None:
    assert {"gyrodvd-64", "gyrodvd-128", "gyrodvd-s"} <= set(GYRODVD_VARIANTS)
    assert all(isinstance(v, dict) for v in GYRODVD_VARIANTS.values())


def test_group_warp_moves_each_group_by_its_own_shift() -> None:
    x = torch.randn(2, 16, 5, 7)
    off = torch.zeros(2, 16, 5, 7)
    off[:, 2 * 3] = -1.0  # group 3 samples one pixel to the left
    y = group_warp(x, off)
    torch.testing.assert_close(y[:, 6:8, :, 1:], x[:, 6:8, :, :-1])
    torch.testing.assert_close(y[:, :6], x[:, :6])


def _random_kgs(decoder: str = "kgs") -> KGSBlock:
    torch.manual_seed(3)
    blk = KGSBlock(16, decoder)
    with torch.no_grad():  # random everything, residual scales included: no identity shortcut
        for p in blk.parameters():
            p.copy_(0.3 * torch.randn_like(p))
    return blk


def test_kgs_with_zero_shifts_is_the_plain_grouped_path() -> None:
    blk = _random_kgs()
    with torch.no_grad():
        blk.offsets[-1].weight.zero_()
        blk.offsets[-1].bias.zero_()
    x, g = torch.randn(6, 16, 7, 9), torch.randn(6, 16, 7, 9)
    warped, _ = blk(x, g, frames=3)
    blk.warp = False
    plain, _ = blk(x, g, frames=3)
    torch.testing.assert_close(warped, plain, atol=1e-5, rtol=1e-5)
    blk.warp = True
    with torch.no_grad():
        blk.offsets[-1].bias.fill_(0.7)
    assert (blk(x, g, frames=3)[0] - plain).abs().max() > 1e-3  # a shift does change it


def test_kgs_mixes_frames_within_a_clip_only() -> None:
    blk = _random_kgs()
    x, g = torch.randn(6, 16, 6, 6), torch.randn(6, 16, 6, 6)  # 2 clips of 3 frames
    y, _ = blk(x, g, frames=3)
    x2 = x.clone()
    x2[2] += 1.0  # last frame of clip 0
    y2, _ = blk(x2, g, frames=3)
    assert (y2[0] - y[0]).abs().max() > 1e-4  # reaches frame 0 through the shifts
    torch.testing.assert_close(y2[3:], y[3:])  # clip 1 untouched


@pytest.mark.parametrize(("h", "w", "f"), [(13, 11, 4), (9, 7, 1)])
def test_output_shape_odd_sizes(h: int, w: int, f: int) -> None:
    net = _tiny()
    x, rot, tran = _clip(2, f, h, w)
    y = net(x, rot, tran)
    assert y.shape == (2, f, 3, h, w)
    y.mean().backward()
    assert all(p.grad is not None for p in net.parameters())


@pytest.mark.parametrize("kernel", ["rot+tran", "rot", "flow", "none"])
@pytest.mark.parametrize("decoder", ["kgs", "shift", "concat"])
def test_ablations_construct_and_run(kernel: str, decoder: str) -> None:
    x, rot, tran = _clip()
    for fusion in ["feature", "pixel"] if kernel == "rot+tran" else ["feature"]:
        net = _tiny(kernel=kernel, fusion=fusion, decoder=decoder)
        y = net(x, rot, tran)
        assert y.shape == x.shape and torch.isfinite(y).all()


def test_feature_and_pixel_fusion_have_two_and_one_kernel_encoders() -> None:
    assert set(GyroDVD(**TINY).kernel_stems) == {"rot", "tran"}
    assert set(GyroDVD(**TINY, fusion="pixel").kernel_stems) == {"rot+tran"}
    assert len(GyroDVD(**TINY, kernel="none").kernel_stems) == 0


@pytest.mark.parametrize(("kernel", "ignored"), [("none", "rot"), ("none", "tran"),
                                                 ("rot", "tran"), ("flow", "rot")])
def test_ignored_kernel_inputs(kernel: str, ignored: str) -> None:
    net = _tiny(kernel=kernel).eval()
    x, rot, tran = _clip()
    ref = net(x, rot, tran)
    args = {"rot": rot, "tran": tran, ignored: None}
    torch.testing.assert_close(net(x, **args), ref)
    args[ignored] = torch.randn_like(rot)
    torch.testing.assert_close(net(x, **args), ref)


def test_kernels_are_used_and_checked() -> None:
    net = _tiny().eval()
    x, rot, tran = _clip()
    assert (net(x, rot, tran) - net(x, rot, 2 * tran)).abs().max() > 1e-4
    with pytest.raises(ValueError, match="tran"):
        net(x, rot, None)
    with pytest.raises(ValueError, match="rot"):
        net(x, rot[:, :, :2], tran)  # T = 2, built for 3
    with pytest.raises(ValueError, match="decoder"):
        GyroDVD(**TINY, decoder="warp")


def test_kernels_of_another_layout_or_dtype_are_refused_and_float64_is_read() -> None:
    net = _tiny().eval()
    x, rot, tran = _clip()
    with pytest.raises(ValueError, match=r"rot of shape \(1, 3, 3, 2, 8, 8\) floats"):
        net(x, rot.flatten(0, 1), tran)  # (B * F, T, 2, H, W): one batch axis too few
    with pytest.raises(ValueError, match=r"of shape \(2, 3, 3, 2, 8, 8\) floats, got \(3, 2,"):
        net(x.expand(2, -1, -1, -1, -1), *(k.expand(2, -1, -1, -1, -1, -1).transpose(0, 1)
                                             for k in (rot, tran)))  # (F, B, ...)
    with pytest.raises(ValueError, match="int64"):
        net(x, rot.long(), tran)
    torch.testing.assert_close(net(x, rot.double(), tran.double()), net(x, rot, tran))


def test_values_a_net_would_turn_into_garbage_are_refused() -> None:
    net = _tiny().eval()
    x, rot, tran = _clip()
    with pytest.raises(ValueError, match=r"blurred: float values .* \(0\.\.255 floats\?\)"):
        net(x * 255, rot, tran)
    nan = rot.clone()
    nan[0, 0, 0, 0, 5, 5] = float("nan")
    with pytest.raises(ValueError, match="rot has NaN or infinite values"):
        net(x, nan, tran)
    net(x.clamp(0, 1) * 1.2 - 0.1, rot, tran)  # an unclamped restoration passes


def test_tiny_variant_overfits_one_clip() -> None:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    sharp = F.interpolate(torch.rand(3, 3, 8, 8, generator=g), size=(24, 24), mode="bilinear")
    blurred = F.avg_pool2d(F.pad(sharp, (1, 1, 0, 0), mode="replicate"), (1, 3), stride=1)
    sharp, blurred = sharp[None], blurred[None]
    rot = torch.zeros(1, 3, 3, 2, 24, 24)
    rot[:, :, :, 0] = torch.tensor([-1.0, 0.0, 1.0]).view(3, 1, 1)  # the 3-px horizontal blur
    net = GyroDVD(width=16, width0=8, blocks=(1, 1), samples=3)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    start = time.perf_counter()
    losses = []
    for _ in range(70):
        loss = (net(blurred, rot, torch.zeros_like(rot)) - sharp).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 10, (losses[0], losses[-1], time.perf_counter() - start)


def test_samples_along_a_constant_velocity_path_average_to_a_box_blur() -> None:
    # Trajectory x = -2..2 px: the mean of the frame sampled along it is a 5-tap box filter.
    y = torch.rand(2, 3, 9, 16, dtype=torch.float64)
    traj = torch.zeros(2, 5, 2, 9, 16, dtype=torch.float64)
    traj[:, :, 0] = torch.arange(-2.0, 3.0).view(1, 5, 1, 1)
    samples = along_path(y, traj).view(2, 5, 3, 9, 16)
    box = F.avg_pool2d(F.pad(y, (2, 2, 0, 0), mode="replicate"), (1, 5), stride=1)
    torch.testing.assert_close(y + samples.mean(1), box)
    torch.testing.assert_close(samples[:, 2], torch.zeros_like(y))  # the sample at 0 px


def test_path_samples_feed_the_image_encoder_only_with_a_kernel() -> None:
    net = _tiny(path_samples=True).eval()
    x, rot, tran = _clip()
    assert net.stem.head.in_channels == 3 + 3 * 3
    assert (net(x, rot, tran) - net(x, rot, 2 * tran)).abs().max() > 1e-4
    with pytest.raises(ValueError, match="path_samples"):
        GyroDVD(**TINY, kernel="none", path_samples=True)


def test_shipped_net_in_its_inference_form_computes_the_same_function() -> None:
    trained, _ = load_model("gyrodvd-s", fuse=False)
    fast, _ = load_model("gyrodvd-s")
    assert fast.stem.head.weight.is_contiguous(memory_format=torch.channels_last)
    g = torch.Generator().manual_seed(0)
    T = trained.samples
    x = torch.rand(1, 3, 3, 40, 52, generator=g)
    rot, tran = (3 * torch.randn(1, 3, T, 2, 40, 52, generator=g) for _ in range(2))
    with torch.no_grad():
        torch.testing.assert_close(fast(x, rot, tran), trained(x, rot, tran), atol=1e-5, rtol=0)
