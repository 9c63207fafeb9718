import dask.array as da
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi
from skimage.morphology import disk

from asymflux import analysis as an
from tests._helpers.analysis_synth import core_stack

PIXEL_NM = 65.0


def measure(stack, labels, **kw):
    kw.setdefault("pixel_nm", PIXEL_NM)
    return an.particle_timeseries(stack, labels, **kw)


@pytest.mark.parametrize("offset", [(0, 6), (-5, 3), (4, -4), (7, 0), (2.0, 1.0)])
def test_offset_matches_truth(offset):
    stack, labels, _ = core_stack(core_offset=offset)
    ts = measure(stack, labels, time_s=[0, 60, 120], capacity_mAh_g=[0, 1, 2])
    row = ts[ts.frame == 1].iloc[0]
    truth_nm = np.hypot(*offset) * PIXEL_NM
    assert row.offset_nm == pytest.approx(truth_nm, rel=0.05)
    r_eq_nm = np.sqrt(labels.sum() / np.pi) * PIXEL_NM
    assert row.offset_norm == pytest.approx(row.offset_nm / r_eq_nm)
    assert row.offset_angle_deg == pytest.approx(np.degrees(np.arctan2(-offset[0], offset[1])), abs=1.0)
    assert row.offset_reason == ""
    assert row.capacity_mAh_g == 1 and row.time_s == 60
    core_px = np.count_nonzero(stack[1][labels > 0] < 1.05 * 1.0 - 1e-6)
    # the fraction is of the pixels at least edge_px = 2 inside the outline (the core is)
    inner = ndi.binary_erosion(labels > 0, structure=disk(2))
    assert row.unreacted_fraction == pytest.approx(core_px / inner.sum())
    assert row.mean_dI == pytest.approx(0.2 * (1 - core_px / labels.sum()), rel=1e-5)


def test_direction_convention_left_is_180():
    # core to the left of the centre (smaller column) -> 180 deg; above (smaller row) -> 90 deg
    s, lab, _ = core_stack(core_offset=(0, -6))
    assert measure(s, lab).offset_angle_deg[1] == pytest.approx(180.0)
    s, lab, _ = core_stack(core_offset=(-6, 0))
    assert measure(s, lab).offset_angle_deg[1] == pytest.approx(90.0)


@settings(max_examples=25, deadline=None)
@given(
    k=st.integers(0, 3),
    dr=st.integers(-12, 12),
    dc=st.integers(-12, 12),
    off_r=st.integers(-6, 6),
    off_c=st.integers(-6, 6),
)
def test_invariant_under_rotation_and_translation(k, dr, dc, off_r, off_c):
    stack, labels, _ = core_stack(core_offset=(off_r, off_c))
    base = measure(stack, labels)
    moved_stack = np.rot90(np.roll(stack, (dr, dc), axis=(1, 2)), k, axes=(1, 2))
    moved_labels = np.rot90(np.roll(labels, (dr, dc), axis=(0, 1)), k)
    moved = measure(moved_stack, moved_labels)
    np.testing.assert_allclose(moved.offset_nm, base.offset_nm, atol=1e-9)
    np.testing.assert_allclose(moved.unreacted_fraction, base.unreacted_fraction)
    a0, a1 = base.offset_angle_deg[1], moved.offset_angle_deg[1]
    if off_r or off_c:
        assert ((a1 - a0 - 90 * k + 180) % 360) - 180 == pytest.approx(0, abs=1e-6)


def test_symmetric_core_gives_zero_offset():
    stack, labels, _ = core_stack(core_offset=(0, 0))
    ts = measure(stack, labels)
    assert ts.offset_norm[1] < 0.02
    assert np.isnan(ts.offset_angle_deg[1])  # no direction for a centred core


def test_no_unreacted_pixels_is_nan_with_reason():
    stack, labels, _ = core_stack(n_frames=3)  # last frame fully reacted
    ts = measure(stack, labels)
    last = ts.iloc[-1]
    assert np.isnan(last.offset_nm) and np.isnan(last.offset_norm)
    assert np.isnan(last.offset_angle_deg)
    assert last.offset_reason == "no unreacted pixels"
    assert last.unreacted_fraction == 0


