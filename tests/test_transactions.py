"""Outputs as transactions (asymflux #15): bad output locations are refused before any work,
special files are written through, rewrites keep curation, leftovers of interrupted writes
are never read, a kill -9 leaves the old or the new complete output, modes follow the umask.

Special files are made privately in tmp_path (os.mkfifo, os.mknod), never real /dev entries.
"""

from __future__ import annotations

import json
import os
import random
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from asymflux import io
from asymflux._atomic import (
    MARK,
    STAGING,
    atomic_folder,
    atomic_path,
    check_output,
    clean_leftovers,
    write_text_atomic,
)
from asymflux.cli import main

ROOT = os.geteuid() == 0 if hasattr(os, "geteuid") else False


# ----------------------------------------------------------------------------- helpers


def tiny_dataset(tag="a", *, n_frames=6, shape=(40, 48), masks=True) -> io.Dataset:
    """Two disks that brighten from the outside in; ``tag`` changes the pixel values."""
    rng = np.random.default_rng(sum(map(ord, tag)))  # the same in every process
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    labels = np.zeros(shape, np.uint16)
    labels[(yy - 20) ** 2 + (xx - 14) ** 2 < 64] = 1
    labels[(yy - 20) ** 2 + (xx - 34) ** 2 < 64] = 2
    stack = np.full((n_frames, *shape), 100.0)
    for k in range(n_frames):
        r = 8 * (1 - k / n_frames)
        for cx in (14, 34):
            ring = ((yy - 20) ** 2 + (xx - cx) ** 2 < 64) & ((yy - 20) ** 2 + (xx - cx) ** 2 >= r * r)
            stack[k][ring] = 130.0
    stack = (stack + rng.normal(0, 0.5, stack.shape)).astype(np.float32)
    t = np.arange(n_frames) * 30.0
    echem = pd.DataFrame({"time_s": t, "voltage_V": np.linspace(3.6, 3.8, n_frames),
                          "current_mA": 0.01, "capacity_mAh_g": np.linspace(0, 9, n_frames)})
    return io.Dataset(stack=stack, time_s=t, pixel_nm=65.0, echem=echem,
                      metadata={"material": "NMC88", "ageing": "fresh", "rate_mA_g": 100.0,
                                "cell": "optical half-cell", "tag": tag},
                      masks=labels if masks else None)


