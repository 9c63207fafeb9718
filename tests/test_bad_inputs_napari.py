"""Every bad input a clean error, nothing written, napari still usable (asymflux #15): napari.

The table of bad dataset folders (tests/_helpers/bad_inputs.py, shared with the API and CLI tables)
and of bare stack files goes through the napari front end: the reader plugin
(``napari_get_reader`` and the reader function it returns, and ``viewer.open``) and the
curation widget's *Open* / analyse actions, in a real viewer. Each must give one error
notification naming the file (and the field, and what was expected) with no traceback
text and no bare exception class name, add no layer, write nothing, and leave the widget
usable: a good dataset opens in it right after.
"""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest

pytestmark = pytest.mark.gui

napari = pytest.importorskip("napari")


from tests._helpers.bad_inputs import (  # noqa: E402
    FOLDER_CASES,
    MORE_FOLDER_CASES,
    STACK_FILE_CASES,
    check_message,
    good_dataset,
    nan_capacity,
    shift_echem_clock,
    snapshot,
)

#: Cases the reader opens (the data can be looked at and curated) and the widget's
#: analyse actions refuse: (action, words).
OPENED_THEN_REFUSED = {
    "masks all background": "export_table",
    "no particle in the stack": "detect",
}
CASES = FOLDER_CASES + MORE_FOLDER_CASES
#: The widget's Open goes through the same reader function (read_path) as the reader tests
#: above, which take the whole table: the widget takes one case of each kind (a viewer
#: per case is slow).
WIDGET_CASES = [c for c in CASES if c[0] in {
    "pixel_nm true", "pixel_nm 1e300", "pixel_nm NaN", "metadata truncated", "metadata missing",
    "echem.csv decimal comma quoted", "frames.csv one row short", "annotations.csv text id",
    "stack truncated", "stack missing", "masks wrong shape", "masks all background",
    "stack all zero", "zarr never written", "zarr tail unwritten", "no particle in the stack",
    "metadata binary", "masks garbage bytes"}]


@pytest.fixture
def good(tmp_path, good_folder):
    return shutil.copytree(good_folder, tmp_path / "good")


@pytest.fixture
def notes():
    """Notifications shown from now on: ``notes("error")`` their messages."""
    from napari.utils.notifications import notification_manager

    start = len(notification_manager.records)

    def messages(severity=None):
        return [str(n.message) for n in notification_manager.records[start:]
                if severity is None or str(n.severity).lower().endswith(severity)]

    return messages


@pytest.fixture
def widget(make_napari_viewer):
    viewer = make_napari_viewer()
    _, w = viewer.window.add_plugin_dock_widget("asymflux", "Curate particles")
    return w


def one_error(messages, words, *, before=0):
    """The one error notification shown since ``before``, checked (one line, words, no
    traceback / class name)."""
    new = messages[before:]
    assert len(new) == 1, new
    return check_message(new[0], words)


def good_opens(w, good):
    """The widget is still usable: the good dataset opens in it and can be analysed."""
    cur = w.run(w.open_dataset, good)
    assert cur is not None and w.curation is cur and cur.path == good
    assert sorted(cur.particle_ids()) == [1, 2]
    assert w.run(w.show_particle, 1) is not None


# ------------------------------------------------------------------ dataset folders


@pytest.mark.parametrize("case, breaker, words", CASES, ids=[c[0] for c in CASES])
def test_reader_refuses_a_bad_dataset_folder(tmp_path, folder, notes, case, breaker, words):
    from asymflux.napari import napari_get_reader

    breaker(folder)
    before = snapshot(tmp_path)
    reader = napari_get_reader(str(folder))
    assert reader is not None, "the reader must claim a (broken) dataset folder to report it"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a message, never a Python warning
        layers = reader(str(folder))
    if case in OPENED_THEN_REFUSED:
        assert layers and layers[0][0] is not None
    else:
        assert layers == [(None,)]
        one_error(notes("error"), words)
    assert snapshot(tmp_path) == before, "something was written"


@pytest.mark.parametrize("case, breaker, words", WIDGET_CASES,
                         ids=[c[0] for c in WIDGET_CASES])
def test_widget_refuses_a_bad_dataset_folder_and_stays_usable(
        tmp_path, folder, good, widget, notes, case, breaker, words):
    w = widget
    breaker(folder)
    before = snapshot(tmp_path)
    result = w.run(w.open_dataset, folder)  # as the Open button does
    if case in OPENED_THEN_REFUSED:
        assert result is not None
        assert not notes("error")
        n = len(notes("error"))
        action = OPENED_THEN_REFUSED[case]
        out = tmp_path / "table.csv"
        assert w.run(getattr(w, action), *([out] if action == "export_table" else [])) is None
        one_error(notes("error"), words, before=n)
        assert not out.exists()
    else:
        assert result is None and w.curation is None
        assert len(w.viewer.layers) == 0
        one_error(notes("error"), words)
    assert snapshot(tmp_path) == before, "something was written"
    good_opens(w, good)


@pytest.mark.parametrize("case", [c[0] for c in FOLDER_CASES[:6]] + ["metadata missing",
                                                                   "stack all zero"])
