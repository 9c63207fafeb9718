"""What several commands share: the files a dataset path stands for, warnings on stderr, ``--time-offset-s``."""

from __future__ import annotations

import sys
from pathlib import Path


def dataset_inputs(path) -> list[Path]:
    """The files a command reads from a dataset path (the path itself, and for a dataset
    folder its data and curation files), for :func:`asymflux._atomic.check_output`."""
    from ..io.dataset import CURATION_FILES, DATA_FILES

    path = Path(path)
    if path.is_dir() and (path / "metadata.json").is_file():
        return [path / n for n in (*DATA_FILES, *CURATION_FILES)]
    return [path]


def time_offset_option(value):
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


def print_warnings(command, problems):
    """Print each warning as one line on stderr: ``asymflux COMMAND: warning: ...``."""
    for w in dict.fromkeys(problems):  # once each, in order
        print(f"asymflux {command}: warning: {' '.join(str(w).split())}", file=sys.stderr)