def snapshot(root: Path) -> dict:
    """Every path under ``root`` (symlinks not followed) with its type and content/rdev."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        if stat.S_ISREG(st.st_mode):
            out[str(p.relative_to(root))] = ("file", p.read_bytes())
        elif stat.S_ISLNK(st.st_mode):
            out[str(p.relative_to(root))] = ("link", os.readlink(p))
        elif stat.S_ISDIR(st.st_mode):
            out[str(p.relative_to(root))] = ("dir",)
        else:
            out[str(p.relative_to(root))] = ("special", stat.S_IFMT(st.st_mode), st.st_rdev)
    return out


def run_cli(argv, capsys):
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    return code, err


@pytest.fixture
def inputs(tmp_path):
    """A dataset folder, an analyze output folder and a cycler CSV, all under tmp_path/in."""
    root = tmp_path / "in"
    root.mkdir()
    ds = io.write_dataset(tiny_dataset(), root / "ds")
    res = root / "res"
    res.mkdir()
    pd.DataFrame({"dataset": ["ds"], "ageing": ["fresh"], "particle_id": [1],
                  "classification": ["symmetric"]}).to_csv(res / "particles.csv", index=False)
    pd.DataFrame({"dataset": ["ds"], "particle_id": [1], "frame": [0]}).to_csv(
        res / "timeseries.csv", index=False)
    echem = root / "cell.csv"
    pd.DataFrame({"time_s": [0.0, 1.0, 2.0], "voltage_V": [3.6, 3.7, 3.8],
                  "current_mA": [0.1, 0.1, 0.1]}).to_csv(echem, index=False)
    return {"ds": ds, "res": res, "echem": echem}


# ----------------------------------------------------------------------------- core helpers


def test_atomic_path_writes_through_a_fifo_and_keeps_it(tmp_path):
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(Path(fifo).read_bytes()))
    reader.start()
    write_text_atomic(fifo, "hello\n")
    reader.join(10)
    assert got == [b"hello\n"]
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]


@pytest.mark.skipif(not ROOT, reason="os.mknod of a character device needs root")
def test_atomic_path_writes_through_a_device_node_and_keeps_it(tmp_path):
    null = tmp_path / "null"
    os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # a private /dev/null
    write_text_atomic(null, "x" * 1000)
    st = null.lstat()
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["null"]


def test_atomic_path_follows_a_symlink_and_keeps_it(tmp_path):
    real = tmp_path / "data" / "real.txt"
    real.parent.mkdir()
    real.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    write_text_atomic(link, "new")
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.read_text() == "new"
    assert not (tmp_path / STAGING).exists() and not (real.parent / STAGING).exists()


def test_atomic_path_refuses_a_folder_before_writing(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(IsADirectoryError):
        with atomic_path(tmp_path / "d"):
            raise AssertionError("not reached")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]


@pytest.mark.parametrize("mask", [0o002, 0o022, 0o077])
def test_modes_follow_the_umask(tmp_path, mask):
    old = os.umask(mask)
    try:
        write_text_atomic(tmp_path / "f.txt", "x")
        with atomic_folder(tmp_path / "folder") as tmp:
            (tmp / "inside.txt").write_text("y")
        io.write_dataset(tiny_dataset(), tmp_path / "ds")
        assert main(["simulate", "--out", str(tmp_path / "run.npz"), "--minutes", "1",
                     "--pixel-nm", "200"]) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f.txt").stat().st_mode) == 0o666 & ~mask
    assert stat.S_IMODE((tmp_path / "run.npz").stat().st_mode) == 0o666 & ~mask
    assert stat.S_IMODE((tmp_path / "folder").stat().st_mode) == 0o777 & ~mask
    assert stat.S_IMODE((tmp_path / "ds").stat().st_mode) == 0o777 & ~mask
    assert stat.S_IMODE((tmp_path / "ds" / "frames.csv").stat().st_mode) == 0o666 & ~mask


def test_rewriting_a_file_keeps_its_mode(tmp_path):
    f = tmp_path / "f.txt"
    f.write_text("a")
    f.chmod(0o640)
    write_text_atomic(f, "b")
    assert stat.S_IMODE(f.stat().st_mode) == 0o640 and f.read_text() == "b"


def test_check_output_messages(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match=r"--out .*d: is a folder; expected a file name"):
        check_output(tmp_path / "d")
    with pytest.raises(ValueError, match=r"--out .*f: is a file; expected a folder"):
        check_output(tmp_path / "f", folder=True)
    with pytest.raises(ValueError, match=r"folder .*nowhere does not exist"):
        check_output(tmp_path / "nowhere" / "x.csv")
    with pytest.raises(ValueError, match=r"f is not a folder"):
        check_output(tmp_path / "f" / "x.csv")
    with pytest.raises(ValueError, match=r"is the input"):
        check_output(tmp_path / "f", inputs=[tmp_path / "f"])


# ----------------------------------------------------------------------------- rewrites


def test_write_dataset_rewrite_keeps_curation(tmp_path):
    from asymflux.curation import AUTOSAVE_NAME, Curation

    folder = io.write_dataset(tiny_dataset("a"), tmp_path / "exp")
    cur = Curation.load(folder)
    cur.set_class([1], "asymmetric")  # autosaved
    assert (folder / AUTOSAVE_NAME).is_file()
    io.write_annotations(folder, pd.DataFrame({"particle_id": [1], "class": ["asymmetric"]}))
    (folder / "notes.txt").write_text("mine")
    autosave = (folder / AUTOSAVE_NAME).read_bytes()
    masks = (folder / "masks.tif").read_bytes()

    new = tiny_dataset("b", masks=False)  # new data, no curation of its own
    io.write_dataset(new, folder, stack_format="zarr")
    back = io.read_dataset(folder)
    assert back.metadata["tag"] == "b"
    assert (folder / AUTOSAVE_NAME).read_bytes() == autosave
    assert (folder / "masks.tif").read_bytes() == masks
    assert back.annotations["class"].tolist() == ["asymmetric"]
    assert (folder / "notes.txt").read_text() == "mine"
    assert not (folder / "stack.ome.tif").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp"]

    # a dataset with its own masks and annotations: they win, the folder's become .prev
    other = tiny_dataset("c")
    other.masks = other.masks * 0 + (other.masks > 0)
    other.annotations = pd.DataFrame({"particle_id": [1], "class": ["symmetric"]})
    io.write_dataset(other, folder)
    back = io.read_dataset(folder)
    assert back.annotations["class"].tolist() == ["symmetric"]
    assert (folder / "masks.prev.tif").read_bytes() == masks
    assert pd.read_csv(folder / "annotations.prev.csv")["class"].tolist() == ["asymmetric"]
    assert (folder / AUTOSAVE_NAME).read_bytes() == autosave


def test_masks_that_do_not_fit_the_new_frames_become_prev(tmp_path):
    folder = io.write_dataset(tiny_dataset("a"), tmp_path / "exp")
    masks = (folder / "masks.tif").read_bytes()
    io.write_dataset(tiny_dataset("b", shape=(30, 30), masks=False), folder)
    assert not (folder / "masks.tif").exists()
    assert (folder / "masks.prev.tif").read_bytes() == masks
    assert io.read_dataset(folder).masks is None


# ----------------------------------------------------------------------------- leftovers


def _mark(lock: Path, entry: str):
    """The lock file asymflux writes beside a staged entry (its mark and the entry's name)."""
    lock.write_bytes(MARK + entry.encode() + b"\n")


def _plant_leftovers(parent: Path, name: str):
    """What killed writers leave: a staged temporary folder (complete, unlocked, with its
    marked lock) and leftovers of earlier versions beside the target (unmarked: kept)."""
    ds = tiny_dataset("leftover")
    legacy = [parent / f".{name}.tmp-x1y2z3", parent / f".{name}.old-0123abcd"]
    for p in legacy:
        io.write_dataset(ds, p)
    staged = parent / STAGING / f"{name}.tmp-abcd1234"
    staged.parent.mkdir(exist_ok=True)
    io.write_dataset(ds, staged)  # a complete dataset, as if killed just before the rename
    _mark(parent / STAGING / f"{name}.tmp-abcd1234.lock", f"{name}.tmp-abcd1234")
    stray = parent / f".{name}.csv.abcd1234.csv.tmp"
    stray.write_text("partial")
    for p in (*legacy, stray):
        os.utime(p, (time.time() - 3600, time.time() - 3600))


def test_leftovers_are_never_listed_or_read_and_are_cleaned(tmp_path):
    io.write_dataset(tiny_dataset("a"), tmp_path / "fresh")
    io.write_dataset(tiny_dataset("b"), tmp_path / "aged")
    _plant_leftovers(tmp_path, "fresh")
    with pytest.raises(ValueError, match="leftover"):
        io.read_dataset(tmp_path / ".fresh.tmp-x1y2z3")
    with pytest.raises(ValueError, match="leftover"):
        io.read_dataset(tmp_path / STAGING / "fresh.tmp-abcd1234")
    before = sorted(p.name for p in tmp_path.iterdir())
    assert [p.name for p in io.dataset_folders(tmp_path)] == ["aged", "fresh"]
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # a scan deletes nothing
    # the next writer removes the marked leftover (its writer is gone: no lock held); the
    # unmarked look-alikes of earlier versions are kept (a user's file may look alike)
    io.write_dataset(tiny_dataset("c"), tmp_path / "other")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".fresh.csv.abcd1234.csv.tmp", ".fresh.old-0123abcd", ".fresh.tmp-x1y2z3", "aged",
        "fresh", "other"]


