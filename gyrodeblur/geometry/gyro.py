"""Gyroscope logs: read, validate, clean up and write angular-velocity traces.

A :class:`GyroLog` holds timestamps in seconds on the gyro clock and angular velocity in rad/s
in the axes it was recorded in. Readers understand four sources, chosen by what the path is:

* a folder in the GyroVD ``meta_info`` layout (``gyro.csv``: ``wx,wy,wz,t_ns``, no header),
* a Gyroflow ``.gcsv`` IMU log (scaled integer or float rows, orientation string, readout time),
* a plain ``.csv`` (or ``.txt``) with a ``t,wx,wy,wz`` header (seconds, rad/s; other columns
  ignored),
* any camera file (``.mp4``, ``.mov``, ``.insv``, ``.bbl``...): the ``.gcsv`` recorded beside
  it (``clip.gcsv`` for ``clip.mp4``) when there is one, else its embedded gyro through the
  optional ``telemetry_parser`` package.

Every reader ends in the same validation, which raises :class:`~gyrodeblur.errors.InputError`
with a one-line message naming the file and the problem.
"""

from __future__ import annotations

import math
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from gyrodeblur.errors import InputError
from gyrodeblur.fileio import atomic_path, unreadable_because
from gyrodeblur.geometry.camera import check_gyroflow_readout_ms

__all__ = [
    "GyroLog",
    "check_covers",
    "check_mounting",
    "check_no_holes",
    "clock_note",
    "estimate_bias",
    "gyroflow_imu_to_camera",
    "holes",
    "lowpass",
    "read_gyro",
    "remove_bias",
    "resample",
    "shifted",
    "to_camera_frame",
    "widest_hole_text",
    "write_csv",
]

# Gyroflow's IMU axes (what an orientation string makes of the recorded ones, and what
# telemetry-parser's normalized_imu returns) are x up, y left, z out of the back of the camera:
# its integrators take them to its camera axes, x right, y up, z back (OpenGL-like), as
# (-y, x, z) (gyroflow src/core/imu_integration/mod.rs), and its renderer conjugates every
# rotation by diag(1, -1, -1) into OpenCV's x right, y down, z forward (frame_transform.rs).
_GYROFLOW_TO_OPENCV = np.diag([1.0, -1.0, -1.0]) @ np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])

# A hand-held, vehicle or drone camera turns at most a few rad/s for more than 1 % of a clip
# (the real traces of ../shared/data/gyro: 99th percentile of |w| 0.4-3.9, median 0.05-3.3 in a
# deliberately shaken 0.2 s sample) and FPV drones flip at up to ~17 rad/s, so a trace beyond
# 20 rad/s at its 99th percentile, or 5 rad/s at its median, is deg/s. A slow log in deg/s
# (under ~20 deg/s throughout) looks like plausible rad/s and cannot be told by its values.
_MAX_PLAUSIBLE_RAD_S = 20.0
_MAX_PLAUSIBLE_MEDIAN_RAD_S = 5.0
# Gyros sample at 100 Hz to a few kHz; a trace sampled below 20 Hz has its timestamps in ms or
# ns, one above 20 kHz in us (or a gcsv in seconds without its tscale line).
_MAX_SAMPLE_INTERVAL = 0.05
_MIN_SAMPLE_INTERVAL = 5e-5

_UNITS = ("auto", "rad", "deg")


