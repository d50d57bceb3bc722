import cv2
import numpy as np
import pytest

from gyrodeblur.geometry.camera import Camera
from gyrodeblur.geometry.rotation import integrate
from gyrodeblur.kernels.flow import FLOW_BACKENDS
from gyrodeblur.kernels.rotation import rotation_trajectories, sample_times
from gyrodeblur.kernels.translation import (
    combine_velocities,
    fill_nearest,
    pair_velocity,
    rotation_flow,
    stream_velocities,
    translation_trajectories,
)

CAM = Camera(width=240, height=160, fx=260.0, fy=260.0, cx=119.5, cy=79.5)


def texture(height, width, seed=0):
    """Multi-scale smooth noise: a scene with texture at every scale for the flow."""
    rng = np.random.default_rng(seed)
    img = np.zeros((height, width), np.float32)
    for sigma in (1.5, 4, 10):
        img += cv2.GaussianBlur(rng.normal(0, 1, (height, width)).astype(np.float32), (0, 0), sigma)
    img = (img - img.min()) / (img.max() - img.min())
    return (img * 255).astype(np.uint8)


def scene_pair(w, shift=(0.0, 0.0), dt=0.05):
    """Frame a, and frame b rendered dt later under rotation rate w plus an image shift."""
    orientation = integrate(np.linspace(0, 1, 200), np.tile(w, (200, 1)))
    t_a, t_b = np.full(CAM.height, 0.4), np.full(CAM.height, 0.4 + dt)
    H = CAM.K @ orientation.relative(0.4 + dt, 0.4) @ CAM.K_inv
    H = np.array([[1, 0, shift[0]], [0, 1, shift[1]], [0, 0, 1]]) @ H
    big = texture(CAM.height * 2, CAM.width * 2)
    crop = np.array([[1, 0, CAM.width / 2], [0, 1, CAM.height / 2], [0, 0, 1]])
    a = cv2.warpPerspective(big, np.linalg.inv(crop), (CAM.width, CAM.height),
                            flags=cv2.INTER_CUBIC)
    b = cv2.warpPerspective(big, H @ np.linalg.inv(crop), (CAM.width, CAM.height),
                            flags=cv2.INTER_CUBIC)
    return a, b, orientation, t_a, t_b


def interior(field, margin=24):
    return field[margin:-margin, margin:-margin]


def test_dis_flow_agrees_with_gyro_predicted_flow():
    a, b, orientation, t_a, t_b = scene_pair([0.15, -0.25, 0.3])
    gyro = rotation_flow(orientation, CAM, t_a, t_b)
    assert np.abs(gyro).max() > 3  # a real motion, not a trivially small one
    flow = FLOW_BACKENDS["dis"](a, b)
    err = np.linalg.norm(interior(flow - gyro), axis=-1)
    assert np.median(err) < 0.15 and np.percentile(err, 90) < 0.5


def test_pure_rotation_gives_no_translation():
    a, b, orientation, t_a, t_b = scene_pair([0.15, -0.25, 0.3])
    pv = pair_velocity(a, b, orientation, CAM, t_a, t_b)
    assert interior(pv.valid_a).mean() > 0.9
    assert np.median(np.linalg.norm(interior(pv.tau_a), axis=-1)) * 0.05 < 0.15


@pytest.mark.parametrize("shift", [(3.0, -1.5), (-2.0, 2.5)])
def test_image_shift_becomes_velocity_on_both_frames(shift):
    a, b, orientation, t_a, t_b = scene_pair([0.1, 0.2, -0.1], shift=shift)
    pv = pair_velocity(a, b, orientation, CAM, t_a, t_b)
    expected = np.array(shift) / 0.05  # px/s
    med_a = np.median(interior(pv.tau_a)[interior(pv.valid_a)], axis=0)
    med_b = np.median(interior(pv.tau_b)[interior(pv.valid_b)], axis=0)
    np.testing.assert_allclose(med_a, expected, atol=0.15 / 0.05)
    np.testing.assert_allclose(med_b, expected, atol=0.15 / 0.05)


