"""The notebooks in ``notebooks/``: paired with their py:percent source, stored without
outputs, and run top to bottom (each one asserts the paper's claim it reproduces).

The ``.py`` files are the source of truth; regenerate a notebook with
``jupytext --to ipynb notebooks/NN_name.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
IPYNBS = sorted(NOTEBOOKS.glob("*.ipynb"))
SOURCES = sorted(NOTEBOOKS.glob("*.py"))
RUN_TIMEOUT_S = 600  # per notebook, generous: each takes ~10-60 s on 2 busy cores

jupytext = pytest.importorskip("jupytext")


def test_there_are_notebooks():
    assert len(IPYNBS) >= 6, f"expected the six notebooks in {NOTEBOOKS}, found {IPYNBS}"


def test_every_notebook_has_its_pair():
    assert {p.stem for p in IPYNBS} == {p.stem for p in SOURCES}, (
        "every notebooks/*.ipynb needs its py:percent pair and vice versa "
        "(jupytext --to ipynb notebooks/NN_name.py)"
    )


@pytest.mark.parametrize("ipynb", IPYNBS, ids=lambda p: p.stem)
def test_pair_agrees(ipynb):
    py = ipynb.with_suffix(".py")
    nb = jupytext.read(ipynb)
    # compare cell by cell (the header's jupytext version lines may differ between versions)
    as_py = jupytext.reads(jupytext.writes(nb, fmt="py:percent"), fmt="py:percent")
    source = jupytext.read(py, fmt="py:percent")
    cells = lambda n: [(c.cell_type, c.source) for c in n.cells]  # noqa: E731
    assert cells(as_py) == cells(source), (
        f"{ipynb.name} and {py.name} differ; edit the .py and run "
        f"'jupytext --to ipynb {py.relative_to(ROOT)}'"
    )
    formats = nb.metadata.get("jupytext", {}).get("formats", "")
    assert "py:percent" in formats and "ipynb" in formats, f"{ipynb.name}: not paired ({formats!r})"


@pytest.mark.parametrize("ipynb", IPYNBS, ids=lambda p: p.stem)
def test_no_outputs_stored(ipynb):
    nb = json.loads(ipynb.read_text(encoding="utf-8"))
    dirty = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"
             and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, f"{ipynb.name}: cells {dirty} hold outputs; clear them before committing"


@pytest.mark.slow
@pytest.mark.parametrize("ipynb", IPYNBS, ids=lambda p: p.stem)
def test_notebook_runs(ipynb):
    """Run the notebook with nbmake in a subprocess (the demo-data cache is shared with
    the rest of the session through ``ASYMFLUX_CACHE``, set by ``tests/conftest.py``)."""
    pytest.importorskip("nbmake")
    env = dict(os.environ)
    cmd = [sys.executable, "-m", "pytest", "--nbmake", str(ipynb.relative_to(ROOT)),
           "-p", "no:cacheprovider", "-q", "--no-header", f"--nbmake-timeout={RUN_TIMEOUT_S}",
           "-o", "addopts="]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=RUN_TIMEOUT_S + 120)
    assert proc.returncode == 0, (
        f"{ipynb.name} failed (exit {proc.returncode}):\n{proc.stdout[-6000:]}\n{proc.stderr[-2000:]}"
    )
