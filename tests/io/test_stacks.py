"""Bare-stack readers: (OME-)TIFF, ImageJ TIFF, TIFF folders, zarr, .npy, HDF5."""

from __future__ import annotations

import dask.array as da
import h5py
import numpy as np
import pytest
import tifffile
import zarr

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
from tests._helpers.io_utils import snapshot


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
    cols = [c for c in ds.echem.columns if c != "charge_mAh"]  # charge_mAh: added by echem
    assert cols == ["time_s", "voltage_V", "current_mA", "capacity_mAh_g"]
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


# ---------------------------------------------------------------- TIFF axes: channels, depths


@pytest.fixture
def tcyx():
    """4 frames x 3 channels; every channel different."""
    return np.random.default_rng(5).integers(0, 4096, (4, 3, 6, 5), dtype=np.uint16)


@pytest.mark.parametrize("kind", ["imagej", "ome"])
def test_channels_are_never_frames(tmp_path, tcyx, kind):
    p = tmp_path / ("tcyx.tif" if kind == "imagej" else "tcyx.ome.tif")
    if kind == "imagej":
        tifffile.imwrite(p, tcyx, imagej=True, metadata={"axes": "TCYX", "finterval": 2.0})
    else:
        tifffile.imwrite(p, tcyx, ome=True, photometric="minisblack", metadata={"axes": "TCYX"})
    for lazy in (False, True):
        with pytest.raises(DatasetError) as e:
            read_tiff(p, lazy=lazy)
        msg = str(e.value)
        assert p.name in msg and "'TCYX'" in msg and "(4, 3, 6, 5)" in msg
        assert "pass channel=K (0 to 2;" in msg
        raw = read_tiff(p, lazy=lazy, channel=1)
        assert isinstance(raw.stack, da.Array) is lazy
        assert raw.stack.shape == (4, 6, 5)
        np.testing.assert_array_equal(np.asarray(raw.stack), tcyx[:, 1])
    if kind == "imagej":  # a real T axis: finterval gives the frame times
        np.testing.assert_allclose(raw.time_s, [0.0, 2.0, 4.0, 6.0])
    with pytest.raises(DatasetError, match=r"channel=3 is out of range .* valid: 0 to 2"):
        read_tiff(p, channel=3)
    np.testing.assert_array_equal(read_stack(p, channel=2).stack.compute(), tcyx[:, 2])
    ds = read_dataset(p, channel=0, pixel_nm=65.0, frame_interval_s=1.0)
    np.testing.assert_array_equal(ds.stack.compute(), tcyx[:, 0])


def test_rgb_samples_are_channels(tmp_path):
    rgb = np.random.default_rng(6).integers(0, 255, (4, 6, 5, 3), dtype=np.uint8)
    p = tmp_path / "rgb.tif"
    tifffile.imwrite(p, rgb, photometric="rgb")
    with pytest.raises(DatasetError, match=r"rgb\.tif.*3 channels \(axis 'S'\); pass channel="):
        read_tiff(p)
    for lazy in (False, True):
        np.testing.assert_array_equal(
            np.asarray(read_tiff(p, channel=2, lazy=lazy).stack), rgb[..., 2]
        )


