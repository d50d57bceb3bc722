"""ONNX export: onnxruntime matches PyTorch at sizes other than the traced one."""

from __future__ import annotations

import onnx
import pytest
import torch

from gyrodeblur.errors import InputError
from gyrodeblur.models import DeepGyro, GyroDVD, load_model
from gyrodeblur.pipelines.export import (
    TRACE_SHAPE,
    Shape,
    export_model,
    input_names,
    max_difference,
    onnx_name,
    random_inputs,
    to_onnx,
    usage,
)

# Neither the trace nor the built-in check size; odd sides exercise the padding.
OTHER = Shape(batch=3, frames=4, height=19, width=34)


pytestmark = pytest.mark.usefixtures("one_thread")


def _onnxruntime_vs_pytorch(net, path, shape, seed=0) -> float:
    """Max abs difference of onnxruntime's output from the net's, on random inputs."""
    import numpy as np
    import onnxruntime

    inputs = random_inputs(net, shape, seed)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {name: x.numpy() for name, x in inputs.items()})
    with torch.no_grad():
        want = net(**inputs).numpy()
    assert got.shape == want.shape
    return float(np.abs(got - want).max())


def _dims(model: onnx.ModelProto) -> dict[str, list[str | int]]:
    return {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in (*model.graph.input, *model.graph.output)}


def test_shipped_image_model_matches_pytorch(tmp_path):
    # The default image model: blur field and path samples (grid_sample) in the graph.
    result = export_model("deepgyro-path-s", tmp_path)
    assert result.path == tmp_path / "deepgyro-path-s.onnx"
    assert result.max_abs_diff < 1e-4
    net, _ = load_model("deepgyro-path-s")
    assert _onnxruntime_vs_pytorch(net, result.path, OTHER, seed=1) < 1e-4
    assert _dims(onnx.load(result.path)) == {
        "blurred": ["batch", 3, "height", "width"],
        "rot": ["batch", net.samples, 2, "height", "width"],
        "restored": ["batch", 3, "height", "width"]}
    assert [p.name for p in tmp_path.iterdir()] == ["deepgyro-path-s.onnx"]  # no temporary
    # The file says what it takes: T is fixed in the graph.
    props = {p.key: p.value for p in onnx.load(result.path).metadata_props}
    assert props["samples"] == str(net.samples) and "rot + tran" in props["kernels"]


def test_loaded_and_exported_nets_stay_in_eval_mode_throughout(tmp_path):
    net, _ = load_model("deepgyro-s")  # its fused layers too
    assert not any(module.training for module in net.modules())
    to_onnx(net, tmp_path / "net.onnx")
    assert not any(module.training for module in net.modules())


def test_video_model_matches_pytorch_with_other_batch_frames_and_size(tmp_path):
    # The shipped video net takes ~30 s to export here; a smaller net has the same layers
    # (DCN, KGS shifts and warps, both kernel inputs, path samples). Its zero-initialised
    # residual scales and offset heads are made random so that warps and kernels reach the
    # output.
    torch.manual_seed(0)
    net = GyroDVD(width=16, width0=4, blocks=(1, 0), samples=2, fusion="pixel",
                  path_samples=True).eval()
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "beta" in name or "offsets" in name:
                p.normal_(0.0, 0.5)
    path = tmp_path / "tiny.onnx"
    to_onnx(net, path)
    assert OTHER != TRACE_SHAPE
    assert _onnxruntime_vs_pytorch(net, path, OTHER) < 1e-4
    assert _dims(onnx.load(path))["tran"] == ["batch", "frames", 2, 2, "height", "width"]
    props = {p.key: p.value for p in onnx.load(path).metadata_props}
    assert props["samples"] == "2" and props["kernels"].startswith("rot and tran: ")


