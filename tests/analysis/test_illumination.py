"""Illumination: frame intensity, normalising each frame by it, and the rolling differential."""

import numpy as np
import pandas as pd
import pytest

from asymflux import analysis as an
from asymflux import io
from asymflux.cli import main
from tests._helpers.analysis_synth import core_stack, shrinking_core_movie

N_FRAMES = 12


@pytest.fixture(scope="module")
def flicker():
    """Lamp flicker: each frame multiplied by a random factor 1 ± 5 % (frame 0 too)."""
    return np.random.default_rng(7).uniform(0.95, 1.05, N_FRAMES)


@pytest.fixture(scope="module")
def movies(flicker):
    steady, labels = shrinking_core_movie(n_frames=N_FRAMES)
    flickering, _ = shrinking_core_movie(n_frames=N_FRAMES, illumination=flicker)
    return steady, flickering, labels


def _d_px(stack, labels, **kwargs):
    ts = an.particle_timeseries(stack, labels, pixel_nm=65.0, **kwargs)
    return ts.offset_nm.to_numpy() / 65.0, ts


# ----------------------------------------------------------------------------- frame intensity


def test_frame_intensity_is_the_mean_of_the_background_pixels():
    rng = np.random.default_rng(1)
    stack = rng.uniform(1, 2, (7, 10, 12))
    mask = np.zeros((10, 12), bool)
    mask[:3] = True
    np.testing.assert_allclose(an.frame_intensity(stack), stack.mean(axis=(1, 2)))
    np.testing.assert_allclose(an.frame_intensity(stack, background_mask=mask, chunk_frames=2),
                               stack[:, mask].mean(axis=1))
    da = pytest.importorskip("dask.array")
    lazy = an.frame_intensity(da.from_array(stack, chunks=(3, 10, 12)), background_mask=mask)
    assert type(lazy).__module__.startswith("dask")
    np.testing.assert_allclose(lazy.compute(), stack[:, mask].mean(axis=1))


def test_particle_free_pixels_leave_a_margin_around_every_particle():
    labels = np.zeros((30, 30), int)
    labels[10:15, 10:15] = 1
    labels[20:22, 25:27] = 4
    free = an.particle_free_pixels(labels, margin_px=3)
    assert not free[labels > 0].any()
    assert not free[7, 12] and free[6, 12]  # 3 px above the first particle: still its halo
    assert free[0, 0] and free.sum() < (labels == 0).sum()
    assert an.particle_free_pixels(labels, margin_px=0).sum() == (labels == 0).sum()
    with pytest.raises(ValueError, match="no particle-free pixel"):
        an.particle_free_pixels(np.ones((5, 5), int))


# ----------------------------------------------------------------------------- normalisation


def test_normalised_dI_removes_flicker_exactly(flicker):
    stack, _, _ = core_stack(n_frames=5)
    flickering = stack * flicker[:5, None, None]
    plain = an.differential_intensity(stack)
    # the lamp's own reading, and the frames' mean: both undo a multiplicative flicker
    np.testing.assert_allclose(an.differential_intensity(flickering, normalize=flicker[:5]),
                               plain, atol=1e-6)
    background = stack[0] < 0.75  # core_stack: particle 1.0 (and brighter), matrix 0.5
    for mask in (background, None):
        dI = an.differential_intensity(flickering, normalize="frame_mean", background_mask=mask)
        assert np.abs(dI[0]).max() < 1e-6  # ~0 at the start
    np.testing.assert_allclose(
        an.differential_intensity(flickering, normalize="frame_mean", background_mask=background),
        plain, atol=1e-6)
    # without it, the particle's unreacted pixels move with the lamp
    raw = an.differential_intensity(flickering)
    assert np.abs(raw - plain).max() > 0.03
    # lazy and eager agree; a given I0 is taken at the reference frames' illumination
    da = pytest.importorskip("dask.array")
    lazy = an.differential_intensity(da.from_array(flickering, chunks=(2, 96, 96)),
                                     normalize="frame_mean", background_mask=background)
    assert type(lazy).__module__.startswith("dask")
    np.testing.assert_allclose(lazy.compute(), plain, atol=1e-6)
    np.testing.assert_allclose(
        an.differential_intensity(flickering, reference=flickering[0], normalize=flicker[:5]),
        plain, atol=1e-6)


