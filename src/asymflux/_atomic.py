"""Outputs as transactions: every output appears complete or not at all.

* :func:`atomic_path` — one file: written into a temporary file, then renamed over the
  target in one step. A *special* target (device, FIFO, socket) is written *through*
  (opened and written, never replaced); a *symlink* is followed: the file it points to is
  replaced and the link kept.
* :func:`atomic_folder` — a whole folder (a dataset, an ``analyze`` output): written into a
  temporary folder, then swapped with the old folder in one step (``renameat2`` with
  ``RENAME_EXCHANGE`` on Linux; elsewhere two renames, and a reader that finds the folder
  missing restores the old one). Entries of the old folder that the new one does not
  write can be carried over (``carry``).
* :func:`check_output` — the one check of an output location every command runs before
  any work: not a folder where a file is expected (or the reverse), not a special file,
  not one of the inputs, parent folder present and writable.

Temporary files and folders live in a hidden folder ``.asymflux-partial/`` beside the
target, each with a lock file (``NAME.tmp-XXXXXXXX.lock``, ``flock``-ed by the process
writing it) that carries the program's mark: a first line only asymflux writes
(:data:`MARK`) and the name of the entry it guards. No reader looks there, so a crash never
leaves something that is read as data; :func:`clean_leftovers` (run by every writer) removes
the entries whose writer is gone **and only those**: an entry is removed only when its
marked lock file names it. Nothing else is ever deleted: not a user's files that merely
look like leftovers (``.results.old-2024jan/``, ``.thesis.20240101.tmp``), not unmarked
entries of ``.asymflux-partial/``, not the ``.NAME.tmp-*`` leftovers of asymflux versions
before the mark (remove those by hand). Readers and the dashboards' folder scans delete
nothing; a reader that finds its folder missing restores the copy a killed writer moved
aside (:func:`restore_moved_aside`).
Files and folders get the modes a plain ``open`` / ``mkdir`` would give (the umask), an
existing file's mode is kept.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import re
import secrets
import shutil
import tempfile
from pathlib import Path

try:  # POSIX advisory locks; without them leftovers are cleaned by age only
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = [
    "MARK", "STAGING", "OutputError", "atomic_folder", "atomic_path", "check_output",
    "clean_leftovers", "default_mode", "describe_os_error", "is_leftover", "link_into", "output_errors",
    "restore_moved_aside", "umask", "write_bytes_atomic", "write_text_atomic",
]

#: Hidden folder (beside a target) holding the temporary files / folders of writes in progress.
STAGING = ".asymflux-partial"
#: First line of every lock file asymflux makes in :data:`STAGING` (its second line names the
#: entry the lock guards). Only entries named by a lock file with this mark are ever removed.
MARK = b"asymflux temporary write; removed when its writer is gone\n"
# names that looked like leftovers of earlier asymflux versions, beside the target:
# ``.name.tmp-XXXX`` / ``.name.old-XXXXXXXX`` folders and ``.name.XXXXXXXX<suffix>.tmp``
# files. Never read as data, never deleted (they carry no mark: a user's file may look alike).
_LEGACY_DIR = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old)-[A-Za-z0-9_]{6,}$")
_STAGED = re.compile(r"^(?P<name>.+)\.(?P<kind>tmp|old)-[a-z0-9_]+$")
_LEGACY_FILE = re.compile(r"^\.(?P<name>.+)\.[A-Za-z0-9_]{8}(\.[^/]*)?\.tmp$")


class OutputError(ValueError):
    """An output location that cannot be written; the message is one line naming it."""


def umask() -> int:
    """The process's umask."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def default_mode(*, directory: bool = False) -> int:
    """Permissions a plainly created file / folder gets (mkstemp / mkdtemp give 0o600 / 0o700)."""
    return (0o777 if directory else 0o666) & ~umask()


def _follow(path: Path) -> Path:
    """A symlink's final target (the link is kept, the file it names is written)."""
    if path.is_symlink():
        return Path(os.path.realpath(path))
    return Path(os.path.abspath(path))  # "." and ".." have no name and no parent of their own


def _is_special(path: Path) -> bool:
    return path.exists() and not path.is_file() and not path.is_dir()


def is_leftover(path) -> bool:
    """True for the temporary files / folders of an interrupted write (never data)."""
    path = Path(path)
    return (STAGING in path.parts or bool(_LEGACY_DIR.match(path.name))
            or bool(_LEGACY_FILE.match(path.name)))


# ----------------------------------------------------------------------------- locks


def _try_lock(path: Path):
    """An fd holding an exclusive lock on ``path``, or None if another process holds it."""
    try:
        fd = os.open(path, os.O_RDWR)
    except (IsADirectoryError, FileNotFoundError):
        return None
    if fcntl is None:  # pragma: no cover
        return fd
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


