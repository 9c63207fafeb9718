"""``asymflux analyze`` and ``asymflux cohort`` (wired into :mod:`asymflux.cli` by ``register``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["register", "run_analyze", "run_cohort", "analyze_path", "analyze_campaign"]


def register(subparsers) -> None:
    """Add the ``analyze`` and ``cohort`` sub-commands to an argparse ``subparsers``."""
    p = subparsers.add_parser(
        "analyze",
        help="measure the shrinking core of every particle of one or more datasets",
        description=(
            "Measure every particle of each DATASET (a dataset folder or a bare TIFF stack): "
            "differential intensity, unreacted region (dI < threshold), offset d of its centre "
            "from the particle's centre, and a symmetric/asymmetric classification. Writes "
            "DIR/particles.csv (one row per particle), DIR/timeseries.csv (one row per particle "
            "and frame, with the cycler's voltage and current at the frame), DIR/masks/<dataset>.tif "
            "(the labels used) and DIR/clock.csv (the camera-cycler clock offset used)."
        ),
    )
    p.add_argument("datasets", nargs="+", metavar="DATASET", type=Path,
                   help="dataset folders (with metadata.json) or bare stacks (.tif, .ome.tif, "
                        "a TIFF folder, .zarr, .npy, .tdms, .h5); see docs/formats.md")
    p.add_argument("--out", required=True, type=Path, metavar="DIR",
                   help="output folder (new, empty, or an earlier analyze output, replaced "
                        "in one step)")
    p.add_argument("--masks", type=Path, metavar="FILE",
                   help="particle labels (.tif/.npy), used as given for every dataset")
    p.add_argument("--pixel-nm", type=float, metavar="P", help="pixel size for bare stacks")
    p.add_argument("--frame-interval-s", type=float, metavar="S",
                   help="time between frames for bare stacks")
    p.add_argument("--frame-times", type=Path, metavar="FILE",
                   help="bare stacks: the time of each frame, s (a CSV table with a time_s "
                        "column, one row per frame, optionally a frame column), e.g. from the "
                        "camera's log when frames were dropped; excludes --frame-interval-s")
    p.add_argument("--echem", type=Path, metavar="FILE",
                   help="bare stacks: the cycler file of the movie (any brand, docs/formats.md); "
                        "its clock against the frames': --time-offset-s")
    p.add_argument("--active-mass-mg", type=float, metavar="M",
                   help="bare stacks: active mass, mg (capacity per gram)")
    p.add_argument("--channel", type=int, metavar="K",
                   help="bare stacks: channel K of a multi-channel (T x C x Y x X) movie")
    p.add_argument("--z", type=int, metavar="K", help="bare stacks: depth K of a T x Z x Y x X movie")
    p.add_argument("--frame-axis", metavar="AX",
                   help="bare stacks: the TIFF axis that holds the frames (e.g. Z for a z-stack "
                        "recorded as slices)")
    p.add_argument("--time-offset-s", metavar="S|auto", default=None,
                   help="the cycler's clock against the camera's: cycler time = frame time + S "
                        "(seconds; default: the dataset's own, else 0). 'auto' estimates it "
                        "with its uncertainty (the camera-recorded voltage against the cycler "
                        "file's, else the particles' mean intensity against the cycler's "
                        "current; docs/analysis.md). Stored in clock.csv and the tables")
    p.add_argument("--threshold", type=float, default=0.05,
                   help="dI below which a pixel is unreacted (default 0.05)")
    p.add_argument("--edge-px", type=int, default=2,
                   help="pixels next to a particle's outline left out of its unreacted region "
                        "(PSF-blurred with the matrix; default 2, ~one PSF sigma at 65 nm/px)")
    p.add_argument("--asymmetry-threshold", type=float, default=None,
                   help="d/R_eq at or above which a particle is asymmetric (default 0.08)")
    p.add_argument("--no-register", action="store_true", help="skip drift correction")
    p.add_argument("--normalize-illumination", action="store_true",
                   help="divide each frame by its illumination before dI (lamp flicker, drift): "
                        "the dataset's recorded frame intensity, else the mean of the pixels "
                        "away from the particles")
    p.add_argument("--no-normalize-illumination", action="store_true",
                   help="keep the raw intensities even when the background drifts (by default "
                        "each frame is normalised, as with --normalize-illumination, when the "
                        "particle-free background drifts by more than 0.2 x the threshold; "
                        "said in the warnings)")
    p.add_argument("--rolling", type=int, metavar="N", default=None,
                   help="rolling differential dI = I_t / I_(t-N) - 1 (N frames, 1 <= N < number "
                        "of frames; the first N frames are NaN) instead of I / I0 - 1")
    p.add_argument("--min-area-px", type=int, metavar="N", default=None,
                   help="detection: smallest particle in pixels (default: 6 PSF areas at the "
                        "pixel size, 88 px at 65 nm/px; 30 px if the pixel size is unknown)")
    p.add_argument("--max-area-px", type=int, metavar="N", default=None,
                   help="detection: largest particle in pixels (default: no limit)")
    p.add_argument("--min-solidity", type=float, metavar="S", default=None,
                   help="detection: drop particles less solid than S (area / convex hull "
                        "area, 0-1; default: keep all)")
    p.add_argument("--min-core-px", type=int, metavar="N", default=None,
                   help="fewer unreacted pixels than N leave d NaN (flag core_too_small; "
                        "default: a PSF's area, pi x edge-px^2, at least 4)")
    p.add_argument("--saturation-level", metavar="V", default="auto",
                   help="the camera's clip level: pixels at or above it are unknown (flag "
                        "saturated); 'auto' (default): a pile-up at the top value, or the "
                        "integer type's maximum; 'none': no clipping")
    p.add_argument("--intensity-offset", type=float, metavar="V", default=0.0,
                   help="add V to every pixel first: a background-subtracted movie (negative "
                        "intensities, refused otherwise) with the subtracted level put back")
    p.add_argument("--parquet", action="store_true", help="also write .parquet tables")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run the datasets on this dask.distributed scheduler (tcp://host:port, "
                        "or the JSON file of `dask scheduler --scheduler-file`); the workers "
                        "must see the dataset paths. Default: a LocalCluster on this machine "
                        "when there is more than one dataset. A dataset that fails is named on "
                        "stderr, the others are written, and the exit status is 2")
    p.set_defaults(func=run_analyze)

    c = subparsers.add_parser(
        "cohort",
        help="statistics of asymmetric particles per ageing condition (Fig. 5e)",
        description=("Read DIR/particles.csv of each analyze output DIR (or of each analyze "
                     "output inside DIR) and write the counts and fraction of asymmetric "
                     "particles per ageing condition with Wilson 95% intervals to FILE (.csv "
                     "or .parquet). A movie over several half-cycles counts each particle once, "
                     "on its first charge half-cycle."),
    )
    c.add_argument("dirs", nargs="+", metavar="DIR", type=Path,
                   help="analyze output folders (each with particles.csv)")
    c.add_argument("--out", required=True, type=Path, metavar="FILE",
                   help="statistics table to write: FILE.csv or FILE.parquet")
    c.add_argument("--by", default="ageing", help="grouping column (default: ageing)")
    c.set_defaults(func=run_cohort)


def _read_dataset(path, pixel_nm, frame_interval_s, read=None, time_offset_s=None):
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
            raise ValueError(f"--frame-times is for bare stacks; {path} is a dataset folder "
                             "(its frames.csv holds the frame times)")
        kwargs["frame_interval_s"] = 1.0  # placeholder: replaced by the table's times below
    ds = io.read_dataset(path, **kwargs)
    if frame_times is not None:  # one time per frame, from the table
        import dataclasses

        from ._frametimes import read_frame_times

        extra = getattr(ds, "frame_intensity", None)
        ds = dataclasses.replace(ds, time_s=read_frame_times(
            frame_times, n_frames=int(ds.stack.shape[0])))
        if extra is not None:
            ds.frame_intensity = extra
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
               f"with --time-offset-s {shift:g}" if shift else "")
            + "); both must be on one clock (seconds): give --time-offset-s (cycler time = "
            "frame time + offset) or auto"
        )
    meta = dict(ds.metadata)
    if mass is not None:
        meta["active_mass_mg"] = float(mass)
    import dataclasses

    with_echem = dataclasses.replace(ds, echem=table, metadata=meta)
    if getattr(ds, "frame_intensity", None) is not None:  # the instrument's, not a field
        with_echem.frame_intensity = ds.frame_intensity
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
                         "or give --time-offset-s: cycler time = frame time + offset, or auto)")


#: Frames of at least this many pixels (instrument movies: 1200 x 1920) are measured on the
#: particles' crops (``analysis._streaming.analyze_streaming``: the same numbers, less work
#: per frame); smaller ones by ``analyze_dataset`` directly.
STREAM_MIN_PIXELS = 1 << 20


def analyze_path(path, *, pixel_nm=None, frame_interval_s=None, masks=None, options=None,
                 progress=False, read=None, masks_source=None, time_offset_s=None):
    """Read one dataset and analyse it: ``(particles, timeseries, labels, name)``.

    ``time_offset_s`` (s, ``"auto"`` or None): ``cycler_time_s = camera_time_s +
    time_offset_s`` (:func:`~asymflux.analysis.apply_time_offset`), applied before the
    capacity check; the offset used is in the tables (``time_offset_*`` columns and
    ``attrs["time_offset"]``).

    Refuses (ValueError) a dataset whose cycler data give no frame a capacity, and masks
    (named ``masks_source``) that do not fit its frames. The warnings about the result are
    in ``particles.attrs["warnings"]``. Frames of :data:`STREAM_MIN_PIXELS` or more are
    measured on the particles' crops (``analyze_streaming``, equal tables)."""
    from ._pipeline import analyze_dataset, dataset_name

    ds = _read_dataset(path, pixel_nm, frame_interval_s, read, time_offset_s)
    if masks is not None:
        from ._measure import _check_labels

        masks = _check_labels(masks, ds.stack.shape[1:],
                              name=f"{masks_source or 'given'} (for {path}): masks")
    if time_offset_s is not None:
        from ._clock import apply_time_offset

        try:
            ds = apply_time_offset(ds, time_offset_s, masks=masks)
        except ValueError as e:
            raise ValueError(str(e) if str(path) in str(e) else f"{path}: {e}") from e
    _check_capacity(ds, path)
    if getattr(ds, "pixel_nm", None) is None and pixel_nm is not None:
        ds.pixel_nm = pixel_nm
    rolling = (options or {}).get("rolling_frames")
    n_frames = int(ds.stack.shape[0]) if getattr(ds, "stack", None) is not None else None
    if rolling is not None and n_frames is not None and rolling >= n_frames:
        raise ValueError(f"{path}: --rolling {rolling} must be smaller than its number of frames "
                         f"({n_frames})")
    import warnings

    import numpy as np

    from asymflux.io import EchemWarning

    analyze = analyze_dataset
    stack = getattr(ds, "stack", None)
    if getattr(stack, "ndim", 0) == 3 and int(np.prod(stack.shape[1:])) >= STREAM_MIN_PIXELS:
        from ._streaming import analyze_streaming as analyze  # the same numbers, on crops
    try:
        with warnings.catch_warnings():  # they are in particles.attrs["warnings"]
            warnings.simplefilter("ignore", EchemWarning)
            particles, ts, labels = analyze(ds, masks=masks, progress=progress,
                                            return_labels=True, **(options or {}))
    except ValueError as e:
        msg = str(e)
        raise ValueError(msg if str(path) in msg else f"{path}: {msg}") from e
    return particles, ts, labels, dataset_name(ds)


