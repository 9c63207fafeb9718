"""End conditions: ``--cutoff-V`` / ``--cutoff-theta`` on the command line, one end for every
run of Fig. 5b (the model explorer's, ``rate-sweep``'s), a kinetic discharge's lower limit."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from asymflux import model
from asymflux.cli import main
from asymflux.views import _compute as C


def _simulate(tmp_path, *args):
    out = tmp_path / "run.npz"
    assert main(["simulate", "--out", str(out), "--pixel-nm", "300", *args]) == 0
    d = np.load(out)
    return d, json.loads(str(d["metadata"]))


def test_simulate_cutoff_V_ends_at_that_voltage(tmp_path):
    """A kinetic charge with --cutoff-V ends at that particle potential (within 5 mV), before
    the last output time, and the file holds the state at the cut-off."""
    d, meta = _simulate(tmp_path, "--film", "180:0.25:0.2", "--rate-mA-g", "400",
                        "--minutes", "5,60", "--cutoff-V", "4.1")
    assert abs(d["voltage_V"][-1] - 4.1) < 5e-3
    assert d["voltage_V"][0] < 4.0
    assert meta["end_reason"] == "cut-off voltage 4.1 V" and meta["cutoff_V"] == 4.1
    assert d["minutes"][0] == 5.0 and 5.0 < d["minutes"][-1] == pytest.approx(meta["end_minutes"])
    assert d["theta"].shape[0] == 2


def test_simulate_cutoff_theta_and_no_cutoff(tmp_path):
    d, meta = _simulate(tmp_path, "--blocked", "180:0.25:0.3", "--rate-mA-g", "200",
                        "--minutes", "60", "--cutoff-theta", "0.5")
    assert abs(d["min_surface_theta"][-1] - 0.5) < 1e-3
    assert meta["end_reason"] == "cut-off occupancy 0.5" and d["minutes"][-1] < 60
    d, meta = _simulate(tmp_path, "--minutes", "2,4")  # no cut-off: runs to the last time
    assert d["minutes"].tolist() == [2.0, 4.0] and meta["end_reason"] == "duration reached"


@pytest.mark.parametrize("args, words", [(["--cutoff-V", "-1"], ["--cutoff-V"]),
                                         (["--cutoff-theta", "1"], ["--cutoff-theta", "(0, 1)"])])
def test_bad_cutoffs(tmp_path, capsys, args, words):
    for cmd in (["simulate", "--out", str(tmp_path / "x.npz")],
                ["rate-sweep", "--csv", str(tmp_path / "x.csv"), "--quiet"]):
        assert main([*cmd, *args]) == 2
        err = capsys.readouterr().err
        assert all(w in err for w in words)
    assert list(tmp_path.iterdir()) == []


def test_explorer_fig5b_is_rate_sweep(tmp_path, capsys):
    """The model explorer's Fig. 5b point and ``asymflux rate-sweep`` end their runs the same
    way (surface occupancy 0.2, also on a kinetic surface) and give the same Li extracted for
    the same settings (within the explorer's coarser mesh: 5e-5 claimed, 3e-4 allowed); the
    issue's case: a 0.2 Ω m² film on 40 % of the perimeter at 100 mA/g."""
    out = tmp_path / "sweep.csv"
    assert main(["rate-sweep", "--rates", "100", "--film", "180:0.4:0.2", "--csv", str(out),
                 "--quiet"]) == 0
    assert "each charge ends when the surface occupancy first reaches 0.2" in capsys.readouterr().out
    cli = pd.read_csv(out)
    assert cli["end_reason"].tolist() == ["cut-off occupancy 0.2"]
    page = C.li_extracted(0.3, 0.4, 100.0, 1.0, 0.2)
    assert page == pytest.approx(cli["li_extracted"].iloc[0], abs=3e-4)
    # the same function, the same mesh as the API's sweep: equal to the integrator's tolerance
    mesh = model.disk_mesh(C.FIG4_RADIUS_UM, n_radial=C.SWEEP_MESH[0], n_angular=C.SWEEP_MESH[1])
    api = model.rate_capability([100.0], [C.make_surface(0.3, 0.4, 180.0, 0.2)], mesh=mesh,
                                progress=False)
    assert page == pytest.approx(api["li_extracted"].iloc[0], abs=1e-6)
    assert C.FIG5B_END_TEXT == "each charge " + api.attrs["end_condition"]
    side = C.li_extracted_at_rates(0.3, 0.4, [100.0], 1.0, 0.2)
    assert side[0] == pytest.approx(page, abs=1e-4)


def test_rate_sweep_cutoff_V_every_run():
    """``cutoff_voltage_V`` alone ends every run at that voltage (prescribed surface: the
    least lithiated surface point's OCV)."""
    mesh = model.disk_mesh(1.2, n_radial=8, n_angular=16)
    t = model.rate_capability([100.0, 400.0], [model.Surface()], mesh=mesh, cutoff_occupancy=None,
                              cutoff_voltage_V=4.2, progress=False)
    assert t["end_reason"].tolist() == ["cut-off voltage 4.2 V"] * 2
    assert t.attrs["end_condition"] == "ends when the voltage rises to 4.2 V"
    with pytest.raises(ValueError, match="needs an end"):
        model.rate_capability([100.0], mesh=mesh, cutoff_occupancy=None, progress=False)


def test_kinetic_discharge_lower_cutoff():
    """A kinetic discharge defaults to surface occupancy 0.99 or 3.0 V; a given voltage is a
    lower limit, reached within 5 mV."""
    assert model.Discharge(100.0).cutoffs(kinetic=True) == (0.99, 3.0)
    assert model.Discharge(100.0).cutoffs(kinetic=False) == (0.99, None)
    mesh = model.disk_mesh(1.2, n_radial=8, n_angular=16)
    surface = model.Surface.kinetic([model.FilmArc(180.0, 0.25, 0.2)])
    res = model.simulate(None, mesh, surface,
                         [model.Charge(200.0, minutes=20), model.Discharge(200.0, cutoff_voltage_V=3.6)])
    # (3.6 V: with the Verbrugge 2017 OCV the discharge starts just below 3.7 V)
    assert res.end_reason == "cut-off voltage 3.6 V"
    assert abs(res.voltage_V[-1] - 3.6) < 5e-3


@pytest.mark.parametrize("k0", [0, 0.0, -1.0, float("nan"), "6.8"])
def test_k0_validated(k0):
    """k0 = 0 is an error naming the parameter (it used to become 1 A/m² silently)."""
    params = model.nmc88_lun2025()
    params["Exchange-current prefactor [A.m-2]"] = k0
    mesh = model.disk_mesh(1.2, n_radial=4, n_angular=8)
    with pytest.raises(ValueError, match=r"Exchange-current prefactor \[A.m-2\]' \(k0\)"):
        model.simulate(params, mesh, model.Surface.kinetic(), [model.Charge(100.0, minutes=1)])
    with pytest.raises(ValueError, match="k0"):
        model.kinetics.KineticBoundary(mesh, params, model.Surface.kinetic())
