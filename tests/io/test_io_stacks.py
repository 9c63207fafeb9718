"""Bare-stack readers: (OME-)TIFF, ImageJ TIFF, TIFF folders, zarr, .npy, HDF5."""

from __future__ import annotations

import dask.array as da
import h5py
import numpy as np
import pytest
import tifffile
import zarr
from _io_testutils import snapshot

from asymflux.io import (
    DatasetError,
    read_dataset,
    read_hdf5,
    read_npy,
    read_stack,
    read_tiff,
    read_tiff_folder,
    read_zarr,
)


@pytest.fixture
def stack():
    return np.random.default_rng(3).integers(0, 4096, (5, 12, 4), dtype=np.uint16)  # narrow: 4 cols


def test_ome_tiff_pixel_size_and_times(tmp_path, stack):
    p = tmp_path / "s.ome.tif"
    times = [0.0, 1.5, 3.25, 4.0, 10.125]
    tifffile.imwrite(
        p,
        stack,
        ome=True,
        photometric="minisblack",
        metadata={
            "axes": "TYX",
            "PhysicalSizeX": 0.108,
            "PhysicalSizeXUnit": "µm",
            "Plane": {"DeltaT": [t * 1000 for t in times], "DeltaTUnit": ["ms"] * 5},
        },
    )
    for lazy in (False, True):
        raw = read_tiff(p, lazy=lazy)
        assert isinstance(raw.stack, da.Array) is lazy
        np.testing.assert_array_equal(np.asarray(raw.stack), stack)
        assert raw.pixel_nm == pytest.approx(108.0)
        np.testing.assert_allclose(raw.time_s, times)
    ds = read_dataset(p)
    assert ds.pixel_nm == pytest.approx(108.0) and ds.n_frames == 5


def test_ome_time_increment(tmp_path, stack):
    p = tmp_path / "inc.ome.tif"
    tifffile.imwrite(
        p,
        stack,
        ome=True,
        photometric="minisblack",
        metadata={"axes": "TYX", "TimeIncrement": 2.0, "TimeIncrementUnit": "s"},
    )
    raw = read_tiff(p)
    np.testing.assert_allclose(raw.time_s, [0, 2, 4, 6, 8])
    assert raw.pixel_nm is None


def test_imagej_tiff(tmp_path, stack):
    p = tmp_path / "ij.tif"
    tifffile.imwrite(
        p,
        stack,
        imagej=True,
        resolution=(1 / 0.065, 1 / 0.065),
        metadata={"axes": "TYX", "unit": "um", "finterval": 2.5},
    )
    raw = read_tiff(p)
    np.testing.assert_array_equal(raw.stack, stack)
    assert raw.pixel_nm == pytest.approx(65.0, rel=1e-6)
    np.testing.assert_allclose(raw.time_s, np.arange(5) * 2.5)


def test_plain_multipage_tiff_has_no_metadata(tmp_path, stack):
    p = tmp_path / "plain.tif"
    tifffile.imwrite(p, stack, photometric="minisblack")
    raw = read_tiff(p)
    np.testing.assert_array_equal(raw.stack, stack)
    assert raw.time_s is None and raw.pixel_nm is None


def test_singleton_axes_are_squeezed(tmp_path, stack):
    p = tmp_path / "tcyx.ome.tif"
    tifffile.imwrite(
        p, stack[:, None], ome=True, photometric="minisblack", metadata={"axes": "TCYX"}
    )
    np.testing.assert_array_equal(read_tiff(p).stack, stack)
    np.testing.assert_array_equal(read_tiff(p, lazy=True).stack.compute(), stack)


