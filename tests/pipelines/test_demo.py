"""The README's main job, ``gyrodeblur demo``, end to end."""

import json

from typer.testing import CliRunner

from gyrodeblur.cli import app
from gyrodeblur.footage import Footage, read_image
from gyrodeblur.pipelines.deblur import DEFAULT_MODEL
from gyrodeblur.pipelines.demo import claim_output


def test_demo_syncs_deblurs_and_writes_its_outputs(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert {"side_by_side.mp4", "comparison.png", "results.md", "results.json", "clip",
            "classic", DEFAULT_MODEL} <= {p.name for p in out.iterdir()}
    results = json.loads((out / "results.json").read_text())
    assert results["complete"] and not (out / "clip" / "kernels.npz").exists()  # 170 MB
    deblurred = json.loads((out / "classic" / "deblur.json").read_text())
    assert deblurred["complete"] and deblurred["sync"] == results["sync"]
    assert results["sync"]["error_ms"] < 1.0  # the offset the device files did not state
    scores = results["scores"]
    for method in (DEFAULT_MODEL, "classic"):
        assert scores[method]["psnr"] > scores["blurred"]["psnr"] + 1.0, scores
    frames = results["clip"]["frames"]
    width, height = results["clip"]["size"]
    video = Footage(out / "side_by_side.mp4")
    assert video.count == frames and video.size == (3 * width, height)
    assert read_image(out / "comparison.png").shape == (height, 5 * width, 3)


def test_a_folder_that_is_not_a_demo_output_is_refused_untouched(tmp_path):
    (tmp_path / "clip").mkdir()
    (tmp_path / "clip" / "mine.txt").write_text("keep")
    result = CliRunner().invoke(app, ["demo", "-o", str(tmp_path)])
    assert result.exit_code == 2 and "not a demo's output" in result.output
    assert (tmp_path / "clip" / "mine.txt").read_text() == "keep"


def test_a_demo_into_a_folder_another_demo_writes_is_refused(tmp_path):
    from gyrodeblur.fileio import hold_folder

    with hold_folder(tmp_path / "demo"):
        result = CliRunner().invoke(app, ["demo", "-o", str(tmp_path / "demo")])
    assert result.exit_code == 2 and "another run is using it" in result.output
    assert list(tmp_path.iterdir()) == []
    # Nor is an earlier demo's output folder replaced while a run writes into it.
    (tmp_path / "demo" / "classic").mkdir(parents=True)
    (tmp_path / "demo" / "results.json").write_text(json.dumps({"demo": ["classic"]}))
    with hold_folder(tmp_path / "demo" / "classic"):
        result = CliRunner().invoke(app, ["demo", "-o", str(tmp_path / "demo")])
    assert result.exit_code == 2 and "classic: another run is using it" in result.output
    assert (tmp_path / "demo" / "classic").is_dir()


def test_an_earlier_demo_output_is_replaced_whole(tmp_path):
    # An interrupted earlier demo: its outputs go, even another default model's folder, so
    # that no results of another run stay beside the new ones; other files stay.
    (tmp_path / "results.json").write_text(json.dumps({"demo": ["old-model"],
                                                       "complete": False}))
    for name in ("clip", "old-model", "classic"):
        (tmp_path / name).mkdir()
    (tmp_path / "comparison.png").write_bytes(b"old")
    (tmp_path / "notes.txt").write_text("mine")
    claim_output(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "results.json"]
    assert json.loads((tmp_path / "results.json").read_text())["complete"] is False


def test_a_link_where_an_earlier_demo_had_a_folder_goes_but_not_what_it_points_to(tmp_path):
    (tmp_path / "important").mkdir()
    (tmp_path / "important" / "keep.txt").write_text("mine")
    out = tmp_path / "demo"
    out.mkdir()
    (out / "results.json").write_text(json.dumps({"demo": ["clip"], "complete": False}))
    (out / "clip").symlink_to(tmp_path / "important")
    claim_output(out)
    assert sorted(p.name for p in out.iterdir()) == ["results.json"]
    assert (tmp_path / "important" / "keep.txt").read_text() == "mine"
