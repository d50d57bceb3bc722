import errno
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from gyrodeblur.errors import InputError
from gyrodeblur.footage import (
    Footage,
    FrameTiming,
    VideoWriter,
    check_timing_units,
    frame_rate,
    read_image,
    read_image_and_format,
    to_float,
    video_timing,
    write_image,
)
from gyrodeblur.synthesis.images import dead_leaves, skimage_image


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


def test_written_video_is_bt709_and_decodes_as_tagged(tmp_path):
    # A player reading the tags (or assuming BT.709 for HD) sees the colours written.
    import av

    image = np.zeros((64, 96, 3), np.float32)
    image[:, :32] = [1.0, 0.0, 0.0]
    image[:, 32:64] = [0.0, 1.0, 0.0]
    image[:, 64:] = [0.2, 0.4, 0.9]
    with VideoWriter(tmp_path / "clip.mp4", 25.0, crf=0) as video:
        video.write(image)
    with av.open(str(tmp_path / "clip.mp4")) as container:
        stream = container.streams.video[0]
        codec = stream.codec_context
        assert (codec.colorspace, codec.color_primaries, codec.color_trc, codec.color_range) \
            == (1, 1, 1, 1)  # BT.709, limited range
        frame = next(container.decode(stream))
        as_709 = frame.reformat(format="rgb24", src_colorspace="ITU709",
                                src_color_range="MPEG").to_ndarray()
    inner = (slice(4, -4), np.r_[4:28, 36:60, 68:92])  # away from chroma-subsampled edges
    assert np.abs(as_709[inner[0]][:, inner[1]] / 255 - image[inner[0]][:, inner[1]]).max() \
        < 3 / 255


