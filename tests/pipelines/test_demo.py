"""The README's main job, ``gyrodeblur demo``, end to end."""

import json

from typer.testing import CliRunner

from gyrodeblur.cli import app
from gyrodeblur.footage import Footage, read_image
from gyrodeblur.pipelines.deblur import DEFAULT_MODEL


def test_demo_syncs_deblurs_and_writes_its_outputs(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert {"side_by_side.mp4", "comparison.png", "results.md", "results.json", "clip",
            "classic", DEFAULT_MODEL} <= {p.name for p in out.iterdir()}
    results = json.loads((out / "results.json").read_text())
    assert results["sync"]["error_ms"] < 1.0  # the offset the device files did not state
    scores = results["scores"]
    for method in (DEFAULT_MODEL, "classic"):
        assert scores[method]["psnr"] > scores["blurred"]["psnr"] + 1.0, scores
    frames = results["clip"]["frames"]
    width, height = results["clip"]["size"]
    video = Footage(out / "side_by_side.mp4")
    assert video.count == frames and video.size == (3 * width, height)
    assert read_image(out / "comparison.png").shape == (height, 5 * width, 3)
