import json

import numpy as np
import pytest

from gyrodeblur.geometry.camera import Camera, load_camera
from gyrodeblur.geometry.gyro import GyroLog, gyroflow_imu_to_camera, read_gyro
from gyrodeblur.geometry.rotation import integrate, log_so3
from gyrodeblur.kernels.rotation import (
    SPAN_MARGIN,
    camera_orientation,
    complete_camera,
    rotation_trajectories,
    sample_times,
)

PINHOLE = Camera(width=64, height=48, fx=80.0, fy=82.0, cx=31.0, cy=24.5)
OPENCV = PINHOLE.replace(distortion_model="opencv",
                         distortion=(-0.28, 0.09, 0.001, -0.0015, -0.01))
FISHEYE = PINHOLE.replace(distortion_model="fisheye", distortion=(0.05, -0.02, 0.004, -0.001))


def constant_rate(w, duration=2.0, n=400):
    return integrate(np.linspace(0.0, duration, n), np.tile(w, (n, 1)))


@pytest.mark.parametrize("rate", [0.3, -1.7])
def test_constant_yaw_moves_principal_point_by_fx_tan(rate):
    cam = PINHOLE.replace(cx=32.0, cy=24.0, readout_time=0.03)
    traj, times = rotation_trajectories(constant_rate([0.0, rate, 0.0]), cam, 0.5, 0.04, 9)
    dt = times[:, 24] - (times[0, 24] + 0.02)
    np.testing.assert_allclose(traj[:, 0, 24, 32], cam.fx * np.tan(rate * dt), atol=2e-4)
    np.testing.assert_allclose(traj[:, 1, 24, 32], 0.0, atol=2e-4)


def test_constant_roll_rotates_about_principal_point():
    cam = PINHOLE.replace(fy=80.0, cx=32.0, cy=24.0)
    traj, _ = rotation_trajectories(constant_rate([0.0, 0.0, 2.0]), cam, 0.5, 0.02, 3)
    angle = 2.0 * 0.01  # end sample is t_e / 2 after the reference
    p = np.array([50.0, 10.0]) - [32.0, 24.0]
    expected = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) @ p
    np.testing.assert_allclose(traj[2, :, 10, 50], expected - p, atol=1e-3)


@pytest.mark.parametrize("cam", [PINHOLE, OPENCV, FISHEYE])
def test_zero_gyro_gives_zero_kernels(cam):
    traj, _ = rotation_trajectories(constant_rate([0.0, 0.0, 0.0]), cam, 0.3, 0.05, 5)
    assert traj.shape == (5, 2, 48, 64) and traj.dtype == np.float32
    assert np.abs(traj).max() < 1e-3


def test_reference_sample_is_zero_and_times_follow_conventions():
    cam = PINHOLE.replace(readout_time=0.02, time_offset=0.1)
    traj, times = rotation_trajectories(constant_rate([0.5, -0.7, 0.2]), cam, 0.5, 0.04, 5)
    np.testing.assert_allclose(traj[2], 0.0, atol=1e-4)  # t_2 is mid-exposure: the reference
    row_start = 0.5 + 0.1 + np.arange(48) / 47 * 0.02
    np.testing.assert_allclose(times, row_start + 0.04 * np.arange(5)[:, None] / 4)


@pytest.mark.parametrize("direction", ["top_to_bottom", "bottom_to_top"])
def test_rolling_shutter_row_equals_global_shutter_started_later(direction):
    # A rate that changes in time makes every row's kernel different.
    t = np.linspace(0, 2, 2001)
    w = np.stack([np.sin(7 * t), 0.5 * np.cos(5 * t), 0.3 * t], -1)
    orientation = integrate(t, w)
    rs = PINHOLE.replace(readout_time=0.03, readout_direction=direction)
    traj_rs, _ = rotation_trajectories(orientation, rs, 0.8, 0.02, 7)
    for y in (0, 20, 47):
        delay = (y if direction == "top_to_bottom" else 47 - y) / 47 * 0.03
        traj_gs, _ = rotation_trajectories(orientation, PINHOLE, 0.8 + delay, 0.02, 7)
        np.testing.assert_allclose(traj_rs[:, :, y], traj_gs[:, :, y], atol=1e-4)
    assert np.abs(traj_rs[:, :, 0] - traj_rs[:, :, 47]).max() > 0.05


def test_sample_times_rejects_one_sample():
    with pytest.raises(ValueError):
        sample_times(PINHOLE, 0.0, 0.01, 1)


def test_trajectories_of_several_frames_at_once_are_refused_by_name():
    with pytest.raises(ValueError, match="one frame's seconds"):
        rotation_trajectories(constant_rate([0.0, 0.1, 0.0]), PINHOLE, np.array([0.2, 0.3]), 0.01)


def test_a_gyro_log_in_place_of_its_orientation_is_refused():
    from gyrodeblur.geometry.gyro import GyroLog

    log = GyroLog(np.array([0.0, 1.0]), np.zeros((2, 3)))
    cam = Camera(width=4, height=3, fx=10.0, fy=10.0, cx=1.5, cy=1.0)
    with pytest.raises(TypeError, match="camera_orientation"):
        rotation_trajectories(log, cam, 0.2, 0.1)


