import json
import re

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from gyrodeblur.cli import app
from gyrodeblur.errors import InputError
from gyrodeblur.footage import read_image, write_image
from gyrodeblur.metrics import psnr
from gyrodeblur.models import weights_file
from gyrodeblur.pipelines.evaluate import (
    BenchmarkSpec,
    classic_restore,
    evaluate,
    folder_benchmark,
    markdown_table,
    sift_scores,
    synthetic_benchmark,
)
from gyrodeblur.synthesis.images import dead_leaves


def test_evaluate_reports_the_psnr_of_a_known_error():
    rng = np.random.default_rng(0)
    samples = [{"blurred": torch.rand(3, 32, 40), "sharp": torch.rand(3, 32, 40) * 0.9}
               for _ in range(2)]
    clip = {"blurred": torch.rand(2, 3, 32, 40), "sharp": torch.from_numpy(
        rng.random((2, 3, 32, 40), dtype=np.float32) * 0.9)}
    told = []
    result = evaluate(lambda b: b["sharp"] + 0.01, samples + [clip],  # MSE 1e-4 everywhere
                      progress=lambda done, total: told.append((done, total)))
    assert told == [(0, 3), (1, 3), (2, 3), (3, 3)]  # the total from before the warm-up
    assert result["psnr"] == pytest.approx(40.0, abs=1e-3)
    assert len(result["per_sample"]) == 3 and 0.99 < result["ssim"] <= 1.0
    assert "| blurred |" in markdown_table({"blurred": result})


def test_a_clip_of_many_samples_counts_once_in_the_mean():
    samples = [{"blurred": torch.zeros(3, 16, 16), "sharp": torch.full((3, 16, 16), 0.5),
                "error": torch.tensor(e)} for e in (0.01, 0.1, 0.1, 0.1)]  # 40 dB, 20 dB x3
    result = evaluate(lambda b: b["sharp"] + b["error"], samples, names=list("abcd"),
                      clips=["short", "long", "long", "long"])
    assert [r["clip"] for r in result["per_clip"]] == ["short", "long"]
    assert [r["psnr"] for r in result["per_clip"]] == pytest.approx([40.0, 20.0])
    assert result["psnr"] == pytest.approx(30.0) and len(result["per_sample"]) == 4
    identical = evaluate(lambda b: b["sharp"], samples[:1])
    assert identical["psnr"] == 100.0  # capped, not infinite: means and JSON stay numbers


def test_a_per_frame_restorer_gets_only_the_frame_scored():
    sharp = torch.rand(3, 3, 16, 16)
    window = {"blurred": sharp.flip(0), "sharp": sharp, "centre": torch.tensor(1)}
    seen = []

    def restore(batch):
        seen.append(batch["blurred"].shape[1])
        return batch["blurred"]

    # The centre of the reversed window is the frame itself: an exact restoration.
    assert evaluate(restore, [window], per_frame=True)["psnr"] == 100.0
    assert evaluate(restore, [window])["psnr"] == 100.0
    assert seen == [1, 1, 3, 3]  # warm-up and sample, cut to the centre frame, then whole


def test_an_evaluation_resumed_from_its_record_scores_as_one_run():
    samples = [{"blurred": torch.zeros(3, 16, 16), "sharp": torch.full((3, 16, 16), 0.5),
                "error": torch.tensor(e)} for e in (0.01, 0.1, 0.02, 0.05)]
    whole = evaluate(lambda b: b["sharp"] + b["error"], samples)
    records, calls = [], []

    def dies_at_the_third(batch):  # the warm-up call, samples 0 and 1, then Ctrl-C
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return batch["sharp"] + batch["error"]

    with pytest.raises(KeyboardInterrupt):
        evaluate(dies_at_the_third, samples, record=lambda state: records.append(
            json.loads(json.dumps(state))))  # as saved
    assert [len(r["rows"]) for r in records] == [1, 2]
    restored = []
    resumed = evaluate(lambda b: restored.append(1) or b["sharp"] + b["error"], samples,
                       done=records[-1])
    assert len(restored) == 3  # a warm-up on sample 2, then samples 2 and 3
    assert resumed["per_sample"] == whole["per_sample"] and resumed["psnr"] == whole["psnr"]
    with pytest.raises(ValueError, match="other samples"):
        evaluate(lambda b: b["blurred"], samples, names=list("abcd"), done=records[-1])


