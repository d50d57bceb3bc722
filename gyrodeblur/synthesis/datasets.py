"""PyTorch datasets: synthetic samples made on the fly, and clip folders on disk.

Both give samples of one form (keys, shapes, kernels computed alike), so a network trains on
real and synthetic data alike; a loader that mixes the two in one batch keeps their common
keys (``rot_true`` and ``tran_true`` are synthetic samples' alone, ``sharp`` paired clips').
Samples pickle for DataLoader workers (fork or spawn) and are a function of their index. A
sample is a dict of tensors; for clips of ``F`` frames:

- ``blurred``, ``sharp``: ``(F, 3, H, W)`` float32 sRGB (``sharp`` absent for real footage
  without references);
- ``rot``, ``tran``: ``(F, T, 2, H, W)`` the kernels a deblurring network sees: rotation from
  the *recorded* gyro and camera (sensor errors included), translation from optical flow on
  the blurred frames (zero for single images), exactly as ``gyrodeblur kernels`` computes
  them on real footage;
- ``mask``: ``(F, H, W)`` where translation was measured;
- ``rot_true``, ``tran_true``: the kernels that made the blur (samples synthesised on the
  fly only; an exported clip keeps them in its ``kernels.npz``);
- ``flow`` (on request, clips only): the kernel optical flow alone gives, without the gyro
  (``tran`` computed with a still gyro: the whole measured motion, rotation included), for
  the flow-guidance ablation;
- ``estimate`` (on request): each blurred frame restored by a given method from its whole
  observed kernel ``rot + tran``, before any crop (as whole frames are restored), for nets
  that refine a first estimate.

With ``frames == 1`` (images) the ``F`` axis is dropped.
"""

from __future__ import annotations

import inspect
import operator
from collections.abc import Callable
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from gyrodeblur.errors import InputError, is_whole
from gyrodeblur.footage import Footage, FrameTiming, hidden_under, read_frames_csv
from gyrodeblur.geometry.camera import Camera, load_camera
from gyrodeblur.geometry.gyro import GyroLog, check_covers, read_gyro
from gyrodeblur.kernels.clip import iter_frame_kernels
from gyrodeblur.kernels.flow import FlowBackend, flow_backend
from gyrodeblur.kernels.rotation import (
    camera_orientation,
    complete_camera,
    exposure_span,
    still_where_no_ray,
)
from gyrodeblur.synthesis.sampler import ClipSampler


def observed_kernels(frames: np.ndarray, log: GyroLog, camera: Camera, timing: FrameTiming,
                     samples: int, flow: str | FlowBackend = "dis") -> dict[str, np.ndarray]:
    """Kernels of in-memory frames ``(F, H, W, 3)`` from a gyro log as read: turned into
    camera axes by the camera's ``imu_to_camera`` (or the log's), as ``kernels`` turns it.

    Translation is measured only when there are at least two frames. A pixel without a ray
    through the lens gets no blur (:func:`still_where_no_ray`), as ``deblur`` restores it.
    """
    camera = complete_camera(camera, log)
    first, last = exposure_span(camera, timing.t_start, timing.exposure)
    check_covers(log, float(first.min()), float(last.max()),
                 "check the clip's camera time_offset and the frames CSV")
    # The frames' span only: a device's whole log would take seconds a window.
    orientation = camera_orientation(log, camera, (float(first.min()), float(last.max())))
    translation = len(frames) > 1
    ks = list(iter_frame_kernels(orientation, camera, timing, timing.frame, samples,
                                 zip(timing.frame, frames, strict=True), translation, flow))
    rot = still_where_no_ray(np.stack([k.rot for k in ks]))
    tran = still_where_no_ray(np.stack([k.tran for k in ks])) if translation else \
        np.zeros_like(rot)
    return {"rot": rot, "tran": tran, "mask": np.stack([k.mask for k in ks])}


