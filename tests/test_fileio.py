import errno
import os
import shutil
import subprocess
import sys
import time
import zipfile
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest

from gyrodeblur import fileio
from gyrodeblur.errors import InputError
from gyrodeblur.fileio import NpzWriter


def test_npz_round_trip_in_pieces(tmp_path):
    rot = np.random.default_rng(0).normal(size=(3, 2, 4, 5)).astype(np.float32)
    with NpzWriter(tmp_path / "k.npz") as npz:
        out = npz.array("rot", rot.shape, np.float32)
        for i, frame in enumerate(rot):
            out[i] = frame
        npz.put("meta", np.array("{}"))
    with np.load(tmp_path / "k.npz") as f:
        np.testing.assert_array_equal(f["rot"], rot)
        assert str(f["meta"]) == "{}"
    assert [p.name for p in tmp_path.iterdir()] == ["k.npz"]


def test_npz_bytes_depend_on_the_arrays_only(tmp_path):
    for name in ("a.npz", "b.npz"):
        with NpzWriter(tmp_path / name) as npz:
            npz.array("rot", (2, 3), np.float32)[:] = 1.5
            npz.put("meta", np.array("{}"))
    # No time of writing inside: a resumed job's files equal an uninterrupted job's.
    with zipfile.ZipFile(tmp_path / "a.npz") as zf:
        assert {e.date_time for e in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()


def test_a_disk_without_room_for_the_zip_is_refused_before_any_work(tmp_path, monkeypatch):
    Usage = namedtuple("Usage", "total used free")
    real = shutil.disk_usage(tmp_path)
    # Room for the memory maps (already reserved) but not for the zip of them.
    monkeypatch.setattr(fileio.shutil, "disk_usage", lambda p: Usage(real.total, 0, 1000))
    problem = r"k.npz: cannot be written: 4 MB needed beside it for the zip, 0 MB free"
    with pytest.raises(InputError, match=problem), NpzWriter(tmp_path / "k.npz") as npz:
        npz.array("rot", (1000, 1000), np.float32)
    assert list(tmp_path.iterdir()) == []


def test_an_output_that_is_a_link_is_replaced_and_what_it_points_to_left_alone(tmp_path):
    # Written through, a link to a frame or to weights would overwrite an input that the
    # run's checks did not know of.
    (tmp_path / "inputs").mkdir()
    (tmp_path / "inputs" / "frame.png").write_text("input")
    (tmp_path / "o.png").symlink_to(tmp_path / "inputs" / "frame.png")
    (tmp_path / "k.npz").symlink_to(tmp_path / "inputs" / "weights.npz")  # not there
    with fileio.atomic_path(tmp_path / "o.png") as tmp:
        tmp.write_text("new")
    with NpzWriter(tmp_path / "k.npz") as npz:
        npz.put("meta", np.array("{}"))
    assert not (tmp_path / "o.png").is_symlink() and not (tmp_path / "k.npz").is_symlink()
    assert (tmp_path / "o.png").read_text() == "new"
    assert str(np.load(tmp_path / "k.npz")["meta"]) == "{}"
    assert [p.name for p in (tmp_path / "inputs").iterdir()] == ["frame.png"]
    assert (tmp_path / "inputs" / "frame.png").read_text() == "input"


@pytest.mark.parametrize("folder", [False, True])
def test_devices_pipes_and_dash_are_refused_as_outputs_and_left_alone(tmp_path, folder):
    # Replaced by the finished file, /dev/null would become one (root may write /dev).
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "stdout").symlink_to(tmp_path / "pipe")  # as /dev/stdout in a pipeline
    for output in (os.devnull, tmp_path / "pipe", tmp_path / "stdout"):
        with pytest.raises(InputError, match=r"is not a regular file .*: give a file"):
            fileio.check_output(output, folder=folder)
    with pytest.raises(InputError, match=r"^-: gyrodeblur does not write to standard output"):
        fileio.check_output("-", folder=folder)
    assert (tmp_path / "pipe").is_fifo() and (tmp_path / "stdout").is_symlink()
    assert Path(os.devnull).is_char_device()


def test_a_broken_link_is_no_output_folder(tmp_path):
    (tmp_path / "pictures").symlink_to(tmp_path / "link")
    (tmp_path / "link").symlink_to(tmp_path / "gone")  # named at the end of the chain
    with pytest.raises(InputError, match=r"pictures: is a link to .*gone, which does not exist"):
        fileio.check_output(tmp_path / "pictures", folder=True)
    (tmp_path / "gone").mkdir()
    fileio.check_output(tmp_path / "pictures", folder=True)


