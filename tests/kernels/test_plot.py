import numpy as np
import pytest

from gyrodeblur.kernels.plot import draw_kernels


def test_streaks_are_drawn_where_the_trajectory_goes():
    T, H, W = 5, 96, 96
    traj = np.zeros((T, 2, H, W), np.float32)
    traj[:, 0] = np.linspace(-10, 10, T)[:, None, None]  # horizontal streaks of 20 px
    pic = draw_kernels(traj, spacing=48, gain=1.0)
    background = pic[2, 2].copy()
    y, x = 24, 24  # first grid point
    assert (pic[y, x + 8] != background).any() and (pic[y, x - 8] != background).any()
    assert (pic[y + 8, x] == background).all()  # nothing drawn across the streak


def test_picture_keeps_frame_visible_and_size():
    frame = np.random.default_rng(0).random((120, 160, 3)).astype(np.float32)
    pic = draw_kernels(np.zeros((3, 2, 120, 160), np.float32), frame)
    assert pic.shape == (120, 160, 3) and pic.dtype == np.uint8
    assert np.corrcoef(pic[..., 0].ravel(), frame[..., 0].ravel())[0, 1] > 0.5


def test_integer_background_is_its_unit_range_twin_and_sizes_must_agree():
    frame = np.random.default_rng(1).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    traj = np.zeros((3, 2, 40, 60), np.float32)
    np.testing.assert_array_equal(draw_kernels(traj, frame), draw_kernels(traj, frame / 255.0))
    with pytest.raises(ValueError, match="image of 60x20 under kernels of 60x40"):
        draw_kernels(traj, frame[:20])


def test_kernels_without_a_ray_get_no_streak_and_leave_the_others_alone():
    T, H, W = 5, 96, 96
    traj = np.zeros((T, 2, H, W), np.float32)
    traj[:, 0] = np.linspace(-10, 10, T)[:, None, None]
    holed = traj.copy()
    holed[:, :, 24, 24] = np.nan  # the first grid point
    pic, holed_pic = draw_kernels(traj, spacing=48), draw_kernels(holed, spacing=48)
    background = pic[2, 2].copy()
    assert (holed_pic[14:35, 8:41] == background).all()  # nothing drawn there
    np.testing.assert_array_equal(holed_pic[48:], pic[48:])  # the same gain elsewhere
