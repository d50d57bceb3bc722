"""Copy trained weights into the package and record their benchmark scores.

    python scripts/ship_weights.py EVAL.json "BENCHMARK LABEL" runs/deepgyro-s runs/deepblind-s ...

``EVAL.json`` is what ``gyrodeblur eval -o`` wrote for those runs' weights (``-m
runs/NAME/model.safetensors``); each run's weights become ``gyrodeblur/weights/NAME.safetensors``
and its PSNR/SSIM go to ``gyrodeblur/weights/scores.json`` (shown by ``gyrodeblur models``).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

WEIGHTS = Path(__file__).resolve().parents[1] / "gyrodeblur" / "weights"


def main() -> None:
    report = json.loads(Path(sys.argv[1]).read_text())
    WEIGHTS.mkdir(exist_ok=True)
    scores_path = WEIGHTS / "scores.json"
    scores = json.loads(scores_path.read_text()) if scores_path.exists() else {}
    label = sys.argv[2]
    for run in map(Path, sys.argv[3:]):
        key = str(run / "model.safetensors")
        result = report["results"][key]
        shutil.copyfile(run / "model.safetensors", WEIGHTS / f"{run.name}.safetensors")
        scores[run.name] = {"benchmark": label, "psnr": round(result["psnr"], 2),
                            "ssim": round(result["ssim"], 4),
                            "input_psnr": round(report["results"]["blurred input"]["psnr"], 2),
                            "seconds_per_frame": round(result["seconds_per_frame"], 4)}
    scores_path.write_text(json.dumps(scores, indent=2) + "\n")
    print(json.dumps(scores, indent=2))


if __name__ == "__main__":
    main()