def test_refining_net_takes_the_estimate_as_an_input(tmp_path):
    torch.manual_seed(0)
    net = DeepGyro(width=8, enc_blocks=(1,), dec_blocks=(1,), samples=5, guidance="path",
                   refine=True).eval()
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith(("beta", "gamma")):
                p.normal_(0.0, 0.5)
    assert input_names(net) == ("blurred", "rot", "estimate")
    path = tmp_path / "refine.onnx"
    to_onnx(net, path)
    assert _onnxruntime_vs_pytorch(net, path, OTHER) < 1e-4
    assert _dims(onnx.load(path))["estimate"] == ["batch", 3, "height", "width"]
    # The export's own check finds a net that is not the file's.
    assert max_difference(net, path, OTHER) < 1e-4
    with torch.no_grad():
        net.ending.bias.add_(0.01)
    assert abs(max_difference(net, path, OTHER) - 0.01) < 1e-4


def test_the_metadata_says_what_each_kind_of_net_takes():
    blind = usage(DeepGyro(width=4, enc_blocks=(1,), dec_blocks=(1,), guidance="none"))
    assert "samples" not in blind and blind["images"].startswith("blurred: RGB in [0, 1]")
    assert blind["sizes"] == "batch, height and width dynamic; sides above 4 px"
    refine = usage(DeepGyro(width=4, enc_blocks=(1,), dec_blocks=(1,), samples=5,
                            guidance="path", refine=True))
    assert refine["images"].startswith("blurred and estimate: ") and "estimate" in refine
    assert refine["samples"] == "5" and refine["kernels"].startswith("rot: a kernels npz's rot "
                                                                     "+ tran")
    small = {"width": 16, "width0": 4, "blocks": (0, 0)}
    assert usage(GyroDVD(**small, kernel="rot"))["kernels"].startswith("rot: a kernels npz's "
                                                                       "rot;")
    assert usage(GyroDVD(**small))["sizes"].startswith("batch, frames, height and width dynamic")
    assert usage(GyroDVD(**small, kernel="flow"))["kernels"].startswith("tran: the "
                                                                        "optical-flow kernel")


def test_inputs_are_those_the_variant_reads():
    assert input_names(GyroDVD(width=16, width0=4, blocks=(0, 0), kernel="flow")) == (
        "blurred", "tran")
    assert input_names(GyroDVD(width=16, width0=4, blocks=(0, 0), kernel="none")) == (
        "blurred",)


def test_unknown_model_is_an_input_error_and_writes_nothing(tmp_path):
    with pytest.raises(InputError, match="no such weights file or shipped model"):
        export_model("no-such-model", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_file_is_named_after_the_weights_run_name_whatever_their_suffix(tmp_path):
    import json

    from safetensors.torch import save_file

    net = DeepGyro(width=4, enc_blocks=(1,), dec_blocks=(1,))
    config = {"arch": "deepgyro", "width": 4, "enc_blocks": [1], "dec_blocks": [1]}
    for name, expected in (("my-run", "my-run"), (".hidden", "weights"), ("../up", "weights")):
        save_file(net.state_dict(), str(tmp_path / "weights.bin"),
                  metadata={"model": json.dumps(config), "name": name})
        assert onnx_name(tmp_path / "weights.bin") == expected
    result = export_model(tmp_path / "weights.bin", tmp_path / "chosen.onnx", check=False)
    assert result.path == tmp_path / "chosen.onnx" and result.path.is_file()


def test_a_model_that_restores_nan_is_named_so_and_writes_nothing(tmp_path):
    import json

    from safetensors.torch import save_file

    config = {"arch": "deepgyro", "width": 4, "enc_blocks": [1], "dec_blocks": [1]}
    net = DeepGyro(width=4, enc_blocks=(1,), dec_blocks=(1,))
    # Finite weights that overflow, as a diverged run's saved before its NaN step.
    thrown = {k: v * 1e15 if v.is_floating_point() else v for k, v in net.state_dict().items()}
    save_file(thrown, str(tmp_path / "thrown.safetensors"), metadata={"model": json.dumps(config)})
    for check in (True, False):
        with pytest.raises(InputError, match="thrown.safetensors: the model restores NaN"):
            export_model(tmp_path / "thrown.safetensors", tmp_path / "out", check=check)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thrown.safetensors"]
