"""Real browser: the model explorer takes the user's OCV table (a CSV file uploaded in
Debian chromium through playwright) and its voltage plot and material plot change."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests._helpers.server import (
    CHROMIUM,
    ROOT,
    STATIC_PROBE,
    launch,
    map_groups,
    serve,
    wait_for,
    watch_errors,
)
from tests._helpers.small_dataset import dataset_at as _dataset_at

pytestmark = pytest.mark.browser

TIMEOUT_S = 180.0


def _material(sig):
    return [s for s in sig if str(s[0]).startswith("OCV ")]


def test_uploaded_ocv_table_changes_the_plots(tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    from playwright.sync_api import sync_playwright

    from asymflux.model.parameters import ocv_nmc811_chen2020

    folder = _dataset_at(100.0, tmp_path / "small")  # a small dataset: quickly analysed
    theta = np.linspace(0.2, 1.0, 81)
    csv = tmp_path / "my_ocv.csv"
    pd.DataFrame({"theta": theta, "voltage_V": ocv_nmc811_chen2020(theta)}).to_csv(
        csv, index=False)
    with serve(tmp_path / "cache", dashboards=[str(ROOT / "dashboards" / "model_explorer.py")],
               probe=STATIC_PROBE) as url, sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1500})
            page.set_default_timeout(TIMEOUT_S * 1000)
            errors = watch_errors(page)
            page.goto(f"{url}/model_explorer?dataset={folder}")

            def ready(sig):
                g = map_groups(sig)
                return (g["voltage"] and g["voltage"][0][2] > 0
                        and "preview" not in str(g["voltage"][0][0])
                        and any("built-in" in str(s[0]) for s in _material(sig)))

            _, sig = wait_for(page, ready, timeout_s=TIMEOUT_S)
            before = map_groups(sig)["voltage"]
            page.locator('input[type=file][accept=".csv"]').first.set_input_files(str(csv))

            def changed(sig):
                g = map_groups(sig)
                return (g["voltage"] and g["voltage"] != before
                        and "preview" not in str(g["voltage"][0][0])
                        and any("OCV my_ocv.csv" in str(s[0]) for s in _material(sig)))

            wait_for(page, changed, timeout_s=TIMEOUT_S)
            page.get_by_text("my_ocv.csv (81 points").first.wait_for(state="visible")
            assert not errors, errors
        finally:
            browser.close()
