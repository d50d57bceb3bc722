"""Sharp source images: a folder of images, or the embedded default.

The embedded default needs no download: the natural images bundled inside scikit-image plus
procedural dead-leaves images (Lee, Mumford and Huang 2001), whose occluding disks with
power-law sizes have the scale-invariant statistics of natural images and sharp edges at every
orientation, which is what deblurring needs to learn from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from gyrodeblur.errors import InputError
from gyrodeblur.footage import IMAGE_SUFFIXES, hidden_under, read_image

# Natural photographs bundled in the scikit-image wheel (no pooch download needed).
SKIMAGE_IMAGES = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field",
                  "immunohistochemistry", "retina", "camera", "coins", "brick", "grass",
                  "gravel", "moon", "page", "text")


def skimage_image(name: str) -> np.ndarray:
    """One of the natural images bundled in scikit-image as ``(H, W, 3)`` float32 sRGB."""
    from skimage import data

    image = getattr(data, name)()
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return image[..., :3].astype(np.float32) / 255.0


def dead_leaves(size: int, rng: np.random.Generator | int, r_min: float = 2.0,
                r_max: float | None = None, alpha: float = 3.0) -> np.ndarray:
    """A colour dead-leaves image: opaque random disks, radius density ``r^-alpha``.

    Disks fall one above the other (later ones hidden below earlier ones, the classic
    model) until the image is covered; each has a random colour with a little internal
    gradient so that flat areas are not perfectly flat.

    Args:
        size: width and height in pixels.
        rng: random generator (the image is a function of its state), or a seed.
        r_min, r_max: radius bounds in pixels (``r_max`` defaults to ``size / 4``).
        alpha: exponent of the radius density; 3 gives scale invariance.

    Example:
        >>> img = dead_leaves(64, np.random.default_rng(0))
        >>> img.shape, img.dtype, bool(img.min() >= 0 and img.max() <= 1)
        ((64, 64, 3), dtype('float32'), True)
    """
    if not (isinstance(size, int | np.integer) and size >= 1):
        raise ValueError(f"size must be a positive integer of pixels, got {size!r}")
    rng = np.random.default_rng(rng)
    r_max = r_max or size / 4
    image = np.zeros((size, size, 3), np.float32)
    covered = np.zeros((size, size), bool)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    # Inverse-CDF sampling of the power law p(r) ~ r^-alpha on [r_min, r_max].
    a, b = r_min ** (1 - alpha), r_max ** (1 - alpha)
    for _ in range(20000):
        if covered.all():
            break
        r = (a + rng.random() * (b - a)) ** (1 / (1 - alpha))
        cx, cy = rng.uniform(-r, size + r, 2)
        x0, x1 = int(max(cx - r, 0)), int(min(cx + r + 1, size))
        y0, y1 = int(max(cy - r, 0)), int(min(cy + r + 1, size))
        if x0 >= x1 or y0 >= y1:
            continue
        disk = (xx[y0:y1, x0:x1] - cx) ** 2 + (yy[y0:y1, x0:x1] - cy) ** 2 <= r * r
        new = disk & ~covered[y0:y1, x0:x1]
        if not new.any():
            continue
        colour = rng.random(3).astype(np.float32)
        slope = rng.normal(0, 0.15 / max(r, 1), 2).astype(np.float32)
        shade = slope[0] * (xx[y0:y1, x0:x1] - cx) + slope[1] * (yy[y0:y1, x0:x1] - cy)
        patch = np.clip(colour + shade[..., None], 0, 1)
        image[y0:y1, x0:x1][new] = patch[new]
        covered[y0:y1, x0:x1] |= new
    return image


@dataclass
class ImageBank:
    """Where sharp images come from: a folder, or the embedded default.

    Attributes:
        folder: a folder of images (searched recursively); ``None`` for the embedded default.
        dead_leaves: number of procedural dead-leaves images added to the embedded default.
        dead_leaves_size: their size in pixels.
        cache_size: images kept in memory once read or generated.

    Example:
        >>> bank = ImageBank(dead_leaves=2, dead_leaves_size=96)
        >>> image = bank.image(len(bank) - 1)
        >>> image.shape
        (96, 96, 3)
    """

    folder: Path | None = None
    dead_leaves: int = 16
    dead_leaves_size: int = 768
    cache_size: int = 32
    _items: list[str | Path] = field(init=False, repr=False)
    _cache: dict[int, np.ndarray] = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        if self.folder is None:
            self._items = list(SKIMAGE_IMAGES) + [f"dead_leaves:{i}"
                                                  for i in range(self.dead_leaves)]
            return
        self.folder = Path(self.folder)
        if not self.folder.is_dir():
            raise InputError(self.folder, "a file, not a folder of images"
                             if self.folder.exists() else "no such folder of images")
        self._items = sorted(p for p in self.folder.rglob("*")
                             if p.suffix.lower() in IMAGE_SUFFIXES and not p.is_dir()
                             and not hidden_under(p, self.folder))
        if not self._items:
            raise InputError(self.folder, "folder holds no images")
        broken = next((p for p in self._items if not p.exists()), None)
        if broken is not None:
            raise InputError(broken, "a link to a file that does not exist")
        # Signatures only (cheap for thousands of files): a stray file with an image suffix is
        # found before any work, not when the sampler first draws it.
        unreadable = next((p for p in self._items if not cv2.haveImageReader(str(p))), None)
        if unreadable is not None:
            raise InputError(unreadable, "corrupt or unreadable image")

    def __len__(self) -> int:
        return len(self._items)

    def __getstate__(self) -> dict:
        # A DataLoader worker started by spawn fills a cache of its own: none is copied.
        return {**self.__dict__, "_cache": {}}

    @property
    def files(self) -> list[Path]:
        """The image files it reads (none for the embedded default)."""
        return [item for item in self._items if isinstance(item, Path)]

    def name(self, index: int) -> str:
        """Image ``index``'s name: its path under the folder, or an embedded image's name."""
        item = self._items[index]
        return item if isinstance(item, str) else str(Path(item).relative_to(self.folder))

    def image(self, index: int) -> np.ndarray:
        """Image ``index`` as ``(H, W, 3)`` float32 sRGB in ``[0, 1]`` (kept after a first read).

        The returned array is shared: do not modify it in place.
        """
        if index not in self._cache:
            if len(self._cache) >= self.cache_size:
                self._cache.pop(next(iter(self._cache)))
            self._cache[index] = self._load(index)
        return self._cache[index]

    def _load(self, index: int) -> np.ndarray:
        item = self._items[index]
        if isinstance(item, Path):
            return read_image(item)
        if item.startswith("dead_leaves:"):
            seed = int(item.split(":")[1])
            return dead_leaves(self.dead_leaves_size, np.random.default_rng([7919, seed]))
        return skimage_image(item)
