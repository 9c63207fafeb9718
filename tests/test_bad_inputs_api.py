"""Every bad input a clean error, no silent wrong number: the Python API (asymflux #15).

A table of bad inputs (tests/_bad_inputs.py and below), each refused with a ValueError
(DatasetError for files) whose message names the file / field / argument and what was
expected, with nothing written; and the problems that do not stop an analysis (cycler data
partly outside the frames, NaN capacity cells, blank frames) reported in the tables'
``attrs["warnings"]``, never turned into a plausible-looking number.
"""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pandas as pd
import pytest
import tifffile

from asymflux import analysis, fit, io
from asymflux.io import Dataset, DatasetError, EchemWarning

from ._bad_inputs import FOLDER_CASES, SHAPE, good_dataset, snapshot


def expect_refused(root, func, words, *, exc=ValueError):
    """``func()`` raises ``exc`` naming every word, in one line, and writes nothing."""
    before = snapshot(root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EchemWarning)
        with pytest.raises(exc) as e:
            func()
    msg = str(e.value)
    for w in words:
        assert w in msg, f"{w!r} not in {msg!r}"
    assert "\n" not in msg.strip(), msg
    assert snapshot(root) == before, "something was written"
    return msg


def read_and_analyse(path):
    ds = io.read_dataset(path)
    return analysis.analyze_dataset(ds)


# --------------------------------------------------------------------- dataset folders


@pytest.mark.parametrize("case, breaker, words", FOLDER_CASES, ids=[c[0] for c in FOLDER_CASES])
def test_bad_dataset_folder_is_refused(tmp_path, folder, case, breaker, words):
    breaker(folder)
    expect_refused(tmp_path, lambda: read_and_analyse(folder), words)


def test_good_folder_is_read_and_analysed_without_warning(folder):
    # its background is uniform: registration has nothing to lock on (and the movie does
    # not drift), so it is analysed unregistered; registered, the flags say it failed
    with warnings.catch_warnings():
        warnings.simplefilter("error", EchemWarning)
        particles, ts = analysis.analyze_dataset(io.read_dataset(folder), register=False)
    assert len(particles) == 2 and particles.attrs["warnings"] == []
    assert ts["capacity_mAh_g"].notna().all()
    with pytest.warns(EchemWarning, match="quality flag registration_residual"):
        read_and_analyse(folder)


# --------------------------------------------------------------------- arguments


def _bare(tmp_path):
    stack = good_dataset().stack
    tifffile.imwrite(tmp_path / "bare.tif", stack)
    return tmp_path / "bare.tif"


BARE_ARGUMENTS = [
    ({"pixel_nm": True, "frame_interval_s": 1.0}, ["bare.tif", "pixel_nm", "boolean"]),
    ({"pixel_nm": "65", "frame_interval_s": 1.0}, ["bare.tif", "pixel_nm", "text"]),
    ({"pixel_nm": 1e300, "frame_interval_s": 1.0}, ["pixel_nm", "[1, 100000] nm"]),
    ({"pixel_nm": 1e-3, "frame_interval_s": 1.0}, ["pixel_nm", "[1, 100000] nm"]),
    ({"pixel_nm": float("nan"), "frame_interval_s": 1.0}, ["pixel_nm", "finite"]),
    ({"pixel_nm": 65.0, "frame_interval_s": -5}, ["frame_interval_s", "positive", " s,"]),
    ({"pixel_nm": 65.0, "frame_interval_s": True}, ["frame_interval_s", "boolean"]),
    ({"pixel_nm": 65.0, "frame_interval_s": float("inf")}, ["frame_interval_s", "finite"]),
    ({"pixel_nm": 65.0}, ["bare.tif", "frame_interval_s"]),
    ({"frame_interval_s": 1.0}, ["bare.tif", "pixel_nm"]),
    ({"pixel_nm": 65.0, "time_s": [0, 1, 2]}, ["time_s", "3 frame times for 8 frames"]),
]