@dataclass(frozen=True, eq=False)
class GyroLog:
    """An angular-velocity trace.

    Made here, it is checked for shapes, at least 2 samples, finite values and increasing
    times; its units are the caller's: the readers' refusal of deg/s and of timestamps in ms
    (``unit``) applies to files only.

    Attributes:
        t: ``(N,)`` float64 timestamps in seconds on the gyro clock, strictly increasing.
        w: ``(N, 3)`` float64 angular velocity in rad/s, in the axes of ``imu_to_camera``'s
            domain (the IMU axes as recorded, until :func:`to_camera_frame` is applied).
        source: the file it came from, used in error messages.
        readout_time: rolling-shutter frame readout time in seconds when the file says
            (gcsv ``frame_readout_time``); negative means bottom-to-top readout.
        imu_to_camera: ``3x3`` matrix taking ``w``'s axes to OpenCV camera axes (x right,
            y down, z forward) when the file says, else ``None``. A rotation, or for a log
            with left-handed axes (a Gyroflow orientation with one inverted axis) a reflection.
        clock_start: the file's own time of ``t = 0`` where the reader moved its clock (a
            gcsv's first sample on the logger's clock, which Gyroflow takes as the video's
            start), else 0.

    Example:
        >>> log = GyroLog(np.array([0.0, 0.01]), np.zeros((2, 3)))
        >>> log.w.shape, log.t.dtype
        ((2, 3), dtype('float64'))
    """

    t: np.ndarray
    w: np.ndarray
    source: str = ""
    readout_time: float | None = None
    imu_to_camera: np.ndarray | None = None
    clock_start: float = 0.0

    def __post_init__(self) -> None:
        t = np.array(self.t, dtype=np.float64)  # copies: the caller's may change
        w = np.array(self.w, dtype=np.float64)
        if t.ndim != 1 or w.shape != (t.shape[0], 3):
            raise ValueError(f"GyroLog needs t (N,) and w (N, 3); got {t.shape} and {w.shape}")
        if len(t) < 2:  # a rate is held between samples: one sample spans no time
            raise ValueError(f"GyroLog needs at least 2 samples, got {len(t)}")
        if not (np.isfinite(t).all() and np.isfinite(w).all()) or np.any(np.diff(t) <= 0):
            raise ValueError("GyroLog needs finite values and strictly increasing t")
        object.__setattr__(self, "t", t)
        object.__setattr__(self, "w", w)
        if self.imu_to_camera is not None:
            object.__setattr__(self, "imu_to_camera", _as_orthogonal(self.imu_to_camera))


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def read_gyro(path: str | Path, unit: str = "auto", deg_advice: str = "") -> GyroLog:
    """Read a gyro log, choosing the reader by what ``path`` is.

    Args:
        path: a GyroVD folder (``gyro.csv`` or ``meta_info/gyro.csv`` inside, raw or a plain
            CSV), a gcsv or a plain CSV (``t,wx,wy,wz`` header) whatever the file's name
            (known by its first line), another ``.csv``/``.txt`` log that telemetry-parser
            reads (Betaflight blackbox CSV, ...), or a camera file: its ``.gcsv`` sidecar
            when it has one, else read by ``telemetry_parser``
            (``pip install 'gyrodeblur[telemetry]'``).
        unit: ``"rad"`` or ``"deg"`` for the angular velocity after the format's own scaling
            (gcsv ``gscale`` and telemetry-parser are rad/s by definition; ``"deg"`` corrects a
            file that is wrong). ``"auto"`` accepts rad/s and refuses data that can only be
            deg/s (99th percentile of ``|w|`` above 20 or median above 5; a slow log in
            deg/s passes for rad/s and needs ``"deg"``).
        deg_advice: how to fix data that looks like deg/s, for a caller that takes no unit
            (by default: give ``--gyro-unit deg``); a gcsv without ``gscale`` says its own.

    Raises:
        InputError: unreadable file, missing columns, fewer than 2 samples, NaN/inf,
            unsorted or duplicated timestamps, deg/s-looking data with ``unit="auto"``.

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "g.csv"
        >>> _ = p.write_text("t,wx,wy,wz\\n0,0.1,0,0\\n0.01,0.2,0,0\\n")
        >>> read_gyro(p).w[:, 0]
        array([0.1, 0.2])
    """
    path = Path(path)
    if unit not in _UNITS:
        raise InputError(path, f"unknown gyro unit {unit!r}; use 'auto', 'rad' or 'deg'")
    if not (path.is_dir() or path.is_file()):
        raise InputError(path, unreadable_because(path, "gyro file not found"))
    if path.name == "gyro.csv" and (path.parent / "cam_metainfo.csv").is_file():
        path = path.parent  # a GyroVD meta_info's log: read as its folder, on its own clock
    if path.is_dir():
        file = _gyrovd_file(path)
        if _has_plain_header(_opening(file)):  # a plain CSV in the layout, as synthesis writes
            t, w, lines, extra = *_read_plain_csv(file), {}
        else:
            t, w, lines, extra = *_read_gyrovd(path), {}
        path = file
    # Our own formats by their first line, whatever the file's name (.log, .dat, ...).
    elif path.suffix.lower() == ".gcsv" or (opening := _opening(path)).startswith(
            _GCSV_FIRST_LINES):
        t, w, lines, extra = _read_gcsv(path)
    elif _has_plain_header(opening):
        t, w, lines, extra = *_read_plain_csv(path), {}
    elif path.suffix.lower() in _TEXT_SUFFIXES:
        t, w, lines, extra = _read_other_text_log(path)
    elif (sidecar := _gcsv_sidecar(path)) is not None:
        # telemetry-parser would read it too, but drops its readout time and its orientation.
        path = sidecar
        t, w, lines, extra = _read_gcsv(path)
    else:
        t, w, lines, extra = *_read_telemetry(path), {"imu_to_camera": _GYROFLOW_TO_OPENCV}
    t, w = _validated(path, t, w, unit, lines, extra.pop("advice", deg_advice or _DEG_ADVICE),
                      extra.pop("time_advice", None))
    return GyroLog(t, w, source=str(path), **extra)


_GCSV_FIRST_LINES = ("GYROFLOW IMU LOG", "CAMERA IMU LOG")
_TEXT_SUFFIXES = (".csv", ".txt")


def _gcsv_sidecar(video: Path) -> Path | None:
    """The Gyroflow log recorded beside a video (``clip.gcsv`` for ``clip.mp4``, any case of
    the suffix), if any; ``clip.old.gcsv`` is another log."""
    for candidate in sorted(video.parent.iterdir()):
        if candidate.stem == video.stem and candidate.suffix.lower() == ".gcsv" \
                and candidate.is_file():
            return candidate
    return None


def _opening(path: Path) -> str:
    """The first 64 KiB of a file as text, where a log tells its format."""
    try:
        with open(path, "rb") as f:
            first = f.read(1 << 16)
    except OSError as e:
        raise InputError(path, f"cannot read it ({e.strerror})") from None
    return first.decode("latin-1").lstrip("\ufeff\xef\xbb\xbf")