def test_pixels_without_a_ray_are_not_measured():
    # A fisheye of fx 60 on 240x160: the corners lie past 90 degrees, without a ray.
    fisheye = CAM.replace(fx=60.0, fy=60.0, distortion_model="fisheye",
                          distortion=(0.0, 0.0, 0.0, 0.0))
    a, b, orientation, t_a, t_b = scene_pair([0.1, 0.2, -0.1])
    pv = pair_velocity(a, b, orientation, fisheye, t_a, t_b)
    no_ray = np.isnan(fisheye.pixel_rays()[..., 0])
    assert no_ray[0, 0] and not no_ray[80, 120]
    assert not (pv.valid_a & no_ray).any() and not (pv.valid_b & no_ray).any()
    assert np.isfinite(pv.tau_a[pv.valid_a]).all() and pv.valid_a[~no_ray].mean() > 0.5
    # So the fill takes velocities from measured pixels only: finite wherever there is a ray.
    for taus, valids in (([pv.tau_a], [pv.valid_a]),
                         ([pv.tau_a, pv.tau_b], [pv.valid_a, pv.valid_b])):
        tau, _ = combine_velocities(taus, valids)
        assert np.isfinite(tau[~no_ray]).all()


@pytest.mark.parametrize(("seed", "invalid"), [(0, 0.9), (1, 0.9), (2, 0.5), (3, 0.03)])
def test_fill_nearest_matches_brute_force(seed, invalid):
    rng = np.random.default_rng(seed)
    field = rng.normal(size=(31, 37, 2)).astype(np.float32)
    valid = rng.random((31, 37)) > invalid
    valid[5:25, 8:30] = False  # a large hole, where approximate distances would go wrong
    filled = fill_nearest(field, valid)
    vy, vx = np.nonzero(valid)
    for y, x in zip(*np.nonzero(~valid), strict=True):
        d2 = (vy - y) ** 2 + (vx - x) ** 2
        candidates = {(vy[k], vx[k]) for k in np.flatnonzero(d2 == d2.min())}
        assert any(np.array_equal(filled[y, x], field[c]) for c in candidates)
    np.testing.assert_array_equal(filled[valid], field[valid])


def test_fill_nearest_reaches_across_the_image():
    field = np.arange(12.0).reshape(3, 4, 1)
    valid = np.zeros((3, 4), bool)
    valid[2, 0] = True  # the only valid pixel, in a corner
    assert (fill_nearest(field, valid) == 8.0).all()
    assert (fill_nearest(field, np.zeros((3, 4), bool)) == 0.0).all()


def test_combine_averages_where_both_valid():
    t1, t2 = np.full((2, 3, 2), 1.0, np.float32), np.full((2, 3, 2), 3.0, np.float32)
    v1 = np.array([[True, True, False], [False, False, False]])
    v2 = np.array([[True, False, True], [False, False, False]])
    tau, mask = combine_velocities([t1, t2], [v1, v2])
    np.testing.assert_array_equal(mask, v1 | v2)
    assert tau[0, 0, 0] == 2.0 and tau[0, 1, 0] == 1.0 and tau[0, 2, 0] == 3.0
    assert set(np.unique(tau[1])) <= {1.0, 2.0, 3.0}


def test_translation_trajectory_is_linear_in_time():
    tau = np.random.default_rng(0).normal(size=(4, 5, 2)).astype(np.float32) * 100
    traj = translation_trajectories(tau, 0.03, 7)
    t_ref_minus_t_i = 0.03 * (0.5 - np.arange(7) / 6)
    np.testing.assert_allclose(
        traj, t_ref_minus_t_i[:, None, None, None] * np.moveaxis(tau, -1, 0), rtol=1e-6)


