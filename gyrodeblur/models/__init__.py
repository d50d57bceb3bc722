"""Restoration networks (gyro-guided and blind), their variants and shipped weights.

``ARCHITECTURES`` maps a name to its class; ``VARIANTS`` maps a variant name to its
architecture and keyword arguments. A model config is ``{"arch": ..., "variant": ...}`` or
``{"arch": ..., **kwargs}``.
"""

from __future__ import annotations

import inspect
import json
from importlib import resources
from pathlib import Path

import torch
from torch import nn

from gyrodeblur.errors import InputError
from gyrodeblur.models.blocks import fuse_for_inference, localize_attention, pool_levels
from gyrodeblur.models.deepgyro import DEEPGYRO_VARIANTS, DeepGyro
from gyrodeblur.models.gyrodvd import GYRODVD_VARIANTS, GyroDVD

ARCHITECTURES: dict[str, type[nn.Module]] = {"deepgyro": DeepGyro, "gyrodvd": GyroDVD}
VARIANTS: dict[str, tuple[str, dict]] = {
    **{name: ("deepgyro", kwargs) for name, kwargs in DEEPGYRO_VARIANTS.items()},
    **{name: ("gyrodvd", kwargs) for name, kwargs in GYRODVD_VARIANTS.items()},
}
WEIGHTS = resources.files("gyrodeblur") / "weights"
#: Channel-attention window radius of a loaded (inference) model, in input pixels: a window of
#: about the training crops (64 px), so large images see the statistics the net was trained on
#: (TLC). Each pooled block reaches this far, so tiles need a halo of a few radii.
INFERENCE_POOL_RADIUS = 32


def build_model(config: dict) -> nn.Module:
    """A fresh model from a config ``{"arch", "variant" | kwargs...}``."""
    if not isinstance(config, dict):
        raise InputError(None, f"a model config is a mapping such as {{'variant': "
                               f"'deepgyro-s'}}, got {config!r}")
    arch, kwargs = _arguments(config)
    try:
        return ARCHITECTURES[arch](**kwargs)
    except (TypeError, ValueError, RuntimeError) as e:  # a width of -4: a negative dimension
        raise InputError(None, f"bad arguments for {arch}: {str(e).splitlines()[0]}") from None


def full_config(config: dict) -> dict:
    """The model config with its variant expanded and every argument spelt out, so that two
    configs of the same model compare equal however they were written.

    Example:
        >>> full_config({"variant": "deepgyro-s"}) == full_config(
        ...     {"variant": "deepgyro-s", "guidance": "field"})
        True
    """
    arch, kwargs = _arguments(config)
    parameters = inspect.signature(ARCHITECTURES[arch]).parameters
    spelt = {k: p.default for k, p in parameters.items() if p.default is not p.empty} | kwargs
    return {"arch": arch, **{k: list(v) if isinstance(v, tuple) else v
                             for k, v in spelt.items()}}


def _arguments(config: dict) -> tuple[str, dict]:
    """The architecture and the keyword arguments (checked) that a model config asks for."""
    config = dict(config)
    variant = config.pop("variant", None)
    if variant is not None:
        if not isinstance(variant, str) or variant not in VARIANTS:
            raise InputError(None, f"unknown model variant {variant!r} "
                                   f"(known: {', '.join(VARIANTS)})")
        arch, kwargs = VARIANTS[variant]
        if config.get("arch", arch) != arch:
            raise InputError(None, f"variant {variant} is a {arch} model, not "
                                   f"{config['arch']}: give one of variant and arch")
        config = {"arch": arch, **kwargs, **config}
    arch = config.pop("arch", None)
    if arch is None:
        raise InputError(None, f"give `variant:` ({', '.join(VARIANTS)}) or `arch:` "
                               f"({', '.join(ARCHITECTURES)})")
    if not isinstance(arch, str) or arch not in ARCHITECTURES:
        raise InputError(None, f"unknown architecture {arch!r} (known: {', '.join(ARCHITECTURES)})")
    _check_arguments(arch, config)
    return arch, config


def _check_arguments(arch: str, kwargs: dict) -> None:
    """Refuse keyword arguments the architecture lacks or of another type than its default's
    (a YAML ``"8"`` or ``8.5`` for a width fails deep inside the net otherwise)."""
    parameters = inspect.signature(ARCHITECTURES[arch]).parameters
    for key, value in kwargs.items():
        if key not in parameters:
            raise InputError(None, f"{arch} has no argument {key!r} (it has: "
                                   f"{', '.join(parameters)})")
        default = parameters[key].default
        if isinstance(default, tuple):
            fits = isinstance(value, list | tuple) and all(
                isinstance(v, int) and not isinstance(v, bool) for v in value)
        elif isinstance(default, bool | str):
            fits = isinstance(value, type(default))
        elif isinstance(default, int | float):
            fits = isinstance(value, type(default) | int) and not isinstance(value, bool)
        else:
            fits = True
        if not fits:
            raise InputError(None, f"{arch} argument {key}: {value!r} is not of the type of "
                                   f"its default {default!r}")


