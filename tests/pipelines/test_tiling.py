"""Tiles: cores partition the image, weights ramp as documented, seams blend as weighted means."""

from __future__ import annotations

import numpy as np
import pytest

from gyrodeblur.pipelines.tiling import ALIGN, Tile, blend_weights, run_tiled, tile_grid


@pytest.mark.parametrize(("height", "width", "tile", "halo"), [
    (50, 70, 32, 16), (300, 1000, 128, 40), (17, 333, 64, 0), (64, 64, 64, 8)])
def test_cores_partition_the_image_on_the_alignment_grid(height, width, tile, halo):
    covered = np.zeros((height, width), int)
    for t in tile_grid(height, width, tile, halo):
        covered[t.cy0:t.cy1, t.cx0:t.cx1] += 1
        assert t.cy0 % ALIGN == 0 and t.cx0 % ALIGN == 0
        # The window reaches the halo (rounded up to ALIGN) beyond the core, within the image.
        reach = -(-halo // ALIGN) * ALIGN
        assert (t.y0, t.x0) == (max(0, t.cy0 - reach), max(0, t.cx0 - reach))
        assert (t.y1, t.x1) == (min(height, t.cy1 + reach), min(width, t.cx1 + reach))
    np.testing.assert_array_equal(covered, 1)


def test_weights_are_one_on_the_core_and_ramp_down_over_the_feather():
    t = Tile(y0=0, y1=1, x0=0, x1=40, cy0=0, cy1=1, cx0=10, cx1=20)
    w = blend_weights(t, feather=4)[0]
    # Distance d outside the core weighs 1 - d / (feather + 1): 0.8, 0.6, 0.4, 0.2, then 0.
    expected = np.zeros(40, np.float32)
    expected[10:20] = 1
    for d in range(1, 5):
        expected[10 - d] = expected[19 + d] = 1 - d / 5
    np.testing.assert_allclose(w, expected, atol=1e-7)


def test_a_seam_is_the_weighted_mean_of_the_tiles_that_reach_it():
    # Each tile returns its own constant: inside a core only that tile's weight is 1, so the
    # core keeps its value; across a seam the output is the closed-form weighted mean.
    height, width, tile, halo, feather = 16, 64, 32, 16, 4
    tiles = tile_grid(height, width, tile, halo)
    assert [(t.cx0, t.cx1) for t in tiles] == [(0, 32), (32, 64)]
    value = {t.cx0: float(t.cx0 + 1) for t in tiles}  # 1 left, 33 right
    out = run_tiled(lambda t: np.full((t.y1 - t.y0, t.x1 - t.x0, 1), value[t.cx0], np.float32),
                    height, width, tile, halo, feather)[0, :, 0]
    for x in range(width):
        left = float(np.clip(1 - max(0, x - 31) / (feather + 1), 0, 1))
        right = float(np.clip(1 - max(0, 32 - x) / (feather + 1), 0, 1))
        assert out[x] == pytest.approx((left * 1 + right * 33) / (left + right), abs=1e-5)
    assert out[27] == 1 and out[36] == 33  # beyond the feather: one tile alone
    told = []
    ones = run_tiled(lambda t: np.ones((t.y1 - t.y0, t.x1 - t.x0, 3), np.float32),
                     height, width, tile, halo, feather, progress=lambda *n: told.append(n))
    np.testing.assert_array_equal(ones, 1)
    assert told == [(1, 2), (2, 2)]