def test_depth_picked_with_z(tmp_path):
    rng = np.random.default_rng(7)
    tzyx = rng.integers(0, 4096, (4, 3, 6, 5), dtype=np.uint16)
    tzcyx = rng.integers(0, 4096, (4, 3, 2, 6, 5), dtype=np.uint16)
    p4, p5 = tmp_path / "tzyx.tif", tmp_path / "tzcyx.tif"
    tifffile.imwrite(p4, tzyx, imagej=True, metadata={"axes": "TZYX", "finterval": 0.5})
    tifffile.imwrite(p5, tzcyx, imagej=True, metadata={"axes": "TZCYX"})
    with pytest.raises(DatasetError, match=r"tzyx\.tif.*'TZYX'.*3 depths.*pass z=K \(0 to 2;"):
        read_tiff(p4)
    for lazy in (False, True):
        raw = read_tiff(p4, z=2, lazy=lazy)
        np.testing.assert_array_equal(np.asarray(raw.stack), tzyx[:, 2])
        np.testing.assert_allclose(raw.time_s, [0.0, 0.5, 1.0, 1.5])  # T is real: times kept
        np.testing.assert_array_equal(
            np.asarray(read_tiff(p5, z=1, channel=1, lazy=lazy).stack), tzcyx[:, 1, 1]
        )
    with pytest.raises(DatasetError, match="pass z=K"):
        read_tiff(p5, channel=0)
    with pytest.raises(DatasetError, match="pass channel=K"):
        read_tiff(p5, z=0)
    with pytest.raises(DatasetError, match=r"z=3 is out of range"):
        read_tiff(p4, z=3)


def test_z_stack_is_not_a_movie(tmp_path, stack):
    """A Z stack: refused unless frame_axis='Z'; its ImageJ finterval never becomes frame times."""
    p = tmp_path / "zyx.tif"
    tifffile.imwrite(p, stack, imagej=True, metadata={"axes": "ZYX", "finterval": 2.5})
    assert tifffile.TiffFile(p).imagej_metadata["finterval"] == 2.5  # the file does carry it
    for lazy in (False, True):
        with pytest.raises(DatasetError) as e:
            read_tiff(p, lazy=lazy)
        assert "zyx.tif" in str(e.value) and "Z stack" in str(e.value)
        assert "frame_axis='Z'" in str(e.value)
        raw = read_tiff(p, lazy=lazy, frame_axis="Z")
        np.testing.assert_array_equal(np.asarray(raw.stack), stack)
        assert raw.time_s is None
    with pytest.raises(DatasetError, match="does not give frame times"):
        read_dataset(p, frame_axis="Z", pixel_nm=65.0)
    ds = read_dataset(p, frame_axis="Z", pixel_nm=65.0, frame_interval_s=1.0)
    np.testing.assert_allclose(ds.time_s, np.arange(5.0))


def test_ome_z_stack_delta_t_not_used(tmp_path, stack):
    p = tmp_path / "z.ome.tif"
    tifffile.imwrite(
        p,
        stack,
        ome=True,
        photometric="minisblack",
        metadata={"axes": "ZYX", "Plane": {"DeltaT": [0.0, 1.0, 2.0, 3.0, 4.0]}},
    )
    with pytest.raises(DatasetError, match="Z stack"):
        read_tiff(p)
    assert read_tiff(p, frame_axis="Z").time_s is None


def test_options_only_for_tiff(tmp_path, stack):
    np.save(tmp_path / "s.npy", stack)
    with pytest.raises(DatasetError, match=r"s\.npy: channel= only apply to TIFF"):
        read_stack(tmp_path / "s.npy", channel=0)
    p = tmp_path / "plain.tif"
    tifffile.imwrite(p, stack, photometric="minisblack")
    with pytest.raises(DatasetError, match="has no channel axis"):
        read_tiff(p, channel=1)
    with pytest.raises(DatasetError, match="has no depth axis"):
        read_tiff(p, z=0)
    with pytest.raises(DatasetError, match="frame_axis='T' is not a non-image axis"):
        read_tiff(p, frame_axis="T")


# ---------------------------------------------------------------- compressed TIFF


@pytest.mark.parametrize("compression", ["lzw", "zlib", "zstd"])
def test_compressed_tiff_eager_and_lazy(tmp_path, stack, compression):
    p = tmp_path / f"{compression}.ome.tif"
    tifffile.imwrite(
        p,
        stack,
        compression=compression,
        ome=True,
        photometric="minisblack",
        metadata={"axes": "TYX"},
    )
    with tifffile.TiffFile(p) as tif:
        assert tif.pages[0].compression != 1  # really compressed
    eager = read_tiff(p)
    lazy = read_tiff(p, lazy=True)
    assert isinstance(eager.stack, np.ndarray) and isinstance(lazy.stack, da.Array)
    np.testing.assert_array_equal(eager.stack, stack)
    np.testing.assert_array_equal(lazy.stack.compute(), stack)


