"""Nothing is deleted that asymflux did not make (asymflux #28).

Files and folders whose names merely look like leftovers of interrupted writes
(``.results.old-2024jan/notes.txt``, ``.thesis.20240101.tmp``, ``.NAME.tmp-XXXXXX``, a user's
own ``.asymflux-partial/`` entries, ...) are planted, an hour old, in the output folders and
inside the folders each writer replaces, and in a folder given to the cohort page's loader;
every writer runs (simulate, demo-data, cohort, analyze, write_dataset, curation saves,
exports) and the page's loader scans the folder: every planted file is still there,
unchanged. The real leftovers of asymflux (an entry of ``.asymflux-partial/`` named by a lock
file carrying the program's mark) are still cleaned.
"""

from __future__ import annotations

import numpy as np
import pytest

from asymflux import io
from asymflux._atomic import clean_leftovers
from asymflux.cli import main
from tests._helpers.bad_inputs import good_dataset, intact, plant, real_leftover


@pytest.fixture(scope="module")
def analyzed(tmp_path_factory):
    """A dataset folder and its analyze output (written once for the module)."""
    root = tmp_path_factory.mktemp("analyzed")
    ds = io.write_dataset(good_dataset(), root / "exp")
    assert main(["analyze", str(ds), "--out", str(root / "res")]) == 0
    return root


def test_clean_leftovers_removes_only_marked_entries(tmp_path):
    files = plant(tmp_path)
    mine = real_leftover(tmp_path)
    assert clean_leftovers(tmp_path) == [mine]
    assert not mine.exists() and not mine.with_name(mine.name + ".lock").exists()
    intact(tmp_path, files)


def test_simulate_keeps_foreign_files(tmp_path, capsys):
    files = plant(tmp_path)
    mine = real_leftover(tmp_path)
    assert main(["simulate", "--out", str(tmp_path / "run.npz"), "--minutes", "5"]) == 0
    assert (tmp_path / "run.npz").is_file()
    intact(tmp_path, files)
    assert not mine.exists()  # the real leftover is cleaned


def test_write_dataset_and_curation_keep_foreign_files(tmp_path):
    from asymflux.curation import Curation

    files = plant(tmp_path, "exp")
    io.write_dataset(good_dataset(), tmp_path / "exp")
    inner = plant(tmp_path / "exp", "masks.tif")
    io.write_dataset(good_dataset(), tmp_path / "exp")  # a rewrite replaces the folder
    cur = Curation.load(tmp_path / "exp", autosave_every=0)
    cur.set_class([1], "asymmetric")
    cur.save()
    intact(tmp_path, files)
    intact(tmp_path / "exp", inner)


def test_analyze_and_cohort_keep_foreign_files(tmp_path, analyzed, capsys):
    files = plant(tmp_path, "res")
    inner = plant(tmp_path / "res", "particles.csv")
    mine = real_leftover(tmp_path, "res")
    assert main(["analyze", str(analyzed / "exp"), "--out", str(tmp_path / "res")]) == 0
    assert main(["analyze", str(analyzed / "exp"), "--out", str(tmp_path / "res")]) == 0
    intact(tmp_path, files)
    intact(tmp_path / "res", inner)
    assert not mine.exists()
    out = tmp_path / "cohort"
    cfiles = plant(out, "c.csv")
    assert main(["cohort", str(tmp_path / "res"), "--out", str(out / "c.csv")]) == 0
    intact(out, cfiles)


@pytest.mark.slow
def test_demo_data_keeps_foreign_files(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ASYMFLUX_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "demo"
    files = plant(out, "fresh")
    assert main(["demo-data", str(out), "--names", "fresh", "--quiet"]) == 0
    inner = plant(out / "fresh", "stack.ome.tif")
    assert main(["demo-data", str(out), "--names", "fresh", "--quiet"]) == 0
    intact(out, files)
    intact(out / "fresh", inner)


def test_exports_keep_foreign_files(tmp_path):
    import pandas as pd

    from asymflux import export

    files = plant(tmp_path, "t.csv")
    export.write_table(tmp_path / "t.csv", pd.DataFrame({"a": [1, 2]}))
    dI = np.zeros((3, 8, 8), np.float32)
    dI[1:, 2:6, 2:6] = 1.0
    export.write_movie(tmp_path / "m.gif", dI)
    intact(tmp_path, files)


def test_the_cohort_page_loader_deletes_nothing(tmp_path, analyzed):
    from asymflux.views._compute import dataset_specs

    root = tmp_path / "visitor"
    io.write_dataset(good_dataset(), root / "a")
    files = plant(root, "a")
    mine = real_leftover(root, "a")
    assert dataset_specs(str(root)) == [str(root / "a")]
    with pytest.raises(ValueError):
        io.read_dataset(root / "missing")
    intact(root, files)
    assert mine.exists()  # a page never deletes anything in a folder a visitor names
