"""Tests of gyrodeblur.geometry.camera: distortion models, rescaling, rolling shutter, files."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gyrodeblur.errors import InputError
from gyrodeblur.geometry.camera import Camera, camera_from_dict, load_camera, save_camera
from gyrodeblur.geometry.gyro import GyroLog, to_camera_frame

# A strongly distorted wide-angle lens with all eight cv2 coefficients (rational model).
OPENCV = Camera(1920, 1080, 1400.0, 1395.0, 961.3, 538.2, "opencv",
                (-0.31, 0.12, 0.0012, -0.0007, -0.021, 0.01, -0.004, 0.002))
OPENCV5 = Camera(1920, 1080, 1400.0, 1395.0, 961.3, 538.2, "opencv",
                 (-0.28, 0.09, 0.001, -0.0005, -0.012))
FISHEYE = Camera(1920, 1080, 1000.0, 1002.0, 958.1, 541.6, "fisheye",
                 (0.05, 0.01, -0.003, 0.0005))
# The real Gyroflow profile below (AKASO V50x, 2.7k).
AKASO = Camera(2716, 1524, 1521.8556549213351, 1517.3353528760497, 1398.7223429856729,
               629.1053659679567, "fisheye",
               (0.13409177590858662, -0.33639498801548057, 0.3274956873988361,
                -0.1478470585818954))
DISTORTED = [OPENCV, OPENCV5, FISHEYE]

GYROVD_CSV = Path("/work/shared/data/gyro/original/GyroDVD/demo/GyroVD_Real/1029_GP/"
                  "VID_20251029_020848/meta_info/cam_metainfo.csv")

# Trimmed from gyroflow/lens_profiles AKASO/AKASO_v50x___2.7k_16by9_2716x1524-30.00fps.json
# (commit f9e749bc), with the keys a newer Gyroflow adds (distortion_model, asymmetrical).
GYROFLOW_PROFILE = {
    "name": "AKASO_v50x___2.7k_16by9_2716x1524-30.00fps",
    "calibrated_by": "Robert Niewiarowski",
    "camera_brand": "AKASO",
    "camera_model": "V50x",
    "calib_dimension": {"w": 2716, "h": 1524},
    "orig_dimension": {"w": 2716, "h": 1524},
    "output_dimension": {"w": 2716, "h": 1524},
    "frame_readout_time": None,
    "gyro_lpf": None,
    "input_horizontal_stretch": 1.0,
    "num_images": 6,
    "fps": 29.999979,
    "official": False,
    "asymmetrical": True,
    "use_opencv_fisheye": True,
    "fisheye_params": {
        "RMS_error": 0.920755232738085,
        "camera_matrix": [[1521.8556549213351, 0.0, 1398.7223429856729],
                          [0.0, 1517.3353528760497, 629.1053659679567],
                          [0.0, 0.0, 1.0]],
        "distortion_coeffs": [0.13409177590858662, -0.33639498801548057, 0.3274956873988361,
                              -0.1478470585818954],
        "radial_distortion_limit": None,
    },
    "use_opencv_standard": False,
    "calib_params": {"RMS_error": 0.0, "camera_matrix": [], "distortion_coeffs": [],
                     "radial_distortion_limit": None},
    "distortion_model": "opencv_fisheye",
    "identifier": "",
    "calibrator_version": "1.0.0-rc4",
    "date": "2022-02-27",
    "compatible_settings": [],
}


def pixel_grid(cam: Camera, n: int = 25) -> np.ndarray:
    """(n*n, 2) pixels spanning the frame, corners included, plus half a pixel outside."""
    xs = np.linspace(-0.5, cam.width - 0.5, n)
    ys = np.linspace(-0.5, cam.height - 0.5, n)
    return np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)


def write_json(path: Path, d: dict) -> Path:
    path.write_text(json.dumps(d))
    return path


# ---- distortion ----------------------------------------------------------------------------


@pytest.mark.parametrize("cam", DISTORTED, ids=["opencv8", "opencv5", "fisheye"])
def test_undistort_inverts_distort_over_the_frame(cam: Camera) -> None:
    xn = cam.undistort_points(pixel_grid(cam))
    assert np.isfinite(xn).all()
    # Normalized points from the centre out past the corners.
    np.testing.assert_allclose(cam.undistort_points(cam.distort_points(xn)), xn,
                               rtol=0, atol=1e-9)
    np.testing.assert_allclose(cam.distort_points(xn), pixel_grid(cam), rtol=0, atol=1e-7)


@settings(max_examples=60, deadline=None)
@given(u=st.floats(-0.5, 1919.5), v=st.floats(-0.5, 1079.5), which=st.sampled_from([0, 1]))
def test_undistort_roundtrip_random_pixels(u: float, v: float, which: int) -> None:
    cam = [OPENCV, FISHEYE][which]
    p = np.array([u, v])
    xn = cam.undistort_points(p)
    np.testing.assert_allclose(cam.distort_points(xn), p, rtol=0, atol=1e-8)
    np.testing.assert_allclose(cam.undistort_points(cam.distort_points(xn)), xn, rtol=0,
                               atol=1e-9)


@pytest.mark.parametrize("cam", [OPENCV, OPENCV5], ids=["opencv8", "opencv5"])
def test_distort_matches_cv2_project_points(cam: Camera) -> None:
    xn = cam.undistort_points(pixel_grid(cam))
    obj = np.concatenate([xn, np.ones((len(xn), 1))], 1)
    ref, _ = cv2.projectPoints(obj, np.zeros(3), np.zeros(3), cam.K, np.array(cam.distortion))
    np.testing.assert_allclose(cam.distort_points(xn), ref[:, 0], rtol=0, atol=1e-6)


def test_distort_matches_cv2_fisheye() -> None:
    xn = FISHEYE.undistort_points(pixel_grid(FISHEYE))
    ref = cv2.fisheye.distortPoints(xn[None], FISHEYE.K, np.array(FISHEYE.distortion))
    np.testing.assert_allclose(FISHEYE.distort_points(xn), ref[0], rtol=0, atol=1e-6)


@pytest.mark.parametrize("cam", DISTORTED, ids=["opencv8", "opencv5", "fisheye"])
def test_undistort_matches_cv2_iterated_to_convergence(cam: Camera) -> None:
    p = pixel_grid(cam)[:, None]
    k, d, eye = cam.K, np.array(cam.distortion), np.eye(3)
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 1000, 1e-15)
    if cam.distortion_model == "fisheye":
        ref = cv2.fisheye.undistortPoints(p, k, d, R=eye, P=eye, criteria=criteria)
    elif hasattr(cv2, "undistortPointsIter"):  # OpenCV 4
        ref = cv2.undistortPointsIter(p, k, d, eye, eye, criteria)
    else:
        ref = cv2.undistortPoints(p, k, d, R=eye, P=eye, criteria=criteria)
    np.testing.assert_allclose(cam.undistort_points(p[:, 0]), ref[:, 0], rtol=0, atol=1e-9)


def test_pinhole_is_k_inverse() -> None:
    cam = Camera(640, 480, 500.0, 510.0, 320.2, 241.7)
    p = pixel_grid(cam)
    ph = np.concatenate([p, np.ones((len(p), 1))], 1)
    np.testing.assert_allclose(cam.undistort_points(p), (ph @ cam.K_inv.T)[:, :2], atol=1e-15)
    np.testing.assert_allclose(cam.K_inv @ cam.K, np.eye(3), atol=1e-15)


def test_unreachable_points_are_nan_not_garbage() -> None:
    # The real AKASO calibration folds: theta_d(theta) peaks at about 1.026 near theta = 1.1,
    # and the bottom-right corner (r_d = 1.047) has no preimage.
    corners = np.array([[-0.5, -0.5], [2715.5, -0.5], [2715.5, 1523.5], [AKASO.cx, AKASO.cy]])
    xn = AKASO.undistort_points(corners)
    assert np.isfinite(xn[:2]).all() and np.isnan(xn[2]).all()
    np.testing.assert_allclose(xn[3], 0.0, atol=1e-15)
    np.testing.assert_allclose(AKASO.distort_points(xn[:2]), corners[:2], rtol=0, atol=1e-8)


def test_a_folding_opencv_model_has_no_ray_past_its_fold() -> None:
    # r_d = r (1 - 0.45 r^2) peaks at r = 1/sqrt(1.35), r_d = 0.5738: farther pixels have no
    # ray; nearer ones have one in their own direction (radial model, no tangential terms).
    cam = Camera(160, 120, 100.0, 100.0, 79.5, 59.5, "opencv", (-0.45, 0.0, 0.0, 0.0))
    ys, xs = np.mgrid[0:120, 0:160]
    pixels = np.stack([xs, ys], -1).astype(np.float64)
    xd = (pixels - [cam.cx, cam.cy]) / 100.0
    rd = np.hypot(xd[..., 0], xd[..., 1])
    rays = cam.undistort_points(pixels)
    peak = 1 / np.sqrt(1.35) * (1 - 0.45 / 1.35)
    assert np.isnan(rays[rd > peak + 1e-3]).all()
    near = rd < peak - 1e-3
    assert np.isfinite(rays[near]).all()
    assert ((rays[near] * xd[near]).sum(-1) >= 0).all()


@pytest.mark.parametrize("model, k1, fold", [
    ("opencv", -0.45, 1 / np.sqrt(1.35)),  # d(r - 0.45 r^3)/dr = 0: a radius
    ("fisheye", -0.3, 1 / np.sqrt(0.9)),  # d(theta - 0.3 theta^3)/dtheta = 0: an angle
    ("none", 0.0, np.inf),
])
def test_rays_past_the_fold_have_no_image(model: str, k1: float, fold: float) -> None:
    k = (k1, 0.0, 0.0, 0.0) if model != "none" else ()
    cam = Camera(160, 120, 100.0, 100.0, 79.5, 59.5, model, k)
    assert cam.fold == pytest.approx(fold, rel=1e-9)
    radius = np.array([0.5, 0.99, 1.01, 1.5]) * min(fold, 1.0)
    xn = np.stack([np.tan(radius) if model == "fisheye" else radius, np.zeros(4)], -1)
    theta_d = radius * (1 + k1 * radius**2)  # both models' radial part, closed form
    expected = np.where(radius < fold, 100.0 * theta_d + 79.5, np.nan)
    np.testing.assert_allclose(cam.distort_points(xn)[:, 0], expected, rtol=0, atol=1e-9)


def test_a_model_that_folds_and_rises_again_has_no_false_rays_past_its_fold() -> None:
    # k3 > 0: r_d = r (1 + k1 r^2 + k2 r^4 + k3 r^6) peaks, then rises again from r = 4 on, so
    # the corners past the peak have a far, false preimage; they have no ray.
    k = (-0.21, -0.019, 0.0, 0.0, 0.00165)
    cam = Camera(160, 120, 107.0, 107.0, 79.5, 59.5, "opencv", k)
    s = min(root.real for root in np.roots([7 * k[4], 5 * k[1], 3 * k[0], 1])
            if abs(root.imag) < 1e-12 and root.real > 0)  # r^2 where d r_d / d r = 0
    peak = np.sqrt(s) * (1 + k[0] * s + k[1] * s**2 + k[4] * s**3)
    ys, xs = np.mgrid[0:120, 0:160]
    pixels = np.stack([xs, ys], -1).astype(np.float64)
    rd = np.hypot(xs - cam.cx, ys - cam.cy) / 107.0
    rays = cam.undistort_points(pixels)
    assert (rd > peak + 1e-3).sum() > 500 and np.isnan(rays[rd > peak + 1e-3]).all()
    near = rd < peak - 1e-3
    assert np.isfinite(rays[near]).all() and (np.hypot(*rays[near].T) < np.sqrt(s)).all()
    np.testing.assert_allclose(cam.distort_points(rays[near]), pixels[near], rtol=0, atol=1e-8)


def test_tangential_terms_move_the_fold_and_keep_the_rays_before_it() -> None:
    # The radial part (k1 = -0.3) folds at r = 1.054; with p1 = p2 = 0.01 the point below
    # lies past that radius yet still before the map's own fold: a ray, found again.
    cam = Camera(100, 100, 100.0, 100.0, 0.0, 0.0, "opencv", (-0.3, 0.0, 0.01, 0.01))
    ray = cam.undistort_points(np.array([71.0, -16.0]))
    assert np.hypot(*ray) > 1 / np.sqrt(0.9)
    np.testing.assert_allclose(cam.distort_points(ray), [71.0, -16.0], rtol=0, atol=1e-8)


def test_a_ray_whose_point_lies_past_the_radial_peak_is_found_again() -> None:
    # Here the tangential terms carry the ray's point beyond the radial part's largest
    # distorted radius: the map keeps its orientation all the way out (a ray), but a search
    # started at the radial fold, where the Jacobian is singular, would lose it.
    k = (-0.0015, 0.2788, -0.0174, -0.0078, -0.0863)
    cam = Camera(100, 100, 100.0, 100.0, 0.0, 0.0, "opencv", k)

    def distort(x: np.ndarray) -> np.ndarray:  # OpenCV's, on normalised points
        points = np.append(x, 1.0).reshape(1, 1, 3)
        return cv2.projectPoints(points, np.zeros(3), np.zeros(3), np.eye(3), np.array(k))[
            0].reshape(2)

    ray, h = np.array([-0.3527, -1.4213]), 1e-6
    for s in np.linspace(0.01, 1.0, 200):  # orientation kept from the centre out
        jac = np.stack([distort(ray * s + d) - distort(ray * s - d) for d in np.eye(2) * h],
                       1) / (2 * h)
        assert np.linalg.det(jac) > 0 and np.trace(jac) > 0
    r = np.linspace(0.0, 3.0, 300_001)
    radial = r * (1 + k[0] * r**2 + k[1] * r**4 + k[4] * r**6)
    peak = radial[: np.argmax(np.diff(radial) <= 0) + 1].max()
    pixel = distort(ray) * 100.0
    assert np.hypot(*ray) < r[np.argmax(radial)] and np.hypot(*(pixel / 100.0)) > peak
    np.testing.assert_allclose(cam.undistort_points(pixel), ray, rtol=0, atol=1e-9)


@pytest.mark.parametrize("k", [(0.3, -0.1, 0.0, 0.0), (0.4, -0.2, 0.02, 0.0),
                               (0.8, -0.5, 0.3, -0.1)])
def test_a_strongly_rising_fisheye_has_a_ray_up_to_its_peak_or_90_degrees(k: tuple) -> None:
    # theta_d = theta (1 + k1 theta^2 + ...) rises well above theta: a search started at
    # theta = r_d lies past the top of the curve. Every pixel below the curve's largest value
    # on [0, 90 deg] before it first falls has exactly one ray; the rest have none.
    cam = Camera(1920, 1080, 500.0, 500.0, 959.5, 539.5, "fisheye", k)
    theta = np.linspace(0.0, np.pi / 2, 1_000_001)
    t2 = theta**2
    curve = theta * (1 + t2 * (k[0] + t2 * (k[1] + t2 * (k[2] + t2 * k[3]))))
    rising = np.diff(curve) > 0
    peak = curve[: np.argmin(rising) + 1].max() if not rising.all() else curve[-1]
    ys, xs = np.mgrid[0:1080, 0:1920]
    pixels = np.stack([xs, ys], -1).astype(np.float64)
    rd = np.hypot(xs - cam.cx, ys - cam.cy) / 500.0
    rays = cam.undistort_points(pixels)
    near = rd < peak - 1e-3
    assert near.sum() > 1_000_000 and np.isfinite(rays[near]).all()
    np.testing.assert_allclose(cam.distort_points(rays[near]), pixels[near], rtol=0, atol=1e-8)
    assert np.isnan(rays[rd > peak + 1e-3]).all()


def test_a_rational_model_whose_denominator_vanishes_warns_nothing() -> None:
    # r_d = r / (1 - r^2) grows without bound towards r = 1: every pixel has a ray inside it.
    cam = Camera(100, 100, 100.0, 100.0, 49.5, 49.5, "opencv", (0, 0, 0, 0, 0, -1.0, 0, 0))
    pixels = pixel_grid(cam)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rays = cam.undistort_points(pixels)
    assert (np.hypot(*rays.reshape(-1, 2).T) < 1).all()
    np.testing.assert_allclose(cam.distort_points(rays), pixels, rtol=0, atol=1e-8)


def test_points_keep_leading_shape() -> None:
    p = np.zeros((2, 3, 4, 2))
    assert OPENCV.undistort_points(p).shape == p.shape
    assert FISHEYE.distort_points(p).shape == p.shape


def test_pixel_rays_are_cached_read_only_undistorted_centres() -> None:
    cam = AKASO.rescaled(340, 191)
    rays = cam.pixel_rays()
    assert rays.shape == (191, 340, 2) and rays.dtype == np.float64
    assert cam.pixel_rays() is rays and not rays.flags.writeable
    np.testing.assert_array_equal(rays[7, 11], cam.undistort_points(np.array([11.0, 7.0])))


# ---- rescaling -----------------------------------------------------------------------------


@pytest.mark.parametrize("cam", DISTORTED + [Camera(640, 480, 500.0, 500.0, 319.5, 239.5)],
                         ids=["opencv8", "opencv5", "fisheye", "pinhole"])
def test_halving_maps_pixel_centres(cam: Camera) -> None:
    big = cam.rescaled(2 * (cam.width // 2), 2 * (cam.height // 2))
    small = big.rescaled(big.width // 2, big.height // 2)
    # Small pixel (0, 0) covers big pixels (0, 0)-(1, 1): the same ray as big (0.5, 0.5).
    np.testing.assert_allclose(small.undistort_points(np.array([0.0, 0.0])),
                               big.undistort_points(np.array([0.5, 0.5])), rtol=0, atol=1e-12)
    p = pixel_grid(small, 9)
    np.testing.assert_allclose(small.undistort_points(p), big.undistort_points(2 * p + 0.5),
                               rtol=0, atol=1e-12)


def test_rescale_keeps_rays_and_readout() -> None:
    cam = OPENCV.replace(readout_time=0.02, readout_direction="bottom_to_top")
    small = cam.rescaled(1280, 720)
    s = 1280 / 1920
    p = pixel_grid(small, 11)
    np.testing.assert_allclose(small.undistort_points(p), cam.undistort_points((p + 0.5) / s - 0.5),
                               rtol=0, atol=1e-12)
    assert small.distortion == cam.distortion
    assert (small.readout_time, small.readout_direction) == (0.02, "bottom_to_top")
    np.testing.assert_allclose(small.rescaled(1920, 1080).K, cam.K, rtol=0, atol=1e-12)


def test_rescale_refuses_other_aspect_ratio() -> None:
    cam = Camera(4000, 3000, 3000.0, 3000.0, 1999.5, 1499.5)
    with pytest.raises(InputError, match="cannot rescale 4000x3000 camera to 1920x1080: "
                                         "aspect ratio differs"):
        cam.rescaled(1920, 1080)
    assert cam.rescaled(1920, 1441).height == 1441  # under 1 %: rounding of an odd size


# ---- rolling shutter -----------------------------------------------------------------------


def test_row_start_times_both_directions() -> None:
    cam = Camera(8, 5, 4.0, 4.0, 3.5, 2.0, readout_time=0.04)
    np.testing.assert_allclose(cam.row_start_times(10.0), [10.0, 10.01, 10.02, 10.03, 10.04])
    rev = cam.replace(readout_direction="bottom_to_top").row_start_times(10.0)
    np.testing.assert_allclose(rev, [10.04, 10.03, 10.02, 10.01, 10.0])
    one_row = Camera(8, 1, 4.0, 4.0, 3.5, 0.0, readout_time=0.04)
    assert one_row.row_start_times(2.0).tolist() == [2.0]
    assert one_row.replace(readout_direction="bottom_to_top").row_start_times(2.0).tolist() == [2.0]
    assert Camera(8, 5, 4.0, 4.0, 3.5, 2.0).row_start_times(1.5).tolist() == [1.5] * 5


# ---- our JSON ------------------------------------------------------------------------------


def test_json_round_trip(tmp_path: Path) -> None:
    c, s = np.cos(0.3), np.sin(0.3)
    cam = OPENCV.replace(readout_time=0.0163, readout_direction="bottom_to_top",
                         imu_to_camera=((c, -s, 0.0), (s, c, 0.0), (0.0, 0.0, 1.0)),
                         time_offset=-0.0125)
    save_camera(cam, tmp_path / "cam.json")
    assert load_camera(tmp_path / "cam.json") == cam
    assert camera_from_dict(json.loads((tmp_path / "cam.json").read_text())) == cam
    assert hash(load_camera(tmp_path / "cam.json")) == hash(cam)
    assert [p.name for p in tmp_path.iterdir()] == ["cam.json"]  # no temporary left behind


def test_json_defaults() -> None:
    cam = camera_from_dict({"width": 4, "height": 3, "fx": 2, "fy": 2, "cx": 1.5, "cy": 1})
    assert cam.distortion_model == "none" and cam.distortion == ()
    assert cam.readout_time == 0.0 and cam.readout_direction == "top_to_bottom"
    np.testing.assert_array_equal(cam.R_imu_to_camera, np.eye(3))
    assert cam.time_offset == 0.0


GOOD = {"width": 640, "height": 480, "fx": 500.0, "fy": 500.0, "cx": 319.5, "cy": 239.5}


@pytest.mark.parametrize(("change", "message"), [
    ({"fx": None}, "missing key"),
    ({"fx": -500.0}, "focal lengths must be positive"),
    ({"width": 0}, "frame size must be positive"),
    ({"width": 640.5}, "width must be an integer"),
    ({"distortion_model": "kannala"}, "unknown distortion_model 'kannala'"),
    ({"distortion_model": "opencv", "distortion": [0.1, 0.01, 0.0]}, "takes 4 or 5 or 8"),
    ({"distortion_model": "fisheye", "distortion": [0.1, 0.0, 0.0, 0.0, 0.0]}, "takes 4"),
    ({"distortion": [0.1]}, "takes 0"),
    ({"imu_to_camera": [[1, 0, 0], [0, 1, 0], [0, 0, -1]]}, "not a rotation"),
    ({"imu_to_camera": [[1.1, 0, 0], [0, 1, 0], [0, 0, 1]]}, "not a rotation"),
    ({"imu_to_camera": [[1, 0, 0], [0, 1, 0]]}, "must be 3x3"),
    ({"imu_to_camera": [[1, 0, 0], [0, 1], [0, 0, 1]]}, "must be 3x3"),
    ({"readout_time": -0.01}, "readout_time must be >= 0"),
    ({"readout_time": 33}, r"readout_time 33 s is not a sensor readout; .* \(33 ms is 0.033\)"),
    ({"readout_direction": "left_to_right"}, "unknown readout_direction"),
    ({"fy": "500"}, "fy must be a number"),
    ({"fx": float("nan")}, "fx must be finite"),
    ({"readout": 0.01}, "unknown camera key"),
    ({"width": 10 ** 340}, "width must be finite, got an integer of 341 digits"),
    ({"fx": 10 ** 340}, "fx must be finite, got an integer of 341 digits"),
    ({"fx": 0.78, "fy": 1.39, "cx": 0.5, "cy": 0.5}, r"focal lengths are in pixels \(normal"),
    ({"fx": 1e8}, r"fx=1e\+08, fy=500 for a 640x480 frame: a field of view under 0.006"),
    ({"cx": -5000.0}, r"principal point \(-5000, .*\) is far outside the 640x480 frame"),
])
def test_bad_json_names_the_file(tmp_path: Path, change: dict, message: str) -> None:
    d = {**GOOD, **change}
    d = {k: v for k, v in d.items() if v is not None}
    path = write_json(tmp_path / "bad.json", d)
    with pytest.raises(InputError, match=message) as err:
        load_camera(path)
    assert str(err.value).startswith(f"{path}: ")
    assert "\n" not in str(err.value)


def test_small_rotation_error_is_tolerated() -> None:
    cam = camera_from_dict({**GOOD, "imu_to_camera": [[1, 2e-4, 0], [-2e-4, 1, 0], [0, 0, 1]]})
    assert cam.imu_to_camera[0][1] == pytest.approx(2e-4, rel=1e-6)


def test_rounded_rotation_becomes_the_nearest_rotation() -> None:
    # 30 degrees about x written with 3 decimals, as mounting matrices often are.
    rounded = [[1, 0, 0], [0, 0.866, -0.5], [0, 0.5, 0.866]]
    r = camera_from_dict({**GOOD, "imu_to_camera": rounded}).R_imu_to_camera
    c, s = np.cos(np.pi / 6), np.sin(np.pi / 6)
    np.testing.assert_allclose(r, [[1, 0, 0], [0, c, -s], [0, s, c]], atol=1e-4)
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-15)
    # What the gyro is turned with accepts it (it demands orthogonality to 1e-6).
    log = GyroLog(np.array([0.0, 1.0]), np.array([[0.0, 1.0, 0.0]] * 2))
    np.testing.assert_allclose(to_camera_frame(log, r).w[0], [0, c, s], atol=1e-4)


def test_replace_validates() -> None:
    with pytest.raises(InputError, match="focal lengths"):
        OPENCV.replace(fx=0.0)


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        load_camera(tmp_path / "missing.json")
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(InputError, match="junk.json: not a camera JSON"):
        load_camera(tmp_path / "junk.json")
    with pytest.raises(InputError, match="not a camera file"):
        load_camera(write_json(tmp_path / "other.json", {"w": 3}))


# ---- Gyroflow lens profiles ----------------------------------------------------------------


def test_gyroflow_profile(tmp_path: Path) -> None:
    cam = load_camera(write_json(tmp_path / "akaso.json", GYROFLOW_PROFILE))
    assert cam == AKASO


def test_gyroflow_symmetric_profile_centres_principal_point(tmp_path: Path) -> None:
    d = {**GYROFLOW_PROFILE, "frame_readout_time": 15.5}
    del d["asymmetrical"], d["distortion_model"]  # older profiles: defaults apply
    cam = load_camera(write_json(tmp_path / "p.json", d))
    assert cam.distortion_model == "fisheye"
    assert (cam.cx, cam.cy) == (2715 / 2, 1523 / 2)
    assert cam.fx == AKASO.fx and cam.distortion == AKASO.distortion
    assert cam.readout_time == pytest.approx(0.0155 * 1523 / 1524)
    assert cam.readout_direction == "top_to_bottom"
    d["frame_readout_direction"] = "BottomToTop"
    assert load_camera(write_json(tmp_path / "p.json", d)).readout_direction == "bottom_to_top"
    d["global_shutter"] = True
    assert load_camera(write_json(tmp_path / "p.json", d)).readout_time == 0.0


def test_gyroflow_compatible_settings_give_the_mode_of_the_footage(tmp_path: Path) -> None:
    # Gyroflow expands compatible_settings into profiles of other modes (lens_profile.rs
    # get_all_matching_profiles): a width scales the calibration, a readout time replaces it.
    d = {**GYROFLOW_PROFILE, "frame_readout_time": 15.0, "compatible_settings": [
        {"width": 1358, "height": 762, "frame_readout_time": 8.0},
        {"fps": 60.0, "frame_readout_time": 10.0}]}
    path = write_json(tmp_path / "modes.json", d)
    base = load_camera(path)
    assert base.readout_time == pytest.approx(0.015 * 1523 / 1524)
    half = load_camera(path, mode_size=(1358, 762))
    assert half.readout_time == pytest.approx(0.008 * 761 / 762)
    assert half.fx == pytest.approx(GYROFLOW_PROFILE["fisheye_params"]["camera_matrix"][0][0] / 2)
    # An asymmetrical principal point moves as a rescaling moves it (pixel centres).
    uneven = load_camera(write_json(tmp_path / "uneven.json", {**d, "asymmetrical": True}),
                         mode_size=(1358, 762))
    whole = load_camera(write_json(tmp_path / "whole.json", {**d, "asymmetrical": True}))
    assert whole.cx != (whole.width - 1) / 2
    expected = whole.rescaled(1358, 762)
    assert (uneven.cx, uneven.cy) == pytest.approx((expected.cx, expected.cy), abs=1e-9)
    assert load_camera(path, mode_size=(2716, 1524), mode_fps=59.94).readout_time == \
        pytest.approx(0.010 * 1523 / 1524)
    assert load_camera(path, mode_size=(2716, 1524), mode_fps=30.0).readout_time == \
        base.readout_time
    assert load_camera(path, mode_size=(1920, 1080)).readout_time == base.readout_time  # no mode
    # A mode's size as the entry gives it, though the calibration scales to a row more
    # (1524 * 1913 / 2716 = 1073.4): scaled by the width, the rows a crop of it.
    d["compatible_settings"] = [{"width": 1913, "height": 1072, "frame_readout_time": 9.0}]
    odd = load_camera(write_json(tmp_path / "odd.json", d), mode_size=(1913, 1072))
    assert (odd.width, odd.height) == (1913, 1072)
    assert odd.fx == pytest.approx(GYROFLOW_PROFILE["fisheye_params"]["camera_matrix"][0][0]
                                   * 1913 / 2716, rel=1e-12)
    assert odd.fy == pytest.approx(GYROFLOW_PROFILE["fisheye_params"]["camera_matrix"][1][1]
                                   * 1913 / 2716, rel=1e-12)
    assert odd.readout_time == pytest.approx(0.009 * 1071 / 1072, rel=1e-12)


def test_a_gyroflow_mode_of_another_aspect_ratio_is_a_sensor_crop(tmp_path: Path) -> None:
    # Gyroflow (lens_profile.rs get_all_matching_profiles): where width and height scale the
    # calibration differently, the mode is a crop of the sensor: the camera matrix is kept.
    d = {**GYROFLOW_PROFILE, "frame_readout_time": 15.0, "compatible_settings": [
        {"width": 2716, "height": 1080, "frame_readout_time": 7.0}]}
    matrix = GYROFLOW_PROFILE["fisheye_params"]["camera_matrix"]
    crop = load_camera(write_json(tmp_path / "crop.json", {**d, "asymmetrical": False}),
                       mode_size=(2716, 1080))
    assert (crop.width, crop.height) == (2716, 1080)
    assert (crop.fx, crop.fy) == (matrix[0][0], matrix[1][1])
    assert (crop.cx, crop.cy) == (2715 / 2, 1079 / 2)  # not asymmetrical: the crop's centre
    assert crop.readout_time == pytest.approx(0.007 * 1079 / 1080)
    assert crop.rescaled(1358, 540).fx == pytest.approx(matrix[0][0] / 2)
    uneven = load_camera(write_json(tmp_path / "uneven.json", d), mode_size=(2716, 1080))
    assert d["asymmetrical"] and (uneven.cx, uneven.cy) == (matrix[0][2], matrix[1][2])


def test_json_with_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "bom.json"
    path.write_text("\ufeff" + json.dumps(GOOD), encoding="utf-8")
    assert load_camera(path).fx == 500.0


def test_gyroflow_opencv_standard_and_project_file(tmp_path: Path) -> None:
    params = {"camera_matrix": [[1600.0, 0.0, 960.0], [0.0, 1600.0, 540.0], [0.0, 0.0, 1.0]],
              "distortion_coeffs": [-0.1, 0.02, 0.0, 0.0, 0.001, 0, 0, 0, 0, 0, 0, 0]}
    lens = {"calib_dimension": {"w": 1920, "h": 1080}, "distortion_model": "opencv_standard",
            "asymmetrical": True, "fisheye_params": params, "frame_readout_time": -10.0,
            "crop": 1.25}
    cam = load_camera(write_json(tmp_path / "p.gyroflow", {"calibration_data": lens}))
    assert cam.distortion_model == "opencv" and cam.distortion == (-0.1, 0.02, 0.0, 0.0, 0.001)
    assert (cam.fx, cam.cx, cam.cy) == (1280.0, 960.0, 540.0)
    assert cam.readout_direction == "bottom_to_top"
    assert cam.readout_time == pytest.approx(0.01 * 1079 / 1080)
    pinhole = {**lens, "fisheye_params": {**params, "distortion_coeffs": []}}
    assert load_camera(write_json(tmp_path / "q.json", pinhole)).distortion_model == "none"
    # The readout the project stabilised with (Gyroflow keeps it under stabilization).
    project = {"calibration_data": lens, "stabilization": {"frame_readout_time": 22.0,
                                                           "frame_readout_direction": 0}}
    cam = load_camera(write_json(tmp_path / "r.gyroflow", project))
    assert cam.readout_time == pytest.approx(0.022 * 1079 / 1080)
    assert cam.readout_direction == "top_to_bottom"


def test_gyroflow_fisheye_without_coefficients_is_a_pinhole(tmp_path: Path) -> None:
    # Gyroflow's opencv_fisheye passes points through when k1..k4 are all zero (an
    # uncalibrated lens), where OpenCV's equidistant model would bend the corners.
    lens = {**GYROFLOW_PROFILE, "fisheye_params": {**GYROFLOW_PROFILE["fisheye_params"],
                                                   "distortion_coeffs": [0, 0, 0, 0]}}
    cam = load_camera(write_json(tmp_path / "uncalibrated.json", lens))
    assert cam.distortion_model == "none"
    corner = np.array([[cam.width - 1.0, cam.height - 1.0]])
    ray = cam.undistort_points(corner)
    np.testing.assert_allclose(ray, [[(cam.width - 1 - cam.cx) / cam.fx,
                                      (cam.height - 1 - cam.cy) / cam.fy]], rtol=1e-12)


def test_python_gyroflow_standard_preset(tmp_path: Path) -> None:
    # The Python Gyroflow's presets kept a standard-model calibration in calib_params.
    lens = {"calib_dimension": {"w": 1920, "h": 1080}, "use_opencv_fisheye": False,
            "fisheye_params": {}, "use_opencv_standard": True,
            "calib_params": {"camera_matrix": [[1500, 0, 960], [0, 1500, 540], [0, 0, 1]],
                             "distortion_coeffs": [-0.1, 0.02, 0, 0, 0]}}
    cam = load_camera(write_json(tmp_path / "preset.json", lens))
    assert cam.distortion_model == "opencv" and cam.distortion == (-0.1, 0.02, 0.0, 0.0)
    assert (cam.fx, cam.cx, cam.cy) == (1500.0, 959.5, 539.5)


@pytest.mark.parametrize(("change", "message"), [
    ({"distortion_model": "poly3"}, "distortion model 'poly3' is not supported"),
    ({"digital_lens": "gopro_superview"}, "digital lens 'gopro_superview'"),
    ({"input_horizontal_stretch": 1.33}, "anamorphic"),
    ({"input_vertical_stretch": "1.33"}, "input_vertical_stretch must be a number, got '1.33'"),
    ({"distortion_model": "opencv_standard", "fisheye_params": {
        **GYROFLOW_PROFILE["fisheye_params"], "distortion_coeffs": [0.1] + [0] * 12 + [0.01]}},
     r"coefficients after k6 \(thin prism s1..s4, tilt tauX, tauY\)"),
    ({"fisheye_params": {"camera_matrix": [[1.0, 0.0, 1.0]], "distortion_coeffs": []}},
     "camera_matrix must be 3x3"),
    ({"fisheye_params": {**GYROFLOW_PROFILE["fisheye_params"], "distortion_coeffs": [0.1]}},
     "needs 4 coefficients"),
    ({"calib_dimension": {"w": 2716}}, "malformed calib_dimension"),
    ({"frame_readout_direction": "LeftToRight"}, "frame_readout_direction 'LeftToRight'"),
    ({"calib_dimension": {"w": 0, "h": 0}}, "calib_dimension 0x0 is not a frame size"),
    ({"frame_readout_time": 0.02}, "frame_readout_time 0.02 ms is no rolling shutter's"),
    ({"frame_readout_time": 15000}, "frame_readout_time 15000 ms is no rolling shutter's"),
    ({"fisheye_params": "none"}, "fisheye_params must be an object, got 'none'"),
    ({"fisheye_params": [1, 2]}, r"fisheye_params must be an object, got \[1, 2\]"),
    ({"calib_dimension": {"w": float("inf"), "h": 1080}}, "calib_dimension.w must be finite"),
    ({"calib_dimension": {"w": 2716.7, "h": 1524}}, "calib_dimension.w must be an integer"),
    ({"calib_dimension": {"w": 2716, "h": "1524"}},
     "calib_dimension.h must be an integer, got '1524'"),
])
def test_gyroflow_refusals(tmp_path: Path, change: dict, message: str) -> None:
    path = write_json(tmp_path / "lens.json", {**GYROFLOW_PROFILE, **change})
    with pytest.raises(InputError, match=message) as err:
        load_camera(path)
    assert str(err.value).startswith(f"{path}: Gyroflow lens profile: ")


# ---- GyroVD cam_metainfo.csv ---------------------------------------------------------------


@pytest.mark.skipif(not GYROVD_CSV.is_file(), reason="shared GyroVD data not present")
def test_gyrovd_real_file() -> None:
    for source in (GYROVD_CSV, GYROVD_CSV.parent, GYROVD_CSV.parent.parent):
        cam = load_camera(source)
        assert (cam.width, cam.height) == (1080, 1920)
        assert cam.fx == pytest.approx(2801.0205 * 1080 / 2295, rel=1e-12)
        assert cam.fy == pytest.approx(2801.0205 * 1920 / 4080, rel=1e-12)
        assert cam.cx == pytest.approx((1541.4434 - 388.5) * 1080 / 2295, rel=1e-12)
        assert cam.cy == pytest.approx(2021.0679 * 1920 / 4080, rel=1e-12)
        assert cam.distortion_model == "none" and cam.readout_time == 0.0
        assert cam.time_offset == 0.0
        np.testing.assert_array_equal(cam.R_imu_to_camera, np.diag([1.0, -1.0, -1.0]))


def gyrovd_row(*, intrinsics: str = "2797.2017,2801.0205,2021.0679,1541.4434,0") -> str:
    return "16006,0,170,99777679,1.31,1,1,2.76," + "0.1," * 9 + intrinsics


def test_gyrovd_synthetic_and_malformed(tmp_path: Path) -> None:
    good = tmp_path / "cam_metainfo.csv"
    good.write_text(gyrovd_row() + "\n" + gyrovd_row() + "\n")
    assert load_camera(tmp_path).fx == pytest.approx(2801.0205 * 1080 / 2295)

    other = gyrovd_row(intrinsics="2797.2017,2900.0,2021.0679,1541.4434,0")
    good.write_text(gyrovd_row() + "\n" + other + "\n")
    with pytest.warns(UserWarning, match="using the first row"):
        assert load_camera(good).fx == pytest.approx(2801.0205 * 1080 / 2295)

    cases = {"short.csv": (gyrovd_row()[:-2], r"expected 22 comma-separated columns .*found 21"),
             "nan.csv": (gyrovd_row(intrinsics="2797.2,nan,2021.0,1541.4,0"), "NaN"),
             "text.csv": (gyrovd_row(intrinsics="a,b,c,d,e"), "not a number"),
             "empty.csv": ("", "empty"),
             "syn.csv": (",".join(["1.0"] * 15), r"found 15: GyroVD-Syn's layout, not read: "
                                                 r"give a camera JSON"),
             "raw_gyro.csv": ("0.1,0.2,0.3,590984740505455", r"found 4: a gyro log"),
             "gyro.csv": ("t,wx,wy,wz\n0,0,0,0\n", r"not a camera file: a CSV with a header "
                                                    r"\(t,wx,wy,wz\)"),
             # Normalised intrinsics, which GyroVD never writes: the file's f is named.
             "unit.csv": (gyrovd_row(intrinsics="1.0,1.0,0.5,0.5,0"),
                          r"implausible lens intrinsics f=1.0, principal point \(0.5, 0.5\)"),
             "huge.csv": (gyrovd_row(intrinsics="2797.2,9e7,2021.0,1541.4,0"),
                          r"implausible lens intrinsics f=90000000.0")}
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(InputError, match=message) as err:
            load_camera(tmp_path / name)
        assert str(err.value).startswith(str(tmp_path / name))
    (tmp_path / "nowhere").mkdir()
    with pytest.raises(InputError, match="no cam_metainfo.csv"):
        load_camera(tmp_path / "nowhere")


@pytest.mark.parametrize("points", [np.zeros((2, 5)), np.zeros((4, 3)), np.float64(1.0)])
def test_points_of_another_layout_are_refused(points):
    cam = Camera(64, 48, 50.0, 50.0, 31.5, 23.5, "opencv", (0.1, 0.0, 0.0, 0.0))
    for convert in (cam.distort_points, cam.undistort_points):
        with pytest.raises(ValueError, match=r"must be \(\.\.\., 2\) points"):
            convert(points)


@pytest.mark.parametrize(("width", "height", "hfov"), [(640, 480, 90.0), (480, 640, 60.0),
                                                       (1001, 371, 150.0)])
def test_a_camera_from_its_field_of_view_sees_it_edge_to_edge(width, height, hfov):
    cam = Camera.from_fov(width, height, hfov, readout_time=0.02)
    longer = max(width, height)
    # The frame's outer pixel edges along its longer side, -0.5 and longer - 0.5, as rays.
    edges = np.array([[-0.5, (height - 1) / 2], [width - 0.5, (height - 1) / 2]])
    if height > width:
        edges = np.array([[(width - 1) / 2, -0.5], [(width - 1) / 2, height - 0.5]])
    rays = np.column_stack([(edges - [cam.cx, cam.cy]) / [cam.fx, cam.fy], np.ones(2)])
    cos = rays[0] @ rays[1] / np.linalg.norm(rays[0]) / np.linalg.norm(rays[1])
    assert np.degrees(np.arccos(cos)) == pytest.approx(hfov, abs=1e-9)
    assert (cam.fx, cam.cx, cam.cy) == (cam.fy, (width - 1) / 2, (height - 1) / 2)
    assert cam.readout_time == 0.02 and cam.distortion_model == "none"
    assert longer / 2 / cam.fx == pytest.approx(np.tan(np.radians(hfov) / 2), rel=1e-12)
    for wrong in (0.0, 180.0, float("nan")):
        with pytest.raises(ValueError, match=f"hfov_deg {wrong}: degrees, more than 0 and "
                                             "less than 180"):
            Camera.from_fov(width, height, wrong)


def test_a_gyroflow_mode_brings_its_crop_and_lens(tmp_path: Path) -> None:
    # GoPro profiles list modes of one size that differ in crop (HyperSmooth Boost crops more)
    # or in a digital lens (HyperView): as Gyroflow reads them, a crop divides the focal
    # lengths of the mode's scaled calibration; the lens is not ours to undo.
    fx = GYROFLOW_PROFILE["fisheye_params"]["camera_matrix"][0][0]
    d = {**GYROFLOW_PROFILE, "compatible_settings": [
        {"width": 1358, "height": 762, "fps": 100.0, "crop": 0.745, "identifier": "boost"},
        {"width": 1358, "height": 762, "fps": 50.0, "identifier": "plain"},
        {"width": 2716, "height": 1524, "fps": 60.0, "digital_lens": "gopro_hyperview"},
        {"width": 1358, "height": 762, "fps": 25.0, "interpolations": {"35": {}}}]}
    path = write_json(tmp_path / "gopro.json", d)
    boost = load_camera(path, mode_size=(1358, 762), mode_fps=100.0)
    assert boost.fx == pytest.approx(fx / 2 / 0.745, rel=1e-12)
    assert load_camera(path, mode_size=(1358, 762), mode_fps=50.0).fx == pytest.approx(fx / 2)
    with pytest.raises(InputError, match=r"gopro.json: Gyroflow lens profile: digital lens "
                                         r"'gopro_hyperview' is not supported$"):
        load_camera(path, mode_size=(2716, 1524), mode_fps=60.0)
    with pytest.raises(InputError, match=r"gopro.json: Gyroflow lens profile: a zoom lens's "
                                         r"interpolations by focal length are not supported"):
        load_camera(path, mode_size=(1358, 762), mode_fps=25.0)
    # Without the frame rate that tells them apart, which mode was filmed is not guessed.
    with pytest.raises(InputError, match=r"gopro.json: Gyroflow lens profile: 3 modes fit "
                                         r"1358x762 with different crops or lenses \(boost, "
                                         r"plain, \?\): give a profile of the mode filmed alone$"):
        load_camera(path, mode_size=(1358, 762))
    with pytest.raises(InputError, match="zoom lens's interpolations"):
        load_camera(write_json(tmp_path / "zoom.json", {**GYROFLOW_PROFILE,
                                                       "interpolations": {"35": {}}}))