def _has_plain_header(opening: str) -> bool:
    """Whether a file's header (from ``_opening``: its first line neither blank nor a ``#``
    comment, whatever the line ends) names the plain CSV's columns t, wx, wy, wz, read as
    ``_read_plain_csv`` reads them."""
    # Line ends only: splitlines() would also break latin-1 text at \x85 (in UTF-8's Å).
    header = next((line for line in re.split(r"\r\n|\r|\n", opening)
                   if line.strip() and not line.lstrip().startswith("#")), "")
    names = {n.strip().strip('"').strip().lower() for n in header.split(",")}
    return {"t", "wx", "wy", "wz"} <= names


def _read_other_text_log(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, dict]:
    """A ``.csv``/``.txt`` that is neither a plain CSV nor a gcsv: telemetry-parser's when it
    reads it (Betaflight blackbox CSV, Runcam, WitMotion, phone-app logs), else the plain
    CSV reader's message on what is missing, unless telemetry-parser knew the format."""
    try:
        return *_read_telemetry(path), {"imu_to_camera": _GYROFLOW_TO_OPENCV}
    except InputError as telemetry:
        try:
            return *_read_plain_csv(path), {}
        except InputError:
            if "Unsupported file format" in telemetry.problem or not _has_telemetry_parser():
                raise
            raise telemetry from None


def gyroflow_imu_to_camera(orientation: str) -> np.ndarray:
    """Signed permutation from gyro axes to OpenCV camera axes for a Gyroflow orientation.

    Gyroflow's rule (docs "IMU orientation"; telemetry-parser ``Vector3::orient``): letter
    ``i`` names the recorded axis that becomes Gyroflow IMU axis ``i``, lower case meaning
    inverted, so ``YxZ`` gives ``(y, -x, z)``. Gyroflow's IMU axes are x up, y left, z back:
    its integrators use ``(-y, x, z)`` in camera axes x right, y up, z back, and its renderer
    conjugates rotations by ``diag(1, -1, -1)`` into OpenCV axes (x right, y down,
    z forward). So a gyro mounted along OpenCV's axes has the orientation ``yxz``, and
    ``YxZ`` is the OpenGL-like camera's.

    Example:
        >>> gyroflow_imu_to_camera("yxz")
        array([[1., 0., 0.],
               [0., 1., 0.],
               [0., 0., 1.]])
    """
    letters = orientation.strip()
    if len(letters) != 3 or sorted(letters.lower()) != ["x", "y", "z"]:
        raise ValueError(f"orientation {orientation!r} is not a permutation of x, y, z")
    perm = np.zeros((3, 3))
    for row, letter in enumerate(letters):
        perm[row, "xyz".index(letter.lower())] = 1.0 if letter.isupper() else -1.0
    return _GYROFLOW_TO_OPENCV @ perm


def _gyrovd_file(folder: Path) -> Path:
    for candidate in (folder / "gyro.csv", folder / "meta_info" / "gyro.csv"):
        if candidate.is_file():
            return candidate
    raise InputError(folder, "no gyro.csv in this folder or in its meta_info/ (GyroVD layout)")


