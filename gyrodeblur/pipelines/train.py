"""Training: ``gyrodeblur train CONFIG.yaml``.

AdamW, cosine schedule down to ``lr_min`` (1e-7), L1 loss. The batch of step ``s`` is a
function of ``(seed, s)`` and samples are functions of their index, so a run killed and resumed
from its last checkpoint continues the same loss curve. Checkpoints every
``checkpoint_every`` steps and on Ctrl-C or SIGTERM (after the step in progress; atomic),
TensorBoard logs, metrics as JSON, mixed precision on GPU, and data-parallel training with
``torchrun`` (DDP; gloo on CPU, NCCL on GPU): each process takes its share of every global
batch.

A config (YAML)::

    name: deepgyro-s
    model: {arch: deepgyro, variant: deepgyro-s}      # or explicit keyword arguments
    data: {frames: 1, width: 192, height: 128, crop: 64, samples: 9, count: 3000, seed: 0}
    train: {steps: 6000, batch: 16, lr: 1.0e-3}
"""

from __future__ import annotations

import contextlib
import datetime
import io
import json
import math
import os
import re
import shutil
import signal
import sys
import threading
import time
import warnings
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import yaml
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch.nn.utils import get_total_norm

from gyrodeblur.errors import InputError, Terminated
from gyrodeblur.fileio import (
    atomic_path,
    check_output,
    files_digest,
    hold_folder,
    holds_anything,
    read_record,
    sources_digest,
)
from gyrodeblur.footage import image_files
from gyrodeblur.geometry.gyro import GyroLog
from gyrodeblur.models import (
    DeepGyro,
    build_model,
    dummy_batch,
    full_config,
    load_model,
    predict,
    refines_classic,
    shipped_weights,
    weights_file,
)


@dataclass
class DataConfig:
    """Where training samples come from.

    ``source: synthetic`` draws ``count`` samples (seed ``seed``) once and caches them, whole
    frames, as safetensors at ``cache`` (default: in the run folder), so that several runs
    train on the same data; ``source: folder`` reads clip folders under ``folder`` (real or
    exported pairs). Each step takes a fresh random ``crop x crop`` window of every sample
    (seeded by the step: resumes and DDP see the same windows). ``cache_crop`` stores one random
    window per sample instead of whole frames (for large real footage).
    ``sampler`` overrides fields of :class:`~gyrodeblur.synthesis.sampler.SamplerSettings`
    (e.g. ``hfov_deg: [30, 50]`` for longer blur in pixels). ``gyro``, a gyro log or a list
    of them (read in ``gyro_unit``), replaces the bundled traces as the source of real
    motion. ``classic`` also stores each frame restored by the classical method, whole
    (before ``cache_crop``) as ``deblur`` restores it, for nets that refine it
    (``refine: true``).
    """

    source: str = "synthetic"
    frames: int = 1
    width: int = 192
    height: int = 128
    crop: int | None = 64
    cache_crop: int | None = None
    samples: int = 9
    count: int = 2000
    seed: int = 0
    images: str | None = None
    gyro: str | list | None = None
    gyro_unit: str = "auto"
    folder: str | None = None
    cache: str | None = None
    flow_kernel: bool = False
    classic: bool = False
    sampler: dict = field(default_factory=dict)


@dataclass
class TrainSettings:
    """The ``train:`` section: AdamW steps and batch, cosine schedule from ``lr`` to
    ``lr_min``, checkpoints and logs every so many steps, seed, mixed precision on GPU, and
    ``init``, the weights a new run starts from (fine-tuning: a shipped model's name or a
    weights file of the same model; none: random)."""

    steps: int = 1000
    batch: int = 8
    lr: float = 1e-3
    lr_min: float = 1e-7
    weight_decay: float = 1e-4
    checkpoint_every: int = 250
    log_every: int = 10
    seed: int = 0
    amp: bool = True
    init: str | None = None


@dataclass
class TrainConfig:
    """A training config file: the run's ``name``, the ``model`` config (``build_model``),
    its ``data`` and ``train`` sections."""

    name: str
    model: dict
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainSettings = field(default_factory=TrainSettings)


