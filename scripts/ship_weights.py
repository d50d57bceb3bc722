"""Copy trained weights into the package and record their benchmark scores.

    python scripts/ship_weights.py EVAL.json "BENCHMARK LABEL" runs/deepgyro-s runs/deepblind-s ...

``EVAL.json`` is what ``gyrodeblur eval -o`` wrote for those runs' weights (``-m
runs/NAME/model.safetensors``); each run's weights become ``gyrodeblur/weights/NAME.safetensors``
and its scores (PSNR/SSIM, the input's, time per frame, the benchmark's settings) go to
``gyrodeblur/weights/scores.json`` (shown by ``gyrodeblur models``). A shipped model's name in
place of a run folder (evaluated as ``-m NAME``) records its scores anew, keeping its weights.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

WEIGHTS = Path(__file__).resolve().parents[1] / "gyrodeblur" / "weights"


def portable(settings: dict) -> dict:
    """``settings`` with its image folders relative to the repository, as the docs write
    them (``../shared/data/...``), not this machine's absolute paths."""
    root = WEIGHTS.parents[1]
    return {key: portable(value) if isinstance(value, dict) else
            os.path.relpath(value, root) if key in ("images", "folder", "features") and value
            else value for key, value in settings.items()}


def main() -> None:
    report = json.loads(Path(sys.argv[1]).read_text())
    WEIGHTS.mkdir(exist_ok=True)
    scores_path = WEIGHTS / "scores.json"
    scores = json.loads(scores_path.read_text()) if scores_path.exists() else {}
    label, given = sys.argv[2], report["results"]["blurred input"]
    for run in sys.argv[3:]:
        if Path(run).is_dir():
            key, name = str(Path(run) / "model.safetensors"), Path(run).name
            shutil.copyfile(key, WEIGHTS / f"{name}.safetensors")
        else:
            key = name = run
        result = report["results"][key]
        scores[name] = {"benchmark": label, "benchmark_settings": portable(report["benchmark"]),
                        "psnr": round(result["psnr"], 2), "ssim": round(result["ssim"], 4),
                        "input_psnr": round(given["psnr"], 2),
                        "input_ssim": round(given["ssim"], 4),
                        "seconds_per_frame": round(result["seconds_per_frame"], 4)}
    scores_path.write_text(json.dumps(scores, indent=2) + "\n")
    print(json.dumps(scores, indent=2))


if __name__ == "__main__":
    main()
