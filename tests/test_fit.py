"""Inferring the surface blocking of a particle from its movie."""

import json

import numpy as np
import pytest
from scipy import ndimage

from asymflux import datasets, fit, model, optics
from asymflux.cli import main


def _angle_error_deg(a, b):
    return abs((a - b + 180.0) % 360.0 - 180.0)


@pytest.fixture(scope="module")
def ellipse_movie():
    """An elliptical particle with one blocked arc, through response, PSF and noise."""
    rng = np.random.default_rng(7)
    pixel_nm, n = 65.0, 60
    c = (np.arange(n) - (n - 1) / 2) * pixel_nm / 1000
    X, Y = np.meshgrid(c, c[::-1])
    mask = (X / 1.6) ** 2 + (Y / 1.1) ** 2 <= 1
    truth = model.BlockedArc(center_deg=150, fraction=0.3, eta=0.3)
    minutes = np.arange(0, 30.01, 1.0)
    res = model.simulate(None, model.mask_mesh(mask, pixel_nm), model.Surface([truth]),
                         [model.Charge(100, minutes=30)], output_minutes=minutes)
    img = np.zeros((minutes.size, n, n))
    img[:, mask] = optics.differential_intensity(res.theta[res.index_of_minutes(minutes)])
    sigma = optics.psf_sigma_nm() / pixel_nm
    w = ndimage.gaussian_filter(mask.astype(float), sigma)
    dI = ndimage.gaussian_filter(img, (0, sigma, sigma)) / np.maximum(w, 1e-6)
    dI += rng.normal(0, 0.01, dI.shape)
    return dI, mask, pixel_nm, minutes * 60, truth


@pytest.mark.slow
def test_recovers_a_known_arc_on_the_particles_own_outline(ellipse_movie):
    dI, mask, pixel_nm, time_s, truth = ellipse_movie
    result = fit.fit_particle(dI, mask, pixel_nm=pixel_nm, time_s=time_s, rate_mA_g=100)
    assert result.model == "one arc"
    (arc,) = result.arcs
    assert _angle_error_deg(arc.center_deg, truth.center_deg) < 5
    assert arc.fraction == pytest.approx(truth.fraction, abs=0.03)
    assert arc.eta == pytest.approx(truth.eta, abs=0.03)
    assert result.diffusivity_scale == pytest.approx(1.0, rel=0.3)
    assert set(result.uncertainties) == {"diffusivity_scale", "center_deg_1", "fraction_1", "eta_1"}
    assert all(np.isfinite(v) and v >= 0 for v in result.uncertainties.values())
    assert result.r_squared > 0.9
    assert result.comparison.set_index("model").loc["none", "rms"] > 2 * result.rms


@pytest.mark.slow
def test_demo_particle_with_one_arc_through_the_whole_microscope(tmp_path):
    """Demo 'aged' particle 1: 180 deg, 30 % of the perimeter, eta 0.25, with noise, blur and drift."""
    out = tmp_path / "fit.json"
    assert main(["fit", str(datasets.path("aged")), "--particle", "1", "--out", str(out)]) == 0
    summary = json.loads(out.read_text())
    assert summary["model"] == "one arc"
    (arc,) = summary["arcs"]
    assert _angle_error_deg(arc["center_deg"], 180.0) < 15
    assert arc["fraction"] == pytest.approx(0.30, abs=0.1)
    assert arc["eta"] == pytest.approx(0.25, abs=0.1)


@pytest.mark.slow
def test_unblocked_demo_particle_is_reported_unblocked():
    result = fit.fit_dataset(datasets.load("fresh"), 2, max_arcs=1)
    assert result.model == "none" and result.arcs == []


def test_bad_input_is_a_clear_error(ellipse_movie):
    dI, mask, pixel_nm, time_s, _ = ellipse_movie
    with pytest.raises(ValueError, match="mask shape"):
        fit.fit_particle(dI, mask[:-1], pixel_nm=pixel_nm, time_s=time_s, rate_mA_g=100)
    with pytest.raises(ValueError, match="one entry per frame"):
        fit.fit_particle(dI, mask, pixel_nm=pixel_nm, time_s=time_s[:-1], rate_mA_g=100)
    with pytest.raises(ValueError, match="rate_mA_g"):
        fit.fit_particle(dI, mask, pixel_nm=pixel_nm, time_s=time_s, rate_mA_g=0)
    with pytest.raises(ValueError, match="no particle 99"):
        fit.fit_dataset(datasets.load("fresh"), 99)