def test_normalisation_recovers_the_flicker_free_offset(movies):
    steady, flickering, labels = movies
    inside = labels > 0
    # min_core_px=1: d of the last few-pixel cores too (compared here)
    truth, ts_truth = _d_px(steady, labels, min_core_px=1)
    normalised, ts = _d_px(flickering, labels, normalize="frame_mean", min_core_px=1)
    raw, ts_raw = _d_px(flickering, labels, min_core_px=1)
    core = np.isfinite(truth)
    assert core.sum() >= N_FRAMES - 2 and truth[core].max() > 10  # the core walks off-centre
    # What normalising leaves: the particle's PSF tail beyond the 6 px margin changes the
    # background mean by < 2e-4 over the charge (Gaussian PSF, σ = 2.2 px), so dI moves by
    # < 5e-4, against the flicker's ~0.05.
    residual = np.abs(an.differential_intensity(flickering, normalize="frame_mean",
                                                background_mask=an.particle_free_pixels(labels))
                      - an.differential_intensity(steady))[:, inside]
    assert residual.max() < 5e-4
    # So only a pixel within 5e-4 of the threshold can change sides: the unreacted area is
    # the same to a pixel or two, and d to 0.05 px while the core has >= 20 pixels (one
    # pixel more or less moves its centre by at most ~R_core / n_core), 0.5 px after.
    area_px = ts_truth.unreacted_area_um2.to_numpy() / 0.065**2
    np.testing.assert_allclose(ts.unreacted_area_um2 / 0.065**2, area_px, atol=2)
    np.testing.assert_array_equal(np.isfinite(normalised), core)
    big = core & (area_px >= 20)
    np.testing.assert_allclose(normalised[big], truth[big], atol=0.05)
    np.testing.assert_allclose(normalised[core], truth[core], atol=0.5)
    # Without it, a frame 5 % brighter than the reference lifts dI by 0.05 - the whole
    # threshold - and its core loses its outer pixels; a darker one gains reacted pixels.
    raw_area = ts_raw.unreacted_area_um2.to_numpy() / 0.065**2
    assert np.abs(raw_area - area_px).max() > 30
    assert np.nanmax(np.abs(raw - truth)) > 0.5  # 10x the tolerance above; 0.03 in d/R_eq