def _section(cls, name: str, values: dict, source: Path):
    known = {f.name for f in fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise InputError(source, f"unknown key(s) {', '.join(sorted(unknown))} in {name} "
                                 f"(known: {', '.join(sorted(known))})")
    floats = {f.name for f in fields(cls) if str(f.type) == "float"}
    return cls(**{k: _number(v) if k in floats else v for k, v in values.items()})


# Floats that YAML 1.1 (PyYAML) reads as strings: an exponent without a dot or a sign.
_EXPONENT_FLOAT = re.compile(r"[-+]?(\d+(\.\d*)?|\.\d+)[eE][-+]?\d+")


def _number(value):
    """A float written ``1e-3``, which YAML 1.1 (PyYAML) reads as a string, as a float."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    return value


_EXAMPLES = {"model": "{variant: deepgyro-s}", "data": "{count: 2000, crop: 64}",
             "train": "{steps: 1000, batch: 8}"}


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML that refuses a key given twice in one mapping (a bad merge, mostly), which plain
    YAML reads as its last value."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<:`, which explicit keys override
                continue
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, str):  # 1:, ~:, yes: are no setting's name
                raise InputError(None, f"line {key_node.start_mark.line + 1}: {key!r} is not a "
                                       "setting's name")
            if key in seen:
                raise InputError(None, f"line {key_node.start_mark.line + 1}: {key} is given "
                                       "twice in its section")
            seen.add(key)
        return super().construct_mapping(node, deep)


def load_config(path: str | Path, resuming: bool = False) -> TrainConfig:
    """Read a training config and check it (:func:`check_config`, which ``resuming`` goes
    to) before any data is drawn."""
    path = Path(path)
    try:
        raw = yaml.load(path.read_text(encoding="utf-8-sig"), Loader=_UniqueKeyLoader)
    except InputError as e:
        raise e.located(path) from None
    except (OSError, yaml.YAMLError) as e:
        raise InputError(path, f"cannot read config ({' '.join(str(e).split())})") from None
    except UnicodeDecodeError:
        raise InputError(path, "not UTF-8 text (saved as UTF-16, as PowerShell's > does? save "
                               "it as UTF-8)") from None
    if not isinstance(raw, dict) or "model" not in raw:
        raise InputError(path, "a config needs at least `model:` (and usually data/train)")
    unknown = set(raw) - {"name", "model", "data", "train"}
    if unknown:
        raise InputError(path, f"unknown section(s) {', '.join(sorted(unknown))}")
    for section in ("model", "data", "train"):
        if not isinstance(raw.get(section) or {}, dict):
            raise InputError(path, f"{section}: {raw[section]!r} is not a mapping of settings "
                                   f"such as {_EXAMPLES[section]}")
    name = raw.get("name") if raw.get("name") is not None else path.stem  # `name:` left empty
    if isinstance(name, dict | list) or str(name).strip() in ("", ".", "..") or \
            any(c in str(name) for c in "/\\"):
        raise InputError(path, f"name: {name!r} is not a run name (a run folder's name)")
    model = raw["model"]
    if isinstance(model, dict):  # a kernel_scale 1.6e1 is a float, which YAML 1.1 misses
        model = {k: float(v) if isinstance(v, str) and _EXPONENT_FLOAT.fullmatch(v) else v
                 for k, v in model.items()}
    config = TrainConfig(name=str(name), model=model,
                         data=_section(DataConfig, "data", raw.get("data") or {}, path),
                         train=_section(TrainSettings, "train", raw.get("train") or {}, path))
    check_config(config, path, resuming)
    return config


_TYPES = {"int": int, "float": (int, float), "bool": bool, "str": str, "dict": dict, "list": list,
          "None": type(None)}
MIN_CROP = 16  # px: the smallest training window
_POSITIVE = {"frames", "width", "height", "crop", "cache_crop", "count", "steps", "batch",
             "lr", "checkpoint_every", "log_every"}
_NON_NEGATIVE = {"seed", "lr_min", "weight_decay"}
_MAX_SEED = 2**64 - 1


def _seeded_model(model: dict, seed: int) -> torch.nn.Module:
    """:func:`build_model` with initial weights drawn (on the CPU) from ``seed``; the caller's
    random state is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model(model)


def check_config(config: TrainConfig, source: Path | None = None, resuming: bool = False
                 ) -> None:
    """Refuse a config that cannot train, before any data is drawn: wrong types or values,
    an unknown model, or a model that does not fit the data (a dry run on a dummy batch).
    ``source``, the config file, is named in the message. ``resuming``: the run resumes its
    checkpoint, whose weights it starts from, so that ``train.init`` is not read
    (:func:`check_init`)."""
    for prefix, section in (("data", config.data), ("train", config.train)):
        for f in fields(section):
            value, key = getattr(section, f.name), f"{prefix}.{f.name}"
            allowed = tuple(_TYPES[name.strip()] for name in str(f.type).split("|"))
            if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
                written = (f" ({value} is a float: write the integer)" if isinstance(value, str)
                           and _EXPONENT_FLOAT.fullmatch(value) else "")
                raise InputError(source, f"{key}: {value!r} is not of type {f.type}{written}")
            if isinstance(value, float) and not math.isfinite(value):
                raise InputError(source, f"{key} must be a finite number, got {value}")
            if f.name in _POSITIVE and value is not None and value <= 0:
                raise InputError(source, f"{key} must be positive, got {value}")
            if f.name in _NON_NEGATIVE and value < 0:
                raise InputError(source, f"{key} must be at least 0, got {value}")
            if key == "train.seed" and value > _MAX_SEED:  # torch.manual_seed's uint64
                raise InputError(source, f"{key} must be at most 2**64 - 1, got {value}")
    d, t = config.data, config.train
    if t.lr_min > t.lr:
        raise InputError(source, f"train.lr_min {t.lr_min} is above train.lr {t.lr}: the "
                                 "schedule decays from lr to lr_min")
    for key in ("crop", "cache_crop"):
        if getattr(d, key) is not None and getattr(d, key) < MIN_CROP:
            raise InputError(source, f"data.{key} {getattr(d, key)}: at least {MIN_CROP} px (a "
                                     "smaller window holds less than the blur it learns)")
    if (d.source == "synthetic" and d.cache_crop is not None
            and d.cache_crop > min(d.width, d.height)):
        raise InputError(source, f"data.cache_crop {d.cache_crop} is larger than the samples "
                                 f"({d.width}x{d.height})")
    if d.cache_crop is not None and d.crop is not None and d.cache_crop < d.crop:
        raise InputError(source, f"data.cache_crop {d.cache_crop} is smaller than data.crop "
                                 f"{d.crop}: the training windows are cut from the cached ones")
    if d.cache is not None and Path(d.cache).is_dir():
        raise InputError(source, f"data.cache {d.cache} is a folder; name a .safetensors file")
    if d.cache is not None and not Path(d.cache).is_file():  # found now, not after hours
        try:
            check_output(d.cache)
        except InputError as e:
            raise InputError(source, f"data.cache {e}") from None
    if d.source not in ("synthetic", "folder"):
        raise InputError(source, f"data.source {d.source!r}: synthetic or folder")
    if d.source == "folder" and d.folder is None:
        raise InputError(source, "data.source folder needs data.folder")
    if d.source == "synthetic" and d.folder is not None:  # would train on synthetic data
        raise InputError(source, f"data.folder {d.folder} is read with data.source: folder "
                                 "(the source is synthetic)")
    for key in ("folder", "images"):
        if getattr(d, key) is not None and not Path(getattr(d, key)).is_dir():
            raise InputError(source, f"data.{key} {getattr(d, key)}: no such folder")
    if d.gyro_unit not in ("auto", "rad", "deg"):
        raise InputError(source, f"data.gyro_unit {d.gyro_unit!r}: auto, rad or deg")
    if d.gyro is not None:
        if d.source != "synthetic":
            raise InputError(source, "data.gyro is the motion of synthetic data (source: "
                                     "synthetic); a folder's clips have their own gyro")
        named = [d.gyro] if isinstance(d.gyro, str) else d.gyro
        if not named or not all(isinstance(g, str) and g.strip() for g in named):
            raise InputError(source, f"data.gyro: {d.gyro!r} is not a gyro log's path or a "
                                     "list of them")
        missing = [g for g in gyro_paths(d) if not g.exists()]
        if missing:
            raise InputError(source, f"data.gyro {missing[0]}: no such file or folder")
    if d.source == "folder" and d.flow_kernel:
        raise InputError(source, "data.flow_kernel needs synthetic data (source: synthetic)")
    if d.samples < 2:
        raise InputError(source, f"data.samples must be at least 2, got {d.samples}")
    if d.source == "synthetic" and d.count < t.batch:
        raise InputError(source, f"data.count {d.count} is fewer samples than one batch "
                                 f"(train.batch {t.batch})")
    try:
        settings = sampler_settings(d)
    except InputError as e:
        raise InputError(source, e.problem) from None
    if d.gyro is not None:  # read now, not after the images are drawn
        from gyrodeblur.synthesis.sampler import check_traces

        check_traces(gyro_traces(d), settings)
    if d.source == "synthetic":
        check_crop(d.crop, d.width, d.height, source)
    if not isinstance(config.model, dict) or not config.model:
        raise InputError(source, f"model: {config.model!r} is not a mapping such as "
                                 f"{_EXAMPLES['model']}")
    try:
        model = _seeded_model(config.model, 0)
    except InputError as e:
        raise InputError(source, f"model: {e.problem}") from None
    if not resuming:
        check_init(config, source)
    if refines_classic(model) and not d.classic:
        raise InputError(source, "the model refines the classical restoration: set "
                                 "data.classic: true")
    batch = dummy_batch(d.frames, d.samples, flow=d.flow_kernel and d.frames > 1,
                        estimate=d.classic)
    try:
        with torch.no_grad():
            predict(model, batch)
    except (ValueError, RuntimeError) as e:
        if not isinstance(model, DeepGyro) and d.frames < 2:
            fix = "; a video model: set data.frames to 2 or more (the shipped configs: 3)"
        elif getattr(model, "samples", d.samples) != d.samples:
            fix = f"; set data.samples and model.samples to one T (now {model.samples})"
        else:
            fix = ""
        raise InputError(source, f"the model does not fit the data (frames {d.frames}, "
                                 f"samples {d.samples}, flow_kernel {d.flow_kernel}, "
                                 f"classic {d.classic}): "
                                 f"{str(e).splitlines()[0]}{fix}") from None


def check_init(config: TrainConfig, source: Path | None = None) -> None:
    """Refuse a ``train.init`` that is no weights file or shipped model, or the weights of
    another model than the config's."""
    init = config.train.init
    if init is None:
        return
    try:
        _, start = load_model(init, fuse=False)
    except InputError as e:
        raise InputError(source, f"train.init {init}: {e.problem}") from None
    there, here = full_config(start), full_config(config.model)
    if there != here:
        named = start.get("variant") or there["arch"]
        differ = ", ".join(f"{k} {there.get(k)!r} there, {here.get(k)!r} here"
                           for k in sorted(there.keys() | here.keys())
                           if there.get(k) != here.get(k))
        raise InputError(source, f"train.init {init}: weights of another model ({named}: "
                                 f"{differ}) than the config's")


def gyro_paths(data: DataConfig) -> list[Path] | None:
    """The gyro logs that ``data.gyro`` names (None: the bundled traces)."""
    if data.gyro is None:
        return None
    return [Path(g) for g in ([data.gyro] if isinstance(data.gyro, str) else data.gyro)]


def gyro_traces(data: DataConfig) -> list[GyroLog] | None:
    """The motion traces of ``data.gyro`` (None: the bundled traces)."""
    from gyrodeblur.synthesis.motion import read_traces

    return None if data.gyro is None else read_traces(
        gyro_paths(data), data.gyro_unit,
        deg_advice="set data.gyro_unit: deg, or rad if it really is rad/s")


def sampler_settings(data: DataConfig):
    """The synthesis settings of ``data``: its size, frames and samples, and ``data.sampler``'s
    overrides (lists become ranges, ``errors`` a mapping of sensor error ranges)."""
    from gyrodeblur.synthesis.sampler import SamplerSettings
    from gyrodeblur.synthesis.sensor_errors import SensorErrorRanges

    def read(value):  # lists become ranges; 1e-2 is a number at every depth
        if isinstance(value, list):
            return tuple(map(_number, value))
        if isinstance(value, dict):
            return {k: _number(v) for k, v in value.items()}
        return _number(value)

    overrides = {k: read(v) for k, v in data.sampler.items()}
    defaults = SamplerSettings()
    known = {f.name for f in fields(SamplerSettings)} - {"width", "height", "frames", "samples"}
    unknown = set(overrides) - known
    if unknown:
        raise InputError(None, f"unknown key(s) {', '.join(sorted(unknown))} in data.sampler "
                               f"(known: {', '.join(sorted(known))})")
    for key, value in overrides.items():
        default = getattr(defaults, key, None)
        if isinstance(default, tuple) and not (
                isinstance(value, tuple) and len(value) == len(default)
                and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                        for v in value)):  # its bounds and order: SamplerSettings checks them
            raise InputError(None, f"data.sampler.{key}: {value!r} is not a range like "
                                   f"{list(default)}")
        if isinstance(default, (int, float)) and not (
                isinstance(value, (int, float)) and not isinstance(value, bool)):
            raise InputError(None, f"data.sampler.{key}: {value!r} is not a number like "
                                   f"{default}")
        if key == "errors" and not (isinstance(value, dict) and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < math.inf
                for v in value.values())):
            raise InputError(None, f"data.sampler.errors: {value!r} is not a mapping of "
                                   "non-negative numbers such as {delay: 0.01, bias: 0.02}")
        if key == "errors":
            known_errors = {f.name for f in fields(SensorErrorRanges)}
            if set(value) - known_errors:
                raise InputError(None, f"unknown key(s) "
                                       f"{', '.join(sorted(set(value) - known_errors))} in "
                                       f"data.sampler.errors (known: "
                                       f"{', '.join(sorted(known_errors))})")
    try:
        if "errors" in overrides:
            try:
                overrides["errors"] = SensorErrorRanges(**overrides["errors"])
            except ValueError as e:
                raise ValueError(f"errors.{e}") from None
        return SamplerSettings(width=data.width, height=data.height, frames=data.frames,
                               samples=data.samples, **overrides)
    except TypeError as e:
        raise InputError(None, f"data.sampler: {e}") from None
    except ValueError as e:  # a value out of its domain
        raise InputError(None, f"data.sampler.{e}") from None


