"""Sharp source images: dead leaves, scikit-image's bundled photographs, folders of images."""

import numpy as np
import pytest

from gyrodeblur.errors import InputError
from gyrodeblur.footage import write_image
from gyrodeblur.synthesis.images import SKIMAGE_IMAGES, ImageBank, dead_leaves, skimage_image

BANK = ImageBank(dead_leaves=2, dead_leaves_size=96)


def _flat_regions(image: np.ndarray, step: float = 0.02) -> np.ndarray:
    """Pixel counts of the regions that neighbours closer than ``step`` in colour join: one
    leaf each (a leaf's shading changes less from pixel to pixel, but for the smallest)."""
    from skimage.measure import label

    edge = np.zeros(image.shape[:2], bool)
    edge[:, 1:] |= np.abs(np.diff(image, axis=1)).max(-1) >= step
    edge[1:, :] |= np.abs(np.diff(image, axis=0)).max(-1) >= step
    return np.bincount(label(~edge, connectivity=1).ravel())[1:]


def test_dead_leaves_cover_the_image_with_many_sizes():
    image = BANK.image(len(BANK) - 1)
    assert image.shape == (96, 96, 3)
    colours = np.unique(image.reshape(-1, 3).round(1), axis=0)
    assert len(colours) > 30
    # Covered: black only where a dark leaf's shading is clipped, a few pixels.
    assert (image.max(-1) == 0).mean() < 0.01
    # Sizes of the power law: leaves of a few pixels and leaves of hundreds (one radius
    # of 4 px would leave none over 50).
    areas = _flat_regions(image)
    assert np.median(areas) <= 10 and areas.max() > 100


def test_dead_leaves_are_a_function_of_the_generator_state():
    first, again = (dead_leaves(48, np.random.default_rng(5)) for _ in range(2))
    other = dead_leaves(48, np.random.default_rng(6))
    np.testing.assert_array_equal(first, again)
    assert np.abs(first - other).mean() > 0.05
    for image in (first, other):
        assert image.shape == (48, 48, 3) and image.dtype == np.float32
        assert image.min() >= 0.0 and image.max() <= 1.0


@pytest.mark.parametrize("name", ["astronaut", "camera"])  # colour, and gray made RGB
def test_bundled_photographs_are_scikit_images_pixels_in_unit_range(name):
    from skimage import data

    stored = getattr(data, name)()
    image = skimage_image(name)
    assert image.dtype == np.float32 and image.shape == (*stored.shape[:2], 3)
    rgb = stored[..., :3] if stored.ndim == 3 else np.repeat(stored[..., None], 3, axis=2)
    np.testing.assert_allclose(image, rgb / 255.0, rtol=0, atol=1e-6)


def test_the_embedded_default_lists_the_photographs_then_the_dead_leaves():
    assert len(BANK) == len(SKIMAGE_IMAGES) + 2 and BANK.files == []
    assert [BANK.name(i) for i in range(len(BANK))] == [*SKIMAGE_IMAGES, "dead_leaves:0",
                                                        "dead_leaves:1"]
    # Each dead-leaves entry is one fixed image, the same in every bank.
    other = ImageBank(dead_leaves=2, dead_leaves_size=96)
    np.testing.assert_array_equal(BANK.image(len(BANK) - 2), other.image(len(BANK) - 2))
    assert not np.array_equal(BANK.image(len(BANK) - 2), BANK.image(len(BANK) - 1))


def test_a_folder_gives_its_images_sorted_and_read_back_exactly(tmp_path):
    rng = np.random.default_rng(0)
    pixels = {}
    for rel in ("b.png", "a/z.png", "a/c.tif"):
        pixels[rel] = rng.integers(0, 256, (5 + len(rel), 7, 3)).astype(np.uint8)
        (tmp_path / rel).parent.mkdir(exist_ok=True)
        write_image(tmp_path / rel, pixels[rel])
    write_image(tmp_path / ".hidden.png", pixels["b.png"])  # not data
    (tmp_path / ".part").mkdir()
    write_image(tmp_path / ".part" / "d.png", pixels["b.png"])
    (tmp_path / "notes.txt").write_text("not an image")
    bank = ImageBank(tmp_path, cache_size=1)
    names = ["a/c.tif", "a/z.png", "b.png"]
    assert len(bank) == 3 and [bank.name(i).replace("\\", "/") for i in range(3)] == names
    assert bank.files == [tmp_path / n for n in names]
    for i in (0, 2, 1, 0):  # one image cached at a time: each read again when evicted
        np.testing.assert_allclose(bank.image(i), pixels[names[i]] / 255.0, rtol=0, atol=1e-6)


def test_folders_that_cannot_be_a_bank_are_named(tmp_path):
    with pytest.raises(InputError, match=r"missing: no such folder of images$"):
        ImageBank(tmp_path / "missing")
    write_image(tmp_path / "one.png", np.zeros((4, 4, 3), np.float32))
    with pytest.raises(InputError, match=r"one.png: a file, not a folder of images$"):
        ImageBank(tmp_path / "one.png")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / ".skipped.png").write_bytes((tmp_path / "one.png").read_bytes())
    with pytest.raises(InputError, match=r"empty: folder holds no images$"):
        ImageBank(tmp_path / "empty")
    (tmp_path / "two.png").write_text("not a png")
    with pytest.raises(InputError, match=r"two.png: corrupt or unreadable image$"):
        ImageBank(tmp_path)
    (tmp_path / "two.png").unlink()
    # A folder named like an image is a folder (its images are the bank's).
    (tmp_path / "album.jpg").mkdir()
    write_image(tmp_path / "album.jpg" / "three.png", np.zeros((4, 4, 3), np.float32))
    assert ImageBank(tmp_path).files == [tmp_path / "album.jpg" / "three.png",
                                         tmp_path / "one.png"]
    (tmp_path / "gone.png").symlink_to(tmp_path / "moved.png")
    with pytest.raises(InputError, match=r"gone.png: a link to a file that does not exist$"):
        ImageBank(tmp_path)


def test_a_bank_sent_to_a_worker_process_leaves_its_cached_images_behind():
    import pickle

    bank = ImageBank(dead_leaves=2, dead_leaves_size=96)
    empty = len(pickle.dumps(bank))
    first = bank.image(len(bank) - 1)
    assert len(pickle.dumps(bank)) == empty  # not the 96x96x3 floats drawn
    copy = pickle.loads(pickle.dumps(bank))
    assert np.array_equal(copy.image(len(copy) - 1), first)  # drawn again, the same
    assert len(bank._cache) == 1  # the bank itself keeps its own
