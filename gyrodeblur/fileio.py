"""Atomic file output: write to a temporary name beside the target, then rename it."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import json
import os
import re
import shutil
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from gyrodeblur.errors import InputError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None


def check_output(path: str | Path, folder: bool = False,
                 source: str | Path | Iterable[str | Path | None] | None = None) -> None:
    """Refuse, before any work is done, an output that could not be written.

    A file must not be an existing folder (a folder output not an existing file), a device,
    a pipe or ``-`` (standard output, which gyrodeblur does not write to), nor the
    ``source`` it is made from (or any of several), and the folder written into (an existing
    output folder, else the nearest existing ancestor) must be writable.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> check_output(d / "new" / "out.npz")
        >>> check_output(d)
        Traceback (most recent call last):
        ...
        gyrodeblur.errors.InputError: ... is a folder, not a file
    """
    path = Path(path)
    sources = [source] if isinstance(source, str | Path) else source or []
    if any(s is not None and os.path.realpath(path) == os.path.realpath(s) for s in sources):
        raise InputError(path, "would overwrite an input; give another output")
    if str(path) == "-":
        raise InputError(path, "gyrodeblur does not write to standard output: give a file "
                               "name (./- for one named so)")
    if path.exists() and not (path.is_file() or path.is_dir()):
        # The finished output replaces what is there: /dev/null would become a file.
        raise InputError(path, "is not a regular file (a device, pipe or socket): give a file "
                               "path")
    if not folder and path.is_dir():
        raise InputError(path, "is a folder, not a file")
    if folder and path.exists() and not path.is_dir():
        raise InputError(path, "exists and is not a folder")
    if folder and path.is_symlink() and not path.exists():
        raise InputError(path, f"is {unreadable_because(path)}")
    # An existing output folder is written into; otherwise its nearest existing ancestor.
    parent = path if folder and path.is_dir() else path.parent
    while not parent.exists() and parent != parent.parent:
        if parent.is_symlink():  # a dangling link: no folder can be made there
            raise InputError(path, f"cannot be created: {parent} is "
                                   f"{unreadable_because(parent)}")
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(path, f"cannot be created: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        read_only = bool(os.statvfs(parent).f_flag & os.ST_RDONLY)
        raise InputError(path, f"cannot be written: {parent} is "
                               f"{'on a read-only file system' if read_only else 'not writable'}")
    try:  # root passes os.access anywhere, also where no file can be made (/proc, /sys)
        fd, probe = tempfile.mkstemp(prefix=".gyrodeblur-probe-", dir=parent)
    except OSError as e:
        raise InputError(path, f"cannot be written: no file can be made in {parent} "
                               f"({e.strerror})") from None
    os.close(fd)
    os.unlink(probe)
    # Made as the temporary .NAME.XXXXXXXX.part first (atomic_path, temporary_folder).
    longest = _longest_name(parent) - len(".XXXXXXXX.part") - 1
    if not (folder and path.is_dir()) and len(os.fsencode(path.name)) > longest:
        raise InputError(path, f"name too long: at most {longest} bytes here")


def _longest_name(folder: Path) -> int:
    """The longest file name ``folder``'s file system takes, in bytes (255 where it does not
    say: Windows, or no answer)."""
    try:
        longest = os.pathconf(folder, "PC_NAME_MAX")
    except (AttributeError, OSError, ValueError):
        return 255
    return longest if longest > 0 else 255


def _temporary_name(name: str, suffix: str) -> re.Pattern:
    """The names of temporaries (patterns ``name`` and ``suffix``): ``tempfile``'s 8 random
    characters between ``.NAME.`` and ``.part`` (an earlier version's files followed by the
    target's suffix)."""
    return re.compile(rf"\.{name}\.[a-z0-9_]{{8}}\.part(?:{suffix})?")


_ANY_TEMPORARY = _temporary_name(".+", r"\.[^.]+")


def holds_anything(folder: Path) -> bool:
    """Whether ``folder`` holds anything but the temporaries of runs writing into it (or
    killed while they did): an output folder that is not new.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> (d / ".deblur.json.a1b2c3d4.part").mkdir()
        >>> holds_anything(d), (d / "notes.txt").touch(), holds_anything(d)
        (False, None, True)
    """
    return folder.is_dir() and any(not _ANY_TEMPORARY.fullmatch(p.name)
                                   for p in folder.iterdir())


def _hold(fd: int) -> None:
    """Lock ``fd`` (a temporary's) for as long as it is open: a temporary no process holds
    was left by one that died. Where there are no such locks (Windows), nothing is held and
    nothing is taken for left."""
    if fcntl is None:
        return
    try:  # waits while a clean-up that found it unheld removes it
        fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError:  # a file system without locks: a clean-up cannot take it either
        pass


def remove_orphans(target: str | Path) -> None:
    """Remove the temporary files and folders of ``target`` that runs left when they died
    without cleaning up (SIGKILL, the out-of-memory killer, a power cut): those that no
    process holds (:func:`_hold`; a lock every process on this file system sees, in other
    containers too). One that cannot be opened, locked (NFS locks no folder) or removed is
    left.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (d / ".k.npz.a1b2c3d4.part.npz").write_text("")
        >>> remove_orphans(d / "k.npz"); list(d.iterdir())
        []
    """
    target = Path(target)
    _remove_unheld(target.parent, _temporary_name(re.escape(target.name),
                                                   re.escape(target.suffix)))


def remove_orphans_in(folder: str | Path) -> None:
    """:func:`remove_orphans` for every output in ``folder``: those too that no run will
    write again (a clip beyond a smaller count).

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> (d / ".clip_000007.a1b2c3d4.part").mkdir()
        >>> remove_orphans_in(d); list(d.iterdir())
        []
    """
    _remove_unheld(Path(folder), _ANY_TEMPORARY)


def _remove_unheld(folder: Path, name: re.Pattern) -> None:
    if fcntl is None:
        return
    try:
        entries = [e for e in os.scandir(folder) if name.fullmatch(e.name)]
    except OSError:
        return
    for entry in entries:
        try:
            fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held: a run still writing it
            os.close(fd)
            continue
        try:  # removed while held, so that no run takes it up meanwhile
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)
        except OSError:
            pass
        finally:
            os.close(fd)


