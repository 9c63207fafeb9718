"""Live operando mode: analyse a movie and its cycler file while they are written.

- :class:`LiveAnalysis` (Qt-free): ``update()`` looks at the files again, measures the new
  frames (O(frame) each) and returns a :class:`LiveUpdate` saying what changed;
  ``timeseries`` / ``particles`` are the tables so far; ``finish()`` runs the batch
  pipeline of ``asymflux analyze`` on the finished files (:class:`FinalResult`).
- sources: :func:`open_movie` (HDF5 in SWMR mode, zarr, TIFF folder), :class:`CyclerTail`
  (complete records only), :func:`finished_marker`.
- :class:`LiveWriter` / :func:`write_demo_live`: write a movie frame by frame
  (``asymflux demo-live``).

- :class:`LiveOutput`: the output folder of a watch, kept up to date at O(new rows) per
  update (:func:`live_status`: its ``live.json``).

``asymflux watch`` and ``asymflux demo-live`` are in :mod:`asymflux.cli.live`; see
``docs/live.md``. Submodules are imported on first use.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "LiveAnalysis": "_analysis",
    "LiveUpdate": "_analysis",
    "FinalResult": "_analysis",
    "compare_timeseries": "_analysis",
    "open_movie": "_sources",
    "MovieSource": "_sources",
    "CyclerTail": "_sources",
    "finished_marker": "_sources",
    "read_manifest": "_sources",
    "LiveWriter": "_writer",
    "write_demo_live": "_writer",
    "LiveOutput": "_output",
    "live_status": "_output",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'asymflux.live' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{mod}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
