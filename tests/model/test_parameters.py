"""Parameter-set variants: the deep-delithiation (H2-H3) low-diffusivity set and Fig. 5b."""

import numpy as np
import pandas as pd
import pytest

from asymflux import figures, model
from asymflux.cli import main
from asymflux.model.parameters import (
    DEEP_DELITHIATION_THETA,
    DeepDelithiationDiffusivity,
    LogisticDiffusivity,
    kirchhoff_function,
)

LOW_D = "nmc88_h2h3_low_diffusivity"


def test_low_diffusivity_set_is_the_default_above_the_h2_h3_region():
    default, low = model.nmc88_lun2025(), model.get_parameter_set(LOW_D)
    assert set(default) == set(low)
    for key in default:
        if key not in ("Diffusivity [m2.s-1]", "Open-circuit voltage [V]"):
            assert low[key] == default[key], key
    assert low["Open-circuit voltage [V]"] is default["Open-circuit voltage [V]"]
    d0, d1 = default["Diffusivity [m2.s-1]"], low["Diffusivity [m2.s-1]"]
    above = np.linspace(DEEP_DELITHIATION_THETA[1], 1.0, 2001)
    # bit for bit: the same D and the same Kirchhoff potential (so the same fluxes)
    np.testing.assert_array_equal(d1(above), d0(above))
    np.testing.assert_array_equal(d1.kirchhoff(above), d0.kirchhoff(above))
    # below: ten times lower at deep delithiation, monotone in between, never above default
    below = np.linspace(0.0, DEEP_DELITHIATION_THETA[1], 501)
    assert np.all(d1(below) <= d0(below))
    assert d1(0.2) == pytest.approx(0.1 * d0(0.2), rel=1e-9)
    assert np.all(np.diff(d1(below)) >= 0)


def test_deep_delithiation_kirchhoff_is_the_integral_of_d():
    d = model.get_parameter_set(LOW_D)["Diffusivity [m2.s-1]"]
    theta = np.linspace(0.05, 0.99, 400)
    h = 1e-6
    slope = (d.kirchhoff(theta + h) - d.kirchhoff(theta - h)) / (2 * h)
    np.testing.assert_allclose(slope, d(theta), rtol=1e-5)
    tab = kirchhoff_function(lambda th: d(th))  # the tabulated fallback, independent
    diff = d.kirchhoff(theta) - tab(theta)
    assert np.ptp(diff) < 1e-6 * d.kirchhoff(1.0)


def test_deep_delithiation_diffusivity_validation():
    base = LogisticDiffusivity(2e-14, 2e-17, 0.86, 0.01)
    with pytest.raises(ValueError, match="deep_m2_s"):
        DeepDelithiationDiffusivity(base, 3e-14, 0.25, 0.35)
    with pytest.raises(ValueError, match="theta_b"):
        DeepDelithiationDiffusivity(base, 2e-15, 0.35, 0.25)
    with pytest.raises(ValueError, match="10 widths"):
        DeepDelithiationDiffusivity(base, 2e-15, 0.6, 0.8)


@pytest.fixture(scope="module")
def rate_gaps():
    """Li extracted at the 0.2 cut-off at 50 and 400 mA/g, 2.4 µm disk (the paper's size)."""
    surfaces = {"none": model.Surface(), "180:0.25:0.3": model.Surface.from_strings(["180:0.25:0.3"])}
    out = {}
    for name in ("nmc88_lun2025", LOW_D):
        table = model.rate_capability([50.0, 400.0], surfaces, params=model.get_parameter_set(name),
                                      mesh=model.disk_mesh(1.2), progress=False)
        out[name] = figures.fig5b_rate_gap(table).set_index("blocked")
    return out


def test_low_diffusivity_at_deep_delithiation_widens_the_fig5b_rate_gap(rate_gaps):
    """docs/calibration.md: 0.003 -> 0.029 Li per formula unit unblocked, 0.007 -> 0.040 for
    a quarter at η = 0.3."""
    default, low = rate_gaps["nmc88_lun2025"], rate_gaps[LOW_D]
    for surface in ("none", "180:0.25:0.3"):
        assert default.loc[surface, "li_gap"] > 0
        assert low.loc[surface, "li_gap"] > 3 * default.loc[surface, "li_gap"], surface
    assert default.loc["none", "li_gap"] == pytest.approx(0.0032, abs=0.001)
    assert low.loc["none", "li_gap"] == pytest.approx(0.0286, abs=0.004)
    # the blocked quarter still loses more than the clean particle
    assert low.loc["180:0.25:0.3", "li_gap"] > low.loc["none", "li_gap"]


def test_rate_sweep_selects_the_parameter_set_by_name(tmp_path):
    out = tmp_path / "sweep.csv"
    assert main(["rate-sweep", "--params", LOW_D, "--rates", "50,400", "--csv", str(out),
                 "--quiet"]) == 0
    df = pd.read_csv(out)
    gap = df["li_extracted"].iloc[0] - df["li_extracted"].iloc[1]
    assert gap == pytest.approx(0.0286, abs=0.004)
