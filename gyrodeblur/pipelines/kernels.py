"""Kernels of every frame of a clip, streamed to an ``.npz``: what ``gyrodeblur kernels`` runs.

The npz holds ``rot (F, T, 2, H, W)`` float32, ``tran`` (same, when translation is on),
``mask (F, H, W)`` bool (pixels whose translation was measured, not filled), ``times
(F, T, H)`` float64 (per-row sample times, gyro clock), ``frames (F,)`` the frame numbers,
and ``meta`` (JSON text: camera and settings used).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from gyrodeblur import __version__
from gyrodeblur.errors import InputError
from gyrodeblur.fileio import (
    NpzWriter,
    missing_folders,
    remove_empty,
    temporary_folder,
    write_error,
)
from gyrodeblur.footage import Footage, FrameTiming, to_float, write_image
from gyrodeblur.geometry.camera import Camera
from gyrodeblur.geometry.gyro import GyroLog, check_covers
from gyrodeblur.geometry.rotation import Orientation
from gyrodeblur.kernels.clip import iter_frame_kernels, rotation_reach
from gyrodeblur.kernels.plot import draw_kernels
from gyrodeblur.kernels.rotation import (
    camera_orientation,
    check_log_and_camera,
    check_samples,
    complete_camera,
    exposure_span,
)


def frame_numbers(frames) -> np.ndarray:
    """Frame numbers as int64, in order and once each; whole numbers only.

    Example:
        >>> frame_numbers([3.0, 1, 3]).tolist()
        [1, 3]
    """
    numbers = np.asarray(frames)
    if numbers.dtype.kind not in "iuf" or (numbers != np.round(numbers)).any():
        raise ValueError(f"frames: whole frame numbers, got {numbers.tolist()!r}")
    return np.unique(numbers.astype(np.int64))


def exposure_spans(camera: Camera, timing: FrameTiming,
                   frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last instants (gyro clock) that any row of each of ``frames`` is exposed."""
    rows = timing.frame.searchsorted(frames)
    return exposure_span(camera, timing.t_start[rows], timing.exposure[rows])


def check_frames_covered(log: GyroLog, camera: Camera, timing: FrameTiming,
                         frames: np.ndarray) -> None:
    """Raise :class:`InputError` unless ``frames`` (some) are frames of ``timing`` and the gyro
    covers every row's exposure of them."""
    timing.check_has(frames)
    first, last = exposure_spans(camera, timing, frames)
    check_covers(log, first.min(), last.max())


def frames_orientation(log: GyroLog, camera: Camera, timing: FrameTiming,
                       frames: np.ndarray) -> Orientation:
    """The camera's orientation over the exposures of ``frames`` (those a job reads)."""
    first, last = exposure_spans(camera, timing, frames)
    return camera_orientation(log, camera, (first.min(), last.max()))


def beyond_frame(reach: float | np.ndarray, width: int, height: int) -> bool | np.ndarray:
    """Whether a blur reaching ``reach`` px (:func:`rotation_reach`, :func:`kernel_reach`)
    goes beyond a ``width`` x ``height`` frame: nothing of it is left to restore."""
    return np.asarray(reach) > max(width, height)


def check_blur_within(reach: np.ndarray, camera: Camera, log: GyroLog) -> None:
    """Refuse frames that all blur beyond themselves (``reach``: :func:`rotation_reach` of each,
    px): nothing of them is left to restore, a unit error."""
    if len(reach) and beyond_frame(reach, camera.width, camera.height).all():
        raise InputError(log.source, f"the gyro moves pixels {reach.min():.0f} px or more "
                                     "during every frame's exposure, more than the "
                                     f"{camera.width}x{camera.height} frame: is the exposure "
                                     "in seconds, the gyro in rad/s?")


