"""The model explorer's rate: any value, the paper's rates marked, a loaded dataset's rate by
default (a 70 mA/g movie is compared with a 70 mA/g twin)."""

from __future__ import annotations

import math

import pytest

from asymflux.views._settings import (
    RATE_BOUNDS_MA_G,
    RATE_LABELS,
    ExplorerSettings,
)
from tests._helpers.small_dataset import dataset_at as _dataset_at


def test_any_rate_and_the_papers_marked():
    s = ExplorerSettings()
    assert s.rate_mA_g == 100.0
    s.rate_mA_g = 70.0  # not one of the former slider positions
    assert s.model_settings()["rate_mA_g"] == 70.0
    assert s.model_settings(rate_mA_g=123.4)["rate_mA_g"] == 123.4
    assert RATE_LABELS == {"50 ★": 50.0, "100 ★": 100.0, "200 ★": 200.0, "400 ★": 400.0}
    for bad in (RATE_BOUNDS_MA_G[0] - 1, RATE_BOUNDS_MA_G[1] + 1):
        with pytest.raises(ValueError):
            s.rate_mA_g = bad
    assert s.rate_mA_g == 70.0


@pytest.mark.parametrize("meta, expected", [
    ({"rate_mA_g": 70}, 70.0), ({"rate_mA_g": "72.04"}, 72.0), ({"rate_mA_g": 400.0}, 400.0),
    ({}, None), (None, None), ({"rate_mA_g": "fast"}, None), ({"rate_mA_g": math.nan}, None),
    ({"rate_mA_g": 5000.0}, None), ({"rate_mA_g": -100}, None)])
def test_use_dataset_rate(meta, expected):
    s = ExplorerSettings(rate_mA_g=200.0)
    assert s.use_dataset_rate(meta) == expected
    assert s.rate_mA_g == (200.0 if expected is None else expected)


@pytest.mark.slow  # the page's construction (Panel's extensions, the figures): ~8 s
def test_explorer_takes_the_datasets_rate(tmp_path, monkeypatch):
    """The page's slider follows: loading a 70 mA/g dataset sets the model's rate to 70; a
    paper-rate button sets 200, a typed value 137; loading the dataset again resets 70. (The
    plots are not computed here: what each rate starts is recorded.)"""
    pytest.importorskip("panel")
    from asymflux.views import ModelExplorer

    started = []
    monkeypatch.setattr(ModelExplorer, "_publish", lambda self, keys: None)
    monkeypatch.setattr(ModelExplorer, "_prefetch", lambda self, *e: started.append(
        self.settings.model_settings()["rate_mA_g"]))
    folder = _dataset_at(70.0, tmp_path / "slow")
    view = ModelExplorer(dataset=str(folder))
    assert view.settings.rate_mA_g == 70.0 and view.rate_slider.value == 70.0
    assert started == [70.0]  # one change, one set of runs
    assert [b.name for b in view.rate_buttons] == list(RATE_LABELS)
    view.rate_buttons[2].clicks += 1
    assert view.settings.rate_mA_g == 200.0 and view.rate_slider.value == 200.0
    import param

    with param.parameterized.edit_constant(view.rate_slider):  # a typed value
        view.rate_slider.param.update(value=137.0, value_throttled=137.0)
    assert view.settings.rate_mA_g == 137.0
    assert started == [70.0, 200.0, 137.0]
    view.dataset = ""
    view.dataset = str(folder)
    assert view.settings.rate_mA_g == 70.0
    # a rate given to the page is kept when its first dataset loads, not later ones
    given = ModelExplorer(dataset=str(folder), rate_mA_g=200.0)
    assert given.settings.rate_mA_g == 200.0
    given.dataset = ""
    given.dataset = str(folder)
    assert given.settings.rate_mA_g == 70.0
