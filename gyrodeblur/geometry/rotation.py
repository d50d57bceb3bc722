"""SO(3) and camera orientation from a gyro log.

``R(t)`` is the camera-to-world rotation, integrated from body-frame angular velocity as
``R(t + dt) = R(t) @ exp([w dt]x)`` with the exact exponential map (CONVENTIONS, Orientation).
Between two gyro samples the rate is held at the mean of the two samples, so the rotation at
any time inside an interval is exact for that model; queries are vectorised so that the
per-row, per-sample times of many frames (millions of times) cost a few array operations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gyrodeblur.errors import InputError


def hat(v: np.ndarray) -> np.ndarray:
    """Skew-symmetric matrices ``[v]x`` of vectors ``(..., 3) -> (..., 3, 3)``.

    Example:
        >>> hat(np.array([1.0, 2.0, 3.0])) @ np.array([0.0, 0.0, 1.0])
        array([ 2., -1.,  0.])
    """
    v = np.asarray(v, dtype=np.float64)
    if v.shape[-1:] != (3,):
        raise ValueError(f"hat needs vectors (..., 3), got shape {v.shape}")
    out = np.zeros(v.shape[:-1] + (3, 3))
    out[..., 0, 1], out[..., 0, 2] = -v[..., 2], v[..., 1]
    out[..., 1, 0], out[..., 1, 2] = v[..., 2], -v[..., 0]
    out[..., 2, 0], out[..., 2, 1] = -v[..., 1], v[..., 0]
    return out


def exp_so3(phi: np.ndarray) -> np.ndarray:
    """Exponential map: rotation vectors ``(..., 3)`` to rotation matrices ``(..., 3, 3)``.

    Rodrigues' formula, with Taylor series below 1e-4 rad so that tiny angles keep full
    float64 precision.

    Example:
        >>> R = exp_so3(np.array([0.0, 0.0, np.pi / 2]))
        >>> np.round(R @ [1.0, 0.0, 0.0], 12)
        array([0., 1., 0.])
    """
    phi = np.asarray(phi, dtype=np.float64)
    if phi.shape[-1:] != (3,):
        raise ValueError(f"rotation vectors must be (..., 3), got {phi.shape}")
    theta2 = np.einsum("...i,...i->...", phi, phi)
    theta = np.sqrt(theta2)
    small = theta < 1e-4
    safe = np.where(small, 1.0, theta)
    a = np.where(small, 1.0 - theta2 / 6.0 + theta2**2 / 120.0, np.sin(safe) / safe)
    b = np.where(small, 0.5 - theta2 / 24.0 + theta2**2 / 720.0,
                 (1.0 - np.cos(safe)) / (safe * safe))
    # I + a K + b K^2 with K^2 = phi phi^T - theta^2 I: elementwise, no stacked matmul.
    R = b[..., None, None] * (phi[..., :, None] * phi[..., None, :]) + a[..., None, None] * hat(phi)
    diagonal = np.einsum("...ii->...i", R)  # a writable view
    diagonal += (1.0 - b * theta2)[..., None]
    return R


def log_so3(R: np.ndarray) -> np.ndarray:
    """Logarithm map: rotation matrices ``(..., 3, 3)`` to rotation vectors ``(..., 3)``.

    Accurate for all angles in ``[0, pi]`` (near ``pi`` the axis comes from the symmetric
    part, where the antisymmetric part vanishes).

    Example:
        >>> np.round(log_so3(exp_so3(np.array([0.1, -0.2, 0.3]))), 12)
        array([ 0.1, -0.2,  0.3])
    """
    R = np.asarray(R, dtype=np.float64)
    if R.shape[-2:] != (3, 3):
        raise ValueError(f"rotation matrices must be (..., 3, 3), got {R.shape}")
    cos = (np.trace(R, axis1=-2, axis2=-1) - 1.0) / 2.0
    vee = np.stack([R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0],
                    R[..., 1, 0] - R[..., 0, 1]], axis=-1)
    sin = 0.5 * np.linalg.norm(vee, axis=-1)
    theta = np.arctan2(sin, cos)  # precise at every angle, unlike arccos near 0 and pi
    small, near_pi = theta < 1e-4, theta > np.pi - 1e-3
    # sin is 0 at pi too, where the axis comes from below instead.
    scale = np.where(small, 0.5 + theta**2 / 12.0,
                     theta / (2.0 * np.where(small | near_pi, 1.0, sin)))
    out = scale[..., None] * vee
    if np.any(near_pi):
        # R + I = 2 a a^T (1 - cos) + ...: take the largest column of the symmetric part.
        Rp = R[near_pi]
        S = (Rp + np.swapaxes(Rp, -1, -2)) / 2.0 - cos[near_pi, None, None] * np.eye(3)
        col = np.argmax(np.diagonal(S, axis1=-2, axis2=-1), axis=-1)
        axis = np.take_along_axis(S, col[:, None, None], axis=-1)[..., 0]
        axis /= np.linalg.norm(axis, axis=-1, keepdims=True)
        # Pick the axis sign that agrees with the (small) antisymmetric part.
        sign = np.where(np.einsum("...i,...i->...", axis, vee[near_pi]) < 0, -1.0, 1.0)
        out[near_pi] = (sign * theta[near_pi])[:, None] * axis
    return out


@dataclass(frozen=True)
class Orientation:
    """Camera-to-world rotations ``R(t)`` integrated from a gyro log in camera axes.

    Attributes:
        t: ``(N,)`` sample times, seconds on the gyro clock, strictly increasing.
        R: ``(N, 3, 3)`` orientation at each sample time, ``R[0] = I``.
        w: ``(N - 1, 3)`` angular velocity held over each interval ``[t[k], t[k+1])``.

    Example:
        >>> o = integrate(np.array([0.0, 1.0]), np.array([[0.0, 0.0, 0.5], [0.0, 0.0, 0.5]]))
        >>> np.round(log_so3(o.relative(np.array(0.0), np.array(1.0))), 12)
        array([0. , 0. , 0.5])
    """

    t: np.ndarray
    R: np.ndarray
    w: np.ndarray

    def at(self, times: np.ndarray) -> np.ndarray:
        """Orientation at arbitrary times ``(...) -> (..., 3, 3)`` (exact within an interval).

        Raises:
            InputError: a time lies outside the log.
            ValueError: a time is NaN.
        """
        times = np.asarray(times, dtype=np.float64)
        # min and max are NaN where any time is: "not inside" catches it without another pass.
        if times.size and not (times.min() >= self.t[0] and times.max() <= self.t[-1]):
            if np.isnan(times).any():
                raise ValueError("times: NaN where a time was expected")
            raise InputError(None, f"gyro covers {self.t[0]:.6f} to {self.t[-1]:.6f} s but times "
                                   f"{times.min():.6f} to {times.max():.6f} s were asked for")
        k = np.clip(np.searchsorted(self.t, times, side="right") - 1, 0, len(self.w) - 1)
        dt = times - self.t[k]
        return self.R[k] @ exp_so3(self.w[k] * dt[..., None])

    def relative(self, b: np.ndarray, a: np.ndarray) -> np.ndarray:
        """``R(b)^T R(a)``: the rotation that carries rays seen at time ``a`` to time ``b``.

        ``H(b <- a) = K @ relative(b, a) @ K^-1`` (CONVENTIONS). ``a`` and ``b`` broadcast.
        """
        # Each time is looked up once; the product broadcasts (rows' reference times against
        # all samples of each row, say). ``a`` first: the wider span, for the error message.
        at_a = self.at(a)
        return np.swapaxes(self.at(b), -1, -2) @ at_a


_INTEGRATION_CHUNK = 1 << 16  # gyro intervals whose steps are computed together


def integrate(t: np.ndarray, w: np.ndarray) -> Orientation:
    """Integrate body-frame angular velocity (rad/s, camera axes) into an :class:`Orientation`.

    Each interval holds the mean of its two end samples and is integrated with the exact
    exponential map (never first-order Euler); rotations are re-orthonormalised so that
    long logs do not drift off SO(3).

    Example:
        >>> t = np.linspace(0.0, 1.0, 101)
        >>> o = integrate(t, np.tile([0.0, 0.3, 0.0], (101, 1)))
        >>> round(float(log_so3(o.at(np.array(0.5)))[1]), 12)
        0.15
    """
    t = np.asarray(t, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    if t.ndim != 1 or w.shape != (len(t), 3) or len(t) < 2:
        raise ValueError(f"need t (N,) and w (N, 3) with N >= 2, got {t.shape} and {w.shape}")
    if not (np.isfinite(t).all() and np.isfinite(w).all()) or np.any(np.diff(t) <= 0):
        raise ValueError("need finite values and strictly increasing t")
    w_mid = 0.5 * (w[1:] + w[:-1])
    dt = np.diff(t)
    R = np.empty((len(t), 3, 3))
    R[0] = np.eye(3)
    # The steps a chunk at a time: all at once, an hour's log at 1 kHz took 1 GB more.
    for start in range(0, len(dt), _INTEGRATION_CHUNK):
        chunk = slice(start, start + _INTEGRATION_CHUNK)
        for k, step in enumerate(exp_so3(w_mid[chunk] * dt[chunk, None]), start):
            R[k + 1] = R[k] @ step
            if k % 1024 == 1023:
                u, _, vt = np.linalg.svd(R[k + 1])
                R[k + 1] = u @ vt
    return Orientation(t=t, R=R, w=w_mid)
