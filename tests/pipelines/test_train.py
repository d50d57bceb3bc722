import contextlib
import errno
import json
import math
import os
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from gyrodeblur.errors import InputError
from gyrodeblur.footage import write_image
from gyrodeblur.models import load_model
from gyrodeblur.pipelines.train import (
    DataConfig,
    TrainConfig,
    TrainSettings,
    _changed_settings,
    _distributed,
    batch_indices,
    build_cache,
    cache_recipe,
    cosine_lr,
    load_config,
    train,
)

TINY_MODEL = {"arch": "deepgyro", "width": 4, "enc_blocks": [1], "middle_blocks": 1,
              "dec_blocks": [1], "guidance": "field", "samples": 5}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "tiny.safetensors"
    build_cache(DataConfig(frames=1, width=48, height=32, samples=5, count=8), path)
    return path


def config(cache, steps=6, batch=4):
    return TrainConfig(name="tiny", model=TINY_MODEL,
                       data=DataConfig(frames=1, width=48, height=32, samples=5, count=8,
                                       crop=24, cache=str(cache)),
                       train=TrainSettings(steps=steps, batch=batch, lr=2e-3, checkpoint_every=2,
                                           log_every=1))


def test_cosine_schedule_ends_at_lr_min_and_batches_cover_epochs():
    s = TrainSettings(steps=101, lr=1e-3, lr_min=1e-7)
    assert cosine_lr(s, 0) == pytest.approx(1e-3) and cosine_lr(s, 100) == pytest.approx(1e-7)
    assert cosine_lr(s, 50) == pytest.approx((1e-3 + 1e-7) / 2)
    epoch = sorted(i for step in range(4) for i in batch_indices(8, 2, step, seed=3))
    assert epoch == list(range(8))


def test_training_writes_everything_and_resume_continues_the_same_curve(cache, tmp_path):
    straight = train(config(cache), tmp_path / "a")
    assert straight["finished"] and straight["steps"] == 6
    history = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=False)["history"]
    first = train(config(cache), tmp_path / "b", stop_after=3)
    assert not first["finished"] and first["steps"] == 3
    train(config(cache), tmp_path / "b")  # resumed after a "kill" at step 3
    resumed = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)["history"]
    assert resumed == history  # exactly the same losses, step for step
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert metrics["steps"] == 6 and metrics["parameters"] > 0
    assert list((tmp_path / "a" / "tensorboard").iterdir())
    model, cfg = load_model(tmp_path / "a" / "model.safetensors")
    assert cfg["width"] == 4 and not model.training
    saved = yaml.safe_load((tmp_path / "a" / "config.yaml").read_text())
    assert saved["train"]["steps"] == 6


def test_a_run_fine_tunes_from_weights_of_its_model(cache, tmp_path):
    from safetensors.torch import load_file

    train(config(cache), tmp_path / "a")
    start = tmp_path / "a" / "model.safetensors"
    tuned = config(cache, steps=1)
    tuned.train.init, tuned.train.lr, tuned.train.lr_min = str(start), 1e-12, 1e-12
    train(tuned, tmp_path / "b")  # one step too small to move: the weights it started from
    before, after = load_file(start), load_file(tmp_path / "b" / "model.safetensors")
    assert max(float((before[k] - after[k]).abs().max()) for k in before) < 1e-6
    fresh = config(cache, steps=1)
    train(fresh, tmp_path / "c")
    moved = load_file(tmp_path / "c" / "model.safetensors")
    assert max(float((before[k] - moved[k]).abs().max()) for k in before) > 1e-3  # 1 step, not 6
    other = config(cache)
    other.train.init = "deepgyro-s"
    with pytest.raises(InputError, match=r"train.init deepgyro-s: weights of another model "
                                         r"\(deepgyro-s: dec_blocks \[1, 1, 0\] there, \[1\] "
                                         r"here, .*width 16 there, 4 here\) than the config's"):
        train(other, tmp_path / "d")
    other.train.init = str(tmp_path / "none.safetensors")
    with pytest.raises(InputError, match="train.init .*none.safetensors: no such weights file"):
        train(other, tmp_path / "d")


def test_a_fine_tune_resumes_without_its_init_weights_and_says_nothing_changed(
        cache, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    train(config(cache, steps=2), tmp_path / "a")
    shutil.copy(tmp_path / "a" / "model.safetensors", tmp_path / "start.safetensors")
    tuned = config(cache, steps=4)
    tuned.train.init = "start.safetensors"  # relative: config.yaml holds it absolute
    train(tuned, tmp_path / "b", stop_after=2)
    notes = []
    train(tuned, tmp_path / "b", stop_after=1, note=notes.append)
    assert notes == [f"resuming {tmp_path / 'b'} at step 2 of 4"]
    (tmp_path / "start.safetensors").unlink()  # a resumed run starts from its checkpoint
    assert train(tuned, tmp_path / "b")["steps"] == 4
    with pytest.raises(InputError, match="train.init start.safetensors: no such weights"):
        train(tuned, tmp_path / "c")  # a new run does need them


def test_ctrl_c_while_a_checkpoint_is_read_says_the_cache_is_kept(cache, tmp_path, monkeypatch):
    from gyrodeblur.pipelines import train as training

    train(config(cache, steps=4), tmp_path / "run", stop_after=2)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "_load_checkpoint", interrupted)
    with pytest.raises(KeyboardInterrupt, match=rf"stopped before training; the data cache "
                                                rf"{re.escape(str(cache))} is kept"):
        train(config(cache, steps=4), tmp_path / "run")


def test_yaml_merge_keys_are_read_as_yaml_reads_them(tmp_path):
    path = tmp_path / "merged.yaml"
    path.write_text("model: {variant: deepgyro-s}\ndata: {samples: 5}\n"
                    "train:\n  <<: {steps: 7, batch: 2}\n  batch: 3\n")
    settings = load_config(path).train
    assert (settings.steps, settings.batch) == (7, 3)  # an explicit key overrides a merged one


def test_one_gyro_log_is_the_list_of_it_for_a_resume(tmp_path):
    from gyrodeblur.pipelines.train import _config_text

    alone, listed = config(tmp_path / "c.safetensors"), config(tmp_path / "c.safetensors")
    alone.data.gyro, listed.data.gyro = "g.csv", ["g.csv"]
    assert _changed_settings(yaml.safe_load(_config_text(alone)), listed) == []
    assert _changed_settings(yaml.safe_load(_config_text(listed)), alone) == []


@pytest.mark.parametrize("name", ["config.yaml", "checkpoint.pt", "metrics.json"])
def test_a_data_cache_that_is_a_file_of_the_run_is_refused(cache, tmp_path, name):
    cfg = config(cache, steps=2)
    cfg.data.cache = str(tmp_path / "run" / name)
    with pytest.raises(InputError, match=rf"data.cache .*{re.escape(name)} is a file of the run "
                                         "itself: give the cache a path of its own"):
        train(cfg, tmp_path / "run")


@pytest.mark.parametrize("spoilt", ["", "{unclosed", "model: x\n"])
def test_a_spoilt_config_yaml_beside_a_checkpoint_gives_way_to_the_checkpoint(
        cache, tmp_path, spoilt):
    train(config(cache, steps=4), tmp_path / "run", stop_after=2)
    (tmp_path / "run" / "config.yaml").write_text(spoilt)
    other = config(cache, steps=4)
    other.model = {**TINY_MODEL, "width": 8}
    with pytest.raises(InputError, match=r"\(model differs\); resume it with the config its "
                                         r"checkpoint records"):
        train(other, tmp_path / "run")
    assert train(config(cache, steps=4), tmp_path / "run")["steps"] == 4
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["model"] == TINY_MODEL


def test_a_finished_run_without_its_checkpoint_is_not_overwritten_by_another_model(
        cache, tmp_path):
    train(config(cache, steps=2), tmp_path / "run")
    (tmp_path / "run" / "checkpoint.pt").unlink()  # deleted to free the disk
    other = config(cache, steps=2)
    other.model = {**TINY_MODEL, "width": 8}
    with pytest.raises(InputError, match=r"\(model differs\); resume it with `gyrodeblur train "):
        train(other, tmp_path / "run")


