"""One dataset path, or many, through the analysis: what ``asymflux analyze`` runs.

- :func:`analyze_path`: read a dataset folder or a bare stack (with a cycler file, frame
  times, a clock offset), refuse it when no frame gets a capacity, and measure it with
  :func:`~asymflux.analysis.analyze_dataset` (frames of :data:`STREAM_MIN_PIXELS` or more:
  :func:`~asymflux.analysis.analyze_streaming`, equal tables).
- :func:`analyze_campaign`: many paths on a dask.distributed client, one task per dataset,
  a failed dataset named and the others kept; :func:`local_client` (a LocalCluster sized by
  the cores and the memory); :func:`campaign_names` (each dataset's output name).
- an analyze output: :func:`write_analyze_output` (the whole folder in one swap),
  :func:`write_clock_table` (``clock.csv``),
  :func:`write_failures_table` (``failures.csv``) and, reading it back,
  :func:`partial_output_warnings`.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["analyze_path", "find_cached_analysis", "analyze_campaign", "local_client", "campaign_names",
           "write_analyze_output",
           "write_clock_table", "write_failures_table", "partial_output_warnings",
           "STREAM_MIN_PIXELS", "WORKER_MEMORY_BYTES"]


def _read_dataset(path, pixel_nm, frame_interval_s, read=None, time_offset_s=None):
    """Read a dataset folder or stack ``path`` with ``read``'s options (``echem``: a cycler
    file merged in, checked to overlap the frames; ``frame_times``: a table of frame times
    for a bare stack)."""
    from asymflux import io

    path = Path(path)
    if not path.exists():
        raise ValueError(f"dataset {path} does not exist")
    read = {k: v for k, v in (read or {}).items() if v is not None}
    echem_path, mass = read.pop("echem", None), read.pop("active_mass_mg", None)
    frame_times = read.pop("frame_times", None)
    kwargs = dict(read)
    if pixel_nm is not None:
        kwargs["pixel_nm"] = pixel_nm
    if frame_interval_s is not None:
        kwargs["frame_interval_s"] = frame_interval_s
    if frame_times is not None:
        if not path.is_file():
            raise ValueError(f"frame_times is for bare stacks; {path} is a dataset folder "
                             "(its frames.csv holds the frame times)")
        kwargs["frame_interval_s"] = 1.0  # placeholder: replaced by the table's times below
    ds = io.read_dataset(path, **kwargs)
    if frame_times is not None:  # one time per frame, from the table
        import dataclasses

        from ._frametimes import read_frame_times

        ds = dataclasses.replace(ds, time_s=read_frame_times(
            frame_times, n_frames=int(ds.stack.shape[0])))
    if echem_path is None:
        return ds
    table = io.read_echem(echem_path, active_mass_mg=mass)
    t = table["time_s"].to_numpy()
    if not len(t):
        raise ValueError(f"{echem_path}: the cycler file holds no records")
    auto = str(time_offset_s).strip().lower() == "auto"
    try:  # seconds, their text or a TimeOffset (apply_time_offset checks them)
        shift = 0.0 if auto else float(getattr(time_offset_s, "offset_s", time_offset_s) or 0.0)
    except (TypeError, ValueError):
        shift = 0.0
    if not auto and not (t[0] - shift <= ds.time_s[-1] and ds.time_s[0] <= t[-1] - shift):
        raise ValueError(
            f"{echem_path}: the cycler records ({t[0]:g}-{t[-1]:g} s) do not overlap the frames of "
            f"{path} ({ds.time_s[0]:g}-{ds.time_s[-1]:g} s"
            + (f", {ds.time_s[0] + shift:g}-{ds.time_s[-1] + shift:g} s on the cycler's clock "
               f"with time_offset_s={shift:g}" if shift else "")
            + "); both must be on one clock (seconds): give time_offset_s (cycler time = "
            "frame time + offset) or auto"
        )
    meta = dict(ds.metadata)
    if mass is not None:
        meta["active_mass_mg"] = float(mass)
    import dataclasses

    with_echem = dataclasses.replace(ds, echem=table, metadata=meta)
    if getattr(ds, "echem", None) is not None and path.is_file():
        from asymflux.io.instrument import is_instrument_hdf5

        if is_instrument_hdf5(path):  # potentiostat values on the camera's clock: "auto"
            with_echem.recorded_echem = ds.echem
    return with_echem


def _check_capacity(ds, path):
    """Refuse a dataset whose cycler table gives no frame a capacity (another clock, or no
    finite capacity): the vanish capacities would all be empty."""
    import numpy as np

    from asymflux.io import DatasetError

    if getattr(ds, "echem", None) is None or not len(ds.echem) \
            or not hasattr(ds, "capacity_report"):
        return
    try:
        cap, problems = ds.capacity_report()
    except DatasetError:
        return  # no capacity column: reported by the analysis
    if not np.isfinite(cap).any():
        reason = problems[-1] if problems else f"{path}: no frame gets a capacity"
        reason = reason.replace("capacity is NaN for every frame", "").rstrip("; ")
        raise ValueError(f"{reason}; refusing to analyse {path} with no capacity per frame "
                         "(fix the cycler data, or the frame times: seconds on one clock; "
                         "or give time_offset_s: cycler time = frame time + offset, or auto)")


#: Frames of at least this many pixels (instrument movies: 1200 x 1920) are measured on the
#: particles' crops (``analysis._streaming.analyze_streaming``: the same numbers, less work
#: per frame); smaller ones by ``analyze_dataset`` directly.
STREAM_MIN_PIXELS = 1 << 20


def analyze_path(path, *, pixel_nm=None, frame_interval_s=None, masks=None, options=None,
                 progress=False, read=None, masks_source=None, time_offset_s=None,
                 illumination="auto", dark=None, flat=None, cache=True, require_capacity=True):
    """Read one dataset path and analyse it, as ``asymflux analyze`` does.

    Parameters
    ----------
    path : path-like
        A dataset folder (``metadata.json``) or a bare stack (.tif, .ome.tif, a TIFF folder,
        .zarr, .npy, .tdms, .h5; ``docs/formats.md``).
    pixel_nm, frame_interval_s : float, optional
        Pixel size (nm) and time between frames (s) of a bare stack.
    masks : ndarray of int, shape (row, col), optional
        Particle labels used as given (checked against the frames; ``masks_source`` names
        them in errors); default: the dataset's, else detected.
    options : dict, optional
        Keyword options of :func:`~asymflux.analysis.analyze_dataset` (``threshold``,
        ``register``, ``normalize``, ``rolling_frames``, ...).
    progress : bool
        A progress bar (stderr).
    read : dict, optional
        Reading options: ``echem`` (a cycler file, merged and checked to overlap the
        frames), ``active_mass_mg``, ``frame_times`` (a table of frame times, s, for a bare
        stack), and :func:`asymflux.io.read_dataset`'s (``channel``, ``z``, ``frame_axis``).
    masks_source : str, optional
        What ``masks`` are called in error messages.
    time_offset_s : float, "auto" or None
        ``cycler_time_s = camera_time_s + time_offset_s``
        (:func:`~asymflux.analysis.apply_time_offset`), applied before the capacity check;
        the offset used is in the tables (``time_offset_*`` columns and
        ``attrs["time_offset"]``). None: the dataset's own, else 0.
    illumination : "auto", True, False or None
        Divide each frame by its own smooth spatial illumination fitted to the
        particle-free pixels (a beam profile that moves or changes shape); ``"auto"``
        (default): when that pattern changes over the particles by more than 0.5 x the dI
        threshold (said in the warnings). See
        :func:`~asymflux.analysis.resolve_illumination`.
    dark, flat : path-like or (row, col) array, optional
        The camera's dark frame, subtracted from every frame before detection, and its
        flat-field frame: every frame is divided by ``flat - dark`` scaled to a mean of 1
        (``.npy`` or ``.tif``; a stack of frames is averaged;
        :func:`~asymflux.analysis.calibrate_stack`). Read and checked against the frames
        before any analysis.
    cache : bool or path-like
        Read the result from the results cache when ``path`` (and the cycler and frame-times
        files) and every option (and the dark and flat files) are unchanged since it was stored, else measure and store
        it (:mod:`asymflux.analysis._cache`; ``docs/cache.md``). A folder: that cache
        instead of the user's; False: measure, nothing read or written.
    require_capacity : bool
        Refuse a dataset whose cycler data give no frame a capacity (``asymflux analyze``);
        False: measure it all the same (the dashboards show it). A refusal is never stored,
        so both share the cache's entries.

    Returns
    -------
    particles, timeseries : pandas.DataFrame
        :func:`~asymflux.analysis.analyze_dataset`'s tables; the warnings about the result
        are in ``particles.attrs["warnings"]``.
    labels : ndarray of int, shape (row, col)
        The particle labels used.
    name : str
        The dataset's name.

    Raises
    ------
    ValueError
        Naming ``path``: a dataset whose cycler data give no frame a capacity (or do not
        overlap its frames), masks that do not fit its frames, ``rolling_frames`` not smaller
        than its number of frames, a dark or flat frame that cannot be read, does not fit
        its frames or leaves ``flat - dark`` not positive, bad data.

    Notes
    -----
    Frames of :data:`STREAM_MIN_PIXELS` or more are measured on the particles' crops
    (:func:`~asymflux.analysis.analyze_streaming`, equal tables).
    """
    from ._cache import cached, last

    def compute():
        return _analyze_path(path, pixel_nm=pixel_nm, frame_interval_s=frame_interval_s,
                             masks=masks, options=options, progress=progress, read=read,
                             masks_source=masks_source, time_offset_s=time_offset_s,
                             illumination=illumination, dark=dark, flat=flat,
                             require_capacity=require_capacity)

    key_options = _path_key_options(pixel_nm, frame_interval_s, masks, options, read,
                                    time_offset_s, illumination, dark, flat)
    result = cached("analyze_path", [Path(path)], key_options, compute, cache=cache)
    if progress and last.hit:
        import sys

        print(f"{path}: results read from the cache ({last.entry}); unchanged files and "
              "options (cache=False, or --no-cache, to measure again)", file=sys.stderr)
    return result


def _path_key_options(pixel_nm, frame_interval_s, masks, options, read, time_offset_s,
                      illumination="auto", dark=None, flat=None):
    """:func:`analyze_path`'s options as its cache key holds them (the cycler and frame-times
    files, and the camera's dark and flat files: their identity; calibration arrays: their
    values)."""
    read_files = {k: Path(v) for k, v in (read or {}).items()
                  if k in ("echem", "frame_times") and v is not None}
    out = {"pixel_nm": pixel_nm, "frame_interval_s": frame_interval_s, "masks": masks,
           "options": _key_options(options),
           "read": {**{k: v for k, v in (read or {}).items() if v is not None}, **read_files},
           "time_offset_s": time_offset_s}
    if not (isinstance(illumination, str) and illumination == "auto" and dark is None
            and flat is None):  # the defaults add nothing: the keys of before
        out["illumination"] = illumination
        out["dark"] = Path(dark) if isinstance(dark, str | Path) else dark
        out["flat"] = Path(flat) if isinstance(flat, str | Path) else flat
    return out


def find_cached_analysis(path, *, pixel_nm=None, frame_interval_s=None, masks=None,
                         options=None, read=None, time_offset_s=None, illumination="auto",
                         dark=None, flat=None, cache=True):
    """:func:`analyze_path`'s result for these arguments when the results cache holds it
    (unchanged files and options), else None: nothing is read or measured beyond the cache's
    entry (a page can show it at once, and start a measurement only when it is None)."""
    from ._cache import lookup

    return lookup("analyze_path", [Path(path)],
                  _path_key_options(pixel_nm, frame_interval_s, masks, options, read,
                                    time_offset_s, illumination, dark, flat), cache=cache)


#: Options of ``analyze_dataset`` that do not change its numbers: not in the cache key.
_NOT_IN_KEY = ("dataset", "masks", "n_threads", "progress", "return_labels")


def _key_options(options) -> dict:
    """``options`` over :func:`~asymflux.analysis.analyze_dataset`'s defaults, without those
    that do not change the numbers: the options as the cache key holds them (an option given
    at its default value and one left out give one key)."""
    import inspect

    from ._pipeline import analyze_dataset

    out = {name: p.default for name, p in inspect.signature(analyze_dataset).parameters.items()
           if p.default is not inspect.Parameter.empty and name not in _NOT_IN_KEY}
    out.update({k: v for k, v in (options or {}).items() if k not in _NOT_IN_KEY})
    return out


def _analyze_path(path, *, pixel_nm, frame_interval_s, masks, options, progress, read,
                  masks_source, time_offset_s, illumination="auto", dark=None, flat=None,
                  require_capacity=True):
    """:func:`analyze_path` without the cache."""
    from ._naming import dataset_name
    from ._pipeline import analyze_dataset

    ds = _read_dataset(path, pixel_nm, frame_interval_s, read, time_offset_s)
    if masks is not None:
        from ._measure import check_labels

        masks = check_labels(masks, ds.stack.shape[1:],
                              name=f"{masks_source or 'given'} (for {path}): masks")
    if time_offset_s is not None:
        from ._clock import apply_time_offset

        try:
            ds = apply_time_offset(ds, time_offset_s, masks=masks)
        except ValueError as e:
            raise ValueError(str(e) if str(path) in str(e) else f"{path}: {e}") from e
    if require_capacity:
        _check_capacity(ds, path)
    if getattr(ds, "pixel_nm", None) is None and pixel_nm is not None:
        ds.pixel_nm = pixel_nm
    rolling = (options or {}).get("rolling_frames")
    n_frames = int(ds.stack.shape[0]) if getattr(ds, "stack", None) is not None else None
    if rolling is not None and n_frames is not None and rolling >= n_frames:
        raise ValueError(f"{path}: rolling_frames={rolling} must be smaller than its number of frames "
                         f"({n_frames})")
    import warnings

    import numpy as np

    from asymflux.io import EchemWarning

    options = dict(options or {})
    options.update(_calibration_options(ds, path, illumination=illumination, dark=dark,
                                        flat=flat))
    analyze = analyze_dataset
    stack = getattr(ds, "stack", None)
    if getattr(stack, "ndim", 0) == 3 and int(np.prod(stack.shape[1:])) >= STREAM_MIN_PIXELS:
        from ._streaming import analyze_streaming as analyze  # the same numbers, on crops
    try:
        with warnings.catch_warnings():  # they are in particles.attrs["warnings"]
            warnings.simplefilter("ignore", EchemWarning)
            particles, ts, labels = analyze(ds, masks=masks, progress=progress,
                                            return_labels=True, **options)
    except ValueError as e:
        msg = str(e)
        raise ValueError(msg if str(path) in msg else f"{path}: {msg}") from e
    return particles, ts, labels, dataset_name(ds)


def _calibration_options(ds, path, *, illumination="auto", dark=None, flat=None) -> dict:
    """The ``illumination``, ``dark`` and ``flat`` options of :func:`analyze_path` as keyword
    options of :func:`~asymflux.analysis.analyze_dataset`: the dark and flat frames read
    and checked against the frames of ``ds`` (ValueError naming the file and ``path``)
    before any analysis, then given as arrays (each file read once). ``illumination="auto"``
    leaves ``options``' own (its default is "auto")."""
    if not (illumination is None or illumination is False or illumination is True
            or illumination == "auto"):
        raise ValueError(f"illumination must be 'auto', True, False or None, got "
                         f"{illumination!r}")
    out = {} if isinstance(illumination, str) else {"illumination": illumination}
    if dark is None and flat is None:
        return out
    from ._quality import calibration_gain, load_calibration_frame

    shape = tuple(ds.stack.shape[1:])
    try:
        d = None if dark is None else load_calibration_frame(dark, shape, name="dark")
        f = None if flat is None else load_calibration_frame(flat, shape, name="flat")
        if f is not None:
            where = f"flat frame {flat}" if isinstance(flat, str | Path) else "flat frame"
            calibration_gain(f, d, name=where)
    except ValueError as e:
        raise ValueError(str(e) if str(path) in str(e) else f"{path}: {e}") from e
    out["dark"], out["flat"] = d, f
    return out


