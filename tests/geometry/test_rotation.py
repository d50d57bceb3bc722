import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import solve_ivp
from scipy.spatial.transform import Rotation

from gyrodeblur.errors import InputError
from gyrodeblur.geometry.gyro import GyroLog
from gyrodeblur.geometry.rotation import exp_so3, hat, integrate, log_so3

vectors = st.lists(st.floats(-3.0, 3.0), min_size=3, max_size=3).map(np.array)


@given(vectors)
@settings(max_examples=200, deadline=None)
def test_exp_matches_scipy_and_log_inverts(phi):
    R = exp_so3(phi)
    np.testing.assert_allclose(R, Rotation.from_rotvec(phi).as_matrix(), atol=1e-12)
    if np.linalg.norm(phi) < np.pi - 1e-6:
        np.testing.assert_allclose(log_so3(R), phi, atol=1e-9)


def test_log_near_pi_and_tiny_angles():
    axis = np.array([1.0, 2.0, -2.0]) / 3
    for phi in ([np.pi - 1e-7, 0, 0], [0, 2.0, 2.0 - 1e-9], [1e-9, -2e-9, 3e-9],
                -(np.pi - 1e-4) * axis, -(np.pi - 1e-7) * axis, (np.pi - 1e-9) * axis):
        phi = np.array(phi)
        phi = phi if np.linalg.norm(phi) < np.pi else phi / np.linalg.norm(phi) * (np.pi - 1e-6)
        np.testing.assert_allclose(exp_so3(log_so3(exp_so3(phi))), exp_so3(phi), atol=1e-9)
        # Below pi the rotation vector is unique: scipy's, and the one it came from.
        expected = Rotation.from_matrix(exp_so3(phi)).as_rotvec()
        np.testing.assert_allclose(log_so3(exp_so3(phi)), expected, atol=1e-6)
        np.testing.assert_allclose(log_so3(exp_so3(phi)), phi, atol=1e-6)
    # At pi exactly, either of the two opposite vectors.
    for axis_at_pi in (np.array([1.0, 0.0, 0.0]), axis):
        rotation = 2 * np.outer(axis_at_pi, axis_at_pi) - np.eye(3)  # a half turn about it
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no division by its zero sine on the way
            got = log_so3(rotation)
        assert min(np.abs(got - np.pi * axis_at_pi).max(),
                   np.abs(got + np.pi * axis_at_pi).max()) < 1e-6


def test_wrong_shapes_are_named():
    with pytest.raises(ValueError, match=r"rotation vectors must be \(\.\.\., 3\), got \(2,\)"):
        exp_so3(np.zeros(2))
    with pytest.raises(ValueError, match=r"matrices must be \(\.\.\., 3, 3\), got \(4, 3\)"):
        log_so3(np.zeros((4, 3)))


def test_hat_is_cross_product():
    a, b = np.array([0.3, -1.0, 2.0]), np.array([1.5, 0.2, -0.7])
    np.testing.assert_allclose(hat(a) @ b, np.cross(a, b))


def test_constant_rate_closed_form():
    w = np.array([0.4, -1.1, 2.3])
    t = np.sort(np.random.default_rng(0).uniform(0, 2, 300))
    orientation = integrate(t, np.tile(w, (len(t), 1)))
    q = np.linspace(t[0], t[-1], 1000)
    np.testing.assert_allclose(orientation.at(q), exp_so3(w * (q - t[0])[:, None]), atol=1e-10)


def test_constant_rate_closed_form_over_a_long_log_at_epoch_times():
    # 150 000 samples: the integration's chunks of steps join without a step lost or doubled.
    w = np.array([0.4, -1.1, 2.3])
    t = 2.0**30 + np.arange(150_001) / 8192  # Unix-epoch seconds, exact in float64
    orientation = integrate(t, np.tile(w, (len(t), 1)))
    k = np.array([1, 65_535, 65_536, 65_537, 131_072, 131_073, 150_000])
    np.testing.assert_allclose(orientation.R[k], exp_so3(w * (t[k] - t[0])[:, None]), atol=1e-9)


def test_matches_ode_integration_of_varying_rate():
    # dR/dt = R [w(t)]x with w(t) the interval means: solved by an adaptive ODE solver.
    rng = np.random.default_rng(1)
    t = np.cumsum(rng.uniform(0.002, 0.004, 200))
    w = np.cumsum(rng.normal(0, 0.5, (200, 3)), axis=0)
    orientation = integrate(t, w)
    w_mid = (w[1:] + w[:-1]) / 2

    def rhs(time, r):
        k = min(np.searchsorted(t, time, side="right") - 1, len(w_mid) - 1)
        return (r.reshape(3, 3) @ hat(w_mid[k])).ravel()

    sol = solve_ivp(rhs, (t[0], t[-1]), np.eye(3).ravel(), rtol=1e-11, atol=1e-12,
                    t_eval=[t[50], t[-1]], max_step=5e-4)
    np.testing.assert_allclose(orientation.at(np.array(t[50])), sol.y[:, 0].reshape(3, 3),
                               atol=1e-7)
    np.testing.assert_allclose(orientation.at(np.array(t[-1])), sol.y[:, 1].reshape(3, 3),
                               atol=1e-7)


def test_relative_rotation_composes_and_inverts():
    rng = np.random.default_rng(2)
    t = np.linspace(0, 1, 400)
    orientation = integrate(t, rng.normal(0, 1, (400, 3)))
    a, b, c = 0.13, 0.57, 0.91
    rel = orientation.relative
    np.testing.assert_allclose(rel(c, b) @ rel(b, a), rel(c, a), atol=1e-12)
    np.testing.assert_allclose(rel(a, b) @ rel(b, a), np.eye(3), atol=1e-12)
    np.testing.assert_allclose(rel(a, a), np.eye(3), atol=1e-15)


def test_vectorised_queries_keep_shape_and_stay_rotations():
    t = np.linspace(0, 10, 4001)
    orientation = integrate(t, np.random.default_rng(3).normal(0, 2, (4001, 3)))
    R = orientation.at(np.random.default_rng(4).uniform(0, 10, (9, 1080)))
    assert R.shape == (9, 1080, 3, 3)
    np.testing.assert_allclose(R @ np.swapaxes(R, -1, -2), np.broadcast_to(np.eye(3), R.shape),
                               atol=1e-9)


def test_query_outside_log_is_refused():
    orientation = integrate(np.array([0.0, 1.0]), np.zeros((2, 3)))
    with pytest.raises(InputError, match="gyro covers"):
        orientation.at(np.array([0.5, 1.5]))
    with pytest.raises(ValueError, match="times: NaN"):  # not a NaN rotation
        orientation.relative(np.array([0.5]), np.array([np.nan, 0.2]))


@pytest.mark.parametrize("spoil", ["nan", "unsorted"])
def test_integrate_refuses_nan_and_unsorted_times(spoil):
    t, w = np.linspace(0.0, 1.0, 5), np.zeros((5, 3))
    if spoil == "nan":
        w[2, 1] = np.nan
    else:
        t[[1, 2]] = t[[2, 1]]
    with pytest.raises(ValueError, match="strictly increasing"):
        integrate(t, w)
    with pytest.raises(ValueError, match="strictly increasing"):
        GyroLog(t, w)


@pytest.mark.parametrize("shape", [(4,), (2,), (5, 2)])
def test_hat_refuses_what_is_not_3_vectors(shape):
    with pytest.raises(ValueError, match=r"hat needs vectors \(\.\.\., 3\)"):
        hat(np.ones(shape))
