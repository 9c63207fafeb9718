"""``asymflux analyze`` on a real dask.distributed cluster: a ``dask scheduler`` and two
``dask worker`` processes on 127.0.0.1, several small demo datasets and a broken one.

The tables of the distributed run equal those of serial runs (one dataset at a time, in
this process), the broken dataset is named on stderr, the others are written and the
exit status is 2. Every process started here is killed (its whole process group) in a
``finally``, also when the test fails.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

DATASETS = ("cohort-fresh-1", "cohort-fresh-2", "cohort-3-4.5V-200mA_g-1")
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def demo_paths(tmp_path_factory):
    """The demo datasets, built once in the session's cache (as tests/conftest.py sets it)."""
    from asymflux import datasets

    cache = tmp_path_factory.getbasetemp() / "asymflux-cache"
    old = os.environ.get("ASYMFLUX_CACHE")
    os.environ["ASYMFLUX_CACHE"] = str(cache)
    try:
        return {n: datasets.path(n) for n in DATASETS}
    finally:
        if old is None:
            os.environ.pop("ASYMFLUX_CACHE", None)
        else:
            os.environ["ASYMFLUX_CACHE"] = old


def _start(argv, *, cwd, log):
    """A process in its own session (so its process group can be killed whole)."""
    return subprocess.Popen(argv, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def _kill(procs):
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL cannot be ignored
            pass


def _wait_for_cluster(scheduler_file, n_workers, procs, *, timeout_s=120):
    """The scheduler's address once ``n_workers`` workers are connected."""
    from dask.distributed import Client

    deadline = time.monotonic() + timeout_s
    while not scheduler_file.exists():
        dead = [p.args for p in procs if p.poll() is not None]
        assert not dead, f"exited before the cluster was up: {dead}"
        assert time.monotonic() < deadline, "the dask scheduler wrote no scheduler file"
        time.sleep(0.2)
    address = json.loads(scheduler_file.read_text())["address"]
    with Client(address, timeout="30s") as client:
        client.wait_for_workers(n_workers, timeout=max(1.0, deadline - time.monotonic()))
    return address


def _tables(folder):
    return {name: pd.read_csv(folder / f"{name}.csv", keep_default_na=False, na_values=[""])
            for name in ("particles", "timeseries")}


def test_campaign_on_a_dask_cluster_equals_serial_runs(tmp_path, demo_paths):
    from asymflux.cli import main

    data = tmp_path / "data"
    data.mkdir()
    names = []
    for n, src in demo_paths.items():
        shutil.copytree(src, data / n)
        names.append(n)
    broken = data / "broken"  # a corrupted stack: the TIFF cut to a third
    shutil.copytree(demo_paths[DATASETS[0]], broken)
    stack = broken / "stack.ome.tif"
    os.truncate(stack, stack.stat().st_size // 3)

    # serial reference: one dataset at a time, in this process (no dask cluster)
    (tmp_path / "serial").mkdir()
    serial = {}
    for n in names:
        assert main(["analyze", str(data / n), "--out", str(tmp_path / "serial" / n),
                     "--no-cache"]) == 0  # the campaign below measures too
        serial[n] = _tables(tmp_path / "serial" / n)

    work = tmp_path / "cluster"
    work.mkdir()
    scheduler_file = work / "scheduler.json"
    procs = []
    log = open(work / "cluster.log", "wb")  # noqa: SIM115 - closed in the finally
    try:
        procs.append(_start([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0",
                             "--no-dashboard", "--scheduler-file", str(scheduler_file)],
                            cwd=work, log=log))
        for k in range(2):
            procs.append(_start([str(BIN / "dask"), "worker", "--scheduler-file",
                                 str(scheduler_file), "--nthreads", "1", "--nworkers", "1",
                                 "--host", "127.0.0.1", "--no-dashboard", "--name", f"w{k}",
                                 "--local-directory", str(work / f"w{k}")],
                                cwd=work, log=log))
        address = _wait_for_cluster(scheduler_file, 2, procs)
        # relative dataset paths, run from tmp_path: the workers (cwd: cluster/) must
        # still find them
        cli = subprocess.Popen(
            [sys.executable, "-m", "asymflux.cli", "analyze", "--scheduler", address,
             *(f"data/{n}" for n in names), "data/broken", "--out", "campaign"],
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True)
        procs.append(cli)
        out, err = cli.communicate(timeout=600)
    finally:
        _kill(procs)
        log.close()
    assert all(p.poll() is not None for p in procs)

    assert cli.returncode == 2, (out, err)
    error_lines = [ln for ln in err.splitlines() if "error:" in ln]
    assert any("data/broken" in ln for ln in error_lines), err
    assert not any(f"data/{n}" in ln for n in names for ln in error_lines), err
    assert "1 of 4 dataset(s) failed: data/broken" in err
    assert "analysed 3 of 4 dataset(s)" in out

    got = _tables(tmp_path / "campaign")
    for table in ("particles", "timeseries"):
        assert list(got[table]["dataset"].unique()) == names  # in the order given
        for n in names:
            mine = got[table][got[table]["dataset"] == n].reset_index(drop=True)
            pd.testing.assert_frame_equal(mine, serial[n][table], check_exact=False,
                                          rtol=1e-12, atol=1e-12)
    assert sorted(p.name for p in (tmp_path / "campaign" / "masks").iterdir()) == \
        sorted(f"{n}.tif" for n in names)


def test_campaign_on_the_default_local_cluster(tmp_path, demo_paths, capsys):
    """No --scheduler: a LocalCluster of this machine; a missing stack is named, the
    other dataset written, exit status 2."""
    from asymflux.cli import main

    good, broken = tmp_path / "good", tmp_path / "no-stack"
    shutil.copytree(demo_paths[DATASETS[0]], good)
    shutil.copytree(demo_paths[DATASETS[0]], broken)
    (broken / "stack.ome.tif").unlink()
    assert main(["analyze", str(good), "--out", str(tmp_path / "serial"), "--no-cache"]) == 0
    capsys.readouterr()
    assert main(["analyze", str(good), str(broken), "--out", str(tmp_path / "local")]) == 2
    out, err = capsys.readouterr()
    assert f"error: {broken}" in err and "1 of 2 dataset(s) failed" in err, err
    assert "Traceback" not in err  # the workers' own logs are silenced
    assert "analysed 1 of 2 dataset(s)" in out
    got, serial = _tables(tmp_path / "local"), _tables(tmp_path / "serial")
    for table in ("particles", "timeseries"):
        pd.testing.assert_frame_equal(got[table], serial[table], check_exact=False,
                                      rtol=1e-12, atol=1e-12)


def test_a_failed_dataset_is_recorded_and_does_not_rename_the_others(tmp_path, demo_paths,
                                                                     capsys):
    """A campaign that replaces a complete output with one dataset fewer leaves
    failures.csv (the dataset and why); the others keep the names of the complete run."""
    from asymflux.cli import main

    a, b = tmp_path / "a", tmp_path / "b"  # the same dataset twice: names X and X_2
    shutil.copytree(demo_paths[DATASETS[0]], a)
    shutil.copytree(demo_paths[DATASETS[0]], b)
    out = tmp_path / "out"
    assert main(["analyze", str(a), str(b), "--out", str(out)]) == 0
    complete = _tables(out)
    first, second = list(complete["particles"]["dataset"].unique())
    assert second == f"{first}_2" and not (out / "failures.csv").exists()

    (a / "stack.ome.tif").unlink()  # the first one fails now
    capsys.readouterr()
    assert main(["analyze", str(a), str(b), "--out", str(out)]) == 2
    assert "failures.csv" in capsys.readouterr().out
    failures = pd.read_csv(out / "failures.csv")
    assert failures["dataset"].tolist() == [str(a)]
    assert failures["name"].tolist() == [first]
    assert str(a) in failures["error"].iloc[0]
    got = _tables(out)
    for table in ("particles", "timeseries"):  # b keeps its name: X_2, not X
        mine = complete[table][complete[table]["dataset"] == second].reset_index(drop=True)
        pd.testing.assert_frame_equal(got[table], mine, check_exact=False, rtol=1e-12,
                                      atol=1e-12)
    assert sorted(p.name for p in (out / "masks").iterdir()) == [f"{second}.tif"]

    assert main(["analyze", str(b), "--out", str(out)]) == 0  # a complete set again
    assert not (out / "failures.csv").exists()


def test_the_local_cluster_never_kills_a_worker_for_its_memory():
    from asymflux.analysis._dataset import _local_cluster_options

    opts = _local_cluster_options(10, cores=16, memory_bytes=24 << 30)
    assert opts["memory_limit"] == 0  # no nanny limit: a large movie does not kill its worker
    assert opts["n_workers"] == 6  # 4 GiB a worker on a 24 GiB machine, not 16
    assert opts["threads_per_worker"] == 1
    assert _local_cluster_options(3, cores=16, memory_bytes=64 << 30)["n_workers"] == 3
    assert _local_cluster_options(3, cores=2, memory_bytes=2 << 30)["n_workers"] == 1