def shipped_weights() -> dict[str, Path]:
    """Name -> file of the weights shipped in the package."""
    if not WEIGHTS.is_dir():
        return {}
    return {Path(p.name).stem: Path(str(p)) for p in sorted(WEIGHTS.iterdir(),
                                                             key=lambda p: p.name)
            if p.name.endswith(".safetensors")}


def refines_classic(net: nn.Module) -> bool:
    """Whether ``net`` restores from the classical method's restoration (DeepGyro with
    ``refine=True``), which it then takes as its first estimate."""
    return isinstance(net, DeepGyro) and net.refine


def weights_file(name_or_path: str | Path) -> Path:
    """The file of a shipped model's name, the ``model.safetensors`` of a training run's
    folder, or ``name_or_path`` itself.

    Example:
        >>> weights_file("deepgyro-s").name, weights_file("runs/mine.safetensors").name
        ('deepgyro-s.safetensors', 'mine.safetensors')
    """
    path = shipped_weights().get(str(name_or_path), Path(name_or_path))
    return path / "model.safetensors" if (path / "model.safetensors").is_file() else path


def example_inputs(net: nn.Module, size: int = 64) -> tuple[torch.Tensor, ...]:
    """Zero inputs of the right shapes for ``net`` (one image or one-frame clip, square)."""
    image = torch.zeros(1, 3, size, size)
    if isinstance(net, DeepGyro):
        return (image, torch.zeros(1, net.samples, 2, size, size)) + (image,) * net.refine
    kernel = torch.zeros(1, 1, net.samples, 2, size, size)
    return image[:, None], kernel, kernel


def dummy_batch(frames: int = 1, samples: int = 9, size: int = 32, flow: bool = False,
                estimate: bool = False) -> dict[str, torch.Tensor]:
    """A zero batch of one sample shaped as the data (``frames > 1``: clips), with the
    optical-flow kernel and the classical first estimate when asked: a dry run of
    :func:`predict` on it tells whether a model takes such data.

    Example:
        >>> {k: tuple(v.shape) for k, v in dummy_batch(3, 5, 8).items()}
        {'blurred': (1, 3, 3, 8, 8), 'rot': (1, 3, 5, 2, 8, 8), 'tran': (1, 3, 5, 2, 8, 8)}
    """
    lead = (1,) + ((frames,) if frames > 1 else ())
    kernel = torch.zeros(lead + (samples, 2, size, size))
    batch = {"blurred": torch.zeros(lead + (3, size, size)), "rot": kernel, "tran": kernel}
    if flow:
        batch["flow"] = kernel
    if estimate:
        batch["estimate"] = torch.zeros_like(batch["blurred"])
    return batch


def set_pool_radius(net: nn.Module, radius: int | None = INFERENCE_POOL_RADIUS) -> nn.Module:
    """Switch ``net``'s channel attention to windows of ``radius`` input pixels (``None``:
    whole-image pooling, as in training) and return it.

    With a window the net's receptive field is finite, so tiled inference (with a halo
    above it) reproduces whole-image inference.

    Example:
        >>> net = set_pool_radius(build_model({"variant": "deepgyro-s"}), 16)
        >>> sorted({m.radius for m in net.modules() if hasattr(m, "radius")})
        [2, 4, 8]
    """
    if radius is not None and (isinstance(radius, bool) or not isinstance(radius, int)
                               or radius < 1):
        raise ValueError(f"pool radius {radius!r}: a whole number of pixels, at least 1, or "
                         "None (whole-image pooling)")
    localize_attention(net, radius, pool_levels(net, *example_inputs(net)))
    return net


def check_fit(model: nn.Module, state: dict[str, torch.Tensor], config: dict) -> None:
    """Raise ``ValueError`` saying, in one line, how tensors ``state`` do not fit ``model``
    (built from ``config``): weights of another architecture or variant.

    Example:
        >>> net = build_model({"variant": "deepgyro-s"})
        >>> check_fit(net, net.state_dict(), {"variant": "deepgyro-s"})
    """
    want = model.state_dict()
    missing = [k for k in want if k not in state]
    unexpected = [k for k in state if k not in want]
    resized = [k for k in want if k in state and state[k].shape != want[k].shape]
    if missing or unexpected or resized:
        counts = ", ".join(f"{len(keys)} {what}" for keys, what in (
            (missing, "missing"), (unexpected, "unexpected"), (resized, "mis-sized"))
            if keys)
        first = (missing or unexpected or resized)[0]
        raise ValueError(f"tensors do not fit their config {config.get('variant') or config}: "
                         f"{counts} (first: {first})")