def test_translation_cancels_the_rotation_of_a_gyro_the_frames_contradict():
    # Identical frames while the gyro reports a yaw: the flow sees no motion, so tau is minus
    # the gyro's rotational velocity and the full kernel rot + tran must vanish (to second
    # order), not double.
    orientation = integrate(np.linspace(0, 1, 200), np.tile([0.0, 0.3, 0.05], (200, 1)))
    frame = texture(CAM.height, CAM.width)
    exposure, samples = 0.04, 5
    rot, _ = rotation_trajectories(orientation, CAM, 0.4, exposure, samples)
    t_a = sample_times(CAM, 0.4, exposure, 2)[1]
    pv = pair_velocity(frame, frame, orientation, CAM, t_a, t_a + 0.05)
    tran = translation_trajectories(pv.tau_a, exposure, samples)
    assert np.median(np.abs(interior(rot[-1, 0]))) > 1.0
    residual = np.linalg.norm(rot + tran, axis=1)[:, 24:-24, 24:-24]
    assert np.median(residual) < 0.05 * np.median(np.abs(interior(rot[-1, 0])))


def test_translation_trajectories_refuse_a_tau_of_another_layout_and_one_sample():
    with pytest.raises(ValueError, match=r"tau: must be \(H, W, 2\)"):
        translation_trajectories(np.zeros((2, 4, 5), np.float32), 0.02, 3)
    with pytest.raises(ValueError, match="samples: need an integer of at least 2"):
        translation_trajectories(np.zeros((4, 5, 2), np.float32), 0.02, 1)
    for exposure, problem in ((20, r"exposure 20 s, over 1 s: .*not ms"),
                              (-0.02, r"exposure -0.02 s: finite and >= 0")):
        with pytest.raises(ValueError, match=problem):
            translation_trajectories(np.zeros((4, 5, 2), np.float32), exposure, 3)


def _scene_clip(camera, w, velocity, depth=2.0):
    """Three sharp frames of a plane at ``depth`` under a constant rate ``w`` and camera
    ``velocity``, with their clip (truth) and the orientation."""
    from gyrodeblur.geometry.gyro import GyroLog
    from gyrodeblur.kernels.flow import to_gray_u8
    from gyrodeblur.synthesis.clips import ClipSettings, synthesize_clip
    from gyrodeblur.synthesis.images import dead_leaves
    from gyrodeblur.synthesis.scene import Plane, Scene

    t = np.arange(-0.5, 1.0, 0.002)
    log = GyroLog(t, np.tile(w, (len(t), 1)))
    source = dead_leaves(3 * camera.width, np.random.default_rng(1), r_min=2,
                         r_max=3 * camera.width / 10)
    clip = synthesize_clip(source, camera, log, Scene((Plane(distance=depth),), velocity),
                           ClipSettings(frames=3, fps=30, exposure=1 / 120, samples=5,
                                        gyro_start=0.0), np.random.default_rng(0))
    frames = [(f + 1, to_gray_u8(clip.sharp[f]),
               sample_times(camera, clip.timing.t_start[f], clip.timing.exposure[f], 2)[1])
              for f in range(3)]
    return clip, frames, integrate(log.t, log.w)


def test_a_frame_with_one_neighbour_measures_translation_in_its_own_axes():
    # A roll of 2 rad/s turns the frames 3.8 degrees apart: the residual of the flow, read
    # where the gyro moves the translated point, is the translation in the first frame's
    # axes, not turned into the other frame's (0.2 px a frame across a 3 px motion).
    camera = Camera(192, 144, 180.0, 180.0, 95.5, 71.5)
    clip, frames, orientation = _scene_clip(camera, [0.0, 0.0, 2.0], (1.5, 0.0, 0.0), 3.0)
    for number, tau, _ in stream_velocities(iter(frames), orientation, camera):
        error = _error_per_frame(clip, number, tau)
        assert np.abs(error).max() < 0.05, (number, error)


def _true_tau(clip, number: int) -> np.ndarray:
    """The clip's true translational velocity ``(H, W, 2)`` of frame ``number``, px/s."""
    true = clip.tran[number - 1]
    return np.moveaxis((true[0] - true[-1]) / clip.timing.exposure[number - 1], 0, -1)