def test_an_output_that_cannot_be_created_is_named_not_its_temporary_file(tmp_path):
    (tmp_path / "file").write_text("a file, not a folder")
    with pytest.raises(InputError, match=r"file/out\.png: cannot be written"):
        with fileio.atomic_path(tmp_path / "file" / "out.png"):
            pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_an_existing_output_folder_must_itself_be_writable(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    real = fileio.os.access
    monkeypatch.setattr(fileio.os, "access", lambda p, mode: Path(p) != out and real(p, mode))
    with pytest.raises(InputError, match=r"out: cannot be written: .*out is not writable"):
        fileio.check_output(out, folder=True)
    fileio.check_output(tmp_path / "beside", folder=True)


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="no /proc")
def test_an_output_where_no_file_can_be_made_is_refused_before_any_work(tmp_path):
    # Root passes os.access there: the file system itself refuses.
    with pytest.raises(InputError, match=r"^/proc/out\.json: cannot be written"):
        fileio.check_output("/proc/out.json")
    fileio.check_output(tmp_path / "out.json")
    assert list(tmp_path.iterdir()) == []  # the probe leaves nothing


def test_a_full_disk_is_named_after_the_output_and_leaves_no_folders(tmp_path, monkeypatch):
    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr(fileio.shutil, "disk_usage", lambda p: Usage(1 << 30, 1 << 30, 0))
    target = tmp_path / "new" / "deeper" / "k.npz"

    def numpy_on_a_full_disk(*args, **kwargs):
        raise OSError("2332800 requested and 524256 written")  # numpy's words, no errno

    monkeypatch.setattr(fileio.np, "save", numpy_on_a_full_disk)
    with pytest.raises(OSError, match=r"No space left on device: .*deeper/k\.npz"):
        with NpzWriter(target) as npz:
            npz.put("meta", np.array("{}"))
    with pytest.raises(OSError, match=r"No space left on device: .*deeper/o\.png"):
        with fileio.atomic_path(tmp_path / "new" / "deeper" / "o.png") as tmp:
            numpy_on_a_full_disk(tmp)
    assert list(tmp_path.iterdir()) == []
    # Another output written meanwhile keeps its own name (synth image's kernels).
    with pytest.raises(OSError, match=r"No space left on device: .*deeper/k\.npz'$"):
        with fileio.atomic_path(tmp_path / "new" / "deeper" / "o.png"):
            with NpzWriter(target) as npz:
                npz.put("meta", np.array("{}"))
    assert list(tmp_path.iterdir()) == []
    # An error of the work itself, not of the disk, is left as it is.
    monkeypatch.setattr(fileio.shutil, "disk_usage", lambda p: Usage(1 << 30, 0, 1 << 30))
    with pytest.raises(OSError, match="not the disk"):
        with fileio.atomic_path(tmp_path / "new" / "o.png"):
            raise OSError("not the disk")
    assert list(tmp_path.iterdir()) == []


WRITER = """
import os, signal, sys
import numpy as np
from gyrodeblur.fileio import NpzWriter, atomic_path
with atomic_path(sys.argv[1] + "/o.png") as tmp, NpzWriter(sys.argv[1] + "/k.npz") as npz:
    tmp.write_text("half")
    (tmp.parent / ".tmpAbC123").write_text("a library's own temporary, beside its file")
    npz.array("rot", (1000,), np.float32)
    print("writing", flush=True)
    if sys.argv[2] == "killed":
        os.kill(os.getpid(), signal.SIGKILL)
    sys.stdin.readline()  # a run still writing, until told
"""


def test_the_next_write_removes_what_a_killed_run_left_and_nothing_else(tmp_path):
    killed = subprocess.run([sys.executable, "-c", WRITER, str(tmp_path / "a"), "killed"],
                            capture_output=True, text=True)
    assert killed.returncode == -9 and killed.stdout == "writing\n"
    left = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert [name.split(".")[1] for name in left] == ["k", "o"]
    (tmp_path / "a" / ".k.npz.notes.txt").write_text("a file of the user's")
    running = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path / "b"), "running"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert running.stdout.readline() == "writing\n"
        held = sorted(p.name for p in (tmp_path / "b").iterdir())
        for folder in ("a", "b"):
            with fileio.atomic_path(tmp_path / folder / "o.png") as tmp, \
                    NpzWriter(tmp_path / folder / "k.npz") as npz:
                tmp.write_text("whole")
                npz.put("meta", np.array("{}"))
        assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [
            ".k.npz.notes.txt", "k.npz", "o.png"]
        # A run still writing keeps its temporaries.
        assert sorted(p.name for p in (tmp_path / "b").iterdir()) == sorted(
            [*held, "k.npz", "o.png"])
    finally:
        running.communicate("done\n")
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["k.npz", "o.png"]