def test_a_killed_eval_resumes_where_it_stopped(tmp_path, monkeypatch):
    import gyrodeblur.pipelines.evaluate as evaluation

    args = ["eval", "-m", "classic", "--count", "3", "--size", "32x32"]
    whole = CliRunner().invoke(app, [*args, "-o", str(tmp_path / "whole.json")])
    assert whole.exit_code == 0, whole.output
    calls = []

    def dies_at_the_third(batch):  # the warm-up call, samples 0 and 1, then Ctrl-C
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return classic_restore(batch)

    output = tmp_path / "e.json"
    monkeypatch.setattr(evaluation, "classic_restore", dies_at_the_third)
    killed = CliRunner().invoke(app, [*args, "-o", str(output)])
    assert killed.exit_code == 130 and not output.exists()
    assert f"scores so far are kept in {output}.partial: the same command" in killed.output
    monkeypatch.undo()
    partial = tmp_path / "e.json.partial"
    kept = partial.read_text()
    other = CliRunner().invoke(app, [*args, "--samples", "5", "-o", str(output)])
    assert other.exit_code == 0 and "scores of an eval with other settings, not resumed" \
        in other.output
    partial.write_text(kept)
    resumed = CliRunner().invoke(app, [*args, "-o", str(output)])
    assert resumed.exit_code == 0, resumed.output
    assert "blurred input 3 of 3 samples, classic 2 of 3 samples" in resumed.output
    scores = [json.loads(p.read_text())["results"]["classic"]["per_sample"]
              for p in (output, tmp_path / "whole.json")]
    assert scores[0] == scores[1] and not partial.exists()


def test_an_eval_output_among_its_data_is_refused_before_the_work(tmp_path):
    # Its scores so far (OUT.partial) would change the data it scores: never resumed.
    (tmp_path / "images").mkdir()
    write_image(tmp_path / "images" / "0.png", dead_leaves(64, np.random.default_rng(0)))
    for option, path in (("-o", "e.json"), ("--markdown", "sub/e.md")):
        result = CliRunner().invoke(app, ["eval", "--count", "1", "--size", "32x32", "--images",
                                          str(tmp_path / "images"), option,
                                          str(tmp_path / "images" / path)])
        assert result.exit_code == 2 and f"{path}: lies inside {tmp_path / 'images'}, the " \
            "data scored; give an output outside it" in " ".join(result.output.split())
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == ["0.png"]


def test_a_clip_folder_without_its_frames_csv_is_named_not_left_out(tmp_path):
    from gyrodeblur.synthesis.datasets import clip_folders

    for name in ("clip_000000", "clip_000001"):
        (tmp_path / name / "blurred").mkdir(parents=True)
    (tmp_path / "clip_000000" / "frames.csv").write_text("frame,t_start,exposure\n")
    with pytest.raises(InputError, match=r"clip_000001: not a clip folder: frames.csv is "
                                         r"missing$"):
        clip_folders(tmp_path)
    (tmp_path / "clip_000001" / "frames.csv").write_text("frame,t_start,exposure\n")
    assert clip_folders(tmp_path) == [tmp_path / "clip_000000", tmp_path / "clip_000001"]


def test_eval_refuses_a_partial_path_it_cannot_write_before_the_work(tmp_path):
    (tmp_path / "e.json.partial").mkdir()
    result = CliRunner().invoke(app, ["eval", "--count", "1", "--size", "32x32", "-o",
                                      str(tmp_path / "e.json")])
    assert result.exit_code == 2 and "e.json.partial: is a folder, not a file" in result.output
    assert "drawing the benchmark" not in result.output