def _unique(names):
    seen, out = {}, []
    for n in names:
        k = seen.get(n, 0)
        seen[n] = k + 1
        out.append(n if k == 0 else f"{n}_{k + 1}")
    return out


def _check_scheduler(address: str) -> str:
    """A dask scheduler address ``[tcp://]host:port`` (or another dask scheme), or an
    existing scheduler file (JSON, as ``dask scheduler --scheduler-file`` writes), else
    ValueError."""
    import re

    text = str(address).strip()
    if text.lower().endswith(".json") or Path(text).is_file():
        if not Path(text).is_file():
            raise ValueError(f"--scheduler {address!r}: no such scheduler file")
        return text
    m = re.fullmatch(r"(?:(?P<scheme>[a-z]+)://)?(?P<host>\[[0-9a-fA-F:.]+\]|[^\s:/]+)"
                     r"(?::(?P<port>\d{1,5}))?", text)
    schemes = ("tcp", "tls", "ws", "wss", "ucx", "inproc")
    if (not m or (m["scheme"] or "tcp") not in schemes
            or (m["scheme"] != "inproc" and not m["port"])):
        raise ValueError(f"--scheduler {address!r}: expected a dask scheduler address "
                         "such as tcp://host:8786, or a scheduler file (.json)")
    return text


