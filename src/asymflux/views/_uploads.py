"""Uploaded zips of dataset folders: unpacked (members outside the folder, and zip bombs,
refused before anything is written) into ``asymflux-upload-*`` folders of the temporary
directory; each removed when the session that uploaded it ends, and all of them when the
server stops. Panel-free."""

from __future__ import annotations

import tempfile
import threading
import zipfile
from pathlib import Path

from ._errors import DatasetSpecError

_LOCK = threading.RLock()
_TEMP_DIRS: set = set()


def _track_dir(path) -> None:
    from ._runtime import stop_with_server  # (Panel: imported by a server, not by _compute)

    with _LOCK:
        _TEMP_DIRS.add(str(path))
    stop_with_server(_remove_all, rank=2)


def remove_dir(path) -> None:
    import shutil

    with _LOCK:
        _TEMP_DIRS.discard(str(path))
    shutil.rmtree(path, ignore_errors=True)


def _remove_all() -> None:
    """The server's stop (:func:`_runtime.shutdown`): every upload folder left removed."""
    with _LOCK:
        dirs = list(_TEMP_DIRS)
    for d in dirs:
        remove_dir(d)


def upload_root(folder) -> Path:
    """The ``asymflux-upload-*`` folder holding an unpacked dataset folder."""
    p = Path(folder)
    for q in (p, *p.parents):
        if q.name.startswith("asymflux-upload-"):
            return q
    return p


def save_upload(data: bytes, filename: str) -> str:
    """Unpack an uploaded zip of a dataset folder into a new ``asymflux-upload-*`` folder of
    the temporary directory; returns the dataset folder's path as text. The folder is
    removed by :func:`remove_dir` (the views call it when their session ends) or when the
    server stops."""
    name = str(filename or "the upload")
    if not data:
        raise DatasetSpecError(f"{name}: the upload is empty; expected a .zip of one dataset "
                               "folder")
    if not name.lower().endswith(".zip"):
        raise DatasetSpecError(f"{name}: upload a .zip of one dataset folder (with "
                               "metadata.json), not this file")
    folder = extract_zip(data, name=name)
    _track_dir(upload_root(folder))
    return str(folder)


def extract_zip(data: bytes, *, name="upload.zip", into=None) -> Path:
    """Unpack an uploaded zip of a dataset folder; return the folder holding ``metadata.json``.

    Members that would land outside the target folder are refused.
    """
    import io
    import shutil
    import zlib

    expected = "expected a .zip of one dataset folder (docs/dataset-format.md)"
    target = Path(tempfile.mkdtemp(prefix="asymflux-upload-", dir=into))
    try:
        try:
            zf = zipfile.ZipFile(io.BytesIO(data))
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError,
                OverflowError) as e:
            raise DatasetSpecError(f"{name}: not a zip file ({e}); {expected}") from None
        with zf:
            root = target.resolve()
            members = zf.infolist()
            _check_unpacked_size(members, len(data), name=name, target=target,
                                 expected=expected)
            for member in members:
                dest = (target / member.filename).resolve()
                if root not in dest.parents and dest != root:
                    raise DatasetSpecError(f"{name}: member {member.filename!r} escapes the "
                                           f"folder; {expected}")
            for member in members:
                try:
                    zf.extract(member, target)
                except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError,
                        ValueError, OverflowError, RuntimeError) as e:
                    raise DatasetSpecError(
                        f"{name}: member {member.filename!r} cannot be unpacked "
                        f"({type(e).__name__}: {e}); {expected}") from None
                except OSError as e:
                    raise DatasetSpecError(
                        f"{name}: member {member.filename!r} cannot be written to {target} "
                        f"({e.strerror or e})") from None
        found = sorted(p.parent for p in target.rglob("metadata.json"))
        if not found:
            raise DatasetSpecError(f"{name}: no dataset folder (with metadata.json) inside the "
                                   f"zip; {expected}")
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)  # a failed upload leaves nothing behind
        raise
    return found[0]


MAX_ZIP_RATIO = 100
"""An upload that unpacks to more than this many times its size (and above
:data:`MIN_ZIP_CHECK_BYTES`) is refused before unpacking: a zip bomb, not microscopy data
(image data compresses a few times at most)."""
MIN_ZIP_CHECK_BYTES = 64 * 1024**2


def _check_unpacked_size(members, n_bytes, *, name, target, expected) -> None:
    """Refuse, before unpacking anything, a zip that unpacks to far more than its size
    (:data:`MAX_ZIP_RATIO`) or to more than the free space of ``target``."""
    import shutil

    total = sum(max(0, int(m.file_size)) for m in members)
    if not members or total <= MIN_ZIP_CHECK_BYTES:
        return
    largest = max(members, key=lambda m: m.file_size)
    what = (f"{name}: unpacks to {total / 1e6:,.0f} MB ({len(members)} member(s); "
            f"{largest.filename!r} alone {largest.file_size / 1e6:,.0f} MB)")
    if total > MAX_ZIP_RATIO * max(int(n_bytes), 1):
        raise DatasetSpecError(f"{what} from {n_bytes / 1e6:,.2g} MB, more than "
                               f"{MAX_ZIP_RATIO} times its size: refused as a zip bomb; "
                               f"{expected}")
    free = shutil.disk_usage(target).free
    if total > free:
        raise DatasetSpecError(f"{what}, more than the {free / 1e6:,.0f} MB free in "
                               f"{target.parent}; {expected}")
