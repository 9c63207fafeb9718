"""Calibration evidence for the default Ni-rich set (docs/calibration.md)."""

import numpy as np
import pytest

from asymflux import model


def test_unblocked_core_lasts_15_to_25_minutes_at_100_mA_g():
    """Paper Fig. 2b: a fresh 2.4 µm particle keeps a Li-rich core ~15 min; it is gone by ~25 min.

    Li-rich core = θ within 0.025 of θ0 (dI < 0.05 under the default optical response).
    """
    minutes = np.arange(1, 30.01, 0.5)
    res = model.simulate(model.nmc88_lun2025(), model.disk_mesh(1.2), model.Surface(),
                         [model.Charge(100, minutes=30)], output_minutes=minutes)
    core = res.mesh.mean((res.theta >= res.theta0 - 0.025).astype(float))
    i = res.index_of_minutes(minutes)
    vanish = minutes[np.argmax(core[i] == 0)]
    assert 15 <= vanish <= 25
    assert core[res.index_of_minutes(10)[0]] > 0.2  # still a distinct core at 10 min


def test_diffusivity_falls_three_orders_near_full_lithiation():
    D = model.nmc88_lun2025()["Diffusivity [m2.s-1]"]
    assert D(0.5) / D(0.97) > 500
    assert 1e-15 < D(0.5) < 1e-13


def test_theoretical_capacity_and_ocv():
    p = model.nmc88_lun2025()
    assert p["Theoretical capacity [mA.h.g-1]"] == pytest.approx(275, abs=1)
    ocv = p["Open-circuit voltage [V]"]
    theta = np.linspace(0.2, 1.0, 81)
    assert np.all(np.diff(ocv(theta)) < 0)
    # Sturm 2019 NMC811 table: 3.551 V at θ0 = 0.97, 4.218 V at 0.25 (Verbrugge 2017 NMC622:
    # 3.574, 4.110; Chen 2020: 3.512, 4.31)
    assert 3.5 < ocv(0.97) < 3.6 and 4.2 < ocv(0.25) < 4.25


def test_verbrugge2017_ocv_is_the_sourced_msmr_curve_up_to_full_lithiation():
    """The Verbrugge 2017 OCV (set nmc88_verbrugge2017_ocv; a tanh series, compiled by the
    kinetic surface) is the MSMR curve within 2.5 mV from θ 0.1 to 0.995, with its steep fall
    near θ = 1 (slope within 10 % at 0.95-0.99), unlike the Chen 2020 fit, straight (−0.81 V)
    there."""
    from asymflux.model import parameters as P

    ocv = model.get_parameter_set("nmc88_verbrugge2017_ocv")["Open-circuit voltage [V]"]
    assert ocv is P.ocv_nmc622_verbrugge2017
    theta = np.linspace(0.1, 0.995, 200)
    exact = P.ocv_msmr_nmc622_verbrugge2017_exact(theta)
    assert np.abs(ocv(theta) - exact).max() < 2.5e-3
    # the exact curve inverts θ(U)
    assert P.msmr_occupancy(exact) == pytest.approx(theta, abs=1e-9)
    probe = np.array([0.95, 0.97, 0.99])
    h = 1e-5
    slope_exact = (P.ocv_msmr_nmc622_verbrugge2017_exact(probe + h)
                   - P.ocv_msmr_nmc622_verbrugge2017_exact(probe - h)) / (2 * h)
    _, slope = ocv.value_and_slope(probe)
    assert slope == pytest.approx(slope_exact, rel=0.1)
    assert slope[-1] < -4.0  # steep near full lithiation
    _, chen_slope = P.ocv_nmc811_chen2020.value_and_slope(probe)
    assert chen_slope == pytest.approx(-0.809, abs=0.01)
    assert model.get_parameter_set("nmc88_chen2020_ocv")["Open-circuit voltage [V]"] is \
        P.ocv_nmc811_chen2020


def test_rate_sweep_follows_paper_trends():
    """Fig. 5b: less Li at higher rate; the gap to unblocked grows with rate and as η falls."""
    df = model.rate_capability(progress=False)
    table = df.pivot(index="rate_mA_g", columns="blocked", values="li_extracted")
    for col in table:
        assert np.all(np.diff(table[col].to_numpy()) < 0)
    gap_07 = (table["none"] - table["180:0.25:0.7"]).to_numpy()
    gap_03 = (table["none"] - table["180:0.25:0.3"]).to_numpy()
    assert np.all(gap_07 > 0) and np.all(np.diff(gap_07) > 0)
    assert np.all(gap_03 > gap_07) and np.all(np.diff(gap_03) > 0)
    assert list(df.columns) == ["rate_mA_g", "blocked", "li_extracted", "capacity_mAh_g", "minutes",
                                  "end_reason"]
