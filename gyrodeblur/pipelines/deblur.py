"""Deblur images and videos of any size and length: what ``gyrodeblur deblur`` runs.

Kernels are computed at a kernel resolution (at most ``kernel_width`` pixels wide; the blur
trajectories are smooth, and optical flow is the costly part) and brought to the frame's
resolution tile by tile. Frames are restored in spatial tiles (:mod:`.tiling`) and, for a
video network, in sliding temporal windows centred on each frame; frames are streamed, so
memory is bounded by a few frames whatever the length of the video. Frames are held as decoded
(8-bit frames take a quarter of the memory of float32) and converted tile by tile.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
import zlib
from collections.abc import Callable, Container, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import cv2
import numpy as np
import torch

from gyrodeblur.errors import InputError, is_whole
from gyrodeblur.fileio import (
    atomic_path,
    file_stamp,
    hold_folder,
    holds_anything,
    read_record,
)
from gyrodeblur.footage import (
    Footage,
    FrameTiming,
    StoredFormat,
    VideoWriter,
    float_image,
    frame_rate,
    frames_text,
    resize_frame,
    to_float,
    write_image,
)
from gyrodeblur.geometry.camera import Camera, same_view
from gyrodeblur.geometry.gyro import GyroLog, check_covers
from gyrodeblur.geometry.rotation import Orientation
from gyrodeblur.heap import release_memory
from gyrodeblur.kernels.clip import iter_frame_kernels, kernel_reach, rotation_reach
from gyrodeblur.kernels.rotation import (
    camera_orientation,
    check_log_and_camera,
    check_samples,
    complete_camera,
    exposure_span,
    rotation_trajectories,
    still_where_no_ray,
)
from gyrodeblur.models import DeepGyro, GyroDVD, check_restored, load_model, refines_classic
from gyrodeblur.models.blocks import ChannelPool
from gyrodeblur.models.classic import (
    auto_iterations,
    auto_subsamples,
    auto_tv_weight,
    deconvolve,
)
from gyrodeblur.pipelines.kernels import (
    beyond_frame,
    check_blur_within,
    check_frames_covered,
    frame_numbers,
    frames_alone,
    frames_orientation,
    frames_to_read,
)
from gyrodeblur.pipelines.tiling import Tile, run_tiled

METHODS = ("net", "classic")
#: Shipped model used by ``--method net`` when none is named, for images and videos alike: it
#: refines the classical method's restoration and scores above it, and above every other
#: shipped net, on the image and clip benchmarks (``docs/models.md``), at 1.1-1.6 times the
#: classical method's time; ``deepgyro-path-s`` is the fast choice.
DEFAULT_MODEL = "deepgyro-refine-s"
#: Tile cores (px) per method: a GyroDVD-s window holds 3 frames and about 1.2 kB of activations
#: per frame pixel, so its tiles (384 + 2 x 64 halo, 1 GB at peak) keep a 4K clip under 3 GB;
#: the others need far less. 1280 px hold a 720p frame whole and a 1080p or 4K frame in half
#: the tiles of 1024 px, and their halos: DeepGyro 1.2x faster at 720p and at 4K, for 1.85 GB
#: at 4K; classic 1.2x at 720p and 1.4x at 4K, for 1.3 GB; a DeepGyro that refines the
#: classical restoration runs both on each tile, 2.3 GB at 4K (``docs/benchmarks.md``). Halos:
#: above each method's receptive field (DeepGyro-s about 100 px, GyroDVD-s about 50 px with
#: the inference pooling).
TILES = {"classic": 1280, "deepgyro": 1280, "gyrodvd": 384}
#: Smallest side of a frame to deblur: the classical method's noise estimate takes 3x3 masks.
MIN_SIDE = 3


@dataclass
class Restorer:
    """A restoration method and how it is applied.

    Attributes:
        name: the model's name (``classic`` for the classical method).
        net: the network, or ``None`` for the classical deconvolution.
        samples: ``T`` of the kernels it takes.
        window: frames it sees at once (odd; the centre one is restored).
        translation: whether it uses the translational kernel.
        tile: core size of the spatial tiles (pixels; ``TILES``).
        halo: context around each tile (pixels), above the method's receptive field.
        along_path: whether its reach grows with the kernels': a net that samples its input
            along them, and the deconvolution (whose blur reads that far): each frame's tiles
            then get that much more halo, up to twice ``halo`` (``tile_halo``).
        iterations: the classical method's RL steps (also for a net that refines its
            restoration); None: from each frame's blur
            (:func:`~gyrodeblur.models.classic.auto_iterations`).
    """

    name: str
    net: torch.nn.Module | None
    samples: int
    window: int
    translation: bool
    tile: int = 1024
    halo: int = 128
    along_path: bool = False
    iterations: int | None = None

    @property
    def device(self) -> torch.device:
        """Where the network runs (its weights' device); frames go there and back per tile."""
        return torch.device("cpu") if self.net is None else next(self.net.parameters()).device

    @property
    def uses_classic(self) -> bool:
        """Whether it runs the classical method: alone, or as the first estimate of a net."""
        return self.net is None or refines_classic(self.net)

    @property
    def whole_kernel(self) -> bool:
        """Whether it takes only the whole kernel ``rot + tran`` (not its parts): the
        classical method and the single-image nets."""
        return not isinstance(self.net, GyroDVD)

    def __call__(self, clip: list[np.ndarray], rot: list[np.ndarray],
                 tran: list[np.ndarray] | None, *, iterations: int | None = None,
                 tv_weight: float | None = None, subsamples: int | None = None) -> np.ndarray:
        """Restore the centre of ``window`` frames ``(h, w, 3)`` given their kernels;
        ``iterations``, ``tv_weight`` and ``subsamples`` set the classical method, as
        :func:`deconvolve` takes them (default: from the noise and the blur of these pixels)."""
        c = len(clip) // 2
        device = self.device
        if self.whole_kernel:
            kernel = rot[c] if tran is None else rot[c] + tran[c]
            estimate = (deconvolve(clip[c], kernel, iterations, tv_weight, subsamples)
                        if self.uses_classic else None)
            if self.net is None:
                return estimate
            with torch.no_grad():
                y = self.net(torch.from_numpy(clip[c]).permute(2, 0, 1)[None].to(device),
                             torch.from_numpy(kernel)[None].to(device),
                             None if estimate is None
                             else torch.from_numpy(estimate).permute(2, 0, 1)[None].to(device))
        else:
            with torch.no_grad():
                x = torch.from_numpy(np.stack(clip)).permute(0, 3, 1, 2)[None].to(device)
                r = torch.from_numpy(np.stack(rot))[None].to(device)
                t = (torch.zeros_like(r) if tran is None
                     else torch.from_numpy(np.stack(tran))[None].to(device))
                y = self.net(x, r, t)[:, c]
        return check_restored(y[0], self.name).clamp(0, 1).permute(1, 2, 0).cpu().numpy()


def torch_device(name: str | torch.device) -> torch.device:
    """The torch device ``name`` (``cpu``, ``cuda``, ``cuda:N``), refused with a one-line
    :class:`InputError` if unknown or not in this machine.

    Example:
        >>> torch_device("cpu")
        device(type='cpu')
    """
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise InputError(None, f"device {name!r}: choose cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(None, f"device {name}: this torch sees no CUDA GPU (a CPU-only "
                                   "build, or no driver)")
        if (device.index or 0) >= torch.cuda.device_count():
            raise InputError(None, f"device {name}: this machine has "
                                   f"{torch.cuda.device_count()} CUDA GPU(s)")
    elif device.type != "cpu":
        raise InputError(None, f"device {name!r}: choose cpu, cuda or cuda:N")
    return device


def make_restorer(method: str = "net", model: str | Path | torch.nn.Module | None = None,
                  video: bool = False, tile: int | None = None, samples: int | None = None,
                  iterations: int | None = None, device: str | torch.device | None = None
                  ) -> Restorer:
    """The restorer for ``--method`` and ``--model`` (a shipped name, a weights file, or a
    network as :func:`~gyrodeblur.models.load_model` returns it: its attention pooled in
    windows, :func:`~gyrodeblur.models.set_pool_radius`).

    With ``video`` (a clip's restorer, for :class:`VideoJob`) a video network restores a
    window of 3 frames; without (an image's), one frame, as the classical method and
    single-image networks always do. ``tile`` overrides the method's tile size (``TILES``);
    ``samples`` sets ``T`` of the kernels computed for the classical method (``deblur video``,
    :func:`image_kernels`; a network takes the ``T`` it was trained on; kernels given to
    :func:`deblur_image` are used as given); ``iterations`` sets the classical method's
    steps (0: none, the input back). ``device`` (``cpu``, ``cuda``, ``cuda:1``...) is where
    the network runs (None: where it is; loaded, the CPU); kernels, optical flow and the
    classical method run on the CPU.

    Example:
        >>> make_restorer("classic").samples, make_restorer("net").name
        (9, 'deepgyro-refine-s')
    """
    if method not in METHODS:
        raise InputError(None, f"method {method!r}: choose one of {', '.join(METHODS)} (a "
                               "network's name or weights go in model, --model)")
    if tile is not None and not is_whole(tile, at_least=1):
        raise InputError(None, f"tile {tile!r}: give a whole number of pixels, at least 1")
    if samples is not None:
        check_samples(samples)
        if method != "classic":
            raise InputError(None, "samples applies to the classical method only (a network "
                                   "takes the T it was trained on)")
    if iterations is not None and iterations < 0:
        raise InputError(None, f"iterations {iterations}: give 0 or more")
    if isinstance(model, tuple):
        raise TypeError("model: a name, a path or a network; load_model returns (network, "
                        "config): pass the network")
    if method == "classic" and model is not None:
        raise InputError(None, "a model applies to the net method only (--model to --method "
                               "net)")
    device = None if device is None else torch_device(device)
    if method == "classic" and device is not None and device.type != "cpu":
        raise InputError(None, f"device {device}: the classical method runs on the CPU only")
    if method == "classic":
        # The whole kernel, rotation plus translation, wherever the translation is known: flow
        # in videos, a kernels file for an image.
        return Restorer("classic", None, samples or 9, 1, True, tile or TILES["classic"], 128,
                        True, iterations)
    if isinstance(model, torch.nn.Module):
        net, name = model, type(model).__name__
        if any(isinstance(m, ChannelPool) and m.radius is None for m in net.modules()):
            raise ValueError(f"model: this {name} pools its channel attention over the whole "
                             "image (as in training), so its tiles would not add up to the "
                             "whole frame: set_pool_radius(net) first (load_model does)")
    else:
        name = model or DEFAULT_MODEL
        net, _ = load_model(name)
    if device is not None:
        net = net.to(device)
    if iterations is not None and not refines_classic(net):
        raise InputError(None, "--iterations applies to --method classic (or a net that refines "
                               "it) only")
    if isinstance(net, DeepGyro):
        # The blur field takes only the end points of the trajectory (T = 2 is exact), path
        # guidance its ends and quarter points (T = 5); the classical method the whole path.
        T = net.samples if net.refine else {"field": 2, "path": 5}.get(net.guidance, net.samples)
        # The whole kernel where the translation is known (flow in videos, a kernels file):
        # the flow's translation also cancels the gyro's errors.
        return Restorer(str(name), net, T, 1, True, tile or TILES["deepgyro"], 128,
                        net.guidance == "path", iterations)
    assert isinstance(net, GyroDVD)
    if net.kernel == "flow":
        raise InputError(name, "the flow-guided ablation cannot deblur footage; use a gyro model")
    # Its path samples widen its receptive field too, but a wider halo than 64 px would take
    # a 4K clip past 3 GB with large blur; the seams are blended (beyond about 60 px of blur
    # its tiles differ from the whole frame there).
    # Its translation encoder takes a clip's flow, or an image's kernels file's translation.
    return Restorer(str(name), net, net.samples, 3 if video else 1, net.kernel == "rot+tran",
                    tile or TILES["gyrodvd"], 64)


@dataclass
class FrameData:
    """A frame at full resolution (as decoded: uint8, uint16 or float32 in ``[0, 1]``) and its
    kernels at the kernel resolution."""

    number: int
    image: np.ndarray
    rot: np.ndarray
    tran: np.ndarray | None


def upsample_kernels(traj: np.ndarray, shape: tuple[int, int], t: Tile | None = None
                     ) -> np.ndarray:
    """Trajectories ``(T, 2, h, w)`` of a smaller image of the same view, at ``shape = (H, W)``
    (displacements scaled, bilinear in between), cropped to the window of ``t``.

    Example:
        >>> traj = np.ones((2, 2, 3, 4), np.float32)
        >>> upsample_kernels(traj, (6, 8))[0, :, 0, 0].tolist()
        [2.0, 2.0]
    """
    T, _, h, w = traj.shape
    H, W = shape
    y0, y1, x0, x1 = (0, H, 0, W) if t is None else (t.y0, t.y1, t.x0, t.x1)
    if (h, w) == (H, W):
        return np.ascontiguousarray(traj[..., y0:y1, x0:x1])
    sx, sy = W / w, H / h
    # Pixel centres: x_small = (x + 0.5) / s - 0.5.
    mx = ((np.arange(x0, x1, dtype=np.float32) + 0.5) / sx - 0.5)[None, :]
    my = ((np.arange(y0, y1, dtype=np.float32) + 0.5) / sy - 0.5)[:, None]
    mx, my = np.broadcast_to(mx, (y1 - y0, x1 - x0)), np.broadcast_to(my, (y1 - y0, x1 - x0))
    out = np.empty((T, 2, y1 - y0, x1 - x0), np.float32)
    for i in range(T):
        both = cv2.remap(np.ascontiguousarray(traj[i].transpose(1, 2, 0)), mx, my,
                         cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        out[i, 0], out[i, 1] = both[..., 0] * sx, both[..., 1] * sy
    return out


def tile_halo(restorer: Restorer, clip: list[FrameData], size: tuple[int, int]) -> int:
    """The halo of ``clip``'s tiles at frame ``size = (H, W)``: the restorer's, plus the
    longest displacement of the window's kernels (rotation, plus translation where the
    restorer takes it; rounded up, full-resolution pixels) for a net that samples along
    them, at most twice the restorer's.

    Example:
        >>> rot = np.zeros((2, 2, 10, 20), np.float32); rot[1, 0, 3, 4] = -2.5
        >>> net = Restorer("n", None, 2, 1, False, halo=64, along_path=True)
        >>> tile_halo(net, [FrameData(0, None, rot, None)], (20, 40))  # kernels at half size
        69
    """
    if not restorer.along_path:
        return restorer.halo
    H, W = size
    h, w = clip[0].rot.shape[-2:]
    kernels = [f.rot + f.tran if restorer.translation and f.tran is not None else f.rot
               for f in clip]
    reach = max(max(float(np.abs(k[:, 0]).max()) * W / w, float(np.abs(k[:, 1]).max()) * H / h)
                for k in kernels)
    return min(restorer.halo + int(np.ceil(reach)), 2 * restorer.halo)


def frame_kernel_in_pixels(frame: FrameData, size: tuple[int, int], tran: bool,
                           step: int = 4) -> np.ndarray:
    """The kernel of ``frame`` in pixels of the ``size`` frame (rot, plus tran with
    ``tran``), on every ``step``-th row and column of the kernel grid."""
    H, W = size
    traj = frame.rot[..., ::step, ::step]
    if tran:
        traj = traj + frame.tran[..., ::step, ::step]
    h, w = frame.rot.shape[-2:]
    return traj * np.array([W / w, H / h], np.float32)[:, None, None]


def restore_frame(restorer: Restorer, clip: list[FrameData],
                  progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Restore the centre frame of ``clip`` (``restorer.window`` frames), tile by tile;
    ``progress`` is told ``(tiles done, tiles)``."""
    H, W = clip[0].image.shape[:2]
    use_tran = restorer.translation and clip[0].tran is not None
    # One regularisation, step count and tap count for the whole frame, so that tiles agree.
    tv = steps = subsamples = None
    if restorer.uses_classic:
        centre = clip[len(clip) // 2]
        tv = auto_tv_weight(to_float(centre.image))
        kernel = frame_kernel_in_pixels(centre, (H, W), use_tran)
        if restorer.iterations is not None:
            steps = restorer.iterations
        else:  # a still frame is left as it is, tile by tile as deconvolve leaves it whole
            moves = centre.rot.any() or use_tran and centre.tran.any()
            steps = auto_iterations(kernel) if moves else 0
        subsamples = auto_subsamples(kernel)

    def tile(t: Tile) -> np.ndarray:
        # Windows repeat their end frames: bring each frame and its kernels to the tile once.
        # A restorer of the whole kernel gets it summed before upsampling (both are linear):
        # one kernel-sized array per tile instead of three.
        parts: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray | None]] = {}
        for f in clip:
            if id(f) in parts:
                continue
            image = to_float(f.image[t.y0:t.y1, t.x0:t.x1])
            if restorer.whole_kernel:
                whole = f.rot + f.tran if use_tran else f.rot
                parts[id(f)] = image, upsample_kernels(whole, (H, W), t), None
            else:
                parts[id(f)] = (image, upsample_kernels(f.rot, (H, W), t),
                                upsample_kernels(f.tran, (H, W), t) if use_tran else None)
        images, rot, tran = zip(*(parts[id(f)] for f in clip), strict=True)
        out = restorer(list(images), list(rot), None if tran[0] is None else list(tran),
                       iterations=steps, tv_weight=tv, subsamples=subsamples)
        release_memory()  # tiles of changing sizes would leave the heap creeping up
        return out

    return run_tiled(tile, H, W, restorer.tile, tile_halo(restorer, clip, (H, W)),
                     progress=progress)


def deblur_image(image: np.ndarray, rot: np.ndarray, tran: np.ndarray | None = None,
                 restorer: Restorer | str = "net",
                 progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Deblur one ``(H, W, 3)`` sRGB image (float in ``[0, 1]``, or uint8 or uint16) whose
    kernels (any resolution of the same view) are ``rot`` and ``tran`` ``(T, 2, h, w)``; a
    net that takes another ``T`` gets them resampled (:func:`resample_samples`).
    ``restorer``: from :func:`make_restorer`, or a method name (``"net"``: the default
    model, ``"classic"``); ``progress`` is told ``(tiles done, tiles)``.

    Returns:
        The ``(H, W, 3)`` float32 restored sRGB image.

    Raises:
        ValueError: an image that is not ``(H, W, 3)`` or not in ``[0, 1]``
            (:func:`~gyrodeblur.footage.float_image`) or smaller than ``MIN_SIDE``, kernels of
            another shape or aspect ratio, or infinite kernels (NaN, a pixel without a ray
            through the lens, is left unblurred: :func:`still_where_no_ray`).

    Example:
        >>> from gyrodeblur.synthesis.blur import blur_image
        >>> from gyrodeblur.synthesis.images import dead_leaves
        >>> sharp = dead_leaves(64, np.random.default_rng(0))
        >>> rot = np.zeros((9, 2, 64, 64), np.float32)
        >>> rot[:, 0] = np.linspace(-3, 3, 9)[:, None, None]  # 6 px of horizontal blur
        >>> blurred = blur_image(sharp, rot)
        >>> restored = deblur_image(blurred, rot, None, "classic")
        >>> bool(np.abs(restored - sharp).mean() < np.abs(blurred - sharp).mean())
        True
    """
    if isinstance(tran, Restorer | str):
        raise TypeError("deblur_image(image, rot, tran, restorer): the third argument is the "
                        "translation kernels (None: none), the method the fourth")
    if isinstance(restorer, str):
        if restorer not in METHODS:
            raise ValueError(f"restorer {restorer!r}: a method ({', '.join(METHODS)}); a model "
                             f"by name is make_restorer('net', {restorer!r})")
        restorer = make_restorer(restorer)
    image = float_image(image)
    H, W = image.shape[:2]
    if min(H, W) < MIN_SIDE:
        raise ValueError(f"a {W}x{H} image is too small to deblur (at least {MIN_SIDE}x{MIN_SIDE})")
    rot = np.asarray(rot, np.float32)
    tran = None if tran is None else np.asarray(tran, np.float32)
    for kernel in (rot, tran):
        if kernel is None:
            continue
        if kernel.ndim != 4 or kernel.shape[1] != 2 or kernel.shape != rot.shape or \
                not len(kernel):
            raise ValueError(f"rot and tran must be (T, 2, h, w) with T >= 1, got {rot.shape} "
                             f"and {kernel.shape}")
        h, w = kernel.shape[2:]
        if not same_view(W, H, w, h):
            raise ValueError(f"kernels of {w}x{h} are not of the view of a {W}x{H} image")
        if np.isinf(kernel).any():
            raise ValueError("infinite kernels")
    reach = kernel_reach((rot, tran), W, H)
    if beyond_frame(reach, W, H):
        raise ValueError(f"the kernels move pixels {reach:.0f} px, beyond the {W}x{H} image: "
                         "are they in pixels?")
    rot, tran = (None if k is None else still_where_no_ray(k) for k in (rot, tran))
    if restorer.net is not None and len(rot) != restorer.samples:
        rot = resample_samples(rot, restorer.samples)
        tran = None if tran is None else resample_samples(tran, restorer.samples)
    return restore_frame(restorer, [FrameData(0, image, rot, tran)], progress)


def resample_samples(traj: np.ndarray, samples: int) -> np.ndarray:
    """Trajectories ``(T, 2, h, w)`` at ``samples`` instants spread evenly over the same
    exposure, linear between the given ones (which are kept where the instants coincide), as
    float32.

    Example:
        >>> traj = np.arange(9, dtype=np.float32)[:, None, None, None] * np.ones((9, 2, 1, 1))
        >>> resample_samples(traj, 5)[:, 0, 0, 0].tolist()
        [0.0, 2.0, 4.0, 6.0, 8.0]
    """
    check_samples(samples)
    if np.ndim(traj) != 4 or np.shape(traj)[1] != 2 or not len(traj):
        raise ValueError(f"traj: must be one frame's (T, 2, H, W) trajectories, got shape "
                         f"{np.shape(traj)}" + (" (a kernels file's (F, T, 2, H, W): take a "
                                                "frame's)" if np.ndim(traj) == 5 else ""))
    T = len(traj)
    if T == samples:
        return np.asarray(traj, np.float32)
    if T == 1:  # one instant: the same at every other
        return np.repeat(np.asarray(traj, np.float32), samples, axis=0)
    position = np.linspace(0, T - 1, samples)
    low = np.minimum(position.astype(int), T - 2)
    frac = (position - low)[:, None, None, None]
    return (traj[low] * (1 - frac) + traj[low + 1] * frac).astype(np.float32)


def windows(frames: Iterator[FrameData], size: int) -> Iterator[list[FrameData]]:
    """Sliding windows of ``size`` (odd) frames centred on each frame, ends repeated; at
    most ``size`` frames are held. A gap in the frame numbers (frames that a frames CSV
    leaves out) is an end too: a window holds only frames next to each other in the footage.

    Example:
        >>> data = (FrameData(n, None, None, None) for n in (1, 2, 3, 7, 8))
        >>> [[f.number for f in w] for w in windows(data, 3)]
        [[1, 1, 2], [1, 2, 3], [2, 3, 3], [7, 7, 8], [7, 8, 8]]
    """
    r = size // 2
    held: list[FrameData] = []
    first = count = centre = 0  # index of held[0], frames received, next centre

    def window() -> list[FrameData]:
        out = []
        for k in range(-r, r + 1):
            j = min(max(centre + k, 0), count - 1)
            while held[j - first].number - held[centre - first].number != j - centre:
                j += 1 if j < centre else -1
            out.append(held[j - first])
        return out

    for frame in frames:
        held.append(frame)
        count += 1
        if count - 1 - centre >= r:
            yield window()
            centre += 1
            while centre - first > r:
                held.pop(0)
                first += 1
    while centre < count:
        yield window()
        centre += 1


def image_kernels(log: GyroLog, camera: Camera, t_start: float, exposure: float,
                  samples: int, kernel_width: int = 1280) -> np.ndarray:
    """Rotation kernels ``(T, 2, h, w)`` of one image, at most ``kernel_width`` wide; the
    camera completed by what the log knows (:func:`complete_camera`). A blur beyond the
    image, where nothing of it is left to restore, is a unit error: refused."""
    check_log_and_camera(log, camera, "image_kernels(log, camera, t_start, exposure, samples)")
    camera = complete_camera(camera, log)
    span = exposure_span(camera, t_start, exposure)
    check_covers(log, *span, "check --frame-time and --time-offset")
    kcam = camera.no_wider_than(kernel_width)
    rot = rotation_trajectories(camera_orientation(log, kcam, span), kcam, t_start, exposure,
                                samples)[0]
    reach = kernel_reach((rot,), camera.width, camera.height)
    if beyond_frame(reach, camera.width, camera.height):
        raise InputError(log.source, f"the gyro moves pixels {reach:.0f} px during the "
                                     f"exposure, more than the {camera.width}x{camera.height} "
                                     "image: is --exposure in seconds, the gyro in rad/s?")
    return rot


def read_kernels(path: str | Path, frame: int | None, shape: tuple[int, ...]
                 ) -> tuple[np.ndarray, np.ndarray | None]:
    """``rot`` and ``tran`` (or ``None``) of frame number ``frame`` (``None``: the first) of a
    kernels ``.npz``, checked to fit an image array of ``shape`` (``(H, W)`` or ``(H, W, C)``).

    The kernels may be at another resolution of the same view: they come back as stored, in
    their own pixels (:func:`deblur_image` rescales them to the image).
    """
    try:
        with np.load(path) as npz:  # no pickles: a kernels file holds arrays only
            rot = npz["rot"]
            numbers = npz["frames"] if "frames" in npz else np.arange(1, len(rot) + 1)
            tran = npz["tran"] if "tran" in npz else None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        problem = "not an npz" if "pickle" in str(e) else str(e)  # damaged: BadZipFile, CRC
        raise InputError(path, f"not a kernels file with 'rot' (F, T, 2, H, W) ({problem})"
                         ) from None
    if rot.ndim != 5 or rot.shape[2] != 2:
        raise InputError(path, f"'rot' has shape {rot.shape}, expected (F, T, 2, H, W)")
    if tran is not None and tran.shape != rot.shape:
        raise InputError(path, f"'tran' has shape {tran.shape}, 'rot' {rot.shape}")
    if numbers.shape != rot.shape[:1] or not np.issubdtype(numbers.dtype, np.integer):
        raise InputError(path, f"'frames' must hold one frame number per kernel ({len(rot)}), "
                               f"got {numbers.dtype} of shape {numbers.shape}")
    if not len(numbers):
        raise InputError(path, "holds no frames")
    if frame is None:
        frame = int(numbers[0])
    if frame not in numbers:
        raise InputError(path, f"no frame {frame} ({frames_text(numbers)})")
    i = int(np.flatnonzero(numbers == frame)[0])
    h, w = rot.shape[-2:]
    H, W = shape[:2]
    if not same_view(W, H, w, h):
        raise InputError(path, f"mismatched sizes: kernels are {w}x{h}, the image is {W}x{H}")
    # float32 as the format has them, whatever wrote the file.
    kernels = rot[i].astype(np.float32), None if tran is None else tran[i].astype(np.float32)
    if any(np.isinf(k).any() for k in kernels if k is not None):
        raise InputError(path, f"infinite kernels in frame {frame}")
    if np.isnan(kernels[0]).all():  # NaN marks a pixel without a ray: here every one
        raise InputError(path, f"the kernels of frame {frame} are NaN everywhere: no pixel "
                               "has a ray through the lens, nothing to deblur by")
    reach = kernel_reach(kernels, W, H)
    if beyond_frame(reach, W, H):
        raise InputError(path, f"kernels of frame {frame} move pixels {reach:.0f} px, "
                               f"beyond the {W}x{H} image: are they in pixels?")
    return kernels


def frame_files(footage: Footage) -> dict[str, str]:
    """A folder's frame files by frame number, each with its name, size and time (a video
    file's: none): what a folder output's record compares to resume frame by frame."""
    if not footage.files:
        return {}
    return {str(n): f"{footage.source(n).name} {file_stamp(footage.source(n))}"
            for n in range(1, footage.count + 1)}


@dataclass
class VideoJob:
    """Everything that decides the deblurring of a clip.

    Attributes:
        footage: the frames.
        timing: their exposure timing (frame clock).
        frames: numbers of the frames to deblur (sorted and taken once each).
        log: the gyro log (imu axes).
        camera: the camera at the processing resolution (= output resolution); what the log
            knows and it does not is taken (:func:`complete_camera`).
        restorer: the method.
        kernel_width: kernels are computed at most this wide (camera rescaled).
        flow: optical flow backend for the translation.
        settings: recorded next to folder outputs, to resume only identical runs (empty:
            :meth:`record` makes the job's own).
    """

    footage: Footage
    timing: FrameTiming
    frames: np.ndarray
    log: GyroLog
    camera: Camera
    restorer: Restorer
    kernel_width: int = 1280
    flow: str = "dis"
    settings: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.restorer, Restorer):
            raise TypeError(f"restorer: a Restorer (make_restorer(..., video=True)), got "
                            f"{self.restorer!r}")
        self.camera = complete_camera(self.camera, self.log)
        self.frames = frame_numbers(self.frames)  # restored in order, once each

    def check(self) -> None:
        """Refuse what cannot work before anything is written."""
        width, height = self.footage.size
        if not same_view(width, height, self.camera.width, self.camera.height):
            raise InputError(self.footage.path, f"{width}x{height} frames are not a resize of "
                                                f"the camera's {self.camera.width}x"
                                                f"{self.camera.height} (another aspect ratio)")
        check_frames_covered(self.log, self.camera, self.timing, self.frames)
        check_blur_within(self.reach, self.camera, self.log)

    @cached_property
    def orientation(self) -> Orientation:
        """The camera's orientation over the exposures of the frames read."""
        return frames_orientation(self.log, self.camera, self.timing, self.read())

    @cached_property
    def reach(self) -> np.ndarray:
        """How far the rotation moves pixels during each frame's exposure (px,
        :func:`rotation_reach`)."""
        return rotation_reach(self.orientation, self.camera, self.timing, self.frames)

    def record(self) -> dict:
        """What a folder output records, to resume only identical runs: ``settings`` where
        given (the CLI's, its options as given), else what decides the job's frames."""
        if self.settings:
            return self.settings
        chosen, r = np.isin(self.timing.frame, self.frames), self.restorer
        return {"footage": str(self.footage.path.resolve()),
                "gyro_sha256": hashlib.sha256(self.log.t.tobytes() + self.log.w.tobytes())
                .hexdigest(), "camera": self.camera.to_dict(),
                "frames": [int(n) for n in self.frames],
                "t_start": self.timing.t_start[chosen].tolist(),
                "exposure": self.timing.exposure[chosen].tolist(), "model": r.name,
                "samples": r.samples, "window": r.window, "translation": r.translation,
                "tile": r.tile, "iterations": r.iterations, "kernel_width": self.kernel_width,
                "flow": self.flow if r.translation else None,
                "frame_files": frame_files(self.footage)}

    def window_frames(self) -> np.ndarray:
        """The frames and those that their windows take beside them (a video network's), in
        the footage, timed and covered by the gyro (outside a range too)."""
        if self.restorer.window == 1:
            return self.frames
        return frames_to_read(self.frames, self.timing, self.camera, self.log,
                              self.footage.count, self.restorer.window // 2)

    def read(self) -> np.ndarray:
        """Frame numbers to read: the window frames, and with translation those of their
        neighbours that the timing, the footage and the gyro cover (outside a range too)."""
        if not self.restorer.translation:
            return self.window_frames()
        return frames_to_read(self.window_frames(), self.timing, self.camera, self.log,
                              self.footage.count)

    def without_neighbours(self) -> np.ndarray:
        """Frames whose translation cannot be measured (restored with the rotation alone)."""
        if not self.restorer.translation:
            return np.array([], np.int64)
        return frames_alone(self.frames, self.read())

    def restored(self, kept: Container[int] = ()) -> Iterator[list[FrameData]]:
        """The windows of the frames to restore, in order (:func:`windows`); those of the
        frames ``kept`` (from a run resumed) come without images and kernels where no other
        window takes them."""
        wanted = set(self.frames.tolist())
        for clip in windows(self.stream(kept), self.restorer.window):
            if clip[len(clip) // 2].number in wanted:
                yield clip

    def stream(self, kept: Container[int] = ()) -> Iterator[FrameData]:
        """The window frames at the processing resolution with their kernels, in order; a
        frame of ``kept`` that no window of another frame takes is only its number."""
        cam, kcam = self.camera, self.camera.no_wider_than(self.kernel_width)
        full: dict[int, np.ndarray] = {}
        numbers = self.window_frames()
        r = self.restorer.window // 2
        restored = np.array([n for n in self.frames.tolist() if n not in kept], np.int64)
        # Frame numbers within r of a frame restored: a superset of its window's frames.
        near = np.searchsorted(restored, numbers - r) < np.searchsorted(restored, numbers + r,
                                                                        "right")
        needed = numbers[near]
        wanted = set(needed.tolist())
        read = self.read()

        def source() -> Iterator[tuple[int, np.ndarray]]:
            for number, image in self.footage.frames(read, native=True):
                if image.shape[:2] != (cam.height, cam.width):
                    image = resize_frame(image, cam.width, cam.height)
                if number in wanted:
                    full[number] = image
                yield number, image

        kernels = iter_frame_kernels(self.orientation, kcam, self.timing, needed,
                                     self.restorer.samples, source(),
                                     self.restorer.translation, self.flow)
        for number in numbers.tolist():
            if number not in wanted:
                yield FrameData(number, None, None, None)
                continue
            k = next(kernels)
            yield FrameData(k.number, full.pop(k.number), still_where_no_ray(k.rot),
                            None if k.tran is None else still_where_no_ray(k.tran))


def writes_folder(output: str | Path) -> bool:
    """Whether ``deblur_video`` writes ``output`` as a folder of PNGs (an existing folder,
    its name may hold a dot, a name ending in a slash, or a new name without a suffix)
    rather than an ``.mp4``; any other output is an :class:`InputError`.

    Example:
        >>> writes_folder("out.mp4"), writes_folder("frames"), writes_folder("run.v2/")
        (False, True, True)
    """
    slash = isinstance(output, str) and output.endswith(("/", os.sep))
    output = Path(output)
    if slash or output.is_dir() or not output.suffix:
        return True
    if output.suffix.lower() != ".mp4":
        raise InputError(output, "output must be an .mp4 file or a folder (an existing one, "
                                 "a new name without a suffix, or a name with a dot ending "
                                 f"in /: {output.name}/)")
    return False


def resumable(folder: Path) -> bool:
    """Whether ``folder`` holds frames of an interrupted run: its ``deblur.json`` says
    ``"complete": false``."""
    record = read_record(folder / "deblur.json")
    return record is not None and record.get("complete") is False


# The record's settings as a user sets them, where the key does not say.
_SETTING_NAMES = {"frames": "frames (--range)", "t_start": "frame times", "exposure":
                  "exposure times", "weights_sha256": "the model's weights", "footage": "FRAMES",
                  "input_files": "the gyro log's or footage's files (rewritten since)"}

# Frames on each side of a frame whose inputs its restoration reads: the flow of its
# translation (the next frame's), the window of a video net.
_INPUT_REACH = 2


class FolderOutput:
    """One PNG per frame (``frame_000001.png``...) stored as ``stored(number)`` says (the input
    frame's bit depth, grayness, EXIF), each written atomically; a folder of an interrupted
    run with the same settings is resumed (frames present are kept, but those that read a
    frame file rewritten since, ``settings["frame_files"]``: a corrupt frame mended, which
    stopped the run). ``deblur.json`` holds the
    settings and ``"complete"``, true once every frame is written; a run that fails before
    its first frame leaves no record (:meth:`discard_if_empty`). The folder is held
    (:func:`~gyrodeblur.fileio.hold_folder`) while it is written."""

    def __init__(self, folder: Path, settings: dict,
                 stored: Callable[[int], StoredFormat]) -> None:
        self.folder, self.stored, self.settings = folder, stored, settings
        self.manifest = folder / "deblur.json"
        if self.manifest.is_file():
            earlier = read_record(self.manifest)
            if earlier is None:
                raise InputError(self.manifest, "unreadable record of a deblur run; choose "
                                                "another folder or empty it")
            earlier.pop("complete", None)
            # An earlier release recorded the frame files in one digest.
            recorded_by_files = "frame_files" in earlier or "frame_files" not in settings
            files_then, files_now = earlier.pop("frame_files", {}), settings.get("frame_files")
            others = {k: v for k, v in settings.items() if k != "frame_files"}
            if earlier != others and self._frames():
                if not recorded_by_files:
                    raise InputError(folder, "holds frames of a run recorded by an earlier "
                                             "release of gyrodeblur, which cannot resume it; "
                                             "choose another folder or empty it")
                absent = object()  # a key one record lacks differs from any value, null too
                changed = [_SETTING_NAMES.get(key, key) for key in {**others, **earlier}
                           if earlier.get(key, absent) != others.get(key, absent)]
                raise InputError(folder, f"holds frames of a run with other settings "
                                         f"(changed: {', '.join(changed)}); resume with the "
                                         "same, or choose another folder or empty it")
            for key in {**files_then, **(files_now or {})}:
                if files_then.get(key) != (files_now or {}).get(key):
                    for number in range(int(key) - _INPUT_REACH, int(key) + _INPUT_REACH + 1):
                        self.path(number).unlink(missing_ok=True)
        elif holds_anything(folder):
            raise InputError(folder, "is not empty and not a deblur output; choose another")
        self._record(complete=False)

    def _frames(self) -> list[Path]:
        return list(self.folder.glob("frame_*.png"))

    def discard_if_empty(self) -> None:
        """Remove the record where no frame was written."""
        if not self._frames():
            self.manifest.unlink(missing_ok=True)

    def _record(self, complete: bool) -> None:
        with atomic_path(self.manifest) as tmp:
            tmp.write_text(json.dumps(self.settings | {"complete": complete}, indent=2))

    def finish(self, numbers: np.ndarray) -> None:
        """Mark the folder complete, once every frame of ``numbers`` is there (frames removed
        while it ran, a folder deleted and made again, are not)."""
        missing = [n for n in numbers if not self.done(n)]
        if missing:
            self._record(complete=False)  # the record too may have gone: the re-run resumes
            raise InputError(self.folder, f"{frames_text(missing)} removed while the "
                                          "run wrote the folder; run it again to restore "
                                          + ("it" if len(missing) == 1 else "them"))
        self._record(complete=True)

    def path(self, number: int) -> Path:
        """The PNG of frame ``number``."""
        return self.folder / f"frame_{number:06d}.png"

    def done(self, number: int) -> bool:
        """Whether frame ``number`` was written (by this run or the one it resumes)."""
        return self.path(number).is_file()

    def write(self, number: int, image: np.ndarray) -> None:
        """Write frame ``number`` (float RGB) atomically, stored as its input frame is."""
        with atomic_path(self.path(number)) as tmp:
            write_image(tmp, image, self.stored(number))


def side_by_side_frame(left: np.ndarray, right: np.ndarray, rotation: int = 0) -> np.ndarray:
    """``left`` and ``right`` joined so that ``left`` is on the left once the frame is shown
    turned by its display ``rotation`` (degrees counter-clockwise, as
    :attr:`~gyrodeblur.footage.Footage.rotation`): a phone's portrait clip stays side by side.

    Example:
        >>> a, b = np.zeros((2, 3)), np.ones((2, 3))
        >>> side_by_side_frame(a, b).shape, side_by_side_frame(a, b, 90).shape
        ((2, 6), (4, 3))
        >>> np.rot90(side_by_side_frame(a, b, -90), -1)[0].tolist()  # shown turned clockwise
        [0.0, 0.0, 1.0, 1.0]
    """
    # Turning counter-clockwise brings the stored top to the left, the stored right to the top.
    quarter = round(rotation / 90) % 4
    first, axis = quarter < 2, 1 - quarter % 2
    return np.concatenate([left, right] if first else [right, left], axis)


def deblur_video(job: VideoJob, output: str | Path, side_by_side: bool = False,
                 audio: bool = True, progress: Callable[[int], None] | None = None,
                 crf: int = 18) -> list[str]:
    """Deblur ``job.frames`` into ``output``: an ``.mp4`` (H.264 of quality ``crf``, 4:2:0,
    the input's frame rate, its display rotation and, with ``audio``, its audio track) or a
    folder of PNGs (lossless; resumable; turned upright, as the video is shown). Written
    atomically. A name ending in a slash is a folder.

    ``side_by_side`` puts the input on the left of each output frame as it is shown (its
    display rotation considered). Returns notes for the user on how an ``.mp4`` differs from
    its source (audio left out, odd sizes padded), or how many frames a folder kept.
    """
    to_folder, output = writes_folder(output), Path(output)
    job.check()
    rotation = job.footage.rotation

    def compose(frame: FrameData, restored: np.ndarray, turns: int = 0) -> np.ndarray:
        """The output frame, turned ``turns`` quarter turns counter-clockwise."""
        restored = np.rot90(restored, turns)
        if not side_by_side:
            return np.ascontiguousarray(restored)
        return side_by_side_frame(np.rot90(to_float(frame.image), turns), restored,
                                  rotation - 90 * turns)

    done = 0
    if not to_folder:
        fps = frame_rate(job.footage, job.timing)
        # The audio fits the output only when every frame of the footage is written.
        whole = np.array_equal(job.frames, np.arange(1, job.footage.count + 1))
        source_audio = job.footage.path if audio and whole and job.footage.path.is_file() \
            else None
        with (atomic_path(output) as tmp,
              VideoWriter(tmp, fps, source_audio, crf, job.footage.rotation) as video):
            for clip in job.restored():
                video.write(compose(clip[len(clip) // 2], restore_frame(job.restorer, clip)))
                done += 1
                if progress:
                    progress(done)
        if audio and job.footage.has_audio and not whole:
            return [*video.notes, f"audio left out: {frames_text(job.frames)} of "
                                  f"{job.footage.count} are written"]
        return video.notes
    # PNGs are turned upright (not every viewer honours a PNG's EXIF orientation).
    upright = round(rotation / 90) % 4
    # The input's alpha where the output frame is the input frame's size.
    alpha = not side_by_side and (job.camera.width, job.camera.height) == job.footage.size
    kept = 0
    with hold_folder(output):
        folder = FolderOutput(output, {**job.record(), "side_by_side": side_by_side},
                              lambda number: job.footage.stored_format(number, alpha).turned(
                                  upright))
        try:
            kept_before = {n for n in job.frames.tolist() if folder.done(n)}
            for clip in job.restored(kept_before):
                centre = clip[len(clip) // 2]
                if centre.number in kept_before:
                    kept += 1
                else:
                    folder.write(centre.number,
                                 compose(centre, restore_frame(job.restorer, clip), upright))
                done += 1
                if progress:
                    progress(done)
        except BaseException:
            folder.discard_if_empty()
            raise
        folder.finish(job.frames)
    return [f"resumed: {kept} of the {done} frames were there from an earlier run"] if kept \
        else []