def test_the_cohort_browser_scan_ignores_leftovers(tmp_path):
    from asymflux.views._compute import dataset_specs

    io.write_dataset(tiny_dataset("a"), tmp_path / "fresh")
    staged = tmp_path / STAGING / "fresh.tmp-abcd1234"
    staged.parent.mkdir()
    io.write_dataset(tiny_dataset("b"), staged)
    assert dataset_specs(str(tmp_path)) == [str(tmp_path / "fresh")]


def test_a_folder_moved_aside_by_a_killed_writer_is_restored_by_the_reader(tmp_path):
    folder = io.write_dataset(tiny_dataset("a"), tmp_path / "exp")
    aside = tmp_path / STAGING / "exp.old-0a1b2c3d"
    aside.parent.mkdir()
    os.rename(folder, aside)  # killed between the two renames of the fallback swap
    _mark(aside.parent / "exp.old-0a1b2c3d.lock", "exp.old-0a1b2c3d")
    assert io.read_dataset(folder).metadata["tag"] == "a"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp"]


def test_a_write_in_progress_is_not_cleaned(tmp_path):
    target = tmp_path / "exp"
    with atomic_folder(target) as tmp:
        (tmp / "x").write_text("1")
        assert clean_leftovers(tmp_path) == []  # locked by this writer
        assert tmp.is_dir()
    assert (target / "x").read_text() == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp"]