def test_nonpositive_reference_is_masked_with_warning():
    stack, labels, _ = core_stack()
    stack[:, 30, 48] = 0.0  # a dead pixel inside the particle (outside the core)
    with pytest.warns(an.NonPositiveReferenceWarning, match="I0 <= 0"):
        dI = an.differential_intensity(stack)
    assert np.isnan(dI[:, 30, 48]).all()
    assert np.isfinite(dI[:, 31, 48]).all()
    with pytest.warns(an.NonPositiveReferenceWarning):
        ts = measure(stack, labels)
    # the dead pixel is neither reacted nor unreacted
    good = measure(*core_stack()[:2])
    n = ndi.binary_erosion(labels > 0, structure=disk(2)).sum()
    assert ts.unreacted_fraction[1] == pytest.approx(good.unreacted_fraction[1] * n / (n - 1))


def test_mask_that_does_not_fit_is_an_error():
    stack, labels, _ = core_stack()
    with pytest.raises(ValueError, match=r"labels shape \(95, 96\) does not match"):
        measure(stack, labels[:-1])
    with pytest.raises(ValueError, match="integer labels"):
        measure(stack, labels + 0.5)
    with pytest.raises(ValueError, match="one value per frame"):
        measure(stack, labels, time_s=[0, 1])


def test_differential_input_and_dask_give_same_numbers():
    stack, labels, dI = core_stack(n_frames=12)
    ref = measure(stack, labels)
    from_dI = measure(dI, labels, differential=True)
    lazy = measure(da.from_array(stack, chunks=(5, 48, 96)), labels, chunk_frames=5)
    cols = ["unreacted_fraction", "offset_nm", "offset_angle_deg", "mean_dI"]
    np.testing.assert_allclose(from_dI[cols].to_numpy(float), ref[cols].to_numpy(float), atol=1e-6)
    np.testing.assert_allclose(lazy[cols].to_numpy(float), ref[cols].to_numpy(float), atol=1e-6)
    assert np.isnan(from_dI.norm_intensity).all()
    np.testing.assert_allclose(ref.norm_intensity, 1 + ref.mean_dI, rtol=1e-6)  # I0 uniform


def test_several_particles_and_integer_dtypes():
    a, la, _ = core_stack(shape=(64, 160), center=(32, 40), core_offset=(0, 5))
    b, lb, _ = core_stack(shape=(64, 160), center=(32, 115), core_offset=(-4, 0))
    stack = np.maximum(a, b)
    labels = la + 7 * lb  # ids 1 and 7
    ts = measure((stack * 1000).astype(np.uint16), labels)
    assert sorted(ts.particle_id.unique()) == [1, 7]
    d = ts[ts.frame == 1].set_index("particle_id").offset_nm
    assert d[1] == pytest.approx(5 * PIXEL_NM, rel=0.05)
    assert d[7] == pytest.approx(4 * PIXEL_NM, rel=0.05)


def test_registration_recovers_offset_under_drift():
    from scipy import ndimage as ndi

    stack, labels, _ = core_stack(n_frames=8, shape=(96, 96))
    rng = np.random.default_rng(3)
    true = np.cumsum(rng.normal(0, 0.4, (8, 2)), axis=0)
    true[0] = 0
    drifted = np.stack([ndi.shift(ndi.gaussian_filter(f, 1.0), s, order=3, mode="nearest")
                        for f, s in zip(stack, true, strict=True)])
    est = an.estimate_drift(drifted, upsample_factor=20)
    np.testing.assert_allclose(est, -true, atol=0.1)
    ts = measure(drifted, labels, register=True, upsample_factor=20)
    d_true = 6 * PIXEL_NM
    frames = ts[(ts.frame > 0) & (ts.frame < 7)]
    np.testing.assert_allclose(frames.offset_nm, d_true, rtol=0.05)
    np.testing.assert_allclose(ts.drift_row_px, -true[:, 0], atol=0.1)
    # the lazy path: correct_drift on dask gives what it gives on NumPy
    lazy = an.correct_drift(da.from_array(drifted, chunks=(3, 96, 96)), est)
    assert isinstance(lazy, da.Array)
    np.testing.assert_allclose(lazy.compute(), an.correct_drift(drifted, est), atol=1e-5)
    reg, shifts = an.register_stack(drifted, upsample_factor=20)
    np.testing.assert_allclose(shifts, est, atol=1e-9)


