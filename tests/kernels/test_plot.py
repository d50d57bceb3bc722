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
    np.testing.assert_array_equal(draw_kernels(traj, spacing=48.0, gain=1.0), pic)
    with pytest.raises(ValueError, match="spacing is a grid step in pixels, 1 or more; got 0"):
        draw_kernels(traj, spacing=0)


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


def test_a_streak_is_the_path_a_point_light_leaves_in_the_blurred_frame():
    # Each pixel averages the sharp image 12 px below, then 12 px right of it: a light at
    # (48, 48) streaks up, then left. Blurred along the same kernels, the light and the
    # picture's streak lie up and to the left of it, blue first.
    from gyrodeblur.synthesis.blur import blur_image

    T, H, W = 9, 96, 96
    traj = np.zeros((T, 2, H, W), np.float32)
    traj[:, 1] = np.array([0, 3, 6, 9, 12, 12, 12, 12, 12])[:, None, None]
    traj[:, 0] = np.array([0, 0, 0, 0, 0, 3, 6, 9, 12])[:, None, None]
    sharp = np.zeros((H, W, 3), np.float32)
    sharp[47:50, 47:50] = 1.0  # a light at the grid point of spacing 96
    lit = np.argwhere(blur_image(sharp, traj)[..., 1] > 0.02)
    pic = draw_kernels(traj, spacing=96, gain=1.0)
    drawn = np.argwhere((pic != pic[2, W - 3]).any(axis=2)[:60])  # above the legend
    for where in (lit, drawn):
        assert (where.min(axis=0) <= [38, 38]).all() and (where.max(axis=0) <= [51, 51]).all()
    b, _, r = pic[42, 48].astype(int)[::-1]  # going up: the start of the exposure
    assert b > r, pic[42, 48]
    b, _, r = pic[36, 40].astype(int)[::-1]  # going left: its end
    assert r > b, pic[36, 40]


def test_a_narrow_picture_wraps_its_legend_at_a_legible_size():
    from gyrodeblur.kernels.plot import _legend

    entries = ["max blur 12.0 px, streaks x1.3",
               "a light's path: blue at the start, yellow at the end, white dot at mid-exposure"]
    box_h, box_w = _legend(np.zeros((480, 270, 3), np.uint8), entries)
    # Rows of text at OpenCV scale 0.4 are 15 px apart: wrapped into three, not shrunk.
    assert box_w <= 270 and box_h == 3 * 15 + 8
    # On a small picture the numbers alone, at that size where they fit: one row on 192x108.
    box_h, box_w = _legend(np.zeros((108, 192, 3), np.uint8), entries)
    assert box_h == 15 + 8 and box_w <= 192
    # Wrapped they would hide too much of a smaller one: one row, shrunk.
    box_h, _ = _legend(np.zeros((120, 160, 3), np.uint8), entries)
    assert box_h <= 30
