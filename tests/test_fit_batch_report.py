"""The fit's noise model and standard errors, ``fit --all``, ``report`` and provenance.json."""

from __future__ import annotations

import hashlib
import json
import re

import numpy as np
import pandas as pd
import pytest
import tifffile
from scipy import ndimage

from asymflux import cli, fit, fit_batch, provenance, report

# ------------------------------------------------------------------ noise model / standard errors


def _cube(rng, shape=(12, 40, 40), white=0.01, smooth=0.0, length_px=6.0):
    use = np.zeros(shape, bool)
    rr, cc = np.ogrid[:shape[1], :shape[2]]
    use[:] = (rr - shape[1] / 2) ** 2 + (cc - shape[2] / 2) ** 2 < (0.45 * shape[1]) ** 2
    field = rng.normal(0, white, shape)
    if smooth:
        s = ndimage.gaussian_filter(rng.standard_normal(shape[1:]), length_px / np.sqrt(2))
        field += smooth * s / s.std()  # one smooth pattern, the same in every frame
    return field[use], use


def test_noise_model_of_white_noise_has_no_smooth_part():
    rng = np.random.default_rng(0)
    r, use = _cube(rng)
    noise = fit.residual_noise_model(r, use)
    assert noise["white_sd"] == pytest.approx(0.01, rel=0.05)
    assert noise["smooth_sd"] < 0.002


def test_noise_model_finds_a_smooth_persistent_component():
    rng = np.random.default_rng(1)
    r, use = _cube(rng, smooth=0.01, length_px=6.0)
    noise = fit.residual_noise_model(r, use)
    assert noise["smooth_sd"] == pytest.approx(0.01, rel=0.3)
    assert noise["white_sd"] == pytest.approx(0.01, rel=0.2)
    assert 3 <= noise["length_px"] <= 15
    assert noise["length_frames"] >= 11  # the same pattern in all 12 frames


def test_standard_errors_grow_with_correlated_residuals_and_equal_ols_for_white():
    rng = np.random.default_rng(2)
    r_white, use = _cube(rng)
    n = use.sum()
    # two smooth "parameter" patterns, the same in every frame
    rr, cc = np.nonzero(use[0])
    cols = np.stack([np.tile(np.sin(cc / 6.0), use.shape[0]), np.tile(np.cos(rr / 9.0), use.shape[0])], 1)
    se_white, _ = fit.residual_covariance_se(cols, r_white, use)
    ols = np.sqrt(np.diag(np.linalg.inv(cols.T @ cols)) * (r_white @ r_white) / n)
    np.testing.assert_allclose(se_white, ols, rtol=0.15)
    r_smooth, _ = _cube(rng, smooth=0.01, length_px=8.0)
    se_smooth, noise = fit.residual_covariance_se(cols, r_smooth, use)
    assert np.all(se_smooth > 3 * se_white)
    assert noise["method"] == fit.UNCERTAINTY_METHOD


# ------------------------------------------------------------------ a hand-made analyze output


@pytest.fixture()
def results(tmp_path):
    """An analyze output of one dataset of 2 particles with a flag column, a band on d, and
    fits joined (no movie: no kymographs)."""
    out = tmp_path / "results"
    (out / "masks").mkdir(parents=True)
    labels = np.zeros((40, 60), np.uint16)
    rr, cc = np.ogrid[:40, :60]
    labels[(rr - 20) ** 2 + (cc - 15) ** 2 < 64] = 1
    labels[(rr - 20) ** 2 + (cc - 45) ** 2 < 81] = 2
    tifffile.imwrite(out / "masks" / "demo.tif", labels)
    particles = pd.DataFrame({"dataset": "demo", "ageing": ["fresh", "fresh"], "particle_id": [1, 2],
                              "area_um2": [1.0, 1.2], "classification": ["symmetric", "asymmetric"],
                              "max_offset_norm": [0.03, 0.2], "flags": ["", "saturated"]})
    ts = pd.DataFrame([{"dataset": "demo", "particle_id": p, "frame": f, "time_s": 30.0 * f,
                        "capacity_mAh_g": 1.0 * f, "offset_nm": 10.0 * f * p, "offset_nm_se": 5.0,
                        "flag_saturated": bool(p == 2 and f > 5)}
                       for p in (1, 2) for f in range(10)])
    particles.to_csv(out / "particles.csv", index=False)
    ts.to_csv(out / "timeseries.csv", index=False)
    summaries = {1: {"model": "none", "surface": "prescribed", "blocked": "none", "diffusivity_scale": 1.0,
                     "rms_dI": 0.01, "r_squared": 0.9, "arcs": [], "uncertainties": {"diffusivity_scale": 0.1}},
                 2: {"model": "one arc", "surface": "prescribed", "blocked": "180:0.3:0.3",
                     "diffusivity_scale": 1.1, "rms_dI": 0.01, "r_squared": 0.95,
                     "arcs": [{"center_deg": 180.0, "fraction": 0.3, "eta": 0.3}],
                     "uncertainties": {"diffusivity_scale": 0.1, "center_deg_1": 4.0,
                                       "fraction_1": 0.02, "eta_1": 0.03}}}
    fits = fit_batch.fits_table("demo", summaries)
    fit_batch.join_fits(particles, fits).to_csv(out / "particles.csv", index=False)
    return out


