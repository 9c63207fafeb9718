"""``asymflux demo-data OUT``: write the demo datasets (:mod:`asymflux.datasets`) into a folder."""

from __future__ import annotations

import argparse


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``demo-data`` command to an ``argparse`` sub-parser collection."""
    p = subparsers.add_parser(
        "demo-data",
        help="write the synthetic demo datasets (dataset folders with ground truth)",
        description="Build the deterministic synthetic demo datasets (asymflux.datasets) "
        "and write one dataset folder per dataset into OUT.",
    )
    p.add_argument("out", nargs="?", metavar="OUT", help="folder to write into (created if missing)")
    p.add_argument("--names", action="append", default=None, metavar="NAME[,NAME...]",
                   help="datasets or groups to write (repeatable, comma-separated; default all). "
                   "See --list.")
    p.add_argument("--list", action="store_true", help="list the datasets and groups, then exit")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_demo_data)
    return p


def cmd_demo_data(args) -> int:
    """Handler of ``asymflux demo-data``; returns the exit status."""
    from .. import datasets
    from .._atomic import check_output, output_errors

    if args.list:
        for name in datasets.list_datasets():
            print(f"{name}\t{datasets.describe(name)}")
        for name, members in datasets.list_groups().items():
            print(f"{name}\tgroup: {' '.join(members)}")
        return 0
    if not args.out:
        raise ValueError("demo-data needs an output folder OUT (or --list)")
    out = check_output(args.out, what="OUT", folder=True)
    names = None
    if args.names:
        names = [n.strip() for item in args.names for n in item.split(",") if n.strip()]
        datasets.expand(names)  # unknown names fail before any work
    with output_errors(out, what="OUT"):
        written = datasets.write_demo_data(out, names=names, progress=not args.quiet)
    if not args.quiet:
        print(f"wrote {len(written)} dataset folder(s) into {args.out}")
    return 0