def _unique(names):
    """``names`` made unique in order: a repeated name gets ``_2``, ``_3``, ..."""
    seen, out = {}, []
    for n in names:
        k = seen.get(n, 0)
        seen[n] = k + 1
        out.append(n if k == 0 else f"{n}_{k + 1}")
    return out


def _failure(path, exc) -> str:
    """One line saying why ``path`` failed, naming it (a worker's exception, or the
    worker's death: ``KilledWorker``)."""
    msg = " ".join(str(exc).split()) or type(exc).__name__
    if not isinstance(exc, ValueError | OSError):
        msg = f"{type(exc).__name__}: {msg}"
    return msg if str(path) in msg else f"{path}: {msg}"


def analyze_campaign(paths, *, client, progress=True, on_failure=None, **kw):
    """Analyse dataset paths on a dask.distributed ``client``, one task per dataset.

    Parameters
    ----------
    paths : list of path-like
        Dataset folders or stacks; each must be readable by the workers (the same path on
        a shared file system: relative paths are made absolute here).
    client : dask.distributed.Client
    progress : bool
        A tqdm bar over the datasets (stderr).
    on_failure : callable, optional
        ``on_failure(index, message)`` as soon as a dataset fails (while the bar is shown:
        print with ``tqdm.write``).
    **kw
        Keyword options of :func:`analyze_path` (``options`` gains ``n_threads=1``: one
        worker thread per dataset; the numbers do not depend on it).

    Returns
    -------
    results : list
        One entry per path, in the order given: ``analyze_path``'s
        ``(particles, timeseries, labels, name)``, or None if it failed.
    failures : dict
        ``{index: one-line message naming the path}`` of the datasets that failed
        (bad data, a worker that died, ...); the others are complete.
    """
    from dask.distributed import as_completed
    from tqdm.auto import tqdm

    kw = dict(kw)
    kw["options"] = dict(kw.get("options") or {}, n_threads=1)
    read = dict(kw.get("read") or {})
    for key in ("echem", "frame_times"):
        if read.get(key) is not None:
            read[key] = Path(read[key]).absolute()
    kw["read"] = read
    for key in ("dark", "flat"):  # the workers' working folder may be another
        if isinstance(kw.get(key), str | Path):
            kw[key] = Path(kw[key]).absolute()
    futures = {client.submit(analyze_path, Path(p).absolute(), pure=False, **kw): i
               for i, p in enumerate(paths)}
    results, failures = [None] * len(paths), {}
    bar = tqdm(as_completed(futures), total=len(futures), unit="dataset", disable=not progress)
    for fut in bar:
        i = futures[fut]
        try:
            results[i] = fut.result()
        except Exception as e:  # noqa: BLE001 - reported per dataset, the rest go on
            failures[i] = _failure(paths[i], e)
            if on_failure is not None:
                on_failure(i, failures[i])
        finally:
            fut.release()
    return results, failures