# ----------------------------------------------------------------------------- CLI: bad outputs


def _file_cmds(inp):
    """(command, argv builder taking the output path, inputs that are files the command reads)."""
    return {
        "simulate": (lambda o: ["simulate", "--out", o, "--minutes", "1", "--pixel-nm", "200"],
                     None),
        "rate-sweep": (lambda o: ["rate-sweep", "--rates", "100", "--csv", o, "--quiet"], None),
        "cohort": (lambda o: ["cohort", inp["res"], "--out", o], inp["res"] / "particles.csv"),
        "fit": (lambda o: ["fit", inp["ds"], "--particle", "1", "--out", o],
                inp["ds"] / "metadata.json"),
        "echem": (lambda o: ["echem", inp["echem"], "--out", o], inp["echem"]),
    }


def _folder_cmds(inp):
    return {
        "demo": (lambda o: ["demo", "--out", o, "--quiet", "--no-data"], None),
        "demo-data": (lambda o: ["demo-data", o, "--names", "fresh", "--quiet"], None),
        "analyze": (lambda o: ["analyze", inp["ds"], "--out", o], inp["ds"]),
    }


BAD_FILE_OUTPUTS = ["fifo", "chardev", "symlink-to-fifo", "folder", "input", "parent-is-file",
                    "no-parent", "read-only"]
BAD_FOLDER_OUTPUTS = ["fifo", "chardev", "symlink-to-fifo", "file", "input", "parent-is-file",
                      "no-parent", "read-only"]


def _make_bad(kind: str, work: Path, input_path) -> tuple[Path, str]:
    """Create the bad output location; return it and a word the message must contain."""
    if kind == "fifo":
        os.mkfifo(work / "out")
        return work / "out", "special file"
    if kind == "chardev":
        if not ROOT:
            pytest.skip("os.mknod of a character device needs root")
        os.mknod(work / "out", stat.S_IFCHR | 0o666, os.makedev(1, 3))
        return work / "out", "special file"
    if kind == "symlink-to-fifo":
        os.mkfifo(work / "pipe")
        (work / "out").symlink_to(work / "pipe")
        return work / "out", "special file"
    if kind == "folder":
        (work / "out").mkdir()
        (work / "out" / "keep.txt").write_text("keep")
        return work / "out", "is a folder"
    if kind == "file":
        (work / "out").write_text("keep")
        return work / "out", "is a file"
    if kind == "input":
        if input_path is None:
            pytest.skip("the command reads no input file")
        return input_path, "input"
    if kind == "parent-is-file":
        (work / "blocker").write_text("keep")
        return work / "blocker" / "out", "not a folder"
    if kind == "no-parent":
        return work / "missing" / "out", "does not exist"
    if kind == "read-only":
        if ROOT:
            pytest.skip("root writes into read-only folders anyway (see parent-is-file)")
        ro = work / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        return ro / "out", "not writable"
    raise AssertionError(kind)


def _check_refused(capsys, tmp_path, argv, out, word):
    before = snapshot(tmp_path)
    code, err = run_cli(argv, capsys)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert word in lines[0] and str(out) in lines[0], lines[0]
    assert snapshot(tmp_path) == before  # nothing written, nothing replaced