def _spoil_page(path, page):
    """Overwrite the first strip of ``page`` with 0xFF bytes (same file size)."""
    with tifffile.TiffFile(path) as tif:
        off, cnt = tif.pages[page].dataoffsets[0], tif.pages[page].databytecounts[0]
    data = bytearray(path.read_bytes())
    data[off : off + cnt] = b"\xff" * cnt
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(("compression", "codec"), [("lzw", "LZW"), ("zlib", "DEFLATE")])
def test_corrupt_compressed_tiff_fails_at_open(tmp_path, compression, codec):
    stack = np.random.default_rng(8).integers(0, 4096, (4, 32, 32), dtype=np.uint16)
    first = tmp_path / "first.tif"
    tifffile.imwrite(first, stack, compression=compression, photometric="minisblack")
    _spoil_page(first, 0)
    for lazy in (True, False):
        with pytest.raises(DatasetError) as e:
            read_tiff(first, lazy=lazy)  # lazy: at open, before any compute
        assert "first.tif" in str(e.value) and codec in str(e.value)
    # a later page: the lazy reader opens, and the compute names the file and the frame
    later = tmp_path / "later.tif"
    tifffile.imwrite(later, stack, compression=compression, photometric="minisblack")
    _spoil_page(later, 2)
    raw = read_tiff(later, lazy=True)
    np.testing.assert_array_equal(raw.stack[:2].compute(), stack[:2])
    with pytest.raises(DatasetError, match=r"later\.tif: cannot decode the data of frame 2"):
        raw.stack.compute()