def test_tiff_folder_natural_sort(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for k in [1, 2, 10, 3, 11, 20]:
        tifffile.imwrite(folder / f"frame{k}.tif", np.full((6, 7), k, dtype=np.uint16))
    (folder / "notes.txt").write_text("ignored")
    for lazy in (False, True):
        raw = read_tiff_folder(folder, lazy=lazy)
        frames = np.asarray(raw.stack)
        assert frames.shape == (6, 6, 7)
        assert frames[:, 0, 0].tolist() == [1, 2, 3, 10, 11, 20]  # frame2 before frame10
    assert raw.time_s is None and raw.pixel_nm is None
    assert read_stack(folder).stack.shape == (6, 6, 7)
    ds = read_dataset(folder, pixel_nm=50.0, frame_interval_s=0.5)
    np.testing.assert_allclose(ds.time_s, np.arange(6) * 0.5)


def test_tiff_folder_mismatched_frame(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    tifffile.imwrite(folder / "f1.tif", np.zeros((6, 7), np.uint16))
    tifffile.imwrite(folder / "f2.tif", np.zeros((6, 8), np.uint16))
    with pytest.raises(DatasetError, match=r"f2\.tif.*differs"):
        read_tiff_folder(folder)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match=r"empty.*no \.tif"):
        read_tiff_folder(empty)


def test_npy_is_memory_mapped(tmp_path, stack):
    p = tmp_path / "s.npy"
    np.save(p, stack)
    raw = read_npy(p)
    assert isinstance(raw.stack, np.memmap)
    np.testing.assert_array_equal(raw.stack, stack)
    assert raw.pixel_nm is None and raw.time_s is None
    ds = read_dataset(p, pixel_nm=65.0, time_s=[0, 1, 2, 4, 8])
    assert isinstance(ds.stack, np.memmap)
    np.testing.assert_array_equal(ds.time_s, [0, 1, 2, 4, 8])


def test_zarr_attributes_and_group(tmp_path, stack):
    p = tmp_path / "s.zarr"
    z = zarr.create_array(
        store=str(p),
        shape=stack.shape,
        chunks=(2, 12, 4),
        dtype=stack.dtype,
        attributes={"pixel_nm": 80.0, "frame_interval_s": 3.0},
    )
    z[:] = stack
    raw = read_zarr(p)
    assert isinstance(raw.stack, da.Array) and raw.stack.chunksize == (2, 12, 4)
    np.testing.assert_array_equal(raw.stack.compute(), stack)
    assert raw.pixel_nm == 80.0
    np.testing.assert_allclose(raw.time_s, np.arange(5) * 3.0)
    assert isinstance(read_zarr(p, lazy=False).stack, np.ndarray)
    # an OME-Zarr-like group: level "0" is the stack
    g = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    g.create_array("0", shape=stack.shape, dtype=stack.dtype)[:] = stack
    np.testing.assert_array_equal(read_stack(tmp_path / "g.zarr").stack.compute(), stack)


def test_hdf5_instrument_file(tmp_path, stack):
    p = tmp_path / "run.h5"
    t = np.arange(5) * 2.0 + 0.5
    pt = np.linspace(0, 10, 101)
    with h5py.File(p, "w") as f:
        f["/camera/frames"] = stack
        f["/camera/t"] = t
        f["/camera/pixel_nm"] = 65.0
        f["/pstat/t"] = pt
        f["/pstat/E"] = np.linspace(3.5, 4.2, 101)
        f["/pstat/I"] = np.full(101, 0.036)
    ds = read_hdf5(
        p,
        stack="/camera/frames",
        time_s="/camera/t",
        pixel_nm="/camera/pixel_nm",
        echem={"time_s": "/pstat/t", "voltage_V": "/pstat/E", "current_mA": "/pstat/I"},
        active_mass_mg=0.36,
        metadata={"material": "NMC811"},
    )
    assert isinstance(ds.stack, da.Array)
    np.testing.assert_array_equal(ds.stack.compute(), stack)
    np.testing.assert_array_equal(ds.time_s, t)
    assert ds.pixel_nm == 65.0 and ds.metadata["material"] == "NMC811"
    assert list(ds.echem.columns) == ["time_s", "voltage_V", "current_mA", "capacity_mAh_g"]
    # 0.036 mA on 0.36 mg = 100 mA/g: capacity = 100 mA/g * t / 3600
    np.testing.assert_allclose(ds.capacity_at_frames(), 100.0 * t / 3600.0, rtol=1e-12)
    eager = read_hdf5(p, stack="/camera/frames", frame_interval_s=2.0, pixel_nm=65.0, lazy=False)
    assert isinstance(eager.stack, np.ndarray)
    with pytest.raises(DatasetError) as e:
        read_hdf5(p, stack="/camera/frame", time_s="/camera/t", pixel_nm=65.0)
    assert "run.h5" in str(e.value) and "/camera/frame" in str(e.value)
    with pytest.raises(DatasetError, match="pass pixel_nm="):
        read_hdf5(p, stack="/camera/frames", time_s="/camera/t")
    with pytest.raises(DatasetError, match=r"run\.h5.*read_hdf5"):
        read_stack(p)


def test_hdf5_frame_time_count_mismatch(tmp_path, stack):
    p = tmp_path / "run.h5"
    with h5py.File(p, "w") as f:
        f["frames"] = stack
        f["t"] = np.arange(4.0)
    before = snapshot(tmp_path)
    with pytest.raises(DatasetError) as e:
        read_hdf5(p, stack="frames", time_s="t", pixel_nm=65.0)
    assert "run.h5" in str(e.value) and "4 frame times for 5 frames" in str(e.value)
    assert snapshot(tmp_path) == before


def test_read_stack_unknown_and_missing(tmp_path):
    (tmp_path / "x.png").write_bytes(b"\x89PNG")
    with pytest.raises(DatasetError, match=r"x\.png.*unknown stack format"):
        read_stack(tmp_path / "x.png")
    with pytest.raises(DatasetError, match=r"nothere\.tif.*no such"):
        read_dataset(tmp_path / "nothere.tif")


def test_echem_time_backwards_in_hdf5(tmp_path, stack):
    p = tmp_path / "run.h5"
    with h5py.File(p, "w") as f:
        f["frames"] = stack
        f["pt"] = np.array([0.0, 1.0, 0.5])
        f["pi"] = np.zeros(3)
    with pytest.raises(DatasetError, match=r"run\.h5.*backwards"):
        read_hdf5(
            p,
            stack="frames",
            frame_interval_s=1.0,
            pixel_nm=65.0,
            echem={"time_s": "pt", "current_mA": "pi"},
        )
