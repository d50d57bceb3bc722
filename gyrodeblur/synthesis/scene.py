"""A piecewise-planar scene seen by a moving camera: exact rendering and translational velocity.

The world frame is the camera frame at ``t = 0``. The sharp source image is what a pinhole
camera (``source``) at the world origin sees there; the scene is one or several planes
``n . X = d`` (``d > 0`` metres from the origin), and each pixel sees the nearest plane in
front of it (rays that meet none look at infinity, where translation has no effect). The
camera moves with orientation ``R(t)`` (camera-to-world, from the gyro) and position
``c(t) = velocity * t`` (constant velocity, world frame). Different plane depths give
different image speeds: parallax, the part of the motion that a gyro cannot see.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from gyrodeblur.geometry.camera import Camera


@dataclass(frozen=True)
class Plane:
    """The plane ``normal . X = distance`` in world coordinates (``normal`` unit length)."""

    normal: tuple[float, float, float] = (0.0, 0.0, 1.0)
    distance: float = 3.0


@dataclass(frozen=True)
class Scene:
    """Planes and the camera's constant velocity (m/s, world frame).

    Example:
        >>> Scene().velocity
        (0.0, 0.0, 0.0)
    """

    planes: tuple[Plane, ...] = (Plane(),)
    velocity: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def position(self, t: np.ndarray) -> np.ndarray:
        """Camera centre ``(..., 3)`` at times ``t``."""
        return np.asarray(t, np.float64)[..., None] * np.asarray(self.velocity)

    def intersect(self, origin: np.ndarray, direction: np.ndarray) -> np.ndarray:
        """Ray parameter ``s`` of the nearest plane in front: ``X = origin + s direction``.

        ``origin (..., 3)`` and ``direction (..., 3)`` broadcast; ``inf`` where no plane is hit.
        """
        best = np.full(np.broadcast_shapes(origin.shape, direction.shape)[:-1], np.inf)
        for plane in self.planes:
            n = np.asarray(plane.normal, np.float64)
            denom = direction @ n
            with np.errstate(divide="ignore", invalid="ignore"):
                s = (plane.distance - origin @ n) / denom
            best = np.where((s > 0) & np.isfinite(s), np.minimum(best, s), best)
        return best


def _rays(camera: Camera) -> np.ndarray:
    """``(H, W, 3)`` undistorted camera rays ``(x, y, 1)`` of every pixel."""
    xy = camera.pixel_rays()
    return np.concatenate([xy, np.ones(xy.shape[:2] + (1,))], axis=-1)


def source_coordinates(camera: Camera, source: Camera, scene: Scene, R_rows: np.ndarray,
                       c_rows: np.ndarray) -> np.ndarray:
    """Where each pixel of a view lies in the source image, ``(H, W, 2)`` float32.

    Args:
        camera: the view's camera.
        source: the camera of the source image (at the world origin, orientation identity).
        scene: planes and motion.
        R_rows: ``(H, 3, 3)`` camera-to-world orientation at each row's time.
        c_rows: ``(H, 3)`` camera centre at each row's time.
    """
    world = _rays(camera) @ np.swapaxes(R_rows, -1, -2)  # R @ ray, batched over rows
    s = scene.intersect(c_rows[:, None, :], world)
    hit = np.isfinite(s)
    # At infinity only the direction matters; elsewhere the point on the plane.
    X = np.where(hit[..., None], c_rows[:, None, :] + np.where(hit, s, 0)[..., None] * world,
                 world)
    with np.errstate(divide="ignore", invalid="ignore"):
        xn = X[..., :2] / X[..., 2:]
    return source.distort_points(xn).astype(np.float32)


def render(image: np.ndarray, camera: Camera, source: Camera, scene: Scene, R_rows: np.ndarray,
           c_rows: np.ndarray) -> np.ndarray:
    """The view of ``image`` (the source camera's picture) from a moved camera, ``(H, W, 3)``.

    Bicubic sampling in the given colour space; outside the source image the border repeats.
    """
    return sample_source(image, source_coordinates(camera, source, scene, R_rows, c_rows))


def sample_source(image: np.ndarray, at: np.ndarray) -> np.ndarray:
    """``image`` sampled at the source coordinates ``at`` (:func:`source_coordinates`), as
    :func:`render` does."""
    at = np.nan_to_num(at, nan=-1e4, posinf=-1e4, neginf=-1e4)
    out = cv2.remap(image, at[..., 0], at[..., 1], cv2.INTER_CUBIC,
                    borderMode=cv2.BORDER_REPLICATE)
    return np.clip(out, 0.0, 1.0)


def outside_fraction(at: np.ndarray, image_shape: tuple[int, ...]) -> float:
    """The fraction of a view's pixels whose source coordinates ``at`` fall outside an image
    of ``image_shape``, or on no plane: where :func:`render` repeats the border.

    Example:
        >>> at = np.array([[[0.0, 0.0], [3.0, 1.0], [3.5, 1.0], [np.nan, 0.0]]], np.float32)
        >>> outside_fraction(at, (2, 4, 3))
        0.5
    """
    height, width = image_shape[:2]
    x, y = at[..., 0], at[..., 1]
    inside = (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
    return float(1.0 - inside.mean())


def translational_velocity(camera: Camera, scene: Scene, R_rows: np.ndarray, t_rows: np.ndarray,
                           step: float = 1e-3) -> np.ndarray:
    """Image velocity ``tau (H, W, 2)`` px/s caused by the camera's translation alone.

    For the scene point seen at pixel ``p`` at its row's time ``t``, the derivative of its
    projection while the camera translates and its orientation is held at ``R(t)`` (the
    rotation is the gyro's part), by central differences of the exact projection, so lens
    distortion is handled.

    Example:
        >>> cam = Camera(width=3, height=3, fx=100.0, fy=100.0, cx=1.0, cy=1.0)
        >>> scene = Scene(planes=(Plane(distance=2.0),), velocity=(0.5, 0.0, 0.0))
        >>> tau = translational_velocity(cam, scene, np.tile(np.eye(3), (3, 1, 1)), np.zeros(3))
        >>> round(float(tau[1, 1, 0]), 6)  # -fx * vx / Z
        -25.0
    """
    c_rows = scene.position(t_rows)
    world = _rays(camera) @ np.swapaxes(R_rows, -1, -2)
    s = scene.intersect(c_rows[:, None, :], world)
    hit = np.isfinite(s)
    X = c_rows[:, None, :] + np.where(hit, s, 0)[..., None] * world
    v = np.asarray(scene.velocity, np.float64)
    projected = []
    for sign in (1.0, -1.0):
        centre = c_rows + sign * step * v
        local = (X - centre[:, None, :]) @ R_rows  # R^T (X - c), batched over rows
        with np.errstate(divide="ignore", invalid="ignore"):  # rays that hit no plane
            projected.append(camera.distort_points(local[..., :2] / local[..., 2:]))
    tau = (projected[0] - projected[1]) / (2 * step)
    return np.where(hit[..., None], tau, 0.0).astype(np.float32)
