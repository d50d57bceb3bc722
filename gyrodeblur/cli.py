"""The ``gyrodeblur`` command line.

Bad input ends with one line ``error: FILE: problem`` on stderr, exit status 2, and no
output file (every output is written atomically).
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

from gyrodeblur.errors import InputError, Terminated
from gyrodeblur.fileio import check_output, sources_digest

if TYPE_CHECKING:  # the command modules are imported when a command runs
    from gyrodeblur.footage import Footage, FrameTiming
    from gyrodeblur.geometry.camera import Camera
    from gyrodeblur.geometry.gyro import GyroLog
    from gyrodeblur.kernels.synchronization import SyncResult
    from gyrodeblur.pipelines.evaluate import PartialReport

MAX_SAMPLES = 1000
"""Samples per exposure the options take: 1 ms apart in the longest exposure (1 s)."""
SamplesOption = Annotated[int, typer.Option(min=2, max=MAX_SAMPLES,
                                            help="Samples T per exposure.")]

# A message is one line, whatever its length; ":name:" in a path or value is no emoji.
# Messages name files and folders: no markup read in them (only "error:" is styled).
err_console = Console(stderr=True, soft_wrap=True, emoji=False, markup=False, highlight=False)

BROKEN_PIPE = 141
"""Exit status where standard output's reader left (``| head``): a shell's for SIGPIPE."""


class StdoutConsole(Console):
    """Standard output for tables, 80 columns at least: narrower, they would cut names and
    numbers (a terminal wraps them instead). Where its reader left, the command ends as
    where a ``print`` finds it gone (rich's own way exits with status 1, which ``sync``
    gives an unreliable estimate)."""

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self.width = max(self.width, 80)

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError


class OneLineUsageErrors(typer.core.TyperGroup):
    """Commands whose usage errors (an option out of range, a missing argument, an unknown
    option of ``gyrodeblur`` itself) end, as every other error does, in one line
    ``error: problem (COMMAND --help)`` and status 2."""

    def parse_args(self, ctx, args):
        # An empty value would be read as the path "." (the current folder): refused by name.
        words = [str(arg) for arg in args]  # Python callers may pass paths
        for before, arg in zip([None, *words], words, strict=False):  # each word after its own
            option = arg[:-1] if arg.startswith("--") and arg.endswith("=") else None
            if arg == "" or option:
                given = option or (before if before and before.startswith("-") else None)
                err_console.print(f"[bold red]error:[/] an empty "
                                  f"{f'value for {escape(given)}' if given else 'argument'} "
                                  "(an unset shell variable?)", highlight=False, markup=True)
                raise typer.Exit(2)
        with _usage_errors_in_one_line():
            return super().parse_args(ctx, args)

    def invoke(self, ctx):
        with _usage_errors_in_one_line():
            return super().invoke(ctx)


@contextmanager
def _usage_errors_in_one_line() -> Iterator[None]:
    from typer._click.exceptions import NoArgsIsHelpError, UsageError

    try:
        yield
    except NoArgsIsHelpError:
        raise
    except UsageError as e:
        where = f" ({e.ctx.command_path} --help)" if e.ctx is not None else ""
        err_console.print(f"[bold red]error:[/] {escape(e.format_message())}{where}",
                          highlight=False, markup=True)
        raise typer.Exit(2) from None


app = typer.Typer(help="Gyro-aided deblurring: from gyro logs to blur kernels and sharp frames.",
                  no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  cls=OneLineUsageErrors, context_settings={"help_option_names": ["-h", "--help"]})


def _print_version(asked: bool) -> None:
    if asked:
        from gyrodeblur import __version__

        typer.echo(f"gyrodeblur {__version__}")
        raise typer.Exit()


_WARNED: set[str] = set()  # the warnings a command printed


@app.callback()
def main(version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True,
        help="Print the version and exit.")] = False) -> None:
    """Gyro-aided deblurring: from gyro logs to blur kernels and sharp frames."""
    import warnings

    from gyrodeblur.heap import keep_freed_memory

    keep_freed_memory()  # every command runs nets or large arrays: 1.3-1.5x for deepgyro-s
    warnings.showwarning = _one_line_warning
    _WARNED.clear()  # each command says its own


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning as one line on stderr, as the notes are: no source file and line of ours;
    once, however many steps of the command meet its cause."""
    if str(message) not in _WARNED:
        _WARNED.add(str(message))
        err_console.print(f"warning: {message}", markup=False, highlight=False)


def _terminate(number: int, frame) -> None:
    # Once: `timeout` signals the process and then its group, and a second Terminated would
    # break off the clean-up (a DataLoader's shutdown of its workers, which then hangs).
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated


def _check_finite(options: dict) -> None:
    """Refuse an option of infinity or NaN, which click's ranges let through, before the
    work: a time, rate or size of no value."""
    for name, value in options.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise InputError(None, f"--{name.replace('_', '-')} {value}: not a finite number")


