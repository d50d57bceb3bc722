"""Camera model: pinhole intrinsics, lens distortion, rolling shutter and IMU alignment.

Pixel coordinates follow CONVENTIONS.md: the centre of the top-left pixel is ``(0, 0)``.
Normalized coordinates are undistorted rays ``(X/Z, Y/Z)`` in the OpenCV camera frame.

Three file forms are read by :func:`load_camera`: our JSON (see :meth:`Camera.to_dict`), a
Gyroflow lens profile, and the ``cam_metainfo.csv`` of the GyroVD (GyroDVD) dataset.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from gyrodeblur.errors import InputError
from gyrodeblur.fileio import atomic_path, unreadable_because

DistortionModel = Literal["none", "opencv", "fisheye"]
ReadoutDirection = Literal["top_to_bottom", "bottom_to_top"]

IDENTITY3: tuple[tuple[float, float, float], ...] = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0),
                                                     (0.0, 0.0, 1.0))
# Valid coefficient counts per model, in cv2's order (opencv: k1,k2,p1,p2[,k3[,k4,k5,k6]]).
_N_COEFFS: dict[str, tuple[int, ...]] = {"none": (0,), "opencv": (4, 5, 8), "fisheye": (4,)}
_REQUIRED = ("width", "height", "fx", "fy", "cx", "cy")
_OPTIONAL = ("distortion_model", "distortion", "readout_time", "readout_direction",
             "imu_to_camera", "time_offset")
_ROTATION_TOL = 1e-3
_NEWTON_ITERS = 30
_NEWTON_STEP_TOL = 1e-15
_RESIDUAL_TOL = 1e-10  # normalized units; a converged Newton solve sits near 1e-16


def same_view(width: int, height: int, other_width: int, other_height: int) -> bool:
    """Whether two image sizes are resizes of one view: aspect ratios equal within 1 %, plus
    the rounding of a pixel at small sizes (a different ratio is a crop).

    Example:
        >>> same_view(1920, 1080, 480, 270), same_view(1920, 1080, 1440, 1080)
        (True, False)
    """
    return abs(width * other_height / (height * other_width) - 1) \
        <= 0.01 + 1 / min(width, height, other_width, other_height)


# Rolling shutters read a frame in about 1 ms (stacked sensors) to 40 ms; Gyroflow's files give
# it in ms, so a readout under 0.1 ms was written in seconds.
_MIN_GYROFLOW_READOUT_MS = 0.1
# The widest lenses: a 180-degree fisheye has f ~ 0.32 of its frame's longer side, a
# 160-degree rectilinear one 0.09; below that the intrinsics are not in pixels.
_MIN_FOCAL_PER_SIDE = 0.05
# The longest telephoto lenses see about a degree across the frame's longer side (f ~ 60
# sides); 10^4 sides (0.006 degrees) leaves a wide margin: beyond, they are in other units.
_MAX_FOCAL_PER_SIDE = 1e4


def check_gyroflow_readout_ms(ms: float) -> None:
    """Raise ``ValueError`` for a Gyroflow ``frame_readout_time`` (ms) that can only be seconds.

    Example:
        >>> check_gyroflow_readout_ms(0.015)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: frame_readout_time 0.015 ms is no rolling shutter's readout: ...
    """
    if 0 < abs(ms) < _MIN_GYROFLOW_READOUT_MS:
        raise ValueError(f"frame_readout_time {ms:g} ms is no rolling shutter's readout: it is "
                         "in ms (15 ms is 15, not 0.015)")
    if abs(ms) >= 1000:  # sensors read out in milliseconds
        raise ValueError(f"frame_readout_time {ms:g} ms is no rolling shutter's readout: it is "
                         "in ms (15 ms is 15)")


def gyroflow_readout(seconds: float, height: int) -> float:
    """Our readout time (first row to last) from Gyroflow's ``frame_readout_time`` (lens
    profiles and gcsv logs: the whole frame's ``height`` rows), in seconds; its sign dropped.

    Example:
        >>> round(gyroflow_readout(-0.02, 100), 12)
        0.0198
    """
    return abs(seconds) * (height - 1) / height


@dataclass(frozen=True)
class Camera:
    """A calibrated camera for one frame size; immutable and hashable.

    Args:
        width, height: frame size in pixels.
        fx, fy, cx, cy: pinhole intrinsics in pixels of this frame size.
        distortion_model: ``"none"``, ``"opencv"`` (cv2 standard) or ``"fisheye"`` (cv2.fisheye,
            Kannala-Brandt).
        distortion: opencv ``k1,k2,p1,p2[,k3[,k4,k5,k6]]``; fisheye ``k1..k4``; both act on
            normalized coordinates, so they do not change with the frame size.
        readout_time: rolling-shutter time from the first to the last row's start, seconds.
        readout_direction: which row is read first.
        imu_to_camera: 3x3 rotation taking gyro axes to camera axes; one written with
            rounded decimals (0.7071) is replaced by the nearest rotation.
        time_offset: seconds, ``t_gyro = t_frame + time_offset``.

    Example:
        >>> cam = Camera(640, 480, fx=500.0, fy=500.0, cx=319.5, cy=239.5)
        >>> cam.K[0]
        array([500. ,   0. , 319.5])
        >>> cam.rescaled(320, 240).cx
        159.5
    """

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    distortion_model: DistortionModel = "none"
    distortion: tuple[float, ...] = ()
    readout_time: float = 0.0
    readout_direction: ReadoutDirection = "top_to_bottom"
    imu_to_camera: tuple[tuple[float, float, float], ...] = IDENTITY3
    time_offset: float = 0.0

    def __post_init__(self) -> None:
        # Normalise lists and numpy scalars to plain tuples/floats so that the camera hashes
        # (pixel_rays is cached on it) and compares by value.
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        put("width", _as_int(self.width, "width"))
        put("height", _as_int(self.height, "height"))
        for name in ("fx", "fy", "cx", "cy", "readout_time", "time_offset"):
            put(name, _as_float(getattr(self, name), name))
        put("distortion", tuple(_as_float(v, "distortion") for v in _as_seq(self.distortion,
                                                                            "distortion")))
        rows = _as_seq(self.imu_to_camera, "imu_to_camera")
        put("imu_to_camera", tuple(tuple(_as_float(v, "imu_to_camera") for v in
                                         _as_seq(r, "imu_to_camera")) for r in rows))
        _validate(self)
        # A matrix written with rounded decimals (0.7071) passes _validate; turning the gyro
        # needs a rotation to float precision: the nearest one (exact ones stay bit for bit).
        r = self.R_imu_to_camera
        if not np.allclose(r @ r.T, np.eye(3), rtol=0.0, atol=1e-12):
            u, _, vt = np.linalg.svd(r)
            put("imu_to_camera", tuple(tuple(float(v) for v in row) for row in u @ vt))

    @classmethod
    def from_fov(cls, width: int, height: int, hfov_deg: float, **fields: Any) -> Camera:
        """An undistorted camera with square pixels and a centred principal point whose
        longer side spans ``hfov_deg`` degrees, edge to edge (as a lens's field of view is
        given); ``fields`` sets the others (``readout_time``, ``imu_to_camera``...).

        Example:
            >>> round(Camera.from_fov(640, 480, 90.0).fx, 9)  # 320 px / tan(45 deg)
            320.0
        """
        if not 0 < hfov_deg < 180:
            raise ValueError(f"hfov_deg {hfov_deg}: degrees, more than 0 and less than 180")
        f = max(width, height) / 2 / np.tan(np.radians(hfov_deg) / 2)
        return cls(width, height, fx=f, fy=f, cx=(width - 1) / 2, cy=(height - 1) / 2,
                   **fields)

    @property
    def K(self) -> np.ndarray:
        """Intrinsic matrix, (3, 3) float64."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def K_inv(self) -> np.ndarray:
        """Inverse of :attr:`K`, written in closed form (exact for a skew-free K)."""
        return np.array([[1.0 / self.fx, 0.0, -self.cx / self.fx],
                         [0.0, 1.0 / self.fy, -self.cy / self.fy], [0.0, 0.0, 1.0]])

    @property
    def R_imu_to_camera(self) -> np.ndarray:
        """:attr:`imu_to_camera` as a (3, 3) float64 array."""
        return np.array(self.imu_to_camera, dtype=np.float64)

    @property
    def fold(self) -> float:
        """Where the lens model folds back, past which a ray has no image: the radius
        ``|(X/Z, Y/Z)|`` at which the OpenCV model's radial part stops growing, the angle
        from the optical axis (radians) at which the fisheye's does; inf where it never does
        (and for ``none``).

        Example:
            >>> cam = Camera(640, 480, 500.0, 500.0, 319.5, 239.5, "opencv", (-0.5, 0, 0, 0))
            >>> round(cam.fold, 6)  # r (1 - 0.5 r^2) peaks at r^2 = 1 / 1.5
            0.816497
        """
        if self.distortion_model == "fisheye":
            return _fisheye_fold(self.distortion)
        if self.distortion_model == "opencv":
            fold = _fold(tuple(_opencv8(self.distortion)))
            return math.inf if fold is None else float(fold[0][-1])
        return math.inf

    def replace(self, **changes: Any) -> Camera:
        """A copy with some fields changed, validated like a new camera.

        Example:
            >>> Camera(4, 3, 2.0, 2.0, 1.5, 1.0).replace(readout_time=0.01).readout_time
            0.01
        """
        return dataclasses.replace(self, **changes)

    def rescaled(self, width: int, height: int) -> Camera:
        """The same camera for the image resized to ``width x height``.

        Pixel centres map as ``x' = (x + 0.5) * s - 0.5``, so ``cx`` moves by that rule and
        ``fx`` scales by ``s``. Distortion acts on normalized coordinates and the rows are read
        in the same time, so both are kept. A size that is not :func:`same_view` is a crop, not a
        resize, and is refused.

        Example:
            >>> cam = Camera(4000, 3000, 3000.0, 3000.0, 1999.5, 1499.5).rescaled(2000, 1500)
            >>> cam.fx, cam.cx
            (1500.0, 999.5)
        """
        if width <= 0 or height <= 0 or not same_view(self.width, self.height, width, height):
            raise InputError(None, f"cannot rescale {self.width}x{self.height} camera to "
                                   f"{width}x{height}: aspect ratio differs")
        sx, sy = width / self.width, height / self.height
        return self.replace(width=width, height=height, fx=self.fx * sx, fy=self.fy * sy,
                            cx=(self.cx + 0.5) * sx - 0.5, cy=(self.cy + 0.5) * sy - 0.5)

    def no_wider_than(self, width: int) -> Camera:
        """The camera rescaled to ``width`` pixels wide (height to the same view) if it is
        wider; itself otherwise, and where no height of at least 2 rows keeps the view (a
        strip of a few rows: few pixels anyway).

        Example:
            >>> cam = Camera(4000, 3000, 3000.0, 3000.0, 1999.5, 1499.5)
            >>> cam.no_wider_than(1000).height, cam.no_wider_than(8000) is cam
            (750, True)
            >>> strip = Camera(4000, 3, 3000.0, 3000.0, 1999.5, 1.0)
            >>> strip.no_wider_than(1280) is strip
            True
        """
        height = max(2, round(self.height * width / self.width))
        if self.width <= width or not same_view(self.width, self.height, width, height):
            return self
        return self.rescaled(width, height)

    def distort_points(self, xn: np.ndarray) -> np.ndarray:
        """Project normalized undistorted coordinates to distorted pixels (closed form); NaN
        for rays past the lens model's :attr:`fold`, which have no image.

        Args:
            xn: (..., 2) normalized coordinates ``(X/Z, Y/Z)``.

        Returns:
            (..., 2) float64 pixel coordinates.

        Example:
            >>> cam = Camera(640, 480, 500.0, 500.0, 319.5, 239.5)
            >>> cam.distort_points(np.array([0.1, -0.2]))
            array([369.5, 139.5])
        """
        xn = _points(xn, "xn")
        xd = _distort_normalized(xn, self.distortion_model, self.distortion)
        return np.stack([self.fx * xd[..., 0] + self.cx, self.fy * xd[..., 1] + self.cy], -1)

    def undistort_points(self, pts: np.ndarray) -> np.ndarray:
        """Back-project distorted pixels to normalized undistorted coordinates ``(X/Z, Y/Z)``.

        The distortion is inverted by Newton's method to machine precision (cv2's default
        stops after 5 fixed-point steps, which leaves pixel-size errors at strongly distorted
        corners). Points outside the model's invertible range (the distortion curve folds
        back, or a fisheye ray at or past 90 degrees) come back as NaN.

        Args:
            pts: (..., 2) pixel coordinates.

        Returns:
            (..., 2) float64 normalized coordinates.

        Example:
            >>> cam = Camera(640, 480, 500.0, 500.0, 319.5, 239.5, "fisheye", (0.1, 0.01, 0, 0))
            >>> p = cam.distort_points(np.array([0.3, 0.4]))
            >>> np.allclose(cam.undistort_points(p), [0.3, 0.4], rtol=0, atol=1e-12)
            True
        """
        pts = _points(pts, "pts")
        xd = np.stack([(pts[..., 0] - self.cx) / self.fx, (pts[..., 1] - self.cy) / self.fy], -1)
        if self.distortion_model == "fisheye":
            return _undistort_fisheye(xd, self.distortion)
        if self.distortion_model == "opencv":
            return _undistort_opencv(xd, _opencv8(self.distortion))
        return xd

    def pixel_rays(self) -> np.ndarray:
        """Normalized undistorted coordinates of every pixel centre, (H, W, 2) float64.

        Cached per camera and returned read-only, since every frame of a clip needs the same
        rays.

        Example:
            >>> Camera(3, 2, 1.0, 1.0, 1.0, 0.5).pixel_rays()[1, 2]
            array([1. , 0.5])
        """
        return _pixel_rays(self)

    def row_start_times(self, t_start: float) -> np.ndarray:
        """Exposure start of each row on the frame clock, (H,) float64.

        Row ``y`` starts at ``t_start + (y / (H - 1)) * readout_time`` for top-to-bottom
        readout, mirrored for bottom-to-top; ``t_start`` is the start of the first row read.

        Example:
            >>> Camera(4, 3, 2.0, 2.0, 1.5, 1.0, readout_time=0.02).row_start_times(1.0)
            array([1.  , 1.01, 1.02])
        """
        frac = np.arange(self.height, dtype=np.float64) / max(self.height - 1, 1)
        if self.readout_direction == "bottom_to_top" and self.height > 1:
            frac = 1.0 - frac
        return t_start + frac * self.readout_time

    def to_dict(self) -> dict[str, Any]:
        """Our camera JSON form (plain lists and numbers); :func:`camera_from_dict` reads it.

        Example:
            >>> d = Camera(4, 3, 2.0, 2.0, 1.5, 1.0).to_dict()
            >>> camera_from_dict(d) == Camera(4, 3, 2.0, 2.0, 1.5, 1.0)
            True
        """
        return {"width": self.width, "height": self.height, "fx": self.fx, "fy": self.fy,
                "cx": self.cx, "cy": self.cy, "distortion_model": self.distortion_model,
                "distortion": list(self.distortion), "readout_time": self.readout_time,
                "readout_direction": self.readout_direction,
                "imu_to_camera": [list(r) for r in self.imu_to_camera],
                "time_offset": self.time_offset}


