"""Quality flag ``local_darkening``: dust arriving mid-movie on or next to a particle is
flagged from the frame it arrives, a clean (or drifting, flickering) movie is not, and a
particle whose d the dust may have made is not classed from those frames."""

import numpy as np
import pandas as pd
import pytest

from asymflux import analysis as an
from asymflux.analysis import _quality
from tests._helpers.microscope_movie import PIXEL_NM, SHAPE, N, _movie, clean_movie

FLAG = "local_darkening"
ARRIVES = 8  # of N = 16 frames


def _flagged(ts):
    """(n_frames, n_particles) bool: the frames carrying ``local_darkening``."""
    hit = ts["quality_flags"].fillna("").str.split(";").apply(lambda v: FLAG in v)
    return hit.to_numpy(bool).reshape(-1, N).T


def _measure(stack, lab, **kw):
    kw.setdefault("register", True)
    return an.particle_timeseries(stack, lab, pixel_nm=PIXEL_NM, **kw)


def _ring(center, radius):
    rr, cc = np.indices(SHAPE)
    return np.abs(np.hypot(rr - center[0], cc - center[1]) - radius) < 1.5


def _speck(center, sigma_px, depth):
    rr, cc = np.indices(SHAPE)
    return 1 - depth * np.exp(-((rr - center[0]) ** 2 + (cc - center[1]) ** 2)
                              / (2 * sigma_px ** 2))


@pytest.fixture(scope="module")
def clean():
    return clean_movie()


@pytest.fixture(scope="module", params=[0.8, 0.6], ids=["x0.8", "x0.6"])
def dusty(request, clean):
    """A dark ring inside particle 1 (its left half) from frame ARRIVES on, and its
    timeseries."""
    stack, lab = clean
    stack = stack.astype(float)
    stack[ARRIVES:, _ring((44, 32), 6)] *= request.param
    return request.param, _measure(stack, lab)


def test_dust_is_flagged_from_the_frame_it_arrives_on_the_particle_it_touches(dusty):
    _, ts = dusty
    f = _flagged(ts)
    assert f[ARRIVES:, 0].all() and not f[:ARRIVES].any()
    assert not f[:, 1].any()


def test_the_symmetric_particle_under_dust_is_not_classed_asymmetric(dusty):
    factor, ts = dusty
    p = an.summarize_particles(ts).set_index("particle_id")
    assert p.loc[1, "classification"] != "asymmetric"
    assert p.loc[2, "classification"] == "symmetric"  # no dust: as before
    if p.loc[1, "classification"] == "undetermined":
        assert FLAG in p.loc[1, "classification_reason"]
    if factor == 0.6:  # without the rule the dust's d would have made it asymmetric
        g = ts[ts.particle_id == 1].sort_values("frame")
        cls = an.classify_asymmetry(g.offset_norm.to_numpy(), g.unreacted_fraction.to_numpy())[0]
        assert cls == "asymmetric"
        assert p.loc[1, "classification"] == "undetermined"


def test_a_clean_movie_raises_no_local_darkening(clean):
    assert not _flagged(_measure(*clean)).any()


def test_flicker_stage_drift_and_a_lamp_step_raise_no_local_darkening():
    rng = np.random.default_rng(4)
    flicker = 1 + 0.03 * rng.uniform(-1, 1, N)
    lamp = np.where(np.arange(N) >= ARRIVES, 0.95, 1.0)  # a whole-field step: not local
    drift = np.column_stack([np.linspace(0, 4.5, N), np.linspace(0, -3.0, N)])
    stack, lab = _movie(illumination=flicker * lamp,
                        drift=drift)
    assert not _flagged(_measure(stack, lab)).any()


def test_a_speck_next_to_a_particle_is_flagged_on_that_particle(clean):
    stack, lab = clean
    stack = stack.astype(float)
    stack[ARRIVES:] *= _speck((48, 72), 2.0, 0.3)  # 4 px from particle 2, 14 from 1
    f = _flagged(_measure(stack, lab))
    assert f[ARRIVES:, 1].all() and not f[:ARRIVES].any() and not f[:, 0].any()