@pytest.mark.parametrize("kind", BAD_FILE_OUTPUTS)
@pytest.mark.parametrize("cmd", ["simulate", "rate-sweep", "cohort", "fit", "echem"])
def test_bad_file_output_is_refused_before_any_work(tmp_path, capsys, inputs, cmd, kind):
    work = tmp_path / "work"
    work.mkdir()
    build, input_file = _file_cmds(inputs)[cmd]
    out, word = _make_bad(kind, work, input_file)
    _check_refused(capsys, tmp_path, build(out), out, word)


@pytest.mark.parametrize("kind", BAD_FOLDER_OUTPUTS)
@pytest.mark.parametrize("cmd", ["demo", "demo-data", "analyze"])
def test_bad_folder_output_is_refused_before_any_work(tmp_path, capsys, inputs, cmd, kind):
    work = tmp_path / "work"
    work.mkdir()
    build, input_folder = _folder_cmds(inputs)[cmd]
    out, word = _make_bad(kind, work, input_folder)
    _check_refused(capsys, tmp_path, build(out), out, word)


def test_analyze_refuses_a_folder_that_is_not_its_output(tmp_path, capsys, inputs):
    other = tmp_path / "home"
    other.mkdir()
    (other / "thesis.tex").write_text("keep")
    _check_refused(capsys, tmp_path, ["analyze", inputs["ds"], "--out", other], other,
                   "holds other files")
    _check_refused(capsys, tmp_path, ["analyze", inputs["ds"], "--out", tmp_path / "in"],
                   tmp_path / "in", "input")


def test_cohort_refuses_to_overwrite_its_own_input(tmp_path, capsys, inputs):
    out = inputs["res"] / "particles.csv"
    _check_refused(capsys, tmp_path, ["cohort", inputs["res"], "--out", out], out, "input")


def test_fit_refuses_a_file_of_its_dataset(tmp_path, capsys, inputs):
    for name in ("frames.csv", "masks.tif", "echem.csv"):
        out = inputs["ds"] / name
        _check_refused(capsys, tmp_path, ["fit", inputs["ds"], "--particle", "1", "--out", out],
                       out, "input")


def test_demo_data_refuses_a_non_dataset_of_the_same_name(tmp_path, capsys):
    (tmp_path / "fresh").mkdir()
    (tmp_path / "fresh" / "mine.txt").write_text("keep")
    before = snapshot(tmp_path)
    code, err = run_cli(["demo-data", tmp_path, "--names", "fresh", "--quiet"], capsys)
    assert code == 2 and "not an asymflux dataset folder" in err and len(err.splitlines()) == 1
    assert snapshot(tmp_path) == before


def test_simulate_through_a_symlink_writes_its_target(tmp_path):
    real = tmp_path / "real.npz"
    real.write_bytes(b"old")
    link = tmp_path / "run.npz"
    link.symlink_to(real)
    assert main(["simulate", "--out", str(link), "--minutes", "1", "--pixel-nm", "200"]) == 0
    assert link.is_symlink()
    with np.load(real) as f:
        assert "theta" in f.files


@pytest.mark.parametrize("argv, words", [
    (["simulate", "--out", "{o}/run.npz", "--pixel-nm", "0.001"], ["--pixel-nm 0.001", "--pixel-nm of at least"]),
    (["analyze", "{ds}", "--out", "{o}/res", "--scheduler", "not an address"], ["--scheduler"]),
    (["analyze", "{ds}", "--out", "{o}/res", "--scheduler", "tcp://host"], ["--scheduler"]),
])
def test_bad_parameters_give_one_line(tmp_path, capsys, inputs, argv, words):
    argv = [a.format(o=tmp_path / "work", ds=inputs["ds"]) for a in argv]
    (tmp_path / "work").mkdir()
    before = snapshot(tmp_path)
    code, err = run_cli(argv, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    for w in words:
        assert w in err
    assert snapshot(tmp_path) == before


def test_corrupt_ground_truth_is_one_line(tmp_path, capsys):
    ds = tiny_dataset()
    ds.ground_truth = {"theta": np.zeros((2, 3))}
    folder = io.write_dataset(ds, tmp_path / "ds")
    (folder / "ground_truth" / "theta.npz").write_bytes(b"PK\x03\x04 not really a zip")
    code, err = run_cli(["fit", folder, "--particle", "1", "--out", tmp_path / "fit.json"], capsys)
    assert code == 2 and "theta.npz" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "fit.json").exists()