# ---------------------------------------------------------------------------------------------
# Validation


def _as_int(v: Any, name: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating) \
            or not math.isfinite(_as_float(v, name)) or v != int(v):
        raise InputError(None, f"{name} must be an integer, got {v!r}")
    return int(v)


def _as_float(v: Any, name: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating):
        raise InputError(None, f"{name} must be a number, got {v!r}")
    try:
        value = float(v)
    except OverflowError:  # a JSON integer of hundreds of digits
        raise InputError(None, f"{name} must be finite, got an integer of {len(str(v))} "
                               "digits") from None
    if not math.isfinite(value):
        raise InputError(None, f"{name} must be finite, got {v!r}")
    return value


def _as_seq(v: Any, name: str) -> tuple[Any, ...]:
    if isinstance(v, str | bytes | dict) or not hasattr(v, "__iter__"):
        raise InputError(None, f"{name} must be a list, got {v!r}")
    return tuple(v)


def _validate(cam: Camera) -> None:
    if cam.width <= 0 or cam.height <= 0:
        raise InputError(None, f"frame size must be positive, got {cam.width}x{cam.height}")
    if cam.fx <= 0 or cam.fy <= 0:
        raise InputError(None, f"focal lengths must be positive, got fx={cam.fx}, fy={cam.fy}")
    side = max(cam.width, cam.height)
    if min(cam.fx, cam.fy) < _MIN_FOCAL_PER_SIDE * side:
        raise InputError(None, f"fx={cam.fx:g}, fy={cam.fy:g} for a {cam.width}x{cam.height} "
                               "frame: focal lengths are in pixels (normalised intrinsics? "
                               "multiply fx and cx by the width, fy and cy by the height)")
    if max(cam.fx, cam.fy) > _MAX_FOCAL_PER_SIDE * side:
        raise InputError(None, f"fx={cam.fx:g}, fy={cam.fy:g} for a {cam.width}x{cam.height} "
                               "frame: a field of view under 0.006 degrees; focal lengths "
                               "are in pixels")
    if not (-cam.width <= cam.cx <= 2 * cam.width and -cam.height <= cam.cy <= 2 * cam.height):
        raise InputError(None, f"principal point ({cam.cx:g}, {cam.cy:g}) is far outside the "
                               f"{cam.width}x{cam.height} frame (cx, cy are in pixels)")
    if not isinstance(cam.distortion_model, str) or cam.distortion_model not in _N_COEFFS:
        raise InputError(None, f"unknown distortion_model {cam.distortion_model!r}; "
                               f"expected one of {', '.join(_N_COEFFS)}")
    counts = _N_COEFFS[cam.distortion_model]
    if len(cam.distortion) not in counts:
        raise InputError(None, f"distortion_model {cam.distortion_model!r} takes "
                               f"{' or '.join(map(str, counts))} coefficients, "
                               f"got {len(cam.distortion)}")
    if cam.readout_time < 0:
        raise InputError(None, f"readout_time must be >= 0 s, got {cam.readout_time}")
    if cam.readout_time >= 1.0:  # sensors read out in milliseconds
        raise InputError(None, f"readout_time {cam.readout_time:g} s is not a sensor readout; "
                               "it is in seconds (33 ms is 0.033)")
    if not isinstance(cam.readout_direction, str) \
            or cam.readout_direction not in get_args(ReadoutDirection):
        raise InputError(None, f"unknown readout_direction {cam.readout_direction!r}; "
                               "expected top_to_bottom or bottom_to_top")
    if len(cam.imu_to_camera) != 3 or any(len(row) != 3 for row in cam.imu_to_camera):
        raise InputError(None, f"imu_to_camera must be 3x3, got {len(cam.imu_to_camera)} rows "
                               f"of lengths {[len(row) for row in cam.imu_to_camera]}")
    r = cam.R_imu_to_camera
    ortho_err = float(np.abs(r @ r.T - np.eye(3)).max())
    if ortho_err > _ROTATION_TOL or abs(np.linalg.det(r) - 1.0) > _ROTATION_TOL:
        raise InputError(None, "imu_to_camera is not a rotation (needs orthonormal rows and "
                               f"det +1; |R R^T - I| = {ortho_err:.3g}, "
                               f"det = {np.linalg.det(r):.4g})")


