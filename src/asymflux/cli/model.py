"""``asymflux simulate``, ``asymflux rate-sweep`` and ``asymflux demo``: the diffusion model."""

from __future__ import annotations

import argparse
import sys


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
                   help="parameter set: nmc88_lun2025 (default; Sturm 2019's NMC811 OCV table, "
                        "theta 0.22-1), nmc88_verbrugge2017_ocv (the same with Verbrugge 2017's "
                        "NMC622 MSMR OCV), nmc88_chen2020_ocv (with Chen 2020's OCV, a fit for "
                        "theta 0.27-0.91), nmc88_h2h3_low_diffusivity (D falls at deep "
                        "delithiation) or constant (asymflux.model.PARAMETER_SETS; a wrong name "
                        "lists them)")
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
    p.add_argument("--mesh", default="20x96", metavar="NRxNA",
                   help="disk mesh: node rings x angular sectors (default 20x96, the library's: "
                        "the core's offset at 400 mA/g within 5%% of a refined mesh; 20x48 runs "
                        "2-4x faster, 8%% low there, docs/calibration.md)")
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
    from .._validate import check_range

    theta, volts = args.cutoff_theta, args.cutoff_V
    if theta is not None:
        check_range("--cutoff-theta", theta, 0, 1, low_inclusive=False, high_inclusive=False)
    if volts is not None:
        check_range("--cutoff-V", volts, 0, 10, low_inclusive=False)
    return {"cutoff_occupancy": theta, "cutoff_voltage_V": volts}


def _model_setup(args):
    from .. import model
    from .._validate import check_range

    if args.diffusivity_m2_s is not None:
        check_range("--diffusivity-m2-s", args.diffusivity_m2_s, 0, None, low_inclusive=False)
        params = model.constant_diffusivity(args.diffusivity_m2_s)
    else:
        if args.params not in model.PARAMETER_SETS:  # named as the flag, whatever the library says
            raise ValueError(f"--params must be one of {sorted(model.PARAMETER_SETS)}, got "
                             f"{args.params!r}")
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


def cmd_simulate(args) -> int:
    import json

    import numpy as np

    from .. import model
    from .._atomic import check_output, output_errors
    from .._validate import check_range

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
    from ..provenance import provenance, write_beside

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
    from .. import model
    from .._atomic import atomic_path, check_output, output_errors
    from .._validate import check_range

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
    from .. import demo
    from .._atomic import check_output, output_errors

    out = check_output(args.out, folder=True, accept_folder=demo.is_demo_output)
    with output_errors(out):
        return demo.run(out, progress=not args.quiet, data=not args.no_data)


def register(subparsers) -> None:
    """Add the ``simulate``, ``rate-sweep`` and ``demo`` sub-commands to an argparse ``subparsers``."""
    p = subparsers.add_parser(
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

    p = subparsers.add_parser(
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

    p = subparsers.add_parser(
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