def test_a_temporary_another_run_removes_before_it_is_held_is_made_anew(tmp_path, monkeypatch):
    real_hold, held = fileio._hold, []

    def held_late(fd):  # another run starts in the moment between making and holding
        if len(held) % 2 == 0:
            for target in ("o.png", "k.npz"):
                fileio.remove_orphans(tmp_path / target)
        held.append(fd)
        real_hold(fd)

    monkeypatch.setattr(fileio, "_hold", held_late)
    with fileio.atomic_path(tmp_path / "o.png") as tmp:
        tmp.write_text("whole")
    with NpzWriter(tmp_path / "k.npz") as npz:
        npz.put("meta", np.array("{}"))
    assert len(held) == 6  # the png, the npz's arrays and its zip: each made twice
    assert (tmp_path / "o.png").read_text() == "whole" and np.load(tmp_path / "k.npz")["meta"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.npz", "o.png"]


HOLDER = """
import sys
import time
from gyrodeblur.fileio import hold_folder
with hold_folder(sys.argv[1]):
    print("holding", flush=True)
    sys.stdin.readline()
"""


def test_an_output_folder_another_run_holds_is_refused_until_that_run_ends(tmp_path):
    out = tmp_path / "runs" / "a"
    other = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline() == "holding\n"
        with pytest.raises(InputError, match=r"runs/a: another run is using it"):
            with fileio.hold_folder(out):
                pass
        assert out.is_dir()  # the other's, left to it
    finally:
        other.kill()  # killed: its hold ends with it
        other.wait()
    with fileio.hold_folder(out) as held:
        assert held == out
    assert out.is_dir()  # not made by this run: kept
    with fileio.hold_folder(tmp_path / "new" / "b"):
        assert (tmp_path / "new" / "b").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]


