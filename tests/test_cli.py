"""The asymflux command line: outputs, and errors that write nothing."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from asymflux.cli import main


def test_simulate_writes_the_documented_arrays(tmp_path):
    out = tmp_path / "run.npz"
    assert main(["simulate", "--out", str(out), "--blocked", "180:0.25:0.3",
                 "--blocked", "0:0.1:0.8", "--minutes", "2.5,5", "--pixel-nm", "100"]) == 0
    with np.load(out) as f:
        assert {"minutes", "x_um", "y_um", "theta", "mean_theta", "capacity_mAh_g"} <= set(f.files)
        np.testing.assert_allclose(f["minutes"], [2.5, 5])
        assert f["theta"].shape == (2, f["y_um"].size, f["x_um"].size) == (2, 24, 24)
        assert np.isnan(f["theta"][0, 0, 0])
        np.testing.assert_allclose(f["capacity_mAh_g"], [100 * 2.5 / 60, 100 * 5 / 60])
        assert json.loads(str(f["metadata"]))["blocked"] == "180:0.25:0.3 0:0.1:0.8"


def test_simulate_constant_diffusivity(tmp_path):
    out = tmp_path / "c.npz"
    assert main(["simulate", "--out", str(out), "--diffusivity-m2-s", "1e-15", "--theta0", "0.9",
                 "--radius-um", "2", "--rate-mA-g", "50", "--minutes", "1"]) == 0
    with np.load(out) as f:
        assert np.nanmax(f["theta"]) <= 0.9
        assert f["x_um"].max() < 2.0


@pytest.mark.parametrize(
    "args, words",
    [
        (["--rate-mA-g", "0"], ["--rate-mA-g", "(0, inf]"]),
        (["--rate-mA-g", "nan"], ["--rate-mA-g"]),
        (["--blocked", "0:0.25:0"], ["eta", "(0, 1]"]),
        (["--blocked", "0:1.2:0.5"], ["fraction", "[0, 1)"]),
        (["--blocked", "0:0.5:0.5", "--blocked", "90:0.5:0.5"], ["sum to less than 1"]),
        (["--blocked", "0:0.3:0.5", "--blocked", "90:0.3:0.5"], ["overlap"]),
        (["--radius-um", "-1"], ["--radius-um"]),
        (["--theta0", "1.5"], ["--theta0", "(0, 1]"]),
        (["--params", "nope"], ["--params"]),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, args, words):
    out = tmp_path / "bad.npz"
    assert main(["simulate", "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    for w in words:
        assert w in err
    assert list(tmp_path.iterdir()) == []


def test_rate_sweep_csv(tmp_path):
    out = tmp_path / "sweep.csv"
    assert main(["rate-sweep", "--rates", "100,400", "--blocked", "180:0.25:0.3",
                 "--csv", str(out), "--quiet"]) == 0
    df = pd.read_csv(out)
    assert list(df.columns) == ["rate_mA_g", "blocked", "li_extracted", "capacity_mAh_g", "minutes",
                                "end_reason"]
    assert df["blocked"].tolist() == ["180:0.25:0.3"] * 2
    assert df["li_extracted"].iloc[0] > df["li_extracted"].iloc[1]
    np.testing.assert_allclose(df["capacity_mAh_g"], df["li_extracted"] * 274.99, rtol=1e-3)


def test_rate_sweep_bad_cutoff(tmp_path):
    out = tmp_path / "sweep.csv"
    assert main(["rate-sweep", "--cutoff", "1.5", "--csv", str(out), "--quiet"]) == 2
    assert not out.exists()


def test_console_script_runs():
    proc = subprocess.run([sys.executable, "-m", "asymflux.cli", "--help"], capture_output=True,
                          text=True)
    assert proc.returncode == 0 and "simulate" in proc.stdout and "rate-sweep" in proc.stdout


@pytest.mark.slow
def test_demo_writes_figures_checks_trends_and_builds_data(tmp_path, capsys):
    from asymflux import datasets

    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--quiet"]) == 0
    for name in ("fig4.png", "fig5b.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (out / name).stat().st_size > 10_000
    table = pd.read_csv(out / "fig5b.csv")
    assert len(table) == 12 and set(table["rate_mA_g"]) == {50, 100, 200, 400}
    assert "FAILED" not in capsys.readouterr().out
    for name in datasets.list_datasets():
        assert (datasets.path(name) / "metadata.json").exists()


# ------------------------------------------------------------------ output locations (#15)
# (the full table of bad outputs per command is in tests/test_transactions.py)


def _special_nodes(tmp_path):
    import os
    import stat

    nodes = []
    os.mkfifo(tmp_path / "fifo")
    nodes.append(tmp_path / "fifo")
    if os.geteuid() == 0:  # a private /dev/null in tmp_path, never the real one
        os.mknod(tmp_path / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
        nodes.append(tmp_path / "null")
    return nodes


def test_special_files_are_refused_and_kept(tmp_path, capsys):
    import stat

    for node in _special_nodes(tmp_path):
        mode = node.lstat().st_mode
        assert main(["simulate", "--out", str(node), "--minutes", "1"]) == 2
        err = capsys.readouterr().err
        assert "special file" in err and str(node) in err and len(err.strip().splitlines()) == 1
        assert node.lstat().st_mode == mode and not stat.S_ISREG(mode)
    assert sorted(p.name for p in tmp_path.iterdir()) <= ["fifo", "null"]


def test_output_that_is_a_folder_is_refused_before_work(tmp_path, capsys):
    assert main(["rate-sweep", "--rates", "100", "--csv", str(tmp_path), "--quiet"]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_cohort_does_not_overwrite_its_input(tmp_path, capsys):
    res = tmp_path / "res"
    res.mkdir()
    text = "dataset,ageing,particle_id,classification\nd,fresh,1,symmetric\n"
    (res / "particles.csv").write_text(text)
    assert main(["cohort", str(res), "--out", str(res / "particles.csv")]) == 2
    err = capsys.readouterr().err
    assert "input" in err and len(err.strip().splitlines()) == 1
    assert (res / "particles.csv").read_text() == text
    assert sorted(p.name for p in res.iterdir()) == ["particles.csv"]


def test_simulate_with_a_film_writes_voltage_and_flux_ratio(tmp_path):
    out = tmp_path / "kin.npz"
    assert main(["simulate", "--out", str(out), "--film", "180:0.25:0.2", "--minutes", "1,5",
                 "--pixel-nm", "100"]) == 0
    with np.load(out) as f:
        v = f["voltage_V"]
        assert v.shape == (2,) and np.all((3.4 < v) & (v < 4.3)) and v[1] > v[0]
        assert f["arc_flux_ratio"].shape == (2, 1) and np.all(f["arc_flux_ratio"] < 1)
        meta = json.loads(str(f["metadata"]))
        assert meta["surface"] == "kinetic" and meta["blocked"] == "film 180:0.25:0.2"
    plain = tmp_path / "plain.npz"
    assert main(["simulate", "--out", str(plain), "--minutes", "1", "--pixel-nm", "100"]) == 0
    with np.load(plain) as f:
        assert f["voltage_V"].shape == (1,) and np.isfinite(f["voltage_V"]).all()


@pytest.mark.parametrize(
    "args, words",
    [
        (["--blocked", "400:0.25:0.3"], ["--blocked 400:0.25:0.3", "[0, 360)"]),
        (["--blocked=-10:0.25:0.3"], ["[0, 360)"]),
        (["--film", "360:0.25:0.1"], ["--film 360:0.25:0.1", "[0, 360)"]),
        (["--film", "0:0:0.1"], ["--film", "fraction", "(0, 1]"]),
        (["--film", "0:1.5:0.1"], ["--film", "fraction"]),
        (["--film", "0:0.25:-0.1"], ["--film", "resistance", "[0, inf]"]),
        (["--film", "0:0.25:inf"], ["--film", "resistance", "finite"]),
        (["--film", "0:0.25:nan"], ["--film", "resistance"]),
        (["--film", "0:0.25"], ["--film", "CENTER_DEG:FRACTION:R_OHM_M2"]),
        (["--film", "0:0.3:0.1", "--film", "90:0.3:0.1"], ["--film", "overlap"]),
        (["--film", "0:0.25:0.1", "--blocked", "180:0.25:0.3"], ["cannot be combined"]),
    ],
)
def test_bad_arcs_exit_2_with_one_line(tmp_path, capsys, args, words):
    out = tmp_path / "bad.npz"
    assert main(["simulate", "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    for w in words:
        assert w in err
    assert list(tmp_path.iterdir()) == []
    assert main(["rate-sweep", "--csv", str(tmp_path / "s.csv"), "--quiet", *args]) == 2
    assert list(tmp_path.iterdir()) == []


def test_rate_sweep_with_a_film(tmp_path):
    out = tmp_path / "sweep.csv"
    assert main(["rate-sweep", "--rates", "100,400", "--film", "180:0.25:0.2",
                 "--csv", str(out), "--quiet"]) == 0
    df = pd.read_csv(out)
    assert df["blocked"].tolist() == ["film 180:0.25:0.2"] * 2
    assert df["li_extracted"].iloc[0] > df["li_extracted"].iloc[1] > 0


def test_the_help_names_every_parameter_set():
    """The --params help is plain text (no model import at CLI start): it must stay true."""
    from asymflux.cli import build_parser
    from asymflux.model.parameters import PARAMETER_SETS

    text = " ".join(build_parser()._subparsers._group_actions[0].choices["simulate"]
                    .format_help().split())
    for name in PARAMETER_SETS:
        assert name in text


def _gain_field(shape):
    """A smooth camera gain (a flat field's pattern), mean 1, 0.6-1.4 across the frame."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    g = 1 + 0.4 * np.cos(xx / shape[1] * 2.5) * np.sin(yy / shape[0] * 2.0 + 0.5)
    return g / g.mean()


def test_analyze_dark_and_flat_undo_the_camera(tmp_path, capsys):
    """A movie seen through a camera (offset 50, a gain varying 0.6-1.4 across the frame):
    ``--dark`` / ``--flat`` give the clean movie's tables back, and they are its inputs in
    provenance.json; without them dI is off."""
    from asymflux import io

    from ._bad_inputs import good_dataset

    clean = good_dataset()
    gain = _gain_field(clean.stack.shape[1:])
    dark = np.full(clean.stack.shape[1:], 50.0)
    seen = io.Dataset(stack=(clean.stack * gain + dark).astype(np.float32), time_s=clean.time_s,
                      pixel_nm=clean.pixel_nm, echem=clean.echem, metadata=clean.metadata,
                      masks=clean.masks)
    io.write_dataset(clean, tmp_path / "clean")
    io.write_dataset(seen, tmp_path / "seen")
    np.save(tmp_path / "dark.npy", np.stack([dark, dark]))  # a stack of dark frames: averaged
    np.save(tmp_path / "flat.npy", 3000.0 * gain + dark)
    # the calibration alone; unregistered (float32 rounding may move this tiny movie's
    # drift estimate by a pixel)
    opts = ["--illumination", "off", "--no-register"]
    assert main(["analyze", str(tmp_path / "clean"), "--out", str(tmp_path / "a"), *opts]) == 0
    assert main(["analyze", str(tmp_path / "seen"), "--out", str(tmp_path / "b"), *opts,
                 "--dark", str(tmp_path / "dark.npy"), "--flat", str(tmp_path / "flat.npy")]) == 0
    assert main(["analyze", str(tmp_path / "seen"), "--out", str(tmp_path / "c"), *opts]) == 0
    a, b, c = (pd.read_csv(tmp_path / x / "timeseries.csv") for x in "abc")
    np.testing.assert_allclose(b["mean_dI"], a["mean_dI"], atol=1e-4)
    np.testing.assert_allclose(b["offset_nm"], a["offset_nm"], atol=1e-3, equal_nan=True)
    assert np.nanmax(np.abs(c["mean_dI"] - a["mean_dI"])) > 0.01  # the offset dilutes dI
    inputs = json.dumps(json.loads((tmp_path / "b" / "provenance.json").read_text())["inputs"])
    assert "dark.npy" in inputs and "flat.npy" in inputs


def test_analyze_illumination_on_off_and_auto(tmp_path, capsys):
    """``--illumination``: a beam profile that moves over the frame changes the numbers
    with "on" and "auto" (said in the warnings), not with "off"."""
    from asymflux import io

    from ._bad_inputs import good_dataset

    clean = good_dataset()
    yy, xx = np.mgrid[: clean.stack.shape[1], : clean.stack.shape[2]]
    beam = np.stack([np.exp(-((xx - 8 - 4 * k) ** 2 + (yy - 20) ** 2) / (2 * 40.0 ** 2))
                     for k in range(len(clean.stack))])  # its centre moves 28 px
    moving = io.Dataset(stack=(clean.stack * beam).astype(np.float32), time_s=clean.time_s,
                        pixel_nm=clean.pixel_nm, echem=clean.echem, metadata=clean.metadata,
                        masks=clean.masks)
    io.write_dataset(moving, tmp_path / "ds")
    tables, errs = {}, {}
    for mode in ("off", "on", "auto"):
        capsys.readouterr()
        assert main(["analyze", str(tmp_path / "ds"), "--out", str(tmp_path / mode),
                     "--illumination", mode]) == 0
        errs[mode] = capsys.readouterr().err
        tables[mode] = pd.read_csv(tmp_path / mode / "timeseries.csv")
    assert "illumination's spatial pattern changes" in errs["auto"]
    assert "illumination's spatial pattern" not in errs["off"] + errs["on"]
    pd.testing.assert_frame_equal(tables["auto"], tables["on"])
    assert np.nanmax(np.abs(tables["on"]["mean_dI"] - tables["off"]["mean_dI"])) > 1e-3
