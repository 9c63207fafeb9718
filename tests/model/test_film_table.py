"""The film-resistance calibration table against the simulations it summarises."""

import numpy as np
import pytest

from asymflux.model import calibration


@pytest.mark.parametrize("row", [0, 6, 10])
def test_table_rows_are_the_simulated_effective_ratio(row):
    r, eta = calibration.EFFECTIVE_RATIO_TABLE[row]
    assert calibration.effective_flux_ratio(r) == pytest.approx(eta, abs=1.5e-3)


def test_interpolation_hits_the_rows_and_lands_between_them():
    for r, eta in calibration.EFFECTIVE_RATIO_TABLE:
        assert calibration.film_resistance_for_eta(eta) == pytest.approx(r, rel=1e-9)
    assert calibration.film_resistance_for_eta(0.3) == pytest.approx(
        calibration.FILM_RESISTANCE_ETA_0_3_OHM_M2)
    assert calibration.film_resistance_for_eta(0.7) == pytest.approx(
        calibration.FILM_RESISTANCE_ETA_0_7_OHM_M2)
    # between two rows, the simulated ratio of the interpolated resistance is close to the ask
    r = calibration.film_resistance_for_eta(0.5)
    assert 0.05 < r < 0.1  # (rows 0.05 -> 0.557, 0.1 -> 0.405 with the Sturm 2019 OCV)
    assert calibration.effective_flux_ratio(r) == pytest.approx(0.5, abs=0.02)
    # monotonic: more film, less flux
    etas = np.linspace(0.06, 0.97, 40)  # inside the table (0.051-0.991)
    assert np.all(np.diff([calibration.film_resistance_for_eta(e) for e in etas]) < 0)


@pytest.mark.parametrize("eta", [0.0, 0.04, 0.995, 1.0, float("nan")])
def test_outside_the_table_is_refused(eta):
    with pytest.raises(ValueError, match="calibration table"):
        calibration.film_resistance_for_eta(eta)