def _read_gyrovd(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """GyroVD ``gyro.csv``: ``wx,wy,wz,t_ns`` rows, no header (Android rad/s, ns clock)."""
    path = _gyrovd_file(folder)
    # float64 holds integer ns exactly below 2**53 ns (104 days of uptime); one division
    # then rounds to well under a nanosecond.
    data, lines = _table(path, _text_lines(path), start=0, used=[0, 1, 2, 3])
    return data[:, 3] / 1e9, data[:, :3], lines


def _read_plain_csv(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    text = _text_lines(path)
    # The header: the first line that is neither blank nor a # comment.
    header = next((i for i, line in enumerate(text)
                   if line.strip() and not line.lstrip().startswith("#")), None)
    if header is None:
        raise InputError(path, "file is empty (expected a header t,wx,wy,wz)")
    names = [n.strip().strip('"').strip().lower() for n in text[header].split(",")]
    missing = [n for n in ("t", "wx", "wy", "wz") if n not in names]
    if missing:
        first = text[header].strip()
        why = ("no header line" if _is_number(first.replace(",", " ").split()[0]) else
               "not comma-separated" if "," not in first else f"header has: {', '.join(names)}")
        raise InputError(path, f"missing column(s) {', '.join(missing)} ({why}): a plain CSV "
                               "starts with the line t,wx,wy,wz, in seconds and rad/s")
    twice = [n for n in ("t", "wx", "wy", "wz") if names.count(n) > 1]
    if twice:
        raise InputError(path, f"column(s) {', '.join(twice)} appear more than once in the "
                               "header: which one is the gyro's?")
    cols = [names.index(n) for n in ("t", "wx", "wy", "wz")]
    data, lines = _table(path, text, start=header + 1, used=cols)
    return data[:, 0], data[:, 1:], lines


_DEG_ADVICE = ("give --gyro-unit deg (Python: unit='deg'), or --gyro-unit rad if it really is "
               "rad/s")
_NO_GSCALE_ADVICE = ("the header has no gscale line: raw sensor counts need one (rad/s per "
                     "count); values in deg/s need --gyro-unit deg (Python: unit='deg')")

# Columns of a gcsv's accelerometer and magnetometer: never taken for the gyro's by position.
_OTHER_SENSOR_COLUMNS = {"ax", "ay", "az", "mx", "my", "mz"}

# telemetry-parser's names of the vertical readout directions.
_GCSV_READOUT_DOWN, _GCSV_READOUT_UP = ("0", "TopToBottom"), ("1", "180", "BottomToTop")


def _read_gcsv(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """Gyroflow gcsv (docs.gyroflow.xyz, "GCSV format", version 1.3), read as telemetry-parser
    reads it: header values may be quoted, the gyro columns are ``gx,gy,gz`` or else the
    three after ``t``, and the clock starts at the first sample (Gyroflow takes a gcsv's
    first sample as the start of its video, whatever clock the logger counted on)."""
    text = _text_lines(path)
    if not text or text[0].strip().rstrip(",").strip() not in _GCSV_FIRST_LINES:
        raise InputError(path, "not a Gyroflow IMU log (first line must be 'GYROFLOW IMU LOG')")
    header: dict[str, str] = {}
    for i, line in enumerate(text[1:], start=1):
        key, _, value = line.partition(",")
        if key.strip() in ("t", "time"):
            names, first_row = [n.strip() for n in line.split(",")], i + 1
            break
        if key.strip():
            header[key.strip()] = value.strip().rstrip(",").strip().strip('"').strip()
    else:
        raise InputError(path, "no column header line starting with 't,' (e.g. t,gx,gy,gz)")
    if all(n in names for n in ("gx", "gy", "gz")):
        cols = [0] + [names.index(n) for n in ("gx", "gy", "gz")]
    elif len(names) >= 4 and not set(names[1:4]) & _OTHER_SENSOR_COLUMNS:
        cols = [0, 1, 2, 3]
    else:
        raise InputError(path, f"no gyro columns (header has: {', '.join(names)}; expected "
                               "t,gx,gy,gz)")
    # Defaults are telemetry-parser's (the reference reader): ms timestamps, unscaled rates.
    tscale = _header_float(path, header, "tscale", 0.001)
    gscale = _header_float(path, header, "gscale", 1.0)
    for key, value in (("tscale", tscale), ("gscale", gscale)):
        if value <= 0:
            raise InputError(path, f"header {key},{header[key]}: must be positive")
    # Rows may stop after the gyro columns (a logger writing accelerometer samples only
    # every other row, as telemetry-parser accepts).
    data, lines = _table(path, text, start=first_row, used=cols)

    extra: dict = {} if "gscale" in header else {"advice": _NO_GSCALE_ADVICE}
    extra["time_advice"] = ((f"after the header's tscale,{tscale:g}" if "tscale" in header
                             else "without a tscale line, ms are read")
                            + ": tscale,0.001 for ms, 1e-06 for us, 1 for s")
    try:  # telemetry-parser's default orientation
        extra["imu_to_camera"] = gyroflow_imu_to_camera(header.get("orientation", "xzY"))
    except ValueError as e:
        raise InputError(path, f"bad orientation line: {e}") from None
    if "frame_readout_time" in header:
        readout_ms = _header_float(path, header, "frame_readout_time", 0.0)
        try:
            check_gyroflow_readout_ms(readout_ms)
        except ValueError as e:
            raise InputError(path, str(e)) from None
        direction = header.get("frame_readout_direction", "0")
        if direction not in _GCSV_READOUT_DOWN + _GCSV_READOUT_UP:
            raise InputError(
                path, f"frame_readout_direction {direction}: only top-to-bottom (0) and "
                "bottom-to-top (1) readouts are supported"
            )
        readout = readout_ms / 1000.0
        extra["readout_time"] = -readout if direction in _GCSV_READOUT_UP else readout
    t = data[:, 0] * tscale
    if len(t):
        extra["clock_start"] = float(t[0])
        # Rebased before scaling: integer µs since the epoch stay exact.
        t = (data[:, 0] - data[0, 0]) * tscale
    return t, data[:, 1:] * gscale, lines, extra


def _has_telemetry_parser() -> bool:
    try:
        import telemetry_parser  # noqa: F401
    except ImportError:
        return False
    return True


def _read_telemetry(path: Path) -> tuple[np.ndarray, np.ndarray, None]:
    """Camera files through telemetry-parser's ``Parser(path).normalized_imu()``.

    It returns dicts ``{"timestamp_ms", "gyro", "accl", "magn"}`` with ``gyro`` in deg/s,
    already turned into Gyroflow's IMU axes by the camera's orientation string, and
    timestamps in ms (relative to the first sample for formats without an absolute clock).
    """
    if not _has_telemetry_parser():
        raise InputError(
            path,
            "reading gyro from camera files needs the optional telemetry-parser package: "
            "pip install 'gyrodeblur[telemetry]'",
        )
    import telemetry_parser
    problem = "telemetry-parser cannot read gyro data from it"
    try:
        with _native_stderr_held():
            imu = telemetry_parser.Parser(str(path)).normalized_imu()
    except Exception as e:
        raise InputError(path, f"{problem} ({e})") from None
    except BaseException as e:  # a Rust panic arrives as pyo3's PanicException(BaseException)
        if type(e).__name__ != "PanicException":
            raise
        raise InputError(path, f"{problem} (parser crashed: {e})") from None
    samples = [s for s in imu if s.get("gyro") is not None]
    if not samples:
        raise InputError(path, "no gyroscope samples in this file")
    t = np.array([s["timestamp_ms"] for s in samples], dtype=np.float64) / 1000.0
    w = np.deg2rad(np.array([s["gyro"] for s in samples], dtype=np.float64))
    return t, w, None


@contextmanager
def _native_stderr_held() -> Iterator[None]:
    """Hold back what native code writes to stderr (fd 2) in the block, and pass it on only
    if the block succeeds: a Rust panic prints its report there (with a backtrace where
    RUST_BACKTRACE is set) before pyo3 raises it, and the one-line error says it all."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        try:
            os.dup2(held.fileno(), 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        held.seek(0)
        sys.stderr.write(held.read().decode(errors="replace"))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _text_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(path, f"cannot read it as text ({e})") from None


def _table(path: Path, text: list[str], start: int, used: list[int]
           ) -> tuple[np.ndarray, np.ndarray]:
    """The ``used`` columns of the data lines as floats ``(N, len(used))``, and the lines'
    numbers (1-based). Blank and ``#`` comment lines are skipped, fields may be quoted (as
    spreadsheets and R's write.csv quote them), each line needs the ``used`` columns, except
    the last, which is dropped when one of them is missing or empty: a logger cut off
    mid-write (a power loss) leaves one. Columns not read may be empty or absent."""
    ncols = max(used) + 1
    data = [i for i in range(start, len(text)) if text[i].strip()
            and not text[i].lstrip().startswith("#")]
    if data:
        last = text[data[-1]].split(",")
        if len(last) < ncols or not all(last[c].strip() for c in used):
            data.pop()
    lines = np.array(data, dtype=np.int64) + 1
    if not data:
        return np.empty((0, len(used))), lines
    try:  # numpy's parser: an hour of 1 kHz log in seconds, not minutes and gigabytes
        return np.loadtxt((text[i] for i in data), delimiter=",", usecols=used,
                          quotechar='"', comments=None, ndmin=2), lines
    except ValueError:
        pass
    # Field by field, to name the line and the field refused.
    values = np.empty((len(data), len(used)))
    for row, i in enumerate(data):
        fields = text[i].split(",")
        if '"' in text[i]:
            fields = [field.strip().strip('"') for field in fields]
        if len(fields) < ncols:
            raise InputError(path, f"line {i + 1} has {len(fields)} fields, expected {ncols}")
        for k, c in enumerate(used):
            try:
                values[row, k] = float(fields[c])
            except ValueError:
                raise InputError(path, f"line {i + 1}: {fields[c].strip()!r} is not a "
                                       "number") from None
    return values, lines


def _header_float(path: Path, header: dict[str, str], key: str, default: float) -> float:
    try:
        value = float(header.get(key, default))
    except ValueError:
        raise InputError(path, f"header {key},{header[key]} is not a number") from None
    if not math.isfinite(value):
        raise InputError(path, f"header {key},{header[key]} is not a finite number")
    return value


def _validated(
    source: Path, t: np.ndarray, w: np.ndarray, unit: str, lines: np.ndarray | None,
    deg_advice: str = _DEG_ADVICE, time_advice: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The checks shared by every reader; returns ``(t, w)`` with ``w`` in rad/s.
    ``deg_advice`` ends the message on data that looks like deg/s, ``time_advice`` (a
    format's own scaling) that on timestamps of no gyro's rate."""

    def where(i: int) -> str:
        return f"line {lines[i]}" if lines is not None else f"sample {i}"

    n = len(t)
    if n < 2:
        raise InputError(source, f"only {n} gyro sample(s); need at least 2")
    bad = ~np.isfinite(t) | ~np.isfinite(w).all(axis=1)
    if bad.any():
        i = int(np.argmax(bad))
        raise InputError(source, f"NaN or inf at {where(i)} (t={t[i]}, w={w[i].tolist()})")
    dt = np.diff(t)
    if (dt <= 0).any():
        i = int(np.argmax(dt <= 0)) + 1
        if dt[i - 1] == 0:
            raise InputError(source, f"duplicated timestamp at {where(i)} (t={seconds_text(t[i])})")
        raise InputError(
            source,
            f"timestamps not strictly increasing at {where(i)} "
            f"(t={seconds_text(t[i])} after {seconds_text(t[i - 1])})",
        )
    interval = float(np.median(np.diff(t)))
    if not _MIN_SAMPLE_INTERVAL <= interval <= _MAX_SAMPLE_INTERVAL:
        # A gyro samples every 0.05 to 50 ms: that in ms, us or ns.
        guess = ("us?" if interval < _MIN_SAMPLE_INTERVAL else "ms?" if interval <= 50
                 else "us?" if interval <= 5e4 else "ns?")
        raise InputError(source, f"median sample interval {interval:.6g} s ({1 / interval:.3g} Hz) "
                                 f"is no gyro's: timestamps must be in seconds "
                                 f"({time_advice or guess})")
    if unit == "deg":
        return t, np.deg2rad(w)
    if unit == "auto":
        speed = np.linalg.norm(w, axis=1)
        p99, median = float(np.percentile(speed, 99)), float(np.median(speed))
        if p99 > _MAX_PLAUSIBLE_RAD_S or median > _MAX_PLAUSIBLE_MEDIAN_RAD_S:
            raise InputError(
                source,
                f"angular velocity looks like deg/s (|w| median {median:.3g}, 99th percentile "
                f"{p99:.3g}); {deg_advice}",
            )
    return t, w


# --------------------------------------------------------------------------------------------
# Processing
# --------------------------------------------------------------------------------------------


MAX_BIAS = 0.1
"""rad/s: MEMS gyro biases are well below it (a larger one given is noted: deg/s?)."""


def estimate_bias(
    log: GyroLog, window: float = 0.5, still_threshold: float = 0.02,
    max_bias: float = MAX_BIAS) -> np.ndarray:
    """Gyro bias (rad/s, ``(3,)``) as the mean rate over the still parts of the log.

    Rule: slide windows of ``window`` seconds by half a window; a window's spread is
    ``sqrt(sum of per-axis variances)`` of ``w``. A window is still when its spread is in the
    lowest decile of all windows, at most ``still_threshold`` rad/s, and its mean rate is at
    most ``max_bias`` rad/s (a steady pan has no spread either but a large mean; MEMS biases
    are well below 0.1 rad/s). The bias is the mean of every sample in a still window.

    Raises:
        InputError: no still window (the camera never rests long enough).

    Example:
        >>> t = np.arange(1000) / 200.0
        >>> w = np.tile([0.01, -0.02, 0.005], (1000, 1))
        >>> estimate_bias(GyroLog(t, w)).round(6)
        array([ 0.01 , -0.02 ,  0.005])
    """
    n_win = max(3, round(window * _median_rate(log)))
    n = len(log.t)
    if n < n_win:
        raise InputError(log.source, f"log is shorter than one {window} s bias window")
    starts = np.arange(0, n - n_win + 1, max(1, n_win // 2))
    c1 = np.vstack([np.zeros(3), np.cumsum(log.w, axis=0)])
    c2 = np.vstack([np.zeros(3), np.cumsum(log.w**2, axis=0)])
    mean = (c1[starts + n_win] - c1[starts]) / n_win
    var = (c2[starts + n_win] - c2[starts]) / n_win - mean**2
    spread = np.sqrt(np.clip(var, 0.0, None).sum(axis=1))
    limit = min(float(np.quantile(spread, 0.1)), still_threshold)
    still = (spread <= limit) & (np.linalg.norm(mean, axis=1) <= max_bias)
    if not still.any():
        quiet = spread <= limit  # steady enough, but turning: a pan, not a bias
        why = (f"the quietest {window} s windows turn at "
               f"{np.linalg.norm(mean[quiet], axis=1).min():.3g} rad/s or more, above a bias "
               f"({max_bias})" if quiet.any() else
               f"the quietest {window} s window has rate spread {spread.min():.3g} rad/s, "
               f"limit {still_threshold}")
        raise InputError(log.source, f"no still segment to estimate the gyro bias ({why}); "
                                     "record the camera at rest for a moment or give the bias "
                                     "explicitly")
    mask = np.zeros(n, dtype=bool)
    for s in starts[still]:
        mask[s : s + n_win] = True
    return log.w[mask].mean(axis=0)


def remove_bias(log: GyroLog, bias: np.ndarray | None = None) -> GyroLog:
    """Subtract ``bias`` (default: :func:`estimate_bias`) from every sample: rad/s in the
    log's own axes (as read, before ``imu_to_camera``). A given bias above ``MAX_BIAS`` is
    applied with a warning.

    Example:
        >>> log = GyroLog(np.array([0.0, 1.0]), np.full((2, 3), 0.25))
        >>> remove_bias(log, np.array([0.05, 0.01, 0.0])).w[0]
        array([0.2 , 0.24, 0.25])
    """
    b = estimate_bias(log) if bias is None else np.asarray(bias, dtype=np.float64)
    if b.shape != (3,) or not np.isfinite(b).all():
        raise ValueError(f"bias must be 3 finite rates (wx, wy, wz) in rad/s, got {bias!r}")
    if bias is not None and np.abs(b).max() > MAX_BIAS:
        import warnings

        warnings.warn(f"a gyro bias of {np.abs(b).max():g} rad/s is more than a MEMS gyro's "
                      f"(under {MAX_BIAS}): in deg/s? It is subtracted as given", stacklevel=2)
    return replace(log, w=log.w - b)


def lowpass(log: GyroLog, cutoff_hz: float, order: int = 2) -> GyroLog:
    """Zero-phase Butterworth low-pass (``sosfiltfilt``) at the log's median sample rate.

    Filtering forward and backward doubles the attenuation (in dB) and cancels the delay, so
    the filtered rates stay aligned with the frames. The filter runs on a uniform grid at
    that rate (linear between the samples) and is read back at the log's own times: a
    filter run on the samples as if evenly spaced would mistake a gap or timestamp jitter
    for a jump in time of a few samples.

    Example:
        >>> t = np.arange(2000) / 1000.0
        >>> w = np.stack([np.sin(2 * np.pi * 200 * t)] * 3, axis=1)
        >>> float(np.abs(lowpass(GyroLog(t, w), 10.0).w[500:1500]).max()) < 1e-3
        True
    """
    from scipy.signal import butter, sosfiltfilt  # 1.5 s to import; only this function needs it

    fs = _median_rate(log)
    if not 0 < cutoff_hz < fs / 2:
        raise InputError(
            log.source, f"low-pass cutoff {cutoff_hz} Hz must be between 0 and {fs / 2:.4g} Hz"
        )
    sos = butter(order, cutoff_hz, btype="low", fs=fs, output="sos")
    w = log.w.copy()
    # Runs apart by more than a second (a logger paused) are filtered each on its own grid:
    # one grid over the pause would take memory for samples that were never taken.
    cuts = np.flatnonzero(np.diff(log.t) > max(1.0, 4 / cutoff_hz)) + 1
    for run in np.split(np.arange(len(log.t)), cuts):
        t = log.t[run]
        if len(t) < 2:
            continue
        grid = t[0] + np.arange(math.ceil((t[-1] - t[0]) * fs) + 1) / fs
        on_grid = np.stack([np.interp(grid, t, log.w[run, a]) for a in range(3)], axis=1)
        padlen = min(3 * (2 * len(sos) + 1), len(grid) - 1)
        filtered = sosfiltfilt(sos, on_grid, axis=0, padlen=padlen)
        w[run] = np.stack([np.interp(t, grid, filtered[:, a]) for a in range(3)], axis=1)
    return replace(log, w=w)


def resample(log: GyroLog, rate_hz: float) -> GyroLog:
    """Linear interpolation onto a uniform grid ``t0 + k / rate_hz`` over the log's span.

    Example:
        >>> log = GyroLog(np.array([0.0, 1.0]), np.array([[0.0, 0, 0], [1.0, 0, 0]]))
        >>> resample(log, 4.0).w[:, 0]
        array([0.  , 0.25, 0.5 , 0.75, 1.  ])
    """
    if not rate_hz > 0:
        raise ValueError(f"rate_hz must be positive, got {rate_hz}")
    span = log.t[-1] - log.t[0]
    k = np.arange(math.floor(span * rate_hz * (1 + 1e-12)) + 1)
    t = log.t[0] + k / rate_hz
    w = np.stack([np.interp(t, log.t, log.w[:, a]) for a in range(3)], axis=1)
    return replace(log, t=t, w=w)


def shifted(log: GyroLog, dt: float) -> GyroLog:
    """The log with every timestamp moved by ``dt`` seconds (a sensor delay).

    Example:
        >>> shifted(GyroLog(np.array([0.0, 1.0]), np.zeros((2, 3))), 0.25).t
        array([0.25, 1.25])
    """
    return replace(log, t=log.t + dt)


def check_mounting(log: GyroLog, alternative: str = "") -> None:
    """Refuse a log whose axes map to the camera's by a reflection: no mounting of a gyro
    does that. ``alternative``: another fix to name (``" or ..."``).

    Example:
        >>> log = GyroLog(np.array([0.0, 1.0]), np.zeros((2, 3)), "m.gcsv",
        ...               imu_to_camera=np.diag([1.0, 1.0, -1.0]))
        >>> check_mounting(log)
        Traceback (most recent call last):
        ...
        gyrodeblur.errors.InputError: m.gcsv: its Gyroflow orientation (its orientation line, \
or xzY, telemetry-parser's default, when it has none) mirrors the axes, which no mounting of \
a gyro does: set the file's orientation line (e.g. YxZ; yxz when the gyro axes are OpenCV's \
camera axes)
    """
    if log.imu_to_camera is not None and np.linalg.det(log.imu_to_camera) < 0:
        raise InputError(log.source, "its Gyroflow orientation (its orientation line, or xzY, "
                                     "telemetry-parser's default, when it has none) mirrors "
                                     "the axes, which no mounting of a gyro does: set the "
                                     "file's orientation line (e.g. YxZ; yxz when the gyro "
                                     f"axes are OpenCV's camera axes){alternative}")


def to_camera_frame(log: GyroLog, imu_to_camera: np.ndarray) -> GyroLog:
    """Rotate every sample into camera axes: ``w' = R w``.

    The result's ``imu_to_camera`` is the identity: its axes already are the camera's. A
    camera whose own ``imu_to_camera`` is not the identity would turn it again
    (``camera_orientation`` takes the camera's first): integrate it directly
    (:func:`~gyrodeblur.geometry.rotation.integrate`) or pair it with
    ``camera.replace(imu_to_camera=np.eye(3))``.

    Example:
        >>> swap = np.array([[0.0, 1, 0], [1, 0, 0], [0, 0, -1]])
        >>> to_camera_frame(GyroLog(np.array([0.0, 1.0]), [[1, 2, 3]] * 2), swap).w[0]
        array([ 2.,  1., -3.])
    """
    r = _as_orthogonal(imu_to_camera)
    return replace(log, w=log.w @ r.T, imu_to_camera=np.eye(3))


GAP_SAMPLES = 10
"""Longest interval between gyro samples, in typical intervals, that frames may span."""


# What to check when the gyro misses frames of footage (``check_covers``).
_FOOTAGE_CLOCK_HINT = ("check --time-offset and the frames' clock: a frames CSV's, or a "
                      "video's own timestamps, which start at 0")


def seconds_text(t: float, digits: int = 6) -> str:
    """A time for a message: ``digits`` decimals, or significant digits for a time no clock
    reaches (a mistyped offset) that would print hundreds of figures.

    Example:
        >>> seconds_text(1.5), seconds_text(1e300), seconds_text(1.7e9, 3)
        ('1.500000', '1e+300', '1700000000.000')
    """
    return f"{t:.{digits}f}" if abs(t) < 1e12 else f"{t:.{digits}g}"


def check_covers(log: GyroLog, t_first: float, t_last: float,
                 hint: str = _FOOTAGE_CLOCK_HINT) -> None:
    """Raise :class:`InputError` unless ``[t_first, t_last]`` lies inside the log's span
    without a hole: no interval between samples there longer than ``GAP_SAMPLES`` typical
    intervals (and 20 ms), across which the motion would be guessed. ``hint`` ends the
    message: which options set the times.

    Example:
        >>> check_covers(GyroLog(np.array([0.0, 2.0]), np.zeros((2, 3))), 0.5, 1.5)
    """
    t0, t1 = float(log.t[0]), float(log.t[-1])
    if t_first < t0 or t_last > t1:
        raise InputError(
            log.source,
            f"gyro covers {seconds_text(t0)} to {seconds_text(t1)} s but the frames need "
            f"{seconds_text(t_first)} to {seconds_text(t_last)} s ({hint}){clock_note(log)}",
        )
    check_no_holes(log, t_first, t_last)


def check_no_holes(log: GyroLog, t_first: float, t_last: float) -> None:
    """Raise :class:`InputError` where one of the log's :func:`holes` meets
    ``[t_first, t_last]`` (or, for ``t_first > t_last``, holds both).

    Example:
        >>> log = GyroLog(np.r_[0:20, 60:80] * 0.005, np.zeros((40, 3)), "g.csv")
        >>> check_no_holes(log, 0.2, 0.25)
        Traceback (most recent call last):
        ...
        gyrodeblur.errors.InputError: g.csv: gyro has no samples from 0.095000 to 0.300000 s ...
    """
    gaps = holes(log)
    inside = gaps[(gaps[:, 0] < t_last) & (gaps[:, 1] > t_first)]
    if len(inside):
        raise InputError(log.source, f"{widest_hole_text(inside)}, within the {t_first:.6f} "
                                     f"to {t_last:.6f} s the frames need")


def widest_hole_text(gaps: np.ndarray) -> str:
    """What an error says of the widest of ``gaps`` (``(K, 2)``, K >= 1, from :func:`holes`).

    Example:
        >>> widest_hole_text(np.array([[0.1, 0.13], [0.5, 0.6]]))
        'gyro has no samples from 0.500000 to 0.600000 s (100 ms)'
    """
    start, end = gaps[np.argmax(gaps[:, 1] - gaps[:, 0])]
    return f"gyro has no samples from {start:.6f} to {end:.6f} s ({(end - start) * 1e3:.0f} ms)"


def holes(log: GyroLog) -> np.ndarray:
    """``(K, 2)`` start and end times of the log's holes: intervals between samples longer
    than ``GAP_SAMPLES`` typical intervals (and 20 ms), across which the motion would be
    guessed.

    Example:
        >>> t = np.r_[0:20, 60:80] * 0.005  # 200 Hz, none from 0.095 to 0.3 s
        >>> holes(GyroLog(t, np.zeros((40, 3)))).round(3)
        array([[0.095, 0.3  ]])
    """
    dt = np.diff(log.t)
    k = np.flatnonzero(dt > max(GAP_SAMPLES * float(np.median(dt)), 0.02))
    return np.stack([log.t[k], log.t[k + 1]], -1)


def clock_note(log: GyroLog) -> str:
    """Where the reader moved the log's clock, for a message on times it does not cover.

    Example:
        >>> t, w = np.array([0.0, 0.01]), np.zeros((2, 3))
        >>> "5.250000 s on its own clock" in clock_note(GyroLog(t, w, clock_start=5.25))
        True
        >>> clock_note(GyroLog(t, w))
        ''
    """
    if not log.clock_start:
        return ""
    return (f"; its t = 0 is its first sample (as Gyroflow reads a gcsv), {log.clock_start:.6f} "
            f"s on its own clock: frame times on that clock need {-log.clock_start:.6f} s more "
            "time offset")


def write_csv(log: GyroLog, path: str | Path) -> None:
    """Write the plain ``t,wx,wy,wz`` CSV with round-trip-exact floats, atomically. A log that
    knows its axes or readout (a gcsv's) is refused: the CSV would lose them.

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "out.csv"
        >>> write_csv(GyroLog(np.array([0.0, 0.1]), np.full((2, 3), 1 / 3)), p)
        >>> p.read_text().splitlines()[:2]
        ['t,wx,wy,wz', '0,0.33333333333333331,0.33333333333333331,0.33333333333333331']
    """
    known = [name for name, said in (
        ("imu_to_camera", log.imu_to_camera is not None
         and not np.array_equal(log.imu_to_camera, np.eye(3))),
        ("readout_time", bool(log.readout_time))) if said]
    if known:
        raise ValueError(f"a plain CSV holds t,wx,wy,wz only: the log's {' and '.join(known)} "
                         "would be lost; keep them in the camera (complete_camera, "
                         f"save_camera) and write replace(log, {'=None, '.join(known)}=None)")
    data = np.column_stack([log.t, log.w])
    with atomic_path(path) as tmp:
        np.savetxt(tmp, data, fmt="%.17g", delimiter=",", header="t,wx,wy,wz", comments="")


def _median_rate(log: GyroLog) -> float:
    return 1.0 / float(np.median(np.diff(log.t)))


def _as_orthogonal(r: np.ndarray) -> np.ndarray:
    # det -1 is allowed: a log whose axes are left-handed (one sign inverted) needs a reflection.
    r = np.asarray(r, dtype=np.float64)
    if r.shape != (3, 3) or not np.allclose(r @ r.T, np.eye(3), atol=1e-6):
        raise ValueError(f"imu_to_camera must be an orthogonal 3x3 matrix, got {r.tolist()}")
    return r
