import cv2
import numpy as np
import pytest

from gyrodeblur.geometry.camera import Camera
from gyrodeblur.geometry.rotation import exp_so3
from gyrodeblur.kernels.translation import translation_trajectories
from gyrodeblur.synthesis.clips import source_camera
from gyrodeblur.synthesis.scene import (
    Plane,
    Scene,
    outside_fraction,
    render,
    source_coordinates,
    translational_velocity,
)

CAM = Camera(width=40, height=30, fx=50.0, fy=50.0, cx=19.5, cy=14.5)
IDENTITY = np.tile(np.eye(3), (30, 1, 1))


def grid():
    ys, xs = np.mgrid[0:30, 0:40].astype(np.float64)
    return xs, ys


@pytest.mark.parametrize("velocity", [(0.3, 0.0, 0.0), (0.0, -0.2, 0.0), (0.1, 0.2, 0.5)])
def test_velocity_of_fronto_parallel_plane_is_closed_form(velocity):
    Z = 2.5
    scene = Scene(planes=(Plane(distance=Z),), velocity=velocity)
    tau = translational_velocity(CAM, scene, IDENTITY, np.zeros(30))
    xs, ys = grid()
    vx, vy, vz = velocity
    # d/dt of fx X/Z' with X' = X - vx t, Z' = Z - vz t: (-fx vx + (x - cx) vz) / Z.
    np.testing.assert_allclose(tau[..., 0], (-50 * vx + (xs - 19.5) * vz) / Z, atol=1e-4)
    np.testing.assert_allclose(tau[..., 1], (-50 * vy + (ys - 14.5) * vz) / Z, atol=1e-4)


def test_nearer_plane_moves_faster_parallax():
    near = Plane(normal=(1.0, 0.0, 0.0), distance=0.2)  # a wall x = 0.2 m on the right
    scene = Scene(planes=(Plane(distance=4.0), near), velocity=(0.0, 0.5, 0.0))
    tau = translational_velocity(CAM, scene, IDENTITY, np.zeros(30))
    left, right = np.abs(tau[15, 2, 1]), np.abs(tau[15, 38, 1])
    assert left == pytest.approx(50 * 0.5 / 4.0, rel=1e-4)  # the background plane
    assert right > 2 * left  # the wall is nearer than 4 m where it is seen


def test_no_plane_in_view_means_no_translation():
    scene = Scene(planes=(Plane(normal=(0.0, 0.0, -1.0), distance=1.0),), velocity=(1.0, 0, 0))
    assert np.abs(translational_velocity(CAM, scene, IDENTITY, np.zeros(30))).max() == 0.0


def test_render_identity_is_the_centre_crop_and_rotation_is_a_homography():
    rng = np.random.default_rng(0)
    source = cv2.GaussianBlur(rng.random((60, 80, 3)).astype(np.float32), (0, 0), 2.0)
    src = source_camera(source, CAM)
    view = render(source, CAM, src, Scene(), IDENTITY, np.zeros((30, 3)))
    np.testing.assert_allclose(view, source[15:45, 20:60], atol=1e-5)
    R = exp_so3(np.array([0.02, -0.05, 0.03]))
    rotated = render(source, CAM, src, Scene(), np.tile(R, (30, 1, 1)), np.zeros((30, 3)))
    # view(p) = source(K_src R K^-1 p): warpPerspective with the inverse map.
    H = src.K @ R @ CAM.K_inv
    flags = cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP
    expected = cv2.warpPerspective(source, H, (40, 30), flags=flags)
    np.testing.assert_allclose(rotated[3:-3, 3:-3], np.clip(expected, 0, 1)[3:-3, 3:-3],
                               atol=2e-3)


def test_translation_trajectory_points_where_the_scene_was_at_mid_exposure():
    # CONVENTIONS: traj[i](p) is where the point seen at p at t_i lies in the reference
    # (mid-exposure) image. Render the translating camera's view at t_i and at t_ref and
    # check view_ti(p) = view_ref(p + traj_tran[i](p)).
    rng = np.random.default_rng(1)
    source = cv2.GaussianBlur(rng.random((60, 80, 3)).astype(np.float32), (0, 0), 3.0)
    src = source_camera(source, CAM)
    scene = Scene(planes=(Plane(distance=2.5),), velocity=(0.3, -0.2, 0.0))
    exposure, t_ref = 0.5, 0.25

    def view(t):
        return render(source, CAM, src, scene, IDENTITY, scene.position(np.full(30, t)))

    tau = translational_velocity(CAM, scene, IDENTITY, np.full(30, t_ref))
    traj = translation_trajectories(tau, exposure, 3)
    assert abs(traj[-1, 0]).max() > 1.0  # 1.5 px: a real displacement
    xs, ys = grid()
    reference = view(t_ref)
    for i, t in enumerate((0.0, t_ref, exposure)):
        seen = cv2.remap(reference, (xs + traj[i, 0]).astype(np.float32),
                         (ys + traj[i, 1]).astype(np.float32), cv2.INTER_CUBIC)
        np.testing.assert_allclose(seen[4:-4, 4:-4], view(t)[4:-4, 4:-4], atol=2e-3)


def test_outside_fraction_counts_the_view_beyond_the_source():
    source = np.zeros((60, 80, 3), np.float32)
    src = source_camera(source, CAM)
    assert outside_fraction(source_coordinates(CAM, src, Scene(), IDENTITY, np.zeros((30, 3))),
                            source.shape) == 0.0
    # Yawed so that the view's centre looks at the source's right border: the right half of
    # the view (20 of its 40 columns) lies beyond it.
    R = exp_so3(np.array([0.0, np.arctan(39.5 / CAM.fx), 0.0]))
    at = source_coordinates(CAM, src, Scene(), np.tile(R, (30, 1, 1)), np.zeros((30, 3)))
    assert outside_fraction(at, source.shape) == 20 / 40
