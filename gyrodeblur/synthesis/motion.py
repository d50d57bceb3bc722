"""Camera rotation for synthesis: real gyro segments and a hand-shake model fitted to them.

Two sources of angular velocity in OpenCV camera axes (x right, y down, z forward), rad/s:

* :func:`bundled_traces` / :func:`random_segment`: windows of real recordings shipped with the
  package (``gyrodeblur/data/gyro/README.md`` says where they come from) or read from the
  user's logs (:func:`read_traces`);
* :class:`ShakeModel`: a stationary Gaussian process whose power spectral density per camera
  axis is fitted to real traces (:func:`fit_shake_model`), sampled by spectral synthesis.

The shipped model (``gyrodeblur/data/shake_model.json``, written by
``scripts/fit_shake_model.py``) is fitted to the seven traces of ``/work/shared/data/gyro``
longer than 10 s: GyroDeblurNet train/test (210 Hz), GyroVD real (417 Hz), gyro-video-
stabilization (412 Hz) and InertialScale D1-D3 (100 Hz), each analysed at its own rate, on a
0-80 Hz grid in 0.1 Hz steps (InertialScale only up to 40 Hz). InertialScale's axes are unknown
and pooled; the others are mapped to camera axes as the script's docstring says. The DeepGyro
sample (0.22 s) is too short for a 0.1 Hz spectrum.

Example:
    >>> model = load_shake_model()
    >>> log = model.sample(0.5, 400.0, np.random.default_rng(0))
    >>> log.w.shape, float(log.t[-1])
    ((201, 3), 0.5)
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from gyrodeblur.fileio import atomic_path
from gyrodeblur.geometry.gyro import (
    GyroLog,
    check_mounting,
    read_gyro,
    resample,
    to_camera_frame,
)

__all__ = [
    "ShakeModel",
    "bundled_traces",
    "fit_shake_model",
    "load_shake_model",
    "longest_window",
    "random_segment",
    "read_traces",
]

_DATA = Path(__file__).resolve().parents[1] / "data"
_DEFAULT_MODEL = _DATA / "shake_model.json"
_FORMAT = "gyrodeblur.shake_model/1"
# A gap is a missing stretch of samples: dt above this many median periods.
_GAP_FACTOR = 3.0
# A trace's spectrum is trusted up to this fraction of its Nyquist frequency; above it the
# sensor's own anti-alias filter bends it down.
_TRUSTED_NYQUIST = 0.8


def bundled_traces() -> list[GyroLog]:
    """The real gyro traces shipped with the package, in OpenCV camera axes, rad/s.

    GyroVD real ``VID_20251029_020848`` (15.1 s, 417 Hz, CC BY 4.0; its ``imu_to_camera`` is
    ``diag(1, -1, -1)`` from ``data/gyrovd_real/camera.json``) and 24 s of
    gyro-video-stabilization ``20200109_145447`` (412 Hz, MIT; stored already in camera axes).

    Example:
        >>> [round(float(log.t[-1])) for log in bundled_traces()]
        [15, 24]
    """
    camera = json.loads((_DATA / "gyrovd_real" / "camera.json").read_text())
    gyrovd = to_camera_frame(read_gyro(_DATA / "gyrovd_real" / "gyro.csv"),
                             np.array(camera["imu_to_camera"]))
    vidstab = read_gyro(_DATA / "gyro" / "gyrovidstab_20200109_145447_0-24s_camera.csv")
    return [gyrovd, replace(vidstab, imu_to_camera=np.eye(3))]


def read_traces(paths: str | Path | Sequence[str | Path], unit: str = "auto",
                deg_advice: str = "") -> list[GyroLog]:
    """Real gyro logs to draw camera motion from, in camera axes where the file says how.

    Each path is anything :func:`~gyrodeblur.geometry.gyro.read_gyro` reads (with ``unit``,
    and ``deg_advice`` ending its message on deg/s-looking rates);
    a log whose format gives its axes (a gcsv ``orientation``) is turned into OpenCV camera
    axes, others are taken as recorded. Times and values are kept as recorded (bias
    included, as a real device has it); a readout time the file gives is dropped: the
    synthetic camera draws its own.

    Raises:
        InputError: a log that ``read_gyro`` refuses, or whose axes are mirrored.

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "g.csv"
        >>> _ = p.write_text("t,wx,wy,wz\\n0,0.1,0,0\\n0.01,0.2,0,0\\n")
        >>> [log.w[:, 0].tolist() for log in read_traces(p)]
        [[0.1, 0.2]]
    """
    logs = [read_gyro(path, unit, deg_advice) for path in
            ([paths] if isinstance(paths, str | Path) else paths)]
    for log in logs:
        check_mounting(log)
    return [replace(log if log.imu_to_camera is None else
                    to_camera_frame(log, log.imu_to_camera), readout_time=None)
            for log in logs]


def _run_ends(t: np.ndarray) -> np.ndarray:
    """The time at which the gap-free run of samples holding each sample ends."""
    dt = np.diff(t)
    gap_after = np.flatnonzero(dt > _GAP_FACTOR * np.median(dt))
    return np.repeat(t[np.append(gap_after, len(t) - 1)],
                     np.diff(np.concatenate([[-1], gap_after, [len(t) - 1]])))


def longest_window(log: GyroLog) -> float:
    """The longest gap-free stretch of ``log`` in seconds: the longest ``random_segment``.

    Example:
        >>> t = np.concatenate([np.arange(11) / 10.0, 5.0 + np.arange(31) / 10.0])
        >>> round(longest_window(GyroLog(t, np.zeros((42, 3)))), 9)
        3.0
    """
    return float(np.max(_run_ends(log.t) - log.t))


def random_segment(log: GyroLog, duration: float, rng: np.random.Generator) -> GyroLog:
    """A random ``duration``-second window of ``log`` without gaps, times rebased to 0.

    The window starts at a sample drawn uniformly among those from which ``duration`` seconds
    follow without a gap (a step above 3x the median sample period), and holds every sample
    up to ``duration`` seconds later.

    Raises:
        ValueError: no gap-free stretch of ``log`` is ``duration`` seconds long.

    Example:
        >>> log = GyroLog(np.arange(100) / 10.0, np.zeros((100, 3)))
        >>> seg = random_segment(log, 2.0, np.random.default_rng(0))
        >>> float(seg.t[0]), round(float(seg.t[-1]), 9), len(seg.t)
        (0.0, 2.0, 21)
    """
    t = log.t - log.t[0]  # a tolerance relative to epoch times would be seconds wide
    run_end = _run_ends(t)
    eps = 1e-9 * max(1.0, float(t[-1]))
    starts = np.flatnonzero(t + duration <= run_end + eps)
    if len(starts) == 0:
        raise ValueError(f"{log.source or 'gyro log'}: no gap-free {duration} s window")
    i = int(rng.choice(starts))
    j = int(np.searchsorted(t, t[i] + duration + eps, side="right"))
    return replace(log, t=t[i:j] - t[i], w=log.w[i:j])


@dataclass(frozen=True, eq=False)
class ShakeModel:
    """Stationary Gaussian hand shake: one-sided PSD of angular velocity per camera axis.

    Attributes:
        freqs: ``(F,)`` uniform frequency grid from 0 Hz, in Hz; the PSD is zero above it.
        psd: ``(F, 3)`` power spectral density of ``w`` (camera x, y, z), rad^2/s^2/Hz.
        traces: names of the traces it was fitted to.
        trace_rms: ``(len(traces), 3)`` RMS of each trace's ``w`` per camera axis over the
            grid's band (mean removed): the real spread of shake strength, for drawing a
            ``scale``.

    Example:
        >>> f = np.linspace(0.0, 10.0, 101)
        >>> model = ShakeModel(f, np.full((101, 3), 0.01), ("flat",), np.ones((1, 3)))
        >>> model.rms.round(3)
        array([0.316, 0.316, 0.316])
    """

    freqs: np.ndarray
    psd: np.ndarray
    traces: tuple[str, ...] = ()
    trace_rms: np.ndarray | None = None

    def __post_init__(self) -> None:
        freqs = np.asarray(self.freqs, dtype=np.float64)
        psd = np.asarray(self.psd, dtype=np.float64)
        if freqs.ndim != 1 or psd.shape != (len(freqs), 3) or freqs[0] != 0:
            raise ValueError(f"ShakeModel needs freqs (F,) from 0 Hz and psd (F, 3); got "
                             f"{freqs.shape} and {psd.shape}")
        if (psd < 0).any() or not np.isfinite(psd).all():
            raise ValueError("ShakeModel psd must be finite and non-negative")
        object.__setattr__(self, "freqs", freqs)
        object.__setattr__(self, "psd", psd)
        object.__setattr__(self, "traces", tuple(self.traces))
        if self.trace_rms is not None:
            object.__setattr__(self, "trace_rms", np.asarray(self.trace_rms, dtype=np.float64))

    @property
    def rms(self) -> np.ndarray:
        """Expected RMS of ``w`` per camera axis, rad/s: the square root of the PSD's integral."""
        return np.sqrt(_integral(self.psd, self.freqs))

    def sample(self, duration: float, rate_hz: float, rng: np.random.Generator | int,
               scale: float = 1.0) -> GyroLog:
        """A random trace: ``t = k / rate_hz`` over ``[0, duration]``, ``w`` in camera axes;
        ``rng`` a generator or a seed.

        Spectral synthesis: each frequency ``f_k`` of an FFT grid gets a complex Gaussian
        coefficient (uniform phase, Rayleigh amplitude) of mean power ``2 S(f_k) df``, so the
        trace is an exactly Gaussian process whose expected PSD is ``scale**2 * S`` (up to
        ``min(rate_hz / 2, freqs[-1])``). The FFT grid is at least twice the trace long (no
        wrap-around correlation) and at least as fine as ``freqs``, so short traces keep the
        slow components that dominate the variance.

        Example:
            >>> model = ShakeModel(np.linspace(0.0, 5.0, 51), np.full((51, 3), 1e-3))
            >>> a = model.sample(1.0, 100.0, np.random.default_rng(1))
            >>> b = model.sample(1.0, 100.0, np.random.default_rng(1), scale=2.0)
            >>> bool(np.allclose(b.w, 2 * a.w))
            True
        """
        if not (duration >= 0 and rate_hz > 0):
            raise ValueError(f"need duration >= 0 and rate_hz > 0, got {duration}, {rate_hz}")
        n = math.floor(duration * rate_hz * (1 + 1e-12)) + 1
        df_model = float(self.freqs[1] - self.freqs[0])
        m = 2 * math.ceil(max(2 * n, rate_hz / df_model) / 2)
        df = rate_hz / m
        f = np.arange(m // 2 + 1) * df
        s = np.stack([np.interp(f, self.freqs, self.psd[:, a], right=0.0) for a in range(3)], 1)
        s[0] = 0.0  # zero mean
        s[-1] = 0.0  # the Nyquist bin is real-valued; one bin, left out rather than halved
        z = np.random.default_rng(rng).standard_normal((2, len(f), 3))
        coef = (z[0] + 1j * z[1]) * np.sqrt(s * df)  # E|coef|^2 = 2 S df
        w = np.fft.irfft(coef * (m / 2), n=m, axis=0)[:n]
        return GyroLog(np.arange(n) / rate_hz, scale * w, source="shake model",
                       imu_to_camera=np.eye(3))

    def save(self, path: str | Path) -> None:
        """Write the model as JSON (6 significant digits), atomically.

        Example:
            >>> import tempfile
            >>> p = Path(tempfile.mkdtemp()) / "m.json"
            >>> ShakeModel(np.array([0.0, 1.0]), np.ones((2, 3)), ("a",), np.ones((1, 3))).save(p)
            >>> load_shake_model(p).traces
            ('a',)
        """
        def r6(a: np.ndarray) -> list:
            return np.vectorize(lambda v: float(f"{v:.6g}"), otypes=[float])(a).tolist()

        data = {"format": _FORMAT, "freqs_hz": r6(self.freqs), "psd_rad2_s2_hz": r6(self.psd),
                "traces": list(self.traces),
                "trace_rms_rad_s": None if self.trace_rms is None else r6(self.trace_rms)}
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(data, separators=(",", ":")) + "\n")


