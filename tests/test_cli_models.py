import json

import pytest
from typer.testing import CliRunner

from gyrodeblur.cli import app
from gyrodeblur.models import VARIANTS, build_model, load_model, shipped_weights, weights_file
from gyrodeblur.pipelines.deblur import DEFAULT_MODEL


def test_models_lists_every_variant_with_its_parameter_count():
    result = CliRunner().invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    listing = json.loads(result.output)
    names = [v["name"] for v in listing["variants"]]
    assert names == list(VARIANTS)
    counts = {v["name"]: v["parameters"] for v in listing["variants"]}
    assert counts["deepgyro-s"] == sum(p.numel() for p in build_model(
        {"variant": "deepgyro-s"}).parameters())
    assert abs(counts["gyrodvd-64"] - 5.04e6) / 5.04e6 < 0.1
    assert abs(counts["gyrodvd-128"] - 17.15e6) / 17.15e6 < 0.1
    assert sorted(s["name"] for s in listing["shipped"]) == sorted(shipped_weights())
    for entry in listing["shipped"]:
        net = build_model(entry["model"])
        assert entry["parameters"] == sum(p.numel() for p in net.parameters())
    assert [s["name"] for s in listing["shipped"] if s["default"]] == [DEFAULT_MODEL]


def test_a_training_runs_folder_stands_for_its_weights(tmp_path):
    import shutil

    from gyrodeblur.pipelines.export import onnx_name

    shutil.copyfile(shipped_weights()["deepgyro-path-s"], tmp_path / "model.safetensors")
    assert weights_file(tmp_path) == tmp_path / "model.safetensors"
    assert load_model(tmp_path)[1] == load_model("deepgyro-path-s")[1]
    assert onnx_name(tmp_path) == onnx_name("deepgyro-path-s") == "deepgyro-path-s"
    (tmp_path / "model.safetensors").unlink()
    assert weights_file(tmp_path) == tmp_path  # an empty folder: no weights there


@pytest.mark.parametrize("listing", [["--json"], []])
def test_a_reader_that_leaves_the_pipe_ends_the_command_quietly(listing):
    import subprocess
    import sys

    # `gyrodeblur models | head -c 0`: the reader has gone before anything is written. The
    # table and the JSON end alike, with a shell's status for it.
    process = subprocess.Popen([sys.executable, "-m", "gyrodeblur", "models", *listing],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()
    assert process.wait(timeout=120) == 141 and process.stderr.read() == b""
