"""Rotational blur trajectories ``traj_rot`` of a frame (CONVENTIONS, Blur kernels).

``p + traj_rot[i](p) = pi(K R(t_ref)^T R(t_i) K^-1 [p, 1])`` with per-row times
``t_i(y) = start(y) + t_e i / (T - 1)`` and ``t_ref(y) = start(y) + t_e / 2``, on undistorted
rays mapped back to the distorted image.
"""

from __future__ import annotations

import dataclasses
import numbers
import warnings

import numpy as np

from gyrodeblur.errors import is_whole
from gyrodeblur.footage import MAX_EXPOSURE
from gyrodeblur.geometry.camera import Camera, gyroflow_readout
from gyrodeblur.geometry.gyro import GyroLog, check_mounting, to_camera_frame
from gyrodeblur.geometry.rotation import Orientation, integrate
from gyrodeblur.kernels.warp import warp_displacements


def check_log_and_camera(log: GyroLog, camera: Camera, call: str) -> None:
    """Raise :class:`TypeError`, naming ``call`` (a signature), unless ``log`` is a
    :class:`GyroLog` and ``camera`` a :class:`Camera`: arguments given in another order.

    Example:
        >>> check_log_and_camera(Camera(4, 3, 2.0, 2.0, 1.5, 1.0), None, "f(log, camera)")
        Traceback (most recent call last):
        ...
        TypeError: f(log, camera) takes a GyroLog and a Camera, got Camera and NoneType
    """
    if not (isinstance(log, GyroLog) and isinstance(camera, Camera)):
        raise TypeError(f"{call} takes a GyroLog and a Camera, got {type(log).__name__} and "
                        f"{type(camera).__name__}")


def complete_camera(camera: Camera, log: GyroLog) -> Camera:
    """Take what the gyro file knows (Gyroflow gcsv) where the camera file is silent.

    The log's ``imu_to_camera`` is used when the camera's is the identity, and its readout
    time (negative: bottom-to-top; over the frame's ``h`` rows, so ``* (h - 1) / h`` from
    the first row to the last) when the camera's is zero (where both have one and they
    differ by more than a quarter, the camera's is used, with a warning). A log whose axes
    map to the camera's by a reflection is refused then: no mounting of a gyro does that.
    """
    check_log_and_camera(log, camera, "complete_camera(camera, log)")
    if log.imu_to_camera is not None and np.allclose(camera.R_imu_to_camera, np.eye(3)):
        check_mounting(log, " or a rotation other than the identity as imu_to_camera in "
                            "the camera JSON")
        camera = camera.replace(imu_to_camera=tuple(map(tuple, log.imu_to_camera)))
    if log.readout_time and camera.readout_time and not \
            0.8 < camera.readout_time / abs(log.readout_time) < 1.25:
        warnings.warn(f"{log.source}: its frame_readout_time ({abs(log.readout_time) * 1e3:.3g} "
                      f"ms) is not the camera's readout ({camera.readout_time * 1e3:.3g} ms), "
                      "which is used", stacklevel=2)
    if log.readout_time and camera.readout_time == 0:
        camera = camera.replace(
            readout_time=gyroflow_readout(log.readout_time, camera.height),
            readout_direction="bottom_to_top" if log.readout_time < 0 else "top_to_bottom")
    return camera


# Seconds integrated either side of a span asked for: translation and sync read the orientation
# a rate step past a row's time, and at rows beyond the frame where the flow lands.
SPAN_MARGIN = 0.5


def camera_orientation(log: GyroLog, camera: Camera,
                       span: tuple[float, float] | None = None) -> Orientation:
    """The camera's orientation over the log: the gyro rotated into camera axes
    (``camera.imu_to_camera``, or the log's own where the camera's is the identity, as
    :func:`complete_camera` takes it) and integrated.

    With ``span``, the first and last instants asked for (gyro clock), only the log within
    :data:`SPAN_MARGIN` of them is integrated: relative rotations do not depend on where the
    integration starts, and an hour of log would cost seconds.

    Example:
        >>> from gyrodeblur.geometry.rotation import log_so3
        >>> log = GyroLog(np.array([0.0, 1.0]), np.array([[0.0, 0.0, 0.5]] * 2))
        >>> turned = Camera(4, 3, 2.0, 2.0, 1.5, 1.0, imu_to_camera=((0, 0, 1), (0, 1, 0),
        ...                                                          (-1, 0, 0)))
        >>> np.round(log_so3(camera_orientation(log, turned).at(np.array(1.0))), 12)
        array([0.5, 0. , 0. ])
    """
    check_log_and_camera(log, camera, "camera_orientation(log, camera)")
    if span is not None:
        keep = slice(max(int(log.t.searchsorted(span[0] - SPAN_MARGIN)) - 1, 0),
                     int(log.t.searchsorted(span[1] + SPAN_MARGIN)) + 1)
        log = dataclasses.replace(log, t=log.t[keep], w=log.w[keep])
    cam_log = to_camera_frame(log, complete_camera(camera, log).R_imu_to_camera)
    return integrate(cam_log.t, cam_log.w)


def exposure_span(camera: Camera, t_start: float | np.ndarray, exposure: float | np.ndarray
                  ) -> tuple[float | np.ndarray, float | np.ndarray]:
    """First and last instants (gyro clock) that any row of a frame is exposed: from the
    first-read row's start to the last-read row's end. Takes floats or arrays of frames.

    Example:
        >>> cam = Camera(width=2, height=3, fx=1, fy=1, cx=0.5, cy=1, readout_time=0.02,
        ...              time_offset=0.5)
        >>> tuple(round(t, 6) for t in exposure_span(cam, 1.0, 0.01))
        (1.5, 1.53)
    """
    first = t_start + camera.time_offset
    return first, first + exposure + camera.readout_time


