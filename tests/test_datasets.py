"""Demo datasets: recipes, ground truth, determinism, cache, CLI."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from asymflux import datasets, model, optics

SMALL = "cohort-fresh-1"  # the quickest dataset to build (21 frames, 6 particles)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv(datasets.ENV_CACHE, str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def small():
    return datasets.make_dataset(SMALL)


def _theoretical_capacity():
    return model.nmc88_lun2025()["Theoretical capacity [mA.h.g-1]"]


# ----------------------------------------------------------------------------- names


def test_names_and_groups():
    names = datasets.list_datasets()
    assert names[:2] == ["fresh", "aged"]
    assert {"charge-rest", "aged-50mA_g", "aged-400mA_g"} <= set(names)
    groups = datasets.list_groups()
    assert groups["aged-rates"] == [f"aged-{r}mA_g" for r in (50, 100, 200, 400)]
    assert set(groups["cohorts"]) == {n for n in names if n.startswith("cohort-")}
    assert datasets.expand(["fresh", "aged-rates", "fresh"]) == ["fresh", *groups["aged-rates"]]
    with pytest.raises(ValueError, match="unknown demo dataset 'nope'"):
        datasets.expand("nope")
    with pytest.raises(ValueError, match="load_group"):
        datasets.load("aged-rates")
    assert "group of 4" in datasets.describe("aged-rates")


def test_cohort_counts_follow_the_paper():
    groups = datasets.list_groups()
    recipes = datasets._recipes()
    counts = {}
    for key, spec in datasets.COHORTS.items():
        classes = [c for n in groups[f"cohort-{key}"] for c in recipes[n].classes]
        counts[key] = (classes.count("asymmetric"), len(classes))
        assert counts[key] == (spec["asymmetric"], spec["total"])
        assert all(len(recipes[n].classes) <= datasets.MAX_PARTICLES_PER_FIELD
                   for n in groups[f"cohort-{key}"])
    assert counts["fresh"] == (2, 18)
    assert counts["3-4.3V-50mA_g"] == (12, 17)
    assert counts["3-4.5V-200mA_g"][0] / counts["3-4.5V-200mA_g"][1] == pytest.approx(0.73, abs=0.01)
    frac = {k: a / n for k, (a, n) in counts.items()}
    # deeper delithiation during ageing (slower rate, higher cut-off) -> more asymmetry
    assert frac["3-4.3V-50mA_g"] > frac["3-4.3V-200mA_g"] > frac["3-4.3V-400mA_g"] > frac["fresh"]
    assert frac["3-4.5V-200mA_g"] > frac["3-4.3V-200mA_g"]


def test_blocking_matches_the_particle_class():
    """Asymmetric: eta <= 0.5 on >= 1/4 of the perimeter; symmetric: eta >= 0.9 everywhere."""
    for name in datasets.list_datasets():
        particles, _, _ = datasets._make_field(datasets._recipes()[name])
        assert len(particles) == len(datasets._recipes()[name].classes)
        for p in particles:
            model.Surface(p.arcs)  # valid, non-overlapping
            blocked = sum(a.fraction for a in p.arcs if a.eta <= 0.5)
            if p.category == "asymmetric":
                assert blocked >= 0.25 and 1 <= len(p.arcs) <= 2
            else:
                assert all(a.eta >= 0.9 for a in p.arcs)
            d = 2 * p.outline.equivalent_radius_um
            assert 2.5 - 1e-9 <= d <= 5.0 + 1e-9


def test_aged_fields_are_one_field_of_view():
    rec = datasets._recipes()
    ref = datasets._make_field(rec["aged"])[0]
    for name in ["aged-50mA_g", "aged-400mA_g", "charge-rest"]:
        other = datasets._make_field(rec[name])[0]
        assert [p.outline for p in other] == [p.outline for p in ref]
        assert [p.arcs for p in other] == [p.arcs for p in ref]
    # particle 1 of the aged field is blocked on its left, as in Fig. 2d
    assert ref[0].arcs[0].center_deg == 180.0 and ref[0].arcs[0].eta <= 0.5


# ----------------------------------------------------------------------------- ground truth


def test_dataset_pieces(small):
    ds = small
    n = ds.stack.shape[0]
    assert ds.stack.dtype == np.uint16 and ds.stack.shape == (21, 256, 256)
    assert ds.pixel_nm == 65.0 and ds.metadata["synthetic"] is True
    assert np.all(np.diff(ds.time_s) > 0) and ds.time_s[-1] == pytest.approx(20 * 60)
    gt = ds.ground_truth
    assert set(gt) == {"particles", "theta", "masks", "drift"}
    np.testing.assert_array_equal(gt["masks"], ds.masks)
    assert gt["theta"].shape == ds.stack.shape
    assert len(gt["drift"]) == n
    assert list(gt["particles"].columns[:4]) == ["particle_id", "center_deg", "fraction", "eta"]
    assert set(gt["particles"]["particle_id"]) == set(np.unique(ds.masks)[1:])
    # echem: charge at 100 mA/g, capacity = rate x time, voltage rises on charge
    e = ds.echem
    np.testing.assert_allclose(e["capacity_mAh_g"], 100.0 * e["time_s"] / 3600.0, atol=1e-6)
    np.testing.assert_allclose(e["current_mA"], 100.0 * datasets.ACTIVE_MASS_MG / 1000.0)
    v = e["voltage_V"].to_numpy()
    assert 3.4 < v[0] < 3.6 and v[-1] > v[0] and np.all(np.diff(v[5:]) > 0)


def test_mask_area_matches_outline(small):
    gt = small.ground_truth
    px_um2 = (small.pixel_nm / 1000) ** 2
    per = gt["particles"].drop_duplicates("particle_id").set_index("particle_id")
    for pid, row in per.iterrows():
        area = np.count_nonzero(gt["masks"] == pid) * px_um2
        assert area == pytest.approx(row["area_um2"], rel=0.01)
        assert row["area_um2"] == pytest.approx(np.pi * row["equivalent_diameter_um"] ** 2 / 4,
                                                rel=1e-4)


def test_mean_theta_follows_the_charge_passed(small):
    gt = small.ground_truth
    cap = small.capacity_at_frames() if hasattr(small, "capacity_at_frames") else None
    if cap is None:  # pragma: no cover
        cap = np.interp(small.time_s, small.echem["time_s"], small.echem["capacity_mAh_g"])
    q = _theoretical_capacity()
    theta = gt["theta"].astype(float)
    assert np.all(np.isnan(theta[:, gt["masks"] == 0]))
    for pid in np.unique(gt["masks"])[1:]:
        m = gt["masks"] == pid
        np.testing.assert_allclose(0.97 - theta[:, m].mean(axis=1), cap / q, atol=2e-6)


def test_intensity_rises_as_particles_delithiate(small):
    stack = small.stack.astype(float) - 100.0  # camera offset
    gt = small.ground_truth
    illum = gt["drift"]["illumination"].to_numpy()
    for pid in np.unique(gt["masks"])[1:]:
        m = gt["masks"] == pid
        inner = m & (np.abs(np.gradient(m.astype(float))[0]) + np.abs(np.gradient(m.astype(float))[1]) == 0)
        signal = stack[:, inner].mean(axis=1) / illum
        di = signal / signal[0] - 1
        # the mean over the particle follows the response of the mean occupancy closely
        assert np.all(np.diff(di[::4]) > 0)
        assert di[-1] > 0.05


def test_drift_is_what_the_ground_truth_says(small):
    from skimage.registration import phase_cross_correlation

    stack = np.asarray(small.stack, dtype=float)
    drift = small.ground_truth["drift"]
    assert drift.loc[0, "drift_row_px"] == 0 and drift.loc[0, "drift_col_px"] == 0
    assert drift[["drift_row_px", "drift_col_px"]].abs().to_numpy().max() <= 0.6
    for k in (4, 10, 20):
        found, _, _ = phase_cross_correlation(stack[0], stack[k], upsample_factor=50,
                                              normalization=None)
        truth = drift.loc[k, ["drift_row_px", "drift_col_px"]].to_numpy(dtype=float)
        np.testing.assert_allclose(-found, truth, atol=0.1)


def test_same_recipe_same_arrays(small):
    again = datasets.make_dataset(SMALL)
    np.testing.assert_array_equal(again.stack, small.stack)
    np.testing.assert_array_equal(again.ground_truth["theta"], small.ground_truth["theta"])
    rec = datasets._recipes()
    a = datasets._make_field(rec[SMALL])[0]
    b = datasets._make_field(rec["cohort-fresh-2"])[0]
    assert [p.outline for p in a] != [p.outline for p in b]


# ----------------------------------------------------------------------------- files, cache, CLI


def _tree_digest(folder: Path) -> dict[str, str]:
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            data = p.read_bytes()  # byte for byte, OME UUID included (content-derived)
            out[str(p.relative_to(folder))] = hashlib.sha256(data).hexdigest()
    return out


def test_written_files_are_deterministic(tmp_path):
    a = datasets.write_demo_data(tmp_path / "a", names=[SMALL], progress=False)
    b = datasets.write_demo_data(tmp_path / "b", names=[SMALL], progress=False)
    assert [p.name for p in a] == [SMALL]
    da, db = _tree_digest(a[0]), _tree_digest(b[0])
    assert {"metadata.json", "stack.ome.tif", "frames.csv", "echem.csv", "masks.tif",
            "ground_truth/particles.csv", "ground_truth/theta.npz",
            "ground_truth/masks.tif", "ground_truth/drift.csv"} <= set(da)
    assert da == db


def test_load_builds_once_and_caches(tmp_path, monkeypatch, small):
    from asymflux.io import Dataset

    ds = datasets.load(SMALL)
    assert isinstance(ds, Dataset)
    folder = datasets.path(SMALL)
    assert folder.is_relative_to(tmp_path / "cache")
    assert folder.name == datasets.cache_key(SMALL)
    assert ds.metadata["name"] == SMALL
    np.testing.assert_array_equal(np.asarray(ds.stack), small.stack)
    np.testing.assert_array_equal(ds.ground_truth["theta"], small.ground_truth["theta"])
    assert ds.ground_truth["particles"]["class"].isin(["symmetric", "asymmetric"]).all()

    def boom(name):  # a second load must not rebuild
        raise AssertionError("rebuilt")

    monkeypatch.setattr(datasets, "make_dataset", boom)
    assert datasets.path(SMALL) == folder
    datasets.load(SMALL)
    # a new recipe version gives a new key, so a code change rebuilds
    key = datasets.cache_key(SMALL)
    monkeypatch.setattr(datasets, "RECIPE_VERSION", "test")
    assert datasets.cache_key(SMALL) != key


def test_cache_dir_default_and_override(monkeypatch, tmp_path):
    import platformdirs

    assert datasets.cache_dir() == tmp_path / "cache"
    monkeypatch.delenv(datasets.ENV_CACHE)
    assert datasets.cache_dir() == Path(platformdirs.user_cache_dir("asymflux"))


def test_cli_demo_data(tmp_path, capsys):
    import argparse

    from asymflux.cli import datasets as datasets_cli

    parser = argparse.ArgumentParser()
    datasets_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["demo-data", "--list"])
    assert args.func(args) == 0
    assert "aged-rates" in capsys.readouterr().out
    args = parser.parse_args(["demo-data", str(tmp_path / "out"), "--names", SMALL, "--quiet"])
    assert args.func(args) == 0
    assert (tmp_path / "out" / SMALL / "metadata.json").is_file()
    args = parser.parse_args(["demo-data", str(tmp_path / "out"), "--names", "nope"])
    with pytest.raises(ValueError, match="nope"):
        args.func(args)
    with pytest.raises(ValueError, match="OUT"):
        args = parser.parse_args(["demo-data"])
        args.func(args)


# ----------------------------------------------------------------------------- physics (slow)


def _unreacted_offset_um(theta, mask, pixel_nm):
    """Distance between the particle's centroid and the centroid of its Li-rich region."""
    rows, cols = np.nonzero(mask)
    core = theta[mask] > 0.97 - optics.THRESHOLD_DELTA_THETA
    if core.sum() < 3:
        return np.nan, np.nan
    dx = (cols[core].mean() - cols.mean()) * pixel_nm / 1000
    dy = -(rows[core].mean() - rows.mean()) * pixel_nm / 1000
    return np.hypot(dx, dy), np.degrees(np.arctan2(dy, dx))