def reports_input_errors(command):
    """Turn :class:`InputError` into a one-line message and exit status 2 (an
    :class:`OSError`, such as a full disk, into one and status 1); Ctrl-C and SIGTERM end
    with a note and status 130 and 143, after the clean-up that leaves no broken output."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        on_main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _terminate) if on_main else None
        try:
            _check_finite(kwargs)
            done = command(*args, **kwargs)
            sys.stdout.flush()  # here, where a reader gone (`| head`) is caught below
            return done
        except InputError as e:
            # Escaped: file names and hints such as "gyrodeblur[onnx]" are not markup.
            err_console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False,
                              soft_wrap=True, markup=True)
            raise typer.Exit(2) from None
        except BrokenPipeError:  # stdout's reader left (`| head`): it wants no more
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(BROKEN_PIPE) from None  # quietly
        except OSError as e:  # the system refused a write: full disk, read-only, ...
            where = f"{escape(str(e.filename))}: " if e.filename else ""
            err_console.print(f"[bold red]error:[/] {where}{escape(e.strerror or str(e))}",
                              highlight=False, soft_wrap=True, markup=True)
            raise typer.Exit(1) from None
        except MemoryError as e:  # numpy says how much it could not allocate
            err_console.print(f"[bold red]error:[/] out of memory ({escape(str(e))}): a "
                              "smaller size or fewer samples would need less",
                              highlight=False, soft_wrap=True, markup=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt as e:
            # Objects torn down mid-run (a DataLoader's worker queues) may report broken pipes
            # from their __del__ as they go: noise after the note, not news.
            sys.unraisablehook = lambda unraisable: None
            note = str(e) or ("stopped before training; the run folder is as it was"
                              if command.__name__ == "train" else "no output was left "
                                                                  "half-written")
            if os.environ.get("RANK", "0") == "0":  # under torchrun every process gets it
                err_console.print(f"{'terminated' if isinstance(e, Terminated) else 'interrupted'}"
                                  f"; {note}", highlight=False, soft_wrap=True)
            raise typer.Exit(143 if isinstance(e, Terminated) else 130) from None
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)

    return wrapper


def parse_size(text: str | None) -> tuple[int, int] | None:
    """``"960x540"`` -> ``(960, 540)``."""
    if text is None:
        return None
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InputError(None, f"--size {text!r}: expected WIDTHxHEIGHT, e.g. 960x540") from None
    if w < 2 or h < 2:
        raise InputError(None, f"--size {text!r}: width and height must be at least 2")
    return w, h


def parse_vector(text: str, option: str) -> np.ndarray:
    """``"0.01,-0.002,0"`` -> a 3-vector."""
    try:
        vector = np.array([float(v) for v in text.split(",")])
    except ValueError:
        vector = np.empty(0)
    if vector.shape != (3,) or not np.isfinite(vector).all():
        raise InputError(None, f"{option} {text!r}: expected three finite numbers X,Y,Z")
    return vector


def parse_range(text: str | None) -> tuple[int | None, int | None]:
    """``"10:20"`` -> ``(10, 20)``; either side may be empty."""
    if not text:
        return None, None
    try:
        first, last = ((int(v) if v else None) for v in text.split(":"))
    except ValueError:
        raise InputError(None, f"--range {text!r}: expected FIRST:LAST, e.g. 1:10") from None
    if first is not None and last is not None and first > last:
        raise InputError(None, f"--range {text}: the first frame is after the last")
    return first, last


GYRO_HELP = ("Gyro log: CSV t,wx,wy,wz, Gyroflow .gcsv, GyroVD meta_info folder, a camera file, "
             "or another log telemetry-parser reads.")
CAMERA_HELP = ("Camera JSON, Gyroflow lens profile, or GyroVD cam_metainfo.csv (or its "
               "meta_info folder).")
GyroOption = Annotated[Path, typer.Option(help=GYRO_HELP)]
CameraOption = Annotated[Path, typer.Option(help=CAMERA_HELP)]
FramesCsvOption = Annotated[Path | None, typer.Option(
    help="Frame timing CSV: frame,t_start,exposure (s, frame clock).")]
ReadoutOption = Annotated[float | None, typer.Option(help="Override readout time (s).")]
OffsetOption = Annotated[float | None, typer.Option(
    help="Override time offset (s): t_gyro = t_frame + offset.")]
RangeOption = Annotated[str | None, typer.Option(
    "--range", help="Frames FIRST:LAST (1-based, inclusive).")]
UnitOption = Annotated[str, typer.Option(help="Gyro unit: auto, rad or deg.")]
BiasOption = Annotated[str | None, typer.Option(
    help="Remove gyro bias: 'auto' (estimated on still parts) or WX,WY,WZ in rad/s, in the "
         "log's own axes.")]
DeviceOption = Annotated[str, typer.Option(
    help="Where the network runs: cpu, or cuda / cuda:N (a GPU; kernels, optical flow and the "
         "classical method stay on the CPU).")]
SYNC_SEARCH = 0.2  # s, half-width of the time-offset search of `sync` and `deblur --sync auto`
CRF = 18  # x264's quality of `deblur video` output: visually lossless for most footage
FramesArgument = Annotated[Path, typer.Argument(
    metavar="VIDEO|FRAMES_DIR", help="Video file or folder of frames.")]
ExposureOption = Annotated[float | None, typer.Option(
    help="Exposure time (s) of every frame, for a video without --frames-csv.")]
LowpassOption = Annotated[float | None, typer.Option(help="Low-pass the gyro at HZ.")]
FlowOption = Annotated[str, typer.Option(help="Optical flow backend: dis, dis-fast, farneback.")]


IMAGE_OUTPUTS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")


def check_memory(need: int, what: str, remedy: str) -> None:
    """Refuse, before any work, a job whose data alone would take over half the memory:
    rather that than the out-of-memory killer at the end of it."""
    have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if need > have / 2:
        raise InputError(None, f"{what} would take {need / 2**30:.1f} GB of this machine's "
                               f"{have / 2**30:.0f} GB; give {remedy}")


def note_frames_alone(alone: np.ndarray) -> None:
    """Say which frames have no neighbour to measure their translation from."""
    from gyrodeblur.footage import frames_text

    if len(alone):
        err_console.print(f"no translation for {frames_text(alone)}: no neighbouring frame "
                          "with timing in the footage and the gyro (the rotation alone)")


def note_blur_beyond(frames: np.ndarray, reach: np.ndarray, camera: Camera) -> None:
    """Say which frames the gyro blurs beyond themselves (those all of a job's are refused)."""
    from gyrodeblur.footage import frames_text
    from gyrodeblur.pipelines.kernels import beyond_frame

    beyond = beyond_frame(reach, camera.width, camera.height)
    if beyond.any():
        err_console.print(f"{frames_text(frames[beyond])}: the gyro moves pixels up to "
                          f"{reach.max():.0f} px during the exposure, more than the "
                          f"{camera.width}x{camera.height} frame: nothing of them is left to "
                          "restore")


def check_exposure(exposure: float) -> None:
    """Refuse an ``--exposure`` that is no frame's in seconds (a unit error, mostly)."""
    from gyrodeblur.footage import MAX_EXPOSURE

    if not (math.isfinite(exposure) and 0 < exposure <= MAX_EXPOSURE):
        raise InputError(None, f"--exposure {exposure:g}: seconds, more than 0, at most "
                               f"{MAX_EXPOSURE:g} (is it in ms?)")


def check_flow(flow: str) -> None:
    """Refuse a ``--flow`` backend that does not exist."""
    from gyrodeblur.kernels.flow import check_flow_name

    try:
        check_flow_name(flow)
    except ValueError as e:
        raise InputError(None, f"--{e}") from None


def unit_read(gyro_unit: str) -> str:
    """The unit a ``--gyro-unit`` reads, as recorded: "auto" reads only rad/s (it refuses
    deg/s-looking data)."""
    return "rad" if gyro_unit == "auto" else gyro_unit


#: rad/s: a gyro that never turns faster (99th percentile) is on a tripod, or a log in rad/s
#: read as deg/s.
SLOWEST_HANDHELD = 0.02


def load_motion(gyro: Path, camera: Path, gyro_unit: str = "auto", bias: str | None = None,
                lowpass: float | None = None, readout_time: float | None = None,
                time_offset: float | None = None, size: tuple[int, int] | None = None,
                fps: float | None = None) -> tuple[GyroLog, Camera, list[float] | None]:
    """The gyro log and the camera (completed from the gyro file, overrides applied), and the
    bias removed (rad/s; an estimate is said, to be given again as ``--bias``); a Gyroflow
    profile's mode of the footage's ``size`` and ``fps`` when it lists modes."""
    from gyrodeblur.geometry.camera import load_camera
    from gyrodeblur.geometry.gyro import estimate_bias, read_gyro, remove_bias
    from gyrodeblur.geometry.gyro import lowpass as lowpass_log
    from gyrodeblur.kernels.rotation import complete_camera

    if gyro_unit not in ("auto", "rad", "deg"):
        raise InputError(None, f"--gyro-unit {gyro_unit!r}: choose auto, rad or deg")
    log = read_gyro(gyro, unit=gyro_unit)
    if gyro_unit == "deg":
        fastest = float(np.percentile(np.linalg.norm(log.w, axis=1), 99))
        if fastest < SLOWEST_HANDHELD:
            err_console.print(f"{gyro.name} read in deg/s (--gyro-unit deg) turns at most "
                              f"{math.degrees(fastest):.2g} deg/s (99th percentile): if it is "
                              "in rad/s, leave --gyro-unit auto")
    removed = None
    if bias:
        removed = estimate_bias(log) if bias == "auto" else parse_vector(bias, "--bias")
        log = remove_bias(log, removed)
        removed = [float(v) for v in removed]
        if bias == "auto":
            err_console.print(f"gyro bias estimated on the still parts of {gyro.name}: "
                              f"--bias {','.join(f'{v:.6g}' for v in removed)} (rad/s)")
    if lowpass is not None:
        log = lowpass_log(log, lowpass)
    cam = complete_camera(load_camera(camera, mode_size=size, mode_fps=fps), log)
    if readout_time is not None:  # it replaces the gcsv's too, a global shutter's 0 included
        log = replace(log, readout_time=None)
    for option, name, value in (("--readout-time", "readout_time", readout_time),
                                ("--time-offset", "time_offset", time_offset)):
        if value is not None:
            try:
                cam = cam.replace(**{name: value})
            except InputError as e:
                raise InputError(option, e.problem) from None
    return log, cam, removed


def fit_camera(cam: Camera, source: Path, width: int, height: int,
               asked: bool = False) -> Camera:
    """``cam`` rescaled to ``width x height``; a size of another aspect ratio names the file,
    and footage a few pixels off the calibration's size (not ``asked`` for with ``--size``) is
    noted: more likely cropped or padded than scaled."""
    try:
        fitted = cam.rescaled(width, height)
    except InputError as e:
        raise InputError(source, f"mismatched sizes: {e.problem}") from None
    if not asked and (width, height) != (cam.width, cam.height) and \
            max(abs(width / cam.width - 1), abs(height / cam.height - 1)) < 0.02:
        err_console.print(f"{source} is for {cam.width}x{cam.height}, the footage "
                          f"{width}x{height}: taken as the same view scaled (frames cropped "
                          "or padded need a camera of their own)")
    return fitted


def fit_wanted_size(cam: Camera, source: Path, wanted: tuple[int, int],
                    footage: Footage | None) -> Camera:
    """``cam`` rescaled to ``--size``, which is of the frames as stored: a size of a turned
    video's picture as shown is named so."""
    from gyrodeblur.geometry.camera import same_view

    width, height = wanted
    if footage is not None and footage.rotation % 180 == 90 \
            and not same_view(width, height, *footage.size) \
            and same_view(height, width, *footage.size):
        raise InputError(None, f"--size {width}x{height}: sizes are of the frames as stored "
                               f"({footage.size[0]}x{footage.size[1]}, shown turned "
                               f"{footage.rotation} degrees): give {height}x{width}")
    if not same_view(width, height, cam.width, cam.height):
        view = "footage" if footage is not None else f"camera of {source}"
        raise InputError(None, f"--size {width}x{height}: another aspect ratio than the "
                               f"{view} ({cam.width}x{cam.height}), which it resizes; give "
                               f"e.g. {width}x{max(round(width * cam.height / cam.width), 1)}")
    return fit_camera(cam, source, width, height, asked=True)


def load_timing(footage: Footage | None, frames_csv: Path | None, exposure: float | None,
                cam: Camera, camera: Path, readout_time: float | None = None,
                log: GyroLog | None = None) -> FrameTiming:
    """Frame timing from ``--frames-csv``, the footage itself (GyroVD), or a video's
    timestamps and ``--exposure``; its exposure and the camera's readout checked for units
    (a readout that is wrong blamed on where it came from: ``--readout-time``, the camera
    file, or the gyro ``log``'s gcsv header)."""
    from gyrodeblur.footage import check_timing_units, read_frames_csv, video_timing

    if frames_csv is not None and exposure is not None:
        raise InputError(None, "--exposure is for a video without --frames-csv (the CSV has "
                               "each frame's exposure)")
    if exposure is not None:
        check_exposure(exposure)
    if frames_csv is not None:
        timing = read_frames_csv(frames_csv)
    elif footage is not None and footage.timing is not None:
        if exposure is not None:
            raise InputError(None, "--exposure is for a video without --frames-csv (the names "
                                   f"of {footage.path}'s frames give their exposures)")
        timing = footage.timing
    elif footage is not None and exposure is not None and footage.path.is_file():
        timing = video_timing(footage.path, exposure)
    else:
        video = footage is not None and footage.path.is_file()
        raise InputError(None if footage is None else footage.path,
                         "no frame timing: give --frames-csv" +
                         (" or --exposure" if video else
                          " (--exposure times a video's frames by its timestamps; a folder of "
                          "frames has none)" if exposure is not None else ""))
    source, hint = (camera if readout_time is None else "--readout-time"), "is it in seconds?"
    if readout_time is None:
        from gyrodeblur.geometry.camera import is_gyroflow_profile, load_camera

        mode = {"mode_size": footage.size, "mode_fps": footage.fps} \
            if footage is not None else {}
        if log is not None and log.readout_time and \
                load_camera(camera, **mode).readout_time == 0:
            source, hint = log.source, "its frame_readout_time is in ms"  # the gcsv header's
        elif camera.is_file() and is_gyroflow_profile(camera):
            hint = "is the lens profile for this video mode? (frame_readout_time, ms)"
    check_timing_units(timing, cam.readout_time, source, hint)
    if frames_csv is not None and footage is not None and footage.fps and len(timing) > 1:
        interval = timing.interval()
        if interval * footage.fps > 300:  # ms read as s: 1000 times the video's interval
            err_console.print(f"note: {frames_csv}: its frames are {interval:.4g} s apart, the "
                              f"video's {1 / footage.fps:.4g} s ({footage.fps:.4g} fps): is "
                              "t_start in ms? (right for a timelapse)")
    return timing


def select_frames(timing: FrameTiming, footage: Footage | None, frame_range: str | None
                  ) -> FrameTiming:
    """The frames of ``--range`` in ``timing``, checked against the footage's length, with or
    without a range (frames after the last that ``timing`` gives are noted: a stray image in
    a folder shifts them, as are those it skips)."""
    from gyrodeblur.footage import frames_text

    first, last = parse_range(frame_range)
    count = footage.count if footage is not None else int(timing.frame[-1])
    if (first is not None and first < 1) or (last is not None and last > count):
        raise InputError(None, f"--range {frame_range}: " + (
            f"the frames are numbered 1..{count}" if footage is not None else
            f"{timing.source} times {frames_text(timing.frame)}"))
    selected = timing.select(first, last)
    if footage is not None and selected.frame[-1] > footage.count:
        raise InputError(timing.source, f"times for frame {selected.frame[-1]} but the "
                                        f"footage has {footage.count} frames" +
                         (" (is the video cut short?)" if footage.path.is_file() else ""))
    if footage is not None and timing.frame[-1] > footage.count:  # a --range short of it
        err_console.print(f"{timing.source} times frames up to {timing.frame[-1]}, the footage "
                          f"has {footage.count}: its frames are numbered by their place in it "
                          "(frames copied out of a longer clip would each get another's times)")
    skipped = np.setdiff1d(np.arange(selected.frame[0], selected.frame[-1] + 1), selected.frame)
    if footage is not None and len(skipped):
        err_console.print(f"{timing.source} has no row for {frames_text(skipped)} of the "
                          "footage: left out")
    if footage is not None and timing.frame[-1] < footage.count:
        left = footage.count - int(timing.frame[-1])
        err_console.print(f"{timing.source} times frames up to {timing.frame[-1]}, "
                          f"the footage has {footage.count}: {left} frame{'s' * (left > 1)} "
                          "after it left out (a stray image in a frame folder would shift the "
                          "frames after it)")
    return selected


def bar_steps(bar: Progress, description: str) -> Callable[[int, int], None]:
    """A task of ``bar`` and its ``(done, total)`` callback, for loops that know their length
    only once they run."""
    task = bar.add_task(description, total=None)
    return lambda done, total: bar.update(task, completed=done, total=total)


_CENTURY_S = 100 * 365.25 * 86400  # timedelta takes up to a million years only


class LoggedProgress(Progress):
    """Rich progress bars that, where stderr is not a terminal (``nohup``, a batch job's log
    file), print one plain line per task every ``LOG_EVERY_S`` seconds and when it ends: a
    redrawn bar never reaches a log, also where FORCE_COLOR asks rich for colour there."""

    LOG_EVERY_S = 60.0

    def __init__(self) -> None:
        super().__init__(TextColumn("{task.description}", markup=False), BarColumn(),
                         MofNCompleteColumn(), TimeRemainingColumn(), console=err_console,
                         transient=False, disable=not sys.stderr.isatty())
        self._logged: dict[TaskID, float] = {}

    def update(self, task_id: TaskID, **changes) -> None:
        super().update(task_id, **changes)
        if not self.disable:
            return
        task = next(t for t in self.tasks if t.id == task_id)
        now = time.monotonic()
        if not task.visible or task.total is None or self._logged.get(task_id) == math.inf:
            return
        if task.finished:
            self._logged[task_id] = math.inf  # its last line
        elif now - self._logged.get(task_id, -math.inf) >= self.LOG_EVERY_S:
            self._logged[task_id] = now
        else:
            return
        left = task.time_remaining
        self.console.print(
            f"{task.description}: {task.completed:.0f}/{task.total:.0f} "
            f"({task.percentage:.0f}%), {timedelta(seconds=round(task.elapsed or 0))} elapsed"
            + ("" if task.finished or left is None
               else f", {timedelta(seconds=round(left))} left" if left < _CENTURY_S
               else ", centuries left"), highlight=False, markup=False)


@app.command()
@reports_input_errors
def kernels(
    frames: Annotated[Path | None, typer.Argument(
        metavar="VIDEO|FRAMES_DIR", help="Video file or folder of images (optional with "
                                          "--no-translation: then at the camera's size or "
                                          "--size).")] = None,
    gyro: GyroOption = ...,
    camera: CameraOption = ...,
    frames_csv: FramesCsvOption = None,
    exposure: ExposureOption = None,
    samples: SamplesOption = 9,
    translation: Annotated[bool, typer.Option(
        help="Add translation from optical flow minus gyro rotation.")] = True,
    size: Annotated[str | None, typer.Option(help="Compute at WxH (camera K rescaled).")] = None,
    readout_time: ReadoutOption = None,
    time_offset: OffsetOption = None,
    frame_range: RangeOption = None,
    gyro_unit: UnitOption = "auto",
    bias: BiasOption = None,
    lowpass: LowpassOption = None,
    flow: FlowOption = "dis",
    output: Annotated[Path, typer.Option("--output", "-o", help="Output .npz.")] = ...,
    plot: Annotated[Path | None, typer.Option(help="Folder for kernel pictures (PNG).")] = None,
) -> None:
    """Per-pixel blur kernels from the gyro (and optical flow).

    Every frame's rotation trajectories from the gyro and, with frames, translation measured as
    optical flow minus the gyro's rotation; written to one npz."""
    from gyrodeblur.footage import Footage
    from gyrodeblur.pipelines.kernels import KernelJob, compute_kernels

    check_flow(flow)
    check_output(output, source=(frames, gyro, camera, frames_csv))
    if output.suffix.lower() != ".npz":
        raise InputError(output, "kernels are written as an .npz file")
    if plot is not None:  # not the frames' folder: its pictures would become frames
        check_output(plot, folder=True, source=frames)
        if plot.resolve() == output.resolve():
            raise InputError(plot, "is the -o file too; give the pictures a folder of their own")
    wanted_size = parse_size(size)
    footage = Footage(frames) if frames is not None else None
    if footage is None and translation:
        raise InputError(None, "without FRAMES give --no-translation (translation is measured "
                               "on the frames)")
    log, cam, bias_removed = load_motion(
        gyro, camera, gyro_unit, bias, lowpass, readout_time, time_offset,
        footage.size if footage is not None else wanted_size,
        footage.fps if footage is not None else None)
    if footage is not None:
        cam = fit_camera(cam, camera, *footage.size)  # calibration -> footage resolution
    if wanted_size is not None:
        cam = fit_wanted_size(cam, camera, wanted_size, footage)
    timing = load_timing(footage, frames_csv, exposure, cam, camera, readout_time, log)
    selected = select_frames(timing, footage, frame_range)
    job = KernelJob(camera=cam, log=log, timing=timing, frames=selected.frame, samples=samples,
                    footage=footage, translation=translation, flow=flow,
                    settings={"size": [cam.width, cam.height],
                              "gyro_unit": unit_read(gyro_unit),
                              "bias_removed": bias_removed, "lowpass_hz": lowpass,
                              "footage": None if frames is None else str(frames)})
    job.check()
    note_frames_alone(job.without_neighbours())
    note_blur_beyond(job.frames, job.reach, job.camera)
    pixels = cam.width * cam.height
    # A frame's kernels and their intermediates (float64 trajectories, rays, flow), as
    # measured at T = 300 and 1000: 16 bytes a pixel and sample, 40 with translation.
    check_memory(int(pixels * (samples * (40 if translation else 16) + 30 * (1 + translation))),
                 f"computing the kernels of a {cam.width}x{cam.height} frame (T={samples})",
                 "a smaller --size or fewer --samples")
    note_pixels_without_ray(cam)
    size_bytes = len(selected) * (samples * 2 * pixels * 4 * (1 + translation) + pixels
                                  + samples * cam.height * 8)
    if size_bytes > LARGE_KERNELS:  # seldom meant: said before the work
        err_console.print(f"the kernels of {len(selected)} frames at {cam.width}x{cam.height} "
                          f"take {size_bytes / 1e9:.3g} GB" + (
                              "; --size WxH computes them smaller" if size is None else ""))
    with LoggedProgress() as bar:
        task = bar.add_task("kernels", total=len(selected))
        compute_kernels(job, output, plot, progress=lambda n: bar.update(task, completed=n))
    err_console.print(f"wrote {output} ({len(selected)} frame{'s' * (len(selected) != 1)}, "
                      f"{cam.width}x{cam.height}, T={samples})"
                      + (f" and pictures in {plot}/" if plot else ""))


LARGE_KERNELS = 1e9
"""bytes: kernels files beyond this are announced with their size."""


def note_pixels_without_ray(cam: Camera) -> None:
    """Say how much of the frame has no ray through the lens model: NaN kernels there."""
    no_ray = float(np.isnan(cam.pixel_rays()[..., 0]).mean())
    if no_ray:
        err_console.print(f"{no_ray:.1%} of the pixels have no ray through the lens model (a "
                          "fisheye beyond 180 degrees, a distortion that folds back): their "
                          "kernels are NaN and they are taken as unblurred")


def searched(result: SyncResult) -> str:
    """The offsets a synchronisation searched, in words."""
    return f"{result.offsets[0]:.3f} to {result.offsets[-1]:.3f} s"


def note_global_shutter(camera: Path, readout_time: float | None, remedy: str) -> None:
    """Say that an offset synchronised without a readout time may be half a readout off."""
    said = "--readout-time 0" if readout_time is not None else \
        f"{camera.name} has no readout time"
    err_console.print(f"note: {said} (a global shutter): under a rolling shutter the offset "
                      f"comes out off by up to half the readout; {remedy} estimates it")


def note_narrowed_search(result: SyncResult, search: float, log: GyroLog) -> None:
    """Say when sync searched less than asked, the gyro covering too few frames that far."""
    if result.search < search:
        err_console.print(f"searched offsets {searched(result)} only: the gyro ({log.t[0]:.3f} "
                          f"to {log.t[-1]:.3f} s) covers too few frame pairs over +-{search:g} "
                          "s around the time offset (the camera's, or --time-offset)")


#: Median rotation between frames (px at sync's --width) under which the doubt is the motion.
LITTLE_MOTION_PX = 0.5


def sync_doubt(result: SyncResult, asked: float, option: str = "--search") -> str:
    """Why a synchronisation is not reliable, in words; ``asked``: the search half-width
    asked for with ``option``."""
    from gyrodeblur.kernels.synchronization import FULL_SUPPORT_PAIRS

    doubts = []
    turns = f"the gyro turns the camera {result.gain:.3g} times as far as the video shows"
    if math.isinf(result.gain):  # whatever the offset: the search edge says nothing then
        doubts.append("the video shows no rotation where the gyro turns (a still video, or "
                      "another recording's gyro?)")
    elif result.motion_px < LITTLE_MOTION_PX:  # the shares and gains below are noise then
        doubts.append(f"the video turns {result.motion_px:.2g} px between frames (median, at "
                      f"the --width of the flow): too little motion to time it by; a livelier "
                      "stretch of the clip (--range) or a longer one")
    elif result.at_search_edge and result.search < asked:
        doubts.append(f"the best offset lies at the edge of the search, narrowed to "
                      f"{searched(result)} by the gyro's span: set a rough --time-offset, or "
                      "leave out the frames at the gyro's ends with --range")
    elif result.at_search_edge:
        # The shares and gains below are those of a wrong offset then: not worth saying.
        doubts.append(f"the best offset lies at the edge of the search ({searched(result)}, "
                      f"+-{result.search:.3g} s around the time offset): widen "
                      f"{option} or set a closer --time-offset (wrong axes, imu_to_camera or "
                      "a .gcsv's orientation, also end there)")
    elif result.gain > 10:
        doubts.append(f"{turns} (a log in degrees read as radians: --gyro-unit deg; a wrong "
                      "gscale?)")
    elif result.gain > 1.5:
        doubts.append(f"{turns} (a still video, a wrong gscale, or an offset beyond the "
                      f"searched {searched(result)}?)")
    elif result.gain < 2 / 3 and result.explained >= result.gain - 0.25:
        # A gyro scaled by g < 1 alone still explains about g of the video's rotation; far
        # less is a wrong offset's (or wrong axes') doing, below.
        doubts.append(f"{turns} (a wrong gscale, wrong axes: imu_to_camera or a .gcsv's "
                      "orientation, motion in the video that is not the camera's, or an "
                      f"offset beyond the searched {searched(result)}?)")
    elif result.explained < 0.5:
        doubts.append(f"the gyro explains {result.explained:.0%} of the video's rotation (an "
                      f"offset beyond the searched {searched(result)}: set a rough "
                      "--time-offset; a still video, another recording's gyro, or wrong axes: "
                      "imu_to_camera or a .gcsv's orientation?)")
    elif result.explained < 0.9:
        # As far as the video turns, but not the same way: the axes or the frames' times.
        doubts.append(f"the gyro turns the camera as far as the video shows but explains only "
                      f"{result.explained:.0%} of its rotation (wrong axes: imu_to_camera or a "
                      ".gcsv's orientation; frame times: dropped frames need --frames-csv; or "
                      f"an offset beyond the searched {searched(result)})")
    elif result.drift:  # the doubts above explain halves apart too, and more closely
        doubts.append(f"the clip's halves sync {result.drift * 1e3:.0f} ms apart (frames "
                      "dropped from a video timed by its frame rate, or a variable rate: give "
                      "--frames-csv with the frames' own times)")
    if result.pairs_used < FULL_SUPPORT_PAIRS:
        doubts.append(f"only {result.pairs_used} frame pairs ({FULL_SUPPORT_PAIRS} for full "
                      f"confidence: a longer clip, or a narrower {option} where the gyro "
                      "barely covers the frames)")
    if result.search < asked and not (result.at_search_edge or math.isinf(result.gain)):
        # Whatever else looks wrong may be the wrong offset's doing.
        doubts.append(f"the offset may lie beyond the search, narrowed to {searched(result)} "
                      "by the gyro's span: set a rough --time-offset, or leave out the frames "
                      "at the gyro's ends with --range")
    return "; ".join(doubts) or ("too little or ambiguous motion, or the offset lies outside "
                                 f"{option}")


@app.command()
@reports_input_errors
def sync(
    frames: FramesArgument,
    gyro: GyroOption = ...,
    camera: CameraOption = ...,
    frames_csv: FramesCsvOption = None,
    exposure: ExposureOption = None,
    search: Annotated[float, typer.Option(
        min=0.001, help="Search +-S seconds around the camera's time offset (the gyro must "
                        "cover every frame pair used at all searched offsets; narrowed where "
                        "it covers too few).")] = SYNC_SEARCH,
    readout: Annotated[bool, typer.Option(
        help="Also estimate the rolling-shutter readout time and direction.")] = False,
    readout_time: ReadoutOption = None,
    time_offset: Annotated[float | None, typer.Option(
        help="Centre of the search instead of the camera's time offset (s).")] = None,
    frame_range: RangeOption = None,
    gyro_unit: UnitOption = "auto",
    max_pairs: Annotated[int, typer.Option(
        min=3, help="At most this many frame pairs, evenly spread.")] = 60,
    width: Annotated[int, typer.Option(min=64, help="Processing width (px).")] = 480,
    json_output: Annotated[bool, typer.Option(
        "--json", help='Print one JSON object: {"time_offset": s, "confidence": c, "pairs": n, '
                       '"explained": share of the video\'s rotation the gyro explains, '
                       '"gain": how far the gyro turns for each unit the video turns (null for a '
                       'still video), "search": the half-width searched (s; narrower than '
                       '--search where the gyro covers too few frames), '
                       '"searched": [first, last offset searched], "reliable": bool, and '
                       'when not reliable "doubt": why}, and "readout_time": s and '
                       '"readout_direction" with --readout.')] = False,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Write the camera JSON with the estimated offset (and readout "
                               "time), for `kernels` and `deblur`; only when reliable.")] = None,
) -> None:
    """Estimate the camera's time offset from the video's motion.

    Matches the video's optical-flow rotation with the gyro's; the offset is
    t_gyro = t_frame + offset. The confidence is in [0, 1]; below 0.3 (too little or
    ambiguous motion, or the offset outside --search) the estimate is not reliable and the
    exit status is 1."""
    import json

    from gyrodeblur.footage import Footage
    from gyrodeblur.geometry.camera import save_camera
    from gyrodeblur.kernels.synchronization import MIN_PAIRS, estimate_sync

    if output is not None:
        check_output(output, source=(frames, gyro, camera, frames_csv))
        if output.suffix.lower() != ".json":
            raise InputError(output, "the camera is written as a .json file")
    footage = Footage(frames)
    log, cam, _ = load_motion(gyro, camera, gyro_unit, readout_time=readout_time,
                              time_offset=time_offset, size=footage.size, fps=footage.fps)
    cam = fit_camera(cam, camera, *footage.size)
    timing = select_frames(load_timing(footage, frames_csv, exposure, cam, camera, readout_time,
                                       log), footage, frame_range)
    pairs = int(np.count_nonzero(np.diff(timing.frame) == 1))
    if frame_range is not None and pairs < MIN_PAIRS:
        raise InputError(None, f"--range {frame_range}: {len(timing)} frame(s) with {pairs} "
                               f"consecutive pair(s); synchronisation needs {MIN_PAIRS} pairs: "
                               "widen the range")
    with err_console.status("synchronising"):
        result = estimate_sync(footage.frames, timing, log, cam, search=search,
                               estimate_readout=readout, max_pairs=max_pairs, width=width)
    note_narrowed_search(result, search, log)
    if not readout and cam.readout_time == 0:
        note_global_shutter(camera, readout_time, "--readout")
    if output is not None and result.reliable:  # first: a closed stdout must not lose it
        found = {"time_offset": result.time_offset}
        if result.readout_time is not None:
            found["readout_time"] = result.readout_time
            found["readout_direction"] = result.readout_direction
        save_camera(cam.replace(**found), output)
    if json_output:
        out = {"time_offset": result.time_offset, "confidence": result.confidence,
               "pairs": result.pairs_used, "explained": result.explained,
               "gain": result.gain if math.isfinite(result.gain) else None,
               "search": result.search,
               "searched": [float(result.offsets[0]), float(result.offsets[-1])],
               "reliable": result.reliable}
        if not result.reliable:
            out["doubt"] = sync_doubt(result, search)
        if result.readout_time is not None:
            out["readout_time"] = result.readout_time
            out["readout_direction"] = result.readout_direction
        print(json.dumps(out))
    else:
        line = f"time_offset {result.time_offset:.6f} s, confidence {result.confidence:.2f}"
        if result.readout_time is not None:
            line += (f", readout_time {result.readout_time:.6f} s "
                     f"{result.readout_direction}")
        print(line + f" ({result.pairs_used} frame pairs, the gyro explains "
                     f"{result.explained:.0%} of the video's rotation)")
    # A global shutter's camera (readout 0) says no direction to differ from.
    if result.readout_direction not in (None, cam.readout_direction) and cam.readout_time > 0:
        from gyrodeblur.geometry.camera import load_camera

        told = camera.name  # or the gcsv header, where the camera file has no readout
        if log.readout_time and load_camera(camera, mode_size=footage.size,
                                            mode_fps=footage.fps).readout_time == 0:
            told = f"{Path(log.source).name}'s header"
        err_console.print(f"the rows are read {result.readout_direction.replace('_', ' ')}, "
                          f"not {cam.readout_direction.replace('_', ' ')} as {told} says")
    if not result.reliable:
        err_console.print(f"low confidence: {sync_doubt(result, search)}; not reliable"
                          + ", nothing written" * bool(output))
        if footage.rotation:
            err_console.print(f"note: {frames.name} is shown turned {footage.rotation} degrees: "
                              "imu_to_camera takes the gyro to the axes of its frames as "
                              "stored, a quarter or half turn from the upright ones")
        raise typer.Exit(1)
    if output is not None:
        err_console.print(f"wrote {output}")