def test_fits_table_and_join_carry_each_value_with_its_standard_error(results):
    p = pd.read_csv(results / "particles.csv")
    row = p.set_index("particle_id").loc[2]
    assert row["fit_model"] == "one arc"
    assert row["fit_center_deg_1"] == 180.0 and row["fit_center_deg_1_se"] == 4.0
    assert row["fit_fraction_1_se"] == 0.02 and row["fit_eta_1_se"] == 0.03
    assert np.isnan(p.set_index("particle_id").loc[1, "fit_center_deg_1"])
    summary = fit_batch.cohort_fit_summary(p, "ageing")
    assert summary.iloc[0]["n_fitted"] == 2 and summary.iloc[0]["n_fit_blocked"] == 1
    assert summary.iloc[0]["median_fit_eta_1"] == 0.3


def test_report_has_every_section_and_links_nothing_outside(results, tmp_path, capsys):
    out = tmp_path / "report"
    assert cli.main(["report", str(results), "--out", str(out)]) == 0
    text = (out / "demo.html").read_text()
    for sid, _ in report.SECTIONS:
        assert f'<section id="{sid}">' in text
    assert "saturated" in text and "flag_saturated" in text  # the flag columns are shown
    assert "offset_nm ± offset_nm_se" in text  # the band of d
    assert "180 ± 4" in text and "0.3 ± 0.02" in text  # the fit, each value with its standard error
    assert text.count("data:image/png;base64,") >= 3  # thumbnails (2) and d(capacity)
    # self-contained: no URL, no external resource of any kind
    assert not re.search(r"(https?|ftp|file)://|//[a-z0-9.-]+\.[a-z]{2,}/", text, re.I)
    assert not re.search(r"<(link|script|iframe)\b", text, re.I)
    assert not re.search(r'src="(?!data:)', text)
    record = json.loads((out / "provenance.json").read_text())
    assert record["command"] == "report"