def test_viewer_open_refuses_a_bad_dataset_folder(tmp_path, folder, good, widget, notes, case):
    """``viewer.open`` (File > Open Folder): no layers, one error; then the good one opens
    and the widget attaches to it."""
    _case, breaker, words = next(c for c in FOLDER_CASES if c[0] == case)
    breaker(folder)
    viewer = widget.viewer
    before = snapshot(tmp_path)
    assert viewer.open(folder, plugin="asymflux") == []
    assert len(viewer.layers) == 0
    one_error(notes("error"), words)
    assert snapshot(tmp_path) == before
    layers = viewer.open(good, plugin="asymflux")
    assert [lyr._type_string for lyr in layers] == ["image", "labels"]


@pytest.mark.parametrize("breaker, words", [
    (shift_echem_clock(1e6), ["echem.csv", "not on one clock"]),
    (nan_capacity([2, 3, 4]), ["echem.csv", "3 of 32 capacity_mAh_g", "NaN"]),
], ids=["cycler on another clock", "NaN capacity cells"])
def test_cycler_problems_are_reported_as_one_warning_each(tmp_path, folder, widget, notes,
                                                          breaker, words):
    """Problems that do not stop the curation (the capacity axis only) are one warning
    notification each, naming the file; the dataset opens and nothing is written."""
    w = widget
    breaker(folder)
    before = snapshot(tmp_path)
    assert w.run(w.open_dataset, folder) is not None
    assert not notes("error")
    warns = [m for m in notes("warning") if "echem.csv" in m]
    assert len(warns) == 1, notes("warning")
    check_message(warns[0], words)
    assert w.run(w.show_particle, 1) is not None
    assert snapshot(tmp_path) == before


# ------------------------------------------------------------------ bare stack files


@pytest.mark.parametrize("case, name, make, words", STACK_FILE_CASES,
                         ids=[c[0] for c in STACK_FILE_CASES])
def test_bare_stack_files_are_refused(tmp_path, good, widget, notes, case, name, make, words):
    from asymflux.napari import napari_get_reader
    from asymflux.napari._reader import read_path

    path = tmp_path / name
    make(path)
    before = snapshot(tmp_path)
    reader = napari_get_reader(str(path))
    if name.endswith((".ome.tif", ".zarr")):  # the patterns the plugin declares
        assert reader is read_path
    assert read_path(str(path)) == [(None,)]
    one_error(notes("error"), words)
    n = len(notes("error"))
    w = widget
    assert w.run(w.open_dataset, path) is None and len(w.viewer.layers) == 0
    one_error(notes("error"), words, before=n)
    assert snapshot(tmp_path) == before, "something was written"
    good_opens(w, good)


# ------------------------------------------------------------------ curation files


@pytest.mark.parametrize("data", [b"garbage", b"PK\x03\x04 not really a zip", b""],
                         ids=["garbage", "bad zip", "empty"])
def test_broken_autosave_is_one_clean_warning(tmp_path, folder, widget, notes, data):
    from asymflux.curation import AUTOSAVE_NAME

    (folder / AUTOSAVE_NAME).write_bytes(data)
    before = snapshot(tmp_path)
    cur = widget.run(widget.open_dataset, folder)
    assert cur is not None and cur.recovered_from is None
    warns = [m for m in notes("warning") if AUTOSAVE_NAME in m]
    assert len(warns) == 1, notes("warning")
    check_message(warns[0], [str(folder / AUTOSAVE_NAME), "not restored"])
    assert snapshot(tmp_path) == before


def test_autosave_of_other_frames_is_one_clean_warning(tmp_path, folder, widget, notes):
    from asymflux.curation import AUTOSAVE_NAME, Curation

    Curation(np.ones((5, 5), np.int32), path=folder).autosave()
    before = snapshot(tmp_path)
    cur = widget.run(widget.open_dataset, folder)
    assert cur is not None and cur.recovered_from is None
    warns = [m for m in notes("warning") if AUTOSAVE_NAME in m]
    check_message(warns[0], [AUTOSAVE_NAME, "(5, 5)", "(40, 48)"])
    assert snapshot(tmp_path) == before


# ------------------------------------------------------------------ multi-channel stacks


def test_multichannel_tiff_opens_one_layer_per_channel(tmp_path, widget, notes):
    import tifffile

    s = good_dataset().stack
    path = tmp_path / "two.ome.tif"
    tifffile.imwrite(path, np.stack([s, 2 * s], axis=1), ome=True, metadata={"axes": "TCYX"})
    before = snapshot(tmp_path)
    layers = widget.viewer.open(path, plugin="asymflux")
    assert not notes("error")
    assert [lyr.name for lyr in layers] == ["two [channel 0]", "two [channel 1]"]
    np.testing.assert_array_equal(np.asarray(layers[1].data[3]), 2 * s[3])
    assert [lyr.metadata["asymflux"]["channel"] for lyr in layers] == [0, 1]
    assert snapshot(tmp_path) == before
    # the widget works on the channel picked in its stack box
    cur = widget.run(widget.attach, layers[1])
    assert cur is not None and widget.stack is layers[1].data