synth_app = typer.Typer(help="Blurred images and clips with their kernels, from real motion.",
                        no_args_is_help=True)
app.add_typer(synth_app, name="synth")


@synth_app.command("image")
@reports_input_errors
def synth_image(
    image: Annotated[Path, typer.Argument(
        metavar="IMAGE", help="Sharp image (PNG, JPEG, TIFF...).")],
    gyro: Annotated[Path, typer.Option(help="Gyro log (as for `kernels`).")] = ...,
    camera: Annotated[Path, typer.Option(help="Camera file (as for `kernels`).")] = ...,
    start: Annotated[float, typer.Option(help="Exposure start of the first-read row (s, frame "
                                              "clock: a frames CSV's t_start).")] = ...,
    exposure: Annotated[float, typer.Option(min=1e-6, help="Exposure time (s).")] = ...,
    samples: SamplesOption = 9,
    noise: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="Noise level: its standard deviation at linear mid grey "
                               "(0.18), on [0, 1] (0: none).")] = 0.0,
    saturation: Annotated[float | None, typer.Option(
        min=1.0, max=1000.0,
        help="Highlight gain: clipped lights streak (off by default).")] = None,
    jpeg: Annotated[int | None, typer.Option(
        min=1, max=100, help="JPEG quality of a camera-like compression after the noise (off "
                             "by default).")] = None,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the noise.")] = 0,
    gyro_unit: Annotated[str, typer.Option(help="auto, rad or deg.")] = "auto",
    output: Annotated[Path, typer.Option("--output", "-o", help="Blurred image.")] = ...,
    kernels: Annotated[Path | None, typer.Option(
        help="Also write the true kernels to this .npz (format of `kernels`).")] = None,
) -> None:
    """Blur one sharp image along the camera rotation a gyro log recorded."""
    from gyrodeblur.footage import read_image_and_format, turns_upright
    from gyrodeblur.geometry.camera import load_camera
    from gyrodeblur.geometry.gyro import read_gyro
    from gyrodeblur.kernels.rotation import complete_camera
    from gyrodeblur.pipelines.synth import synth_image as run

    if output.suffix.lower() not in IMAGE_OUTPUTS:
        raise InputError(output, "output must be an image file (.png, .jpg, .tif...)")
    if not math.isfinite(start):
        raise InputError(None, f"--start {start} is not a time")
    check_exposure(exposure)
    if kernels is not None and kernels.suffix.lower() != ".npz":
        raise InputError(kernels, "kernels are written as an .npz file")
    for path in (output, kernels):
        if path is not None:
            check_output(path, source=(image, gyro, camera))
    sharp, stored = read_image_and_format(image)
    if turns_upright(output, stored):
        raise InputError(output, f"{output.suffix} holds no EXIF orientation: the blurred image "
                                 f"would be turned upright, off the grid of {image} as stored "
                                 "and of its kernels; write .png or .jpg")
    log = read_gyro(gyro, unit=gyro_unit)
    size = sharp.shape[1], sharp.shape[0]
    cam = complete_camera(load_camera(camera, mode_size=size), log)
    try:
        cam = fit_camera(cam, camera, *size)
    except InputError:  # another view: any sharp image will do as the scene, cropped to it
        crop = (min(size[0], round(size[1] * cam.width / cam.height)),
                min(size[1], round(size[0] * cam.height / cam.width)))
        raise InputError(image, f"mismatched sizes: the image is {size[0]}x{size[1]}, the "
                                f"camera of {camera} {cam.width}x{cam.height} (another aspect "
                                f"ratio): crop the image to {crop[0]}x{crop[1]} or give a "
                                "camera of its size") from None
    # The kernels and the blur's intermediates, as measured at T = 1000: 50 bytes a pixel
    # and sample.
    check_memory(size[0] * size[1] * (samples * 50 + 100),
                 f"blurring a {size[0]}x{size[1]} image along T={samples} samples",
                 "fewer --samples")
    note_pixels_without_ray(cam)
    run(sharp, log, cam, start, exposure, output, kernels, samples, noise, saturation, seed,
        stored, jpeg, {"gyro_unit": unit_read(gyro_unit)})
    err_console.print(f"wrote {output}" + (f" and {kernels}" if kernels else ""))


