"""Camera artefacts beyond issue 26's list (``analysis._artefacts``): each gives the right
numbers or raises its flag / a clear error, and a clean movie raises none of them.

One synthetic particle (the project's microscope, PSF sigma 2.2 px) whose core shrinks
towards its right edge, with 1 % camera noise; d compared with max(5 %, 1 px) as in
``benchmarks/bench_robustness.py --beyond``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from asymflux import analysis as an
from asymflux import io
from asymflux.analysis._artefacts import (
    edge_width_px,
    exposure_outliers,
    frame_exposure,
    reference_spikes,
)
from tests._helpers.analysis_synth import shrinking_core_movie

PIXEL_NM = 65.0
N = 12
BEYOND = ("exposure_outlier", "duplicated_frame", "psf_wide", "outside_frame")


def _noisy(stack, seed=3):
    rng = np.random.default_rng(seed)
    return stack * (1 + 0.01 * rng.standard_normal(stack.shape))


@pytest.fixture(scope="module")
def movie():
    stack, labels = shrinking_core_movie(n_frames=N, shape=(96, 96), center=(48, 48))
    return _noisy(stack), labels


def _measure(stack, labels, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return an.particle_timeseries(stack, labels, pixel_nm=PIXEL_NM, **kw)


def _analyze(stack, labels, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = io.Dataset(stack=stack, time_s=np.arange(stack.shape[0]) * 60.0,
                        pixel_nm=PIXEL_NM, masks=labels)
        return an.analyze_dataset(ds, **kw)


def _d_px(ts):
    return ts["offset_nm"].to_numpy() / PIXEL_NM


def _close(d, d_ref):
    """Where both have a d: within max(5 %, 1 px)."""
    both = np.isfinite(d) & np.isfinite(d_ref)
    return np.abs(d - d_ref)[both] <= np.maximum(0.05 * d_ref[both], 1.0)


def _raised(ts, flag):
    return ts["quality_flags"].fillna("").str.split(";").apply(lambda f: flag in f).to_numpy()


@pytest.fixture(scope="module")
def clean(movie):
    return _measure(*movie)


def test_a_clean_movie_raises_none_of_them(clean):
    for flag in BEYOND:
        assert not _raised(clean, flag).any(), flag
    assert not any("spikes" in w or "exposure" in w or "identical" in w
                   for w in clean.attrs.get("warnings", []))
    assert np.isfinite(_d_px(clean)[1:-3]).all()


def test_infinite_pixels_are_unknown_and_normalisation_still_works(movie, clean):
    stack, labels = movie
    bad = stack * (1 + 0.1 * np.sin(np.arange(N)))[:, None, None]  # flicker +-10 %
    bad[:, np.random.default_rng(1).random(labels.shape) < 2e-3] = np.inf
    ts = _measure(bad, labels, normalize="frame_mean")
    assert _close(_d_px(ts), _d_px(clean)).all()
    assert np.isfinite(ts["norm_intensity"]).all()


def test_spikes_in_the_reference_frame_are_unknown_not_a_lasting_core(movie, clean):
    stack, labels = movie
    hit = stack.copy()
    inside = np.argwhere(labels > 0)
    rng = np.random.default_rng(4)
    for r, c in inside[rng.choice(len(inside), 8, replace=False)]:
        hit[0, r:r + 2, c:c + 2] += 4 * stack[0].max()  # cosmic rays in frame 0
    ts = _measure(hit, labels)
    assert any("spikes in the reference" in w for w in ts.attrs["warnings"])
    # the core vanishes when it does without them (no hit pixel left 'unreacted')
    np.testing.assert_array_equal(ts["unreacted_area_um2"].to_numpy()[-1:],
                                  clean["unreacted_area_um2"].to_numpy()[-1:])
    assert _close(_d_px(ts), _d_px(clean)).all()
    assert reference_spikes(stack[:1]).sum() == 0  # none on the clean frame


def test_a_dark_frame_has_nan_numbers_and_its_flag(movie, clean):
    stack, labels = movie
    dark = stack.copy()
    dark[6] = 2.0 + np.random.default_rng(5).normal(0, 1.5, labels.shape)
    ts = _measure(dark, labels)
    hit = _raised(ts, "exposure_outlier")
    assert hit.tolist() == [k == 6 for k in range(N)]
    assert np.isnan(ts["offset_nm"].iloc[6]) and ts["offset_reason"].iloc[6] == "exposure outlier"
    assert _close(_d_px(ts), _d_px(clean)).all()
    assert any("exposure outliers" in w for w in ts.attrs["warnings"])


def test_exposure_outliers_by_level_not_by_a_slow_change():
    e = np.column_stack([np.linspace(100, 160, 20), np.linspace(0, 50, 20)])  # drift, contrast from 0
    assert not exposure_outliers(e).any()
    e[7] = (40.0, 1.0)  # dark
    e[12] = (350.0, 80.0)  # over-exposed
    assert np.flatnonzero(exposure_outliers(e)).tolist() == [7, 12]
    assert frame_exposure(np.ones((2, 8, 8))).shape == (2, 2)


def test_a_dark_reference_frame_is_refused_before_any_work(movie):
    stack, labels = movie
    s = stack + 100.0  # a camera offset
    s[0] = 100.0 + np.random.default_rng(6).normal(0, 1.5, labels.shape)
    with pytest.raises(ValueError, match="reference frame 0.*dark, shutter-closed"):
        _analyze(s, labels)


def test_a_duplicated_frame_is_flagged(movie):
    stack, labels = movie
    dup = stack.copy()
    dup[5] = dup[4]
    ts = _measure(dup, labels)
    assert _raised(ts, "duplicated_frame").tolist() == [k == 5 for k in range(N)]


def test_a_stage_jump_beyond_the_background_margin_keeps_normalisation_right(movie, clean):
    from asymflux import optics

    stack, labels = movie
    shifts = np.array([[0, 0] if k < N // 2 else [9, 9] for k in range(N)], float)
    jumped = optics.add_drift(stack, shifts, order=1)
    ts = _measure(jumped, labels, register=True, normalize="frame_mean")
    assert _close(_d_px(ts), _d_px(clean)).all()
    # the background that normalises each frame moved with the particle (not onto it)
    assert np.nanmax(np.abs(ts["norm_intensity"] / clean["norm_intensity"] - 1)) < 0.05


@pytest.mark.parametrize("sigma", [1.5, 2.2, 3.0])
def test_edge_width_measures_the_blur(sigma):
    from scipy import ndimage as ndi

    rr, cc = np.indices((80, 80))
    labels = (np.hypot(rr - 40, cc - 40) <= 20).astype(int)
    img = ndi.gaussian_filter(np.where(labels > 0, 3.0, 1.0), sigma)
    assert edge_width_px(img, labels)[0] == pytest.approx(sigma, rel=0.2)


def test_a_wide_psf_is_flagged(movie):
    from asymflux import optics

    stack, labels = shrinking_core_movie(n_frames=4, shape=(96, 96), center=(48, 48))
    sig = optics.psf_sigma_nm() / PIXEL_NM
    wide = optics.blur(stack, pixel_nm=PIXEL_NM, na=optics.DEFAULT_NA * sig / 3.0)
    assert _raised(_measure(_noisy(wide), labels), "psf_wide").all()  # sigma ~ 3.7 px
    assert not _raised(_measure(_noisy(stack), labels), "psf_wide").any()


def test_a_particle_cut_by_the_frame_is_flagged(movie):
    stack, labels = movie
    ts = _measure(stack[:, 35:, :], labels[35:, :])  # the particle's top cut off
    assert _raised(ts, "outside_frame").all()


def test_clipped_pixels_that_move_the_core_to_the_other_side_leave_d_unknown():
    from asymflux.analysis._quality import saturation_ambiguous

    # 100 measured core pixels 4 px left of the centre, 100 clipped ones 12 px right: with
    # them the core is 4 px right, the same d in the other direction
    n = np.array([[100.0]])
    amb = saturation_ambiguous(n, n * 0.0, n * -4.0, n, n * 0.0, n * 12.0, 0.0, 0.0)
    assert amb.all()
    amb = saturation_ambiguous(n, n * 0.0, n * -4.0, n * 0.0, n * 0.0, n * 0.0, 0.0, 0.0)
    assert not amb.any()
