"""Spatial tiles with overlap and blending, so that any image size fits in bounded memory.

The image is cut into cores (a partition, each side at most ``tile`` pixels); each core is
processed with ``halo`` pixels of context around it and written back with a weight that is 1
on the core and falls linearly to 0 over ``feather`` pixels into the halo, normalised by the
sum of the weights. With a halo wider than the receptive field of the restoration (plus the
feather), tiled output equals whole-image output; the feather hides what is left.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: Tile origins are multiples of this: the nets' downsampling and pooling grids then line up
#: with the whole image's (see ``gyrodeblur.models.blocks.local_mean``).
ALIGN = 16


@dataclass(frozen=True)
class Tile:
    """A window ``[y0, y1) x [x0, x1)`` processed for the core ``[cy0, cy1) x [cx0, cx1)``."""

    y0: int
    y1: int
    x0: int
    x1: int
    cy0: int
    cy1: int
    cx0: int
    cx1: int


def _cuts(length: int, tile: int) -> list[int]:
    n = -(-length // tile)
    inner = [min(length, round(k * length / n / ALIGN) * ALIGN) for k in range(1, n)]
    return [0, *sorted(set(inner) - {0, length}), length]


def tile_grid(height: int, width: int, tile: int, halo: int) -> list[Tile]:
    """Tiles covering ``height x width``: cores of at most ``tile`` (about) pixels a side,
    windows reaching ``halo`` pixels (rounded up to ``ALIGN``) beyond them.

    Example:
        >>> [(t.x0, t.x1, t.cx0, t.cx1) for t in tile_grid(10, 100, 64, 16)]
        [(0, 64, 0, 48), (32, 100, 48, 100)]
        >>> len(tile_grid(10, 100, 128, 16))
        1
    """
    halo = -(-halo // ALIGN) * ALIGN
    ys, xs = _cuts(height, tile), _cuts(width, tile)
    return [Tile(max(0, cy0 - halo), min(height, cy1 + halo), max(0, cx0 - halo),
                 min(width, cx1 + halo), cy0, cy1, cx0, cx1)
            for cy0, cy1 in zip(ys, ys[1:], strict=False)
            for cx0, cx1 in zip(xs, xs[1:], strict=False)]


def _ramp(lo: int, hi: int, core_lo: int, core_hi: int, feather: int) -> np.ndarray:
    """1 on ``[core_lo, core_hi)``, falling linearly to 0 over ``feather`` pixels outside."""
    i = np.arange(lo, hi, dtype=np.float32)
    outside = np.maximum(core_lo - i, i - (core_hi - 1))
    return np.clip(1 - outside / (feather + 1), 0, 1)


def blend_weights(t: Tile, feather: int) -> np.ndarray:
    """``(y1 - y0, x1 - x0)`` float32 weights of a tile (see the module docstring)."""
    return np.outer(_ramp(t.y0, t.y1, t.cy0, t.cy1, feather),
                    _ramp(t.x0, t.x1, t.cx0, t.cx1, feather))


def run_tiled(restore: Callable[[Tile], np.ndarray], height: int, width: int, tile: int,
              halo: int, feather: int = 16,
              progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Assemble ``(height, width, C)`` from ``restore(tile)``, which returns the tile's window;
    ``progress`` is told ``(tiles done, tiles)`` after each.

    One tile (the image fits) calls ``restore`` once on the whole image.

    Example:
        >>> image = np.random.default_rng(0).random((50, 70, 3)).astype(np.float32)
        >>> crop = lambda t: image[t.y0:t.y1, t.x0:t.x1]
        >>> bool(np.allclose(run_tiled(crop, 50, 70, tile=32, halo=16), image))
        True
    """
    tiles = tile_grid(height, width, tile, halo)
    if len(tiles) == 1:
        whole = restore(tiles[0])
        if progress is not None:
            progress(1, 1)
        return whole
    out: np.ndarray | None = None
    total = np.zeros((height, width, 1), np.float32)
    for done, t in enumerate(tiles, 1):
        window = restore(t)
        if out is None:
            out = np.zeros((height, width, window.shape[2]), np.float32)
        w = blend_weights(t, feather)[..., None]
        out[t.y0:t.y1, t.x0:t.x1] += w * window
        total[t.y0:t.y1, t.x0:t.x1] += w
        if progress is not None:
            progress(done, len(tiles))
    out /= total
    return out
