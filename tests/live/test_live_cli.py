"""`asymflux demo-live` writing while `asymflux watch` follows it (two real processes)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd

N_FRAMES = 12
INTERVAL_S = 0.5


def _start(args, log):
    return subprocess.Popen([sys.executable, "-m", "asymflux.cli", *args], stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


def _kill(proc):
    if proc is not None and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def _wait(predicate, timeout_s, what):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_watch_follows_demo_live_and_ends_equal_to_analyze(tmp_path):
    """HDF5 in SWMR mode (zarr and TIFF folders: test_live_sources.py, in one process)."""
    from asymflux import datasets
    from asymflux.cli import main

    fmt = "h5"
    datasets.path("fresh")  # simulated once here (cached), not inside the writer's timing
    src, out, batch = tmp_path / "live", tmp_path / "watch", tmp_path / "batch"
    writer = watcher = None
    wlog, rlog = open(tmp_path / "writer.log", "w"), open(tmp_path / "watch.log", "w")  # noqa: SIM115
    try:
        writer = _start(["demo-live", str(src), "--frames", str(N_FRAMES), "--interval-s",
                         str(INTERVAL_S), "--format", fmt], wlog)
        _wait(lambda: (src / "live.json").is_file() or writer.poll() is not None, 60,
              "demo-live to start writing")
        assert (src / "live.json").is_file(), (tmp_path / "writer.log").read_text()
        # hold the writer while the watcher starts (its imports can take seconds on a busy
        # machine): the writer keeps its pace after SIGCONT, so there are frames to follow
        os.killpg(writer.pid, signal.SIGSTOP)
        manifest = json.loads((src / "live.json").read_text())
        watcher = _start(["watch", str(src), "--out", str(out), "--poll-s", "0.1",
                          "--idle-timeout-s", "20"], rlog)
        _wait(lambda: "watching" in (tmp_path / "watch.log").read_text()
              or watcher.poll() is not None, 60, "watch to start")
        os.killpg(writer.pid, signal.SIGCONT)
        marker = src / manifest["finished_marker"]
        intermediate = []

        def running_table():
            status = out / "live.json"
            if status.is_file() and not marker.exists() and writer.poll() is None:
                s = json.loads(status.read_text())
                if s["state"] == "running" and 0 < s["frames"] < N_FRAMES:
                    intermediate.append((s, pd.read_csv(out / "timeseries.csv")))
                    return True
            return False

        _wait(running_table, 30, "an intermediate table while the writer still writes")
        status, table = intermediate[0]
        assert table["frame"].max() == status["frames"] - 1  # (a) before the writer finished
        assert writer.wait(60) == 0, (tmp_path / "writer.log").read_text()
        assert watcher.wait(60) == 0, (tmp_path / "watch.log").read_text()
        final = json.loads((out / "live.json").read_text())
        assert final["state"] == "finished" and final["frames"] == N_FRAMES
        assert final["finished_by"] == "the writer's finished marker"
        assert max(final["live_vs_batch_max_abs_difference"].values()) == 0.0

        cmd = manifest["analyze"].split()[1:-1] + [str(batch)]
        # asymflux analyze (in this process: one start-up less), measured (not the results
        # cache the watcher's final batch analysis filled)
        assert main([*cmd, "--no-cache"]) == 0
        for name in ("particles", "timeseries"):  # (b) the batch tables, to the number
            a = pd.read_csv(batch / f"{name}.csv")
            b = pd.read_csv(out / f"{name}.csv")
            assert list(a.columns) == list(b.columns)
            assert a["particle_id"].tolist() == b["particle_id"].tolist()
            pd.testing.assert_frame_equal(a, b, rtol=1e-12, atol=1e-12)
        # the watcher's final batch analysis is in the results cache: analyze reads it
        from asymflux.analysis import _cache

        assert main(cmd[:-1] + [str(tmp_path / "batch-cached")]) == 0 and _cache.last.hit
        # the intermediate rows were already the final ones (capacity once the cycler passed)
        b = pd.read_csv(out / "timeseries.csv")
        part = b.merge(table, on=["particle_id", "frame"], suffixes=("", "_live"))
        assert len(part) == len(table)
        for c in ("mean_dI", "unreacted_fraction", "offset_nm", "drift_row_px"):
            pd.testing.assert_series_equal(part[c], part[f"{c}_live"], check_names=False,
                                           rtol=1e-12, atol=1e-12)
    finally:
        _kill(writer)
        _kill(watcher)
        wlog.close()
        rlog.close()
