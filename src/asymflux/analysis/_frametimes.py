"""Frame times: a table of per-frame times for bare stacks, and what the camera's timing says
(gaps where frames were dropped, irregular spacing)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["read_frame_times", "timing_warnings", "GAP_FACTOR", "IRREGULAR_SPREAD"]

#: A step between frames longer than this many median steps is a gap (dropped frames).
GAP_FACTOR = 1.5
#: Steps whose spread (max - min) exceeds this fraction of the median step are irregular.
IRREGULAR_SPREAD = 0.1


def read_frame_times(path, *, n_frames=None) -> np.ndarray:
    """Frame times (s) from a CSV table: a ``time_s`` column, one row per frame, and
    optionally a ``frame`` column (0, 1, ..., in any order), as a dataset folder's
    ``frames.csv``. ValueError naming the file and what is wrong.

    Parameters
    ----------
    path : path-like
        The CSV file.
    n_frames : int, optional
        The stack's number of frames: the table must have one row per frame.

    Returns
    -------
    (n_frames,) float64 array, strictly increasing
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such frame-time file")
    try:
        table = pd.read_csv(path)
    except (ValueError, OSError) as e:
        raise ValueError(f"{path}: cannot read it as a CSV table ({e})") from None
    table.columns = [str(c).strip() for c in table.columns]
    if "time_s" not in table.columns:
        raise ValueError(f"{path}: no time_s column (the frame times in seconds); it has "
                         f"{list(table.columns)}")
    t = pd.to_numeric(table["time_s"], errors="coerce").to_numpy(np.float64)
    if "frame" in table.columns:
        frame = pd.to_numeric(table["frame"], errors="coerce").to_numpy(np.float64)
        if not np.array_equal(np.sort(frame), np.arange(len(frame))):
            raise ValueError(f"{path}: the frame column must hold 0, 1, ..., "
                             f"{len(frame) - 1} once each")
        t = t[np.argsort(frame)]
    bad = np.flatnonzero(~np.isfinite(t))
    if bad.size:
        raise ValueError(f"{path}: time_s row {int(bad[0]) + 1} is not a number")
    if n_frames is not None and t.size != int(n_frames):
        raise ValueError(f"{path}: {t.size} frame times for a stack of {int(n_frames)} frames")
    step = np.diff(t)
    if step.size and not (step > 0).all():
        k = int(np.flatnonzero(~(step > 0))[0])
        raise ValueError(f"{path}: time_s must increase strictly; frame {k + 1} "
                         f"({t[k + 1]:g} s) is not after frame {k} ({t[k]:g} s)")
    return t


def timing_warnings(time_s, *, name="") -> list[str]:
    """What the frame times say about the camera: gaps (a step longer than
    :data:`GAP_FACTOR` median steps: dropped frames) and irregular spacing (steps spread
    over more than :data:`IRREGULAR_SPREAD` of the median step). One line each."""
    t = np.asarray(time_s, dtype=np.float64)
    if t.size < 3 or not np.isfinite(t).all():
        return []
    step = np.diff(t)
    med = float(np.median(step))
    if not med > 0:
        return []
    where = f"{name}: " if name else ""
    out = []
    gaps = np.flatnonzero(step > GAP_FACTOR * med)
    if gaps.size:
        shown = ", ".join(f"{int(k) + 1} ({step[k]:.3g} s)" for k in gaps[:8])
        missing = int(np.sum(np.rint(step[gaps] / med) - 1))
        out.append(f"{where}the frame times have {gaps.size} gap(s) longer than "
                   f"{GAP_FACTOR:g} x the median step {med:.3g} s, before frame(s) {shown}: "
                   f"about {missing} frame(s) dropped; the times are used as they are (a bare "
                   "stack with --frame-interval-s has no way to know: give --frame-times)")
    regular = np.delete(step, gaps)
    if regular.size >= 2 and (regular.max() - regular.min()) > IRREGULAR_SPREAD * med:
        out.append(f"{where}the frame times are irregular: steps from {regular.min():.3g} to "
                   f"{regular.max():.3g} s (median {med:.3g} s); the capacity of each frame "
                   "follows its own time")
    return out