KEYS = ("blurred", "sharp", "rot", "tran", "flow", "estimate")
# Version of the drawn data: 2 since traj_tran has the sign of its definition and the readout
# fits in the frame interval.
CACHE_FORMAT = 2
CACHE_PART = 256  # samples per part of a cache being drawn: what a killed draw keeps


_FOLDER_KEYS = ("source", "frames", "samples", "cache_crop", "folder", "classic")
# Version of the kernels read from folders: 2 since translation is measured against the
# neighbours beyond each window too.
_FOLDER_KERNELS = 2


def cache_recipe(data: DataConfig) -> str:
    """What decides a cache's content: the synthesis settings (all but the training windows)
    and the name, size and time of every image of ``data.images``, or for a folder the
    settings it reads and the same of every file that the clips are read from, so that images
    or footage added or changed make the cache stale (other files, such as a clip's
    ``kernels.npz`` or notes, do not)."""
    if data.source == "folder":
        from gyrodeblur.synthesis.datasets import clip_folders

        recipe = {k: getattr(data, k) for k in _FOLDER_KEYS}
        recipe["files"] = files_digest(Path(data.folder), [
            f for clip in clip_folders(Path(data.folder)) for f in _footage_files(clip)])
        recipe["kernels"] = _FOLDER_KERNELS
    else:
        recipe = {k: v for k, v in asdict(data).items() if k not in ("crop", "cache")}
        recipe["blur"] = "continuous"  # between the kernel's samples (earlier caches: copies)
        if data.images is not None:
            from gyrodeblur.synthesis.images import ImageBank

            recipe["files"] = files_digest(Path(data.images), ImageBank(Path(data.images)).files)
        if data.gyro is None:  # caches drawn before the option stay valid
            del recipe["gyro"], recipe["gyro_unit"]
        else:
            recipe["gyro"] = [str(g) for g in gyro_paths(data)]
            # The files read: a GyroVD folder's gyro.csv, not what else the folder holds.
            recipe["gyro_files"] = sources_digest([Path(log.source)
                                                   for log in gyro_traces(data)])
    if not data.classic:  # caches drawn before the option stay valid
        del recipe["classic"]
    return json.dumps(_canonical({"format": CACHE_FORMAT, **recipe}), sort_keys=True)


def _canonical(recipe: dict) -> dict:
    """A cache recipe with its settings as values, not as they were written: folders as
    absolute paths, one gyro log as a list of it, ``1e-2`` as a number (``0`` and ``0.0``
    compare equal anyway)."""
    def number(value):
        if isinstance(value, list):
            return [number(v) for v in value]
        if isinstance(value, dict):
            return {k: number(v) for k, v in value.items()}
        return _number(value)

    recipe = dict(recipe)
    for key in ("folder", "images"):
        if recipe.get(key) is not None:
            recipe[key] = str(Path(recipe[key]).resolve())
    if isinstance(recipe.get("gyro"), str):  # one log: the list of it
        recipe["gyro"] = [str(Path(recipe["gyro"]).resolve())]
    elif isinstance(recipe.get("gyro"), list):
        recipe["gyro"] = [str(Path(g).resolve()) for g in recipe["gyro"]]
    if isinstance(recipe.get("sampler"), dict):
        recipe["sampler"] = _without_defaults(number(recipe["sampler"]))
    return recipe


