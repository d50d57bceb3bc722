"""Restoration models to ONNX, checked against PyTorch with onnxruntime.

Inputs and output are named as in the PyTorch ``forward`` and have dynamic batch, height and
width axes (and clip length for GyroDVD): ``blurred (B, 3, H, W)`` and ``rot (B, T, 2, H, W)``
for DeepGyro (``blurred`` only for DeepBlind; a refining net also takes the classical
method's restoration as ``estimate (B, 3, H, W)``); ``blurred (B, F, 3, H, W)``, ``rot`` and
``tran (B, F, T, 2, H, W)`` for GyroDVD, or those of them its ``kernel`` ablation reads
(``tran`` is the flow kernel of ``kernel="flow"``); the output is ``restored``, shaped like
``blurred`` and not clamped to [0, 1]. Trajectories are in pixels, as for the PyTorch models,
with the model's ``T`` (fixed in the graph) and no NaN; DeepGyro's ``rot`` is the whole kernel
``traj_rot + traj_tran``. The file's metadata says so (:func:`usage`). The channel attention
pools as ``load_model`` sets it.

The TorchScript exporter (``dynamo=False``) is used: it exports these nets with dynamic shapes
in seconds, where the ``torch.export``-based one (which also needs ``onnxscript``) took over
ten times longer for DeepGyro-s. Tracing freezes Python branches, so the trace size pads in
both axes (the padded path then serves every size, a zero pad included) and the check runs at
another batch, clip length and size. One branch stays frozen: ``pad_to_multiple`` replicates instead
of reflecting when a side is at most half the padding multiple (4 pixels for DeepGyro-s, 2 for
GyroDVD); the exported graph always reflects, and onnxruntime refuses such tiny inputs.
"""

from __future__ import annotations

import importlib
import io
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from gyrodeblur.errors import InputError
from gyrodeblur.fileio import atomic_path
from gyrodeblur.models import DeepGyro, GyroDVD, check_restored, load_model, weights_file
from gyrodeblur.models.gyrodvd import KERNEL_INPUTS

OPSET = 17
"""Default opset: GridSample needs 16, 17 has LayerNormalization as one op."""
MAX_OPSET = 20
"""The TorchScript exporter's newest opset."""
TOLERANCE = 1e-3
"""Largest accepted difference between onnxruntime and PyTorch outputs (images in [0, 1])."""
OUTPUT = "restored"


@dataclass(frozen=True)
class Shape:
    """Batch, clip length (GyroDVD only), height and width of example inputs."""

    batch: int
    frames: int
    height: int
    width: int


TRACE_SHAPE = Shape(batch=2, frames=3, height=21, width=27)
"""Sides that are not multiples of 4 or 8, so every net's padding is traced."""
CHECK_SHAPE = Shape(batch=1, frames=2, height=30, width=45)
"""Differs from ``TRACE_SHAPE`` in every dynamic axis."""


def names_file(output: str | Path) -> bool:
    """Whether an export ``output`` is the ONNX file itself (else the folder for it)."""
    return Path(output).suffix.lower() == ".onnx" and not Path(output).is_dir()


@dataclass(frozen=True)
class Exported:
    """An exported model: its file, if checked the max abs difference to PyTorch, and the
    metadata written in it (:func:`usage`)."""

    path: Path
    max_abs_diff: float | None
    usage: dict[str, str]


def require(module: str) -> None:
    """Raise a one-line :class:`InputError` if ``module`` of the ``onnx`` extra is missing."""
    try:
        importlib.import_module(module)
    except ImportError:
        check = " (or --no-check)" if module == "onnxruntime" else ""
        raise InputError(None, f"ONNX export needs {module}: pip install 'gyrodeblur[onnx]'"
                               f"{check}") from None


def check_opset(opset: int) -> None:
    """Refuse an ONNX opset that lacks GridSample or that onnxruntime cannot run."""
    if not 16 <= opset <= MAX_OPSET:
        raise InputError(None, f"--opset {opset}: choose 16 (GridSample) to {MAX_OPSET}")


def input_names(net: nn.Module) -> tuple[str, ...]:
    """The ``forward`` arguments ``net`` reads, in order."""
    if isinstance(net, DeepGyro):
        kernels = () if net.guidance == "none" else ("rot",)
        return ("blurred", *kernels) + ("estimate",) * net.refine
    return ("blurred", *KERNEL_INPUTS[net.kernel])


def random_inputs(net: nn.Module, shape: Shape, seed: int = 0) -> dict[str, Tensor]:
    """Random ``forward`` arguments: images in [0, 1], trajectories of a few pixels."""
    g = torch.Generator().manual_seed(seed)
    lead = (shape.batch, shape.frames) if isinstance(net, GyroDVD) else (shape.batch,)
    size = (shape.height, shape.width)
    inputs = {"blurred": torch.rand(*lead, 3, *size, generator=g)}
    for name in input_names(net)[1:]:
        inputs[name] = (torch.rand(*lead, 3, *size, generator=g) if name == "estimate" else
                        4 * torch.randn(*lead, net.samples, 2, *size, generator=g))
    return inputs


def dynamic_axes(net: nn.Module) -> dict[str, dict[int, str]]:
    """Named dynamic axes of every input and of the output."""
    lead = {0: "batch", 1: "frames"} if isinstance(net, GyroDVD) else {0: "batch"}
    n = len(lead)
    image = {**lead, n + 1: "height", n + 2: "width"}
    kernel = {**lead, n + 2: "height", n + 3: "width"}
    return {name: image if name in ("blurred", "estimate", OUTPUT) else kernel
            for name in (*input_names(net), OUTPUT)}


