"""Motion sources: bundled real traces, random windows, the fitted hand-shake model."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import welch

from gyrodeblur.errors import InputError
from gyrodeblur.geometry.gyro import GyroLog, read_gyro
from gyrodeblur.synthesis.motion import (
    ShakeModel,
    bundled_traces,
    fit_shake_model,
    load_shake_model,
    longest_window,
    random_segment,
    read_traces,
)

RATE = 200.0
OCTAVES = [(0.5, 1), (1, 2), (2, 4), (4, 8), (8, 16), (16, 32), (32, 64)]


@pytest.fixture(scope="module")
def model() -> ShakeModel:
    return load_shake_model()


@pytest.fixture(scope="module")
def long_sample(model: ShakeModel) -> GyroLog:
    return model.sample(400.0, RATE, np.random.default_rng(7))


def _band_means(f: np.ndarray, p: np.ndarray) -> np.ndarray:
    return np.stack([p[(f >= a) & (f < b)].mean(axis=0) for a, b in OCTAVES])


def _flatness(p: np.ndarray) -> np.ndarray:
    return np.exp(np.log(p).mean(axis=0)) / p.mean(axis=0)


def test_sample_psd_matches_model(model, long_sample):
    f, p = welch(long_sample.w, fs=RATE, nperseg=2000, axis=0)
    expected = np.stack([np.interp(f, model.freqs, model.psd[:, a]) for a in range(3)], 1)
    ratio = _band_means(f, p) / _band_means(f, expected)
    assert np.all(np.abs(np.log(ratio)) < 0.25), ratio  # single octaves: Welch scatter
    assert np.abs(np.log(ratio)).mean() < 0.07, ratio


def test_sample_is_coloured_and_falls_like_real_traces(long_sample):
    f, p = welch(long_sample.w, fs=RATE, nperseg=2000, axis=0)
    band = (f > 0.2) & (f < 60)
    white = np.random.default_rng(0).standard_normal(long_sample.w.shape)
    _, pw = welch(white, fs=RATE, nperseg=2000, axis=0)
    assert np.all(_flatness(pw[band]) > 0.8)
    assert np.all(_flatness(p[band]) < 0.05)

    above_4hz = _band_means(f, p)[3:]
    assert np.all(np.diff(np.log10(above_4hz), axis=0) < -0.2)
    for real in bundled_traces():
        rate = 1.0 / np.median(np.diff(real.t))
        fr, pr = welch(real.w, fs=rate, nperseg=int(rate * 5), axis=0)
        # 4-32 Hz: above that the sensors' noise floor flattens them.
        assert np.all(np.diff(np.log10(_band_means(fr, pr)[3:6]), axis=0) < 0)


def test_sample_rms_matches_model(model, long_sample):
    rms = np.sqrt((long_sample.w**2).mean(axis=0))
    assert np.allclose(rms, model.rms, rtol=0.2), (rms, model.rms)
    # Model RMS is of the order of the real traces' (0.1-1 rad/s of hand shake).
    assert np.all((model.rms > 0.05) & (model.rms < 0.5))


def test_short_samples_keep_slow_components(model):
    # Many 0.1 s samples: their pooled variance must still be the model's (not only >10 Hz).
    rng = np.random.default_rng(3)
    w = np.concatenate([model.sample(0.1, RATE, rng).w for _ in range(400)])
    assert np.allclose(np.sqrt((w**2).mean(axis=0)), model.rms, rtol=0.2)


def test_sample_grid_seed_and_scale(model):
    a = model.sample(1.0, 400.0, np.random.default_rng(5))
    b = model.sample(1.0, 400.0, np.random.default_rng(5))
    c = model.sample(1.0, 400.0, np.random.default_rng(5), scale=3.0)
    other = model.sample(1.0, 400.0, np.random.default_rng(6))
    assert np.array_equal(a.t, np.arange(401) / 400.0)
    assert np.array_equal(a.w, b.w)
    np.testing.assert_allclose(c.w, 3.0 * a.w, rtol=1e-12, atol=1e-15)  # the same shake, 3x
    assert not np.allclose(a.w, other.w)
    assert np.array_equal(a.imu_to_camera, np.eye(3))
    assert np.array_equal(model.sample(1.0, 400.0, 5).w, a.w)  # a seed for a generator


def test_fit_recovers_model_psd(model, tmp_path):
    rng = np.random.default_rng(11)
    logs = [model.sample(300.0, RATE, rng) for _ in range(2)]
    fitted = fit_shake_model(logs, f_max=60.0)
    f = fitted.freqs
    ratio = _band_means(f, fitted.psd)[:-1] / _band_means(f, np.stack(
        [np.interp(f, model.freqs, model.psd[:, a]) for a in range(3)], 1))[:-1]
    assert np.all(np.abs(np.log(ratio)) < 0.2), ratio
    fitted.save(tmp_path / "m.json")
    again = load_shake_model(tmp_path / "m.json")
    assert np.allclose(again.psd, fitted.psd, rtol=1e-5)
    assert again.traces == fitted.traces


def test_fit_pools_unknown_axes():
    rng = np.random.default_rng(2)
    t = np.arange(6000) / 100.0
    log = GyroLog(t, rng.normal(0, [0.1, 0.2, 0.4], (6000, 3)))  # imu_to_camera None
    psd = fit_shake_model([log], f_max=30.0).psd
    assert np.allclose(psd[:, 0], psd[:, 1]) and np.allclose(psd[:, 0], psd[:, 2])


def test_shipped_model_describes_seven_traces(model):
    assert len(model.traces) == 7 and model.trace_rms.shape == (7, 3)
    assert model.freqs[0] == 0 and np.all(np.diff(model.freqs) > 0)


def test_random_segment_inside_source_and_gap_free():
    t = np.concatenate([np.arange(0, 5, 0.01), np.arange(5.5, 6.6, 0.01)])  # 0.5 s gap
    w = np.column_stack([t, -t, 2 * t])
    log = GyroLog(t, w)
    rng = np.random.default_rng(0)
    for _ in range(200):
        seg = random_segment(log, 1.0, rng)
        start = int(np.argmin(np.abs(t - seg.w[0, 0])))
        assert seg.t[0] == 0.0 and seg.t[-1] == pytest.approx(1.0)
        assert np.max(np.diff(seg.t)) < 0.03
        assert np.array_equal(seg.w, w[start:start + len(seg.t)])
        assert np.allclose(seg.t + t[start], t[start:start + len(seg.t)])
    with pytest.raises(ValueError, match="gap-free"):
        random_segment(log, 5.2, rng)


def test_random_segment_does_not_depend_on_where_the_clock_starts():
    # Unix-epoch times: a tolerance scaled by them would be seconds wide.
    t = np.concatenate([np.arange(0, 2, 1 / 256), np.arange(2.25, 4, 1 / 256)])  # exact dyadic
    log = GyroLog(t, np.column_stack([t, -t, 2 * t]))
    epoch = GyroLog(t + 2.0**30, log.w)
    for seed in range(100):
        seg = random_segment(log, 0.5, np.random.default_rng(seed))
        far = random_segment(epoch, 0.5, np.random.default_rng(seed))
        assert np.array_equal(far.w, seg.w) and np.array_equal(far.t, seg.t)
        assert far.t[-1] == 0.5 and np.max(np.diff(far.t)) == 1 / 256  # no gap crossed


def test_random_segment_of_real_trace():
    log = bundled_traces()[0]  # GyroVD: four short gaps in the source
    dt = np.diff(log.t)
    rng = np.random.default_rng(1)
    for _ in range(50):
        seg = random_segment(log, 0.5, rng)
        assert np.max(np.diff(seg.t)) <= 3 * np.median(dt)
        assert seg.t[-1] <= 0.5 + 1e-9


def test_bundled_traces_in_camera_axes():
    traces = bundled_traces()
    assert len(traces) == 2
    for log in traces:
        assert np.all(np.diff(log.t) > 0)
        assert np.array_equal(log.imu_to_camera, np.eye(3))
        assert 0.01 < np.sqrt((log.w**2).mean()) < 2.0  # rad/s hand-held, not deg/s
    gyrovd, vidstab = traces
    raw = read_gyro(gyrovd.source)
    assert np.array_equal(gyrovd.w, raw.w * [1.0, -1.0, -1.0])
    # First row of the original gyro.txt is wx,wy,wz = 0.003973, 0.038338, 0.014778.
    assert np.array_equal(vidstab.w[0], [-0.038338, -0.003973, -0.014778])
    assert vidstab.t[-1] == pytest.approx(24.0, abs=0.01)


def test_longest_window_is_the_longest_segment_drawn():
    t = np.concatenate([np.arange(0, 2, 0.01), np.arange(2.5, 5.51, 0.01), [6.0, 6.01]])
    log = GyroLog(t, np.zeros((len(t), 3)))
    assert longest_window(log) == pytest.approx(3.0)  # 2.5 .. 5.5, between the gaps
    random_segment(log, longest_window(log), np.random.default_rng(0))
    with pytest.raises(ValueError, match="gap-free"):
        random_segment(log, longest_window(log) + 0.02, np.random.default_rng(0))


def test_read_traces_turns_logs_that_know_their_axes_into_camera_axes(tmp_path):
    plain = tmp_path / "plain.csv"
    plain.write_text("t,wx,wy,wz\n0,0.1,0.2,0.3\n0.01,0.4,0.5,0.6\n")
    gcsv = tmp_path / "cam.gcsv"
    gcsv.write_text("GYROFLOW IMU LOG\nversion,1.3\nid,x\norientation,XYZ\ntscale,0.001\n"
                    "gscale,0.001\nt,gx,gy,gz\n0,100,200,300\n10,400,500,600\n")
    as_recorded, turned = read_traces([plain, gcsv])
    np.testing.assert_array_equal(as_recorded.w, [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]])
    assert as_recorded.imu_to_camera is None
    # XYZ: Gyroflow's (up, left, back) axes are the recorded (x, y, z); OpenCV camera axes
    # (right, down, forward) = (-left, -up, -back) = (-y, -x, -z).
    np.testing.assert_allclose(turned.w, [[-0.2, -0.1, -0.3], [-0.5, -0.4, -0.6]])
    np.testing.assert_array_equal(turned.imu_to_camera, np.eye(3))


def test_read_traces_drops_readout_reads_units_and_refuses_mirrored_axes(tmp_path):
    gcsv = tmp_path / "cam.gcsv"
    gcsv.write_text("GYROFLOW IMU LOG\nversion,1.3\nid,x\norientation,yxz\n"
                    "frame_readout_time,20\ntscale,0.001\ngscale,0.001\nt,gx,gy,gz\n"
                    "0,100,200,300\n10,400,500,600\n")
    assert read_gyro(gcsv).readout_time == pytest.approx(0.02)
    (log,) = read_traces(gcsv)  # one path as well as a list; the camera draws its readout
    assert log.readout_time is None
    np.testing.assert_allclose(log.w, [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]])  # yxz: camera axes
    degrees = tmp_path / "deg.csv"
    degrees.write_text("t,wx,wy,wz\n0,90,0,0\n0.01,180,0,0\n")
    with pytest.raises(InputError, match="deg/s"):
        read_traces([degrees])
    np.testing.assert_allclose(read_traces([degrees], "deg")[0].w[:, 0], [np.pi / 2, np.pi])
    mirrored = tmp_path / "mirror.gcsv"
    mirrored.write_text(gcsv.read_text().replace("orientation,yxz", "orientation,xyz"))
    with pytest.raises(InputError, match="mirror.gcsv: its Gyroflow orientation .* mirrors"):
        read_traces([mirrored])