@pytest.mark.parametrize("kwargs, words", BARE_ARGUMENTS,
                         ids=[str(sorted(k.items())) for k, _ in BARE_ARGUMENTS])
def test_bad_arguments_of_read_dataset(tmp_path, kwargs, words):
    path = _bare(tmp_path)
    msg = expect_refused(tmp_path, lambda: io.read_dataset(path, **kwargs), words,
                         exc=DatasetError)
    if "frame_interval_s" in kwargs and "pixel_nm" in kwargs and kwargs["pixel_nm"] == 65.0:
        assert "pixel_nm" not in msg  # the message names the argument that is wrong


def test_bad_values_of_a_dataset_object():
    ds = good_dataset()
    for kwargs, words in [
        ({"pixel_nm": True}, ["pixel_nm", "boolean"]),
        ({"pixel_nm": 1e300}, ["pixel_nm", "[1, 100000] nm"]),
        ({"metadata": {"rate_mA_g": True}}, ["rate_mA_g", "boolean"]),
        ({"metadata": {"active_mass_mg": -1.0}}, ["active_mass_mg"]),
        ({"metadata": "fresh"}, ["metadata", "dict"]),
        ({"masks": np.ones((3, 3), np.uint8)}, ["masks", "(3, 3)", "(40, 48)"]),
        ({"time_s": np.arange(3.0)}, ["3 frame times for 8 frames"]),
        ({"stack": np.zeros((0, 4, 4))}, ["empty stack"]),
        ({"stack": np.array([["a"]] * 2, dtype=object)}, ["stack"]),
    ]:
        fields = {"stack": ds.stack, "time_s": ds.time_s, "pixel_nm": 65.0, "echem": ds.echem,
                  "metadata": dict(ds.metadata), **kwargs}
        with pytest.raises(DatasetError) as e:
            Dataset(**fields)
        for w in words:
            assert w in str(e.value), (w, str(e.value))


def test_zarr_attributes_are_checked(tmp_path):
    import zarr

    for attrs, words in [({"pixel_nm": True}, ["s.zarr", "pixel_nm", "boolean"]),
                         ({"pixel_nm": 1e300}, ["s.zarr", "pixel_nm"]),
                         ({"pixel_nm": 65, "frame_interval_s": -1}, ["s.zarr", "frame_interval_s"]),
                         ({"pixel_nm": 65, "frame_interval_s": "1"}, ["frame_interval_s", "text"])]:
        shutil.rmtree(tmp_path / "s.zarr", ignore_errors=True)
        arr = zarr.create_array(store=str(tmp_path / "s.zarr"), shape=(2, 4, 4), dtype="f4",
                                attributes=attrs)
        arr[:] = 1.0
        expect_refused(tmp_path, lambda: io.read_zarr(tmp_path / "s.zarr"), words,
                       exc=DatasetError)


ANALYSIS_OPTIONS = [
    ({"asymmetry_threshold": -1}, ["asymmetry_threshold", "(0, 1]"]),
    ({"asymmetry_threshold": 0}, ["asymmetry_threshold", "(0, 1]"]),
    ({"asymmetry_threshold": float("nan")}, ["asymmetry_threshold"]),
    ({"asymmetry_threshold": True}, ["asymmetry_threshold", "boolean"]),
    ({"threshold": 5}, ["threshold", "(-1, 1)"]),
    ({"threshold": "0.05"}, ["threshold", "text"]),
    ({"edge_px": -1}, ["edge_px"]),
    ({"edge_px": 1.5}, ["edge_px", "integer"]),
    ({"n_reference_frames": 0}, ["n_reference_frames"]),
    ({"n_reference_frames": 99}, ["n_reference_frames", "[1, 8]"]),
    ({"rolling_frames": 8}, ["rolling_frames", "[1, 7]"]),
    ({"window": (0.9, 0.1)}, ["window"]),
    ({"window": 0.5}, ["window"]),
    ({"drift_every": 0}, ["drift_every"]),
    ({"masks": np.ones((10, 10), np.uint16)}, ["masks", "(10, 10)", "(40, 48)"]),
    ({"masks": np.zeros(SHAPE, np.uint16)}, ["no particle"]),
    ({"masks": np.full(SHAPE, -1, np.int16)}, ["masks", ">= 0"]),
]


