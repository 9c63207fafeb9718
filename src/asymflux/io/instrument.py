"""Instrument files: the charge-photometry HDF5 layout, and LabVIEW TDMS movies.

The HDF5 layout written by the Cambridge charge-photometry group's acquisition pipeline
is recognised by its dataset names (no path map needed); ``read_hdf5(path)`` and
``read_dataset(path)`` use it. TDMS movies are read through npTDMS. What is assumed about
each field is said where it is read, and in ``docs/formats.md``.
"""

from __future__ import annotations

import os
import re
import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from asymflux.io._errors import DatasetError
from asymflux.io.stacks import (
    _TIME_TO_S,
    RawStack,
    _check_pixel_nm,
    _lazy,
    check_stack,
    check_time_s,
)

__all__ = ["INSTRUMENT_FIELDS", "camera_times", "find_layout", "is_instrument_hdf5",
           "layout_pixel_nm", "read_tdms"]

#: Datasets of the instrument HDF5 layout; ``movie`` marks it.
INSTRUMENT_FIELDS = (
    "movie",
    "camera_timing",
    "average_intensity",
    "potentiostat_value",
    "potentiostat_block",
    "stage_position",
)
#: Pixel-size attributes looked for (movie, its group, the file): name -> factor to nm.
PIXEL_ATTRS = {"pixel_nm": 1.0, "pixel_size_nm": 1.0, "pixel_size_um": 1e3}
_EPOCH_S = (9.4e8, 4.2e9)  # 1999 .. 2103: a time stamp this large is absolute (Unix epoch)
_VOLTAGE_TO_V = {"V": 1.0, "mV": 1e-3}
_CURRENT_TO_MA = {"A": 1e3, "mA": 1.0, "uA": 1e-3, "µA": 1e-3, "μA": 1e-3, "nA": 1e-6}


# ---------------------------------------------------------------------------- HDF5 layout


def _text(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray) and value.shape == ():
        return _text(value[()])
    return value


def _unit(dset):
    for key in ("units", "unit"):
        if key in dset.attrs:
            return str(_text(dset.attrs[key])).strip()
    return None


def find_layout(f):
    """The group of an open HDF5 file holding the instrument layout (the parent of a 3-D
    ``movie`` dataset: ``f`` itself, or one group), or None; DatasetError if several do.
    Also what :mod:`asymflux.live` opens a movie still being written with."""
    import h5py

    found = []

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and name.rsplit("/", 1)[-1] == "movie" and obj.ndim == 3:
            found.append(obj.parent)

    movie = f.get("movie")
    if isinstance(movie, h5py.Dataset) and movie.ndim == 3:
        return f
    f.visititems(visit)
    if len(found) > 1:
        names = sorted(g.name for g in found)
        raise DatasetError(
            f"{f.filename}: several 'movie' datasets (in {names}); pick one: "
            f"read_hdf5(path, stack='{names[0]}/movie', time_s='{names[0]}/camera_timing', ...)"
        )
    return found[0] if found else None