def check_samples(samples: int) -> None:
    """Refuse a number of trajectory samples per exposure that is not an integer >= 2.

    Example:
        >>> check_samples(2.5)
        Traceback (most recent call last):
        ...
        ValueError: samples: need an integer of at least 2 per exposure, got 2.5
    """
    if not is_whole(samples, at_least=2):
        raise ValueError(f"samples: need an integer of at least 2 per exposure, got {samples!r}")


def check_exposure_time(exposure: float) -> None:
    """Refuse an exposure that is no frame's in seconds: negative, not finite, or over
    ``MAX_EXPOSURE`` (in ms, mostly).

    Example:
        >>> check_exposure_time(20)
        Traceback (most recent call last):
        ...
        ValueError: exposure 20 s, over 1 s: no video frame's; is it in seconds (not ms)?
    """
    if not (np.isfinite(exposure) and exposure >= 0):
        raise ValueError(f"exposure {exposure} s: finite and >= 0")
    if exposure > MAX_EXPOSURE:
        raise ValueError(f"exposure {exposure:g} s, over {MAX_EXPOSURE:g} s: no video frame's; "
                         "is it in seconds (not ms)?")


def sample_times(camera: Camera, t_start: float, exposure: float,
                 samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-row sample times and reference times of one frame, on the gyro clock.

    Args:
        camera: gives the rows, the rolling-shutter readout and the ``time_offset``.
        t_start: exposure start of the first-read row, seconds on the frame clock.
        exposure: exposure time ``t_e`` of each row, seconds.
        samples: ``T``, at least 2.

    Returns:
        ``times (T, H)`` and ``t_ref (H,)``, float64 seconds on the gyro clock.

    Example:
        >>> cam = Camera(width=2, height=3, fx=1, fy=1, cx=0.5, cy=1, readout_time=0.02)
        >>> times, t_ref = sample_times(cam, 1.0, 0.01, 3)
        >>> times[:, 2].round(6).tolist(), round(float(t_ref[0]), 6)
        ([1.02, 1.025, 1.03], 1.005)
    """
    check_samples(samples)
    for name, value in (("t_start", t_start), ("exposure", exposure)):
        if not isinstance(value, numbers.Real | np.ndarray):
            raise ValueError(f"{name} is in seconds, a number; got {value!r}")
    if np.ndim(t_start) or np.ndim(exposure):
        raise ValueError("t_start and exposure are one frame's seconds (numbers): a frame at "
                         "a time; exposure_span takes arrays of frames")
    if not np.isfinite(t_start):
        raise ValueError(f"t_start {t_start} s: not finite")
    check_exposure_time(exposure)
    start = camera.row_start_times(t_start) + camera.time_offset
    frac = np.arange(samples) / (samples - 1)
    times = start[None, :] + exposure * frac[:, None]
    return times, start + exposure / 2.0


def rotation_trajectories(orientation: Orientation, camera: Camera, t_start: float,
                          exposure: float, samples: int = 9,
                          out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Rotational blur trajectory of one frame.

    Args:
        orientation: camera orientation integrated from gyro already in camera axes.
        camera: camera at the resolution of the output, with its readout (a Gyroflow gcsv's
            is taken by :func:`complete_camera`, which the pipelines apply).
        t_start: exposure start of the first-read row, seconds on the frame clock.
        exposure: exposure time, seconds.
        samples: ``T``, samples per exposure.
        out: optional preallocated ``(T, 2, H, W)`` float32 array.

    Returns:
        ``traj (T, 2, H, W)`` float32 and the sample ``times (T, H)`` on the gyro clock.

    Example:
        >>> from gyrodeblur.geometry.rotation import integrate
        >>> yaw = integrate(np.array([0.0, 1.0]), np.array([[0.0, 0.1, 0.0]] * 2))
        >>> cam = Camera(width=5, height=3, fx=100.0, fy=100.0, cx=2.0, cy=1.0)
        >>> traj, times = rotation_trajectories(yaw, cam, 0.4, 0.2, samples=3)
        >>> round(float(traj[2, 0, 1, 2]), 4)  # fx * tan(0.1 rad/s * 0.1 s)
        1.0
    """
    if not isinstance(orientation, Orientation):
        raise TypeError(f"orientation must be an Orientation (camera_orientation(log, camera) "
                        f"gives it), got {type(orientation).__name__}")
    times, t_ref = sample_times(camera, t_start, exposure, samples)
    R_rows = orientation.relative(t_ref[None, :], times)
    return warp_displacements(R_rows, camera, out=out), times


def still_where_no_ray(traj: np.ndarray) -> np.ndarray:
    """``traj`` with zero where it is NaN: pixels without a ray through the lens model (the
    corners of a fisheye wider than 180 degrees, a distortion that folds back) have no known
    blur, so they are restored as unblurred; samples whose turned ray the model does not
    image (past its fold, behind a perspective camera) stay at the pixel.

    Example:
        >>> still_where_no_ray(np.array([1.5, np.nan], np.float32)).tolist()
        [1.5, 0.0]
    """
    return np.nan_to_num(traj, nan=0.0, posinf=np.inf, neginf=-np.inf)