@pytest.mark.parametrize(("colorspace", "color_range", "kr_kb", "full", "bits", "chroma"), [
    (1, 1, (0.2126, 0.0722), False, 8, "420"),  # BT.709, limited: phones and VideoWriter
    (5, 2, (0.299, 0.114), True, 8, "420"),  # BT.601, full range
    (2, 0, (0.299, 0.114), False, 8, "420"),  # untagged below 720 rows: BT.601, limited
    (1, 1, (0.2126, 0.0722), False, 10, "420"),  # 10-bit (HEVC and H.264 high-profile phones)
    (1, 1, (0.2126, 0.0722), False, 10, "422"),  # ProRes-like 4:2:2
    (2, 0, (0.299, 0.114), False, 8, "444"),
])
def test_video_frames_convert_with_their_tagged_matrix_and_range(tmp_path, colorspace,
                                                                  color_range, kr_kb, full,
                                                                  bits, chroma):
    import av

    # Lossless video with chroma constant over 8x8-pixel blocks: each block's inner pixels
    # are the textbook Y'CbCr -> R'G'B' of its values.
    rng = np.random.default_rng(colorspace)
    scale, dtype = 2 ** (bits - 8), np.uint8 if bits == 8 else np.uint16
    fmt = f"yuv{chroma}p" + ("10le" if bits == 10 else "")
    down, across = {"420": (2, 2), "422": (1, 2), "444": (1, 1)}[chroma]  # luma per chroma
    luma = rng.integers(30 * scale, 220 * scale, (32, 48)).astype(dtype)
    cb, cr = (np.kron(rng.integers(90 * scale, 166 * scale, (4, 6)),
                      np.ones((8 // down, 8 // across))).astype(dtype) for _ in range(2))
    with av.open(str(tmp_path / "yuv.mp4"), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 48, 32, fmt
        stream.options = {"qp": "0"}
        stream.codec_context.colorspace, stream.codec_context.color_range = colorspace, color_range
        frame = av.VideoFrame(48, 32, fmt)
        for plane, values in zip(frame.planes, (luma, cb, cr), strict=True):
            rows = np.zeros((plane.height, plane.line_size // dtype().itemsize), dtype)
            rows[:, :plane.width] = values
            plane.update(rows.tobytes())
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    decoded = next(av.open(str(tmp_path / "yuv.mp4")).decode(video=0))
    assert decoded.format.name.replace("yuvj", "yuv") == fmt  # converted by gyrodeblur
    rgb = dict(Footage(tmp_path / "yuv.mp4").frames(np.array([1]), native=True))[1]
    kr, kb = kr_kb
    y = luma / 255 if full else (luma / scale - 16.0) / 219
    pb, pr = ((np.kron(c / scale, np.ones((down, across))) - 128.0) / (255 if full else 224)
              for c in (cb, cr))
    r, b = y + 2 * (1 - kr) * pr, y + 2 * (1 - kb) * pb
    expected = np.clip(np.stack([r, (y - kr * r - kb * b) / (1 - kr - kb), b], -1) * 255, 0, 255)
    block = np.ix_(*((np.arange(n) % 8 > 1) & (np.arange(n) % 8 < 6) for n in (32, 48)))
    assert np.abs(rgb[block] - expected[block]).max() <= 0.5 + 1e-6


@pytest.mark.parametrize(("transfer", "hdr"), [(18, True), (16, True), (1, False)])
def test_an_hdr_transfer_is_told(tmp_path, transfer, hdr):
    import av

    with av.open(str(tmp_path / "clip.mp4"), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p10le"
        stream.codec_context.color_trc = transfer  # HLG, PQ, BT.709
        frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    footage = Footage(tmp_path / "clip.mp4")
    assert footage.hdr == hdr and not footage.has_audio


def test_video_written_and_read_back_keeps_its_levels(tmp_path):
    # A photo through H.264 and back: compression errors nearly average out, levels stay
    # (FFmpeg's own conversion reads this 0.8 / 1.3 / 0.5 levels dark in R / G / B).
    image = cv2.resize(skimage_image("astronaut"), (192, 128), interpolation=cv2.INTER_AREA)
    with VideoWriter(tmp_path / "clip.mp4", 30.0) as video:
        video.write(image)
    rgb = dict(Footage(tmp_path / "clip.mp4").frames(np.array([1]), native=True))[1]
    bias = (rgb - np.round(image * 255)).mean(axis=(0, 1))
    assert np.abs(bias).max() < 0.6, bias


def test_video_writer_takes_integer_frames_as_images_and_refuses_0_to_255_floats(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    for name, frame in (("u8.mp4", image), ("u16.mp4", image.astype(np.uint16) * 257),
                        ("f.mp4", image / np.float32(255))):
        with VideoWriter(tmp_path / name, 10) as video:
            video.write(frame)
    frames = [dict(Footage(tmp_path / name).frames(np.array([1]), native=True))[1]
              for name in ("u8.mp4", "u16.mp4", "f.mp4")]
    assert np.array_equal(frames[0], frames[2]) and np.array_equal(frames[1], frames[2])
    with pytest.raises(ValueError, match=r"frame 1: float values must lie in \[0, 1\]"):
        with VideoWriter(tmp_path / "x.mp4", 10) as video:
            video.write(image.astype(np.float32))
    with pytest.raises(ValueError, match=r"frame 1: must be \(H, W, 3\) RGB"):
        with VideoWriter(tmp_path / "x.mp4", 10) as video:
            video.write(np.zeros((3, 16, 16), np.float32))


def test_timing_out_of_order_and_a_video_exposure_longer_than_its_frames_are_refused(
        tmp_path):
    with pytest.raises(ValueError, match="t_start must increase with the frame numbers"):
        FrameTiming([1, 2, 3], [0.0, 0.2, 0.1], [0.01] * 3)
    with VideoWriter(tmp_path / "clip.mp4", 30) as video:
        for _ in range(3):
            video.write(np.zeros((16, 16, 3), np.float32))
    assert len(video_timing(tmp_path / "clip.mp4", 0.02)) == 3
    with pytest.raises(InputError, match="exposure 0.5 s is longer than the frame interval"):
        video_timing(tmp_path / "clip.mp4", 0.5)


def test_timing_refuses_fractional_frame_numbers_and_keeps_its_own_arrays():
    with pytest.raises(ValueError, match=r"frame numbers must be whole numbers, got \[2.5\]"):
        FrameTiming([1.0, 2.5], [0.0, 0.1], [0.01] * 2)
    frames = np.array([1.0, 2.0])  # whole numbers as floats, as a CSV column reads
    timing = FrameTiming(frames, [0.0, 0.1], [0.01] * 2)
    frames[0] = 7
    assert timing.frame.tolist() == [1, 2]


def test_a_uint16_image_is_written_in_16_bits(tmp_path):
    image = np.random.default_rng(0).integers(0, 65536, (6, 8, 3), dtype=np.uint16)
    write_image(tmp_path / "deep.png", image)
    pixels, stored = read_image_and_format(tmp_path / "deep.png")
    assert stored.dtype == np.uint16 and not stored.gray
    np.testing.assert_allclose(pixels, image / 65535, atol=1e-7)
    write_image(tmp_path / "gray.png", image[..., 0])
    pixels, stored = read_image_and_format(tmp_path / "gray.png")
    assert stored.dtype == np.uint16 and stored.gray
    np.testing.assert_allclose(pixels[..., 0], image[..., 0] / 65535, atol=1e-7)


def test_a_file_without_video_or_not_a_video_says_so_in_ffmpegs_words(tmp_path):
    import av

    with av.open(str(tmp_path / "sound.m4a"), "w") as container:
        stream = container.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), "fltp", "mono")
        frame.rate = 8000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    with pytest.raises(InputError, match=r"sound\.m4a: no video stream$"):
        video_timing(tmp_path / "sound.m4a", 0.01)
    (tmp_path / "text.mp4").write_text("not a video")
    with pytest.raises(InputError, match=r"text\.mp4: corrupt or unreadable video \(Invalid "
                                         r"data found when processing input\)$"):
        video_timing(tmp_path / "text.mp4", 0.01)


def test_an_audio_file_with_cover_art_is_no_video(tmp_path):
    import av

    with av.open(str(tmp_path / "song.m4a"), "w", format="mp4") as container:
        sound = container.add_stream("aac", rate=48000)
        cover = container.add_stream("mjpeg")
        cover.width, cover.height, cover.pix_fmt = 64, 64, "yuvj420p"
        cover.disposition = av.stream.Disposition.attached_pic
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), "fltp", "mono")
        frame.sample_rate = 48000
        for packet in [*sound.encode(frame), *sound.encode(None)]:
            container.mux(packet)
        picture = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
        for packet in [*cover.encode(picture), *cover.encode(None)]:
            container.mux(packet)
    for read in (Footage, lambda path: video_timing(path, 0.01)):
        with pytest.raises(InputError, match=r"song\.m4a: no video stream \(only a cover "
                                             r"picture\)$"):
            read(tmp_path / "song.m4a")


def test_damaged_frame_data_is_refused_not_concealed(tmp_path):
    import av

    rng = np.random.default_rng(0)
    base = rng.uniform(0, 1, (48, 64, 3)).astype(np.float32)
    with VideoWriter(tmp_path / "clip.mp4", 30.0) as video:
        for i in range(12):
            video.write(np.roll(base, i, 1))
    with av.open(str(tmp_path / "clip.mp4")) as container:
        sixth = [p for p in container.demux(container.streams.video[0]) if p.size][5]
    data = bytearray((tmp_path / "clip.mp4").read_bytes())
    # Eight bytes in the middle of the sixth frame's data, which FFmpeg would conceal.
    middle = sixth.pos + sixth.size // 2
    data[middle:middle + 8] = np.random.default_rng(3).integers(0, 256, 8, np.uint8).tobytes()
    (tmp_path / "damaged.mp4").write_bytes(bytes(data))
    footage = Footage(tmp_path / "damaged.mp4")
    with pytest.raises(InputError, match=r"damaged\.mp4: corrupt video at frame \d+ \(Invalid "
                                         r"data found"):
        list(footage.frames(np.arange(1, 13)))


def test_video_writer_takes_a_measured_float_frame_rate(tmp_path):
    with VideoWriter(tmp_path / "clip.mp4", 10.0119047) as video:
        for _ in range(2):
            video.write(np.zeros((16, 16, 3), np.float32))
    assert Footage(tmp_path / "clip.mp4").fps == pytest.approx(10.0119047, rel=1e-4)


def test_a_folders_frame_rate_counts_the_frames_a_frames_csv_leaves_out(tmp_path):
    cv2.imwrite(str(tmp_path / "1.png"), np.zeros((4, 4, 3), np.uint8))
    frames = np.array([1, 3, 5, 6, 8])  # 40 fps, most frames between not in the CSV
    timing = FrameTiming(frames, 0.1 + (frames - 1) / 40, np.full(5, 0.01))
    assert frame_rate(Footage(tmp_path), timing) == 40


def test_timing_units_go_by_the_interval_between_frame_numbers():
    # Every 10th frame of 30 fps footage with 30 ms exposures: 33 ms per frame, not 333.
    frames = np.arange(1, 101, 10)
    check_timing_units(FrameTiming(frames, (frames - 1) / 30, np.full(10, 0.03)))
    with pytest.raises(InputError, match=r"exposure 0.04 s is longer than the frame interval "
                                         r"0.0333333 s: is it in seconds\?"):
        check_timing_units(FrameTiming(frames, (frames - 1) / 30, np.full(10, 0.04)))
    # Readout up to 1.05 frame intervals passes (a measured readout a little over).
    timing = FrameTiming(frames, (frames - 1) / 30, np.full(10, 0.01), "f.csv")
    check_timing_units(timing, readout_time=1.04 / 30)
    with pytest.raises(InputError, match=r"cam\.json: readout time 0.0353333 s is longer"):
        check_timing_units(timing, readout_time=1.06 / 30, camera_source="cam.json")


@pytest.mark.parametrize(("orientation", "rotation"), [
    (1, 0), (2, 0), (3, 180), (4, 0), (5, 0), (6, -90), (7, 0), (8, 90)])
def test_a_tiff_is_read_as_stored_whatever_its_orientation_tag(tmp_path, orientation, rotation):
    # OpenCV turns a TIFF by its tag whatever the flags; kernels are of the stored grid.
    from PIL import Image, TiffImagePlugin

    from gyrodeblur.footage import exif_rotation

    stored = np.random.default_rng(orientation).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    tags = TiffImagePlugin.ImageFileDirectory_v2()
    tags[274] = orientation
    Image.fromarray(stored).save(tmp_path / "o.tif", tiffinfo=tags)
    image, fmt = read_image_and_format(tmp_path / "o.tif")
    np.testing.assert_array_equal(image, stored / np.float32(255))
    assert exif_rotation(fmt.exif) == rotation  # shown as the file says


def test_float_image_files_are_refused(tmp_path):
    cv2.imwrite(str(tmp_path / "linear.tiff"), np.ones((4, 4, 3), np.float32))
    with pytest.raises(InputError, match="linear.tiff: float32 pixels: 8 or 16 bit"):
        read_image(tmp_path / "linear.tiff")


def test_missing_and_corrupt_image_files_say_which(tmp_path, capfd):
    with pytest.raises(InputError, match="absent.png: no such file"):
        read_image(tmp_path / "absent.png")
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(InputError, match="text.png: corrupt or unreadable"):
        read_image(tmp_path / "text.png")
    (tmp_path / "empty.png").touch()  # an interrupted copy
    with pytest.raises(InputError, match="empty.png: empty file, not an image"):
        read_image(tmp_path / "empty.png")
    cv2.imwrite(str(tmp_path / "whole.png"), np.full((64, 64, 3), 7, np.uint8))
    (tmp_path / "cut.png").write_bytes((tmp_path / "whole.png").read_bytes()[:60])
    with pytest.raises(InputError, match="cut.png: corrupt or unreadable image \\(truncated"):
        read_image(tmp_path / "cut.png")
    # Cut inside its pixel data, which libpng reports on stderr itself.
    cv2.imwrite(str(tmp_path / "leaves.png"), (dead_leaves(160, 1) * 255).astype(np.uint8))
    data = (tmp_path / "leaves.png").read_bytes()
    (tmp_path / "half.png").write_bytes(data[:len(data) // 2])
    with pytest.raises(InputError, match=r"half.png: corrupt or unreadable image \(truncated"):
        read_image(tmp_path / "half.png")
    assert capfd.readouterr().err == ""  # the error alone, without OpenCV's warning


@pytest.mark.parametrize(("name", "stored"), [
    ("rgb16.png", np.uint16), ("rgb8.png", np.uint8), ("rgb16.tif", np.uint16)])
def test_an_image_written_as_read_is_the_same_file_content(tmp_path, name, stored):
    rng = np.random.default_rng(2)
    pixels = rng.integers(0, np.iinfo(stored).max + 1, (5, 7, 3), dtype=stored)
    cv2.imwrite(str(tmp_path / name), pixels)
    image, fmt = read_image_and_format(tmp_path / name)
    write_image(tmp_path / f"copy_{name}", image, fmt)
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / f"copy_{name}"), -1), pixels)


def test_gray_and_alpha_survive_and_jpeg_falls_back_to_8_bit_rgb(tmp_path):
    rng = np.random.default_rng(3)
    gray = rng.integers(0, 65536, (6, 4), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "gray.png"), gray)
    image, fmt = read_image_and_format(tmp_path / "gray.png")
    write_image(tmp_path / "gray_out.png", image, fmt)
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "gray_out.png"), -1), gray)

    bgra = rng.integers(0, 256, (6, 4, 4), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "rgba.png"), bgra)
    image, fmt = read_image_and_format(tmp_path / "rgba.png")
    np.testing.assert_array_equal(fmt.alpha, bgra[..., 3])
    write_image(tmp_path / "rgba_out.png", image, fmt)
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "rgba_out.png"), -1), bgra)
    write_image(tmp_path / "rgba_out.jpg", image, fmt)
    assert cv2.imread(str(tmp_path / "rgba_out.jpg"), -1).shape == (6, 4, 3)
    write_image(tmp_path / "rgba_out.webp", image, fmt)  # lossless, with its alpha
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "rgba_out.webp"), -1), bgra)


