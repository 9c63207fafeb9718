"""What made an output: the provenance record every command writes beside its outputs.

:func:`provenance` collects the asymflux and library versions, the Python and platform,
the command line, every option, and each input file with its size and SHA-256 hash.
:func:`provenance_path` says where the record goes: ``provenance.json`` inside a folder
output (``analyze``, ``fit --all``, ``report``), ``<name>.provenance.json`` beside a file
output (``fit.json`` → ``fit.provenance.json``, ``cohort.csv`` → ``cohort.provenance.json``,
``sim.npz`` → ``sim.provenance.json``). Commands write it in the same transaction as their
outputs (:mod:`asymflux._atomic`).

>>> from asymflux.provenance import provenance
>>> record = provenance("fit", inputs=["data/metadata.json"], options={"particle": 1})  # doctest: +SKIP
>>> record["inputs"][0]["sha256"]                                                     # doctest: +SKIP
'9f86d0...'
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import platform
import sys
from importlib import metadata
from pathlib import Path

__all__ = ["LIBRARIES", "file_record", "options_of", "provenance", "provenance_path",
           "sha256_file", "to_json", "write_beside"]

#: Libraries whose versions a record lists (those installed).
LIBRARIES = ("numpy", "scipy", "pandas", "scikit-image", "tifffile", "numba", "matplotlib",
             "pyarrow", "dask", "napari", "platformdirs")

_CHUNK = 1 << 20


def sha256_file(path) -> str:
    """SHA-256 hex digest of a file's bytes (read in 1 MiB chunks)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def file_record(path) -> dict:
    """``{"path", "size_bytes", "sha256"}`` of one file; a folder: one record per file in it
    (recursively, sorted); a missing path: ``{"path", "missing": True}``."""
    path = Path(path)
    if path.is_dir():
        return {"path": str(path), "files": [file_record(p) for p in sorted(path.rglob("*"))
                                             if p.is_file() and ".asymflux-partial" not in p.parts]}
    if not path.is_file():
        return {"path": str(path), "missing": True}
    return {"path": str(path), "size_bytes": path.stat().st_size, "sha256": _sha256_of(path)}


#: Files of this size or more (movies) have their SHA-256 computed once per identity (path,
#: size, modification time, inode, a hash of their first and last 64 KiB: the results
#: cache's, :func:`asymflux.analysis._cache.input_identity`) and remembered in the results
#: cache, so that a second run on an unchanged multi-GB movie does not read it all again.
REMEMBER_SHA256_BYTES = 64 << 20


def _sha256_of(path: Path) -> str:
    if path.stat().st_size < REMEMBER_SHA256_BYTES:
        return sha256_file(path)
    from .analysis import cached

    return cached("sha256_file", [path], {}, lambda: sha256_file(path))


def _versions() -> dict:
    from . import __version__

    out = {"asymflux": __version__, "python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return repr(value) if callable(value) else str(value)


def options_of(args: argparse.Namespace) -> dict:
    """Every option of a parsed command line (without the handler)."""
    return {k: _jsonable(v) for k, v in sorted(vars(args).items()) if k != "func"}


def provenance(command: str, *, inputs=(), options=None, outputs=(), extra=None) -> dict:
    """The provenance record of one run of ``command``.

    Parameters
    ----------
    command : str
        The sub-command (``"analyze"``, ``"fit"``, ...).
    inputs : iterable of path-like
        Files (or folders: every file in them) read; each gets its size and SHA-256.
    options : dict or argparse.Namespace, optional
        Every option of the run.
    outputs : iterable of path-like
        What the run wrote (names only).
    extra : dict, optional
        Anything else worth recording (e.g. the fit's uncertainty method).

    Returns
    -------
    dict
        ``command``, ``argv``, ``created_utc``, ``versions``, ``platform``, ``inputs``,
        ``options``, ``outputs`` (and ``extra``), JSON-ready.
    """
    if isinstance(options, argparse.Namespace):
        options = options_of(options)
    seen, records = set(), []
    for p in inputs:
        key = str(Path(p).absolute())
        if key not in seen:
            seen.add(key)
            records.append(file_record(p))
    record = {
        "command": command,
        "argv": list(sys.argv),
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "versions": _versions(),
        "platform": platform.platform(),
        "inputs": records,
        "options": _jsonable(options or {}),
        "outputs": [str(p) for p in outputs],
    }
    if extra:
        record["extra"] = _jsonable(extra)
    return record


def to_json(record: dict) -> str:
    """The record as indented JSON text (what ``provenance.json`` holds)."""
    return json.dumps(record, indent=2, default=str) + "\n"


def provenance_path(output, *, folder: bool = False) -> Path:
    """Where the provenance of ``output`` goes: ``output/provenance.json`` for a folder
    output (``folder=True``), ``<stem>.provenance.json`` beside a file output."""
    output = Path(output)
    if folder:
        return output / "provenance.json"
    return output.with_name(f"{output.stem}.provenance.json")


def write_beside(output, record: dict):
    """A context manager for commands writing one file ``output``: yields the temporary
    path of ``output``; on exit the provenance record is written to
    :func:`provenance_path` and both files are renamed into place together (neither
    appears if the command fails inside the block)."""
    import contextlib

    from ._atomic import atomic_path

    @contextlib.contextmanager
    def _both():
        with atomic_path(provenance_path(output)) as prov_tmp, atomic_path(output) as tmp:
            yield tmp
            Path(prov_tmp).write_text(to_json(record), encoding="utf-8")

    return _both()
