"""Unit tests of the Qt-free curation model (asymflux.curation)."""

import shutil
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

from asymflux.curation import (
    AUTOSAVE_NAME,
    CLASSES,
    FEATURE_COLUMNS,
    Curation,
    CurationError,
    CurationWarning,
)

NASTY_NOTES = 'edge, "quoted"\nsecond line\t tab  ; ünïcødé ✓ , NA nan  '


def _labels():
    lab = np.zeros((40, 50), np.int32)
    lab[2:10, 2:10] = 1
    lab[2:10, 20:34] = 2  # elongated: splits across its long axis
    lab[20:30, 5:15] = 3
    lab[20:30, 30:40] = 5
    return lab


def _state(cur):
    return np.array(cur.labels), cur.features


def _assert_state(cur, state):
    labels, feats = state
    assert np.array_equal(cur.labels, labels)
    assert cur.labels.dtype == labels.dtype
    pd.testing.assert_frame_equal(cur.features, feats)


@pytest.fixture
def dataset_folder(tmp_path):
    """A copy of the small demo dataset (never edit the cache)."""
    from asymflux import datasets

    dst = tmp_path / "fresh"
    shutil.copytree(datasets.path("fresh"), dst)
    return dst


def test_defaults_and_columns():
    cur = Curation(_labels(), who="tester")
    f = cur.features
    assert tuple(f.columns) == FEATURE_COLUMNS
    assert f["particle_id"].tolist() == [1, 2, 3, 5]
    assert set(f["class"]) == {"unclassified"} and set(f["status"]) == {"pending"}
    assert not cur.can_undo and not cur.dirty
    assert not cur.labels.flags.writeable


def test_status_class_notes_and_stamp():
    cur = Curation(_labels(), who="tester")
    cur.accept(1)
    cur.reject([2, 3])
    cur.flag(5)
    cur.set_class(1, "asymmetric")
    cur.set_notes(1, NASTY_NOTES)
    r = cur.row(1)
    assert (r["status"], r["class"], r["notes"], r["who"]) == ("accepted", "asymmetric", NASTY_NOTES, "tester")
    assert r["when"].endswith("+00:00")
    assert cur.row(2)["status"] == cur.row(3)["status"] == "rejected"
    assert cur.row(5)["status"] == "flagged"
    with pytest.raises(CurationError, match="class must be one of"):
        cur.set_class(1, "weird")
    with pytest.raises(CurationError, match=r"particle\(s\) \[9\] do not exist"):
        cur.accept(9)


def test_merge_split_delete_relabel_and_undo_everything():
    cur = Curation(_labels())
    states = [_state(cur)]
    cur.set_notes(1, "one")
    cur.set_notes(2, "two")
    states.append(_state(cur))
    assert cur.merge([2, 1]) == 1
    assert set(np.unique(cur.labels)) == {0, 1, 3, 5}
    assert cur.row(1)["notes"] == "one; two" and cur.row(1)["status"] == "pending"
    states.append(_state(cur))
    ids = cur.split(1)  # two disconnected pieces -> split into them
    assert ids == [1, 6] and np.count_nonzero(cur.labels == 6) == 64
    states.append(_state(cur))
    new = cur.split(3, line=((25, 0), (25, 49)))  # horizontal cut
    assert len(new) == 2 and np.count_nonzero(cur.labels == new[1]) == 50
    states.append(_state(cur))
    cur.delete(5)
    assert 5 not in cur.particle_ids()
    states.append(_state(cur))
    mapping = cur.relabel_sequential()
    assert cur.particle_ids().tolist() == list(range(1, len(mapping) + 1))
    assert cur.features["particle_id"].tolist() == cur.particle_ids().tolist()
    # undo back to the start, checking each intermediate state exactly
    n_steps = len(cur.history)
    seen = []
    while cur.can_undo:
        seen.append(cur.undo())
    assert len(seen) == n_steps
    _assert_state(cur, states[0])
    # redo everything
    while cur.can_redo:
        cur.redo()
    assert cur.particle_ids().tolist() == list(range(1, len(mapping) + 1))


def test_undo_restores_each_step_exactly():
    cur = Curation(_labels())
    actions = [lambda: cur.accept(1), lambda: cur.merge([1, 2]), lambda: cur.split(3),
               lambda: cur.delete(5), lambda: cur.set_class(3, "exclude"),
               lambda: cur.relabel_sequential()]
    for act in actions:
        before = _state(cur)
        act()
        cur.undo()
        _assert_state(cur, before)
        cur.redo()


def test_split_errors():
    cur = Curation(_labels())
    with pytest.raises(CurationError, match="does not cut"):
        cur.split(1, line=((0, 30), (1, 30)))
    lab = np.zeros((5, 5), np.int32)
    lab[2, 2] = 1
    with pytest.raises(CurationError, match="nothing to split"):
        Curation(lab).split(1)


def test_new_ids_promote_a_full_dtype():
    lab = np.zeros((4, 4), np.uint8)
    lab[0, :] = 255
    cur = Curation(lab)
    ids = cur.split(255)
    assert ids == [255, 256] and cur.labels.dtype != np.uint8
    cur.undo()
    assert cur.labels.dtype == np.uint8 and np.array_equal(cur.labels, lab)


def test_update_labels_paint_is_one_undo_step():
    cur = Curation(_labels())
    cur.set_notes(3, "kept")
    new = np.array(cur.labels)
    new[35:38, 40:45] = 9  # a new particle painted
    new[new == 5] = 0  # particle 5 erased
    new[20:22, 5:15] = 0  # part of 3 erased
    assert cur.update_labels(new)
    assert cur.particle_ids().tolist() == [1, 2, 3, 9]
    assert cur.row(3)["notes"] == "kept" and cur.row(9)["status"] == "pending"
    assert not cur.update_labels(new)  # nothing changed: no step
    assert cur.history[-1] == "paint"
    cur.undo()
    assert cur.particle_ids().tolist() == [1, 2, 3, 5]


