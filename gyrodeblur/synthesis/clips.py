"""Blurred clips from a sharp image and a camera path, with their kernels and the device's files.

One continuous camera path (a gyro log for the rotation, constant velocity through a planar
scene for the translation) is rendered over ``F`` frames at a frame rate and exposure: the
sharp reference of each frame (each row at its mid-exposure time, so rolling-shutter geometry
stays), its kernels (``rot`` from the gyro, ``tran`` from the scene), and the blurred frame
formed from them exactly as CONVENTIONS defines (gather form, linear light). A single image is
a clip of one frame.

:func:`export_clip` writes the clip in the folder layout that real footage uses, so
``gyrodeblur kernels`` and the datasets read synthetic and real data alike::

    CLIP/blurred/000001.png ...   frames as the camera recorded them (1-based names)
    CLIP/sharp/000001.png ...     sharp references (synthetic data only)
    CLIP/gyro.csv                 gyro as the device wrote it (sensor errors included)
    CLIP/frames.csv               frame,t_start,exposure on the frame clock
    CLIP/camera.json              the camera as the device believes it is
    CLIP/kernels.npz              the true kernels (format of ``gyrodeblur kernels``)

The true kernels' ``times`` are on the true gyro clock; ``gyro.csv``'s clock is late by the
recorded gyro's delay (``meta["sensor_errors"]["delay"]``), so the same instant reads that much
later there.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gyrodeblur import __version__
from gyrodeblur.errors import InputError
from gyrodeblur.fileio import (
    NpzWriter,
    missing_folders,
    move_folder_into_place,
    remove_empty,
    temporary_folder,
    write_error,
)
from gyrodeblur.footage import FrameTiming, float_image, write_frames_csv, write_image
from gyrodeblur.geometry.camera import Camera, save_camera
from gyrodeblur.geometry.gyro import GyroLog, to_camera_frame, write_csv
from gyrodeblur.geometry.rotation import integrate
from gyrodeblur.kernels.rotation import complete_camera, rotation_trajectories, sample_times
from gyrodeblur.kernels.translation import translation_trajectories
from gyrodeblur.synthesis.blur import blur_image, continuous_subsamples
from gyrodeblur.synthesis.noise import add_noise_image, jpeg_image
from gyrodeblur.synthesis.scene import (
    Scene,
    outside_fraction,
    sample_source,
    source_coordinates,
    translational_velocity,
)
from gyrodeblur.synthesis.sensor_errors import SensorErrors


@dataclass(frozen=True)
class ClipSettings:
    """Timing and rendering of a clip.

    Attributes:
        frames: number of frames ``F``.
        fps: frame rate.
        exposure: exposure time (s), at most ``1 / fps``.
        samples: ``T`` trajectory samples per exposure.
        gyro_start: exposure start of the first frame's first row on the gyro clock (s):
            where the clip begins in the log (its frames CSV has it on the frame clock,
            ``gyro_start - camera.time_offset``).
        saturation: highlight gain for clipped lights (``None``: off).
        noise: noise level (see :func:`gyrodeblur.synthesis.noise.noise_params`; 0: none).
        jpeg: JPEG quality of the blurred frames (``None``: lossless).
    """

    frames: int = 5
    fps: float = 30.0
    exposure: float = 1 / 60
    samples: int = 9
    gyro_start: float = 0.0
    saturation: float | None = None
    noise: float = 0.0
    jpeg: int | None = None

    def __post_init__(self) -> None:
        if self.frames < 1 or self.samples < 2:
            raise ValueError(f"frames must be at least 1 and samples at least 2, got "
                             f"{self.frames}, {self.samples}")
        if not 0 < self.fps < math.inf:
            raise ValueError(f"fps must be a finite rate above 0, got {self.fps}")
        # The exposure ends before the next frame's starts (a fraction of 1 may round up).
        if not 0 < self.exposure <= (1 + 1e-9) / self.fps:
            raise ValueError(f"exposure must be in (0, 1/fps] = (0, {1 / self.fps:.6g}] s, got "
                             f"{self.exposure}")
        if not 0 <= self.noise <= 1:
            raise ValueError(f"noise must be a level in [0, 1] (its std at mid-grey), got "
                             f"{self.noise}")
        if self.saturation is not None and not 1 <= self.saturation < math.inf:
            raise ValueError(f"saturation must be a finite gain >= 1, got {self.saturation}")
        if self.jpeg is not None and not 1 <= self.jpeg <= 100:
            raise ValueError(f"jpeg quality must be in 1..100, got {self.jpeg}")


@dataclass
class Clip:
    """A synthetic clip: truth and what the device recorded.

    Attributes:
        sharp, blurred: ``(F, H, W, 3)`` float32 sRGB.
        rot, tran: ``(F, T, 2, H, W)`` float32 true kernels.
        times: ``(F, T, H)`` float64 sample times on the gyro clock.
        timing: frame timing on the frame clock.
        camera: the true camera; ``log``: the true gyro, in camera axes.
        recorded_camera, recorded_log: what the device wrote (sensor errors applied; the
            log in camera axes, which :func:`export_clip` writes in the gyro's). The
            true ``time_offset`` of the recorded files is ``camera.time_offset`` plus the
            recorded gyro's delay, ``meta["sensor_errors"]["delay"]``: what sync should find.
        meta: how the clip was made; ``meta["outside_source"]`` is the largest fraction of a
            sharp frame's pixels that the view saw beyond the source image (or on no plane),
            where the source's border repeats (0 unless the motion outran the margin).
    """

    sharp: np.ndarray
    blurred: np.ndarray
    rot: np.ndarray
    tran: np.ndarray
    times: np.ndarray
    timing: FrameTiming
    camera: Camera
    log: GyroLog
    recorded_camera: Camera
    recorded_log: GyroLog
    meta: dict = field(default_factory=dict)


def source_camera(image: np.ndarray, view: Camera) -> Camera:
    """The pinhole camera of a source image seen with the view's focal length, centred."""
    height, width = image.shape[:2]
    return Camera(width=width, height=height, fx=view.fx, fy=view.fy, cx=(width - 1) / 2,
                  cy=(height - 1) / 2)


def synthesize_clip(image: np.ndarray, camera: Camera, log: GyroLog, scene: Scene,
                    settings: ClipSettings, rng: np.random.Generator,
                    errors: SensorErrors | None = None) -> Clip:
    """Render a blurred clip of ``image`` under a camera path.

    The world frame is the camera at the middle of the clip looking at the source image, so
    the motion stays centred on it.

    Args:
        image: sharp source image ``(Hs, Ws, 3)`` sRGB (float in ``[0, 1]``, or uint8 or
            uint16), larger than the view so that the moving view stays inside it.
        camera: the view camera (rolling shutter, time offset: ``t_gyro = t_frame + offset``,
            ``imu_to_camera``).
        log: the true angular velocity in the gyro's axes, covering the clip: taken to the
            camera's by ``camera.imu_to_camera`` (or the log's own), as every kernel function
            reads a log and a camera (:func:`~gyrodeblur.kernels.rotation.camera_orientation`).
        scene: planes and constant velocity of the camera.
        settings: frames, timing, noise.
        rng: randomness of noise and of the sensor errors.
        errors: sensor errors of the recorded gyro and camera (default: none).
    """
    image = float_image(image)
    if image.shape[0] < camera.height or image.shape[1] < camera.width:
        raise ValueError(f"the source image ({image.shape[1]}x{image.shape[0]}) is smaller "
                         f"than the view ({camera.width}x{camera.height})")
    F, T = settings.frames, settings.samples
    camera = complete_camera(camera, log)
    log = to_camera_frame(log, camera.R_imu_to_camera)
    orientation = integrate(log.t, log.w)
    starts = settings.gyro_start + np.arange(F) / settings.fps
    t_mid = starts[F // 2] + settings.exposure / 2 + camera.readout_time / 2
    src = source_camera(image, camera)
    H, W = camera.height, camera.width
    sharp = np.empty((F, H, W, 3), np.float32)
    blurred = np.empty_like(sharp)
    rot = np.empty((F, T, 2, H, W), np.float32)
    tran = np.empty_like(rot)
    times = np.empty((F, T, H))
    frame_clock = camera.replace(time_offset=0.0)  # starts are given on the gyro clock here
    outside = 0.0
    for f, start in enumerate(starts):
        _, t_ref = sample_times(frame_clock, start, settings.exposure, 2)
        R_rows = orientation.relative(t_mid, t_ref)  # camera-to-world, world = camera at t_mid
        at = source_coordinates(camera, src, scene, R_rows, scene.position(t_ref - t_mid))
        sharp[f] = sample_source(image, at)
        outside = max(outside, outside_fraction(at, image.shape))
        _, times[f] = rotation_trajectories(orientation, frame_clock, start, settings.exposure,
                                            T, out=rot[f])
        tau = translational_velocity(camera, scene, R_rows, t_ref - t_mid)
        tran[f] = translation_trajectories(tau, settings.exposure, T)
        traj = rot[f] + tran[f]
        frame = blur_image(sharp[f], traj, saturation=settings.saturation,
                           subsamples=continuous_subsamples(traj))
        blurred[f] = add_noise_image(frame, settings.noise, rng) if settings.noise else frame
    if settings.jpeg is not None:
        blurred = np.stack([jpeg_image(b, settings.jpeg) for b in blurred])
    errors = errors or SensorErrors.none()
    recorded_log, recorded_camera = errors.apply(log, camera, rng)
    timing = FrameTiming(np.arange(1, F + 1), starts - camera.time_offset,
                         np.full(F, settings.exposure), "synthetic")
    meta = {"gyrodeblur": __version__, "settings": settings.__dict__,
            "scene": {"planes": [p.__dict__ for p in scene.planes],
                      "velocity": list(scene.velocity)},
            "sensor_errors": errors.describe(), "camera": camera.to_dict(),
            "outside_source": outside}
    return Clip(sharp, blurred, rot, tran, times, timing, camera, log, recorded_camera,
                recorded_log, meta)


def export_clip(clip: Clip, folder: str | Path, kernels: bool = True) -> None:
    """Write a clip in the footage folder layout (see the module docstring), atomically.

    The clip is assembled in a temporary folder beside ``folder`` (a hidden ``.NAME.*.part``,
    which readers of clip folders skip) and renamed into place, so an interrupted export
    leaves no half-written clip. Without ``kernels`` the true kernels
    (``F x T x 2 x H x W`` floats twice, the bulk of a clip) are left out: what a device
    records and the sharp truth. ``folder`` must be new or empty.
    """
    folder = Path(folder)
    if folder.exists() and not (folder.is_dir() and not any(folder.iterdir())):
        raise InputError(folder, "exists and is not an empty folder: export a clip to a new "
                                 "or empty one")
    made = missing_folders(folder.parent)
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        with temporary_folder(folder) as tmp:
            try:
                _write_clip(clip, tmp, kernels)
            except OSError as e:  # named after the clip, not its temporary folder
                raise write_error(folder, e, tmp) from None
            except InputError as e:  # a file of it refused (too large for the disk)
                if e.source is None or not Path(e.source).is_relative_to(tmp):
                    raise
                raise InputError(folder / Path(e.source).relative_to(tmp), e.problem) from None
            move_folder_into_place(tmp, folder)
    finally:
        if not folder.exists():
            remove_empty(made)


def _write_clip(clip: Clip, tmp: Path, kernels: bool) -> None:
    (tmp / "blurred").mkdir()
    (tmp / "sharp").mkdir()
    for f in range(len(clip.blurred)):
        write_image(tmp / "blurred" / f"{f + 1:06d}.png", clip.blurred[f])
        write_image(tmp / "sharp" / f"{f + 1:06d}.png", clip.sharp[f])
    log = clip.recorded_log
    imu = GyroLog(log.t, log.w @ clip.recorded_camera.R_imu_to_camera, "gyro.csv")
    write_csv(imu, tmp / "gyro.csv")  # in IMU axes, as the device wrote it
    write_frames_csv(clip.timing, tmp / "frames.csv")
    save_camera(clip.recorded_camera, tmp / "camera.json")
    if kernels:
        F, T, _, H, W = clip.rot.shape
        with NpzWriter(tmp / "kernels.npz") as npz:
            npz.put("rot", clip.rot)
            npz.put("tran", clip.tran)
            npz.put("mask", np.ones((F, H, W), bool))
            npz.put("times", clip.times)
            npz.put("frames", clip.timing.frame)
            npz.put("meta", np.array(json.dumps(clip.meta | {"truth": True})))
