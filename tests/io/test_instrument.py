"""Instrument files: the charge-photometry HDF5 layout (no path map) and LabVIEW TDMS movies."""

from __future__ import annotations

import dask.array as da
import h5py
import numpy as np
import pytest
from nptdms import ChannelObject, GroupObject, RootObject, TdmsWriter

from asymflux.io import DatasetError, read_dataset, read_hdf5, read_stack, read_tdms
from asymflux.io.echem import EchemWarning
from tests._helpers.io_utils import snapshot

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


def with_pstat(path, movie, value, *, timing=None, drop=("potentiostat_block",), **attrs):
    """The layout with a 2-D ``potentiostat_value`` (and its attributes)."""
    timing = np.arange(N) * 2.5 if timing is None else timing  # relative, s
    p = write_layout(path, movie, drop=("potentiostat_value", *drop), timing=timing, pixel_nm=65.0)
    with h5py.File(p, "a") as f:
        f["potentiostat_value"] = value
        for k, v in attrs.items():
            f["potentiostat_value"].attrs[k] = v
    return p


M = 41  # potentiostat samples: more often than the N frames
T_P = np.linspace(-1.0, 14.0, M)  # s; the frames are at 0 .. 12.5 s
V_P = np.linspace(3.6, 4.1, M)
I_P = np.where(T_P < 7.0, 0.5, -0.25)  # mA


def trapezoid_mAh(t, i):
    """The charge the reader integrates (a step edge takes the later current)."""
    edge = np.sign(i[1:]) != np.sign(i[:-1])
    q = np.where(edge, i[1:], 0.5 * (i[1:] + i[:-1])) * np.diff(t) / 3600.0
    return np.concatenate([[0.0], np.cumsum(q)])


@pytest.mark.parametrize("orient", ["rows", "columns"])
@pytest.mark.parametrize("clock", ["absolute", "relative"])
def test_layout_three_traces_time_voltage_current(tmp_path, movie, orient, clock):
    """(3, M) or (M, 3): time, voltage, current (the data release); M != n_frames."""
    t0 = EPOCH if clock == "absolute" else 0.0
    rows = np.stack([T_P + t0, V_P, I_P])
    p = with_pstat(
        tmp_path / "pv3.h5",
        movie,
        rows if orient == "rows" else rows.T,
        timing=t0 + np.arange(N) * 2.5,
    )
    ds = read_hdf5(p, active_mass_mg=0.5)
    e = ds.echem
    assert len(e) == M and list(e.columns[:4]) == [
        "time_s",
        "voltage_V",
        "current_mA",
        "charge_mAh",
    ]
    np.testing.assert_allclose(ds.time_s, np.arange(N) * 2.5)
    np.testing.assert_allclose(e["time_s"], T_P)  # on the camera clock
    np.testing.assert_allclose(e["voltage_V"], V_P)
    np.testing.assert_allclose(e["current_mA"], I_P)  # mA, assumed
    np.testing.assert_allclose(e["charge_mAh"], trapezoid_mAh(T_P, I_P), atol=1e-12)
    np.testing.assert_allclose(e["capacity_mAh_g"], e["charge_mAh"] / 0.5e-3)
    said = e.attrs["assumed"]
    assert "/potentiostat_value" in said and "0 time s (assumed)" in said
    assert "1 voltage V (assumed)" in said and "2 current mA (assumed)" in said
    assert e.attrs["warnings"] == []


