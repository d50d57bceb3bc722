"""Per-row rotational warps of every pixel, compiled with numba.

The hot loop of the kernel computation: for each of ``T`` rotations per image row, move
every pixel of that row through ``undistort -> rotate -> distort`` and store the
displacement. One fused pass writes the ``(T, 2, H, W)`` float32 output once, which is what
bounds the speed (a 1080p frame with T = 9 is 150 MB of writes).
"""

from __future__ import annotations

import numba
import numpy as np

from gyrodeblur.geometry.camera import Camera

_MODEL_CODES = {"none": 0, "opencv": 1, "fisheye": 2}
# fastmath but for "no NaN, no inf": with those LLVM drops the NaN that marks a ray without an
# image.
_FAST = {"nsz", "arcp", "contract", "afn", "reassoc"}


@numba.njit(cache=True, fastmath=_FAST, inline="always")
def _opencv_orientation_kept(x: float, y: float, d: np.ndarray) -> bool:
    """Whether the OpenCV model's Jacobian at ``(x, y)`` keeps the plane's orientation (det
    and trace positive), as it does everywhere before its fold."""
    r2 = x * x + y * y
    num = 1.0 + r2 * (d[0] + r2 * (d[1] + r2 * d[4]))
    den = 1.0 + r2 * (d[5] + r2 * (d[6] + r2 * d[7]))
    radial = num / den
    d_radial = ((d[0] + r2 * (2.0 * d[1] + 3.0 * d[4] * r2)) * den
                - (d[5] + r2 * (2.0 * d[6] + 3.0 * d[7] * r2)) * num) / (den * den)
    j00 = radial + 2.0 * x * x * d_radial + 2.0 * d[2] * y + 6.0 * d[3] * x
    j11 = radial + 2.0 * y * y * d_radial + 6.0 * d[2] * y + 2.0 * d[3] * x
    j01 = 2.0 * x * y * d_radial + 2.0 * d[2] * x + 2.0 * d[3] * y
    return j00 * j11 - j01 * j01 > 0 and j00 + j11 > 0


@numba.njit(cache=True, fastmath=_FAST, inline="always")
def _project(X: float, Y: float, Z: float, model: int, d: np.ndarray,
             fold: float) -> tuple[float, float]:
    """Camera ray -> normalized distorted coordinates (OpenCV formulas); NaN where the model
    has no image of the ray (behind a perspective camera, past the lens model's ``fold``:
    :attr:`Camera.fold`)."""
    if model == 2:
        # The angle from the axis, not arctan(r) of X/Z: a ray turned past 90 degrees stays
        # on its side of a wide fisheye's image instead of jumping to the opposite one.
        rho = np.sqrt(X * X + Y * Y)
        theta = np.arctan2(rho, Z)
        if theta > fold:
            return np.nan, np.nan
        if rho < 1e-12 * abs(Z):
            return (X / Z, Y / Z) if Z > 0 else (np.nan, np.nan)
        t2 = theta * theta
        s = theta * (1.0 + t2 * (d[0] + t2 * (d[1] + t2 * (d[2] + t2 * d[3])))) / rho
        return X * s, Y * s
    if Z <= 0:
        return np.nan, np.nan
    x, y = X / Z, Y / Z
    r2 = x * x + y * y
    if r2 > 0.64 * fold * fold:
        # Near or past the radial part's fold: an image only where the map keeps its
        # orientation on the way out from the centre, as Camera.undistort_points asks of a
        # ray, not a point beyond the fold that the curve falls or rises again to. Without
        # tangential terms that is the fold itself; with them, which move it, the path's.
        if d[2] == 0.0 and d[3] == 0.0:
            if r2 > fold * fold:
                return np.nan, np.nan
        else:
            start = 0.8 * fold / np.sqrt(r2)
            for j in range(65):
                s = start + (1.0 - start) * j / 64.0
                if not _opencv_orientation_kept(x * s, y * s, d):
                    return np.nan, np.nan
    radial = (1.0 + r2 * (d[0] + r2 * (d[1] + r2 * d[4]))) / (
        1.0 + r2 * (d[5] + r2 * (d[6] + r2 * d[7])))
    return (x * radial + 2.0 * d[2] * x * y + d[3] * (r2 + 2.0 * x * x),
            y * radial + d[2] * (r2 + 2.0 * y * y) + 2.0 * d[3] * x * y)


