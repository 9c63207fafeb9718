"""Quality flags: each artefact of a real microscope raises its flag, a clean movie none."""

import numpy as np
import pytest

from asymflux import analysis as an
from asymflux import io, optics
from asymflux.analysis import _quality
from tests._helpers.analysis_synth import disk
from tests._helpers.microscope_movie import (
    PIXEL_NM,
    SHAPE,
    N,
    _movie,
    clean_movie,
)


def _flags(ts):
    """{flag: (n_frames, n_particles) bool} from a timeseries table."""
    out = {}
    for k in _quality.QUALITY_FLAGS:
        hit = ts["quality_flags"].str.split(";").apply(lambda names, k=k: k in names)
        out[k] = hit.to_numpy(bool).reshape(-1, N).T
    return out


def _measure(stack, lab, **kw):
    kw.setdefault("register", True)
    return an.particle_timeseries(stack, lab, pixel_nm=PIXEL_NM, **kw)


@pytest.fixture(scope="module")
def clean():
    return clean_movie()


@pytest.fixture(scope="module")
def clean_flags(clean):
    return _flags(_measure(*clean))


@pytest.mark.parametrize("flag", [k for k in _quality.QUALITY_FLAGS if k != "core_too_small"])
def test_a_clean_movie_raises_no_flag(clean_flags, flag):
    assert not clean_flags[flag].any(), np.flatnonzero(clean_flags[flag].any(axis=1))


def test_illumination_drift_raises_background_drift_unless_normalised():
    ramp = np.linspace(1.0, 1.1, N)
    stack, lab = _movie(illumination=ramp)
    f = _flags(_measure(stack, lab))["background_drift"]
    # 1 % (0.2 x the 0.05 threshold) is passed after ~2 of the 15 steps of 0.67 %
    assert f[3:].all() and not f[:1].any()
    f = _flags(_measure(stack, lab, normalize="frame_mean"))["background_drift"]
    assert not f.any()


def test_focus_drift_raises_focus_change(clean_flags):
    stack, lab = _movie(na_of_k=lambda k: optics.DEFAULT_NA / (1 + k / (N - 1)))  # PSF x 2
    f = _flags(_measure(stack, lab))["focus_change"]
    assert f[-6:].all() and not f[0].any()


def test_clipping_raises_saturated_and_leaves_the_pixels_unknown(clean):
    stack, lab = clean
    start = np.median(stack[0][lab == 1])
    clip = np.floor(1.05 * start)
    clipped = np.minimum(stack, clip).astype(np.uint16)
    assert _quality.detect_saturation_level(clipped[-1:]) == clip
    ts = _measure(clipped, lab)
    f = _flags(ts)["saturated"]
    assert f[-5:].all()
    # 1.05 x start: the start x (1 + 0.05) reaches it
    assert any("clips at" in w and "saturate before" in w for w in ts.attrs["warnings"])
    higher = _flags(_measure(np.minimum(stack, np.floor(1.1 * start)).astype(np.uint16),
                             lab))["saturated"]
    assert higher[-3:, 0].all() and not higher[:3].any()
    # the clipped pixels are unknown: the valid area shrinks, none reads as unreacted
    plain = _measure(clipped, lab, saturation_level=None)
    last = ts[(ts.frame == N - 1) & (ts.particle_id == 1)].iloc[0]
    last_plain = plain[(plain.frame == N - 1) & (plain.particle_id == 1)].iloc[0]
    assert last.mean_dI != last_plain.mean_dI
    # unflagged, the clipped pixels (dI 0.05 at most) read as unreacted at the end of charge
    assert last_plain.unreacted_fraction > 0.3
    assert np.isnan(last.unreacted_fraction)  # every inner pixel clipped: unknown


