import warnings

import cv2
import numpy as np
import pytest

from gyrodeblur.errors import InputError
from gyrodeblur.geometry.gyro import GyroLog
from gyrodeblur.synthesis import sampler as sampler_module
from gyrodeblur.synthesis.images import ImageBank
from gyrodeblur.synthesis.sampler import ClipSampler, SamplerSettings
from gyrodeblur.synthesis.sensor_errors import SensorErrorRanges

NO_ERRORS = SensorErrorRanges(delay=0.0, bias=0.0, scale=0.0, noise=0.0, readout=0.0)


def test_white_lights_streak_white_under_the_colour_gain(tmp_path):
    # White lights on a dark ground, every sample with streaking highlights: the colour gain
    # per channel must not leave some channels of a light below the clipping level (a cyan
    # or red streak from a white light).
    image = np.full((200, 200, 3), 25, np.uint8)
    for y, x in np.random.default_rng(0).integers(10, 190, (40, 2)):
        image[y - 2:y + 3, x - 2:x + 3] = 255
    (tmp_path / "lights").mkdir()
    cv2.imwrite(str(tmp_path / "lights" / "dots.png"), image)
    settings = SamplerSettings(width=64, height=48, frames=1, saturation=(1.0, 8.0, 8.0),
                               noise=(0.0, 0.0), real_motion=0.0, shake_scale=(4.0, 4.0))
    sampler = ClipSampler(ImageBank(tmp_path / "lights"), settings, seed=3)
    tints = []
    for index in range(6):
        blurred = sampler.sample(index).blurred[0]
        bright = blurred.max(axis=2) > 0.9
        if bright.any():  # the spread of channels of the streaks (0: white)
            tints.append(float(np.ptp(blurred[bright], axis=1).mean()))
    # Found channel by channel after the gain, these streaks were 0.12 to 0.26 off white.
    assert len(tints) >= 3 and max(tints) < 0.05, tints


def _constant_trace(seconds: float, w: list[float], name: str) -> GyroLog:
    t = np.arange(0.0, seconds + 1e-9, 0.0025)
    return GyroLog(t, np.tile(w, (len(t), 1)), name)


def test_real_motion_comes_from_the_given_traces_times_the_gain():
    bank = ImageBank(dead_leaves=1, dead_leaves_size=64)
    settings = SamplerSettings(width=32, height=24, frames=2, real_motion=1.0,
                               real_gain=(2.0, 2.0), errors=NO_ERRORS)
    a = _constant_trace(3.0, [0.1, -0.2, 0.05], "a.csv")
    b = _constant_trace(3.0, [-0.3, 0.0, 0.1], "b.csv")
    sampler = ClipSampler(bank, settings, seed=1, traces=[a, b])
    drawn = set()
    for index in range(8):
        clip = sampler.sample(index)
        trace = {"a.csv": a, "b.csv": b}[clip.meta["motion"]["trace"]]
        drawn.add(trace.source)
        np.testing.assert_allclose(clip.log.w, 2.0 * trace.w[:len(clip.log.t)])
        np.testing.assert_allclose(clip.recorded_log.w, clip.log.w)  # errors off
    assert drawn == {"a.csv", "b.csv"}
    # The default: the bundled traces, or the hand-shake model.
    default = ClipSampler(bank, settings, seed=1).sample(0)
    assert default.meta["motion"]["trace"] not in ("a.csv", "b.csv")
    shaken = ClipSampler(bank, SamplerSettings(width=32, height=24, real_motion=0.0),
                         seed=1, traces=[a]).sample(0)
    assert set(shaken.meta["motion"]) == {"shake_model"}


def test_traces_too_short_for_any_clip_are_refused():
    bank = ImageBank(dead_leaves=1, dead_leaves_size=64)
    settings = SamplerSettings(width=32, height=24, frames=3, fps=(10.0, 30.0),
                               readout=(0.0, 0.03))
    # The shortest clip: 3 frames at 30 fps, no readout, 0.1 s either side: 0.3 s.
    with pytest.raises(InputError, match=r"short.csv: its longest stretch without gaps, 0.29"):
        ClipSampler(bank, settings, traces=[_constant_trace(0.29, [0, 0, 0.1], "short.csv")])
    with pytest.raises(InputError, match="no gyro log"):
        ClipSampler(bank, settings, traces=[])
    # Long enough for some clips only: said. The longest: 3 frames at 10 fps, a 30 ms
    # readout and 0.2 s: 0.53 s.
    with pytest.warns(UserWarning, match=r"fits.csv: its longest stretch without gaps, 0.30 "
                                         r"s, is shorter than the longest clips \(0.53 s at 10"):
        ClipSampler(bank, settings, traces=[_constant_trace(0.3, [0, 0, 0.1], "fits.csv")])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ClipSampler(bank, settings, traces=[_constant_trace(0.53, [0, 0, 0.1], "all.csv")])


@pytest.mark.filterwarnings("ignore:.*is enlarged")  # the small dead leaves image
@pytest.mark.parametrize(("width", "height"), [(64, 40), (40, 64), (16, 400)])
def test_the_field_of_view_spans_the_longer_side(width, height):
    # A tall frame (a phone held upright) sees its range of views across its height: by its
    # width, a 16x400 frame would have a focal length of some 12 px, which no lens gives.
    bank = ImageBank(dead_leaves=1, dead_leaves_size=64)
    settings = SamplerSettings(width=width, height=height, frames=1, hfov_deg=(60.0, 60.0),
                               errors=NO_ERRORS)
    clip = ClipSampler(bank, settings, seed=0).sample(0)
    assert clip.camera.fx == pytest.approx(max(width, height) / 2 / np.tan(np.radians(30)))
    assert clip.blurred.shape[1:3] == (height, width)


@pytest.mark.parametrize(("shape", "size", "box"), [
    ((3, 1200), (51200, 128), (20000, 10, 160, 96)),  # a strip enlarged 43x
    ((400, 60000), (30000, 200), (29800, 100, 200, 100)),  # a panorama shrunk, at its end
    ((200, 300), (600, 400), (100, 50, 320, 192)),  # an ordinary image: resized whole
])
@pytest.mark.parametrize("interpolation", [cv2.INTER_CUBIC, cv2.INTER_AREA])
def test_a_resized_crop_is_the_crop_of_the_whole_resized(shape, size, box, interpolation,
                                                          monkeypatch):
    rng = np.random.default_rng(0)
    smooth = cv2.resize(rng.random((8, 8, 3)).astype(np.float32), shape[::-1],
                        interpolation=cv2.INTER_CUBIC)
    x0, y0, w, h = box
    whole = cv2.resize(smooth, size, interpolation=interpolation)[y0:y0 + h, x0:x0 + w]
    resized = []
    real_resize = cv2.resize
    monkeypatch.setattr(sampler_module.cv2, "resize", lambda image, size, **kw: resized.append(
        size) or real_resize(image, size, **kw))
    crop = sampler_module.resized_crop(smooth, size, box, interpolation)
    assert crop.shape == (h, w, 3)
    np.testing.assert_allclose(crop, whole, atol=5e-3)
    # Never much more than the crop is made.
    assert resized[0][0] * resized[0][1] <= 16 * w * h
