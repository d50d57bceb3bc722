"""Per-row rotational warps against homographies, the camera model and closed forms."""

import cv2
import numpy as np
import pytest

from gyrodeblur.geometry.camera import Camera
from gyrodeblur.geometry.rotation import exp_so3
from gyrodeblur.kernels.warp import warp_displacements

PINHOLE = Camera(width=64, height=48, fx=80.0, fy=82.0, cx=31.0, cy=24.5)
OPENCV = PINHOLE.replace(distortion_model="opencv",
                         distortion=(-0.28, 0.09, 0.001, -0.0015, -0.01))
FISHEYE = PINHOLE.replace(distortion_model="fisheye", distortion=(0.05, -0.02, 0.004, -0.001))


def test_pinhole_matches_opencv_perspective_transform():
    rotations = exp_so3(np.random.default_rng(0).normal(0, 0.05, (3, 48, 3)))
    out = warp_displacements(rotations, PINHOLE)
    ys, xs = np.mgrid[0:48, 0:64].astype(np.float64)
    for i in range(3):
        for y in (0, 17, 47):
            H = PINHOLE.K @ rotations[i, y] @ PINHOLE.K_inv
            pts = np.stack([xs[y], ys[y]], -1)[None]
            moved = cv2.perspectiveTransform(pts, H)[0]
            np.testing.assert_allclose(out[i, :, y].T, moved - pts[0], atol=1e-3)


