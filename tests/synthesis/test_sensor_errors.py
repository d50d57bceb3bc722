"""Sensor errors: each error changes exactly what it says, by exactly its amount."""

from __future__ import annotations

import numpy as np
import pytest

from gyrodeblur.geometry.camera import Camera
from gyrodeblur.geometry.gyro import GyroLog
from gyrodeblur.synthesis.sensor_errors import SensorErrorRanges, SensorErrors

CAM = Camera(64, 48, 50.0, 50.0, 31.5, 23.5, readout_time=0.03)


def _log(n: int = 200) -> GyroLog:
    t = np.arange(n) / 200.0
    return GyroLog(t, np.column_stack([np.sin(t), np.cos(t), t]), source="x",
                   imu_to_camera=np.eye(3))


def test_none_is_identity():
    log = _log()
    seen, cam = SensorErrors.none().apply(log, CAM, np.random.default_rng(0))
    assert np.array_equal(seen.t, log.t) and np.array_equal(seen.w, log.w)
    assert cam == CAM
    assert seen.source == "x" and np.array_equal(seen.imu_to_camera, np.eye(3))


def test_delay_shifts_timestamps_exactly():
    log = _log()
    seen, cam = SensorErrors(delay=0.0123).apply(log, CAM, np.random.default_rng(0))
    assert np.array_equal(seen.t, log.t + 0.0123)
    assert np.array_equal(seen.w, log.w) and cam == CAM


def test_positive_delay_shows_motion_late():
    t = np.arange(0, 2, 0.001)
    log = GyroLog(t, np.where(t[:, None] >= 1.0, 1.0, 0.0) * np.ones(3))
    seen, _ = SensorErrors(delay=0.1).apply(log, CAM, np.random.default_rng(0))
    assert np.interp(1.05, seen.t, seen.w[:, 0]) == 0.0  # the step now appears at 1.1 s
    assert np.interp(1.15, seen.t, seen.w[:, 0]) == 1.0


def test_bias_and_scale_per_axis():
    log = _log()
    bias, scale = np.array([0.01, -0.02, 0.03]), np.array([0.05, 0.0, -0.1])
    seen, _ = SensorErrors(bias=bias, scale=scale).apply(log, CAM, np.random.default_rng(0))
    for a in range(3):
        assert np.allclose(seen.w[:, a], log.w[:, a] * (1 + scale[a]) + bias[a], rtol=0,
                           atol=1e-15)
    listed = SensorErrors(bias=bias.tolist(), scale=scale.tolist())  # as YAML gives them
    assert listed.describe()["bias"] == bias.tolist()


def test_readout_error_scales_readout_time():
    _, cam = SensorErrors(readout=-0.2).apply(_log(), CAM, np.random.default_rng(0))
    assert cam.readout_time == pytest.approx(0.03 * 0.8, rel=1e-15)
    assert cam.replace(readout_time=0.03) == CAM


def test_noise_std():
    log = GyroLog(np.arange(100_000) / 400.0, np.zeros((100_000, 3)))
    seen, _ = SensorErrors(noise=0.004).apply(log, CAM, np.random.default_rng(1))
    assert np.allclose(seen.w.std(axis=0), 0.004, rtol=0.02)
    assert np.all(np.abs(seen.w.mean(axis=0)) < 0.004 * 5 / np.sqrt(100_000))
    assert abs(np.corrcoef(seen.w[:-1, 0], seen.w[1:, 0])[0, 1]) < 0.02  # white


def test_sample_within_ranges_and_reproducible():
    ranges = SensorErrorRanges(delay=0.01, bias=0.02, scale=0.03, noise=0.004, readout=0.1)
    rng = np.random.default_rng(0)
    draws = [SensorErrors.sample(ranges, rng) for _ in range(500)]
    delay = np.array([d.delay for d in draws])
    bias = np.stack([d.bias for d in draws])
    scale = np.stack([d.scale for d in draws])
    noise = np.array([d.noise for d in draws])
    readout = np.array([d.readout for d in draws])
    for x, r in ((delay, 0.01), (bias, 0.02), (scale, 0.03), (readout, 0.1)):
        assert np.all(np.abs(x) <= r) and x.min() < -0.9 * r and x.max() > 0.9 * r
    assert np.all((noise >= 0) & (noise <= 0.004)) and noise.max() > 0.9 * 0.004
    assert abs(np.corrcoef(bias[:, 0], bias[:, 1])[0, 1]) < 0.15  # independent axes
    a = SensorErrors.sample(ranges, np.random.default_rng(9))
    b = SensorErrors.sample(ranges, np.random.default_rng(9))
    assert a.delay == b.delay and np.array_equal(a.bias, b.bias)


def test_errors_and_ranges_out_of_their_domain_are_refused():
    with pytest.raises(ValueError, match="noise must be a finite std >= 0"):
        SensorErrors(noise=-0.001)  # would silently add no noise
    with pytest.raises(ValueError, match=r"bias must have one value per axis"):
        SensorErrors(bias=np.zeros(2))
    with pytest.raises(ValueError, match="delay: -0.01 is out of range: a finite number >= 0"):
        SensorErrorRanges(delay=-0.01)


def test_default_ranges_are_documented_magnitudes():
    r = SensorErrorRanges()
    assert (r.delay, r.bias, r.scale, r.noise, r.readout) == (0.010, 0.02, 0.02, 0.005, 0.05)