def test_an_earlier_releases_config_yaml_still_tells_the_run(cache, tmp_path):
    train(config(cache, steps=4), tmp_path / "run", stop_after=2)
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    del saved["train"]["init"]  # a key it predates
    (tmp_path / "run" / "config.yaml").write_text(yaml.safe_dump(saved, sort_keys=False))
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    del state["config"]  # nor did its checkpoints keep the config
    torch.save(state, tmp_path / "run" / "checkpoint.pt")
    assert train(config(cache, steps=4), tmp_path / "run")["steps"] == 4


def test_a_checkpoint_with_a_damaged_byte_is_refused(cache, tmp_path):
    train(config(cache, steps=4), tmp_path / "run", stop_after=2)
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    data = bytearray(checkpoint.read_bytes())
    # A byte in the middle of the largest stored tensor, as a bad disk sector or a faulty
    # copy leaves it: torch.load alone reads it as a number.
    with zipfile.ZipFile(checkpoint) as archive:
        part = max(archive.infolist(), key=lambda info: info.file_size)
    start = part.header_offset + 30 + int.from_bytes(data[part.header_offset + 26:
                                                          part.header_offset + 28], "little") \
        + int.from_bytes(data[part.header_offset + 28:part.header_offset + 30], "little")
    data[start + part.file_size // 2] ^= 0xFF
    checkpoint.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"checkpoint\.pt: cannot resume from it \(damaged: its "
                                         r"part .* fails its checksum\)"):
        train(config(cache, steps=4), tmp_path / "run")


def test_a_run_killed_before_its_first_checkpoint_starts_again_with_another_model(
        cache, tmp_path):
    from gyrodeblur.pipelines.train import _config_text

    (tmp_path / "run").mkdir()  # what `kill -9` leaves before the first checkpoint
    (tmp_path / "run" / "config.yaml").write_text(_config_text(config(cache, steps=2)))
    other = config(cache, steps=2)
    other.model = {**TINY_MODEL, "width": 8}
    assert train(other, tmp_path / "run")["steps"] == 2
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["model"]["width"] == 8


@pytest.mark.parametrize("number", ["SIGINT", "SIGTERM"])
def test_ctrl_c_checkpoints_the_step_reached_and_resumes_the_same_curve(cache, tmp_path, number):
    import signal

    from gyrodeblur.errors import Terminated

    history = train(config(cache), tmp_path / "a") and torch.load(
        tmp_path / "a" / "checkpoint.pt", weights_only=False)["history"]
    cfg = config(cache)
    cfg.train.checkpoint_every = 100  # only the interruption saves

    def press_ctrl_c(step, steps, loss):  # or a batch scheduler's SIGTERM
        if step == 3:
            os.kill(os.getpid(), getattr(signal, number))

    with pytest.raises(Terminated if number == "SIGTERM" else KeyboardInterrupt):
        train(cfg, tmp_path / "b", progress=press_ctrl_c)
    state = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)
    assert state["step"] == 3 and state["history"] == history[:3]
    assert not json.loads((tmp_path / "b" / "metrics.json").read_text())["finished"]
    metrics = train(cfg, tmp_path / "b")
    assert torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)["history"] == history
    assert metrics["seconds_total"] >= metrics["seconds_this_call"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_ctrl_c_ignored_when_the_run_began_stays_ignored(cache, tmp_path):
    # A job a script put in the background ignores SIGINT: drawing the data does, and so
    # does training.
    import signal

    def press_ctrl_c(step, steps, loss):
        if step == 3:
            os.kill(os.getpid(), signal.SIGINT)

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        metrics = train(config(cache), tmp_path / "a", progress=press_ctrl_c)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
    assert metrics["finished"] and metrics["steps"] == 6


def test_random_crops_cut_the_same_window_from_frames_and_kernels():
    import numpy as np

    from gyrodeblur.pipelines.train import random_crops

    # Every pixel holds its own coordinates: a window's content tells where it was cut.
    ys, xs = torch.meshgrid(torch.arange(12.0), torch.arange(16.0), indexing="ij")
    image = torch.stack((ys, xs, ys + xs)).expand(3, 2, 3, 12, 16)  # (B, F, 3, H, W)
    kernel = torch.stack((xs, ys)).expand(3, 2, 5, 2, 12, 16)
    out = random_crops({"blurred": image, "rot": kernel}, 8, np.random.default_rng(1))
    assert out["blurred"].shape == (3, 2, 3, 8, 8) and out["rot"].shape == (3, 2, 5, 2, 8, 8)
    for b in range(3):
        y0, x0 = int(out["blurred"][b, 0, 0, 0, 0]), int(out["blurred"][b, 0, 1, 0, 0])
        torch.testing.assert_close(out["blurred"][b], image[b, ..., y0:y0 + 8, x0:x0 + 8])
        torch.testing.assert_close(out["rot"][b], kernel[b, ..., y0:y0 + 8, x0:x0 + 8])
    with pytest.raises(InputError, match="crop 13"):
        random_crops({"blurred": image}, 13, np.random.default_rng(1))


def test_bad_config_is_refused(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: {arch: deepgyro}\ntrain: {stepz: 3}\n")
    with pytest.raises(InputError, match="stepz"):
        load_config(path)
    path.write_text("model: {variant: deepgyro-s}\ntrain:\n  steps: 10\n  steps: 20\n")
    with pytest.raises(InputError, match=f"^{re.escape(str(path))}: line 4: steps is given "
                                         "twice in its section$"):
        load_config(path)


def test_two_process_ddp_step_equals_one_process_on_the_whole_batch(cache, tmp_path):
    cfg = config(cache, steps=1, batch=4)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({"name": "tiny", "model": TINY_MODEL,
                                    "data": {"frames": 1, "width": 48, "height": 32,
                                             "samples": 5, "count": 8, "crop": 24,
                                             "cache": str(cache)},
                                    "train": {"steps": 1, "batch": 4, "lr": 2e-3}}))
    # gloo on the CPU, whatever GPUs the machine has (one GPU takes one process, not two)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node", "2", "-m", "gyrodeblur", "train", str(path),
                           "-o", str(tmp_path / "ddp")], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((tmp_path / "ddp" / "metrics.json").read_text())["processes"] == 2
    train(cfg, tmp_path / "single")
    ddp = load_model(tmp_path / "ddp" / "model.safetensors", fuse=False)[0].state_dict()
    single = load_model(tmp_path / "single" / "model.safetensors", fuse=False)[0].state_dict()
    assert ddp.keys() == single.keys()
    before = load_model_untrained(cfg)
    moved = 0
    for name, value in single.items():
        torch.testing.assert_close(ddp[name], value, atol=1e-6, rtol=1e-5)
        moved += int(not torch.equal(value, before[name]))
    assert moved > 0  # the step did change weights


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_signal_to_one_ddp_process_stops_both_at_one_step(cache, tmp_path):
    import signal
    import time

    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({"name": "tiny", "model": TINY_MODEL,
                                    "data": {"frames": 1, "width": 48, "height": 32,
                                             "samples": 5, "count": 8, "crop": 24,
                                             "cache": str(cache)},
                                    "train": {"steps": 1000000, "batch": 4, "lr": 2e-3,
                                              "checkpoint_every": 5}}))
    # gloo on the CPU, whatever GPUs the machine has (one GPU takes one process, not two)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    run = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone",
                            "--nproc_per_node", "2", "-m", "gyrodeblur", "train", str(path),
                            "-o", str(tmp_path / "ddp")], env=env, stdout=subprocess.DEVNULL,
                           stderr=(tmp_path / "log.txt").open("w"), start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while not (tmp_path / "ddp" / "checkpoint.pt").exists():
            assert run.poll() is None and time.monotonic() < deadline
            time.sleep(0.5)
        workers = [int(p) for p in subprocess.run(["pgrep", "-P", str(run.pid)],
                                                  capture_output=True, text=True).stdout.split()]
        rank0 = next(p for p in workers
                     if b"\0RANK=0\0" in b"\0" + open(f"/proc/{p}/environ", "rb").read())
        os.kill(rank0, signal.SIGTERM)  # rank 1 hears nothing: the processes must agree
        try:
            run.wait(timeout=120)  # once both waited for each other until a 12 h timeout
        except subprocess.TimeoutExpired:
            pytest.fail("the processes still wait for each other:\n"
                        + (tmp_path / "log.txt").read_text()[-3000:])
    finally:  # no worker left behind, hung or not
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.pid, signal.SIGKILL)
    state = torch.load(tmp_path / "ddp" / "checkpoint.pt", weights_only=False)
    metrics = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert metrics["steps"] == state["step"] >= 5 and not metrics["finished"]


