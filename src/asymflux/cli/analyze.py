"""``asymflux analyze`` and ``asymflux cohort``: the analysis of
:mod:`asymflux.analysis` (:func:`~asymflux.analysis.analyze_path`,
:func:`~asymflux.analysis.analyze_campaign`) on dataset paths, its tables written as one folder."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from ..paper import ASYMMETRY_THRESHOLD, UNREACTED_THRESHOLD
from ._common import dataset_inputs, print_warnings, time_offset_option

__all__ = ["register", "run_analyze", "run_cohort"]


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
    p.add_argument("--threshold", type=float, default=UNREACTED_THRESHOLD,
                   help=f"dI below which a pixel is unreacted (default {UNREACTED_THRESHOLD:g})")
    p.add_argument("--edge-px", type=int, default=2,
                   help="pixels next to a particle's outline left out of its unreacted region "
                        "(PSF-blurred with the matrix; default 2, ~one PSF sigma at 65 nm/px)")
    p.add_argument("--asymmetry-threshold", type=float, default=None,
                   help=f"d/R_eq at or above which a particle is asymmetric "
                        f"(default {ASYMMETRY_THRESHOLD:g})")
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
    p.add_argument("--illumination", choices=("auto", "on", "off"), default="auto",
                   help="divide each frame by its smooth spatial illumination fitted to the "
                        "particle-free pixels (a beam profile that moves or changes shape); "
                        "auto: when that pattern changes over the particles by more than "
                        "0.5 x the dI threshold (said in the warnings)")
    p.add_argument("--dark", type=Path, metavar="FILE",
                   help="dark frame (.npy or .tif; a stack is averaged), subtracted from every "
                        "frame before detection")
    p.add_argument("--flat", type=Path, metavar="FILE",
                   help="flat-field frame (.npy or .tif; a stack is averaged): every frame is "
                        "divided by (flat - dark) scaled to a mean of 1")
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
    p.add_argument("--no-cache", action="store_true",
                   help="measure every dataset again: neither read nor write the results cache "
                        "(by default a dataset whose files and options are unchanged since an "
                        "earlier analysis is read from it; docs/cache.md says where it lives)")
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


#: ``analyze``'s flags that :func:`~asymflux.analysis.analysis_options` names by their
#: parameter, in its messages.
_OPTION_FLAGS = {name: "--" + name.replace("_", "-") for name in (
    "threshold", "edge_px", "asymmetry_threshold", "min_area_px", "max_area_px",
    "min_solidity", "min_core_px", "saturation_level", "intensity_offset")}
_OPTION_FLAGS["rolling_frames"] = "--rolling"


def _analysis_options(args) -> dict:
    """The analysis options of ``asymflux analyze`` as keyword options of
    :func:`~asymflux.analysis.analyze_dataset`, through
    :func:`~asymflux.analysis.analysis_options` (the napari widget's mapping: the same
    choices give the same numbers); a message naming the flag for a choice out of range.
    A 0 given to ``--min-area-px``, ``--max-area-px`` or ``--min-core-px`` is refused
    (:func:`_refuse_zero_counts`); ``--min-solidity 0`` keeps every particle, the default."""
    from ..analysis import analysis_options

    _refuse_zero_counts(args)
    if args.normalize_illumination and args.no_normalize_illumination:
        raise ValueError("--normalize-illumination and --no-normalize-illumination "
                         "exclude each other")
    normalize = ("on" if args.normalize_illumination
                 else "off" if args.no_normalize_illumination else "auto")
    detect = ("min_area_px", "max_area_px", "min_solidity")
    try:
        options = analysis_options(
            threshold=args.threshold, edge_px=args.edge_px, register=not args.no_register,
            normalize_illumination=normalize, rolling_frames=args.rolling,
            asymmetry_threshold=args.asymmetry_threshold,
            **{k: getattr(args, k, None) for k in (*detect, "min_core_px")},
            saturation_level=getattr(args, "saturation_level", "auto"),
            intensity_offset=getattr(args, "intensity_offset", 0.0))
    except ValueError as e:
        message = str(e)
        for name, flag in _OPTION_FLAGS.items():
            message = re.sub(rf"^{name}\b", flag, message)
        raise ValueError(message) from None
    return options


def _refuse_zero_counts(args):
    """``--min-area-px 0``, ``--max-area-px 0`` or ``--min-core-px 0`` refused before any
    work: the library needs at least 1, and the napari widget's 0 means "the default"
    (:func:`~asymflux.analysis.analysis_options`), so a 0 here would mean something else
    in each front end."""
    for name in ("min_area_px", "max_area_px", "min_core_px"):
        if getattr(args, name, None) == 0:
            flag = _OPTION_FLAGS[name]
            raise ValueError(f"{flag} 0: must be at least 1 pixel; leave {flag} out for the "
                             "default")


#: ``--illumination`` as :func:`~asymflux.analysis.analyze_path`'s ``illumination``.
_ILLUMINATION = {"auto": "auto", "on": True, "off": None}


def _calibration_files(args) -> dict:
    """``--dark`` and ``--flat`` as :func:`~asymflux.analysis.analyze_path`'s ``dark`` and
    ``flat`` (only those given); a missing file or another suffix than .npy/.tif refused
    before any work (their contents are checked against each dataset's frames by
    ``analyze_path``, before its analysis)."""
    out = {}
    for name in ("dark", "flat"):
        path = getattr(args, name, None)
        if path is None:
            continue
        if not Path(path).is_file():
            raise ValueError(f"--{name} {path}: no such file ({name} frame: .npy or .tif)")
        if Path(path).suffix.lower() not in (".npy", ".tif", ".tiff"):
            raise ValueError(f"--{name} {path}: expected a .npy or .tif/.tiff file, got "
                             f"'{Path(path).suffix}'")
        out[name] = Path(path)
    return out


def run_analyze(args: argparse.Namespace) -> int:
    from .._atomic import check_output, output_errors
    from ..analysis import (
        analyze_campaign,
        analyze_path,
        campaign_names,
        is_analyze_output,
        local_client,
        write_analyze_output,
    )
    from ..io import read_masks

    paths = list(args.datasets)
    for p in paths:
        if not Path(p).exists():
            raise ValueError(f"dataset {p} does not exist")
    _check_analyze_options(args)
    inputs = [f for p in paths for f in dataset_inputs(p)]
    if args.masks:
        inputs.append(Path(args.masks))
    calibration = _calibration_files(args)
    inputs += list(calibration.values())
    out = check_output(args.out, folder=True, inputs=inputs, input_folders=paths,
                       accept_folder=is_analyze_output)
    if args.scheduler:
        _check_scheduler(args.scheduler)
    masks = read_masks(args.masks) if args.masks else None
    options = _analysis_options(args)
    read = {"echem": args.echem, "active_mass_mg": args.active_mass_mg, "channel": args.channel,
            "z": args.z, "frame_axis": args.frame_axis}
    if getattr(args, "frame_times", None) is not None:
        from ..analysis import read_frame_times

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
          "time_offset_s": time_offset_option(args.time_offset_s),
          "illumination": _ILLUMINATION[getattr(args, "illumination", "auto")], **calibration,
          "cache": not getattr(args, "no_cache", False)}
    failures = {}
    if len(paths) == 1 and not args.scheduler:
        try:  # errors: exit 2, nothing written
            results = [analyze_path(paths[0], progress=True, **kw)]
        except ValueError as e:
            raise ValueError(_as_flags(str(e))) from e
    else:
        if args.scheduler:
            client, cluster = _connect(args.scheduler), None
        else:
            client, cluster = local_client(len(paths))
        try:
            results, failures = analyze_campaign(paths, client=client, on_failure=_say_failure,
                                                 **kw)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
        failures = {i: _as_flags(msg) for i, msg in failures.items()}
        if len(failures) == len(paths):
            raise ValueError(f"every dataset failed ({len(paths)}); nothing written")

    # every dataset keeps its name (and its _2 suffix) whichever failed: a failed one
    # reserves the name it would have had
    all_names = campaign_names(results, paths)
    failed_rows = [{"dataset": str(paths[i]), "name": all_names[i], "error": failures[i]}
                   for i in sorted(failures)]
    problems = [w for r in results if r is not None for w in r[0].attrs.get("warnings", [])]

    from ..provenance import provenance

    record = provenance("analyze", inputs=[*inputs, *([args.echem] if args.echem else [])],
                        options=args, outputs=[out])
    # particles, timeseries and masks appear together (one folder swap), or not at all
    with output_errors(out):
        n = write_analyze_output(out, results, all_names, failed=failed_rows,
                                 provenance=record, parquet=args.parquet)
    results = [r for r in results if r is not None]
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


def _say_failure(index, message) -> None:
    """A dataset of a campaign failed: one line on stderr, under the progress bar."""
    from tqdm.auto import tqdm

    tqdm.write(f"asymflux analyze: error: {_as_flags(message)}", file=sys.stderr)


#: The library's parameters, as ``asymflux analyze`` names them (its flags), in the messages
#: of :func:`asymflux.analysis.analyze_path` that name them.
_FLAG_WORDING = ((re.compile(r"\brolling_frames=(\S+) must be smaller"), r"--rolling \1 must be smaller"),
                 (re.compile(r"\bwith time_offset_s="), "with --time-offset-s "),
                 (re.compile(r"\bgive time_offset_s\b"), "give --time-offset-s"),
                 (re.compile(r"^frame_times is for bare stacks"), "--frame-times is for bare stacks"))


def _as_flags(message: str) -> str:
    """A message of :func:`~asymflux.analysis.analyze_path` naming the flags of ``analyze``
    where it names the library's parameters."""
    for pattern, flag in _FLAG_WORDING:
        message = pattern.sub(flag, message)
    return message


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


def run_cohort(args: argparse.Namespace) -> int:
    import pandas as pd

    from .._atomic import check_output, is_leftover, output_errors, restore_moved_aside
    from ..analysis import (
        cohort_statistics,
        partial_output_warnings,
        read_results,
        results_folders,
    )

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
            partial += partial_output_warnings(folder)
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
