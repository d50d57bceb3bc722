"""Footage: frames from a video or a folder of images, their exposure timing, video output.

Frames are streamed one at a time (never the whole video in memory) as float32 RGB in
``[0, 1]``. Timing comes from a frames CSV (``frame,t_start,exposure``, seconds on the frame
clock), for the GyroVD layout from the frame file names, or for a video from its frame
timestamps and a given exposure time. :class:`VideoWriter` encodes H.264 through PyAV.
"""

from __future__ import annotations

import collections
import csv
import re
import struct
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numba
import numpy as np

from gyrodeblur.errors import InputError
from gyrodeblur.fileio import atomic_path, unreadable_because, write_error

if TYPE_CHECKING:
    import av
    import torch

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".ppm", ".pgm", ".webp"}
# GyroVD: NNNNNN_<exp_start_first>_<exp_start_last>_<exp_end>_..., times in ns, gyro clock.
_GYROVD_NAME = re.compile(r"^(\d+)_(\d+)_(\d+)_(\d+)_")

# Column names accepted for each field; the first is the documented one.
_START_COLUMNS = ("t_start", "t_sof")
_EXPOSURE_COLUMNS = {"exposure": 1.0, "exposure_s": 1.0, "exposure_ns": 1e-9}


def frames_text(numbers: np.ndarray) -> str:
    """Sorted frame numbers in a few words, for messages.

    Example:
        >>> frames_text(np.array([4])), frames_text(np.arange(1, 90)), frames_text([1, 3, 5])
        ('frame 4', 'frames 1..89', 'frames 1, 3, 5')
        >>> frames_text([1, 3, 5, 7, 9, 99])
        '6 frames from 1 to 99'
    """
    numbers = np.asarray(numbers)
    if len(numbers) == 1:
        return f"frame {numbers[0]}"
    if numbers[-1] - numbers[0] + 1 == len(numbers):
        return f"frames {numbers[0]}..{numbers[-1]}"
    if len(numbers) <= 5:
        return "frames " + ", ".join(map(str, numbers))
    return f"{len(numbers)} frames from {numbers[0]} to {numbers[-1]}"


@dataclass(frozen=True)
class FrameTiming:
    """Exposure timing of frames.

    Attributes:
        frame: ``(F,)`` int frame numbers, 1-based positions in the footage.
        t_start: ``(F,)`` float64 exposure start of the first-read row, frame clock (s).
        exposure: ``(F,)`` float64 exposure time (s).
        source: where the timing came from (for messages).
    """

    frame: np.ndarray
    t_start: np.ndarray
    exposure: np.ndarray
    source: str = ""

    def __post_init__(self) -> None:
        given = np.asarray(self.frame)
        for name, dtype in (("frame", np.int64), ("t_start", np.float64),
                            ("exposure", np.float64)):  # copies: the caller's may change
            with np.errstate(invalid="ignore"):
                object.__setattr__(self, name, np.array(getattr(self, name), dtype))
        if self.frame.shape == given.shape and not np.array_equal(self.frame, given):
            raise ValueError(f"frame numbers must be whole numbers, got "
                             f"{given[self.frame != given][:3].tolist()}")
        if not (self.frame.ndim == 1 and self.frame.shape == self.t_start.shape
                == self.exposure.shape and len(self.frame)):
            raise ValueError(f"frame, t_start and exposure must be 1-D of one length >= 1, got "
                             f"{self.frame.shape}, {self.t_start.shape}, {self.exposure.shape}")
        if np.any(np.diff(self.frame) <= 0) or self.frame[0] < 1:
            raise ValueError("frame numbers must be increasing from 1 or more")
        if not (np.isfinite(self.t_start).all() and np.isfinite(self.exposure).all()
                and (self.exposure > 0).all()):
            raise ValueError("t_start must be finite and exposure positive")
        if np.any(np.diff(self.t_start) <= 0):
            raise ValueError("t_start must increase with the frame numbers")

    def __len__(self) -> int:
        return len(self.frame)

    def interval(self) -> float:
        """The median time between frames (s), per frame number: frames left out (dropped,
        or not in a frames CSV) do not lengthen it. A single frame has none: ``nan``.

        Example:
            >>> FrameTiming([1, 2, 4], [0.0, 0.1, 0.3], [0.01] * 3).interval()
            0.1
        """
        if len(self) < 2:
            return float("nan")
        return float(np.median(np.diff(self.t_start) / np.diff(self.frame)))

    def check_has(self, numbers: Iterable[int]) -> None:
        """Raise :class:`InputError` unless there are ``numbers`` and each is a frame here.

        Example:
            >>> FrameTiming([1, 3], [0.0, 0.1], [0.01, 0.01], "f.csv").check_has([3, 4, 5])
            Traceback (most recent call last):
            ...
            gyrodeblur.errors.InputError: f.csv: no times for frames 4..5 (it has frames 1, 3)
        """
        numbers = np.unique(np.asarray(numbers, np.int64))
        if not numbers.size:
            raise InputError(self.source, "no frames asked for")
        missing = np.setdiff1d(numbers, self.frame)
        if missing.size:
            raise InputError(self.source, f"no times for {frames_text(missing)} (it has "
                                          f"{frames_text(self.frame)})")

    def select(self, first: int | None, last: int | None) -> FrameTiming:
        """The frames numbered ``first..last`` (inclusive; ``None`` leaves a side open).

        Example:
            >>> FrameTiming([1, 2], [0.0, 0.1], [0.01, 0.01], "f.csv").select(4, None)
            Traceback (most recent call last):
            ...
            gyrodeblur.errors.InputError: f.csv: no frame numbered 4 or later (frames 1..2)
        """
        keep = np.ones(len(self), bool)
        if first is not None:
            keep &= self.frame >= first
        if last is not None:
            keep &= self.frame <= last
        if not keep.any():
            asked = (f"up to {last}" if first is None else f"{first} or later" if last is None
                     else f"{first}..{last}")
            raise InputError(self.source, f"no frame numbered {asked} "
                                          f"({frames_text(self.frame)})")
        return FrameTiming(self.frame[keep], self.t_start[keep], self.exposure[keep], self.source)


# A day of 1000 fps video: larger frame numbers are misread columns, and overflow int64 casts.
_MAX_FRAME = 10 ** 8


