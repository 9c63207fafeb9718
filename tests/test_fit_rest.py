"""The diffusivity scale fitted from a rest relaxation, with its standard error."""

import json

import numpy as np
import pytest
from scipy import ndimage

from asymflux import datasets, fit, fit_rest, model, optics

RATE, CHARGE_MIN, REST_MIN = 70.0, 20.0, 20.0


@pytest.fixture(scope="module")
def rest_movie_half_d():
    """An elliptical particle with one blocked arc and half the default diffusivity, charged
    at 70 mA/g for 20 min and then at rest, through the response, the PSF and noise (the
    truth is simulated on the full mask, the fit on a coarsened one)."""
    rng = np.random.default_rng(11)
    pixel_nm, n = 65.0, 44
    c = (np.arange(n) - (n - 1) / 2) * pixel_nm / 1000
    X, Y = np.meshgrid(c, c[::-1])
    mask = (X / 1.3) ** 2 + (Y / 0.95) ** 2 <= 1
    surface = model.Surface([model.BlockedArc(center_deg=120, fraction=0.3, eta=0.3)])
    minutes = np.arange(0, CHARGE_MIN + REST_MIN + 0.01, 1.0)
    truth = fit_rest._RestProblem(  # the whole mask: a finer mesh than the fit's (max_cells=120)
        mask, surface=surface, rest_start_min=CHARGE_MIN, pixel_nm=pixel_nm, minutes=minutes,
        rate_mA_g=RATE, params=model.nmc88_lun2025(),
        psf_sigma_px=optics.psf_sigma_nm() / pixel_nm, max_cells=mask.size)
    dI = truth.predict(np.log10(0.5), []) + rng.normal(0, 0.01, (minutes.size, n, n))
    return dI, mask, pixel_nm, minutes * 60, surface


def test_recovers_half_the_diffusivity_within_its_standard_error(rest_movie_half_d):
    dI, mask, pixel_nm, time_s, surface = rest_movie_half_d
    result = fit_rest.fit_rest_diffusivity(dI, mask, pixel_nm=pixel_nm, time_s=time_s,
                                           rate_mA_g=RATE, rest_start_s=CHARGE_MIN * 60,
                                           surface=surface, max_cells=120)
    se = result.uncertainties["diffusivity_scale"]
    assert 0 < se < 0.25 * result.diffusivity_scale  # informative, not a catch-all
    assert abs(result.diffusivity_scale - 0.5) <= se
    # the model-error term is a floor under the statistical error
    assert se >= fit_rest.MODEL_ERROR_SCALE_REL * result.diffusivity_scale
    # only the rest frames are fitted
    assert np.all(time_s[result.frames[0]] >= CHARGE_MIN * 60)
    assert result.frames[0].size == int(REST_MIN) + 1
    assert not result.at_bound
    summary = result.summary()
    assert set(summary["uncertainties"]) == {"diffusivity_scale", "log10_diffusivity_scale"}
    json.dumps(summary)  # what fit.json holds


def test_a_wrong_diffusivity_fits_worse(rest_movie_half_d):
    """The rest frames discriminate: D × 1 leaves a larger residual than the fitted D × 0.5."""
    dI, mask, pixel_nm, time_s, surface = rest_movie_half_d
    kw = dict(pixel_nm=pixel_nm, minutes=time_s / 60, rate_mA_g=RATE, params=model.nmc88_lun2025(),
              psf_sigma_px=optics.psf_sigma_nm() / pixel_nm, max_cells=120)
    problem = fit_rest._RestProblem(mask, surface=surface, rest_start_min=CHARGE_MIN, **kw)
    fp = ndimage.binary_erosion(mask, iterations=2)
    rest = time_s >= CHARGE_MIN * 60

    def rms(log_ds):
        pred = problem.predict(log_ds, [])
        return np.sqrt(np.mean((pred - dI)[rest][:, fp] ** 2))

    assert rms(0.0) > 1.3 * rms(np.log10(0.5))


def test_rest_start_from_the_current():
    t = np.arange(0, 2400.0 + 1, 10.0)
    current = np.where(t < 1200, 0.035, 0.0)
    current[t >= 1200] += np.random.default_rng(0).normal(0, 1e-5, (t >= 1200).sum())
    assert fit_rest.find_rest_start(t, current) == 1200.0
    with pytest.raises(ValueError, match="does not end at rest"):
        fit_rest.find_rest_start(t, np.full(t.size, 0.035))
    with pytest.raises(ValueError, match="zero throughout"):
        fit_rest.find_rest_start(t, np.zeros(t.size))