def _error_per_frame(clip, number: int, tau: np.ndarray) -> np.ndarray:
    """Median error of a measured ``tau`` in the interior, in px per frame (30 fps)."""
    return np.median(interior(tau - _true_tau(clip, number), 16).reshape(-1, 2), axis=0) / 30


def _rolling_shutter_middle_frame(direction: str, w, velocity):
    """Clip, number, measured ``tau`` and mask of the middle frame of ``_scene_clip`` filmed
    with a 30 ms rolling shutter read in ``direction``."""
    camera = Camera(192, 144, 180.0, 180.0, 95.5, 71.5, readout_time=0.03,
                    readout_direction=direction)
    clip, frames, orientation = _scene_clip(camera, w, velocity)
    return clip, *list(stream_velocities(iter(frames), orientation, camera))[1]


@pytest.mark.parametrize("direction", ["top_to_bottom", "bottom_to_top"])
def test_a_rolling_shutter_translation_is_timed_by_the_row_it_lands_on(direction):
    # Moving down 4.5 px a frame, a point lands 4.5 rows later (earlier, read upwards): 0.9 ms
    # more (less) than the frame interval under a 30 ms readout, 2.8 % of the velocity.
    clip, number, tau, _ = _rolling_shutter_middle_frame(direction, [0.0, 0.0, 0.0],
                                                         (0.0, 1.5, 0.0))
    error = _error_per_frame(clip, number, tau)
    assert np.abs(_true_tau(clip, number)[..., 1]).mean() / 30 > 4, "not 4.5 px a frame"
    assert np.abs(error).max() < 0.05, error


@pytest.mark.parametrize("direction", ["top_to_bottom", "bottom_to_top"])
def test_a_rolling_shutter_pitch_gives_no_translation(direction):
    # Under a rolling shutter a point that moves down the frame is seen when its new row is
    # read, not its old one: taken at the old row's time, a 1.5 rad/s pitch read 0.5 px of
    # translation per frame into a scene that stands still.
    _, _, tau, mask = _rolling_shutter_middle_frame(direction, [1.5, 0.0, 0.0], (0.0, 0.0, 0.0))
    per_frame = np.median(interior(tau, 16).reshape(-1, 2), axis=0) / 30
    assert interior(mask, 16).mean() > 0.9 and np.abs(per_frame).max() < 0.06, per_frame


def _turn(orientation, camera, q, t_source, t_target):
    """Where pixel ``q``, seen at ``t_source``, is seen at ``t_target``: pinhole, per point."""
    rays = np.concatenate([q, np.ones(q.shape[:-1] + (1,))], -1) @ camera.K_inv.T
    turned = np.einsum("...ij,...j->...i", orientation.relative(t_target, t_source), rays)
    return (turned @ camera.K.T)[..., :2] / turned[..., 2:]


@pytest.mark.parametrize("direction", ["top_to_bottom", "bottom_to_top"])
def test_a_rolling_shutter_translation_under_a_changing_rate_keeps_its_times(direction):
    # A point translated by r in the source frame's axes is seen, turned from the time its
    # source row was read to the time the row it lands on was: p + flow = G(p + r). With that
    # flow solved pixel by pixel, the measured velocity is r over those two times exactly,
    # to first order in how fast the rate changes (here by 0.5 rad/s between the frames, a
    # 30 ms readout: taken at the times of the row the field is read at, 2.5 % off).
    camera = Camera(192, 144, 180.0, 180.0, 95.5, 71.5, readout_time=0.03,
                    readout_direction=direction)
    t = np.linspace(0.0, 1.0, 2001)
    orientation = integrate(t, np.stack([0.2 + 15 * (t - 0.4), -0.3 + 7 * (t - 0.4),
                                         0.1 * np.ones_like(t)], -1))
    rows = np.arange(camera.height)
    t_a = 0.4 + camera.row_start_times(0.0)
    t_b = t_a + 1 / 30
    r = {0: np.array([2.0, 5.0]), 1: np.array([-3.0, -4.0])}  # a's and b's own
    grid = np.stack(np.meshgrid(np.arange(192.0), rows), -1)

    def exact(r, t_source, t_target):
        flow = np.zeros_like(grid)
        for _ in range(20):  # the landing row depends on the flow: to a fixed point
            landed = np.interp(rows[:, None] + flow[..., 1], rows, t_target)
            flow = _turn(orientation, camera, grid + r, t_source[:, None], landed) - grid
        return flow.astype(np.float32), landed - t_source[:, None]

    flow_ab, time_ab = exact(r[0], t_a, t_b)
    flow_ba, time_ba = exact(r[1], t_b, t_a)
    a, b = np.zeros((144, 192), np.uint8), np.ones((144, 192), np.uint8)
    pv = pair_velocity(a, b, orientation, camera, t_a, t_b,
                       flow=lambda src, dst: flow_ab if src[0, 0] == 0 else flow_ba)
    for tau, time, shift in ((pv.tau_a, time_ab, r[0]), (pv.tau_b, time_ba, r[1])):
        error = interior(tau - shift / time[..., None], 16)
        assert np.abs(error).max() < 0.2, np.abs(error).max()  # px/s, of 150 px/s