def test_a_dark_dust_ring_raises_returned_below_threshold(clean):
    stack, lab = clean
    stack = stack.astype(float)
    rr, cc = np.indices(SHAPE)
    ring = (np.abs(np.hypot(rr - 40, cc - 30) - 5) < 1.5)  # inside particle 1, left half
    stack[10:, ring] *= 0.6
    f = _flags(_measure(stack, lab))["returned_below_threshold"]
    assert f[10:, 0].all() and not f[:10].any() and not f[:, 1].any()


def test_a_stage_jump_raises_registration_residual(clean):
    stack, lab = clean
    drift = np.zeros((N, 2))
    drift[8] = (0.0, 3.0)  # one frame off by 3 px
    jumped = optics.add_drift(stack.astype(float), drift, order=1)
    f = _flags(_measure(jumped, lab))["registration_residual"]
    assert f[8].all() and f.sum() == 2  # that frame, both particles


def test_too_few_core_pixels_leave_d_nan_with_the_flag(clean):
    stack, lab = clean
    ts = _measure(stack, lab)
    small = ts.offset_reason == "core too small"
    assert small.any()
    assert ts.loc[small, ["offset_nm", "offset_norm", "offset_angle_deg"]].isna().all().all()
    assert ts.loc[small, "quality_flags"].str.contains("core_too_small").all()
    n_px = np.rint(ts.unreacted_area_um2 / (PIXEL_NM * 1e-3) ** 2)
    assert (n_px[small] < _quality.default_min_core_px(2)).all()
    assert (n_px[ts.offset_reason == ""] >= _quality.default_min_core_px(2)).all()
    assert _quality.default_min_core_px(2) == 13 and _quality.default_min_core_px(0) == 4


def test_negative_intensities_are_refused_with_the_fix(clean):
    stack, lab = clean
    sub = stack.astype(float) - np.median(stack[0][lab == 0])  # background subtracted
    ds = io.Dataset(stack=sub, time_s=np.arange(N) * 10.0, pixel_nm=PIXEL_NM, masks=lab,
                    metadata={"name": "subtracted"})
    with pytest.raises(ValueError, match="negative.*intensity_offset"):
        an.analyze_dataset(ds)
    offset = float(np.median(stack[0][lab == 0]))
    with pytest.warns(Warning):
        p, ts = an.analyze_dataset(ds, intensity_offset=offset)
    with pytest.warns(Warning):
        p0, ts0 = an.analyze_dataset(io.Dataset(stack=stack, time_s=np.arange(N) * 10.0,
                                                pixel_nm=PIXEL_NM, masks=lab))
    np.testing.assert_allclose(ts.mean_dI, ts0.mean_dI, atol=1e-9)


def test_one_particle_gets_the_dataset_options(clean):
    """analyze_dataset_particle (what fit, napari and the dashboards measure) takes the
    options analyze_dataset does: the offset, the clip level and the smallest core."""
    stack, lab = clean
    background = float(np.median(stack[0][lab == 0]))
    ds = io.Dataset(stack=stack.astype(float) - background, time_s=np.arange(N) * 10.0,
                    pixel_nm=PIXEL_NM, masks=lab, metadata={"name": "subtracted"})
    with pytest.raises(ValueError, match="negative.*intensity_offset"):
        an.analyze_dataset_particle(ds, 1)
    opts = {"intensity_offset": background, "min_core_px": 1,
            "saturation_level": float(np.percentile(stack, 99.9))}
    with pytest.warns(Warning):
        _, ts = an.analyze_dataset(ds, **opts)
    with pytest.warns(Warning):
        one = an.analyze_dataset_particle(ds, 1, **opts).timeseries
    want = ts[ts.particle_id == 1].reset_index(drop=True)
    assert "core too small" not in set(want.offset_reason)  # min_core_px 1 reached it
    assert (want.quality_flags.str.contains("saturated")).any()  # so did the clip level
    for col in ("offset_nm", "unreacted_area_um2", "mean_dI", "quality_flags"):
        np.testing.assert_array_equal(one[col].to_numpy(), want[col].to_numpy(), err_msg=col)