class _Positional(nn.Module):
    """``net`` called with keyword arguments, so that e.g. ``tran`` can go without ``rot``."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net, self.names = net, input_names(net)

    def forward(self, *inputs: Tensor) -> Tensor:
        return self.net(**dict(zip(self.names, inputs, strict=True)))


def usage(net: nn.Module) -> dict[str, str]:
    """What an exported ``net`` takes and gives, as the ONNX file's metadata records it.

    Example:
        >>> from gyrodeblur.models import build_model
        >>> usage(build_model({"variant": "deepgyro-s"}))["samples"]
        '9'
    """
    names = input_names(net)
    images = " and ".join(n for n in names if n in ("blurred", "estimate"))
    props = {"producer": "gyrodeblur",
             "images": f"{images}: RGB in [0, 1] as stored (sRGB); restored: the same, not "
                       "clamped",
             "sizes": f"batch, {'' if isinstance(net, DeepGyro) else 'frames, '}height and "
                      "width dynamic; sides above 4 px"}
    if "estimate" in names:
        props["estimate"] = "the classical method's restoration (deblur --method classic)"
    kernels = [n for n in names if n in ("rot", "tran")]
    if kernels:
        if isinstance(net, DeepGyro):
            what = ("rot: a kernels npz's rot + tran (the whole kernel; its rot alone without "
                    "translation)")
        elif kernels == ["rot", "tran"]:
            what = "rot and tran: a kernels npz's rot and tran (tran zeros without translation)"
        elif kernels == ["rot"]:
            what = "rot: a kernels npz's rot"
        else:
            what = "tran: the optical-flow kernel of the kernel=flow ablation"
        props["samples"] = str(net.samples)
        props["kernels"] = f"{what}; in pixels, T={net.samples} samples, NaN set to 0"
    return props


def to_onnx(net: nn.Module, path: str | Path, opset: int = OPSET) -> None:
    """Export ``net`` (eval mode) to ``path`` with :func:`usage` as metadata and validate the
    file with ``onnx.checker``."""
    require("onnx")
    import onnx

    check_opset(opset)
    example = tuple(random_inputs(net, TRACE_SHAPE).values())
    with warnings.catch_warnings(), torch.no_grad():
        # The legacy exporter is deprecated, and tracing warns about each frozen branch; the
        # onnxruntime check at another size is what tells whether the graph is right.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", "You are using the legacy TorchScript-based ONNX")
        warnings.filterwarnings("ignore", "Constant folding - Only steps=1")
        warnings.filterwarnings("ignore", "The feature will be removed")
        # In memory, then written by Python: a path that is not UTF-8 is no string for ONNX.
        graph = io.BytesIO()
        torch.onnx.export(_Positional(net).eval(), example, graph,
                          input_names=list(input_names(net)), output_names=[OUTPUT],
                          dynamic_axes=dynamic_axes(net), opset_version=opset, dynamo=False)
    model = onnx.load_from_string(graph.getvalue())
    onnx.helper.set_model_props(model, usage(net))
    onnx.checker.check_model(model)
    Path(path).write_bytes(model.SerializeToString())


def max_difference(net: nn.Module, path: str | Path, shape: Shape = CHECK_SHAPE,
                   seed: int = 0) -> float:
    """Max abs difference between onnxruntime running ``path`` and ``net`` on random inputs."""
    require("onnxruntime")
    import onnxruntime

    inputs = random_inputs(net, shape, seed)
    session = onnxruntime.InferenceSession(Path(path).read_bytes(),
                                           providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {name: x.numpy() for name, x in inputs.items()})
    with torch.no_grad():
        want = net(**inputs).numpy()
    if got.shape != want.shape:
        raise InputError(path, f"onnxruntime output {got.shape}, PyTorch {want.shape}")
    return float(np.abs(got - want).max())


_PLAIN_NAME = re.compile(r"[A-Za-z0-9][\w.-]*")


def onnx_name(name_or_path: str | Path) -> str:
    """The exported file's name: a shipped model's name, or a weights file's run name (as
    training records it, if a plain file name), else its stem."""
    path = weights_file(name_or_path)  # a run's folder: its model.safetensors
    if path.is_file():
        from safetensors import safe_open

        try:
            with safe_open(path, "pt") as f:
                name = (f.metadata() or {}).get("name")
        except Exception:  # not safetensors: load_model says so
            name = None
        if name and _PLAIN_NAME.fullmatch(name):
            return name
    return path.stem


def export_model(name_or_path: str | Path, output: str | Path, opset: int = OPSET,
                 check: bool = True) -> Exported:
    """Export a shipped model or weights file to ``output`` if it ends in ``.onnx``, else to
    ``output/NAME.onnx`` (:func:`onnx_name`), atomically.

    With ``check`` the file is only written if onnxruntime agrees with PyTorch within
    ``TOLERANCE`` at ``CHECK_SHAPE``.
    """
    require("onnx")
    if check:
        require("onnxruntime")
    check_opset(opset)
    net, _ = load_model(name_or_path)
    with torch.no_grad():  # a diverged run's weights: said so, not as runtimes that differ
        check_restored(net(**random_inputs(net, CHECK_SHAPE)), name_or_path)
    target = Path(output)
    if not names_file(target):
        target = target / f"{onnx_name(name_or_path)}.onnx"
    with atomic_path(target) as tmp:
        to_onnx(net, tmp, opset)
        diff = max_difference(net, tmp) if check else None
        if diff is not None and not diff < TOLERANCE:
            raise InputError(name_or_path, f"onnxruntime differs from PyTorch by {diff:.2e} "
                                           f"(more than {TOLERANCE:g}); nothing written")
    return Exported(target, diff, usage(net))
