"""Tests for gyrodeblur.geometry.gyro: readers, validation and processing."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from gyrodeblur.errors import InputError
from gyrodeblur.geometry.gyro import (
    GyroLog,
    check_covers,
    estimate_bias,
    gyroflow_imu_to_camera,
    lowpass,
    read_gyro,
    remove_bias,
    resample,
    shifted,
    to_camera_frame,
    write_csv,
)

REAL = Path("/work/shared/data/gyro")


def _csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# ---------------------------------------------------------------- readers


def test_csv_round_trip_is_exact(tmp_path):
    rng = np.random.default_rng(0)
    t = np.cumsum(rng.uniform(1e-3, 3e-3, 500)) + 12345.678901234
    w = rng.normal(0, 1.0, (500, 3)) / 3.0  # values with long decimal expansions
    write_csv(GyroLog(t, w), tmp_path / "g.csv")
    log = read_gyro(tmp_path / "g.csv")
    assert np.array_equal(log.t, t) and np.array_equal(log.w, w)
    assert (tmp_path / "g.csv").read_text().splitlines()[0] == "t,wx,wy,wz"
    assert [p.name for p in tmp_path.iterdir()] == ["g.csv"]  # no temporary left behind


def test_csv_columns_found_by_name_and_extra_ignored(tmp_path):
    p = _csv(tmp_path / "g.csv", "wz,extra,t,wy,wx\n0.3,9,0.0,0.2,0.1\n0.6,9,0.01,0.5,0.4\n")
    log = read_gyro(p)
    np.testing.assert_array_equal(log.t, [0.0, 0.01])
    np.testing.assert_array_equal(log.w, [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]])
    assert log.imu_to_camera is None and log.readout_time is None


def test_gcsv_integer_rows(tmp_path):
    p = _csv(
        tmp_path / "cam.gcsv",
        "GYROFLOW IMU LOG\nversion,1.3\nid,test_logger\norientation,YxZ\n"
        "frame_readout_time,15.23\nframe_readout_direction,0\n"
        "tscale,0.001\ngscale,0.0005\nascale,0.00048828125\n"
        "t,gx,gy,gz,ax,ay,az\n"
        "1000,2000,-4000,1000,1,2,3\n1002,0,0,-2000,1,2,3\n1005,10,20,30,1,2,3\n",
    )
    log = read_gyro(p)
    # Gyroflow's clock starts at the first sample (telemetry-parser's normalized_imu).
    np.testing.assert_allclose(log.t, [0.0, 0.002, 0.005], rtol=0, atol=1e-12)
    np.testing.assert_allclose(log.w, [[1.0, -2.0, 0.5], [0, 0, -1.0], [0.005, 0.01, 0.015]])
    assert log.readout_time == pytest.approx(0.01523)
    # YxZ: Gyroflow IMU axes (up, left, back) = (y, -x, z); OpenCV's (right, down, forward)
    # = (-left, -up, -back) = (x, -y, -z).
    np.testing.assert_array_equal(log.imu_to_camera, np.diag([1.0, -1, -1]))
    # A rotation about the recorded y axis (up) is, for YxZ, one about camera -y.
    np.testing.assert_array_equal(log.imu_to_camera @ [0, 1, 0], [0, -1, 0])


def test_gcsv_microseconds_since_the_epoch_keep_their_intervals_exact(tmp_path):
    stamps = 1_700_000_000_000_000 + np.arange(0, 5000, 1000) + [0, 1, 0, 3, 0]
    body = "".join(f"{s},0,0,1\n" for s in stamps)
    p = _csv(tmp_path / "epoch.gcsv", "GYROFLOW IMU LOG\ntscale,0.000001\ngscale,1\nt,gx,gy,gz\n"
             + body)
    log = read_gyro(p)
    np.testing.assert_allclose(log.t, (stamps - stamps[0]) * 1e-6, rtol=0, atol=1e-15)


def test_a_log_knowing_its_axes_or_readout_is_not_written_where_they_would_be_lost(tmp_path):
    t, w = np.array([0.0, 0.01, 0.02]), np.ones((3, 3))
    turned = gyroflow_imu_to_camera("YxZ")
    for extra, named in (({"imu_to_camera": turned}, "imu_to_camera"),
                         ({"readout_time": -0.02}, "readout_time")):
        with pytest.raises(ValueError, match=f"the log's {named} would be lost"):
            write_csv(GyroLog(t, w, **extra), tmp_path / "g.csv")
    assert list(tmp_path.iterdir()) == []
    # Nothing lost: an identity, which reading the CSV back gives as well.
    write_csv(GyroLog(t, w, imu_to_camera=np.eye(3)), tmp_path / "g.csv")
    assert np.array_equal(read_gyro(tmp_path / "g.csv").w, w)


def test_a_log_keeps_its_samples_whatever_the_caller_does_to_its_arrays():
    t, w = np.arange(5) * 0.01, np.zeros((5, 3))
    log = GyroLog(t, w)
    t[3], w[0, 0] = -1.0, 9.0
    assert np.all(np.diff(log.t) > 0) and log.w[0, 0] == 0.0


def test_gcsv_bottom_to_top_readout_is_negative(tmp_path):
    p = _csv(
        tmp_path / "b.gcsv",
        "CAMERA IMU LOG\nversion,1.3\nid,x\norientation,XYZ\nframe_readout_time,20\n"
        "frame_readout_direction,1\ntscale,1e-6\ngscale,1\nt,gx,gy,gz\n0,0.1,0.2,0.3\n"
        "1000,0.1,0.2,0.3\n",
    )
    log = read_gyro(p)
    assert log.readout_time == pytest.approx(-0.020)
    np.testing.assert_allclose(log.t, [0.0, 0.001])
    np.testing.assert_array_equal(log.imu_to_camera, gyroflow_imu_to_camera("XYZ"))


def test_gyroflow_orientations():
    # Each letter names the recorded axis feeding Gyroflow IMU axis i (x up, y left, z back);
    # lower case inverts it. A gyro mounted along OpenCV's camera axes (x right, y down,
    # z forward) is "yxz" in Gyroflow: up = -y, left = -x, back = -z.
    np.testing.assert_array_equal(gyroflow_imu_to_camera("yxz"), np.eye(3))
    v = np.array([1.0, 2.0, 3.0])  # (right, down, forward) = (-left, -up, -back)
    np.testing.assert_array_equal(gyroflow_imu_to_camera("XYZ") @ v, [-2, -1, -3])
    np.testing.assert_array_equal(gyroflow_imu_to_camera("zxY") @ v, [1, 3, -2])
    with pytest.raises(ValueError):
        gyroflow_imu_to_camera("XXZ")


def test_gyrovd_folder_ns_timestamps(tmp_path):
    meta = tmp_path / "VID" / "meta_info"
    meta.mkdir(parents=True)
    _csv(meta / "gyro.csv", "0.5,-0.25,1.0,590984740505455\n0.1,0.2,0.3,590984742901913\n")
    log = read_gyro(tmp_path / "VID")
    np.testing.assert_allclose(log.t, [590984.740505455, 590984.742901913], rtol=0, atol=1e-9)
    # 2396458 ns apart; float64 seconds near 6e5 s resolve ~0.1 ns.
    assert log.t[1] - log.t[0] == pytest.approx(2.396458e-3, abs=2e-10)
    np.testing.assert_array_equal(log.w, [[0.5, -0.25, 1.0], [0.1, 0.2, 0.3]])
    assert log.source.endswith("gyro.csv")


def test_gyrovd_gyro_csv_given_alone_is_read_as_its_folder(tmp_path):
    # Not as telemetry-parser would take it (its clock from 0, Gyroflow's axes).
    meta = tmp_path / "meta_info"
    meta.mkdir()
    _csv(meta / "gyro.csv", "0.5,-0.25,1.0,590984740505455\n0.1,0.2,0.3,590984742901913\n")
    _csv(meta / "cam_metainfo.csv", "")
    alone, folder = read_gyro(meta / "gyro.csv"), read_gyro(meta)
    np.testing.assert_array_equal(alone.t, folder.t)
    np.testing.assert_array_equal(alone.w, folder.w)
    assert alone.t[0] == pytest.approx(590984.740505455) and alone.imu_to_camera is None


def test_gyrovd_folder_without_gyro_csv(tmp_path):
    with pytest.raises(InputError, match="no gyro.csv"):
        read_gyro(tmp_path)


@pytest.mark.skipif(not REAL.exists(), reason="shared gyro data not available")
def test_real_gyrodvd_trace():
    log = read_gyro(REAL / "gyrodvd_real_VID_20251029_020848.csv")
    assert len(log.t) == 6286
    assert log.t[-1] == pytest.approx(15.096514, abs=1e-6)
    assert np.abs(log.w).max(axis=0) == pytest.approx([1.33703, 1.099862, 0.80344], abs=1e-6)


def test_telemetry_reader_missing_package(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_telemetry(name, *args, **kwargs):
        if name == "telemetry_parser":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_telemetry)
    p = _csv(tmp_path / "clip.mp4", "not a video")
    with pytest.raises(InputError, match=r"clip\.mp4: .*pip install 'gyrodeblur\[telemetry\]'"):
        read_gyro(p)


# A Betaflight blackbox CSV (as blackbox_decode writes it), which only telemetry-parser reads.
BLACKBOX_CSV = (
    '"Product","Blackbox flight data recorder by Nicholas Sherlock"\n'
    '"firmwareType","Cleanflight"\n"Firmware revision","Betaflight 4.2.0"\n'
    '"loopIteration","time","gyroADC[0]","gyroADC[1]","gyroADC[2]",'
    '"accSmooth[0]","accSmooth[1]","accSmooth[2]"\n'
    "0,1000000,10,20,30,0,0,2048\n1,1001000,11,21,31,0,0,2048\n2,1002000,12,22,32,0,0,2048\n"
)


def test_other_csv_logs_through_telemetry_parser(tmp_path):
    pytest.importorskip("telemetry_parser")
    log = read_gyro(_csv(tmp_path / "flight.csv", BLACKBOX_CSV))
    # Timestamps relative to the first sample, in s; deg/s rates back in rad/s, in Gyroflow's
    # axes (a signed permutation of the recorded ones: the norm is the recorded one's).
    np.testing.assert_allclose(log.t, [0.0, 0.001, 0.002], atol=1e-9)
    recorded = np.deg2rad([[10, 20, 30], [11, 21, 31], [12, 22, 32]])
    np.testing.assert_allclose(np.linalg.norm(log.w, axis=1), np.linalg.norm(recorded, axis=1))
    np.testing.assert_array_equal(log.imu_to_camera, gyroflow_imu_to_camera("XYZ"))


def test_a_log_telemetry_parser_knows_but_cannot_read_gets_its_error_alone(tmp_path, capfd):
    pytest.importorskip("telemetry_parser")
    # A gyro_scale field it cannot parse: the parser panics (Rust), printing a report to fd 2.
    text = BLACKBOX_CSV.replace('"firmwareType"', '"gyro_scale","0x3f800000"\n"firmwareType"')
    with pytest.raises(InputError, match=r"flight\.csv: telemetry-parser cannot read gyro data "
                                         r"from it \(parser crashed"):
        read_gyro(_csv(tmp_path / "flight.csv", text))
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize("orientation", ["orientation,YxZ\n", ""])
def test_gcsv_reads_as_telemetry_parser_does(tmp_path, orientation):
    telemetry_parser = pytest.importorskip("telemetry_parser")
    src = _csv(tmp_path / "a.gcsv", "GYROFLOW IMU LOG\nversion,1.3\nid,t\n" + orientation
               + "tscale,0.001\ngscale,0.01\nt,gx,gy,gz\n1000,100,0,0\n1010,0,200,0\n"
               "1020,0,0,300\n")
    # telemetry-parser's rates: deg/s in Gyroflow's IMU axes, after the file's orientation.
    imu = telemetry_parser.Parser(str(src)).normalized_imu()
    reference = np.deg2rad([s["gyro"] for s in imu]) @ gyroflow_imu_to_camera("XYZ").T
    log = read_gyro(src)
    np.testing.assert_allclose(log.w @ log.imu_to_camera.T, reference, atol=1e-12)
    np.testing.assert_allclose(log.t, [s["timestamp_ms"] / 1000 for s in imu], atol=1e-12)
    if not orientation:  # the default is xzY, not the identity
        assert not np.allclose(log.imu_to_camera, np.eye(3))


def test_telemetry_reader_unreadable(tmp_path):
    pytest.importorskip("telemetry_parser")
    p = _csv(tmp_path / "junk.mov", "hello")
    with pytest.raises(InputError, match=r"junk\.mov: telemetry-parser cannot read"):
        read_gyro(p)


# ---------------------------------------------------------------- validation

HEADER = "t,wx,wy,wz\n"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("t,wx,wy\n0,1,2\n1,1,2\n", "missing column(s) wz"),
        (HEADER + "0,0,0,0\n", "only 1 gyro sample(s); need at least 2"),
        (HEADER, "only 0 gyro sample(s)"),
        (HEADER + "0,0,0,0\n0.1,nan,0,0\n", "NaN or inf at line 3"),
        (HEADER + "0,0,0,0\n0.1,0,inf,0\n", "NaN or inf at line 3"),
        (HEADER + "0,0,0,0\n0.2,0,0,0\n0.1,0,0,0\n",
         "timestamps not strictly increasing at line 4 (t=0.100000 after 0.200000)"),
        (HEADER + "0,0,0,0\n0.1,0,0,0\n0.1,0,0,0\n",
         "duplicated timestamp at line 4 (t=0.100000)"),
        # Epoch times to the microsecond, as loggers on a phone's clock write them.
        (HEADER + "1700000000.000000,0,0,0\n1700000000.000250,0,0,0\n1700000000.000125,0,0,0\n",
         "not strictly increasing at line 4 (t=1700000000.000125 after 1700000000.000250)"),
        (HEADER + "0,0,0,0\n0.1,abc,0,0\n", "line 3: 'abc' is not a number"),
        (HEADER + "0,0,0,0\n0.1,0\n0.2,0,0,0\n", "line 3 has 2 fields, expected 4"),
    ],
)
def test_bad_input_names_file_and_problem(tmp_path, body, problem):
    p = _csv(tmp_path / "bad_gyro.csv", body)
    with pytest.raises(InputError) as err:
        read_gyro(p)
    assert str(err.value).startswith(f"{p}: ")
    assert problem in str(err.value)


def _deg_trace(tmp_path: Path) -> Path:
    t = np.arange(200) / 100.0
    w_deg = np.stack([200 * np.sin(2 * np.pi * t), 50 * np.cos(t), 10 * t], axis=1)
    write_csv(GyroLog(t, w_deg), tmp_path / "deg.csv")
    return tmp_path / "deg.csv"


def test_deg_looking_data_refused(tmp_path):
    p = _deg_trace(tmp_path)
    expected = (
        r"deg\.csv: angular velocity looks like deg/s \(\|w\| median [\d.]+, 99th percentile "
        r"[\d.]+\); give --gyro-unit deg \(Python: unit='deg'\)"
    )
    with pytest.raises(InputError, match=expected):
        read_gyro(p)


def test_steady_deg_per_second_rotation_refused(tmp_path):
    # 0.15 rad/s for 3 s written in deg/s: 8.6, under the 20 rad/s peak test, but no camera
    # spins at 5 rad/s half of the time.
    rows = "".join(f"{i / 200},0,8.6,0\n" for i in range(600))
    with pytest.raises(InputError, match="looks like deg/s"):
        read_gyro(_csv(tmp_path / "steady.csv", "t,wx,wy,wz\n" + rows))
    assert read_gyro(_csv(tmp_path / "steady.csv", "t,wx,wy,wz\n" + rows), unit="deg").w[
        0, 1] == pytest.approx(np.deg2rad(8.6))


@pytest.mark.skipif(not (REAL / "gyrovidstab_20200109_145447.csv").is_file(),
                    reason="shared gyro data not present")
def test_gentle_real_trace_in_deg_per_second_refused(tmp_path):
    # A phone walking slowly (|w| median 0.05 rad/s, 99th percentile 0.41): in deg/s its median
    # is a plausible 2.9, its 99th percentile 23.6 is not.
    log = read_gyro(REAL / "gyrovidstab_20200109_145447.csv")
    write_csv(GyroLog(log.t, np.rad2deg(log.w)), tmp_path / "deg.csv")
    with pytest.raises(InputError, match="looks like deg/s"):
        read_gyro(tmp_path / "deg.csv")
    np.testing.assert_allclose(read_gyro(tmp_path / "deg.csv", unit="deg").w, log.w, atol=1e-12)


@pytest.mark.parametrize(("unit", "scale"), [("ms", 1e3), ("us", 1e6), ("ns", 1e9)])
def test_timestamps_in_another_unit_are_refused_naming_it(tmp_path, unit, scale):
    rows = "".join(f"{i * 0.005 * scale:.0f},0,0.1,0\n" for i in range(100))  # 200 Hz
    interval = re.escape(f"{0.005 * scale:g}")
    with pytest.raises(InputError, match=rf"t\.csv: median sample interval {interval} s "
                                         rf".*seconds \({unit}\?\)"):
        read_gyro(_csv(tmp_path / "t.csv", "t,wx,wy,wz\n" + rows))


@pytest.mark.parametrize(("body", "why"), [
    ("1218994713625,-0.00117,0.2,0.1\n1218994723625,0,0,0\n", "no header line"),
    ("t\twx\twy\twz\n0\t0\t0\t0\n", "not comma-separated"),
])
def test_a_csv_without_our_header_says_what_it_needs(tmp_path, body, why):
    with pytest.raises(InputError, match=rf"missing column\(s\) .*\({why}\): a plain CSV starts "
                                         r"with the line t,wx,wy,wz, in seconds and rad/s"):
        read_gyro(_csv(tmp_path / "g.csv", body))


def test_a_header_in_capitals_after_comments_is_read(tmp_path):
    body = "# logger v2\n\nT,WX,WY,WZ\n0,0.1,0,0\n0.005,0.2,0,0\n"
    log = read_gyro(_csv(tmp_path / "g.csv", body))
    np.testing.assert_array_equal(log.w[:, 0], [0.1, 0.2])


def test_a_bias_larger_than_a_gyros_is_applied_with_a_warning():
    log = GyroLog(np.array([0.0, 0.01]), np.ones((2, 3)))
    with pytest.warns(UserWarning, match="a gyro bias of 1.5 rad/s .*: in deg/s"):
        np.testing.assert_array_equal(remove_bias(log, [1.5, 0, 0]).w[0], [-0.5, 1, 1])


def test_microsecond_timestamps_and_gcsv_seconds_without_tscale_refused(tmp_path):
    rows = "".join(f"{i * 5e-6},0,0.1,0\n" for i in range(100))  # 200 Hz, scaled 1000x down
    with pytest.raises(InputError, match=r"us\.csv: median sample interval 5e-06 s .*\(us\?"):
        read_gyro(_csv(tmp_path / "us.csv", "t,wx,wy,wz\n" + rows))
    # gcsv's default tscale is 0.001 (ms): a log in seconds without its tscale line.
    body = "".join(f"{i / 200},0,0.1,0\n" for i in range(100))
    p = _csv(tmp_path / "s.gcsv", "GYROFLOW IMU LOG\norientation,XYZ\nt,gx,gy,gz\n" + body)
    with pytest.raises(InputError, match=r"s\.gcsv: .*without a tscale line, ms are read: "
                                         r"tscale,0.001 for ms, 1e-06 for us, 1 for s"):
        read_gyro(p)


def test_unit_deg_converts(tmp_path):
    p = _deg_trace(tmp_path)
    raw = read_gyro(p, unit="rad")
    log = read_gyro(p, unit="deg")
    np.testing.assert_allclose(log.w, raw.w * math.pi / 180, rtol=1e-15)
    np.testing.assert_array_equal(log.t, raw.t)


def test_missing_file_and_bad_unit(tmp_path):
    with pytest.raises(InputError, match="nope.csv: gyro file not found"):
        read_gyro(tmp_path / "nope.csv")
    with pytest.raises(InputError, match="unknown gyro unit"):
        read_gyro(_deg_trace(tmp_path), unit="grad")


def test_gcsv_problems(tmp_path):
    base = "GYROFLOW IMU LOG\nversion,1.3\nid,x\norientation,{o}\ntscale,0.001\ngscale,1\n{cols}\n"
    p = _csv(tmp_path / "a.gcsv", base.format(o="XYZ", cols="t,gx,gy") + "0,1,2\n1,1,2\n")
    with pytest.raises(InputError, match=r"a\.gcsv: no gyro columns \(header has: t, gx, gy"):
        read_gyro(p)
    p = _csv(tmp_path / "b.gcsv", base.format(o="XQZ", cols="t,gx,gy,gz") + "0,1,2,3\n1,1,2,3\n")
    with pytest.raises(InputError, match=r"b\.gcsv: bad orientation"):
        read_gyro(p)
    p = _csv(tmp_path / "c.gcsv", "id,x\nt,gx,gy,gz\n0,1,2,3\n")
    with pytest.raises(InputError, match=r"c\.gcsv: not a Gyroflow IMU log"):
        read_gyro(p)
    p = _csv(tmp_path / "d.gcsv", base.replace("gscale,1", "gscale,0").format(
        o="XYZ", cols="t,gx,gy,gz") + "0,1,2,3\n1,1,2,3\n")
    with pytest.raises(InputError, match=r"d\.gcsv: header gscale,0: must be positive"):
        read_gyro(p)
    p = _csv(tmp_path / "e.gcsv", base.format(o="XYZ", cols="t,gx,gy,gz").replace(
        "tscale", "frame_readout_time,10\nframe_readout_direction,LeftToRight\ntscale")
        + "0,1,2,3\n1,1,2,3\n")
    with pytest.raises(InputError, match=r"e\.gcsv: frame_readout_direction LeftToRight"):
        read_gyro(p)


def test_a_gcsv_clock_moved_to_its_first_sample_is_named_when_frames_miss_it(tmp_path):
    rows = "".join(f"{5000 + 5 * i},0,1,0\n" for i in range(100))  # ms since the logger's boot
    p = _csv(tmp_path / "uptime.gcsv", "GYROFLOW IMU LOG\norientation,yxz\ntscale,0.001\n"
             "gscale,0.01\nt,gx,gy,gz\n" + rows)
    log = read_gyro(p)
    assert log.t[0] == 0 and log.clock_start == 5.0
    with pytest.raises(InputError, match=r"its t = 0 is its first sample \(as Gyroflow reads "
                                         r"a gcsv\), 5.000000 s on its own clock: frame times "
                                         r"on that clock need -5.000000 s more time offset"):
        check_covers(log, 5.1, 5.2)


def test_gcsv_read_as_loosely_as_telemetry_parser_reads_it(tmp_path):
    # A trailing comma on the first line, a quoted orientation, unnamed gyro columns (read by
    # position), a comment, and a last line cut off mid-write by a power loss.
    p = _csv(tmp_path / "loose.gcsv", 'GYROFLOW IMU LOG,\norientation,"yxz"\ntscale,0.001\n'
             "gscale,0.001\nt,rx,ry,rz\n# logger restarted\n0,100,0,0\n2,0,200,0\n"
             "4,0,0,300\n6,1")
    log = read_gyro(p)
    np.testing.assert_allclose(log.t, [0, 0.002, 0.004])
    np.testing.assert_allclose(log.w @ log.imu_to_camera.T, np.diag([0.1, 0.2, 0.3]), atol=1e-12)
    # Cut off just after a comma: as many fields, the last one empty.
    p.write_text(p.read_text().replace("\n6,1", "\n6,1,2,"))
    assert len(read_gyro(p).t) == 3
    # Accelerometer columns are never taken for the gyro's by their place.
    p.write_text(p.read_text().replace("t,rx,ry,rz", "t,ax,ay,az"))
    with pytest.raises(InputError, match="no gyro columns"):
        read_gyro(p)


def test_gcsv_without_gscale_looking_like_deg_names_the_missing_line(tmp_path):
    rows = "".join(f"{i},{300 + i},0,0\n" for i in range(20))  # raw counts
    p = _csv(tmp_path / "raw.gcsv", "GYROFLOW IMU LOG\norientation,yxz\nt,gx,gy,gz\n" + rows)
    with pytest.raises(InputError, match=r"raw\.gcsv: angular velocity looks like deg/s .* "
                                         r"the header has no gscale line"):
        read_gyro(p)


def test_plain_csv_known_by_a_long_header_whatever_its_name(tmp_path):
    names = ",".join(f"extra_column_{i}" for i in range(30))  # a header of over 400 bytes
    p = _csv(tmp_path / "log.dat", f"{names},t,wx,wy,wz\n" + f"{'0,' * 30}0,1,2,3\n"
             + f"{'0,' * 30}0.01,1,2,3\n")
    np.testing.assert_array_equal(read_gyro(p).t, [0.0, 0.01])


@pytest.mark.parametrize("readout", ["0.015", "15230"])
def test_gcsv_readout_in_other_units_refused(tmp_path, readout):
    p = _csv(tmp_path / "r.gcsv", "GYROFLOW IMU LOG\norientation,XYZ\nframe_readout_time,"
             f"{readout}\nt,gx,gy,gz\n0,0,0,0\n10,0,0,0\n")
    with pytest.raises(InputError, match=rf"r\.gcsv: frame_readout_time {readout} ms is no "
                                         r"rolling shutter's readout: it is in ms"):
        read_gyro(p)


def test_gcsv_rows_may_end_after_the_gyro(tmp_path):
    # Accelerometer samples on every other row only, as some loggers write (and
    # telemetry-parser reads).
    p = _csv(tmp_path / "m.gcsv", "GYROFLOW IMU LOG\norientation,XYZ\ngscale,0.5\n"
             "t,gx,gy,gz,ax,ay,az\n0,1,2,3,0,0,1\n10,4,5,6\n20,7,8,9,0,0,1\n")
    log = read_gyro(p)
    np.testing.assert_allclose(log.w, 0.5 * np.arange(1, 10).reshape(3, 3))
    np.testing.assert_allclose(log.t, [0, 0.01, 0.02])


@pytest.mark.parametrize("name", ["gyro.txt", "gyro.log", "gyro"])
def test_plain_csv_by_name_or_header(tmp_path, name):
    log = read_gyro(_csv(tmp_path / name, "t,wx,wy,wz\n0,0.1,0,0\n0.01,0.2,0,0\n"))
    np.testing.assert_array_equal(log.w[:, 0], [0.1, 0.2])


def test_columns_not_read_may_be_empty_or_absent_even_on_the_last_line(tmp_path):
    # A trailing comma after the header and every row, and an event column left empty:
    # no row is taken for one cut off mid-write.
    for name, text in (("comma.csv", "t,wx,wy,wz,\n0,0.1,0,0,\n0.01,0.2,0,0,\n"),
                       ("event.csv", "t,wx,wy,wz,event\n0,0.1,0,0,start\n0.01,0.2,0,0,\n"),
                       ("short.csv", "t,wx,wy,wz,event\n0,0.1,0,0,start\n0.01,0.2,0,0\n")):
        np.testing.assert_array_equal(read_gyro(_csv(tmp_path / name, text)).t, [0.0, 0.01])
    # A gyro column empty on the last line still is a line cut off.
    p = _csv(tmp_path / "cut.csv", "t,wx,wy,wz,event\n0,0.1,0,0,a\n0.01,0.2,0,0,b\n0.02,0.3,,")
    np.testing.assert_array_equal(read_gyro(p).t, [0.0, 0.01])


@pytest.mark.parametrize("text", [
    '"t","wx","wy","wz"\n0,0.1,0,0\n0.01,0.2,0,0\n',  # quoted names
    "# logger v2\n\nt,wx,wy,wz\n0,0.1,0,0\n0.01,0.2,0,0\n",  # comments first
    "t,wx,wy,wz\r0,0.1,0,0\r0.01,0.2,0,0\r",  # classic Mac line ends
    "# recorded by \u00c5sa\nt,wx,wy,wz\n0,0.1,0,0\n0.01,0.2,0,0\n",  # UTF-8 \xc3\x85, no line end
])
def test_plain_csv_header_found_whatever_the_name_as_its_reader_reads_it(tmp_path, text):
    p = tmp_path / "gyro.log"
    p.write_bytes(text.encode())
    np.testing.assert_array_equal(read_gyro(p).w[:, 0], [0.1, 0.2])


def test_a_gyro_column_named_twice_is_refused(tmp_path):
    p = _csv(tmp_path / "twice.csv", "t,wx,wy,wz,WX\n0,0.1,0,0,9\n0.01,0.2,0,0,9\n")
    with pytest.raises(InputError, match=r"twice\.csv: column\(s\) wx appear more than once"):
        read_gyro(p)


def test_gyrovd_layout_with_a_plain_csv_header_in_capitals(tmp_path):
    _csv(tmp_path / "gyro.csv", "T,WX,WY,WZ\n0,0.1,0,0\n0.01,0.2,0,0\n")
    np.testing.assert_array_equal(read_gyro(tmp_path).w[:, 0], [0.1, 0.2])


@pytest.mark.parametrize("name", ["gyro.csv", "gyro.txt"])
def test_plain_csv_quoted_as_spreadsheets_write_it(tmp_path, name):
    # R's write.csv and spreadsheets quote the names, some the values too.
    p = _csv(tmp_path / name, '"t","wx","wy","wz"\n0,"0.1",0,0\n"0.01",0.2,0,"0.5"\n')
    log = read_gyro(p)
    np.testing.assert_array_equal(log.t, [0.0, 0.01])
    np.testing.assert_array_equal(log.w, [[0.1, 0, 0], [0.2, 0, 0.5]])


def test_gcsv_under_any_name_is_read_as_gcsv(tmp_path):
    p = _csv(tmp_path / "imu.log", "GYROFLOW IMU LOG\norientation,XYZ\ngscale,0.5\n"
             "t,gx,gy,gz\n0,1,2,3\n10,4,5,6\n")
    np.testing.assert_allclose(read_gyro(p).w, [[0.5, 1, 1.5], [2, 2.5, 3]])


def test_video_with_gcsv_sidecar_reads_the_sidecar(tmp_path):
    # The log a Gyroflow-aware logger wrote beside the video, with its readout and orientation
    # (telemetry-parser would read it too but drop both); no telemetry-parser needed.
    (tmp_path / "clip.MP4").write_bytes(b"not parsed")
    _csv(tmp_path / "clip.gcsv", "GYROFLOW IMU LOG\norientation,YxZ\nframe_readout_time,15\n"
         "t,gx,gy,gz\n0,1,0,0\n10,1,0,0\n")
    log = read_gyro(tmp_path / "clip.MP4")
    assert log.source == str(tmp_path / "clip.gcsv") and log.readout_time == 0.015
    np.testing.assert_array_equal(log.imu_to_camera, gyroflow_imu_to_camera("YxZ"))


def test_a_gcsv_sidecar_is_the_video_name_exactly(tmp_path):
    # Brackets are no pattern, and another log beside it (clip.old.gcsv) is not the clip's.
    (tmp_path / "clip[1].mp4").write_bytes(b"not parsed")
    _csv(tmp_path / "clip[1].old.gcsv", "GYROFLOW IMU LOG\norientation,XYZ\n"
         "frame_readout_time,20\nt,gx,gy,gz\n0,1,0,0\n10,1,0,0\n")
    _csv(tmp_path / "clip[1].GCSV", "GYROFLOW IMU LOG\norientation,YxZ\nframe_readout_time,15\n"
         "t,gx,gy,gz\n0,1,0,0\n10,1,0,0\n")
    log = read_gyro(tmp_path / "clip[1].mp4")
    assert log.source == str(tmp_path / "clip[1].GCSV") and log.readout_time == 0.015


@pytest.mark.parametrize(("direction", "sign"), [("TopToBottom", 1), ("BottomToTop", -1),
                                                 ("180", -1), ("0", 1)])
def test_gcsv_readout_direction_names(tmp_path, direction, sign):
    p = _csv(tmp_path / "r.gcsv", "GYROFLOW IMU LOG\norientation,XYZ\nframe_readout_time,12\n"
             f"frame_readout_direction,{direction}\nt,gx,gy,gz\n0,0,0,0\n10,0,0,0\n")
    assert read_gyro(p).readout_time == pytest.approx(sign * 0.012)


# ---------------------------------------------------------------- processing


def test_bias_recovered_from_still_segments():
    rng = np.random.default_rng(1)
    t = np.arange(0, 6.0, 1 / 400)
    moving = (t > 1.0) & (t < 5.0)
    motion = np.stack([np.sin(7 * t), 0.8 * np.cos(3 * t), 0.5 * np.sin(11 * t)], axis=1)
    bias = np.array([0.012, -0.021, 0.0075])
    w = bias + rng.normal(0, 0.003, (len(t), 3)) + moving[:, None] * motion
    est = estimate_bias(GyroLog(t, w))
    np.testing.assert_allclose(est, bias, atol=1e-3)
    np.testing.assert_allclose(remove_bias(GyroLog(t, w), est).w, w - est)


def test_bias_refused_without_still_segment_and_for_steady_pan():
    t = np.arange(0, 4.0, 1 / 200)
    shaky = GyroLog(t, np.stack([np.sin(9 * t), np.cos(5 * t), np.sin(3 * t)], axis=1))
    with pytest.raises(InputError, match="no still segment .*rate spread"):
        estimate_bias(shaky)
    pan = GyroLog(t, np.tile([0.0, 0.5, 0.0], (len(t), 1)))  # steady, but not a bias
    with pytest.raises(InputError, match=r"no still segment .* turn at 0.5 rad/s or more"):
        estimate_bias(pan)


def test_lowpass_attenuates_and_keeps():
    fs = 1000.0
    t = np.arange(0, 4.0, 1 / fs)
    fast = np.sin(2 * np.pi * 100 * t)
    slow = np.sin(2 * np.pi * 1 * t)
    out = lowpass(GyroLog(t, np.stack([fast, slow, fast + slow], axis=1)), 10.0).w
    mid = slice(1000, 3000)  # away from the padded ends
    gain_db = 20 * np.log10(np.sqrt(np.mean(out[mid, 0] ** 2)) / np.sqrt(np.mean(fast[mid] ** 2)))
    assert gain_db < -20
    assert np.abs(out[mid, 1] - slow[mid]).max() < 0.01
    assert np.abs(out[mid, 2] - slow[mid]).max() < 0.01
    with pytest.raises(InputError, match="cutoff"):
        lowpass(GyroLog(t, out), 600.0)


def test_lowpass_filters_each_run_of_a_paused_log_on_its_own():
    # A logger paused for a day: one grid over the pause would hold 86 million samples.
    t = np.concatenate([np.arange(0, 2.0, 0.002), 86400 + np.arange(0, 2.0, 0.002)])
    w = np.zeros((len(t), 3))
    w[:, 0] = np.sin(2 * np.pi * 1 * t)
    out = lowpass(GyroLog(t, w), 20.0).w
    inside = np.r_[250:750, 1250:1750]
    assert np.abs(out[inside, 0] - w[inside, 0]).max() < 0.01


def test_lowpass_filters_in_time_across_gaps_and_jitter():
    # A slow sine sampled with jitter and a 30 ms hole: filtered on its times, not its sample
    # indices, it comes back as the sine (a filter over indices bends it at the hole).
    rng = np.random.default_rng(5)
    t = np.arange(0, 3.0, 1 / 500) + rng.uniform(-4e-4, 4e-4, 1500)
    t = t[(t < 1.5) | (t > 1.53)]
    slow = np.sin(2 * np.pi * 2 * t)
    out = lowpass(GyroLog(t, np.stack([slow] * 3, axis=1)), 20.0).w
    inside = (t > 0.5) & (t < 2.5)
    assert np.abs(out[inside, 0] - slow[inside]).max() < 0.01


def test_resample_linear_signal_exact():
    rng = np.random.default_rng(2)
    t = np.sort(rng.uniform(0.0, 2.0, 300))
    t = np.concatenate([[0.0], t, [2.0]])
    a, b = np.array([0.5, -1.0, 2.0]), np.array([0.1, 0.2, -0.3])
    out = resample(GyroLog(t, a * t[:, None] + b), 250.0)
    np.testing.assert_allclose(np.diff(out.t), 1 / 250, rtol=0, atol=1e-12)
    assert out.t[0] == 0.0 and out.t[-1] == pytest.approx(2.0) and len(out.t) == 501
    np.testing.assert_allclose(out.w, a * out.t[:, None] + b, rtol=0, atol=1e-12)


def test_shifted_and_check_covers():
    log = GyroLog(np.linspace(0.0, 15.097, 100), np.zeros((100, 3)), source="g.csv")
    check_covers(log, 0.0, 15.097)
    check_covers(log, 1.0, 2.0)
    with pytest.raises(InputError) as err:
        check_covers(log, 14.9, 16.2)
    assert str(err.value) == (
        "g.csv: gyro covers 0.000000 to 15.097000 s but the frames need 14.900000 to "
        "16.200000 s "
        "(check --time-offset and the frames' clock: a frames CSV's, or a video's own "
        "timestamps, which start at 0)"
    )
    with pytest.raises(InputError, match=r"the frames need 1e\+300 to 1e\+300 s \("):
        check_covers(log, 1e300, 1e300)  # a mistyped offset: not three hundred figures
    moved = shifted(log, 1.5)
    np.testing.assert_allclose(moved.t, log.t + 1.5)
    check_covers(moved, 14.9, 16.2)
    with pytest.raises(InputError):
        check_covers(moved, 1.0, 2.0)


def test_to_camera_frame_permutation():
    perm = np.array([[0.0, 0, 1], [1, 0, 0], [0, 1, 0]])  # cyclic: x'=z, y'=x, z'=y
    w = np.array([[1.0, 2, 3], [4, 5, 6]])
    out = to_camera_frame(GyroLog(np.array([0.0, 1.0]), w), perm)
    np.testing.assert_array_equal(out.w, [[3, 1, 2], [6, 4, 5]])
    np.testing.assert_array_equal(out.imu_to_camera, np.eye(3))
    with pytest.raises(ValueError):
        to_camera_frame(out, np.ones((3, 3)))


def test_layout_folders_and_gcsv_logs_are_read_by_their_content(tmp_path):
    # A GyroVD-layout folder holding a plain t,wx,wy,wz gyro.csv (as the bundled sample and
    # synthesis write it) reads as that CSV; a gcsv named .csv reads as gcsv.
    (tmp_path / "clip").mkdir()
    plain = _csv(tmp_path / "clip" / "gyro.csv", "t,wx,wy,wz\n0,0.1,0,0\n0.01,0.2,0,0\n")
    np.testing.assert_array_equal(read_gyro(tmp_path / "clip").w, read_gyro(plain).w)
    gcsv = _csv(tmp_path / "log.csv", "GYROFLOW IMU LOG\nversion,1.3\nid,x\norientation,YxZ\n"
                "tscale,0.001\ngscale,0.01\nt,gx,gy,gz\n0,10,0,0\n10,20,0,0\n")
    log = read_gyro(gcsv)
    np.testing.assert_allclose(log.w[:, 0], [0.1, 0.2])
    np.testing.assert_allclose(log.t, [0.0, 0.01])
    assert log.imu_to_camera is not None


@pytest.mark.parametrize("bias", [[0.0, 0.1], [0.0, np.nan, 0.0]])
def test_remove_bias_refuses_a_bias_of_other_than_three_finite_rates(bias):
    with pytest.raises(ValueError, match="bias must be 3 finite rates"):
        remove_bias(GyroLog(np.array([0.0, 1.0]), np.zeros((2, 3))), bias)


@pytest.mark.parametrize("n", [0, 1])
def test_a_log_of_fewer_than_two_samples_is_refused(n):
    with pytest.raises(ValueError, match=f"GyroLog needs at least 2 samples, got {n}"):
        GyroLog(np.arange(float(n)), np.zeros((n, 3)))