def test_a_gray_alpha_png_stays_gray_with_its_alpha(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(4)
    la = rng.integers(0, 256, (6, 4, 2), dtype=np.uint8)
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    image, fmt = read_image_and_format(tmp_path / "la.png")
    assert fmt.gray and np.array_equal(fmt.alpha, la[..., 1])
    write_image(tmp_path / "out.png", image, fmt)
    out = np.asarray(Image.open(tmp_path / "out.png").convert("RGBA"))
    np.testing.assert_array_equal(out, np.dstack([la[..., :1]] * 3 + [la[..., 1:]]))


@pytest.mark.parametrize("rotation", [0, 90, -90, 180])
def test_a_videos_display_rotation_round_trips(tmp_path, rotation):
    with VideoWriter(tmp_path / "clip.mp4", 30.0, rotation=rotation) as video:
        video.write(np.zeros((16, 24, 3), np.float32))
    footage = Footage(tmp_path / "clip.mp4")
    assert abs(footage.rotation) % 360 == abs(rotation) % 360 and footage.size == (24, 16)


def test_a_gray_and_alpha_tiff_whose_alpha_opencv_drops_is_said_once_a_folder(tmp_path):
    from PIL import Image

    pixels = np.zeros((8, 10, 2), np.uint8)
    pixels[..., 0], pixels[..., 1] = 100, np.arange(10) * 20
    for name in ("a.tif", "b.tif"):
        Image.fromarray(pixels, "LA").save(tmp_path / name)
    Image.fromarray(pixels[..., 0], "L").save(tmp_path / "gray.tif")
    with pytest.warns(UserWarning, match=r"a\.tif: its alpha channel is not read") as said:
        image, stored = read_image_and_format(tmp_path / "a.tif")
        read_image(tmp_path / "b.tif")
        read_image(tmp_path / "gray.tif")
    assert len(said) == 1
    np.testing.assert_allclose(image, 100 / 255, atol=1e-6)
    assert stored.gray and stored.alpha is None


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_exif_is_copied_and_its_orientation_not_applied(tmp_path, suffix):
    from PIL import Image

    pixels = np.zeros((6, 10, 3), np.uint8)
    pixels[:, :5] = 255
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112], exif[0x010F] = 6, "TestCam"  # orientation: rotate 90 degrees to display
    image.save(tmp_path / "phone.jpg", exif=exif.tobytes(), quality=95)
    read, stored = read_image_and_format(tmp_path / "phone.jpg")
    assert read.shape == (6, 10, 3)  # the sensor's grid, as the calibration is
    write_image(tmp_path / f"out{suffix}", read, stored)
    copied = Image.open(tmp_path / f"out{suffix}").getexif()
    assert (copied.get(0x0112), copied.get(0x010F)) == (6, "TestCam")
    assert Image.open(tmp_path / f"out{suffix}").size == (10, 6)


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("suffix", [".tif", ".bmp"])
def test_formats_without_exif_get_the_pixels_turned_as_shown(tmp_path, suffix, orientation):
    # The orientation an image is shown by (as PIL's exif_transpose turns it): where the
    # output cannot say it, the pixels are turned so.
    from PIL import Image, ImageOps

    pixels = np.random.default_rng(orientation).integers(0, 256, (6, 10, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = orientation
    image.save(tmp_path / "phone.jpg", exif=exif.tobytes())
    read, stored = read_image_and_format(tmp_path / "phone.jpg")
    write_image(tmp_path / f"out{suffix}", read, stored)
    as_read = Image.fromarray(np.round(read * 255).astype(np.uint8))
    as_read.getexif()[0x0112] = orientation
    shown = np.asarray(ImageOps.exif_transpose(as_read))
    np.testing.assert_array_equal(read_image(tmp_path / f"out{suffix}", native=True), shown)


def test_folder_frames_are_in_the_numeric_order_of_their_names(tmp_path):
    for n in (1, 2, 10, 11):  # plain string order would put 10 and 11 before 2
        cv2.imwrite(str(tmp_path / f"frame_{n}.png"), np.full((4, 6, 3), n, np.uint8))
    values = [int(image[0, 0, 0]) for _, image in
              Footage(tmp_path).frames(np.arange(1, 5), native=True)]
    assert values == [1, 2, 10, 11]


def test_names_with_digits_that_are_no_numbers_sort_without_error():
    from gyrodeblur.footage import natural_order

    names = ["x²1.png", "x10.png", "x2.png", "①1.png", "x\u0663.png"]  # ², ①; Arabic-Indic 3
    assert [p.name for p in sorted(map(Path, names), key=natural_order)] == \
        ["x2.png", "x\u0663.png", "x10.png", "x²1.png", "①1.png"]


def test_hidden_files_in_a_frames_folder_are_not_frames(tmp_path):
    for n in (1, 2):
        cv2.imwrite(str(tmp_path / f"frame_{n}.png"), np.full((4, 6, 3), n, np.uint8))
    cv2.imwrite(str(tmp_path / ".thumb.png"), np.full((4, 6, 3), 9, np.uint8))
    (tmp_path / "._frame_1.png").write_bytes(b"macOS resource fork")
    footage = Footage(tmp_path)
    assert footage.count == 2
    assert [int(image[0, 0, 0]) for _, image in footage.frames(np.arange(1, 3), native=True)] \
        == [1, 2]


def test_odd_sizes_are_padded_with_a_note(tmp_path):
    with VideoWriter(tmp_path / "odd.mp4", 30.0) as video:
        video.write(np.zeros((5, 7, 3), np.float32))
    assert Footage(tmp_path / "odd.mp4").size == (8, 6)
    assert video.notes == ["frames of 7x5 padded to 8x6 (H.264 takes even sizes; the last row "
                           "or column repeated)"]


def test_gyrovd_landscape_frames_are_turned_to_the_portrait_camera(tmp_path):
    # GyroVD-Real stores its frames landscape; its gyro and intrinsics are portrait, and its
    # code turns each frame 90 degrees clockwise: so does Footage.
    (tmp_path / "blur").mkdir()
    (tmp_path / "meta_info").mkdir()
    row = "16006,0,170,99777679,1.31,1,1,2.76," + "0.1," * 9 + "2797.2,2801.0,2021.1,1541.4,0"
    (tmp_path / "meta_info" / "cam_metainfo.csv").write_text(row + "\n" + row + "\n")
    rng = np.random.default_rng(3)
    stored = rng.integers(0, 256, (2, 18, 32, 3), dtype=np.uint8)
    for n, image in enumerate(stored):
        start = 1_000_000_000 + n * 100_000_000
        name = f"{n + 1:06d}_{start}_{start}_{start + 40_000_000}_blur.png"
        cv2.imwrite(str(tmp_path / "blur" / name), image[..., ::-1])
    footage = Footage(tmp_path)
    assert footage.size == (18, 32) and footage.timing is not None
    frames = [image for _, image in footage.frames(np.array([1, 2]), native=True)]
    for image, original in zip(frames, stored, strict=True):
        np.testing.assert_array_equal(image, cv2.rotate(original, cv2.ROTATE_90_CLOCKWISE))
    # Without a portrait camera beside them, frames stay as stored.
    (tmp_path / "meta_info" / "cam_metainfo.csv").unlink()
    assert Footage(tmp_path).size == (32, 18)


def test_a_video_without_a_decodable_frame_is_refused(tmp_path):
    import av

    path = tmp_path / "empty.mkv"
    noise = np.random.default_rng(0).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 128, 96, "yuv420p"
        container.mux(stream.encode(av.VideoFrame.from_ndarray(noise, format="rgb24")))
        container.mux(stream.encode(None))
    whole = path.read_bytes()
    path.write_bytes(whole[:len(whole) // 2])  # cut within its only (key)frame
    with pytest.raises(InputError, match="empty.mkv: no decodable frame"):
        Footage(path)


def _noise_mp4(path, frames, width, height):
    """``path``, an H.264 MP4 of ``frames`` noise frames at 30 fps."""
    import av

    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for _ in range(frames):
            image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def _mkv(path, frames, audio_seconds=0.0, start=0, audio_start=0.0):
    """An MKV (no frame count in its header) of ``frames`` noise frames at 30 fps from
    ``start`` frames on, with an audio track of ``audio_seconds`` from ``audio_start``."""
    import av

    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=30)
        video.width, video.height, video.pix_fmt = 128, 96, "yuv420p"
        if audio_seconds:
            audio = container.add_stream("aac", rate=48000)
            for i in range(int(audio_seconds * 48000 / 1024)):
                frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), "fltp",
                                                   "mono")
                frame.sample_rate, frame.pts = 48000, round(audio_start * 48000) + i * 1024
                container.mux(audio.encode(frame))
            container.mux(audio.encode(None))
        for i in range(frames):
            image = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = start + i
            container.mux(video.encode(frame))
        container.mux(video.encode(None))


def test_a_video_cut_short_is_refused_where_its_header_gives_no_frame_count(tmp_path):
    _mkv(tmp_path / "whole.mkv", 12)
    assert Footage(tmp_path / "whole.mkv").count == 12
    whole = (tmp_path / "whole.mkv").read_bytes()
    (tmp_path / "cut.mkv").write_bytes(whole[:len(whole) // 2])
    with pytest.raises(InputError, match=r"cut\.mkv: truncated video: its streams end at "
                                         r"0\.\d\d s, its header says 0\.40 s"):
        Footage(tmp_path / "cut.mkv")
    # Nor does a long clip lose a few frames at its end (0.1 s of 10 s) without a word.
    _mkv(tmp_path / "long.mkv", 300)
    whole = (tmp_path / "long.mkv").read_bytes()
    (tmp_path / "end.mkv").write_bytes(whole[:len(whole) * 99 // 100])
    with pytest.raises(InputError, match=r"end\.mkv: truncated video: its streams end at "
                                         r"9\.\d\d s, its header says 10\.00 s"):
        Footage(tmp_path / "end.mkv")
    # Audio that runs on after the last frame is not a cut.
    _mkv(tmp_path / "sound.mkv", 12, audio_seconds=1.0)
    assert Footage(tmp_path / "sound.mkv").count == 12
    # Nor timestamps from 1 s on, which an MKV's duration counts from 0.
    _mkv(tmp_path / "later.mkv", 12, start=30)
    assert Footage(tmp_path / "later.mkv").count == 12


def test_a_variable_rate_mkv_has_its_average_rate_not_its_first_frames(tmp_path):
    from fractions import Fraction

    import av

    times = [i / 30 for i in range(10)] + [9 / 30 + 2 * i / 30 for i in range(1, 11)]
    with av.open(str(tmp_path / "vfr.mkv"), "w") as container:
        video = container.add_stream("libx264", rate=30)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        video.time_base = Fraction(1, 1000)
        for t in times:
            frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
            frame.pts, frame.time_base = round(t * 1000), Fraction(1, 1000)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
    assert Footage(tmp_path / "vfr.mkv").fps == pytest.approx(19 / times[-1], rel=1e-3)
    _mkv(tmp_path / "steady.mkv", 12)
    assert Footage(tmp_path / "steady.mkv").fps == 30.0  # the header's, exact


def test_a_trimmed_mp4_has_the_frames_and_times_its_edit_list_shows(tmp_path):
    import av

    from gyrodeblur.footage import video_timing

    _noise_mp4(tmp_path / "whole.mp4", 10, 128, 96)
    # Cut as `ffmpeg -ss -c copy` cuts: the first 3 frames before the start, kept for decoding
    # and discarded by the edit list.
    with av.open(str(tmp_path / "whole.mp4")) as source, \
            av.open(str(tmp_path / "cut.mp4"), "w") as cut:
        inside = source.streams.video[0]
        outside = cut.add_stream_from_template(inside)
        shift = round(3 / 30 / inside.time_base)
        for packet in source.demux(inside):
            if packet.dts is not None:
                packet.pts, packet.dts, packet.stream = packet.pts - shift, packet.dts - shift, \
                    outside
                cut.mux(packet)
    whole, cut = Footage(tmp_path / "whole.mp4"), Footage(tmp_path / "cut.mp4")
    assert (whole.count, cut.count) == (10, 7)
    frames = [image for _, image in cut.frames(np.arange(1, 8))]
    np.testing.assert_array_equal(frames[0], next(whole.frames(np.array([4])))[1])
    timing = video_timing(tmp_path / "cut.mp4", 0.01)
    np.testing.assert_allclose(timing.t_start, np.arange(7) / 30, atol=1e-4)


def _ramp_mp4(path, frames, width, height, step, options=None, container_options=None):
    """An H.264 MP4 of ``frames`` flat frames at 30 fps, frame ``i`` at level ``i * step``;
    returns its stream's time base."""
    import av

    with av.open(str(path), "w", options=container_options or {}) as container:
        stream = container.add_stream("libx264", rate=30, options=options or {})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            image = np.full((height, width, 3), i * step, np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))
        return stream.time_base


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_a_video_cut_before_its_first_keyframe_is_refused(tmp_path, suffix):
    # Cut as `ffmpeg -c copy` cuts between keyframes: decoders drop some of the frames before
    # the next keyframe (FFmpeg 6 of the 9 here), so frames and timestamps would not pair up.
    import av

    _ramp_mp4(tmp_path / "whole.mp4", 30, 64, 48, 8, {"g": "10", "bf": "0"})
    assert Footage(tmp_path / "whole.mp4").count == 30
    with av.open(str(tmp_path / "whole.mp4")) as source, \
            av.open(str(tmp_path / f"cut{suffix}"), "w") as cut:
        inside = source.streams.video[0]
        outside = cut.add_stream_from_template(inside)
        for packet in list(source.demux(inside))[1:]:  # without the first keyframe
            if packet.dts is not None:
                packet.stream = outside
                cut.mux(packet)
    with pytest.raises(InputError, match=rf"cut\{suffix}: starts before its first keyframe"):
        Footage(tmp_path / f"cut{suffix}")


def test_an_mp4_cut_short_behind_its_index_is_refused(tmp_path):
    # Its index first (faststart), then the frames: a cut leaves the index of all 30.
    _ramp_mp4(tmp_path / "whole.mp4", 30, 64, 48, 8, container_options={"movflags": "faststart"})
    assert Footage(tmp_path / "whole.mp4").count == 30
    whole = (tmp_path / "whole.mp4").read_bytes()
    # Cut by 40 %, or by a few bytes inside the last frame (which only its decoding, after
    # all the others, would find).
    for keep in (len(whole) * 6 // 10, len(whole) - 20):
        (tmp_path / "cut.mp4").write_bytes(whole[:keep])
        with pytest.raises(InputError, match=r"cut\.mp4: truncated video: \d+ of its 30 frames "
                                             r"are whole in the file$"):
            Footage(tmp_path / "cut.mp4")


def test_copied_audio_starts_with_the_first_frame_as_in_its_source(tmp_path):
    # A clip cut from a longer recording: frames and sound from 1 s on; the written frames
    # start at 0, and so must the sound.
    import av

    _mkv(tmp_path / "later.mkv", 12, audio_seconds=0.4, start=30, audio_start=1.0)
    with VideoWriter(tmp_path / "out.mp4", 30, audio_from=tmp_path / "later.mkv") as video:
        for _ in range(12):
            video.write(np.zeros((96, 128, 3), np.float32))
    first = {}
    with av.open(str(tmp_path / "out.mp4")) as container:
        for p in container.demux():
            if p.pts is not None:
                t = float(p.pts * p.time_base)
                first[p.stream.type] = min(first.get(p.stream.type, t), t)
    assert abs(first["audio"] - first["video"]) < 0.03, first


@pytest.mark.parametrize(("codec", "rate", "notes"), [
    ("aac", 48000, []),
    ("pcm_s16le", 48000, ["audio (pcm_s16le) re-encoded to AAC (MP4 does not hold it)"]),
    ("pcm_s16le", 192000, ["audio (pcm_s16le) re-encoded to AAC (MP4 does not hold it)"]),
])
def test_audio_is_written_in_step_with_the_frames_from_the_first(tmp_path, codec, rate, notes):
    # Frames and sound from 1 s on, a click at each frame's time: copied (AAC), or as AAC
    # (a camera's PCM: Sony, Canon; at most 96 kHz), every click stays at its frame's time,
    # the first too (a copy keeps the packet before it, which the decoder needs to play it).
    import av

    fps = 30
    with av.open(str(tmp_path / "source.mkv"), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = container.add_stream(codec, rate=rate, layout="mono")
        sound = np.zeros((1, rate), np.float32)  # 1 s from 0.5 s on
        for k in range(15):
            sound[0, rate // 2 + k * rate // fps:rate // 2 + k * rate // fps + 48] = 0.6
        sample_format = "s16" if codec == "pcm_s16le" else "fltp"
        if sample_format != "fltp":
            sound = (sound * 32767).astype(np.int16)
        for i in range(0, rate, 1024):
            frame = av.AudioFrame.from_ndarray(sound[:, i:i + 1024].copy(), sample_format,
                                               "mono")
            frame.sample_rate, frame.pts = rate, rate // 2 + i
            container.mux(audio.encode(frame))
        container.mux(audio.encode(None))
        for i in range(15):
            frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), "rgb24")
            frame.pts = fps + i
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
    with VideoWriter(tmp_path / "out.mp4", fps, audio_from=tmp_path / "source.mkv") as written:
        for _ in range(15):
            written.write(np.zeros((48, 64, 3), np.float32))
    assert written.notes == notes
    onsets = []
    with av.open(str(tmp_path / "out.mp4")) as container:
        assert container.streams.audio[0].codec_context.name == codec.replace("pcm_s16le", "aac")
        for frame in container.decode(audio=0):
            loud = np.abs(frame.to_ndarray()[0]) > 0.3
            starts = np.flatnonzero(loud & ~np.concatenate([[False], loud[:-1]]))
            onsets += [frame.time + i / frame.sample_rate for i in starts if i or not onsets
                       or frame.time - onsets[-1] > 0.01]  # not a click cut by two frames
    np.testing.assert_allclose(onsets, np.arange(15) / fps, atol=0.002)  # MKV: ms clock


@pytest.mark.parametrize(("layout", "codec", "note", "written"), [
    ("3.0", "pcm_s16le", "audio (pcm_s16le) left out", None),  # MKV: 3 channels, no order
    ("7.1", "pcm_s16le", "audio (pcm_s16le) re-encoded to AAC", ("aac", 8)),
    ("stereo", "libmp3lame", None, ("mp3", 2)),  # copied: its decoder is mp3float
])
def test_audio_is_copied_re_encoded_or_left_out_and_the_frames_written(tmp_path, layout, codec,
                                                                       note, written):
    import av

    channels = len(av.AudioLayout(layout).channels)
    with av.open(str(tmp_path / "source.mkv"), "w") as container:
        video = container.add_stream("libx264", rate=30)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = container.add_stream(codec, rate=48000, layout=layout)
        for i in range(0, 4800, 1200):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1200 * channels), np.int16), "s16",
                                               layout)
            frame.sample_rate, frame.pts = 48000, i
            container.mux(audio.encode(frame))
        container.mux(audio.encode(None))
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), "rgb24")
            frame.pts = i
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
    with VideoWriter(tmp_path / "out.mp4", 30, audio_from=tmp_path / "source.mkv") as output:
        for _ in range(3):
            output.write(np.zeros((48, 64, 3), np.float32))
    assert [n[:len(note)] for n in output.notes] == ([note] if note else [])
    with av.open(str(tmp_path / "out.mp4")) as container:
        assert container.streams.video[0].frames == 3
        assert [(s.codec_context.codec.canonical_name, len(s.layout.channels))
                for s in container.streams.audio] == ([written] if written else [])


