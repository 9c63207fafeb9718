"""Each dashboard works as the first page a fresh ``panel serve`` opens, served alone or beside
the other one in any order, with nothing in the server log; a dataset that breaks during a
session gives that session a message and leaves the other sessions served; the download
buttons deliver files from the page."""

from __future__ import annotations

import io
import re
import shutil
from pathlib import Path

import pytest

from tests._helpers.server import (
    CHROMIUM,
    COHORT_DATASETS,
    DASHBOARDS,
    STATIC_PROBE,
    launch,
    particle_loaded,
    serve,
    wait_for,
    watch_errors,
)

pytestmark = pytest.mark.browser

TIMEOUT_S = 120.0
EXPLORER, COHORT = DASHBOARDS
LOG_PROBLEMS = re.compile(r"Traceback|\bERROR\b|Error running|No plotting extension|Exception")


def _cohort_ready(sig) -> bool:
    titles = [str(s[0]) for s in sig]
    return (any(t.startswith("Fig. 5e") for t in titles)
            and any(": frame " in t for t in titles)
            and any(t.startswith("line-cut kymograph") for t in titles))


def _explorer_settled(sig) -> bool:
    """The explorer's dataset analysed and its simulated twin drawn: the page's first
    updates are sent (closing it earlier races the server's last writes to its websocket,
    which tornado logs as a 'WebSocketClosedError' traceback)."""
    return particle_loaded(sig) and any(
        str(s[0]).startswith("simulated") and s[2] > 0 for s in sig)


PAGES = {
    "model_explorer": ("/model_explorer", _explorer_settled),
    "cohort": ("/cohort?datasets=" + ",".join(COHORT_DATASETS), _cohort_ready),
}


@pytest.fixture(scope="module")
def playwright_browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch(p)
        try:
            yield b
        finally:
            b.close()


def _open(browser, url, ready, *, accept_downloads=False):
    ctx = browser.new_context(viewport={"width": 1600, "height": 1300},
                              accept_downloads=accept_downloads)
    page = ctx.new_page()
    page.set_default_timeout(TIMEOUT_S * 1000)
    errors = watch_errors(page)
    page.goto(url)
    _, sig = wait_for(page, ready, timeout_s=3 * TIMEOUT_S)  # analyses: minutes when loaded
    return ctx, page, errors, sig


def _log_problems(log: Path) -> list[str]:
    text = log.read_text(errors="replace")
    return [ln for ln in text.splitlines() if LOG_PROBLEMS.search(ln)]


@pytest.mark.parametrize("files, order", [
    ([EXPLORER], ["model_explorer"]),
    ([COHORT], ["cohort"]),
    ([EXPLORER, COHORT], ["cohort", "model_explorer"]),
    ([EXPLORER, COHORT, "--warm"], ["model_explorer", "cohort"]),  # the explorer once exited
], ids=["explorer-alone", "cohort-alone", "both-cohort-first", "both-warm"])
def test_each_page_works_first_in_a_fresh_server(files, order, demo_data, session_cache,
                                                 playwright_browser, tmp_path):
    log = tmp_path / "serve.log"
    # a static file tells when the server is up without opening a page: the test's first
    # page is the first one the server runs
    with serve(session_cache, log_path=log, dashboards=files, probe=STATIC_PROBE) as url:
        for name in order:
            path, ready = PAGES[name]
            ctx, page, errors, sig = _open(playwright_browser, url + path, ready)
            try:
                assert ready(sig)
                assert not errors, errors
                # BokehJS skips rewriting unchanged <style> elements (_bokehjs_patch.
                # skip_unchanged_stylesheets): fails when a new Bokeh no longer matches
                # the checked versions or method, so that the change is looked at again
                assert page.evaluate("() => window.__asymflux_stylesheets") is True, \
                    "the page's BokehJS stylesheet change was not applied (Bokeh changed?)"
            finally:
                ctx.close()
    assert not _log_problems(log), log.read_text()[-4000:]