@synth_app.command("clips")
@reports_input_errors
def synth_clips(
    count: Annotated[int, typer.Option("-n", "--count", min=1, help="Number of clips.")] = ...,
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder.")] = ...,
    images: Annotated[Path | None, typer.Option(
        help="Folder of sharp images (default: embedded images).")] = None,
    seed: Annotated[int, typer.Option(min=0, help="Seed: clip i depends on (seed, i) only.")]
    = 0,
    frames: Annotated[int, typer.Option(min=1, help="Frames per clip.")] = 7,
    size: Annotated[str, typer.Option(help="Frame size WxH.")] = "320x192",
    samples: SamplesOption = 9,
    jpeg: Annotated[int | None, typer.Option(
        min=1, max=100, help="JPEG quality of every blurred frame (off by default).")] = None,
    gyro: Annotated[list[Path] | None, typer.Option(
        "--gyro", metavar="FILE",
        help="A real gyro log to draw motion from, repeatable (default: the bundled traces); "
             "about half the clips shake by the fitted hand-shake model.")]
    = None,
    gyro_unit: UnitOption = "auto",
) -> None:
    """Random blurred clips in the footage folder layout; resumes."""
    import json

    from gyrodeblur.fileio import (
        atomic_path,
        files_digest,
        hold_folder,
        holds_anything,
        read_record,
    )
    from gyrodeblur.pipelines.synth import synth_clips as run
    from gyrodeblur.synthesis.images import ImageBank
    from gyrodeblur.synthesis.motion import read_traces
    from gyrodeblur.synthesis.sampler import ClipSampler, SamplerSettings

    check_output(output, folder=True)
    width, height = parse_size(size)
    # A clip is made in memory: its sharp and blurred frames and both kernels, float32.
    check_memory(frames * width * height * 4 * (2 * 3 + 2 * 2 * samples),
                 f"--size {size}: a clip of {frames} frames and its kernels (T={samples})",
                 "a smaller --size, fewer --frames or --samples")
    settings = SamplerSettings(width=width, height=height, frames=frames, samples=samples,
                               **({} if jpeg is None else {"jpeg": (1.0, jpeg, jpeg)}))
    bank = ImageBank(images)  # checks the folder and the logs before anything is written
    if not gyro and gyro_unit != "auto":  # a unit of logs that are not given: a slip
        raise InputError(None, f"--gyro-unit {gyro_unit}: for --gyro logs (the bundled traces "
                               "are in rad/s)")
    traces = read_traces(gyro, gyro_unit) if gyro else None
    sampler = ClipSampler(bank, settings, seed, traces)
    # The images' names, sizes and times too: clip i of a resumed run must be drawn from the
    # images that clips 0..i-1 were drawn from.
    recipe = {"seed": seed, "images": None if images is None else str(images.resolve()),
              "files": None if images is None else files_digest(images, bank.files),
              "settings": repr(settings),
              "gyro": [str(g.resolve()) for g in gyro] if gyro else None,
              "gyro_unit": gyro_unit if gyro else None,
              # The files read: a GyroVD folder's gyro.csv, not what else the folder holds.
              "gyro_files": sources_digest([Path(t.source) for t in traces]) if gyro else None,
              "options": {"--frames": frames, "--size": f"{width}x{height}",
                          "--samples": samples, "--jpeg": jpeg}}
    if images is not None and output.resolve().is_relative_to(images.resolve()):
        raise InputError(output, "lies inside --images: its frames would become sharp "
                                 "sources of later clips")
    recipe_path = output / "synth.json"
    with hold_folder(output):  # the recipe is read and written by one run at a time
        if recipe_path.exists():
            before = read_record(recipe_path)
            if before is None:
                raise InputError(recipe_path, "unreadable recipe of this folder (not a JSON "
                                              "object)")
            def there(name: str, value: object) -> str:
                unset = {"--images": "(embedded)", "--jpeg": "(off)",
                         "--gyro": "(bundled)"}.get(name, "(unset)")
                if isinstance(value, list):
                    value = ", ".join(value)
                return f"{name} {unset if value is None else value} there"

            changed = [there(option, before.get(key)) for key, option in
                       (("seed", "--seed"), ("images", "--images"), ("gyro", "--gyro"),
                        ("gyro_unit", "--gyro-unit"))
                       if before.get(key) != recipe[key]
                       and (key != "gyro_unit" or before.get("gyro") == recipe["gyro"])]
            changed += [name for key, name in (("settings", "clip options"),
                                               ("files", "files in --images"),
                                               ("gyro_files", "files of --gyro"))
                        if before.get(key) != recipe[key]
                        and (key != "gyro_files" or before.get("gyro") == recipe["gyro"])]
            if "clip options" in changed and isinstance(before.get("options"), dict):
                # Same options, other settings: a folder another version or the API made.
                changed[changed.index("clip options")] = ", ".join(
                    there(name, before["options"].get(name)) for name, value in
                    recipe["options"].items() if before["options"].get(name) != value) or \
                    "sampler settings that no option sets (another version of gyrodeblur?)"
            if changed:
                raise InputError(recipe_path, f"this folder was made with other settings "
                                              f"(changed: {', '.join(changed)}); use another "
                                              "--output or the same options, images and logs "
                                              "to resume")
        elif holds_anything(output):
            raise InputError(output, "not empty and not made by `gyrodeblur synth clips` (no "
                                     "synth.json): use an empty or new folder")
        recorded = recipe_path.exists()
        try:
            with atomic_path(recipe_path) as tmp:
                tmp.write_text(json.dumps(recipe, indent=2))
            with LoggedProgress() as bar:
                task = bar.add_task("clips", total=count)
                written = run(sampler, count, output,
                              progress=lambda n: bar.update(task, completed=n))
        except BaseException:
            if not recorded and not any(output.glob("clip_*")):  # nothing of use: as it was
                recipe_path.unlink(missing_ok=True)
            raise
    beyond = len(list(output.glob("clip_*"))) - count  # of an earlier, larger -n
    err_console.print(f"{written} new clips in {output}/ ({count - written} already there"
                      + (f"; {beyond} more, beyond -n {count}, left as they are)" if beyond > 0
                         else ")"))


