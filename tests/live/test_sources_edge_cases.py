"""Growing sources at their edges: pre-declared shapes, TIFF frames written in place, junk
files, stale finished markers, slow movies, read errors, and the cost of the output."""

from __future__ import annotations

import errno
import json
import os

import h5py
import numpy as np
import pandas as pd
import pytest

from asymflux import live

FRAME = (6, 5)
DECLARED = 10**6  # frames a writer declares up front; far more than it writes


def _frames(n):
    rng = np.random.default_rng(1)
    return rng.integers(100, 4000, size=(n, *FRAME), dtype=np.uint16)


def _old(path, seconds=1000):
    """Date ``path`` back, as a file left from an earlier run."""
    t = os.stat(path).st_mtime - seconds
    os.utime(path, (t, t))


# ----------------------------------------------------------------- 1: declared shapes


def test_hdf5_frames_of_a_declared_shape_count_only_once_written(tmp_path):
    path = tmp_path / "declared.h5"
    frames = _frames(3)
    with h5py.File(path, "w") as f:  # no counter, the whole movie's shape declared
        movie = f.create_dataset("movie", shape=(DECLARED, *FRAME), chunks=(1, *FRAME),
                                 dtype=np.uint16)
        movie.attrs["pixel_nm"] = 65.0
        f.create_dataset("camera_timing", shape=(DECLARED,), chunks=(1024,), dtype=float)
        f["camera_timing"][:3] = [0.0, 2.0, 4.0]
        movie[:3] = frames
    src = live.open_movie(path)
    try:
        assert src.poll() == 2  # the last written frame waits; the declared ones never count
        assert src.n_seen == 3
        np.testing.assert_array_equal(src.time_s(2), [0.0, 2.0])
        live.finished_marker(path).write_text("3\n")
        assert src.poll() == 3
        np.testing.assert_array_equal(src.read(0, 3), frames)
    finally:
        src.close()


def test_zarr_frames_of_a_declared_shape_count_only_once_written(tmp_path):
    import zarr

    path = tmp_path / "declared.zarr"
    frames = _frames(4)
    arr = zarr.create_array(store=str(path), shape=(DECLARED, *FRAME), chunks=(1, *FRAME),
                            dtype="u2", attributes={"pixel_nm": 65.0, "frame_interval_s": 2.0})
    arr[:2] = frames[:2]
    src = live.open_movie(path)
    try:
        assert src.poll() == 1 and src.n_seen == 2
        arr[2:4] = frames[2:4]
        assert src.poll() == 3 and src.n_seen == 4
        live.finished_marker(path).write_text("4\n")
        assert src.poll() == 4
        np.testing.assert_array_equal(src.read(0, 4), frames)
    finally:
        src.close()


# ----------------------------------------------------------------- 5: TIFF in place


def _tiff_bytes(frame):
    import io

    import tifffile

    buf = io.BytesIO()
    tifffile.imwrite(buf, frame)
    return buf.getvalue()


