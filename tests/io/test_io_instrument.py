"""Instrument files: the charge-photometry HDF5 layout (no path map) and LabVIEW TDMS movies."""

from __future__ import annotations

import dask.array as da
import h5py
import numpy as np
import pytest
from _io_testutils import snapshot
from nptdms import ChannelObject, GroupObject, RootObject, TdmsWriter

from asymflux.io import DatasetError, read_dataset, read_hdf5, read_stack, read_tdms

N, R, C = 6, 10, 12
EPOCH = 1_700_000_000.0  # 2023-11-14T22:13:20 UTC


@pytest.fixture
def movie():
    return np.random.default_rng(11).integers(0, 65535, (N, R, C), dtype=np.uint16)


def write_layout(path, movie, *, drop=(), timing=None, **attrs):
    """A small file of the instrument layout (the real ones: 1200 x 1920, ~13,000 frames)."""
    t = EPOCH + np.arange(N) * 2.5 if timing is None else timing
    fields = {
        "camera_timing": t,
        "average_intensity": movie.mean(axis=(1, 2)),
        "potentiostat_value": np.linspace(3.6, 4.1, N),
        "potentiostat_block": np.array([0, 0, 1, 1, 1, 2]),
        "stage_position": np.zeros((N, 3)),
    }
    with h5py.File(path, "w") as f:
        f.create_dataset("movie", data=movie, chunks=(2, R, C), compression="gzip")
        for k, v in attrs.items():
            f["movie"].attrs[k] = v
        for name, value in fields.items():
            if name not in drop:
                f[name] = value
    return path


def test_layout_read_without_a_map(tmp_path, movie):
    p = write_layout(tmp_path / "run.h5", movie, pixel_size_um=0.065)
    ds = read_hdf5(p)
    assert isinstance(ds.stack, da.Array)
    assert ds.stack.shape == (N, R, C) and ds.stack.dtype == np.uint16
    assert ds.stack.chunks[0] == (2, 2, 2)  # the HDF5 chunks along time
    np.testing.assert_array_equal(ds.stack.compute(), movie)
    np.testing.assert_allclose(ds.time_s, np.arange(N) * 2.5)  # epoch s -> s after frame 0
    assert ds.metadata["start"] == "2023-11-14T22:13:20+00:00"
    assert ds.pixel_nm == pytest.approx(65.0)
    np.testing.assert_allclose(ds.frame_intensity, movie.mean(axis=(1, 2)))
    assert ds.metadata["average_intensity_dataset"] == "/average_intensity"
    assert list(ds.echem.columns) == ["time_s", "voltage_V", "block"]
    np.testing.assert_allclose(ds.echem["time_s"], ds.time_s)
    np.testing.assert_allclose(ds.echem["voltage_V"], np.linspace(3.6, 4.1, N))
    assert ds.echem["block"].tolist() == [0, 0, 1, 1, 1, 2]
    assert "current_mA" not in ds.echem.columns and "capacity_mAh_g" not in ds.echem.columns
    eager = read_hdf5(p, lazy=False)
    assert isinstance(eager.stack, np.ndarray)
    np.testing.assert_array_equal(eager.stack, movie)
    # read_stack / read_dataset accept the layout too
    raw = read_stack(p)
    assert isinstance(raw.stack, da.Array) and raw.pixel_nm == pytest.approx(65.0)
    np.testing.assert_allclose(raw.time_s, np.arange(N) * 2.5)
    ds2 = read_dataset(p, metadata={"material": "NMC811"})
    assert ds2.metadata["material"] == "NMC811"
    np.testing.assert_allclose(ds2.echem["voltage_V"], ds.echem["voltage_V"])
    with pytest.raises(DatasetError, match=r"run\.h5: frame times come from its camera_timing"):
        read_dataset(p, frame_interval_s=1.0)