def test_pair_velocity_names_frames_and_times_of_another_kind():
    a, b, orientation, t_a, t_b = scene_pair([0.1, 0.2, -0.1])
    with pytest.raises(ValueError, match="gray_b must be a uint8 gray frame"):
        pair_velocity(a, b / 255.0, orientation, CAM, t_a, t_b)
    with pytest.raises(ValueError, match=r"t_a must be the \(\d+,\) per-row times, got shape \(\)"):
        pair_velocity(a, b, orientation, CAM, float(t_a[0]), t_b)


def test_rotation_flow_takes_a_time_per_row():
    camera = Camera(32, 24, 30.0, 30.0, 15.5, 11.5)
    orientation = integrate(np.linspace(0.0, 1.0, 101), np.tile([0.1, 0.2, 0.0], (101, 1)))
    with pytest.raises(ValueError, match=r"t_a: one time per row, \(24,\), got shape \(\)"):
        rotation_flow(orientation, camera, 0.3, np.full(24, 0.4))
    flow = rotation_flow(orientation, camera, np.full(24, 0.3), np.full(24, 0.3))
    np.testing.assert_allclose(flow, 0.0, atol=1e-5)  # no time between: no motion


@pytest.mark.parametrize(("field", "valid"), [
    (np.zeros((10, 10, 2), np.float32), np.eye(300, dtype=bool)),  # out of bounds: a crash
    (np.zeros((3, 4, 2), np.float32), np.eye(4, 3, dtype=bool)),  # out of bounds: garbage
    (np.zeros((3, 4), np.float32), np.eye(3, 4, dtype=bool)),
])
def test_fill_nearest_refuses_a_mask_or_field_of_another_shape(field, valid):
    with pytest.raises(ValueError, match=r"need field \(H, W, C\) and a bool valid"):
        fill_nearest(field, valid)


@pytest.mark.parametrize(("wanted", "pairs"), [({1}, 1), ({3}, 1), ({2}, 2), ({1, 3}, 2)])
def test_a_stream_measures_only_the_pairs_of_the_frames_wanted(wanted, pairs):
    camera = Camera(192, 144, 180.0, 180.0, 95.5, 71.5)
    _, frames, orientation = _scene_clip(camera, [0.0, 0.3, 0.0], (1.5, 0.0, 0.0))
    calls = []

    def counted(a, b):
        calls.append((a, b))
        return FLOW_BACKENDS["dis"](a, b)

    every = {n: (tau, mask) for n, tau, mask in stream_velocities(iter(frames), orientation,
                                                                  camera, counted)}
    assert len(calls) == 4  # two pairs, flows both ways
    calls.clear()
    some = {n: (tau, mask) for n, tau, mask in stream_velocities(iter(frames), orientation,
                                                                 camera, counted, wanted)}
    assert len(calls) == 2 * pairs
    for n in wanted:
        assert np.array_equal(some[n][0], every[n][0]) and np.array_equal(some[n][1],
                                                                           every[n][1])