def test_a_tiff_frame_written_in_place_waits_until_complete(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    frames = _frames(2)
    src = live.open_movie(folder, frame_interval_s=1.0)
    try:
        (folder / "frame_00000.tif").write_bytes(_tiff_bytes(frames[0]))
        assert src.poll() == 0  # seen once: it may still grow
        assert src.poll() == 1  # the same size two polls running, and it reads
        whole = _tiff_bytes(frames[1])
        (folder / "frame_00001.tif").write_bytes(whole[: len(whole) // 2])  # half written
        assert src.poll() == 1
        assert src.poll() == 1  # stable, but not readable yet: a slow writer
        (folder / "frame_00001.tif").write_bytes(whole)
        assert src.poll() == 1  # it grew
        assert src.poll() == 2
        np.testing.assert_array_equal(src.read(0, 2), frames)
    finally:
        src.close()


def test_a_junk_tiff_is_named(tmp_path):
    from asymflux.live._sources import FrameError

    folder = tmp_path / "frames"
    folder.mkdir()
    frames = _frames(2)
    (folder / "frame_00000.tif").write_bytes(_tiff_bytes(frames[0]))
    (folder / "frame_00001.tif").write_bytes(b"this is no TIFF" * 10)
    src = live.open_movie(folder, frame_interval_s=1.0)
    try:
        assert src.poll() == 1  # frame 0: frame 1 exists after it
        assert src.poll() == 1  # frame 1: the last file; it might still be being written
        src.finish()  # the writer is gone: the junk file is an error naming it
        with pytest.raises(FrameError, match=r"frame_00001\.tif: not a readable TIFF frame"):
            src.poll()
    finally:
        src.close()
    (folder / "frame_00002.tif").write_bytes(_tiff_bytes(frames[1]))
    src = live.open_movie(folder, frame_interval_s=1.0)
    try:  # a later frame exists: frame 1 is junk, not a frame being written
        with pytest.raises(FrameError, match=r"frame_00001\.tif"):
            src.poll()
    finally:
        src.close()


# ----------------------------------------------------------------- 6: stale marker


def test_a_stale_finished_marker_does_not_finish_the_movie(tmp_path):
    path = tmp_path / "movie.h5"
    marker = live.finished_marker(path)
    marker.write_text("99\n")  # left by an earlier run
    _old(marker)
    frames = _frames(2)
    with h5py.File(path, "w") as f:  # no counter
        movie = f.create_dataset("movie", data=frames, maxshape=(None, *FRAME),
                                 chunks=(1, *FRAME))
        movie.attrs["pixel_nm"] = 65.0
        f.create_dataset("camera_timing", data=[0.0, 2.0])
    src = live.open_movie(path)
    try:
        assert not src.finished and src.poll() == 1  # the last frame still waits
        assert src.stale_marker
        marker.write_text("2\n")  # the writer's own marker, after its data
        assert src.finished and src.poll() == 2
    finally:
        src.close()


def test_the_writer_removes_a_marker_left_from_an_earlier_run(tmp_path):
    movie = tmp_path / "movie.zarr"
    live.finished_marker(movie).write_text("5\n")
    w = live.LiveWriter(movie, frame_shape=FRAME, pixel_nm=65, frame_interval_s=1.0)
    try:
        assert not live.finished_marker(movie).exists()
        w.write_frame(_frames(1)[0])
        src = live.open_movie(movie)
        assert src.poll() == 1 and not src.finished
        w.finish()
        assert src.finished
    finally:
        w.close()


# ----------------------------------------------------------------- the demo movie


@pytest.fixture(scope="module")
def demo():
    from asymflux import datasets

    return datasets.load("fresh", lazy=False)


def _as_csv(df):
    """``df`` as read back from the CSV ``asymflux analyze`` writes of it."""
    import io

    return pd.read_csv(io.StringIO(df.to_csv(index=False)))


def _writer_and_live(tmp_path, ds, *, interval=None, name="movie.zarr"):
    t = np.asarray(ds.time_s)
    interval = float(t[1] - t[0]) if interval is None else interval
    w = live.LiveWriter(tmp_path / name, frame_shape=ds.stack.shape[1:], pixel_nm=ds.pixel_nm,
                        frame_interval_s=interval)
    return w, live.LiveAnalysis(tmp_path / name)


# ----------------------------------------------------------------- 2: slow movies


def test_the_idle_timeout_grows_with_a_slow_movie(tmp_path, demo):
    """Frames 90 s apart: 60 s without a new frame is not the end of the movie."""
    w, la = _writer_and_live(tmp_path, demo, interval=90.0)
    try:
        assert la.idle_limit_s(60) == 60  # no frame yet: the given timeout
        for k in range(2):
            w.write_frame(np.asarray(demo.stack[k]))
        la.update()
        assert la.n_frames == 2 and la.frame_interval_s >= 90
        assert la.idle_limit_s(60) >= 270  # three frame intervals
        assert la.idle_limit_s(600) == 600  # the given value is the floor
    finally:
        w.close()
        la.close()


# ----------------------------------------------------------------- 3: output cost


def test_watch_output_appends_rows_and_ends_with_the_batch_tables(tmp_path, demo):
    from asymflux.live import LiveOutput

    w, la = _writer_and_live(tmp_path, demo)
    out = tmp_path / "out"
    output = LiveOutput(out, rewrite_s=1e9)  # no periodic rewrite during this test
    n = 6
    try:
        first = None
        for k in range(n):
            w.write_frame(np.asarray(demo.stack[k]))
            output.update(la, la.update())
            text = (out / "timeseries.csv").read_bytes()
            first = first or text
            assert text.startswith(first)  # appended, never rewritten
            status = json.loads((out / "live.json").read_text())
            table = pd.read_csv(out / "timeseries.csv")
            assert status["frames"] == k + 1 and status["timeseries_rows"] == len(table)
            assert sorted(set(table["frame"])) == list(range(k + 1))
        assert output.rewrites == 1  # the whole set once (when the particles appeared)
        key = ["particle_id", "frame"]
        got = table.sort_values(key, ignore_index=True)
        pd.testing.assert_frame_equal(got, _as_csv(la.timeseries))
        w.finish()
        final = la.finish()
        output.final(final, {"state": "finished"}, la.name)
    finally:
        w.close()
        la.close()
    for name in ("particles", "timeseries"):  # the final files: the batch tables
        batch = getattr(final, name)
        pd.testing.assert_frame_equal(pd.read_csv(out / f"{name}.csv"), _as_csv(batch))
    assert json.loads((out / "live.json").read_text())["state"] == "finished"


def test_a_due_rewrite_writes_the_whole_set_again(tmp_path, demo):
    from asymflux.live import LiveOutput

    w, la = _writer_and_live(tmp_path, demo)
    output = LiveOutput(tmp_path / "out", rewrite_s=0, cost_factor=0)  # always due
    try:
        for k in range(3):
            w.write_frame(np.asarray(demo.stack[k]))
            output.update(la, la.update())
        assert output.rewrites == 3
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "out" / "timeseries.csv"),
                                      _as_csv(la.timeseries))
    finally:
        w.close()
        la.close()


# ----------------------------------------------------------------- 4: read errors


def test_a_read_error_names_the_movie_not_the_output(tmp_path, monkeypatch, capsys):
    from asymflux.cli import main
    from asymflux.live._sources import HDF5Movie

    src = tmp_path / "live"
    assert main(["demo-live", str(src), "--frames", "3", "--interval-s", "0", "--quiet"]) == 0

    def failing_read(self, k0, k1):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(HDF5Movie, "read", failing_read)
    capsys.readouterr()
    out = tmp_path / "results"
    assert main(["watch", str(src), "--out", str(out), "--quiet", "--poll-s", "0.05"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--out" not in err and "cannot write" not in err, err
    assert f"{src / 'movie.h5'}: cannot read frame 0 of the movie (" in err, err
    assert "Input/output error" in err
