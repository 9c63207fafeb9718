"""Movies over several charge and discharge half-cycles.

A movie that spans several half-cycles is cut into them, and each is measured against its
own reference frame, as a single charge is measured against frame 0.

The rule (docs/analysis.md, "Movies over several half-cycles"):

- **Half-cycles from the cycler's current** (:func:`find_half_cycles`). A record is a rest
  when ``|current| <= rest_fraction`` (default 1 %) times the 99th percentile of
  ``|current|`` over the file (its working current), else charge
  (current > 0, the sign convention of :func:`asymflux.io.read_echem`) or discharge. A run
  of records of one sign that lasts less than ``min_duration_s`` (default 60 s; the run
  lasts until the record after its last one) is a pulse, not a half-cycle, and is left out
  as a rest is. Runs of one sign separated only by rests and pulses (GITT, pauses) are one
  half-cycle; a change of sign starts a new one. A half-cycle starts at its first record.
- **Frames** (:func:`frame_segments`). Half-cycle k's reference frame is the last frame
  taken at or before its start (the state before its current flows); its frames run from
  there to the frame before the next half-cycle's reference (the rest after it, if any,
  included). The first half-cycle of the movie always starts at frame 0 (a movie that
  starts within a half-cycle is measured against frame 0, as today).
- **Measuring**. On charge the unreacted region is ``dI < threshold`` (dI relative to the
  half-cycle's reference frame): the Li-rich core not yet delithiated. On discharge the
  delithiated particle lithiates back and its intensity falls, so dI is *negative* where it
  has changed: the unreacted region ("core") is the region not yet changed since the
  reference frame, ``-dI < threshold``. d, d/R_eq and the direction are measured on that
  region in both cases. ``capacity_mAh_g`` is counted from the half-cycle's reference
  frame and positive in both directions (charge passed in or out per gram since then); the
  cycler's net capacity is kept in ``net_capacity_mAh_g``.

A movie of one charge (or no current known) is measured exactly as before: no new column.
"""

from __future__ import annotations

import numpy as np

__all__ = ["find_half_cycles", "frame_segments", "dataset_segments", "measure_half_cycles",
           "FrameRange", "DEFAULT_MIN_DURATION_S", "DEFAULT_REST_FRACTION"]

#: A run of one current sign shorter than this is a pulse, not a half-cycle (seconds).
DEFAULT_MIN_DURATION_S = 60.0
#: A record whose |current| is at most this fraction of the working current (the 99th
#: percentile of |current|) is a rest.
DEFAULT_REST_FRACTION = 0.01

DIRECTIONS = {1: "charge", -1: "discharge"}


def find_half_cycles(time_s, current_mA, *, min_duration_s=DEFAULT_MIN_DURATION_S,
                     rest_fraction=DEFAULT_REST_FRACTION):
    """The half-cycles of a cycler record (see the module's rule).

    Parameters
    ----------
    time_s, current_mA : (n_records,) arrays
        The cycler's records (``asymflux.io.read_echem``: current > 0 on charge); records
        with a NaN time or current are left out.
    min_duration_s : float, keyword-only
        Runs of one sign shorter than this are pulses (left out).
    rest_fraction : float, keyword-only
        Records with ``|current| <= rest_fraction`` times the 99th percentile of
        ``|current|`` are rests.

    Returns
    -------
    pandas.DataFrame
        One row per half-cycle, in time order: ``half_cycle`` (0, 1, ...), ``direction``
        (``"charge"`` or ``"discharge"``), ``start_s``, ``end_s`` (first record, and the
        record after the last one, or the last one), ``n_records``.
    """
    import pandas as pd

    from .._validate import check_range

    check_range("min_duration_s", min_duration_s, 0, None)
    check_range("rest_fraction", rest_fraction, 0, 1, high_inclusive=False)
    t = np.asarray(time_s, dtype=np.float64).reshape(-1)
    i = np.asarray(current_mA, dtype=np.float64).reshape(-1)
    if t.shape != i.shape:
        raise ValueError(f"time_s and current_mA must have one value per record, got {t.size} "
                         f"and {i.size}")
    ok = np.isfinite(t) & np.isfinite(i)
    t, i = t[ok], i[ok]
    order = np.argsort(t, kind="stable")
    t, i = t[order], i[order]
    columns = ["half_cycle", "direction", "start_s", "end_s", "n_records"]
    if not t.size or not np.any(i != 0):
        return pd.DataFrame({c: [] for c in columns})
    sign = np.sign(i).astype(int)
    # the file's working current: the 99th percentile of |I| (a glitch of a few records
    # does not set it)
    sign[np.abs(i) <= rest_fraction * np.percentile(np.abs(i), 99)] = 0
    # runs of one sign: [a, b) record ranges
    edges = np.flatnonzero(np.diff(sign)) + 1
    starts, stops = np.r_[0, edges], np.r_[edges, sign.size]
    runs = []  # (sign, first record, stop record)
    for a, b in zip(starts, stops, strict=True):
        if sign[a] == 0:
            continue
        end = t[b] if b < t.size else t[b - 1]
        if end - t[a] >= min_duration_s:
            runs.append((int(sign[a]), int(a), int(b)))
    cycles = []
    for s, a, b in runs:
        if cycles and cycles[-1][0] == s:
            cycles[-1][2] = b
        else:
            cycles.append([s, a, b])
    rows = []
    for k, (s, a, b) in enumerate(cycles):
        rows.append({"half_cycle": k, "direction": DIRECTIONS[s], "start_s": float(t[a]),
                     "end_s": float(t[b] if b < t.size else t[b - 1]), "n_records": b - a})
    return pd.DataFrame(rows, columns=columns)