def test_layout_four_traces_voltage_current_charge_time(tmp_path, movie):
    """(4, M): voltage, current, charge, time (the NMC analyses); a charge counter that
    restarts is made continuous; block per sample is read."""
    truth = trapezoid_mAh(T_P, I_P)
    counter = truth.copy()
    counter[25:] = truth[25:] - truth[24]  # restarts from zero at sample 25
    block = (T_P > 7.0).astype(np.int64)
    p = with_pstat(tmp_path / "pv4.h5", movie, np.stack([V_P, I_P, counter, T_P]), drop=())
    with h5py.File(p, "a") as f:
        del f["potentiostat_block"]
        f["potentiostat_block"] = block  # one per potentiostat sample
    ds = read_hdf5(p)
    e = ds.echem
    np.testing.assert_allclose(e["time_s"], T_P)
    np.testing.assert_allclose(e["voltage_V"], V_P)
    np.testing.assert_allclose(e["current_mA"], I_P)
    np.testing.assert_allclose(e["charge_mAh"], truth, atol=1e-12)  # from the file's charge
    assert e["block"].tolist() == block.tolist()
    assert "trace 2" in e.attrs["charge_from"] and "1 restart(s)" in e.attrs["charge_from"]
    assert "2 charge mAh (assumed)" in e.attrs["assumed"] and "3 time s" in e.attrs["assumed"]
    # units from a list, one per trace: A and C become mA and mAh
    p = with_pstat(
        tmp_path / "pv4u.h5",
        movie,
        np.stack([V_P * 1e3, I_P * 1e-3, truth * 3.6, T_P]).T,  # (M, 4)
        row_units=["mV", "A", "C", "s"],
    )
    e = read_hdf5(p).echem
    np.testing.assert_allclose(e["voltage_V"], V_P)
    np.testing.assert_allclose(e["current_mA"], I_P)
    np.testing.assert_allclose(e["charge_mAh"], truth, atol=1e-12)
    assert "1 current A (attribute 'row_units')" in e.attrs["assumed"]
    assert "(assumed)" not in e.attrs["assumed"]
    # a charge trace that disagrees with the current (wrong unit): read, with a warning
    p = with_pstat(tmp_path / "pv4c.h5", movie, np.stack([V_P, I_P, truth * 3.6, T_P]))
    with pytest.warns(EchemWarning, match="charge trace passes 3.6 times"):
        e = read_hdf5(p).echem
    assert any("check the units" in w for w in e.attrs["warnings"])


def test_layout_current_unit_attribute(tmp_path, movie):
    p = with_pstat(
        tmp_path / "amps.h5",
        movie,
        np.stack([T_P + EPOCH, V_P, I_P * 1e-3]),
        timing=EPOCH + np.arange(N) * 2.5,
        units="A",
    )
    e = read_hdf5(p).echem
    np.testing.assert_allclose(e["current_mA"], I_P)
    assert "2 current A (attribute 'units')" in e.attrs["assumed"]
    with h5py.File(p, "a") as f:
        f["potentiostat_value"].attrs["units"] = "uA"
        f["potentiostat_value"][2] = I_P * 1e3
    np.testing.assert_allclose(read_hdf5(p).echem["current_mA"], I_P)
    with h5py.File(p, "a") as f:
        f["potentiostat_value"].attrs["units"] = "V"  # which trace? not guessed
    with pytest.raises(DatasetError, match=r"attribute 'units' = \['V'\] gives neither"):
        read_hdf5(p)
    with h5py.File(p, "a") as f:
        f["potentiostat_value"].attrs["units"] = "V, V, mA"  # trace 0 is no time
    with pytest.raises(DatasetError, match=r"trace 0, assumed the time, has unit 'V'"):
        read_hdf5(p)


