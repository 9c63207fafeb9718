"""A second server shows the cohort page's Fig. 5e from the results cache (docs/cache.md): the
first server analyses the datasets and stores each analysis; the second reads them (no entry
rewritten: a measurement would store its result again) and draws the same Fig. 5e."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from _server import CHROMIUM, COHORT_DATASETS, STATIC_PROBE, launch, serve, wait_for, watch_errors

TIMEOUT_S = 240.0


def test_page_reads_an_analysis_made_by_the_cli(demo_data, tmp_path, monkeypatch):
    """A dataset `asymflux analyze` analysed (the default options) is shown from the results
    cache: no worker process, the same tables as a measurement."""
    import pandas as pd

    from asymflux.cli import main
    from asymflux.views import _compute as C
    from asymflux.views import _jobs as J

    monkeypatch.setenv("ASYMFLUX_RESULTS_CACHE", str(tmp_path / "results"))
    name = COHORT_DATASETS[0]
    assert main(["analyze", str(demo_data[name]), "--out", str(tmp_path / "out")]) == 0
    stored = _entries(tmp_path / "results")
    assert len(stored) == 1
    job = J.start_analysis(name, time_offset_s=None)
    ds, particles, ts, labels = job.future.result(timeout=60)
    assert job.process is None  # no worker process: read, not measured
    assert _entries(tmp_path / "results") == stored
    measured = C.analyze(C.load_dataset(name), source=None)  # the page's own measurement
    pd.testing.assert_frame_equal(particles, measured[0])
    pd.testing.assert_frame_equal(ts, measured[1])
    assert (labels == measured[2]).all() and ds.stack.shape[0] == ts["frame"].nunique()


def _fig5e_shown(sig) -> bool:
    return any(str(s[0]).startswith("Fig. 5e") and s[2] > 0 for s in sig)


def _entries(folder: Path) -> dict:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.glob("*/*.pkl")}


def _fig5e(url, browser) -> tuple[float, list]:
    ctx = browser.new_context(viewport={"width": 1600, "height": 1300})
    try:
        page = ctx.new_page()
        errors = watch_errors(page)
        t0 = time.monotonic()
        page.goto(url + "/cohort?datasets=" + ",".join(COHORT_DATASETS))
        _, sig = wait_for(page, _fig5e_shown, timeout_s=TIMEOUT_S)
        assert not errors, errors
        return time.monotonic() - t0, sorted(s for s in sig if str(s[0]).startswith("Fig. 5e"))
    finally:
        ctx.close()


@pytest.mark.slow
@pytest.mark.browser
def test_second_server_shows_fig5e_from_the_cache(demo_data, session_cache, tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    from playwright.sync_api import sync_playwright

    results = tmp_path / "results-cache"
    env = {"ASYMFLUX_RESULTS_CACHE": str(results)}
    dashboards = [str(Path(__file__).resolve().parents[2] / "dashboards" / "cohort.py")]
    with sync_playwright() as p:
        browser = launch(p)
        try:
            with serve(session_cache, dashboards=dashboards, probe=STATIC_PROBE, env=env,
                       log_path=tmp_path / "first.log") as url:
                first_s, first = _fig5e(url, browser)
            stored = _entries(results)
            # one analysis per dataset, and the first particle's movie
            assert len(stored) == len(COHORT_DATASETS) + 1, stored
            with serve(session_cache, dashboards=dashboards, probe=STATIC_PROBE, env=env,
                       log_path=tmp_path / "second.log") as url:
                second_s, second = _fig5e(url, browser)
        finally:
            browser.close()
    assert _entries(results) == stored  # read, none measured and stored again
    assert second == first  # the same bars and intervals
    print(f"Fig. 5e: {first_s:.1f} s in the first server, {second_s:.1f} s in the second")