def test_a_failing_write_is_one_line_naming_the_path(tmp_path, capsys, monkeypatch):
    import errno

    import asymflux._atomic as atomic

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "replace", full)
    out = tmp_path / "run.npz"
    code, err = run_cli(["simulate", "--out", out, "--minutes", "1", "--pixel-nm", "200"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert str(out) in err and "disk full" in err
    assert list(tmp_path.iterdir()) == []


def test_analyze_rewrite_replaces_all_its_outputs_and_keeps_others(tmp_path, capsys, inputs):
    res = tmp_path / "res"
    assert main(["analyze", str(inputs["ds"]), "--out", str(res), "--parquet"]) == 0
    (res / "cohort.csv").write_text("mine\n")
    assert (res / "particles.parquet").exists()
    assert main(["analyze", str(inputs["ds"]), "--out", str(res)]) == 0
    assert sorted(p.name for p in res.iterdir()) == ["clock.csv", "cohort.csv", "masks", "particles.csv",
                                                      "provenance.json", "timeseries.csv"]
    assert (res / "cohort.csv").read_text() == "mine\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "res"]


# ----------------------------------------------------------------------------- kill -9


def _kill_at(argv, delay, env=None, cwd=None):
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            cwd=cwd)
    time.sleep(delay)
    proc.kill()
    return proc.wait()


def _timed(argv, env=None):
    t0 = time.monotonic()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env=env)
    return time.monotonic() - t0


def _delays(total, n, seed):
    rng = random.Random(seed)
    return [rng.uniform(0.3 * total, 1.05 * total) for _ in range(n)]


WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    sys.path.insert(0, {tests!r})
    from test_transactions import tiny_dataset
    from asymflux import io
    a, b = tiny_dataset("a", n_frames=40, shape=(96, 96)), tiny_dataset("b", n_frames=40, shape=(96, 96))
    print("ready", flush=True)
    k = 0
    while True:
        io.write_dataset(a if k % 2 == 0 else b, sys.argv[1], stack_format="zarr" if k % 3 else "ome-tiff")
        k += 1