def test_a_run_waiting_for_a_held_folder_holds_it_anew_once_its_holder_removed_it(tmp_path):
    import threading

    parts, waiting, seen = tmp_path / "c.parts", threading.Event(), []
    other = subprocess.Popen([sys.executable, "-c", HOLDER, str(parts)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    assert other.stdout.readline() == "holding\n"

    def second_run():
        with fileio.hold_folder(parts, wait=waiting.set):
            seen.append(parts.is_dir())

    thread = threading.Thread(target=second_run)
    thread.start()
    assert waiting.wait(10) and not seen
    other.communicate("done\n")  # made by the other run: removed as it lets go
    thread.join(10)
    assert seen == [True] and list(tmp_path.iterdir()) == []
    # A run never waits for itself.
    with fileio.hold_folder(parts), pytest.raises(InputError, match="this run holds it alr"):
        with fileio.hold_folder(parts, wait=waiting.set):
            pass


FORKING_HOLDER = """
import multiprocessing, sys, time
from gyrodeblur.fileio import hold_folder
with hold_folder(sys.argv[1]):
    worker = multiprocessing.get_context("fork").Process(target=time.sleep, args=(60,))
    worker.start()  # as a DataLoader's worker is, holding a copy of every descriptor
    print(worker.pid, flush=True)
    sys.stdin.readline()
"""


def test_a_hold_ends_with_its_run_killed_not_with_the_workers_it_forked(tmp_path):
    out = tmp_path / "run"
    other = subprocess.Popen([sys.executable, "-c", FORKING_HOLDER, str(out)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    worker = int(other.stdout.readline())
    try:
        other.kill()
        other.wait()
        os.kill(worker, 0)  # still alive
        # The worker lets go in its after-fork hook, which a loaded machine may run a moment
        # after its parent printed its pid; one that never let go keeps it for 60 s.
        deadline = time.monotonic() + 10
        while True:
            try:
                with fileio.hold_folder(out):
                    break
            except InputError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    finally:
        os.kill(worker, 9)


def test_a_folder_that_cannot_be_made_is_an_error_not_a_retry_without_end(tmp_path,
                                                                          monkeypatch):
    calls = []

    def no_folder_here(self, *args, **kwargs):  # as under /proc: ENOENT every time
        calls.append(self)
        if len(calls) > 1000:
            raise RuntimeError("retried without end")
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(self))

    monkeypatch.setattr(Path, "mkdir", no_folder_here)
    with pytest.raises(InputError, match="out: cannot be written: No such file or directory"):
        with fileio.hold_folder(tmp_path / "out"):
            pass


def test_a_folder_read_by_runs_is_written_by_none(tmp_path):
    clips = tmp_path / "clips"
    with pytest.raises(InputError, match="clips: not found"):
        with fileio.hold_folder(clips, reading=True):
            pass
    clips.mkdir()
    with fileio.hold_folder(clips, reading=True), fileio.hold_folder(clips, reading=True):
        with pytest.raises(InputError, match="clips: another run is using it"):
            with fileio.hold_folder(clips):
                pass
    with fileio.hold_folder(clips), pytest.raises(InputError, match="clips: another run is "
                                                                    "writing into it; wait"):
        with fileio.hold_folder(clips, reading=True):
            pass
    assert clips.is_dir()


def test_a_failed_write_is_named_after_the_output_not_its_temporary(tmp_path):
    with pytest.raises(OSError, match=r"File too large: '[^']*/o\.png'$"):
        with fileio.atomic_path(tmp_path / "o.png") as tmp:
            raise OSError(errno.EFBIG, os.strerror(errno.EFBIG), str(tmp))
    with pytest.raises(OSError, match=r"Input/output error: '[^']*/in\.mp4'$"):  # the input's
        with fileio.atomic_path(tmp_path / "o.png"):
            raise OSError(errno.EIO, os.strerror(errno.EIO), str(tmp_path / "in.mp4"))
    assert list(tmp_path.iterdir()) == []


def test_an_output_under_a_dangling_link_is_refused_before_the_work(tmp_path):
    (tmp_path / "gone").symlink_to(tmp_path / "nowhere")
    with pytest.raises(InputError, match=r"cannot be created: .*gone is a link to .*nowhere, "
                                         "which does not exist"):
        fileio.check_output(tmp_path / "gone" / "sub" / "out.png")


def test_an_output_name_too_long_for_its_temporary_is_refused_before_the_work(tmp_path):
    longest = os.pathconf(tmp_path, "PC_NAME_MAX") - 15  # .NAME.XXXXXXXX.part
    fileio.check_output(tmp_path / ("a" * (longest - 4) + ".png"))
    with fileio.atomic_path(tmp_path / ("a" * (longest - 4) + ".png")) as tmp:
        tmp.write_text("fits")
    with pytest.raises(InputError, match=rf"name too long: at most {longest} bytes here"):
        fileio.check_output(tmp_path / ("a" * (longest - 3) + ".png"))
    long_folder = tmp_path / ("d" * (longest + 5))  # an existing folder is written into
    long_folder.mkdir()
    fileio.check_output(long_folder, folder=True)


def test_a_file_system_that_names_no_longest_name_takes_255_bytes(tmp_path, monkeypatch):
    monkeypatch.delattr(os, "pathconf")  # as on Windows
    fileio.check_output(tmp_path / ("a" * 236 + ".png"))
    with pytest.raises(InputError, match="name too long: at most 240 bytes here"):
        fileio.check_output(tmp_path / ("a" * 237 + ".png"))


def test_pipes_are_refused_as_inputs_not_read_twice_or_waited_on(tmp_path):
    # A log looked at first (its format) and then read would find a pipe drained, or wait
    # forever on a named one whose writer has gone.
    from gyrodeblur.footage import Footage, read_image
    from gyrodeblur.geometry.camera import load_camera
    from gyrodeblur.geometry.gyro import read_gyro

    fifo = tmp_path / "fifo.csv"
    os.mkfifo(fifo)
    for read in (read_gyro, load_camera, Footage, read_image):
        with pytest.raises(InputError, match=r"fifo\.csv: not a file \(a pipe or a device\?\): "
                                             "save it to a file first"):
            read(fifo)
    (tmp_path / "dangling.json").symlink_to(tmp_path / "gone.json")
    for read in (load_camera, read_gyro, Footage):
        with pytest.raises(InputError, match=r"dangling\.json: a link to .*gone\.json, which "
                                             "does not exist"):
            read(tmp_path / "dangling.json")