def load_shake_model(path: str | Path | None = None) -> ShakeModel:
    """Read a :class:`ShakeModel` JSON; by default the one shipped with the package.

    Example:
        >>> load_shake_model().psd.shape[1]
        3
    """
    data = json.loads(Path(path or _DEFAULT_MODEL).read_text())
    if data.get("format") != _FORMAT:
        raise ValueError(f"{path}: not a {_FORMAT} file")
    return ShakeModel(np.array(data["freqs_hz"]), np.array(data["psd_rad2_s2_hz"]),
                      tuple(data["traces"]), data["trace_rms_rad_s"])


def fit_shake_model(logs: Sequence[GyroLog], f_max: float = 80.0, df: float = 0.1,
                    smooth_octaves: float = 1 / 3) -> ShakeModel:
    """Fit a :class:`ShakeModel` to real traces.

    Each trace is taken to camera axes by its ``imu_to_camera``; a trace whose
    ``imu_to_camera`` is ``None`` has unknown axes, and its three axes are pooled (their
    log-PSDs averaged) into every camera axis. Each is resampled to a uniform grid at its own
    median rate (interpolating a 100 Hz trace up to a common rate would attenuate its top
    octave) and its Welch PSD (Hann, segments ``1 / df`` s, half overlap) is interpolated onto
    the common grid ``0, df, ..., f_max`` and smoothed over ``smooth_octaves`` (at least 5
    bins) in log-frequency. Smoothing before taking logs keeps the log-average unbiased: the
    log of a noisy estimate is biased low (by 27 % for the two Welch segments of a 15 s trace).
    A trace's PSD is trusted up to 0.8 of its Nyquist frequency; above, it is continued with the
    shape of the mean of the traces that reach there, so the average does not step where a
    trace drops out. The log-PSDs are averaged across traces: a geometric mean, a typical trace
    rather than one dominated by the strongest.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> t = np.arange(40000) / 200.0
        >>> white = GyroLog(t, rng.normal(0.0, 0.1, (40000, 3)), imu_to_camera=np.eye(3))
        >>> model = fit_shake_model([white], f_max=50.0)
        >>> round(float(np.median(model.psd / (0.1**2 / 100.0))), 1)  # flat: sigma^2 / (fs / 2)
        1.0
    """
    grid = np.arange(round(f_max / df) + 1) * df
    log_psd, trusted, names, rms = [], [], [], []
    for k, log in enumerate(logs):
        if log.imu_to_camera is not None:
            log = to_camera_frame(log, log.imu_to_camera)
        rate = 1.0 / float(np.median(np.diff(log.t)))
        f, p = _welch(resample(log, rate).w, rate, round(rate / df))
        p = np.stack([np.interp(grid[1:], f, p[:, a]) for a in range(3)], axis=1)
        band = grid[1:] <= min(f_max, _TRUSTED_NYQUIST * rate / 2)
        var = _integral(p[band], grid[1:][band])
        if log.imu_to_camera is None:
            p = np.exp(np.log(p).mean(axis=1, keepdims=True)).repeat(3, axis=1)
            var = np.full(3, var.mean())
        log_psd.append(np.log(_smooth_log_f(grid[1:], p, smooth_octaves)))
        trusted.append(grid[1:] <= _TRUSTED_NYQUIST * rate / 2)
        names.append(log.source or f"trace {k}")
        rms.append(np.sqrt(var))
    mean = np.exp(_continue_above_cutoff(np.stack(log_psd), np.stack(trusted)).mean(axis=0))
    psd = np.vstack([mean[:1], mean])  # 0 Hz: flat continuation (sampling zeroes the mean)
    return ShakeModel(grid, psd, tuple(names), np.stack(rms))