def frame_segments(frame_time_s, half_cycles):
    """The frames of each half-cycle that the movie holds (see the module's rule).

    Parameters
    ----------
    frame_time_s : (n_frames,) array
        Frame times on the cycler's clock, increasing.
    half_cycles : pandas.DataFrame
        :func:`find_half_cycles`.

    Returns
    -------
    list of (first frame, stop frame, direction, half-cycle index)
        ``[first, stop)`` partition the frames; ``first`` is the half-cycle's reference
        frame. Half-cycles wholly before or after the movie, or shorter than the frames'
        spacing (no reference frame of their own), are left out. Empty without frame times.
    """
    t = np.asarray(frame_time_s, dtype=np.float64).reshape(-1)
    n = t.size
    if n == 0 or not np.all(np.isfinite(t)) or np.any(np.diff(t) < 0) or not len(half_cycles):
        return []
    first = []  # (reference frame, direction)
    for row in half_cycles.itertuples():
        if row.end_s < t[0] or row.start_s > t[-1]:
            continue
        f = max(0, int(np.searchsorted(t, row.start_s, side="right")) - 1)
        if not first:
            f = 0
        if first and first[-1][0] == f:
            first[-1] = (f, row.direction)  # the earlier one had no frame of its own
        else:
            first.append((f, row.direction))
    return [(f, first[k + 1][0] if k + 1 < len(first) else n, d, k)
            for k, (f, d) in enumerate(first)]


def dataset_segments(dataset, **kwargs):
    """:func:`frame_segments` of a dataset's frames and cycler current (``dataset.echem``
    with ``time_s`` and ``current_mA``; ``[]`` without them). ``kwargs`` go to
    :func:`find_half_cycles`."""
    echem = getattr(dataset, "echem", None)
    time_s = getattr(dataset, "time_s", None)
    if echem is None or time_s is None or not {"time_s", "current_mA"} <= set(echem.columns):
        return []
    return frame_segments(time_s, find_half_cycles(echem["time_s"], echem["current_mA"],
                                                   **kwargs))


def needs_split(segments) -> bool:
    """True when the movie is more than one charge: several half-cycles, or a discharge."""
    return len(segments) > 1 or any(s[2] != "charge" for s in segments)


class FrameRange:
    """Frames ``first:stop`` of a stack, read lazily (``view[a:b]`` reads ``stack[first + a:
    first + b]``): what :func:`particle_timeseries` measures a half-cycle on."""

    def __init__(self, stack, first, stop):
        self.stack, self.first, self.stop = stack, int(first), int(stop)
        self.shape = (self.stop - self.first, *tuple(stack.shape[1:]))
        self.ndim = 3
        self.dtype = getattr(stack, "dtype", None)

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, key):
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise TypeError("FrameRange reads contiguous frames only: view[t0:t1]")
        a, b, _ = key.indices(self.shape[0])
        return self.stack[self.first + a:self.first + max(a, b)]