def _connect(address: str):
    """A :class:`dask.distributed.Client` of the scheduler at ``address`` (or in the
    scheduler file ``address``); ValueError naming it if it does not answer in 10 s."""
    from dask.distributed import Client

    try:
        if Path(address).is_file():
            return Client(scheduler_file=address, timeout="10s")
        return Client(address, timeout="10s")
    except (OSError, TimeoutError, ValueError) as e:
        raise ValueError(f"--scheduler {address}: cannot connect ({type(e).__name__}: "
                         f"{e})") from None


def _failure(path, exc) -> str:
    """One line saying why ``path`` failed, naming it (a worker's exception, or the
    worker's death: ``KilledWorker``)."""
    msg = " ".join(str(exc).split()) or type(exc).__name__
    if not isinstance(exc, ValueError | OSError):
        msg = f"{type(exc).__name__}: {msg}"
    return msg if str(path) in msg else f"{path}: {msg}"


def analyze_campaign(paths, *, client, progress=True, **kw):
    """Analyse dataset paths on a dask.distributed ``client``, one task per dataset.

    Parameters
    ----------
    paths : list of path-like
        Dataset folders or stacks; each must be readable by the workers (the same path on
        a shared file system: relative paths are made absolute here).
    client : dask.distributed.Client
    progress : bool
        A tqdm bar over the datasets (stderr).
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
            bar.write(f"asymflux analyze: error: {failures[i]}", file=sys.stderr)
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


def _local_client(n_datasets):
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


def _quality_options(args) -> dict:
    """The detection and quality options of ``asymflux analyze`` as keyword options of
    :func:`analyze_dataset` (only those given)."""
    out = {}
    detect = {k: getattr(args, k) for k in ("min_area_px", "max_area_px", "min_solidity")
              if getattr(args, k, None) is not None}
    if detect:
        out["detect_kwargs"] = detect
    if getattr(args, "min_core_px", None) is not None:
        out["min_core_px"] = args.min_core_px
    level = str(getattr(args, "saturation_level", "auto")).strip().lower()
    if level == "none":
        out["saturation_level"] = None
    elif level != "auto":
        try:
            out["saturation_level"] = float(level)
        except ValueError:
            raise ValueError(f"--saturation-level must be a number, 'auto' or 'none', got "
                             f"{args.saturation_level!r}") from None
    if getattr(args, "intensity_offset", 0.0):
        out["intensity_offset"] = float(args.intensity_offset)
    return out


def run_analyze(args: argparse.Namespace) -> int:
    import pandas as pd

    from .._atomic import check_output, output_errors
    from ..cli import dataset_inputs
    from ..io import read_masks
    from ._pipeline import ANALYZE_OUTPUTS, is_analyze_output, write_tables

    paths = list(args.datasets)
    for p in paths:
        if not Path(p).exists():
            raise ValueError(f"dataset {p} does not exist")
    _check_analyze_options(args)
    inputs = [f for p in paths for f in dataset_inputs(p)]
    if args.masks:
        inputs.append(Path(args.masks))
    out = check_output(args.out, folder=True, inputs=inputs, input_folders=paths,
                       accept_folder=is_analyze_output)
    if args.scheduler:
        _check_scheduler(args.scheduler)
    masks = read_masks(args.masks) if args.masks else None
    options = {"threshold": args.threshold, "register": not args.no_register,
               "edge_px": args.edge_px}
    if args.normalize_illumination:
        options["normalize"] = "frame_mean"
    if args.no_normalize_illumination:
        if args.normalize_illumination:
            raise ValueError("--normalize-illumination and --no-normalize-illumination "
                             "exclude each other")
        options["normalize"] = None
    if args.rolling is not None:
        options["rolling_frames"] = args.rolling
    if args.asymmetry_threshold is not None:
        options["asymmetry_threshold"] = args.asymmetry_threshold
    options.update(_quality_options(args))
    read = {"echem": args.echem, "active_mass_mg": args.active_mass_mg, "channel": args.channel,
            "z": args.z, "frame_axis": args.frame_axis}
    if getattr(args, "frame_times", None) is not None:
        from ._frametimes import read_frame_times

        if args.frame_interval_s is not None:
            raise ValueError("--frame-times and --frame-interval-s exclude each other")
        read_frame_times(args.frame_times)  # a bad table is refused before any work
        read["frame_times"] = Path(args.frame_times)
    if args.echem is not None:
        from asymflux.io import echem_format

        echem_format(args.echem)  # a missing or non-cycler file is refused before any work
    kw = {"pixel_nm": args.pixel_nm, "frame_interval_s": args.frame_interval_s, "masks": masks,
          "options": options, "read": read,
          "masks_source": str(args.masks) if args.masks else None,
          "time_offset_s": _time_offset_option(args.time_offset_s)}
    failures = {}
    if len(paths) == 1 and not args.scheduler:
        results = [analyze_path(paths[0], progress=True, **kw)]  # errors: exit 2, nothing written
    else:
        if args.scheduler:
            client, cluster = _connect(args.scheduler), None
        else:
            client, cluster = _local_client(len(paths))
        try:
            results, failures = analyze_campaign(paths, client=client, **kw)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
        if len(failures) == len(paths):
            raise ValueError(f"every dataset failed ({len(paths)}); nothing written")

    # every dataset keeps its name (and its _2 suffix) whichever failed: a failed one
    # reserves the name it would have had
    all_names = _unique([r[3] if r is not None else _name_of_path(p)
                         for r, p in zip(results, paths, strict=True)])
    failed_rows = [{"dataset": str(paths[i]), "name": all_names[i], "error": failures[i]}
                   for i in sorted(failures)]
    names = [n for n, r in zip(all_names, results, strict=True) if r is not None]
    results = [r for r in results if r is not None]
    problems = [w for r in results for w in r[0].attrs.get("warnings", [])]
    particles, series, labels_of = [], [], {}
    for (p, ts, labels, _), name in zip(results, names, strict=True):
        p["dataset"] = name
        ts["dataset"] = name
        particles.append(p)
        series.append(ts)
        labels_of[name] = labels

    from ..provenance import provenance, to_json

    record = provenance("analyze", inputs=[*inputs, *([args.echem] if args.echem else [])],
                        options=args, outputs=[out])

    def write_masks(folder):
        import tifffile

        (folder / "provenance.json").write_text(to_json(record), encoding="utf-8")

        (folder / "masks").mkdir()
        for name, labels in labels_of.items():
            tifffile.imwrite(folder / "masks" / f"{name}.tif",
                             labels.astype("uint16" if labels.max() < 65536 else "uint32"))
        _write_clock(folder, particles)
        if failed_rows:  # the record that this set lacks datasets, and why
            pd.DataFrame(failed_rows, columns=["dataset", "name", "error"]).to_csv(
                folder / "failures.csv", index=False)

    # particles, timeseries and masks appear together (one folder swap), or not at all
    with output_errors(out):
        write_tables(out, {"particles": pd.concat(particles, ignore_index=True),
                           "timeseries": pd.concat(series, ignore_index=True)},
                     parquet=args.parquet, files=write_masks,
                     replaces=(*ANALYZE_OUTPUTS, "provenance.json", "fits.csv", "fits.json",
                               "fits.provenance.json"))
    n = sum(len(p) for p in particles)
    print_warnings("analyze", problems)
    if failures:
        failed = ", ".join(str(paths[i]) for i in sorted(failures))
        print(f"analysed {len(results)} of {len(paths)} dataset(s), {n} particle(s) -> {out}; "
              f"FAILED: {failed} (listed in {Path(out) / 'failures.csv'})")
        print(f"asymflux analyze: {len(failures)} of {len(paths)} dataset(s) failed: {failed}",
              file=sys.stderr)
        return 2
    print(f"analysed {len(paths)} dataset(s), {n} particle(s) -> {out}")
    return 0


def _time_offset_option(value):
    """``--time-offset-s``: None, ``"auto"`` or a finite number of seconds (ValueError)."""
    if value is None or str(value).strip().lower() == "auto":
        return None if value is None else "auto"
    import math

    try:
        out = float(value)
    except ValueError:
        raise ValueError(f"--time-offset-s: expected seconds or 'auto', got {value!r}") from None
    if not math.isfinite(out):
        raise ValueError(f"--time-offset-s must be a finite number of seconds, got {value}")
    return out


def _write_clock(folder, particles):
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


def print_warnings(command, problems):
    """Print each warning as one line on stderr: ``asymflux COMMAND: warning: ...``."""
    import sys

    for w in dict.fromkeys(problems):  # once each, in order
        print(f"asymflux {command}: warning: {' '.join(str(w).split())}", file=sys.stderr)


def _check_analyze_options(args):
    """Every numeric option of ``analyze`` in its range (ValueError naming the option)."""
    from asymflux._validate import check_range
    from asymflux.io.dataset import NUMERIC_METADATA
    from asymflux.io.stacks import FRAME_INTERVAL_S_RANGE, PIXEL_NM_RANGE

    if args.pixel_nm is not None:
        check_range("--pixel-nm", args.pixel_nm, *PIXEL_NM_RANGE)
    if args.frame_interval_s is not None:
        check_range("--frame-interval-s", args.frame_interval_s, *FRAME_INTERVAL_S_RANGE,
                    low_inclusive=False)
    if args.active_mass_mg is not None:
        low, high, _ = NUMERIC_METADATA["active_mass_mg"]
        check_range("--active-mass-mg", args.active_mass_mg, low, high, low_inclusive=False)
    for name in ("channel", "z"):
        if getattr(args, name) is not None:
            check_range(f"--{name}", getattr(args, name), 0, None, integer=True)
    check_range("--threshold", args.threshold, -1, 1, low_inclusive=False, high_inclusive=False)
    check_range("--edge-px", args.edge_px, 0, 1000, integer=True)
    if args.asymmetry_threshold is not None:
        check_range("--asymmetry-threshold", args.asymmetry_threshold, 0, 1, low_inclusive=False)
    if args.rolling is not None and args.rolling < 1:
        raise ValueError(f"--rolling must be a positive number of frames, got {args.rolling}")


def _failed_datasets(folder: Path) -> list[str]:
    """A warning naming the datasets an analyze output lacks (its ``failures.csv``), if any."""
    import pandas as pd

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


def run_cohort(args: argparse.Namespace) -> int:
    import pandas as pd

    from .._atomic import check_output, is_leftover, output_errors, restore_moved_aside
    from ._cohort import cohort_statistics
    from ._results import read_results, results_folders

    out = check_output(args.out, inputs=[Path(d) / "particles.csv" for d in args.dirs],
                       input_folders=args.dirs)
    if out.suffix.lower() not in (".csv", ".parquet"):
        raise ValueError(f"--out {out}: a {out.suffix or 'name without a suffix'!s} file; "
                         "expected a .csv or .parquet file name (the statistics table)")
    tables, partial = [], []
    for d in args.dirs:
        if is_leftover(d):
            raise ValueError(f"{d}: a leftover of an interrupted write, not an analyze output")
        f = Path(d) / "particles.csv"
        if not f.exists():
            restore_moved_aside(Path(d).parent)  # a folder a killed writer moved aside
        # an analyze output, or a folder of them (one per condition, say)
        folders = results_folders(d) if not f.exists() else [Path(d)]
        if not folders:
            raise ValueError(f"{f} does not exist (run `asymflux analyze ... --out {d}` first)")
        for folder in folders:
            tables.append(read_results(folder, timeseries=False,
                                       require=("classification", args.by))[0])
            partial += _failed_datasets(Path(folder))
    stats = cohort_statistics(pd.concat(tables, ignore_index=True), by=args.by)
    print_warnings("cohort", partial)
    from ..fit_batch import cohort_fit_summary
    from ..provenance import provenance, write_beside

    fits = cohort_fit_summary(pd.concat(tables, ignore_index=True), args.by)
    if fits is not None:  # the fits of `asymflux fit --all` joined to the particles
        stats = stats.merge(fits, on=args.by, how="left")
    record = provenance("cohort", inputs=[Path(d) / "particles.csv" for d in args.dirs],
                        options=args, outputs=[out])
    with output_errors(out), write_beside(out, record) as tmp:
        if out.suffix.lower() == ".parquet":
            stats.to_parquet(tmp, index=False)
        else:
            stats.to_csv(tmp, index=False)
    print(stats.to_string(index=False))
    return 0