def test_truncated_compressed_tiff(tmp_path, stack):
    p = tmp_path / "full.tif"
    tifffile.imwrite(p, stack, compression="lzw", photometric="minisblack")
    cut = tmp_path / "cut.tif"
    cut.write_bytes(p.read_bytes()[: p.stat().st_size * 2 // 3])
    with pytest.raises(DatasetError, match=r"cut\.tif.*(truncated|corrupt)"):
        read_tiff(cut, lazy=True)


def test_tiff_folder_bad_frame_named(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for k in range(3):
        tifffile.imwrite(folder / f"f{k}.tif", np.full((16, 16), k, np.uint16), compression="zlib")
    np.testing.assert_array_equal(read_tiff_folder(folder, lazy=True).stack[:, 0, 0], [0, 1, 2])
    _spoil_page(folder / "f0.tif", 0)
    with pytest.raises(DatasetError, match=r"f0\.tif: cannot decode .*DEFLATE"):
        read_tiff_folder(folder, lazy=True)  # at open
    _spoil_page(folder / "f2.tif", 0)
    (folder / "f0.tif").unlink()
    raw = read_tiff_folder(folder, lazy=True)
    with pytest.raises(DatasetError, match=r"f2\.tif: cannot decode"):
        raw.stack.compute()


# ---------------------------------------------------------------- zarr chunks


def test_zarr_unwritten_and_corrupt_chunks(tmp_path, stack):
    p = tmp_path / "s.zarr"
    z = zarr.create_array(store=str(p), shape=stack.shape, chunks=(1, 12, 4), dtype=stack.dtype)
    z[2:] = stack[2:]  # frames 0-1 never written
    with pytest.warns(UserWarning, match="60% stored"):
        raw = read_zarr(p)
    got = raw.stack.compute()
    np.testing.assert_array_equal(got[:2], 0)  # the fill value
    np.testing.assert_array_equal(got[2:], stack[2:])
    chunk = p / "c" / "4" / "0" / "0"
    assert chunk.is_file()
    chunk.write_bytes(b"not zstd data at all")
    raw = read_zarr(p)  # the first chunk is fine: opens
    with pytest.raises(
        DatasetError, match=r"s\.zarr: cannot decode the data of frame 4 \(zstd-compressed\)"
    ):
        raw.stack.compute()
    (p / "c" / "0" / "0").mkdir(parents=True)
    (p / "c" / "0" / "0" / "0").write_bytes(b"garbage")
    with pytest.raises(DatasetError, match=r"s\.zarr: cannot decode the data of frame 0"):
        read_zarr(p)  # at open
    with pytest.raises(DatasetError, match=r"s\.zarr: cannot decode"):
        read_zarr(p, lazy=False)


def test_complex_stack_is_refused(tmp_path):
    path = tmp_path / "fft.tif"
    tifffile.imwrite(path, np.ones((4, 8, 8), np.complex64), photometric="minisblack")
    with pytest.raises(DatasetError, match=r"fft.tif.*complex64.*complex numbers"):
        read_stack(path)


def test_a_tiff_with_several_series_says_which_was_read(tmp_path):
    path = tmp_path / "positions.ome.tif"
    a = np.arange(6 * 8 * 10, dtype=np.uint16).reshape(6, 8, 10)
    with tifffile.TiffWriter(path, ome=True) as w:
        w.write(a, metadata={"axes": "TYX"})
        w.write(a[:3] + 1, metadata={"axes": "TYX"})
    with pytest.warns(UserWarning, match=r"positions.ome.tif: holds 2 image series.*\(6, 8, 10\)"):
        raw = read_stack(path, lazy=False)
    np.testing.assert_array_equal(np.asarray(raw.stack), a)


@pytest.mark.parametrize("movie, said", [
    (np.zeros((8, 10), np.uint16), r"its 'movie' is /movie \(8, 10\) uint16"),
    (np.zeros((1, 4, 8, 10), np.uint16), r"its 'movie' is /movie \(1, 4, 8, 10\)"),
    (None, r"no 'movie' dataset.*3-D numeric datasets: \['/frames/raw \(4, 8, 10\) uint16'\]"),
])
def test_hdf5_not_in_the_instrument_layout_says_what_it_holds(tmp_path, movie, said):
    path = tmp_path / "scan.h5"
    with h5py.File(path, "w") as f:
        if movie is not None:
            f["movie"] = movie
        else:
            f["frames/raw"] = np.zeros((4, 8, 10), np.uint16)
    with pytest.raises(DatasetError, match=said) as e:
        read_stack(path)
    assert "scan.h5" in str(e.value) and "read_hdf5(path, stack=" in str(e.value)


def test_a_zarr_with_unwritten_chunks_says_so(tmp_path):
    z = zarr.open(str(tmp_path / "m.zarr"), mode="w", shape=(10, 4, 4), chunks=(1, 4, 4),
                  dtype="u2")
    z[:7] = 7
    with pytest.warns(UserWarning, match=r"m\.zarr: 3 of its 10 chunks are not stored \(70% st"):
        raw = read_stack(tmp_path / "m.zarr")
    assert raw.stack.shape == (10, 4, 4)


def test_a_zarr_storing_few_of_its_chunks_is_refused_before_any_work(tmp_path):
    # a huge declared movie with only its first and last frames stored: refused at once
    # (never hours of analysis of fill values)
    z = zarr.open(str(tmp_path / "m.zarr"), mode="w", shape=(100000, 4096, 4096),
                  chunks=(1, 4096, 4096), dtype="u2")
    z[0] = 7
    z[-1] = 9
    with pytest.raises(DatasetError, match=r"m\.zarr: only 2 of the 100000 chunks .*"
                                           r"100000 x 4096 x 4096.* \(0\.002%\)"):
        read_stack(tmp_path / "m.zarr")
    z.attrs["fill_value_is_data"] = True  # its writer says the fill value is data: a warning
    with pytest.warns(UserWarning, match=r"99998 of its 100000 chunks are not stored"):
        read_stack(tmp_path / "m.zarr")