@pytest.mark.parametrize("kwargs, words", ANALYSIS_OPTIONS,
                         ids=[str(sorted((k, str(v)[:12]) for k, v in o.items()))
                              for o, _ in ANALYSIS_OPTIONS])
def test_bad_analysis_options(tmp_path, kwargs, words):
    ds = good_dataset()
    expect_refused(tmp_path, lambda: analysis.analyze_dataset(ds, **kwargs), words)


def test_analyze_path_refuses_bad_calibration_frames_before_the_analysis(tmp_path, folder,
                                                                        monkeypatch):
    """``analyze_path``'s ``dark`` / ``flat`` are read and checked against the dataset's
    frames before its analysis (which is never started), the message naming the file and
    the dataset; a bad ``illumination`` is refused too."""
    from asymflux.analysis import _pipeline

    def never(*args, **kw):
        raise AssertionError("the analysis started")

    monkeypatch.setattr(_pipeline, "analyze_dataset", never)
    tifffile.imwrite(tmp_path / "dark.tif", np.zeros((3, 10, 10), np.uint16))
    np.save(tmp_path / "flat.npy", np.full(SHAPE, 5.0))
    expect_refused(tmp_path, lambda: analysis.analyze_path(folder, dark=tmp_path / "dark.tif"),
                   ["dark frame", "dark.tif", "(3, 10, 10)", "(40, 48)", str(folder)])
    expect_refused(tmp_path, lambda: analysis.analyze_path(
        folder, dark=np.full(SHAPE, 5.0), flat=tmp_path / "flat.npy"),
        ["flat frame", "flat.npy", "zero or negative"])
    expect_refused(tmp_path, lambda: analysis.analyze_path(folder, illumination="sometimes"),
                   ["illumination", "sometimes"])


def test_bad_particle_and_masks_of_fit(tmp_path):
    ds = good_dataset()
    expect_refused(tmp_path, lambda: fit.fit_dataset(ds, 9), ["no particle 9", "[1, 2]"])
    expect_refused(tmp_path, lambda: fit.fit_dataset(ds, 1, masks=np.ones((10, 10), int)),
                   ["masks", "(10, 10)", "(40, 48)"])
    expect_refused(tmp_path, lambda: fit.fit_dataset(ds, 1, rate_mA_g=-5), ["rate_mA_g"])
    expect_refused(tmp_path, lambda: fit.fit_dataset(ds, 1, rate_mA_g=True),
                   ["rate_mA_g", "boolean"])
    no_masks = good_dataset(masks=False)
    expect_refused(tmp_path, lambda: fit.fit_dataset(no_masks, 1), ["no particle masks"])


def test_masks_file_errors(tmp_path):
    np.save(tmp_path / "m3.npy", np.ones((2, 3, 4)))
    (tmp_path / "bad.npy").write_bytes(b"\x93NUMPY garbage")
    (tmp_path / "m.txt").write_text("1 2 3")
    for path, words in [(tmp_path / "m3.npy", ["m3.npy", "2-D"]),
                        (tmp_path / "bad.npy", ["bad.npy", "cannot read"]),
                        (tmp_path / "m.txt", ["m.txt", ".tif"]),
                        (tmp_path / "none.tif", ["none.tif", "does not exist"])]:
        expect_refused(tmp_path, lambda p=path: io.read_masks(p), words, exc=DatasetError)


# --------------------------------------------------------------------- reported, not refused