def test_a_killed_feature_test_resumes_after_its_last_finished_method(tmp_path, monkeypatch):
    import gyrodeblur.pipelines.evaluate as evaluation

    oxford_sequence(tmp_path / "oxford")
    run = evaluation.feature_test
    tested = []

    def dies_on_classic(pairs, restore, **options):
        tested.append(restore)
        if restore is not None and len(tested) == 2:
            raise KeyboardInterrupt
        return run(pairs, restore, **options)

    monkeypatch.setattr(evaluation, "feature_test", dies_on_classic)
    args = ["eval", "-m", "classic", "--count", "1", "--size", "32x32", "--features",
            str(tmp_path / "oxford"), "-o", str(tmp_path / "e.json")]
    assert CliRunner().invoke(app, args).exit_code == 130
    kept = (tmp_path / "e.json.partial").read_text()
    resumed = CliRunner().invoke(app, args)
    assert resumed.exit_code == 0, resumed.output
    assert "resumed from" in resumed.output and "feature test of no restoration: from" in \
        resumed.output
    assert tested[0] is None and tested[2] is not None and len(tested) == 3
    report = json.loads((tmp_path / "e.json").read_text())
    assert list(report["features"]) == ["no restoration", "classic"]
    # Images of the sequence rewritten: their scores are not taken up.
    (tmp_path / "e.json.partial").write_text(kept)
    image = tmp_path / "oxford" / "leaves" / "img2.ppm"
    cv2.imwrite(str(image), cv2.GaussianBlur(cv2.imread(str(image)), (0, 0), 2.0))
    other = CliRunner().invoke(app, args)
    assert other.exit_code == 0 and "scores of an eval with other settings, not resumed" in \
        other.output


@pytest.mark.parametrize("frames", [1, 2])
def test_classic_method_beats_the_blurred_input_on_the_benchmark(frames):
    spec = BenchmarkSpec(frames=frames, count=2, width=96, height=64, preset="strong")
    samples = synthetic_benchmark(spec)
    blurred = evaluate(lambda b: b["blurred"], samples)
    assert evaluate(classic_restore, samples)["psnr"] > blurred["psnr"] + 1.0


def test_sift_scores_follow_the_homography_and_drop_with_blur():
    image = dead_leaves(320, np.random.default_rng(1))
    H = np.array([[0.95, 0.08, 10.0], [-0.05, 1.02, 6.0], [1e-5, 2e-5, 1.0]])
    warped = cv2.warpPerspective(image, H, (320, 320), flags=cv2.INTER_CUBIC)
    sharp = sift_scores(image, warped, H)
    assert sharp["repeatability"] > 0.5 and sharp["matching_score"] > 0.3
    wrong = sift_scores(image, warped, np.array([[1, 0, 40.0], [0, 1, 0], [0, 0, 1]]))
    assert wrong["matching_score"] < 0.1 * sharp["matching_score"]
    kernel = np.full((1, 15), 1 / 15)
    blurred = sift_scores(cv2.filter2D(image, -1, kernel), cv2.filter2D(warped, -1, kernel), H)
    assert blurred["matching_score"] < sharp["matching_score"]


def oxford_sequence(folder):
    """An Oxford-style sequence ``leaves`` in ``folder``: img1-3, H1to2p, H1to3p (shifts)."""
    sequence = folder / "leaves"
    sequence.mkdir(parents=True)
    image = (dead_leaves(160, np.random.default_rng(2)) * 255).astype(np.uint8)
    cv2.imwrite(str(sequence / "img1.ppm"), image)
    for n, shift in ((2, 6.0), (3, -9.0)):
        H = np.array([[1.0, 0.0, shift], [0.0, 1.0, shift / 2], [0.0, 0.0, 1.0]])
        cv2.imwrite(str(sequence / f"img{n}.ppm"), cv2.warpPerspective(image, H, (160, 160)))
        np.savetxt(sequence / f"H1to{n}p", H)


