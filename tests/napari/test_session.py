"""The curation dock's Qt-free model (``asymflux.napari._session``): no display, no Qt."""

import subprocess
import sys

import numpy as np
import pytest

from asymflux.napari._session import CurationSession


def _disks_stack(n_frames=4, shape=(48, 48)):
    """Two bright disks on a dim background; the right one brightens over time."""
    rows, cols = np.indices(shape)
    stack = np.full((n_frames, *shape), 100.0)
    for t in range(n_frames):
        stack[t][(rows - 14) ** 2 + (cols - 14) ** 2 <= 36] = 400.0
        stack[t][(rows - 32) ** 2 + (cols - 32) ** 2 <= 36] = 400.0 * (1 + 0.1 * t)
    return stack


@pytest.fixture
def session():
    s = CurationSession(choices={"min_area_px": 20})
    s.load(_disks_stack(), name="disks", pixel_nm=100.0)
    return s


def test_importing_the_session_imports_no_qt_nor_napari():
    code = ("import sys, asymflux.napari._session; "
            "bad = [m for m in ('qtpy', 'PyQt5', 'PyQt6', 'PySide6', 'napari', 'magicgui') "
            "if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_detect_accept_merge_undo_with_events(session):
    seen = []
    session.connect(seen.append)
    labels = session.detect()
    assert labels.shape == (48, 48) and sorted(np.unique(labels)) == [0, 1, 2]
    assert np.array_equal(session.curation.labels, labels)
    assert seen == ["labels"]
    with pytest.raises(ValueError, match="particle 0 is the background"):
        session.accept()
    session.select(1)
    session.accept()
    assert session.curation.row(1)["status"] == "accepted"
    assert session.status_text().startswith("2 particles") and "not saveable" in session.status_text()
    keep = session.merge([1, 2])
    assert session.particle_id == keep and sorted(np.unique(session.curation.labels)) == [0, keep]
    assert seen[-1] == "labels"
    assert session.undo().startswith("merge")
    assert sorted(np.unique(session.curation.labels)) == [0, 1, 2]
    with pytest.raises(RuntimeError, match="nowhere to save"):
        session.save()


def test_painted_labels_are_one_undoable_step(session):
    session.detect()
    painted = np.array(session.curation.labels)
    painted[40:44, 2:6] = 3
    assert session.take_labels(painted) is True
    assert session.curation.history[-1] == "paint" and 3 in session.curation.particle_ids()
    assert session.take_labels(painted) is False  # nothing new
    with pytest.raises(ValueError, match="shape"):
        session.take_labels(painted[:10])


def test_options_are_the_command_lines(session):
    from asymflux.analysis import analysis_options

    session.choices = {"n_reference_frames": 2, "normalize_illumination": "off",
                       "rolling_frames": 3}
    assert session.analysis_options() == analysis_options(
        n_reference_frames=2, normalize_illumination="off", rolling_frames=3)
    assert "rolling_frames" not in session.analysis_options(rolling=False) or \
        session.analysis_options(rolling=False)["rolling_frames"] is None
    options = session.differential_options()
    assert options["n_reference_frames"] == 2 and options["rolling_frames"] == 3
    assert "normalize" not in options


def test_movie_and_kymograph_shapes(session):
    session.detect()
    dI, key = session.movie()
    assert dI.shape == (4, 48, 48) and key["register"] is True
    # the right disk brightens by 10 % a frame: dI ~ 0.3 at its centre on the last frame
    assert np.asarray(dI)[-1, 32, 32] == pytest.approx(0.3, abs=0.05)
    kymo, distance_nm = session.kymograph((32, 20), (32, 44), dI=dI)
    assert kymo.shape[0] == 4 and distance_nm[-1] == pytest.approx(2400, rel=0.05)


def test_a_bad_stack_changes_nothing(session):
    before = session.curation
    with pytest.raises(ValueError, match="not a"):
        session.load(np.ones((4, 4)), name="flat")
    with pytest.raises(ValueError):
        session.load(np.zeros((3, 8, 8)), name="black")
    assert session.curation is before and session.stack.shape == (4, 48, 48)


def test_a_dataset_folder_is_loaded_and_saved(tmp_path):
    import pandas as pd

    from asymflux.io import Dataset, write_dataset

    stack = _disks_stack()
    time_s = np.arange(4) * 60.0
    echem = pd.DataFrame({"time_s": time_s, "voltage_V": 3.5 + 0.1 * np.arange(4),
                          "current_mA": np.full(4, 0.1), "capacity_mAh_g": 10.0 * np.arange(4)})
    folder = write_dataset(Dataset(stack=stack, time_s=time_s, pixel_nm=100.0, echem=echem,
                                   metadata={"material": "NMC", "ageing": "fresh",
                                             "rate_mA_g": 20.0, "cell": "c1"}),
                           tmp_path / "disks")
    s = CurationSession(choices={"min_area_px": 20})
    cur = s.load(stack, path=folder)
    assert cur.path == folder and s.dataset is not None and s.pixel_nm == 100.0
    np.testing.assert_allclose(s.capacity_mAh_g, [0, 10, 20, 30])
    s.detect()
    s.select(2)
    s.set_class("asymmetric")
    assert s.save() == folder and not s.curation.dirty
    again = CurationSession().load(stack, path=folder)
    assert again.row(2)["class"] == "asymmetric"
    assert np.array_equal(again.labels, s.curation.labels)
