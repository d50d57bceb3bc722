"""Evaluation: ``gyrodeblur eval``.

- **Restoration**: a synthetic benchmark drawn with fixed seeds (held apart from training
  seeds), or clip folders of pairs; PSNR/SSIM per sample (a synthetic image or clip, a
  folder's frame) and their mean (CONVENTIONS, see :mod:`gyrodeblur.metrics`), time per
  frame; JSON and a Markdown table.
- **Features** (DeepGyro, WACV 2019, Table 1): SIFT repeatability and matching score before
  and after deblurring, on image pairs with a known homography, both images blurred along
  real gyro motion.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from gyrodeblur.errors import InputError
from gyrodeblur.fileio import atomic_path, hold_folder, read_record
from gyrodeblur.metrics import CONVENTION, SSIM_WINDOW, psnr, ssim

# Benchmark samples come from seeds far from any training seed.
BENCHMARK_SEED = 1_000_003

BatchRestore = Callable[[dict[str, torch.Tensor]], torch.Tensor]
Progress = Callable[[int, int], None]  # told (items done, items in all)


# Sampler overrides of the benchmark presets. "strong" is the distribution the shipped models
# were trained on: narrow fields of view and strong shake, blur of up to ~40 px at 256 px.
PRESETS: dict[str, dict] = {
    "default": {},
    "strong": {"hfov_deg": (30.0, 50.0), "shake_scale": (2.0, 8.0), "real_gain": (1.5, 3.0),
               "noise": (0.0, 0.01)},
}


@dataclass(frozen=True)
class BenchmarkSpec:
    """A synthetic benchmark: ``count`` samples of ``frames`` frames at ``width x height``."""

    frames: int = 1
    count: int = 24
    width: int = 256
    height: int = 192
    samples: int = 9
    seed: int = BENCHMARK_SEED
    images: str | None = None
    preset: str = "default"


def synthetic_benchmark(spec: BenchmarkSpec, flow_kernel: bool = False,
                        progress: Progress | None = None) -> list[dict[str, torch.Tensor]]:
    """The benchmark's samples (deterministic: same spec, same samples)."""
    from gyrodeblur.synthesis.datasets import SyntheticDataset
    from gyrodeblur.synthesis.images import ImageBank
    from gyrodeblur.synthesis.sampler import ClipSampler, SamplerSettings

    settings = SamplerSettings(width=spec.width, height=spec.height, frames=spec.frames,
                               samples=spec.samples, **PRESETS[spec.preset])
    bank = ImageBank(None if spec.images is None else Path(spec.images))
    dataset = SyntheticDataset(ClipSampler(bank, settings, spec.seed), spec.count,
                               flow_kernel=flow_kernel)
    return _drawn(dataset, spec.count, progress)


def _drawn(dataset: torch.utils.data.Dataset, count: int, progress: Progress | None
           ) -> list[dict[str, torch.Tensor]]:
    samples = []
    for i in range(count):
        sample = dataset[i]
        for key in ("rot_true", "tran_true"):  # not scored: half a sample's memory
            sample.pop(key, None)
        samples.append(sample)
        if progress is not None:
            progress(i + 1, count)
    return samples


def folder_benchmark(root: str | Path, frames: int = 1, samples: int = 9,
                     progress: Progress | None = None,
                     check_memory: Callable[[int], None] | None = None
                     ) -> tuple[list[dict[str, torch.Tensor]], list[str], list[str]]:
    """Samples of clip folders with ``sharp/`` references (real or exported pairs), their
    kernels of ``samples`` samples, their names (clip folder and frame) and clips. Each frame
    is one sample, in the window of ``frames`` around it (``ClipFolderDataset``'s
    ``per_frame``). ``check_memory`` is given the bytes they will take, before they are
    drawn (from the first sample's, per pixel)."""
    from gyrodeblur.synthesis.datasets import ClipFolderDataset

    with hold_folder(root, reading=True):  # not while `synth clips` still fills it
        dataset = ClipFolderDataset(root, frames=frames, samples=samples, paired=True,
                                    per_frame=True)
        for clip in dataset.clips:
            if min(clip.footage.size) < SSIM_WINDOW:
                raise InputError(clip.path, "frames of {}x{} are smaller than SSIM's {}x{} "
                                 "window".format(*clip.footage.size, SSIM_WINDOW, SSIM_WINDOW))
        if check_memory is not None:
            first = dataset[0]
            pixels = [math.prod(dataset.clips[c].footage.size) for c, _, _ in dataset.index]
            check_memory(round(sum(t.nbytes for t in first.values()) / pixels[0] * sum(pixels)))
        within = [dataset.clips[c].path.relative_to(root) for c, _, _ in dataset.index]
        # A clip folder given as the root is named by itself, not ".".
        clips = [str(p) if p != Path() else Path(root).resolve().name for p in within]
        names = [f"{clip} frame {first + centre}"
                 for clip, (_, first, centre) in zip(clips, dataset.index, strict=True)]
        return _drawn(dataset, len(dataset), progress), names, clips