def test_layout_units_and_two_column_timing(tmp_path, movie):
    # camera_timing (n_frames, 2): the first column is the time stamp; here in ms since start
    timing = np.stack([np.arange(N) * 500.0 + 20.0, np.arange(N)], axis=1)
    p = write_layout(tmp_path / "ms.h5", movie, timing=timing, pixel_nm=80.0)
    with h5py.File(p, "a") as f:
        f["camera_timing"].attrs["units"] = "ms"
        f["potentiostat_value"].attrs["unit"] = "mV"
        f["potentiostat_value"][...] = np.linspace(3600.0, 4100.0, N)
    ds = read_hdf5(p, lazy=False)  # closes the file (a lazy read keeps it open)
    np.testing.assert_allclose(ds.time_s, 0.02 + np.arange(N) * 0.5)  # not epoch: kept as is
    assert "start" not in ds.metadata
    np.testing.assert_allclose(ds.echem["voltage_V"], np.linspace(3.6, 4.1, N))
    # a current, by its unit: current_mA, and capacity with the active mass
    with h5py.File(p, "a") as f:
        f["potentiostat_value"].attrs["unit"] = "uA"
        f["potentiostat_value"][...] = np.full(N, 36.0)
    ds = read_hdf5(p, active_mass_mg=0.36)
    np.testing.assert_allclose(ds.echem["current_mA"], 0.036)
    expected = 100.0 * (ds.time_s - ds.time_s[0]) / 3600.0  # 100 mA/g from the first frame
    np.testing.assert_allclose(ds.capacity_at_frames(), expected, rtol=1e-9)


def test_layout_missing_fields(tmp_path, movie):
    p = write_layout(tmp_path / "no_t.h5", movie, drop=("camera_timing",), pixel_nm=65.0)
    before = snapshot(tmp_path)
    with pytest.raises(DatasetError) as e:
        read_hdf5(p)
    msg = str(e.value)
    assert "no_t.h5" in msg and "camera_timing" in msg
    assert "read_hdf5(" in msg and "stack='/movie'" in msg and "time_s=" in msg
    assert snapshot(tmp_path) == before
    p = write_layout(tmp_path / "no_px.h5", movie)
    with pytest.raises(DatasetError, match=r"no_px\.h5: no pixel size .*pass pixel_nm="):
        read_hdf5(p)
    assert read_hdf5(p, pixel_nm=50.0).pixel_nm == 50.0
    with pytest.raises(DatasetError, match="pass pixel_nm="):
        read_dataset(p)
    short = write_layout(tmp_path / "short.h5", movie, timing=EPOCH + np.arange(N - 1.0))
    with pytest.raises(DatasetError, match=r"short\.h5:/camera_timing: shape \(5,\).*6 frames"):
        read_hdf5(short, pixel_nm=65.0)
    # not the layout: read_stack keeps its message, read_hdf5 says how to map by hand
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["/camera/frames"] = movie
    with pytest.raises(DatasetError, match=r"other\.h5: HDF5 files need the dataset names"):
        read_stack(other)
    with pytest.raises(DatasetError, match=r"other\.h5: no 3-D dataset 'movie'.*camera/frames"):
        read_hdf5(other)


def test_layout_two_d_potentiostat_is_mapped_by_hand(tmp_path, movie):
    """Unlabelled rows are not guessed; (name, row) in echem= maps them."""
    p = write_layout(tmp_path / "pv2.h5", movie, drop=("potentiostat_value",), pixel_nm=65.0)
    m = 50
    rows = np.stack([np.linspace(0, 15, m), np.linspace(3.6, 4.1, m), np.full(m, 0.02)])
    with h5py.File(p, "a") as f:
        f["potentiostat_value"] = rows  # (3, m): e.g. time, voltage, current
    with pytest.raises(DatasetError) as e:
        read_hdf5(p)
    msg = str(e.value)
    assert "pv2.h5:/potentiostat_value: shape (3, 50)" in msg and "by hand" in msg
    assert "echem={'time_s': ('/potentiostat_value', 0)" in msg
    ds = read_hdf5(
        p,
        stack="/movie",
        time_s="/camera_timing",
        pixel_nm=65.0,
        echem={
            "time_s": ("/potentiostat_value", 0),
            "voltage_V": ("/potentiostat_value", 1),
            "current_mA": ("/potentiostat_value", 2),
        },
    )
    np.testing.assert_allclose(ds.echem["voltage_V"], rows[1])
    assert len(ds.echem) == m
    with pytest.raises(DatasetError, match=r"has 3 traces \(0 to 2\)"):
        read_hdf5(
            p,
            stack="/movie",
            frame_interval_s=1.0,
            pixel_nm=65.0,
            echem={"time_s": ("/potentiostat_value", 3)},
        )


def test_layout_in_a_group_and_corrupt_chunk(tmp_path, movie):
    p = tmp_path / "g.h5"
    with h5py.File(p, "w") as f:
        g = f.create_group("run1")
        g.create_dataset("movie", data=movie, chunks=(1, R, C))
        g["camera_timing"] = np.arange(N) * 1.0
        g.attrs["pixel_nm"] = 100.0
    ds = read_hdf5(p)
    assert ds.pixel_nm == 100.0 and ds.echem is None
    assert getattr(ds, "frame_intensity", "absent") is None
    np.testing.assert_array_equal(ds.stack[3].compute(), movie[3])