def test_particles_count_the_flagged_frames_and_the_warnings_name_them(clean):
    stack, lab = clean
    stack = np.minimum(stack, np.floor(1.05 * np.median(stack[0][lab == 1]))).astype(np.uint16)
    ds = io.Dataset(stack=stack, time_s=np.arange(N) * 10.0, pixel_nm=PIXEL_NM, masks=lab,
                    metadata={"name": "clipped"})
    with pytest.warns(Warning):
        p, ts = an.analyze_dataset(ds)
    row = p.set_index("particle_id").loc[1]
    counts = dict(kv.split(":") for kv in row.quality_flags.split(";"))
    n_sat = int(ts[ts.particle_id == 1].quality_flags.str.contains("saturated").sum())
    assert int(counts["saturated"]) == n_sat > 0
    assert row.flagged_fraction == pytest.approx(
        (ts[ts.particle_id == 1].quality_flags != "").mean())
    assert any(w.startswith("clipped: quality flag saturated on ") for w in p.attrs["warnings"])


# ----------------------------------------------------------------------------- detection


def test_the_default_smallest_particle_is_a_few_psf_areas():
    from asymflux.analysis._detect import default_min_area_px

    assert default_min_area_px(65.0) == 88  # 6 x pi x (140 nm / 65 nm)^2 = 87.4
    assert default_min_area_px(None) == 30
    img = np.zeros((80, 80))
    img[disk(img.shape, (40, 40), 15)] = 1.0  # a particle (707 px)
    img[disk(img.shape, (10, 10), 4)] = 1.0  # a speck (49 px: 0.21 um^2 at 65 nm)
    assert an.detect_particles(img).max() == 2  # pixel size unknown: 30 px
    assert an.detect_particles(img, pixel_nm=65.0).max() == 1
    assert an.detect_particles(img, pixel_nm=65.0, min_area_px=20).max() == 2
    assert an.detect_particles(img, max_area_px=100).max() == 1  # the speck only
    crescent = disk(img.shape, (40, 40), 15) & ~disk(img.shape, (40, 50), 13)
    assert an.detect_particles(crescent * 1.0, min_solidity=0.8).max() == 0
    assert an.detect_particles(crescent * 1.0).max() == 1
    with pytest.raises(ValueError, match="min_area_px"):
        an.detect_particles(img, min_area_px=0)


def test_cli_options_reach_the_analysis(clean, tmp_path, capsys):
    import tifffile

    from asymflux.cli import main

    stack, lab = clean
    background = float(np.median(stack[0][lab == 0]))
    tif = tmp_path / "sub.tif"
    tifffile.imwrite(tif, (stack.astype(np.float32) - background))
    base = ["analyze", str(tif), "--pixel-nm", "65", "--frame-interval-s", "10"]
    assert main([*base, "--out", str(tmp_path / "a")]) != 0
    assert "--intensity-offset" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "b"), "--intensity-offset", str(background),
                 "--min-area-px", "900", "--min-core-px", "1", "--no-register"]) == 0
    import pandas as pd

    p = pd.read_csv(tmp_path / "b" / "particles.csv", keep_default_na=False)
    assert len(p) == 1 and p.area_um2[0] > 900 * (PIXEL_NM * 1e-3) ** 2  # not the 797 px one
    ts = pd.read_csv(tmp_path / "b" / "timeseries.csv", keep_default_na=False)
    assert "core too small" not in set(ts.offset_reason)  # --min-core-px 1
    assert main([*base, "--out", str(tmp_path / "c"), "--intensity-offset", str(background),
                 "--saturation-level", "nonsense"]) != 0
    assert "--saturation-level" in capsys.readouterr().err