def measure_half_cycles(ts, segments, measure, *, stack, capacity_mAh_g, normalize=None):
    """Measure each half-cycle of a movie against its own reference frame.

    Parameters
    ----------
    ts : pandas.DataFrame
        :func:`particle_timeseries` of the whole movie against frame 0 (its drift, against
        frame 0, registers every half-cycle; its rows are kept for a first charge).
    segments : list
        :func:`frame_segments`.
    measure : callable
        ``measure(frames, *, time_s, capacity_mAh_g, shifts_px, normalize, direction)``:
        :func:`particle_timeseries` with the analysis' other options, on ``frames`` (a
        :class:`FrameRange`).
    stack : (n_frames, n_row, n_col) array-like
    capacity_mAh_g : (n_frames,) array
        The cycler's net capacity per frame.
    normalize : None, "frame_mean" or (n_frames,) array

    Returns
    -------
    pandas.DataFrame
        ``ts`` with each half-cycle's rows measured against its reference frame, the
        columns ``half_cycle``, ``direction`` and ``net_capacity_mAh_g`` after ``frame``,
        and ``capacity_mAh_g`` counted from each half-cycle's reference frame. ``ts``
        itself when :func:`needs_split` is False.
    """
    import pandas as pd

    if not len(ts) or not needs_split(segments):
        return ts
    attrs = dict(ts.attrs)
    net = np.asarray(capacity_mAh_g, dtype=np.float64)
    first_id = ts["particle_id"].iloc[0]
    one = ts[ts["particle_id"] == first_id].sort_values("frame")
    shifts = one[["drift_row_px", "drift_col_px"]].to_numpy(np.float64)
    warnings = list(attrs.get("warnings", []))
    parts = []
    for f0, f1, direction, k in segments:
        sign = 1.0 if direction == "charge" else -1.0
        finite = np.flatnonzero(np.isfinite(net[f0:f1]))
        base = net[f0] if finite.size and finite[0] == 0 else np.nan
        if finite.size and finite[0] > 0:  # e.g. frames before the cycler's first record
            base = net[f0 + finite[0]]
            warnings.append(f"half-cycle {k} (frames {f0}-{f1 - 1}): no capacity at its "
                            f"reference frame {f0}; its capacity is counted from frame "
                            f"{f0 + finite[0]}, the first with one")
        cap = sign * (net[f0:f1] - base)
        if f0 == 0 and direction == "charge":
            part = ts[ts["frame"] < f1].copy()
        else:
            norm = normalize
            if normalize is not None and not isinstance(normalize, str):
                norm = np.asarray(normalize)[f0:f1]
            part = measure(FrameRange(stack, f0, f1), time_s=one["time_s"].to_numpy()[f0:f1],
                           capacity_mAh_g=cap, shifts_px=shifts[f0:f1], normalize=norm,
                           direction=direction)
            part["frame"] = part["frame"] + f0
            warnings += [f"half-cycle {k} (frames {f0}-{f1 - 1}): {w}"
                         for w in part.attrs.get("warnings", [])]
            # the drift stays the one against frame 0 (the reference frames are registered by it)
        part["capacity_mAh_g"] = np.tile(cap, part["particle_id"].nunique())
        at = part.columns.get_loc("frame") + 1
        part.insert(at, "half_cycle", k)
        part.insert(at + 1, "direction", direction)
        part.insert(at + 2, "net_capacity_mAh_g", np.tile(net[f0:f1],
                                                          part["particle_id"].nunique()))
        parts.append(part)
    out = pd.concat(parts, ignore_index=True)
    out = out.sort_values(["particle_id", "frame"], kind="stable").reset_index(drop=True)
    out.attrs = attrs
    if warnings:
        out.attrs["warnings"] = list(dict.fromkeys(warnings))
    return out


def summarize_half_cycles(ts, summarize):
    """``summarize(rows)`` (:func:`summarize_particles`) of each half-cycle of ``ts``, one
    row per particle and half-cycle, with ``half_cycle`` and ``direction`` after
    ``particle_id``; ``summarize(ts)`` when ``ts`` has no ``half_cycle`` column."""
    import pandas as pd

    if "half_cycle" not in ts.columns:
        return summarize(ts)
    parts = []
    for k, rows in ts.groupby("half_cycle", sort=True):
        p = summarize(rows)
        at = p.columns.get_loc("particle_id") + 1
        p.insert(at, "half_cycle", int(k))
        p.insert(at + 1, "direction", str(rows["direction"].iloc[0]))
        parts.append(p)
    out = pd.concat(parts, ignore_index=True)
    return out.sort_values(["particle_id", "half_cycle"], kind="stable").reset_index(drop=True)