def test_normalisation_is_the_same_on_every_path(movies, flicker):
    """particle_timeseries (chunked, lazy or not), particle_crop and analyze_dataset agree."""
    _, flickering, labels = movies
    base, ts = _d_px(flickering, labels, normalize="frame_mean")
    for kwargs in ({"chunk_frames": 1}, {"chunk_frames": 5, "n_threads": 3}):
        d, _ = _d_px(flickering, labels, normalize="frame_mean", **kwargs)
        np.testing.assert_allclose(d, base, atol=1e-9)
    da = pytest.importorskip("dask.array")
    d, _ = _d_px(da.from_array(flickering, chunks=(4, 72, 72)), labels, normalize="frame_mean")
    np.testing.assert_allclose(d, base, atol=1e-9)
    # the lamp's reading gives the same as the background mean (to the PSF tail)
    d, _ = _d_px(flickering, labels, normalize=flicker)
    np.testing.assert_allclose(d, base, atol=0.05)

    crop = an.particle_crop(flickering, labels, 1, normalize="frame_mean")
    inside = crop.mask
    dI_table = ts.mean_dI.to_numpy()
    np.testing.assert_allclose(np.nanmean(crop.dI[:, inside], axis=1), dI_table, atol=1e-6)

    time_s = np.arange(N_FRAMES) * 60.0
    echem = pd.DataFrame({"time_s": time_s, "voltage_V": 3.7, "current_mA": 0.01,
                          "capacity_mAh_g": np.linspace(0, 20, N_FRAMES)})
    ds = io.Dataset(stack=flickering, time_s=time_s, pixel_nm=65.0, echem=echem, masks=labels,
                    metadata={"name": "flicker"})
    _, ts_ds = an.analyze_dataset(ds, normalize="frame_mean", register=False)
    np.testing.assert_allclose(ts_ds.offset_nm, ts.offset_nm, atol=1e-6)
    # a recorded per-frame intensity (an instrument's lamp monitor) is used instead
    ds.frame_intensity = flicker * 3.0
    assert an.dataset_normalization(ds, "frame_mean") is not None
    np.testing.assert_allclose(an.dataset_normalization(ds, "frame_mean"), flicker * 3.0)
    _, ts_rec = an.analyze_dataset(ds, normalize="frame_mean", register=False)
    d_rec = ts_rec.offset_nm.to_numpy() / 65.0
    np.testing.assert_allclose(d_rec, base, atol=0.05)
    assert an.dataset_normalization(ds, None) is None
    ds.frame_intensity = flicker[:-1]
    with pytest.raises(ValueError, match=r"flicker: frame_intensity must have one value per frame"):
        an.analyze_dataset(ds, normalize="frame_mean")


# ----------------------------------------------------------------------------- rolling


def test_rolling_differential_is_I_t_over_I_t_minus_n():
    stack = np.arange(1.0, 1.0 + 5 * 2 * 3).reshape(5, 2, 3) ** 1.5
    dI = an.differential_intensity(stack, rolling_frames=2)
    assert np.isnan(dI[:2]).all()
    np.testing.assert_array_equal(dI[2:], stack[2:] / stack[:-2] - 1)
    assert np.isfinite(dI[2:]).all()
    f = np.array([1.0, 2.0, 0.5, 1.0, 4.0])
    np.testing.assert_allclose(
        an.differential_intensity(stack * f[:, None, None], rolling_frames=2, normalize=f)[2:],
        stack[2:] / stack[:-2] - 1, rtol=1e-12)
    single = an.differential_intensity(stack.astype(np.float32), rolling_frames=1)
    assert single.dtype == np.float32
    np.testing.assert_allclose(single[1:], stack[1:] / stack[:-1] - 1, rtol=1e-6)
    da = pytest.importorskip("dask.array")
    lazy = an.differential_intensity(da.from_array(stack, chunks=(2, 2, 3)), rolling_frames=2)
    np.testing.assert_array_equal(lazy.compute(), dI)


def test_rolling_particle_timeseries_reads_across_chunks():
    # a particle brightening by 10 % per frame: I_t / I_(t-2) - 1 = 0.21 from frame 2 on
    n = 7
    labels = np.zeros((20, 20), np.int32)
    labels[5:15, 5:15] = 1
    stack = np.where(labels > 0, 2.0, 1.0)[None] * (1.1 ** np.arange(n))[:, None, None] ** (
        labels > 0)[None]
    shifts = np.zeros((n, 2))
    tables = [an.particle_timeseries(stack, labels, pixel_nm=65, rolling_frames=2, edge_px=0,
                                     chunk_frames=c, shifts_px=shifts, n_threads=t)
              for c, t in ((None, 1), (1, 1), (3, 2))]
    for ts in tables:
        assert np.isnan(ts.mean_dI[:2]).all()
        assert list(ts.offset_reason[:2]) == ["no valid pixels"] * 2
        np.testing.assert_allclose(ts.mean_dI[2:], 0.21, rtol=1e-12)
        np.testing.assert_allclose(ts.norm_intensity[2:], 1.21, rtol=1e-12)
    crop = an.particle_crop(stack, labels, 1, rolling_frames=2)
    np.testing.assert_allclose(crop.dI[2:][:, crop.mask], 0.21, rtol=1e-12)