@numba.njit(parallel=True, cache=True, fastmath=_FAST)
def _warp_homography(H: np.ndarray, out: np.ndarray) -> None:
    """Pinhole case: each row is one homography ``H[i, y]`` in pixel coordinates.

    The displacement is written as ``((h00 - bz - h20 x) x + bx) / (h20 x + bz)`` (and its
    ``y`` twin) with per-row constants folded in float64: every per-pixel term is then of the
    order of the displacement, so float32 vector arithmetic keeps the output's own float32
    precision and runs at about the speed of the writes, 3-4x faster than float64 positions
    minus ``x``.
    """
    T, _, rows, cols = out.shape
    for y in numba.prange(rows):
        for i in range(T):
            h = H[i, y]
            bx = h[0, 1] * y + h[0, 2]
            by = h[1, 1] * y + h[1, 2]
            bz = h[2, 1] * y + h[2, 2]
            gx, gz = np.float32(h[2, 0]), np.float32(bz)
            ax, cx = np.float32(h[0, 0] - bz), np.float32(bx)
            ay, cy = np.float32(h[1, 0] - y * h[2, 0]), np.float32(by - y * bz)
            # The denominator is the rotated ray's depth, linear in x: where it is positive at
            # both ends of the row, every ray stays in front of the camera.
            if bz > 0 and h[2, 0] * (cols - 1) + bz > 0:
                for x in range(cols):
                    fx = np.float32(x)
                    inv = np.float32(1.0) / (gx * fx + gz)
                    out[i, 0, y, x] = ((ax - gx * fx) * fx + cx) * inv
                    out[i, 1, y, x] = (ay * fx + cy) * inv
                continue
            for x in range(cols):  # rays turned behind the camera have no image
                depth = h[2, 0] * x + bz
                if depth > 0:
                    out[i, 0, y, x] = (h[0, 0] * x + bx) / depth - x
                    out[i, 1, y, x] = (h[1, 0] * x + by) / depth - y
                else:
                    out[i, 0, y, x] = np.nan
                    out[i, 1, y, x] = np.nan


@numba.njit(parallel=True, cache=True, fastmath=_FAST)
def _warp_rays(R: np.ndarray, rays: np.ndarray, intr: np.ndarray, model: int,
               dist: np.ndarray, fold: float, out: np.ndarray) -> None:
    """Distorted case (OpenCV or fisheye model): rotate each pixel's undistorted ray,
    re-project and re-distort."""
    T, _, rows, cols = out.shape
    fx, fy, cx, cy = intr[0], intr[1], intr[2], intr[3]
    for y in numba.prange(rows):
        for i in range(T):
            r = R[i, y]
            for x in range(cols):
                u = rays[y, x, 0]
                v = rays[y, x, 1]
                X = r[0, 0] * u + r[0, 1] * v + r[0, 2]
                Y = r[1, 0] * u + r[1, 1] * v + r[1, 2]
                Z = r[2, 0] * u + r[2, 1] * v + r[2, 2]
                xd, yd = _project(X, Y, Z, model, dist, fold)
                out[i, 0, y, x] = fx * xd + cx - x
                out[i, 1, y, x] = fy * yd + cy - y


def warp_displacements(R_rows: np.ndarray, camera: Camera,
                       out: np.ndarray | None = None) -> np.ndarray:
    """Displacement of every pixel under a rotation per (sample, row).

    For pixel ``p`` of row ``y`` and rotation ``Q = R_rows[i, y]`` (applied to camera rays),
    ``p + out[i, :, y, x] = distort(pi(Q @ undistort(p)))``. With ``Q = R(t_ref)^T R(t_i)``
    this is the rotational blur trajectory of CONVENTIONS. NaN where the lens model has no
    image of the turned ray (behind a perspective camera, past the model's fold).

    Args:
        R_rows: ``(T, H, 3, 3)`` rotations, one per sample and image row.
        camera: the camera at the resolution of the output.
        out: optional preallocated ``(T, 2, H, W)`` float32 array to fill.

    Returns:
        ``(T, 2, H, W)`` float32 displacements in pixels.

    Example:
        >>> cam = Camera(width=4, height=3, fx=2.0, fy=2.0, cx=1.5, cy=1.0)
        >>> d = warp_displacements(np.tile(np.eye(3), (1, 3, 1, 1)), cam)
        >>> d.shape, float(abs(d).max())
        ((1, 2, 3, 4), 0.0)
    """
    R_rows = np.asarray(R_rows)
    if R_rows.ndim != 4 or R_rows.shape[2:] != (3, 3):
        raise ValueError(f"R_rows must be (T, H, 3, 3) rotations, got shape {R_rows.shape}")
    T, rows = R_rows.shape[:2]
    if rows != camera.height:
        raise ValueError(f"R_rows has {rows} rows but the camera {camera.height}")
    shape = (T, 2, camera.height, camera.width)
    if out is None:
        out = np.empty(shape, np.float32)
    elif out.shape != shape or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous float32 array {shape}, got {out.shape} "
                         f"{out.dtype}")
    R_rows = np.ascontiguousarray(R_rows, dtype=np.float64)
    if camera.distortion_model == "none":
        H = camera.K @ R_rows @ camera.K_inv
        _warp_homography(H, out)
    else:
        dist = np.zeros(8)
        dist[: len(camera.distortion)] = camera.distortion
        intr = np.array([camera.fx, camera.fy, camera.cx, camera.cy])
        _warp_rays(R_rows, camera.pixel_rays(), intr, _MODEL_CODES[camera.distortion_model],
                   dist, camera.fold, out)
    return out
