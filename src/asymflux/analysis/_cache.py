"""Analysis results kept on disk and reused: never measure the same inputs twice.

- :func:`cached`: ``compute()``'s value read from the cache when an entry with the same key
  exists, else computed and stored; :func:`lookup`: the entry's value or None.
- :func:`cache_key`: the key: the inputs' identity (:func:`input_identity`), every option,
  the asymflux version and a digest of the analysis and reading code.
- :func:`results_cache_dir` (where the entries live), :func:`clear_results_cache`.

Where: ``$ASYMFLUX_RESULTS_CACHE`` if set, else ``<cache>/results/`` with ``<cache>`` the
folder of the demo datasets (:func:`asymflux.datasets.cache_dir`): ``$ASYMFLUX_CACHE`` if
set, else ``platformdirs.user_cache_dir("asymflux")`` (``$XDG_CACHE_HOME/asymflux``, by
default ``~/.cache/asymflux`` on Linux). One file per key, ``<2 hex>/<64 hex>.pkl``.

The identity of an input file is its resolved path, size, modification time (ns), inode,
and a SHA-256 of its bytes when it is small (<= 256 KiB: metadata, tables) or of its first
and last 64 KiB (headers, the TIFF/HDF5 metadata at either end) when it is large: a
multi-GB movie is never read in full to find its entry. A folder: every file in it. Any
change of a file (rewritten, touched, replaced, moved) or of an option gives another key.

Two writers of one key: each writes its own temporary file and renames it over the entry
(:func:`asymflux._atomic.write_bytes_atomic`): a reader sees a whole entry or none. An
entry that cannot be read (a pickle of another Python, a damaged file) is a miss and is
replaced. Entries are pickles: the cache folder is as trusted as the code (it is the user's
own); no entry is ever read from elsewhere. Nothing is evicted: clear the folder
(:func:`clear_results_cache`, or delete it) to reclaim the space.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pickle
import threading
from functools import lru_cache
from pathlib import Path

__all__ = ["cached", "lookup", "cache_key", "input_identity", "results_cache_dir",
           "clear_results_cache", "entry_path", "CACHE_FORMAT", "ENV_RESULTS_CACHE",
           "Uncacheable"]

#: Bump when what an entry holds changes (the code digest covers the analysis itself).
CACHE_FORMAT = 1

_SMALL_BYTES = 256 << 10  # files up to this size are hashed in full
_EDGE_BYTES = 64 << 10  # of larger files: the first and last 64 KiB
_MAX_SAMPLED = 64  # of a folder's large files, at most this many are sampled (the rest: stat)


class Uncacheable(TypeError):
    """An option the key cannot hold exactly (the value is then computed, not cached)."""


#: Environment variable naming the results cache folder itself (default: ``results`` in
#: the asymflux cache folder, :func:`asymflux.datasets.cache_dir`).
ENV_RESULTS_CACHE = "ASYMFLUX_RESULTS_CACHE"


def results_cache_dir() -> Path:
    """The results cache: ``$ASYMFLUX_RESULTS_CACHE``, else ``<asymflux cache folder>/results``
    (``$ASYMFLUX_CACHE``, else the user's cache folder: module docstring)."""
    env = os.environ.get(ENV_RESULTS_CACHE)
    if env:
        return Path(env).expanduser()
    from asymflux.datasets import cache_dir

    return cache_dir() / "results"


def clear_results_cache(folder=None) -> int:
    """Remove every entry of the results cache (``folder``: default
    :func:`results_cache_dir`); return the number removed."""
    import shutil

    folder = Path(folder) if folder is not None else results_cache_dir()
    n = 0
    if folder.is_dir():
        n = sum(1 for _ in folder.glob("*/*.pkl"))
        shutil.rmtree(folder, ignore_errors=True)
    return n


@lru_cache(maxsize=1)
def _code_digest() -> str:
    """SHA-256 of the source of the code that reads and measures a dataset."""
    root = Path(__file__).resolve().parent.parent
    files = sorted((root / "analysis").glob("*.py")) + sorted((root / "io").glob("*.py"))
    files += [root / n for n in ("optics.py", "_validate.py", "__init__.py")]
    h = hashlib.sha256()
    for f in files:
        if f.is_file():
            h.update(f.name.encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def _sample(path: Path, size: int, *, whole: bool) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        if whole:
            h.update(fh.read())
        else:
            h.update(fh.read(_EDGE_BYTES))
            fh.seek(max(size - _EDGE_BYTES, 0))
            h.update(fh.read(_EDGE_BYTES))
    return h.hexdigest()


def _file_identity(path: Path, *, sample: bool = True) -> dict:
    st = path.stat()
    out = {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
           "inode": st.st_ino}
    if sample or st.st_size <= _SMALL_BYTES:
        out["sha256"] = _sample(path, st.st_size, whole=st.st_size <= _SMALL_BYTES)
    return out


def input_identity(path) -> dict:
    """The identity of an input file or folder, cheap to compute (module docstring).

    Parameters
    ----------
    path : path-like
        A file, or a folder (every file in it, recursively; the leftovers of an interrupted
        write are left out).

    Returns
    -------
    dict
        ``{"path", "size", "mtime_ns", "inode", "sha256"}`` for a file; ``{"path",
        "files": [...]}`` for a folder; ``{"path", "missing": True}`` for nothing there.
    """
    from asymflux._atomic import is_leftover

    path = Path(path).resolve()
    if path.is_file():
        return _file_identity(path)
    if not path.is_dir():
        return {"path": str(path), "missing": True}
    files, n_sampled = [], 0
    for f in sorted(path.rglob("*")):
        rel = f.relative_to(path)
        if any(is_leftover(p) or p == ".asymflux-partial" for p in rel.parts) \
                or not f.is_file():
            continue
        ident = _file_identity(f, sample=n_sampled < _MAX_SAMPLED)
        n_sampled += ident["size"] > _SMALL_BYTES
        ident["path"] = str(rel)
        files.append(ident)
    return {"path": str(path), "files": files}


def _canonical(value):
    """``value`` as plain JSON values that say exactly what it is (Uncacheable if not)."""
    import numpy as np

    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return {"float": value.hex()}
    if isinstance(value, Path):
        return {"file": input_identity(value)}
    if isinstance(value, np.generic):
        return _canonical(value.item())
    if isinstance(value, np.ndarray):
        arr = np.ascontiguousarray(value)
        if arr.dtype.hasobject:
            raise Uncacheable("an array of Python objects")
        return {"array": str(arr.dtype), "shape": list(arr.shape),
                "sha256": hashlib.sha256(arr.view(np.uint8).ravel()).hexdigest()}
    if isinstance(value, dict):
        return {"dict": sorted([[str(k), _canonical(v)] for k, v in value.items()],
                               key=lambda kv: kv[0])}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"dataclass": type(value).__qualname__,
                "fields": _canonical({f.name: getattr(value, f.name)
                                      for f in dataclasses.fields(value)})}
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is a dependency
        pd = None
    if pd is not None and isinstance(value, pd.DataFrame | pd.Series):
        frame = value.to_frame() if isinstance(value, pd.Series) else value
        return {"table": [str(c) for c in frame.columns],
                "dtypes": [str(t) for t in frame.dtypes],
                "hash": _canonical(pd.util.hash_pandas_object(frame, index=True).to_numpy())}
    raise Uncacheable(f"an option of type {type(value).__name__}")


def cache_key(kind: str, inputs, options) -> tuple[str, str]:
    """The key of a result: ``(hex SHA-256, the JSON text it is the hash of)``.

    Parameters
    ----------
    kind : str
        What computes the result (e.g. ``"analyze_path"``).
    inputs : list of path-like
        The files and folders the result is computed from (:func:`input_identity`).
    options : dict
        Every option of the computation; a :class:`~pathlib.Path` among them counts as an
        input file.

    Raises
    ------
    Uncacheable
        An option of a type the key cannot hold exactly (e.g. an arbitrary object).
    """
    from asymflux import __version__

    text = json.dumps({"format": CACHE_FORMAT, "kind": kind, "version": __version__,
                       "code": _code_digest(),
                       "inputs": [input_identity(p) for p in inputs],
                       "options": _canonical(options)}, sort_keys=True, allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest(), text


def _folder(cache) -> Path | None:
    if cache is None or cache is False:
        return None
    if cache is True:
        return results_cache_dir()
    return Path(cache)


def entry_path(folder, key: str) -> Path:
    """The file of the entry ``key`` in the cache ``folder``."""
    return Path(folder) / key[:2] / f"{key}.pkl"


_MISS = object()


def _load(entry: Path, text: str):
    try:
        with open(entry, "rb") as fh:
            record = pickle.load(fh)
    except FileNotFoundError:
        return _MISS
    except Exception:  # noqa: BLE001 - a damaged or foreign entry is a miss (and replaced)
        return _MISS
    if not isinstance(record, dict) or record.get("key") != text:
        return _MISS
    return record["value"]


def _store(entry: Path, text: str, value) -> bool:
    from asymflux._atomic import write_bytes_atomic

    try:
        data = pickle.dumps({"key": text, "value": value}, protocol=pickle.HIGHEST_PROTOCOL)
        entry.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(entry, data)
    except (OSError, pickle.PicklingError, TypeError, AttributeError):
        return False  # a read-only or full disk: the result is still returned
    return True


#: What the last :func:`cached` call of this thread did: ``last.hit`` (read from the cache)
#: and ``last.entry`` (its file, None when nothing was read or stored): for messages and tests.
last = threading.local()


def lookup(kind: str, inputs, options, *, cache=True):
    """The value :func:`cached` stored for this key, or None (nothing computed or written)."""
    folder = _folder(cache)
    last.hit, last.entry = False, None
    if folder is None:
        return None
    try:
        key, text = cache_key(kind, inputs, options)
    except (Uncacheable, OSError):
        return None
    entry = entry_path(folder, key)
    value = _load(entry, text)
    if value is _MISS:
        return None
    last.hit, last.entry = True, entry
    return value


def cached(kind: str, inputs, options, compute, *, cache=True):
    """``compute()``, or its earlier value from the results cache.

    Parameters
    ----------
    kind, inputs, options
        The key (:func:`cache_key`): what computes, from which files, with which options.
    compute : callable
        Called with no argument when there is no entry; its value is stored (it must
        pickle). An exception propagates and nothing is stored.
    cache : bool or path-like
        True: the results cache (:func:`results_cache_dir`); a folder: that one; False or
        None: ``compute()`` and nothing read or written.

    Returns
    -------
    object
        ``compute()``'s value, or an equal one read from the cache.

    Notes
    -----
    Options the key cannot hold (:class:`Uncacheable`) or inputs that cannot be read
    (OSError) bypass the cache. A value is stored only when the inputs' identity is the same
    after ``compute()`` as before (a file written meanwhile: not stored).
    """
    folder = _folder(cache)
    last.hit, last.entry = False, None
    if folder is None:
        return compute()
    try:
        key, text = cache_key(kind, inputs, options)
    except (Uncacheable, OSError):
        return compute()
    entry = entry_path(folder, key)
    value = _load(entry, text)
    if value is not _MISS:
        last.hit, last.entry = True, entry
        return value
    value = compute()
    try:
        unchanged = cache_key(kind, inputs, options)[0] == key
    except (Uncacheable, OSError):
        unchanged = False
    if unchanged and _store(entry, text, value):
        last.entry = entry
    return value

