"""``asymflux fit``: the diffusion model fitted to one particle's movie, or to every particle's."""

from __future__ import annotations

import sys
from pathlib import Path

from ._common import dataset_inputs, time_offset_option


def cmd_fit(args) -> int:
    import json

    import numpy as np

    from .. import fit, io
    from .._atomic import check_output, output_errors
    from .._validate import check_range
    from ..provenance import provenance, write_beside

    if args.all:
        if getattr(args, "diffusivity_from_rest", False):
            raise ValueError("--diffusivity-from-rest fits one particle (--particle ID), not "
                             "--all")
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
        from ..analysis import check_labels

        masks = check_labels(io.read_masks(args.masks), dataset.stack.shape[1:],
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
    if getattr(args, "diffusivity_from_rest", False):
        return _fit_rest(args, dataset, masks, surface, clock, offset, inputs, out)
    arcs_text = "film arcs, R_film per arc" if args.kinetic else "blocked arcs, eta per arc"
    print(f"fitting particle {args.particle} of {args.dataset} "
          f"(no blocking, one arc{', two arcs' if args.max_arcs == 2 else ''}; {arcs_text}) ...",
          flush=True)
    result = fit.fit_dataset(dataset, args.particle, masks=masks, rate_mA_g=args.rate_mA_g,
                             max_arcs=args.max_arcs, surface=surface, progress=True,
                             time_offset_s=offset, intensity_offset=args.intensity_offset)
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


def _fit_rest(args, dataset, masks, surface, clock, offset, inputs, out) -> int:
    """``asymflux fit DATASET --particle ID --diffusivity-from-rest``: the blocking fitted
    from the charge frames, then the diffusivity scale from the rest that ends the movie
    (:func:`asymflux.fit_rest.fit_rest_dataset`), as FILE.json."""
    import json

    from .. import fit_rest
    from .._atomic import output_errors
    from ..provenance import provenance, write_beside

    print(f"fitting the diffusivity scale of particle {args.particle} of {args.dataset} from "
          f"its rest (blocking from the charge frames: {surface} surface, up to "
          f"{args.max_arcs} arc(s)) ...", flush=True)
    result = fit_rest.fit_rest_dataset(dataset, args.particle, surfaces="fit",
                                       blocking_fit={"surface": surface,
                                                     "max_arcs": args.max_arcs},
                                       masks=masks, rate_mA_g=args.rate_mA_g,
                                       time_offset_s=offset, progress=True,
                                       intensity_offset=args.intensity_offset)
    summary = {"dataset": str(args.dataset), "particle_id": int(args.particle),
               **result.summary(), **clock.as_dict()}
    record = provenance("fit", inputs=inputs, options=args, outputs=[out],
                        extra={"uncertainty_method": fit_rest.UNCERTAINTY_METHOD})
    with output_errors(out), write_beside(out, record) as tmp:
        Path(tmp).write_text(json.dumps(summary, indent=2, default=float) + "\n", encoding="utf-8")
    se = result.uncertainties.get("diffusivity_scale", float("nan"))
    print(f"rest from {result.rest_start_s:g} s: diffusivity x{result.diffusivity_scale:.3g} "
          f"+/- {se:.2g} (standard error){' AT A BOUND' if result.at_bound else ''}, "
          f"rms dI {result.rms:.4f}")
    print(f"wrote {args.out}")
    return 0


def _fit_time_offset(args, dataset, labels):
    """``--time-offset-s`` of ``asymflux fit``: ``(the TimeOffset used, what the fit is
    given)``, the latter None when none was given (the dataset's own, as before); ``auto``
    is estimated once here, from the particles ``labels``."""
    from ..analysis import resolve_time_offset

    value = time_offset_option(getattr(args, "time_offset_s", None))
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

    from .. import fit, fit_batch, io
    from .._atomic import check_output, output_errors
    from .._validate import check_range
    from ..analysis import dataset_name, is_analyze_output, write_tables
    from ..provenance import provenance, to_json

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
        from ..analysis import check_labels

        masks = check_labels(io.read_masks(args.masks), dataset.stack.shape[1:],
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
        rate_mA_g=args.rate_mA_g, max_arcs=args.max_arcs, surface=surface, time_offset_s=offset,
        intensity_offset=args.intensity_offset)
    if not summaries:
        raise ValueError(f"every particle failed ({len(ids)}); nothing written: "
                         + "; ".join(f"{k}: {v}" for k, v in failures.items()))
    fits = fit_batch.fits_table(name, summaries, failures)
    details = [{"dataset": name, "particle_id": pid, **s, **clock.as_dict()}
               for pid, s in summaries.items()]
    fits_all, details = fit_batch.with_folder_fits(out, name, fits, details)
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


def register(subparsers) -> None:
    """Add the ``fit`` sub-command to an argparse ``subparsers``."""
    p = subparsers.add_parser(
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
    p.add_argument("--diffusivity-from-rest", action="store_true",
                   help="fit the diffusivity scale (factor on D(theta)) from the frames of the "
                        "rest that ends the movie (its start from the echem: where the current "
                        "falls to ~0): the blocking is first fitted from the charge frames "
                        "(film arcs with --kinetic), then the scale with its standard error "
                        "from the rest; FILE.json holds diffusivity_scale, uncertainties, "
                        "uncertainty_method, rest_start_s and the blocking fit "
                        "(particles[0].surface_fit)")
    p.add_argument("--time-offset-s", metavar="S|auto", default=None,
                   help="the cycler's clock against the camera's, as for `asymflux analyze`: "
                        "cycler time = frame time + S (seconds; default: the dataset's own, "
                        "else 0); 'auto' estimates it with its uncertainty (once, for every "
                        "particle). The offset used is in the JSON (time_offset_s, "
                        "time_offset_uncertainty_s, time_offset_method, time_offset_detail)")
    p.add_argument("--intensity-offset", type=float, metavar="V", default=0.0,
                   help="add V to every pixel first, as for `asymflux analyze`: a "
                        "background-subtracted movie (negative intensities) with the "
                        "subtracted level put back")
    p.set_defaults(func=cmd_fit)
