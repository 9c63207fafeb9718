"""The cohort page's session: a page closed while its datasets were being analysed shows
nothing and starts nothing afterwards (its Bokeh document is destroyed then), as the model
explorer's closed pages (``test_pages.py``)."""

from __future__ import annotations

import asyncio
from concurrent.futures import Future

import pytest

pytest.importorskip("panel")

from asymflux.views import CohortBrowser  # noqa: E402
from asymflux.views import _jobs as J  # noqa: E402
from asymflux.views import _runtime as R  # noqa: E402


class _Job:
    """An analysis still going (what :func:`_jobs.start_analysis` returns)."""

    fraction = None

    def __init__(self):
        self.future = Future()
        self.released = 0

    def describe(self):
        return "a dataset: measuring"

    def release(self, reason="cancelled from the page"):
        self.released += 1


def _page(monkeypatch):
    ends, jobs = [], []
    monkeypatch.setattr(R, "on_session_end", ends.append)
    monkeypatch.setattr(J, "start_analysis", lambda spec, **kw: jobs.append(_Job()) or jobs[-1])
    view = CohortBrowser(datasets="cohort-fresh-1")

    def end_session():  # what the server calls when the page's session ends
        for end in ends:
            end()
        view.loader.end_session()

    return view, jobs, end_session


async def _load_then(view, jobs, action):
    task = asyncio.ensure_future(view.load_async())
    for _ in range(5):
        await asyncio.sleep(0.01)
    assert len(jobs) == 1 and not task.done()  # waiting for the analysis
    action()
    await asyncio.wait_for(task, 5)


def test_a_cohort_page_closed_while_analysing_shows_and_starts_nothing(monkeypatch):
    view, jobs, end_session = _page(monkeypatch)
    asyncio.run(_load_then(view, jobs, end_session))
    assert jobs[0].released == 1  # the analysis no longer waited for (stopped if alone)
    assert not view.alert.visible and view.alert.object == "" and view.errors == []
    assert view.particles is None and view.stats is None
    view._pool({})  # an outcome arriving late: nothing shown
    assert not view.alert.visible and view.errors == []
    started = []
    monkeypatch.setattr(view, "load", lambda: started.append(1))
    view.settings.datasets = "cohort-fresh-2"  # a change after the end: nothing started
    assert started == [] and len(jobs) == 1


def test_an_open_cohort_page_says_its_analysis_was_cancelled(monkeypatch):
    # the same steps with the page open: its Cancel says so (what the closed page must not)
    view, jobs, _end = _page(monkeypatch)
    asyncio.run(_load_then(view, jobs, view.progress.cancel))
    assert view.alert.visible and "analysis cancelled" in view.alert.object
    view._pool({})
    assert view.errors == ["no datasets"]
