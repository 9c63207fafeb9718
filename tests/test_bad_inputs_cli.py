"""Every bad input a clean error, no silent wrong number: the command line (asymflux #15).

A table of bad inputs to ``analyze``, ``cohort``, ``fit`` and ``demo-data``: each must exit
with status 2 and one line ``asymflux COMMAND: error: ...`` naming the file / field /
option and what was expected, before any work, and write nothing (everything under the
test's folder, the output location included, is snapshotted before and after). Problems
that do not stop an analysis are printed as one ``warning:`` line each.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from asymflux.cli import main

from ._bad_inputs import (
    FOLDER_CASES,
    good_dataset,
    nan_capacity,
    shift_echem_clock,
    snapshot,
)


def refused(tmp_path, capsys, argv, words, *, absent=()):
    """``asymflux ARGV`` exits 2 with one error line holding ``words`` and writes nothing."""
    before = snapshot(tmp_path)
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 2, (code, out, err)
    lines = [ln for ln in err.splitlines() if ln.startswith("asymflux ")]
    assert len(lines) == 1 and ": error: " in lines[0], err
    assert "Traceback" not in err
    for w in words:
        assert w in lines[0], f"{w!r} not in {lines[0]!r}"
    for w in absent:
        assert w not in lines[0], f"{w!r} in {lines[0]!r}"
    assert snapshot(tmp_path) == before, "something was written"
    return lines[0]


# ------------------------------------------------------------------ analyze: bad dataset folders


@pytest.mark.parametrize("case, breaker, words", FOLDER_CASES, ids=[c[0] for c in FOLDER_CASES])
def test_analyze_refuses_a_bad_dataset_folder(tmp_path, capsys, folder, case, breaker, words):
    breaker(folder)
    refused(tmp_path, capsys, ["analyze", folder, "--out", tmp_path / "res"], words)


def test_analyze_refuses_cycler_data_on_another_clock(tmp_path, capsys, folder):
    shift_echem_clock(1e6)(folder)
    refused(tmp_path, capsys, ["analyze", folder, "--out", tmp_path / "res"],
            ["echem.csv", "not on one clock", "no capacity per frame"])


def test_analyze_refuses_a_cycler_table_of_nan_capacities(tmp_path, capsys, folder):
    nan_capacity(slice(None))(folder)
    refused(tmp_path, capsys, ["analyze", folder, "--out", tmp_path / "res"],
            ["echem.csv", "no finite capacity_mAh_g", "no capacity per frame"])


def test_analyze_reports_nan_capacity_cells_one_line_each(tmp_path, capsys, folder):
    nan_capacity([2, 3, 4])(folder)
    capsys.readouterr()
    # --no-register: the folder's uniform background gives registration nothing to lock on
    # (the movie does not drift); registered, the quality flags would rightly say so
    assert main(["analyze", str(folder), "--out", str(tmp_path / "res"), "--no-register"]) == 0
    err = capsys.readouterr().err
    warns = [ln for ln in err.splitlines() if ln.startswith("asymflux analyze: warning: ")]
    assert len(warns) == 1, err
    assert "echem.csv" in warns[0] and "3 of 32 capacity_mAh_g values are NaN" in warns[0]
    particles = pd.read_csv(tmp_path / "res" / "particles.csv")
    assert particles["vanish_capacity_mAh_g"].notna().any()


def test_analyze_reports_frames_outside_the_cycler_records(tmp_path, capsys, folder):
    e = pd.read_csv(folder / "echem.csv")
    e[e["time_s"] <= 200].to_csv(folder / "echem.csv", index=False)
    capsys.readouterr()
    assert main(["analyze", str(folder), "--out", str(tmp_path / "res")]) == 0
    err = capsys.readouterr().err
    assert any(ln.startswith("asymflux analyze: warning: ") and "lie outside" in ln
               for ln in err.splitlines()), err


# ------------------------------------------------------------------ analyze: bad options

ANALYZE_OPTIONS = [
    (["--asymmetry-threshold", "-1"], ["--asymmetry-threshold", "(0, 1]"]),
    (["--asymmetry-threshold", "0"], ["--asymmetry-threshold", "(0, 1]"]),
    (["--asymmetry-threshold", "1.5"], ["--asymmetry-threshold", "(0, 1]"]),
    (["--asymmetry-threshold", "nan"], ["--asymmetry-threshold", "finite"]),
    (["--threshold", "5"], ["--threshold", "(-1, 1)"]),
    (["--threshold=-inf"], ["--threshold", "finite"]),
    (["--edge-px", "-1"], ["--edge-px", "[0, 1000]"]),
    (["--rolling", "0"], ["--rolling"]),
    (["--rolling", "99"], ["--rolling 99", "number of frames"]),
    (["--pixel-nm", "0.001"], ["--pixel-nm", "[1, 100000]"]),
    (["--pixel-nm", "1e300"], ["--pixel-nm", "[1, 100000]"]),
    (["--pixel-nm", "-65"], ["--pixel-nm"]),
    (["--frame-interval-s", "-5"], ["--frame-interval-s", "(0, 1e+07]"]),
    (["--frame-interval-s", "0"], ["--frame-interval-s"]),
    (["--active-mass-mg", "-1"], ["--active-mass-mg"]),
    (["--channel", "-1"], ["--channel"]),
    (["--z", "-2"], ["--z"]),
    (["--scheduler", "not an address"], ["--scheduler"]),
    (["--masks", "nowhere.tif"], ["nowhere.tif", "does not exist"]),
    (["--echem", "nowhere.mpr"], ["nowhere.mpr"]),
]


@pytest.mark.parametrize("args, words", ANALYZE_OPTIONS, ids=[" ".join(a) for a, _ in ANALYZE_OPTIONS])
def test_analyze_refuses_bad_options(tmp_path, capsys, folder, args, words):
    args = [str(tmp_path / a) if a.startswith("nowhere") else a for a in args]
    msg = refused(tmp_path, capsys, ["analyze", folder, "--out", tmp_path / "res", *args], words)
    if args[0] == "--frame-interval-s":
        assert "pixel_nm" not in msg


def _bare_stack(tmp_path):
    import tifffile

    tifffile.imwrite(tmp_path / "bare.tif", good_dataset().stack)
    return tmp_path / "bare.tif"


@pytest.mark.parametrize("args, words, absent", [
    (["--pixel-nm", "65", "--frame-interval-s", "-5"], ["--frame-interval-s", "(0, 1e+07]"],
     ["pixel_nm"]),
    (["--pixel-nm", "0", "--frame-interval-s", "1"], ["--pixel-nm"], []),
    (["--pixel-nm", "65"], ["bare.tif", "frame times", "frame_interval_s"], []),
    (["--frame-interval-s", "1"], ["bare.tif", "pixel size", "pixel_nm"], []),
], ids=["negative interval", "zero pixel", "no interval", "no pixel size"])
def test_analyze_bare_stack_options(tmp_path, capsys, args, words, absent):
    stack = _bare_stack(tmp_path)
    refused(tmp_path, capsys, ["analyze", stack, "--out", tmp_path / "res", *args], words,
            absent=absent)


def test_analyze_refuses_masks_of_another_shape_naming_the_file(tmp_path, capsys, folder):
    np.save(tmp_path / "m.npy", np.ones((10, 10), np.int32))
    refused(tmp_path, capsys, ["analyze", folder, "--out", tmp_path / "res",
                               "--masks", tmp_path / "m.npy"], ["m.npy", "(10, 10)", "(40, 48)"])


def test_analyze_refuses_a_bare_echem_that_misses_the_frames(tmp_path, capsys):
    stack = _bare_stack(tmp_path)
    t = np.arange(0, 100.0) + 1e6
    pd.DataFrame({"time_s": t, "voltage_V": 3.7, "current_mA": 0.01}).to_csv(
        tmp_path / "cell.csv", index=False)
    refused(tmp_path, capsys, ["analyze", stack, "--out", tmp_path / "res", "--pixel-nm", "65",
                               "--frame-interval-s", "60", "--echem", tmp_path / "cell.csv",
                               "--active-mass-mg", "0.5"], ["cell.csv", "do not overlap"])


# ------------------------------------------------------------------ fit


FIT_FOLDER_CASES = [c for c in FOLDER_CASES if c[0] in {
    "pixel_nm true", "rate_mA_g true", "rate_mA_g text", "metadata missing", "masks wrong shape",
    "stack all zero", "zarr never written", "echem.csv decimal comma quoted"}]


@pytest.mark.parametrize("case, breaker, words", FIT_FOLDER_CASES,
                         ids=[c[0] for c in FIT_FOLDER_CASES])
def test_fit_refuses_a_bad_dataset_folder(tmp_path, capsys, folder, case, breaker, words):
    breaker(folder)
    refused(tmp_path, capsys, ["fit", folder, "--particle", "1", "--out", tmp_path / "f.json"],
            words)


FIT_OPTIONS = [
    (["--particle", "9"], ["--particle 9", "no such particle", "masks.tif", "1, 2"]),
    (["--particle", "0"], ["--particle", "[1, inf]"]),
    (["--particle", "-3"], ["--particle"]),
    (["--rate-mA-g", "-5"], ["--rate-mA-g", "(0, 100000]"]),
    (["--rate-mA-g", "0"], ["--rate-mA-g"]),
    (["--rate-mA-g", "nan"], ["--rate-mA-g", "finite"]),
    (["--rate-mA-g", "inf"], ["--rate-mA-g", "finite"]),
    (["--masks", "wrong_shape.npy"], ["--masks", "wrong_shape.npy", "(10, 10)", "(40, 48)"]),
    (["--masks", "other_ids.npy"], ["--particle 1", "no such particle", "other_ids.npy", "7"]),
    (["--masks", "float.npy"], ["float.npy", "integer"]),
    (["--masks", "nowhere.npy"], ["nowhere.npy", "does not exist"]),
    (["--masks", "garbage.npy"], ["garbage.npy"]),
    (["--masks", "empty.tif"], ["empty.tif"]),
]


@pytest.mark.parametrize("args, words", FIT_OPTIONS, ids=[" ".join(a) for a, _ in FIT_OPTIONS])
def test_fit_refuses_bad_options(tmp_path, capsys, folder, args, words):
    side = tmp_path / "side"
    side.mkdir()
    np.save(side / "wrong_shape.npy", np.ones((10, 10), np.int32))
    other = np.zeros((40, 48), np.int32)
    other[5:15, 5:15] = 7
    np.save(side / "other_ids.npy", other)
    np.save(side / "float.npy", np.full((40, 48), 0.5))
    (side / "garbage.npy").write_bytes(b"\x93NUMPY\x01\x00garbage")
    (side / "empty.tif").write_bytes(b"")
    args = [str(side / a) if a.endswith((".npy", ".tif")) else a for a in args]
    extra = args if args[0] == "--particle" else ["--particle", "1", *args]
    refused(tmp_path, capsys, ["fit", folder, "--out", tmp_path / "f.json", *extra], words)


# ------------------------------------------------------------------ cohort and demo-data


def test_cohort_refuses_bad_tables(tmp_path, capsys):
    res = tmp_path / "res"
    res.mkdir()
    (res / "particles.csv").write_text("")
    refused(tmp_path, capsys, ["cohort", res, "--out", tmp_path / "c.csv"],
            ["particles.csv", "not a readable"])
    (res / "particles.csv").write_text("dataset,particle_id\nd,1\n")
    refused(tmp_path, capsys, ["cohort", res, "--out", tmp_path / "c.csv"],
            ["particles.csv", "classification"])
    (res / "particles.csv").write_text("dataset,ageing,classification\nd,fresh,symmetric\n")
    refused(tmp_path, capsys, ["cohort", res, "--out", tmp_path / "c.csv", "--by", "cohortx"],
            ["particles.csv", "cohortx"])
    refused(tmp_path, capsys, ["cohort", tmp_path / "nowhere", "--out", tmp_path / "c.csv"],
            ["nowhere"])


def test_demo_data_refuses_unknown_names(tmp_path, capsys):
    refused(tmp_path, capsys, ["demo-data", tmp_path / "out", "--names", "nope"], ["nope"])