@pytest.mark.parametrize(("start", "shown"), [(25, 30), (0, 30)])
def test_an_mp4_trimmed_by_its_edit_list_has_the_frames_it_shows(tmp_path, start, shown):
    # A phone's trim: an edit list showing one second from frame `start` of 60 (keyframes at
    # 0, 20, 40), whose index FFmpeg keeps only in part: neither cut short nor a cut before a
    # keyframe.
    import struct

    scale = 1 / _ramp_mp4(tmp_path / "whole.mp4", 60, 128, 96, 4, {"g": "20", "bf": "3"})
    data = bytearray((tmp_path / "whole.mp4").read_bytes())
    entry = data.find(b"elst") + 12  # version 0, one entry: duration, media time
    duration, media_time = struct.unpack(">Ii", data[entry:entry + 8])
    data[entry:entry + 8] = struct.pack(">Ii", duration // 2, media_time + round(start / 30
                                                                                * scale))
    (tmp_path / "trim.mp4").write_bytes(bytes(data))
    trimmed = Footage(tmp_path / "trim.mp4")
    assert trimmed.count == shown
    first = next(trimmed.frames(np.array([1])))[1]
    assert abs(float(first.mean()) * 255 - start * 4) < 3  # the frame the edit begins on


def test_a_trimmed_mp4_is_told_from_one_cut_short(tmp_path):
    # Edit lists that show less than the file holds: its end (the demuxer then drops the
    # last keyframe from its index), or a second from frame 25 of 60; the latter cut short.
    import struct

    scale = 1 / _ramp_mp4(tmp_path / "whole.mp4", 61, 64, 48, 4, {"g": "1"},
                          {"movflags": "faststart"})
    whole = (tmp_path / "whole.mp4").read_bytes()
    entry = whole.find(b"elst") + 12  # version 0, one entry: duration, media time
    duration, media_time = struct.unpack(">Ii", whole[entry:entry + 8])
    for name, edit in (("end", (round(duration * (61 - 1.4) / 61), media_time)),
                       ("second", (duration * 30 // 61, media_time + round(25 / 30 * scale)))):
        data = bytearray(whole)
        data[entry:entry + 8] = struct.pack(">Ii", *edit)
        (tmp_path / f"{name}.mp4").write_bytes(bytes(data))
    assert Footage(tmp_path / "end.mp4").count == 60
    assert Footage(tmp_path / "second.mp4").count == 30
    data = (tmp_path / "second.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[:len(data) * 6 // 10])
    with pytest.raises(InputError, match=r"cut\.mp4: truncated video: its frames end at "
                                         r"0\.\d\d s, its header says 1\.00 s$"):
        Footage(tmp_path / "cut.mp4")


def test_an_avi_with_dropped_frames_has_the_frames_it_holds(tmp_path):
    # A dropped frame is an empty chunk, which the header counts; no frame decodes from it.
    import av

    with av.open(str(tmp_path / "drop.avi"), "w") as container:
        stream = container.add_stream("mjpeg", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuvj420p"
        for pts in (0, 1, 2, 4, 5, 6):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), pts * 30, np.uint8), "rgb24")
            frame.pts = pts
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    footage = Footage(tmp_path / "drop.avi")
    assert footage.count == 6
    assert len(list(footage.frames(np.arange(1, 7)))) == 6


def test_a_fragmented_mp4_has_all_its_frames(tmp_path):
    # Its index lists the first fragment's frames only; the others follow in fragments.
    _ramp_mp4(tmp_path / "frag.mp4", 30, 64, 48, 8, {"g": "10"}, {"movflags": "frag_keyframe"})
    footage = Footage(tmp_path / "frag.mp4")
    assert footage.count == 30
    last = next(footage.frames(np.array([30])))[1]
    assert abs(float(last.mean()) * 255 - 29 * 8) < 3


def test_a_written_video_puts_its_video_first_and_takes_its_quality(tmp_path):
    import av

    _mkv(tmp_path / "sound.mkv", 12, audio_seconds=0.4)
    rng = np.random.default_rng(1)
    frames = [rng.random((48, 64, 3)).astype(np.float32) for _ in range(12)]
    for crf in (0, 40):
        with VideoWriter(tmp_path / f"out{crf}.mp4", 30, tmp_path / "sound.mkv", crf) as video:
            for frame in frames:
                video.write(frame)
        with av.open(str(tmp_path / f"out{crf}.mp4")) as container:
            # Stream 0 is the video: tools that map the first stream get the picture.
            assert [s.type for s in container.streams] == ["video", "audio"]
    # A lower CRF is the finer picture: the larger file (noise is costly to keep).
    assert (tmp_path / "out0.mp4").stat().st_size > 3 * (tmp_path / "out40.mp4").stat().st_size


def test_write_image_takes_what_float_image_takes_and_refuses_the_rest(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.random((6, 9, 3)).astype(np.float32)
    write_image(tmp_path / "u8.png", np.round(image * 255).astype(np.uint8))
    assert np.abs(read_image(tmp_path / "u8.png") - image).max() <= 0.5 / 255 + 1e-6
    write_image(tmp_path / "gray.png", image[..., 0])  # (H, W): gray, not mirrored
    assert read_image_and_format(tmp_path / "gray.png")[1].gray
    gray = read_image(tmp_path / "gray.png")[..., 1]
    assert np.abs(gray - image[..., 0]).max() <= 0.5 / 255 + 1e-6
    with pytest.raises(ValueError, match=r"float values must lie in \[0, 1\]"):
        write_image(tmp_path / "x.png", image * 255)
    with pytest.raises(ValueError, match="non-finite"):
        write_image(tmp_path / "x.png", np.full_like(image, np.nan))
    with pytest.raises(InputError, match="noext: no image format to write"):
        write_image(tmp_path / "noext", image)
    with pytest.raises(ValueError, match="integer images must be uint8 or uint16, got int64"):
        write_image(tmp_path / "x.png", np.round(image * 255).astype(np.int64))
    with pytest.raises(ValueError, match=r"must be \(H, W, 3\) RGB, got shape \(0, 0, 3\)"):
        write_image(tmp_path / "x.png", np.zeros((0, 0, 3), np.float32))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gray.png", "u8.png"]


def test_a_failed_image_write_names_the_file_and_the_reason(tmp_path, monkeypatch):
    image = np.zeros((4, 6, 3), np.float32)
    with pytest.raises(OSError, match=r"No such file or directory: .*missing/x\.png"):
        write_image(tmp_path / "missing" / "x.png", image)

    def full_disk(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # write() names no file

    monkeypatch.setattr(Path, "write_bytes", full_disk)
    with pytest.raises(OSError, match=r"No space left on device: .*full\.png"):
        write_image(tmp_path / "full.png", image)


def test_a_raw_stream_takes_its_rate_from_the_frame_timing(tmp_path):
    import av

    from gyrodeblur.footage import frame_rate

    with av.open(str(tmp_path / "raw.h264"), "w", format="h264") as container:
        video = container.add_stream("libx264", rate=30)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        for _ in range(4):
            image = np.zeros((48, 64, 3), np.uint8)
            container.mux(video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(video.encode(None))
    footage = Footage(tmp_path / "raw.h264")
    assert footage.count == 4 and footage.fps == 0  # not FFmpeg's guess of 25
    timing = FrameTiming(np.arange(1, 5), np.arange(4) / 30, np.full(4, 0.01))
    assert frame_rate(footage, timing) == 30


@pytest.mark.parametrize(("pix_fmt", "gray"), [("gray", True), ("gray16le", True),
                                               ("yuv420p", False)])
def test_a_gray_videos_frames_are_stored_gray(tmp_path, pix_fmt, gray):
    import av

    with av.open(str(tmp_path / "v.mkv"), "w") as container:
        video = container.add_stream("ffv1", rate=30)
        video.width, video.height, video.pix_fmt = 64, 48, pix_fmt
        for i in range(2):
            image = np.full((48, 64), 40 * (i + 1), np.uint8)
            container.mux(video.encode(av.VideoFrame.from_ndarray(image, format="gray")))
        container.mux(video.encode(None))
    footage = Footage(tmp_path / "v.mkv")
    assert footage.stored_format(1).gray is gray and footage.stored_format(1).dtype is np.uint8


def test_a_corrupt_frame_is_named_in_ffmpegs_words_after_the_frames_before_it(tmp_path):
    import av

    path = _noise_mp4(tmp_path / "c.mp4", 8, 64, 48)
    with av.open(str(path)) as container:
        packets = [(p.pos, p.size) for p in container.demux(video=0) if p.size]
    data = bytearray(path.read_bytes())
    pos, size = packets[6]  # a late packet: the probe decodes the first frames
    data[pos:pos + size] = b"\xff" * size
    path.write_bytes(bytes(data))
    read = []
    with pytest.raises(InputError, match=r"c\.mp4: corrupt video at frame \d \(Invalid data "
                                         r"found when processing input\)$") as error:
        read.extend(number for number, _ in Footage(path).frames(np.arange(1, 9)))
    bad = int(str(error.value).split("at frame ")[1][0])
    assert bad > 1 and read == list(range(1, bad))  # the frames before it, in order


def test_copied_audio_keeps_the_two_packets_before_the_first_frame_whatever_their_duration():
    # MKV's ALAC: no durations. Kept: the packet that plays across the first frame's time
    # and the one before it, which the decoder needs; cut ones never.
    from fractions import Fraction
    from types import SimpleNamespace

    from gyrodeblur.footage import _from_start

    def packets():
        return iter([SimpleNamespace(pts=t, dts=t, duration=0, is_corrupt=t == 1300,
                                     time_base=Fraction(1, 1000))
                     for t in (800, 900, 985, 1071, 1300, 1400)])

    assert [p.pts for p in _from_start(packets(), 1.0)] == [-100, -15, 71, 400]
    assert [p.pts for p in _from_start(packets(), 0.0)] == [800, 900, 985, 1071, 1400]


@pytest.mark.parametrize("codec", ["aac", "pcm_s16le"])
def test_audio_that_ends_before_the_first_frame_is_said_left_out(tmp_path, codec):
    import av

    with av.open(str(tmp_path / "early.mov"), "w") as container:
        video = container.add_stream("libx264", rate=30)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = container.add_stream(codec, rate=48000, layout="mono")
        for i in range(0, 9600, 1024):  # 0.2 s, then the frames from 1 s on
            samples = np.zeros((1, 1024), np.int16 if codec == "pcm_s16le" else np.float32)
            frame = av.AudioFrame.from_ndarray(samples, "s16" if codec == "pcm_s16le" else
                                               "fltp", "mono")
            frame.sample_rate, frame.pts = 48000, i
            container.mux(audio.encode(frame))
        container.mux(audio.encode(None))
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), "rgb24")
            frame.pts = 30 + i
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
    with VideoWriter(tmp_path / "out.mp4", 30, audio_from=tmp_path / "early.mov") as output:
        for _ in range(3):
            output.write(np.zeros((48, 64, 3), np.float32))
    assert output.notes == ["audio left out: none of it plays from the first frame on"]
    assert Footage(tmp_path / "out.mp4").count == 3


@pytest.mark.parametrize("pixel_format", ["gray16le", "rgb48le"])
def test_16_bit_video_frames_round_to_their_8_bit_levels(tmp_path, pixel_format):
    import av

    from gyrodeblur.footage import frame_to_rgb

    levels = np.tile(np.arange(256, dtype=np.uint16) * 257, (2, 1))  # X * 257 is X in 8 bits
    pixels = levels if pixel_format == "gray16le" else np.stack([levels] * 3, axis=-1)
    with av.open(str(tmp_path / "v.mkv"), "w") as container:
        stream = container.add_stream("ffv1", rate=10)
        stream.width, stream.height, stream.pix_fmt = 256, 2, pixel_format
        for packet in [*stream.encode(av.VideoFrame.from_ndarray(pixels, format=pixel_format)),
                       *stream.encode()]:
            container.mux(packet)
    with av.open(str(tmp_path / "v.mkv")) as container:
        rgb = frame_to_rgb(next(container.decode(video=0)))
    np.testing.assert_array_equal(rgb, np.broadcast_to(np.arange(256)[None, :, None], (2, 256, 3)))