Restore = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""A restoration method: ``(H, W, 3)`` blurred frame and ``(T, 2, H, W)`` kernel -> frame."""


_IDENTITY = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))


def _callable_as_restore(restore: Restore | None) -> Restore | None:
    """``restore``, refused now rather than in a worker when it cannot be called as
    ``(blurred, traj)``."""
    if restore is not None:
        try:
            inspect.signature(restore).bind(None, None)
        except ValueError:  # no signature to check (a builtin)
            pass
        except TypeError as e:
            raise TypeError(f"first_estimate must be called as (blurred, traj) -> image, as "
                            f"models.classic.deconvolve is ({e}); a make_restorer Restorer "
                            "takes lists of frames and kernels") from None
    return restore


def _with_estimate(arrays: dict[str, np.ndarray], restore: Restore | None
                   ) -> dict[str, np.ndarray]:
    if restore is None:
        return arrays
    kernels = arrays["rot"] + arrays["tran"]
    estimate = np.stack([restore(frame, kernel) for frame, kernel in
                         zip(arrays["blurred"], kernels, strict=True)]).astype(np.float32)
    return {**arrays, "estimate": estimate}


def _to_sample(arrays: dict[str, np.ndarray], single: bool) -> dict[str, torch.Tensor]:
    out = {}
    for name, value in arrays.items():
        if name in ("blurred", "sharp", "estimate"):
            value = np.moveaxis(value, -1, 1)  # (F, H, W, 3) -> (F, 3, H, W)
        tensor = torch.from_numpy(np.ascontiguousarray(value))
        out[name] = tensor[0] if single else tensor
    return out


class _EpochCrops(Dataset):
    """Crop windows that are a function of the sample's index and the epoch."""

    epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Fresh crop windows for ``epoch`` (0 at first), as a training loop calls
        ``DistributedSampler.set_epoch``; the samples themselves stay as they are."""
        if not is_whole(epoch):
            raise ValueError(f"epoch {epoch!r}: a whole number, 0 or more")
        self.epoch = int(epoch)


def _crop_rng(seed: list[int], epoch: int) -> np.random.Generator:
    # Epoch 0's windows are those training caches have always drawn.
    return np.random.default_rng([*seed, 1, *([epoch] if epoch else [])])


class SyntheticDataset(_EpochCrops):
    """Samples drawn by a :class:`ClipSampler`; sample ``i`` is a function of ``(seed, i)``.

    Args:
        sampler: draws the clips (its settings: size, frames, ``T``, sensor errors...).
        length: number of samples.
        flow: optical flow backend of the observed translation (a name in ``FLOW_BACKENDS``
            or a function ``(prev, next) -> flow``).
        crop: a random ``crop x crop`` window of every frame and kernel (seeded by the
            index and the epoch, :meth:`set_epoch`), or None for whole frames.
        flow_kernel: also give ``flow``, the kernel of optical flow alone (clips only).
        first_estimate: a restoration ``(blurred, traj) -> image`` of whole frames, given as
            ``estimate`` (nets that refine the classical method's).

    Example:
        >>> from gyrodeblur.synthesis.images import ImageBank
        >>> from gyrodeblur.synthesis.sampler import SamplerSettings
        >>> ds = SyntheticDataset(ClipSampler(ImageBank(dead_leaves=1, dead_leaves_size=64),
        ...                                   SamplerSettings(width=32, height=24)), length=4)
        >>> sample = ds[1]
        >>> sample["blurred"].shape, sample["rot"].shape
        (torch.Size([3, 24, 32]), torch.Size([9, 2, 24, 32]))
    """

    def __init__(self, sampler: ClipSampler, length: int, flow: str | FlowBackend = "dis",
                 crop: int | None = None, flow_kernel: bool = False,
                 first_estimate: Restore | None = None) -> None:
        flow_backend(flow)  # refused now, not in a worker
        _check_crop(crop)
        if not is_whole(length):
            raise ValueError(f"length {length!r}: a whole number of samples, 0 or more")
        size = sampler.settings.width, sampler.settings.height
        if crop and crop > min(size):
            raise ValueError(f"crop {crop} is larger than the frames ({size[0]}x{size[1]})")
        self.sampler, self.length, self.flow = sampler, length, flow
        self.crop, self.flow_kernel = crop, flow_kernel
        self.first_estimate = _callable_as_restore(first_estimate)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        index = _sample_index(index, self.length)
        clip = self.sampler.sample(index)
        T = clip.rot.shape[1]
        # The recorded log is in camera axes already: not turned again.
        camera = clip.recorded_camera.replace(imu_to_camera=_IDENTITY)
        seen = observed_kernels(clip.blurred, clip.recorded_log, camera, clip.timing, T,
                                self.flow)
        arrays = {"blurred": clip.blurred, "sharp": clip.sharp, **seen,
                  "rot_true": clip.rot, "tran_true": clip.tran}
        if self.flow_kernel and len(clip.blurred) > 1:
            still = GyroLog(clip.recorded_log.t, np.zeros_like(clip.recorded_log.w))
            arrays["flow"] = observed_kernels(clip.blurred, still, camera, clip.timing, T,
                                              self.flow)["tran"]
        arrays = _with_estimate(arrays, self.first_estimate)
        if self.crop:
            arrays = _crop(arrays, self.crop, _crop_rng([self.sampler.seed, index], self.epoch))
        return _to_sample(arrays, single=len(clip.blurred) == 1)


def _check_crop(crop: object) -> None:
    if crop is not None and not is_whole(crop, at_least=1):
        raise ValueError(f"crop {crop!r}: a whole number of pixels, at least 1, or None")


def _sample_index(index: int, count: int) -> int:
    """``index`` as an int (a tensor's too), refused beyond ``[0, count)``: no negative twin
    of a sample, whose crop would be seeded apart."""
    index = operator.index(index)
    if not 0 <= index < count:
        raise IndexError(f"sample {index} of {count}" + f" (0 to {count - 1})" * (count > 0))
    return index


def _crop(arrays: dict[str, np.ndarray], size: int,
          rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The same random ``size x size`` window of every frame, image and kernel.

    Kernels stay valid in a crop: they are displacements in pixels.
    """
    height, width = arrays["blurred"].shape[1:3]
    if size > min(height, width):
        raise ValueError(f"crop {size} is larger than the frames ({width}x{height})")
    y0, x0 = rng.integers(0, height - size + 1), rng.integers(0, width - size + 1)
    window = (slice(y0, y0 + size), slice(x0, x0 + size))
    return {name: (value[:, window[0], window[1]] if name in ("blurred", "sharp", "estimate")
                   else value[..., window[0], window[1]]) for name, value in arrays.items()}


class ClipFolder:
    """One clip in the footage folder layout (see :mod:`gyrodeblur.synthesis.clips`)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        for name in ("blurred", "gyro.csv", "frames.csv", "camera.json"):
            if not (self.path / name).exists():
                raise InputError(self.path, f"not a clip folder: {name} is missing")
        self.timing = read_frames_csv(self.path / "frames.csv")
        self.footage = Footage(self.path / "blurred")
        if self.footage.count < self.timing.frame[-1]:
            raise InputError(self.path / "frames.csv", f"times for frame "
                             f"{self.timing.frame[-1]} but blurred/ has {self.footage.count}")
        # The references, listed once: every window reads from them.
        self.sharp = Footage(self.path / "sharp") if (self.path / "sharp").is_dir() else None
        if self.sharp is not None:
            _check_partners(self.footage, self.sharp)

    @cached_property
    def log_and_camera(self) -> tuple[GyroLog, Camera]:
        camera = load_camera(self.path / "camera.json")
        try:
            camera = camera.rescaled(*self.footage.size)
        except InputError as e:
            raise InputError(self.path / "camera.json", f"does not fit blurred/: {e.problem}"
                             ) from None
        # No --gyro-unit reaches a folder's logs: they are rad/s.
        log = read_gyro(self.path / "gyro.csv", deg_advice="a clip folder's gyro.csv is read "
                                                           "in rad/s: convert it (times pi/180)")
        return log, camera

    def window(self, first: int, count: int, samples: int = 9) -> dict[str, np.ndarray]:
        """Frames ``first .. first + count - 1`` with their observed kernels; the translation
        of each is measured against its neighbours in the clip, as ``deblur video`` measures
        it, also beyond the window (a single frame gets its translation too)."""
        numbers = np.arange(first, first + count)
        # One frame of context on each side, where the clip has it.
        timing = self.timing.select(first - 1, first + count)
        context = timing.frame
        inner = slice(int(first - context[0]), int(first - context[0]) + count)
        frames = np.stack([image for _, image in self.footage.frames(context)])
        blurred = frames[inner]
        arrays = {"blurred": blurred}
        if self.sharp is not None:  # checked before the costly kernels
            arrays["sharp"] = np.stack([image for _, image in self.sharp.frames(numbers)])
            _check_pair(self.sharp, numbers, blurred, arrays["sharp"])
        log, camera = self.log_and_camera
        try:
            kernels = observed_kernels(frames, log, camera, timing, samples)
        except InputError as e:  # the gyro does not cover the frames...: name the clip
            raise e.located(self.path) from None
        return arrays | {name: value[inner] for name, value in kernels.items()}


def _check_partners(blurred: Footage, sharp: Footage) -> None:
    """Refuse ``sharp/`` frames that do not pair one to one with ``blurred/``'s. Pairs go by
    frame order; where the two folders name their files alike, a name without its partner is
    named (one file more or less would shift every pair after it)."""
    for footage in (blurred, sharp):  # 000002.png and 000002.jpg: which pairs is unknown
        seen: dict[str, Path] = {}
        for path in footage.files:
            if path.stem in seen:
                raise InputError(path, f"a second frame named {path.stem} (and "
                                       f"{seen[path.stem].name}): keep one")
            seen[path.stem] = path
    names = {p.stem for p in blurred.files}, {p.stem for p in sharp.files}
    if not names[0].isdisjoint(names[1]):
        for files, other, folder in ((sharp.files, names[0], "blurred"),
                                     (blurred.files, names[1], "sharp")):
            for path in files:
                if path.stem not in other:
                    raise InputError(path, f"no frame of that name in {folder}/")
    if sharp.count != blurred.count:
        raise InputError(sharp.path, f"{sharp.count} frames where blurred/ has "
                                     f"{blurred.count} (pairs go by frame order)")


def _check_pair(sharp: Footage, numbers: np.ndarray, blurred: np.ndarray,
                sharp_frames: np.ndarray) -> None:
    """Refuse sharp references that cannot be the blurred frames' truth: another size, or
    gray (equal channels) beside colour frames, either way."""
    def gray(image: np.ndarray) -> bool:
        return bool((image[..., 0] == image[..., 1]).all() and
                    (image[..., 1] == image[..., 2]).all())

    for n, b, s in zip(numbers, blurred, sharp_frames, strict=True):
        if s.shape != b.shape:
            raise InputError(sharp.source(n), f"{s.shape[1]}x{s.shape[0]}, its blurred frame "
                                              f"{b.shape[1]}x{b.shape[0]}")
        gray_sharp = gray(s)
        if gray_sharp != gray(b):
            raise InputError(sharp.source(n), "gray, its blurred frame is in colour" if gray_sharp
                             else "in colour, its blurred frame is gray (a colour reference "
                                  "for a monochrome input)")


def clip_folders(root: Path) -> list[Path]:
    """The clip folders (with a ``frames.csv``) under ``root``, in name order; hidden ones
    are not clips (`synth clips` writes each in a ``.clip_*.part`` first). One with frames
    (``blurred/``) but no ``frames.csv`` is an :class:`InputError`, not a clip left out."""
    untimed = next((p.parent for p in sorted(root.glob("**/blurred")) if p.is_dir()
                    and not hidden_under(p, root) and not (p.parent / "frames.csv").is_file()),
                   None)
    if untimed is not None:
        raise InputError(untimed, "not a clip folder: frames.csv is missing")
    return sorted(p.parent for p in root.glob("**/frames.csv") if not hidden_under(p, root))


class ClipFolderDataset(_EpochCrops):
    """Windows of ``frames`` consecutive frames from clip folders under ``root``.

    Synthetic exports and real footage arranged in the same layout load alike; kernels are
    computed from each folder's gyro, camera and frames as ``gyrodeblur kernels`` would.
    ``crop`` takes a random (per index and epoch, :meth:`set_epoch`, reproducible) window of
    that size. ``paired``
    (training, benchmarks) refuses folders without ``sharp/`` references. ``first_estimate``
    adds each frame restored by that method (whole, before the crop) as ``estimate``.
    ``per_frame`` (benchmarks) gives one window per frame instead of every run of ``frames``:
    centred on it, with ``centre`` saying which of the window's frames it is, so that each
    frame counts once, restored as ``deblur video`` restores it (at a clip's ends an odd
    window repeats the end frame, as it does).
    """

    def __init__(self, root: str | Path, frames: int = 1, samples: int = 9,
                 crop: int | None = None, paired: bool = False,
                 first_estimate: Restore | None = None, per_frame: bool = False) -> None:
        if frames < 1 or samples < 2:
            raise ValueError(f"frames must be at least 1 and samples at least 2, got {frames}, "
                             f"{samples}")
        _check_crop(crop)
        root = Path(root)
        folders = clip_folders(root)
        if not folders:
            raise InputError(root, "no clip folders (with frames.csv) found")
        self.clips = [ClipFolder(p) for p in folders]
        unpaired = [clip.path for clip in self.clips if clip.sharp is None]
        if paired and unpaired:
            raise InputError(unpaired[0], "no sharp/ references beside blurred/")
        for clip in self.clips:
            if crop and crop > min(clip.footage.size):
                raise InputError(clip.path, f"a crop of {crop} px is larger than its frames "
                                            f"({clip.footage.size[0]}x{clip.footage.size[1]})")
        self.frames, self.samples, self.crop = frames, samples, crop
        self.first_estimate = _callable_as_restore(first_estimate)
        # (clip, first frame of the window, position of the scored frame in it or None)
        self.index: list[tuple[int, int, int | None]] = []
        for c, clip in enumerate(self.clips):
            # A window holds consecutive frames: a gap in the numbers (frames the frames CSV
            # leaves out) splits the clip.
            numbers = clip.timing.frame
            for run in np.split(numbers, np.flatnonzero(np.diff(numbers) != 1) + 1):
                if not per_frame:
                    self.index += [(c, int(n), None) for n in run[:max(len(run) - frames + 1, 0)]]
                    continue
                if len(run) < frames:  # leaving it out would make scores incomparable
                    raise InputError(clip.path, f"{len(run)} consecutive frames "
                                                f"({run[0]}..{run[-1]}), fewer than the "
                                                f"{frames} of a window")
                for k in range(len(run)):
                    start = min(max(k - frames // 2, 0), len(run) - frames)
                    self.index.append((c, int(run[start]), k - start))
        if not self.index:
            raise InputError(root, f"no clip has {frames} frames")

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        index = _sample_index(index, len(self.index))
        c, first, centre = self.index[index]
        window = _with_estimate(self.clips[c].window(first, self.frames, self.samples),
                                self.first_estimate)
        r = self.frames // 2
        if centre is not None and self.frames % 2 and centre != r:
            # Read shifted inside the clip, filled as deblur video's windows are: the end
            # frame repeated.
            order = np.clip(np.arange(centre - r, centre + r + 1), 0, self.frames - 1)
            window, centre = {k: v[order] for k, v in window.items()}, r
        if self.crop:
            window = _crop(window, self.crop, _crop_rng([index], self.epoch))
        sample = _to_sample(window, single=self.frames == 1)
        return sample if centre is None else sample | {"centre": torch.tensor(centre)}