def load_model_untrained(cfg):
    from gyrodeblur.models import build_model

    torch.manual_seed(cfg.train.seed)
    return build_model(cfg.model).state_dict()


def test_a_killed_cache_draw_resumes_after_its_last_part(cache, tmp_path, monkeypatch):
    import gyrodeblur.pipelines.train as training

    monkeypatch.setattr(training, "CACHE_PART", 3)
    data = DataConfig(frames=1, width=48, height=32, samples=5, count=8)

    def killed_at(count):
        def progress(done, total):
            if done == count:
                raise KeyboardInterrupt
        return progress

    path = tmp_path / "c.safetensors"
    with pytest.raises(KeyboardInterrupt):
        build_cache(data, path, killed_at(5))  # a part of 3 kept, samples 4 and 5 lost
    assert [p.name for p in (tmp_path / "c.safetensors.parts").iterdir()] == [
        "000000003.safetensors"] and not path.exists()
    told = []
    tensors = build_cache(data, path, lambda done, total: told.append(done))
    assert told[:2] == [3, 4] and told[-1] == 8
    whole = build_cache(data, cache)  # the module's cache, drawn at once
    assert tensors.keys() == whole.keys()
    assert all(torch.equal(tensors[k], whole[k]) for k in whole)
    assert not (tmp_path / "c.safetensors.parts").exists()
    # Parts of other settings are not taken up.
    other = tmp_path / "o.safetensors"
    with pytest.raises(KeyboardInterrupt):
        build_cache(data, other, killed_at(4))
    told.clear()
    build_cache(replace(data, count=9), other, lambda done, total: told.append(done))
    assert told[0] == 0


DRAWING = """
import sys
from pathlib import Path
from gyrodeblur.fileio import hold_folder
from gyrodeblur.pipelines.train import cache_parts
with hold_folder(cache_parts(Path(sys.argv[1]))):
    print("drawing", flush=True)
    sys.stdin.readline()
"""