def test_pinhole_displacements_keep_float32_precision_at_4k():
    # Large rotations (up to ~200 px of motion) far from the centre: the float32 kernel must
    # agree with float64 positions minus pixel coordinates to float32 rounding of the output.
    cam = Camera(width=3840, height=2160, fx=2900.0, fy=2900.0, cx=1919.5, cy=1079.5)
    rotations = exp_so3(np.random.default_rng(2).normal(0, 0.03, (2, 2160, 3)))
    out = warp_displacements(rotations, cam)
    xs = np.arange(3840.0)
    for i in range(2):
        for y in (0, 1000, 2159):
            H = cam.K @ rotations[i, y] @ cam.K_inv
            den = H[2, 0] * xs + H[2, 1] * y + H[2, 2]
            dx = (H[0, 0] * xs + H[0, 1] * y + H[0, 2]) / den - xs
            dy = (H[1, 0] * xs + H[1, 1] * y + H[1, 2]) / den - y
            np.testing.assert_allclose(out[i, 0, y], dx, rtol=1e-6, atol=1e-5)
            np.testing.assert_allclose(out[i, 1, y], dy, rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("cam", [OPENCV, FISHEYE])
def test_distorted_warp_matches_camera_model_reference(cam):
    rotations = exp_so3(np.random.default_rng(1).normal(0, 0.03, (2, 48, 3)))
    out = warp_displacements(rotations, cam)
    ys, xs = np.mgrid[0:48, 0:64].astype(np.float64)
    rays = cam.undistort_points(np.stack([xs, ys], -1))
    homogeneous = np.concatenate([rays, np.ones_like(xs)[..., None]], -1)
    for i in range(2):
        v = np.einsum("yij,yxj->yxi", rotations[i], homogeneous)
        moved = cam.distort_points(v[..., :2] / v[..., 2:])
        np.testing.assert_allclose(np.moveaxis(out[i], 0, -1), moved - np.stack([xs, ys], -1),
                                   atol=2e-3)


def test_a_wide_fisheye_keeps_rays_turned_past_90_degrees_on_their_side():
    # An equidistant fisheye (no coefficients) images the angle from the axis linearly, so a
    # yaw of 0.05 rad moves every pixel of the centre row by fx * 0.05, also where the ray
    # ends past 90 degrees from the axis (pixels from x = 193 on).
    cam = Camera(width=200, height=100, fx=60.0, fy=60.0, cx=99.5, cy=49.5,
                 distortion_model="fisheye", distortion=(0.0, 0.0, 0.0, 0.0))
    d = warp_displacements(np.tile(exp_so3([0.0, 0.05, 0.0]), (1, 100, 1, 1)), cam)
    np.testing.assert_allclose(d[0, 0, 49, 100:194], 60.0 * 0.05, rtol=1e-4)


@pytest.mark.parametrize("camera", [PINHOLE, PINHOLE.replace(
    distortion_model="opencv", distortion=(0.05, 0.01, 0.001, -0.0015))], ids=["pinhole", "opencv"])
def test_rays_turned_behind_a_perspective_camera_have_no_image(camera):
    # (The OpenCV model here grows throughout: no ray in front of it lies past a fold.)
    # A 70 degree yaw takes the rays of the image's side beyond 90 degrees from the axis
    # (brute force: the turned ray's depth), which a perspective lens cannot image.
    Q = exp_so3([0.0, np.radians(70), 0.0])
    d = warp_displacements(np.tile(Q, (1, 48, 1, 1)), camera)
    ys, xs = np.mgrid[0:48, 0:64].astype(np.float64)
    rays = np.dstack([camera.undistort_points(np.stack([xs, ys], -1).reshape(-1, 2))
                      .reshape(48, 64, 2), np.ones((48, 64))])
    behind = ~((rays @ Q.T)[..., 2] > 0)  # and the pixels that have no ray (NaN)
    assert 0 < behind.sum() < behind.size / 2
    np.testing.assert_array_equal(np.isnan(d[0]).all(axis=0), behind)
    np.testing.assert_array_equal(np.isnan(d[0]).any(axis=0), behind)


@pytest.mark.parametrize("model, distortion, fold", [
    ("opencv", (-0.4, 0.0, 0.0, 0.0), 1 / np.sqrt(1.2)),  # d(r - 0.4 r^3)/dr = 0
    ("opencv", (-0.4, 0.0, 0.003, -0.002), 1 / np.sqrt(1.2)),  # tangential terms move it
    ("fisheye", (-0.3, 0.0, 0.0, 0.0), 1 / np.sqrt(0.9)),  # d(theta - 0.3 theta^3)/dtheta = 0
], ids=["opencv", "opencv-tangential", "fisheye"])
def test_rays_turned_past_the_lens_fold_have_no_image(model, distortion, fold):
    # Every pixel of this image has a ray (its corner lies before the fold); a turn of up to
    # 0.4 rad outwards towards the top-left takes that corner's ray past the fold, where the
    # model has no image of it: NaN, not a point the falling curve gives (which can lie on the
    # other side of the pixel). Where there is an image, it is the turned ray's (the model's
    # closed form, which has no image past the fold either).
    focal = 180.0 if model == "fisheye" else 214.0
    cam = Camera(200, 150, focal, focal, 99.5, 74.5, model, distortion)
    ys, xs = np.mgrid[0:150, 0:200].astype(np.float64)
    pixels = np.stack([xs, ys], -1)
    rays = cam.undistort_points(pixels)
    assert np.isfinite(rays).all()
    axis = np.array([0.6, -0.8, 0.0])
    for angle in (0.05, 0.15, 0.4):
        Q = exp_so3(angle * axis)
        d = warp_displacements(np.tile(Q, (1, 150, 1, 1)), cam)
        turned = np.dstack([rays, np.ones((150, 200))]) @ Q.T
        xn = turned[..., :2] / turned[..., 2:]
        radius = np.hypot(*np.moveaxis(xn, -1, 0))
        past = np.arctan(radius) if model == "fisheye" else radius
        # The radial fold, moved a little by the tangential terms.
        assert np.isnan(d[0][:, past > fold * 1.05]).all()
        assert np.isfinite(d[0][:, past < fold * 0.95]).all()
        moved = cam.distort_points(xn)
        np.testing.assert_array_equal(np.isnan(d[0]).any(axis=0), np.isnan(moved).any(-1))
        np.testing.assert_allclose(np.moveaxis(d[0], 0, -1), moved - pixels, atol=2e-3)
    assert (past > fold * 1.05).sum() > 100  # the last turn took corners past the fold


def test_homography_round_trip():
    Q = exp_so3(np.array([0.02, -0.03, 0.05]))
    forward = warp_displacements(np.tile(Q, (1, 48, 1, 1)), PINHOLE)[0]
    ys, xs = np.mgrid[0:48, 0:64].astype(np.float64)
    moved = np.stack([xs, ys], -1) + np.moveaxis(forward, 0, -1)
    back = cv2.perspectiveTransform(moved.reshape(1, -1, 2), PINHOLE.K @ Q.T @ PINHOLE.K_inv)
    np.testing.assert_allclose(back.reshape(48, 64, 2), np.stack([xs, ys], -1), atol=1e-3)


ROUND = PINHOLE.replace(fy=80.0)  # square pixels: a roll turns the image rigidly


@pytest.mark.parametrize("camera", [
    ROUND,
    ROUND.replace(distortion_model="opencv", distortion=(-0.2, 0.05, 0.0, 0.0, -0.01)),
    ROUND.replace(distortion_model="fisheye", distortion=(0.05, -0.02, 0.004, -0.001)),
], ids=["pinhole", "opencv-radial", "fisheye"])
def test_a_roll_turns_every_pixel_about_the_principal_point(camera):
    # A rotation about the optical axis keeps every ray's angle from the axis; a lens model
    # that is radially symmetric (no tangential terms) then turns the image by the same angle
    # about (cx, cy). A different angle per sample and row checks the (T, H) indexing.
    T, H, W = 3, camera.height, camera.width
    angles = np.linspace(-0.2, 0.3, T)[:, None] + np.linspace(0.0, 0.1, H)[None, :]
    rotations = exp_so3(np.stack([np.zeros_like(angles), np.zeros_like(angles), angles], -1))
    out = warp_displacements(rotations, camera)
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float64)
    u, v = xs - camera.cx, ys - camera.cy
    c, s = np.cos(angles)[:, :, None], np.sin(angles)[:, :, None]
    np.testing.assert_allclose(out[:, 0], c * u - s * v - u, atol=1e-4)
    np.testing.assert_allclose(out[:, 1], s * u + c * v - v, atol=1e-4)


