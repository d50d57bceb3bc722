"""Translational image velocity ``tau`` and ``traj_tran`` (CONVENTIONS, Translation).

A gyro sees rotation only. What it cannot see is measured as optical flow between
neighbouring frames minus the flow that the gyro rotation predicts, divided by their time
difference: ``tau(p)`` in px/s. Pixels where forward and backward flow disagree (occlusions,
moving objects the flow got wrong, frame borders) are masked and filled from the nearest
valid pixel. ``traj_tran[i](p) = (t_ref - t_i) * tau(p)``: the scene point seen at ``p`` at
``t_i`` lay there at ``t_ref``, as ``traj_rot`` is defined (docs/conventions.md: the shared
page writes ``(t_i - t_ref)``, which with ``tau`` the image velocity contradicts its own
definition of a trajectory and would double a gyro error instead of cancelling it).
"""

from __future__ import annotations

import functools
from collections.abc import Container, Iterable, Iterator
from dataclasses import dataclass

import cv2
import numba
import numpy as np

from gyrodeblur.geometry.camera import Camera
from gyrodeblur.geometry.rotation import Orientation
from gyrodeblur.kernels.flow import FlowBackend, consistent, flow_backend
from gyrodeblur.kernels.rotation import check_exposure_time, check_samples
from gyrodeblur.kernels.warp import warp_displacements


def rotation_flow(orientation: Orientation, camera: Camera, t_a: np.ndarray,
                  t_b: np.ndarray) -> np.ndarray:
    """Gyro-predicted flow from an image seen at per-row times ``t_a`` to one at ``t_b``.

    Returns ``(H, W, 2)`` float32: pixel ``p`` of row ``y`` moves to
    ``H(t_b(y) <- t_a(y)) p``: the target taken at the source row's time (under a rolling
    shutter a point that moves ``flow_y`` rows is seen ``flow_y t_r / (H - 1)`` away from it,
    which :func:`pair_velocity` corrects with the measured flow). ``t_a``, ``t_b``: ``(H,)``
    gyro-clock times, a row's each (:func:`~gyrodeblur.kernels.rotation.sample_times`' second
    result: its mid-exposure).
    """
    for name, t in (("t_a", t_a), ("t_b", t_b)):
        if np.shape(t) != (camera.height,):
            raise ValueError(f"{name}: one time per row, ({camera.height},), got shape "
                             f"{np.shape(t)} (sample_times gives a frame's)")
    R_rows = orientation.relative(np.asarray(t_b)[None], np.asarray(t_a)[None])
    return np.moveaxis(warp_displacements(R_rows, camera)[0], 0, -1)


@dataclass(frozen=True)
class PairVelocity:
    """Translational velocities measured from one pair of neighbouring frames ``a, b``.

    Attributes:
        tau_a, tau_b: ``(H, W, 2)`` float32 px/s at the pixels of ``a`` and of ``b``.
        valid_a, valid_b: ``(H, W)`` bool: forward-backward consistent, with a ray through
            the lens model.
    """

    tau_a: np.ndarray
    valid_a: np.ndarray
    tau_b: np.ndarray
    valid_b: np.ndarray


def pair_velocity(gray_a: np.ndarray, gray_b: np.ndarray, orientation: Orientation,
                  camera: Camera, t_a: np.ndarray, t_b: np.ndarray,
                  flow: str | FlowBackend = "dis") -> PairVelocity:
    """``tau`` at both frames of a pair from their flows in both directions.

    Args:
        gray_a, gray_b: uint8 gray frames at the camera's resolution.
        orientation: camera orientation (gyro in camera axes).
        camera: camera at the frames' resolution.
        t_a, t_b: ``(H,)`` per-row reference (mid-exposure) times on the gyro clock, rows
            read as the camera reads them (:func:`~gyrodeblur.kernels.rotation.sample_times`).
        flow: optical flow backend: a name in ``FLOW_BACKENDS`` or a function
            ``(prev, next) -> (H, W, 2)`` flow.
    """
    for name, gray in (("gray_a", gray_a), ("gray_b", gray_b)):
        if not (isinstance(gray, np.ndarray) and gray.dtype == np.uint8 and
                gray.shape == (camera.height, camera.width)):
            raise ValueError(f"{name} must be a uint8 gray frame ({camera.height}, "
                             f"{camera.width}) as the camera, got {getattr(gray, 'dtype', '')} "
                             f"{np.shape(gray)} (kernels.flow.to_gray_u8 makes one)")
    for name, times in (("t_a", t_a), ("t_b", t_b)):
        if np.shape(times) != (camera.height,):
            raise ValueError(f"{name} must be the ({camera.height},) per-row times, got shape "
                             f"{np.shape(times)}")
    flow = flow_backend(flow)
    forward, backward = flow(gray_a, gray_b), flow(gray_b, gray_a)
    tau_a = _residual_velocity(forward, orientation, camera, np.asarray(t_a), np.asarray(t_b))
    tau_b = _residual_velocity(backward, orientation, camera, np.asarray(t_b), np.asarray(t_a))
    # A pixel without a ray through the lens model has NaN rotational flow: nothing measured.
    return PairVelocity(tau_a, consistent(forward, backward) & np.isfinite(tau_a).all(-1),
                        tau_b, consistent(backward, forward) & np.isfinite(tau_b).all(-1))