def is_instrument_hdf5(path) -> bool:
    """True if ``path`` is an HDF5 file holding a 3-D ``movie`` dataset (the instrument layout)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return find_layout(f) is not None
    except DatasetError:
        return True  # several movies: the reader says which to pick
    except Exception:  # noqa: BLE001 - not HDF5 at all
        return False


def _per_frame(dset, n, *, source, hint):
    """A per-frame trace (n,) from a 1-D dataset, or from the first column of a 2-D one."""
    raw = np.asarray(dset[()])
    if raw.ndim == 2:
        if raw.shape[0] == n and raw.shape[1] != n:
            raw = raw[:, 0]
        elif raw.shape[1] == n and raw.shape[0] != n:
            raw = raw[0]
    if raw.ndim != 1 or raw.shape[0] != n:
        raise DatasetError(
            f"{source}: shape {raw.shape} does not give one value per frame for the {n} frames "
            f"of the movie; {hint}"
        )
    return raw


def _is_counter(trace) -> bool:
    """True if ``trace`` counts frames: whole numbers going up by exactly 1."""
    d = np.diff(trace.astype(np.float64))
    return bool(np.all(trace.astype(np.float64) % 1 == 0) and np.all(d == 1))


def _timing_trace(dset, n, *, source, hint):
    """The frame-time trace (n,) of ``camera_timing``, and which trace of a 2-D one it is.

    2-D: the traces of length n_frames that are finite and strictly increasing are the
    candidates; frame counters (whole numbers going up by 1) only if nothing else is; of
    these, the one of largest span (the first on a tie).
    """
    raw = np.asarray(dset[()])
    if raw.ndim != 2:
        return _per_frame(dset, n, source=source, hint=hint), None
    if raw.shape[1] == n and raw.shape[0] != n:
        traces = raw
    elif raw.shape[0] == n and raw.shape[1] != n:
        traces = raw.T
    else:
        return _per_frame(dset, n, source=source, hint=hint), None  # raises: shape misfit
    if raw.dtype.kind not in "iuf":
        raise DatasetError(f"{source}: time stamps must be numbers, got dtype {raw.dtype}")
    if n < 2:
        return traces[0], 0
    f64 = traces.astype(np.float64)
    rising = [
        k for k in range(len(f64)) if np.all(np.isfinite(f64[k])) and np.all(np.diff(f64[k]) > 0)
    ]
    clocks = [k for k in rising if not _is_counter(f64[k])]
    if not clocks:
        what = (
            f"only trace(s) {rising} increase, and they count frames (0, 1, 2, ...)"
            if rising
            else "none of its traces strictly increases"
        )
        raise DatasetError(
            f"{source}: shape {raw.shape}: {what}, so no trace is taken as the frame times; "
            f"name the trace k by hand, time_s=('{dset.name}', k), or {hint}"
        )
    spans = [float(f64[k, -1] - f64[k, 0]) for k in clocks]
    k = clocks[int(np.argmax(spans))]
    return traces[k], k


def camera_times(dset, n, *, source, hint):
    """Frame times, s, from ``camera_timing``: (times, ISO start or None, absolute start in
    Unix s or None, the trace taken of a 2-D dataset or None).

    ``dset`` is the h5py dataset, ``n`` the number of frames, ``source`` the name errors
    give (DatasetError), ``hint`` what they suggest."""
    raw, trace = _timing_trace(dset, n, source=source, hint=hint)
    if raw.dtype.kind not in "iuf":
        raise DatasetError(f"{source}: time stamps must be numbers, got dtype {raw.dtype}")
    unit = _unit(dset)
    if unit is not None and unit not in _TIME_TO_S:
        raise DatasetError(
            f"{source}: unknown time unit {unit!r} (expected one of {sorted(_TIME_TO_S)})"
        )
    scale = _TIME_TO_S[unit] if unit is not None else 1.0
    if raw.dtype.kind in "iu":  # exact differences before going to float
        rel = (raw.astype(np.int64) - np.int64(raw[0])).astype(np.float64) * scale
    else:
        rel = (raw.astype(np.float64) - float(raw[0])) * scale
    t0 = float(raw[0]) * scale
    if _EPOCH_S[0] <= t0 <= _EPOCH_S[1]:
        start = datetime.fromtimestamp(t0, tz=UTC).isoformat()
        return check_time_s(rel, n, source=source), start, t0, trace
    return check_time_s(rel + t0, n, source=source), None, None, trace


def layout_pixel_nm(f, group, movie, *, source):
    """The pixel size, nm, from the first pixel attribute (:data:`PIXEL_ATTRS`) found on the
    ``movie`` dataset, its ``group`` or the file ``f``; None if none has one."""
    for obj in (movie, group, f):
        for key, factor in PIXEL_ATTRS.items():
            if key in obj.attrs:
                value = _text(obj.attrs[key])
                px = _check_pixel_nm(value, source=f"{source}: attribute {key!r} of {obj.name}")
                return px * factor
    return None


# The traces of a 2-D potentiostat_value, by their number (rows, or columns of a long one).
_PSTAT_ROWS = {
    3: ("time_s", "voltage_V", "current_mA"),  # a data release: time, voltage, current
    4: ("voltage_V", "current_mA", "charge_mAh", "time_s"),  # the NMC analyses: V, I, Q, t
}
_CHARGE_TO_MAH = {
    "mAh": 1.0,
    "Ah": 1e3,
    "uAh": 1e-3,
    "µAh": 1e-3,
    "μAh": 1e-3,
    "C": 1 / 3.6,
    "As": 1 / 3.6,
    "mC": 1 / 3600.0,
}
_QUANTITY = {  # column -> (what, unit table, assumed unit)
    "time_s": ("time", _TIME_TO_S, "s"),
    "voltage_V": ("voltage", _VOLTAGE_TO_V, "V"),
    "current_mA": ("current", _CURRENT_TO_MA, "mA"),
    "charge_mAh": ("charge", _CHARGE_TO_MAH, "mAh"),
}
_VOLTAGE_RANGE_V = (-5.0, 10.0)
_MAX_NAN_TIMES = 0.01  # interior non-finite times dropped up to this fraction of samples


def _row_units(pv, k, *, refuse):
    """Units given by attributes: ({column: unit}, where from) for a k-trace dataset.

    A list (``row_units``, ``units`` or ``unit``; or a string split at commas / semicolons)
    gives one unit per trace; a single unit is the current's.
    """
    cols = _PSTAT_ROWS[k]
    for key in ("row_units", "units", "unit"):
        if key not in pv.attrs:
            continue
        value = pv.attrs[key]
        if isinstance(value, np.ndarray) and value.ndim == 1:
            units = [str(_text(u)).strip() for u in value]
        else:
            text = str(_text(value)).strip()
            units = (
                [u.strip() for u in re.split(r"[,;]", text)] if re.search("[,;]", text) else [text]
            )
        if len(units) == k:
            given = {c: u for c, u in zip(cols, units, strict=True) if u not in ("", "-", "none")}
            return given, f"attribute {key!r}"
        if len(units) == 1 and units[0] in _CURRENT_TO_MA:
            return {"current_mA": units[0]}, f"attribute {key!r}"
        refuse(
            f"its attribute {key!r} = {units} gives neither one unit per trace ({k}) nor a "
            f"current unit {sorted(_CURRENT_TO_MA)}"
        )
    return {}, None


def _restarts(q, t, i):
    """(n,) bool: records where a charge trace restarts from zero: it jumps by far more than
    the current could pass in the interval, to a value the interval could have passed."""
    out = np.zeros(q.size, dtype=bool)
    if q.size < 2:
        return out
    dq = np.abs(np.diff(q))
    expected = np.fmax(np.abs(i[1:]), np.abs(i[:-1])) * np.diff(t) / 3600.0
    scale = np.nanmax(np.abs(q)) if np.isfinite(q).any() else 0.0
    allowed = 5.0 * expected + 1e-6 * scale  # what the interval could pass, generously
    with np.errstate(invalid="ignore"):
        out[1:] = (dq > allowed) & (np.abs(q[1:]) <= allowed)
    return out


def _potentiostat_2d(pv, t, t0_abs, *, name, path):
    """Columns from a 2-D ``potentiostat_value`` (3 or 4 traces), checked; see the docs."""
    from asymflux.io._counters import charge_increments, counter_increments

    shape = tuple(pv.shape)
    k = min(shape)
    cols = _PSTAT_ROWS.get(k)
    ours = cols if cols is not None else ("time_s", "voltage_V", "current_mA")[: max(k, 1)]
    recipe = ", ".join(f"'{c}': ('{pv.name}', {ours.index(c)})" for c in ours)
    g = pv.parent.name.rstrip("/")

    def refuse(why):
        raise DatasetError(
            f"{name}: shape {shape}: {why}. Its traces are not labelled; map them by hand "
            f"(which trace k is which, in our units: s on the camera clock, V, mA, mAh): "
            f"read_hdf5({str(path)!r}, stack='{g}/movie', time_s='{g}/camera_timing', "
            f"pixel_nm=..., echem={{{recipe}}})"
        )

    if len(shape) != 2 or shape[0] == shape[1] or cols is None:
        refuse(
            "asymflux reads a 2-D one only as 3 traces (time, voltage, current) or 4 (voltage, "
            "current, charge, time) along its shorter axis"
        )
    try:
        raw = np.asarray(pv[()], dtype=np.float64)
    except (TypeError, ValueError):
        refuse(f"its dtype {pv.dtype} is not numeric")
    traces = raw if shape[0] < shape[1] else raw.T
    rows = dict(zip(cols, traces, strict=True))
    units, units_from = _row_units(pv, k, refuse=refuse)
    for c, u in units.items():
        what, table, _ = _QUANTITY[c]
        if u not in table:
            refuse(
                f"trace {cols.index(c)}, assumed the {what}, has unit {u!r} by its "
                f"{units_from} (a {what} unit is one of {sorted(table)})"
            )
        rows[c] = rows[c] * table[u]
    warnings = []
    # time: finite (padding at the end dropped, a few NaN inside dropped) and non-decreasing
    tp = rows["time_s"]
    finite = np.isfinite(tp)
    if not finite.any():
        refuse(f"trace {cols.index('time_s')}, assumed the time, has no finite value")
    last = int(np.flatnonzero(finite)[-1]) + 1
    keep = finite.copy()
    if last < tp.size:
        warnings.append(
            f"{name}: the last {tp.size - last} sample(s) have no time (padding): dropped"
        )
    inside = int((~finite[:last]).sum())
    if inside > _MAX_NAN_TIMES * last:
        refuse(
            f"trace {cols.index('time_s')}, assumed the time, has {inside} NaN or infinite "
            f"value(s) among its first {last} samples"
        )
    if inside:
        warnings.append(f"{name}: {inside} sample(s) with a NaN time dropped")
    rows = {c: v[keep] for c, v in rows.items()}
    tp = rows["time_s"]
    back = np.flatnonzero(np.diff(tp) < 0)
    if back.size or tp.size < 2 or tp[-1] <= tp[0]:
        at = (
            f"goes down at sample {int(back[0]) + 1} ({tp[back[0]]:g} -> {tp[back[0] + 1]:g})"
            if back.size
            else "does not increase"
        )
        refuse(f"trace {cols.index('time_s')}, assumed the time, {at}")
    v = rows["voltage_V"]
    vf = v[np.isfinite(v)]
    lo, hi = _VOLTAGE_RANGE_V
    if vf.size == 0 or vf.min() < lo or vf.max() > hi:
        got = "no finite value" if vf.size == 0 else f"values {vf.min():g} to {vf.max():g}"
        refuse(
            f"trace {cols.index('voltage_V')}, assumed the voltage (V), has {got}, not within "
            f"[{lo:g}, {hi:g}] V"
        )
    # the clock: the camera's (seconds after the first frame when its stamps are absolute)
    p_abs = _EPOCH_S[0] <= tp[0] <= _EPOCH_S[1]
    cam_lo, cam_hi = float(t[0]), float(t[-1])
    if t0_abs is not None:
        cam_lo, cam_hi = cam_lo + t0_abs, cam_hi + t0_abs
    overlap = tp[0] <= cam_hi and tp[-1] >= cam_lo
    if p_abs != (t0_abs is not None) and not overlap:
        clocks = ("absolute (Unix time)", "relative")
        refuse(
            f"its time trace {cols.index('time_s')} is {clocks[not p_abs]} ({tp[0]:.12g} to "
            f"{tp[-1]:.12g} s) but camera_timing is {clocks[t0_abs is None]} ({cam_lo:.12g} "
            f"to {cam_hi:.12g} s): the two clocks cannot be put together"
        )
    if t0_abs is not None and (p_abs or overlap):
        rows["time_s"] = tp = tp - t0_abs
    if tp[-1] < t[0] or tp[0] > t[-1]:
        warnings.append(
            f"{name}: the echem times ({tp[0]:g} to {tp[-1]:g} s) do not overlap the frame "
            f"times ({t[0]:g} to {t[-1]:g} s): no frame has an echem value"
        )
    attrs = {"current_from": f"{pv.name} trace {cols.index('current_mA')}"}
    if "charge_mAh" in rows:
        q, i = rows["charge_mAh"], rows["current_mA"]
        resets = _restarts(q, tp, i)
        inc = counter_increments(q, resets=resets)
        rows["charge_mAh"] = np.cumsum(inc)
        attrs["charge_from"] = f"{pv.name} trace {cols.index('charge_mAh')}" + (
            f" (its {int(resets.sum())} restart(s) from zero undone)" if resets.any() else ""
        )
        from_i = np.abs(charge_increments(tp, i)).sum()
        from_q = np.abs(inc).sum()
        if from_i > 0 and from_q > 0 and not 0.5 < from_q / from_i < 2.0:
            warnings.append(
                f"{name}: the charge trace passes {from_q / from_i:.3g} times the charge of the "
                "integrated current: check the units of current and charge"
            )
    said = []
    for c in cols:
        u = units.get(c, _QUANTITY[c][2])
        why = f"({units_from})" if c in units else "(assumed)"
        said.append(f"{cols.index(c)} {_QUANTITY[c][0]} {u} {why}")
    attrs["assumed"] = (
        f"{pv.name} {shape} read as traces: {', '.join(said)}; time on the camera clock"
    )
    out = {c: rows[c] for c in ("time_s", "voltage_V", "current_mA", "charge_mAh") if c in rows}
    n_samples = traces.shape[1]
    pb = pv.parent.get("potentiostat_block")
    if pb is not None:
        block = np.asarray(pb[()])
        if block.ndim == 1 and block.size == n_samples:
            out["block"] = _block_values(block[keep])
        else:
            warnings.append(
                f"{name}: potentiostat_block of shape {block.shape} is not one value per "
                f"potentiostat sample ({n_samples}): not read"
            )
    return out, attrs, warnings


def _block_values(block):
    if block.dtype.kind == "f" and np.all(np.isfinite(block)) and np.all(block % 1 == 0):
        return block.astype(np.int64)
    if block.dtype.kind in "SO":
        return np.array([_text(b) for b in block], dtype=object)
    return block


def _potentiostat(group, t, t0_abs, *, path, hint):
    """The echem columns (dict), attrs and warnings from ``potentiostat_value`` / ``_block``."""
    source = str(path)
    cols = {}
    pv = group.get("potentiostat_value")
    if pv is not None and pv.ndim != 1:
        return _potentiostat_2d(pv, t, t0_abs, name=f"{source}:{pv.name}", path=path)
    attrs, warnings = {}, []
    if pv is not None:
        name = f"{source}:{pv.name}"
        values = _per_frame(pv, t.size, source=name, hint=hint).astype(np.float64)
        unit = _unit(pv)
        if unit is None or unit in _VOLTAGE_TO_V:
            cols["voltage_V"] = values * _VOLTAGE_TO_V[unit or "V"]
            attrs["assumed"] = f"{pv.name} 1-D read as the voltage per frame, " + (
                f"{unit} (attribute)" if unit else "V (assumed)"
            )
        elif unit in _CURRENT_TO_MA:
            cols["current_mA"] = values * _CURRENT_TO_MA[unit]
            attrs["assumed"] = f"{pv.name} 1-D read as the current per frame, {unit} (attribute)"
        else:
            raise DatasetError(
                f"{name}: unknown unit {unit!r} (expected a voltage {sorted(_VOLTAGE_TO_V)} "
                f"or a current {sorted(_CURRENT_TO_MA)})"
            )
    pb = group.get("potentiostat_block")
    if pb is not None:
        name = f"{source}:{pb.name}"
        cols["block"] = _block_values(_per_frame(pb, t.size, source=name, hint=hint))
    if cols:
        cols = {"time_s": t.copy(), **cols}
    return cols, attrs, warnings


def _read_layout(path: Path, *, pixel_nm=None, lazy: bool = True, need_pixel: bool, echem: bool):
    """Open the instrument layout. Returns (file, parts dict); the file stays open if lazy."""
    import h5py

    from asymflux.io.stacks import _hdf5_stack, _open_hdf5

    f = _open_hdf5(path)
    try:
        group = find_layout(f)
        if group is None:
            names = []
            f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
            raise DatasetError(
                f"{path}: no 3-D dataset 'movie' (the instrument layout); it holds "
                f"{names[:8]}{' ...' if len(names) > 8 else ''}: name the datasets by hand, "
                "e.g. read_hdf5(path, stack='/camera/frames', time_s='/camera/t', pixel_nm=...)"
            )
        g = "" if group.name == "/" else group.name
        by_hand = (
            f"read_hdf5({str(path)!r}, stack='{g}/movie', time_s='/name/of/times', pixel_nm=...)"
        )
        movie = group["movie"]
        source = f"{path}:{movie.name}"
        check_stack(movie, source=source)
        n = int(movie.shape[0])
        n_written = written_frames(movie)
        early_warnings = []
        if n_written < n:
            if n_written == 0:
                raise DatasetError(f"{source}: declares {n} frames but none was written "
                                   "(no chunk of the movie is stored)")
            early_warnings.append(
                f"{source}: declares {n} frames but only the first {n_written} were written "
                "(the acquisition stopped?); those are read, with the first "
                f"{n_written} values of the per-frame datasets")
            group = _FirstFrames(group, n, n_written)
            n = n_written
        holes = missing_chunks(movie, n)
        if holes:
            early_warnings.append(
                f"{source}: the chunks starting at frame(s) {holes[:10]} were never written; "
                f"their frames read as the fill value ({movie.fillvalue!r})")
        timing = group.get("camera_timing")
        if not isinstance(timing, (h5py.Dataset, _Cut)):
            raise DatasetError(
                f"{path}: no dataset 'camera_timing' (the frame times) next to {movie.name}; "
                f"map it by hand: {by_hand} (or frame_interval_s=...)"
            )
        hint = f"map the fields by hand: {by_hand}"
        t, start, t0_abs, trace = camera_times(
            timing, n, source=f"{path}:{timing.name}", hint=hint
        )
        px = (
            _check_pixel_nm(pixel_nm, source="pixel_nm")
            if pixel_nm is not None
            else layout_pixel_nm(f, group, movie, source=path)
        )
        if px is None and need_pixel:
            raise DatasetError(
                f"{path}: no pixel size (no attribute {list(PIXEL_ATTRS)} on {movie.name}, its "
                "group or the file): pass pixel_nm=... (nm)"
            )
        intensity = None
        avg = group.get("average_intensity")
        if isinstance(avg, (h5py.Dataset, _Cut)):
            intensity = _per_frame(avg, n, source=f"{path}:{avg.name}", hint=hint).astype(
                np.float64
            )
        cols, echem_attrs, echem_warnings = {}, {}, []
        if echem:
            cols, echem_attrs, echem_warnings = _potentiostat(
                group, t, t0_abs, path=path, hint=hint
            )
        data = _hdf5_stack(movie, source=source, lazy=lazy)
        if data.shape[0] > n:
            data = data[:n]
        for w in early_warnings:
            warnings.warn(w, UserWarning, stacklevel=3)
    except BaseException:
        f.close()
        raise
    if not lazy:
        f.close()
    parts = {
        "stack": data,
        "time_s": t,
        "pixel_nm": px,
        "start": start,
        "frame_intensity": intensity,
        "intensity_name": None if intensity is None else avg.name,
        "echem": cols,
        "echem_attrs": echem_attrs,
        "echem_warnings": echem_warnings,
        "timing_trace": None if trace is None else (timing.name, trace),
    }
    return parts


def _stored_chunk_starts(movie):
    """First frames of the stored chunks of a chunked ``movie``, or None when every chunk is
    stored (or the file cannot say): one pass over HDF5's chunk index."""
    per = tuple(-(-int(d) // int(c)) for d, c in zip(movie.shape, movie.chunks, strict=True))
    n_chunks = movie.id.get_num_chunks()
    if n_chunks >= int(np.prod(per)):
        return None
    return {int(movie.id.get_chunk_info(k).chunk_offset[0]) for k in range(n_chunks)}


def written_frames(movie) -> int:
    """How many leading frames of an HDF5 ``movie`` hold data.

    Declared frames that were never written read as the fill value and are not frames:
    frames in chunks never stored (chunked), and at the end of the last stored chunk or of
    a contiguous movie frames that are the fill value throughout (found by bisection from
    the end, a few frame reads). A chunk missing in the middle is reported by
    :func:`missing_chunks`.
    """
    n = int(movie.shape[0])
    if n == 0:
        return 0
    lo = 0
    try:
        if movie.chunks is None:  # contiguous: all or nothing stored
            if movie.id.get_storage_size() == 0 and not movie.external:
                return 0
        else:
            stored = _stored_chunk_starts(movie)
            if stored is not None:
                if not stored:
                    return 0
                n = min(n, max(stored) + int(movie.chunks[0]))
            lo = max(0, n - int(movie.chunks[0]))
    except Exception:  # noqa: BLE001 - a driver or filter without chunk queries: trust the shape
        return n
    fill = movie.fillvalue

    def unwritten(k):
        return bool(np.all(movie[k] == fill))

    if not unwritten(n - 1):
        return n
    hi = n - 1  # frame hi is unwritten; find the first unwritten frame in [lo, hi]
    while lo < hi:
        mid = (lo + hi) // 2
        if unwritten(mid):
            hi = mid
        else:
            lo = mid + 1
    return hi


def missing_chunks(movie, n_frames) -> list[int]:
    """First frames of the chunks of ``movie[:n_frames]`` that were never stored."""
    if movie.chunks is None or n_frames == 0:
        return []
    try:
        stored = _stored_chunk_starts(movie)
    except Exception:  # noqa: BLE001
        return []
    if stored is None:
        return []
    return [k for k in range(0, n_frames, int(movie.chunks[0])) if k not in stored]


class _FirstFrames:
    """A group whose per-frame datasets (1-D, or 2-D with one axis of the declared frame
    count) are cut to the frames that were written; other datasets as they are."""

    def __init__(self, group, n_declared, n_written):
        self._group, self._n, self._keep = group, n_declared, n_written
        self.name = group.name

    def __getitem__(self, key):
        return self._group[key]

    def get(self, key, default=None):
        import h5py

        obj = self._group.get(key, default)
        if key in ("movie", "potentiostat_value") and getattr(obj, "ndim", 1) != 1:
            return obj  # the movie itself, or samples not tied to the frames
        if isinstance(obj, h5py.Dataset) and self._n in obj.shape[:2]:
            return _Cut(obj, self._n, self._keep)
        return obj


class _Cut:
    """An h5py dataset read with its axis of length ``n`` cut to the first ``keep``."""

    def __init__(self, dset, n, keep):
        self._d, self.attrs, self.name, self.parent = dset, dset.attrs, dset.name, dset.parent
        self._axis = list(dset.shape).index(n)
        shape = list(dset.shape)
        shape[self._axis] = keep
        self.shape, self.ndim, self.dtype = tuple(shape), dset.ndim, dset.dtype

    def __getitem__(self, key):
        raw = np.asarray(self._d[()])
        cut = [slice(None)] * raw.ndim
        cut[self._axis] = slice(0, self.shape[self._axis])
        return raw[tuple(cut)][key]

    def __len__(self):
        return self.shape[0]


def read_instrument_stack(path, *, lazy: bool = True) -> RawStack:
    """The ``movie`` of an instrument HDF5 file as a :class:`RawStack` (no echem)."""
    path = Path(path)
    p = _read_layout(path, lazy=lazy, need_pixel=False, echem=False)
    return RawStack(p["stack"], p["time_s"], p["pixel_nm"], str(path))


# ---------------------------------------------------------------------------- TDMS

_SIZE_PAIRS = (("height", "width"), ("imageheight", "imagewidth"), ("rows", "cols"))


def _frame_shape_from(props) -> tuple[int, int] | None:
    """(rows, cols) from TDMS properties, or None. ``dimensions`` is read as rows x cols."""
    low = {str(k).lower(): v for k, v in props.items()}
    for r, c in _SIZE_PAIRS:
        if r in low and c in low:
            try:
                return int(low[r]), int(low[c])
            except (TypeError, ValueError):
                return None
    if "dimensions" in low:
        v = low["dimensions"]
        nums = (
            [int(x) for x in re.findall(r"\d+", v)]
            if isinstance(v, str)
            else [int(x) for x in np.ravel(v)]
        )
        if len(nums) >= 2:
            return nums[-2], nums[-1]
    return None


class _TdmsFrames:
    """Array-like (n_frames, rows, cols) over TDMS channels, read on demand."""

    def __init__(self, channels, frame_shape, n_frames, dtype, *, source):
        self.channels = channels  # one flat channel, or one channel per frame
        self.frame_shape = tuple(frame_shape)
        self.shape = (int(n_frames), *self.frame_shape)
        self.dtype = np.dtype(dtype)
        self.ndim = 3
        self.source = source

    def frames(self, start, stop) -> np.ndarray:
        npix = self.frame_shape[0] * self.frame_shape[1]
        try:
            if len(self.channels) == 1:
                flat = np.asarray(self.channels[0][start * npix : stop * npix])
                out = flat.reshape(stop - start, *self.frame_shape)
            else:
                out = np.stack(
                    [np.asarray(c[:]).reshape(self.frame_shape) for c in self.channels[start:stop]]
                )
        except Exception as e:  # noqa: BLE001
            raise DatasetError(
                f"{self.source}: cannot read frames {start} to {stop - 1} ({type(e).__name__}: {e})"
            ) from e
        return out.astype(self.dtype, copy=False)

    def __getitem__(self, key):
        if not isinstance(key, tuple):
            key = (key,)
        first = key[0] if key else slice(None)
        if isinstance(first, slice) and first.step in (None, 1):
            start, stop, _ = first.indices(self.shape[0])
            return self.frames(start, max(start, stop))[(slice(None), *key[1:])]
        return self.frames(0, self.shape[0])[key]


def read_tdms(
    path,
    *,
    group: str | None = None,
    channel: str | None = None,
    shape: tuple[int, int] | None = None,
    lazy: bool = True,
) -> RawStack:
    """Read a LabVIEW TDMS movie (npTDMS) as (time, row, col).

    TDMS channels are 1-D. Two layouts are recognised:

    * one channel of flattened pixels, frame after frame, row-major (the channel named by
      ``channel``, or the only channel of the group);
    * one channel per frame (several channels of equal length and type in the group, in
      file order).

    The frame size comes from ``shape`` or from the channel's (else the group's, else the
    file's) properties: ``height``/``width``, ``ImageHeight``/``ImageWidth``, ``Rows``/
    ``Cols`` (any case), or ``dimensions`` read as rows x cols (e.g. ``"1200x1920"``).

    Parameters
    ----------
    path : str or Path
        The ``.tdms`` file.
    group : str, optional, keyword-only
        Group name; default: the only group holding channels.
    channel : str, optional, keyword-only
        The channel of flattened pixels; default: the only channel, else one channel per
        frame.
    shape : (int, int), optional, keyword-only
        Frame size (rows, cols) when the properties do not give it (overrides them).
    lazy : bool, keyword-only
        True (default): a dask array reading frames on demand from the open file (the first
        frame is read now). False: loaded into memory.

    Returns
    -------
    RawStack
        ``stack`` (time, row, col) in the channel's dtype. ``time_s`` only for one channel
        per frame where every channel has a ``wf_start_time`` (seconds after the first
        frame's); for a flat pixel channel the waveform properties (``wf_increment``)
        describe pixels, not frames, and ``time_s`` is None. ``pixel_nm`` from a property
        ``pixel_nm`` / ``pixel_size_nm`` / ``pixel_size_um``, else None.

    Raises
    ------
    DatasetError
        Unreadable file; no or ambiguous group / channel; no frame size (pass
        ``shape=(rows, cols)``); a channel length that is not a whole number of frames.
    """
    from nptdms import TdmsFile

    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such TDMS file")
    try:
        tdms = TdmsFile.open(path) if lazy else TdmsFile.read(path)
    except Exception as e:  # noqa: BLE001
        raise DatasetError(f"{path}: not a readable TDMS file ({type(e).__name__}: {e})") from e
    try:
        raw = _tdms_stack(tdms, path, group=group, channel=channel, shape=shape, lazy=lazy)
    except BaseException:
        tdms.close()
        raise
    if not lazy:
        tdms.close()
    return raw


def _tdms_stack(tdms, path, *, group, channel, shape, lazy):
    groups = {g.name: g for g in tdms.groups()}
    if group is None:
        full = [name for name, g in groups.items() if g.channels()]
        if len(full) != 1:
            raise DatasetError(
                f"{path}: {len(full)} groups with channels ({full}); pass group='...'"
            )
        group = full[0]
    if group not in groups:
        raise DatasetError(f"{path}: no group {group!r} (groups: {list(groups)})")
    g = groups[group]
    chans = {c.name: c for c in g.channels()}
    if not chans:
        raise DatasetError(f"{path}: group {group!r} has no channels")
    lengths = {name: len(c) for name, c in chans.items()}
    if channel is not None:
        if channel not in chans:
            raise DatasetError(
                f"{path}: no channel {channel!r} in group {group!r} (channels: {list(chans)})"
            )
        used = [chans[channel]]
    elif len(chans) == 1:
        used = list(chans.values())
    elif len(set(lengths.values())) == 1 and len({c.dtype for c in chans.values()}) == 1:
        used = list(chans.values())  # one channel per frame
    else:
        raise DatasetError(
            f"{path}: group {group!r} has channels of different lengths {lengths}; pass "
            "channel='...' (the one holding the pixels)"
        )
    where = f"channel {used[0].name!r}" if len(used) == 1 else f"the channels of group {group!r}"
    root_props = tdms.properties
    if shape is not None:
        try:
            rows, cols = (int(x) for x in shape)
        except (TypeError, ValueError):
            raise DatasetError(f"shape: expected (rows, cols), got {shape!r}") from None
        if rows <= 0 or cols <= 0:
            raise DatasetError(f"shape: expected positive (rows, cols), got {shape!r}")
    else:
        found = None
        for props in (used[0].properties, g.properties, root_props):
            found = _frame_shape_from(props)
            if found:
                break
        if not found:
            raise DatasetError(
                f"{path}: {where} in group {group!r} holds {len(used[0])} values per channel "
                "and no frame size in its properties (looked for height/width, ImageHeight/"
                "ImageWidth, Rows/Cols, dimensions): pass shape=(rows, cols)"
            )
        rows, cols = found
    npix = rows * cols
    length = len(used[0])
    if npix <= 0 or length % npix or length == 0:
        raise DatasetError(
            f"{path}: {where} holds {length} values, not a whole number of {rows} x {cols} "
            "frames; check shape=(rows, cols)"
        )
    if len(used) > 1 and length != npix:
        raise DatasetError(
            f"{path}: {where} hold {length} values each, not one {rows} x {cols} frame"
        )
    n_frames = length // npix if len(used) == 1 else len(used)
    dtype = np.dtype(used[0].dtype)
    frames = _TdmsFrames(used, (rows, cols), n_frames, dtype, source=path)
    check_stack(frames, source=path)
    if lazy:
        data = _lazy(frames, chunks=(1, rows, cols), source=path, lock=True)
    else:
        data = frames.frames(0, n_frames)
    time_s = None
    if len(used) > 1:
        starts = [c.properties.get("wf_start_time") for c in used]
        if all(s is not None for s in starts):
            st = np.array(starts, dtype="datetime64[ns]")
            time_s = check_time_s(
                (st - st[0]) / np.timedelta64(1, "s"), n_frames, source=f"{path} (wf_start_time)"
            )
    pixel_nm = None
    for props in (used[0].properties, g.properties, root_props):
        hit = [k for k in PIXEL_ATTRS if k in props]
        if hit:
            pixel_nm = _check_pixel_nm(props[hit[0]], source=f"{path}: property {hit[0]!r}")
            pixel_nm *= PIXEL_ATTRS[hit[0]]
            break
    return RawStack(data, time_s, pixel_nm, str(path))


class DirectFrames:
    """Frames of an uncompressed HDF5 movie read straight from the file into a caller's
    buffer: one ``os.preadv`` per frame at the chunk's byte offset (from HDF5's chunk
    index), no HDF5 selection or type conversion, and the GIL released while it reads (so
    reading overlaps the measurement in the other worker threads). :meth:`prefetch` asks
    the kernel to read frames ahead (``posix_fadvise(WILLNEED)``) while the current ones
    are measured. Made by :func:`direct_frames`, which says when this applies.
    """

    def __init__(self, dset):
        self.dset = dset
        self.shape = tuple(int(n) for n in dset.shape)
        self.dtype = np.dtype(dset.dtype)
        self.frame_bytes = int(np.prod(self.shape[1:])) * self.dtype.itemsize
        self.path = dset.file.filename
        self._fd = os.open(self.path, os.O_RDONLY)
        self._contiguous = dset.chunks is None
        self._base = dset.id.get_offset() if self._contiguous else None
        self._offsets = np.full(self.shape[0], -2, np.int64)  # -2: not looked up, -1: none

    def __del__(self):
        fd, self._fd = getattr(self, "_fd", None), None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass

    def _offset(self, k):
        off = int(self._offsets[k])
        if off == -2:
            if self._contiguous:
                off = -1 if self._base is None else int(self._base) + k * self.frame_bytes
            else:
                info = self.dset.id.get_chunk_info_by_coord((k, 0, 0))
                ok = (info.byte_offset is not None and info.filter_mask == 0
                      and int(info.size) == self.frame_bytes)
                off = int(info.byte_offset) if ok else -1
            self._offsets[k] = off
        return off

    def read(self, k, out):
        """Frame ``k`` into ``out`` (a C-contiguous (n_row, n_col) array of the movie's
        dtype); a frame not stored whole (never written) is read through h5py."""
        off = self._offset(k)
        if off >= 0:
            try:
                n = os.preadv(self._fd, [memoryview(out).cast("B")], off)
            except OSError as e:
                raise DatasetError(f"{self.path}:{self.dset.name}: cannot read frame {k}: "
                                   f"{e}") from e
            if n == self.frame_bytes:
                return out
        self.dset.read_direct(out[None], np.s_[k:k + 1], np.s_[0:1])
        return out

    def prefetch(self, t0, t1):
        """Ask the kernel to read frames ``t0:t1`` into the page cache, asynchronously."""
        t1 = min(int(t1), self.shape[0])
        if t1 <= t0 or not hasattr(os, "posix_fadvise"):
            return
        offs = [self._offset(k) for k in range(int(t0), t1)]
        offs = [o for o in offs if o >= 0]
        if not offs:
            return
        lo, hi = min(offs), max(offs) + self.frame_bytes
        if hi - lo <= 2 * len(offs) * self.frame_bytes:  # one range when they lie together
            os.posix_fadvise(self._fd, lo, hi - lo, os.POSIX_FADV_WILLNEED)
        else:
            for o in offs:
                os.posix_fadvise(self._fd, o, self.frame_bytes, os.POSIX_FADV_WILLNEED)


def direct_frames(array):
    """A :class:`DirectFrames` reader of ``array`` (an h5py movie, or the wrapper
    :mod:`asymflux.io` reads it through) when its frames can be read straight from the file:
    a 3-D dataset of a native-order integer or float dtype, uncompressed and unfiltered,
    contiguous or chunked one whole frame per chunk, in a file of the default driver.
    Else None (read it through h5py)."""
    try:
        import h5py
    except ImportError:  # pragma: no cover - h5py is a dependency
        return None
    dset = getattr(array, "array", array)
    if not isinstance(dset, h5py.Dataset) or dset.ndim != 3 or not hasattr(os, "preadv"):
        return None
    try:
        dtype = np.dtype(dset.dtype)
        if dtype.kind not in "iuf" or not dtype.isnative:
            return None
        if dset.compression is not None or dset.id.get_create_plist().get_nfilters() > 0:
            return None
        if dset.chunks is not None and tuple(dset.chunks) != (1, *dset.shape[1:]):
            return None
        if dset.file.driver not in ("sec2", None) or dset.is_virtual or dset.external:
            return None
        return DirectFrames(dset)
    except (OSError, ValueError, AttributeError, RuntimeError):
        return None
