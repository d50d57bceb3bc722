import json

import numpy as np
import pytest

from gyrodeblur.geometry.camera import Camera, load_camera
from gyrodeblur.geometry.gyro import GyroLog, gyroflow_imu_to_camera
from gyrodeblur.pipelines.kernels import complete_camera


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
    # The camera's own readout and rotation win over the log's.
    rotated = plain.replace(readout_time=0.01, imu_to_camera=((0, 1, 0), (-1, 0, 0), (0, 0, 1)))
    log = GyroLog(t, np.zeros((2, 3)), readout_time=0.02,
                  imu_to_camera=gyroflow_imu_to_camera("YxZ"))
    assert complete_camera(rotated, log) == rotated
    np.testing.assert_array_equal(complete_camera(plain, log).R_imu_to_camera,
                                  gyroflow_imu_to_camera("YxZ"))
