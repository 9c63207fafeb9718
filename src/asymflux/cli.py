"""The ``asymflux`` command line.

Every command checks its input and its output location (:func:`asymflux._atomic.check_output`:
not a folder where a file is expected or the reverse, not a special file, not one of the
inputs, parent folder present and writable) before doing work, and writes its outputs as
one transaction (they appear together, complete, or not at all). A ``ValueError`` (bad
parameter, bad file, bad output) or an ``OSError`` while writing is printed as one line
naming what is wrong and the command exits with status 2, leaving no partial file behind.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from . import datasets_cli
from .analysis import _cli as analysis_cli
from .live import _cli as live_cli


def _float_list(text: str) -> list[float]:
    try:
        values = [float(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError(f"expected at least one number, got {text!r}")
    return values


_DEFAULT_RADIUS_UM = 1.2


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", default="nmc88_lun2025",
                   metavar="NAME",
                   help="parameter set: nmc88_lun2025 (default), nmc88_h2h3_low_diffusivity "
                        "(D falls at deep delithiation) or constant (asymflux.model."
                        "PARAMETER_SETS; a wrong name lists them)")
    p.add_argument("--diffusivity-m2-s", type=float, default=None, metavar="D",
                   help="use the constant-diffusivity set with this D (m^2/s)")
    p.add_argument("--ocv", default=None, metavar="FILE.csv",
                   help="your material's open-circuit voltage: a CSV table with columns theta "
                        "(occupancy in [0, 1]) and voltage_V (not increasing with theta), "
                        "interpolated monotonically; replaces the parameter set's OCV")
    p.add_argument("--diffusivity", default=None, metavar="FILE.csv",
                   help="your material's D(theta), e.g. from GITT: a CSV table with columns "
                        "theta and diffusivity_m2_s (> 0), interpolated in log D; replaces the "
                        "parameter set's D (not with --diffusivity-m2-s)")
    p.add_argument("--theta0", type=float, default=None, metavar="X",
                   help="initial Li occupancy, in (0, 1]")
    p.add_argument("--radius-um", type=float, default=_DEFAULT_RADIUS_UM, metavar="R",
                   help="particle radius in µm (default 1.2, the paper's 2.4 µm disk)")
    p.add_argument("--mesh", default="20x48", metavar="NRxNA",
                   help="disk mesh: node rings x angular sectors (default 20x48; the core's "
                        "offset at 400 mA/g needs 20x96 to be within 5%% of a refined mesh, "
                        "docs/calibration.md)")
    p.add_argument("--blocked", action="append", default=[], metavar="CENTER_DEG:FRACTION:ETA",
                   help="a blocked arc with a prescribed flux ratio η (repeat for several), "
                        "e.g. 180:0.25:0.3; centre in [0, 360) degrees")
    p.add_argument("--film", action="append", default=[], metavar="CENTER_DEG:FRACTION:R_OHM_M2",
                   help="a film-covered arc of a kinetic (Butler-Volmer) surface, film resistance "
                        "in ohm m^2 (repeat for several), e.g. 180:0.25:0.2 (effective η ~0.3 at "
                        "100 mA/g, docs/calibration.md); not combined with --blocked")


def _add_end_options(p: argparse.ArgumentParser, *, default: str, old_name: bool = False) -> None:
    """``--cutoff-V`` and ``--cutoff-theta`` (``old_name``: also accepted as ``--cutoff``)."""
    p.add_argument("--cutoff-V", dest="cutoff_V", type=float, default=None, metavar="V",
                   help="end the charge when the voltage vs Li reaches V (the particle "
                        "potential with --film, else the OCV of the least lithiated surface "
                        "point); with --cutoff-theta, the first reached ends it")
    names = ("--cutoff-theta", "--cutoff") if old_name else ("--cutoff-theta",)
    p.add_argument(*names, dest="cutoff_theta", type=float, default=None, metavar="X",
                   help=f"end the charge when the surface occupancy first reaches X, in (0, 1); "
                        f"{default}")


def _end_options(args) -> dict:
    """``{"cutoff_occupancy", "cutoff_voltage_V"}`` from ``--cutoff-theta`` / ``--cutoff-V``
    (None where not given), checked."""
    from ._validate import check_range

    theta, volts = args.cutoff_theta, args.cutoff_V
    if theta is not None:
        check_range("--cutoff-theta", theta, 0, 1, low_inclusive=False, high_inclusive=False)
    if volts is not None:
        check_range("--cutoff-V", volts, 0, 10, low_inclusive=False)
    return {"cutoff_occupancy": theta, "cutoff_voltage_V": volts}


def _model_setup(args):
    from . import model
    from ._validate import check_range

    if args.diffusivity_m2_s is not None:
        check_range("--diffusivity-m2-s", args.diffusivity_m2_s, 0, None, low_inclusive=False)
        params = model.constant_diffusivity(args.diffusivity_m2_s)
    else:
        params = model.get_parameter_set(args.params)
    if args.diffusivity is not None and args.diffusivity_m2_s is not None:
        raise ValueError("--diffusivity (a table) and --diffusivity-m2-s (a constant) cannot be "
                         "combined: give one")
    for flag, key in (("--ocv", "ocv"), ("--diffusivity", "diffusivity")):
        table = getattr(args, key)
        if table is not None:
            try:
                params = model.parameters_from_tables(**{key: table}, base=params)
            except ValueError as exc:
                raise ValueError(f"{flag} {exc}") from None
    if args.theta0 is not None:
        params["Initial occupancy"] = check_range("--theta0", args.theta0, 0, 1,
                                                  low_inclusive=False)
    check_range("--radius-um", args.radius_um, 0, None, low_inclusive=False)
    try:
        n_radial, n_angular = (int(v) for v in str(args.mesh).lower().split("x"))
    except ValueError:
        raise ValueError(f"--mesh must be NRxNA, two whole numbers such as 20x96, got "
                         f"{args.mesh!r}") from None
    check_range("--mesh (node rings)", n_radial, 2, 2000, integer=True)
    check_range("--mesh (angular sectors)", n_angular, 4, 5000, integer=True)
    mesh = model.disk_mesh(args.radius_um, n_radial=n_radial, n_angular=n_angular)
    if args.blocked and args.film:
        raise ValueError("--blocked (prescribed flux ratio) and --film (kinetic surface) cannot be "
                         "combined: give one kind of arc")
    arcs = []
    for flag, specs, parse in (("--blocked", args.blocked, model.BlockedArc.parse),
                               ("--film", args.film, model.FilmArc.parse)):
        for spec in specs:
            try:
                arcs.append(parse(spec))
            except ValueError as exc:
                raise ValueError(f"{flag} {spec}: {exc}") from None
    try:
        surface = model.Surface(arcs, kinetic=bool(args.film))
    except ValueError as exc:
        raise ValueError(f"{'--film' if args.film else '--blocked'}: {exc}") from None
    return params, mesh, surface


#: Largest image ``simulate`` writes (values over all output times): 800 MB of float64.
_MAX_IMAGE_VALUES = 100_000_000


def dataset_inputs(path) -> list[Path]:
    """The files a command reads from a dataset path (the path itself, and for a dataset
    folder its data and curation files), for :func:`asymflux._atomic.check_output`."""
    from .io.dataset import CURATION_FILES, DATA_FILES

    path = Path(path)
    if path.is_dir() and (path / "metadata.json").is_file():
        return [path / n for n in (*DATA_FILES, *CURATION_FILES)]
    return [path]


def cmd_simulate(args) -> int:
    import json

    import numpy as np

    from . import model
    from ._atomic import check_output, output_errors
    from ._validate import check_range

    out = check_output(args.out)
    if out.suffix.lower() != ".npz":
        raise ValueError(f"--out {out}: a {out.suffix or 'name without a suffix'} file; "
                         "simulate writes a NumPy .npz archive: give a FILE.npz name")
    params, mesh, surface = _model_setup(args)
    rate = check_range("--rate-mA-g", args.rate_mA_g, 0, None, low_inclusive=False)
    minutes = sorted(args.minutes)
    for m in minutes:
        check_range("--minutes", m, 0, None, low_inclusive=False)
    pixel_nm = check_range("--pixel-nm", args.pixel_nm, 0, None, low_inclusive=False)
    half = float(mesh.info.get("half_extent_um", mesh.extent_um))
    n_px = int(np.ceil(2 * half / (pixel_nm / 1000.0) - 1e-9))
    if n_px * n_px * len(minutes) > _MAX_IMAGE_VALUES:
        need_nm = 2 * half * 1000.0 / np.sqrt(_MAX_IMAGE_VALUES / len(minutes))
        default_radius = args.radius_um == _DEFAULT_RADIUS_UM
        cause = (f"--pixel-nm {pixel_nm:g}" if default_radius else
                 f"--radius-um {args.radius_um:g} at --pixel-nm {pixel_nm:g}")
        raise ValueError(f"{cause}: the images would be {n_px} x {n_px} pixels x {len(minutes)} "
                         f"times, more than {_MAX_IMAGE_VALUES:.0e} values; use "
                         + ("" if default_radius else "a smaller --radius-um or ")
                         + f"a --pixel-nm of at least {need_nm:.3g}")
    ends = _end_options(args)
    step = model.Charge(rate, minutes=max(minutes), **ends)
    res = model.simulate(params, mesh, surface, [step], output_minutes=minutes)
    end_min = float(res.minutes[-1])
    if any(v is not None for v in ends.values()) and end_min < max(minutes) - 1e-6:
        # a cut-off ended the charge: the times reached, then the state at the cut-off
        minutes = [m for m in minutes if m < end_min - 1e-6] + [end_min]
        print(f"the charge ended at {end_min:.4g} min ({res.end_reason}): images at minutes "
              f"{[round(m, 4) for m in minutes]}")
    _check_reached(res, minutes, rate)
    idx = res.index_of_minutes(minutes)
    img = res.to_image(pixel_nm, indices=idx)
    meta = {"params": args.params if args.diffusivity_m2_s is None else "constant",
            "diffusivity_m2_s": args.diffusivity_m2_s, "theta0": res.theta0,
            "radius_um": args.radius_um, "mesh": args.mesh, "rate_mA_g": rate, "blocked": surface.label,
            "surface": "kinetic" if surface.is_kinetic else "prescribed", "pixel_nm": pixel_nm,
            "ocv_table": args.ocv, "diffusivity_table": args.diffusivity,
            "cutoff_theta": ends["cutoff_occupancy"], "cutoff_V": ends["cutoff_voltage_V"],
            "end_reason": res.end_reason, "end_minutes": end_min}
    from .provenance import provenance, write_beside

    record = provenance("simulate", options=args, outputs=[out])
    with output_errors(out), write_beside(out, record) as tmp, open(tmp, "wb") as fh:
        _savez_quietly(
            fh, minutes=np.asarray(minutes, dtype=float), x_um=img.x_um, y_um=img.y_um,
            theta=img.theta, mean_theta=res.mean_theta[idx],
            capacity_mAh_g=res.capacity_mAh_g[idx],
            min_surface_theta=res.min_surface_theta[idx],
            li_extracted=res.li_extracted[idx], voltage_V=res.voltage_V[idx],
            arc_flux_ratio=res.arc_flux_ratio[idx], metadata=json.dumps(meta))
    print(f"wrote {out}: theta {img.theta.shape} at minutes {minutes} (blocked: {surface.label})")
    return 0


def _savez_quietly(fh, **arrays) -> None:
    """``np.savez_compressed`` whose failure (a full disk) is one OSError naming the file,
    without the "Exception ignored in ZipFile.__del__" traceback of the zip it leaves open."""
    import numpy as np

    hook = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: None
    try:
        try:
            np.savez_compressed(fh, **arrays)
        except OSError as exc:
            code, text = exc.errno, exc.strerror or str(exc)
            exc.__traceback__ = None  # frees the half-written zip now, its __del__ silenced
            del exc
            raise OSError(code, text, getattr(fh, "name", None)) from None
    finally:
        sys.unraisablehook = hook


def _check_reached(res, minutes, rate) -> None:
    """Output times after the charge ended: say when and why it ended."""
    end = float(res.minutes[-1])
    late = [m for m in minutes if m > end + 1e-6]
    if not late:
        return
    reason = res.end_reason
    why = {"surface occupancy limit": "the particle surface was emptied of Li (θ = 0)",
           "cut-off occupancy": "the surface occupancy reached the cut-off",
           "mean occupancy limit": "the particle was emptied of Li"}
    said = next((v for k, v in why.items() if reason.startswith(k)), reason or "it stopped")
    raise ValueError(
        f"--minutes {','.join(f'{m:g}' for m in late)}: the charge at {rate:g} mA/g ended at "
        f"{end:.3g} min, before that: {said}; ask for output times up to {end:.3g} min, or a "
        "lower --rate-mA-g")


def cmd_rate_sweep(args) -> int:
    from . import model
    from ._atomic import atomic_path, check_output, output_errors
    from ._validate import check_range

    out = check_output(args.csv, what="--csv")
    params, mesh, surface = _model_setup(args)
    ends = _end_options(args)
    if ends["cutoff_occupancy"] is None and ends["cutoff_voltage_V"] is None:
        ends = dict(model.FIG5B_END)  # the paper's: surface occupancy 0.2
    for r in args.rates:
        check_range("--rates", r, 0, None, low_inclusive=False)
    table = model.rate_capability(args.rates, {surface.label: surface}, params=params, mesh=mesh,
                                  progress=not args.quiet, **ends)
    with output_errors(out, what="--csv"), atomic_path(out) as tmp:
        table.to_csv(tmp, index=False)
    print(f"each charge {table.attrs['end_condition']}")
    print(table.to_string(index=False))
    print(f"wrote {out}")
    return 0


def cmd_demo(args) -> int:
    from . import demo
    from ._atomic import check_output, output_errors

    out = check_output(args.out, folder=True, accept_folder=demo.is_demo_output)
    with output_errors(out):
        return demo.run(out, progress=not args.quiet, data=not args.no_data)


def cmd_fit(args) -> int:
    import json

    import numpy as np

    from . import fit, io
    from ._atomic import check_output, output_errors
    from ._validate import check_range
    from .provenance import provenance, write_beside

    if args.all:
        return _fit_all(args)
    if args.particle is None:
        raise ValueError("give --particle ID (one particle) or --all (every particle)")
    check_range("--particle", args.particle, 1, None, integer=True)
    if args.rate_mA_g is not None:
        low, high, _ = io.dataset.NUMERIC_METADATA["rate_mA_g"]
        check_range("--rate-mA-g", args.rate_mA_g, low, high, low_inclusive=False)
    inputs = dataset_inputs(args.dataset) + ([Path(args.masks)] if args.masks else [])
    out = check_output(args.out, inputs=inputs, input_folders=[args.dataset])
    dataset = io.read_dataset(args.dataset)
    if args.masks:  # checked against the frames and the particle before any work
        from .analysis._measure import _check_labels

        masks = _check_labels(io.read_masks(args.masks), dataset.stack.shape[1:],
                              name=f"--masks {args.masks}: masks")
        where = f"--masks {args.masks}"
    else:
        masks, where = None, f"{args.dataset}/masks.tif"
    labels = masks if masks is not None else dataset.masks
    if labels is not None and not (labels == args.particle).any():
        ids = [int(i) for i in np.unique(labels[labels > 0])]
        shown = ", ".join(map(str, ids[:20])) + (", ..." if len(ids) > 20 else "")
        raise ValueError(f"--particle {args.particle}: no such particle in {where} "
                         f"(particles: {shown or 'none'})")
    clock, offset = _fit_time_offset(args, dataset, labels)
    surface = "kinetic" if args.kinetic else "prescribed"
    arcs_text = "film arcs, R_film per arc" if args.kinetic else "blocked arcs, eta per arc"
    print(f"fitting particle {args.particle} of {args.dataset} "
          f"(no blocking, one arc{', two arcs' if args.max_arcs == 2 else ''}; {arcs_text}) ...",
          flush=True)
    result = fit.fit_dataset(dataset, args.particle, masks=masks, rate_mA_g=args.rate_mA_g,
                             max_arcs=args.max_arcs, surface=surface, progress=True,
                             time_offset_s=offset)
    summary = {"dataset": str(args.dataset), "particle_id": int(args.particle), **result.summary(),
               **clock.as_dict()}
    record = provenance("fit", inputs=inputs, options=args, outputs=[out],
                        extra={"uncertainty_method": fit.UNCERTAINTY_METHOD})
    with output_errors(out), write_beside(out, record) as tmp:
        Path(tmp).write_text(json.dumps(summary, indent=2, default=float) + "\n", encoding="utf-8")
    print(f"{result.model}: blocked {summary['blocked']}, diffusivity x{result.diffusivity_scale:.3g}, "
          f"rms dI {result.rms:.4f}")
    for k, arc in enumerate(summary["arcs"] if args.kinetic else [], start=1):
        print(f"  arc {k}: R_film {arc['resistance_ohm_m2']:.3g} ohm m2, effective eta "
              f"{arc['eta_effective']:.3f} (first 10 min at 100 mA/g)")
    print(f"wrote {args.out}")
    return 0


def _fit_time_offset(args, dataset, labels):
    """``--time-offset-s`` of ``asymflux fit``: ``(the TimeOffset used, what the fit is
    given)``, the latter None when none was given (the dataset's own, as before); ``auto``
    is estimated once here, from the particles ``labels``."""
    from .analysis._cli import _time_offset_option
    from .analysis._clock import resolve_time_offset

    value = _time_offset_option(getattr(args, "time_offset_s", None))
    try:
        clock = resolve_time_offset(dataset, value, masks=labels)
    except ValueError as e:
        raise ValueError(str(e) if str(args.dataset) in str(e) else f"{args.dataset}: {e}") from e
    if value is not None:
        print(f"clock offset (cycler time = frame time + offset): {clock}", flush=True)
    return clock, (None if value is None else clock)


def _fit_all(args) -> int:
    """``asymflux fit DATASET --all --out DIR``: every particle, joined to DIR's tables."""
    import json

    import numpy as np
    import pandas as pd

    from . import fit, fit_batch, io
    from ._atomic import check_output, output_errors
    from ._validate import check_range
    from .analysis._pipeline import dataset_name, is_analyze_output, write_tables
    from .provenance import provenance, to_json

    if args.particle is not None:
        raise ValueError("--particle and --all cannot be combined")
    check_range("--workers", args.workers, 1, fit_batch.MAX_WORKERS, integer=True)
    if args.rate_mA_g is not None:
        low, high, _ = io.dataset.NUMERIC_METADATA["rate_mA_g"]
        check_range("--rate-mA-g", args.rate_mA_g, low, high, low_inclusive=False)
    inputs = dataset_inputs(args.dataset) + ([Path(args.masks)] if args.masks else [])
    out = check_output(args.out, folder=True, inputs=inputs, input_folders=[args.dataset],
                       accept_folder=lambda d: is_analyze_output(d) or (Path(d) / "fits.csv").is_file())
    particles_csv = Path(out) / "particles.csv"
    particles = pd.read_csv(particles_csv) if particles_csv.is_file() else None
    dataset = io.read_dataset(args.dataset)
    if args.masks:
        from .analysis._measure import _check_labels

        masks = _check_labels(io.read_masks(args.masks), dataset.stack.shape[1:],
                              name=f"--masks {args.masks}: masks")
    else:
        masks = None
    labels = masks if masks is not None else dataset.masks
    if labels is None:
        raise ValueError(f"{args.dataset}: no particle masks; curate or detect particles first, "
                         "or pass --masks")
    ids = [int(i) for i in np.unique(labels[labels > 0])]
    if not ids:
        raise ValueError(f"{args.dataset}: the masks hold no particle")
    if args.rate_mA_g is None and dataset.metadata.get("rate_mA_g") is None:
        raise ValueError(f"{args.dataset}: metadata has no rate_mA_g; pass --rate-mA-g")
    name = dataset_name(dataset)
    clock, offset = _fit_time_offset(args, dataset, labels)
    surface = "kinetic" if args.kinetic else "prescribed"
    print(f"fitting {len(ids)} particle(s) of {args.dataset} ({surface} surface, up to "
          f"{args.max_arcs} arc(s), {min(args.workers, len(ids))} process(es)) ...", flush=True)
    summaries, failures = fit_batch.fit_all(
        args.dataset, ids, masks=masks, workers=args.workers, progress=True,
        rate_mA_g=args.rate_mA_g, max_arcs=args.max_arcs, surface=surface, time_offset_s=offset)
    if not summaries:
        raise ValueError(f"every particle failed ({len(ids)}); nothing written: "
                         + "; ".join(f"{k}: {v}" for k, v in failures.items()))
    fits = fit_batch.fits_table(name, summaries, failures)
    details = [{"dataset": name, "particle_id": pid, **s, **clock.as_dict()}
               for pid, s in summaries.items()]
    if (Path(out) / "fits.csv").is_file():  # other datasets' fits of this folder are kept
        old = pd.read_csv(Path(out) / "fits.csv")
        if "dataset" in old.columns:
            old = old[old["dataset"].astype(str) != name]
            fits_all = pd.concat([old, fits], ignore_index=True) if len(old) else fits
        else:
            fits_all = fits
        try:
            old_details = json.loads((Path(out) / "fits.json").read_text(encoding="utf-8"))
            details = [d for d in old_details if str(d.get("dataset")) != name] + details
        except (OSError, ValueError, AttributeError):
            pass
    else:
        fits_all = fits
    tables = {"fits": fits_all}
    if particles is not None:
        tables["particles"] = fit_batch.join_fits(particles, fits)
    record = provenance("fit", inputs=inputs, options=args,
                        outputs=[Path(out) / f"{t}.csv" for t in tables] + [Path(out) / "fits.json"],
                        extra={"uncertainty_method": fit.UNCERTAINTY_METHOD})

    def files(folder):
        (folder / "fits.json").write_text(json.dumps(details, indent=2, default=float) + "\n",
                                          encoding="utf-8")
        (folder / "fits.provenance.json").write_text(to_json(record), encoding="utf-8")

    with output_errors(out):  # the folder's provenance.json stays analyze's
        write_tables(out, tables, files=files, replaces=("fits.json", "fits.provenance.json"))
    joined = " (joined to particles.csv)" if particles is not None else ""
    print(f"fitted {len(summaries)} of {len(ids)} particle(s) -> {out}/fits.csv{joined}")
    if failures:
        print(f"asymflux fit: {len(failures)} particle(s) failed: "
              + ", ".join(map(str, failures)), file=sys.stderr)
        return 2
    return 0


def cmd_report(args) -> int:
    from . import report
    from ._atomic import check_output, output_errors
    from .provenance import options_of

    results = Path(args.results)
    if not (results / "particles.csv").is_file():
        raise ValueError(f"{results}: no particles.csv (run `asymflux analyze ... --out {results}` "
                         "first)")
    for d in args.dataset:
        if not Path(d).exists():
            raise ValueError(f"--dataset {d}: does not exist")
    out = check_output(args.out, folder=True, inputs=[results / "particles.csv"],
                       input_folders=[results, *args.dataset],
                       accept_folder=lambda d: any(Path(d).glob("*.html")))
    with output_errors(out):
        written = report.write_reports(results, out, datasets=args.dataset,
                                       options=options_of(args), progress=True)
    for f in written:
        print(f"wrote {f}")
    return 0


def cmd_echem(args) -> int:
    import contextlib
    import os
    import warnings

    from . import io
    from ._atomic import atomic_path, check_output, output_errors

    outs = [(check_output(p, inputs=[args.file], what=w), kind) for p, w, kind in
            ((args.out, "--out", "table"), (args.cycles, "--cycles", "cycles")) if p]
    if len(outs) == 2 and os.path.realpath(outs[0][0]) == os.path.realpath(outs[1][0]):
        raise ValueError("--out and --cycles name the same file")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", io.EchemWarning)
        table = io.read_echem(args.file, active_mass_mg=args.active_mass_mg)
    a = table.attrs
    print(f"{args.file}: {a.get('format')} ({a.get('reader')}), {len(table)} records, "
          f"{table['time_s'].iloc[-1] - table['time_s'].iloc[0]:.0f} s"
          + (f", technique {a['technique']}" if a.get("technique") else ""))
    print(f"  current from: {a.get('current_from')}")
    print(f"  charge from:  {a.get('charge_from')}")
    if a.get("charge_columns"):
        print(f"  charge columns: {a['charge_columns']}")
    for w in a.get("warnings", []):
        print(f"  warning: {w}")
    cycles = None
    if args.active_mass_mg is not None:
        cycles = io.cycle_summary(table)
        print(cycles.round(4).to_string(index=False))
    elif "current_mA" in table.columns:  # no mass: the cycles in mAh (per 1 g = absolute)
        cycles = io.cycle_summary(table, active_mass_mg=1000.0)
        cycles.columns = [c.replace("_mAh_g", "_mAh").replace("_mA_g", "_mA")
                          for c in cycles.columns]
        cycles.attrs.pop("active_mass_mg", None)
        print("  per cycle, in mAh and mA (give --active-mass-mg for mAh/g):")
        print(cycles.round(6).to_string(index=False))
    elif args.cycles:
        raise ValueError(f"--cycles: {args.file} has no current_mA column; no cycles to write")
    with contextlib.ExitStack() as stack:  # both files written, then both renamed
        for path, kind in outs:
            stack.enter_context(output_errors(path, what="--out" if kind == "table" else "--cycles"))
            tmp = stack.enter_context(atomic_path(path))
            (table if kind == "table" else cycles).to_csv(tmp, index=False)
    for path, _ in outs:
        print(f"wrote {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asymflux",
        description="Operando single-particle imaging of battery cathodes: model, data, analysis.")
    from . import __version__

    parser.add_argument("--version", action="version", version=f"asymflux {__version__}",
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "simulate", help="simulate one particle and write θ images (.npz)",
        description="Charge one particle and write its θ images, mean θ, capacity, the voltage "
                    "vs Li (the particle potential with --film, else the surface OCV) and the "
                    "flux ratio of each arc at the output times. Arcs: --blocked (prescribed "
                    "flux ratio, the paper's model) or --film (Butler-Volmer kinetics through a "
                    "film), not both. The charge ends at the last output time, or earlier at "
                    "--cutoff-V / --cutoff-theta: then the file holds the times reached and the "
                    "state at the cut-off (metadata end_reason, end_minutes).")
    p.add_argument("--out", required=True, metavar="FILE.npz",
                   help="file to write: a NumPy .npz archive (theta images, x_um, y_um, "
                        "mean_theta, capacity_mAh_g, voltage_V, ... and the settings)")
    _add_model_options(p)
    p.add_argument("--rate-mA-g", type=float, default=100.0, metavar="I",
                   help="charge rate in mA/g (default 100)")
    p.add_argument("--minutes", type=_float_list, default=[5.0, 10.0, 15.0, 20.0],
                   help="output times in minutes, comma-separated (default 5,10,15,20)")
    p.add_argument("--pixel-nm", type=float, default=50.0, metavar="P",
                   help="pixel size of the written images in nm (default 50)")
    _add_end_options(p, default="without either cut-off the charge runs to the last --minutes")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser(
        "rate-sweep", help="Li extracted at the cut-off against rate (Fig. 5b)",
        description="Charge one particle to the cut-off at each rate and write the Li "
                    "extracted (Fig. 5b). Every run ends the same way: at --cutoff-theta and/or "
                    "--cutoff-V, by default when the surface occupancy first reaches 0.2 (the "
                    "paper's Fig. 5b, with --film too; the model explorer's Fig. 5b is the "
                    "same). --params nmc88_h2h3_low_diffusivity: the default set "
                    "with D falling tenfold at deep delithiation (the H2-H3 region, θ < 0.35), "
                    "which widens the gap between rates (docs/calibration.md).")
    p.add_argument("--rates", type=_float_list, default=[50.0, 100.0, 200.0, 400.0],
                   help="rates in mA/g, comma-separated (default 50,100,200,400)")
    _add_end_options(p, default="default 0.2 when no --cutoff-V is given (--cutoff is an old "
                                "name of this option)", old_name=True)
    p.add_argument("--csv", required=True, metavar="FILE",
                   help="table to write (CSV): Li extracted at the end of each rate's charge")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_model_options(p)
    p.set_defaults(func=cmd_rate_sweep)

    p = sub.add_parser(
        "demo", help="build the demo outputs (model figures) into a folder",
        description="Write the model figures of the paper into a folder -- fig4.png (θ maps "
                    "at 5/10/15/20 min, 100 mA/g, four surfaces) and fig5b.png / fig5b.csv "
                    "(Li extracted at surface occupancy 0.2 against rate, 50-400 mA/g) -- and "
                    "check Fig. 5b's trends (exit 1 if one fails); also build the synthetic "
                    "demo datasets the dashboards and notebooks open (cached; --no-data skips "
                    "them).")
    p.add_argument("--out", default="demo_output", metavar="DIR",
                   help="output folder (default demo_output); an earlier demo output is "
                        "replaced, other files in it kept")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--no-data", action="store_true", help="only the model figures, no demo datasets")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "fit", help="infer the blocked arcs of one particle (or --all) from its movie",
        description="Fit the diffusion model to one particle's movie (or, with --all, to every "
                    "particle's): no blocking, one blocked arc and (with --max-arcs 2) two, each "
                    "with its flux ratio η (or film resistance with --kinetic) and the "
                    "diffusivity scale; the model the data support best and each fit's "
                    "parameters with their standard errors go to FILE.json.")
    p.add_argument("dataset", metavar="DATASET", help="dataset folder")
    p.add_argument("--particle", type=int, default=None, metavar="ID",
                   help="particle label (or --all)")
    p.add_argument("--all", action="store_true",
                   help="fit every particle (in parallel) and write DIR/fits.csv, fits.json and "
                        "fits.provenance.json; when --out is an `asymflux analyze` output, the fits "
                        "(model, arcs, eta or R_film, each with its standard error) are joined "
                        "to its particles.csv")
    p.add_argument("--workers", type=int, default=2, metavar="N",
                   help="--all: worker processes, 1 or 2 (default 2)")
    p.add_argument("--out", required=True, metavar="FILE.json|DIR",
                   help="the fit as JSON (beside it FILE.provenance.json); with --all a folder")
    p.add_argument("--masks", default=None, metavar="FILE", help="labels image (default: the dataset's)")
    p.add_argument("--rate-mA-g", type=float, default=None, metavar="I",
                   help="charge rate in mA/g (default: the dataset's metadata)")
    p.add_argument("--max-arcs", type=int, default=2, choices=(0, 1, 2),
                   help="most blocked arcs to try (default 2): 0 fits only the unblocked "
                        "particle, 1 also one arc, 2 also two arcs")
    p.add_argument("--kinetic", action="store_true",
                   help="fit film arcs of the kinetic (Butler-Volmer) surface: a film resistance "
                        "R_film (ohm m^2) per arc instead of eta; the JSON also gives each arc's "
                        "effective eta (charge-weighted flux ratio, first 10 min of a 100 mA/g "
                        "charge, docs/calibration.md)")
    p.add_argument("--time-offset-s", metavar="S|auto", default=None,
                   help="the cycler's clock against the camera's, as for `asymflux analyze`: "
                        "cycler time = frame time + S (seconds; default: the dataset's own, "
                        "else 0); 'auto' estimates it with its uncertainty (once, for every "
                        "particle). The offset used is in the JSON (time_offset_s, "
                        "time_offset_uncertainty_s, time_offset_method, time_offset_detail)")
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser(
        "report", help="one self-contained HTML report per dataset of an analyze output",
        description="Write DIR/<dataset>.html for every dataset of RESULTS (an `asymflux analyze` "
                    "output, with the fits of `asymflux fit --all` if present): particle "
                    "thumbnails with outlines, quality flags, d(capacity) with its band, "
                    "kymographs, classification, the fit, and the provenance (versions, input "
                    "files with size and SHA-256, every option). Images are embedded; the files "
                    "link to nothing outside themselves.")
    p.add_argument("results", type=Path, metavar="RESULTS", help="an `asymflux analyze` output folder")
    p.add_argument("--out", required=True, type=Path, metavar="DIR",
                   help="folder for the HTML files and provenance.json")
    p.add_argument("--dataset", action="append", default=[], type=Path, metavar="PATH",
                   help="a dataset of the results, for frame thumbnails and kymographs (repeat; "
                        "default: the datasets named in RESULTS/provenance.json that exist)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser(
        "echem", help="read a cycler file of any brand: our columns, and cycles with a mass",
        description="Read a cycler file of any brand and print what was found (format, "
                    "records, where the current and the charge come from, warnings) and the "
                    "per-cycle charge / discharge capacities, coulombic efficiency and rates "
                    "(in mAh/g with --active-mass-mg, else in mAh); --out writes the table in "
                    "asymflux's columns, --cycles the per-cycle summary.")
    p.add_argument("file", type=Path, metavar="FILE",
                   help="BioLogic .mpr/.mpt, Gamry .DTA, Neware .nda/.ndax, Arbin .res, Excel, "
                        "Ivium, Maccor, "
                        "Battery Data Format (.bdf, .bdf.gz, .bdf.parquet), Arbin or Battery "
                        "Archive CSV, CSV (see docs/formats.md)")
    p.add_argument("--active-mass-mg", type=float, default=None, metavar="M",
                   help="active material mass in mg: adds capacity_mAh_g and the cycle summary")
    p.add_argument("--out", type=Path, default=None, metavar="FILE.csv",
                   help="write the table (time_s, voltage_V, current_mA, charge_mAh, ...)")
    p.add_argument("--cycles", type=Path, default=None, metavar="FILE.csv",
                   help="write the per-cycle summary (in mAh/g with --active-mass-mg, else in mAh)")
    p.set_defaults(func=cmd_echem)

    # the data and analysis commands live beside the code they drive
    datasets_cli.register(sub)  # demo-data
    analysis_cli.register(sub)  # analyze, cohort
    live_cli.register(sub)  # demo-live, watch
    return parser