def _without_defaults(sampler: dict) -> dict:
    """``data.sampler`` without the overrides that set a default's own value: the same data."""
    from gyrodeblur.synthesis.sampler import SamplerSettings

    defaults = json.loads(json.dumps(asdict(SamplerSettings())))  # ranges as lists
    kept = {}
    for key, value in sampler.items():
        if key == "errors" and isinstance(value, dict):
            value = {k: v for k, v in value.items() if defaults["errors"].get(k) != v}
            if value:
                kept[key] = value
        elif defaults.get(key) != value:
            kept[key] = value
    return kept


def _same_recipe(saved: str | None, wanted: str) -> bool:
    """Whether a cache drawn by recipe ``saved`` holds the data that ``wanted`` asks for."""
    try:
        return _canonical(json.loads(saved)) == json.loads(wanted)
    except (TypeError, ValueError):
        return False


def _footage_files(clip: Path) -> list[Path]:
    """The files a clip folder is read from: its frames, sharp references, gyro, camera and
    frame times."""
    named = [clip / name for name in ("gyro.csv", "frames.csv", "camera.json")]
    frames = [f for folder in ("blurred", "sharp") if (clip / folder).is_dir()
              for f in image_files(clip / folder)]
    return [f for f in named if f.is_file()] + frames


def _recipe_changes(saved: str | None, wanted: str) -> str:
    """`` (data.count 40 there, 8000 here)``: the settings in which two cache recipes differ,
    or nothing where the saved one cannot be read."""
    try:
        before, now = _canonical(json.loads(saved)), json.loads(wanted)
    except (TypeError, ValueError):
        return ""
    changed = [f"data.{k} {before.get(k)!r} there, {now.get(k)!r} here"
               for k in sorted(before.keys() | now.keys())
               if before.get(k) != now.get(k)
               and k not in ("format", "blur", "files", "gyro_files")]
    if before.get("files") != now.get("files"):
        changed.append("the clips' or images' files changed")
    if before.get("gyro_files") != now.get("gyro_files") and before.get("gyro") == now.get("gyro"):
        changed.append("the gyro logs' files changed")
    return f" ({'; '.join(changed)})" if changed else ""


def build_cache(data: DataConfig, path: Path,
                progress: Callable[[int, int], None] | None = None,
                note: Callable[[str], None] | None = None,
                batch: int = 1) -> dict[str, torch.Tensor]:
    """Draw the synthetic samples once and store them (kernels in float16) at ``path``; a
    run drawing the same cache meanwhile (runs of an ablation share one) is waited for,
    ``note`` told so. Clip folders of fewer samples than one ``batch`` are refused before
    they are read."""
    if path.exists():
        return _read_cache(path, data)
    parts_folder = cache_parts(path)
    say = note or (lambda text: print(text, file=sys.stderr))
    waiting = f"waiting for another run drawing the data cache {path}"
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(hold_folder(parts_folder, wait=lambda: say(waiting)))
        except KeyboardInterrupt as e:
            raise type(e)(f"stopped {waiting}") from None
        if path.exists():  # drawn by the run waited for
            return _read_cache(path, data)
        if data.source == "folder" and data.folder is not None:  # no run adds clips meanwhile
            held.enter_context(hold_folder(data.folder, reading=True))
        return _draw_cache(data, path, parts_folder, progress, batch)


def _read_cache(path: Path, data: DataConfig) -> dict[str, torch.Tensor]:
    """The samples of the cache at ``path``, which must have been drawn as ``data`` says."""
    try:
        with safe_open(path, "pt") as f:
            recipe = (f.metadata() or {}).get("recipe")
        if _same_recipe(recipe, cache_recipe(data)):
            return load_file(path)
    except (OSError, SafetensorError) as e:
        raise InputError(path, f"not a readable data cache ({str(e).splitlines()[0]}); "
                               "if data.cache names the right file, delete it to draw it "
                               "again") from None
    if recipe is None:  # weights, say: nothing the user should be told to delete
        raise InputError(path, "is no data cache (a safetensors file without a data recipe): "
                               "give data.cache a path of its own")
    raise InputError(path, "this data cache was drawn with other data settings"
                           f"{_recipe_changes(recipe, cache_recipe(data))}, from other "
                           "footage or by an older gyrodeblur; delete it or set data.cache "
                           "elsewhere")


def _draw_cache(data: DataConfig, path: Path, parts_folder: Path,
                progress: Callable[[int, int], None] | None,
                batch: int) -> dict[str, torch.Tensor]:
    """Draw the cache at ``path``, in parts kept in ``parts_folder`` (held)."""
    from gyrodeblur.models.classic import deconvolve
    from gyrodeblur.synthesis.datasets import ClipFolderDataset, SyntheticDataset
    from gyrodeblur.synthesis.images import ImageBank
    from gyrodeblur.synthesis.sampler import ClipSampler

    estimate = deconvolve if data.classic else None
    if data.source == "folder":
        if data.folder is None:
            raise InputError(None, "data.source folder needs data.folder")
        dataset = ClipFolderDataset(data.folder, frames=data.frames, samples=data.samples,
                                    crop=data.cache_crop, paired=True, first_estimate=estimate)
        if len(dataset) < batch:
            raise InputError(data.folder, f"{len(dataset)} samples (windows of data.frames "
                                          f"{data.frames} in its clips) are fewer than one "
                                          f"batch (train.batch {batch})")
        sizes: dict[tuple[int, int], Path] = {}
        for clip in dataset.clips:
            sizes.setdefault(clip.footage.size, clip.path)
        if len(sizes) > 1 and not data.cache_crop:  # said now, not once all is drawn
            (a, first), (b, second) = list(sizes.items())[:2]
            raise InputError(data.folder, f"clips of different sizes ({first.name} "
                                          f"{a[0]}x{a[1]}, {second.name} {b[0]}x{b[1]}): set "
                                          "data.cache_crop to store a window of each")
        if not data.cache_crop:  # else the samples are cache_crop square, checked already
            for width, height in sizes:
                check_crop(data.crop, width, height, data.folder)
    elif data.source == "synthetic":
        sampler = ClipSampler(ImageBank(None if data.images is None else Path(data.images)),
                              sampler_settings(data), data.seed, gyro_traces(data))
        dataset = SyntheticDataset(sampler, data.count, crop=data.cache_crop,
                                   flow_kernel=data.flow_kernel, first_estimate=estimate)
    else:
        raise InputError(None, f"data.source {data.source!r}: synthetic or folder")
    # Drawn in parts, each kept on disk once complete: a killed draw resumes after the last.
    recipe = cache_recipe(data)
    parts = _kept_parts(parts_folder, recipe)
    first = sum(len(part["blurred"]) for part in parts)
    if progress:
        progress(first, len(dataset))
    loader = torch.utils.data.DataLoader(_ErrorsAsValues(dataset, first), batch_size=None,
                                         num_workers=min(2, os.cpu_count() or 1),
                                         worker_init_fn=_leave_sigterm_to_the_parent)
    stacks: dict[str, list[torch.Tensor]] = {}
    for i, sample in enumerate(loader, start=first):
        if "input_error" in sample:
            raise InputError(*sample["input_error"])
        for key in KEYS:
            if key in sample:
                stacks.setdefault(key, []).append(sample[key].to(torch.float16))
        if len(stacks["blurred"]) == CACHE_PART or i + 1 == len(dataset):
            parts.append({k: torch.stack(v) for k, v in stacks.items()})
            stacks = {}
            _save_safetensors(parts[-1], parts_folder / f"{i + 1:09d}.safetensors",
                              {"recipe": recipe})
        if progress:
            progress(i + 1, len(dataset))
    if not parts:
        raise InputError(data.folder, f"no training samples (clips of at least {data.frames} "
                                      "frames with sharp references)")
    tensors = {k: torch.cat([part.pop(k) for part in parts]) for k in list(parts[0])}
    _save_safetensors(tensors, path, {"recipe": recipe})
    shutil.rmtree(parts_folder, ignore_errors=True)  # a run arriving now finds the cache
    return tensors


