"""The user's own material: OCV and D(θ) tables through the API and the command line."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from asymflux import model
from asymflux.cli import main
from asymflux.model.parameters import TableDiffusivity, TableOCV, ocv_nmc622_verbrugge2017

MESH = model.disk_mesh(1.2, n_radial=8, n_angular=16)
FILM = model.Surface.kinetic([model.FilmArc(180.0, 0.25, 0.2)])


def _ocv_csv(path, theta):
    pd.DataFrame({"theta": theta, "voltage_V": ocv_nmc622_verbrugge2017(theta)}).to_csv(path, index=False)
    return path


def test_ocv_table_sampled_from_the_built_in_curve_reproduces_its_run():
    """A table of a built-in OCV (Verbrugge 2017's, a closed form; 161 points over θ 0.2-1)
    gives the built-in kinetic run:
    V within 0.5 mV, θ within 1e-4 (PCHIP between the points: 8e-6 V off the curve)."""
    theta = np.linspace(0.2, 1.0, 161)[::-1]  # any order
    user = model.parameters_from_tables(ocv=(theta, ocv_nmc622_verbrugge2017(theta)))
    assert isinstance(user["Open-circuit voltage [V]"], TableOCV)
    steps = [model.Charge(200.0, minutes=15)]
    out = [2.0, 5.0, 10.0, 15.0]
    ref = model.simulate(model.get_parameter_set("nmc88_verbrugge2017_ocv"), MESH, FILM, steps,
                         output_minutes=out)
    res = model.simulate(user, MESH, FILM, steps, output_minutes=out)
    i, j = ref.index_of_minutes(out), res.index_of_minutes(out)
    np.testing.assert_allclose(res.voltage_V[j], ref.voltage_V[i], atol=5e-4)
    np.testing.assert_allclose(res.theta[j], ref.theta[i], atol=1e-4)
    u, du = user["Open-circuit voltage [V]"].value_and_slope(np.array([0.1, 0.5, 1.2]))
    assert np.all(du < 0) and np.all(np.isfinite(u))  # straight lines beyond the table


def test_diffusivity_table_sampled_from_the_built_in_reproduces_its_run():
    built_in = model.nmc88_lun2025()["Diffusivity [m2.s-1]"]
    theta = np.linspace(0.0, 1.0, 801)
    user = model.parameters_from_tables(diffusivity=(theta, built_in(theta)))
    assert isinstance(user["Diffusivity [m2.s-1]"], TableDiffusivity)
    steps = [model.Charge(100.0, minutes=20)]
    ref = model.simulate(None, MESH, model.Surface.from_strings(["180:0.25:0.3"]), steps)
    res = model.simulate(user, MESH, model.Surface.from_strings(["180:0.25:0.3"]), steps)
    np.testing.assert_allclose(res.theta[-1], ref.theta[-1], atol=2e-3)


def test_cli_ocv_and_diffusivity_tables(tmp_path):
    """``--ocv`` reproduces the built-in run through the command line; ``--diffusivity`` is
    used (a tenfold lower D leaves a steeper gradient)."""
    csv = _ocv_csv(tmp_path / "ocv.csv", np.linspace(0.2, 1.0, 161))
    args = ["--film", "180:0.25:0.2", "--minutes", "5,10", "--pixel-nm", "300"]
    assert main(["simulate", "--out", str(tmp_path / "a.npz"), "--params",
                 "nmc88_verbrugge2017_ocv", *args]) == 0
    assert main(["simulate", "--out", str(tmp_path / "b.npz"), "--ocv", str(csv), *args]) == 0
    a, b = np.load(tmp_path / "a.npz"), np.load(tmp_path / "b.npz")
    np.testing.assert_allclose(b["voltage_V"], a["voltage_V"], atol=5e-4)
    theta = np.linspace(0, 1, 801)
    d = model.nmc88_lun2025()["Diffusivity [m2.s-1]"](theta) / 10
    pd.DataFrame({"theta": theta, "diffusivity_m2_s": d}).to_csv(tmp_path / "d.csv", index=False)
    assert main(["simulate", "--out", str(tmp_path / "c.npz"), "--diffusivity",
                 str(tmp_path / "d.csv"), *args]) == 0
    c = np.load(tmp_path / "c.npz")
    assert np.nanmax(c["theta"][-1]) - np.nanmin(c["theta"][-1]) > \
        np.nanmax(a["theta"][-1]) - np.nanmin(a["theta"][-1])


@pytest.mark.parametrize("rows, flag, words", [
    ("theta,voltage_V\n0.3,4.1\n0.5,4.2\n", "--ocv", ["ocv.csv", "voltage_V", "must not increase"]),
    ("theta,voltage_V\n0.3,4.1\n1.5,3.6\n", "--ocv", ["ocv.csv", "theta", "[0, 1]"]),
    ("theta,U\n0.3,4.1\n0.5,3.9\n", "--ocv", ["ocv.csv", "'voltage_V'", "header"]),
    ("theta,voltage_V\n0.3,4.1\n0.5,abc\n", "--ocv", ["ocv.csv", "'voltage_V'", "row 2"]),
    ("theta,voltage_V\n0.3,4.1\n0.3,3.9\n", "--ocv", ["ocv.csv", "repeat"]),
    ("theta,voltage_V\n0.3,4.1\n", "--ocv", ["ocv.csv", "at least 2"]),
    ("theta,diffusivity_m2_s\n0.3,1e-14\n0.5,0\n", "--diffusivity",
     ["ocv.csv", "diffusivity_m2_s", "(0, 1e-08]"]),
])
def test_bad_tables_name_the_file_and_column(tmp_path, capsys, rows, flag, words):
    path = tmp_path / "ocv.csv"
    path.write_text(rows)
    for cmd in (["simulate", "--out", str(tmp_path / "x.npz")],
                ["rate-sweep", "--csv", str(tmp_path / "x.csv"), "--quiet"]):
        assert main([*cmd, flag, str(path)]) == 2
        err = capsys.readouterr().err
        assert flag in err and all(w in err for w in words), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ocv.csv"]


def test_table_and_constant_diffusivity_not_combined(tmp_path, capsys):
    assert main(["simulate", "--out", str(tmp_path / "x.npz"), "--diffusivity", "d.csv",
                 "--diffusivity-m2-s", "1e-15"]) == 2
    assert "cannot be combined" in capsys.readouterr().err


def test_a_table_short_of_the_initial_occupancy_is_warned_about():
    """The OCV beyond a table's last point is its end continued in a line: a table that
    stops before theta0 (0.97, where the asymmetry forms) says so."""
    import warnings

    theta = np.linspace(0.2, 0.9, 15)
    short = (theta, ocv_nmc622_verbrugge2017(theta))
    with pytest.warns(UserWarning, match="covers theta 0.2-0.9.*starts at theta 0.97"):
        model.parameters_from_tables(ocv=short)
    theta = np.linspace(0.2, 1.0, 17)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.parameters_from_tables(ocv=(theta, ocv_nmc622_verbrugge2017(theta)))