def test_a_run_waits_for_another_drawing_the_same_cache_and_takes_it(cache, tmp_path):
    import threading

    data = DataConfig(frames=1, width=48, height=32, samples=5, count=8)
    path, told, drawn, got = tmp_path / "c.safetensors", [], [], []
    waiting = threading.Event()
    first = subprocess.Popen([sys.executable, "-c", DRAWING, str(path)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    assert first.stdout.readline() == "drawing\n"

    def second_run():
        got.append(build_cache(data, path, lambda done, total: drawn.append(done),
                               lambda text: (told.append(text), waiting.set())))

    thread = threading.Thread(target=second_run)
    thread.start()
    assert waiting.wait(10)
    shutil.copy(cache, path)  # the first run's cache, done
    first.communicate("done\n")
    thread.join(60)
    assert told == [f"waiting for another run drawing the data cache {path}"]
    assert drawn == [] and torch.equal(got[0]["blurred"], build_cache(data, cache)["blurred"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.safetensors"]


def test_a_run_stopped_while_it_waits_for_a_cache_says_so(cache, tmp_path):
    data = DataConfig(frames=1, width=48, height=32, samples=5, count=8)
    path = tmp_path / "c.safetensors"
    first = subprocess.Popen([sys.executable, "-c", DRAWING, str(path)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    assert first.stdout.readline() == "drawing\n"

    def stopped(text):  # Ctrl-C as it starts to wait
        raise KeyboardInterrupt

    try:
        with pytest.raises(KeyboardInterrupt, match="^stopped waiting for another run drawing "
                                                    "the data cache "):
            build_cache(data, path, note=stopped)
    finally:
        first.communicate("done\n")


def test_a_folder_of_other_files_is_no_run_folder(cache, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(InputError, match="mine: not empty and not a training run's folder"):
        train(config(cache), tmp_path / "mine")
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]
    # A run stopped while it drew its cache into its folder, under a name of its own.
    (tmp_path / "run" / "my.safetensors.parts").mkdir(parents=True)
    shutil.copy(cache, tmp_path / "run" / "my.safetensors.parts" / "000000004.safetensors")
    resumed = replace(config(cache, steps=1), data=replace(
        config(cache).data, cache=str(tmp_path / "run" / "my.safetensors")))
    assert train(resumed, tmp_path / "run")["steps"] == 1


def test_a_run_folder_another_run_trains_in_is_refused(cache, tmp_path):
    from gyrodeblur.fileio import hold_folder

    with hold_folder(tmp_path / "run"), pytest.raises(InputError, match="another run is "):
        train(config(cache), tmp_path / "run")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("killed_at", "said"), [
    (2, "draws it from the start (no part of it was finished)"),
    (5, "draws the rest of it (its parts of 3 samples are kept)")])
def test_a_run_stopped_while_drawing_its_data_says_what_was_kept(tmp_path, monkeypatch,
                                                                 killed_at, said):
    import gyrodeblur.pipelines.train as training

    monkeypatch.setattr(training, "CACHE_PART", 3)
    cfg = config(None)
    cfg.data.cache = None  # drawn into the run folder

    def progress(done, total):
        if done == killed_at:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt, match=re.escape(f"the next run {said}")):
        train(cfg, tmp_path / "run", cache_progress=progress)


def test_a_run_stopped_after_drawing_its_data_says_the_data_is_kept(cache, tmp_path,
                                                                   monkeypatch):
    import gyrodeblur.pipelines.train as training

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(training.torch.optim, "AdamW", interrupted)  # after the data
    with pytest.raises(KeyboardInterrupt, match=re.escape(f"the data cache {cache} is kept")):
        train(config(cache), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_cache_from_a_folder_of_clip_pairs(tmp_path):
    from gyrodeblur.synthesis.clips import export_clip
    from gyrodeblur.synthesis.images import ImageBank
    from gyrodeblur.synthesis.sampler import ClipSampler, SamplerSettings

    sampler = ClipSampler(ImageBank(dead_leaves=1, dead_leaves_size=96),
                          SamplerSettings(width=48, height=32, frames=3, samples=5), seed=2)
    export_clip(sampler.sample(0), tmp_path / "pairs" / "clip")
    data = DataConfig(source="folder", folder=str(tmp_path / "pairs"), frames=2, cache_crop=24,
                      samples=5)
    from gyrodeblur.fileio import hold_folder

    with hold_folder(tmp_path / "pairs"), pytest.raises(InputError, match="pairs: another run "
                                                        "is writing into it; wait for it"):
        build_cache(data, tmp_path / "cache.safetensors")  # as `synth clips` adds clips
    tensors = build_cache(data, tmp_path / "cache.safetensors")
    assert tensors["blurred"].shape == (2, 2, 3, 24, 24)  # two windows of 2 frames
    assert tensors["rot"].shape == (2, 2, 5, 2, 24, 24) and "sharp" in tensors
    # Footage added to the folder makes the cache stale.
    export_clip(sampler.sample(1), tmp_path / "pairs" / "clip2")
    with pytest.raises(InputError, match="from other footage"):
        build_cache(data, tmp_path / "cache.safetensors")
    data.cache_crop = 40
    with pytest.raises(InputError, match="larger than its frames"):
        build_cache(data, tmp_path / "other.safetensors")
    # Whole clips of two sizes cannot be stacked: said before any is drawn.
    wider = ClipSampler(ImageBank(dead_leaves=1, dead_leaves_size=96),
                        SamplerSettings(width=56, height=32, frames=3, samples=5), seed=2)
    export_clip(wider.sample(0), tmp_path / "pairs" / "clip3")
    data.cache_crop = None
    with pytest.raises(InputError, match=r"pairs: clips of different sizes \(clip 48x32, clip3 "
                                         r"56x32\): set data.cache_crop"):
        build_cache(data, tmp_path / "whole.safetensors")
    # A training window that fits one side of the clips only: said before any is drawn.
    shutil.rmtree(tmp_path / "pairs" / "clip3")
    with pytest.raises(InputError, match=r"pairs: data.crop 40 is larger than the samples "
                                         r"\(48x32\)"):
        build_cache(replace(data, crop=40), tmp_path / "whole.safetensors")
    assert not (tmp_path / "whole.safetensors").exists()
    # The synthesis keys do nothing for a folder: a run does not differ by them.
    saved = {"model": TINY_MODEL, "data": asdict(data)}
    spelt = TrainConfig("tiny", TINY_MODEL, replace(data, count=99, width=50))
    assert _changed_settings(saved, spelt) == []
    assert _changed_settings(saved, replace(spelt, data=replace(data, frames=3))) == [
        "data.frames"]


@pytest.mark.parametrize(("change", "message"), [
    ({"train": {"steps": "three"}}, "train.steps: 'three' is not of type int"),
    ({"train": {"steps": "1e3"}},  # as YAML reads steps: 1e3
     "train.steps: '1e3' is not of type int (1e3 is a float: write the integer)"),
    ({"train": {"batch": 0}}, "batch must be positive"),
    ({"data": {"width": "64"}}, "data.width: '64' is not of type int"),
    ({"data": {"crops": 64}}, "unknown key(s) crops in data (known: "),
    ({"data": {"cache": "/dev/null/c.safetensors"}}, "data.cache /dev/null/c.safetensors: cannot"),
    ({"name": ".."}, "name: '..' is not a run name"),
    ({"name": ""}, "name: '' is not a run name"),
    ({"model": {"variant": "gyrodvd-xs", "blocks": [2]}, "data": {"frames": 3, "samples": 5}},
     "bad arguments for gyrodvd: need blocks [encoder, decoder] >= 0"),
    ({"model": {"variant": "gyrodvd-xs", "kernel_scale": 0.0}}, "kernel_scale > 0"),
    ({"model": {**TINY_MODEL, "middle_blocks": -1}}, "need block counts >= 0"),
    ({"model": "deepgyro-s"}, "is not a mapping"),
    ({"model": {"variant": "deepgyro-xxl"}}, "unknown model variant"),
    ({"model": {"variant": "gyrodvd-xs", "kernel": "rot+trans"}}, "kernel='rot+trans'"),
    ({"model": {"variant": "gyrodvd-xs"}}, "a video model: set data.frames to 2 or more"),
    ({"model": {"variant": "deepgyro-traj-s"}, "data": {"samples": 5}},
     "net expects 9; set data.samples and model.samples to one T (now 9)"),
    ({"model": {"variant": "gyrodvd-xs", "samples": 5}, "data": {"frames": 3}},
     "got (1, 3, 9, 2, 32, 32) torch.float32; set data.samples and model.samples to one T "
     "(now 5)"),
    ({"data": {"sampler": {"hfov": 3}}}, "unknown key(s) hfov in data.sampler (known: "),
    ({"data": {"sampler": {"width": 3}}}, "unknown key(s) width in data.sampler"),
    ({"data": {"sampler": {"noise": 0.0}}}, "data.sampler.noise: 0.0 is not a range"),
    ({"data": {"sampler": {"hfov_deg": [50, 30]}}}, "(low <= high)"),
    ({"data": {"sampler": {"planes": "two"}}}, "data.sampler.planes: 'two' is not a number"),
    ({"data": {"sampler": {"errors": 0.1}}}, "data.sampler.errors: 0.1 is not a mapping"),
    ({"data": {"sampler": {"jpeg": [0.5, 0, 90]}}}, "data.sampler.jpeg: [0.5, 0, 90] is out of"),
    ({"data": {"sampler": {"noise": [-0.001, 0.01]}}},
     "data.sampler.noise: [-0.001, 0.01] is out of range: noise levels (std at mid-grey), in "
     "[0, 1]"),
    ({"data": {"sampler": {"fps": [0, 0]}}}, "data.sampler.fps: [0, 0] is out of range"),
    ({"data": {"sampler": {"planes": 0}}}, "data.sampler.planes: 0 is out of range"),
    ({"data": {"sampler": {"real_motion": 5}}}, "data.sampler.real_motion: 5 is out of range"),
    ({"data": {"sampler": {"exposure": [2, 3]}}}, "data.sampler.exposure: [2, 3] is out of"),
    ({"data": {"sampler": {"hfov_deg": [-10, 200]}}}, "data.sampler.hfov_deg: [-10, 200] is"),
    ({"train": {"lr": float("nan")}}, "lr must be a finite number, got nan"),
    ({"train": {"lr": float("inf")}}, "lr must be a finite number, got inf"),
    ({"model": {**TINY_MODEL, "width": -4}}, "bad arguments for deepgyro: "),
    ({"model": {"width": 8}}, "model: give `variant:` ("),
    ({"model": {"arch": "gyrodvd", "variant": "deepgyro-s"}},
     "model: variant deepgyro-s is a deepgyro model, not gyrodvd: give one of variant and arch"),
    ({"data": {"source": "folders"}}, "synthetic or folder"),
    ({"model": {"variant": "deepgyro-refine-s"}}, "refines the classical restoration: set data."),
    ({"train": {"weight_decay": -1}}, "weight_decay must be at least 0, got -1"),
    ({"data": {"seed": -1}}, "seed must be at least 0"),
    ({"train": {"lr": 1e-3, "lr_min": 0.1}}, "train.lr_min 0.1 is above train.lr 0.001"),
    ({"data": {"crop": 48, "cache_crop": 32}}, "data.cache_crop 32 is smaller than data.crop 48"),
    ({"data": {"crop": 1}}, "data.crop 1: at least 16 px (a smaller window holds less than"),
    ({"data": {"source": "folder", "folder": "no/such/folder"}}, "data.folder no/such/folder: "
                                                                 "no such folder"),
    ({"data": {"images": "no/such/images"}}, "data.images no/such/images: no such folder"),
    ({"train": 5}, "train: 5 is not a mapping of settings"),
    ({"data": "folder"}, "data: 'folder' is not a mapping of settings"),
    ({"name": ["a", "b"]}, "is not a run name"),
    ({"model": {**TINY_MODEL, "width": "8"}}, "deepgyro argument width: '8' is not of the type"),
    ({"model": {**TINY_MODEL, "width": 8.5}}, "deepgyro argument width: 8.5 is not of the type"),
    ({"model": {**TINY_MODEL, "depth": 3}}, "deepgyro has no argument 'depth'"),
    ({"data": {"samples": 5, "cache_crop": 160}},
     "data.cache_crop 160 is larger than the samples (192x128)"),
    ({"data": {"samples": 1}}, "data.samples must be at least 2, got 1"),
    ({"data": {"samples": 5, "count": 4}},
     "data.count 4 is fewer samples than one batch (train.batch 8)"),
    ({"data": {"samples": 5, "sampler": {"errors": {"dealy": 0.01}}}},
     "unknown key(s) dealy in data.sampler.errors (known: bias, delay, "),
    # Errors the synthesis cannot draw (a delay beyond the gyro it draws, a readout or a
    # gain that turns negative) or no gyro has.
    ({"data": {"samples": 5, "sampler": {"errors": {"delay": 0.06}}}},
     "data.sampler.errors.delay: 0.06 is out of range: seconds, at most 0.05"),
    ({"data": {"samples": 5, "sampler": {"errors": {"readout": 1.5}}}},
     "data.sampler.errors.readout: 1.5 is out of range: a finite number >= 0, below 1.0"),
    ({"data": {"samples": 5, "sampler": {"errors": {"scale": 3}}}},
     "data.sampler.errors.scale: 3 is out of range"),
    ({"data": {"samples": 5, "sampler": {"errors": {"bias": 100}}}},
     "data.sampler.errors.bias: 100 is out of range: a finite number >= 0, below 0.1 (rad/s"),
    ({"name": " "}, "is not a run name"),
    ({"data": {"samples": 5, "gyro_unit": "degs"}},  # also without data.gyro
     "data.gyro_unit 'degs': auto, rad or deg"),
    ({"data": {"samples": 5, "folder": "."}},
     "data.folder . is read with data.source: folder (the source is synthetic)"),
    ({"model": {"variant": ["deepgyro-s"]}}, "unknown model variant ['deepgyro-s']"),
    ({"model": {"arch": {"a": 1}}}, "unknown architecture {'a': 1}"),
    ({"train": {"seed": 2**64}}, "train.seed must be at most 2**64 - 1, got 18446744073709551616"),
    ({"data": {"samples": 5, 1: 2, "zz": 3}}, "1 is not a setting's name"),
    ({"train": {None: 1}}, "None is not a setting's name"),
])
def test_bad_configs_are_refused_before_any_data_is_drawn(tmp_path, change, message):
    raw = {"model": TINY_MODEL, "data": {"samples": 5}, "train": {"steps": 2}}
    raw.update(change)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(InputError, match=re.escape(message)) as err:
        load_config(path)
    assert str(err.value).startswith(f"{path}: ")


def test_a_config_in_utf16_and_one_the_run_would_overwrite_are_refused(tmp_path):
    from typer.testing import CliRunner

    from gyrodeblur.cli import app

    utf16 = tmp_path / "utf16.yaml"
    utf16.write_text("model: {variant: deepgyro-s}\n", encoding="utf-16")
    with pytest.raises(InputError, match="not UTF-8 text"):
        load_config(utf16)
    mine = tmp_path / "mine"
    mine.mkdir()
    written = "# my experiment\nmodel: {variant: deepgyro-s}\ndata: {samples: 5}\n"
    (mine / "config.yaml").write_text(written)
    result = CliRunner().invoke(app, ["train", str(mine / "config.yaml"), "-o", str(mine)])
    assert result.exit_code == 2 and "would overwrite config.yaml, the config" in result.output
    assert (mine / "config.yaml").read_text() == written


def test_a_classic_cache_holds_each_whole_frames_classical_restoration(tmp_path):
    from gyrodeblur.models.classic import deconvolve

    whole = DataConfig(frames=1, width=48, height=32, samples=5, count=2, classic=True)
    tensors = build_cache(whole, tmp_path / "whole.safetensors")
    for i in range(2):
        want = deconvolve(tensors["blurred"][i].float().permute(1, 2, 0).numpy(),
                          (tensors["rot"][i] + tensors["tran"][i]).float().numpy())
        # float16 storage of the inputs and of the estimate
        torch.testing.assert_close(tensors["estimate"][i].float(),
                                   torch.from_numpy(want).permute(2, 0, 1), atol=4e-3, rtol=0)
    cropped = DataConfig(**{**whole.__dict__, "cache_crop": 24})
    assert build_cache(cropped, tmp_path / "c.safetensors")["estimate"].shape == (2, 3, 24, 24)
    # Caches drawn before the option keep their recipe.
    assert "classic" not in cache_recipe(DataConfig()) and "classic" in cache_recipe(whole)


def test_a_cache_of_other_settings_is_refused(cache, tmp_path):
    cfg = config(cache)
    cfg.data.count = 16  # the cache holds 8 samples
    with pytest.raises(InputError, match=r"drawn with other data settings \(data\.count 8 "
                                         r"there, 16 here\)"):
        train(cfg, tmp_path / "run")


def test_a_cache_recipe_is_compared_by_value_not_by_how_it_was_written(tmp_path,
                                                                       monkeypatch):
    from gyrodeblur.pipelines.train import _same_recipe

    monkeypatch.chdir(tmp_path)
    (tmp_path / "images").mkdir()
    written = DataConfig(images="images", sampler={"noise": [0.0, 0.01]})
    same = DataConfig(images=str(tmp_path / "images"), sampler={"noise": [0, "1e-2"]})
    other = DataConfig(images="images", sampler={"noise": [0.0, 0.02]})
    write_image(tmp_path / "images" / "a.png", np.full((64, 64, 3), 0.5, np.float32))
    # A recipe of the release before: the folder as written, the numbers as YAML read them.
    before = cache_recipe(written).replace(str(tmp_path / "images"), "images")
    assert _same_recipe(before, cache_recipe(same))
    assert not _same_recipe(before, cache_recipe(other))
    # A default spelt out is the default: the same data, and the same run.
    spelt = DataConfig(images="images", sampler={"noise": [0.0, 0.01], "real_motion": 0.5,
                                                 "fps": [10, 60], "errors": {"delay": 0.01}})
    assert _same_recipe(before, cache_recipe(spelt))
    saved = {"model": TINY_MODEL, "data": asdict(written)}
    assert _changed_settings(saved, TrainConfig("a", TINY_MODEL, spelt)) == []
    assert _changed_settings(saved, TrainConfig("a", TINY_MODEL, other)) == ["data.sampler"]


@pytest.mark.parametrize("damage", [b"x", None])
def test_a_damaged_data_cache_is_a_one_line_error(cache, tmp_path, damage):
    broken = tmp_path / "broken.safetensors"
    whole = cache.read_bytes()
    broken.write_bytes(damage or whole[:len(whole) // 2])
    cfg = config(cache)
    cfg.data.cache = str(broken)
    with pytest.raises(InputError, match=r"broken\.safetensors: not a readable data cache \("):
        train(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_weights_given_as_the_data_cache_are_not_to_be_deleted(cache, tmp_path):
    from gyrodeblur.models import weights_file

    cfg = config(cache)
    cfg.data.cache = str(weights_file("deepgyro-s"))
    with pytest.raises(InputError, match=r"deepgyro-s\.safetensors: is no data cache \(a "
                                         r"safetensors file without a data recipe\): give "
                                         "data.cache a path of its own$"):
        train(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_run_folder_of_another_model_is_refused(cache, tmp_path):
    import shutil

    train(config(cache, steps=2), tmp_path / "run")
    other = config(cache, steps=2)
    other.model = {**TINY_MODEL, "width": 8}
    with pytest.raises(InputError, match=r"holds a run of another model or data \(model differ"):
        train(other, tmp_path / "run")
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["model"] == TINY_MODEL
    other = config(cache, steps=2)
    other.data.crop = 16
    with pytest.raises(InputError, match=r"\(data.crop differ"):
        train(other, tmp_path / "run")
    moved = config(cache, steps=3)  # the same data, cached elsewhere, resumes
    moved.data.cache = str(shutil.copy(cache, tmp_path / "copy.safetensors"))
    assert train(moved, tmp_path / "run")["steps"] == 3
    (tmp_path / "run" / "config.yaml").unlink()  # only the checkpoint tells now
    other = config(cache, steps=4)
    other.model = {**TINY_MODEL, "width": 8}
    with pytest.raises(InputError, match=r"another model or data \(model differs\); resume it "
                                         r"with the config its checkpoint records"):
        train(other, tmp_path / "run")
    other = config(cache, steps=4)
    other.data.crop = 16
    with pytest.raises(InputError, match=r"\(data.crop differs\)"):
        train(other, tmp_path / "run")
    assert train(config(cache, steps=4), tmp_path / "run")["steps"] == 4
    # A checkpoint of a release that kept no config in it, alone: nothing tells its data.
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    del state["config"]
    torch.save(state, tmp_path / "run" / "checkpoint.pt")
    (tmp_path / "run" / "config.yaml").unlink()
    with pytest.raises(InputError, match=r"checkpoint\.pt without the run's config\.yaml"):
        train(config(cache, steps=5), tmp_path / "run")


def test_a_resumed_run_is_the_same_run_however_its_config_is_written(tmp_path):
    first = config(tmp_path / "noisy.safetensors", steps=2)
    first.data.sampler = {"noise": [0, 0.02]}
    train(first, tmp_path / "run")
    # A default argument of the model spelt out, the range written as other numbers alike.
    spelt = config(tmp_path / "noisy.safetensors", steps=3)
    spelt.model = {**TINY_MODEL, "refine": False}
    spelt.data.sampler = {"noise": [0.0, "2e-2"]}
    assert train(spelt, tmp_path / "run")["steps"] == 3


def test_a_config_yaml_of_no_run_in_the_folder_is_not_replaced(cache, tmp_path):
    (tmp_path / "run").mkdir()
    notes = "# my notes\nname: tiny\nmodel: {arch: deepgyro}\n"
    (tmp_path / "run" / "config.yaml").write_text(notes)
    with pytest.raises(InputError, match=r"config\.yaml: a config\.yaml of no run here"):
        train(config(cache, steps=2), tmp_path / "run")
    assert (tmp_path / "run" / "config.yaml").read_text() == notes
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["config.yaml"]


def test_a_run_killed_before_its_first_checkpoint_starts_again_with_another_train_section(
        cache, tmp_path):
    from gyrodeblur.pipelines.train import _config_text

    (tmp_path / "run").mkdir()  # what `kill -9` leaves before the first checkpoint
    (tmp_path / "run" / "config.yaml").write_text(_config_text(config(cache, steps=9)))
    assert train(config(cache, steps=2), tmp_path / "run")["steps"] == 2
    # Its config.yaml names its files wholly: the run resumes from any folder.
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["data"]["cache"] == str(cache) and os.path.isabs(saved["data"]["cache"])


def test_a_saved_config_names_its_gyro_log_and_init_weights_wholly(tmp_path, monkeypatch):
    from gyrodeblur.pipelines.train import _config_text

    monkeypatch.chdir(tmp_path)
    relative = config("cache.safetensors")
    relative.data.gyro, relative.train.init = "logs/g.csv", "runs/first"
    saved = yaml.safe_load(_config_text(relative))
    assert saved["data"]["gyro"] == [str(tmp_path / "logs" / "g.csv")]
    assert saved["train"]["init"] == str(tmp_path / "runs" / "first")
    shipped = config("cache.safetensors")
    shipped.train.init = "deepgyro-s"  # a shipped model's name stays a name
    assert yaml.safe_load(_config_text(shipped))["train"]["init"] == "deepgyro-s"
    # Relative or absolute, the same log is the same data.
    assert _changed_settings(saved, relative) == []
    relative.data.gyro = "logs/other.csv"
    assert _changed_settings(saved, relative) == ["data.gyro"]


def test_a_changed_weight_decay_applies_on_resuming(cache, tmp_path):
    train(config(cache, steps=2), tmp_path / "run")
    decayed = config(cache, steps=3)
    decayed.train.weight_decay = 0.5
    notes = []
    train(decayed, tmp_path / "run", note=notes.append)
    assert notes == [f"resuming {tmp_path / 'run'} at step 2 of 3 (train.steps, "
                     "train.weight_decay changed since its checkpoint: they apply from here)"]
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert {g["weight_decay"] for g in state["optimizer"]["param_groups"]} == {0.5}
    # The run is finished: re-run with yet another, it trains no step and stays as it ran.
    files = {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()}
    decayed.train.weight_decay = 0.25
    notes.clear()
    assert train(decayed, tmp_path / "run", note=notes.append)["steps"] == 3
    assert {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()} == files
    assert notes == [f"the run in {tmp_path / 'run'} is finished (step 3 of 3); raise "
                     "train.steps to train it on"]


def test_a_damaged_checkpoint_is_a_one_line_error(cache, tmp_path):
    train(config(cache, steps=2), tmp_path / "run")
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    with pytest.raises(InputError, match=r"checkpoint\.pt: cannot resume from it \(.*delete it"):
        train(config(cache, steps=4), tmp_path / "run")


def test_a_diverging_run_stops_before_its_weights_turn_nan(cache, tmp_path):
    cfg = config(cache, steps=40)
    cfg.train.lr = cfg.train.lr_min = 1e30
    with pytest.raises(InputError, match=r"training diverged: the (loss|gradient norm) is "
                                         r"\S+ at step (\d+); lower train.lr and start "
                                         r"again") as err:
        train(cfg, tmp_path / "run")
    failed = int(re.search(r"at step (\d+)", str(err.value)).group(1))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text(),
                         parse_constant=lambda c: pytest.fail(f"{c} in metrics.json"))
    assert metrics["steps"] == failed - 1 and not metrics["finished"]
    assert metrics["diverged"].endswith(f"at step {failed}")
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert state["step"] == failed - 1
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    assert all(math.isfinite(loss) for loss in state["history"])


def test_a_float_written_1e_minus_3_is_read_as_a_number(tmp_path):
    from gyrodeblur.pipelines.train import sampler_settings

    # YAML 1.1 (PyYAML) reads 1e-3 as a string.
    path = tmp_path / "lr.yaml"
    path.write_text("model: {variant: deepgyro-s}\ntrain: {lr: 1e-3}\n"
                    "data: {sampler: {noise: [0.0, 1e-2], errors: {bias: 2e-2}}}\n")
    config = load_config(path)
    assert config.train.lr == 0.001
    settings = sampler_settings(config.data)
    assert settings.noise == (0.0, 0.01) and settings.errors.bias == 0.02


def test_a_data_cache_that_is_a_folder_is_refused(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"model": TINY_MODEL, "data": {"samples": 5,
                                                                  "cache": str(tmp_path)}}))
    with pytest.raises(InputError, match="is a folder; name a .safetensors file"):
        load_config(path)


def test_a_failed_start_leaves_no_run_folder_and_a_run_is_not_rewound(cache, tmp_path):
    cfg = config(cache, batch=16)  # the cache holds 8 samples
    with pytest.raises(InputError, match="fewer samples than one batch"):
        train(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()
    cfg.data.crop = 40  # samples are 48x32
    cfg.train.batch = 4
    with pytest.raises(InputError, match="data.crop 40 is larger than the samples"):
        train(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()
    train(config(cache, steps=4), tmp_path / "run")
    with pytest.raises(InputError, match="at step 4, past train.steps 2"):
        train(config(cache, steps=2), tmp_path / "run")
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["train"]["steps"] == 4


def _pairs(tmp_path):
    from gyrodeblur.synthesis.clips import export_clip
    from gyrodeblur.synthesis.images import ImageBank
    from gyrodeblur.synthesis.sampler import ClipSampler, SamplerSettings

    sampler = ClipSampler(ImageBank(dead_leaves=1, dead_leaves_size=96),
                          SamplerSettings(width=48, height=32, frames=2, samples=5), seed=2)
    export_clip(sampler.sample(0), tmp_path / "pairs" / "clip")
    return DataConfig(source="folder", folder=str(tmp_path / "pairs"), samples=5)


@pytest.mark.parametrize(("change", "message"), [
    ("size", "sharp/000001.png: 40x30, its blurred frame 48x32"),
    ("gray", "sharp/000001.png: gray, its blurred frame is in colour"),
    ("missing", "blurred/000002.png: no frame of that name in sharp/"),
    ("gray blurred", "sharp/000001.png: in colour, its blurred frame is gray (a colour "
                     "reference for a monochrome input)"),
    ("twice", "blurred/000002.png: a second frame named 000002 (and 000002.jpg): keep one"),
    ("degrees", "gyro.csv: angular velocity looks like deg/s (|w| median 52, 99th percentile "
                "52); a clip folder's gyro.csv is read in rad/s: convert it (times pi/180)"),
])
def test_bad_pairs_in_a_folder_are_one_line_errors_from_the_cache_workers(tmp_path, change,
                                                                          message):
    import cv2

    data = _pairs(tmp_path)
    if change == "degrees":  # no --gyro-unit reaches a clip folder's log: not advised
        log = tmp_path / "pairs" / "clip" / "gyro.csv"
        t = np.loadtxt(log, delimiter=",", skiprows=1)[:, 0]
        np.savetxt(log, np.column_stack([t, np.full((len(t), 3), 30.0)]), delimiter=",",
                   header="t,wx,wy,wz", comments="")
    sharp = sorted((tmp_path / "pairs" / "clip" / "sharp").iterdir())
    for path in sharp:
        image = cv2.imread(str(path))
        if change == "size":
            cv2.imwrite(str(path), cv2.resize(image, (40, 30)))
        elif change == "gray":
            cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
    if change == "missing":
        sharp[-1].unlink()
    blurred = tmp_path / "pairs" / "clip" / "blurred"
    for path in sorted(blurred.iterdir()) if change == "gray blurred" else []:
        cv2.imwrite(str(path), cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2GRAY))
    if change == "twice":
        cv2.imwrite(str(blurred / "000002.jpg"), cv2.imread(str(blurred / "000002.png")))
    with pytest.raises(InputError, match=re.escape(message)):
        build_cache(data, tmp_path / "cache.safetensors")
    assert not (tmp_path / "cache.safetensors").exists()


def test_clip_folders_of_fewer_samples_than_a_batch_are_refused_before_they_are_read(
        tmp_path, monkeypatch):
    from gyrodeblur.synthesis import datasets

    data = _pairs(tmp_path)  # one clip of 2 frames: 2 samples of 1 frame
    monkeypatch.setattr(datasets.ClipFolderDataset, "__getitem__", None)  # never read
    with pytest.raises(InputError, match=re.escape("pairs: 2 samples (windows of data.frames 1 "
                                                   "in its clips) are fewer than one batch "
                                                   "(train.batch 4)")):
        build_cache(data, tmp_path / "cache.safetensors", batch=4)
    assert not (tmp_path / "cache.safetensors").exists()


def test_a_full_disk_is_named_as_one_with_the_file_it_stopped(cache, tmp_path, monkeypatch):
    from safetensors import SafetensorError

    from gyrodeblur.pipelines import train as training

    real = Path.write_bytes

    def full_disk(path, data):  # torch's own writer would say "unexpected pos 704 vs 598"
        if path.parent.name.startswith(".checkpoint.pt."):  # its temporary
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(path, data)

    monkeypatch.setattr(Path, "write_bytes", full_disk)
    with pytest.raises(OSError, match=r"No space left on device: .*run/checkpoint\.pt'"):
        train(config(cache), tmp_path / "run")
    monkeypatch.setattr(Path, "write_bytes", real)

    def safetensors_on_a_full_disk(tensors, name, metadata=None):
        raise SafetensorError("Error while serializing: I/O error: No space left on device "
                              "(os error 28)")

    monkeypatch.setattr(training, "save_file", safetensors_on_a_full_disk)
    with pytest.raises(OSError, match=r"No space left on device: .*run2/model\.safetensors'"):
        train(config(cache), tmp_path / "run2")
    with pytest.raises(OSError, match=r"No space left on device: .*fresh\.safetensors\.parts"):
        build_cache(DataConfig(frames=1, width=48, height=32, samples=5, count=2),
                    tmp_path / "fresh.safetensors")
    assert not list(tmp_path.rglob(".*.part*"))  # no temporary left behind


def test_a_folder_cache_ignores_files_the_clips_are_not_read_from(tmp_path):
    data = _pairs(tmp_path)
    recipe = cache_recipe(data)
    (tmp_path / "pairs" / "README.txt").write_text("notes")
    (tmp_path / "pairs" / "clip" / "kernels.npz").write_bytes(b"not read")
    # A clip that `synth clips` is still writing (or a killed run left) is not read either.
    shutil.copytree(tmp_path / "pairs" / "clip", tmp_path / "pairs" / ".clip_9.a1b2c3d4.part")
    assert cache_recipe(data) == recipe
    (tmp_path / "pairs" / "clip" / "frames.csv").write_text(
        (tmp_path / "pairs" / "clip" / "frames.csv").read_text() + "\n")
    assert cache_recipe(data) != recipe


def test_a_config_built_in_python_is_checked_before_any_data_is_drawn(cache, tmp_path):
    from dataclasses import replace

    bad = config(cache)
    bad = replace(bad, train=replace(bad.train, lr=-1.0))
    with pytest.raises(InputError, match="train.lr must be positive, got -1.0"):
        train(bad, tmp_path / "run")
    refining = replace(config(cache), model={"variant": "deepgyro-refine-s"})
    with pytest.raises(InputError, match="refines the classical restoration: set data.classic"):
        train(refining, tmp_path / "run")
    with pytest.raises(TypeError, match="config.data and config.train must be a DataConfig"):
        train(replace(config(cache), data={"frames": 1}), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_metrics_follow_the_checkpoints_of_a_run_that_dies(cache, tmp_path):
    def die_at_step_3(step, steps, loss):
        if step == 3:
            raise SystemExit("killed")  # as a crash or kill -9: no clean stop

    with pytest.raises(SystemExit):
        train(config(cache), tmp_path / "run", progress=die_at_step_3)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert metrics["steps"] == state["step"] == 2 and not metrics["finished"]


def test_each_checkpoint_step_is_written_once(cache, tmp_path, monkeypatch):
    from gyrodeblur.pipelines import train as training

    real, written = training.atomic_path, []

    def counted(target):
        written.append(Path(target).name)
        return real(target)

    monkeypatch.setattr(training, "atomic_path", counted)
    metrics = train(config(cache), tmp_path / "run")  # 6 steps, a checkpoint every 2
    assert written.count("checkpoint.pt") == written.count("model.safetensors") == 3
    assert json.loads((tmp_path / "run" / "metrics.json").read_text()) == metrics


def test_a_run_killed_after_its_last_checkpoint_has_that_steps_weights(cache, tmp_path,
                                                                      monkeypatch):
    from safetensors import safe_open

    from gyrodeblur.pipelines import train as training

    real, placed = training.atomic_path, []

    class Killed(BaseException):
        pass

    @contextlib.contextmanager
    def killed_after_the_last_checkpoint(target):
        if placed:
            raise Killed  # the first write after it
        with real(target) as tmp:
            yield tmp
        if Path(target).name == "checkpoint.pt" and torch.load(target)["step"] == 6:
            placed.append(target)

    monkeypatch.setattr(training, "atomic_path", killed_after_the_last_checkpoint)
    with pytest.raises(Killed):
        train(config(cache), tmp_path / "run")
    monkeypatch.setattr(training, "atomic_path", real)
    metrics = train(config(cache), tmp_path / "run")  # finished: nothing trained again
    with safe_open(tmp_path / "run" / "model.safetensors", "pt") as f:
        assert f.metadata()["steps"] == "6"
    assert metrics["steps"] == 6 and metrics["finished"]


def _trace(path: Path, seconds: float) -> Path:
    t = np.arange(0.0, seconds, 0.005)
    w = 0.2 * np.column_stack([np.sin(3 * t), np.cos(2 * t), np.sin(t)])
    np.savetxt(path, np.column_stack([t, w]), delimiter=",", header="t,wx,wy,wz", comments="")
    return path


def test_synthetic_data_draws_its_real_motion_from_the_configs_gyro_logs(tmp_path,
                                                                          monkeypatch):
    from gyrodeblur.pipelines.train import _draw_cache, _recipe_changes

    monkeypatch.chdir(tmp_path)
    _trace(tmp_path / "mine.csv", 4.0)
    raw = {"model": TINY_MODEL, "train": {"steps": 2, "batch": 2},
           "data": {"samples": 5, "width": 48, "height": 32, "count": 4, "gyro": "mine.csv",
                    "sampler": {"real_motion": 1.0}}}
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(raw))
    data = load_config(path).data
    seen = []

    def sampler(bank, settings, seed, traces=None):  # what the draw is given, then stop
        seen.append([log.source for log in traces])
        raise KeyboardInterrupt

    monkeypatch.setattr("gyrodeblur.synthesis.sampler.ClipSampler", sampler)
    with pytest.raises(KeyboardInterrupt):
        _draw_cache(data, tmp_path / "c.safetensors", tmp_path / "parts", None, 1)
    assert seen == [["mine.csv"]]
    # The logs are part of the cache's recipe, by path and by content; without them the
    # recipe is that of the releases before the option.
    recipe = cache_recipe(data)
    assert json.loads(recipe)["gyro"] == [str(tmp_path / "mine.csv")]
    assert "gyro" not in json.loads(cache_recipe(replace(data, gyro=None)))
    _trace(tmp_path / "mine.csv", 5.0)
    assert _recipe_changes(recipe, cache_recipe(data)) == " (the gyro logs' files changed)"
    # Of a GyroVD folder, the log read counts, not the other files there.
    folder = tmp_path / "VID" / "meta_info"
    folder.mkdir(parents=True)
    _trace(folder / "gyro.csv", 4.0)
    vid = replace(data, gyro=["VID"])
    recipe = cache_recipe(vid)
    (folder / "notes.txt").write_text("a new file beside the log")
    assert cache_recipe(vid) == recipe
    assert "data.gyro_unit 'auto' there, 'deg' here" in _recipe_changes(
        recipe, cache_recipe(replace(vid, gyro_unit="deg")))


@pytest.mark.parametrize("gyro, source, message", [
    ("no.csv", "synthetic", "data.gyro no.csv: no such file or folder"),
    ([], "synthetic", "data.gyro: [] is not a gyro log's path or a list of them"),
    (["a.csv", 3], "synthetic", "data.gyro: ['a.csv', 3] is not a gyro log's path or a list"),
    ("a.csv", "folder", "data.gyro is the motion of synthetic data (source: synthetic)"),
    ("", "synthetic", "data.gyro: '' is not a gyro log's path or a list of them"),
    (["a.csv", " "], "synthetic", "data.gyro: ['a.csv', ' '] is not a gyro log's path"),
    ("short.csv", "synthetic", "short.csv: its longest stretch without gaps, 0.12 s, is "
                               "shorter than any clip (0.22 s: 1 frames at 60 fps"),
])
def test_bad_gyro_logs_of_a_config_are_refused_before_any_data_is_drawn(
        tmp_path, monkeypatch, gyro, source, message):
    monkeypatch.chdir(tmp_path)
    _trace(tmp_path / "a.csv", 4.0)
    _trace(tmp_path / "short.csv", 0.125)
    (tmp_path / "clips").mkdir()
    raw = {"model": TINY_MODEL, "data": {"samples": 5, "gyro": gyro, "source": source,
                                         **({"folder": "clips"} if source == "folder" else {})}}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(InputError, match=re.escape(message)):
        load_config(path)


def test_a_configs_gyro_unit_reads_its_logs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    t = np.arange(0.0, 4.0, 0.005)
    np.savetxt("deg.csv", np.column_stack([t, np.full((len(t), 3), 30.0)]), delimiter=",",
               header="t,wx,wy,wz", comments="")
    raw = {"model": TINY_MODEL, "data": {"samples": 5, "gyro": "deg.csv"}}
    Path("c.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(InputError, match="deg.csv: angular velocity looks like deg/s"):
        load_config("c.yaml")
    raw["data"]["gyro_unit"] = "deg"
    Path("c.yaml").write_text(yaml.safe_dump(raw))
    from gyrodeblur.pipelines.train import gyro_traces

    (log,) = gyro_traces(load_config("c.yaml").data)
    np.testing.assert_allclose(log.w, np.radians(30.0))
    raw["data"]["gyro_unit"] = "rads"
    Path("c.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(InputError, match="data.gyro_unit 'rads': auto, rad or deg"):
        load_config("c.yaml")


def test_a_finished_run_draws_no_data_and_says_it_is_finished(tmp_path):
    own = tmp_path / "own.safetensors"
    cfg = config(own, steps=4)
    train(cfg, tmp_path / "run", stop_after=2)
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["finished"] is False
    own.unlink()  # the data deleted to free the disk
    # Stopped at step 2, then train.steps lowered to 2: finished, and its metrics say so.
    notes = []
    metrics = train(config(own, steps=2), tmp_path / "run", note=notes.append)
    assert metrics["finished"] is True and metrics["steps"] == 2 and not own.exists()
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["finished"] is True
    assert notes == [f"the run in {tmp_path / 'run'} is finished (step 2 of 2); raise "
                     "train.steps to train it on"]
    with pytest.raises(InputError, match="at step 2, past train.steps 1"):
        train(config(own, steps=1), tmp_path / "run")
    assert not own.exists()


def test_a_models_float_in_exponent_notation_is_a_float(tmp_path):
    # YAML 1.1 reads 1.6e1 and 2e1 as strings; a model setting of a float default takes them.
    path = tmp_path / "c.yaml"
    text = ("model: {arch: gyrodvd, width: 16, width0: 8, blocks: [1, 1], samples: 5, "
            "kernel_scale: 1.6e1}\ndata: {samples: 5, frames: 3}\n")
    path.write_text(text)
    assert load_config(path).model["kernel_scale"] == 16.0
    path.write_text(text.replace("width: 16", "width: 1.6e1"))  # an int's is not
    with pytest.raises(InputError, match="gyrodvd argument width: 16.0 is not of the type"):
        load_config(path)


def test_the_cli_says_where_a_stopped_run_stopped(cache, tmp_path):
    from typer.testing import CliRunner

    from gyrodeblur.cli import app
    from gyrodeblur.pipelines.train import _config_text

    (tmp_path / "tiny.yaml").write_text(_config_text(config(cache)))
    args = ["train", str(tmp_path / "tiny.yaml"), "-o", str(tmp_path / "run")]
    result = CliRunner().invoke(app, [*args, "--stop-after", "2"])
    assert result.exit_code == 0, result.output
    assert "stopped at step 2 (checkpointed): the same command resumes from there" in \
        result.output
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0 and "stopped at" not in result.output


def test_more_torchrun_processes_than_gpus_is_one_line_from_rank_0(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: pytest.fail("no such GPU"))
    for name, value in {"WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2", "LOCAL_RANK": "0",
                        "RANK": "0"}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(InputError, match=r"^torchrun started 2 processes on this machine, which "
                                         r"has 1 CUDA GPU: one process per GPU "
                                         r"\(--nproc_per_node 1\), or CUDA_VISIBLE_DEVICES= "
                                         r"to train on the CPU$"):
        _distributed()
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    with pytest.raises(SystemExit) as stopped:  # rank 0 alone says why
        _distributed()
    assert stopped.value.code == 2


def test_training_leaves_the_callers_random_state_as_it_was(cache, tmp_path):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    first = train(config(cache, steps=1), tmp_path / "a")
    assert torch.equal(torch.rand(3), expected)  # a notebook's own draws go on unchanged
    torch.manual_seed(7)  # and the run's weights do not follow the caller's seed
    again = train(config(cache, steps=1), tmp_path / "b")
    assert first["loss_first"] == again["loss_first"]
    a = load_model(tmp_path / "a" / "model.safetensors", fuse=False)[0].state_dict()
    b = load_model(tmp_path / "b" / "model.safetensors", fuse=False)[0].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_training_log_times_the_steps_not_the_data_cache(cache, tmp_path, monkeypatch):
    import time

    from typer.testing import CliRunner

    import gyrodeblur.pipelines.train as train_module
    from gyrodeblur.cli import app
    from gyrodeblur.pipelines.train import _config_text

    drawn = train_module.build_cache
    monkeypatch.setattr(train_module, "build_cache",
                        lambda *args: time.sleep(3) or drawn(*args))  # a long draw
    (tmp_path / "tiny.yaml").write_text(_config_text(config(cache)))
    result = CliRunner().invoke(app, ["train", str(tmp_path / "tiny.yaml"), "-o",
                                      str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    # Not a terminal: a line at the first step and one at the last, timed from the first.
    lines = [line for line in result.stderr.splitlines() if line.startswith("train tiny")]
    seconds = [int(re.search(r"\d/6 \(\d+%\), 0:00:(\d\d) elapsed", line)[1]) for line in lines]
    assert len(seconds) == 2 and max(seconds) < 3, lines