# a value that starts with "-" but is a number (or a list of numbers): "-5", "-5,10",
# "-1e-15", "-.5", "-inf" -- argparse takes all but the first for options
_NEGATIVE_VALUE = re.compile(r"^-(?:\d|\.\d|inf|nan)", re.IGNORECASE)


def _subparsers(parser) -> dict:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _join_negative_values(parser, argv: list[str]) -> list[str]:
    """``--minutes -5,10`` as ``--minutes=-5,10``: a negative number is the value of the
    option before it (then refused with the reason by the command), not an unknown option."""
    takes_value = {opt for p in (parser, *_subparsers(parser).values()) for a in p._actions
                   if a.nargs != 0 for opt in a.option_strings}
    out: list[str] = []
    i = 0
    while i < len(argv):
        tok = argv[i]
        if (tok in takes_value and i + 1 < len(argv) and _NEGATIVE_VALUE.match(argv[i + 1])
                and "--" not in argv[:i]):
            out.append(f"{tok}={argv[i + 1]}")
            i += 2
            continue
        out.append(tok)
        i += 1
    return out


def _parse(parser, argv):
    """Parse; an unknown option of a command is reported with that command's usage (and
    the option it may mean), not the top-level one."""
    import difflib

    argv = _join_negative_values(parser, list(sys.argv[1:] if argv is None else argv))
    args, extra = parser.parse_known_args(argv)
    if extra:
        sub = _subparsers(parser).get(getattr(args, "command", None), parser)
        options = [o for a in sub._actions for o in a.option_strings]
        hints = [m for e in extra if e.startswith("-")
                 for m in difflib.get_close_matches(e.split("=", 1)[0], options, n=1)]
        sub.error(f"unrecognized arguments: {' '.join(extra)}"
                  + (f" (did you mean {', '.join(dict.fromkeys(hints))}?)" if hints else ""))
    return args


def _one_line_warnings(command: str):
    """Python warnings as one line each on stderr, ``asymflux COMMAND: warning: ...`` (no
    source line, no file and line number)."""
    def show(message, category, filename, lineno, file=None, line=None):
        text = " ".join(str(message).split())
        print(f"asymflux {command}: warning: {text}", file=file or sys.stderr)

    return show


def main(argv=None) -> int:
    import warnings

    parser = build_parser()
    args = _parse(parser, argv)
    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warnings(args.command)
        return _run(args)


def _run(args) -> int:
    try:
        return int(args.func(args) or 0)
    except (ValueError, RuntimeError) as exc:  # bad input, or a solver failure
        msg = str(exc)
    except OSError as exc:  # a file that cannot be read or written: name it
        where = f"{exc.filename}: " if exc.filename else ""
        from ._atomic import describe_os_error

        msg = f"{where}{describe_os_error(exc)}"
    except MemoryError:
        msg = "out of memory (try smaller inputs or a coarser grid)"
    msg = " ".join(msg.split())  # one line
    print(f"asymflux {args.command}: error: {msg}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