def frames_to_read(frames: np.ndarray, timing: FrameTiming, camera: Camera, log: GyroLog,
                   count: int | None = None, reach: int = 1) -> np.ndarray:
    """What measuring the translation of ``frames`` reads: the frames, plus those of their
    neighbours (up to ``reach`` frames away) that the timing, the footage (of ``count``
    frames; None: any) and the gyro all cover, so that a frame's kernels do not depend on
    the range it is computed in."""
    near = np.intersect1d(np.concatenate([frames + k for k in range(-reach, reach + 1) if k]),
                          timing.frame)
    if count is not None:
        near = near[near <= count]
    first, last = exposure_spans(camera, timing, near)
    covered = (first >= log.t[0]) & (last <= log.t[-1])
    return np.union1d(frames, near[covered])


def frames_alone(frames: np.ndarray, read: np.ndarray) -> np.ndarray:
    """Those of ``frames`` whose translation cannot be measured: no neighbour among the
    frames ``read`` (:func:`frames_to_read`); their ``tran`` is zero and ``mask`` false."""
    return frames[~np.isin(frames - 1, read) & ~np.isin(frames + 1, read)]


@dataclass
class KernelJob:
    """Everything that decides the kernels of a clip.

    Attributes:
        camera: camera at the computing resolution (overrides already applied); what the
            log knows and it does not is taken (:func:`complete_camera`).
        log: the gyro log as read (imu axes).
        timing: frames to compute (and their neighbours, for translation).
        frames: numbers of the frames to compute, a subset of ``timing.frame`` (sorted and
            taken once each).
        samples: ``T``.
        footage: the frames' pixels; required for translation and used as plot background.
        translation: whether to compute ``tran`` from optical flow (needs ``footage``).
        flow: name of the flow backend in ``FLOW_BACKENDS``.
        settings: extra entries recorded in ``meta``.
    """

    camera: Camera
    log: GyroLog
    timing: FrameTiming
    frames: np.ndarray
    samples: int = 9
    footage: Footage | None = None
    translation: bool = True
    flow: str = "dis"
    settings: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_log_and_camera(self.log, self.camera, "KernelJob(camera, log, timing, frames...)")
        check_samples(self.samples)
        self.camera = complete_camera(self.camera, self.log)
        self.frames = frame_numbers(self.frames)  # the npz holds them in order, once each

    def needed(self) -> np.ndarray:
        """Frame numbers to read: the frames, plus, for translation, those of their
        neighbours that the timing, the footage and the gyro all cover."""
        if not self.translation:
            return self.frames
        return frames_to_read(self.frames, self.timing, self.camera, self.log,
                              None if self.footage is None else self.footage.count)

    def without_neighbours(self) -> np.ndarray:
        """Frames whose translation cannot be measured: no neighbour with timing, in the
        footage and covered by the gyro (their ``tran`` is zero and ``mask`` false)."""
        if not self.translation:
            return np.array([], np.int64)
        return frames_alone(self.frames, self.needed())

    @cached_property
    def orientation(self) -> Orientation:
        """The camera's orientation over the exposures of the frames read."""
        return frames_orientation(self.log, self.camera, self.timing, self.needed())

    @cached_property
    def reach(self) -> np.ndarray:
        """How far the rotation moves pixels during each frame's exposure (px,
        :func:`rotation_reach`)."""
        return rotation_reach(self.orientation, self.camera, self.timing, self.frames)

    def check(self) -> None:
        """Refuse inputs that cannot work, before anything is written."""
        if self.translation and self.footage is None:
            raise InputError(None, "translation needs the frames; give FRAMES or "
                                   "--no-translation (footage, or translation=False)")
        check_frames_covered(self.log, self.camera, self.timing, self.needed())
        check_blur_within(self.reach, self.camera, self.log)