def _save_safetensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]
                      ) -> None:
    """``save_file``, atomically; a write that fails (a full disk) is the :class:`OSError` it
    is, which safetensors reports as its own error."""
    with atomic_path(path) as tmp:
        try:
            save_file(tensors, str(tmp), metadata=metadata)
        except SafetensorError as e:
            code = re.search(r"\(os error (\d+)\)", str(e))
            if code is None:
                raise
            raise OSError(int(code[1]), os.strerror(int(code[1])), str(path)) from None


def cache_parts(cache: Path) -> Path:
    """The folder where the parts of ``cache`` are kept while it is drawn."""
    return cache.with_name(cache.name + ".parts")


def _kept_parts(folder: Path, recipe: str) -> list[dict[str, torch.Tensor]]:
    """The parts of an interrupted draw of a cache of ``recipe`` kept in ``folder``, in order;
    parts of another recipe, or unreadable, are removed: drawn again."""
    parts = []
    for path in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(path, "pt") as f:
                if (f.metadata() or {}).get("recipe") == recipe:
                    parts.append(load_file(path))
                    continue
        except (OSError, SafetensorError):
            pass
        # Emptied, not removed: held (build_cache), else another run could draw beside this.
        for stale in folder.glob("*.safetensors"):
            stale.unlink(missing_ok=True)
        return []
    return parts


def _leave_sigterm_to_the_parent(worker: int) -> None:
    """A SIGTERM to the process group (``timeout``, a batch scheduler) ends the parent, which
    stops its workers; a worker killed by it first would make the parent's clean-up print
    the DataLoader's tracebacks. (Workers already ignore SIGINT for the same reason.) After
    it the worker's own complaints (a queue the parent closed) are not shown, and a second
    SIGTERM, the parent's clean-up ending a worker that did not stop, ends it."""

    def second(number: int, frame) -> None:
        os._exit(0)

    def first(number: int, frame) -> None:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        signal.signal(signal.SIGTERM, second)

    signal.signal(signal.SIGTERM, first)


class _ErrorsAsValues(torch.utils.data.Dataset):
    """``dataset`` with its :class:`InputError` returned as a value: raised in a DataLoader
    worker, it would reach the caller as a RuntimeError with the worker's traceback."""

    def __init__(self, dataset: torch.utils.data.Dataset, first: int = 0) -> None:
        self.dataset, self.first = dataset, first  # samples before ``first`` left out

    def __len__(self) -> int:
        return len(self.dataset) - self.first

    def __getitem__(self, index: int) -> dict:
        try:
            return self.dataset[self.first + index]
        except InputError as e:
            return {"input_error": (e.source, e.problem)}


def batch_indices(count: int, batch: int, step: int, seed: int) -> np.ndarray:
    """The sample indices of global batch ``step``: epochs are seeded permutations."""
    per_epoch = count // batch
    epoch, position = divmod(step, per_epoch)
    order = np.random.default_rng([seed, epoch]).permutation(count)
    return order[position * batch:(position + 1) * batch]


def check_crop(crop: int | None, width: int, height: int, source: str | Path | None = None
               ) -> None:
    """Refuse a ``data.crop`` that fits one side of ``width x height`` samples but not the
    other (one as large as both sides takes the whole sample)."""
    if crop is not None and min(width, height) < crop < max(width, height):
        raise InputError(source, f"data.crop {crop} is larger than the samples "
                                 f"({width}x{height})")


def random_crops(batch: dict[str, torch.Tensor], size: int | None,
                 rng: np.random.Generator) -> dict[str, torch.Tensor]:
    """One random ``size x size`` window per sample, the same for its frames and kernels
    (kernels are displacements in pixels: they stay valid in a window).

    Example:
        >>> b = {"blurred": torch.rand(2, 3, 8, 8), "rot": torch.rand(2, 5, 2, 8, 8)}
        >>> {k: tuple(v.shape) for k, v in random_crops(b, 4, np.random.default_rng(0)).items()}
        {'blurred': (2, 3, 4, 4), 'rot': (2, 5, 2, 4, 4)}
    """
    height, width = batch["blurred"].shape[-2:]
    n = len(batch["blurred"])
    check_crop(size, width, height)
    if size is None or (size >= height and size >= width):
        return batch
    ys, xs = rng.integers(0, height - size + 1, n), rng.integers(0, width - size + 1, n)
    return {k: torch.stack([v[i, ..., y:y + size, x:x + size] for i, (y, x) in
                            enumerate(zip(ys, xs, strict=True))]) for k, v in batch.items()}


def cosine_lr(settings: TrainSettings, step: int) -> float:
    """Cosine decay from ``lr`` at step 0 to ``lr_min`` at the last step."""
    progress = min(step / max(settings.steps - 1, 1), 1.0)
    span = settings.lr - settings.lr_min
    return settings.lr_min + 0.5 * span * (1 + math.cos(math.pi * progress))


#: What a run writes into its folder first: a folder holding one of them (or its data
#: cache, drawn there) is a run's.
RUN_FILES = ("config.yaml", "checkpoint.pt", "data.safetensors", "data.safetensors.parts")


@dataclass
class Run:
    """A training run's folder: config, checkpoint, weights, metrics, TensorBoard logs."""

    out: Path

    @property
    def checkpoint(self) -> Path:
        return self.out / "checkpoint.pt"

    @property
    def weights(self) -> Path:
        return self.out / "model.safetensors"

    @property
    def metrics(self) -> Path:
        return self.out / "metrics.json"


