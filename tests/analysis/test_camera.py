"""Illumination that changes across the frame: the per-frame smooth illumination fitted to
the particle-free pixels (a flat field that may move), and dark / flat calibration frames."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from asymflux import analysis as an
from asymflux import io
from asymflux.analysis._pipeline import calibrate_stack, detect_reference, resolve_illumination
from asymflux.analysis._quality import CorrectedStack, detect_saturation_level, illumination_field
from tests._helpers.microscope_movie import PIXEL_NM, SHAPE, N, clean_movie


@pytest.fixture(scope="module")
def clean():
    return clean_movie()


def _beam(c0, edge=0.6, shape=SHAPE):
    """A Gaussian beam centred at (48, c0) whose farthest frame corner gets ``edge``."""
    rr, cc = np.indices(shape)
    far = np.hypot(max(48, shape[0] - 48), max(c0, shape[1] - c0))
    s = far / np.sqrt(-2 * np.log(edge))
    return np.exp(-((rr - 48) ** 2 + (cc - c0) ** 2) / (2 * s ** 2))


def _centres(labels, like):
    c = np.array(ndi.center_of_mass(labels > 0, labels, range(1, labels.max() + 1)))
    return np.array([c[np.argmin(np.hypot(*(c - t).T))] for t in like])


def test_the_fitted_illumination_is_the_beam_up_to_its_mean(clean):
    stack, lab = clean
    beam = _beam(30)
    free = an.particle_free_pixels(lab)
    field = illumination_field(stack[0] * beam, free) / illumination_field(stack[0], free)
    expected = beam / beam[free].mean()
    # the carbon matrix's texture is left in the residual, not in the smooth field; a
    # quadratic follows the Gaussian's cap to ~1 % over the particles
    assert np.abs(field / expected - 1)[lab > 0].max() < 0.02
    assert illumination_field(stack[0], np.zeros(SHAPE, bool)) is None


def test_detected_centres_are_unbiased_by_a_static_beam(clean):
    stack, lab = clean
    true = np.array(ndi.center_of_mass(lab > 0, lab, [1, 2]))
    plain = _centres(detect_reference(an.reference_image(stack), pixel_nm=PIXEL_NM), true)
    for c0 in (0, 30):  # the beam's edge at 60 %, centred off the particles
        lit = _centres(detect_reference(an.reference_image(stack * _beam(c0)),
                                        pixel_nm=PIXEL_NM), true)
        # the beam moves the detected centres by < 0.3 px (0.06 px here); the detection's
        # own error against the drawn disks (0.4 px, the carbon matrix's texture at the
        # outline) is the same with and without the beam
        assert np.hypot(*(lit - plain).T).max() < 0.3
        assert np.hypot(*(lit - true).T).max() < 0.5


@pytest.fixture(scope="module")
def moving(clean):
    stack, lab = clean
    beams = np.array([_beam(30 + 30 * k / (N - 1)) for k in range(N)])
    return (stack * beams).astype(np.float32), lab


def test_a_moving_beam_is_divided_out_and_said(clean, moving):
    stack, lab = moving
    ds = io.Dataset(stack=stack, time_s=np.arange(N) * 10.0, pixel_nm=PIXEL_NM)
    with pytest.warns(Warning, match="spatial pattern changes by"):
        p, ts = an.analyze_dataset(ds)
    ref_ds = io.Dataset(stack=clean[0], time_s=np.arange(N) * 10.0, pixel_nm=PIXEL_NM)
    p0, ts0 = an.analyze_dataset(ref_ds)
    d, d0 = ts.offset_nm.to_numpy() / PIXEL_NM, ts0.offset_nm.to_numpy() / PIXEL_NM
    has = np.isfinite(d0)
    ok = np.abs(d - d0)[has] <= np.maximum(0.05 * np.abs(d0[has]), 1.0)
    assert ok.mean() >= 0.95
    assert list(p.classification) == list(p0.classification)
    # off: the beam's slide reads as a shifted core
    _, raw = an.analyze_dataset(ds, illumination=None)
    d_raw = raw.offset_nm.to_numpy() / PIXEL_NM
    assert (np.abs(d_raw - d0)[has] <= np.maximum(0.05 * np.abs(d0[has]), 1.0)).mean() < \
        ok.mean()


def test_a_clean_movie_is_left_as_it_is(clean):
    stack, lab = clean
    same, said = resolve_illumination(stack, lab, "auto")
    assert same is stack and said == []
    forced, _ = resolve_illumination(stack, lab, True)
    assert isinstance(forced, CorrectedStack)
    with pytest.raises(ValueError, match="illumination must be"):
        resolve_illumination(stack, lab, "sometimes")


def test_clipped_pixels_stay_unknown_through_the_correction():
    stack = np.random.default_rng(0).uniform(100, 200, (3, 40, 40))
    stack[:, 5:10, 5:10] = 250.0
    lab = np.zeros((40, 40), int)
    lab[15:25, 15:25] = 1
    out = resolve_illumination(stack, lab, True)[0][:]
    assert (out[:, 5:10, 5:10] == out.max()).all()
    assert detect_saturation_level(out) == out.max()


# ----------------------------------------------------------------------- calibration frames


def test_dark_and_flat_frames_from_arrays_and_files(clean, tmp_path):
    tifffile = pytest.importorskip("tifffile")
    stack, lab = clean
    raw = stack.astype(np.float64)
    gain = _beam(30, edge=0.7) * (1 + 0.03 * np.random.default_rng(3).standard_normal(SHAPE))
    dark = np.full(SHAPE, 100.0)
    seen = raw * gain + dark
    flat = 2000 * gain + dark
    np.save(tmp_path / "dark.npy", dark)
    tifffile.imwrite(tmp_path / "flat.tif", np.stack([flat, flat]).astype(np.float32))
    for d, f in ((dark, flat), (tmp_path / "dark.npy", str(tmp_path / "flat.tif"))):
        out = calibrate_stack(seen, dark=d, flat=f)[:]
        ratio = out / raw
        np.testing.assert_allclose(ratio, ratio.mean(), rtol=1e-4)
    ds = io.Dataset(stack=seen, time_s=np.arange(N) * 10.0, pixel_nm=PIXEL_NM, masks=lab)
    ds0 = io.Dataset(stack=raw, time_s=np.arange(N) * 10.0, pixel_nm=PIXEL_NM, masks=lab)
    with pytest.warns(Warning):
        _, ts = an.analyze_dataset(ds, dark=dark, flat=flat)
    _, ts0 = an.analyze_dataset(ds0)
    np.testing.assert_allclose(ts.offset_nm, ts0.offset_nm, atol=0.5 * PIXEL_NM)


def test_bad_calibration_frames_are_refused_naming_the_file(clean, tmp_path):
    stack, _ = clean
    np.save(tmp_path / "small.npy", np.ones((10, 10)))
    with pytest.raises(ValueError, match=r"dark frame .*small\.npy: shape \(10, 10\)"):
        calibrate_stack(stack, dark=tmp_path / "small.npy")
    np.save(tmp_path / "text.npy", np.full(SHAPE, "a"))
    with pytest.raises(ValueError, match=r"flat frame .*text\.npy: expected a numeric"):
        calibrate_stack(stack, flat=tmp_path / "text.npy")
    zeros = np.ones(SHAPE)
    zeros[3, 4] = 0
    np.save(tmp_path / "zero.npy", zeros)
    with pytest.raises(ValueError, match=r"zero\.npy: 1 pixel\(s\) of flat are zero .*row 3, "
                                         "col 4"):
        calibrate_stack(stack, flat=tmp_path / "zero.npy")
    with pytest.raises(ValueError, match="no such file"):
        calibrate_stack(stack, flat=tmp_path / "missing.tif")
    with pytest.raises(ValueError, match=r"flat frame: 1 pixel\(s\) are NaN"):
        calibrate_stack(stack, flat=np.where(zeros == 0, np.nan, 1.0))
    (tmp_path / "flat.png").write_bytes(b"x")
    with pytest.raises(ValueError, match="expected a .npy or .tif"):
        calibrate_stack(stack, flat=tmp_path / "flat.png")


# ----------------------------------------------------------------------------------- clipping


@pytest.mark.parametrize("level", [1.05, 1.1])
def test_clipped_pixels_that_could_hold_the_core_leave_d_unknown(clean, level):
    stack, lab = clean
    start = np.median(stack[0][lab == 1])
    clipped = np.minimum(stack, np.floor(level * start)).astype(np.uint16)
    ts = an.particle_timeseries(clipped, lab, pixel_nm=PIXEL_NM)
    plain = an.particle_timeseries(stack, lab, pixel_nm=PIXEL_NM)
    unknown = (ts.offset_reason == "clipped pixels").to_numpy()
    assert ts.offset_nm[unknown].isna().all()
    assert ts.quality_flags[unknown].str.contains("saturated").all()
    # where d is given, it is the unclipped movie's within max(5 %, 1 px)
    d, d0 = ts.offset_nm.to_numpy() / PIXEL_NM, plain.offset_nm.to_numpy() / PIXEL_NM
    given = np.isfinite(d) & np.isfinite(d0)
    assert (np.abs(d - d0)[given] <= np.maximum(0.05 * d0[given], 1.0) + 1e-9).mean() >= 0.95
    # no class is wrong: right, or undetermined
    got = an.summarize_particles(ts).classification.to_numpy()
    right = an.summarize_particles(plain).classification.to_numpy()
    assert ((got == right) | (got == "undetermined")).all()


def test_d_is_unknown_when_the_clipped_pixels_could_move_the_core():
    from asymflux.analysis._quality import saturation_ambiguous

    # core of 100 px centred 5 px right of the centre of mass; 10 unknown px 20 px left
    args = dict(n_unr=np.array([100.0, 100.0, 0.0]), sum_row=np.zeros(3),
                sum_col=np.array([500.0, 500.0, 0.0]), com_row=0.0, com_col=0.0)
    far = saturation_ambiguous(**args, n_unk=np.array([10.0, 0.0, 5.0]), sum_unk_row=np.zeros(3),
                               sum_unk_col=np.array([-200.0, 0.0, 0.0]))
    assert far.tolist() == [True, False, True]  # moved 2.3 px; none unknown; only unknown
    near = saturation_ambiguous(**args, n_unk=np.array([1.0, 0.0, 0.0]), sum_unk_row=np.zeros(3),
                                sum_unk_col=np.array([5.0, 0.0, 0.0]))
    assert not near.any()


def test_illumination_change_on_block_means_is_the_full_fit_within_1e_3():
    # 320 x 400 frames (binned 4 x 4: ~7 000 free blocks), 8 discs over a noisy background,
    # a beam moving 48 px over 4 frames: the block-mean fit (the default) reports the change
    # of the full-resolution fit within 1e-3 (the decision limit is 0.025); bin_px=1 is
    # exactly illumination_field's fields on the particle pixels
    from asymflux.analysis._quality import illumination_change

    rng = np.random.default_rng(3)
    shape = (320, 400)
    rr, cc = np.indices(shape)
    labels = np.zeros(shape, np.int32)
    for i, (r, c) in enumerate(rng.uniform([30, 30], [290, 370], (8, 2))):
        labels[np.hypot(rr - r, cc - c) < 15] = i + 1
    base = np.where(labels > 0, 3000.0, 800.0)
    frames = []
    for k in range(4):
        beam = np.exp(-((rr - 150) ** 2 + (cc - 150 - 16 * k) ** 2) / (2 * 350.0 ** 2))
        frames.append(base * beam + rng.normal(0, 20, shape))
    stack = np.array(frames)
    full, k_full = illumination_change(stack, labels, bin_px=1)
    binned, k_binned = illumination_change(stack, labels)
    free = an.particle_free_pixels(labels)
    ref = illumination_field(stack[0], free)
    direct = [np.abs(illumination_field(f, free) / ref - 1)[labels > 0].max() for f in stack]
    assert full == pytest.approx(max(direct), rel=1e-9) and k_full == int(np.argmax(direct))
    assert 0.02 < full < 0.2  # a change the decision sees
    assert abs(binned - full) < 1e-3 and k_binned == k_full
    # particle_free_pixels remembers its last answer: a copy, not to be changed by callers
    again = an.particle_free_pixels(labels)
    again[:] = False
    assert np.array_equal(an.particle_free_pixels(labels), free)