def test_batched_registration_gives_skimage_phase_cross_correlation_shifts():
    # the batched estimator is skimage's algorithm searched near a coarse guess: on
    # textured frames with drift of several pixels it must return the same shifts
    from skimage.registration import phase_cross_correlation

    from asymflux.analysis._registration import _estimate_chunk

    rng = np.random.default_rng(7)
    ref = ndi.gaussian_filter(rng.random((80, 96)), 2.0).astype(np.float32)
    true = rng.uniform(-4.5, 4.5, (24, 2))
    frames = np.stack([ndi.shift(ref, s, order=3, mode="grid-wrap") for s in true])
    frames += rng.normal(0, 1e-3, frames.shape).astype(np.float32)
    got = _estimate_chunk(frames, ref, (slice(None), slice(None)), 20, np.arange(24))
    want = np.array([phase_cross_correlation(ref - ref.mean(), f - f.mean(), upsample_factor=20,
                                             normalization=None)[0] for f in frames])
    assert got.shape == (24, 2)
    np.testing.assert_allclose(got, want, atol=0.05 + 1e-9)  # one 1/20 px step at most
    assert np.mean(np.all(np.abs(got - want) < 1e-6, axis=1)) >= 0.9
    np.testing.assert_allclose(got, -true, atol=0.1)


def test_particle_sampling_matches_map_coordinates_at_the_frame_edges():
    from scipy import ndimage as ndi

    from asymflux.analysis._measure import _Pixels

    rng = np.random.default_rng(1)
    labels = np.zeros((40, 50), int)
    labels[0:10, 0:12] = 1  # touches the top-left corner
    labels[20:40, 30:50] = 2  # touches the bottom-right corner
    labels[15:18, 5:9] = 3
    chunk = rng.random((6, 40, 50))
    shifts = np.array([[0.3, -0.7], [2.5, 3.25], [-1.9, 0.0], [0, 0], [-3.1, -2.2], [-12.0, 7.5]])
    px = _Pixels(labels)
    got = px.sample(chunk, shifts)
    assert got.shape == (6, px.flat.size) and got.flags.c_contiguous
    for k in range(6):
        want = ndi.map_coordinates(chunk[k], [px.rows - shifts[k, 0], px.cols - shifts[k, 1]],
                                   order=1, mode="nearest", prefilter=False)
        np.testing.assert_allclose(got[k], want, rtol=0, atol=1e-12)
    unshifted = px.sample(chunk, None)
    assert unshifted.flags.c_contiguous
    np.testing.assert_array_equal(unshifted, chunk.reshape(6, -1)[:, px.flat])


def test_a_dim_edge_pixel_is_not_the_last_unreacted_part():
    """The PSF mixes the outline's pixels with the dark matrix: one of them below the
    threshold after the core has gone must not read as an unreacted region at the edge."""
    stack, labels, _ = core_stack(n_frames=3)
    rows, cols = np.nonzero(labels)
    k = np.argmax(cols)  # the rightmost pixel of the outline
    stack[2, rows[k], cols[k]] = stack[0, rows[k], cols[k]]  # dI = 0 there, fully reacted elsewhere
    plain = measure(stack, labels, edge_px=0, min_core_px=1)
    last = plain[plain.frame == 2].iloc[0]
    assert last.unreacted_fraction > 0 and last.offset_norm > 0.9  # the artefact
    # ... which the default smallest core (a PSF's area) reports as unresolved
    last = measure(stack, labels, edge_px=0).query("frame == 2").iloc[0]
    assert np.isnan(last.offset_nm) and last.offset_reason == "core too small"
    assert last.quality_flags == "core_too_small"
    ts = measure(stack, labels)  # edge_px=2 by default
    last = ts[ts.frame == 2].iloc[0]
    assert last.unreacted_fraction == 0 and np.isnan(last.offset_nm)
    assert last.offset_reason == "no unreacted pixels"
    # the core frame is measured the same way either way
    np.testing.assert_allclose(ts[ts.frame == 1].offset_nm, plain[plain.frame == 1].offset_nm)
    with pytest.raises(ValueError, match="edge_px"):
        measure(stack, labels, edge_px=-1)


def test_a_particle_thinner_than_the_margin_keeps_its_pixels():
    stack, labels, _ = core_stack(n_frames=3)
    labels = labels.copy()
    labels[5, 5:8] = 2  # a 1-pixel-wide particle: every pixel is on its outline
    ts = measure(stack, labels, edge_px=2)
    small = ts[ts.particle_id == 2]
    assert np.all(np.isfinite(small.unreacted_fraction))