def test_a_gcsv_readout_becomes_the_cameras_as_a_lens_profiles_does(tmp_path):
    # Gyroflow's frame_readout_time spans the frame's h rows, in the gcsv as in a lens
    # profile; ours runs from the first row to the last: * (h - 1) / h for both.
    profile = {"calib_dimension": {"w": 160, "h": 100}, "frame_readout_time": 20.0,
               "fisheye_params": {"camera_matrix": [[100, 0, 79.5], [0, 100, 49.5], [0, 0, 1]],
                                  "distortion_coeffs": [0, 0, 0, 0]}}
    (tmp_path / "lens.json").write_text(json.dumps(profile))
    from_profile = load_camera(tmp_path / "lens.json")
    plain = Camera(width=160, height=100, fx=100.0, fy=100.0, cx=79.5, cy=49.5)
    t = np.array([0.0, 0.01])
    for readout, direction in ((0.02, "top_to_bottom"), (-0.02, "bottom_to_top")):
        cam = complete_camera(plain, GyroLog(t, np.zeros((2, 3)), readout_time=readout))
        assert cam.readout_time == pytest.approx(from_profile.readout_time)
        assert cam.readout_time == pytest.approx(0.02 * 99 / 100)
        assert cam.readout_direction == direction
    # The camera's own readout and rotation win over the log's (a readout that differs by
    # more than a quarter, with a warning).
    rotated = plain.replace(readout_time=0.01, imu_to_camera=((0, 1, 0), (-1, 0, 0), (0, 0, 1)))
    log = GyroLog(t, np.zeros((2, 3)), readout_time=0.02,
                  imu_to_camera=gyroflow_imu_to_camera("YxZ"))
    with pytest.warns(UserWarning, match=r"frame_readout_time \(20 ms\) is not the camera's "
                                         r"readout \(10 ms\), which is used"):
        assert complete_camera(rotated, log) == rotated
    np.testing.assert_array_equal(complete_camera(plain, log).R_imu_to_camera,
                                  gyroflow_imu_to_camera("YxZ"))


def test_a_gcsv_orientation_turns_the_gyro_where_the_camera_is_silent(tmp_path):
    # YxZ: the gyro's y is the camera's -y; a camera file without imu_to_camera takes it.
    path = tmp_path / "log.gcsv"
    path.write_text("GYROFLOW IMU LOG\norientation,YxZ\ntscale,0.001\ngscale,1\n"
                    "t,gx,gy,gz\n" + "".join(f"{i * 5},0,0.5,0\n" for i in range(201)))
    log = read_gyro(path)
    silent = Camera(64, 48, 60.0, 60.0, 31.5, 23.5)
    turned = log_so3(camera_orientation(log, silent).at(np.array(1.0)))
    expected = log_so3(camera_orientation(log, complete_camera(silent, log)).at(np.array(1.0)))
    np.testing.assert_allclose(turned, expected, atol=1e-12)
    np.testing.assert_allclose(turned, gyroflow_imu_to_camera("YxZ") @ [0.0, 0.5, 0.0],
                               atol=1e-9)


def test_samples_must_be_an_integer_of_at_least_two():
    for samples in (2.5, 1, True):
        with pytest.raises(ValueError, match="samples: need an integer of at least 2"):
            sample_times(PINHOLE, 0.4, 0.2, samples)


def test_functions_of_a_log_and_a_camera_name_their_order_given_the_wrong_way_round():
    from gyrodeblur.pipelines.deblur import image_kernels

    log = GyroLog(np.array([0.0, 1.0]), np.zeros((2, 3)))
    camera = Camera(4, 3, 2.0, 2.0, 1.5, 1.0)
    with pytest.raises(TypeError, match=r"^camera_orientation\(log, camera\) takes a GyroLog "
                                        "and a Camera, got Camera and GyroLog"):
        camera_orientation(camera, log)
    with pytest.raises(TypeError, match=r"^complete_camera\(camera, log\) takes"):
        complete_camera(log, camera)
    with pytest.raises(TypeError, match=r"^image_kernels\(log, camera, t_start, exposure, "):
        image_kernels(camera, log, 0.5, 0.01, 5)


@pytest.mark.parametrize(("t_start", "exposure", "message"), [
    (None, 0.01, "t_start is in seconds, a number; got None"),
    (0.0, "0.01", "exposure is in seconds, a number; got '0.01'"),
])
def test_sample_times_name_a_time_that_is_no_number(t_start, exposure, message):
    with pytest.raises(ValueError, match=message):
        sample_times(PINHOLE, t_start, exposure, 3)
    # Numbers of numpy, 0-d arrays among them, are times.
    assert sample_times(PINHOLE, np.float32(0.5), np.array(0.01), 3)[0].shape[0] == 3


def test_an_orientation_over_a_span_integrates_that_span_of_the_log_alone():
    # An hour of 200 Hz epoch-time log: the rotations between instants of a span are those of
    # the whole log's integration, from the samples within half a second of it.
    t = 1.7e9 + np.arange(0.0, 3600.0, 0.005)
    w = np.stack([np.sin(t - t[0]), np.cos(0.3 * (t - t[0])), 0.2 + 0 * t], axis=1)
    log = GyroLog(t, w)
    cam = Camera(64, 48, 60.0, 60.0, 31.5, 23.5, imu_to_camera=((0, 1, 0), (1, 0, 0), (0, 0, -1)))
    span = (t[0] + 1800.0, t[0] + 1800.2)
    part = camera_orientation(log, cam, span)
    assert part.t[0] <= span[0] - SPAN_MARGIN and part.t[-1] >= span[1] + SPAN_MARGIN
    assert len(part.t) < 0.1 / 0.005 + 1.2 / 0.005
    whole = camera_orientation(log, cam)
    a, b = np.linspace(*span, 7), np.linspace(*span, 7)[::-1]
    np.testing.assert_allclose(part.relative(a, b), whole.relative(a, b), atol=1e-9)