""")


def test_kill_during_write_dataset_leaves_a_complete_dataset(tmp_path):
    folder = tmp_path / "exp"
    a, b = tiny_dataset("a", n_frames=40, shape=(96, 96)), tiny_dataset("b", n_frames=40, shape=(96, 96))
    io.write_dataset(a, folder)
    (folder / "annotations.csv").write_text("particle_id,class\n1,asymmetric\n")
    script = tmp_path.parent / f"{tmp_path.name}_writer.py"
    script.write_text(WRITER.format(tests=str(Path(__file__).parent)))
    for delay in _delays(1.5, 6, seed=15):
        proc = subprocess.Popen([sys.executable, str(script), str(folder)],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(delay)
        proc.kill()
        proc.wait()
        back = io.read_dataset(folder, lazy=False)
        want = a if back.metadata["tag"] == "a" else b
        np.testing.assert_array_equal(back.stack, want.stack)
        np.testing.assert_array_equal(back.masks, want.masks)
        assert back.annotations["class"].tolist() == ["asymmetric"]
        assert [p.name for p in io.dataset_folders(tmp_path)] == ["exp"]
    clean_leftovers(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp"]


def _cli(*args):
    return [sys.executable, "-m", "asymflux.cli", *map(str, args)]


def test_kill_during_analyze_leaves_old_or_new_complete_output(tmp_path):
    ds = io.write_dataset(tiny_dataset("a", n_frames=30, shape=(120, 120)), tmp_path / "ds")
    res = tmp_path / "res"
    total = _timed(_cli("analyze", ds, "--out", res, "--parquet", "--no-cache"))  # measured
    # mark the complete old output: every table has an "old" column
    for name in ("particles", "timeseries"):
        t = pd.read_csv(res / f"{name}.csv")
        t["old"] = 1
        t.to_csv(res / f"{name}.csv", index=False)
    for delay in _delays(total, 5, seed=7):
        _kill_at(_cli("analyze", ds, "--out", res, "--no-cache"), delay)
        names = sorted(p.name for p in res.iterdir())
        p = pd.read_csv(res / "particles.csv")
        t = pd.read_csv(res / "timeseries.csv")
        assert ("old" in p.columns) == ("old" in t.columns)  # never a mix
        if "old" in p.columns:
            assert "particles.parquet" in names
        else:  # the new complete set, and nothing of the old one
            assert names == ["clock.csv", "masks", "particles.csv", "provenance.json", "timeseries.csv"]
            assert (res / "masks" / "ds.tif").is_file()
        assert sorted(x.name for x in tmp_path.iterdir() if x.name != STAGING) == ["ds", "res"]


@pytest.mark.slow
def test_kill_during_demo_data_keeps_a_complete_dataset_and_its_curation(tmp_path):
    out = tmp_path / "demo"
    env = {**os.environ, "ASYMFLUX_CACHE": str(tmp_path / "cache")}
    total = _timed(_cli("demo-data", out, "--names", "fresh", "--quiet"), env=env)
    folder = out / "fresh"
    meta = json.loads((folder / "metadata.json").read_text())
    meta["marker"] = "old"
    (folder / "metadata.json").write_text(json.dumps(meta))
    (folder / "annotations.csv").write_text("particle_id,class\n1,asymmetric\n")
    (folder / "curation.autosave.npz").write_bytes(b"autosave")
    for delay in _delays(total, 3, seed=3):
        _kill_at(_cli("demo-data", out, "--names", "fresh", "--quiet"), delay, env=env)
        back = io.read_dataset(folder)
        assert back.n_frames > 0 and back.masks is not None
        assert back.annotations["class"].tolist() == ["asymmetric"]
        assert (folder / "curation.autosave.npz").read_bytes() == b"autosave"
        assert [p.name for p in io.dataset_folders(out)] == ["fresh"]
    # a complete rerun keeps the curation too
    subprocess.run(_cli("demo-data", out, "--names", "fresh", "--quiet"), check=True, env=env)
    assert "marker" not in io.read_dataset(folder).metadata
    assert (folder / "annotations.csv").is_file() and (folder / "curation.autosave.npz").is_file()
    assert sorted(p.name for p in out.iterdir()) == ["fresh"]


# ----------------------------------------------------------------------------- kill -9: curation


def curation_states(shape=(96, 96)):
    """Two curation states (labels, class, notes) of ``tiny_dataset(shape=shape)``: A its own
    two particles, B with particle 2 renumbered 3 and a new particle 4; notes that need
    quoting in a CSV."""
    labels_a = tiny_dataset("a", n_frames=2, shape=shape).masks.astype(np.int32)
    labels_b = labels_a.copy()
    labels_b[labels_b == 2] = 3
    labels_b[60:70, 60:72] = 4
    return {"A": (labels_a, "symmetric", 'state A, "quoted" ✓'),
            "B": (labels_b, "asymmetric", "state B\nsecond line, NA")}


def _curation_state(labels, features):
    """(labels, [(id, class, notes)]) to compare with :func:`curation_states`."""
    f = pd.DataFrame(features)
    rows = [(int(r[0]), str(r[1]), str(r[2]))
            for r in f[["particle_id", "class", "notes"]].itertuples(index=False)]
    return np.asarray(labels), sorted(rows)


def _which_state(labels, rows, states) -> str | None:
    """The name of the state ``(labels, rows)`` is exactly, else None."""
    for name, (lab, cls, notes) in states.items():
        ids = sorted(int(i) for i in np.unique(lab) if i)
        if np.array_equal(labels, lab) and rows == [(i, cls, notes) for i in ids]:
            return name
    return None


def _table_state(df, states) -> str | None:
    """The state an annotations table is (its particles, classes and notes), else None."""
    rows = sorted((int(r[0]), str(r[1]), str(r[2]))
                  for r in df[["particle_id", "class", "notes"]].itertuples(index=False))
    for name, (lab, cls, notes) in states.items():
        ids = sorted(int(i) for i in np.unique(lab) if i)
        if rows == [(i, cls, notes) for i in ids]:
            return name
    return None


def _masks_state(masks, states) -> str | None:
    return next((n for n, (lab, _c, _t) in states.items() if np.array_equal(masks, lab)), None)


CURATION_WRITER = textwrap.dedent("""
    import sys
    import warnings
    sys.path.insert(0, {tests!r})
    from test_transactions import curation_states
    from asymflux.curation import Curation
    warnings.simplefilter("ignore")
    folder = sys.argv[1]
    states = curation_states()
    cur = Curation.load(folder, autosave_every=0)
    print("ready", flush=True)
    k = 0
    while True:
        labels, cls, notes = states["AB"[k % 2]]
        cur.replace_labels(labels)
        ids = [int(i) for i in cur.particle_ids()]
        cur.set_class(ids, cls)
        cur.set_notes(ids, notes)
        cur.autosave()  # the whole state, as the widget does after each edit
        if k % 3 != 1:
            cur.save()  # masks.tif + annotations.csv (+ .prev), then the autosave removed
        k += 1
