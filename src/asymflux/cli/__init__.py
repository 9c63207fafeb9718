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

from . import analyze, datasets, echem, fit, live, model, report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asymflux",
        description="Operando single-particle imaging of battery cathodes: model, data, analysis.")
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"asymflux {__version__}",
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    model.register(sub)  # simulate, rate-sweep, demo
    fit.register(sub)
    report.register(sub)
    echem.register(sub)
    datasets.register(sub)  # demo-data
    analyze.register(sub)  # analyze, cohort
    live.register(sub)  # demo-live, watch
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
        from .._atomic import describe_os_error

        msg = f"{where}{describe_os_error(exc)}"
    except MemoryError:
        msg = "out of memory (try smaller inputs or a coarser grid)"
    msg = " ".join(msg.split())  # one line
    print(f"asymflux {args.command}: error: {msg}", file=sys.stderr)
    return 2

