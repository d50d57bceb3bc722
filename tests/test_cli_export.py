import re
import sys

import pytest
from typer.testing import CliRunner

from gyrodeblur.cli import app

pytestmark = pytest.mark.usefixtures("one_thread")


def test_export_writes_the_model_and_reports_the_difference(tmp_path):
    result = CliRunner().invoke(app, ["export", "deepblind-s", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert f"deepblind-s: wrote {tmp_path / 'deepblind-s.onnx'}" in result.stderr
    diff = float(re.search(r"max abs difference (\S+)", result.stderr).group(1))
    assert diff < 1e-4
    assert [p.name for p in tmp_path.iterdir()] == ["deepblind-s.onnx"]


@pytest.mark.parametrize(("args", "message"), [
    (["no-such-model"], "no such weights file or shipped model"),
    (["deepblind-s", "--opset", "13"], "--opset 13"),
    (["deepblind-s", "no-such-model"], "no such weights file or shipped model"),
    (["deepblind-s", "broken.safetensors"], "broken.safetensors: not gyrodeblur weights"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, args, message):
    (tmp_path / "broken.safetensors").write_text("x")
    args = [str(tmp_path / a) if a == "broken.safetensors" else a for a in args]
    result = CliRunner().invoke(app, ["export", *args, "-o", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_a_model_named_twice_is_exported_once(tmp_path):
    result = CliRunner().invoke(app, ["export", "deepblind-s", "deepblind-s", "--no-check",
                                      "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.stderr.count("wrote") == 1


def test_missing_extra_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    result = CliRunner().invoke(app, ["export", "deepblind-s", "-o", str(tmp_path)])
    assert result.exit_code == 2
    assert "pip install 'gyrodeblur[onnx]' (or --no-check)" in result.output
    assert list(tmp_path.iterdir()) == []


def test_a_folder_in_the_way_of_the_onnx_file_is_named_before_any_work(tmp_path):
    (tmp_path / "deepblind-s.onnx").mkdir()
    result = CliRunner().invoke(app, ["export", "deepblind-s", "-o", str(tmp_path)])
    assert result.exit_code == 2
    assert f"{tmp_path / 'deepblind-s.onnx'}: is a folder, not a file" in result.output
    assert [p.name for p in tmp_path.iterdir()] == ["deepblind-s.onnx"]


def test_output_ending_in_onnx_is_the_file_for_one_model(tmp_path):
    result = CliRunner().invoke(app, ["export", "deepblind-s", "--no-check",
                                      "-o", str(tmp_path / "mine.onnx")])
    assert result.exit_code == 0, result.output
    assert [p.name for p in tmp_path.iterdir()] == ["mine.onnx"]
    result = CliRunner().invoke(app, ["export", "deepgyro-s", "--no-check",
                                      "-o", str(tmp_path / "gyro.onnx")])
    assert result.exit_code == 0 and "gyro.onnx (kernels of T=9)" in result.stderr
    (tmp_path / "gyro.onnx").unlink()
    result = CliRunner().invoke(app, ["export", "deepblind-s", "deepgyro-s", "--no-check",
                                      "-o", str(tmp_path / "two.onnx")])
    assert result.exit_code == 2 and "one file for 2 models: give a folder" in result.output
    assert [p.name for p in tmp_path.iterdir()] == ["mine.onnx"]
    # The suffix in capitals names a file too.
    result = CliRunner().invoke(app, ["export", "deepblind-s", "--no-check",
                                      "-o", str(tmp_path / "LOUD.ONNX")])
    assert result.exit_code == 0 and (tmp_path / "LOUD.ONNX").is_file()


def test_a_model_failing_its_check_after_others_says_what_was_kept(tmp_path, monkeypatch):
    from gyrodeblur.errors import InputError
    from gyrodeblur.pipelines import export

    real = export.export_model

    def second_differs(name, *args):
        if name == "deepgyro-s":
            raise InputError(name, "onnxruntime differs from PyTorch by 6e-02 (more than "
                                   "0.001); nothing written")
        return real(name, *args)

    monkeypatch.setattr(export, "export_model", second_differs)
    result = CliRunner().invoke(app, ["export", "deepblind-s", "deepgyro-s", "--no-check",
                                      "-o", str(tmp_path)])
    assert result.exit_code == 2 and "deepgyro-s: onnxruntime differs from PyTorch by 6e-02 " \
        f"(more than 0.001); nothing written; {tmp_path / 'deepblind-s.onnx'}, exported " \
        "before it, kept" in " ".join(result.output.split())
    assert [p.name for p in tmp_path.iterdir()] == ["deepblind-s.onnx"]


def test_weights_named_with_brackets_are_exported_and_never_overwritten(tmp_path):
    import shutil

    from gyrodeblur.models import weights_file

    (tmp_path / "d[").mkdir()
    weights = tmp_path / "d[" / "x].safetensors"  # "[/x]" would be markup to rich
    shutil.copy(weights_file("deepblind-s"), weights)
    result = CliRunner().invoke(app, ["export", str(weights), "--no-check", "-o",
                                      str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert f"{weights}: wrote {tmp_path / 'out' / 'deepblind-s.onnx'}" in result.stderr
    (tmp_path / "pin.onnx").symlink_to(weights)  # the output named by a link to the input
    before = weights.read_bytes()
    result = CliRunner().invoke(app, ["export", str(weights), "--no-check", "-o",
                                      str(tmp_path / "pin.onnx")])
    assert result.exit_code == 2 and "pin.onnx: would overwrite an input" in result.output
    assert weights.read_bytes() == before


def test_a_folder_name_that_is_not_utf8_is_exported_into(tmp_path):
    import os

    folder = tmp_path / os.fsdecode(b"onnx\xff")  # bytes a file system takes, no UTF-8
    result = CliRunner().invoke(app, ["export", "deepblind-s", "-o", str(folder)])
    assert result.exit_code == 0, result.output
    assert [p.name for p in folder.iterdir()] == ["deepblind-s.onnx"]
