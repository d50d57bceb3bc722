"""Kernels of the frames of a clip, one frame at a time.

The one loop behind ``gyrodeblur kernels`` (which writes them to disk) and the datasets (which
keep them in memory): rotation from the gyro for every frame, translation from the optical
flow against the neighbouring frames when frames are given.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from gyrodeblur.footage import FrameTiming, check_unit_range, resize_frame
from gyrodeblur.geometry.camera import Camera, same_view
from gyrodeblur.geometry.rotation import Orientation
from gyrodeblur.kernels.flow import FlowBackend, flow_backend, to_gray_u8
from gyrodeblur.kernels.rotation import rotation_trajectories, sample_times
from gyrodeblur.kernels.translation import stream_velocities, translation_trajectories


@dataclass
class FrameKernels:
    """Kernels of one frame.

    Attributes:
        number: frame number.
        rot: ``(T, 2, H, W)`` float32; ``tran``: same, or ``None`` without translation.
        mask: ``(H, W)`` bool, translation measured (not filled); all false without it.
        times: ``(T, H)`` float64 sample times on the gyro clock.
        image: the frame at the camera's resolution, when frames were given.
    """

    number: int
    rot: np.ndarray
    tran: np.ndarray | None
    mask: np.ndarray
    times: np.ndarray
    image: np.ndarray | None = None


def fit_to_camera(image: np.ndarray, camera: Camera, number: int) -> np.ndarray:
    """Frame ``number`` resized to the camera's resolution (:func:`resize_frame`) when it differs;
    one of another aspect ratio (a crop, another camera) or of 0..255 floats refused."""
    if image.dtype.kind == "f":
        check_unit_range(image, f"frame {number}")
    h, w = image.shape[:2]
    if (h, w) == (camera.height, camera.width):
        return image
    if not same_view(w, h, camera.width, camera.height):
        raise ValueError(f"frame {number}: {w}x{h} is not a resize of the camera's "
                         f"{camera.width}x{camera.height} (another aspect ratio)")
    return resize_frame(image, camera.width, camera.height)


def _in_order(frames: Iterable[tuple[int, np.ndarray]]) -> Iterator[tuple[int, np.ndarray]]:
    """``frames`` as they come, refused where a number does not follow the one before."""
    previous = None
    for number, image in frames:
        if previous is not None and number <= previous:
            raise ValueError(f"frames: must come in increasing order, got {number} after "
                             f"{previous}")
        previous = number
        yield number, image


def kernel_reach(kernels: Iterable[np.ndarray | None], width: int, height: int) -> float:
    """The farthest displacement of ``(T, 2, h, w)`` kernels, in pixels of a ``width`` x
    ``height`` image of their view: beyond the image, nothing of it is left to restore (a
    unit error)."""
    kernels = [k for k in kernels if k is not None]
    h, w = kernels[0].shape[-2:]
    reach = max(float(np.nanmax(np.abs(k), initial=0.0)) for k in kernels)
    return reach * max(width / w, height / h)


def rotation_reach(orientation: Orientation, camera: Camera, timing: FrameTiming,
                   numbers: np.ndarray, samples: int = 9, width: int = 32) -> np.ndarray:
    """How far the rotation moves pixels during each frame's exposure: the largest
    displacement from the frame's sharp reference, in pixels of ``camera``, from kernels at
    most ``width`` pixels wide (a quick look before the work: a blur beyond the frame leaves
    nothing of it to restore).

    Example:
        >>> from gyrodeblur.geometry.rotation import integrate
        >>> yaw = integrate(np.array([0.0, 1.0]), np.array([[0.0, 0.5, 0.0]] * 2))
        >>> cam = Camera(640, 480, 500.0, 500.0, 319.5, 239.5)
        >>> timing = FrameTiming([1, 2], [0.2, 0.3], [0.02, 0.08])
        >>> # fx * 0.5 rad/s * t_e / 2 at the centre, at the sides (1 + (320 / fx)^2) times it
        >>> rotation_reach(yaw, cam, timing, np.array([1, 2])).round(1)
        array([ 3.5, 14. ])
    """
    small = camera.no_wider_than(width)

    def reach(row: int) -> float:
        traj, _ = rotation_trajectories(orientation, small, timing.t_start[row],
                                        timing.exposure[row], samples)
        return kernel_reach([traj], camera.width, camera.height)

    return np.array([reach(row) for row in timing.frame.searchsorted(numbers)])


def iter_frame_kernels(orientation: Orientation, camera: Camera, timing: FrameTiming,
                       numbers: np.ndarray, samples: int = 9,
                       frames: Iterable[tuple[int, np.ndarray]] | None = None,
                       translation: bool = True,
                       flow: str | FlowBackend = "dis") -> Iterator[FrameKernels]:
    """Yield the kernels of the frames ``numbers``, in order.

    Args:
        orientation: camera orientation from the gyro in camera axes.
        camera: camera at the computing resolution.
        timing: frame timing (frame clock); must contain ``numbers``; a neighbour it has no
            times for is passed over (a gap).
        numbers: frame numbers to yield.
        samples: ``T``.
        frames: ``(number, image)`` in increasing order, covering ``numbers`` (and their
            neighbours, for translation); ``None``: rotation only, no images.
        translation: measure translation from the frames' optical flow.
        flow: name of a backend in ``FLOW_BACKENDS``, or a function ``(prev, next) -> flow``.
    """
    timing.check_has(numbers)
    flow = flow_backend(flow)
    wanted = {int(n) for n in numbers}

    def rotation(number: int) -> tuple[np.ndarray, np.ndarray, float]:
        row = timing.frame.searchsorted(number)
        exposure = timing.exposure[row]
        rot, times = rotation_trajectories(orientation, camera, timing.t_start[row], exposure,
                                           samples)
        return rot, times, exposure

    empty = np.zeros((camera.height, camera.width), bool)
    if frames is not None:
        frames = _in_order(frames)
    if frames is None or not translation:
        pairs = frames if frames is not None else ((n, None) for n in sorted(wanted))
        for number, image in pairs:
            if number in wanted:
                rot, times, _ = rotation(number)
                image = None if image is None else fit_to_camera(image, camera, number)
                yield FrameKernels(number, rot, None, empty, times, image)
        return

    images: dict[int, np.ndarray] = {}

    def grays() -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        for number, image in frames:
            row = timing.frame.searchsorted(number)
            if row == len(timing.frame) or timing.frame[row] != number:
                continue  # no times (not wanted, checked above): no neighbour, a gap
            image = fit_to_camera(image, camera, number)
            if number in wanted:
                images[number] = image
            t_ref = sample_times(camera, timing.t_start[row], timing.exposure[row], 2)[1]
            yield number, to_gray_u8(image), t_ref

    for number, tau, mask in stream_velocities(grays(), orientation, camera, flow, wanted):
        if number in wanted:
            rot, times, exposure = rotation(number)
            yield FrameKernels(number, rot, translation_trajectories(tau, exposure, samples),
                               mask, times, images.pop(number))