def test_bad_input_is_a_clear_error(rest_movie_half_d):
    dI, mask, pixel_nm, time_s, surface = rest_movie_half_d
    kw = dict(pixel_nm=pixel_nm, rate_mA_g=RATE, rest_start_s=CHARGE_MIN * 60)
    with pytest.raises(ValueError, match="mask shape"):
        fit_rest.fit_rest_diffusivity(dI, mask[:-1], time_s=time_s, **kw)
    with pytest.raises(ValueError, match="one entry per frame"):
        fit_rest.fit_rest_diffusivity(dI, mask, time_s=time_s[:-1], **kw)
    with pytest.raises(ValueError, match="at least 3 frames"):
        fit_rest.fit_rest_diffusivity(dI, mask, time_s=time_s,
                                      **{**kw, "rest_start_s": time_s[-1]})
    with pytest.raises(ValueError, match="one entry per particle"):
        fit_rest.fit_rest_diffusivity([dI, dI], [mask], time_s=time_s, **kw)
    with pytest.raises(ValueError, match="Surface"):
        fit_rest.fit_rest_diffusivity(dI, mask, time_s=time_s, surface="blocked", **kw)


def _truth_surface(particles, pid):
    rows = particles[particles["particle_id"] == pid]
    return model.Surface([model.FilmArc(r.center_deg, r.fraction, r.film_resistance_ohm_m2)
                          for r in rows.itertuples() if r.fraction > 0], kinetic=True)


@pytest.fixture(scope="module")
def charge_rest():
    return datasets.load("charge-rest")


@pytest.mark.slow
def test_charge_rest_demo_scale_within_its_standard_error_of_the_truth(charge_rest):
    """The ``charge-rest`` demo is simulated with the default parameter set's D(θ) unscaled
    (``datasets._simulate``: ``model.nmc88_lun2025()``): the truth is 1. Its five particles
    are fitted jointly, each on its true (film) surface, from the rest's start in the echem."""
    ds = charge_rest
    particles = ds.ground_truth["particles"]
    ids = sorted(set(particles["particle_id"]))
    result = fit_rest.fit_rest_dataset(ds, ids, surfaces=[_truth_surface(particles, p) for p in ids],
                                       max_cells=200)
    assert result.rest_start_s == pytest.approx(CHARGE_MIN * 60)
    se = result.uncertainties["diffusivity_scale"]
    assert 0 < se < 0.15
    assert abs(result.diffusivity_scale - 1.0) <= se
    assert len(result.per_particle) == len(ids)


@pytest.mark.slow
def test_surface_fitted_from_the_charge_frames_first(charge_rest):
    """``surfaces="fit"`` (what ``asymflux fit --diffusivity-from-rest`` would run): the
    blocking is fitted from the charge frames only, then the scale from the rest."""
    result = fit_rest.fit_rest_dataset(charge_rest, 3, surfaces="fit",
                                       blocking_fit={"surface": "kinetic", "max_arcs": 1},
                                       max_cells=200)
    (entry,) = result.per_particle
    surface_fit = entry["surface_fit"]
    assert surface_fit["surface"] == "kinetic"
    assert result.rest_start_s == pytest.approx(CHARGE_MIN * 60)
    se = result.uncertainties["diffusivity_scale"]
    assert abs(result.diffusivity_scale - 1.0) <= 2 * se
    json.dumps(result.summary(), default=float)


def test_a_blocking_fit_leaves_the_rest_out(charge_rest):
    """``asymflux fit`` on a charge followed by a rest: the model charges at a constant rate
    throughout, so the rest's frames (found in the cycler record) are not fitted as charge."""
    assert fit.charge_rest_start_s(charge_rest) == pytest.approx(CHARGE_MIN * 60)
    result = fit.fit_dataset(charge_rest, 3, max_arcs=0, max_cells=100)
    t = np.asarray(charge_rest.time_s, dtype=float)
    t = t - t[0]
    assert t[result.frames].max() < CHARGE_MIN * 60 <= t.max()
    everything = fit.fit_dataset(charge_rest, 3, max_arcs=0, max_cells=100, rest_start_s=None,
                                 max_capacity_mAh_g=1e3)
    assert t[everything.frames].max() == t.max()  # asked for: every frame as charge