def test_layout_two_d_potentiostat_refused_when_checks_fail(tmp_path, movie):
    """A layout that fails the checks is refused with the recipe; (name, k) maps it."""
    recipe = (
        "echem={'time_s': ('/potentiostat_value', 0), 'voltage_V': ('/potentiostat_value', 1), "
        "'current_mA': ('/potentiostat_value', 2)}"
    )
    # rows are really (voltage, current, time): the supposed time goes down on discharge
    v = np.concatenate([np.linspace(3.6, 4.1, 20), np.linspace(4.1, 3.7, M - 20)])
    rows = np.stack([v, I_P, T_P])
    p = with_pstat(tmp_path / "pv2.h5", movie, rows, timing=np.arange(N) * 2.5)
    before = snapshot(tmp_path)
    with pytest.raises(DatasetError) as e:
        read_hdf5(p)
    msg = str(e.value)
    assert "pv2.h5:/potentiostat_value: shape (3, 41)" in msg
    assert "trace 0, assumed the time, goes down at sample 21 (4.1 -> 4.08)" in msg
    assert "by hand" in msg and recipe in msg
    assert snapshot(tmp_path) == before
    ds = read_hdf5(
        p,
        stack="/movie",
        time_s="/camera_timing",
        pixel_nm=65.0,
        echem={
            "time_s": ("/potentiostat_value", 2),
            "voltage_V": ("/potentiostat_value", 0),
            "current_mA": ("/potentiostat_value", 1),
        },
    )
    np.testing.assert_allclose(ds.echem["voltage_V"], v)
    assert len(ds.echem) == M
    with pytest.raises(DatasetError, match=r"has 3 traces \(0 to 2\)"):
        read_hdf5(
            p,
            stack="/movie",
            frame_interval_s=1.0,
            pixel_nm=65.0,
            echem={"time_s": ("/potentiostat_value", 3)},
        )
    # a "voltage" of 100s: not volts
    p = with_pstat(
        tmp_path / "pvv.h5", movie, np.stack([T_P, I_P * 300, V_P]), timing=np.arange(N) * 2.5
    )
    with pytest.raises(
        DatasetError, match=r"trace 1, assumed the voltage \(V\), has values -75 to 150"
    ):
        read_hdf5(p)
    # 5 traces, or a square one: no assumption
    p = with_pstat(tmp_path / "pv5.h5", movie, np.zeros((5, M)))
    with pytest.raises(
        DatasetError, match=r"pv5\.h5:/potentiostat_value: shape \(5, 41\): .*by hand"
    ):
        read_hdf5(p)
    # an absolute potentiostat clock with relative frame times (or the reverse): refused
    p = with_pstat(
        tmp_path / "mix.h5", movie, np.stack([T_P + EPOCH, V_P, I_P]), timing=np.arange(N) * 2.5
    )
    with pytest.raises(DatasetError, match=r"is absolute \(Unix time\).*camera_timing is relative"):
        read_hdf5(p)
    p = with_pstat(
        tmp_path / "mix2.h5", movie, np.stack([T_P, V_P, I_P]), timing=EPOCH + np.arange(N) * 2.5
    )
    with pytest.raises(DatasetError, match=r"is relative .*camera_timing is absolute"):
        read_hdf5(p)


def test_layout_two_d_potentiostat_padding_and_clock_warnings(tmp_path, movie):
    rows = np.stack([T_P, V_P, I_P])
    padded = np.concatenate([rows, np.full((3, 5), np.nan)], axis=1)  # NaN padding at the end
    p = with_pstat(tmp_path / "pad.h5", movie, padded, timing=np.arange(N) * 2.5)
    with pytest.warns(EchemWarning, match="last 5 sample"):
        e = read_hdf5(p).echem
    assert len(e) == M
    np.testing.assert_allclose(e["voltage_V"], V_P)
    # relative clocks that never meet: kept, with a warning
    p = with_pstat(
        tmp_path / "apart.h5", movie, np.stack([T_P + 1000.0, V_P, I_P]), timing=np.arange(N) * 2.5
    )
    with pytest.warns(EchemWarning, match="do not overlap the frame times"):
        e = read_hdf5(p).echem
    assert len(e) == M and any("do not overlap" in w for w in e.attrs["warnings"])
    # a per-frame potentiostat_block cannot join per-sample rows: said, not read
    p = with_pstat(tmp_path / "blk.h5", movie, rows, timing=np.arange(N) * 2.5, drop=())
    with pytest.warns(EchemWarning, match=r"potentiostat_block of shape \(6,\) .*not read"):
        e = read_hdf5(p).echem
    assert "block" not in e.columns


def test_layout_two_d_camera_timing(tmp_path, movie):
    """camera_timing (2, n_frames): the strictly increasing trace that is not a counter."""
    stamps = EPOCH + np.arange(N) * 0.1  # 0.1 s frames: a counter spans more
    p = write_layout(
        tmp_path / "ct.h5", movie, timing=np.stack([np.zeros(N), stamps]), pixel_nm=65.0
    )
    ds = read_hdf5(p)
    np.testing.assert_allclose(ds.time_s, np.arange(N) * 0.1, atol=1e-6)
    assert ds.metadata["start"] == "2023-11-14T22:13:20+00:00"
    assert ds.metadata["camera_timing_trace"] == ["/camera_timing", 1]
    p = write_layout(
        tmp_path / "ctc.h5",
        movie,
        timing=np.stack([np.arange(N), np.arange(N) * 0.1 + 3.0]),
        pixel_nm=65.0,
    )
    np.testing.assert_allclose(read_hdf5(p).time_s, 3.0 + np.arange(N) * 0.1)
    bad = np.stack([np.zeros(N), stamps[::-1]])
    p = write_layout(tmp_path / "ctbad.h5", movie, timing=bad, pixel_nm=65.0)
    with pytest.raises(DatasetError) as e:
        read_hdf5(p)
    msg = str(e.value)
    assert "ctbad.h5:/camera_timing: shape (2, 6): none of its traces strictly increases" in msg
    assert "time_s=('/camera_timing', k)" in msg


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


