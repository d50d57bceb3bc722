"""Restoration networks (gyro-guided and blind), their variants and shipped weights.

``ARCHITECTURES`` maps a name to its class; ``VARIANTS`` maps a variant name to its
architecture and keyword arguments. A model config is ``{"arch": ..., "variant": ...}`` or
``{"arch": ..., **kwargs}``.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import torch
from torch import nn

from gyrodeblur.errors import InputError
from gyrodeblur.models.deepgyro import DEEPGYRO_VARIANTS, DeepGyro
from gyrodeblur.models.gyrodvd import GYRODVD_VARIANTS, GyroDVD

ARCHITECTURES: dict[str, type[nn.Module]] = {"deepgyro": DeepGyro, "gyrodvd": GyroDVD}
VARIANTS: dict[str, tuple[str, dict]] = {
    **{name: ("deepgyro", kwargs) for name, kwargs in DEEPGYRO_VARIANTS.items()},
    **{name: ("gyrodvd", kwargs) for name, kwargs in GYRODVD_VARIANTS.items()},
}
WEIGHTS = resources.files("gyrodeblur") / "weights"


def build_model(config: dict) -> nn.Module:
    """A fresh model from a config ``{"arch", "variant" | kwargs...}``."""
    config = dict(config)
    variant = config.pop("variant", None)
    if variant is not None:
        if variant not in VARIANTS:
            raise InputError(None, f"unknown model variant {variant!r} "
                                   f"(known: {', '.join(VARIANTS)})")
        arch, kwargs = VARIANTS[variant]
        config = {"arch": arch, **kwargs, **config}
    arch = config.pop("arch", None)
    if arch not in ARCHITECTURES:
        raise InputError(None, f"unknown architecture {arch!r} (known: {', '.join(ARCHITECTURES)})")
    try:
        return ARCHITECTURES[arch](**config)
    except TypeError as e:
        raise InputError(None, f"bad arguments for {arch}: {e}") from None


def shipped_weights() -> dict[str, Path]:
    """Name -> file of the weights shipped in the package."""
    if not WEIGHTS.is_dir():
        return {}
    return {Path(p.name).stem: Path(str(p)) for p in WEIGHTS.iterdir()
            if p.name.endswith(".safetensors")}


def load_model(name_or_path: str | Path) -> tuple[nn.Module, dict]:
    """A trained model (eval mode) and its config, from a shipped name or a weights file."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = shipped_weights().get(str(name_or_path), Path(name_or_path))
    if not path.is_file():
        raise InputError(path, f"no such weights file or shipped model (shipped: "
                               f"{', '.join(shipped_weights()) or 'none'})")
    with safe_open(str(path), "pt") as f:
        metadata = f.metadata() or {}
    if "model" not in metadata:
        raise InputError(path, "weights carry no model config (metadata 'model')")
    config = json.loads(metadata["model"])
    model = build_model(config)
    model.load_state_dict(load_file(str(path)))
    return model.eval(), config


__all__ = ["ARCHITECTURES", "VARIANTS", "DeepGyro", "GyroDVD", "build_model", "load_model",
           "predict", "shipped_weights"]


def predict(net: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Run a model on a batch of samples (see :mod:`gyrodeblur.synthesis.datasets`).

    Single-image nets get ``blurred`` and ``rot``; GyroDVD gets the clip, ``rot`` and the
    translation kernel, or for its flow-guidance ablation the flow-only kernel.
    """
    model = getattr(net, "module", net)  # DistributedDataParallel wraps the model
    if isinstance(model, DeepGyro):
        return net(batch["blurred"], batch.get("rot"))
    tran = batch.get("flow") if model.kernel == "flow" else batch.get("tran")
    return net(batch["blurred"], batch.get("rot"), tran)
