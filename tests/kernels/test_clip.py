import numpy as np
import pytest

from gyrodeblur.errors import InputError
from gyrodeblur.footage import FrameTiming
from gyrodeblur.geometry.camera import Camera
from gyrodeblur.geometry.rotation import integrate
from gyrodeblur.kernels.clip import iter_frame_kernels, rotation_reach
from gyrodeblur.kernels.rotation import rotation_trajectories

CAM = Camera(width=32, height=24, fx=30.0, fy=30.0, cx=15.5, cy=11.5, readout_time=0.01)
ORIENTATION = integrate(np.linspace(0.0, 1.0, 201), np.tile([0.1, 0.4, -0.2], (201, 1)))
TIMING = FrameTiming(np.array([1, 2, 4]), np.array([0.1, 0.2, 0.4]), np.full(3, 0.02),
                     "frames.csv")


def test_each_frame_gets_the_rotation_of_its_own_times():
    # A rate that changes over time: each frame's kernels are its own.
    t = np.linspace(0.0, 1.0, 201)
    turning = integrate(t, np.column_stack([np.sin(9 * t), 2 * np.cos(7 * t), t - 0.5]))
    timing = FrameTiming(np.array([1, 2, 4]), np.array([0.1, 0.2, 0.4]),
                         np.array([0.02, 0.03, 0.01]), "frames.csv")
    ks = list(iter_frame_kernels(turning, CAM, timing, np.array([4, 2, 1]), samples=3))
    assert [k.number for k in ks] == [1, 2, 4]
    for k, t_start, exposure in zip(ks, timing.t_start, timing.exposure, strict=True):
        rot, times = rotation_trajectories(turning, CAM, t_start, exposure, 3)
        np.testing.assert_array_equal(k.rot, rot)
        np.testing.assert_array_equal(k.times, times)
    assert all(np.abs(a.rot - b.rot).max() > 0.1 for a, b in zip(ks, ks[1:], strict=False))


@pytest.mark.parametrize("number", [3, 9])
def test_a_frame_without_times_is_refused_by_number(number):
    # Frame 3 lies in a gap of the timing, frame 9 past its end: neither has times.
    with pytest.raises(InputError, match=rf"frames.csv: no times for frame {number} \(it has "
                                         r"frames 1, 2, 4\)"):
        list(iter_frame_kernels(ORIENTATION, CAM, TIMING, np.array([number]), samples=3))


def test_an_unknown_flow_backend_is_refused_before_any_frame():
    with pytest.raises(ValueError, match="flow 'raft': choose one of"):
        next(iter_frame_kernels(ORIENTATION, CAM, TIMING, np.array([1]), flow="raft"))


def test_a_flow_function_plugs_in_as_a_backend():
    # An exact flow: frame 2 (the brighter) lies 2 px right of frame 1. With a still gyro it
    # is all translation: 2 px in the 0.1 s between the frames, 0.4 px over a 0.02 s exposure,
    # read leftwards in the gather form (a pixel sees what was left of it as the view moves).
    def exact(a, b):
        return np.full((*a.shape, 2), [2.0 if a.mean() < b.mean() else -2.0, 0.0], np.float32)

    still = integrate(np.linspace(0.0, 1.0, 201), np.zeros((201, 3)))
    frames = [(n, np.full((24, 32, 3), v, np.float32)) for n, v in ((1, 0.2), (2, 0.6))]
    k = next(iter_frame_kernels(still, CAM, TIMING, np.array([1]), 3, frames, flow=exact))
    extent = k.tran[-1] - k.tran[0]
    np.testing.assert_allclose(extent[0][k.mask], -0.4, atol=1e-4)
    np.testing.assert_allclose(extent[1], 0.0, atol=1e-6)
    assert k.mask[:, :28].all()  # the last 2 columns leave the frame: not measured
    with pytest.raises(TypeError, match="flow is a backend's name"):
        next(iter_frame_kernels(still, CAM, TIMING, np.array([1]), 3, frames, flow=3))


def _frames(numbers, size=(24, 32)):
    rng = np.random.default_rng(0)
    return [(n, rng.random((*size, 3)).astype(np.float32)) for n in numbers]


def test_a_neighbour_without_times_is_a_gap_not_an_infinite_velocity():
    # Frame 3 has no times: frame 4 has no neighbour with times, so no translation.
    ks = list(iter_frame_kernels(ORIENTATION, CAM, TIMING, np.array([4]), 3, _frames([3, 4])))
    assert [k.number for k in ks] == [4]
    assert not ks[0].mask.any() and np.array_equal(ks[0].tran, np.zeros_like(ks[0].tran))


@pytest.mark.parametrize(("frames", "message"), [
    (_frames([2, 1]), "frames: must come in increasing order, got 1 after 2"),
    (_frames([1, 2], (24, 40)), r"frame 1: 40x24 is not a resize of the camera's 32x24"),
    ([(1, np.full((24, 32, 3), 200.0, np.float32))], r"frame 1: float values must lie in \[0, 1\]"),
])
@pytest.mark.parametrize("translation", [True, False])
def test_frames_out_of_order_of_another_view_or_of_0_255_floats_are_refused(frames, message,
                                                                            translation):
    with pytest.raises(ValueError, match=message):
        list(iter_frame_kernels(ORIENTATION, CAM, TIMING, np.array([1, 2]), 3, frames,
                                translation))


def test_rotation_reach_is_the_full_kernels_farthest_displacement():
    # A tumbling rolling-shutter fisheye: the quick look at 32 px wide against the largest
    # displacement of the kernels at full resolution.
    t = np.linspace(0.0, 2.0, 401)
    w = np.stack([1.5 * np.sin(3 * t), 2.0 * np.cos(2 * t), 0.8 + 0 * t], axis=1)
    orientation = integrate(t, w)
    cam = Camera(640, 360, 400.0, 400.0, 319.5, 179.5, distortion_model="fisheye",
                 distortion=(0.05, -0.01, 0.0, 0.0), readout_time=0.02)
    timing = FrameTiming([1, 2, 3], [0.2, 0.7, 1.3], [0.01, 0.03, 0.06])
    reach = rotation_reach(orientation, cam, timing, np.array([1, 3]))
    full = [np.nanmax(np.abs(rotation_trajectories(orientation, cam, timing.t_start[row],
                                                   timing.exposure[row], 9)[0]))
            for row in (0, 2)]
    np.testing.assert_allclose(reach, full, rtol=0.03)
    assert reach[1] > 5 * reach[0]
