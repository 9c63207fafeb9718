"""Every bad input a clean error, nothing written, the page still usable (asymflux #15):
the dashboards, at Python level (no server, no browser).

The table of bad dataset folders (tests/_bad_inputs.py, shared with the API, CLI and napari
tables) goes through the views' load paths: the model explorer's dataset field, the cohort
browser's datasets field, and both pages' zip upload (with a table of bad zips: not a zip,
truncated, members outside the folder, a zip bomb, ...). Each must put one line in the
page's alert naming the file (and the field, and what was expected), with no traceback
text and no Python / library exception class name (the alert's label is our own error
class), write nothing into the dataset folder (nor leave unpacked uploads), and the page
must show a good dataset right after.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import pytest

pn = pytest.importorskip("panel")

from asymflux.views import CohortBrowser, ModelExplorer  # noqa: E402
from asymflux.views import _jobs as J  # noqa: E402
from asymflux.views import _uploads as U  # noqa: E402

if str(Path(__file__).resolve().parents[2]) not in sys.path:  # tests/dashboards is no package
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests._bad_inputs import (  # noqa: E402
    FOLDER_CASES,
    MORE_FOLDER_CASES,
    ZIP_CASES,
    check_message,
    nan_capacity,
    shift_echem_clock,
    snapshot,
    zip_folder,
)

CASES = FOLDER_CASES + MORE_FOLDER_CASES


@pytest.fixture(scope="module")
def explorer(good_folder):
    return ModelExplorer(dataset=str(good_folder))


@pytest.fixture(scope="module")
def browser(good_folder):
    view = CohortBrowser(datasets=str(good_folder))
    view.load()
    assert not view.errors
    return view


@pytest.fixture
def uploads(tmp_path, monkeypatch):
    """The folder uploads are unpacked into (the temporary directory, made private)."""
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


def alert_line(view, words):
    """The alert's one line about the dataset, checked."""
    assert view.alert.visible, "no alert"
    text = view.alert.object
    lines = [ln.removeprefix("- ") for ln in text.splitlines() if ln.strip()]
    if isinstance(view, CohortBrowser):  # a heading, then one line per dataset
        assert lines[0].endswith("could not be used:") and len(lines) == 2, text
        assert view.errors == [lines[1]]
        lines = lines[1:]
    assert len(lines) == 1, text
    check_message(lines[0], words, allowed=())  # no class names on the page (#28)
    assert "unexpected error" not in lines[0], lines[0]
    return lines[0]


def explorer_shows_good(view, good_folder):
    view.dataset = str(good_folder)
    assert not view.alert.visible, view.alert.object
    assert view.particle_id == 1 and len(view.particle_select.options) == 2


def browser_shows_good(view, good_folder):
    view.datasets = str(good_folder)
    assert not view.alert.visible and not view.errors, view.alert.object
    assert view.stats is not None and int(view.stats["n_particles"].sum()) == 2


# ------------------------------------------------------------------ dataset fields


@pytest.mark.parametrize("case, breaker, words", CASES, ids=[c[0] for c in CASES])
def test_model_explorer_dataset_field(tmp_path, explorer, good_folder, folder, case, breaker,
                                      words):
    breaker(folder)
    before = snapshot(tmp_path)
    explorer.dataset = str(folder)
    alert_line(explorer, words)
    assert explorer.particle_select.options == [] and explorer.particle_id is None
    assert snapshot(tmp_path) == before, "something was written"
    explorer_shows_good(explorer, good_folder)


@pytest.mark.parametrize("case, breaker, words", CASES, ids=[c[0] for c in CASES])
def test_cohort_browser_datasets_field(tmp_path, browser, good_folder, folder, case, breaker,
                                       words):
    breaker(folder)
    before = snapshot(tmp_path)
    browser.datasets = str(folder)
    alert_line(browser, words)
    assert browser.stats is None
    assert snapshot(tmp_path) == before, "something was written"
    browser_shows_good(browser, good_folder)


def test_a_bad_dataset_among_good_ones_is_one_line(tmp_path, browser, good_folder, folder):
    FOLDER_CASES[0][1](folder)  # pixel_nm true
    browser.datasets = f"{good_folder},{folder}"
    assert browser.alert.visible and len(browser.errors) == 1
    check_message(browser.errors[0], [str(folder), "metadata.json", "pixel_nm", "boolean"],
                  allowed=())
    assert int(browser.stats["n_particles"].sum()) == 2  # the good one is still shown
    browser_shows_good(browser, good_folder)