def read_frames_csv(path: str | Path) -> FrameTiming:
    """Read a frames CSV: ``frame,t_start,exposure`` (seconds, frame clock), one row a frame.

    Also accepted: ``t_sof`` for ``t_start``; ``exposure_s``, ``exposure_ns`` or a ``t_end``
    column for the exposure; names in any case; lines starting with ``#`` (comments). Frame
    numbers are 1-based positions in the footage (a file numbering from 0 is shifted by one).

    Raises:
        InputError: missing columns, NaN, non-positive exposure, unsorted or duplicated frames.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "frames.csv"
        >>> _ = path.write_text("frame,t_start,exposure\\n0,0.000,0.01\\n1,0.033,0.01\\n")
        >>> timing = read_frames_csv(path)
        >>> timing.frame.tolist(), timing.t_start.tolist()  # numbered from 1
        ([1, 2], [0.0, 0.033])
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, skipinitialspace=True)
            # Blank and comment lines skipped (as in a gyro CSV), each row keeps its line
            # number for the messages.
            numbered = [(reader.line_num, row) for row in reader
                        if any(row) and not row[0].lstrip().startswith("#")]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise InputError(path, f"cannot read frames CSV ({e})") from None
    if len(numbered) < 2:
        raise InputError(path, "no frames in the CSV")
    header = [name.strip().lower() for name in numbered[0][1]]
    sep = next((sep for sep in ";\t" if len(header) == 1 and sep in header[0]), None)
    if sep is not None:
        raise InputError(path, f"fields separated by {sep!r}: separate them by commas")
    line_of = np.array([line for line, _ in numbered[1:]])
    table = [row for _, row in numbered]
    for line, row in numbered[1:]:
        if len(row) != len(header):
            raise InputError(path, f"line {line} has {len(row)} fields, the header "
                                   f"{len(header)} ({','.join(header)})")
    rows = [dict(zip(header, row, strict=True)) for row in table[1:]]
    columns = set(header)
    start_col = next((c for c in _START_COLUMNS if c in columns), None)
    exp_col = next((c for c in _EXPOSURE_COLUMNS if c in columns), None)
    missing = [name for name, col in (("frame", "frame" if "frame" in columns else None),
                                      ("t_start", start_col),
                                      ("exposure", exp_col or ("t_end" if "t_end" in columns
                                                               else None))) if col is None]
    if missing:
        raise InputError(path, f"missing column(s) {', '.join(missing)}; "
                               f"expected frame,t_start,exposure (found {','.join(rows[0])})")

    def column(name: str) -> np.ndarray:
        try:
            return np.array([float(r[name]) for r in rows])
        except (TypeError, ValueError) as e:
            raise InputError(path, f"column {name}: {e}") from None

    frame, t_start = column("frame"), column(start_col)
    exposure = (column(exp_col) * _EXPOSURE_COLUMNS[exp_col] if exp_col
                else column("t_end") - t_start)
    for name, values in (("frame", frame), (start_col, t_start), ("exposure", exposure)):
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise InputError(path, f"NaN or infinite {name} at line {line_of[bad[0]]}")
    if np.any(frame != np.round(frame)):
        raise InputError(path, "frame numbers must be integers")
    if np.any(frame > _MAX_FRAME):
        raise InputError(path, f"frame number {frame.max():.0f} at line "
                               f"{line_of[np.argmax(frame > _MAX_FRAME)]} is beyond any footage")
    if np.any(exposure <= 0):
        raise InputError(path, f"non-positive exposure at line {line_of[np.argmax(exposure <= 0)]}")
    for name, values in (("frame numbers", frame), ("t_start", t_start)):
        steps = np.diff(values)
        if np.any(steps == 0):
            raise InputError(path, f"duplicated {name} at line "
                                   f"{line_of[np.argmax(steps == 0) + 1]}")
        if np.any(steps < 0):
            raise InputError(path, f"{name} not increasing at line "
                                   f"{line_of[np.argmax(steps < 0) + 1]}")
    frame = frame.astype(np.int64)
    if frame[0] == 0:
        frame = frame + 1
    if frame[0] < 1:
        raise InputError(path, f"negative frame number {frame[0]}: frames are numbered from 1 "
                               "(or 0) in footage order")
    timing = FrameTiming(frame, t_start, exposure, str(path))
    check_timing_units(timing)
    return timing


def write_frames_csv(timing: FrameTiming, path: str | Path) -> None:
    """Write ``timing`` as a frames CSV (:func:`read_frames_csv` reads it back), atomically.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "frames.csv"
        >>> write_frames_csv(FrameTiming([1, 2], [0.5, 0.5333], [0.01, 0.01]), path)
        >>> read_frames_csv(path).t_start.tolist()
        [0.5, 0.5333]
    """
    rows = [f"{n},{s:.9f},{e:.9f}\n"
            for n, s, e in zip(timing.frame, timing.t_start, timing.exposure, strict=True)]
    with atomic_path(path) as tmp:
        tmp.write_text("frame,t_start,exposure\n" + "".join(rows))


MAX_EXPOSURE = 1.0
"""s: a video frame's exposure is shorter (one of several seconds is a unit error)."""
MAX_FRAME_INTERVAL = 60.0
"""s: frames further apart (a slower time-lapse than one a minute) are a unit error."""


def check_timing_units(timing: FrameTiming, readout_time: float = 0.0,
                       camera_source: str | Path | None = None,
                       readout_hint: str = "is it in seconds?") -> None:
    """Refuse an exposure or readout longer than the frame interval, an exposure above
    ``MAX_EXPOSURE`` or frames further apart than ``MAX_FRAME_INTERVAL``: unit errors (ms,
    ns).

    A video frame's exposure and its sensor readout both fit in the time between frame
    starts; the median interval is used, so dropped frames do not hide a unit error. A wrong
    readout is blamed on ``camera_source`` with ``readout_hint``.
    """
    longest = float(timing.exposure.max())
    if longest > MAX_EXPOSURE:
        raise InputError(timing.source, f"exposure {longest:.6g} s, over {MAX_EXPOSURE:g} s: "
                                        "no video frame's; is it in seconds (not ms, us or "
                                        "ns)?")
    if len(timing.frame) < 2:
        return
    interval = timing.interval()
    if interval > MAX_FRAME_INTERVAL:
        raise InputError(timing.source, f"frames {interval:.6g} s apart (median): is t_start in "
                                        "seconds (not ms, us or ns)?")
    for name, value, source, hint in (
            ("exposure", longest, timing.source, "is it in seconds?"),
            ("readout time", readout_time, camera_source, readout_hint)):
        if value > 1.05 * interval:
            raise InputError(source, f"{name} {value:.6g} s is longer than the frame interval "
                                     f"{interval:.6g} s: {hint}")


def natural_order(path: Path) -> list:
    """Sort key of file names with their numbers compared as numbers: ``f2`` before ``f10``.

    Example:
        >>> [p.name for p in sorted(map(Path, ["f10.png", "f2.png", "f1.png"]), key=natural_order)]
        ['f1.png', 'f2.png', 'f10.png']
    """
    # Numbers at the odd places of the split: "²" passes isdigit() but is no \d (nor int()).
    return [int(part) if i % 2 else part
            for i, part in enumerate(re.split(r"(\d+)", path.name))]


def image_files(folder: Path) -> list[Path]:
    """The images of ``folder`` in natural order; hidden files (``.name``: thumbnails, macOS
    ``._`` resource forks) are not frames.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> for name in ("f10.png", "f2.png", ".f1.png", "notes.txt"):
        ...     _ = (folder / name).write_bytes(b"")
        >>> [p.name for p in image_files(folder)]
        ['f2.png', 'f10.png']
    """
    return sorted((p for p in folder.iterdir()
                   if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")),
                  key=natural_order)


def hidden_under(path: Path, root: Path) -> bool:
    """Whether ``path`` or a folder between ``root`` and it is hidden (a name starting with
    a dot: a writer's unfinished ``.part``, a ``._`` resource fork), so not data.

    Example:
        >>> hidden_under(Path("d/.clip_1.part/frames.csv"), Path("d")), hidden_under(
        ...     Path("d/clip_1/frames.csv"), Path("d"))
        (True, False)
    """
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def gyrovd_frames(folder: Path) -> tuple[list[Path], FrameTiming] | None:
    """Frames and timing of a GyroVD sequence folder (``blur/`` with times in the names)."""
    blur = folder / "blur"
    if not blur.is_dir():
        return None
    files = image_files(blur)
    matches = [_GYROVD_NAME.match(p.name) for p in files]
    if not files or not all(matches):
        return None
    ns = np.array([[int(g) for g in m.groups()] for m in matches], dtype=np.int64)
    try:
        timing = FrameTiming(np.arange(1, len(files) + 1), ns[:, 1] * 1e-9,
                             (ns[:, 3] - ns[:, 2]) * 1e-9, str(blur))
    except ValueError as e:  # times out of order, exposures that end before they start
        raise InputError(blur, f"the times in its file names: {e}") from None
    return files, timing


def _portrait_camera(folder: Path) -> bool:
    """Whether a GyroVD sequence folder's ``meta_info`` camera is taller than wide."""
    from gyrodeblur.geometry.camera import load_camera

    try:
        camera = load_camera(folder / "meta_info")
    except InputError:
        return False
    return camera.height > camera.width


def to_float(image: np.ndarray) -> np.ndarray:
    """An image as float32 in ``[0, 1]``: uint8 and uint16 scaled, float32 as it is.

    Raises:
        ValueError: other integer types, whose scale no image format says.

    Example:
        >>> to_float(np.array([0, 255], np.uint8)).tolist()
        [0.0, 1.0]
    """
    if image.dtype.kind in "iub" and image.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"integer images must be uint8 or uint16, got {image.dtype}")
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255
    if image.dtype == np.uint16:
        return image.astype(np.float32) / 65535
    return image.astype(np.float32, copy=False)