def load_model(name_or_path: str | Path, pool_radius: int | None = INFERENCE_POOL_RADIUS,
               fuse: bool = True) -> tuple[nn.Module, dict]:
    """A trained model (eval mode) and its config, from a shipped name or a weights file.

    The model's channel attention pools over ``pool_radius`` pixels (``set_pool_radius``);
    with ``fuse`` it is rewritten into its faster inference form (``fuse_for_inference``:
    same outputs, not the training parameters; GyroDVD's weights also channels-last).
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = weights_file(name_or_path)
    if path.is_dir():
        raise InputError(path, "folder holds no model.safetensors (a training run writes it "
                               "at its first checkpoint)")
    if not path.is_file():
        shipped = shipped_weights()
        other_case = [n for n in shipped if n.lower() == str(name_or_path).lower()]
        hint = f"; names are lowercase: {other_case[0]}" if other_case else ""
        if str(name_or_path).lower() == "classic":
            raise InputError(None, f"{name_or_path}: the classical method has no weights "
                                   "(eval takes it as -m classic, in lower case; deblur runs it "
                                   "with --method classic)")
        raise InputError(path, f"no such weights file or shipped model (shipped: "
                               f"{', '.join(shipped) or 'none'}){hint}")
    if path.suffix == ".pt":
        raise InputError(path, "a training checkpoint, not weights: give the run's "
                               "model.safetensors")
    try:
        with safe_open(str(path), "pt") as f:
            metadata = f.metadata() or {}
        if "model" not in metadata:
            raise ValueError("no model config in their metadata ('model')")
        config = json.loads(metadata["model"])
        if not isinstance(config, dict):
            raise ValueError(f"model config {config!r} is not a mapping")
        model = build_model(config)
        state = load_file(str(path))
        check_fit(model, state, config)
        model.load_state_dict(state)
    except Exception as e:  # safetensors, JSON, config and state-dict errors alike
        problem = e.problem if isinstance(e, InputError) else \
            next((line.strip() for line in str(e).splitlines() if line.strip()),
                 type(e).__name__)[:200]
        raise InputError(path, f"not gyrodeblur weights ({problem})") from None
    broken = [name for name, v in state.items() if v.is_floating_point() and
              not bool(torch.isfinite(v).all())]
    if broken:
        raise InputError(path, f"weights with NaN or infinite values ({broken[0]}"
                               f"{f' and {len(broken) - 1} more' if len(broken) > 1 else ''}): "
                               "a diverged training run's; they restore nothing")
    set_pool_radius(model.eval(), pool_radius)
    if not fuse:
        return model, config
    fuse_for_inference(model).eval()  # the layers it makes too
    if isinstance(model, GyroDVD):
        # oneDNN runs its many narrow convolutions 1.2x faster channels-last (DeepGyro: not).
        model.to(memory_format=torch.channels_last)
    return model, config


__all__ = ["ARCHITECTURES", "INFERENCE_POOL_RADIUS", "VARIANTS", "DeepGyro", "GyroDVD",
           "build_model", "check_fit", "check_restored", "dummy_batch", "example_inputs",
           "full_config", "load_model", "predict", "refines_classic", "set_pool_radius",
           "shipped_weights", "weights_file"]


def check_restored(restored: torch.Tensor, model: str | Path) -> torch.Tensor:
    """``restored`` when it is finite; otherwise the one-line error of a net that restores
    nothing (finite weights that overflow: a diverged run saved before its NaN step)."""
    if not bool(torch.isfinite(restored).all()):
        raise InputError(model, "the model restores NaN or infinite values (the weights of a "
                                "diverged training run?)")
    return restored


def predict(net: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Run a model on a batch of samples (see :mod:`gyrodeblur.synthesis.datasets`).

    Single-image nets get ``blurred`` and the whole kernel ``rot + tran`` (the frames of clips
    one by one; a single image's ``tran`` is zero), and a refining net the ``estimate``;
    GyroDVD gets the clip, ``rot`` and the translation kernel, or for its flow-guidance
    ablation the flow-only kernel.
    """
    model = getattr(net, "module", net)  # DistributedDataParallel wraps the model
    if isinstance(model, DeepGyro):
        blurred, rot = batch["blurred"], batch.get("rot")
        estimate = batch.get("estimate") if model.refine else None
        if rot is not None and batch.get("tran") is not None:
            rot = rot + batch["tran"]
        if blurred.ndim == 5:  # (B, F, 3, H, W) clips
            out = net(*(None if x is None else x.flatten(0, 1) for x in (blurred, rot, estimate)))
            return out.view(blurred.shape)
        return net(blurred, rot, estimate)
    tran = batch.get("flow") if model.kernel == "flow" else batch.get("tran")
    return net(batch["blurred"], batch.get("rot"), tran)
