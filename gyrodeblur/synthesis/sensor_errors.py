"""Gyro sensor errors for training: what the device writes and believes, not what happened.

DeepGyro (Mustaniemi et al., WACV 2019) trains on blur fields computed from deliberately
wrong gyro data so that the network learns not to trust them blindly. Here that is done on
the gyro itself: the blur is rendered from the true motion and camera, and the network is
given the log and camera that :meth:`SensorErrors.apply` returns (time delay, bias, scale
error, white noise, wrong readout time).

Example:
    >>> from gyrodeblur.geometry.camera import Camera
    >>> rng = np.random.default_rng(0)
    >>> errors = SensorErrors.sample(SensorErrorRanges(), rng)
    >>> log = GyroLog(np.arange(5) / 100.0, np.zeros((5, 3)))
    >>> camera = Camera(64, 48, 50.0, 50.0, 31.5, 23.5, readout_time=0.02)
    >>> seen, believed = errors.apply(log, camera, rng)
    >>> bool(np.allclose(seen.t - log.t, errors.delay))
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from gyrodeblur.geometry.camera import Camera
from gyrodeblur.geometry.gyro import MAX_BIAS, GyroLog, shifted

__all__ = ["SensorErrorRanges", "SensorErrors"]


@dataclass(frozen=True)
class SensorErrorRanges:
    """Half-widths of the uniform distributions that :meth:`SensorErrors.sample` draws from.

    Defaults are for a phone MEMS gyro used without per-device calibration:

    * ``delay`` 10 ms: camera and gyro timestamps of phones come from a shared clock but with a
      device-dependent offset, which online calibration (Karpenko et al. 2011, Jia & Evans
      2014) finds to be a few to tens of milliseconds.
    * ``bias`` 0.02 rad/s: the zero-rate level of phone IMUs is about +-1 deg/s = 0.017 rad/s
      (ST LSM6DSO datasheet); Android's drift compensation usually leaves less.
    * ``scale`` 2 %: sensitivity tolerance about +-1 % after factory trimming (same datasheet)
      plus about as much cross-axis sensitivity.
    * ``noise`` 0.005 rad/s: rate noise density 2.8-3.8 mdps/sqrt(Hz) (ST LSM6DSV, LSM6DSO) over
      a 200 Hz band is 0.001 rad/s; five times that covers older and noisier phone gyros.
    * ``readout`` 5 %: readout times taken from lens profiles or sensor-mode tables rather than
      calibrated per device (an assumption, not a measured figure).

    Attributes:
        delay: seconds; the delay is drawn from ``U(-delay, delay)``.
        bias: rad/s; each axis gets an offset from ``U(-bias, bias)``.
        scale: relative; each axis is multiplied by ``1 + U(-scale, scale)``.
        noise: rad/s; the white-noise std is drawn from ``U(0, noise)``.
        readout: relative; the believed readout time is ``t_r * (1 + U(-readout, readout))``.
    """

    delay: float = 0.010
    bias: float = 0.02
    scale: float = 0.02
    noise: float = 0.005
    readout: float = 0.05

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            high, meaning = _LIMITS.get(name, (math.inf, ""))
            if not 0 <= value < high:
                raise ValueError(f"{name}: {value} is out of range: a finite number >= 0"
                                 + (f", below {high} ({meaning})" if meaning else ""))


# Relative errors must leave a positive gain and readout time.
_LIMITS = {"bias": (MAX_BIAS, "rad/s: MEMS gyro biases are well below it"),
           "scale": (1.0, "a gain 1 - scale stays positive"),
           "readout": (1.0, "a readout time 1 - readout times the true stays positive")}


@dataclass(frozen=True)
class SensorErrors:
    """One draw of sensor errors.

    Attributes:
        delay: seconds by which the written gyro timestamps are late: the true rate at time
            ``t`` is written with timestamp ``t + delay``. A positive delay makes the log show
            each movement ``delay`` seconds after it happened relative to the frames, while the
            device keeps believing its ``time_offset``.
        bias: ``(3,)`` rad/s added to every sample, per axis of the log.
        scale: ``(3,)`` relative gain errors: each axis of ``w`` is multiplied by
            ``1 + scale``.
        noise: std in rad/s of i.i.d. Gaussian noise added to each sample and axis.
        readout: relative error of the readout time the device believes:
            ``t_r * (1 + readout)``.
    """

    delay: float = 0.0
    bias: np.ndarray = field(default_factory=lambda: np.zeros(3))
    scale: np.ndarray = field(default_factory=lambda: np.zeros(3))
    noise: float = 0.0
    readout: float = 0.0

    def __post_init__(self) -> None:
        for name in ("bias", "scale"):
            object.__setattr__(self, name, np.array(getattr(self, name), np.float64))
            if np.shape(getattr(self, name)) != (3,):
                raise ValueError(f"{name} must have one value per axis, shape (3,), got "
                                 f"shape {np.shape(getattr(self, name))}")
        if not 0 <= self.noise < math.inf:
            raise ValueError(f"noise must be a finite std >= 0, got {self.noise}")
        values = (self.delay, self.readout, *np.ravel(self.bias), *np.ravel(self.scale))
        if not all(math.isfinite(v) for v in values):
            raise ValueError("sensor errors must be finite")

    @staticmethod
    def sample(ranges: SensorErrorRanges, rng: np.random.Generator) -> SensorErrors:
        """Draw errors uniformly within ``ranges``.

        Example:
            >>> e = SensorErrors.sample(SensorErrorRanges(delay=0.0), np.random.default_rng(0))
            >>> e.delay, e.bias.shape
            (0.0, (3,))
        """
        u = rng.uniform(-1.0, 1.0, 9)
        return SensorErrors(delay=float(ranges.delay * u[0]), bias=ranges.bias * u[1:4],
                            scale=ranges.scale * u[4:7], noise=float(ranges.noise * abs(u[7])),
                            readout=float(ranges.readout * u[8]))

    @staticmethod
    def none() -> SensorErrors:
        """No error: :meth:`apply` returns its inputs unchanged.

        Example:
            >>> SensorErrors.none().noise
            0.0
        """
        return SensorErrors()

    def describe(self) -> dict[str, float | list[float]]:
        """The draw as plain JSON-ready numbers."""
        return {"delay": self.delay, "bias": self.bias.tolist(), "scale": self.scale.tolist(),
                "noise": self.noise, "readout": self.readout}

    def apply(self, log: GyroLog, camera: Camera,
              rng: np.random.Generator) -> tuple[GyroLog, Camera]:
        """The log the device would have written and the camera it believes in.

        ``w' = (1 + scale) * w + bias + noise`` per axis, timestamps ``t + delay``, and
        ``readout_time * (1 + readout)``; ``rng`` draws the noise (not used when it is 0).

        Example:
            >>> from gyrodeblur.geometry.camera import Camera
            >>> e = SensorErrors(bias=np.array([0.1, 0.0, 0.0]), scale=np.array([0.0, 1.0, 0.0]))
            >>> log, _ = e.apply(GyroLog(np.array([0.0, 0.01]), np.ones((2, 3))),
            ...                  Camera(4, 3, 2.0, 2.0, 1.5, 1.0), np.random.default_rng(0))
            >>> log.w
            array([[1.1, 2. , 1. ],
                   [1.1, 2. , 1. ]])
        """
        w = log.w * (1.0 + np.asarray(self.scale)) + np.asarray(self.bias)
        if self.noise > 0:
            w = w + rng.normal(0.0, self.noise, w.shape)
        seen = shifted(replace(log, w=w), self.delay)
        return seen, camera.replace(readout_time=camera.readout_time * (1.0 + self.readout))