@pytest.mark.parametrize("camera", [PINHOLE, OPENCV], ids=["pinhole", "opencv"])
def test_a_given_output_array_is_filled_and_others_refused(camera):
    rotations = exp_so3(np.random.default_rng(4).normal(0, 0.02, (2, 48, 3)))
    out = np.full((2, 2, 48, 64), np.nan, np.float32)
    assert warp_displacements(rotations, camera, out=out) is out
    np.testing.assert_array_equal(out, warp_displacements(rotations, camera))
    for bad in (np.empty((2, 2, 48, 63), np.float32), np.empty((2, 2, 48, 64)),
                np.empty((2, 2, 64, 48), np.float32).transpose(0, 1, 3, 2)):
        with pytest.raises(ValueError, match="out must be a C-contiguous float32 array"):
            warp_displacements(rotations, camera, out=bad)
    with pytest.raises(ValueError, match="R_rows has 47 rows but the camera 48"):
        warp_displacements(rotations[:, :47], camera)


@pytest.mark.parametrize("distortion", [("none", ()), ("opencv", (-0.2, 0.05, 0.0, 0.0))])
@pytest.mark.parametrize("shape", [(1, 30, 2, 2), (1, 30, 3), (1, 30, 3, 3, 3)])
def test_rotations_of_another_shape_than_t_h_3_3_are_refused(distortion, shape):
    cam = Camera(40, 30, 35.0, 36.0, 19.7, 14.2, *distortion)
    with pytest.raises(ValueError, match=r"R_rows must be \(T, H, 3, 3\) rotations"):
        warp_displacements(np.zeros(shape), cam)