@functools.cache
def _linux_call(name: str, last_arg):
    """The C library's ``name(int, char*, int, char*, last_arg)`` (``linkat``, ``renameat2``),
    loaded once, errno kept; None where it is not available (not Linux, no such symbol)."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = getattr(ctypes.CDLL(None, use_errno=True), name)
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, last_arg]
    return fn


@functools.cache
def _linkat():
    """``linkat(fd, path)`` giving an ``O_TMPFILE`` file a name (0 or an errno), or None
    where that is not available (not Linux)."""
    import ctypes

    fn = _linux_call("linkat", ctypes.c_int) if hasattr(os, "O_TMPFILE") else None
    if fn is None:
        return None
    at_fdcwd, at_symlink_follow = -100, 0x400

    def link(fd: int, path: str) -> int:
        src = f"/proc/self/fd/{fd}".encode()
        if fn(at_fdcwd, src, at_fdcwd, os.fsencode(path), at_symlink_follow) == 0:
            return 0
        return ctypes.get_errno() or errno.EIO

    return link


def _marked_lock(staging: Path, prefix: str, suffix: str) -> tuple[int, str]:
    """A new lock file ``staging/PREFIX XXXXXXXX.lock`` holding :data:`MARK` and the name of
    its entry (``PREFIX XXXXXXXX`` + ``suffix``), locked; (fd, path). On Linux it appears
    with its mark already written and locked (``O_TMPFILE``, then linked in), so a kill
    never leaves an unmarked lock file; elsewhere it is written right after ``mkstemp``."""
    def content(lock: str) -> bytes:
        return MARK + os.fsencode(Path(lock[: -len(".lock")] + suffix).name) + b"\n"

    linkat = _linkat()
    if linkat is not None:
        try:
            fd = os.open(staging, os.O_TMPFILE | os.O_RDWR, 0o600)
        except OSError:
            fd = None
        if fd is not None:
            try:
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                for _ in range(100):
                    lock = os.path.join(staging, f"{prefix}{secrets.token_hex(4)}.lock")
                    os.pwrite(fd, content(lock), 0)
                    os.ftruncate(fd, len(content(lock)))
                    err = linkat(fd, lock)
                    if err == errno.EEXIST:
                        continue
                    if err:
                        break  # not supported here: mkstemp below
                    return fd, lock
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)
    fd, lock = tempfile.mkstemp(prefix=prefix, suffix=".lock", dir=staging)
    try:
        os.write(fd, content(lock))
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
    except BaseException:
        os.close(fd)
        Path(lock).unlink(missing_ok=True)
        raise
    return fd, lock


class _Stage:
    """A locked entry (file or folder) of the staging folder beside ``parent / name``.

    The lock file ``NAME.KIND-XXXXXXXX.lock`` is made first, with :data:`MARK` and the
    entry's name written in it, then locked; the entry (``NAME.KIND-XXXXXXXX`` + ``suffix``
    for a file, without for a folder) is made after, so an entry always has its marked lock.
    """

    def __init__(self, parent: Path, name: str, kind: str, *, directory: bool, suffix: str = ""):
        self.staging = parent / STAGING
        for _ in range(20):
            try:
                self.staging.mkdir(exist_ok=True)
                fd, lock = _marked_lock(self.staging, f"{name}.{kind}-",
                                        "" if directory else suffix)
            except FileNotFoundError:  # the staging folder was just removed by a cleaner
                continue
            if os.fstat(fd).st_nlink == 0:  # a cleaner took it between mkstemp and flock
                os.close(fd)
                continue
            break
        else:  # pragma: no cover
            raise OSError(errno.EAGAIN, "cannot create a temporary file", str(self.staging))
        entry = Path(lock[: -len(".lock")] + ("" if directory else suffix))
        self.fd, self.lock, self.path = fd, Path(lock), entry
        self.directory = directory
        try:
            if directory:
                os.mkdir(self.path, 0o777)
            else:
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except BaseException:
            self.close()
            raise

    def close(self):
        if not self.directory:
            self.path.unlink(missing_ok=True)
        elif self.path.is_dir() and not self.path.is_symlink():
            shutil.rmtree(self.path, ignore_errors=True)
        self.lock.unlink(missing_ok=True)
        os.close(self.fd)
        with contextlib.suppress(OSError):
            self.staging.rmdir()  # only when empty


def clean_leftovers(parent) -> list[Path]:
    """Remove what interrupted asymflux writes left in ``parent``; returns what was removed
    or restored.

    Only entries of ``parent/.asymflux-partial`` named by a lock file carrying
    :data:`MARK` are touched, when no process holds that lock: a folder moved aside while
    being replaced (``NAME.old-*``) is renamed back to ``NAME`` when ``NAME`` is missing,
    anything else is removed with its lock file. Nothing else is deleted, whatever its name.
    Errors (read-only media, permissions) are ignored.
    """
    return _clean(Path(parent), remove=True)


def restore_moved_aside(parent) -> list[Path]:
    """Rename back to ``NAME`` a folder a killed asymflux writer moved aside while replacing
    ``parent/NAME`` (when ``NAME`` is missing); delete nothing. For readers (and the
    dashboards, which never delete in a folder a visitor names)."""
    return _clean(Path(parent), remove=False)


def _clean(parent: Path, *, remove: bool) -> list[Path]:
    done: list[Path] = []
    staging = parent / STAGING
    try:
        if not staging.is_dir() or staging.is_symlink():
            return done
        for lock in sorted(staging.glob("*.lock")):
            try:
                _clean_entry(lock, parent, done, remove=remove)
            except OSError:
                continue
        if remove or done:
            with contextlib.suppress(OSError):
                staging.rmdir()  # only when empty (a restore empties it)
    except OSError:
        pass
    return done


def _marked_entry(fd: int, lock: Path) -> Path | None:
    """The entry a lock file names, if it carries the mark (else None: not ours)."""
    data = os.pread(fd, 4096, 0)
    if not data.startswith(MARK):
        return None
    name = os.fsdecode(data[len(MARK):].split(b"\n", 1)[0])
    stem = lock.name[: -len(".lock")]
    if not name.startswith(stem) or "/" in name or os.sep in name:
        return None
    return lock.with_name(name)


def _clean_entry(lock: Path, parent: Path, done: list, *, remove: bool):
    if lock.is_symlink() or not lock.is_file():
        return
    fd = _try_lock(lock)
    if fd is None:
        return  # its writer is alive
    try:
        if os.fstat(fd).st_nlink == 0:
            return
        entry = _marked_entry(fd, lock)
        if entry is None:
            return  # not made by asymflux: never touched
        m = _STAGED.match(entry.name)
        name = m["name"] if m and m["kind"] == "old" else None
        is_dir = entry.is_dir() and not entry.is_symlink()
        if is_dir and name and not (parent / name).exists() and not (parent / name).is_symlink():
            os.rename(entry, parent / name)  # the old version of a half-replaced folder
        elif not remove:
            return
        elif is_dir:
            shutil.rmtree(entry)
        else:
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()
        done.append(entry)
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------- files


@contextlib.contextmanager
def atomic_path(path, *, suffix: str | None = None):
    """Yield a temporary path; on success it replaces ``path`` in one step.

    The temporary file keeps the target's suffix (or ``suffix``) so libraries that
    choose a format by extension (``np.savez``, pandas) behave the same. On error the
    temporary file is removed and ``path`` is untouched. The written file gets the mode of
    the file it replaces, else the umask's. A symlink is followed (the file it points to is
    replaced, the link kept); a special file (device, FIFO, socket) is written through,
    never replaced. A folder at ``path`` raises :class:`IsADirectoryError` before anything
    is written.
    """
    path = Path(path)
    target = _follow(path)
    if target.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder, expected a file name", str(path))
    suffix = suffix if suffix is not None else target.suffix
    if _is_special(target):
        fd, tmp = tempfile.mkstemp(suffix=suffix)
        os.close(fd)
        tmp = Path(tmp)
        try:
            yield tmp
            with open(tmp, "rb") as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
        finally:
            tmp.unlink(missing_ok=True)
        return
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(parent)
    mode = (target.stat().st_mode & 0o7777) if target.is_file() else default_mode()
    stage = _Stage(parent, target.name, "tmp", directory=False, suffix=suffix)
    try:
        yield stage.path
        os.chmod(stage.path, mode)
        os.replace(stage.path, target)
    finally:
        stage.close()


def write_bytes_atomic(path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


# ----------------------------------------------------------------------------- folders


def link_into(src: Path, dst: Path) -> None:
    """Put ``src`` (a file or a folder tree) at ``dst`` as hard links, copying where links
    are not possible. Symlinks are copied as symlinks."""
    src, dst = Path(src), Path(dst)
    if src.is_symlink():
        os.symlink(os.readlink(src), dst)
    elif src.is_dir():
        os.mkdir(dst)
        shutil.copystat(src, dst)
        for child in src.iterdir():
            link_into(child, dst / child.name)
    else:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False if unsupported."""
    import ctypes

    renameat2 = _linux_call("renameat2", ctypes.c_uint)
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


