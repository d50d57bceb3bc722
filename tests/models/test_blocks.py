import torch

from gyrodeblur.models.blocks import box_mean, local_mean


def test_box_mean_is_the_mean_of_the_pixels_inside_the_window():
    x = torch.randn(1, 2, 7, 9, dtype=torch.float64)
    r = 2
    expected = torch.empty_like(x)
    for i in range(7):
        for j in range(9):
            window = x[..., max(0, i - r):i + r + 1, max(0, j - r):j + r + 1]
            expected[..., i, j] = window.mean((-2, -1))
    torch.testing.assert_close(box_mean(x, r), expected)


def test_local_mean_of_a_tile_at_a_block_multiple_equals_the_whole_image_inside():
    # Tiles whose origin is a multiple of q = radius // 4 see the same block means, so the
    # statistic is the same away from the tile's own border.
    x = torch.randn(1, 3, 96, 128)
    radius, q = 16, 4
    whole = local_mean(x, radius)
    tile = local_mean(x[..., 8 * q:, 4 * q:], radius)
    margin = radius + 2 * q  # the window plus the bilinear reach of the block grid
    torch.testing.assert_close(tile[..., margin:-margin, margin:-margin],
                               whole[..., 8 * q + margin:-margin, 4 * q + margin:-margin])
    # The block statistic approximates the exact window mean of a smooth image.
    smooth = torch.linspace(0, 1, 128).expand(1, 1, 96, 128)
    error = local_mean(smooth, radius) - box_mean(smooth, radius)
    assert error[..., 24:-24, 24:-24].abs().max() < 0.01


def test_local_mean_of_a_ramp_is_centred_at_any_size():
    # A linear ramp's window mean is its value at the centre, whatever the width (q = 8 here;
    # widths that are not multiples of q once stretched the block grid by up to 3.5 px).
    for width in (112, 116, 148, 149):
        ramp = torch.arange(width, dtype=torch.float64).expand(1, 1, 40, width)
        mean = local_mean(ramp, 32)
        inside = slice(48, width - 48)  # the window plus the bilinear reach of the blocks
        torch.testing.assert_close(mean[0, 0, 20, inside], ramp[0, 0, 20, inside])