# What this process holds, by descriptor: each folder's (device, inode). A forked child (a
# DataLoader worker) closes its copies: a hold ends with the run, not with its last worker.
_held: dict[int, tuple[int, int]] = {}


def _forget_held() -> None:
    for fd in _held:
        with contextlib.suppress(OSError):
            os.close(fd)
    _held.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_held)


def _let_go(fd: int) -> None:
    """Close a held descriptor (one a forked child forgot is not its to close)."""
    if _held.pop(fd, None) is not None:
        os.close(fd)


@contextlib.contextmanager
def temporary_folder(target: str | Path) -> Iterator[Path]:
    """A new folder beside ``target`` for the parts of it, held (:func:`_hold`) and removed
    with its contents on leaving; those that killed runs left for ``target`` are removed
    first.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> with temporary_folder(d / "k.npz") as parts:
        ...     _ = (parts / "rot.npy").write_text("")
        >>> list(d.iterdir())
        []
    """
    target = Path(target)
    remove_orphans(target)
    while True:
        folder = tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
        try:
            fd = os.open(folder, os.O_RDONLY)
        except FileNotFoundError:  # another run's clean-up took it before it was held
            continue
        _hold(fd)
        _held[fd] = _key(fd)
        if _still_at(fd, Path(folder), follow=False):
            break
        _let_go(fd)
    try:
        yield Path(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # one left is a later run's orphan
        _let_go(fd)


@contextlib.contextmanager
def hold_folder(folder: str | Path, wait: Callable[[], None] | None = None,
                reading: bool = False) -> Iterator[Path]:
    """Hold the output ``folder`` of a run (made if missing) while it writes there: another
    run holding it meanwhile is an :class:`InputError`, or with ``wait`` is waited for
    (``wait()`` told first), not two runs mixing their files or removing each other's. With
    ``reading``, the folder (which must exist) is an input that no run may write into
    meanwhile, and any number of runs may read. The hold is a lock on the folder
    (:func:`_hold`'s kind), let go however the run ends; on leaving, the folders made for
    it are removed if empty.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> with hold_folder(d / "out"):
        ...     with hold_folder(d / "out"):
        ...         pass
        Traceback (most recent call last):
        ...
        gyrodeblur.errors.InputError: ...out: another run is using it; wait for it to end ...
        >>> list(d.iterdir())
        []
    """
    folder = Path(folder)
    for attempt in itertools.count(1):
        made = [] if reading else missing_folders(folder)
        try:
            if not reading:
                folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError as e:  # another run's clean-up removed it meanwhile
            if reading:
                raise InputError(folder, "not found") from None
            if attempt < 100:
                continue
            # Not a race but a place where no folder can be made (under /proc, say).
            remove_empty(made)
            raise InputError(folder, f"cannot be written: {e.strerror}") from None
        except OSError as e:
            remove_empty(made)
            raise InputError(folder, f"cannot be {'read' if reading else 'written'}: "
                                     f"{e.strerror}") from None
        try:
            if wait is not None and _key(fd) in _held.values():
                raise InputError(folder, "this run holds it already (one of its outputs lies "
                                         "where another goes), and would wait for itself")
            locked = _lock(fd, folder, wait, reading)
        except BaseException:  # Ctrl-C while waiting
            os.close(fd)
            raise
        if locked and _still_at(fd, folder):
            break
        os.close(fd)
        if not locked:
            raise InputError(folder, "another run is writing into it; wait for it to end"
                             if reading else "another run is using it; wait for it to end or "
                                             "give another output")
    _held[fd] = _key(fd)
    try:
        yield folder
    finally:
        remove_empty(made)  # while held: no run takes up a folder on its way out
        _let_go(fd)


def _key(fd: int) -> tuple[int, int]:
    stat = os.fstat(fd)
    return stat.st_dev, stat.st_ino


def _lock(fd: int, folder: Path, wait: Callable[[], None] | None, reading: bool) -> bool:
    """Lock ``fd`` for :func:`hold_folder`; False where another holds it and ``wait`` is None.
    Where there are no locks (Windows; NFS and CIFS, which lock no folder), nothing is held,
    with a warning, and True told."""
    if fcntl is None:
        return True
    kind = fcntl.LOCK_SH if reading else fcntl.LOCK_EX
    try:
        fcntl.flock(fd, kind | fcntl.LOCK_NB)
    except BlockingIOError:
        if wait is None:
            return False
        wait()
        fcntl.flock(fd, kind)
    except OSError:
        warnings.warn(f"{folder}: this file system locks no folder (NFS?): another run given "
                      "it meanwhile would not be kept out", stacklevel=4)
    return True


def _still_at(fd: int, folder: Path, follow: bool = True) -> bool:
    """Whether the folder open as ``fd`` is still at ``folder``, not removed by a run's
    clean-up (while this one waited for its lock, say)."""
    try:
        return os.path.samestat(os.fstat(fd), os.stat(folder, follow_symlinks=follow))
    except FileNotFoundError:
        return False


def _umask() -> int:
    umask = os.umask(0)  # read only by setting it
    os.umask(umask)
    return umask


def move_folder_into_place(parts: Path, target: Path) -> None:
    """Rename ``parts`` (a :func:`temporary_folder`, complete) to ``target``, which must be
    missing or empty, with the permissions ``mkdir`` gives (not the temporary's private
    0700).

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> with temporary_folder(d / "clip") as parts:
        ...     _ = (parts / "a.txt").write_text("done")
        ...     move_folder_into_place(parts, d / "clip")
        >>> [p.name for p in d.iterdir()], oct((d / "clip").stat().st_mode & 0o777 | _umask())
        (['clip'], '0o777')
    """
    os.chmod(parts, 0o777 & ~_umask())
    if target.exists():
        target.rmdir()
    parts.rename(target)


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path for ``target`` (its name, in a :func:`temporary_folder` beside
    it); rename it to ``target`` on success (a link there is replaced, not written through:
    what it points to, an input perhaps, is left as it was).

    On any exception (Ctrl-C included) the temporary folder is removed, with what the writer
    put there (a library's own temporary files too) and the folders made for it, and
    ``target`` is left untouched, so an interrupted run never leaves a half-written file
    under the final name. A write that fails is an :class:`OSError` naming ``target`` (for
    want of space: ENOSPC), a rename that fails an :class:`InputError`. Temporaries that
    killed runs left for ``target`` are removed first.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> with atomic_path(d / "a.txt") as tmp:
        ...     _ = tmp.write_text("done")
        >>> (d / "a.txt").read_text()
        'done'
    """
    target = Path(target)
    made = missing_folders(target.parent)
    with contextlib.ExitStack() as folder:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            parts = folder.enter_context(temporary_folder(target))
            tmp = parts / target.name
            tmp.touch(0o600)
        except OSError as e:  # named after the target, not the temporary file
            folder.close()
            remove_empty(made)
            raise InputError(target, f"cannot be written: {e.strerror}") from None
        done = False
        try:
            try:
                yield tmp
            except OSError as e:
                # Another file's failure (an output written beside this one, named already)
                # keeps its name.
                named = str(e.filename or "")
                if named.startswith(str(parts)) or not named and _disk_full(e, target.parent):
                    raise write_error(target, e, target.parent) from None
                raise
            try:
                # The mode of any new file, not the temporary's 0600 (nor the mode of a
                # writer that recreates it).
                os.chmod(tmp, 0o666 & ~_umask())
                os.replace(tmp, target)
            except OSError as e:
                raise InputError(target, f"cannot be written: {e.strerror}") from None
            done = True
        finally:
            if not done:
                folder.close()  # the temporary folder first, then those made for it
                remove_empty(made)


# Free space under which a failed write is put down to a full disk (file systems keep a
# little back, and the failed temporary file still holds what it got).
_FULL_DISK_BYTES = 1 << 20


def _disk_full(e: OSError, folder: Path) -> bool:
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    try:
        return shutil.disk_usage(folder).free < _FULL_DISK_BYTES
    except OSError:  # no such folder: the failure says so itself
        return False


def write_error(target: Path, e: OSError, folder: Path) -> OSError:
    """``target`` could not be written into ``folder``: the error named after ``target``
    (not the temporary file that failed), with the system's words for a full disk where
    numpy and others report it in theirs."""
    if _disk_full(e, folder):
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target))
    return OSError(e.errno, e.strerror or str(e), str(target))


def missing_folders(folder: str | Path) -> list[Path]:
    """``folder`` and its ancestors that do not exist yet, nearest first: the folders a job
    makes, to take back with :func:`remove_empty` when it fails.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> [p.relative_to(d).as_posix() for p in missing_folders(d / "a" / "b")]
        ['a/b', 'a']
    """
    folder = Path(folder)
    return [p for p in (folder, *folder.parents) if not p.exists()]


def remove_empty(folders: list[Path]) -> None:
    """Remove ``folders`` (nearest first) while they are empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def read_record(path: Path) -> dict | None:
    """The JSON object a job keeps in its output folder (settings, progress), or None where
    there is none or it cannot be read as one.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (d / "job.json").write_text('{"complete": false}')
        >>> read_record(d / "job.json"), read_record(d / "missing.json")
        ({'complete': False}, None)
    """
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return record if isinstance(record, dict) else None


def files_digest(root: Path, files: Iterable[Path] | None = None) -> str:
    """A digest of the name (under ``root``), size and time of each of ``files`` (None: every
    file under ``root``): what changes when files are added, removed, renamed or rewritten."""
    if files is None:
        files = (p for p in root.rglob("*") if p.is_file())
    return _digest((p, p.relative_to(root)) for p in files)


def sources_digest(files: Iterable[Path]) -> str:
    """:func:`files_digest` of input files named anywhere, by their absolute names."""
    return _digest((f, f) for f in (Path(f).resolve() for f in files))


def unreadable_because(path: Path, missing: str = "no such file") -> str:
    """Why ``path``, neither a file nor a folder, cannot be read, as an error's words
    (``missing`` where nothing is there): a pipe (``<(...)``, read once) or a device is read
    by looking at it first, then again.

    Example:
        >>> unreadable_because(Path("/dev/null"))
        'not a file (a pipe or a device?): save it to a file first'
    """
    if path.is_symlink() and not path.exists():
        return f"a link to {os.path.realpath(path)}, which does not exist"
    return "not a file (a pipe or a device?): save it to a file first" if path.exists() \
        else missing


def file_stamp(path: Path) -> str:
    """A file's size and modification time (ns), which a rewrite changes."""
    stat = Path(path).stat()
    return f"{stat.st_size} {stat.st_mtime_ns}"


def _digest(files: Iterable[tuple[Path, Path]]) -> str:
    """A digest of each ``(file, name)``'s name, size and time, in the files' order."""
    listing = "\n".join(f"{name} {file_stamp(f)}" for f, name in sorted(files))
    return hashlib.sha256(listing.encode()).hexdigest()


class NpzWriter:
    """Write a large ``.npz`` frame by frame in bounded memory, atomically.

    Arrays declared with :meth:`array` are memory-mapped ``.npy`` files in a temporary
    folder beside the target; leaving the ``with`` block stores them uncompressed into the zip (so
    ``np.load`` reads it like any ``np.savez`` file) and renames it into place. Leaving the
    ``with`` block by an exception removes everything. The maps' disk blocks are reserved
    when declared, and the room for the zip is checked then, so that a disk too small is an
    :class:`InputError` before any work (a memory map that meets a full disk would die of
    SIGBUS).

    Example:
        >>> import tempfile, pathlib, numpy as np
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "k.npz"
        >>> with NpzWriter(out) as npz:
        ...     a = npz.array("rot", (2, 3), np.float32)
        ...     a[0] = 1.0; a[1] = 2.0
        ...     npz.put("meta", np.array('{"T": 9}'))
        >>> np.load(out)["rot"].sum()
        np.float32(9.0)
    """

    def __init__(self, target: str | Path) -> None:
        self.target = Path(target)
        self._stack = contextlib.ExitStack()
        self._arrays: dict[str, Path] = {}

    def __enter__(self) -> NpzWriter:
        self._made = missing_folders(self.target.parent)
        try:
            self.target.parent.mkdir(parents=True, exist_ok=True)
            self._dir = self._stack.enter_context(temporary_folder(self.target))
        except OSError as e:
            remove_empty(self._made)
            raise InputError(self.target, f"cannot be written: {e.strerror}") from None
        return self

    def array(self, name: str, shape: tuple[int, ...], dtype: np.typing.DTypeLike
              ) -> np.ndarray:
        """A zero-filled writable memory map that becomes array ``name`` of the npz."""
        path = self._dir / f"{name}.npy"
        self._arrays[name] = path
        out = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
        self._reserve(path)
        return out

    def _reserve(self, path: Path) -> None:
        """Allocate ``path``'s blocks and check that the zip of all arrays will fit too."""
        size = path.stat().st_size
        if hasattr(os, "posix_fallocate"):  # Linux; elsewhere the zip check alone
            try:
                with open(path, "r+b") as f:
                    os.posix_fallocate(f.fileno(), 0, size)
            except OSError as e:
                if e.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                    raise
                raise InputError(self.target, f"cannot be written: {e.strerror} (the kernels "
                                              f"take {size / 1e6:.0f} MB)") from None
        need = sum(p.stat().st_size for p in self._arrays.values())
        free = shutil.disk_usage(self._dir).free
        if free < need:
            raise InputError(self.target, f"cannot be written: {need / 1e6:.0f} MB needed "
                                          f"beside it for the zip, {free / 1e6:.0f} MB free")

    def put(self, name: str, value: np.ndarray) -> None:
        """Store a small array as is."""
        path = self._dir / f"{name}.npy"
        try:
            np.save(path, value)
        except OSError as e:
            raise write_error(self.target, e, self._dir) from None
        self._arrays[name] = path

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                try:
                    with atomic_path(self.target) as tmp, zipfile.ZipFile(
                            tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
                        for name, path in self._arrays.items():
                            # A fixed time, as np.savez writes: the same arrays give the
                            # same bytes.
                            entry = zipfile.ZipInfo(f"{name}.npy", (1980, 1, 1, 0, 0, 0))
                            entry.file_size = path.stat().st_size
                            with open(path, "rb") as src, zf.open(entry, "w") as dst:
                                shutil.copyfileobj(src, dst, 1 << 24)
                except OSError as e:
                    raise InputError(self.target, f"cannot be written: {e.strerror}") from None
        finally:
            self._stack.close()
            if not self.target.exists():
                remove_empty(self._made)
