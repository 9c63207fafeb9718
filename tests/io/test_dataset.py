"""The dataset folder: exact round trips, atomic writes, curation updates, frame/echem alignment."""

from __future__ import annotations

import json

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import tifffile

import asymflux.io as aio
from asymflux.io import (
    Dataset,
    DatasetError,
    read_dataset,
    read_mpr,
    write_annotations,
    write_dataset,
    write_masks,
)
from tests._helpers.io_utils import make_dataset, require_echem_dir, snapshot


@pytest.fixture
def echem_dir():
    return require_echem_dir()


def assert_same(a: Dataset, b: Dataset):
    sa, sb = np.asarray(a.stack), np.asarray(b.stack)
    assert sa.dtype == sb.dtype and sa.shape == sb.shape
    assert sa.tobytes() == sb.tobytes()  # bit-identical
    assert a.time_s.tobytes() == b.time_s.tobytes()
    assert a.pixel_nm == b.pixel_nm
    assert a.metadata == b.metadata
    pd.testing.assert_frame_equal(a.echem, b.echem, check_exact=True)
    if a.masks is None:
        assert b.masks is None
    else:
        assert a.masks.dtype == b.masks.dtype
        np.testing.assert_array_equal(a.masks, b.masks)
    if a.annotations is None:
        assert b.annotations is None
    else:
        pd.testing.assert_frame_equal(a.annotations, b.annotations, check_exact=True)


@pytest.mark.parametrize("stack_format", ["ome-tiff", "zarr"])
@pytest.mark.parametrize("dtype", [np.uint16, np.float32, np.float64, np.int32, np.uint8, np.bool_])
def test_round_trip_exact(tmp_path, stack_format, dtype):
    ds = make_dataset(dtype=dtype)
    out = write_dataset(ds, tmp_path / "exp", stack_format=stack_format)
    assert out == tmp_path / "exp"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp"]  # no temporary leftovers
    stack_file = {"ome-tiff": "stack.ome.tif", "zarr": "stack.zarr"}[stack_format]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["metadata.json", stack_file, "frames.csv", "echem.csv", "masks.tif", "annotations.csv"]
    )
    for lazy in (True, False):
        back = read_dataset(out, lazy=lazy)
        assert isinstance(back.stack, da.Array) is lazy
        assert back.path == out
        assert_same(ds, back)
    meta = json.loads((out / "metadata.json").read_text())
    assert (
        meta["stack"] == stack_file
        and meta["format"] == "asymflux-dataset"
        and meta["version"] == 1
    )


def test_round_trip_capacity_and_ground_truth(tmp_path):
    ds = make_dataset(with_extras=False)
    assert "capacity_mAh_g" in ds.echem.columns  # integrated from current and active mass
    ds.ground_truth = {
        "particles": pd.DataFrame(
            {
                "particle_id": [1, 1, 2],
                "center_deg": [10.0, 200.0, 0.0],
                "fraction": [0.2, 0.1, 0.0],
                "eta": [0.5, 0.5, 0.0],
            }
        ),
        "theta": np.random.default_rng(1).random((6, 24, 32)),
        "masks": np.arange(24 * 32, dtype=np.int64).reshape(24, 32) % 3,
        "model": {"theta": np.zeros(3), "time_s": np.arange(3.0)},
        "params": {"D [m2.s-1]": 1e-15, "mesh": "disk"},
    }
    out = write_dataset(ds, tmp_path / "syn", stack_format="zarr")
    back = read_dataset(out)
    assert_same(ds, back)
    gt = back.ground_truth
    pd.testing.assert_frame_equal(gt["particles"], ds.ground_truth["particles"], check_exact=True)
    assert gt["theta"].tobytes() == ds.ground_truth["theta"].tobytes()
    assert gt["masks"].dtype == np.int64
    np.testing.assert_array_equal(gt["masks"], ds.ground_truth["masks"])
    assert set(gt["model"]) == {"theta", "time_s"}
    assert gt["params"] == ds.ground_truth["params"]


def test_round_trip_real_mpr_echem(tmp_path, echem_dir):
    echem = read_mpr(echem_dir / "00_test_04_MB_C01.mpr", active_mass_mg=0.8)
    t = echem["time_s"].to_numpy()
    ds = make_dataset(with_extras=False)
    ds = Dataset(
        stack=ds.stack,
        time_s=np.linspace(t[0], t[-1], ds.n_frames),
        pixel_nm=65.0,
        echem=echem,
        metadata={**ds.metadata, "active_mass_mg": 0.8},
    )
    back = read_dataset(write_dataset(ds, tmp_path / "mb"))
    assert_same(ds, back)
    assert list(back.echem.columns) == [
        "time_s",
        "voltage_V",
        "current_mA",
        "charge_mAh",
        "step",
        "half_cycle",
        "capacity_mAh_g",
    ]
    assert len(back.echem) == 1501
    # without capacity in the table, the Dataset computes it from the cycler's charge counter
    bare = read_mpr(echem_dir / "00_test_04_MB_C01.mpr")
    ds2 = Dataset(ds.stack, ds.time_s, 65.0, echem=bare, metadata={"active_mass_mg": 0.8})
    np.testing.assert_allclose(ds2.echem["capacity_mAh_g"], echem["capacity_mAh_g"], rtol=1e-12)
    np.testing.assert_allclose(ds2.capacity_at_frames(), ds.capacity_at_frames(), rtol=1e-12)