def _frames(image: torch.Tensor) -> list[np.ndarray]:
    """``(3, H, W)`` or ``(F, 3, H, W)`` -> list of ``(H, W, 3)`` clipped to [0, 1]."""
    stack = image if image.ndim == 4 else image[None]
    return [f.clamp(0, 1).permute(1, 2, 0).numpy().astype(np.float64) for f in stack]


def classic_restore(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The classical deconvolution as a ``BatchRestore``, with the whole kernel ``rot + tran`` (as
    ``deblur``; a synthetic single image has no ``tran``, as ``deblur image`` has none)."""
    from gyrodeblur.models.classic import deconvolve

    video = batch["blurred"].dim() == 5
    blurred = batch["blurred"] if video else batch["blurred"][:, None]
    traj = batch["rot"] + batch["tran"] if "tran" in batch else batch["rot"]
    traj = traj if video else traj[:, None]
    out = torch.empty_like(blurred)
    for b in range(blurred.shape[0]):
        for f in range(blurred.shape[1]):
            restored = deconvolve(blurred[b, f].permute(1, 2, 0).numpy(), traj[b, f].numpy())
            out[b, f] = torch.from_numpy(restored).permute(2, 0, 1)
    return out if video else out[:, 0]


def net_restore(net: torch.nn.Module, name: str | Path | None = None) -> BatchRestore:
    """A network (named ``name`` in errors) as a ``BatchRestore`` on the CPU's tensors,
    wherever the net is (a GPU: there and back, timed with it); a net that refines the
    classical method's restoration gets it first (and is timed with it)."""
    from gyrodeblur.models import check_restored, predict, refines_classic

    device = next(net.parameters()).device

    def restore(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if refines_classic(net):
            batch = {**batch, "estimate": classic_restore(batch)}
        on_device = {k: v.to(device) if isinstance(v, torch.Tensor) else v
                     for k, v in batch.items()}
        return check_restored(predict(net, on_device), name).cpu()

    return restore


def _centre_only(sample: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A folder sample cut to its ``centre`` frame, the one scored."""
    c = int(sample["centre"])
    return {k: v[c:c + 1] for k, v in sample.items() if k != "centre"} | {
        "centre": torch.tensor(0)}


def evaluate(restore: BatchRestore, samples: list[dict[str, torch.Tensor]],
             names: list[str] | None = None, clips: list[str] | None = None,
             progress: Progress | None = None, per_frame: bool = False,
             done: dict | None = None, record: Callable[[dict], None] | None = None) -> dict:
    """PSNR/SSIM of ``restore`` on each sample (mean over its frames, or its ``centre`` frame
    only where it says one), on each clip and overall.

    ``restore`` gets a sample batched (leading axis of 1) and returns the restored frames;
    its time per frame leaves out reading the data and computing the kernels, and a first
    warm-up call;
    ``names`` label the samples in ``per_sample``; ``clips`` name the clip of each sample
    where a clip spans several (a folder's frames): ``per_clip`` gives their means, and the
    overall mean is over clips, so that a long clip counts as much as a short one (otherwise
    each sample is a clip); ``progress`` is told each sample done. A ``per_frame`` restorer
    (a single-image model, the classical method) restores frames one by one, so it gets only
    the ``centre`` frame where a sample says one: the others would only cost it time.

    ``record``, if given, gets the scores so far (JSON-ready) after each sample; given back as
    ``done`` by a later call on the same samples, they are kept and only the samples after
    them restored: a killed evaluation resumes.
    """
    if per_frame:  # a window of frames, (F, 3, H, W)
        samples = [_centre_only(s) if "centre" in s and s["blurred"].ndim == 4 else s
                   for s in samples]
    label = list(range(len(samples))) if names is None else names
    state = {"rows": [], "seconds": 0.0, "frames": 0}
    if done is not None:
        state = {"rows": list(done["rows"]), "seconds": done["seconds"], "frames": done["frames"]}
        if [r["sample"] for r in state["rows"]] != label[:len(state["rows"])]:
            raise ValueError("the scores to resume from are of other samples")
    rows, first = state["rows"], len(state["rows"])
    if progress is not None:  # the total shown from the start, through the warm-up
        progress(first, len(samples))
    if first < len(samples):  # untimed: the first call compiles (numba) and allocates
        with torch.no_grad():
            restore({k: v[None].float() for k, v in samples[first].items()})
    for i in range(first, len(samples)):
        sample = samples[i]
        batch = {k: v[None].float() for k, v in sample.items()}
        start = time.perf_counter()
        with torch.no_grad():
            out = restore(batch)[0]
        state["seconds"] += time.perf_counter() - start
        pairs = list(zip(_frames(out), _frames(sample["sharp"].float()), strict=True))
        if "centre" in sample:
            pairs = [pairs[int(sample["centre"])]]
        state["frames"] += len(pairs)
        rows.append({"sample": label[i],
                     "psnr": float(np.mean([psnr(a, b) for a, b in pairs])),
                     "ssim": float(np.mean([ssim(a, b) for a, b in pairs]))})
        if record is not None:
            record(state)
        if progress is not None:
            progress(i + 1, len(samples))
    results = {"seconds_per_frame": state["seconds"] / max(state["frames"], 1),
               "per_sample": rows, "convention": CONVENTION}
    if clips is not None:
        members: dict[str, list[dict]] = {}
        for clip, row in zip(clips, rows, strict=True):
            members.setdefault(clip, []).append(row)
        rows = [{"clip": clip, **{m: float(np.mean([r[m] for r in clip_rows]))
                                  for m in ("psnr", "ssim")}}
                for clip, clip_rows in members.items()]
        results["per_clip"] = rows
    return {"psnr": float(np.mean([r["psnr"] for r in rows])),
            "ssim": float(np.mean([r["ssim"] for r in rows])), **results}


class PartialReport:
    """An evaluation's scores so far, kept in ``path`` (JSON; None: in memory only) as they
    come, so that the same evaluation run again resumes where it stopped: only a record of
    the same ``settings`` (JSON-ready: benchmark, data, device) is taken up, and of it only
    the scores of each method's same ``weights`` (a digest; None for methods without).

    Each ``part`` (``"results"``: :func:`evaluate` ``record`` states, ``"features"``:
    finished :func:`feature_test` results) maps methods to their scores.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "results.json.partial"
        >>> PartialReport(path, {"count": 2}).save("results", "net", "w1", {"rows": []})
        >>> PartialReport(path, {"count": 2}).earlier("results", "net", "w1")
        {'rows': []}
        >>> print(PartialReport(path, {"count": 2}).earlier("results", "net", "w2"))
        None
        >>> PartialReport(path, {"count": 3}).stale  # other settings: from the start
        True
    """

    def __init__(self, path: str | Path | None, settings: dict) -> None:
        self.path, self.settings = path and Path(path), json.loads(json.dumps(settings))
        record = read_record(self.path) if self.path is not None else None
        self.stale = record is not None and record.get("settings") != self.settings
        self._done: dict[str, dict] = record["done"] if record is not None and \
            not self.stale else {"results": {}, "features": {}}

    def earlier(self, part: str, method: str, weights: str | None) -> dict | None:
        """``method``'s scores in ``part`` kept by an earlier run, if of these ``weights``."""
        kept = self._done[part].get(method)
        return kept["scores"] if kept is not None and kept["weights"] == weights else None

    def save(self, part: str, method: str, weights: str | None, scores: dict) -> None:
        """Keep ``method``'s ``scores`` so far in ``part``, written atomically."""
        self._done[part][method] = {"weights": weights, "scores": scores}
        if self.path is not None:
            with atomic_path(self.path) as tmp:
                tmp.write_text(json.dumps({"settings": self.settings, "done": self._done}))

    def saved(self) -> bool:
        """Whether scores are kept on disk."""
        return self.path is not None and self.path.is_file()

    def remove(self) -> None:
        """Forget the record: the evaluation is complete."""
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def describe(benchmark: dict) -> str:
    """One line saying what a report's ``benchmark`` (``{"synthetic": BenchmarkSpec as a
    dict}`` or ``{"folder", "frames", "samples"}``) is.

    Example:
        >>> from dataclasses import asdict
        >>> print(describe({"synthetic": asdict(BenchmarkSpec(count=2))}))
        ... # doctest: +NORMALIZE_WHITESPACE
        Benchmark: synthetic, default motion, 2 samples of 1 frame 256x192, T=9, seed 1000003,
        embedded images.
    """
    if "synthetic" in benchmark:
        b = benchmark["synthetic"]
        return (f"Benchmark: synthetic, {b['preset']} motion, {b['count']} samples of "
                f"{b['frames']} frame{'s' * (b['frames'] > 1)} {b['width']}x{b['height']}, "
                f"T={b['samples']}, seed {b['seed']}, {b['images'] or 'embedded'} images.")
    return (f"Benchmark: the clip folders of {benchmark['folder']}, each frame restored in a "
            f"window of {benchmark['frames']}, T={benchmark['samples']}.")


def markdown_table(results: dict[str, dict], benchmark: dict | None = None) -> str:
    """A Markdown table of ``{method: evaluate(...)}``, under :func:`describe` of
    ``benchmark`` if given."""
    lines = [describe(benchmark), ""] if benchmark is not None else []
    lines += ["| method | PSNR (dB) | SSIM | s/frame |", "|---|---:|---:|---:|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['psnr']:.2f} | {r['ssim']:.4f} | "
                     f"{r['seconds_per_frame']:.4f} |")
    return "\n".join(lines) + (f"\n\nPSNR/SSIM convention: {CONVENTION}. s/frame: the "
                                "restoration alone (no reading, no kernels), after a "
                                f"warm-up call, on {torch.get_num_threads()} threads.\n")


def features_table(features: dict[str, dict]) -> str:
    """A Markdown table of ``{method: feature_test(...)}``: mean SIFT scores of the sharp and
    blurred pairs (the same for every method) and of each method's restored pairs.

    Example:
        >>> row = {"repeatability": 0.5, "matching_score": 0.25}
        >>> print(features_table({"none": {"mean": {"sharp": row, "blurred": row}},
        ...                       "m": {"mean": {"sharp": row, "blurred": row, "deblurred": row}}}))
        | pairs | repeatability | matching score |
        |---|---:|---:|
        | sharp | 0.500 | 0.250 |
        | blurred | 0.500 | 0.250 |
        | deblurred by m | 0.500 | 0.250 |
        <BLANKLINE>
    """
    first = next(iter(features.values()))["mean"]
    rows = [("sharp", first["sharp"]), ("blurred", first["blurred"])]
    rows += [(f"deblurred by {name}", r["mean"]["deblurred"]) for name, r in features.items()
             if "deblurred" in r["mean"]]
    lines = ["| pairs | repeatability | matching score |", "|---|---:|---:|"]
    lines += [f"| {name} | {scores['repeatability']:.3f} | {scores['matching_score']:.3f} |"
              for name, scores in rows]
    return "\n".join(lines) + "\n"


# --- DeepGyro's feature test -------------------------------------------------------------


def _project(points: np.ndarray, H: np.ndarray) -> np.ndarray:
    p = np.c_[points, np.ones(len(points))] @ H.T
    return p[:, :2] / p[:, 2:]


def sift_scores(image1: np.ndarray, image2: np.ndarray, H: np.ndarray,
                tolerance: float = 2.5) -> dict[str, float]:
    """SIFT repeatability and matching score of a pair related by ``H`` (img1 -> img2).

    Only keypoints whose projection lies inside the other image count. Repeatability: the
    share of img1 keypoints with an img2 keypoint within ``tolerance`` px of their projection
    (of the smaller count, capped at 1); matching score: the share of Lowe-ratio (0.8)
    nearest-neighbour descriptor matches that are correct under ``H`` (of the same count).
    After Mikolajczyk and Schmid (PAMI 2005), but looser: a distance instead of an overlap
    criterion, and no one-to-one pairing, so SIFT's keypoints repeated at one spot with other
    orientations each count (one-to-one pairing scores sharp Oxford pairs about 13 % lower).
    """
    sift = cv2.SIFT_create()
    gray = [cv2.cvtColor((np.clip(i, 0, 1) * 255 + 0.5).astype(np.uint8), cv2.COLOR_RGB2GRAY)
            for i in (image1, image2)]
    (k1, d1), (k2, d2) = (sift.detectAndCompute(g, None) for g in gray)
    if not k1 or not k2:
        return {"repeatability": 0.0, "matching_score": 0.0, "keypoints": 0}
    p1 = np.array([k.pt for k in k1])
    p2 = np.array([k.pt for k in k2])
    h2, w2 = gray[1].shape
    h1, w1 = gray[0].shape
    q1 = _project(p1, H)
    inside1 = (q1[:, 0] >= 0) & (q1[:, 0] < w2) & (q1[:, 1] >= 0) & (q1[:, 1] < h2)
    q2 = _project(p2, np.linalg.inv(H))
    inside2 = (q2[:, 0] >= 0) & (q2[:, 0] < w1) & (q2[:, 1] >= 0) & (q2[:, 1] < h1)
    n = min(inside1.sum(), inside2.sum())
    if n == 0:
        return {"repeatability": 0.0, "matching_score": 0.0, "keypoints": 0}
    dist = np.linalg.norm(q1[inside1][:, None] - p2[inside2][None], axis=-1)
    repeated = int((dist.min(axis=1) <= tolerance).sum())
    matches = cv2.BFMatcher(cv2.NORM_L2).knnMatch(d1, d2, k=2)
    good = [m[0] for m in matches if len(m) == 2 and m[0].distance < 0.8 * m[1].distance]
    correct = sum(1 for m in good if inside1[m.queryIdx]
                  and np.linalg.norm(q1[m.queryIdx] - p2[m.trainIdx]) <= tolerance)
    return {"repeatability": min(repeated / n, 1.0), "matching_score": min(correct / n, 1.0),
            "keypoints": int(n)}


def _homography(path: Path) -> np.ndarray:
    """The 3x3 matrix of an Oxford ``H1toNp`` file (whitespace-separated rows)."""
    if not path.is_file():
        raise InputError(path, "no such homography file")
    try:
        H = np.loadtxt(path, ndmin=2)
    except ValueError as e:
        raise InputError(path, f"not a 3x3 homography ({e})") from None
    if H.shape != (3, 3) or not np.isfinite(H).all() or abs(np.linalg.det(H)) < 1e-12:
        raise InputError(path, f"not an invertible 3x3 homography (read {H.shape[0]}x"
                               f"{H.shape[1]} numbers)")
    return H


_MIN_FEATURE_SIDE = 32  # SIFT finds no keypoints in smaller images


def _overlap(H: np.ndarray, source: tuple[int, int], target: tuple[int, int]) -> bool:
    """Whether ``H`` maps any of a 32x32 grid over the ``source`` (H, W) image in front of the
    camera and into the ``target`` one.

    Example:
        >>> near, far = (np.array([[1.0, 0, dx], [0, 1, 0], [0, 0, 1]]) for dx in (50, 1e6))
        >>> _overlap(near, (100, 100), (100, 100)), _overlap(far, (100, 100), (100, 100))
        (True, False)
    """
    ys, xs = np.meshgrid(np.linspace(0, source[0] - 1, 32), np.linspace(0, source[1] - 1, 32))
    mapped = H @ np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
    x, y = mapped[:2] / np.where(mapped[2] > 0, mapped[2], np.nan)
    return bool(np.any((x >= 0) & (x <= target[1] - 1) & (y >= 0) & (y <= target[0] - 1)))


def oxford_pairs(root: str | Path, targets: tuple[int, ...] = (2, 3)
                 ) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """``(name, img1, imgN, H1toN)`` of each Oxford sequence folder under ``root``."""
    from gyrodeblur.footage import read_image

    def image(path: Path) -> np.ndarray:
        pixels = read_image(path)
        if min(pixels.shape[:2]) < _MIN_FEATURE_SIDE:  # no SIFT keypoints: scores of 0
            raise InputError(path, f"{pixels.shape[1]}x{pixels.shape[0]} is too small for the "
                                   f"feature test (at least {_MIN_FEATURE_SIDE} px a side)")
        return pixels

    pairs = []
    for folder in sorted(p for p in Path(root).iterdir() if p.is_dir()):
        # The sets are colour .ppm, but for boat's grey .pgm.
        suffix = next((s for s in (".ppm", ".pgm") if (folder / f"img1{s}").is_file()), None)
        if suffix is None:
            continue
        first = image(folder / f"img1{suffix}")
        for n in targets:
            H = _homography(folder / f"H1to{n}p")
            target = image(folder / f"img{n}{suffix}")
            if not _overlap(H, first.shape[:2], target.shape[:2]):  # else a score of 0
                raise InputError(folder / f"H1to{n}p", f"maps no part of img1 into img{n} "
                                                       f"({target.shape[1]}x{target.shape[0]}): "
                                                       "a homography of other images?")
            pairs.append((f"{folder.name} 1-{n}", first, target, H))
    if not pairs:
        one = any((Path(root) / f"img1{s}").is_file() for s in (".ppm", ".pgm"))
        raise InputError(root, "one Oxford sequence: give the folder that holds it" if one else
                         "no Oxford sequence folders (img1.ppm or .pgm, H1to2p...) in it")
    return pairs


FEATURE_EXPOSURE = 0.04
"""s, the feature test's exposure: blur of a handheld shot in dim light."""
FEATURE_FOV_DEG, FEATURE_READOUT, FEATURE_SEGMENT = 60.0, 0.02, 0.2
"""The feature test's camera (horizontal field of view, readout in s) and the span (s) of
the bundled gyro trace each image is blurred along."""


def feature_settings(root: str | Path, pairs: list, samples: int) -> dict:
    """How :func:`feature_test` ran with its defaults on ``pairs`` of ``root``, for reports."""
    return {"folder": str(root), "pairs": [name for name, *_ in pairs], "samples": samples,
            "exposure": FEATURE_EXPOSURE, "seed": BENCHMARK_SEED,
            "camera": f"{FEATURE_FOV_DEG:g}-degree horizontal field of view, "
                      f"{FEATURE_READOUT * 1000:g} ms readout",
            "motion": f"a random {FEATURE_SEGMENT:g} s segment of a bundled real gyro trace "
                      "per image"}


def describe_features(settings: dict) -> str:
    """One line saying how the feature test of :func:`feature_settings` ran."""
    return (f"Feature test: {len(settings['pairs'])} Oxford pairs of {settings['folder']}, each "
            f"image blurred along {settings['motion']} ({settings['camera']}, "
            f"{settings['exposure'] * 1000:g} ms exposure, seed {settings['seed']}), "
            f"T={settings['samples']}.")


def feature_test(pairs: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]],
                 restore: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
                 exposure: float = FEATURE_EXPOSURE, seed: int = BENCHMARK_SEED,
                 progress: Progress | None = None, samples: int = 9) -> dict:
    """SIFT scores of sharp, blurred and (with ``restore``) deblurred pairs.

    Each image is blurred along its own ``FEATURE_SEGMENT`` of a bundled real gyro trace (a
    camera of ``FEATURE_FOV_DEG`` and ``FEATURE_READOUT``, ``exposure``);
    ``restore(blurred, rot)`` gets the blurred image and its rotation kernels
    ``(samples, 2, H, W)`` and returns the restored image; ``progress`` is told each pair done.
    """
    from gyrodeblur.geometry.camera import Camera
    from gyrodeblur.geometry.rotation import integrate
    from gyrodeblur.kernels.rotation import rotation_trajectories
    from gyrodeblur.pipelines.deblur import resample_samples
    from gyrodeblur.synthesis.blur import blur_image, continuous_subsamples
    from gyrodeblur.synthesis.motion import bundled_traces, random_segment

    rng = np.random.default_rng(seed)
    traces = bundled_traces()
    rows = []
    for name, image1, image2, H in pairs:
        versions: dict[str, list[np.ndarray]] = {"sharp": [image1, image2], "blurred": [],
                                                 "deblurred": []}
        for image in (image1, image2):
            height, width = image.shape[:2]
            cam = Camera.from_fov(width, height, FEATURE_FOV_DEG,
                                  readout_time=FEATURE_READOUT)
            segment = random_segment(traces[rng.integers(len(traces))], FEATURE_SEGMENT, rng)
            rot, _ = rotation_trajectories(integrate(segment.t, segment.w), cam, 0.05,
                                           exposure, 9)
            blurred = blur_image(image, rot, subsamples=continuous_subsamples(rot))
            versions["blurred"].append(blurred)
            if restore is not None:
                versions["deblurred"].append(restore(blurred, resample_samples(rot, samples)))
        row = {"pair": name}
        for version, (a, b) in ((k, v) for k, v in versions.items() if v):
            row[version] = sift_scores(a, b, H)
        rows.append(row)
        if progress is not None:
            progress(len(rows), len(pairs))
    summary = {version: {metric: float(np.mean([r[version][metric] for r in rows]))
                         for metric in ("repeatability", "matching_score")}
               for version in rows[0] if version != "pair"}
    return {"mean": summary, "pairs": rows}