@contextlib.contextmanager
def atomic_folder(path, *, carry=None):
    """Yield an empty temporary folder; on success it replaces the folder ``path`` in one step.

    ``carry(old, new)``, if given, is called with the existing folder and the completed
    temporary one just before the swap, to bring over entries of the old folder the new one
    should keep (use :func:`link_into`: the old folder is removed after the swap). A
    symlink ``path`` is followed (the link is kept). On error nothing changes at ``path``.
    """
    path = Path(path)
    target = _follow(path)
    if target.exists() and not target.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "exists and is not a folder", str(path))
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(parent)
    stage = _Stage(parent, target.name, "tmp", directory=True)
    try:
        os.chmod(stage.path, default_mode(directory=True))
        yield stage.path
        if not target.exists():
            os.rename(stage.path, target)
            return
        if carry is not None:
            carry(target, stage.path)
        if _exchange(stage.path, target):
            return  # the old folder is now at stage.path, removed by close()
        old = _Stage(parent, target.name, "old", directory=True)
        try:
            os.rename(target, old.path)
            os.rename(stage.path, target)
        except BaseException:
            if not target.exists():
                os.rename(old.path, target)
            raise
        finally:
            old.close()
    finally:
        stage.close()


# ----------------------------------------------------------------------------- checks


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return Path(os.path.realpath(a)) == Path(os.path.realpath(b))


