"""Generate environment.yml (conda-forge) from pyproject.toml, so the two cannot drift.

    python tools/make_environment.py > environment.yml

tests/test_packaging.py fails when the committed environment.yml differs from this output.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# pip name -> conda-forge name, where they differ (None: not on conda-forge, kept under pip)
CONDA_NAMES = {
    "napari[pyqt6]": "napari",
    "dask[array,distributed]": "dask",
    "pytest-xvfb": None,
    "nbmake": None,
    "galvani": "galvani",
    "datalab-org-galvani": None,  # the maintained fork (installs as `galvani`): PyPI only
    "navani": None,
    "npTDMS": "nptdms",
    "yadg": None,
    "gamry-parser": None,
}
# Qt binding for napari; mdbtools (mdb-export) for navani's Arbin .res reader
EXTRA_CONDA = {"napari[pyqt6]": ["pyqt"], "navani": ["mdbtools"]}


def _split(req: str) -> tuple[str, str]:
    m = re.match(r"^([A-Za-z0-9_.\-]+(?:\[[^\]]*\])?)(.*)$", req.strip())
    return m.group(1), m.group(2).strip()


def requirements() -> list[str]:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(meta["dependencies"])
    for extra, items in meta["optional-dependencies"].items():
        if extra == "all":
            continue
        reqs += [r for r in items if not r.startswith("asymflux")]
    return reqs


def render() -> str:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    python = meta["requires-python"]
    conda, pip = [f"python{python}"], []
    seen = set()
    for req in requirements():
        name, spec = _split(req)
        if name in seen:
            continue
        seen.add(name)
        cname = CONDA_NAMES.get(name, name.split("[")[0])
        if cname is None:
            pip.append(f"{name}{spec}")
            conda += EXTRA_CONDA.get(name, [])
            continue
        conda.append(f"{cname}{spec}")
        conda += EXTRA_CONDA.get(name, [])
    lines = [
        "# Generated from pyproject.toml by tools/make_environment.py; do not edit by hand.",
        "# conda env create -f environment.yml && conda activate asymflux",
        "name: asymflux",
        "channels:",
        "  - conda-forge",
        "dependencies:",
    ]
    lines += [f"  - {c}" for c in conda]
    lines += ["  - pip", "  - pip:"]
    lines += [f"      - {p}" for p in pip]
    lines += ["      - -e ."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
