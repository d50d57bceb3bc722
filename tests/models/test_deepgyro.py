"""Tests of the NAFNet blocks and the DeepGyro / DeepBlind networks."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gyrodeblur.kernels.blur_field import blur_field as blur_field_np
from gyrodeblur.models import predict
from gyrodeblur.models.blocks import (
    NAFBlock,
    crop_to,
    fuse_for_inference,
    pad_to_multiple,
    parameter_count,
)
from gyrodeblur.models.deepgyro import (
    DEEPGYRO_VARIANTS,
    KERNEL_SCALE,
    DeepGyro,
    batched_blur_field,
)
from gyrodeblur.pipelines.deblur import resample_samples

TINY = dict(width=8, enc_blocks=(1, 1), middle_blocks=1, dec_blocks=(1, 1), samples=5)


pytestmark = pytest.mark.usefixtures("one_thread")


def _randomise_residual_scales(net: torch.nn.Module) -> None:
    """NAFBlocks start as the identity (beta = gamma = 0); make them do something."""
    for name, p in net.named_parameters():
        if name.endswith(("beta", "gamma")):
            torch.nn.init.normal_(p, std=0.5)


def test_blur_field_matches_numpy() -> None:
    rng = np.random.default_rng(0)
    rot = rng.normal(size=(3, 7, 2, 5, 6)).astype(np.float32)
    rot[1, -1, 0] = rot[1, 0, 0]  # U == 0 exactly: V decides the sign
    got = batched_blur_field(torch.from_numpy(rot)).numpy()
    want = np.stack([blur_field_np(r) for r in rot])
    np.testing.assert_array_equal(got, want)
    assert (got[:, 0] >= 0).all()


@pytest.mark.parametrize("guidance", ["field", "path", "trajectory", "none"])
def test_odd_size_keeps_shape(guidance: str) -> None:
    net = DeepGyro(**{**TINY, "guidance": guidance}).eval()
    x = torch.rand(2, 3, 37, 53)
    rot = torch.randn(2, 5, 2, 37, 53)
    with torch.no_grad():
        y = net(x, None if guidance == "none" else rot)
    assert y.shape == x.shape and y.dtype == torch.float32 and y.is_contiguous()


@pytest.mark.parametrize(("blurred", "rot", "message"), [
    ((3, 3, 24, 32), (1, 5, 2, 24, 32), "rot must be"),  # batch
    ((1, 3, 24, 32), (1, 5, 2, 12, 16), "rot must be"),  # size: would read out of bounds
    ((1, 3, 24, 32), (1, 2, 5, 24, 32), "rot must be"),  # (B, 2, T, H, W) layout
    ((1, 24, 32, 3), (1, 5, 2, 24, 32), "blurred must be"),  # channels last
])
def test_mismatched_inputs_are_refused(blurred, rot, message) -> None:
    net = DeepGyro(**{**TINY, "guidance": "path"}).eval()
    with pytest.raises(ValueError, match=message), torch.no_grad():
        net(torch.rand(blurred), torch.zeros(rot))
    with pytest.raises(ValueError, match="float32"), torch.no_grad():
        net(torch.rand(1, 3, 24, 32, dtype=torch.float64), torch.zeros(1, 5, 2, 24, 32))


def test_values_a_net_would_turn_into_garbage_are_refused() -> None:
    net = DeepGyro(**{**TINY, "guidance": "path"}).eval()
    x, rot = torch.rand(1, 3, 24, 32), torch.zeros(1, 5, 2, 24, 32)
    with pytest.raises(ValueError, match=r"0\.\.255 floats"), torch.no_grad():
        net(x * 255, rot)
    rot[0, 2, 0, 3, 3] = float("nan")  # a pixel without a ray through the lens
    with pytest.raises(ValueError, match="rot has NaN"), torch.no_grad():
        net(x, rot)
    with torch.no_grad():  # a net without gyro input reads no kernel
        DeepGyro(**{**TINY, "guidance": "none"}).eval()(x, rot)


def test_zero_last_conv_is_identity() -> None:
    torch.manual_seed(0)
    net = DeepGyro(**TINY).eval()
    _randomise_residual_scales(net)
    torch.nn.init.zeros_(net.ending.weight)
    torch.nn.init.zeros_(net.ending.bias)
    x = torch.rand(1, 3, 19, 23)
    with torch.no_grad():
        y = net(x, torch.randn(1, 5, 2, 19, 23) * 10)
    assert torch.equal(y, x)


def test_residual_is_ending_conv_output() -> None:
    """restored - blurred is exactly what the last conv produces (cropped)."""
    torch.manual_seed(1)
    net = DeepGyro(**TINY).eval()
    _randomise_residual_scales(net)
    seen = {}
    net.ending.register_forward_hook(lambda m, i, o: seen.setdefault("r", o))
    x = torch.rand(1, 3, 13, 21)
    with torch.no_grad():
        y = net(x, torch.randn(1, 5, 2, 13, 21))
    r = seen["r"]
    assert r.shape[-2:] == (16, 24)  # padded to a multiple of 2 ** 2 levels
    torch.testing.assert_close(y - x, r[..., :13, :21], rtol=0, atol=1e-6)
    assert (y - x).abs().max() > 1e-3


def test_refining_net_adds_its_residual_to_the_estimate() -> None:
    """restored - estimate is the last conv's output; the estimate and the blurred image
    both reach it; no estimate, or one of another shape, is refused."""
    torch.manual_seed(4)
    net = DeepGyro(**{**TINY, "guidance": "path", "refine": True}).eval()
    _randomise_residual_scales(net)
    seen = {}
    net.ending.register_forward_hook(lambda m, i, o: seen.__setitem__("r", o))
    x, est = torch.rand(2, 1, 3, 13, 21)
    rot = torch.randn(1, 5, 2, 13, 21)
    with torch.no_grad():
        y = net(x, rot, est)
        torch.testing.assert_close(y - est, seen["r"][..., :13, :21], rtol=0, atol=1e-6)
        assert (net(x, rot, est.flip(-1)) - y).abs().max() > 1e-4
        assert (net(x.flip(-1), rot, est) - y).abs().max() > 1e-4
    torch.nn.init.zeros_(net.ending.weight)
    torch.nn.init.zeros_(net.ending.bias)
    with torch.no_grad():
        assert torch.equal(net(x, rot, est), est)
        for bad in (None, est[..., :12, :]):
            with pytest.raises(ValueError, match="needs estimate"):
                net(x, rot, bad)


def test_none_ignores_rot_and_field_uses_it() -> None:
    torch.manual_seed(2)
    x = torch.rand(1, 3, 16, 16)
    rot_a, rot_b = torch.randn(2, 1, 5, 2, 16, 16) * 8
    blind = DeepGyro(**{**TINY, "guidance": "none"}).eval()
    gyro = DeepGyro(**{**TINY, "guidance": "field"}).eval()
    for net in (blind, gyro):
        _randomise_residual_scales(net)
    with torch.no_grad():
        assert torch.equal(blind(x, rot_a), blind(x, rot_b))
        assert torch.equal(blind(x, rot_a), blind(x))
        assert (gyro(x, rot_a) - gyro(x, rot_b)).abs().max() > 1e-4
        # Only the end-to-start difference matters for the field; reversing time flips it back.
        assert torch.allclose(gyro(x, rot_a), gyro(x, rot_a.flip(1)), atol=1e-6)


def test_kernel_input_is_scaled() -> None:
    net = DeepGyro(**{**TINY, "guidance": "trajectory"})
    rot = torch.randn(2, 5, 2, 4, 4)
    k = net.kernel_input(torch.rand(2, 3, 4, 4), rot)
    assert k.shape == (2, 10, 4, 4)
    torch.testing.assert_close(k[:, 2:4] * KERNEL_SCALE, rot[:, 1])
    with pytest.raises(ValueError, match="samples"):
        net.kernel_input(torch.rand(1, 3, 4, 4), torch.randn(1, 3, 2, 4, 4))
    with pytest.raises(ValueError, match="needs rot"):
        DeepGyro(**TINY)(torch.rand(1, 3, 8, 8))


def test_path_input_is_the_image_moved_along_its_quarter_points() -> None:
    net = DeepGyro(**{**TINY, "guidance": "path"})
    x = torch.rand(1, 3, 6, 10)
    # Constant motion to the right, 4 px over the exposure, sampled at T = 9: the quarter
    # points are whole-pixel shifts -2, -1, 1, 2.
    rot = torch.zeros(1, 9, 2, 6, 10)
    rot[:, :, 0] = torch.linspace(-2, 2, 9)[:, None, None]
    k = net.kernel_input(x, rot)
    assert k.shape == (1, 2 + 12, 6, 10)
    torch.testing.assert_close(k[:, :2] * KERNEL_SCALE, batched_blur_field(rot))
    for j, shift in enumerate((-2, -1, 1, 2)):
        moved = x[..., (torch.arange(10) + shift).clamp(0, 9)]  # borders extended
        torch.testing.assert_close(k[:, 2 + 3 * j: 5 + 3 * j], moved - x)
    # T = 5 holds exactly the quarter points: the same input.
    torch.testing.assert_close(net.kernel_input(x, rot[:, [0, 2, 4, 6, 8]]), k)
    # T = 7 has no sample at the quarter points: those between, as resampled to 9.
    at_7 = torch.from_numpy(resample_samples(rot[0].numpy(), 7))[None]
    torch.testing.assert_close(net.kernel_input(x, at_7), k)


@pytest.mark.parametrize(("h", "w", "T"), [(37, 53, 9), (40, 48, 9), (9, 30, 9), (9, 30, 3)])
def test_compiled_path_input_equals_the_tensor_code(h: int, w: int, T: int) -> None:
    torch.manual_seed(3)
    net = DeepGyro(**{**TINY, "guidance": "path"}).eval()
    x = torch.rand(2, 3, h, w)
    rot = torch.randn(2, T, 2, h, w) * 4
    rot[:, :, 0, :, :3] += 100.0  # samples far outside the image: borders extended
    assert net._compiled_input_applies(x, rot)
    compiled = net._compiled_path_input(x, rot)
    reference = pad_to_multiple(torch.cat([x, net.kernel_input(x, rot)], 1), net.multiple)
    assert compiled.shape == reference.shape
    assert compiled.is_contiguous(memory_format=torch.channels_last)
    # grid_sample's normalised coordinates round differently: 1e-5 of a pixel at most.
    torch.testing.assert_close(compiled, reference, rtol=0, atol=1e-5)
    # Gradients and ONNX tracing take the tensor code; the outputs agree.
    _randomise_residual_scales(net)
    with torch.no_grad():
        fast = net(x, rot)
    slow = net(x.requires_grad_(), rot)
    assert not net._compiled_input_applies(x, rot)
    torch.testing.assert_close(fast, slow.detach(), rtol=0, atol=1e-4)


def test_predict_restores_the_frames_of_clips_one_by_one() -> None:
    torch.manual_seed(4)
    net = DeepGyro(**{**TINY, "guidance": "path"}).eval()
    _randomise_residual_scales(net)
    clip = {"blurred": torch.rand(2, 3, 3, 12, 16), "rot": torch.randn(2, 3, 5, 2, 12, 16)}
    with torch.no_grad():
        out = predict(net, clip)
        assert out.shape == (2, 3, 3, 12, 16)
        for f in range(3):
            torch.testing.assert_close(out[:, f], net(clip["blurred"][:, f], clip["rot"][:, f]))


def test_parameter_count_by_hand() -> None:
    c = 12
    # conv1 c->2c, dw 3x3 on 2c, conv3 c->c, sca c->c, conv4 c->2c, conv5 c->c (weights + bias),
    # two LayerNorms (weight + bias), beta and gamma.
    by_hand = (
        (c * 2 * c + 2 * c)
        + (2 * c * 9 + 2 * c)
        + (c * c + c)
        + (c * c + c)
        + (c * 2 * c + 2 * c)
        + (c * c + c)
        + 2 * 2 * c
        + 2 * c
    )
    assert by_hand == 7 * c * c + 33 * c
    assert parameter_count(NAFBlock(c)) == by_hand
    # A one-level net: intro (3+2 -> w, 3x3), block, down (w -> 2w, 2x2 s2), middle block at 2w,
    # up (2w -> 4w, 1x1, no bias), block, ending (w -> 3, 3x3).
    w = 4
    net = DeepGyro(width=w, enc_blocks=(1,), middle_blocks=1, dec_blocks=(1,))
    want = (
        (5 * 9 * w + w)
        + 2 * (7 * w * w + 33 * w)
        + (w * 2 * w * 4 + 2 * w)
        + (7 * (2 * w) ** 2 + 33 * 2 * w)
        + 2 * w * 4 * w
        + (w * 3 * 9 + 3)
    )
    assert parameter_count(net) == want


@pytest.mark.parametrize("radius", [None, 8])
def test_fused_net_computes_the_same_function(radius: int | None) -> None:
    from gyrodeblur.models import set_pool_radius

    torch.manual_seed(0)
    net = set_pool_radius(DeepGyro(**TINY).eval(), radius)
    _randomise_residual_scales(net)
    x, rot = torch.rand(1, 3, 24, 40), torch.randn(1, 5, 2, 24, 40)
    with torch.no_grad():
        want = net(x, rot)
        fused = fuse_for_inference(net)
        got = fused(x, rot)
    assert not any(isinstance(m, torch.nn.PixelShuffle) for m in fused.modules())
    assert all(m.beta is None and m.gamma is None for m in fused.modules()
               if isinstance(m, NAFBlock))
    assert (got - want).abs().max() < 1e-5


def test_pad_and_crop_roundtrip() -> None:
    x = torch.rand(1, 2, 5, 3)
    p = pad_to_multiple(x, 8)  # pad larger than the side: falls back to replicate
    assert p.shape == (1, 2, 8, 8)
    assert torch.equal(crop_to(p, 5, 3), x)
    assert torch.equal(p[..., 7, :3], x[..., 4, :])
    q = pad_to_multiple(torch.rand(1, 1, 6, 7), 4)
    assert q.shape == (1, 1, 8, 8) and torch.equal(q[..., 6, :7], q[..., 4, :7])  # reflect
    assert pad_to_multiple(x, 1) is x


def test_variants_build() -> None:
    assert {"deepgyro-s", "deepblind-s", "deepgyro-m", "deepblind-m"} <= set(DEEPGYRO_VARIANTS)
    for name in ("deepgyro-s", "deepblind-s"):
        net = DeepGyro(**DEEPGYRO_VARIANTS[name]).eval()
        with torch.no_grad():
            assert net(torch.rand(1, 3, 9, 11), torch.randn(1, 9, 2, 9, 11)).shape == (1, 3, 9, 11)


def test_overfits_one_sample() -> None:
    torch.manual_seed(0)
    sharp = F.interpolate(torch.rand(1, 3, 8, 8), size=32, mode="nearest")  # 4x4 px patches
    rot = torch.zeros(1, 5, 2, 32, 32)
    rot[:, :, 0] = torch.linspace(-2, 2, 5)[None, :, None, None]  # horizontal blur
    blurred = F.avg_pool2d(F.pad(sharp, (2, 2, 0, 0), mode="replicate"), (1, 5), stride=1)
    net = DeepGyro(**{**TINY, "width": 16})
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    losses = []
    for _ in range(200):
        loss = F.l1_loss(net(blurred, rot), sharp)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 10, (losses[0], losses[-1])


def test_weights_of_another_shape_or_a_checkpoint_say_so(tmp_path) -> None:
    import json

    from safetensors.torch import save_file

    from gyrodeblur.errors import InputError
    from gyrodeblur.models import build_model, load_model

    config = {"arch": "deepgyro", "width": 8, "enc_blocks": [1], "dec_blocks": [1]}
    narrow = build_model({**config, "width": 4}).state_dict()
    path = tmp_path / "mine.safetensors"
    save_file(narrow, str(path), metadata={"model": json.dumps(config)})
    with pytest.raises(InputError, match=r"not gyrodeblur weights \(tensors do not fit their "
                                         r"config .*: \d+ mis-sized \(first: "):
        load_model(path)
    # Another architecture's tensors: counted, not listed.
    save_file(narrow, str(path), metadata={"model": json.dumps({"variant": "gyrodvd-xs"})})
    with pytest.raises(InputError, match=r"config gyrodvd-xs: \d+ missing, \d+ unexpected "
                                         r"\(first: [\w.]+\)\)$"):
        load_model(path)
    (tmp_path / "checkpoint.pt").write_bytes(b"torch zip")
    with pytest.raises(InputError, match="a training checkpoint, not weights: give the run's "
                                         "model.safetensors"):
        load_model(tmp_path / "checkpoint.pt")


def test_weights_of_a_diverged_run_are_refused(tmp_path) -> None:
    import json

    from safetensors.torch import save_file

    from gyrodeblur.errors import InputError
    from gyrodeblur.models import build_model, load_model

    config = {"arch": "deepgyro", "width": 4, "enc_blocks": [1], "dec_blocks": [1]}
    state = build_model(config).state_dict()
    path = tmp_path / "model.safetensors"
    save_file(state, str(path), metadata={"model": json.dumps(config)})
    assert load_model(path)[1] == config
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name][0] = float("nan")
    save_file(state, str(path), metadata={"model": json.dumps(config)})
    with pytest.raises(InputError, match=rf"model.safetensors: weights with NaN or infinite "
                                         rf"values \({re.escape(name)}\): a diverged"):
        load_model(path)