def test_time_s_as_a_trace_of_a_2d_dataset(tmp_path):
    """The recipe the refusals print, time_s=('/camera_timing', k), works."""
    import h5py

    from asymflux.io import read_hdf5

    p = tmp_path / "mapped.h5"
    with h5py.File(p, "w") as f:
        f["frames"] = np.zeros((4, 3, 5), np.uint16) + 7
        f["timing"] = np.array([[9, 3, 5, 1], [0.0, 0.5, 1.0, 1.5]])
    ds = read_hdf5(p, stack="/frames", time_s=("/timing", 1), pixel_nm=50.0, lazy=False)
    np.testing.assert_allclose(ds.time_s, [0.0, 0.5, 1.0, 1.5])


@pytest.mark.parametrize("chunk_frames", [1, 2, 3, None])  # 3: the last chunk half written
def test_an_acquisition_that_stopped_reads_only_the_written_frames(tmp_path, movie, chunk_frames):
    """The acquisition software declares the movie's full length; if it stops early the
    frames never written read as the fill value (zeros) and must not be taken as frames."""
    declared, written = 10, 4
    path = tmp_path / "stopped.h5"
    t = np.r_[EPOCH + np.arange(written) * 2.5, np.zeros(declared - written)]
    with h5py.File(path, "w") as f:
        d = f.create_dataset("movie", shape=(declared, R, C), dtype=np.uint16,
                             chunks=None if chunk_frames is None else (chunk_frames, R, C))
        d[:written] = movie[:written]
        f["camera_timing"] = t
        f["average_intensity"] = np.r_[movie[:written].mean(axis=(1, 2)),
                                       np.zeros(declared - written)]
        f["potentiostat_value"] = np.r_[np.linspace(3.6, 3.7, written),
                                        np.zeros(declared - written)]
        f["movie"].attrs["pixel_size_um"] = 0.065
    with pytest.warns(UserWarning, match=rf"declares {declared} frames but only the first "
                                         rf"{written} were written"):
        ds = read_hdf5(path)
    assert ds.stack.shape == (written, R, C)
    np.testing.assert_array_equal(np.asarray(ds.stack), movie[:written])
    np.testing.assert_allclose(ds.time_s, np.arange(written) * 2.5)
    np.testing.assert_allclose(ds.frame_intensity, movie[:written].mean(axis=(1, 2)))
    np.testing.assert_allclose(ds.echem["voltage_V"], np.linspace(3.6, 3.7, written))


def test_a_declared_movie_with_no_frame_written_is_refused(tmp_path):
    path = tmp_path / "empty.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("movie", shape=(10, R, C), dtype=np.uint16, chunks=(1, R, C))
        f["camera_timing"] = np.zeros(10)
    with pytest.raises(DatasetError, match=r"empty\.h5:/movie: declares 10 frames but none "
                                           r"was written"):
        read_hdf5(path, pixel_nm=65)


def test_a_chunk_never_written_inside_the_movie_is_reported(tmp_path, movie):
    path = tmp_path / "hole.h5"
    with h5py.File(path, "w") as f:
        d = f.create_dataset("movie", shape=(N, R, C), dtype=np.uint16, chunks=(2, R, C))
        d[:2] = movie[:2]
        d[4:] = movie[4:]
        f["camera_timing"] = EPOCH + np.arange(N) * 2.5
    with pytest.warns(UserWarning, match=r"hole\.h5:/movie: the chunks starting at frame\(s\) "
                                         r"\[2\] were never written"):
        ds = read_hdf5(path, pixel_nm=65)
    assert ds.stack.shape[0] == N