def test_eval_command_writes_the_feature_test_into_json_and_markdown(tmp_path):
    oxford_sequence(tmp_path / "oxford")
    result = CliRunner().invoke(app, [
        "eval", "-m", "classic", "-m", "deepgyro-refine-s", "--count", "1", "--size", "64x48",
        "--features",
        str(tmp_path / "oxford"), "-o", str(tmp_path / "e.json"), "--markdown",
        str(tmp_path / "e.md")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "e.json").read_text())
    assert report["benchmark"]["synthetic"]["count"] == 1
    assert report["benchmark"]["features"]["pairs"] == ["leaves 1-2", "leaves 1-3"]
    assert "Feature test: 2 Oxford pairs of" in (tmp_path / "e.md").read_text()
    means = report["features"]["classic"]["mean"]
    assert means["sharp"]["repeatability"] > means["blurred"]["repeatability"]
    assert "| deblurred by classic |" in (tmp_path / "e.md").read_text()
    assert "deepgyro-refine-s" in report["features"]  # a net refining the classical method
    missing = CliRunner().invoke(app, ["eval", "-m", "classic", "--folder", str(tmp_path / "no")])
    assert missing.exit_code == 2 and "no such folder of clip folders" in missing.output


@pytest.mark.parametrize(("args", "message"), [
    (["--size", "16x300"], "--size 16x300: the benchmark's camera takes aspect ratios up to"),
    (["-m", "CLASSIC"], "CLASSIC: the classical method has no weights (eval takes it as -m "
                        "classic, in lower case"),
    (["-m", "DeepGyro-S"], "names are lowercase: deepgyro-s"),
    (["-m", "."], "folder holds no model.safetensors"),
])
def test_eval_names_what_is_wrong(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["eval", "--count", "1", *args])
    assert result.exit_code == 2 and message in result.output.strip().splitlines()[-1]