def _with_echem(echem: pd.DataFrame, **meta) -> Dataset:
    ds = good_dataset()
    return Dataset(stack=ds.stack, time_s=ds.time_s, pixel_nm=65.0, echem=echem,
                   metadata={**ds.metadata, **meta}, masks=ds.masks)


def test_cycler_on_another_clock_is_reported():
    ds = good_dataset()
    e = ds.echem.copy()
    e["time_s"] += 1e6
    ds = _with_echem(e)
    with pytest.warns(EchemWarning, match="not on one clock"):
        particles, ts = analysis.analyze_dataset(ds)
    assert ts["capacity_mAh_g"].isna().all()
    assert particles["vanish_capacity_mAh_g"].isna().all()
    for df in (particles, ts):
        assert any("not on one clock" in w for w in df.attrs["warnings"])


def test_nan_capacity_cells_are_interpolated_over_and_reported():
    ds = good_dataset()
    e = ds.echem.copy()
    e.loc[[3, 10, 11, 12], "capacity_mAh_g"] = np.nan
    ds = _with_echem(e)
    cap, problems = ds.capacity_report()
    assert np.isfinite(cap).all()
    np.testing.assert_allclose(cap, good_dataset().capacity_at_frames(), rtol=1e-9)
    assert problems == [f"{ds.metadata.get('name', 'Dataset')}: echem: 4 of 32 capacity_mAh_g "
                        "values are NaN or infinite; capacity is interpolated between the others"] \
        or any("4 of 32 capacity_mAh_g" in p for p in problems)
    with pytest.warns(EchemWarning, match="NaN"):
        particles, ts = analysis.analyze_dataset(ds)
    assert ts["capacity_mAh_g"].notna().all()
    assert particles["vanish_capacity_mAh_g"].notna().any()
    assert any("capacity_mAh_g" in w for w in particles.attrs["warnings"])


def test_all_nan_capacity_is_reported():
    ds = good_dataset()
    e = ds.echem.copy()
    e["capacity_mAh_g"] = np.nan
    cap, problems = _with_echem(e).capacity_report()
    assert np.isnan(cap).all() and any("no finite capacity" in p for p in problems)


def test_nan_current_does_not_empty_the_integrated_capacity():
    ds = good_dataset()
    e = ds.echem.drop(columns="capacity_mAh_g")
    e.loc[5, "current_mA"] = np.nan
    ds = _with_echem(e, active_mass_mg=0.5)
    cap, problems = ds.capacity_report()
    assert np.isfinite(cap).all() and cap[-1] > 0
    assert any("current_mA" in p and "NaN" in p for p in problems)


def test_nan_charge_counter_start_does_not_empty_the_capacity():
    ds = good_dataset()
    e = ds.echem.drop(columns="capacity_mAh_g")
    e["charge_mAh"] = np.linspace(0, 0.02, len(e))
    e.loc[0, "charge_mAh"] = np.nan
    cap, problems = _with_echem(e, active_mass_mg=0.5).capacity_report()
    assert np.isfinite(cap[1:]).all() and cap[-1] > 0  # counted from the first finite value
    assert np.isnan(cap[0]) and any("1 of 32 capacity_mAh_g" in p for p in problems)
    # the frame lies within the records: the NaN cell is the cause, not the clock (#28)
    assert any("1 of 8 frames (frame 0) fall where the cycler's capacity_mAh_g cells are NaN"
               in p for p in problems), problems
    assert not any("outside" in p or "clock" in p for p in problems), problems


def test_frames_partly_outside_the_cycler_records_are_reported():
    ds = good_dataset()
    e = ds.echem[ds.echem["time_s"] <= 200].copy()
    ds = _with_echem(e)
    with pytest.warns(EchemWarning, match=r"4 of 8 frames \(frame 4-7\) lie outside"):
        cap = ds.capacity_at_frames()
    assert np.isfinite(cap[:4]).all() and np.isnan(cap[4:]).all()