""")


def test_kill_during_curation_saves_leaves_old_or_new_complete_files(tmp_path):
    """A process saving curation over and over (autosave after each change of state, and
    ``save``: masks.tif, annotations.csv and their .prev copies) is killed at random moments:
    every curation file left is complete and one of the two states, never a mix within a
    file, and ``Curation.load`` restores one of the two states without a warning."""
    import tifffile

    from asymflux.curation import AUTOSAVE_NAME, Curation, CurationWarning, _read_autosave

    states = curation_states()
    folder = io.write_dataset(tiny_dataset("a", n_frames=4, shape=(96, 96)), tmp_path / "exp")
    cur = Curation.load(folder, autosave_every=0)
    labels, cls, notes = states["A"]
    cur.replace_labels(labels)
    cur.set_class([1, 2], cls)
    cur.set_notes([1, 2], notes)
    cur.save()
    script = tmp_path.parent / f"{tmp_path.name}_curator.py"
    script.write_text(CURATION_WRITER.format(tests=str(Path(__file__).parent)))
    seen = set()
    for delay in _delays(1.2, 8, seed=42):
        proc = subprocess.Popen([sys.executable, str(script), str(folder)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = proc.stdout.readline().strip()
        assert line == b"ready", proc.stderr.read().decode()[-2000:]
        time.sleep(delay)
        proc.kill()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
        # every readable curation file is complete and one state
        for name in ("annotations.csv", "annotations.prev.csv"):
            if (folder / name).exists():
                df = pd.read_csv(folder / name, keep_default_na=False)
                assert _table_state(df, states) is not None, (name, df)
        for name in ("masks.tif", "masks.prev.tif"):
            if (folder / name).exists():
                assert _masks_state(tifffile.imread(folder / name), states) is not None, name
        if (folder / AUTOSAVE_NAME).exists():
            lab, feats = _read_autosave(folder / AUTOSAVE_NAME)
            state = _which_state(*_curation_state(lab, feats), states)
            assert state is not None
        # the loader restores one state (the autosave, when there is one), without a warning
        with warnings_as_errors(CurationWarning):
            back = Curation.load(folder)
        state = _which_state(*_curation_state(back.labels, back.features), states)
        assert state is not None
        seen.add(state)
        assert back.recovered_from == ((folder / AUTOSAVE_NAME) if (folder / AUTOSAVE_NAME)
                                       .exists() else None)
        visible = sorted(p.name for p in folder.iterdir() if p.name != STAGING)
        assert set(visible) <= {"metadata.json", "frames.csv", "echem.csv", "stack.ome.tif",
                                "masks.tif", "masks.prev.tif", "annotations.csv",
                                "annotations.prev.csv", AUTOSAVE_NAME}, visible
    clean_leftovers(folder)
    left = sorted((folder / STAGING).iterdir()) if (folder / STAGING).exists() else []
    assert not left, [(p.name, p.read_bytes()[:80] if p.is_file() else "dir") for p in left]


def warnings_as_errors(category):
    import contextlib
    import warnings

    @contextlib.contextmanager
    def ctx():
        with warnings.catch_warnings():
            warnings.simplefilter("error", category)
            yield

    return ctx()