def test_int64_stack_needs_zarr(tmp_path):
    ds = make_dataset(dtype=np.int64, with_extras=False)
    with pytest.raises(DatasetError, match=r"exp.*int64.*zarr"):
        write_dataset(ds, tmp_path / "exp")
    assert list(tmp_path.iterdir()) == []
    assert_same(ds, read_dataset(write_dataset(ds, tmp_path / "exp", stack_format="zarr")))


def test_capacity_at_frames_aligns_by_time():
    ds = make_dataset(with_extras=False)
    ds.echem = pd.DataFrame(
        {
            "time_s": [0.0, 5.0, 10.0],
            "voltage_V": 3.7,
            "current_mA": 0.0,
            "capacity_mAh_g": [0.0, 50.0, 60.0],
        }
    )
    ds.time_s = np.array([-1.0, 0.0, 2.5, 5.0, 7.5, 11.0])
    np.testing.assert_allclose(ds.capacity_at_frames(), [np.nan, 0.0, 25.0, 50.0, 55.0, np.nan])
    ds.echem = None
    with pytest.raises(DatasetError, match="no electrochemistry"):
        ds.capacity_at_frames()


def test_overwrite_keeps_old_until_new_is_complete(tmp_path, monkeypatch):
    target = tmp_path / "exp"
    old = make_dataset(seed=1)
    write_dataset(old, target)
    new = make_dataset(seed=2)

    import asymflux.io._writers as mod

    def explode(*args, **kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(mod, "_write_masks_file", explode)  # fails after the stack is written
    before = snapshot(tmp_path)
    with pytest.raises(OSError, match="disk full"):
        write_dataset(new, target)
    assert snapshot(tmp_path) == before  # old folder untouched, temp folder gone
    assert_same(old, read_dataset(target))
    monkeypatch.undo()
    write_dataset(new, target, stack_format="zarr")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp"]
    assert_same(new, read_dataset(target))
    assert not (target / "stack.ome.tif").exists()


def test_overwrite_from_itself_lazily(tmp_path):
    """A lazily read dataset can be written over its own folder (e.g. converted to zarr)."""
    ds = make_dataset()
    write_dataset(ds, tmp_path / "exp")
    lazy = read_dataset(tmp_path / "exp")
    write_dataset(lazy, tmp_path / "exp", stack_format="zarr")
    assert_same(ds, read_dataset(tmp_path / "exp"))


def test_refuses_to_replace_other_folders(tmp_path):
    other = tmp_path / "photos"
    other.mkdir()
    (other / "keep.jpg").write_bytes(b"x")
    before = snapshot(tmp_path)
    with pytest.raises(DatasetError, match=r"photos.*not an asymflux dataset folder"):
        write_dataset(make_dataset(), other)
    assert snapshot(tmp_path) == before


def test_write_masks_and_annotations_update_in_place(tmp_path):
    ds = make_dataset()
    folder = write_dataset(ds, tmp_path / "exp")
    first_masks = (folder / "masks.tif").read_bytes()
    new = ds.masks.copy()
    new[new == 2] = 0
    new[20:23, 0:3] = 7
    out = write_masks(folder, new)
    assert out == folder / "masks.tif"
    assert (folder / "masks.prev.tif").read_bytes() == first_masks
    np.testing.assert_array_equal(read_dataset(folder).masks, new)
    write_masks(folder, new.astype(np.uint16))
    np.testing.assert_array_equal(tifffile.imread(folder / "masks.prev.tif"), new)

    ann = ds.annotations.copy()
    ann.loc[1, "class"] = "core-shell"
    ann.loc[1, "notes"] = 'quoted "text", with comma\nand newline'
    ann = pd.concat(
        [
            ann,
            pd.DataFrame(
                {
                    "particle_id": [7],
                    "class": ["unsure"],
                    "notes": [None],
                    "who": ["bo"],
                    "when": ["2025-01-03T09:00:00"],
                }
            ),
        ],
        ignore_index=True,
    )
    write_annotations(folder, ann)
    back = read_dataset(folder).annotations
    assert back.loc[2, "notes"] == "" and back.loc[1, "notes"] == ann.loc[1, "notes"]
    pd.testing.assert_frame_equal(
        back, Dataset(ds.stack, ds.time_s, 65.0, annotations=ann).annotations
    )
    prev = pd.read_csv(folder / "annotations.prev.csv", keep_default_na=False)
    assert prev["class"].tolist() == ["core-shell", "blocked"]
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no temp files left


def test_write_masks_into_folder_without_masks(tmp_path):
    folder = write_dataset(make_dataset(with_extras=False), tmp_path / "exp")
    write_masks(folder, np.ones((24, 32), np.uint8))
    assert not (folder / "masks.prev.tif").exists()
    assert read_dataset(folder).masks.dtype == np.uint8
    write_annotations(folder, pd.DataFrame({"particle_id": [1], "class": ["x"]}))
    assert list(read_dataset(folder).annotations.columns) == ["particle_id", "class"]


def test_public_names():
    for name in (
        "Dataset",
        "DatasetError",
        "read_dataset",
        "write_dataset",
        "write_masks",
        "write_annotations",
        "read_mpr",
        "read_echem_csv",
        "cycle_summary",
        "read_hdf5",
        "read_tiff",
        "read_tiff_folder",
        "read_zarr",
        "read_npy",
        "read_stack",
    ):
        assert name in aio.__all__ and hasattr(aio, name)
    assert issubclass(DatasetError, ValueError)