def test_provenance_hashes_equal_hashlib(results, tmp_path, capsys):
    out = tmp_path / "cohort.csv"
    assert cli.main(["cohort", str(results), "--out", str(out)]) == 0
    record = json.loads((tmp_path / "cohort.provenance.json").read_text())
    f = results / "particles.csv"
    (entry,) = [e for e in record["inputs"] if e["path"] == str(f)]
    assert entry["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()
    assert entry["size_bytes"] == f.stat().st_size
    assert record["versions"]["asymflux"] and record["versions"]["numpy"] == np.__version__
    assert record["options"]["out"] == str(out) and record["options"]["by"] == "ageing"
    table = pd.read_csv(out)  # the cohort table carries the fits' summary
    assert table.loc[0, "n_fit_blocked"] == 1


def test_provenance_of_a_folder_lists_each_file(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_bytes(b"abc")
    rec = provenance.file_record(tmp_path / "d")
    assert rec["files"][0]["sha256"] == hashlib.sha256(b"abc").hexdigest()
    assert provenance.provenance_path(tmp_path / "fit.json").name == "fit.provenance.json"
    assert provenance.provenance_path(tmp_path / "x", folder=True).name == "provenance.json"


def test_fit_all_refuses_particle_and_bad_workers(tmp_path, capsys):
    assert cli.main(["fit", str(tmp_path), "--all", "--particle", "1", "--out", str(tmp_path / "o")]) == 2
    assert "--particle and --all" in capsys.readouterr().err
    assert cli.main(["fit", str(tmp_path), "--out", str(tmp_path / "o.json")]) == 2
    assert "--particle ID" in capsys.readouterr().err


# ------------------------------------------------------------------ the whole chain on a demo dataset


@pytest.mark.slow
def test_fit_all_on_a_small_demo_dataset_joins_particles_and_feeds_the_report(tmp_path, capsys):
    from asymflux import datasets

    path = datasets.path("aged")
    labels = np.asarray(datasets.load("aged").masks)
    masks = tmp_path / "two.tif"
    tifffile.imwrite(masks, np.where(np.isin(labels, [1, 2]), labels, 0).astype(np.uint16))
    res = tmp_path / "res"
    assert cli.main(["analyze", str(path), "--masks", str(masks), "--out", str(res)]) == 0
    analyze_record = json.loads((res / "provenance.json").read_text())
    stack = path / "stack.ome.tif"
    (entry,) = [e for e in analyze_record["inputs"] if e["path"] == str(stack)]
    assert entry["sha256"] == hashlib.sha256(stack.read_bytes()).hexdigest()
    assert cli.main(["fit", str(path), "--all", "--masks", str(masks), "--max-arcs", "0",
                     "--out", str(res)]) == 0
    fits = pd.read_csv(res / "fits.csv")
    assert sorted(fits["particle_id"]) == [1, 2]
    assert set(fits["fit_model"]) == {"none"} and fits["fit_diffusivity_scale_se"].gt(0).all()
    particles = pd.read_csv(res / "particles.csv")
    assert particles["fit_model"].notna().all() and "classification" in particles
    rec = json.loads((res / "fits.provenance.json").read_text())
    assert rec["extra"]["uncertainty_method"] == fit.UNCERTAINTY_METHOD
    assert json.loads((res / "provenance.json").read_text())["command"] == "analyze"  # kept
    out = tmp_path / "rep"
    assert cli.main(["report", str(res), "--out", str(out)]) == 0  # the dataset from provenance
    text = (out / "aged.html").read_text()
    assert "dI along the horizontal line" in text  # kymographs of the movie


def test_fit_all_cli_joins_and_keeps_the_fits_of_other_datasets(tmp_path, capsys, monkeypatch):
    """The CLI's bookkeeping (the fits themselves stubbed: fit_all is tested by the slow test)."""
    from asymflux import io

    labels = np.zeros((40, 48), np.uint16)
    labels[10:20, 10:20], labels[22:32, 25:35] = 1, 2
    ds = io.Dataset(stack=np.full((4, 40, 48), 100.0, np.float32), time_s=np.arange(4) * 30.0,
                    pixel_nm=65.0, metadata={"name": "b", "rate_mA_g": 100.0, "ageing": "fresh",
                                              "material": "NMC88", "cell": "half-cell"},
                    masks=labels)
    folder = io.write_dataset(ds, tmp_path / "b")
    res = tmp_path / "res"
    res.mkdir()
    pd.DataFrame({"dataset": ["a", "b", "b"], "particle_id": [1, 1, 2],
                  "classification": ["symmetric"] * 3}).to_csv(res / "particles.csv", index=False)
    pd.DataFrame({"dataset": ["a"], "particle_id": [1], "fit_model": ["none"]}).to_csv(
        res / "fits.csv", index=False)
    seen = {}

    def fake_fit_all(path, ids, **kw):
        seen.update(ids=list(ids), workers=kw["workers"])
        summary = {"model": "one arc", "surface": "prescribed", "blocked": "90:0.3:0.2",
                   "diffusivity_scale": 1.0, "rms_dI": 0.01, "r_squared": 0.9,
                   "arcs": [{"center_deg": 90.0, "fraction": 0.3, "eta": 0.2}],
                   "uncertainties": {"center_deg_1": 3.0, "fraction_1": 0.02, "eta_1": 0.04}}
        return {1: summary}, {2: "ValueError: too small"}

    monkeypatch.setattr(fit_batch, "fit_all", fake_fit_all)
    code = cli.main(["fit", str(folder), "--all", "--workers", "1", "--out", str(res)])
    assert code == 2 and "1 particle(s) failed: 2" in capsys.readouterr().err  # the others written
    assert seen == {"ids": [1, 2], "workers": 1}
    fits = pd.read_csv(res / "fits.csv")
    assert sorted(zip(fits["dataset"], fits["particle_id"], fits["fit_model"], strict=True)) == [
        ("a", 1, "none"), ("b", 1, "one arc"), ("b", 2, "failed")]
    p = pd.read_csv(res / "particles.csv").set_index(["dataset", "particle_id"])
    assert p.loc[("b", 1), "fit_center_deg_1_se"] == 3.0
    assert p.loc[("b", 2), "fit_error"] == "ValueError: too small"
    assert pd.isna(p.loc[("a", 1), "fit_model"])
    assert json.loads((res / "fits.provenance.json").read_text())["options"]["all"] is True
    assert cli.main(["fit", str(folder), "--all", "--workers", "3", "--out", str(res)]) == 2
    assert "--workers" in capsys.readouterr().err
