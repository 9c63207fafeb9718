"""Hostile or unusual growing sources: a pipe as the cycler file, a frame counter that
lies, a 2-D timing table with the frames along its second axis."""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest

from asymflux import live
from asymflux.io import DatasetError
from asymflux.live._sources import FRAMES_WRITTEN, CyclerTail

FRAME = (8, 10)


def test_a_pipe_as_the_cycler_file_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "cycler.csv"
    os.mkfifo(fifo)
    tail = CyclerTail(fifo)  # opening the pipe for reading would block until a writer came
    with pytest.raises(DatasetError, match="cycler.csv: the cycler file must be a regular file"):
        tail.poll()


@pytest.mark.parametrize("counter", [[3, 4], float("inf"), -1, 2.5, "three"])
def test_a_zarr_counter_that_lies_counts_no_frame(tmp_path, counter):
    import zarr

    path = tmp_path / "movie.zarr"
    arr = zarr.open(str(path), mode="w", shape=(3, *FRAME), chunks=(1, *FRAME), dtype="u2")
    arr[:] = 1
    arr.attrs["pixel_nm"] = 65.0
    arr.attrs["frame_interval_s"] = 3.0
    arr.attrs[FRAMES_WRITTEN] = counter
    src = live.open_movie(path)
    try:
        assert src.poll() == 0
        assert "frame counter" in src.last_error and str(path) in src.last_error
    finally:
        src.close()


def test_a_two_d_timing_with_frames_along_its_second_axis(tmp_path):
    """(3 traces, frames) growing along axis 1: the frames' times are cut along that axis."""
    path = tmp_path / "movie.h5"
    n = 5
    with h5py.File(path, "w", libver="latest") as f:
        movie = f.create_dataset("movie", data=np.ones((n, *FRAME), np.uint16),
                                 maxshape=(None, *FRAME), chunks=(1, *FRAME))
        movie.attrs["pixel_nm"] = 65.0
        timing = np.stack([np.arange(n), 10.0 + 2.0 * np.arange(n), np.arange(n) * 0.5 + 7])
        f.create_dataset("camera_timing", data=timing, maxshape=(3, None), chunks=(3, 1))
    src = live.open_movie(path)
    try:
        assert src.poll() == n - 1  # no counter: the last frame waits
        np.testing.assert_allclose(src.time_s(n - 1), [10.0, 12.0, 14.0, 16.0])
    finally:
        src.close()


def test_watch_prints_and_keeps_the_analysis_warnings(tmp_path, capsys):
    """What `asymflux analyze` warns about (here NaN capacity cells) `watch` prints too, and
    keeps in live.json."""
    import json

    import pandas as pd

    from asymflux.cli import main

    src = tmp_path / "live"
    assert main(["demo-live", str(src), "--frames", "8", "--interval-s", "0", "--quiet"]) == 0
    csv = next(src.glob("*.csv"))
    table = pd.read_csv(csv)
    table.loc[3:6, table.columns[-1]] = float("nan")
    table.to_csv(csv, index=False)
    capsys.readouterr()
    out = tmp_path / "results"
    assert main(["watch", str(src), "--out", str(out), "--quiet", "--idle-timeout-s", "2"]) == 0
    err = capsys.readouterr().err
    status = json.loads((out / "live.json").read_text())
    assert status["warnings"], "NaN cells in the cycler file should be warned about"
    for w in status["warnings"]:
        assert f"asymflux watch: warning: {' '.join(w.split())}" in err