def test_a_benchmark_too_large_for_the_memory_is_refused_before_it_is_drawn(tmp_path,
                                                                             monkeypatch):
    from gyrodeblur import cli

    pages = {"SC_PAGE_SIZE": 4096, "SC_PHYS_PAGES": 2**30 // 4096}  # a machine of 1 GB
    monkeypatch.setattr(cli.os, "sysconf", pages.__getitem__)
    # 100 samples of 256x192 with T = 9: 4 bytes x (6 frame + 36 kernel channels) a pixel.
    result = CliRunner().invoke(app, ["eval", "--count", "100", "--size", "256x192", "-o",
                                      str(tmp_path / "e.json")])
    assert result.exit_code == 2 and result.output.strip() == (
        "error: --count 100 --size 256x192: the benchmark's samples and their kernels (T=9) "
        f"would take {100 * 256 * 192 * 4 * 42 / 2**30:.1f} GB of this machine's 1 GB; give a "
        "smaller --size or --count, fewer --frames or --samples")
    assert list(tmp_path.iterdir()) == []


def test_the_benchmark_holds_only_what_is_scored():
    samples = synthetic_benchmark(BenchmarkSpec(count=1, width=32, height=24))
    assert sorted(samples[0]) == ["blurred", "mask", "rot", "sharp", "tran"]


def test_a_model_named_twice_is_scored_once_in_the_order_given(tmp_path):
    weights = str(weights_file("deepgyro-s"))
    result = CliRunner().invoke(app, ["eval", "-m", "classic", "-m", "deepgyro-s", "-m",
                                      weights, "--count", "1", "--size", "32x32", "-o",
                                      str(tmp_path / "e.json")])
    assert result.exit_code == 0, result.output
    assert f"{weights}: deepgyro-s again, scored once" in result.output
    assert list(json.loads((tmp_path / "e.json").read_text())["results"]) == [
        "blurred input", "classic", "deepgyro-s"]


def test_eval_without_a_model_says_it_scores_the_input_only(tmp_path):
    result = CliRunner().invoke(app, ["eval", "--count", "1", "--size", "32x32", "-o",
                                      str(tmp_path / "e.json")])
    assert result.exit_code == 0 and "only the blurred input is scored" in result.output
    assert list(json.loads((tmp_path / "e.json").read_text())["results"]) == ["blurred input"]


@pytest.mark.parametrize(("text", "message"), [
    ("1 0 0\n0 1\n", "H1to2p: not a 3x3 homography"),
    ("1 0 0\n0 1 0\n", "H1to2p: not an invertible 3x3 homography (read 2x3 numbers)"),
    ("1 0 0\n0 1 0\n0 0 0\n", "H1to2p: not an invertible 3x3 homography"),
    (None, "H1to2p: no such homography file"),
    ("1 0 1e6\n0 1 0\n0 0 1\n", "H1to2p: maps no part of img1 into img2 (32x32): a "
                                   "homography of other images?"),
])
def test_a_bad_oxford_homography_is_a_one_line_error(tmp_path, text, message):
    from gyrodeblur.errors import InputError
    from gyrodeblur.pipelines.evaluate import oxford_pairs

    (tmp_path / "seq").mkdir()
    image = (dead_leaves(32, np.random.default_rng(2)) * 255).astype(np.uint8)
    for n in (1, 2):
        cv2.imwrite(str(tmp_path / "seq" / f"img{n}.ppm"), image)
    if text is not None:
        (tmp_path / "seq" / "H1to2p").write_text(text)
    with pytest.raises(InputError, match=re.escape(message)):
        oxford_pairs(tmp_path, targets=(2,))


def test_oxford_sequences_of_grey_pgm_images_are_read(tmp_path):
    from gyrodeblur.pipelines.evaluate import oxford_pairs

    image = (dead_leaves(64, np.random.default_rng(2)) * 255).astype(np.uint8)
    for name, suffix, pixels in (("boat", ".pgm", image[..., 0]), ("graf", ".ppm", image)):
        (tmp_path / name).mkdir()
        for n in (1, 2):
            cv2.imwrite(str(tmp_path / name / f"img{n}{suffix}"), pixels)
        np.savetxt(tmp_path / name / "H1to2p", np.eye(3))
    pairs = oxford_pairs(tmp_path, targets=(2,))
    assert [p[0] for p in pairs] == ["boat 1-2", "graf 1-2"]
    np.testing.assert_array_equal(pairs[0][1][..., 1], image[..., 0] / np.float32(255))


def test_one_oxford_sequence_given_for_their_folder_says_so(tmp_path):
    from gyrodeblur.errors import InputError
    from gyrodeblur.pipelines.evaluate import oxford_pairs

    cv2.imwrite(str(tmp_path / "img1.ppm"), np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(InputError, match="one Oxford sequence: give the folder that holds it"):
        oxford_pairs(tmp_path)


def test_an_oxford_image_too_small_for_sift_is_a_one_line_error(tmp_path):
    from gyrodeblur.errors import InputError
    from gyrodeblur.pipelines.evaluate import oxford_pairs

    (tmp_path / "seq").mkdir()
    cv2.imwrite(str(tmp_path / "seq" / "img1.ppm"), np.zeros((5, 5, 3), np.uint8))
    with pytest.raises(InputError, match=r"img1.ppm: 5x5 is too small for the feature test"):
        oxford_pairs(tmp_path, targets=(2,))


def test_eval_on_clip_folders_names_each_sample(tmp_path):
    runner = CliRunner()
    made = runner.invoke(app, ["synth", "clips", "-n", "2", "-o", str(tmp_path / "pairs"),
                               "--size", "64x48", "--frames", "2"])
    assert made.exit_code == 0, made.output
    result = runner.invoke(app, ["eval", "-m", "classic", "--folder", str(tmp_path / "pairs"),
                                 "-o", str(tmp_path / "e.json")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "e.json").read_text())
    assert report["benchmark"] == {"folder": str(tmp_path / "pairs"), "frames": 1, "samples": 9}
    rows = report["results"]["classic"]["per_sample"]
    assert [r["sample"] for r in rows] == ["clip_000000 frame 1", "clip_000000 frame 2",
                                           "clip_000001 frame 1", "clip_000001 frame 2"]
    clips = report["results"]["classic"]["per_clip"]
    assert [c["clip"] for c in clips] == ["clip_000000", "clip_000001"]
    assert clips[1]["psnr"] == pytest.approx((rows[2]["psnr"] + rows[3]["psnr"]) / 2)
    assert report["results"]["classic"]["psnr"] > report["results"]["blurred input"]["psnr"]
    # Windows of 2 frames: still each frame once, scored against its own reference.
    windows = runner.invoke(app, ["eval", "--folder", str(tmp_path / "pairs"), "--frames", "2",
                                  "-o", str(tmp_path / "w.json")])
    assert windows.exit_code == 0, windows.output
    blurred = json.loads((tmp_path / "w.json").read_text())["results"]["blurred input"]
    assert [r["sample"] for r in blurred["per_sample"]] == [r["sample"] for r in rows]
    first = tmp_path / "pairs" / "clip_000000"
    assert blurred["per_sample"][1]["psnr"] == pytest.approx(
        psnr(read_image(first / "blurred" / "000002.png"),
             read_image(first / "sharp" / "000002.png")), abs=1e-9)
    ignored = runner.invoke(app, ["eval", "-m", "classic", "--folder", str(tmp_path / "pairs"),
                                  "--count", "3", "--preset", "strong"])
    assert ignored.exit_code == 2
    assert "--count, --preset set the synthetic benchmark, not --folder's" in ignored.output
    reference = first / "sharp" / "000001.png"
    before = reference.read_bytes()
    clobber = runner.invoke(app, ["eval", "--folder", str(tmp_path / "pairs"),
                                  "-o", str(reference)])
    assert clobber.exit_code == 2 and "lies inside" in clobber.output
    assert reference.read_bytes() == before
    same = runner.invoke(app, ["eval", "--count", "1", "-o", str(tmp_path / "r"),
                               "--markdown", str(tmp_path / "r")])
    assert same.exit_code == 2 and "is the --output JSON too" in same.output
    kept = runner.invoke(app, ["eval", "--count", "1", "-o", str(tmp_path / "r.json"),
                               "--markdown", str(tmp_path / "r.json.partial")])
    assert kept.exit_code == 2 and "is where the --output JSON keeps its scores" in kept.output
    # One clip folder as the benchmark: named by itself.
    one = runner.invoke(app, ["eval", "--folder", str(first), "-o", str(tmp_path / "one.json")])
    assert one.exit_code == 0, one.output
    assert f"Benchmark: the clip folders of {first}, each frame restored in a window of 1, " \
           "T=9." in one.output
    one = json.loads((tmp_path / "one.json").read_text())["results"]["blurred input"]
    assert [c["clip"] for c in one["per_clip"]] == ["clip_000000"]
    # A folder that `synth clips` is still filling is not scored, as `train` does not train
    # on it.
    from gyrodeblur.fileio import hold_folder

    with hold_folder(tmp_path / "pairs"):
        busy = runner.invoke(app, ["eval", "--folder", str(tmp_path / "pairs"),
                                   "-o", str(tmp_path / "busy.json")])
    assert busy.exit_code == 2 and "pairs: another run is writing into it" in busy.output
    assert not (tmp_path / "busy.json").exists()


def test_clip_folders_too_large_for_the_memory_are_refused_before_they_are_read(tmp_path,
                                                                                 monkeypatch):
    from gyrodeblur import cli

    runner = CliRunner()
    for name, size in (("small", "64x48"), ("large", "96x64")):  # the estimate scales per clip
        made = runner.invoke(app, ["synth", "clips", "-n", "1", "-o", str(tmp_path / "f" / name),
                                   "--size", size, "--frames", "3"])
        assert made.exit_code == 0, made.output
    needs = []
    samples, _, _ = folder_benchmark(tmp_path / "f", frames=2, check_memory=needs.append)
    # Exact but for each window's "centre" number, scaled per pixel as the rest.
    total = sum(t.nbytes for sample in samples for t in sample.values())
    assert needs == [pytest.approx(total, rel=1e-5)]
    pages = {"SC_PAGE_SIZE": 4096, "SC_PHYS_PAGES": needs[0] // 4096}  # half of it free
    monkeypatch.setattr(cli.os, "sysconf", pages.__getitem__)
    result = runner.invoke(app, ["eval", "--folder", str(tmp_path / "f"), "--frames", "2",
                                 "-o", str(tmp_path / "e.json")])
    assert result.exit_code == 2 and re.fullmatch(
        r"error: --folder \S+/f: its frames and their kernels would take 0\.0 GB of this "
        r"machine's 0 GB; give fewer or smaller clips, or fewer --frames\s*",
        result.output.replace("\n", "")), result.output
    assert not (tmp_path / "e.json").exists()


def test_eval_never_writes_over_the_weights_it_scores(tmp_path):
    import shutil

    weights = tmp_path / "mine.safetensors"
    shutil.copyfile(weights_file("deepgyro-s"), weights)
    before = weights.read_bytes()
    for option in ("-o", "--markdown"):
        result = CliRunner().invoke(app, ["eval", "-m", str(weights), "--count", "1",
                                          "--size", "32x32", option, str(weights)])
        assert result.exit_code == 2 and "would overwrite an input" in result.output
        assert len(result.output.strip().splitlines()) == 1
    assert weights.read_bytes() == before


def test_eval_on_footage_of_a_fisheye_wider_than_180_degrees_scores_every_pixel(tmp_path):
    # Its corners have no ray through the lens: restored as unblurred, as `deblur` does.
    runner = CliRunner()
    made = runner.invoke(app, ["synth", "clips", "-n", "1", "-o", str(tmp_path / "pairs"),
                               "--size", "64x48", "--frames", "2"])
    assert made.exit_code == 0, made.output
    camera = tmp_path / "pairs" / "clip_000000" / "camera.json"
    wide = json.loads(camera.read_text()) | {"fx": 12.0, "fy": 12.0,
                                             "distortion_model": "fisheye",
                                             "distortion": [0.0, 0.0, 0.0, 0.0]}
    camera.write_text(json.dumps(wide))
    result = runner.invoke(app, ["eval", "-m", "classic", "-m", "deepgyro-s", "--folder",
                                 str(tmp_path / "pairs"), "-o", str(tmp_path / "e.json")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "e.json").read_text(), parse_constant=pytest.fail)
    assert all(np.isfinite(report["results"][m]["psnr"]) for m in ("classic", "deepgyro-s"))


@pytest.mark.parametrize(("args", "message"), [
    (["-m", "gyrodvd-s", "--frames", "3", "--samples", "9"],
     "gyrodvd-s: takes T=5 kernel samples (its kernel encoders' size), not --samples 9"),
    (["-m", "gyrodvd-s", "-m", "deepgyro-path-s", "--frames", "3"],
     "the models take different --samples (gyrodvd-s 5, deepgyro-path-s 9): give --samples N"),
    (["-m", "classic", "--size", "8x8"], "--size 8x8: at least 11x11"),
    (["--preset", "calm"], "--preset 'calm': choose"),  # and no "no --model given" note
    (["-m", "deepgyro-s", "--device", "tpu"], "device 'tpu': choose cpu, cuda or cuda:N"),
])
def test_eval_refuses_what_cannot_be_scored_before_drawing(args, message):
    result = CliRunner().invoke(app, ["eval", *args])
    assert result.exit_code == 2 and message in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_video_net_without_kernels_is_scored_at_any_samples(tmp_path):
    # Its T is the kernel encoders' size; without kernels it has none to keep.
    from safetensors.torch import save_file

    from gyrodeblur.models import build_model

    config = {"variant": "gyrodvd-xs", "samples": 5, "kernel": "none"}
    save_file(build_model(config).state_dict(), str(tmp_path / "blind.safetensors"),
              metadata={"model": json.dumps(config)})
    result = CliRunner().invoke(app, ["eval", "-m", str(tmp_path / "blind.safetensors"),
                                      "--frames", "3", "--samples", "9", "--count", "1",
                                      "--size", "32x32", "-o", str(tmp_path / "e.json")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "e.json").read_text())["results"]
