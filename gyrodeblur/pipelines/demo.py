"""``gyrodeblur demo``: the whole chain on the embedded default, in a few minutes on a laptop.

A bundled sharp photograph is filmed by a virtual camera moving along a segment of a real gyro
trace (with parallax from a tilted plane and a small camera translation); the device's files
(frames, gyro CSV, frames CSV, camera JSON) are written with an unknown time offset, which is
then found by synchronisation. The clip is deblurred with the default shipped network (what
``gyrodeblur deblur`` uses) and with the classical method, and scored against the truth.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from gyrodeblur.errors import InputError
from gyrodeblur.fileio import atomic_path, hold_folder, holds_anything, read_record
from gyrodeblur.footage import Footage, VideoWriter, read_frames_csv, read_image, write_image
from gyrodeblur.geometry.camera import Camera, load_camera
from gyrodeblur.geometry.gyro import read_gyro
from gyrodeblur.kernels.plot import draw_kernels
from gyrodeblur.kernels.synchronization import estimate_sync
from gyrodeblur.metrics import psnr, ssim
from gyrodeblur.pipelines.deblur import DEFAULT_MODEL, VideoJob, deblur_video, make_restorer
from gyrodeblur.synthesis.clips import ClipSettings, export_clip, synthesize_clip
from gyrodeblur.synthesis.images import skimage_image
from gyrodeblur.synthesis.motion import bundled_traces
from gyrodeblur.synthesis.scene import Plane, Scene

#: The demo's clip: what the virtual device films.
IMAGE = "astronaut"
WIDTH, HEIGHT, HFOV_DEG = 384, 256, 50.0
FRAMES, FPS, EXPOSURE, READOUT = 12, 30.0, 1 / 30, 0.015
#: Where in the bundled trace the motion is taken from (s) and its gain.
SEGMENT_START, MOTION_GAIN = 2.8, 3.0
#: The device's clock offset that sync must find: ``t_gyro = t_frame + TRUE_OFFSET``.
TRUE_OFFSET = 0.0375


def _clip(rng: np.random.Generator):
    camera = Camera.from_fov(WIDTH, HEIGHT, HFOV_DEG, readout_time=READOUT,
                             time_offset=TRUE_OFFSET)
    trace = next(t for t in bundled_traces() if "gyrovidstab" in t.source)
    keep = (trace.t >= SEGMENT_START - 0.5) & (trace.t <= SEGMENT_START + FRAMES / FPS + 0.5)
    log = replace(trace, t=trace.t[keep], w=trace.w[keep] * MOTION_GAIN)
    # The scene's texture, enlarged in OpenCV's area mode (blocks of pixels, not
    # resize_frame's bilinear): the demo's figures in the docs were measured on it.
    image = cv2.resize(skimage_image(IMAGE), (int(WIDTH * 1.6), int(WIDTH * 1.6)),
                       interpolation=cv2.INTER_AREA)
    scene = Scene((Plane((0.0, 0.0, 1.0), 3.0), Plane((0.5, 0.0, 0.866), 2.0)),
                  (0.15, 0.0, 0.05))
    settings = ClipSettings(frames=FRAMES, fps=FPS, exposure=EXPOSURE,
                            gyro_start=SEGMENT_START, noise=0.005)
    return synthesize_clip(image, camera, log, scene, settings, rng)


def _label(image: np.ndarray, text: str) -> np.ndarray:
    """``image`` (float RGB or uint8) with ``text`` in its corner, as float RGB."""
    out = image if image.dtype == np.uint8 else np.clip(image * 255 + 0.5, 0, 255)
    out = np.ascontiguousarray(out, dtype=np.uint8)
    # White on a dark box: a thick dark copy of the text as outline would not line up, since
    # OpenCV's glyph advance grows with the stroke thickness.
    (width, height), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
    cv2.rectangle(out, (2, 16 - height), (10 + width, 20 + baseline), (0, 0, 0), cv2.FILLED)
    cv2.putText(out, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1,
                cv2.LINE_AA)
    return out.astype(np.float32) / 255


#: What the demo writes into its folder.
OUTPUTS = ("clip", DEFAULT_MODEL, "classic", "side_by_side.mp4", "comparison.png",
           "results.md", "results.json")


def claim_output(out: Path) -> None:
    """Make ``out`` the demo's: new, empty, or an earlier demo's (whose outputs are removed,
    so an interrupted run leaves no results of another); anything else is refused."""
    results = out / "results.json"
    if holds_anything(out):
        earlier = read_record(results)
        if earlier is None or not isinstance(earlier.get("demo"), list):
            raise InputError(out, "not empty and not a demo's output (no results.json of one): "
                                  "give a new or empty folder")
        # An earlier version's outputs too (another default model's folder).
        ours = set(OUTPUTS) | {str(name) for name in earlier["demo"]}
        for path in [p for p in out.iterdir() if p.name in ours]:
            if path.is_dir() and not path.is_symlink():  # a link goes, not what it points to
                with hold_folder(path):  # not while another run writes into it
                    shutil.rmtree(path)
            else:
                path.unlink()
    with atomic_path(results) as tmp:
        tmp.write_text(json.dumps({"demo": list(OUTPUTS), "complete": False}))


def run_demo(out: str | Path = "demo-output", say: Callable[[str], None] = print) -> dict:
    """Run the demo into ``out``; returns the results written to ``out/results.json``.

    ``out`` must be new, empty or an earlier demo's output (replaced); until the demo is done
    its ``results.json`` says ``"complete": false``.
    """
    out = Path(out)
    with hold_folder(out):
        return _demo(out, say)


def _demo(out: Path, say: Callable[[str], None]) -> dict:
    """:func:`run_demo` into ``out``, held."""
    started = time.perf_counter()
    claim_output(out)
    say(f"1/5 filming '{IMAGE}' along a real gyro segment ({FRAMES} frames {WIDTH}x{HEIGHT})")
    clip = _clip(np.random.default_rng(0))
    folder = out / "clip"
    # The device's files know nothing of the clock offset: sync has to find it.
    clip.recorded_camera = clip.recorded_camera.replace(time_offset=0.0)
    export_clip(clip, folder, kernels=False)  # the device's files; the truth is in memory
    footage, timing = Footage(folder / "blurred"), read_frames_csv(folder / "frames.csv")
    log, camera = read_gyro(folder / "gyro.csv"), load_camera(folder / "camera.json")

    say(f"    {time.perf_counter() - started:.0f} s")
    say("2/5 synchronising gyro and video")
    found = estimate_sync(footage.frames, timing, log, camera)
    camera = camera.replace(time_offset=found.time_offset)
    say(f"    time offset {found.time_offset * 1e3:.2f} ms (true {TRUE_OFFSET * 1e3:.2f} ms), "
        f"confidence {found.confidence:.2f}")
    sync = {"time_offset": found.time_offset, "true_time_offset": TRUE_OFFSET,
            "error_ms": abs(found.time_offset - TRUE_OFFSET) * 1e3,
            "confidence": found.confidence}

    outputs: dict[str, list[np.ndarray]] = {"blurred": list(clip.blurred)}
    seconds: dict[str, float] = {}
    for step, method in (("3/5", "net"), ("4/5", "classic")):
        restorer = make_restorer(method, None, video=True)
        say(f"{step} deblurring with {restorer.name}")
        job = VideoJob(footage, timing, timing.frame, log, camera, restorer,
                       settings={"camera": camera.to_dict(), "method": method,
                                 "model": restorer.name, "sync": sync})
        # Timed from the first frame done: a first run compiles the numba kernels (cached on
        # disk afterwards), which would be charged to whichever method comes first.
        done: list[float] = []
        deblur_video(job, out / restorer.name,
                     progress=lambda n, done=done: done.append(time.perf_counter()))
        seconds[restorer.name] = (done[-1] - done[0]) / (len(done) - 1)
        say(f"    {seconds[restorer.name]:.2f} s per frame")
        outputs[restorer.name] = [read_image(out / restorer.name / f"frame_{n:06d}.png")
                                  for n in timing.frame]

    say("5/5 scoring and writing the comparison")
    scores = {name: {"psnr": float(np.mean([psnr(a, b) for a, b in zip(frames, clip.sharp,
                                                                          strict=True)])),
                     "ssim": float(np.mean([ssim(a, b) for a, b in zip(frames, clip.sharp,
                                                                        strict=True)]))}
              for name, frames in outputs.items()}
    names = list(outputs)
    with atomic_path(out / "side_by_side.mp4") as tmp, VideoWriter(tmp, FPS) as video:
        for f in range(FRAMES):
            video.write(np.concatenate([_label(outputs[n][f], n) for n in names], 1))
    mid = FRAMES // 2
    panels = [_label(clip.sharp[mid], f"sharp (truth), frame {mid + 1} of {FRAMES}")] + [
        _label(outputs[n][mid], f"{n} {psnr(outputs[n][mid], clip.sharp[mid]):.2f} dB")
        for n in names]
    kernels = draw_kernels(clip.rot[mid] + clip.tran[mid], clip.blurred[mid])
    panels.append(_label(kernels, "kernels (rot + tran)"))
    with atomic_path(out / "comparison.png") as tmp:
        write_image(tmp, np.concatenate(panels, 1))
    results = {"clip": {"image": IMAGE, "frames": FRAMES, "size": [WIDTH, HEIGHT],
                        "gyro": "bundled trace (gyrovidstab), real motion"},
               "sync": sync, "scores": scores, "seconds_per_frame": seconds,
               "total_seconds": time.perf_counter() - started,
               "demo": list(OUTPUTS), "complete": True}
    table = ["| | PSNR (dB) | SSIM | s / frame |", "|---|---:|---:|---:|"] + [
        f"| {n} | {s['psnr']:.2f} | {s['ssim']:.4f} | "
        f"{seconds[n]:.2f} |" if n in seconds else f"| {n} | {s['psnr']:.2f} | {s['ssim']:.4f} | |"
        for n, s in scores.items()]
    with atomic_path(out / "results.md") as tmp:
        tmp.write_text("\n".join(table) + "\n")
    with atomic_path(out / "results.json") as tmp:
        tmp.write_text(json.dumps(results, indent=2))
    say("\n".join(table))
    return results