# ---------------------------------------------------------------------------------------------
# Distortion models (normalized coordinates)


def _opencv8(k: tuple[float, ...]) -> np.ndarray:
    """Pad k1,k2,p1,p2[,k3[,k4,k5,k6]] with zeros to all eight."""
    return np.pad(np.asarray(k, dtype=np.float64), (0, 8 - len(k)))


def _points(points: np.ndarray, name: str) -> np.ndarray:
    """``points`` as float64 ``(..., 2)``; a ``(2, N)`` array or ``(N, 3)`` rays refused."""
    points = np.asarray(points, dtype=np.float64)
    if points.ndim == 0 or points.shape[-1] != 2:
        raise ValueError(f"{name} must be (..., 2) points (x, y), got shape {points.shape} "
                         "(rays (N, 3): divide by Z first)")
    return points


def _distort_normalized(xn: np.ndarray, model: str, k: tuple[float, ...]) -> np.ndarray:
    if model == "opencv":
        k8 = _opencv8(k)
        with np.errstate(all="ignore"):
            xd, jac = _distort_opencv(xn, k8)
            kept = _orientation_kept(xn, jac, k8)
        return np.where(kept[..., None], xd, np.nan)
    if model == "fisheye":
        x, y = xn[..., 0], xn[..., 1]
        r = np.hypot(x, y)
        theta = np.arctan(r)
        theta_d = _fisheye_theta_d(theta, k)
        # theta_d / r -> 1 as r -> 0; guard the 0/0 at the centre.
        scale = np.divide(theta_d, r, out=np.ones_like(r), where=r > 1e-15)
        scale = np.where(theta <= _fisheye_fold(k), scale, np.nan)
        return np.stack([x * scale, y * scale], -1)
    return xn.copy()


