"""Random training clips: every choice drawn from documented ranges, reproducible per index.

Sample ``i`` of a sampler with seed ``s`` depends only on ``(s, i)``, never on the order of
calls or on the data-loader worker that draws it, so datasets are deterministic and
worker-safe without any seeding protocol.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from gyrodeblur.errors import InputError, is_whole
from gyrodeblur.geometry.camera import Camera
from gyrodeblur.geometry.gyro import GyroLog
from gyrodeblur.synthesis.blur import SATURATION_THRESHOLD
from gyrodeblur.synthesis.clips import Clip, ClipSettings, synthesize_clip
from gyrodeblur.synthesis.images import ImageBank
from gyrodeblur.synthesis.motion import (
    bundled_traces,
    load_shake_model,
    longest_window,
    random_segment,
)
from gyrodeblur.synthesis.scene import Plane, Scene
from gyrodeblur.synthesis.sensor_errors import SensorErrorRanges, SensorErrors


@dataclass(frozen=True)
class SamplerSettings:
    """Ranges of everything a random clip is drawn from (uniform unless said).

    Attributes:
        width, height: size of the frames.
        frames: frames per clip (1 for single images).
        samples: ``T``.
        fps: frame rate range.
        exposure: exposure range as a fraction of the frame interval.
        hfov_deg: field of view range across the longer side: the width of a landscape frame
            (degrees).
        readout: rolling-shutter readout time range (s), at most the frame interval.
        real_motion: probability that the rotation is a segment of a real gyro trace
            (otherwise, and for clips longer than the drawn trace, the hand-shake model).
        real_gain: gain range applied to real segments, for blur as long as training needs.
        shake_scale: amplitude range of the hand-shake model (1: the model as fitted to the
            traces' log-averaged spectrum, RMS 0.18 / 0.15 / 0.12 rad/s in x / y / z).
        speed: camera speed range (m/s), in a random direction.
        depth: plane distance range (m).
        planes: maximum number of planes (at least one).
        noise: noise level range (0 included: clean).
        saturation: probability and gain range of streaking highlights.
        jpeg: probability and quality range (1..100) of a JPEG round trip of the blurred
            frames, as cameras compress them (off by default).
        margin: the source image is this much larger than the view, for the motion.
        errors: sensor error ranges of the recorded gyro.
    """

    width: int = 256
    height: int = 256
    frames: int = 1
    samples: int = 9
    fps: tuple[float, float] = (10.0, 60.0)
    exposure: tuple[float, float] = (0.3, 1.0)
    hfov_deg: tuple[float, float] = (55.0, 80.0)
    readout: tuple[float, float] = (0.0, 0.03)
    real_motion: float = 0.5
    real_gain: tuple[float, float] = (1.0, 2.5)
    shake_scale: tuple[float, float] = (1.0, 6.0)
    speed: tuple[float, float] = (0.0, 0.6)
    depth: tuple[float, float] = (0.8, 8.0)
    planes: int = 3
    noise: tuple[float, float] = (0.0, 0.02)
    saturation: tuple[float, float, float] = (0.2, 2.0, 8.0)
    jpeg: tuple[float, float, float] = (0.0, 60.0, 95.0)
    margin: float = 1.6
    errors: SensorErrorRanges = field(default_factory=SensorErrorRanges)

    def __post_init__(self) -> None:
        for name in ("width", "height", "frames", "samples"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < (2 if name == "samples" else 1):
                raise ValueError(f"{name}: {value!r} is out of range: a whole number, at "
                                 f"least {2 if name == 'samples' else 1}")
        for name, (inside, meaning) in _DOMAINS.items():
            value = getattr(self, name)
            numbers = value if isinstance(value, tuple) else (value,)
            if not (all(math.isfinite(v) for v in numbers)
                    and (len(numbers) == 1 or numbers[-2] <= numbers[-1]) and inside(value)):
                shown = list(value) if isinstance(value, tuple) else value
                raise ValueError(f"{name}: {shown} is out of range: {meaning}"
                                 + (" (low <= high)" if isinstance(value, tuple) else ""))
        if self.errors.delay > LOG_MARGIN:
            raise ValueError(f"errors.delay: {self.errors.delay} is out of range: seconds, at "
                             f"most {LOG_MARGIN} (the gyro a clip draws reaches that far "
                             "beyond its frames)")


#: Seconds of gyro drawn before the first frame and after the last, at least: room for the
#: recorded gyro's delay error.
LOG_MARGIN = 0.05

# What each value may be; ranges are finite and low <= high besides.
_DOMAINS = {
    "fps": (lambda r: r[0] > 0, "frames per second, above 0"),
    "exposure": (lambda r: 0 < r[0] and r[1] <= 1, "a fraction of the frame interval, in (0, 1]"),
    "hfov_deg": (lambda r: 0 < r[0] and r[1] < 180, "degrees, in (0, 180)"),
    "readout": (lambda r: r[0] >= 0, "seconds, at least 0"),
    "real_motion": (lambda p: 0 <= p <= 1, "a probability, in [0, 1]"),
    "real_gain": (lambda r: r[0] >= 0, "a gain, at least 0"),
    "shake_scale": (lambda r: r[0] >= 0, "an amplitude, at least 0"),
    "speed": (lambda r: r[0] >= 0, "m/s, at least 0"),
    "depth": (lambda r: r[0] > 0, "metres, above 0"),
    "planes": (lambda n: n >= 1 and n == int(n), "a whole number of planes, at least 1"),
    "noise": (lambda r: r[0] >= 0 and r[1] <= 1, "noise levels (std at mid-grey), in [0, 1]"),
    "saturation": (lambda r: 0 <= r[0] <= 1 and r[1] >= 1,
                   "[probability in [0, 1], gains at least 1]"),
    "jpeg": (lambda r: 0 <= r[0] <= 1 and 1 <= r[1] and r[2] <= 100,
             "[probability in [0, 1], qualities in 1..100]"),
    "margin": (lambda m: m >= 1, "the source's size over the view's, at least 1"),
}


# The top channel value from which the colour gain fades out towards clipped lights.
_GAIN_FADE = 0.8
# resized_crop: a resized image up to this many times the crop's area is resized whole (every
# bank image of an ordinary shape, so their clips stay as they were).
_WHOLE_RESIZE_AREA = 16


def clip_duration(settings: SamplerSettings, fps: float, readout: float) -> float:
    """Seconds of motion a clip needs: its frames and readout, with 0.1 s either side."""
    return settings.frames / fps + readout + 0.2


def check_traces(traces: Sequence[GyroLog], settings: SamplerSettings) -> None:
    """Refuse motion traces that no clip of ``settings`` could draw a segment from.

    A trace shorter than the longest clip (at the lowest frame rate and longest readout) is
    warned of: the clips too long for it use the hand-shake model.

    Raises:
        InputError: no trace, or one whose longest stretch without gaps is shorter than the
            shortest clip (at the highest frame rate and shortest readout).

    Example:
        >>> log = GyroLog(np.arange(61) / 100.0, np.zeros((61, 3)), "short.csv")
        >>> check_traces([log], SamplerSettings(frames=3, fps=(10.0, 30.0)))
        >>> check_traces([log], SamplerSettings(frames=30, fps=(10.0, 30.0)))
        Traceback (most recent call last):
        ...
        gyrodeblur.errors.InputError: short.csv: its longest stretch without gaps, 0.60 s, \
is shorter than any clip (1.20 s: 30 frames at 30 fps with margins): no clip could use it
    """
    if not traces:
        raise InputError(None, "no gyro log given to draw motion from")
    shortest = clip_duration(settings, settings.fps[1], settings.readout[0])
    slow = settings.fps[0]
    longest = clip_duration(settings, slow, min(settings.readout[1], 1 / slow))
    for trace in traces:
        window = longest_window(trace)
        try:
            random_segment(trace, shortest, np.random.default_rng(0))
        except ValueError:
            raise InputError(trace.source, f"its longest stretch without gaps, "
                                           f"{window:.2f} s, is shorter than any "
                                           f"clip ({shortest:.2f} s: {settings.frames} frames at "
                                           f"{settings.fps[1]:g} fps with margins): no clip "
                                           "could use it") from None
        if window < longest:
            warnings.warn(f"{trace.source}: its longest stretch without gaps, "
                          f"{window:.2f} s, is shorter than the longest clips "
                          f"({longest:.2f} s at {slow:g} fps): those drawn from it shake by the "
                          "hand-shake model instead", stacklevel=2)


def resized_crop(image: np.ndarray, size: tuple[int, int], box: tuple[int, int, int, int],
                 interpolation: int) -> np.ndarray:
    """The ``(x0, y0, w, h)`` box of ``image`` resized to ``size`` (width, height).

    An image of a shape far from the box's (a strip, a panorama) would be enlarged to many
    times its area, gigabytes for a 1x2000 strip: only the part under the box is resized then,
    which differs from the whole resized by the filter's rounding of a scale of another size.

    Example:
        >>> strip = np.random.default_rng(0).random((2, 1000, 3)).astype(np.float32)
        >>> resized_crop(strip, (51200, 102), (300, 0, 160, 96), cv2.INTER_CUBIC).shape
        (96, 160, 3)
    """
    x0, y0, w, h = box
    if size[0] * size[1] <= _WHOLE_RESIZE_AREA * w * h:
        return cv2.resize(image, size, interpolation=interpolation)[y0:y0 + h, x0:x0 + w]
    height, width = image.shape[:2]
    sx, sy = size[0] / width, size[1] / height
    # The source pixels under the box, with room for the filter's taps around it.
    mx, my = 4 + math.ceil(2 / sx), 4 + math.ceil(2 / sy)
    c0, c1 = max(0, int(x0 / sx) - mx), min(width, math.ceil((x0 + w) / sx) + mx)
    r0, r1 = max(0, int(y0 / sy) - my), min(height, math.ceil((y0 + h) / sy) + my)
    ox, oy = round(c0 * sx), round(r0 * sy)
    part = cv2.resize(image[r0:r1, c0:c1], (round(c1 * sx) - ox, round(r1 * sy) - oy),
                      interpolation=interpolation)
    return part[y0 - oy:y0 - oy + h, x0 - ox:x0 - ox + w]


class ClipSampler:
    """Draws random clips from an image bank and motion sources.

    The real motion is drawn from ``traces`` (logs in camera axes, e.g. from
    :func:`~gyrodeblur.synthesis.motion.read_traces`; default: the bundled traces), the rest
    from the fitted hand-shake model (``settings.real_motion`` says how often each).

    Example:
        >>> s = ClipSampler(ImageBank(dead_leaves=1, dead_leaves_size=64),
        ...                 SamplerSettings(width=32, height=24), seed=3)
        >>> a, b = s.sample(5), s.sample(5)
        >>> a.blurred.shape, bool((a.blurred == b.blurred).all())
        ((1, 24, 32, 3), True)
    """

    def __init__(self, bank: ImageBank, settings: SamplerSettings | None = None,
                 seed: int = 0, traces: Sequence[GyroLog] | None = None) -> None:
        if not is_whole(seed):
            raise ValueError(f"seed {seed!r}: a whole number, 0 or more")  # as numpy takes
        self.bank = bank
        self.settings = settings or SamplerSettings()
        self.seed = seed
        if traces is not None:
            check_traces(traces, self.settings)
        self._traces = bundled_traces() if traces is None else list(traces)
        self._shake = load_shake_model()

    def sample(self, index: int) -> Clip:
        """Clip ``index``: a function of ``(seed, index)`` only."""
        s = self.settings
        rng = np.random.default_rng([self.seed, index])
        fps = rng.uniform(*s.fps)
        exposure = rng.uniform(*s.exposure) / fps
        readout = min(rng.uniform(*s.readout), 1 / fps)  # a sensor reads out within a frame
        # Across the longer side, as a camera's view is given: a portrait frame's width
        # would make the focal length of a tall frame too short for any lens.
        camera = Camera.from_fov(s.width, s.height, rng.uniform(*s.hfov_deg),
                                 readout_time=readout)
        duration = clip_duration(s, fps, readout)
        log, motion = self._motion(rng, duration)
        clip_settings = ClipSettings(
            frames=s.frames, fps=fps, exposure=exposure, samples=s.samples,
            gyro_start=float(rng.uniform(LOG_MARGIN,
                                         duration - s.frames / fps - readout - LOG_MARGIN)),
            saturation=(rng.uniform(*s.saturation[1:]) if rng.random() < s.saturation[0]
                        else None),
            noise=float(rng.uniform(*s.noise)))
        name, image = self._source_image(rng, clip_settings.saturation is not None)
        errors = SensorErrors.sample(s.errors, rng)
        scene = self._scene(rng)
        # Drawn after the content and only when enabled: settings without it give the clips
        # they gave before it existed, and with it the same images, motion and scenes.
        if s.jpeg[0] > 0 and rng.random() < s.jpeg[0]:
            clip_settings = replace(clip_settings, jpeg=int(rng.integers(s.jpeg[1],
                                                                         s.jpeg[2] + 1)))
        clip = synthesize_clip(image, camera, log, scene, clip_settings, rng, errors)
        clip.meta["image"] = name
        clip.meta["motion"] = motion
        return clip

    def _motion(self, rng: np.random.Generator, duration: float) -> tuple[GyroLog, dict]:
        """A rotation ``duration`` seconds long and where it came from."""
        if rng.random() < self.settings.real_motion:
            trace = self._traces[rng.integers(len(self._traces))]
            try:
                segment = random_segment(trace, duration, rng)
            except ValueError:  # a clip longer than the trace: the model has no end
                pass
            else:
                gain = rng.uniform(*self.settings.real_gain)
                return (replace(segment, w=segment.w * gain),
                        {"trace": trace.source, "gain": float(gain)})
        scale = rng.uniform(*self.settings.shake_scale)
        return (self._shake.sample(duration, 400.0, rng, scale=scale),
                {"shake_model": float(scale)})

    def _scene(self, rng: np.random.Generator) -> Scene:
        s = self.settings
        planes = []
        for k in range(rng.integers(1, s.planes + 1)):
            # The first plane faces the camera; others are tilted up to 60 degrees.
            tilt = 0.0 if k == 0 else rng.uniform(0, np.radians(60))
            azimuth = rng.uniform(0, 2 * np.pi)
            normal = (np.sin(tilt) * np.cos(azimuth), np.sin(tilt) * np.sin(azimuth),
                      np.cos(tilt))
            planes.append(Plane(tuple(float(v) for v in normal), float(rng.uniform(*s.depth))))
        direction = rng.normal(size=3)
        velocity = direction / np.linalg.norm(direction) * rng.uniform(*s.speed)
        return Scene(tuple(planes), tuple(float(v) for v in velocity))

    def _source_image(self, rng: np.random.Generator, lights: bool = False
                      ) -> tuple[str, np.ndarray]:
        """A random crop of a bank image (zoom, flips, colour gain) with margin for motion.

        With ``lights`` (clipped highlights streak), the colour gain fades out from a top
        channel of 0.8 to the clipping level: a gain per channel would otherwise split a white
        light and its rim into channels above and below clipping (a cyan or red streak), and
        make a light of a near-white surface; so faded, no pixel crosses the level."""
        s = self.settings
        index = int(rng.integers(len(self.bank)))
        image = self.bank.image(index)
        need_w, need_h = int(s.width * s.margin), int(s.height * s.margin)
        height, width = image.shape[:2]
        if max(need_w / width, need_h / height) > 2:
            # Enlarged this much, a "sharp" frame has no detail left to learn from.
            warnings.warn(f"{self.bank.name(index)}: {width}x{height} is enlarged "
                          f"{max(need_w / width, need_h / height):.1f}x to fill the "
                          f"{need_w}x{need_h} source of a clip; its sharp frames are soft",
                          stacklevel=2)
        scale = max(need_w / width, need_h / height) * rng.uniform(1.0, 1.5)
        size = (max(need_w, round(width * scale)), max(need_h, round(height * scale)))
        y0 = int(rng.integers(0, size[1] - need_h + 1))
        x0 = int(rng.integers(0, size[0] - need_w + 1))
        crop = resized_crop(image, size, (x0, y0, need_w, need_h),
                            cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        if rng.random() < 0.5:
            crop = crop[::-1]
        gain = rng.uniform(0.85, 1.15, 3).astype(np.float32)
        if lights:
            top = crop.max(axis=2, keepdims=True)
            fade = np.clip((top - _GAIN_FADE) / (SATURATION_THRESHOLD - _GAIN_FADE), 0, 1)
            gain = 1 + (gain - 1) * (1 - fade)
        crop = np.ascontiguousarray(np.clip(crop * gain, 0, 1), dtype=np.float32)
        return self.bank.name(index), crop