def _distributed() -> tuple[int, int]:
    """``(rank, world_size)``, initialising the process group under ``torchrun``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        if torch.cuda.is_available():  # NCCL's collectives run on the current device
            local, gpus = int(os.environ.get("LOCAL_WORLD_SIZE", world)), torch.cuda.device_count()
            if local > gpus:  # every process finds it, none waits for the others
                if os.environ.get("RANK", "0") != "0":  # rank 0 reports it, once
                    raise SystemExit(2)
                raise InputError(None, f"torchrun started {local} processes on this machine, "
                                       f"which has {gpus} CUDA GPU{'s' * (gpus > 1)}: one "
                                       f"process per GPU (--nproc_per_node {gpus}), or "
                                       "CUDA_VISIBLE_DEVICES= to train on the CPU")
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        # Rank 0 may draw the data cache for hours while the others wait at a barrier.
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo",
                                timeout=datetime.timedelta(hours=12))
    return (dist.get_rank() if world > 1 else 0), world


def train(config: TrainConfig, out: str | Path,
          progress: Callable[[int, int, float], None] | None = None,
          stop_after: int | None = None,
          cache_progress: Callable[[int, int], None] | None = None,
          note: Callable[[str], None] | None = None) -> dict:
    """Train (or resume) a run in ``out``; returns the metrics written to ``metrics.json``
    (a finished run's as they were: it is left as it was run).

    Args:
        config: the run's configuration.
        out: run folder; a checkpoint there is resumed.
        progress: called on rank 0 as ``progress(step, steps, loss)``.
        stop_after: stop (with a checkpoint) after this many steps of this call, as a kill
            would; for tests and time-boxed sessions.
        cache_progress: called on rank 0 as ``cache_progress(done, count)`` while the data
            cache is drawn.
        note: told on rank 0 where a run resumes (and the ``train`` settings changed since
            its checkpoint), or that it is finished.
    """
    if not isinstance(config.data, DataConfig) or not isinstance(config.train, TrainSettings):
        raise TypeError("config.data and config.train must be a DataConfig and a "
                        "TrainSettings (load_config reads them from a YAML file)")
    # A config built in Python has not been through load_config.
    check_config(config, resuming=Run(Path(out)).checkpoint.exists())
    with contextlib.ExitStack() as held:
        return _train(config, Run(Path(out)), held, progress, stop_after, cache_progress, note)


def _train(config: TrainConfig, run: Run, held: contextlib.ExitStack,
           progress: Callable[[int, int, float], None] | None, stop_after: int | None,
           cache_progress: Callable[[int, int], None] | None,
           note: Callable[[str], None] | None) -> dict:
    """:func:`train`, its run folder held (by rank 0, which alone writes there) in ``held``."""
    rank, world = _distributed()
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
                          if torch.cuda.is_available() else "cpu")
    t = config.train
    if t.batch % world:
        if rank != 0:  # rank 0 reports it, once
            dist.destroy_process_group()
            raise SystemExit(2)
        raise InputError(None, f"train.batch {t.batch} does not split over {world} processes")
    saved = run.out / "config.yaml"
    cache_path = Path(config.data.cache) if config.data.cache else run.out / "data.safetensors"
    data, recorded_metrics, checkpoint_state = None, None, None
    try:
        failure = None
        if rank == 0:  # checks the run and draws the data alone; the others wait for it
            try:
                checkpoint_state = _check_run_folder(config, run, cache_path, held)
                saved_step = None if checkpoint_state is None else checkpoint_state.get("step")
                # A finished run is not trained: its data are not drawn again (a cache
                # deleted to free the disk), unless its metrics are to be written again.
                recorded_metrics = read_record(run.metrics) if saved_step == t.steps else None
                data = None if recorded_metrics is not None else \
                    build_cache(config.data, cache_path, cache_progress, note, t.batch)
            except KeyboardInterrupt as e:
                parts = cache_parts(cache_path)
                kept = parts.is_dir() and any(parts.iterdir())
                failure = e if str(e) or cache_path.exists() else type(e)(
                    "the data cache was not finished; the next run draws " + (
                        f"the rest of it (its parts of {CACHE_PART} samples are kept)" if kept
                        else "it from the start (no part of it was finished)"))
            except BaseException as e:
                failure = e
        finished = rank == 0 and failure is None and data is None
        if world > 1:
            flags = [failure is not None, finished]
            dist.broadcast_object_list(flags, src=0)
            if flags[0] and rank != 0:
                dist.destroy_process_group()
                raise SystemExit(2)  # rank 0 reports the problem
            finished = flags[1]
        if failure is not None:
            if world > 1:  # left to exit, gloo's threads could abort the process
                dist.destroy_process_group()
            raise failure
        count = None
        if not finished:
            if rank != 0:
                data = load_file(cache_path)
            count, (height, width) = len(data["blurred"]), data["blurred"].shape[-2:]
            if count < t.batch:
                raise InputError(cache_path, f"{count} samples are fewer than one batch "
                                             f"({t.batch})")
            check_crop(config.data.crop, width, height, cache_path)
        model = _seeded_model(config.model, t.seed).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
        step, history, seconds_before = 0, [], 0.0
        if run.checkpoint.exists():
            # Rank 0 read it above; loading copies its tensors to the model's device.
            state = checkpoint_state if checkpoint_state is not None else \
                _load_checkpoint(run.checkpoint, device)
            step, history, seconds_before = _resume(run, model, optimizer, state, t)
            if rank == 0 and note is not None and 0 < step < t.steps:
                note(_resume_note(run, state, config))
        elif t.init is not None:  # fine-tuning: checked as the config's model by check_config
            model.load_state_dict(load_file(weights_file(t.init), device=str(device)))
    except BaseException as e:
        if isinstance(e, KeyboardInterrupt) and not str(e) and cache_path.exists():
            raise type(e)(f"stopped before training; the data cache {cache_path} is kept "
                          "for the next run") from None
        raise
    started, first = time.perf_counter(), step
    checkpointed = step if run.checkpoint.exists() else None  # the step its checkpoint holds
    diverged = None

    def metrics_now() -> dict:
        seconds = time.perf_counter() - started
        return {"name": config.name, "steps": step, "finished": step >= t.steps,
                "diverged": diverged,
                "loss_first": history[0] if history else None,
                "loss_last_100": float(np.mean(history[-100:])) if history else None,
                "seconds_this_call": round(seconds, 1),
                "seconds_total": round(seconds_before + seconds, 1), "processes": world,
                "device": device.type, "samples": count,
                "parameters": sum(p.numel() for p in model.parameters())}

    if step == t.steps and run.checkpoint.exists():  # finished: left as it was run
        metrics = _finished_run_metrics(run, step, recorded_metrics, metrics_now, note) \
            if rank == 0 else None
        if world > 1:
            dist.barrier()
            dist.destroy_process_group()
        return metrics if metrics is not None else metrics_now()
    if rank == 0:
        with atomic_path(saved) as tmp:
            tmp.write_text(_config_text(config))
    if world > 1:
        # The depthwise convolutions' weight grads differ from DDP's buckets only in the
        # stride of a size-1 dimension, which is the same layout: PyTorch warns all the same.
        warnings.filterwarnings("ignore", "Grad strides do not match bucket view strides")
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    writer = None
    if rank == 0:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(run.out / "tensorboard"), purge_step=step + 1)
    amp = t.amp and device.type == "cuda"
    share = t.batch // world

    with _stop_signals() as interrupted:  # Ctrl-C or SIGTERM: stop after the step in progress
        def signalled() -> bool:
            """Whether a signal came, to this process or (agreed on by all) to any: processes
            that stopped at different steps would wait for each other forever."""
            if world == 1:
                return bool(interrupted)
            number = torch.tensor([interrupted[0] if interrupted else 0], device=device)
            dist.all_reduce(number, dist.ReduceOp.MAX)
            # The agreed value decides: a signal caught after the tensor was made counts at
            # the next step, on every process alike.
            agreed = int(number.item())
            if agreed and not interrupted:
                interrupted.append(agreed)
            return bool(agreed)

        while (step < t.steps and (stop_after is None or step - first < stop_after)
               and not signalled()):
            mine = slice(rank * share, (rank + 1) * share)
            batch = random_crops({k: v[batch_indices(count, t.batch, step, t.seed)]
                                  for k, v in data.items()},
                                 config.data.crop, np.random.default_rng([t.seed, step]))
            batch = {k: v[mine].to(device, torch.float32) for k, v in batch.items()}
            loss, diverged = _train_step(net, optimizer, batch, cosine_lr(t, step), amp, world)
            if diverged:
                diverged += f" at step {step + 1}"
                break
            step += 1
            history.append(loss)
            if rank == 0:
                if step % t.log_every == 0 or step == t.steps:
                    writer.add_scalar("loss/l1", float(loss), step)
                    writer.add_scalar("lr", cosine_lr(t, step - 1), step)
                if progress:
                    progress(step, t.steps, float(loss))
                if step % t.checkpoint_every == 0 or step == t.steps:
                    _save(run, model, optimizer, step, history, config,
                          seconds_before + time.perf_counter() - started, metrics_now())
                    checkpointed = step
    metrics = metrics_now()
    if rank == 0:
        if step != checkpointed:
            _save(run, model, optimizer, step, history, config, metrics["seconds_total"],
                  metrics)
        else:  # saved at this step already: the metrics of the call's end
            _write_metrics(run, metrics)
        writer.close()
    if world > 1:  # no process leaves while another still talks to it (gloo aborts then)
        dist.barrier()
        dist.destroy_process_group()
    if diverged:
        raise InputError(None, f"training diverged: {diverged}; lower train.lr and start "
                               f"again in another --output or after deleting {run.checkpoint} "
                               f"(saved at step {step}, before the failure, with weights "
                               "already thrown far by that learning rate)")
    if interrupted:
        stop = Terminated if interrupted[0] == signal.SIGTERM else KeyboardInterrupt
        raise stop(f"checkpointed at step {step}, the run resumes from there")
    return metrics


def _train_step(net: torch.nn.Module, optimizer: torch.optim.Optimizer,
                batch: dict[str, torch.Tensor], lr: float, amp: bool, world: int
                ) -> tuple[float, str | None]:
    """One step of ``optimizer`` at learning rate ``lr`` on ``batch`` (this process's share of
    it); returns the whole batch's loss and, where the step was not taken, why: a loss or
    gradient norm that is not finite."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    device = batch["sharp"].device
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        loss = torch.nn.functional.l1_loss(predict(net, batch).float(), batch["sharp"])
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    loss = loss.detach()
    if world > 1:  # report the global batch's loss (gloo has no AVG)
        dist.all_reduce(loss)
        loss = loss / world
    # Loss and gradients (DDP's averages) are the same on every process: all stop alike,
    # before a step that would make the weights NaN.
    norm = get_total_norm([p.grad for p in net.parameters() if p.grad is not None])
    if not (torch.isfinite(loss) and torch.isfinite(norm)):
        what, value = ("loss", loss) if not torch.isfinite(loss) else ("gradient norm", norm)
        return float(loss), f"the {what} is {float(value):.3g}"
    optimizer.step()
    return float(loss), None


def _check_run_folder(config: TrainConfig, run: Run, cache_path: Path,
                      held: contextlib.ExitStack) -> dict | None:
    """Hold ``run.out`` in ``held`` and check that ``config`` may run there: a new or empty
    folder, or a run of the same model and data not past ``train.steps``. Returns the run's
    checkpoint (None without one)."""
    held.enter_context(hold_folder(run.out))
    saved = run.out / "config.yaml"
    run_files = (saved, run.checkpoint, run.weights, run.metrics, run.out / "tensorboard")
    if any(cache_path.resolve() == path.resolve() for path in run_files):
        raise InputError(None, f"data.cache {cache_path} is a file of the run itself: give the "
                               "cache a path of its own")
    ours = [run.out / name for name in RUN_FILES]
    if cache_path.resolve().is_relative_to(run.out.resolve()):
        ours += [cache_path, cache_parts(cache_path)]  # a draw stopped early
    if holds_anything(run.out) and not any(path.exists() for path in ours):
        raise InputError(run.out, "not empty and not a training run's folder (no config.yaml "
                                  "nor checkpoint.pt): give a new or empty --output")
    if saved.exists() and not run.checkpoint.exists() and not written_by_a_run(saved):
        raise InputError(saved, "a config.yaml of no run here (no checkpoint.pt), which this "
                                "run would replace: use another --output")
    # The run here: none before it saved anything (config.yaml is this run's then); where
    # config.yaml is lost, emptied or spoilt, its checkpoint's copy.
    trained = any(p.exists() for p in (run.checkpoint, run.weights, run.metrics))
    from_yaml = saved.exists() and _run_config(saved) is not None
    recorded = None if not trained else _saved_config(saved) if from_yaml else \
        _checkpoint_config(run.checkpoint) if run.checkpoint.exists() else None
    changed = [] if recorded is None else _changed_settings(recorded, config)
    if changed:
        verb = "differs" if len(changed) == 1 else "differ"
        resume = f"`gyrodeblur train {saved} -o {run.out}`" if from_yaml \
            else "the config its checkpoint records"
        raise InputError(run.out, "this run folder holds a run of another model or data "
                                  f"({', '.join(changed)} {verb}); resume it with {resume} or "
                                  "use another --output")
    state = _load_checkpoint(run.checkpoint) if run.checkpoint.exists() else None
    saved_step = None if state is None else state.get("step")
    if isinstance(saved_step, int) and saved_step > config.train.steps:
        raise InputError(run.out, f"the run is at step {saved_step}, past train.steps "
                                  f"{config.train.steps}; raise it to continue the run")
    return state


def _resume(run: Run, model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict,
            settings: TrainSettings) -> tuple[int, list[float], float]:
    """Load checkpoint ``state`` into ``model`` and ``optimizer``; returns its step, loss
    history and seconds trained."""
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, history = state["step"], state["history"]
    except Exception as e:  # one of another model, or of no gyrodeblur run
        reason = str(e).strip().splitlines()[0] if str(e).strip() else \
            f"no {e}" if isinstance(e, KeyError) else type(e).__name__
        if reason.startswith("Error(s) in loading state_dict"):
            reason = "its weights are of another model than the config's"
        raise _not_resumable(run.checkpoint, reason) from None
    for group in optimizer.param_groups:  # the train section may have changed it
        group["weight_decay"] = settings.weight_decay
    return step, history, state.get("seconds", 0.0)


def _resume_note(run: Run, state: dict, config: TrainConfig) -> str:
    """Where a run resumes, with the ``train`` settings changed since its checkpoint."""
    # As config.yaml spells them (init's path absolute); init, the weights a run starts
    # from, has no effect on one resumed.
    before = (state.get("config") or {}).get("train") or {}
    now = yaml.safe_load(_config_text(config))["train"]
    edits = [f"train.{k}" for k, v in now.items()
             if k in before and k != "init" and _number(before[k]) != _number(v)]
    return f"resuming {run.out} at step {state['step']} of {config.train.steps}" + (
        f" ({', '.join(edits)} changed since its checkpoint: they apply from here)"
        if edits else "")


def _finished_run_metrics(run: Run, step: int, recorded: dict | None,
                          metrics_now: Callable[[], dict],
                          note: Callable[[str], None] | None) -> dict:
    """The metrics of a run finished at ``step``, left as it was run: its ``metrics.json``,
    written again where lost or where it did not record the run as finished."""
    metrics = recorded
    if metrics is None:  # its metrics.json lost: written again
        metrics = metrics_now()
        _write_metrics(run, metrics)
    elif metrics.get("finished") is not True:
        # Stopped early (--stop-after), then train.steps lowered to the step it stopped at.
        metrics["finished"] = True
        _write_metrics(run, metrics)
    if note is not None:
        note(f"the run in {run.out} is finished (step {step} of {step}); raise train.steps to "
             "train it on")
    return metrics


@contextlib.contextmanager
def _stop_signals() -> Iterator[list[int]]:
    """Collect SIGINT and SIGTERM into the list yielded instead of stopping at once, so that
    a run stops after the step in progress, with a checkpoint."""
    interrupted: list[int] = []
    handlers = {}
    if threading.current_thread() is threading.main_thread():
        # A signal ignored when the run began (SIGINT of a job a script put in the
        # background) stays ignored, as it is while the data are drawn.
        handlers = {number: signal.signal(number, lambda n, frame: interrupted.append(n))
                    for number in (signal.SIGINT, signal.SIGTERM)
                    if signal.getsignal(number) is not signal.SIG_IGN}
    try:
        yield interrupted
    finally:
        for number, handler in handlers.items():
            signal.signal(number, handler)


def _config_text(config: TrainConfig) -> str:
    """The ``config.yaml`` a run folder gets: the config as run, every setting spelt out,
    its files as absolute paths (the run resumes from any folder)."""
    data = {k: str(Path(v).resolve()) if k in ("cache", "images", "folder") and v is not None
            else v for k, v in asdict(config.data).items()}
    if data["gyro"] is not None:
        data["gyro"] = _canonical({"gyro": data["gyro"]})["gyro"]
    train = asdict(config.train)
    if train["init"] is not None and train["init"] not in shipped_weights():
        train["init"] = str(Path(train["init"]).resolve())
    return yaml.safe_dump({"name": config.name, "model": config.model, "data": data,
                           "train": train}, sort_keys=False)


def written_by_a_run(path: Path) -> bool:
    """Whether ``path`` is a ``config.yaml`` that a run wrote (every setting spelt out, in
    order), not one written by hand."""
    try:
        saved = _saved_config(path)
    except InputError:  # not YAML
        return False
    return list(saved) == ["name", "model", "data", "train"] and \
        isinstance(saved["data"], dict) and isinstance(saved["train"], dict) and \
        list(saved["data"]) == [f.name for f in fields(DataConfig)] and \
        list(saved["train"]) == [f.name for f in fields(TrainSettings)]


def _load_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict:
    try:
        # torch.load checks no checksum: a damaged byte would resume on altered state.
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except Exception:  # no zip archive: torch.load tells
        damaged = None
    if damaged is not None:
        raise _not_resumable(path, f"damaged: its part {damaged} fails its checksum")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception:  # its text is the unpickler's, such as a byte offset
        raise _not_resumable(path, "not a checkpoint that torch.load reads: damaged or cut "
                                   "short") from None
    if not isinstance(state, dict):
        raise _not_resumable(path, "not a gyrodeblur checkpoint")
    return state


def _not_resumable(path: Path, reason: str) -> InputError:
    return InputError(path, f"cannot resume from it ({reason}); delete it to start the run "
                            "again, or use another --output")


def _checkpoint_config(path: Path) -> dict:
    """The config a checkpoint records, for a run folder that lost its ``config.yaml``."""
    recorded = _load_checkpoint(path).get("config")
    if not isinstance(recorded, dict):
        raise InputError(path.parent, f"{path.name} without the run's config.yaml (and of a "
                         "release that kept no config in it): which model and data it trained "
                         "on is unknown; put the config.yaml back, or use another --output")
    return recorded


def _saved_config(path: Path) -> dict:
    """A run folder's ``config.yaml`` as a mapping (empty where it holds none)."""
    try:
        saved = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise InputError(path, f"cannot read it ({' '.join(str(e).split())[:200]}): no run "
                               "of this config; use another --output") from None
    return saved if isinstance(saved, dict) else {}


def _run_config(path: Path) -> dict | None:
    """A run folder's ``config.yaml`` where it is one (a mapping with a model, written by
    this release or an earlier one), else None (unreadable, emptied, spoilt)."""
    try:
        saved = _saved_config(path)
    except InputError:
        return None
    return saved if isinstance(saved.get("model"), dict) else None


def _changed_settings(saved: dict, config: TrainConfig) -> list[str]:
    """The settings of ``config`` that make other data or another model than the run saved
    in ``saved`` (its ``config.yaml``), compared as values: a model's defaults spelt out or
    not, ``1e-2`` or ``0.01``, a folder relative or absolute alike; where the cache lies does
    not count, nor the synthesis keys that a folder source ignores; keys the saved run
    predates count at their defaults."""
    try:
        same_model = full_config(saved.get("model") or {}) == full_config(config.model)
    except InputError:  # a saved model config of no model
        same_model = False
    now = asdict(config.data)
    before = asdict(DataConfig()) | (saved.get("data") or {})
    keys = (*_FOLDER_KEYS, "crop") if config.data.source == "folder" else now.keys() - {"cache"}
    before, now = (_canonical({k: d.get(k) for k in keys}) for d in (before, now))
    return sorted((["model"] if not same_model else [])
                  + [f"data.{k}" for k in keys if before[k] != now[k]])


def _write_metrics(run: Run, metrics: dict) -> None:
    with atomic_path(run.metrics) as tmp:
        tmp.write_text(json.dumps(metrics, indent=2))


def _save(run: Run, model: torch.nn.Module, optimizer: torch.optim.Optimizer, step: int,
          history: list[float], config: TrainConfig, seconds: float, metrics: dict) -> None:
    """The weights, the metrics, then the checkpoint: a run killed before the checkpoint
    is in place resumes from the one before and writes all three again, so that a finished
    run's weights and metrics are never an earlier step's."""
    _save_safetensors({k: v.contiguous() for k, v in model.state_dict().items()}, run.weights,
                      {"model": json.dumps(config.model), "steps": str(step),
                       "name": config.name})
    _write_metrics(run, metrics)
    # Serialised in memory and written by Python: torch reports a failed write (a full
    # disk) as "unexpected pos 704 vs 598".
    checkpoint = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "step": step, "history": history, "seconds": seconds,
                "config": yaml.safe_load(_config_text(config))}, checkpoint)
    with atomic_path(run.checkpoint) as tmp:
        tmp.write_bytes(checkpoint.getbuffer())