def _distort_opencv(xn: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cv2 standard model; returns the distorted points and the 2x2 Jacobian, (..., 2, 2)."""
    k1, k2, p1, p2, k3, k4, k5, k6 = k
    x, y = xn[..., 0], xn[..., 1]
    r2 = x * x + y * y
    num = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
    den = 1 + r2 * (k4 + r2 * (k5 + r2 * k6))
    radial = num / den
    d_radial = ((k1 + r2 * (2 * k2 + 3 * k3 * r2)) * den
                - (k4 + r2 * (2 * k5 + 3 * k6 * r2)) * num) / (den * den)  # d radial / d r2
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    off = 2 * x * y * d_radial + 2 * p1 * x + 2 * p2 * y
    jac = np.stack([np.stack([radial + 2 * x * x * d_radial + 2 * p1 * y + 6 * p2 * x, off], -1),
                    np.stack([off, radial + 2 * y * y * d_radial + 6 * p1 * y + 2 * p2 * x], -1)],
                   -2)
    return np.stack([xd, yd], -1), jac


def _radial(r: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The OpenCV model's radial part, ``r radial(r^2)``, and its slope in ``r``, where its
    denominator is positive (a slope of -1 where not: no ray there)."""
    r2 = r * r
    num = 1 + r2 * (k[0] + r2 * (k[1] + r2 * k[4]))
    den = 1 + r2 * (k[5] + r2 * (k[6] + r2 * k[7]))
    d_num = 2 * r * (k[0] + r2 * (2 * k[1] + 3 * r2 * k[4]))
    d_den = 2 * r * (k[5] + r2 * (2 * k[6] + 3 * r2 * k[7]))
    with np.errstate(all="ignore"):  # a denominator of 0: no ray, whatever the values
        slope = num / den + r * (d_num * den - num * d_den) / (den * den)
        return r * num / den, np.where(den > 0, slope, -1.0)


@functools.lru_cache(maxsize=16)
def _fold(k: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray] | None:
    """The radial part on the branch where it grows from the centre, up to the fold where it
    first stops growing, sampled as ``(r, r radial(r^2))``; None when it grows throughout
    (up to a radius of 1e6). No ray lies past the fold, though the curve may rise again there
    and give far points a second, false preimage."""
    k_ = np.asarray(k)
    r = np.geomspace(1e-6, 1e6, 240_001)  # a relative step of 2e-4
    falling = np.flatnonzero(_radial(r, k_)[1] <= 0)
    if not len(falling):
        return None
    lo, hi = r[max(falling[0] - 1, 0)], r[falling[0]]
    for _ in range(60):  # bisection to double precision
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _radial(np.array(mid), k_)[1] > 0 else (lo, mid)
    branch = np.linspace(0.0, lo, 4097)
    branch.flags.writeable = False
    distorted = _radial(branch, k_)[0]
    distorted.flags.writeable = False
    return branch, distorted


def _undistort_opencv(xd: np.ndarray, k: np.ndarray) -> np.ndarray:
    # 2D Newton from the distorted point, or for a model that folds back (and may rise again
    # far out, with a false preimage there) from the inverse of its radial part before the
    # fold; converges quadratically where the model is locally invertible.
    fold = _fold(tuple(k))
    x = xd.copy()
    if fold is not None:
        rd = np.hypot(xd[..., 0], xd[..., 1])
        # Not at the fold itself, where the Jacobian is singular: a point the tangential
        # terms carry past the radial part's peak still has its ray just inside it.
        r = np.minimum(np.interp(rd, fold[1], fold[0]), 0.98 * fold[0][-1])
        x *= np.divide(r, rd, out=np.ones_like(rd), where=rd > 1e-15)[..., None]
    # Each point is iterated until its own step is done: a few steps for most, the cap for
    # those past a fold, which have no preimage (a singular Jacobian at the fold, or a point
    # past it, gives NaN or runs off: rejected below).
    shape = x.shape
    x, target = x.reshape(-1, 2), xd.reshape(-1, 2)
    active = np.arange(len(x))
    for _ in range(_NEWTON_ITERS):
        with np.errstate(all="ignore"):
            f, jac = _distort_opencv(x[active], k)
            r = f - target[active]
            det = jac[:, 0, 0] * jac[:, 1, 1] - jac[:, 0, 1] * jac[:, 1, 0]
            step = np.stack([jac[:, 1, 1] * r[:, 0] - jac[:, 0, 1] * r[:, 1],
                             jac[:, 0, 0] * r[:, 1] - jac[:, 1, 0] * r[:, 0]], -1)
            step /= det[:, None]
            x[active] -= step
            size = np.abs(step).max(-1)
        active = active[size > _NEWTON_STEP_TOL]  # NaN compares false: dropped as done
        if not len(active):
            break
    x = x.reshape(shape)
    with np.errstate(all="ignore"):
        f, jac = _distort_opencv(x, k)
        ok = (np.abs(f - xd).max(-1) < _RESIDUAL_TOL) & _orientation_kept(x, jac, k)
    return np.where(ok[..., None], x, np.nan)


def _orientation_kept(x: np.ndarray, jac: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Whether each point ``x`` (normalized, undistorted; ``jac`` the model's Jacobian there)
    lies before the OpenCV model's fold, where it has an image. Past the fold the map turns
    the plane through 180 degrees (det > 0 but trace < 0: a ray pointing away), or folds it
    over (det < 0); near or past the radial part's fold (the tangential terms move it) the
    map must also keep its orientation on the way out from the centre, or the point lies
    beyond a fold where the curve rises again."""
    det = jac[..., 0, 0] * jac[..., 1, 1] - jac[..., 0, 1] * jac[..., 1, 0]
    ok = np.asarray((det > 0) & (jac[..., 0, 0] + jac[..., 1, 1] > 0))
    fold = _fold(tuple(k))
    if fold is not None:
        radius = np.asarray(np.hypot(x[..., 0], x[..., 1]))
        far = ok & (radius > 0.8 * fold[0][-1])
        points, start = x[far], 0.8 * fold[0][-1] / radius[far]
        kept = np.ones(len(points), bool)
        for s in np.linspace(0.0, 1.0, 64, endpoint=False):
            jac = _distort_opencv(points * (start + (1 - start) * s)[:, None], k)[1]
            kept &= (jac[:, 0, 0] * jac[:, 1, 1] - jac[:, 0, 1] * jac[:, 1, 0] > 0) & (
                jac[:, 0, 0] + jac[:, 1, 1] > 0)
        ok[far] = kept
    return ok


def _fisheye_slope(theta: np.ndarray, k: tuple[float, ...]) -> np.ndarray:
    """d theta_d / d theta of the fisheye model."""
    t2 = theta * theta
    return 1 + t2 * (3 * k[0] + t2 * (5 * k[1] + t2 * (7 * k[2] + t2 * 9 * k[3])))


def _fisheye_theta_d(theta: np.ndarray, k: tuple[float, ...]) -> np.ndarray:
    t2 = theta * theta
    return theta * (1 + t2 * (k[0] + t2 * (k[1] + t2 * (k[2] + t2 * k[3]))))


@functools.lru_cache(maxsize=16)
def _fisheye_fold(k: tuple[float, ...]) -> float:
    """The angle from the axis at which the fisheye curve first stops growing, up to 180
    degrees; inf where it grows throughout."""
    theta = np.linspace(0.0, np.pi, 200_001)
    falling = np.flatnonzero(_fisheye_slope(theta, k) <= 0)
    if not len(falling):
        return math.inf
    lo, hi = theta[falling[0] - 1], theta[falling[0]]
    for _ in range(60):  # bisection to double precision
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _fisheye_slope(np.array(mid), k) > 0 else (lo, mid)
    return float(lo)


@functools.lru_cache(maxsize=16)
def _fisheye_branch(k: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The fisheye curve where it grows from the centre, up to 90 degrees or its first fold
    before, sampled as ``(theta, theta_d)``: each distorted radius on it has one ray."""
    branch = np.linspace(0.0, min(_fisheye_fold(k), np.pi / 2), 4097)
    curve = _fisheye_theta_d(branch, k)
    branch.flags.writeable = curve.flags.writeable = False
    return branch, curve


def _undistort_fisheye(xd: np.ndarray, k: tuple[float, ...]) -> np.ndarray:
    # Solve theta_d(theta) = r_d on the growing branch by Newton's method from the sampled
    # branch's inverse, kept inside a shrinking bracket (bisecting where a step would leave
    # it): plain Newton from theta = r_d starts past the top of a strongly rising curve and
    # diverges or cycles there.
    rd = np.hypot(xd[..., 0], xd[..., 1])
    branch, curve = _fisheye_branch(k)
    theta = np.full_like(rd, np.nan)  # no ray past the branch's end
    active = np.flatnonzero(rd.ravel() < curve[-1])
    r = rd.ravel()[active]
    t = np.interp(r, curve, branch)
    lo, hi = np.zeros_like(r), np.full_like(r, branch[-1])
    for _ in range(_NEWTON_ITERS):
        g = _fisheye_theta_d(t, k) - r
        lo, hi = np.where(g < 0, t, lo), np.where(g > 0, t, hi)
        with np.errstate(all="ignore"):
            stepped = t - g / _fisheye_slope(t, k)
        stepped = np.where((stepped > lo) & (stepped < hi), stepped, (lo + hi) / 2)
        moving = np.abs(stepped - t) > _NEWTON_STEP_TOL
        theta.ravel()[active] = stepped
        active, r, t, lo, hi = (a[moving] for a in (active, r, stepped, lo, hi))
        if not len(active):
            break
    with np.errstate(all="ignore"):
        ok = (np.abs(_fisheye_theta_d(theta, k) - rd) < _RESIDUAL_TOL) & (
            _fisheye_slope(theta, k) > 0) & (theta < np.pi / 2)
        scale = np.where(rd > 1e-15, np.tan(theta) / rd, 1.0)
    return np.where(ok[..., None], xd * scale[..., None], np.nan)


@functools.lru_cache(maxsize=4)  # a full-HD ray map is 33 MB: keep only a few cameras
def _pixel_rays(cam: Camera) -> np.ndarray:
    ys, xs = np.mgrid[0:cam.height, 0:cam.width].astype(np.float64)
    rays = cam.undistort_points(np.stack([xs, ys], -1))
    rays.flags.writeable = False
    return rays


# ---------------------------------------------------------------------------------------------
# Files


def camera_from_dict(d: dict[str, Any], source: str | Path = "") -> Camera:
    """Build a camera from our JSON form, refusing anything malformed.

    Raises:
        InputError: naming ``source``, for a missing or unknown key, a non-positive size or
            focal length, an unknown model, a wrong number of coefficients, or an
            ``imu_to_camera`` that is not a rotation.

    Example:
        >>> camera_from_dict({"width": 4, "height": 3, "fx": 2, "fy": 2, "cx": 1.5, "cy": 1}).K[1]
        array([0., 2., 1.])
    """
    src = source or None
    if not isinstance(d, dict):
        raise InputError(src, f"camera must be a JSON object, got {type(d).__name__}")
    missing = [k for k in _REQUIRED if k not in d]
    if missing:
        raise InputError(src, f"camera is missing key(s) {', '.join(missing)}")
    # Unknown keys are refused: a misspelt optional key would silently fall back to its default.
    unknown = sorted(set(d) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise InputError(src, f"unknown camera key(s) {', '.join(unknown)}")
    try:
        return Camera(**d)
    except InputError as e:
        raise InputError(src, e.problem) from None


def save_camera(camera: Camera, path: str | Path) -> None:
    """Write ``camera`` as our JSON, atomically.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "cam.json"
        >>> save_camera(Camera(4, 3, 2.0, 2.0, 1.5, 1.0), p)
        >>> load_camera(p).fx
        2.0
    """
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(camera.to_dict(), indent=2) + "\n", encoding="utf-8")


def load_camera(path: str | Path, *, mode_size: tuple[int, int] | None = None,
                mode_fps: float | None = None) -> Camera:
    """Read a camera from our JSON, a Gyroflow lens profile, or GyroVD ``cam_metainfo.csv``.

    ``path`` may also be a folder holding ``cam_metainfo.csv`` (a GyroVD ``meta_info``
    folder) or holding ``meta_info/cam_metainfo.csv`` (a GyroVD sequence folder). JSON is told
    apart by its keys: ours has ``fx``; a Gyroflow profile has ``calib_dimension`` or
    ``fisheye_params`` (a Gyroflow project's ``calibration_data`` is read the same way).

    A Gyroflow profile may list other video modes of the same lens in
    ``compatible_settings`` (a frame size, frame rate, readout time): given the footage's
    ``mode_size`` ``(width, height)`` and ``mode_fps`` (0 or None: unknown), the mode that
    matches is read, as Gyroflow reads it (its readout time above all). They choose a mode
    only, and other files ignore them: the camera is rescaled to the footage by
    :meth:`Camera.rescaled`.

    Raises:
        InputError: naming the file, for anything unreadable or malformed.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "camera.json"
        >>> _ = path.write_text('{"width": 1920, "height": 1080, "fx": 1500, "fy": 1500, '
        ...                     '"cx": 959.5, "cy": 539.5, "readout_time": 0.02}')
        >>> cam = load_camera(path)
        >>> cam.readout_time, cam.rescaled(960, 540).fx
        (0.02, 750.0)
    """
    path = Path(path)
    if path.is_dir():
        for candidate in (path / "cam_metainfo.csv", path / "meta_info" / "cam_metainfo.csv"):
            if candidate.is_file():
                return _camera_from_gyrovd(candidate)
        raise InputError(path, "folder has no cam_metainfo.csv (nor meta_info/cam_metainfo.csv)")
    if not path.is_file():
        raise InputError(path, unreadable_because(path))
    if path.suffix.lower() == ".csv":
        return _camera_from_gyrovd(path)
    d = _read_camera_json(path)
    if _is_gyroflow(d):
        return _camera_from_gyroflow(_gyroflow_mode(d, path, mode_size, mode_fps), path)
    if "fx" in d or "width" in d:
        return camera_from_dict(d, path)
    raise InputError(path, "not a camera file: expected our camera JSON (with fx, fy, cx, cy) "
                           "or a Gyroflow lens profile (with calib_dimension, fisheye_params)")


def _read_camera_json(path: Path) -> dict[str, Any]:
    """The object of a camera JSON file (a Gyroflow project's ``calibration_data``, with the
    readout time the project stabilised with, where it set one)."""
    try:
        d = json.loads(path.read_text(encoding="utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(path, f"not a camera JSON file ({e})") from None
    if not isinstance(d, dict):
        raise InputError(path, f"not a camera file: expected a JSON object, got {type(d).__name__}")
    if not isinstance(d.get("calibration_data"), dict):
        return d
    lens, stabilization = d["calibration_data"], d.get("stabilization")
    readout = stabilization.get("frame_readout_time") if isinstance(stabilization, dict) \
        else None
    if isinstance(readout, int | float) and not isinstance(readout, bool) and readout > 0:
        # The project's own: no mode of the profile's compatible_settings replaces it.
        lens = {**lens, "frame_readout_time": readout, "compatible_settings": [],
                "frame_readout_direction": stabilization.get("frame_readout_direction", 0)}
    return lens


def _is_gyroflow(d: dict[str, Any]) -> bool:
    return "calib_dimension" in d or "fisheye_params" in d


def is_gyroflow_profile(path: str | Path) -> bool:
    """Whether ``path`` is a Gyroflow lens profile (its readout in ms, not seconds)."""
    path = Path(path)
    return path.suffix.lower() in (".json", ".gyroflow") and _is_gyroflow(_read_camera_json(path))


def _gyroflow_mode(d: dict[str, Any], source: Path, size: tuple[int, int] | None,
                   fps: float | None) -> dict[str, Any]:
    """The profile ``d`` of the video mode of ``size`` and ``fps`` among its own and its
    ``compatible_settings``, expanded as Gyroflow's ``get_all_matching_profiles`` does (a
    ``width``/``height`` of the calibration's aspect ratio scales it by
    ``width / calib_dimension.w``, as :meth:`Camera.rescaled` would, one of another aspect
    ratio is a sensor crop that keeps the camera matrix; a ``frame_readout_time``, ``fps``,
    ``crop``, ``digital_lens``, stretch or ``interpolations`` replaces the profile's); ``d``
    itself when none fits. Modes of the size and frame rate that differ in crop or lens are
    an :class:`InputError`: which was filmed is not guessed."""
    entries = d.get("compatible_settings") or []
    if size is None or not entries:
        return d
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise InputError(source, "Gyroflow lens profile: compatible_settings must be a list "
                                 "of objects")
    try:
        w, h = (_as_int(d["calib_dimension"][key], f"calib_dimension.{key}") for key in "wh")
        params = d.get("fisheye_params") or {}
        matrix = [list(map(float, row)) for row in params.get("camera_matrix") or []]
    except (KeyError, TypeError, ValueError, InputError):
        return d  # the profile's own reading names what is wrong
    modes = [(d, (w, h))]  # each with the frame size it is for
    for entry in entries:
        mode = {**d, "compatible_settings": []}
        width, height = entry.get("width"), entry.get("height")
        sized = isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0
        declared = (width, height) if sized else (w, h)
        if sized and abs(width / w - height / h) >= 0.001:
            # Another aspect ratio: a crop of the sensor, whose pixels and camera matrix are
            # the calibration's (a principal point not asymmetrical is the crop's centre).
            mode["calib_dimension"] = {"w": width, "h": height}
        elif sized:
            # Scaled by the width, at the size the entry gives (a mode of 1920x1080 for a
            # 2704x1520 calibration would scale to 1920x1079): the row more or less is a crop.
            ratio = width / w
            mode["calib_dimension"] = {"w": width, "h": height}
            if len(matrix) == 3:
                scaled = [row[:] for row in matrix]
                for r in (0, 1):
                    # The principal point as Camera.rescaled moves it (pixel centres), where
                    # Gyroflow's (pixel corners) multiplies it: 0.25 px apart at half size.
                    scaled[r][r] *= ratio
                    scaled[r][2] = (scaled[r][2] + 0.5) * ratio - 0.5
                mode["fisheye_params"] = {**params, "camera_matrix": scaled}
        # What else a mode says of its picture: a crop, a digital lens, a stretch, a zoom
        # lens's interpolations (applied, or refused, as the profile's own would be).
        for key in ("frame_readout_time", "fps", "identifier", *_GYROFLOW_MODE_GEOMETRY):
            if key in entry:
                mode[key] = entry[key]
        modes.append((mode, declared))
    fitting = [mode for mode, declared in modes if declared == tuple(size)]
    if fps:
        timed = [m for m in fitting if isinstance(m.get("fps"), int | float)
                 and abs(m["fps"] - fps) <= 0.01 * fps]
        fitting = timed or fitting
    pictures = {json.dumps([m.get(k) for k in _GYROFLOW_MODE_GEOMETRY], sort_keys=True)
                for m in fitting}
    if len(pictures) > 1:  # Gyroflow asks which (by identifier); a guess gives wrong kernels
        names = ", ".join(str(m.get("identifier") or "?") for m in fitting)
        at = f" at {fps:g} fps" if fps else ""
        raise InputError(source, f"Gyroflow lens profile: {len(fitting)} modes fit "
                                 f"{size[0]}x{size[1]}{at} with different crops or lenses "
                                 f"({names}): give a profile of the mode filmed alone")
    return fitting[0] if fitting else d


#: The keys of a Gyroflow mode that change its picture's geometry.
_GYROFLOW_MODE_GEOMETRY = ("crop", "digital_lens", "input_horizontal_stretch",
                           "input_vertical_stretch", "interpolations")


def _camera_from_gyroflow(d: dict[str, Any], source: Path) -> Camera:
    """Gyroflow lens profile (gyroflow/gyroflow ``src/core/lens_profile.rs``).

    Every Gyroflow model keeps its intrinsics in ``fisheye_params`` (``camera_matrix`` in pixels
    of ``calib_dimension``, ``distortion_coeffs``); ``distortion_model`` defaults to
    ``opencv_fisheye``. (Presets of the Python Gyroflow with ``use_opencv_standard`` and empty
    ``fisheye_params`` hold a standard model in ``calib_params``.) Mapped: ``opencv_fisheye``
    (k1..k4; all zero = pinhole, as Gyroflow computes it) and ``opencv_standard`` (k1, k2,
    p1, p2, k3, k4, k5, k6; thin-prism and tilt terms must be zero; no coefficients =
    pinhole).
    Like Gyroflow, a profile that is not ``asymmetrical`` has its principal point at the image
    centre, here ``(w - 1) / 2`` in our pixel-centre convention (Gyroflow writes ``w / 2``), and
    ``crop`` divides the focal lengths. ``frame_readout_time`` is the full-frame readout in ms
    over ``h`` rows; ours runs from the first to the last row, hence ``* (h - 1) / h``. Gyroflow
    uses only its magnitude and carries the direction in ``frame_readout_direction``
    (``TopToBottom``/``BottomToTop``; the other two are columns, refused); without that key a
    negative value is taken as bottom-to-top (an assumption: Gyroflow inverts by sign inside).
    ``global_shutter: true`` means no readout, whatever ``frame_readout_time`` says.
    """
    def fail(problem: str) -> InputError:
        return InputError(source, f"Gyroflow lens profile: {problem}")

    model = d.get("distortion_model") or "opencv_fisheye"
    if model not in ("opencv_fisheye", "opencv_standard"):
        raise fail(f"distortion model {model!r} is not supported "
                   "(only opencv_fisheye and opencv_standard)")
    if d.get("digital_lens"):
        raise fail(f"digital lens {d['digital_lens']!r} is not supported")
    if d.get("interpolations"):
        raise fail("a zoom lens's interpolations by focal length are not supported: a profile "
                   "of the focal length filmed")
    for key in ("input_horizontal_stretch", "input_vertical_stretch"):
        stretch = d.get(key)
        if stretch is not None and (isinstance(stretch, bool)
                                    or not isinstance(stretch, int | float)):
            raise fail(f"{key} must be a number, got {stretch!r}")
        # Gyroflow treats values <= 0.01 as unset.
        if stretch is not None and stretch > 0.01 and abs(stretch - 1.0) > 1e-9:
            raise fail(f"anamorphic {key}={stretch} is not supported")
    params_key = "fisheye_params"
    for key in ("calib_dimension", "fisheye_params", "calib_params"):
        if d.get(key) is not None and not isinstance(d[key], dict):
            raise fail(f"{key} must be an object, got {d[key]!r}")
    if not (d.get("fisheye_params") or {}).get("camera_matrix") and d.get("use_opencv_standard"):
        # The Python Gyroflow's presets could hold a standard-model calibration in calib_params.
        params_key, model = "calib_params", "opencv_standard"
    try:
        w, h = (_as_int(d["calib_dimension"][key], f"calib_dimension.{key}") for key in "wh")
        k = np.asarray(d[params_key]["camera_matrix"], dtype=np.float64)
        coeffs = [float(c) for c in d[params_key].get("distortion_coeffs") or []]
    except InputError as e:
        raise fail(e.problem) from None
    except (KeyError, TypeError, ValueError, OverflowError, AttributeError) as e:
        raise fail(f"missing or malformed calib_dimension/{params_key} ({e!r})") from None
    if w < 1 or h < 1:
        raise fail(f"calib_dimension {w}x{h} is not a frame size")
    if k.shape != (3, 3):
        raise fail(f"camera_matrix must be 3x3, got shape {k.shape}")
    fx, fy, cx, cy = k[0, 0], k[1, 1], k[0, 2], k[1, 2]
    if not d.get("asymmetrical", False):
        cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    crop = d.get("crop")
    if crop is not None:
        if isinstance(crop, bool) or not isinstance(crop, int | float) or crop <= 0:
            raise fail(f"crop must be a positive number, got {crop!r}")
        fx, fy = fx / crop, fy / crop

    if model == "opencv_fisheye":
        if len(coeffs) < 4 or any(coeffs[4:]):
            raise fail(f"opencv_fisheye needs 4 coefficients k1..k4, got {coeffs}")
        # Gyroflow's opencv_fisheye passes points through when k1..k4 are all zero: a
        # profile of an uncalibrated lens is a pinhole, not an equidistant fisheye.
        cam_model, dist = ("fisheye", tuple(coeffs[:4])) if any(coeffs) else ("none", ())
    else:
        if any(coeffs[8:]):
            raise fail("opencv_standard coefficients after k6 (thin prism s1..s4, tilt tauX, "
                       "tauY) are not supported")
        # Gyroflow pads with zeros; keep the shortest cv2 layout holding every non-zero.
        used = max((i + 1 for i, c in enumerate(coeffs[:8]) if c), default=0)
        n = next(n for n in _N_COEFFS["opencv"] if n >= used)
        cam_model, dist = ("opencv", tuple(coeffs[:n]) + (0.0,) * (n - len(coeffs[:n]))) \
            if used else ("none", ())

    readout_ms = d.get("frame_readout_time") or 0.0
    if isinstance(readout_ms, bool) or not isinstance(readout_ms, int | float):
        raise fail(f"frame_readout_time must be a number of ms, got {readout_ms!r}")
    if d.get("global_shutter"):
        readout_ms = 0.0
    try:
        check_gyroflow_readout_ms(readout_ms)
    except ValueError as e:
        raise fail(str(e)) from None
    direction = "bottom_to_top" if readout_ms < 0 else "top_to_bottom"
    gf_direction = d.get("frame_readout_direction")
    if gf_direction is not None:
        names = {"TopToBottom": "top_to_bottom", "BottomToTop": "bottom_to_top", 0: "top_to_bottom",
                 1: "bottom_to_top"}
        if not isinstance(gf_direction, str | int) or gf_direction not in names:
            raise fail(f"frame_readout_direction {gf_direction!r} is not supported "
                       "(only TopToBottom and BottomToTop)")
        direction = names[gf_direction]
    try:
        return Camera(w, h, fx, fy, cx, cy, cam_model, dist,
                      readout_time=gyroflow_readout(readout_ms / 1000.0, h),
                      readout_direction=direction)
    except InputError as e:
        raise fail(e.problem) from None


# GyroVD (github.com/rimchang/GyroDVD): inference_GyroVDReal.py works on the 4080x3072 landscape
# sensor turned portrait (3072 wide, 4080 high), centre-cropped to 9:16 and resized to 1080x1920.
_GYROVD_SENSOR_W, _GYROVD_SENSOR_H = 3072, 4080
_GYROVD_OUT_W, _GYROVD_OUT_H = 1080, 1920
_GYROVD_COLUMNS = 22


def _camera_from_gyrovd(path: Path) -> Camera:
    """Camera of the 1080x1920 portrait frames of a GyroVD-Real clip, built as the official code.

    The last five columns are Android ``LENS_INTRINSIC_CALIBRATION`` ``[f_x, f_y, c_x, c_y, s]``
    of the landscape sensor. The official ``constructIntrinsic`` uses ``fx = fy = col[-4]``,
    ``cx = col[-2]``, ``cy = col[-3]`` (portrait), subtracts the crop offset and multiplies by the
    resize factor without the half-pixel shift of :meth:`Camera.rescaled`; that is reproduced
    exactly here so that results match the official ones. Pure pinhole (the code has no
    distortion), global shutter (it has no readout), ``time_offset`` 0 (frame timestamps are
    already on the gyro clock), ``imu_to_camera = diag(1, -1, -1)`` (``R_imu_cam``). The
    intrinsics are locked for a clip; should rows differ, the first row is used (with a
    warning).
    """
    try:
        lines = [ln for ln in path.read_text(encoding="utf-8-sig").splitlines() if ln.strip()]
    except UnicodeDecodeError as e:
        raise InputError(path, f"not a text CSV ({e})") from None
    if not lines:
        raise InputError(path, "cam_metainfo.csv is empty")
    try:
        float(lines[0].split(",")[0])
    except ValueError:  # a header: GyroVD's file has none (a gyro log given by mistake?)
        raise InputError(path, f"not a camera file: a CSV with a header ({lines[0][:40]}); "
                               "a camera is our JSON, a Gyroflow lens profile or GyroVD's "
                               "cam_metainfo.csv") from None
    rows = []
    for i, line in enumerate(lines, 1):
        cells = line.split(",")
        if len(cells) != _GYROVD_COLUMNS:
            why = {4: ": a gyro log (wx,wy,wz,t_ns)?",
                   15: ": GyroVD-Syn's layout, not read: give a camera JSON"
                   }.get(len(cells), "")
            raise InputError(path, f"row {i}: expected {_GYROVD_COLUMNS} comma-separated columns "
                                   f"(GyroVD-Real cam_metainfo), found {len(cells)}{why}")
        try:
            values = [float(c) for c in cells]
        except ValueError:
            raise InputError(path, f"row {i}: not a number in {line.strip()!r}") from None
        if not all(math.isfinite(v) for v in values):
            raise InputError(path, f"row {i}: NaN or infinite value")
        rows.append(values[-5:])
    intrinsics = np.array(rows)
    if np.any(intrinsics != intrinsics[0]):
        warnings.warn(f"{path}: lens intrinsics change between rows; using the first row",
                      stacklevel=3)
    # Landscape (f_x, f_y, c_x, c_y) -> portrait f = f_y, cx = c_y, cy = c_x.
    f, cx_portrait, cy_portrait = intrinsics[0, 1], intrinsics[0, 3], intrinsics[0, 2]
    implausible = InputError(path, f"implausible lens intrinsics f={f}, principal point "
                                   f"({cx_portrait}, {cy_portrait}) on the portrait "
                                   f"{_GYROVD_SENSOR_W}x{_GYROVD_SENSOR_H} sensor")
    if f <= 0 or not (0 <= cx_portrait < _GYROVD_SENSOR_W and 0 <= cy_portrait < _GYROVD_SENSOR_H):
        raise implausible
    crop_w = round(_GYROVD_SENSOR_H * 9 / 16)
    off_x = (_GYROVD_SENSOR_W - crop_w) / 2.0
    sx, sy = _GYROVD_OUT_W / crop_w, _GYROVD_OUT_H / _GYROVD_SENSOR_H
    try:
        return Camera(_GYROVD_OUT_W, _GYROVD_OUT_H, fx=f * sx, fy=f * sy,
                      cx=(cx_portrait - off_x) * sx, cy=cy_portrait * sy,
                      imu_to_camera=((1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (0.0, 0.0, -1.0)))
    except InputError:  # Camera's range of focal lengths: said of the file's f, not the fx
        raise implausible from None