def test_empty_cycler_table_is_reported():
    ds = good_dataset()
    cap, problems = _with_echem(ds.echem.iloc[:0]).capacity_report()
    assert np.isnan(cap).all() and any("no cycler record" in p for p in problems)


def test_no_echem_is_reported_in_the_tables():
    ds = good_dataset()
    ds = Dataset(stack=ds.stack, time_s=ds.time_s, pixel_nm=65.0, metadata=ds.metadata,
                 masks=ds.masks)
    with pytest.warns(EchemWarning, match="no capacity per frame"):
        particles, _ = analysis.analyze_dataset(ds)
    assert any("no electrochemistry" in w for w in particles.attrs["warnings"])


def test_blank_frames_inside_a_stack_are_nan_and_reported():
    ds = good_dataset()
    stack = ds.stack.copy()
    stack[3:5] = 0.0  # e.g. zarr chunks never written
    ds = Dataset(stack=stack, time_s=ds.time_s, pixel_nm=65.0, echem=ds.echem,
                 metadata=ds.metadata, masks=ds.masks)
    with pytest.warns(EchemWarning, match="2 of 8 frames hold no image"):
        particles, ts = analysis.analyze_dataset(ds)
    assert ts.loc[ts["frame"].isin([3, 4]), "unreacted_fraction"].isna().all()
    assert ts.loc[~ts["frame"].isin([3, 4]), "unreacted_fraction"].notna().all()
    assert any("frame(s) 3, 4" in w for w in particles.attrs["warnings"])


def test_analyze_dataset_particle_reports_too():
    ds = good_dataset()
    e = ds.echem.copy()
    e["time_s"] += 1e6
    with pytest.warns(EchemWarning):
        result = analysis.analyze_dataset_particle(_with_echem(e), 1)
    assert any("not on one clock" in w for w in result.timeseries.attrs["warnings"])


# --------------------------------------------------------------------- asymflux #28


@pytest.mark.parametrize("interval", [-1, 0, -0.5, True])
def test_read_hdf5_names_a_bad_frame_interval(tmp_path, interval):
    import h5py

    with h5py.File(tmp_path / "m.h5", "w") as f:
        f["movie"] = good_dataset().stack
    msg = expect_refused(tmp_path, lambda: io.read_hdf5(
        tmp_path / "m.h5", stack="movie", frame_interval_s=interval, pixel_nm=65),
        ["m.h5", "frame_interval_s", "(0, 1e+07] s"], exc=DatasetError)
    assert "backwards" not in msg


def test_a_sparse_zarr_and_a_one_tiff_folder_are_refused_before_any_work(tmp_path):
    import zarr

    z = zarr.create_array(store=str(tmp_path / "s.zarr"), shape=(100000, 4096, 4096),
                          chunks=(1, 4096, 4096), dtype="u2")
    z[0] = 1
    z[-1] = 2
    expect_refused(tmp_path, lambda: io.read_stack(tmp_path / "s.zarr"),
                   ["s.zarr", "only 2 of the 100000 chunks", "0.002%", "never written"],
                   exc=DatasetError)
    (tmp_path / "frames").mkdir()
    tifffile.imwrite(tmp_path / "frames" / "a.tif", good_dataset().stack[0])
    expect_refused(tmp_path, lambda: io.read_stack(tmp_path / "frames"),
                   ["frames", "one TIFF", "a.tif", "(40, 48)"], exc=DatasetError)


def test_write_dataset_on_a_full_disk_names_the_folder(tmp_path, monkeypatch):
    from ._bad_inputs import full_disk

    io.write_dataset(good_dataset(), tmp_path / "exp")
    full_disk(monkeypatch)
    msg = expect_refused(tmp_path, lambda: io.write_dataset(good_dataset(), tmp_path / "exp"),
                         ["disk full", "exp", "unchanged"], exc=OSError)
    assert str(tmp_path / "exp") in msg