@pytest.mark.parametrize("breaker, words", [
    (shift_echem_clock(1e6), ["echem.csv", "not on one clock"]),
    (nan_capacity([2, 3, 4]), ["echem.csv", "3 of 32 capacity_mAh_g", "NaN"]),
], ids=["cycler on another clock", "NaN capacity cells"])
def test_cycler_problems_are_kept_with_the_analysis(tmp_path, folder, breaker, words):
    """Problems that do not stop an analysis travel with its tables (attrs["warnings"]),
    one line each, never turned into numbers."""
    breaker(folder)
    before = snapshot(tmp_path)
    _ds, particles, _ts, _labels = J.analyzed(str(folder))
    warns = [w for w in particles.attrs["warnings"] if "echem.csv" in w]
    assert len(warns) == 1, particles.attrs["warnings"]
    check_message(warns[0], words)
    assert snapshot(tmp_path) == before


def test_unknown_names_and_paths(tmp_path, explorer, browser, good_folder):
    for spec, words in [("", ["no dataset given"]), ("nope", ["'nope'", "demo dataset"]),
                        (str(tmp_path / "missing"), ["missing", "existing path"])]:
        explorer.dataset = spec
        alert_line(explorer, words)
    explorer_shows_good(explorer, good_folder)
    (tmp_path / "empty").mkdir()
    browser.datasets = str(tmp_path / "empty")
    assert browser.alert.visible and "holds no dataset folders" in browser.alert.object
    check_message(browser.errors[0], ["empty", "metadata.json"], allowed=())
    browser_shows_good(browser, good_folder)


# ------------------------------------------------------------------ uploads


#: An empty upload never reaches the pages' handlers with data (they skip an empty value):
#: checked on save_upload below.
UPLOAD_CASES = [c for c in ZIP_CASES if c[0] != "empty upload"]


@pytest.mark.parametrize("case, make, filename, words", UPLOAD_CASES,
                         ids=[c[0] for c in UPLOAD_CASES])
@pytest.mark.parametrize("page", ["explorer", "browser"])
def test_bad_uploads(tmp_path, uploads, explorer, browser, good_folder, page, case, make,
                     filename, words):
    view = explorer if page == "explorer" else browser
    good_zip = zip_folder(good_folder)
    data = make(good_zip)
    before = snapshot(tmp_path)
    view.upload.value = None  # FileInput reacts to a change only
    view.upload.filename = filename
    view.upload.value = data
    line = alert_line(view, words)
    assert "DatasetSpecError" not in line and "DatasetError" not in line  # words, no class (#28)
    assert "**Cannot open this**" in line or "**Cannot use this dataset**" in line, line
    unpacked = list(uploads.glob("asymflux-upload-*"))
    if case == "bad dataset inside":  # unpacked, refused when read; removed at session end
        assert len(unpacked) == 1
        view._session_end()
    assert not list(uploads.glob("asymflux-upload-*"))
    assert snapshot(tmp_path) == before, "something was written"
    # a good upload is shown right after
    view.upload.value = None  # FileInput reacts to a change only (the bad one may be good_zip)
    view.upload.filename = "exp.zip"
    view.upload.value = good_zip
    assert not view.alert.visible, view.alert.object
    view._session_end()
    assert not list(uploads.glob("asymflux-upload-*"))
    (explorer_shows_good if page == "explorer" else browser_shows_good)(view, good_folder)


def test_a_zip_bomb_is_refused_before_unpacking(uploads):
    from asymflux.views import _compute as C
    from tests._bad_inputs import _bomb

    with pytest.raises(C.DatasetSpecError) as e:
        C.extract_zip(_bomb(), name="bomb.zip")
    check_message(str(e.value), ["bomb.zip", "unpacks to", "stack.ome.tif"])
    assert not list(uploads.iterdir())


@pytest.mark.parametrize("case, make, filename, words", ZIP_CASES, ids=[c[0] for c in ZIP_CASES])
def test_save_upload_refuses_bad_zips(tmp_path, uploads, good_folder, case, make, filename,
                                      words):
    """The upload path under both pages: one line naming the upload, nothing left."""
    data = make(zip_folder(good_folder))
    if case == "bad dataset inside":  # unpacked: the page's read of it says why (above)
        U.remove_dir(U.upload_root(U.save_upload(data, filename)))
        return
    with pytest.raises(ValueError) as e:
        U.save_upload(data, filename)
    check_message(str(e.value), words)
    assert not list(uploads.iterdir())


def test_the_cohort_page_deletes_nothing_in_a_folder_a_visitor_names(tmp_path, browser,
                                                                     good_folder):
    """#28: files that merely look like leftovers of interrupted writes, and even asymflux's
    own marked leftovers, survive the page scanning and reading a folder it is given."""
    import shutil

    from tests._bad_inputs import intact, plant, real_leftover

    root = tmp_path / "visitor"
    root.mkdir()
    shutil.copytree(good_folder, root / "exp")
    files = plant(root, "exp")
    mine = real_leftover(root, "exp")
    browser.datasets = str(root)
    assert not browser.errors and browser.stats is not None
    browser.datasets = str(root / "missing")
    intact(root, files)
    assert mine.exists()