def test_a_drifting_background_switches_the_normalisation_on_and_says_so():
    stack, lab = _movie(illumination=np.linspace(1.0, 1.1, N))
    ds = io.Dataset(stack=stack, time_s=np.arange(N) * 10.0, pixel_nm=PIXEL_NM, masks=lab,
                    metadata={"name": "drifting"})
    with pytest.warns(Warning):
        p, ts = an.analyze_dataset(ds)
    said = [w for w in p.attrs["warnings"] if "each frame is normalised" in w]
    assert len(said) == 1 and "drifts by 8.6 %" in said[0]  # 10 %, less the camera offset
    assert not _flags(ts)["background_drift"].any()
    with pytest.warns(Warning):
        p_raw, ts_raw = an.analyze_dataset(ds, normalize=None)
    assert _flags(ts_raw)["background_drift"][3:].all()
    assert not any("each frame is normalised" in w for w in p_raw.attrs["warnings"])
    # the normalised dI is the clean movie's, but for the camera's offset (100 counts that
    # the lamp does not scale: 1.3 % here); raw, it is 10 % off
    clean_ts = _measure(*_movie(), register=False)
    last = (ts.frame == N - 1).to_numpy()
    np.testing.assert_allclose(ts.mean_dI[last], clean_ts.mean_dI[last], atol=0.02)
    assert abs(ts_raw.mean_dI[last].mean() - clean_ts.mean_dI[last].mean()) > 0.08


# ----------------------------------------------------------------------------- uncertainty


def test_d_carries_its_range_over_the_threshold_within_the_pixel_noise(clean):
    ts = _measure(*clean)
    # camera: 0.5 counts/e-, 4000 e- per unit: 1.5 % per frame on a particle, x sqrt(2) in dI
    expected = np.sqrt(2) * 0.5 * np.sqrt(4000) / (0.5 * 4000 + 100)
    # measured on the reference image's neighbouring pixels: a little above (conservative)
    assert (ts.noise_dI > 0.95 * expected).all() and (ts.noise_dI < 1.3 * expected).all()
    ok = ts.offset_nm.notna()
    assert (ts.d_nm_low[ok] <= ts.offset_nm[ok] + 1e-9).all()
    assert (ts.d_nm_high[ok] >= ts.offset_nm[ok] - 1e-9).all()
    assert (ts.d_nm_high - ts.d_nm_low)[ok].max() > 5  # a few nm: not nothing
    assert ts.d_nm_low[~ok].isna().all()
    np.testing.assert_allclose(ts.offset_norm_high / ts.offset_norm, ts.d_nm_high / ts.offset_nm,
                               rtol=1e-9)
    quiet = _measure(*_movie(noise=False))
    assert quiet.noise_dI.max() < 0.1 * expected  # what the PSF's slope leaves


def _one_particle(score, low, high):
    import pandas as pd

    f = np.array([1.0, 0.6, 0.3, 0.0])
    d = np.array([0.0, score, score / 2, np.nan])
    return pd.DataFrame({
        "particle_id": 1, "frame": np.arange(4), "time_s": np.arange(4.0),
        "capacity_mAh_g": np.arange(4.0), "area_um2": 3.0, "com_row": 10.0, "com_col": 10.0,
        "unreacted_fraction": f, "offset_norm": d, "offset_nm": d * 1000,
        "offset_angle_deg": 0.0, "li_rich_row": 10.0, "li_rich_col": 11.0,
        "offset_norm_low": d * low / score, "offset_norm_high": d * high / score,
        "quality_flags": ["", "saturated", "", ""]})


@pytest.mark.parametrize(("score", "low", "high", "expected"), [
    (0.085, 0.07, 0.10, "undetermined"), (0.085, 0.082, 0.09, "asymmetric"),
    (0.07, 0.05, 0.079, "symmetric"), (0.07, 0.06, 0.08, "undetermined"),
])
def test_the_classification_is_undetermined_when_its_interval_straddles_the_threshold(
        score, low, high, expected):
    p = an.summarize_particles(_one_particle(score, low, high)).iloc[0]
    assert p.classification == expected
    assert p.asymmetry_score_low == pytest.approx(low)
    assert p.asymmetry_score_high == pytest.approx(high)
    if expected == "undetermined":
        assert "straddles 0.08" in p.classification_reason
    assert p.quality_flags == "saturated:1" and p.flagged_fraction == 0.25