def test_a_dataset_broken_mid_session_leaves_the_other_sessions(demo_data, session_cache,
                                                                playwright_browser, tmp_path):
    copy = tmp_path / "breaks-later"
    shutil.copytree(demo_data[COHORT_DATASETS[0]], copy)
    log = tmp_path / "serve.log"
    with serve(session_cache, log_path=log, dashboards=[COHORT], probe=STATIC_PROBE) as url:
        ctx, page, errors, sig = _open(playwright_browser, f"{url}/cohort?datasets={copy}",
                                       _cohort_ready)
        try:
            # the dataset breaks while the page is open; the next particle asks for it again
            (copy / "metadata.json").write_text("{ broken")
            select = page.locator("select").first
            current = select.input_value()
            other = next(v for v in select.locator("option").evaluate_all(
                "els => els.map(e => e.value)") if v != current)
            select.select_option(value=other)
            msg = page.get_by_text("could not be read").first  # in the alert's shadow root
            msg.wait_for(state="visible")
            assert "metadata.json" in msg.inner_text() and "Particle" in msg.inner_text()
            # another session of the same server still works
            ctx2, _page2, errors2, _sig2 = _open(
                playwright_browser, f"{url}/cohort?datasets={','.join(COHORT_DATASETS)}",
                _cohort_ready)
            ctx2.close()
            assert not errors and not errors2, errors + errors2
        finally:
            ctx.close()
    assert not _log_problems(log), log.read_text()[-4000:]


def test_downloads_from_the_page(demo_data, session_cache, playwright_browser, tmp_path):
    import pandas as pd

    log = tmp_path / "serve.log"
    with serve(session_cache, log_path=log, dashboards=[COHORT], probe=STATIC_PROBE) as url:
        ctx, page, errors, _sig = _open(
            playwright_browser, f"{url}/cohort?datasets={','.join(COHORT_DATASETS)}",
            _cohort_ready, accept_downloads=True)
        try:
            got = {}
            for label in ("Fig. 5e (PNG)", "Fig. 5e table (CSV)"):
                with page.expect_download(timeout=TIMEOUT_S * 1000) as info:
                    page.get_by_role("button", name=label).click()
                got[label] = Path(info.value.path()).read_bytes()
            assert got["Fig. 5e (PNG)"].startswith(b"\x89PNG")
            table = pd.read_csv(io.BytesIO(got["Fig. 5e table (CSV)"]))
            # the rows the page's Fig. 5e table shows (not the particle table's; its header
            # has n_datasets), in its order: fresh first
            fig5e = page.locator(".tabulator").filter(has_text="n_datasets")
            assert fig5e.count() == 1
            shown = fig5e.locator(".tabulator-row").all_inner_texts()
            assert len(shown) == len(table)
            assert list(table["ageing"]) == [r.split("\n")[0].split("\t")[0].strip()
                                             for r in shown]
            assert table["ageing"].iloc[0] == "fresh"
            assert not errors, errors
        finally:
            ctx.close()
    assert not _log_problems(log), log.read_text()[-4000:]


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used so far (Linux /proc)."""
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_a_page_that_never_connects_costs_the_server_nothing(demo_data, session_cache, tmp_path):
    # A GET of the page without its websocket (a link preview, a health check, a readiness
    # probe) makes a session. It used to analyse the dataset anyway, and its measured
    # line-cut, refreshed before any connection, rescheduled its refresh on every tick of the
    # event loop until the session was dropped (15-30 s): a core of the server's CPU, which
    # slowed every real page's updates (bench_dashboard.py's first moves by up to 2 s).
    import time
    import urllib.request

    started: list = []
    with serve(session_cache, log_path=tmp_path / "serve.log", dashboards=[EXPLORER],
               probe=STATIC_PROBE, started=started) as url:
        pid = started[0].pid
        urllib.request.urlopen(url + "/model_explorer", timeout=TIMEOUT_S).read()
        time.sleep(3.0)  # the page's own making is done; the analysis would take ~5 s
        cpu0 = _cpu_s(pid)
        time.sleep(12.0)
        used = _cpu_s(pid) - cpu0
    # spinning, it used ~11 s; publishing nothing, it uses ~0.1 s (3 s of slack for CI)
    assert used < 3.0, f"the server used {used:.1f} s of CPU in 12 s for a page nobody opened"
