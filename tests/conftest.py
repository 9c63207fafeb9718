"""Project-wide test configuration.

In CI (``CI`` set), a skipped GUI (napari) or browser (dashboard) test is a failure:
those tests must run there, with Xvfb and Debian's chromium installed by ``.ci/run``.
"""

import os

import pytest

IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and (item.get_closest_marker("gui") or item.get_closest_marker("browser")):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"GUI/browser test skipped in CI (not allowed): {reason}"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Demo datasets are cached once per test session, never in the user's cache."""
    cache = tmp_path_factory.getbasetemp() / "asymflux-cache"
    monkeypatch.setenv("ASYMFLUX_CACHE", str(cache))