def compute_kernels(job: KernelJob, out: str | Path, plot_dir: str | Path | None = None,
                    progress: Callable[[int], None] | None = None) -> None:
    """Compute the kernels of ``job.frames`` and write them to ``out`` (npz), atomically.

    Frames are streamed: at any time only a frame, its neighbours' gray images and one
    frame's kernels are in memory besides the memory-mapped output.

    Args:
        job: what to compute.
        out: the ``.npz`` to write.
        plot_dir: when given, one PNG per frame with the kernels drawn as streaks.
        progress: called with the number of frames done after each frame.

    Example:
        >>> import tempfile
        >>> from gyrodeblur.geometry.gyro import GyroLog
        >>> t = np.linspace(0.0, 1.0, 201)  # a steady pan of 0.5 rad/s about the y axis
        >>> job = KernelJob(Camera(64, 48, 60.0, 60.0, 31.5, 23.5),
        ...                 GyroLog(t, np.tile([0.0, 0.5, 0.0], (201, 1))),
        ...                 FrameTiming([1, 2], [0.3, 0.4], [0.02, 0.02]), np.array([1, 2]),
        ...                 translation=False)
        >>> out = Path(tempfile.mkdtemp()) / "k.npz"
        >>> compute_kernels(job, out)
        >>> rot = np.load(out)["rot"]  # (F, T, 2, H, W): 0.6 px of pan across the exposure
        >>> rot.shape, round(float(rot[0, -1, 0, 24, 32] - rot[0, 0, 0, 24, 32]), 2)
        ((2, 9, 2, 48, 64), 0.6)
    """
    job.check()
    if plot_dir is not None:  # a folder in a picture's way would stop the run at its end
        for number in job.frames:
            picture = Path(plot_dir) / f"kernels_{number:06d}.png"
            if picture.is_dir():
                raise InputError(picture, "is a folder, not a file")
    made = [] if plot_dir is None else missing_folders(plot_dir)
    try:
        with contextlib.ExitStack() as stack:
            # Pictures wait in a hidden folder and join the npz once it is in place: a run
            # that fails leaves neither, and an earlier run's both.
            staged = None
            if plot_dir is not None:
                Path(plot_dir).mkdir(parents=True, exist_ok=True)
                staged = stack.enter_context(temporary_folder(Path(plot_dir) / "kernels"))
            _write_kernels(job, out, staged, progress)
            for picture in sorted(staged.iterdir()) if staged is not None else []:
                os.replace(picture, Path(plot_dir) / picture.name)
    except BaseException:
        remove_empty(made)
        raise


def _write_kernels(job: KernelJob, out: str | Path, staged: Path | None,
                   progress: Callable[[int], None] | None) -> None:
    """The npz of :func:`compute_kernels`, and a picture of each frame's into ``staged``."""
    orientation = job.orientation
    F, T, H, W = len(job.frames), job.samples, job.camera.height, job.camera.width
    meta = {"gyrodeblur": __version__, "camera": job.camera.to_dict(), "samples": T,
            "translation": job.translation, "flow": job.flow if job.translation else None,
            "frames": [int(n) for n in job.frames], "frames_source": job.timing.source,
            "gyro": job.log.source, **job.settings}
    with NpzWriter(out) as npz:
        rot = npz.array("rot", (F, T, 2, H, W), np.float32)
        tran = npz.array("tran", (F, T, 2, H, W), np.float32) if job.translation else None
        mask = npz.array("mask", (F, H, W), bool)
        times = npz.array("times", (F, T, H), np.float64)
        npz.put("frames", np.asarray(job.frames, np.int64))
        npz.put("meta", np.array(json.dumps(meta)))

        frames = None  # without translation, frames are read only as the plots' background
        if job.footage is not None and (job.translation or staged is not None):
            frames = job.footage.frames(job.needed())
        for i, k in enumerate(iter_frame_kernels(orientation, job.camera, job.timing,
                                                 job.frames, T, frames, job.translation,
                                                 job.flow)):
            rot[i], times[i], mask[i] = k.rot, k.times, k.mask
            total = k.rot
            if tran is not None:
                tran[i] = k.tran
                total = k.rot + k.tran
            if staged is not None:
                name = f"kernels_{k.number:06d}.png"
                try:
                    write_image(staged / name, to_float(draw_kernels(total, k.image)))
                except OSError as e:  # named after the picture, not its staged copy
                    raise write_error(staged.parent / name, e, staged) from None
            if progress:
                progress(i + 1)
