"""Real-browser tests: ``panel serve`` both dashboards, drive Debian chromium with playwright,
move every slider with the keyboard and check that the plots change with no browser error."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from asymflux.model.calibration import FILM_RESISTANCE_ETA_0_3_OHM_M2
from tests._helpers.server import (
    CHROMIUM,
    COHORT_DATASETS,
    EXPLORER_DATASET,
    VISIBLE_HANDLES,
    explorer_ready,
    launch,
    map_groups,
    particle_loaded,
    serve,
    signatures,
    wait_for,
    watch_errors,
)

pytestmark = pytest.mark.browser

#: the explorer's default film (the calibration's η ≈ 0.3)
FILM_OHM_M2 = FILM_RESISTANCE_ETA_0_3_OHM_M2

HAVE_CHROMIUM = Path(CHROMIUM).exists()
STEP_TIMEOUT_S = 90.0


SERVER_LOG: dict = {}


@pytest.fixture(scope="module")
def server(demo_data, session_cache, tmp_path_factory):
    if not HAVE_CHROMIUM:
        pytest.skip(f"{CHROMIUM} is not installed")
    log = tmp_path_factory.mktemp("panel-serve") / "serve.log"
    SERVER_LOG["path"] = log
    # the timing mode: a timeout's message then says when each plot's runs were done
    with serve(session_cache, log_path=log, env={"ASYMFLUX_DASHBOARD_TIMING": "1"}) as url:
        yield url


@pytest.fixture(scope="module")
def browser(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch(p)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1600, "height": 1300})
    pg = ctx.new_page()
    pg.set_default_timeout(STEP_TIMEOUT_S * 1000)
    try:
        yield pg
    finally:
        ctx.close()


SLIDERS = ["eta", "blocked_fraction", "rate", "angle", "diffusivity_scale"]
# which plot kinds each slider must change (the rate capability ignores the arc's angle)
MUST_CHANGE = {
    "eta": {"maps", "simulated", "fig5b"},
    "blocked_fraction": {"maps", "simulated", "fig5b"},
    "rate": {"maps", "simulated", "fig5b"},
    "angle": {"maps", "simulated"},
    "diffusivity_scale": {"maps", "simulated", "fig5b"},
}


def test_model_explorer_sliders_update_plots(server, page):
    errors = watch_errors(page)
    page.goto(server + "/model_explorer")
    # the simulated twin needs the dataset's analysis (a worker at low priority: minutes on a
    # loaded machine)
    _, sig = wait_for(page, particle_loaded, timeout_s=6 * STEP_TIMEOUT_S)
    handles = page.locator(VISIBLE_HANDLES)
    assert handles.count() == len(SLIDERS)
    for i, name in enumerate(SLIDERS):
        before = map_groups(sig)
        h = handles.nth(i)
        h.focus()
        page.keyboard.down("ArrowRight")
        page.keyboard.up("ArrowRight")  # release: value_throttled

        def changed(s, before=before, name=name):
            g = map_groups(s)
            return explorer_ready(s) and all(g[k] and g[k] != before[k] for k in MUST_CHANGE[name])

        _, sig = wait_for(page, changed, timeout_s=STEP_TIMEOUT_S)
    assert not errors, errors


def test_model_explorer_kinetic_surface(server, page):
    """The surface switch: kinetic on, the film slider replaces η, the flux-ratio and voltage
    plots show the kinetic run (beside the measured voltage); moving the film slider updates
    the maps and curves; no browser or server error."""
    errors = watch_errors(page)
    log = SERVER_LOG["path"]
    log_start = log.stat().st_size
    page.goto(server + "/model_explorer")
    # as in the sliders test: the dataset's analysis (a worker at low priority, minutes on a
    # loaded machine) done before the surface is switched, whichever test ran first, so that
    # no step of 90 s below waits on it (this test timed out once in a full run; the cause
    # was not reproduced: a timeout now shows the server's log, see _server.wait_for)
    _, sig = wait_for(page, particle_loaded, timeout_s=6 * STEP_TIMEOUT_S)
    g = map_groups(sig)
    assert g["flux"] and g["voltage"] and g["flux"][0][2] > 0 and g["voltage"][0][2] > 0
    assert "(prescribed)" in g["flux"][0][0]
    page.get_by_role("button", name="kinetic: Butler-Volmer through a film").click()

    def kinetic(s):
        g = map_groups(s)
        return (explorer_ready(s) and g["flux"] and "(kinetic)" in g["flux"][0][0]
                and "preview" not in g["flux"][0][0] and g["simulated"]
                and f"film {FILM_OHM_M2:.3g} Ω m²" in g["simulated"][0][0]
                and any("film" in r[0] for r in g["fig5b"]))

    _, sig = wait_for(page, kinetic, timeout_s=STEP_TIMEOUT_S)
    page.get_by_text(f"kinetic, 25% film at 180°, R = {FILM_OHM_M2:.3g} Ω m²").first.wait_for(
        state="visible")
    g = map_groups(sig)
    # the voltage plot holds the model's V(t) and the dataset's measured voltage
    assert g["voltage"][0][2] > 100
    handles = page.locator(VISIBLE_HANDLES)
    assert handles.count() == len(SLIDERS)  # the film slider in the η slider's place
    page.get_by_text(f"{FILM_OHM_M2:.3g} Ω m²").first.wait_for(state="visible")  # log scale in Ω m²
    before = g
    handles.nth(0).focus()
    page.keyboard.down("ArrowRight")
    page.keyboard.up("ArrowRight")

    def moved(s):
        g = map_groups(s)
        return (explorer_ready(s) and g["flux"] and "preview" not in g["flux"][0][0]
                and all(g[k] and g[k] != before[k] for k in ("maps", "flux", "simulated")))

    wait_for(page, moved, timeout_s=STEP_TIMEOUT_S)
    # one step of 0.05 in log10 up from the default 0.171 Ω m²: 0.192 Ω m², or the point of the
    # slider's grid above the default (the value shown lies above 0.171 and at most 0.2)
    page.get_by_text(re.compile(r"R = 0\.(17[2-9]|1[89]\d?|2) Ω m²")).first.wait_for(
        state="visible")
    assert not errors, errors
    served = log.read_bytes()[log_start:].decode(errors="replace")
    assert "Traceback" not in served and "ERROR" not in served, served[-3000:]


def test_model_explorer_broken_dataset_alert(server, page, tmp_path):
    errors = watch_errors(page)
    bad = tmp_path / "broken-dataset"
    bad.mkdir()
    (bad / "metadata.json").write_text("{ not json")
    page.goto(server + "/model_explorer")
    wait_for(page, explorer_ready, timeout_s=STEP_TIMEOUT_S)
    # the dataset field: the text box holding the page's dataset (the rate and the clock offset
    # have text boxes too, so not merely the first one)
    boxes = page.locator("input[type=text]")
    box = next(boxes.nth(i) for i in range(boxes.count())
               if boxes.nth(i).input_value() == EXPLORER_DATASET)
    box.fill(str(bad))
    box.press("Enter")
    alert = page.locator(".alert-danger")
    alert.wait_for(state="visible")
    # the message names the file and the problem
    msg = page.get_by_text("broken-dataset/metadata.json").first
    msg.wait_for(state="visible")
    assert "not valid JSON" in msg.inner_text()
    # the server keeps serving: a fresh page still works
    page.goto(server + "/model_explorer")
    wait_for(page, explorer_ready, timeout_s=STEP_TIMEOUT_S)
    assert not errors, errors


def test_cohort_browser_particle_and_player(server, page):
    errors = watch_errors(page)
    page.goto(server + "/cohort?datasets=" + ",".join(COHORT_DATASETS))

    def ready(s):
        titles = [str(t[0]) for t in s]
        return (any(t.startswith("Fig. 5e") for t in titles)
                and any(": frame " in t for t in titles)  # the first with signal
                and any(t.startswith("line-cut kymograph") for t in titles))

    _, sig = wait_for(page, ready, timeout_s=STEP_TIMEOUT_S)
    fig5e = [s for s in sig if str(s[0]).startswith("Fig. 5e")]
    assert fig5e and fig5e[0][2] > 0  # bars and diamonds hold numbers
    # move the player (as its step buttons do): the movie frame changes
    page.evaluate("""() => { for (const doc of Bokeh.documents) for (const m of doc.all_models)
        if (String(m.type).endsWith('Player')) { m.value = 3; } }""")
    wait_for(page, lambda s: any("frame 3" in str(t[0]) for t in s), timeout_s=STEP_TIMEOUT_S)
    # choose another particle
    select = page.locator("select").first
    options = select.locator("option").all_inner_texts()
    assert len(options) >= 2
    current = [str(t[0]) for t in signatures(page) if "frame" in str(t[0])][0].split(":")[0]
    target = next(o for o in options if not o.startswith(current))
    select.select_option(label=target)
    want = target.split(" (")[0]
    wait_for(page, lambda s: any(str(t[0]).startswith(want + ":") for t in s),
             timeout_s=STEP_TIMEOUT_S)
    assert not errors, errors
