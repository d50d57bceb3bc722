"""Synthesis jobs behind ``gyrodeblur synth``: one image from a gyro log, or many random clips."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from gyrodeblur import __version__
from gyrodeblur.errors import InputError
from gyrodeblur.fileio import NpzWriter, atomic_path, remove_orphans_in
from gyrodeblur.footage import StoredFormat, write_image
from gyrodeblur.geometry.camera import Camera
from gyrodeblur.geometry.gyro import GyroLog, check_covers
from gyrodeblur.kernels.rotation import (
    camera_orientation,
    check_log_and_camera,
    complete_camera,
    exposure_span,
    rotation_trajectories,
    still_where_no_ray,
)
from gyrodeblur.synthesis.blur import blur_image, continuous_subsamples
from gyrodeblur.synthesis.clips import export_clip
from gyrodeblur.synthesis.noise import add_noise_image, jpeg_image
from gyrodeblur.synthesis.sampler import ClipSampler


def synth_image(sharp: np.ndarray, log: GyroLog, camera: Camera, start: float,
                exposure: float, out_image: str | Path, out_kernels: str | Path | None = None,
                samples: int = 9, noise: float = 0.0, saturation: float | None = None,
                seed: int = 0, stored: StoredFormat | None = None,
                jpeg: int | None = None, settings: dict | None = None) -> None:
    """Blur one sharp image along the rotation a gyro log recorded during its exposure.

    The sharp image is the reference (each row at its mid-exposure time, CONVENTIONS); the
    kernels go to ``out_kernels`` in the ``gyrodeblur kernels`` npz format.

    Args:
        sharp: ``(H, W, 3)`` sRGB; ``camera`` must already be at its resolution.
        log: gyro log (imu axes; ``camera.imu_to_camera`` applies).
        start, exposure: exposure start of the first-read row (frame clock) and time, s.
        stored: how to store the blurred image (the sharp file's bit depth...); 8-bit RGB
            when None.
        jpeg: quality of a JPEG round trip after the noise, as a camera's compression
            (None: none).
        settings: extra entries recorded in the kernels' ``meta`` (how the gyro was read).
    """
    check_log_and_camera(log, camera, "synth_image(sharp, log, camera, start, exposure, ...)")
    camera = complete_camera(camera, log)  # a gcsv's orientation and readout, as kernels'
    span = exposure_span(camera, start, exposure)
    check_covers(log, *span, "check --start, --exposure (s) and the camera's time_offset")
    traj, times = rotation_trajectories(camera_orientation(log, camera, span), camera, start,
                                        exposure, samples)
    # Pixels without a ray through the lens model stay sharp; their kernels are written NaN,
    # as ``gyrodeblur kernels`` writes them.
    still = still_where_no_ray(traj)
    longest = float(np.linalg.norm(np.diff(still[..., ::4, ::4], axis=0), axis=1).sum(0).max())
    if longest > max(camera.width, camera.height):
        # No picture is left to see, and the blur's cost grows with its length.
        raise InputError(log.source, f"the gyro moves pixels {longest:.0f} px during the "
                                     f"exposure, more than the {camera.width}x{camera.height} "
                                     "image: is --exposure in seconds, the gyro in rad/s?")
    blurred = blur_image(sharp, still, saturation=saturation,
                         subsamples=continuous_subsamples(still))
    if noise:
        blurred = add_noise_image(blurred, noise, np.random.default_rng(seed))
        if stored is not None and stored.gray:
            # A gray file holds one channel's noise: the mean of three would divide it by
            # sqrt(3).
            blurred = np.repeat(blurred[..., :1], 3, axis=2)
    if jpeg is not None:
        blurred = jpeg_image(blurred, jpeg)
    # The kernels are written while the image is still a temporary file: a failure of
    # either leaves neither.
    with atomic_path(out_image) as tmp:
        write_image(tmp, blurred, stored)
        if out_kernels is not None:
            meta = {"gyrodeblur": __version__, "camera": camera.to_dict(), "samples": samples,
                    "translation": False, "frames": [1], "gyro": log.source, "start": start,
                    "exposure": exposure, "noise": noise, "saturation": saturation,
                    "jpeg": jpeg, "seed": seed, "size": [camera.width, camera.height],
                    **(settings or {})}
            with NpzWriter(out_kernels) as npz:
                npz.put("rot", traj[None])
                npz.put("mask", np.zeros((1, camera.height, camera.width), bool))
                npz.put("times", times[None])
                npz.put("frames", np.array([1]))
                npz.put("meta", np.array(json.dumps(meta)))


def synth_clips(sampler: ClipSampler, count: int, out: str | Path,
                progress: Callable[[int], None] | None = None) -> int:
    """Export clips ``0..count-1`` of ``sampler`` as ``out/clip_000000`` ...; resumable.

    Each clip is written atomically, so clips already present are complete and skipped.

    Returns:
        The number of clips written by this call.
    """
    out = Path(out)
    remove_orphans_in(out)  # of killed runs, for clips this one may never write again
    written = 0
    for index in range(count):
        folder = out / f"clip_{index:06d}"
        if not folder.exists():
            export_clip(sampler.sample(index), folder)
            written += 1
        if progress:
            progress(index + 1)
    return written