def _integral(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Trapezoidal integral along axis 0 (``np.trapezoid`` needs numpy 2)."""
    return ((y[1:] + y[:-1]) * np.diff(x)[:, None]).sum(axis=0) / 2


def _welch(w: np.ndarray, rate: float, nperseg: int) -> tuple[np.ndarray, np.ndarray]:
    from scipy.signal import welch  # scipy.signal is slow to import; only fitting needs it

    return welch(w, fs=rate, nperseg=min(nperseg, len(w)), axis=0)


def _continue_above_cutoff(lp: np.ndarray, trusted: np.ndarray) -> np.ndarray:
    """Replace each trace's untrusted bins by its last trusted value plus the change there of
    the mean over the traces trusted at each bin."""
    if not trusted.any(axis=0).all():
        raise ValueError("no trace reaches the top of the frequency grid; lower f_max")
    mean = np.stack([lp[trusted[:, i], i].mean(axis=0) for i in range(lp.shape[1])])
    out = lp.copy()
    for k in range(len(lp)):
        if trusted[k].all():
            continue
        last = int(np.flatnonzero(trusted[k])[-1])
        out[k, last + 1:] = lp[k, last] + mean[last + 1:] - mean[last]
    return out


def _smooth_log_f(f: np.ndarray, y: np.ndarray, octaves: float) -> np.ndarray:
    """Mean of ``y`` over the bins within ``octaves / 2`` (and at least 2 bins) of each
    frequency of the uniform grid ``f`` (``f > 0``)."""
    half = np.maximum(f * (2 ** (octaves / 2) - 1), 2.0 * (f[1] - f[0]))
    lo = np.searchsorted(f, f - half * (1 + 1e-9), side="left")
    hi = np.searchsorted(f, f + half * (1 + 1e-9), side="right")
    c = np.vstack([np.zeros((1, y.shape[1])), np.cumsum(y, axis=0)])
    return (c[hi] - c[lo]) / (hi - lo)[:, None]