#: Memory a LocalCluster worker is given room for (an instrument movie analysed on crops,
#: with headroom): fewer workers than cores where the machine has less than this per core.
WORKER_MEMORY_BYTES = 4 << 30


def _local_cluster_options(n_datasets, *, cores=None, memory_bytes=None) -> dict:
    """The LocalCluster's keyword options: one single-threaded worker process per core, at
    most one per dataset and one per :data:`WORKER_MEMORY_BYTES` of the machine's memory,
    and ``memory_limit=0``: no per-worker limit, so dask's nanny never pauses or kills a
    worker that reads a large movie (dask's default, the machine's memory divided by the
    workers, is 6 GiB a worker with 4 cores on a 24 GiB machine: one large movie passes it)."""
    import os

    if cores is None:
        cores = os.cpu_count() or 1
    if memory_bytes is None:
        from distributed.system import MEMORY_LIMIT as memory_bytes
    by_memory = max(1, int(memory_bytes // WORKER_MEMORY_BYTES))
    return {"n_workers": max(1, min(n_datasets, cores, by_memory)), "threads_per_worker": 1,
            "processes": True, "memory_limit": 0, "dashboard_address": None}


def local_client(n_datasets):
    """A LocalCluster (:func:`_local_cluster_options`) and its client."""
    import logging

    from dask.distributed import Client, LocalCluster

    # a dataset's failure is reported by analyze_campaign, naming it, in one line: the
    # workers' own tracebacks are not repeated on the terminal
    cluster = LocalCluster(**_local_cluster_options(n_datasets), silence_logs=logging.CRITICAL)
    try:
        return Client(cluster), cluster
    except BaseException:
        cluster.close()
        raise


def _name_of_path(path) -> str:
    """The name a dataset that could not be read would have had (``dataset_name`` without
    reading the stack: a dataset folder's ``metadata.json`` name, else the folder or file
    name), so that the other datasets' output names do not depend on which one failed."""
    import json

    path = Path(path)
    try:
        name = json.loads((path / "metadata.json").read_text(encoding="utf-8")).get("name")
        if name:
            return str(name)
    except (OSError, ValueError, AttributeError):
        pass
    return path.name.split(".")[0] if path.is_file() else path.name


def write_clock_table(folder, particles):
    """``clock.csv``: one row per dataset, the clock offset used and how it was obtained."""
    import pandas as pd

    rows = []
    for p in particles:
        clock = dict(p.attrs.get("time_offset") or {})
        if len(p) and "time_offset_s" in p.columns:
            for col in ("time_offset_s", "time_offset_uncertainty_s", "time_offset_method"):
                clock.setdefault(col, p[col].iloc[0])
            rows.append({"dataset": p["dataset"].iloc[0], **clock})
    cols = ["dataset", "time_offset_s", "time_offset_uncertainty_s", "time_offset_method",
            "time_offset_detail"]
    pd.DataFrame(rows, columns=cols).to_csv(folder / "clock.csv", index=False)


def partial_output_warnings(folder) -> list[str]:
    """A warning naming the datasets an analyze output lacks (its ``failures.csv``), if any."""
    import pandas as pd

    folder = Path(folder)
    f = folder / "failures.csv"
    if not f.is_file():
        return []
    try:
        failed = pd.read_csv(f, dtype=str, keep_default_na=False)
        names = [n or d for n, d in zip(failed.get("name", []), failed.get("dataset", []),
                                         strict=False)]
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError, ValueError):
        names = []
    shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
    return [f"{folder}: a partial analyze output: {len(names) or 'some'} dataset(s) failed and "
            f"are not in these statistics{': ' + shown if names else ''} (listed in {f})"]


def campaign_names(results, paths) -> list[str]:
    """The output name of each dataset of ``paths`` (``results``: :func:`analyze_campaign`'s,
    None for a failed one): its dataset name, made unique in order (``_2``, ...); a failed
    dataset reserves the name it would have had, so the others' names do not depend on which
    one failed."""
    return _unique([r[3] if r is not None else _name_of_path(p)
                    for r, p in zip(results, paths, strict=True)])


def write_failures_table(folder, rows) -> None:
    """``failures.csv`` of an analyze output: one row per dataset that failed (``dataset``,
    ``name``, ``error``); nothing when ``rows`` is empty."""
    import pandas as pd

    if rows:
        pd.DataFrame(rows, columns=["dataset", "name", "error"]).to_csv(
            Path(folder) / "failures.csv", index=False)


def write_analyze_output(out, results, names, *, failed=(), provenance=None,
                         parquet=False) -> int:
    """Write an analyze output folder ``out`` in one folder swap (all of it, or nothing).

    Parameters
    ----------
    out : path-like
        The folder: new, empty, or an earlier analyze output (its tables, masks, clock,
        failures, provenance and fits are replaced; other files are kept).
    results : list
        :func:`analyze_path`'s ``(particles, timeseries, labels, name)`` per dataset, None
        for a dataset that failed.
    names : list of str
        The output name of each dataset (:func:`campaign_names`), one per entry of
        ``results``: the ``dataset`` column and ``masks/<name>.tif``.
    failed : list of dict
        ``failures.csv``'s rows (:func:`write_failures_table`).
    provenance : dict, optional
        The provenance record (:mod:`asymflux.provenance`), as ``provenance.json``.
    parquet : bool
        Also write the tables as ``.parquet``.

    Returns
    -------
    int
        The number of particles written.
    """
    import pandas as pd

    from ._pipeline import ANALYZE_OUTPUTS, write_tables

    particles, series, labels_of = [], [], {}
    for r, name in zip(results, names, strict=True):
        if r is None:
            continue
        p, ts, labels, _ = r
        p["dataset"] = name
        ts["dataset"] = name
        particles.append(p)
        series.append(ts)
        labels_of[name] = labels

    def files(folder):
        import tifffile

        if provenance is not None:
            from ..provenance import to_json

            (folder / "provenance.json").write_text(to_json(provenance), encoding="utf-8")
        (folder / "masks").mkdir()
        for name, labels in labels_of.items():
            tifffile.imwrite(folder / "masks" / f"{name}.tif",
                             labels.astype("uint16" if labels.max() < 65536 else "uint32"))
        write_clock_table(folder, particles)
        write_failures_table(folder, list(failed))  # the record that this set lacks datasets

    write_tables(out, {"particles": pd.concat(particles, ignore_index=True),
                       "timeseries": pd.concat(series, ignore_index=True)},
                 parquet=parquet, files=files,
                 replaces=(*ANALYZE_OUTPUTS, "provenance.json", "fits.csv", "fits.json",
                           "fits.provenance.json"))
    return sum(len(p) for p in particles)