@app.command()
@reports_input_errors
def train(
    config: Annotated[Path, typer.Argument(
        metavar="CONFIG.yaml", help="Training config (YAML).")],
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Run folder (default: runs/NAME); a checkpoint there resumes.")]
    = None,
    stop_after: Annotated[int | None, typer.Option(
        min=1, help="Stop after this many more steps (from where it resumes), checkpointed, "
                    "to resume later.")] = None,
) -> None:
    """Train a model (resumes from the run folder's checkpoint). Use torchrun for DDP."""
    import json

    from gyrodeblur.pipelines.train import check_init, load_config, written_by_a_run
    from gyrodeblur.pipelines.train import train as run

    try:
        # train.init once the run folder is known: a run that resumes does not read it.
        cfg = load_config(config, resuming=True)
        out = output or Path("runs") / cfg.name
        if not (out / "checkpoint.pt").exists():
            check_init(cfg, config)
    except InputError:
        if os.environ.get("RANK", "0") != "0":  # under torchrun: rank 0 reports it, once
            raise typer.Exit(2) from None
        raise
    check_output(out, folder=True)
    if (out / "config.yaml").resolve() == config.resolve() and \
            not (out / "checkpoint.pt").exists() and not written_by_a_run(config):
        raise InputError(out, f"would overwrite {config.name}, the config: a run folder gets "
                              "its own config.yaml; give another --output")
    try:
        if os.environ.get("RANK", "0") != "0":  # under torchrun only rank 0 reports
            run(cfg, out, stop_after=stop_after)
            return
        with LoggedProgress() as bar:
            drawing = bar.add_task("data cache", total=None, visible=False)
            # Shown and timed from the first step on (not the data cache's drawing): a run
            # that fails to start prints only its error.
            task = bar.add_task(f"train {cfg.name}", total=cfg.train.steps, visible=False,
                                start=False)

            def show_cache(done: int, count: int) -> None:
                bar.update(drawing, completed=done, total=count, visible=True)

            def show(step: int, steps: int, loss: float) -> None:
                if not next(t for t in bar.tasks if t.id == task).started:
                    bar.start_task(task)
                bar.update(task, completed=step, description=f"train {cfg.name} L1 {loss:.4f}",
                           visible=True)

            metrics = run(cfg, out, progress=show, stop_after=stop_after,
                          cache_progress=show_cache, note=err_console.print)
    except InputError as e:
        raise e.located(config) from None  # a setting of the config
    if not metrics["finished"]:  # --stop-after
        err_console.print(f"stopped at step {metrics['steps']} (checkpointed): the same command "
                          "resumes from there")
    print(json.dumps(metrics))