# Step of the time derivative of the gyro-predicted flow (s): rotation is smooth over it.
_RATE_STEP = 1e-3


def _residual_velocity(flow: np.ndarray, orientation: Orientation, camera: Camera,
                       t_from: np.ndarray, t_to: np.ndarray) -> np.ndarray:
    """``(flow - gyro flow) / time`` in px/s at the source frame's pixels ``p``.

    The flow's target is the translated point turned by the gyro, ``p + flow = G(p + r)``:
    the gyro flow is read at ``p + r`` (one step of the fixed point from ``r = flow - g(p)``;
    read at ``p``, the residual is turned by the frames' rotation, 7 % of it at 2 rad/s of
    roll and 30 fps, where a frame has one neighbour to even it out). ``G`` turns from the
    time the source row of ``p`` was read to the time the row the flow lands on was: under a
    rolling shutter the field read at ``p + r`` holds the turn between the times of another
    row, moved to those two by the field's rates in either time (first order)."""
    gyro = rotation_flow(orientation, camera, t_from, t_to)
    dt = (t_to - t_from).astype(np.float32)[:, None]
    grid = _pixel_grid(*flow.shape[:2])
    if not camera.readout_time:
        turned = cv2.remap(gyro, grid + (flow - gyro), None, cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
        return (flow - turned) / dt[..., None]
    starts = camera.row_start_times(0.0)
    per_row = np.float32((starts[-1] - starts[0]) / max(camera.height - 1, 1))  # < 0: upwards
    rate_to, rate_from = ((rotation_flow(orientation, camera, t_from + step_from,
                                         t_to + step_to) - gyro) / np.float32(_RATE_STEP)
                          for step_from, step_to in ((0.0, _RATE_STEP), (_RATE_STEP, 0.0)))
    landed = per_row * flow[..., 1]  # when the target was seen, after its row's time in b
    residual = flow - gyro - rate_to * landed[..., None]
    # The fields read at p + r hold the times of the row r_y below: moved back to p's own.
    later = (per_row * residual[..., 1])[..., None]
    points = grid + residual
    read_gyro, read_to, read_from = (
        cv2.remap(field, points, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        for field in (gyro, rate_to, rate_from))
    turned = read_gyro + read_to * (landed[..., None] - later) - read_from * later
    return (flow - turned) / (dt + landed)[..., None]


@functools.lru_cache(maxsize=4)
def _pixel_grid(height: int, width: int) -> np.ndarray:
    """``(H, W, 2)`` float32 pixel coordinates ``(x, y)`` (read-only, shared)."""
    grid = np.dstack(np.meshgrid(np.arange(width, dtype=np.float32),
                                 np.arange(height, dtype=np.float32)))
    grid.flags.writeable = False
    return grid


@numba.njit(cache=True)
def _nearest_valid_row(valid: np.ndarray, row: np.ndarray) -> None:
    """``row[y, x]``: the row of the valid pixel of column ``x`` nearest to ``y``, or -1.

    Row-major sweeps down and up, so memory is read in order."""
    height, width = valid.shape
    last = np.full(width, -1, np.int32)
    for y in range(height):
        for x in range(width):
            if valid[y, x]:
                last[x] = y
            row[y, x] = last[x]
    last[:] = -1
    for y in range(height - 1, -1, -1):
        for x in range(width):
            if valid[y, x]:
                last[x] = y
            below = last[x]
            if below >= 0 and (row[y, x] < 0 or below - y < y - row[y, x]):
                row[y, x] = below


@numba.njit(parallel=True, cache=True)
def _fill_from_nearest(field: np.ndarray, row: np.ndarray, out: np.ndarray) -> None:
    """``out[y, x] = field[row[y, q], q]`` for the column ``q`` minimising
    ``(x - q)^2 + (y - row[y, q])^2``: the exact Euclidean nearest valid pixel.

    The lower envelope of one parabola per column (Felzenszwalb and Huttenlocher, 2012);
    some column has a valid pixel."""
    height, width = row.shape
    for y in numba.prange(height):
        apex = np.empty(width, np.int64)  # the columns whose parabolas make the envelope
        start = np.empty(width, np.float64)  # where each starts to be the lowest
        k = -1
        for q in range(width):
            if row[y, q] < 0:
                continue
            f_q = float((y - row[y, q]) ** 2 + q * q)
            s = -np.inf
            while k >= 0:
                v = apex[k]
                s = (f_q - float((y - row[y, v]) ** 2 + v * v)) / (2.0 * (q - v))
                if s > start[k]:
                    break
                k -= 1
            k += 1
            apex[k] = q
            start[k] = s
        j = 0
        for x in range(width):
            while j < k and start[j + 1] <= x:
                j += 1
            out[y, x] = field[row[y, apex[j]], apex[j]]


def fill_nearest(field: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Replace invalid pixels of ``field (H, W, C)`` by the nearest valid pixel's value.

    With no valid pixel at all the field is zero (no measurable translation).

    Example:
        >>> f = np.array([[[1.0], [9.0], [3.0]]]); v = np.array([[True, False, True]])
        >>> fill_nearest(f, v)[0, :, 0].tolist() in ([1.0, 1.0, 3.0], [1.0, 3.0, 3.0])
        True
    """
    field, valid = np.asarray(field), np.asarray(valid)
    if field.ndim != 3 or valid.shape != field.shape[:2] or valid.dtype != bool:
        raise ValueError(f"need field (H, W, C) and a bool valid (H, W) of its size; got "
                         f"field {field.shape}, valid {valid.shape} {valid.dtype}")
    if valid.all():
        return field
    if not valid.any():
        return np.zeros_like(field)
    row = np.empty(valid.shape, np.int32)
    _nearest_valid_row(np.ascontiguousarray(valid), row)
    out = np.empty_like(field)
    _fill_from_nearest(field, row, out)
    return out


def combine_velocities(taus: list[np.ndarray],
                       valids: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Average a frame's ``tau`` measured against each neighbour where valid, then fill.

    Returns ``tau (H, W, 2)`` float32 (filled) and the mask of measured pixels ``(H, W)``.
    """
    if len(taus) == 1:
        return fill_nearest(taus[0], valids[0]), valids[0]
    weights = np.stack(valids).astype(np.float32)[..., None]
    total = weights.sum(axis=0)
    # Where a measure is not valid it may be NaN (no ray), which a zero weight would keep.
    mean = np.where(weights > 0, np.stack(taus), 0).sum(axis=0) / np.maximum(total, 1.0)
    mask = total[..., 0] > 0
    return fill_nearest(mean.astype(np.float32), mask), mask


def stream_velocities(frames: Iterable[tuple[int, np.ndarray, np.ndarray]],
                      orientation: Orientation, camera: Camera,
                      flow: str | FlowBackend = "dis",
                      wanted: Container[int] | None = None,
                      ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """``tau`` of every frame of a stream, measured against its neighbours ``n - 1, n + 1``.

    Each pair of consecutive frames is measured once (flows both ways) and serves both. A
    frame is yielded as soon as its next frame has been seen, so only two frames are held.

    Args:
        frames: ``(number, gray uint8, t_ref (H,))`` in increasing frame number.
        orientation, camera, flow: as :func:`pair_velocity`.
        wanted: the frames whose ``tau`` is used (default all): a pair of two others is not
            measured, and their ``tau`` is left partial.

    Yields:
        ``(number, tau (H, W, 2), mask (H, W))`` as :func:`combine_velocities` returns them;
        a frame without a neighbour has zero ``tau`` and an all-false mask.
    """
    flow = flow_backend(flow)
    measured: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    previous = None
    for number, gray, t_ref in frames:
        measured[number] = []
        if previous is not None and previous[0] == number - 1 and (
                wanted is None or previous[0] in wanted or number in wanted):
            pv = pair_velocity(previous[1], gray, orientation, camera, previous[2], t_ref, flow)
            measured[number - 1].append((pv.tau_a, pv.valid_a))
            measured[number].append((pv.tau_b, pv.valid_b))
        if previous is not None:
            yield previous[0], *_combined(measured.pop(previous[0]), gray.shape)
        previous = (number, gray, t_ref)
    if previous is not None:
        yield previous[0], *_combined(measured.pop(previous[0]), previous[1].shape)


def _combined(measured: list[tuple[np.ndarray, np.ndarray]],
              shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    if not measured:
        return np.zeros(shape + (2,), np.float32), np.zeros(shape, bool)
    return combine_velocities(*zip(*measured, strict=True))


def translation_trajectories(tau: np.ndarray, exposure: float, samples: int) -> np.ndarray:
    """``traj_tran (T, 2, H, W)`` float32 from ``tau (H, W, 2)`` in px/s.

    ``t_ref - t_i = t_e (1/2 - i / (T - 1))`` is the same for every row: a point moving right
    was left of ``p`` at ``t_ref`` when seen at ``p`` after it.

    Example:
        >>> tr = translation_trajectories(np.full((1, 1, 2), 100.0, np.float32), 0.02, 3)
        >>> tr[:, 0, 0, 0].tolist()
        [1.0, 0.0, -1.0]
    """
    tau = np.asarray(tau)
    if tau.ndim != 3 or tau.shape[2] != 2:
        raise ValueError(f"tau: must be (H, W, 2) px/s, got shape {tau.shape}")
    check_samples(samples)
    if np.ndim(exposure):
        raise ValueError("exposure is one frame's seconds (a number)")
    check_exposure_time(exposure)
    offsets = (exposure * (0.5 - np.arange(samples) / (samples - 1))).astype(np.float32)
    # In float32 throughout: 4x faster than through float64, the same to 2e-7 px.
    return offsets[:, None, None, None] * np.moveaxis(tau.astype(np.float32, copy=False), -1,
                                                      0)[None]
