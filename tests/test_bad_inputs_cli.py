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
from tests._helpers.bad_inputs import (
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
    lines = [ln for ln in err.splitlines()  # warning lines may come before the refusal
             if ln.startswith("asymflux ") and ": warning: " not in ln]
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
    (["--dark", "nowhere.npy"], ["--dark", "nowhere.npy", "no such file"]),
    (["--flat", "nowhere.tif"], ["--flat", "nowhere.tif", "no such file"]),
    (["--min-area-px", "0"], ["--min-area-px 0", "at least 1", "default"]),
    (["--max-area-px", "0"], ["--max-area-px 0", "at least 1"]),
    (["--min-core-px", "0"], ["--min-core-px 0", "at least 1"]),
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


@pytest.mark.parametrize("name, frame, words", [
    ("dark", np.zeros((10, 10)), ["dark frame", "d.npy", "(10, 10)", "(40, 48)"]),
    ("flat", np.zeros((40, 48)), ["flat frame", "d.npy", "zero or negative"]),
    ("flat", np.full((40, 48), np.nan), ["flat frame", "d.npy", "NaN"]),
    ("dark", np.full((40, 48), "x"), ["dark frame", "d.npy", "numeric"]),
], ids=["dark of another shape", "flat of zeros", "flat of NaN", "dark of text"])
def test_analyze_refuses_a_bad_calibration_frame_naming_it(tmp_path, capsys, folder, name,
                                                            frame, words):
    """``--dark`` / ``--flat``: the library's check of the frame against the dataset's
    frames, before any work."""
    np.save(tmp_path / "d.npy", frame)
    refused(tmp_path, capsys, ["analyze", folder, "--out", tmp_path / "res",
                               f"--{name}", tmp_path / "d.npy"], words)


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
    (["--all", "--diffusivity-from-rest"], ["--diffusivity-from-rest", "--all"]),
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
    extra = args if args[0] in ("--particle", "--all") else ["--particle", "1", *args]
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


# ------------------------------------------------------------------ asymflux #28


def test_analyze_refuses_a_zarr_storing_few_of_its_chunks(tmp_path, capsys):
    import zarr

    z = zarr.create_array(store=str(tmp_path / "s.zarr"), shape=(1000, 40, 48),
                          chunks=(1, 40, 48), dtype="u2", attributes={"pixel_nm": 65.0})
    z[0] = 7
    z[-1] = 9
    refused(tmp_path, capsys, ["analyze", tmp_path / "s.zarr", "--out", tmp_path / "res",
                               "--frame-interval-s", "1"],
            ["s.zarr", "only 2 of the 1000 chunks", "0.2%", "never written"])


def test_analyze_refuses_a_folder_of_one_tiff(tmp_path, capsys):
    import tifffile

    (tmp_path / "frames").mkdir()
    tifffile.imwrite(tmp_path / "frames" / "f1.tif", good_dataset().stack[0])
    refused(tmp_path, capsys, ["analyze", tmp_path / "frames", "--out", tmp_path / "res",
                               "--pixel-nm", "65", "--frame-interval-s", "1"],
            ["frames", "one TIFF", "f1.tif", "(40, 48)", "stack (time, row, col)"])


def test_cohort_refuses_an_output_format_it_does_not_write(tmp_path, capsys, folder):
    res = tmp_path / "res"
    res.mkdir()
    (res / "particles.csv").write_text("dataset,ageing,classification\nd,fresh,symmetric\n")
    for name in ("c.xlsx", "c.txt", "c"):
        refused(tmp_path, capsys, ["cohort", res, "--out", tmp_path / name],
                ["--out", name, ".csv or .parquet"])


def test_cohort_names_the_datasets_a_partial_analyze_output_lacks(tmp_path, capsys, folder):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    (broken / "metadata.json").write_text("{")
    res = tmp_path / "res"
    assert main(["analyze", str(folder), str(broken), "--out", str(res)]) == 2
    assert (res / "failures.csv").is_file()
    capsys.readouterr()
    assert main(["cohort", str(res), "--out", str(tmp_path / "c.csv")]) == 0
    err = capsys.readouterr().err
    warns = [ln for ln in err.splitlines() if ln.startswith("asymflux cohort: warning: ")]
    assert len(warns) == 1, err
    assert "partial analyze output" in warns[0] and "1 dataset(s) failed" in warns[0]
    assert "broken" in warns[0] and "failures.csv" in warns[0]


#: (argv after ``simulate --out OUT``, words of the one error line): each a clean refusal
#: naming the option and why, exit 2, nothing written.
SIMULATE_CASES = [
    (["--minutes", "-5,10"], ["--minutes", "(0, inf]", "-5"]),
    (["--minutes", "-5"], ["--minutes", "-5"]),
    (["--diffusivity-m2-s", "-1e-15"], ["--diffusivity-m2-s", "(0, inf]", "-1e-15"]),
    (["--rate-mA-g", "-100"], ["--rate-mA-g"]),
    (["--theta0", "-0.5"], ["--theta0"]),
    (["--radius-um", "1e6"], ["--radius-um 1e+06", "--pixel-nm of at least"]),
    (["--rate-mA-g", "2000", "--minutes", "5,30"],
     ["--minutes 30", "ended at", "emptied of Li", "lower --rate-mA-g"]),
]


@pytest.mark.parametrize("args, words", SIMULATE_CASES, ids=[" ".join(a) for a, _ in SIMULATE_CASES])
def test_simulate_refuses_bad_values_naming_the_reason(tmp_path, capsys, args, words):
    msg = refused(tmp_path, capsys, ["simulate", "--out", tmp_path / "r.npz", *args], words)
    assert "expected one argument" not in msg


def test_simulate_refuses_an_output_that_is_not_npz(tmp_path, capsys):
    for name in ("x.txt", "x.csv", "x"):
        refused(tmp_path, capsys, ["simulate", "--out", tmp_path / name, "--minutes", "5"],
                ["--out", name, ".npz"])


def test_a_mistyped_option_gets_its_command_usage(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["simulate", "--out", str(tmp_path / "r.npz"), "--minuts", "5"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: asymflux simulate")
    assert "asymflux simulate: error: unrecognized arguments: --minuts 5" in err
    assert "did you mean --minutes?" in err
    assert not any(tmp_path.iterdir())


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    from asymflux import __version__

    assert capsys.readouterr().out.strip() == f"asymflux {__version__}"


def test_a_full_disk_is_one_line_saying_so(tmp_path, capsys, monkeypatch, folder):
    from tests._helpers.bad_inputs import full_disk

    full_disk(monkeypatch)
    msg = refused(tmp_path, capsys, ["simulate", "--out", tmp_path / "r.npz", "--minutes", "5"],
                  ["--out", "r.npz", "disk full"])
    assert "Exception ignored" not in capsys.readouterr().err
    assert ".asymflux-partial" not in msg
    refused(tmp_path, capsys, ["analyze", folder, "--out", tmp_path / "res"],
            ["--out", "res", "disk full"])


def test_python_warnings_are_one_line_each(tmp_path, capsys):
    import zarr

    z = zarr.create_array(store=str(tmp_path / "s.zarr"), shape=(8, 40, 48),
                          chunks=(1, 40, 48), dtype="f4", attributes={"pixel_nm": 65.0})
    z[:6] = good_dataset().stack[:6]
    main(["analyze", str(tmp_path / "s.zarr"), "--out", str(tmp_path / "res"),
          "--frame-interval-s", "60"])
    err = capsys.readouterr().err
    warns = [ln for ln in err.splitlines() if "chunks are not stored" in ln]
    assert warns and all(ln.startswith("asymflux analyze: warning: ") for ln in warns), err
    assert "warnings.warn" not in err and "UserWarning" not in err


def test_nan_capacity_cells_at_the_end_are_not_blamed_on_the_clock(tmp_path, capsys, folder):
    nan_capacity(slice(24, 31))(folder)  # the last quarter of the cycler rows
    capsys.readouterr()
    assert main(["analyze", str(folder), "--out", str(tmp_path / "res")]) == 0
    warns = [ln for ln in capsys.readouterr().err.splitlines()
             if ln.startswith("asymflux analyze: warning: ")]
    assert any("capacity_mAh_g cells are NaN" in w and "frame 6-7" in w for w in warns), warns
    assert not any("outside the cycler" in w or "clock" in w for w in warns), warns


def test_every_option_has_help_and_help_prints_cleanly(capsys):
    from asymflux.cli import _subparsers, build_parser

    parser = build_parser()
    for name, sub in _subparsers(parser).items():
        assert sub.description, f"{name}: no description"
        for action in sub._actions:
            assert action.help, f"asymflux {name} {action.option_strings or action.dest}: no help"
        text = sub.format_help()
        assert "%%" not in text, f"{name}: {text}"


def test_echem_without_a_mass_prints_cycles_in_mah(tmp_path, capsys):
    t = np.arange(0, 4000.0, 10.0)
    i = np.where((t // 1000) % 2 == 0, 0.1, -0.1)  # charge, discharge, charge, discharge
    pd.DataFrame({"time_s": t, "voltage_V": 3.7, "current_mA": i}).to_csv(
        tmp_path / "cell.csv", index=False)
    assert main(["echem", str(tmp_path / "cell.csv"), "--cycles", str(tmp_path / "c.csv")]) == 0
    out = capsys.readouterr().out
    assert "in mAh and mA" in out and "charge_capacity_mAh " in out
    c = pd.read_csv(tmp_path / "c.csv")
    assert "charge_capacity_mAh" in c.columns and "charge_capacity_mAh_g" not in c.columns
    # 0.1 mA for 1000 s = 0.0278 mAh per half-cycle
    np.testing.assert_allclose(c["charge_capacity_mAh"], 0.1 * 1000 / 3600, rtol=0.02)
