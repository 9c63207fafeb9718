"""Live mode, without subprocesses: partial frames and rows are never read, and the live
measurement of each frame is the batch one."""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pytest

from asymflux import live

FRAME = (6, 5)


def _frames(n):
    rng = np.random.default_rng(0)
    return rng.integers(100, 4000, size=(n, *FRAME), dtype=np.uint16)


@pytest.mark.parametrize("name", ["movie.h5", "movie.zarr", "frames"])
def test_a_half_written_frame_is_never_read(tmp_path, name):
    frames = _frames(3)
    w = live.LiveWriter(tmp_path / name, frame_shape=FRAME, pixel_nm=65, frame_interval_s=2.0)
    try:
        src = live.open_movie(tmp_path / name, frame_interval_s=None if name != "frames" else 2.0)
        w.write_frame(frames[0], time_s=0.0)
        w.write_frame(frames[1], time_s=2.0, complete=False)  # pixels in, not yet marked
        if name == "frames":  # a TIFF counts once its size held across two polls
            assert src.poll() == 0
        assert src.poll() == 1
        assert src.n_seen == (2 if name != "frames" else 1)  # a TIFF has a hidden name
        np.testing.assert_array_equal(src.read(0, 1)[0], frames[0])
        np.testing.assert_array_equal(src.time_s(1), [0.0])
        w.mark_complete()
        if name == "frames":
            assert src.poll() == 1
        assert src.poll() == 2
        np.testing.assert_array_equal(src.read(1, 2)[0], frames[1])
        np.testing.assert_array_equal(src.time_s(2), [0.0, 2.0])
        assert src.pixel_nm == (65 if name != "frames" else None)
        assert not src.finished
        w.finish()
        assert src.finished and src.poll() == 2
    finally:
        w.close()
        src.close()


def test_hdf5_grown_but_not_flushed_frame_is_withheld(tmp_path):
    """A writer with no frame counter: the shape has grown, the frame may be half written,
    so the last frame waits for the next one or for the finished marker."""
    path = tmp_path / "foreign.h5"
    f = h5py.File(path, "w", libver="latest")
    movie = f.create_dataset("movie", shape=(0, *FRAME), maxshape=(None, *FRAME),
                             chunks=(1, *FRAME), dtype=np.uint16)
    timing = f.create_dataset("camera_timing", shape=(0,), maxshape=(None,), dtype=float)
    movie.attrs["pixel_nm"] = 65.0
    f.swmr_mode = True
    src = live.open_movie(path)
    try:
        frames = _frames(2)
        for k in range(2):
            movie.resize(k + 1, axis=0)
            timing.resize(k + 1, axis=0)
            timing[k] = 3.0 * k
            timing.flush()
            movie.flush()  # the shape is visible; frame k's pixels are not written yet
            assert src.poll() == max(0, k - 1)  # frame k is never read, nor counted present
            movie[k] = frames[k]
            movie.flush()
            assert src.poll() == k  # frame k stored: frame k - 1 is complete
        live.finished_marker(path).write_text("2\n")
        assert src.poll() == 2
        np.testing.assert_array_equal(src.read(0, 2), frames)
        np.testing.assert_array_equal(src.time_s(2), [0.0, 3.0])
    finally:
        src.close()
        f.close()


def test_a_half_written_cycler_row_is_never_read(tmp_path):
    csv = tmp_path / "cycler.csv"
    csv.write_text("time_s,voltage_V,current_mA,charge_mAh\n0,3.5,0.05,0\n15,3.55,0.05,0.0002\n")
    tail = live.CyclerTail(csv, active_mass_mg=0.5)
    assert tail.poll()
    assert len(tail.table) == 2 and tail.last_time_s == 15
    with open(csv, "a") as fh:
        fh.write("30,3.6,0.0")  # half of a row: '0.0' could be '0.05' once written
    assert not tail.poll()
    assert len(tail.table) == 2
    np.testing.assert_allclose(tail.capacity_at([7.5, 15.0, 20.0]), [0.2, 0.4, np.nan])
    with open(csv, "a") as fh:
        fh.write("5,0.0004\n")
    assert tail.poll()
    assert tail.table["current_mA"].tolist() == [0.05, 0.05, 0.05]
    assert tail.last_time_s == 30
    tail.close()


def test_the_writer_splits_rows(tmp_path):
    w = live.LiveWriter(tmp_path / "m.zarr", frame_shape=FRAME, pixel_nm=65,
                        frame_interval_s=1.0, cycler=tmp_path / "c.csv")
    w.write_row([0, 3.5, 0.05, 0])
    w.write_partial_row("15.0,3.5")
    tail = live.CyclerTail(tmp_path / "c.csv")
    assert tail.poll() and len(tail.table) == 1
    w.close()


@pytest.fixture(scope="module")
def demo_frames():
    from asymflux import datasets

    ds = datasets.load("fresh", lazy=False)
    return ds