# ----------------------------------------------------------------------------- frame times


def test_frame_times_of_a_bare_stack_and_the_gaps_they_show(clean, tmp_path, capsys):
    import pandas as pd
    import tifffile

    from asymflux.analysis._frametimes import read_frame_times, timing_warnings
    from asymflux.cli import main

    stack, _ = clean
    tif = tmp_path / "movie.tif"
    tifffile.imwrite(tif, stack)
    times = np.arange(N) * 10.0
    times[9:] += 20.0  # two frames dropped before frame 9
    table = tmp_path / "times.csv"
    pd.DataFrame({"frame": np.arange(N)[::-1], "time_s": times[::-1]}).to_csv(table, index=False)
    np.testing.assert_array_equal(read_frame_times(table, n_frames=N), times)
    base = ["analyze", str(tif), "--pixel-nm", "65", "--no-register"]
    assert main([*base, "--out", str(tmp_path / "a"), "--frame-times", str(table)]) == 0
    err = capsys.readouterr().err
    assert "1 gap(s)" in err and "before frame(s) 9 (30 s)" in err and "about 2 frame(s)" in err
    ts = pd.read_csv(tmp_path / "a" / "timeseries.csv")
    np.testing.assert_array_equal(ts[ts.particle_id == 1].time_s, times)
    assert main([*base, "--out", str(tmp_path / "b"), "--frame-times", str(table),
                 "--frame-interval-s", "10"]) != 0
    assert "exclude each other" in capsys.readouterr().err
    short = tmp_path / "short.csv"
    pd.DataFrame({"time_s": times[:-1]}).to_csv(short, index=False)
    assert main([*base, "--out", str(tmp_path / "c"), "--frame-times", str(short)]) != 0
    assert str(short) in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"time_s": [0.0, 5.0, 5.0]}).to_csv(bad, index=False)
    with pytest.raises(ValueError, match="increase strictly"):
        read_frame_times(bad)
    pd.DataFrame({"t": [0.0]}).to_csv(bad, index=False)
    with pytest.raises(ValueError, match="no time_s column"):
        read_frame_times(bad)
    # regular: nothing to say; jittered: irregular
    assert timing_warnings(np.arange(20) * 2.0) == []
    jitter = np.arange(20) * 2.0 + np.r_[0, 0.5, np.zeros(18)]
    assert "irregular" in " ".join(timing_warnings(jitter, name="x"))


def test_detected_centres_are_not_pulled_by_a_beam_profile(clean):
    from scipy import ndimage as ndi

    stack, lab = clean
    rr, cc = np.indices(SHAPE)
    beam = np.exp(-((rr - 48) ** 2 + (cc - 30) ** 2) / (2 * 90.0 ** 2))  # 56 % at the edge
    lit = (stack.astype(float) * beam).astype(np.float32)
    true = np.array(ndi.center_of_mass(lab > 0, lab, [1, 2]))

    def errors(labels):
        c = np.array(ndi.center_of_mass(labels > 0, labels, range(1, labels.max() + 1)))
        return np.array([np.hypot(*(c - t).T).min() for t in true])

    raw = an.detect_particles(an.reference_image(lit), pixel_nm=PIXEL_NM)
    ds = io.Dataset(stack=lit, time_s=np.arange(N) * 10.0, pixel_nm=PIXEL_NM)
    with pytest.warns(Warning):
        *_, used = an.analyze_dataset(ds, return_labels=True, register=False)
    # the beam's slope pulls the raw outlines (0.9 px); flattened, the detection's own
    # error is left (0.45 px; 0.6 px dividing by the true beam)
    assert errors(raw).max() > 0.8
    assert errors(used).max() < 0.6