def test_features_conform_and_warn():
    feats = pd.DataFrame({"particle_id": [1, 2, 7], "class": ["symmetric", "oops", "exclude"]})
    with pytest.warns(CurationWarning) as rec:
        cur = Curation(_labels(), feats)
    msgs = " ".join(str(w.message) for w in rec)
    assert "oops" in msgs and "[7]" in msgs
    assert cur.features["particle_id"].tolist() == [1, 2, 3, 5]
    assert cur.row(1)["class"] == "symmetric" and cur.row(3)["class"] == "unclassified"


def test_save_reopen_exact(dataset_folder):
    cur = Curation.load(dataset_folder, who="me")
    ids = cur.particle_ids()
    cur.accept(int(ids[0]))
    cur.set_class(int(ids[0]), "asymmetric")
    cur.set_notes(int(ids[1]), NASTY_NOTES)
    cur.flag(int(ids[1]))
    cur.merge([int(ids[2]), int(ids[3])])
    state = _state(cur)
    assert (dataset_folder / AUTOSAVE_NAME).is_file()
    cur.save()
    assert not (dataset_folder / AUTOSAVE_NAME).exists()
    assert (dataset_folder / "masks.prev.tif").is_file()  # the demo's masks were kept
    again = Curation.load(dataset_folder)
    assert again.recovered_from is None and not again.dirty
    _assert_state(again, state)
    # a second save keeps the first version as *.prev.*
    again.reject(int(ids[0]))
    again.save()
    from asymflux.io import read_annotations

    prev = read_annotations(dataset_folder / "annotations.prev.csv")
    assert prev.loc[prev["particle_id"] == ids[0], "status"].item() == "accepted"


def test_crash_after_autosave_loses_at_most_the_last_edit(dataset_folder):
    cur = Curation.load(dataset_folder, autosave_every=0)
    ids = [int(i) for i in cur.particle_ids()]
    cur.accept(ids[0])
    cur.set_notes(ids[1], NASTY_NOTES)
    cur.merge(ids[2:4])
    cur.autosave()
    autosaved = _state(cur)
    cur.reject(ids[0])  # the last edit, never autosaved
    del cur  # crash: no save
    back = Curation.load(dataset_folder)
    assert back.recovered_from == dataset_folder / AUTOSAVE_NAME and back.dirty
    _assert_state(back, autosaved)


def test_autosave_every_edit_loses_nothing(dataset_folder):
    cur = Curation.load(dataset_folder)  # autosave_every=1
    ids = [int(i) for i in cur.particle_ids()]
    cur.accept(ids[0])
    cur.split(ids[1])
    cur.set_class(ids[2], "exclude")
    last = _state(cur)
    del cur
    _assert_state(Curation.load(dataset_folder), last)
    # recover=False ignores it; discard_autosave removes it
    fresh = Curation.load(dataset_folder, recover=False)
    assert fresh.recovered_from is None
    fresh.discard_autosave()
    assert not (dataset_folder / AUTOSAVE_NAME).exists()


def test_broken_autosave_is_reported_and_ignored(dataset_folder):
    (dataset_folder / AUTOSAVE_NAME).write_bytes(b"not a zip file")
    with pytest.warns(CurationWarning, match=AUTOSAVE_NAME):
        cur = Curation.load(dataset_folder)
    assert cur.recovered_from is None and not cur.dirty


def test_failed_autosave_warns_and_keeps_the_edit(dataset_folder, monkeypatch):
    cur = Curation.load(dataset_folder)

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(cur, "autosave", boom)
    with pytest.warns(CurationWarning, match="disk full"):
        cur.accept(int(cur.particle_ids()[0]))
    assert cur.row(int(cur.particle_ids()[0]))["status"] == "accepted"


def test_save_needs_a_folder():
    cur = Curation(_labels())
    cur.accept(1)  # no path: no autosave, no error
    with pytest.raises(CurationError, match="no dataset folder"):
        cur.save()


def test_classes_constant():
    assert CLASSES == ("unclassified", "symmetric", "asymmetric", "exclude")


def test_no_gui_imports():
    import subprocess

    code = ("import sys, asymflux.curation, asymflux.napari; "
            "bad = [m for m in ('napari', 'qtpy', 'PyQt6', 'magicgui') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Curation(_labels())


def test_a_save_killed_between_its_two_files_loads_the_autosave_without_warning(dataset_folder):
    """save() = autosave, masks.tif, annotations.csv, remove the autosave. Killed after the
    masks: the masks are new, the annotations old (they disagree), the autosave is new. The
    load restores the autosave and says nothing about the superseded files; without the
    autosave the disagreement is warned about."""
    from asymflux.io import write_masks

    cur = Curation.load(dataset_folder, autosave_every=0)
    ids = [int(i) for i in cur.particle_ids()]
    cur.save()
    cur.merge(ids[:2])  # a particle id disappears from the labels
    cur.autosave()
    new = _state(cur)
    write_masks(dataset_folder, cur.labels)  # ... then killed before annotations.csv
    with warnings.catch_warnings():
        warnings.simplefilter("error", CurationWarning)
        back = Curation.load(dataset_folder)
    assert back.recovered_from == dataset_folder / AUTOSAVE_NAME
    _assert_state(back, new)
    (dataset_folder / AUTOSAVE_NAME).unlink()
    with pytest.warns(CurationWarning, match="not in the labels"):
        Curation.load(dataset_folder)