@app.command("eval")
@reports_input_errors
def evaluate(
    model: Annotated[list[str], typer.Option(
        "--model", "-m", metavar="NAME",
        help="Shipped model name, weights file or training run folder, or 'classic' (the "
             "classical deconvolution; repeatable).")] = (),
    frames: Annotated[int, typer.Option(
        min=1, help="Frames per synthetic benchmark clip (1: images); with --folder, the "
                    "window each frame is restored in.")] = 1,
    count: Annotated[int | None, typer.Option(
        min=1, help="Synthetic benchmark samples (default 24).")] = None,
    size: Annotated[str | None, typer.Option(
        help="Synthetic benchmark frame size WxH (default 256x192).")] = None,
    samples: Annotated[int | None, typer.Option(
        min=2, max=MAX_SAMPLES,
        help="Kernel samples T (default: the models' own, else 9). The synthetic "
             "benchmark's blur and noise are drawn along them: compare scores of one "
             "T only.")] = None,
    images: Annotated[Path | None, typer.Option(
        help="Sharp images of the synthetic benchmark (default: embedded).")] = None,
    preset: Annotated[str | None, typer.Option(
        help="Synthetic benchmark motion: default (the default), or strong (the training "
             "distribution).")] = None,
    folder: Annotated[Path | None, typer.Option(
        help="Folder of clip folders (blurred/, sharp/, gyro.csv, frames.csv, camera.json, as "
             "`synth clips` writes them) instead of the synthetic benchmark.")] = None,
    features: Annotated[Path | None, typer.Option(
        help="Folder of Oxford sequence folders (graf/, boat/... with img1-3 and H1to2p, "
             "H1to3p): run DeepGyro's SIFT feature test too, on pairs 1-2 and 1-3 each blurred "
             "along real gyro motion (40 ms exposure, fixed seed).")] = None,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Results JSON (scores kept as they come in OUTPUT.partial: "
                               "the same command resumes a killed eval).")] = None,
    markdown: Annotated[Path | None, typer.Option(help="Results as a Markdown table.")] = None,
    device: DeviceOption = "cpu",
) -> None:
    """PSNR/SSIM of models on a benchmark; SIFT feature test.

    The blurred input is scored too; results as JSON and a Markdown table."""
    import json
    from dataclasses import asdict

    import torch

    from gyrodeblur.fileio import atomic_path, files_digest
    from gyrodeblur.metrics import SSIM_WINDOW
    from gyrodeblur.models import DeepGyro, load_model, weights_file
    from gyrodeblur.pipelines.deblur import torch_device
    from gyrodeblur.pipelines.evaluate import (
        PRESETS,
        BenchmarkSpec,
        PartialReport,
        classic_restore,
        describe_features,
        feature_settings,
        features_table,
        folder_benchmark,
        markdown_table,
        net_restore,
        oxford_pairs,
        synthetic_benchmark,
    )
    from gyrodeblur.pipelines.evaluate import (
        evaluate as run,
    )

    # Each model once, however named (a run folder, its model.safetensors, a trailing "/").
    unique: dict = {}
    for name in model:
        key = name if name == "classic" else weights_file(name).resolve()
        if key in unique:
            err_console.print(f"{name}: {unique[key]} again, scored once")
        unique.setdefault(key, name)
    model = list(unique.values())
    partial_path = output and output.with_name(output.name + ".partial")
    _check_eval_outputs(output, partial_path, markdown, (folder, features, images),
                        [weights_file(name) for name in model if name != "classic"])
    if features is not None and not features.is_dir():
        raise InputError(features, "no such folder of Oxford sequences")
    if folder is not None and not folder.is_dir():
        raise InputError(folder, "no such folder of clip folders")
    pairs = oxford_pairs(features) if features is not None else None
    device = torch_device(device)
    models = {name: load_model(name) for name in model if name != "classic"}
    for net, _ in models.values():
        net.to(device)  # in place
    flow_kernel = any(cfg.get("kernel") == "flow" for _, cfg in models.values())
    video = [name for name, (net, _) in models.items() if not isinstance(net, DeepGyro)]
    T = _eval_samples(models, video, frames, samples, device)
    if "classic" in model and samples is None and T < 9:
        err_console.print(f"classic restores with the nets' T={T} kernel samples, a coarser "
                          "path than its own 9 (deblur's): --samples 9 scores it as it deblurs")
    synthetic_only = {"--count": count, "--size": size, "--preset": preset, "--images": images}
    if folder is not None:
        given = [option for option, value in synthetic_only.items() if value is not None]
        if given:
            raise InputError(folder, f"{', '.join(given)} set the synthetic benchmark, not "
                                     "--folder's")
        if flow_kernel:
            raise InputError(folder, "flow-guided models need the synthetic benchmark")
        with LoggedProgress() as bar:
            samples, names, clips = folder_benchmark(
                folder, frames, T, progress=bar_steps(bar, "reading the folder"),
                check_memory=lambda need: check_memory(
                    need, f"--folder {folder}: its frames and their kernels",
                    "fewer or smaller clips" + (", or fewer --frames" if frames > 1 else "")))
        source = {"folder": str(folder), "frames": frames, "samples": T}
    else:
        count, preset = count or 24, preset or "default"
        width, height = parse_size(size or "256x192")
        if min(width, height) < SSIM_WINDOW:
            raise InputError(None, f"--size {size}: at least {SSIM_WINDOW}x{SSIM_WINDOW}, "
                                   "SSIM's window")
        if max(width, height) > 10 * min(width, height):
            raise InputError(None, f"--size {size}: the benchmark's camera takes aspect ratios "
                                   "up to 10:1")
        if preset not in PRESETS:
            raise InputError(None, f"--preset {preset!r}: choose {', '.join(PRESETS)}")
        # The samples are held in memory: frames and kernels (flow-guided models' too), float32.
        channels = 2 * 3 + 2 * 2 * T + (2 * T if flow_kernel and frames > 1 else 0)
        check_memory(count * frames * width * height * 4 * channels,
                     f"--count {count} --size {width}x{height}: the benchmark's samples and "
                     f"their kernels ({f'{frames} frames each, ' if frames > 1 else ''}T={T})",
                     "a smaller --size or --count, fewer --frames or --samples")
        spec = BenchmarkSpec(frames=frames, count=count, width=width, height=height, samples=T,
                             images=None if images is None else str(images), preset=preset)
        with LoggedProgress() as bar:
            samples = synthetic_benchmark(spec, flow_kernel,
                                          progress=bar_steps(bar, "drawing the benchmark"))
        names = clips = None
        source = {"synthetic": asdict(spec)}
    if not model:
        err_console.print("no --model given: only the blurred input is scored (e.g. -m "
                          "deepgyro-refine-s -m classic)")
    restorers = {"blurred input": lambda b: b["blurred"],  # then the methods as given
                 **{name: classic_restore if name == "classic" else
                    net_restore(models[name][0], weights_file(name)) for name in model}}
    # With -o, scores are kept as they come: the same command resumes a killed eval. They are
    # taken up for the same data and device, and per method for the same weights.
    stamps = {name: files_digest(weights_file(name).parent, [weights_file(name)])
              for name in models}  # the others: None
    data = folder or images
    feature_run = None if pairs is None else feature_settings(features, pairs, T)
    partial = PartialReport(
        partial_path,
        {"benchmark": source, "device": str(device), "data": data and files_digest(data),
         "features": feature_run and {**feature_run, "data": files_digest(features)}})
    if partial.stale:
        err_console.print(f"{partial.path}: scores of an eval with other settings, not resumed")
    earlier = {name: partial.earlier("results", name, stamps.get(name)) for name in restorers}
    resumed = [f"{name} {len(done['rows'])} of {len(samples)} samples"
               for name, done in earlier.items() if done is not None]
    if resumed:
        err_console.print(f"resumed from {partial.path}: {', '.join(resumed)}")
    with resumes_from(partial), LoggedProgress() as bar:
        results = {name: run(restore, samples, names, clips, progress=bar_steps(bar, name),
                             per_frame=name not in video, done=earlier[name],
                             record=functools.partial(partial.save, "results", name,
                                                      stamps.get(name)))
                   for name, restore in restorers.items()}
    report: dict = {"benchmark": source, "results": results, "threads": torch.get_num_threads(),
                    "device": str(device),
                    "models": {name: {"file": str(weights_file(name)), "config": config}
                               for name, (_, config) in models.items()}}
    if pairs is not None:
        if video:
            err_console.print(f"feature test: single images; {', '.join(video)} left out")
        report["benchmark"]["features"] = feature_run
        report["features"] = _feature_scores(pairs, model, models, T, partial, stamps)
    table = markdown_table(results, source)
    if "features" in report:
        table += (f"\n{describe_features(report['benchmark']['features'])}\n\n"
                  + features_table(report["features"]))
    if output is not None:  # files first: a closed stdout (`| head`) must not lose them
        with atomic_path(output) as tmp:
            tmp.write_text(json.dumps(report, indent=2))
    if markdown is not None:
        with atomic_path(markdown) as tmp:
            tmp.write_text(table)
    partial.remove()
    print(table)


def _check_eval_outputs(output: Path | None, partial_path: Path | None, markdown: Path | None,
                        inputs: tuple[Path | None, ...], weights: list[Path]) -> None:
    """Refuse eval outputs that are inputs (data or ``weights``), lie among the data scored,
    or are one another."""
    for path in (output, partial_path, markdown):
        if path is None:
            continue
        check_output(path, source=weights)
        for folder in inputs:
            # Written among the data, it would be data: a run's own scores so far would make
            # the data another's, and never resume.
            if folder is not None and path.resolve().is_relative_to(folder.resolve()):
                raise InputError(path, f"lies inside {folder}, the data scored; give an output "
                                       "outside it")
    if output is not None and markdown is not None and output.resolve() == markdown.resolve():
        raise InputError(markdown, "is the --output JSON too; give another file")
    if partial_path is not None and markdown is not None and \
            partial_path.resolve() == markdown.resolve():
        raise InputError(markdown, "is where the --output JSON keeps its scores so far (and "
                                   "removes them when done); give another file")


def _eval_samples(models: dict, video: list[str], frames: int, samples: int | None,
                  device) -> int:
    """The kernel samples T that all ``models`` (name: (net, config)) are scored with: the
    ``samples`` given, else their own; each net tried on a dummy batch of ``frames`` frames
    before any data are drawn."""
    import torch

    from gyrodeblur.models import dummy_batch, predict

    if video and frames < 2:
        raise InputError(None, f"{video[0]} is a video model: give --frames 2 or more")
    wanted = {cfg.get("samples", 9) for _, cfg in models.values()}
    if samples is None and len(wanted) > 1:
        takes = ", ".join(f"{name} {cfg.get('samples', 9)}" for name, (_, cfg) in models.items())
        raise InputError(None, f"the models take different --samples ({takes}): give "
                               "--samples N, one T that they all take (a DeepGyro net takes "
                               "any, a GyroDVD net its own)")
    T = samples or (wanted.pop() if wanted else 9)
    for name in video:  # kernel encoders take their T; a net without kernels takes any
        if models[name][0].kernel != "none" and models[name][1].get("samples", 9) != T:
            raise InputError(name, f"takes T={models[name][1].get('samples', 9)} kernel samples "
                                   f"(its kernel encoders' size), not --samples {T}")
    flow_kernel = any(cfg.get("kernel") == "flow" for _, cfg in models.values())
    for name, (net, _) in models.items():
        try:
            with torch.no_grad():
                predict(net, {k: v.to(device) for k, v in
                              dummy_batch(frames, T, flow=flow_kernel, estimate=True).items()})
        except (ValueError, RuntimeError) as e:
            raise InputError(name, f"does not take --frames {frames} --samples {T} "
                                   f"({str(e).splitlines()[0]})") from None
    return T


def _feature_scores(pairs: list, names: list[str], models: dict, T: int, partial,
                    stamps: dict) -> dict:
    """DeepGyro's SIFT feature test on Oxford ``pairs``: without restoration, then for each
    of ``names`` that restores single images ('classic' or a DeepGyro net of ``models``);
    scores kept in and taken up from ``partial``."""
    import torch

    from gyrodeblur.models import DeepGyro, weights_file
    from gyrodeblur.models.classic import deconvolve
    from gyrodeblur.pipelines.evaluate import feature_test, net_restore

    single = {n: m for n, (m, _) in models.items() if isinstance(m, DeepGyro)}

    def net_features(image, rot, net, name):
        x = torch.from_numpy(image).permute(2, 0, 1)[None].float()
        batch = {"blurred": x, "rot": torch.from_numpy(rot)[None]}
        with torch.no_grad():
            y = net_restore(net, weights_file(name))(batch)
        return y[0].clamp(0, 1).permute(1, 2, 0).numpy()

    def classic_features(image, rot):
        return deconvolve(image.astype(np.float32), rot)

    restorers = {"no restoration": None,
                 **{name: classic_features if name == "classic" else
                    functools.partial(net_features, net=single[name], name=name)
                    for name in names if name == "classic" or name in single}}
    scores = {}
    with resumes_from(partial), LoggedProgress() as bar:
        for name, restore in restorers.items():
            found = partial.earlier("features", name, stamps.get(name))
            if found is not None:
                err_console.print(f"feature test of {name}: from {partial.path}")
            else:
                found = feature_test(pairs, restore, samples=T,
                                     progress=bar_steps(bar, f"feature test: {name}"))
                partial.save("features", name, stamps.get(name), found)
            scores[name] = found
    return scores


@contextmanager
def resumes_from(partial: PartialReport) -> Iterator[None]:
    """Ctrl-C (or SIGTERM) says where the scores so far are kept, and how to resume."""
    try:
        yield
    except KeyboardInterrupt as e:
        if not partial.saved():
            raise
        raise type(e)(f"the scores so far are kept in {partial.path}: the same command "
                      "resumes") from None


