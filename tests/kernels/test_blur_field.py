import numpy as np
import pytest

from gyrodeblur.kernels.blur_field import blur_field


def test_blur_field_is_end_minus_start_with_nonnegative_u():
    rng = np.random.default_rng(0)
    traj = rng.normal(size=(6, 2, 8, 9)).astype(np.float32)
    field = blur_field(traj)
    d = traj[-1] - traj[0]
    assert (field[0] >= 0).all()
    # Same undirected segment: equal to d or to -d at every pixel.
    same = np.isclose(field, d).all(0) | np.isclose(field, -d).all(0)
    assert same.all()


def test_blur_field_of_symmetric_trajectory_is_twice_the_end():
    traj = np.zeros((3, 2, 1, 1), np.float32)
    traj[0, :, 0, 0], traj[2, :, 0, 0] = (1.0, -2.0), (-1.0, 2.0)
    np.testing.assert_array_equal(blur_field(traj)[:, 0, 0], [2.0, -4.0])


def test_a_single_sample_is_not_a_trajectory():
    with pytest.raises(ValueError, match=r"\(T, 2, H, W\)"):
        blur_field(np.zeros((2, 4, 5), np.float32))