def test_a_gradual_darkening_a_rise_and_noise_are_not_a_step():
    rng = np.random.default_rng(1)
    n_frames, n_tiles = 30, 40
    owner = np.repeat([0, 1], n_tiles // 2)
    is_surround = np.tile(np.r_[np.zeros(8, bool), np.ones(12, bool)], 2)
    rows, cols = np.divmod(np.arange(n_tiles) % 20, 5)
    kw = dict(owner=owner, is_surround=is_surround, tile_px=np.full(n_tiles, 16.0),
              tile_row=rows * 4.0 + owner * 40, tile_col=cols * 4.0, n_particles=2,
              threshold=0.05)
    noise = 0.004 * rng.standard_normal((n_frames, n_tiles))
    t = np.arange(n_frames)[:, None]
    y = noise.copy()
    y[:, 0] += -0.004 * t[:, 0]  # a particle tile darkening gradually: 12 % over the movie
    y[:, 1] += 0.3 * (1 - np.exp(-t[:, 0] / 4))  # a particle tile reacting (brightening)
    assert not _quality.local_darkening(y, **kw).any()
    y[12:, 25] -= 0.05  # a 5 % step on particle 1's surroundings, for good
    f = _quality.local_darkening(y, **kw)
    assert f[12:, 1].all() and not f[:12].any() and not f[:, 0].any()
    z = noise.copy()
    z[12:14, 25] -= 0.05  # gone again after 2 frames is no speck...
    z[12:13, 26] -= 0.2  # ... nor is one dark frame
    assert not _quality.local_darkening(z, **kw).any()
    z = noise.copy()
    z[12:, 3] -= 0.05  # on the particle itself: unless it darkens as it reacts
    assert _quality.local_darkening(z, **kw)[12:, 0].all()
    assert not _quality.local_darkening(z, **kw, check_particles=False).any()


def _timeseries(d_norm, flagged):
    n = len(d_norm)
    return pd.DataFrame({
        "particle_id": 1, "frame": np.arange(n), "time_s": np.arange(n) * 60.0,
        "capacity_mAh_g": np.nan, "area_um2": 1.0, "com_row": 0.0, "com_col": 0.0,
        "offset_norm": d_norm, "offset_nm": np.asarray(d_norm) * 100,
        "offset_angle_deg": 0.0, "unreacted_fraction": np.linspace(0.9, 0.2, n),
        "li_rich_row": 0.0, "li_rich_col": 0.0,
        "quality_flags": np.where(flagged, FLAG, ""),
    })


@pytest.mark.parametrize("d_norm, flagged, expected", [
    # the largest d on a dusty frame, the others below the threshold: unknown
    ([0.02, 0.03, 0.04, 0.12, 0.05, 0.03], [0, 0, 0, 1, 1, 1], "undetermined"),
    # the other frames already reach the threshold: asymmetric whatever the dust did
    ([0.02, 0.09, 0.10, 0.12, 0.05, 0.03], [0, 0, 0, 1, 1, 1], "asymmetric"),
    # every window frame flagged
    ([0.02, 0.03, 0.04, 0.02, 0.05, 0.03], [1, 1, 1, 1, 1, 1], "undetermined"),
    # no flag: the plain rule
    ([0.02, 0.03, 0.04, 0.02, 0.05, 0.03], [0, 0, 0, 0, 0, 0], "symmetric"),
])
def test_flagged_frames_leave_the_classification(d_norm, flagged, expected):
    ts = _timeseries(d_norm, np.array(flagged, bool))
    row = an.summarize_particles(ts).iloc[0]
    assert row.classification == expected
    if expected == "asymmetric":  # scored on the unflagged frames
        assert row.asymmetry_score == pytest.approx(0.10)
    if expected == "undetermined":
        assert FLAG in row.classification_reason