@app.command("export")
@reports_input_errors
def export_onnx(
    names: Annotated[list[str] | None, typer.Argument(
        metavar="NAME|PATH", help="Shipped models, weights files or training run folders "
                                  "(default: every shipped model).")] = None,
    output: Annotated[Path, typer.Option(
        "--output", "-o", help="Folder for NAME.onnx (an existing NAME.onnx is replaced), or "
                               "the .onnx file itself for one model.")] = ...,
    opset: Annotated[int, typer.Option(help="ONNX opset, 16 to 20.")] = 17,
    check: Annotated[bool, typer.Option(
        help="Compare onnxruntime with PyTorch on random inputs of another size; write "
             "nothing if they differ by 1e-3 or more.")] = True,
) -> None:
    """Models to ONNX, checked against PyTorch with onnxruntime.

    Dynamic batch, frames, height and width."""
    from gyrodeblur.models import load_model, shipped_weights, weights_file
    from gyrodeblur.pipelines.export import CHECK_SHAPE, export_model, names_file, onnx_name

    names = list(dict.fromkeys(names or [])) or sorted(shipped_weights())
    for name in names:  # every model readable before anything is written
        load_model(name, fuse=False)
    if names_file(output):
        if len(names) > 1:
            raise InputError(output, f"one file for {len(names)} models: give a folder "
                                     "(-o DIR) for NAME.onnx each")
        check_output(output, source=[weights_file(name) for name in names])
    else:
        check_output(output, folder=True)
        stems = [onnx_name(name) for name in names]
        for stem in stems:
            if stems.count(stem) > 1:
                same = [name for name, other in zip(names, stems, strict=True) if other == stem]
                raise InputError(None, f"{' and '.join(same)} would both be written to "
                                       f"{output / stem}.onnx (runs of one config share its "
                                       "name): export them to different folders")
            check_output(output / f"{stem}.onnx")
    written: list[str] = []
    for name in names:
        try:
            with err_console.status(escape(f"exporting {name}")):  # a spinner reads markup
                result = export_model(name, output, opset, check)
        except InputError as e:  # a model whose check fails, after others were written
            if not written:
                raise
            raise InputError(e.source, f"{e.problem}; {', '.join(written)}, exported before "
                                       "it, kept") from None
        written.append(str(result.path))
        samples = result.usage.get("samples")
        line = f"{name}: wrote {result.path}" + (f" (kernels of T={samples})" if samples else "")
        if result.max_abs_diff is not None:
            line += (f"; onnxruntime vs PyTorch on random {CHECK_SHAPE.width}x"
                     f"{CHECK_SHAPE.height} inputs: max abs difference {result.max_abs_diff:.1e}")
        err_console.print(line, highlight=False)


@app.command()
@reports_input_errors
def demo(
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder.")] = Path(
        "demo-output"),
) -> None:
    """The whole chain on bundled data, into ./demo-output/.

    Blur along a real gyro trace, sync, deblur, score.

    A bundled photograph is filmed along a real gyro segment; the clip is synchronised,
    deblurred with the shipped network and the classical method, and scored against the truth.
    """
    from gyrodeblur.pipelines.demo import run_demo

    check_output(output, folder=True)
    run_demo(output, say=lambda text: err_console.print(text, highlight=False))
    err_console.print(f"wrote {output}/: side_by_side.mp4, comparison.png, results.md, "
                      "results.json (and the clip, frames per method)")


@app.command()
@reports_input_errors
def models(json_output: Annotated[bool, typer.Option("--json", help="JSON output.")] = False
           ) -> None:
    """Architectures, variants and shipped weights with their scores."""
    import json

    from rich.table import Table

    from gyrodeblur.models import VARIANTS, WEIGHTS, build_model, load_model, shipped_weights
    from gyrodeblur.pipelines.deblur import DEFAULT_MODEL

    variants = [{"name": name, "arch": arch,
                 "parameters": sum(p.numel() for p in build_model({"variant": name})
                                   .parameters())}
                for name, (arch, _) in VARIANTS.items()]
    scores_file = WEIGHTS / "scores.json"
    scores = json.loads(scores_file.read_text()) if scores_file.is_file() else {}
    shipped = []
    for name, path in sorted(shipped_weights().items()):
        net, config = load_model(path, fuse=False)  # the parameters as trained
        shipped.append({"name": name, "file": str(path), "model": config,
                        "parameters": sum(p.numel() for p in net.parameters()),
                        "default": name == DEFAULT_MODEL, **scores.get(name, {})})
    if json_output:
        print(json.dumps({"variants": variants, "shipped": shipped}, indent=2))
        return
    table = Table(title="architectures and variants")
    for column in ("variant", "arch", "parameters"):
        table.add_column(column, no_wrap=column != "arch")
    for v in variants:
        table.add_row(v["name"], v["arch"], f"{v['parameters']:,}")
    StdoutConsole(emoji=False).print(table)
    # Benchmarks are long descriptions: numbered in the table, spelled out below it.
    benchmarks = list(dict.fromkeys(s["benchmark"] for s in shipped if "benchmark" in s))
    rows = [(s["name"] + " *" * s["default"], f"{s['parameters']:,}",
             f"[{benchmarks.index(s['benchmark']) + 1}]" if "benchmark" in s else "-",
             *(f"{s[key]:.{digits}f}" if key in s else "-"
               for key, digits in (("psnr", 2), ("ssim", 4))),
             f"{s['input_psnr']:.2f} / {s['input_ssim']:.4f}" if "input_ssim" in s else "-")
            for s in shipped]
    table = Table(title="shipped weights (benchmark scores)")
    for i, column in enumerate(("name", "params", "bench.", "PSNR", "SSIM", "input")):
        # Numbers never shortened to "3…": on a narrow terminal the names wrap instead.
        table.add_column(column, no_wrap=i > 0, overflow="fold", min_width=max(
            [len(row[i]) for row in rows] + [len(column)]) if i else None)
    for row in rows:
        table.add_row(*row)
    StdoutConsole(emoji=False).print(table)
    print("* the default of `deblur --method net`\nparams: of the net as its weights' config "
          "builds it (kernel samples T)\n" + "".join(
        f"[{number}] {benchmark}\n" for number, benchmark in enumerate(benchmarks, 1)), end="")


deblur_app = typer.Typer(help="Deblur images and videos with their gyro (network or classical).",
                         no_args_is_help=True)
app.add_typer(deblur_app, name="deblur")

MethodOption = Annotated[str, typer.Option(
    help="net (a trained network) or classic (deconvolution with the gyro kernels, no weights).")]
ModelOption = Annotated[str | None, typer.Option(
    "--model", "-m", metavar="NAME",
    help="Shipped model name, .safetensors file or training run folder (default: "
         "deepgyro-refine-s, frame by frame, refining the classical restoration; "
         "deepgyro-path-s is about 3 times faster; gyrodvd-s is the video network).")]
TileOption = Annotated[int | None, typer.Option(
    min=64, help="Tile size (pixels) for bounded memory (default: 1280 for single-image nets "
                 "and classic, 384 video nets).")]
KERNEL_WIDTH = 1280
KernelWidthOption = Annotated[int, typer.Option(
    min=64, help="Compute kernels at most this wide (then upsampled).")]


IterationsOption = Annotated[int | None, typer.Option(
    min=1, help="RL steps of --method classic, and of the classical restoration a refining "
                "net starts from (default: 4 per pixel of the blur's median path length, 8 to "
                "30, which the refining nets were trained on).")]


def check_deblur_size(path: Path | None, width: int, height: int) -> None:
    from gyrodeblur.pipelines.deblur import MIN_SIDE

    if min(width, height) < MIN_SIDE:
        raise InputError(path, f"{width}x{height} is too small to deblur (at least "
                               f"{MIN_SIDE}x{MIN_SIDE} pixels)")


def _restorer(method: str, model: str | None, video: bool, tile: int | None, device: str,
              samples: int | None = None, iterations: int | None = None):
    from gyrodeblur.pipelines.deblur import make_restorer

    if method == "net" and samples is not None:
        raise InputError(None, "--samples applies to --method classic only (a net takes its own)")
    return make_restorer(method, model, video, tile, samples, iterations,
                         None if device == "cpu" else device)


@deblur_app.command("image")
@reports_input_errors
def deblur_image_command(
    image: Annotated[Path, typer.Argument(
        metavar="IMAGE", help="Blurred image (PNG, JPEG, TIFF...).")],
    gyro: Annotated[Path | None, typer.Option(help=GYRO_HELP)] = None,
    camera: Annotated[Path | None, typer.Option(help=CAMERA_HELP)] = None,
    frame_time: Annotated[float | None, typer.Option(
        help="Exposure start of the first-read row (s, frame clock: a frames CSV's "
             "t_start).")] = None,
    exposure: Annotated[float | None, typer.Option(help="Exposure time (s).")] = None,
    kernels_file: Annotated[Path | None, typer.Option(
        "--kernels", help="Kernels .npz (the `gyrodeblur kernels` format) instead of gyro and "
                          "camera.")] = None,
    frame: Annotated[int | None, typer.Option(
        help="Frame number of --kernels to use (as its 'frames' numbers it; default: its "
             "first).")] = None,
    method: MethodOption = "net",
    model: ModelOption = None,
    samples: Annotated[int | None, typer.Option(
        min=2, max=MAX_SAMPLES, help="Kernel samples T for --method classic (default 9).")] = None,
    iterations: IterationsOption = None,
    readout_time: ReadoutOption = None,
    time_offset: OffsetOption = None,
    gyro_unit: UnitOption = "auto",
    bias: BiasOption = None,
    tile: TileOption = None,
    device: DeviceOption = "cpu",
    kernel_width: Annotated[int | None, typer.Option(
        min=64, help=f"Compute kernels at most this wide (then upsampled; default "
                     f"{KERNEL_WIDTH}).")] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Output image.")] = ...,
) -> None:
    """Deblur one image, with kernels from its gyro or a kernels file."""
    from gyrodeblur.fileio import atomic_path
    from gyrodeblur.footage import read_image_and_format, write_image
    from gyrodeblur.pipelines.deblur import deblur_image, image_kernels, read_kernels

    if output.suffix.lower() not in IMAGE_OUTPUTS:
        raise InputError(output, "output must be an image file (.png, .jpg, .tif...)")
    check_output(output, source=(image, gyro, camera, kernels_file))
    blurred, stored = read_image_and_format(image)
    check_deblur_size(image, blurred.shape[1], blurred.shape[0])
    restorer = _restorer(method, model, False, tile, device, samples, iterations)
    if kernels_file is not None:
        motion = [name for name, v in (
            ("--gyro", gyro), ("--camera", camera), ("--frame-time", frame_time),
            ("--exposure", exposure), ("--readout-time", readout_time),
            ("--time-offset", time_offset), ("--bias", bias), ("--samples", samples),
            ("--kernel-width", kernel_width),
            ("--gyro-unit", None if gyro_unit == "auto" else gyro_unit)) if v is not None]
        if motion:
            raise InputError(None, f"{', '.join(motion)}: the kernels of --kernels are used "
                                   "instead of gyro and camera; give either")
        rot, tran = read_kernels(kernels_file, frame, blurred.shape[:2])
    else:
        if frame is not None:
            raise InputError(None, "--frame picks a frame of --kernels; without --kernels the "
                                   "image's own time is --frame-time")
        missing = [name for name, v in (("--gyro", gyro), ("--camera", camera),
                                        ("--frame-time", frame_time), ("--exposure", exposure))
                   if v is None]
        if missing:
            raise InputError(None, f"missing {', '.join(missing)} (or give --kernels)")
        if not math.isfinite(frame_time):
            raise InputError(None, f"--frame-time {frame_time} is not a time")
        check_exposure(exposure)
        size = blurred.shape[1], blurred.shape[0]
        log, cam, _ = load_motion(gyro, camera, gyro_unit, bias, None, readout_time,
                                  time_offset, size)
        cam = fit_camera(cam, camera, *size)
        # The kernels at the image's size and the deconvolution's, as measured at T = 1000:
        # 34 bytes a pixel and sample.
        check_memory(size[0] * size[1] * (restorer.samples * 34 + 100),
                     f"deblurring a {size[0]}x{size[1]} image with T={restorer.samples} kernel "
                     "samples", "fewer --samples")
        rot = image_kernels(log, cam, frame_time, exposure, restorer.samples,
                            kernel_width or KERNEL_WIDTH)
        tran = None
    with LoggedProgress() as bar:
        restored = deblur_image(blurred, rot, tran, restorer,
                                bar_steps(bar, f"deblur ({restorer.name}), tiles"))
    with atomic_path(output) as tmp:
        write_image(tmp, restored, stored)
    err_console.print(f"wrote {output} ({restorer.name})")