@pytest.mark.parametrize("name", ["movie.h5", "movie.zarr", "frames"])
def test_each_live_frame_equals_the_batch_analysis(tmp_path, demo_frames, name):
    """Frames measured as they land are, to the number, the rows of `asymflux analyze` of
    the finished files; a frame's capacity appears once the cycler has passed it."""
    ds = demo_frames
    n = 8
    stack, t = np.asarray(ds.stack[:n]), np.asarray(ds.time_s[:n])
    e = ds.echem[ds.echem["time_s"] <= t[-1]]
    rows = np.column_stack([e["time_s"], e["voltage_V"], e["current_mA"],
                            np.round(e["capacity_mAh_g"] * 0.5 / 1000, 12)])
    movie, csv = tmp_path / name, tmp_path / "cycler.csv"
    interval = float(t[1] - t[0])
    w = live.LiveWriter(movie, frame_shape=stack.shape[1:], pixel_nm=ds.pixel_nm, cycler=csv,
                        frame_interval_s=interval)
    tiff = {"pixel_nm": ds.pixel_nm, "frame_interval_s": interval} if name == "frames" else {}
    la = live.LiveAnalysis(movie, echem=csv, active_mass_mg=0.5, **tiff)
    seen = []
    try:
        r = 0
        for k in range(n):
            w.write_frame(stack[k], time_s=t[k])  # the frame before the cycler rows
            if name == "frames":  # the last TIFF counts once its size held for two polls
                assert not la.update().new_frames
            up = la.update()
            assert up.new_frames == [k] and up.detected == (k == 0)
            ts = la.timeseries
            assert ts.loc[ts["frame"] == k, "capacity_mAh_g"].isna().all()  # not yet known
            while r < len(rows) and rows[r, 0] <= t[k]:
                w.write_row(rows[r])
                r += 1
            w.write_partial_row("999,")
            up = la.update()
            assert k in up.capacity_frames and not up.new_frames
            seen.append(la.timeseries)
            w._csv.truncate(w._csv.tell() - 4)  # take the half row back
            w._csv.seek(0, 2)
        w.finish()
        final = la.finish()
    finally:
        w.close()
        la.close()
    assert la.finished
    ts = final.timeseries
    assert set(ts["particle_id"]) == set(la.timeseries["particle_id"])
    assert all(v == 0.0 for v in final.max_abs_difference.values()), final.max_abs_difference
    key = ["particle_id", "frame"]
    for k, part in enumerate(seen):  # intermediate tables: the batch rows of their frames
        batch = ts[ts["frame"] <= k].reset_index(drop=True)
        pd.testing.assert_frame_equal(part.reset_index(drop=True)[batch.columns],
                                      batch.sort_values(key, ignore_index=True),
                                      check_exact=True)
    pd.testing.assert_frame_equal(la.particles, final.particles[la.particles.columns],
                                  check_exact=True)


def test_live_analysis_refuses_a_missing_source(tmp_path):
    with pytest.raises(ValueError, match="nope.h5: no such file or folder"):
        live.LiveAnalysis(tmp_path / "nope.h5")
    with pytest.raises(ValueError, match=r"thing\.txt: cannot follow"):
        (tmp_path / "thing.txt").write_text("x")
        live.LiveAnalysis(tmp_path / "thing.txt")


def test_watch_errors_are_one_line_with_status_2(tmp_path, capsys):
    from asymflux.cli import main

    assert main(["watch", str(tmp_path / "missing.h5"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "missing.h5: no such file or folder" in err
    (tmp_path / "empty").mkdir()
    assert main(["watch", str(tmp_path / "empty"), "--out", str(tmp_path / "o"),
                 "--frame-interval-s", "1", "--pixel-nm", "65", "--poll-s", "0.05",
                 "--idle-timeout-s", "0.3", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no frame arrived within 0.3 s (--idle-timeout-s)" in err
    (tmp_path / "junk.h5").write_bytes(b"not HDF5 at all")
    assert main(["watch", str(tmp_path / "junk.h5"), "--out", str(tmp_path / "o"),
                 "--poll-s", "0.05", "--idle-timeout-s", "0.3", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "junk.h5: no frame arrived within 0.3 s" in err
    assert "the movie cannot be read" in err
    assert main(["watch", str(tmp_path / "empty"), "--poll-s", "0"]) == 2
    assert "--poll-s" in capsys.readouterr().err
    assert main(["demo-live", str(tmp_path / "d"), "--format", "h5", "--frames", "1"]) == 2
    assert "--frames" in capsys.readouterr().err
    assert main(["demo-live", str(tmp_path / "d"), "--dataset", "nosuch"]) == 2
    assert "unknown demo dataset 'nosuch'" in capsys.readouterr().err


def test_a_growing_mpr_is_read_again_when_complete(tmp_path):
    """An EC-Lab .mpr caught mid-write does not parse: kept as an error, tried again."""
    from pathlib import Path

    src = (Path(__file__).parents[2] / ".." / "shared" / "data" / "echem"
           / "250116_kigr_gen6_01_02_GCPL_CD8.mpr").resolve()
    if not src.is_file():
        pytest.skip(f"real cycler files not present at {src.parent}")
    data = src.read_bytes()
    path = tmp_path / "run.mpr"
    path.write_bytes(data[: len(data) // 2])
    tail = live.CyclerTail(path, active_mass_mg=1.0)
    try:
        assert not tail.poll()
        assert tail.table is None and "run.mpr" in tail.error
        path.write_bytes(data)
        assert tail.poll()
        assert tail.error is None and len(tail.table) > 100
        assert np.isfinite(tail.last_time_s)
    finally:
        tail.close()
