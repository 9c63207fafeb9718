"""``asymflux fit --time-offset-s S|auto`` (issue 27): the fitted particle's capacity per frame
is the one on the given or estimated clock, and the offset used is in the fit's JSON. The fit
itself is stubbed (the offset only changes its input: the particle's analysis)."""

import json

import numpy as np
import pytest

from asymflux import analysis as an
from asymflux import fit, io
from asymflux.cli import main
from tests._helpers.clock import clock_dataset


class _FakeFit:
    model, diffusivity_scale, rms = "none", 1.0, 0.01

    def summary(self):
        return {"model": "none", "surface": "prescribed", "blocked": "none",
                "diffusivity_scale": 1.0, "rms_dI": 0.01, "r_squared": 0.9, "arcs": [],
                "uncertainties": {"diffusivity_scale": 0.1}}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return io.write_dataset(clock_dataset(137.0), tmp_path_factory.mktemp("fitclock") / "clock")


@pytest.fixture
def fitted(monkeypatch):
    """The capacities each stubbed fit was given, by particle."""
    seen = []

    def fake(particle, **kw):
        seen.append(np.asarray(particle.capacity_mAh_g, dtype=float))
        return _FakeFit()

    monkeypatch.setattr(fit, "fit_analysis", fake)
    return seen


def test_fit_time_offset_is_applied_and_recorded(folder, tmp_path, fitted, capsys):
    ds = io.read_dataset(folder)
    out = tmp_path / "fit.json"
    assert main(["fit", str(folder), "--particle", "1", "--out", str(out),
                 "--time-offset-s", "auto"]) == 0
    rec = json.loads(out.read_text())
    assert rec["time_offset_method"] == "optical-rate"
    assert abs(rec["time_offset_s"] - 137.0) <= rec["time_offset_uncertainty_s"]
    assert "clock offset" in capsys.readouterr().out
    want = an.analyze_dataset_particle(ds, 1, time_offset_s=rec["time_offset_s"]).capacity_mAh_g
    np.testing.assert_allclose(fitted[-1], want, rtol=1e-9)

    assert main(["fit", str(folder), "--particle", "1", "--out", str(out),
                 "--time-offset-s", "-20"]) == 0
    rec = json.loads(out.read_text())
    assert (rec["time_offset_s"], rec["time_offset_method"]) == (-20.0, "given")
    np.testing.assert_allclose(
        fitted[-1], an.analyze_dataset_particle(ds, 1, time_offset_s=-20.0).capacity_mAh_g)
    assert json.loads((tmp_path / "fit.provenance.json").read_text())["options"][
        "time_offset_s"] == "-20"

    assert main(["fit", str(folder), "--particle", "1", "--out", str(out)]) == 0  # as before
    rec = json.loads(out.read_text())
    assert (rec["time_offset_s"], rec["time_offset_method"]) == (0.0, "none")
    np.testing.assert_allclose(fitted[-1], an.analyze_dataset_particle(ds, 1).capacity_mAh_g)
    assert not np.allclose(fitted[-1], fitted[-2], equal_nan=True)


def test_fit_all_estimates_once_and_records_it(folder, tmp_path, fitted, monkeypatch):
    calls = []
    real = an._clock.estimate_dataset_time_offset
    monkeypatch.setattr(an._clock, "estimate_dataset_time_offset",
                        lambda *a, **kw: calls.append(1) or real(*a, **kw))
    res = tmp_path / "res"
    assert main(["fit", str(folder), "--all", "--workers", "1", "--out", str(res),
                 "--time-offset-s", "auto"]) == 0
    assert len(calls) == 1 and len(fitted) == 3  # one estimate for the three particles
    details = json.loads((res / "fits.json").read_text())
    assert [d["particle_id"] for d in details] == [1, 2, 3]
    offsets = {d["time_offset_s"] for d in details}
    assert len(offsets) == 1 and abs(offsets.pop() - 137.0) <= details[0][
        "time_offset_uncertainty_s"]
    assert {d["time_offset_method"] for d in details} == {"optical-rate"}


def test_fit_time_offset_refuses_bad_values(folder, tmp_path, capsys):
    assert main(["fit", str(folder), "--particle", "1", "--out", str(tmp_path / "f.json"),
                 "--time-offset-s", "soon"]) == 2
    assert "--time-offset-s" in capsys.readouterr().err
    assert not (tmp_path / "f.json").exists()


def test_fit_takes_the_intensity_offset_of_a_background_subtracted_movie(folder, tmp_path,
                                                                          monkeypatch, capsys):
    """A movie analysed with ``--intensity-offset`` is fitted with it (the same crop dI)."""
    crops = []
    monkeypatch.setattr(fit, "fit_analysis",
                        lambda particle, **kw: crops.append(particle.crop.dI) or _FakeFit())
    ds = io.read_dataset(folder)
    level = 1000.0
    sub = io.write_dataset(io.Dataset(stack=np.asarray(ds.stack, dtype=np.float32) - level,
                                      time_s=ds.time_s, pixel_nm=ds.pixel_nm, masks=ds.masks,
                                      echem=ds.echem, metadata=dict(ds.metadata)),
                           tmp_path / "subtracted")
    out = tmp_path / "fit.json"
    assert main(["fit", str(sub), "--particle", "1", "--out", str(out)]) != 0
    assert "--intensity-offset" in capsys.readouterr().err and not out.exists()
    assert main(["fit", str(sub), "--particle", "1", "--out", str(out),
                 "--intensity-offset", str(level)]) == 0
    assert main(["fit", str(folder), "--particle", "1", "--out", str(tmp_path / "b.json")]) == 0
    np.testing.assert_allclose(crops[0], crops[1], atol=5e-4)  # float32 file: 1e-4 rounding