def _sync_before_deblur(footage, timing, selected, log, cam, search: float,
                        camera_file: Path, readout_time: float | None):
    """``deblur --sync auto``: the sync of the ``selected`` frames with ``log``, searched
    +-``search`` s around ``cam``'s offset (``cam`` at the frames' stored size). Returns
    ``(sync, None)``, or ``(None, why)`` where it cannot run on this footage (which may still
    be deblurred: the checks after it refuse what cannot)."""
    from gyrodeblur.geometry.gyro import check_no_holes
    from gyrodeblur.kernels.synchronization import FULL_SUPPORT_PAIRS, estimate_sync
    from gyrodeblur.pipelines.kernels import check_frames_covered, exposure_spans

    first, last = exposure_spans(cam, selected, selected.frame)
    if last.max() - first.min() > log.t[-1] - log.t[0]:  # at no offset: say so first
        check_frames_covered(log, cam, selected, selected.frame)
    # As is a hole in the log that every searched offset puts among the frames.
    check_no_holes(log, first.min() + search, last.max() - search)
    # A few frames of --range are synchronised with their neighbours' motion too.
    around = timing.select(int(selected.frame[0]) - FULL_SUPPORT_PAIRS,
                           min(int(selected.frame[-1]) + FULL_SUPPORT_PAIRS, footage.count))
    try:
        with err_console.status("synchronising gyro and video"):
            found = estimate_sync(footage.frames, around, log, cam, search=search)
    except InputError as error:
        return None, str(error)
    note_narrowed_search(found, search, log)
    if cam.readout_time == 0:
        note_global_shutter(camera_file, readout_time, "gyrodeblur sync --readout")
    err_console.print(f"sync: time_offset {found.time_offset:.4f} s "
                      f"(confidence {found.confidence:.2f})")
    return found, None


@deblur_app.command("video")
@reports_input_errors
def deblur_video_command(
    frames: FramesArgument,
    gyro: GyroOption = ...,
    camera: CameraOption = ...,
    frames_csv: FramesCsvOption = None,
    exposure: ExposureOption = None,
    method: MethodOption = "net",
    model: ModelOption = None,
    iterations: IterationsOption = None,
    sync: Annotated[str, typer.Option(
        help="'auto': estimate the time offset from the video first (as `sync`; kept only "
             "when reliable, confidence >= 0.3, else the camera's); 'off': use the camera's.")
    ] = "off",
    sync_search: Annotated[float | None, typer.Option(
        min=0.001, help="With --sync auto: search +-S seconds around the camera's offset (or "
                        f"--time-offset) [default: {SYNC_SEARCH}].")] = None,
    readout_time: ReadoutOption = None,
    time_offset: OffsetOption = None,
    frame_range: RangeOption = None,
    gyro_unit: UnitOption = "auto",
    bias: BiasOption = None,
    lowpass: LowpassOption = None,
    flow: FlowOption = "dis",
    translation: Annotated[bool, typer.Option(
        help="Add to the gyro's rotation the translation that optical flow measures beyond "
             "it; --no-translation: the rotation alone (faster; for scenes whose flow "
             "misleads: water, crowds, little texture).")] = True,
    size: Annotated[str | None, typer.Option(help="Deblur (and write) at WxH.")] = None,
    side_by_side: Annotated[bool, typer.Option(help="Input on the left, output right.")] = False,
    tile: TileOption = None,
    device: DeviceOption = "cpu",
    kernel_width: KernelWidthOption = KERNEL_WIDTH,
    crf: Annotated[int | None, typer.Option(
        min=0, max=51, help="H.264 quality of an .mp4 (x264's CRF: lower is better and "
                            "larger). 4:2:0 whatever it is: measure on a PNG folder "
                            f"[default: {CRF}].")] = None,
    output_name: Annotated[str, typer.Option(
        "--output", "-o", metavar="<path>",
        help="Output .mp4 (H.264) or folder (one PNG per frame; resumes; a name with a dot "
             "ends in /).")] = ...,
) -> None:
    """Deblur a video or a folder of frames with the gyro.

    Frame by frame (or in sliding windows), in tiles, streamed: bounded memory."""
    from gyrodeblur.footage import Footage
    from gyrodeblur.pipelines.deblur import (
        VideoJob,
        deblur_video,
        frame_files,
        resumable,
        writes_folder,
    )

    check_flow(flow)
    if sync not in ("auto", "off"):
        raise InputError(None, f"--sync {sync!r}: choose auto or off")
    if sync_search is not None and sync != "auto":
        raise InputError(None, "--sync-search applies to --sync auto only")
    sync_search = SYNC_SEARCH if sync_search is None else sync_search
    to_folder, output = writes_folder(output_name), Path(output_name)
    if crf is not None and to_folder:
        raise InputError(None, "--crf applies to an .mp4 output only (PNG frames are lossless)")
    crf = CRF if crf is None else crf
    check_output(output, folder=to_folder, source=(frames, gyro, camera, frames_csv))
    footage = Footage(frames)
    check_deblur_size(frames, *footage.size)
    log, cam, bias_removed = load_motion(gyro, camera, gyro_unit, bias, lowpass, readout_time,
                                         time_offset, footage.size, footage.fps)
    cam = stored_cam = fit_camera(cam, camera, *footage.size)
    wanted_size = parse_size(size)
    if wanted_size is not None:
        check_deblur_size(None, *wanted_size)
        cam = fit_wanted_size(cam, camera, wanted_size, footage)
    timing = load_timing(footage, frames_csv, exposure, cam, camera, readout_time, log)
    selected = select_frames(timing, footage, frame_range)
    restorer = _restorer(method, model, True, tile, device, iterations=iterations)
    if not translation:
        restorer = replace(restorer, translation=False)
    found, no_sync = None, None
    if sync == "auto":
        found, no_sync = _sync_before_deblur(footage, timing, selected, log, stored_cam,
                                             sync_search, camera, readout_time)
        if found is not None and found.reliable:
            cam = cam.replace(time_offset=found.time_offset)
        elif found is not None:
            doubt = sync_doubt(found, sync_search, "--sync-search")
            err_console.print(f"low sync confidence ({doubt}); keeping the time "
                              f"offset {cam.time_offset:.4f} s")
        else:
            err_console.print(f"no sync ({no_sync}); keeping the time "
                              f"offset {cam.time_offset:.4f} s")
    settings = {  # all that decides a resumed frame, the options as given
                "footage": str(frames.resolve()), "gyro": str(gyro.resolve()),
                # The files read, by size and time: a log or footage rewritten in place;
                # a folder's frame by frame, so that a frame mended resumes the run.
                "input_files": sources_digest([Path(log.source)] + (
                    [] if footage.files else [footage.path])),
                "frame_files": frame_files(footage),
                "camera": cam.to_dict(),
                "gyro_unit": gyro_unit, "bias": bias_removed, "lowpass": lowpass,
                "method": method, "model": restorer.name, "iterations": iterations,
                "tile": restorer.tile, "kernel_width": kernel_width,
                "flow": flow if restorer.translation else None,
                "translation": restorer.translation,
                "frames": [int(n) for n in selected.frame],
                "t_start": selected.t_start.tolist(), "exposure": selected.exposure.tolist()}
    if restorer.net is not None:  # retrained weights under the same name or path
        from gyrodeblur.models import shipped_weights, weights_file

        weights = weights_file(restorer.name)
        settings["weights_sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()
        if restorer.name not in shipped_weights():  # a run folder or its file, however written
            settings["model"] = str(weights.resolve())
    if found is not None:
        settings["sync"] = {"time_offset": found.time_offset, "confidence": found.confidence,
                            "pairs": found.pairs_used, "explained": found.explained,
                            "applied": found.reliable}
        if not found.reliable:
            settings["sync"]["doubt"] = sync_doubt(found, sync_search, "--sync-search")
    elif no_sync is not None:  # asked for, could not run: said so in the record too
        settings["sync"] = {"applied": False, "error": no_sync}
    job = VideoJob(footage, timing, selected.frame, log, cam, restorer, kernel_width, flow,
                   settings)
    job.check()
    note_frames_alone(job.without_neighbours())
    note_blur_beyond(job.frames, job.reach, job.camera)
    try:
        with LoggedProgress() as bar:
            task = bar.add_task(f"deblur ({restorer.name})", total=len(selected))
            notes = deblur_video(job, output_name, side_by_side,
                                 progress=lambda n: bar.update(task, completed=n), crf=crf)
    except InputError:
        raise  # bad input stays bad: its error alone (the frames before it are kept)
    except BaseException as e:
        if not (to_folder and resumable(output)):
            raise
        kept = (f"{output}/ keeps the frames written so far (deblur.json: \"complete\": "
                "false); the same command resumes")
        if isinstance(e, KeyboardInterrupt):  # the interrupt's one line says it
            raise type(e)(kept) from None
        err_console.print(kept)
        raise
    if footage.hdr:
        notes.append("HDR input (PQ or HLG): deblurred on its code values and written as "
                     "8-bit BT.709 without tone mapping, so it looks flat")
    for note in notes:
        err_console.print(note)
    pair = " with the input beside each" * side_by_side
    err_console.print(f"wrote {output} ({len(selected)} frame{'s' * (len(selected) != 1)} of "
                      f"{cam.width}x{cam.height}{pair}, {restorer.name})")