def float_image(image: np.ndarray | torch.Tensor | list, what: str = "image"
                ) -> np.ndarray:
    """An ``(H, W, 3)`` image given to the Python API (a NumPy array, a CPU tensor or nested
    lists) as float32 sRGB in ``[0, 1]``: uint8 and uint16 scaled as :func:`to_float` does,
    floats kept as they are.

    Raises:
        ValueError: not ``(H, W, 3)``, non-finite values, or float values far outside
            ``[0, 1]`` (:func:`check_unit_range`).

    Example:
        >>> float_image(np.full((1, 2, 3), 255, np.uint8)).max()
        np.float32(1.0)
        >>> float_image(np.full((1, 2, 3), 255.0))
        Traceback (most recent call last):
        ...
        ValueError: image: float values must lie in [0, 1], got 255 to 255 (0..255 floats?)
    """
    # Contiguous: a view such as OpenCV's BGR turned RGB (``[..., ::-1]``) has negative
    # strides, which torch.from_numpy refuses.
    image = np.asarray(image)
    if image.dtype.kind in "iub" and image.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"{what}: integer images must be uint8 or uint16, got {image.dtype}")
    image = np.ascontiguousarray(to_float(image))
    if image.ndim != 3 or image.shape[2] != 3 or not image.size:
        raise ValueError(f"{what}: must be (H, W, 3) RGB, got shape {image.shape}")
    if not np.isfinite(image).all():
        raise ValueError(f"{what}: has non-finite values")
    check_unit_range(image, what)
    return image