@pytest.mark.slow
def test_aged_core_is_off_centre_towards_the_blocked_side():
    aged = datasets.make_dataset("aged")
    gt = aged.ground_truth
    k = int(np.searchsorted(aged.time_s, 10 * 60))
    d, ang = _unreacted_offset_um(gt["theta"][k], gt["masks"] == 1, aged.pixel_nm)
    assert d > 0.15 and abs((ang - 180 + 180) % 360 - 180) < 45
    fresh = datasets.make_dataset("fresh")
    fg = fresh.ground_truth
    per = fg["particles"]
    unblocked = per.loc[per["fraction"] == 0, "particle_id"].unique()
    for pid in unblocked:
        d0, _ = _unreacted_offset_um(fg["theta"][k], fg["masks"] == pid, fresh.pixel_nm)
        assert d0 < 0.5 * d


@pytest.mark.slow
def test_faster_rates_keep_the_core_to_higher_capacity():
    last = {}
    for rate in (50, 400):
        ds = datasets.make_dataset(f"aged-{rate}mA_g")
        gt = ds.ground_truth
        cap = np.interp(ds.time_s, ds.echem["time_s"], ds.echem["capacity_mAh_g"])
        m = gt["masks"] == 1
        core = (gt["theta"][:, m] > 0.97 - optics.THRESHOLD_DELTA_THETA).mean(axis=1)
        last[rate] = cap[np.nonzero(core > 0.01)[0][-1]]
    assert last[400] > last[50] + 5


@pytest.mark.slow
def test_charge_rest_relaxes():
    ds = datasets.make_dataset("charge-rest")
    gt = ds.ground_truth
    assert np.all(ds.echem.loc[ds.echem["time_s"] >= 20 * 60, "current_mA"] == 0)
    cap = ds.echem["capacity_mAh_g"].to_numpy()
    assert cap[-1] == pytest.approx(70 * 20 / 60)
    m = gt["masks"] > 0
    spread = np.nanstd(np.where(m, gt["theta"], np.nan), axis=(1, 2))
    end = int(np.searchsorted(ds.time_s, 20 * 60))
    later = int(np.searchsorted(ds.time_s, 30 * 60))
    assert spread[later] < 0.8 * spread[end]
    assert np.all(np.diff(spread[end:]) < 1e-6)  # no new heterogeneity at rest
