"""``asymflux echem``: read a cycler file of any brand."""

from __future__ import annotations

from pathlib import Path


def cmd_echem(args) -> int:
    import contextlib
    import os
    import warnings

    from .. import io
    from .._atomic import atomic_path, check_output, output_errors

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


def register(subparsers) -> None:
    """Add the ``echem`` sub-command to an argparse ``subparsers``."""
    p = subparsers.add_parser(
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
