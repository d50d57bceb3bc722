"""Gyro-video synchronisation: the camera's ``time_offset`` (and readout time) from the video.

The video's own motion is matched with the motion the gyro predicts. For pairs of consecutive
frames, optical flow on downscaled gray frames gives where a grid of points went; their
undistorted rays give, per horizontal band of rows, the rotation between the two frames
(weighted Kabsch with iteratively reweighted Cauchy weights, so moving objects and
translation parallax do not bias it). Each band has its own times in each frame: its rows'
start (rolling shutter) plus instants spread over the exposure. A blurred frame shows the
scene at the camera's mean pose over its exposure, which is the mid-exposure pose only while
the rate is steady (a long exposure under changing motion would bias the offset by
milliseconds), so each band's pose is the chordal mean of the gyro's poses at those instants.
For a candidate offset ``d`` (``t_gyro = t_frame + d``, CONVENTIONS) the gyro gives the
relative rotation ``mean_b^T mean_a`` between the matching mean poses; the cost is a robust
(Cauchy) sum of the squared angles between measured and gyro rotations, after removing a
constant rate bias (gyro bias, and the rotation-like part of a steady translation). The cost
is evaluated on a coarse grid over the search range, then refined by golden-section search
to well below a millisecond; the readout time can be refined the same way as a second
parameter. The confidence says how deep and how unique the minimum is, how much of the
video's rotation the gyro explains there (a still video or an unrelated gyro can still show a
sharp minimum: the bias removal absorbs much of a few pairs' motion), and how many pairs it
rests on.

Frames are streamed: only the two frames of the current pair are held.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from gyrodeblur.errors import InputError
from gyrodeblur.footage import FrameTiming, check_unit_range, resize_frame
from gyrodeblur.geometry.camera import Camera
from gyrodeblur.geometry.gyro import GyroLog, clock_note, holes, seconds_text, widest_hole_text
from gyrodeblur.geometry.rotation import Orientation, log_so3
from gyrodeblur.kernels.flow import FlowBackend, flow_backend, to_gray_u8
from gyrodeblur.kernels.rotation import camera_orientation, complete_camera

__all__ = ["FULL_SUPPORT_PAIRS", "RELIABLE_CONFIDENCE", "BandRotations", "SyncResult",
           "estimate_sync", "fit_sync", "measure_rotations"]

FrameSource = Callable[[np.ndarray], Iterable[tuple[int, np.ndarray]]]
"""Yields ``(number, image)`` for the asked 1-based frame numbers in increasing order, images
``(H, W, 3)`` float RGB in ``[0, 1]`` (or uint8) at the camera's resolution; e.g.
:meth:`gyrodeblur.footage.Footage.frames`."""

_GRID_STEP_PX = 12  # grid spacing at the processing width
_BORDER_PX = 6  # flow is least reliable at the image border
_MIN_BAND_POINTS = 12
_IRLS_STEPS = 6
_CAUCHY_C = 2.385  # 95 % efficiency of the Cauchy weight for Gaussian noise
_FLOOR_PX = 0.05  # residual scales below this (flow precision) are not trusted
_NO_MOTION_PX = 0.2  # a camera rotating less than this between frames cannot be synchronised
_CHUNK = 200_000  # rotations evaluated at once (memory bound of the cost)
_EXPOSURE_SAMPLES = 5  # poses averaged over each exposure
# The other readout direction is tried where the readout found is below this share of its
# range (the wrong one pins it at 0), and taken where its residuals are this much smaller: a
# global shutter (no readout) fits both alike and keeps the camera's.
_FLIP_BELOW, _FLIP_GAIN = 0.1, 0.8
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0
_RIVALS = 3  # the lowest other minima refined for the confidence
# A half of a clip is fitted alone where its median rotation between frames is this many times
# the flow's precision: a still half has no offset of its own.
_DRIFT_MOTION = 4.0
RELIABLE_CONFIDENCE = 0.3
"""Below this confidence an estimate is not to be trusted (:attr:`SyncResult.reliable`)."""
FULL_SUPPORT_PAIRS = 8
"""Frame pairs for full confidence; fewer scale it down (3 pairs fit unrelated gyros)."""
MIN_PAIRS = 3
"""Consecutive frame pairs a synchronisation needs at the least."""


@dataclass(frozen=True)
class BandRotations:
    """Rotations measured from the video, one per band of rows of a frame pair ``a, b``.

    ``ray_b = R @ ray_a`` for a scene point seen on ray ``a`` in frame ``a`` and ``b`` in frame
    ``b`` (so the gyro predicts ``R = mean_b^T mean_a``, each the band's mean pose over its
    exposure: the instants ``start + offset + frac * readout_time + u * exposure``, ``u``
    spread over ``[0, 1]``).

    Attributes:
        R: ``(K, 3, 3)`` measured rotations.
        start_a, start_b: ``(K,)`` exposure start of the first-read row of each frame, seconds
            on the frame clock.
        exposure_a, exposure_b: ``(K,)`` exposure times (s).
        frac_a, frac_b: ``(K,)`` mean readout fraction (0 first-read row, 1 last) of the
            band's points in each frame.
        pairs: number of frame pairs the bands come from.
        focal: focal length (px) at the processing resolution, to express angles in pixels.
    """

    R: np.ndarray
    start_a: np.ndarray
    start_b: np.ndarray
    exposure_a: np.ndarray
    exposure_b: np.ndarray
    frac_a: np.ndarray
    frac_b: np.ndarray
    pairs: int
    focal: float

    def times(self, offset: np.ndarray, readout: np.ndarray, samples: int = 1
              ) -> tuple[np.ndarray, np.ndarray]:
        """Gyro-clock instants ``(..., K, samples)`` of every band in frames ``a`` and ``b``:
        the midpoints of ``samples`` equal parts of its exposure (one: mid-exposure).

        ``offset`` and ``readout`` broadcast against each other; two trailing axes are added.
        """
        offset = np.asarray(offset, np.float64)[..., None, None]
        readout = np.asarray(readout, np.float64)[..., None, None]
        u = (np.arange(samples) + 0.5) / samples
        return (self.start_a[:, None] + u * self.exposure_a[:, None] + offset
                + self.frac_a[:, None] * readout,
                self.start_b[:, None] + u * self.exposure_b[:, None] + offset
                + self.frac_b[:, None] * readout)


@dataclass(frozen=True)
class SyncResult:
    """Outcome of :func:`estimate_sync`.

    Attributes:
        time_offset: seconds, ``t_gyro = t_frame + time_offset`` (CONVENTIONS).
        confidence: in ``[0, 1]``: the shape of the cost curve (near 1 for a deep, unique
            minimum; near 0 for a flat or ambiguous cost: too little motion, periodic motion,
            wrong data; 0 for a minimum at the edge of the search range) times ``explained``
            times ``min(1, pairs_used / FULL_SUPPORT_PAIRS)``.
        readout_time: the estimated readout time (s), ``None`` when it was not estimated.
        pairs_used: frame pairs that gave measurements.
        explained: the share of the video's rotation that the gyro explains at the estimate,
            ``1 - median residual angle / median measured angle`` clipped to ``[0, 1]``: near 1
            when they agree, 0 for a still video (no rotation beyond the flow's precision).
        gain: how far the gyro turns the camera between frames for each unit the video turns,
            the ratio of their median angles at the estimate: near 1 when they agree; far from
            it for a gyro in other units than it claims (57.3 for degrees read as radians) or
            a wrong ``gscale``; infinite where the video shows no rotation beyond the flow's
            precision.
        offsets, costs: ``(C,)`` the coarse cost curve (at the final readout time).
        search: half-width of the searched offsets (s, their ends: ``offsets``): as asked
            around the camera's time offset, or narrower (and moved) where the gyro covers
            too few frame pairs that far.
        readout_direction: with the readout time estimated, the direction the rows are read
            in that fits best (the camera's unless the other fits clearly better); else None.
        drift: how far apart (s) the offsets of the clip's two halves lie, each fitted alone,
            where that is over a quarter of the frame interval (frames dropped from a video
            timed by its frame rate, or a variable rate: the frame times are wrong, and the
            confidence is 0); else 0.
        motion_px: the video's median rotation between the frames of a pair, in pixels at
            the processing width (under half a pixel, little to time it by).
    """

    time_offset: float
    confidence: float
    readout_time: float | None
    pairs_used: int
    explained: float
    gain: float
    offsets: np.ndarray
    costs: np.ndarray
    search: float
    readout_direction: str | None = None
    drift: float = 0.0
    motion_px: float = math.inf

    @property
    def reliable(self) -> bool:
        """Whether the confidence reaches :data:`RELIABLE_CONFIDENCE`."""
        return self.confidence >= RELIABLE_CONFIDENCE

    @property
    def at_search_edge(self) -> bool:
        """Whether the cost is lowest at an end of the searched offsets: the offset may lie
        beyond them."""
        return int(np.argmin(self.costs)) in (0, len(self.costs) - 1)


def estimate_sync(frames: FrameSource, timing: FrameTiming, log: GyroLog, camera: Camera,
                  search: float = 0.2, estimate_readout: bool = False, max_pairs: int = 60,
                  width: int = 480, step: float = 0.002, bands: int = 8,
                  flow: str | FlowBackend = "dis") -> SyncResult:
    """Estimate the camera's ``time_offset`` by matching video motion with gyro motion.

    Args:
        frames: the footage (see :data:`FrameSource`), e.g. ``Footage(path).frames``.
        timing: exposure timing of the frames (frame clock).
        log: the gyro log as read (IMU axes; ``camera.imu_to_camera`` turns it).
        camera: the camera at the frames' resolution; its ``time_offset`` is the centre of the
            search and its ``readout_time`` is used (or the start of the readout refinement);
            what the log knows and it does not is taken (:func:`complete_camera`).
        search: half-width of the searched offsets (s); narrowed (and moved to one side)
            where the gyro covers too few frame pairs that far (:attr:`SyncResult.search`).
        estimate_readout: also estimate the readout time, in ``[0, frame interval]``, and its
            direction (:attr:`SyncResult.readout_direction`).
        max_pairs: at most this many pairs of consecutive frames, evenly spread.
        width: processing width (px); frames are downscaled to it, never upscaled.
        step: coarse grid step (s).
        bands: bands of rows per frame, each with its own rolling-shutter time.
        flow: optical flow backend: a name in ``FLOW_BACKENDS`` or a function
            ``(prev, next) -> (H, W, 2)`` flow.

    Raises:
        InputError: fewer than 3 usable frame pairs, the gyro not covering 3 of them over
            at least ``+-5 step``, or a gyro that shows no rotation.

    Example:
        >>> import cv2
        >>> from gyrodeblur.geometry.rotation import integrate
        >>> from gyrodeblur.synthesis.motion import load_shake_model
        >>> rng = np.random.default_rng(0)
        >>> log = load_shake_model().sample(2.0, 400.0, rng, scale=3.0)
        >>> cam = Camera(64, 48, 60.0, 60.0, 31.5, 23.5)
        >>> timing = FrameTiming(np.arange(1, 13), 0.6 + np.arange(12) / 30, np.full(12, 0.01))
        >>> big = cv2.GaussianBlur(rng.random((480, 640)).astype(np.float32), (0, 0), 2.0)
        >>> o, world = integrate(log.t, log.w), Camera(640, 480, 60.0, 60.0, 319.5, 239.5)
        >>> def render(numbers):  # a distant scene seen with a gyro 25 ms ahead of the frames
        ...     for n in numbers:
        ...         t = timing.t_start[n - 1] + 0.005 + 0.025  # mid-exposure, gyro clock
        ...         M = world.K @ o.relative(1.0, t) @ cam.K_inv  # view pixel -> world pixel
        ...         view = cv2.warpPerspective(big, M, (64, 48), flags=cv2.INTER_CUBIC
        ...                                    | cv2.WARP_INVERSE_MAP)
        ...         yield n, np.repeat(view[..., None], 3, axis=2)
        >>> result = estimate_sync(render, timing, log, cam, search=0.1, bands=1)
        >>> round(result.time_offset, 3), result.confidence > 0.5
        (0.025, True)
    """
    if not (0 < search < math.inf and 0 < step < math.inf):  # NaN too
        raise ValueError(f"search and step must be positive seconds, got {search}, {step}")
    if max_pairs < MIN_PAIRS or bands < 1 or width < 2:
        raise ValueError(f"max_pairs must be at least {MIN_PAIRS}, bands at least 1 and width "
                         f"at least 2, got {max_pairs}, {bands}, {width}")
    flow = flow_backend(flow)
    camera = complete_camera(camera, log)  # its axes and readout, not the subset log's below
    readout_max = float(np.median(np.diff(timing.t_start))) if len(timing) > 1 else 0.0
    reach = max(camera.readout_time, readout_max if estimate_readout else 0.0)
    pairs, low, high = _usable_pairs(timing, log, camera.time_offset, search, reach, step)
    # The search is centred on the camera's time offset, or moved where the log has room.
    camera = camera.replace(time_offset=camera.time_offset + (low + high) / 2)
    search = (high - low) / 2
    if len(pairs) > max_pairs:
        pairs = pairs[np.round(np.linspace(0, len(pairs) - 1, max_pairs)).astype(int)]
    # Only the searched span of the log is integrated.
    rows = timing.frame.searchsorted(pairs)
    t0 = timing.t_start[rows].min() + camera.time_offset - search
    t1 = (timing.t_start[rows + 1] + timing.exposure[rows + 1]).max() + reach \
        + camera.time_offset + search
    orientation = camera_orientation(log, camera, (t0, t1))
    _check_motion(orientation, camera, float(np.median(timing.t_start[rows + 1]
                                                       - timing.t_start[rows])), log.source)
    measured = measure_rotations(frames, timing, camera, pairs, width, bands, flow)
    if measured.pairs < MIN_PAIRS:
        raise InputError(timing.source or None, f"only {measured.pairs} frame pair(s) gave "
                                                f"usable optical flow; need {MIN_PAIRS}")
    return fit_sync(measured, orientation, camera, search, step,
                    readout_max if estimate_readout else None)


def _usable_pairs(timing: FrameTiming, log: GyroLog, offset: float, search: float,
                  reach: float, step: float) -> tuple[np.ndarray, float, float]:
    """First frame numbers of the consecutive pairs whose times the log covers at every
    searched offset, and the searched offsets ``offset + low .. offset + high``: ``+-search``,
    or where the log covers too few pairs that far (a log that starts or ends near the
    frames), the widest span inside it that keeps the pairs of full confidence covered (as
    many as there are, down to ``MIN_PAIRS``) and is at least ``10 step`` wide: fewer pairs
    or a narrower span could not make the estimate reliable. The span need not be centred
    on ``offset``: a log that starts with the video leaves room on one side only."""
    consecutive = np.flatnonzero(np.diff(timing.frame) == 1)
    if len(consecutive) < MIN_PAIRS:
        raise InputError(timing.source or None, f"{len(timing)} frame(s) with "
                                                f"{len(consecutive)} consecutive pair(s); "
                                                f"synchronisation needs {MIN_PAIRS} pairs: "
                                                "give more frames")
    first = timing.t_start[consecutive] + offset
    last = timing.t_start[consecutive + 1] + timing.exposure[consecutive + 1] + reach + offset
    # The offsets (from `offset`, within the search) at which the log covers each pair.
    low = np.maximum(log.t[0] - first, -search)
    high = np.minimum(log.t[-1] - last, search)
    # A pair that meets a hole in the log at some searched offset, where its motion would be
    # guessed, is left out.
    gaps = holes(log)
    meets = (first[:, None] - search < gaps[:, 1]) & (last[:, None] + search > gaps[:, 0])
    holed = meets.any(axis=1)
    low[holed], high[holed] = np.inf, -np.inf
    n = len(low)
    covered = (low <= -search) & (high >= search)
    if covered.sum() >= min(FULL_SUPPORT_PAIRS, n):
        return timing.frame[consecutive[covered]], -search, search
    # Runs of k consecutive pairs (pairs further apart in time cover fewer offsets together):
    # the widest common span of the most pairs.
    for k in range(min(FULL_SUPPORT_PAIRS, n), MIN_PAIRS - 1, -1):
        lows = np.lib.stride_tricks.sliding_window_view(low, k).max(axis=1)
        highs = np.lib.stride_tricks.sliding_window_view(high, k).min(axis=1)
        j = int(np.argmax(highs - lows))
        if highs[j] - lows[j] >= 10 * step:
            a, b = float(lows[j]), float(highs[j])
            return timing.frame[consecutive[(low <= a) & (high >= b)]], a, b
    if holed.any():
        raise InputError(log.source or None,
                         f"{widest_hole_text(gaps[meets.any(axis=0)])}: fewer than "
                         f"{MIN_PAIRS} frame pairs are clear of its holes over the searched "
                         f"offsets ({seconds_text(offset)} +-{search:g} s); search a narrower "
                         "span, or give frames away from the hole")
    raise InputError(log.source or None,
                     f"gyro covers {seconds_text(log.t[0], 3)} to {seconds_text(log.t[-1], 3)} s "
                     f"but the frames need {seconds_text(first.min(), 3)} to "
                     f"{seconds_text(last.max(), 3)} s at the camera's time offset "
                     f"({seconds_text(offset)} s), searched over +-{search:g} s: it covers "
                     f"fewer than {MIN_PAIRS} frame pairs at any of those offsets (a gyro log "
                     "shorter than the clip, or clocks that differ: set a rough --time-offset, "
                     "about 0 for a .gcsv or a camera file's own gyro; a video's timestamps "
                     f"start at 0){clock_note(log)}")


def _check_motion(orientation: Orientation, camera: Camera, interval: float,
                  source: str | None) -> None:
    """Refuse a gyro that never turns the camera by a measurable amount between frames."""
    turned = np.linalg.norm(orientation.w, axis=1) * interval
    if turned.max() * max(camera.fx, camera.fy) < _NO_MOTION_PX:
        raise InputError(source or None, "shows no camera rotation over these frames: there "
                                         "is no motion to synchronise on")


def measure_rotations(frames: FrameSource, timing: FrameTiming, camera: Camera,
                      pairs: np.ndarray, width: int = 480, bands: int = 8,
                      flow: str | FlowBackend = "dis") -> BandRotations:
    """Per-band rotations between frames ``n`` and ``n + 1`` for each ``n`` in ``pairs``.

    Frames are streamed through ``frames`` (two held at a time), turned gray and downscaled to
    ``width``; the flow of a point grid is turned into ray pairs and each band's rotation is
    fitted robustly. Bands with too few points are left out.

    Args:
        frames, timing, camera, width, bands, flow: as :func:`estimate_sync`.
        pairs: first frame numbers of the pairs, increasing.
    """
    flow = flow_backend(flow)
    proc = camera.no_wider_than(width)
    first = set(int(n) for n in pairs)
    rows = {int(n): i for i, n in enumerate(timing.frame)}
    parts: list[tuple[np.ndarray, ...]] = []
    previous: tuple[int, np.ndarray] | None = None
    wanted = np.union1d(pairs, pairs + 1)
    for number, image in _checked(frames(wanted), wanted, camera):
        gray = resize_frame(to_gray_u8(image), proc.width, proc.height)
        if previous is not None and previous[0] == number - 1 and previous[0] in first:
            R, frac_a, frac_b = _pair_rotations(previous[1], gray, proc, bands, flow)
            a, b = rows[number - 1], rows[number]
            if len(R):
                parts.append((R, *(np.full(len(R), v) for v in (
                    timing.t_start[a], timing.t_start[b], timing.exposure[a],
                    timing.exposure[b])), frac_a, frac_b))
        previous = (number, gray)
    used = len(parts)
    if not parts:
        parts = [(np.empty((0, 3, 3)),) + (np.empty(0),) * 6]
    return BandRotations(*(np.concatenate(c) for c in zip(*parts, strict=True)), pairs=used,
                         focal=proc.fx)


def _pair_rotations(gray_a: np.ndarray, gray_b: np.ndarray, camera: Camera, bands: int,
                    flow: FlowBackend) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rotation ``(K, 3, 3)`` of each band with enough points, and its mean readout fractions
    ``(K,)`` in ``a`` and in ``b``."""
    h, w = gray_a.shape
    gy, gx = np.mgrid[_BORDER_PX:h - _BORDER_PX:_GRID_STEP_PX,
                      _BORDER_PX:w - _BORDER_PX:_GRID_STEP_PX]
    gx, gy = gx.ravel(), gy.ravel()
    p = np.stack([gx, gy], -1).astype(np.float64)
    q = p + flow(gray_a, gray_b)[gy, gx].astype(np.float64)
    ray_a, ray_b = _unit_rays(camera, p), _unit_rays(camera, q)
    valid = (q[:, 0] >= 0) & (q[:, 0] <= w - 1) & (q[:, 1] >= 0) & (q[:, 1] <= h - 1) \
        & np.isfinite(ray_a).all(1) & np.isfinite(ray_b).all(1)
    bands = max(min(bands, len(np.unique(gy)) // 2), 1)  # two grid rows per band at least
    member = (np.minimum(gy * bands // h, bands - 1) == np.arange(bands)[:, None]) & valid
    ok = member.sum(1) >= _MIN_BAND_POINTS
    R, weight = _band_rotations(ray_a, ray_b, member[ok], _FLOOR_PX / camera.fx)
    total = weight.sum(1)
    return (R, weight @ _readout_fraction(p[:, 1], camera) / total,
            weight @ _readout_fraction(q[:, 1], camera) / total)


def _checked(frames: Iterable[tuple[int, np.ndarray]], wanted: np.ndarray,
             camera: Camera) -> Iterator[tuple[int, np.ndarray]]:
    """The frames of the source, refused unless they are the ones asked for, in order, at
    the camera's size and in the value range of images."""
    count = 0
    for count, (number, image) in enumerate(frames, start=1):
        if count > len(wanted) or number != wanted[count - 1]:
            raise ValueError(f"the frame source yielded frame {number} as its frame {count}; "
                             f"asked for {wanted[0]}..{wanted[-1]} ({len(wanted)} frames)")
        if (image.shape[1], image.shape[0]) != (camera.width, camera.height):
            raise InputError(None, f"frame {number} is {image.shape[1]}x{image.shape[0]} but "
                                   f"the camera is {camera.width}x{camera.height}")
        check_unit_range(image, f"frame {number}")
        yield number, image
    if count < len(wanted):
        raise ValueError(f"the frame source ended after {count} of {len(wanted)} frames")


def _unit_rays(camera: Camera, pts: np.ndarray) -> np.ndarray:
    xn = camera.undistort_points(pts)
    rays = np.concatenate([xn, np.ones(xn.shape[:-1] + (1,))], -1)
    return rays / np.linalg.norm(rays, axis=-1, keepdims=True)


def _readout_fraction(y: np.ndarray, camera: Camera) -> np.ndarray:
    frac = y / max(camera.height - 1, 1)
    return 1.0 - frac if camera.readout_direction == "bottom_to_top" else frac


def _kabsch(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Rotations ``(B, 3, 3)`` minimising ``sum_n w[k, n] |R_k a_n - b_n|^2`` for each ``k``."""
    u, _, vt = np.linalg.svd(np.swapaxes(w[:, :, None] * b, 1, 2) @ a)
    u[:, :, 2] *= np.where(np.linalg.det(u @ vt) < 0, -1.0, 1.0)[:, None]
    return u @ vt


def _band_rotations(ray_a: np.ndarray, ray_b: np.ndarray, member: np.ndarray,
                    floor: float) -> tuple[np.ndarray, np.ndarray]:
    """IRLS-Kabsch rotation ``(B, 3, 3)`` of each band, its points given by ``member (B, N)``,
    and the final weights ``(B, N)`` of its points."""
    a, b = np.nan_to_num(ray_a), np.nan_to_num(ray_b)  # NaN rays are no member's
    weight = member.astype(np.float64)
    count, band = member.sum(1), np.arange(len(member))
    for _ in range(_IRLS_STEPS):
        R = _kabsch(a, b, weight)
        err = np.linalg.norm(np.cross(a @ np.swapaxes(R, 1, 2), b), axis=-1)  # (B, N)
        ranked = np.sort(np.where(member, err, np.inf), axis=1)
        median = (ranked[band, (count - 1) // 2] + ranked[band, count // 2]) / 2
        scale = np.maximum(1.4826 * median, floor)[:, None]
        weight = member / (1.0 + (err / (_CAUCHY_C * scale)) ** 2)
    return _kabsch(a, b, weight), weight


def _gyro_rotations(m: BandRotations, orientation: Orientation, offset: np.ndarray,
                    readout: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The gyro's rotations ``(..., K, 3, 3)`` between the mean poses of each band's exposure
    in frames ``a`` and ``b``, with the band times ``(..., K, S)`` in each."""
    samples = _EXPOSURE_SAMPLES if max(m.exposure_a.max(initial=0.0),
                                        m.exposure_b.max(initial=0.0)) > 0 else 1
    t_a, t_b = m.times(offset, readout, samples)
    gyro = np.swapaxes(_mean_rotation(orientation.at(t_b)), -1, -2) \
        @ _mean_rotation(orientation.at(t_a))
    return gyro, t_a, t_b


def _residuals(m: BandRotations, orientation: Orientation, offset: np.ndarray,
               readout: np.ndarray) -> np.ndarray:
    """Angle-axis differences ``(..., K, 3)`` between gyro and measured rotations
    (:func:`_debiased_residuals` of :func:`_gyro_rotations`)."""
    return _debiased_residuals(m, *_gyro_rotations(m, orientation, offset, readout))


def _debiased_residuals(m: BandRotations, gyro: np.ndarray, t_a: np.ndarray, t_b: np.ndarray
                        ) -> np.ndarray:
    """Angle-axis differences ``(..., K, 3)`` between the gyro rotations ``gyro`` (at band
    times ``t_a``, ``t_b``) and the measured ones.

    A constant rate bias (gyro bias, or a steady translation's rotation-like flow) is fitted
    per candidate as the median of ``residual / (t_b - t_a)`` and removed.
    """
    r = log_so3(np.swapaxes(gyro, -1, -2) @ m.R)
    dt = (t_b - t_a).mean(-1)[..., None]
    return r - np.median(r / dt, axis=-2, keepdims=True) * dt


def _mean_rotation(R: np.ndarray) -> np.ndarray:
    """Chordal mean ``(..., 3, 3)`` of nearby rotations ``(..., S, 3, 3)``: the rotation
    nearest to their mean matrix (its polar factor, by Newton's iteration
    ``M <- (M + M^-T) / 2``, which squares the distance to a rotation each step: 2-3x faster
    than an SVD here).

    Example:
        >>> from gyrodeblur.geometry.rotation import exp_so3
        >>> R = exp_so3(np.array([[0.0, 0.0, 0.1], [0.0, 0.0, 0.3]]))
        >>> np.round(log_so3(_mean_rotation(R)), 12)
        array([0. , 0. , 0.2])
    """
    if R.shape[-3] == 1:
        return R[..., 0, :, :]
    m = R.mean(-3)
    for _ in range(3):
        cof = np.cross(m[..., [1, 2, 0], :], m[..., [2, 0, 1], :])  # det(M) M^-T, by rows
        det = np.einsum("...i,...i->...", m[..., 0, :], cof[..., 0, :])
        m = (m + cof / det[..., None, None]) / 2
    return m


def _squared_angles(m: BandRotations, orientation: Orientation, offsets: np.ndarray,
                    readout: float) -> np.ndarray:
    """Squared residual angles ``|r|^2`` of every band at each offset, ``(C, K)``."""
    out = np.empty((len(offsets), len(m.R)))
    chunk = max(_CHUNK // max(len(m.R) * _EXPOSURE_SAMPLES, 1), 1)
    for i in range(0, len(offsets), chunk):
        r = _residuals(m, orientation, offsets[i:i + chunk], np.asarray(readout))
        out[i:i + chunk] = np.einsum("...i,...i->...", r, r)
    return out


def _cauchy(squared: np.ndarray, scale: float) -> np.ndarray:
    """Mean Cauchy cost ``log(1 + |r|^2 / scale^2)`` over the last axis."""
    return np.log1p(squared / scale**2).mean(-1)


def fit_sync(measured: BandRotations, orientation: Orientation, camera: Camera,
             search: float = 0.2, step: float = 0.002,
             readout_max: float | None = None) -> SyncResult:
    """Fit the time offset (and readout time) to measured band rotations.

    Args:
        measured: rotations from the video (:func:`measure_rotations`).
        orientation: the gyro orientation in camera axes, covering every band time at the
            searched offsets and readout times.
        camera: its ``time_offset`` centres the search; its ``readout_time`` is used, or starts
            the readout refinement.
        search, step: half-width and step of the coarse grid (s).
        readout_max: also estimate the readout time in ``[0, readout_max]`` and its
            direction; ``None``: keep the camera's.

    Example:
        >>> from gyrodeblur.geometry.rotation import integrate
        >>> from gyrodeblur.synthesis.motion import load_shake_model
        >>> log = load_shake_model().sample(2.0, 400.0, np.random.default_rng(1), scale=3.0)
        >>> o = integrate(log.t, log.w)
        >>> start = 0.6 + np.arange(20) / 30.0
        >>> truth = o.relative(start[1:] + 0.013, start[:-1] + 0.013)  # offset 13 ms
        >>> zero = np.zeros(19)
        >>> m = BandRotations(truth, start[:-1], start[1:], zero, zero, zero, zero, 19, 500.0)
        >>> round(fit_sync(m, o, Camera(64, 48, 500.0, 500.0, 31.5, 23.5)).time_offset, 4)
        0.013
    """
    lo, hi = camera.time_offset - search, camera.time_offset + search
    offsets = np.linspace(lo, hi, 2 * math.ceil(search / step - 1e-9) + 1)
    floor = _FLOOR_PX / measured.focal

    def scale(squared: np.ndarray) -> float:
        """Robust spread of the residual angles (of one offset or several)."""
        return max(1.4826 * float(np.median(np.sqrt(squared))), floor)

    def search_offset(m: BandRotations, readout: float) -> tuple[float, float, np.ndarray]:
        # A first pass with the typical residual over all offsets as scale finds the basin;
        # the second uses the residual level at that minimum, which makes the minimum sharp.
        squared = _squared_angles(m, orientation, offsets, readout)
        first = np.argmin(_cauchy(squared, scale(squared[::4])))
        s = scale(squared[first])
        costs = _cauchy(squared, s)
        best = offsets[np.argmin(costs)]
        fine = _golden(lambda d: cost(m, d, readout, s), max(best - step, lo),
                       min(best + step, hi))
        return fine, s, costs

    def cost(m: BandRotations, offset: float, readout: float, s: float) -> float:
        offset = min(max(offset, lo), hi)  # the gyro is known to cover this range only
        return float(_cauchy(_squared_angles(m, orientation, np.array([offset]), readout),
                             s)[0])

    def fit(m: BandRotations) -> tuple[float, float, np.ndarray, np.ndarray, np.ndarray,
                                       Callable[[int], float]]:
        """Offset, readout, costs, the gyro's angles (unbiased) and residual angles there,
        and the cost at the bottom of the minimum next to each grid offset."""
        readout = camera.readout_time
        offset, s, costs = search_offset(m, readout)
        if readout_max is not None:
            # Refine around the middle row's offset, which the readout time barely moves, so
            # that the two parameters are nearly independent for coordinate descent.
            middle = offset + readout / 2
            for _ in range(3):
                readout = _golden(lambda t, c=middle: cost(m, c - t / 2, t, s), 0.0,
                                  readout_max)
                middle = _golden(lambda c, t=readout: cost(m, c - t / 2, t, s), middle - step,
                                 middle + step)
            offset, s, costs = search_offset(m, readout)
        # Residuals and the gyro's own angles at the estimate, from one evaluation of the gyro;
        # its angles less the bias fitted with them (measured - residual, to first order): a
        # biased gyro turns no farther between frames than the video does.
        gyro, t_a, t_b = _gyro_rotations(m, orientation, np.asarray(offset), np.asarray(readout))
        residuals = _debiased_residuals(m, gyro, t_a, t_b)
        turned = np.linalg.norm(log_so3(m.R) - residuals, axis=-1)
        residual = np.linalg.norm(residuals, axis=-1)

        def bottom(i: int) -> float:
            near = (max(offsets[i] - step, lo), min(offsets[i] + step, hi))
            return cost(m, _golden(lambda d: cost(m, d, readout, s), *near), readout, s)

        return offset, readout, costs, turned, residual, bottom

    offset, readout, costs, turned, residual, bottom = fit(measured)
    used = measured
    direction = None if readout_max is None else camera.readout_direction
    if readout_max is not None and readout < _FLIP_BELOW * readout_max:
        # A readout direction the wrong way round fits best with no readout at all, and an
        # offset half a readout off: the rows read the other way are tried then.
        other = dataclasses.replace(measured, frac_a=1.0 - measured.frac_a,
                                    frac_b=1.0 - measured.frac_b)
        flipped = fit(other)
        if np.median(flipped[4]) < _FLIP_GAIN * np.median(residual):
            offset, readout, costs, turned, residual, bottom = flipped
            used = other
            direction = "bottom_to_top" if direction == "top_to_bottom" else "top_to_bottom"
    # Each half of the clip on its own, where both show motion: frames dropped from a video
    # timed by its rate (or a variable rate) put the halves' frames a frame apart in time, and
    # the whole fit between them.
    drift = 0.0
    if used.pairs >= 2 * MIN_PAIRS:
        later = used.start_a >= np.median(used.start_a)
        halves = [_bands(used, keep) for keep in (~later, later)]
        if all(np.median(np.linalg.norm(log_so3(h.R), axis=-1)) > _DRIFT_MOTION * floor
               for h in halves):
            apart = abs(search_offset(halves[0], readout)[0]
                        - search_offset(halves[1], readout)[0])
            if apart > np.median(used.start_b - used.start_a) / 4:
                drift = float(apart)
    motion = float(np.median(np.linalg.norm(log_so3(measured.R), axis=-1)))
    # A still video (no rotation beyond the flow's precision) has nothing to explain: under a
    # steadily turning gyro, which the bias removal takes for a still one, its noise would
    # match at every offset.
    still = motion <= floor
    explained = 0.0 if still else float(np.clip(1.0 - np.median(residual) / motion, 0.0, 1.0))
    gain = math.inf if still else float(np.median(turned)) / motion
    support = min(1.0, measured.pairs / FULL_SUPPORT_PAIRS)
    return SyncResult(time_offset=float(offset),
                      confidence=0.0 if drift else _confidence(costs, bottom) * explained
                      * support,
                      readout_time=None if readout_max is None else float(readout),
                      pairs_used=measured.pairs, explained=explained, gain=gain,
                      offsets=offsets, costs=costs, search=search,
                      readout_direction=direction, drift=drift, motion_px=motion * measured.focal)


def _bands(m: BandRotations, keep: np.ndarray) -> BandRotations:
    """The bands ``keep`` of ``m``, with the number of frame pairs they come from."""
    return BandRotations(m.R[keep], m.start_a[keep], m.start_b[keep], m.exposure_a[keep],
                         m.exposure_b[keep], m.frac_a[keep], m.frac_b[keep],
                         len(np.unique(m.start_a[keep])), m.focal)


def _golden(f: Callable[[float], float], lo: float, hi: float, tol: float = 1e-5) -> float:
    """Minimum of a unimodal ``f`` on ``[lo, hi]`` by golden-section search."""
    c, d = hi - _GOLDEN * (hi - lo), lo + _GOLDEN * (hi - lo)
    fc, fd = f(c), f(d)
    while hi - lo > tol:
        if fc < fd:
            hi, d, fd = d, c, fc
            c = hi - _GOLDEN * (hi - lo)
            fc = f(c)
        else:
            lo, c, fc = c, d, fd
            d = lo + _GOLDEN * (hi - lo)
            fd = f(d)
    return (lo + hi) / 2


def _confidence(costs: np.ndarray, bottom: Callable[[int], float] | None = None) -> float:
    """How deep and unique the minimum of a cost curve is, in ``[0, 1]``.

    Depth: ``1 - best / median``. Uniqueness: ``1 - best / second``, ``second`` the lowest
    local minimum outside the main basin (the connected run around the best below half-way
    to the median), or the median when there is none. A minimum at either end of the curve
    may lie beyond the searched range: confidence 0. ``bottom(i)``, where given, is the cost
    at the bottom of the minimum at grid point ``i``, taken for the best and the few lowest
    others: a grid coarser than a sharp minimum prices equal ones (periodic motion's) apart.

    Example:
        >>> costs = np.array([3.0, 1.0, 3.0, 3.0, 1.5, 3.0])  # two minima, the grid's values
        >>> round(_confidence(costs), 3), _confidence(costs, lambda i: 1.0)  # alike at bottom
        (0.222, 0.0)
    """
    bottom = bottom or (lambda i: float(costs[i]))
    i = int(np.argmin(costs))
    best, median = min(bottom(i), float(costs[i])), float(np.median(costs))
    if i in (0, len(costs) - 1) or median <= 0:
        return 0.0
    inside = costs < best + 0.5 * (median - best)
    left, right = i, i
    while left > 0 and inside[left - 1]:
        left -= 1
    while right < len(costs) - 1 and inside[right + 1]:
        right += 1
    padded = np.concatenate([[np.inf], costs, [np.inf]])
    local = (costs <= padded[:-2]) & (costs <= padded[2:])
    local[left:right + 1] = False
    others = np.flatnonzero(local)
    second = min((bottom(j) for j in others[np.argsort(costs[others])[:_RIVALS]]),
                 default=median)
    depth = 1.0 - best / median
    unique = 1.0 - best / max(second, best) if second > 0 else 0.0
    return float(np.clip(depth * unique, 0.0, 1.0))
