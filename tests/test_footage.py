import cv2
import numpy as np
import pytest

from gyrodeblur.errors import InputError
from gyrodeblur.footage import Footage, VideoWriter, read_image, to_float


def test_sixteen_bit_frames_keep_their_precision(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 65536, (2, 6, 8, 3), dtype=np.uint16)
    for n, image in enumerate(rgb):
        cv2.imwrite(str(tmp_path / f"{n:03d}.png"), image[..., ::-1])
    native = [image for _, image in Footage(tmp_path).frames(np.array([1, 2]), native=True)]
    assert all(f.dtype == np.uint16 for f in native)
    np.testing.assert_array_equal(np.stack(native), rgb)
    floats = [image for _, image in Footage(tmp_path).frames(np.array([1, 2]))]
    np.testing.assert_allclose(np.stack(floats), rgb / 65535, atol=1e-7)


def test_native_video_frames_are_the_float_frames_in_8_bit(tmp_path):
    rng = np.random.default_rng(1)
    with VideoWriter(tmp_path / "clip.mp4", 30.0) as video:
        for _ in range(3):
            video.write(rng.random((32, 48, 3)).astype(np.float32))
    footage = Footage(tmp_path / "clip.mp4")
    native = dict(footage.frames(np.array([1, 3]), native=True))
    floats = dict(footage.frames(np.array([1, 3])))
    assert sorted(native) == [1, 3] and native[1].dtype == np.uint8
    for n in native:
        np.testing.assert_array_equal(to_float(native[n]), floats[n])
        np.testing.assert_array_equal(np.round(floats[n] * 255), native[n])


def test_float_image_files_are_refused(tmp_path):
    cv2.imwrite(str(tmp_path / "linear.tiff"), np.ones((4, 4, 3), np.float32))
    with pytest.raises(InputError, match="linear.tiff.*8 or 16 bit"):
        read_image(tmp_path / "linear.tiff")