def resize_frame(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """``image`` at ``width x height``: averaged over each new pixel's area where it shrinks
    (no aliasing), bilinear where it grows (OpenCV's area mode copies pixels there, blocks
    that a deblurrer would take for detail); by pixel count, for resizes of one view.

    Example:
        >>> resize_frame(np.array([[0.0, 1.0, 2.0, 3.0]]), 2, 1)  # pixel pairs averaged
        array([[0.5, 2.5]])
        >>> resize_frame(np.array([[0.0, 4.0]]), 4, 1)  # pixel centres kept: 0 at x = 0.5
        array([[0., 1., 3., 4.]])
    """
    shrinks = width * height < image.shape[0] * image.shape[1]
    return cv2.resize(image, (width, height),
                      interpolation=cv2.INTER_AREA if shrinks else cv2.INTER_LINEAR)


def check_unit_range(image: np.ndarray, what: str = "image") -> None:
    """Refuse float values far outside ``[0, 1]`` (beyond ``[-0.5, 1.5]``: most likely an
    image of 0..255 given as floats; slightly out-of-range values, as unclamped network
    outputs have, pass) and NaN or infinite ones. Integer images are not checked.

    Example:
        >>> check_unit_range(np.array([-0.01, 1.02]))
        >>> check_unit_range(np.array([0.0, 200.0]), "frame 3")
        Traceback (most recent call last):
        ...
        ValueError: frame 3: float values must lie in [0, 1], got 0 to 200 (0..255 floats?)
    """
    if image.dtype.kind != "f" or not image.size:
        return
    low, high = float(image.min()), float(image.max())
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError(f"{what}: NaN or infinite values")
    if low < -0.5 or high > 1.5:
        hint = " (0..255 floats?)" if high > 1.5 else ""
        raise ValueError(f"{what}: float values must lie in [0, 1], got {low:.4g} to "
                         f"{high:.4g}{hint}")


@dataclass(frozen=True)
class StoredFormat:
    """How an image file stores its pixels, so that an output can be stored the same way.

    Attributes:
        dtype: ``np.uint8`` or ``np.uint16``.
        gray: one channel, or gray and alpha (the output is written as the mean of its RGB
            channels; with alpha as equal RGB channels, OpenCV writing no gray-alpha files).
        alpha: the ``(H, W)`` alpha channel as stored, or None; written back unchanged.
        exif: the file's EXIF block (camera, time, orientation...), or None; written back
            unchanged into JPEG and PNG outputs.
    """

    dtype: type = np.uint8
    gray: bool = False
    alpha: np.ndarray | None = None
    exif: np.ndarray | None = None

    def turned(self, quarters: int) -> StoredFormat:
        """The format of the pixels turned ``quarters`` quarter turns counter-clockwise to be
        upright: the alpha turned alike, the EXIF orientation set to upright.

        Example:
            >>> alpha = np.zeros((2, 3), np.uint8)
            >>> StoredFormat(alpha=alpha).turned(1).alpha.shape
            (3, 2)
        """
        if quarters % 4 == 0:
            return self
        alpha = None if self.alpha is None else np.ascontiguousarray(
            np.rot90(self.alpha, quarters))
        exif = None if self.exif is None else _exif_with_orientation(self.exif, 1)
        return StoredFormat(self.dtype, self.gray, alpha, exif)


# EXIF orientation (tag 274) -> display rotation in degrees counter-clockwise; the mirrored
# orientations (2, 4, 5, 7) are rare outside scanners and are kept as stored.
_EXIF_ROTATION = {1: 0, 3: 180, 6: -90, 8: 90}


def _exif_orientation_at(exif: np.ndarray) -> tuple[int, str, int] | None:
    """Where the orientation lies in ``exif`` (a TIFF block, as OpenCV gives it, or a whole
    TIFF file), the block's byte order and the orientation, or None when it has none."""
    return _tiff_short_at(exif, 0x0112)


def _tiff_short_at(exif: np.ndarray, wanted: int) -> tuple[int, str, int] | None:
    """Where the SHORT tag ``wanted`` of the first IFD of ``exif`` (a TIFF block or file)
    lies, the block's byte order and the value, or None when it has none."""
    data = memoryview(np.ascontiguousarray(exif, np.uint8)).cast("B")  # no copy of a file
    if bytes(data[:4]) not in (b"II*\0", b"MM\0*"):
        return None
    order = "<" if bytes(data[:2]) == b"II" else ">"
    try:
        (ifd,) = struct.unpack_from(order + "I", data, 4)
        (entries,) = struct.unpack_from(order + "H", data, ifd)
        for entry in range(ifd + 2, ifd + 2 + 12 * entries, 12):
            tag, kind = struct.unpack_from(order + "HH", data, entry)
            if tag == wanted and kind == 3:  # a SHORT
                (value,) = struct.unpack_from(order + "H", data, entry + 8)
                return entry + 8, order, value
    except struct.error:  # a truncated block: no tag to read
        return None
    return None


def exif_rotation(exif: np.ndarray | None) -> int:
    """The display rotation an EXIF block asks for, degrees counter-clockwise (as
    :attr:`Footage.rotation`): 0 without an orientation.

    Example:
        >>> block = b"II*\\0" + struct.pack("<IHHHIHHI", 8, 1, 0x0112, 3, 1, 6, 0, 0)
        >>> exif_rotation(np.frombuffer(block, np.uint8))  # 6: shown turned clockwise
        -90
    """
    found = None if exif is None else _exif_orientation_at(exif)
    return 0 if found is None else _EXIF_ROTATION.get(found[2], 0)


def _exif_with_orientation(exif: np.ndarray, value: int) -> np.ndarray:
    """A copy of ``exif`` with its orientation (when it has one) set to ``value``."""
    found = _exif_orientation_at(exif)
    if found is None:
        return exif
    offset, order, _ = found
    data = bytearray(exif.tobytes())
    struct.pack_into(order + "H", data, offset, value)
    return np.frombuffer(bytes(data), np.uint8)


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _decode_file(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """The pixels of an 8- or 16-bit image file as stored (BGR order; an EXIF orientation is
    not applied) and its EXIF block, if any."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "a folder, not an image" if path.is_dir() else
                         unreadable_because(path))
    data = np.fromfile(path, np.uint8)
    if not data.size:  # OpenCV asserts on an empty buffer instead of returning None
        raise InputError(path, "empty file, not an image")
    if data[:8].tobytes() == _PNG_SIGNATURE and b"IEND" not in data[-1024:].tobytes():
        # Said here: libpng would print its own error on stderr besides ours.
        raise InputError(path, "corrupt or unreadable image (truncated PNG: no end chunk)")
    # A bad file gets our one-line error, not also OpenCV's warning on stderr.
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        image, kinds, chunks = cv2.imdecodeWithMetadata(data, cv2.IMREAD_UNCHANGED)
    finally:
        cv2.utils.logging.setLogLevel(level)
    if image is None or image.size == 0:
        raise InputError(path, "corrupt or unreadable image (truncated, or not an image "
                               "format OpenCV reads)")
    if image.dtype not in (np.uint8, np.uint16):
        raise InputError(path, f"{image.dtype} pixels: 8 or 16 bit integer images expected")
    exif = next((np.asarray(c, np.uint8).ravel() for k, c in zip(kinds, chunks, strict=True)
                 if k == cv2.IMAGE_METADATA_EXIF), None)
    if exif is None and (found := _exif_orientation_at(data)) is not None:
        # A TIFF's own orientation tag: OpenCV turns the pixels by it whatever the flags, and
        # gives no EXIF. Turned back to the stored grid, the tag is kept as an EXIF block.
        value = found[2]
        image = _UNDO_ORIENTATION.get(value, lambda a: a)(image)
        exif = np.frombuffer(b"II*\0" + struct.pack("<IHHHIHHI", 8, 1, 0x0112, 3, 1, value,
                                                      0, 0), np.uint8)
    if image.ndim == 2 and path.parent not in _ALPHA_NOT_READ and \
            (found := _tiff_short_at(data, 0x0115)) and found[2] == 2:
        # Samples per pixel: gray and alpha, of which OpenCV decodes the gray alone. Said
        # once per folder: not for each of a thousand frames.
        _ALPHA_NOT_READ.add(path.parent)
        warnings.warn(f"{path}: its alpha channel is not read (OpenCV reads a TIFF of gray and "
                      "alpha as gray): outputs have none", stacklevel=2)
    return image, exif


_ALPHA_NOT_READ: set[Path] = set()


#: The stored pixels from those turned for display by an EXIF/TIFF orientation (2-8).
_UNDO_ORIENTATION = {
    2: np.fliplr, 3: lambda a: np.rot90(a, 2), 4: np.flipud,
    5: lambda a: np.swapaxes(a, 0, 1), 6: lambda a: np.rot90(a, 1),
    7: lambda a: np.rot90(np.swapaxes(a, 0, 1), 2), 8: lambda a: np.rot90(a, -1)}
# Its inverse: the quarter turns the other way, the flips their own.
_APPLY_ORIENTATION = {**_UNDO_ORIENTATION, 6: _UNDO_ORIENTATION[8], 8: _UNDO_ORIENTATION[6]}


def _to_rgb(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_image(path: str | Path, native: bool = False) -> np.ndarray:
    """Read an image file as ``(H, W, 3)`` float32 sRGB in ``[0, 1]`` (8 or 16 bit), or with
    ``native`` as stored (uint8 or uint16: a quarter or half the memory)."""
    image = _to_rgb(_decode_file(path)[0])
    return image if native else to_float(image)


def read_image_and_format(path: str | Path) -> tuple[np.ndarray, StoredFormat]:
    """:func:`read_image` plus the file's :class:`StoredFormat` (bit depth, gray, alpha,
    EXIF)."""
    image, exif = _decode_file(path)
    alpha = image[..., 3] if image.ndim == 3 and image.shape[2] == 4 else None
    return to_float(_to_rgb(image)), StoredFormat(image.dtype.type, _is_gray(path, image),
                                                  alpha, exif)


def _is_gray(path: str | Path, image: np.ndarray) -> bool:
    """Whether the file stores gray: one channel, or a PNG of gray and alpha (which OpenCV
    decodes as BGRA; its header's colour type 4 tells it)."""
    if image.ndim == 2 or image.shape[2] != 4:
        return image.ndim == 2
    with open(path, "rb") as f:
        head = f.read(26)
    return head[:8] == _PNG_SIGNATURE and len(head) == 26 and head[25] == 4


# Formats whose OpenCV writers keep 16 bits and an alpha channel, and those that take EXIF.
_DEEP_SUFFIXES = {".png", ".tif", ".tiff"}
_EXIF_SUFFIXES = {".jpg", ".jpeg", ".png"}


def write_image(path: str | Path, image: np.ndarray, stored: StoredFormat | None = None
                ) -> None:
    """Write ``(H, W, 3)`` sRGB (float in ``[0, 1]``, or uint8 / uint16 as :func:`float_image`
    takes it; ``(H, W)``: gray) in the format of the suffix.

    8-bit RGB (16-bit for a uint16 image) unless ``stored`` (from
    :func:`read_image_and_format`) asks for gray, 16 bits or an alpha channel; 16 bits and
    alpha only where the file format has them (PNG, TIFF; 8-bit alpha in WebP, written
    lossless), EXIF in JPEG and PNG; in other formats the pixels are turned by the EXIF
    orientation, upright as it shows them.

    Raises:
        ValueError: an image :func:`float_image` refuses (0..255 floats, NaN, another shape).
        InputError: a suffix of no image format OpenCV writes, or an image it cannot encode.
        OSError: the file could not be written (a missing folder, a full disk...).
    """
    if not cv2.haveImageWriter(str(path)):
        raise InputError(path, "no image format to write (give a suffix: .png, .jpg, .tif...)")
    image = np.asarray(image)
    stored = stored or StoredFormat(np.uint16 if image.dtype == np.uint16 else np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
        stored = replace(stored, gray=True)
    image = float_image(image)
    suffix = Path(path).suffix.lower()
    deep = suffix in _DEEP_SUFFIXES
    dtype = stored.dtype if deep else np.uint8
    top = float(np.iinfo(dtype).max)
    pixels = image.mean(2) if stored.gray else image[..., ::-1]
    pixels = np.clip(pixels * top + 0.5, 0, top).astype(dtype)
    if stored.alpha is not None and (deep or suffix == ".webp"):
        if stored.gray:
            pixels = np.repeat(pixels[..., None], 3, axis=2)
        alpha = stored.alpha.astype(np.float64) * (top / np.iinfo(stored.alpha.dtype).max)
        pixels = np.dstack((pixels, np.round(alpha).astype(dtype)))
    if turns_upright(path, stored):
        # A format OpenCV writes no EXIF into (TIFF, WebP, BMP): the pixels turned as the
        # orientation says they are shown, not shown turned.
        pixels = _APPLY_ORIENTATION[_exif_orientation_at(stored.exif)[2]](pixels)
    pixels = np.ascontiguousarray(pixels)
    # Encoded in memory and written by Python: a failed write is an OSError with the
    # system's reason (a full disk...), where cv2.imwrite says only False (and libpng
    # prints to stderr).
    if stored.exif is not None and suffix in _EXIF_SUFFIXES:
        encoded, data = cv2.imencodeWithMetadata(suffix, pixels, [cv2.IMAGE_METADATA_EXIF],
                                                 [stored.exif])
    else:
        encoded, data = cv2.imencode(suffix, pixels)
    if not encoded:
        raise InputError(path, f"cannot encode this image as {suffix}")
    try:
        Path(path).write_bytes(data.tobytes())
    except OSError as e:  # a failed write() names no file
        raise write_error(Path(path), e, Path(path).parent) from None


def turns_upright(path: str | Path, stored: StoredFormat) -> bool:
    """Whether :func:`write_image` turns the pixels of ``stored`` upright in ``path``'s format
    (one without EXIF, as OpenCV writes it: TIFF, WebP, BMP): off the grid they were read on.

    Example:
        >>> block = np.frombuffer(b"II*\\0" + struct.pack("<IHHHIHHI", 8, 1, 0x0112, 3, 1, 6,
        ...                                               0, 0), np.uint8)
        >>> turned = StoredFormat(np.uint8, exif=block)
        >>> turns_upright("a.webp", turned), turns_upright("a.png", turned)
        (True, False)
    """
    found = None if stored.exif is None else _exif_orientation_at(stored.exif)
    return found is not None and found[2] in _APPLY_ORIENTATION and \
        Path(path).suffix.lower() not in _EXIF_SUFFIXES


def _reason(e: Exception) -> str:
    """FFmpeg's words for a failure, without the error number and file name PyAV adds."""
    return getattr(e, "strerror", None) or str(e)


def _video_stream(container, path: Path):
    """The first video stream of an open container that is no cover picture (an audio file's
    album art is a video stream of one frame), its decoder set to refuse damaged data: FFmpeg
    otherwise conceals it and decodes wrong frames without a word."""
    import av

    streams = [s for s in container.streams.video
               if not s.disposition & av.stream.Disposition.attached_pic]
    if not streams:
        raise InputError(path, "no video stream" + (" (only a cover picture)"
                                                    if container.streams.video else ""))
    streams[0].codec_context.options = {"err_detect": "explode"}
    return streams[0]


def _cut_short(declared: float, found: float, fps: float) -> bool:
    """Whether streams ending at ``found`` s fall short of a header's ``declared`` duration
    by more than the last frame or audio packet a muxer may leave out of the count."""
    return declared - found > (max(2 / fps, 0.05) if fps else 0.1)


class Footage:
    """Frames of a video file (anything PyAV opens) or a folder of images, streamed.

    A GyroVD sequence folder (with ``blur/`` frames named by their times) also carries its
    own :attr:`timing`; its landscape frames are turned 90 degrees clockwise when its
    ``meta_info`` camera is portrait, as the GyroVD code turns them (its gyro and intrinsics
    are in portrait orientation). Frames are otherwise as stored: a display rotation
    (``rotation``, degrees counter-clockwise: a video's, or the EXIF orientation of a folder's
    first image) is not applied, since the camera calibration and the gyro axes belong to the
    sensor's pixel grid. ``has_audio``: a video with an audio track; ``hdr``: a video in an
    HDR transfer (PQ, HLG), processed as its code values are, without tone mapping; ``fps``:
    a video's average frame rate (0 for folders and raw streams without timestamps).

    Raises:
        InputError: the path is missing, holds no images, or is not a readable video.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> for i in (1, 2, 10):  # frame order is the names' natural order
        ...     write_image(folder / f"f{i}.png", np.full((4, 6, 3), i / 10, np.float32))
        >>> footage = Footage(folder)
        >>> footage.count, footage.size, [round(float(im.mean()), 1)
        ...                               for _, im in footage.frames(np.array([2, 3]))]
        (3, (6, 4), [0.2, 1.0])
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.timing: FrameTiming | None = None
        self.files: list[Path] | None = None  # a folder's images, in frame order
        self._turn = False  # GyroVD landscape frames of a portrait camera
        self._gray = False  # a video of a gray pixel format
        if not (self.path.is_dir() or self.path.is_file()):
            raise InputError(self.path, unreadable_because(self.path, "no such file or folder"))
        if self.path.is_dir():
            gyrovd = gyrovd_frames(self.path)
            if gyrovd:
                self.files, self.timing = gyrovd
            else:
                self.files = image_files(self.path)
            if not self.files:
                raise InputError(self.path, "folder holds no images")
            first, exif = _decode_file(self.files[0])
            self.size = (first.shape[1], first.shape[0])
            if gyrovd and self.size[0] > self.size[1] and _portrait_camera(self.path):
                self._turn, self.size = True, self.size[::-1]
            self.count = len(self.files)
            self.rotation, self.has_audio, self.hdr = exif_rotation(exif), False, False
            self.fps = 0.0  # a folder's rate comes from its timing
        else:
            if self.path.stat().st_size == 0:
                raise InputError(self.path, "empty file, not a video")
            self._probe_video()
            if self.count == 0:
                raise InputError(self.path, "no decodable frame (corrupt or cut short)")

    def source(self, number: int) -> Path:
        """The file holding frame ``number`` (1-based): its image, or the video."""
        return self.path if self.files is None else self.files[number - 1]

    def stored_format(self, number: int, alpha: bool = True) -> StoredFormat:
        """How frame ``number`` (1-based) is stored: bit depth, grayness, EXIF and (with
        ``alpha``, for an output of the frame's size) alpha channel of its file (a video's
        frames: 8-bit, gray where its pixel format is), so that an output frame can be stored
        alike."""
        if self.files is None:
            return StoredFormat(gray=self._gray)
        image, exif = _decode_file(self.files[number - 1])
        kept = image[..., 3] if alpha and image.ndim == 3 and image.shape[2] == 4 else None
        return StoredFormat(image.dtype.type, _is_gray(self.files[number - 1], image), kept,
                            exif)

    def _probe_video(self) -> None:
        """Set the frame count, size, rate, display rotation, audio and HDR of the video."""
        import av

        try:
            with av.open(str(self.path)) as container:
                stream = _video_stream(container, self.path)
                fps = float(stream.average_rate or 0)
                if stream.frames:
                    packets = [p for p in container.demux(stream) if p.pts is not None]
                    shown = [p for p in packets if not p.is_discard and p.size]  # AVI: a
                    # dropped frame is an empty chunk, which its header counts
                    count = stream.frames
                    declared = float(stream.duration * stream.time_base) \
                        if stream.duration else 0.0
                    whole = [p for p in shown if not p.is_corrupt]
                    found = max((float((p.pts + (p.duration or 0)) * p.time_base)
                                 for p in whole), default=0.0) - \
                        min((float(p.pts * p.time_base) for p in whole), default=0.0)
                    listed = "mov" in container.format.name.split(",")  # MP4, MOV
                    if not listed or len(packets) > count:  # fragmented: its index has the
                        count, listed = len(shown), False  # first part
                    elif fps and declared and count / fps - declared > 0.5 / fps:
                        # A trimmed MP4 (``-c copy``, a phone's trim): its edit list shows
                        # fewer frames than it holds, and the demuxer and decoder drop the
                        # others; what it shows must be there.
                        count, listed = len(shown), False
                    intact = sum(not p.is_corrupt for p in packets)
                    if len(whole) < len(shown) or listed and intact < count:
                        # An MP4 cut short behind its index (written first: faststart): the
                        # index lists frames whose data is gone, or cut inside.
                        raise InputError(self.path, f"truncated video: "
                                                    f"{intact if listed else len(whole)} of its "
                                                    f"{count} frames are whole in the file")
                    if not listed and _cut_short(declared, found, fps):
                        raise InputError(self.path, f"truncated video: its frames end at "
                                                    f"{found:.2f} s, its header says "
                                                    f"{declared:.2f} s")
                    self._check_starts_on_keyframe(not packets or packets[0].is_keyframe)
                    container.seek(0)
                    # The display rotation of a phone's video, from its frames' side data.
                    first = next(container.decode(stream), None)
                else:  # a header without a frame count (MKV, WebM): decode to the end
                    first, count, timed, measured = self._count_whole(container, stream, fps)
                    if not timed:  # a raw stream (.h264): its rate is FFmpeg's guess, 25
                        fps = 0.0
                    elif measured and (not fps or abs(measured / fps - 1) > 0.01):
                        fps = measured  # variable: the header's rate is its first frames
                self.count, self.fps = count, fps
                self.size = (stream.codec_context.width, stream.codec_context.height)
                self.rotation = 0 if first is None else round(first.rotation)
                self.has_audio = bool(container.streams.audio)
                self.hdr = first is not None and first.color_trc in _HDR_TRANSFERS
                # Gray formats (gray, gray16le, ya8, monow...): its frames are decoded to RGB.
                self._gray = stream.codec_context.format is not None and \
                    stream.codec_context.format.name.startswith(("gray", "ya", "mono"))
        except av.FFmpegError as e:
            raise InputError(self.path, f"corrupt or unreadable video ({_reason(e)})") from None

    def _check_starts_on_keyframe(self, first_is_keyframe: bool) -> None:
        """Refuse a video whose first packet (decoding order) is no keyframe: a decoder drops
        the frames it cannot decode, as many as it guesses, so its frames no longer pair with
        the timestamps (and frames CSV rows) that count them."""
        if not first_is_keyframe:
            raise InputError(self.path, "starts before its first keyframe (cut without "
                                        "re-encoding?): no decoder shows its first frames "
                                        "reliably; re-encode it, or cut it at a keyframe")

    def _count_whole(self, container, stream, fps: float):
        """The first frame and the frame count of ``stream``, decoded to the end, whether its
        packets have timestamps, and its average frame rate by them (0 if unknown); a file
        cut short, whose streams (audio too) stop well before the duration its header gives,
        is refused (a cut MKV decodes without an error)."""
        import av

        first, count, end, timed, started = None, 0, None, False, False
        times = []
        for packet in container.demux():
            if packet.pts is not None:
                packet_end = float((packet.pts + (packet.duration or 0)) * packet.time_base)
                end = packet_end if end is None else max(end, packet_end)
                timed = timed or packet.stream is stream
            if packet.stream is stream:
                if not started and packet.size:
                    self._check_starts_on_keyframe(packet.is_keyframe)
                    started = True
                for frame in packet.decode():
                    first = frame if first is None else first
                    count += 1
                    if frame.time is not None:
                        times.append(frame.time)
        if container.duration and end is not None:
            declared = container.duration / av.time_base
            # What the duration counts from differs: MP4's from the first timestamp, an MKV's
            # (as FFmpeg writes it) from 0; either way the streams must reach it.
            found = max(end - (container.start_time or 0) / av.time_base, end)
            if _cut_short(declared, found, fps):
                raise InputError(self.path, f"truncated video: its streams end at {found:.2f} "
                                            f"s, its header says {declared:.2f} s")
        span = max(times) - min(times) if len(times) > 1 else 0.0
        return first, count, timed, (len(times) - 1) / span if span > 0 else 0.0

    def frames(self, numbers: np.ndarray, native: bool = False
               ) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(number, image)`` for the 1-based frame numbers asked for, in order.

        Images are ``(H, W, 3)`` float32 RGB in ``[0, 1]``, or with ``native`` as decoded
        (uint8, or uint16 from 16-bit files; :func:`to_float` converts); a frame of another
        size than the first is an error.
        """
        wanted = sorted(int(n) for n in numbers)
        if wanted and (wanted[0] < 1 or wanted[-1] > self.count):
            raise InputError(self.path, f"frames {wanted[0]}..{wanted[-1]} asked for but the "
                                        f"footage has {self.count}")
        for number, image in self._stream(wanted):
            image = image if native else to_float(image)
            if (image.shape[1], image.shape[0]) != self.size:
                raise InputError(self.source(number), f"frame {number} is {image.shape[1]}x"
                                 f"{image.shape[0]}, not {self.size[0]}x{self.size[1]}")
            yield number, image

    def _stream(self, wanted: list[int]) -> Iterator[tuple[int, np.ndarray]]:
        if self.files is not None:
            for n in wanted:
                image = read_image(self.files[n - 1], native=True)
                yield n, np.ascontiguousarray(np.rot90(image, -1)) if self._turn else image
            return
        import av

        todo = set(wanted)
        number = 0
        try:
            with av.open(str(self.path)) as container:
                stream = _video_stream(container, self.path)
                for number, frame in enumerate(container.decode(stream), start=1):
                    if number in todo:
                        yield number, frame_to_rgb(frame)
                        todo.discard(number)
                    if not todo:
                        return
        except av.FFmpegError as e:
            raise InputError(self.path, f"corrupt video at frame {number + 1} "
                                        f"({_reason(e)})") from None
        if todo:  # a truncated file whose header promised more frames
            raise InputError(self.path, f"the video ends at frame {number}, but frame "
                                        f"{min(todo)} was asked for")


# Kr, Kb of the Y'CbCr matrices, by the codes of FFmpeg's AVColorSpace: BT.709, FCC, BT.601
# (BT.470BG, SMPTE 170M), SMPTE 240M, BT.2020.
_LUMA_WEIGHTS = {1: (0.2126, 0.0722), 4: (0.30, 0.11), 5: (0.299, 0.114), 6: (0.299, 0.114),
                 7: (0.212, 0.087), 9: (0.2627, 0.0593), 10: (0.2627, 0.0593)}
_FULL_RANGE = 2  # AVColorRange JPEG
_HDR_TRANSFERS = (16, 18)  # AVColorTransferCharacteristic SMPTE ST 2084 (PQ), ARIB B67 (HLG)


@numba.njit(parallel=True, cache=True)
def _ycbcr_to_rgb(y: np.ndarray, cb: np.ndarray, cr: np.ndarray, ry: float, rx: float,
                  black: float, luma_range: float, chroma_range: float, chroma_mid: float,
                  kr: float, kb: float, out: np.ndarray) -> None:
    # ry, rx: chroma samples per luma sample down and across, 1 or 1/2.
    h, w = y.shape
    ch, cw = cb.shape
    kg = 1.0 - kr - kb
    for i in numba.prange(h):
        # Chroma bilinear between samples centred on their blocks of luma (1, or 2 wide).
        sy = min(max(ry * (i + 0.5) - 0.5, 0.0), ch - 1.0)
        y0 = min(int(sy), ch - 2) if ch > 1 else 0
        fy = sy - y0 if ch > 1 else 0.0
        y1 = y0 + 1 if ch > 1 else 0
        for j in range(w):
            sx = min(max(rx * (j + 0.5) - 0.5, 0.0), cw - 1.0)
            x0 = min(int(sx), cw - 2) if cw > 1 else 0
            fx = sx - x0 if cw > 1 else 0.0
            x1 = x0 + 1 if cw > 1 else 0
            u = ((1 - fy) * ((1 - fx) * cb[y0, x0] + fx * cb[y0, x1])
                 + fy * ((1 - fx) * cb[y1, x0] + fx * cb[y1, x1]))
            v = ((1 - fy) * ((1 - fx) * cr[y0, x0] + fx * cr[y0, x1])
                 + fy * ((1 - fx) * cr[y1, x0] + fx * cr[y1, x1]))
            luma = (y[i, j] - black) / luma_range
            pb, pr = (u - chroma_mid) / chroma_range, (v - chroma_mid) / chroma_range
            r = luma + 2.0 * (1.0 - kr) * pr
            b = luma + 2.0 * (1.0 - kb) * pb
            g = (luma - kr * r - kb * b) / kg
            out[i, j, 0] = min(max(int(r * 255.0 + 0.5), 0), 255)
            out[i, j, 1] = min(max(int(g * 255.0 + 0.5), 0), 255)
            out[i, j, 2] = min(max(int(b * 255.0 + 0.5), 0), 255)


# Planar Y'CbCr formats converted here: bits, and chroma samples per luma sample (down, across).
_YCBCR_FORMATS = {
    **{f"yuv{j}420p": (8, (0.5, 0.5)) for j in ("", "j")}, "yuv420p10le": (10, (0.5, 0.5)),
    **{f"yuv{j}422p": (8, (1.0, 0.5)) for j in ("", "j")}, "yuv422p10le": (10, (1.0, 0.5)),
    **{f"yuv{j}444p": (8, (1.0, 1.0)) for j in ("", "j")}, "yuv444p10le": (10, (1.0, 1.0)),
}


def frame_to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """A decoded video frame as ``(H, W, 3)`` uint8 RGB.

    8- and 10-bit 4:2:0 frames, nearly all camera video, and 4:2:2 and 4:4:4 ones (ProRes,
    intermediate codecs) are converted here, rounded, with the matrix and range they are
    tagged with (untagged: BT.601 below 720 rows and BT.709 from 720, as players take them;
    limited range); FFmpeg's own conversion reads them one to two levels dark, and untagged
    4:2:2 and 4:4:4 as BT.601 at any size. Other formats are converted by FFmpeg, those of
    more than 8 bits (16-bit gray or RGB) to 16-bit RGB and rounded here: FFmpeg's 8-bit RGB
    reads half their levels one too bright.
    """
    name = frame.format.name
    if name not in _YCBCR_FORMATS:
        if max(component.bits for component in frame.format.components) <= 8:
            return frame.to_ndarray(format="rgb24")
        return cv2.convertScaleAbs(frame.to_ndarray(format="rgb48le"), alpha=255 / 65535)
    bits, (ry, rx) = _YCBCR_FORMATS[name]
    dtype = np.uint8 if bits == 8 else np.dtype("<u2")
    y, cb, cr = (np.frombuffer(p, dtype).reshape(p.height, -1)[:, :p.width]
                 for p in frame.planes)
    kr, kb = _LUMA_WEIGHTS.get(frame.colorspace, _LUMA_WEIGHTS[1 if frame.height >= 720 else 5])
    full = name.startswith("yuvj") or frame.color_range == _FULL_RANGE
    scale = 2 ** (bits - 8)  # limited range: 16..235 and 16..240 in 8 bits, times 4 in 10
    black, luma_range, chroma_range = ((0.0, 2.0 ** bits - 1, 2.0 ** bits - 1) if full else
                                       (16.0 * scale, 219.0 * scale, 224.0 * scale))
    out = np.empty((*y.shape, 3), np.uint8)
    _ycbcr_to_rgb(y, cb, cr, ry, rx, black, luma_range, chroma_range, 128.0 * scale, kr, kb,
                  out)
    return out


def video_timing(path: str | Path, exposure: float) -> FrameTiming:
    """Timing of a video's frames from their presentation timestamps (the frame clock) and an
    exposure time common to all frames, when no frames CSV is at hand.

    Raises:
        InputError: unreadable video, no timestamps, duplicated timestamps, or an exposure
            that is no frame's (:func:`check_timing_units`: over ``MAX_EXPOSURE``, longer
            than the frame interval).
    """
    import av

    path = Path(path)
    if not exposure > 0:
        raise InputError(path, f"exposure must be positive, got {exposure}")
    try:
        with av.open(str(path)) as container:
            stream = _video_stream(container, path)
            # Packets an edit list discards (a trimmed MP4) are never shown.
            pts = [p.pts for p in container.demux(stream) if p.pts is not None
                   and not p.is_discard]
            time_base = stream.time_base
    except av.FFmpegError as e:
        raise InputError(path, f"corrupt or unreadable video ({_reason(e)})") from None
    if not pts:
        raise InputError(path, "the video has no frame timestamps; give --frames-csv")
    t = np.sort(np.array(pts, np.float64)) * float(time_base)
    if np.any(np.diff(t) <= 0):
        raise InputError(path, "duplicated frame timestamps; give --frames-csv")
    timing = FrameTiming(np.arange(1, len(t) + 1), t - t[0], np.full(len(t), exposure),
                         f"{path} (timestamps, exposure {exposure} s)")
    check_timing_units(timing)
    return timing


def frame_rate(footage: Footage, timing: FrameTiming | None) -> Fraction:
    """Frame rate for an output video: the input video's, else from the frame timing."""
    if footage.fps:
        return Fraction(footage.fps).limit_denominator(1001)
    if timing is not None and len(timing) > 1:
        return Fraction(1 / timing.interval()).limit_denominator(1001)
    return Fraction(30)


# Audio codecs an MP4 holds as they are (copied packet for packet).
MP4_AUDIO = {"aac", "mp3", "ac3", "eac3", "opus", "flac", "alac"}
# The channel layouts of PCM whose order its file leaves open (an MKV's), by channel count.
_USUAL_LAYOUTS = {1: "mono", 2: "stereo", 4: "quad", 6: "5.1", 8: "7.1"}


# FFmpeg's AVColorSpace / AVColorPrimaries / AVColorTransferCharacteristic code of BT.709 and
# AVColorRange's limited ("tv", MPEG) range.
_BT709, _TV_RANGE = 1, 1


def _from_start(packets: Iterable, seconds: float) -> Iterator:
    """Whole ``packets`` moved ``seconds`` earlier, from the two before the first at or
    after 0 on: the one that plays across 0 and the one before, which a decoder of
    overlapping frames (AAC's) needs (the container's edit list hides what they play before
    0); their durations may be unknown (MKV's ALAC)."""
    before: collections.deque = collections.deque(maxlen=2)
    started = False
    for packet in packets:
        if packet.pts is None or packet.dts is None or packet.is_corrupt:  # cut: would not play
            continue
        shift = round(seconds / packet.time_base)
        if not started and shift and packet.pts < shift:
            before.append(packet)
            continue
        for kept in (*before, packet) if not started else (packet,):
            kept.pts, kept.dts = kept.pts - shift, kept.dts - shift
            yield kept
        started = True


class VideoWriter:
    """H.264 (libx264, yuv420p, BT.709 limited range, tagged so) writer for float32 RGB frames,
    optionally with the audio of another video copied in, interleaved as the frames come. Use
    as a context manager; odd sizes are padded by one pixel. ``rotation`` (degrees
    counter-clockwise, as :attr:`Footage.rotation`) is stored as the display rotation, so a
    phone's portrait clip plays upright as its source did.

    Example:
        >>> import tempfile, pathlib
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "a.mp4"
        >>> with VideoWriter(out, 25) as video:
        ...     for _ in range(3):
        ...         video.write(np.zeros((17, 32, 3), np.float32))
        >>> Footage(out).count
        3
    """

    def __init__(self, path: str | Path, fps: Fraction | float,
                 audio_from: str | Path | None = None, crf: int = 18, rotation: int = 0) -> None:
        # A container's time base takes a small denominator (a float's exact one overflows it).
        self.path, self.audio_from, self.crf = Path(path), audio_from, crf
        self.fps = Fraction(fps).limit_denominator(1001)
        self.rotation = rotation
        self._frames = 0
        self.notes: list[str] = []  # how the video differs from its source: audio, padding

    def __enter__(self) -> VideoWriter:
        import av

        self._container = av.open(str(self.path), "w", format="mp4")
        self._video = None
        self._source = self._audio = self._packets = None
        self._audio_muxed = False
        return self

    def _add_audio(self) -> None:
        """An audio stream from ``audio_from``'s first: copied where MP4 holds its codec,
        re-encoded to AAC otherwise (a camera's PCM)."""
        import av

        self._source = av.open(str(self.audio_from))
        if not self._source.streams.audio:
            return
        source_audio = self._source.streams.audio[0]
        codec = source_audio.codec_context.codec.canonical_name  # mp3, not its decoder's name
        # The output's frames start at 0: the audio moves with them, and what it plays before
        # the first frame is left out.
        video = self._source.streams.video[0] if self._source.streams.video else None
        start = float(video.start_time * video.time_base) \
            if video is not None and video.start_time is not None else 0.0
        try:
            if codec in MP4_AUDIO:
                self._audio = self._container.add_stream_from_template(source_audio)
                self._packets = _from_start(self._source.demux(source_audio), start)
            else:
                layout = source_audio.layout
                if layout.name == f"{layout.nb_channels} channels":  # unordered: the usual
                    layout = _USUAL_LAYOUTS.get(layout.nb_channels, layout)
                rates = av.codec.Codec("aac", "w").audio_rates  # AAC's, up to 96 kHz
                rate = max((r for r in rates if r <= source_audio.rate), default=max(rates))
                trial = av.CodecContext.create("aac", "w")  # refused before a stream is added
                trial.sample_rate, trial.layout, trial.format = rate, layout, "fltp"
                trial.open()
                self._audio = self._container.add_stream("aac", rate=rate, layout=layout)
                self._packets = self._encoded(source_audio, start)
                self.notes.append(f"audio ({codec}) re-encoded to AAC (MP4 does not hold it)")
        except (av.FFmpegError, ValueError) as e:
            self._audio = None
            self.notes.append(f"audio ({codec}) left out: {e}")

    def _encoded(self, source_audio, start: float) -> Iterator:
        """AAC packets of ``source_audio`` from ``start`` seconds on, cut to the sample."""
        import av

        rate, layout = self._audio.rate, self._audio.layout
        # Interleaved: PyAV 18 crashes reading 8 planes (7.1) into an array.
        packed = av.AudioResampler(format="flt", layout=layout, rate=rate)
        channels = len(layout.channels)
        done = 0  # samples passed on
        try:
            for frame in self._source.decode(source_audio):
                for part in packed.resample(frame):
                    first = done if part.pts is None else \
                        round(float(part.pts * part.time_base - start) * rate)
                    samples = part.to_ndarray().reshape(-1, channels)[max(-first, 0):]  # from 0
                    if not len(samples):
                        continue
                    cut = av.AudioFrame.from_ndarray(samples.reshape(1, -1), "flt", layout)
                    cut.sample_rate, cut.time_base = rate, Fraction(1, rate)
                    cut.pts = done = max(first, 0, done)
                    done += len(samples)
                    yield from self._audio.encode(cut)
        except av.FFmpegError as e:  # damaged sound: the frames still matter more
            self.notes.append(f"audio ends at {done / rate:.2f} s: {_reason(e)}")
        yield from self._audio.encode(None)

    def _mux_audio(self, until: float | None) -> None:
        """Copy audio packets up to ``until`` seconds (``None``: all that are left)."""
        if self._packets is None:
            return
        for packet in self._packets:
            packet.stream = self._audio
            self._container.mux(packet)
            self._audio_muxed = True
            if until is not None and packet.pts * packet.time_base >= until:
                return

    def write(self, image: np.ndarray) -> None:
        """Append one ``(H, W, 3)`` RGB frame: float in ``[0, 1]``, or uint8 / uint16 as
        :func:`float_image` takes it."""
        import av

        image = float_image(image, f"frame {self._frames + 1}")
        h, w = image.shape[:2]
        if self._video is None:
            self._video = self._container.add_stream("libx264", rate=self.fps)
            self._video.width, self._video.height = w + w % 2, h + h % 2
            self._video.pix_fmt = "yuv420p"
            self._video.options = {"crf": str(self.crf)}
            # BT.709 and tagged so (sRGB has its primaries): untagged, players take HD video
            # for BT.709 and decode the encoder's default BT.601 several levels off.
            codec = self._video.codec_context
            codec.colorspace = codec.color_primaries = codec.color_trc = _BT709
            codec.color_range = _TV_RANGE
            if self.rotation:
                self._video.set_display_rotation(self.rotation)
            if w % 2 or h % 2:
                self.notes.append(f"frames of {w}x{h} padded to {w + w % 2}x{h + h % 2} "
                                  "(H.264 takes even sizes; the last row or column repeated)")
            if self.audio_from is not None:  # after the video: players take stream 0 for it
                self._add_audio()
        rgb = (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)
        if w % 2 or h % 2:
            rgb = np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
            format="yuv420p", dst_colorspace="ITU709", dst_color_range="MPEG",
            dst_color_trc=_BT709, dst_color_primaries=_BT709)
        self._container.mux(self._video.encode(frame))
        self._frames += 1
        self._mux_audio(self._frames / self.fps)

    def __exit__(self, kind, value, traceback) -> None:
        try:
            if kind is None:
                if self._video is None:
                    raise InputError(self.path, "no frames to write")
                self._container.mux(self._video.encode(None))
                self._mux_audio(None)
                if self._packets is not None and not self._audio_muxed:
                    self.notes = [n for n in self.notes if not n.startswith("audio")] + [
                        "audio left out: none of it plays from the first frame on"]
        finally:
            self._container.close()
            if self._source is not None:
                self._source.close()
