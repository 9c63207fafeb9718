"""``asymflux demo-live`` and ``asymflux watch``: :mod:`asymflux.live` on the command line."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ..paper import ASYMMETRY_THRESHOLD, UNREACTED_THRESHOLD
from ._common import print_warnings

__all__ = ["register", "cmd_demo_live", "cmd_watch"]


def register(subparsers) -> None:
    """Add the ``demo-live`` and ``watch`` sub-commands to an argparse ``subparsers``."""
    p = subparsers.add_parser(
        "demo-live",
        help="write a demo movie and cycler CSV frame by frame, to try 'asymflux watch'",
        description=(
            "Simulate a demo dataset once (cached) and write it into OUT progressively, as an "
            "instrument records it: a movie (HDF5 in SWMR mode, a zarr array appended along "
            "time, or a folder of TIFF frames) and a growing cycler CSV, one frame every "
            "--interval-s seconds. OUT/live.json says what is where; the marker "
            "<movie>.finished appears when the movie is complete. Follow it with "
            "'asymflux watch OUT --out DIR'."),
    )
    p.add_argument("out", type=Path, metavar="OUT", help="new or empty folder")
    p.add_argument("--dataset", default="fresh", metavar="NAME",
                   help="demo dataset (asymflux demo-data --list; default fresh)")
    p.add_argument("--frames", type=int, default=None, metavar="N",
                   help="write the first N frames (default all)")
    p.add_argument("--interval-s", type=float, default=1.0, metavar="S",
                   help="wall-clock seconds between frames (default 1; 0 = as fast as possible)")
    p.add_argument("--format", dest="fmt", choices=("h5", "zarr", "tiff"), default="h5",
                   help="movie format (default h5)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_demo_live)

    w = subparsers.add_parser(
        "watch",
        help="analyse a movie and cycler file while they are written (live mode)",
        description=(
            "Follow SOURCE -- an HDF5 movie written in SWMR mode, a zarr array being appended, "
            "a folder receiving TIFF frames, or an 'asymflux demo-live' folder -- and its "
            "cycler file while they grow. Each new frame is measured as 'asymflux analyze' "
            "measures it (reading only that frame), and DIR/particles.csv and "
            "DIR/timeseries.csv are replaced as they grow. When the movie is finished (its "
            "writer's marker <movie>.finished, or nothing new for --idle-timeout-s), the "
            "final tables are those of 'asymflux analyze' of the finished files. "
            "See docs/live.md."),
    )
    w.add_argument("source", type=Path, metavar="SOURCE",
                   help="the movie being written: a TIFF folder, a growing .tif or .zarr "
                        "(docs/live.md)")
    w.add_argument("--out", type=Path, default=Path("live_output"), metavar="DIR",
                   help="output folder (default live_output)")
    w.add_argument("--echem", type=Path, metavar="FILE",
                   help="the cycler file (CSV, EC-Lab .mpt/.mpr, ...; default: the demo-live "
                        "folder's)")
    w.add_argument("--active-mass-mg", type=float, metavar="M",
                   help="active mass, mg (capacity per gram)")
    w.add_argument("--pixel-nm", type=float, metavar="P", help="pixel size, if the movie lacks it")
    w.add_argument("--frame-interval-s", type=float, metavar="S",
                   help="time between frames (TIFF folders carry no frame times)")
    w.add_argument("--masks", type=Path, metavar="FILE", help="particle labels (.tif/.npy)")
    w.add_argument("--threshold", type=float, default=UNREACTED_THRESHOLD,
                   help=f"dI below which a pixel is unreacted (default {UNREACTED_THRESHOLD:g})")
    w.add_argument("--edge-px", type=int, default=2,
                   help="outline margin left out of the unreacted region (default 2)")
    w.add_argument("--asymmetry-threshold", type=float, default=None,
                   help=f"d/R_eq at or above which a particle is asymmetric "
                        f"(default {ASYMMETRY_THRESHOLD:g})")
    w.add_argument("--no-register", action="store_true", help="skip drift correction")
    w.add_argument("--normalize-illumination", action="store_true",
                   help="divide each frame by its illumination before dI (as analyze)")
    w.add_argument("--no-normalize-illumination", action="store_true",
                   help="keep the raw intensities (default: normalised once the particle-free "
                        "background drifts, as analyze)")
    w.add_argument("--illumination", choices=("auto", "on", "off"), default="auto",
                   help="divide each frame by its smooth spatial illumination fitted to the "
                        "particle-free pixels, as analyze (default auto: once the pattern "
                        "changes; earlier frames are then measured again)")
    w.add_argument("--dark", type=Path, metavar="FILE",
                   help="dark frame (.npy or .tif), subtracted from every frame (as analyze)")
    w.add_argument("--flat", type=Path, metavar="FILE",
                   help="flat-field frame (.npy or .tif): every frame divided by (flat - dark) "
                        "scaled to a mean of 1 (as analyze)")
    w.add_argument("--poll-s", type=float, default=0.5, metavar="S",
                   help="seconds between looks at the files (default 0.5)")
    w.add_argument("--idle-timeout-s", type=float, default=60.0, metavar="S",
                   help="finish when nothing new arrived for S seconds, or for 3 frame "
                        "intervals of the movie if that is longer (default 60); with no "
                        "frame at all by then, fail")
    w.add_argument("--rewrite-s", type=float, default=30.0, metavar="S",
                   help="while watching, new rows are appended to DIR/timeseries.csv and the "
                        "whole set (particles.csv, the sorted timeseries.csv with the "
                        "capacities filled in since) is rewritten at most every S seconds "
                        "(default 30; never more often than 20 times the last rewrite's "
                        "duration)")
    w.add_argument("--no-cache", action="store_true",
                   help="the final batch analysis measures the finished files, neither reading "
                        "nor writing the results cache (docs/cache.md)")
    w.add_argument("--quiet", action="store_true", help="no progress lines")
    w.set_defaults(func=cmd_watch)


def cmd_demo_live(args) -> int:
    """Handler of ``asymflux demo-live``."""
    from .._atomic import check_output, output_errors
    from .._validate import check_range
    from ..live import write_demo_live

    check_range("--interval-s", args.interval_s, 0, 3600)
    if args.frames is not None:
        check_range("--frames", args.frames, 2, None, integer=True)
    from .. import datasets

    datasets.expand(args.dataset)  # an unknown name fails before any work
    out = check_output(args.out, what="OUT", folder=True, accept_folder=lambda p: False)
    log = None if args.quiet else (lambda line: print(line, flush=True))
    with output_errors(out, what="OUT"):
        write_demo_live(out, dataset=args.dataset, n_frames=args.frames,
                        interval_s=args.interval_s, fmt=args.fmt, log=log)
    return 0


def _is_live_output(folder) -> bool:
    from ..analysis import is_analyze_output

    return is_analyze_output(folder) or (Path(folder) / "live.json").is_file()


def _normalize_option(args):
    """``--(no-)normalize-illumination`` as ``LiveAnalysis``'s ``normalize`` (analyze's)."""
    if args.normalize_illumination and args.no_normalize_illumination:
        raise ValueError("--normalize-illumination and --no-normalize-illumination "
                         "exclude each other")
    return ("frame_mean" if args.normalize_illumination
            else None if args.no_normalize_illumination else "auto")


def cmd_watch(args) -> int:
    """Handler of ``asymflux watch``."""
    from .._atomic import check_output
    from .._validate import check_range
    from ..io import read_masks
    from ..live import LiveAnalysis, LiveOutput

    check_range("--poll-s", args.poll_s, 0, 3600, low_inclusive=False)
    check_range("--idle-timeout-s", args.idle_timeout_s, 0, None, low_inclusive=False)
    check_range("--rewrite-s", args.rewrite_s, 0, None)
    if args.pixel_nm is not None:
        check_range("--pixel-nm", args.pixel_nm, 0, None, low_inclusive=False)
    if args.frame_interval_s is not None:
        check_range("--frame-interval-s", args.frame_interval_s, 0, None, low_inclusive=False)
    if args.active_mass_mg is not None:
        check_range("--active-mass-mg", args.active_mass_mg, 0, None, low_inclusive=False)
    if not args.source.exists():
        raise ValueError(f"{args.source}: no such file or folder (the movie to watch)")
    if args.echem is not None and not args.echem.exists() and not args.echem.parent.is_dir():
        raise ValueError(f"--echem {args.echem}: folder {args.echem.parent} does not exist")
    for name in ("dark", "flat"):
        if getattr(args, name) is not None and not getattr(args, name).is_file():
            raise ValueError(f"--{name} {getattr(args, name)}: no such file ({name} frame: "
                             ".npy or .tif)")
    masks = read_masks(args.masks) if args.masks else None
    live = LiveAnalysis(
        args.source, echem=args.echem, active_mass_mg=args.active_mass_mg,
        pixel_nm=args.pixel_nm, frame_interval_s=args.frame_interval_s, masks=masks,
        threshold=args.threshold, edge_px=args.edge_px, register=not args.no_register,
        normalize=_normalize_option(args), asymmetry_threshold=args.asymmetry_threshold,
        cache=not args.no_cache,
        illumination={"auto": "auto", "on": True, "off": None}[args.illumination],
        **{k: getattr(args, k) for k in ("dark", "flat") if getattr(args, k) is not None})
    inputs = [live.movie.path] + ([live.echem_path] if live.echem_path else [])
    out = check_output(args.out, folder=True, inputs=inputs, input_folders=[args.source],
                       accept_folder=_is_live_output)
    say = (lambda line: None) if args.quiet else (lambda line: print(line, flush=True))
    say(f"watching {live.movie.path} ({live.movie.kind})"
        + (f" and {live.echem_path}" if live.echem_path else "")
        + f"; results in {out}")
    try:
        return _watch_loop(live, LiveOutput(out, rewrite_s=args.rewrite_s), args, say)
    except KeyboardInterrupt:
        print(f"asymflux watch: interrupted; {out} holds the frames measured so far "
              f"({live.n_frames})", file=sys.stderr)
        return 130
    finally:
        live.close()


def _watch_loop(live, output, args, say) -> int:
    import numpy as np

    stale_said = False
    while True:
        up = live.update()
        if live.movie.stale_marker and not stale_said:
            stale_said = True
            say(f"ignoring {live.movie.path.name}.finished: older than the movie's data (left "
                "from an earlier run)")
        if up.detected:
            n = len(set(np.unique(live.labels)) - {0})
            say(f"{n} particle(s) detected in frame 0")
        output.update(live, up)
        if up.new_frames:
            last = up.rows[up.rows["frame"] == up.new_frames[-1]]
            cap = last["capacity_mAh_g"].iloc[0] if len(last) else np.nan
            unr = last["unreacted_fraction"].mean() if len(last) else np.nan
            say(f"frame {up.new_frames[-1]} (t = {live.time_s[up.new_frames[-1]]:g} s): "
                f"{live.n_frames} frame(s) measured, capacity "
                f"{'pending' if np.isnan(cap) else f'{cap:.3g} mAh/g'}, mean unreacted "
                f"fraction {unr:.3f}")
        if live.finished:
            why = "the writer's finished marker"
            break
        limit = live.idle_limit_s(args.idle_timeout_s)
        if live.idle_s > limit:
            if live.n_frames == 0 and live.movie.n_seen == 0:
                why = (f" (the movie cannot be read: {live.movie.last_error})"
                       if live.movie.last_error else "")
                raise ValueError(f"{live.movie.path}: no frame arrived within "
                                 f"{args.idle_timeout_s:g} s (--idle-timeout-s){why}")
            why = f"nothing new for {limit:g} s (--idle-timeout-s"
            why += ")" if limit == args.idle_timeout_s else ", 3 frame intervals of the movie)"
            break
        time.sleep(args.poll_s)
    say(f"finished ({why}): running the batch analysis of the finished files")
    if live.cycler is not None and live.cycler.table is None and live.cycler.error:
        raise ValueError(live.cycler.error)
    final = live.finish()
    worst = max((v for v in final.max_abs_difference.values()), default=0.0)
    problems = list(dict.fromkeys(final.particles.attrs.get("warnings", [])))
    from ..live import live_status

    status = live_status(live, "finished", finished_by=why,
                     final="asymflux analyze of the finished files (batch code path)",
                     live_vs_batch_max_abs_difference=final.max_abs_difference,
                     warnings=problems)
    output.final(final, status, live.name)
    say(f"live values vs the batch analysis: largest difference {worst:.3g}")
    say(f"analysed {live.n_frames} frame(s), {len(final.particles)} particle(s) -> {output.out}")
    print_warnings("watch", problems)  # as asymflux analyze prints them
    return 0
