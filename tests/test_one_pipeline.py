"""One particle, one pipeline: ``asymflux analyze``, ``asymflux fit``, the dashboards and the
napari widget give a drifting particle the same d(capacity) and the same fitted arcs
(asymflux #14), and that is the registered answer, not the unregistered one.

The movie is the demo 'aged' field with a stage drift of up to 3 px added (the demo's own
is at most 0.6 px), written as a dataset folder; particle 1 is blocked on its left.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from asymflux import analysis, datasets, io, optics
from asymflux.cli import main

pytestmark = pytest.mark.slow  # two fits of one arc (~10 s each)

PARTICLE = 1
MAX_ARCS = 1  # one arc: the ground truth's, and half the time of two
COLUMNS = ["frame", "time_s", "capacity_mAh_g", "offset_nm", "offset_norm", "unreacted_fraction",
           "mean_dI", "li_rich_row", "li_rich_col", "drift_row_px", "drift_col_px"]
ATOL = 1e-9


@pytest.fixture(scope="module")
def drifting(tmp_path_factory):
    """The 'aged' demo field with a slow stage drift of up to 3 px, as a dataset folder."""
    src = datasets.load("aged", lazy=False)
    n = src.stack.shape[0]
    ramp = np.linspace(0.0, 1.0, n)[:, None]
    drift = ramp * np.array([2.2, -2.9]) + 0.3 * np.sin(np.linspace(0, 3 * np.pi, n))[:, None]
    drift[0] = 0.0  # the masks are those of frame 0
    stack = np.clip(np.rint(optics.add_drift(np.asarray(src.stack, float), drift)), 0, 65535)
    ds = io.Dataset(stack=stack.astype(np.uint16), time_s=src.time_s, pixel_nm=src.pixel_nm,
                    echem=src.echem, metadata={**src.metadata, "name": "aged-drifting"},
                    masks=src.masks)
    return io.write_dataset(ds, tmp_path_factory.mktemp("one") / "aged-drifting")


@pytest.fixture(scope="module")
def cli(drifting, tmp_path_factory):
    """``asymflux analyze`` and ``asymflux fit`` of the drifting dataset: (particle 1's
    timeseries rows as written, fit.json)."""
    out = tmp_path_factory.mktemp("cli")
    assert main(["analyze", str(drifting), "--out", str(out / "analysis")]) == 0
    assert main(["fit", str(drifting), "--particle", str(PARTICLE), "--max-arcs", str(MAX_ARCS),
                 "--out", str(out / "fit.json")]) == 0
    ts = pd.read_csv(out / "analysis" / "timeseries.csv")
    ts = ts[ts["particle_id"] == PARTICLE].sort_values("frame").reset_index(drop=True)
    return ts, json.loads((out / "fit.json").read_text())


def assert_same_rows(table, expected):
    table = table.sort_values("frame").reset_index(drop=True)
    assert len(table) == len(expected)
    assert (table["offset_reason"].fillna("").to_numpy()
            == expected["offset_reason"].fillna("").to_numpy()).all()
    for c in COLUMNS:
        np.testing.assert_allclose(table[c].to_numpy(float), expected[c].to_numpy(float),
                                   rtol=0, atol=ATOL, equal_nan=True, err_msg=c)


def assert_same_fit(result, summary):
    assert result.model == summary["model"]
    assert abs(result.diffusivity_scale - summary["diffusivity_scale"]) <= ATOL
    assert len(result.arcs) == len(summary["arcs"])
    for arc, expected in zip(result.arcs, summary["arcs"], strict=True):
        for key in ("center_deg", "fraction", "eta"):
            assert abs(getattr(arc, key) - expected[key]) <= ATOL, key


def unregistered(dataset_path):
    """Particle 1 measured on the unregistered movie (what the widget used to show)."""
    ds = io.read_dataset(dataset_path)
    return analysis.analyze_dataset_particle(ds, PARTICLE, register=False)


def test_the_drift_is_there_and_registration_matters(drifting, cli):
    ts, _ = cli
    assert np.hypot(ts["drift_row_px"], ts["drift_col_px"]).max() > 2.5
    plain = unregistered(drifting).timeseries
    assert np.nanmax(np.abs(plain["offset_nm"].to_numpy(float) - ts["offset_nm"].to_numpy(float))) > 20


def test_core_and_dashboard_give_the_cli_numbers(drifting, cli):
    """The core's one-particle pipeline, ``fit.fit_dataset`` and the dashboards' particle
    view (views._compute, as the cohort browser and the model explorer show it) against
    what ``asymflux analyze`` / ``asymflux fit`` wrote."""
    from asymflux.views import _compute as C

    ts, summary = cli
    ds = io.read_dataset(drifting)
    one = analysis.analyze_dataset_particle(ds, PARTICLE)
    assert_same_rows(one.timeseries, ts)
    np.testing.assert_array_equal(one.shifts_px, one.timeseries[["drift_row_px", "drift_col_px"]])

    # the dashboards: the dataset analysed (cached there), then one particle's movie
    _particles, all_ts, labels = C.analyze(ds)
    movie = C.measured_particle(ds, PARTICLE, all_ts, labels)
    assert_same_rows(movie.timeseries, ts)
    np.testing.assert_allclose(movie.dI, one.crop.dI.astype(np.float32), rtol=0, atol=1e-6)

    # the fit (`asymflux fit`, and the model explorer's Fit, are fit.fit_dataset): it fits
    # this crop, and finds the blocked arc on the left (truth: 180 deg)
    assert summary["model"] == "one arc"
    assert abs((summary["arcs"][0]["center_deg"] - 180 + 180) % 360 - 180) < 30


@pytest.mark.gui
def test_napari_widget_gives_the_cli_numbers(drifting, cli, make_napari_viewer):
    """The widget's particle view (O_COM / O_Li-rich, d(capacity)) and Fit blocking on the
    same drifting particle: the CLI's numbers, and not the unregistered ones."""
    pytest.importorskip("napari")
    ts, summary = cli
    viewer = make_napari_viewer()
    _, w = viewer.window.add_plugin_dock_widget("asymflux", "Curate particles")
    w.open_dataset(drifting)

    table = w.show_particle(PARTICLE)
    assert_same_rows(table, ts)
    li = w.li_rich_layer.data
    finite = ts[np.isfinite(ts["li_rich_row"])]
    np.testing.assert_allclose(li[:, 1:], finite[["li_rich_row", "li_rich_col"]], atol=ATOL)

    result = w.fit_blocking(PARTICLE, max_arcs=MAX_ARCS)
    assert_same_fit(result, summary)

    # the dI movie shown (and cut by kymographs) is registered the same way
    one = w.analyze_particle(PARTICLE, crop=True)
    movie = np.asarray(w.show_differential().data)
    np.testing.assert_allclose(movie[(slice(None), *one.crop.box)], one.crop.dI, rtol=0, atol=1e-6)

    # ... which is the registered answer: the unregistered one is far off
    plain = unregistered(drifting)
    assert np.nanmax(np.abs(table["offset_nm"].to_numpy(float)
                            - plain.timeseries["offset_nm"].to_numpy(float))) > 20
    box = analysis.crop_box(plain.crop.mask, pad_px=5)  # fit_particle's crop (erode_px + 3)
    fitted = np.isfinite(result.measured_dI)
    plain_dI = plain.crop.dI[(result.frames, *box)]
    assert np.abs(plain_dI[fitted] - result.measured_dI[fitted]).max() > 0.05