# ----------------------------------------------------------------------------- validation


def test_bad_options_give_clear_errors():
    stack, labels, _ = core_stack(n_frames=4)
    kw = {"pixel_nm": 65.0}
    for bad in (0, -1, 4, 10, 1.5, True, "2"):
        with pytest.raises(ValueError, match=r"rolling_frames must be a whole number of frames "
                                             r"in \[1, 3\]"):
            an.differential_intensity(stack, rolling_frames=bad)
        with pytest.raises(ValueError, match="rolling_frames"):
            an.particle_timeseries(stack, labels, rolling_frames=bad, **kw)
    for bad in ("mean", True):
        with pytest.raises(ValueError, match="normalize must be None, 'frame_mean'"):
            an.differential_intensity(stack, normalize=bad)
    with pytest.raises(ValueError, match=r"one value per frame \(4\), got 3"):
        an.particle_timeseries(stack, labels, normalize=[1.0, 1.0, 1.0], **kw)
    with pytest.raises(ValueError, match="frame 2 has"):
        an.differential_intensity(stack, normalize=[1.0, 1.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="exclude each other"):
        an.differential_intensity(stack, reference=stack[0], rolling_frames=1)
    with pytest.raises(ValueError, match="exclude each other"):
        an.particle_timeseries(stack, labels, reference=stack[0], rolling_frames=1, **kw)
    with pytest.raises(ValueError, match="differential=True"):
        an.particle_timeseries(stack, labels, differential=True, normalize="frame_mean", **kw)
    with pytest.raises(ValueError, match="background_mask shape"):
        an.particle_timeseries(stack, labels, normalize="frame_mean",
                               background_mask=np.ones((3, 3), bool), **kw)
    with pytest.raises(ValueError, match="no particle-free pixel"):
        an.particle_timeseries(stack, np.ones_like(labels), normalize="frame_mean", **kw)
    dark = stack.copy()
    dark[2][labels == 0] = 0.0
    with pytest.raises(ValueError, match="frame 2: mean background intensity"):
        an.particle_timeseries(dark, labels, normalize="frame_mean", **kw)


def _dataset_folder(tmp_path, n_frames=6):
    stack, labels, _ = core_stack(n_frames=n_frames)
    time_s = np.arange(n_frames) * 30.0
    echem = pd.DataFrame({"time_s": time_s, "voltage_V": 3.7, "current_mA": 0.01,
                          "capacity_mAh_g": np.linspace(0, 5, n_frames)})
    ds = io.Dataset(stack=stack, time_s=time_s, pixel_nm=65.0, echem=echem, masks=labels,
                    metadata={"name": "ill", "ageing": "fresh", "material": "NMC88",
                              "rate_mA_g": 100.0, "cell": "optical half-cell vs Li"})
    return io.write_dataset(ds, tmp_path / "ill")


def test_cli_flags(tmp_path, capsys):
    d = _dataset_folder(tmp_path)
    out = tmp_path / "out"
    assert main(["analyze", str(d), "--out", str(out), "--normalize-illumination",
                 "--rolling", "2", "--no-register"]) == 0
    ts = pd.read_csv(out / "timeseries.csv", keep_default_na=False, na_values=[""])
    assert np.isnan(ts.mean_dI[:2]).all() and np.isfinite(ts.mean_dI[2:]).all()
    capsys.readouterr()
    for bad, message in (("0", "--rolling must be a positive number of frames, got 0"),
                         ("-2", "--rolling must be a positive number of frames, got -2"),
                         ("6", "--rolling 6 must be smaller than its number of frames (6)")):
        assert main(["analyze", str(d), "--out", str(tmp_path / f"x{bad}"),
                     "--rolling", bad]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
        assert not (tmp_path / f"x{bad}").exists()