# ---------------------------------------------------------------- TDMS


def write_tdms(path, objects):
    with TdmsWriter(str(path)) as w:
        w.write_segment(objects)
    return path


@pytest.mark.parametrize(
    "props",
    [
        {"width": C, "height": R},
        {"ImageWidth": C, "ImageHeight": R},
        {"Rows": R, "Cols": C},
        {"dimensions": f"{R}x{C}"},
    ],
)
def test_tdms_flat_channel(tmp_path, movie, props):
    p = write_tdms(
        tmp_path / "m.tdms",
        [
            RootObject(),
            GroupObject("camera"),
            ChannelObject(
                "camera", "pixels", movie.ravel(), properties={**props, "wf_increment": 1e-6}
            ),
        ],
    )
    for lazy in (True, False):
        raw = read_tdms(p, lazy=lazy)
        assert isinstance(raw.stack, da.Array) is lazy
        assert raw.stack.shape == (N, R, C) and raw.stack.dtype == np.uint16
        np.testing.assert_array_equal(np.asarray(raw.stack), movie)
        assert raw.time_s is None and raw.pixel_nm is None  # wf_increment is per pixel
    np.testing.assert_array_equal(read_stack(p).stack[4].compute(), movie[4])


def test_tdms_needs_a_shape(tmp_path, movie):
    p = write_tdms(
        tmp_path / "bare.tdms",
        [GroupObject("g"), ChannelObject("g", "px", movie.ravel())],
    )
    before = snapshot(tmp_path)
    with pytest.raises(DatasetError) as e:
        read_tdms(p)
    msg = str(e.value)
    assert "bare.tdms" in msg and "'px'" in msg and "pass shape=(rows, cols)" in msg
    assert snapshot(tmp_path) == before
    np.testing.assert_array_equal(read_tdms(p, shape=(R, C)).stack.compute(), movie)
    with pytest.raises(DatasetError, match=r"bare\.tdms: .* not a whole number of 7 x 7 frames"):
        read_tdms(p, shape=(7, 7))
    with pytest.raises(DatasetError, match=r"no channel 'nope' in group 'g'"):
        read_tdms(p, channel="nope", shape=(R, C))


def test_tdms_one_channel_per_frame_with_start_times(tmp_path, movie):
    t0 = np.datetime64("2024-05-01T10:00:00", "us")
    objects = [RootObject(properties={"pixel_size_um": 0.1}), GroupObject("frames")]
    for k in range(N):
        start = t0 + np.timedelta64(int(k * 1.5e6), "us")
        objects.append(
            ChannelObject(
                "frames",
                f"frame{k:03d}",
                movie[k].ravel(),
                properties={"height": R, "width": C, "wf_start_time": start},
            )
        )
    p = write_tdms(tmp_path / "per_frame.tdms", objects)
    for lazy in (True, False):
        raw = read_tdms(p, lazy=lazy)
        np.testing.assert_array_equal(np.asarray(raw.stack), movie)
        np.testing.assert_allclose(raw.time_s, np.arange(N) * 1.5)
        assert raw.pixel_nm == pytest.approx(100.0)
    ds = read_dataset(p)
    np.testing.assert_allclose(ds.time_s, np.arange(N) * 1.5)


def test_tdms_ambiguous_and_bad(tmp_path, movie):
    p = write_tdms(
        tmp_path / "two.tdms",
        [
            GroupObject("cam"),
            ChannelObject("cam", "pixels", movie.ravel(), properties={"Rows": R, "Cols": C}),
            ChannelObject("cam", "time", np.arange(N, dtype=np.float64)),
        ],
    )
    with pytest.raises(DatasetError, match=r"two\.tdms: group 'cam' has channels of different"):
        read_tdms(p)
    np.testing.assert_array_equal(read_tdms(p, channel="pixels").stack.compute(), movie)
    np.testing.assert_array_equal(read_stack(p, channel="pixels").stack.compute(), movie)
    junk = tmp_path / "junk.tdms"
    junk.write_bytes(b"TDSm" + b"\0" * 40)
    with pytest.raises(DatasetError, match=r"junk\.tdms: not a readable TDMS file"):
        read_tdms(junk)