def _inside(a: Path, b: Path) -> bool:
    """``a`` lies inside the folder ``b``."""
    ra, rb = Path(os.path.realpath(a)), Path(os.path.realpath(b))
    return rb in ra.parents


def check_output(path, *, what: str = "--out", folder: bool = False, inputs=(),
                 input_folders=(), accept_folder=None) -> Path:
    """Check an output location before any work; return it as a Path.

    Raises :class:`OutputError` (a ValueError, one line naming ``what`` and the path) when
    ``path`` is a folder and a file is expected or the reverse, a special file (device,
    FIFO, socket), one of ``inputs`` or of ``input_folders`` (or holds one of them, or lies
    inside one of ``inputs``), when its parent folder is missing, not a folder or not
    writable, or (``folder=True``) an existing non-empty folder that ``accept_folder(path)``
    does not accept. A symlink is checked as the file or folder it points to.
    """
    path = Path(path)
    target = _follow(path)
    noun = "folder" if folder else "file"
    if target.exists():
        if _is_special(target):
            raise OutputError(f"{what} {path}: is a special file (device, FIFO or socket); "
                              f"expected a {noun} name")
        if folder and not target.is_dir():
            raise OutputError(f"{what} {path}: is a file; expected a folder")
        if not folder and target.is_dir():
            raise OutputError(f"{what} {path}: is a folder; expected a file name")
    for p in inputs:
        p = Path(p)
        if not p.exists() and not p.is_symlink():
            continue
        kind = "folder" if p.is_dir() else "file"
        if _same(target, p) or _inside(target, p):
            raise OutputError(f"{what} {path}: is {'inside ' if not _same(target, p) else ''}"
                              f"the input {kind} {p}; choose another output")
    for p in (*inputs, *input_folders):
        p = Path(p)
        kind = "folder" if p.is_dir() else "file"
        if p.exists() and (_same(target, p) or (folder and _inside(p, target))):
            raise OutputError(f"{what} {path}: {'is' if _same(target, p) else 'holds'} the "
                              f"input {kind} {p}; choose another output")
    parent = target.parent
    if not parent.exists():
        raise OutputError(f"{what} {path}: folder {parent} does not exist")
    if not parent.is_dir():
        raise OutputError(f"{what} {path}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{what} {path}: folder {parent} is not writable")
    if target.exists() and not os.access(target, os.W_OK):
        raise OutputError(f"{what} {path}: is not writable")
    if (folder and target.is_dir() and accept_folder is not None
            and any(not c.name.startswith(".") for c in target.iterdir())
            and not accept_folder(target)):
        raise OutputError(f"{what} {path}: is a folder that holds other files; choose a new "
                          "or empty folder")
    return path


def describe_os_error(exc: OSError) -> str:
    """What went wrong, in words: "disk full" for ENOSPC / EDQUOT, else the system's text."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT) or "No space left" in str(exc):
        return "disk full (no space left on the device)"
    return exc.strerror or str(exc) or "the system refused the write"


@contextlib.contextmanager
def output_errors(path, *, what: str = "--out"):
    """Turn an OSError while writing ``path`` into an :class:`OutputError` (one line naming
    the file, and "disk full" when it is)."""
    try:
        yield
    except OSError as e:
        where = e.filename or path
        if STAGING in Path(str(where)).parts:  # a temporary file: name the output
            where = path
        raise OutputError(f"{what} {path}: cannot write {where}: {describe_os_error(e)}") from e
