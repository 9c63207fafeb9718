"""``asymflux report``: one self-contained HTML report per dataset of an analyze output."""

from __future__ import annotations

from pathlib import Path


def cmd_report(args) -> int:
    from .. import report
    from .._atomic import check_output, output_errors
    from ..provenance import options_of

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


def register(subparsers) -> None:
    """Add the ``report`` sub-command to an argparse ``subparsers``."""
    p = subparsers.add_parser(
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
