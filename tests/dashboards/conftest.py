"""Fixtures of the dashboard tests: small demo datasets built once per session in the
session's cache folder (the one ``tests/conftest.py`` points ASYMFLUX_CACHE at)."""

from __future__ import annotations

import os
import sys

import pytest
from _server import COHORT_DATASETS, EXPLORER_DATASET


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory):
    return tmp_path_factory.getbasetemp() / "asymflux-cache"


@pytest.fixture(scope="session")
def demo_data(session_cache):
    """Build the few demo datasets the dashboards show (cached for the whole session)."""
    from asymflux import datasets

    old = os.environ.get("ASYMFLUX_CACHE")
    os.environ["ASYMFLUX_CACHE"] = str(session_cache)
    try:
        paths = {n: datasets.path(n) for n in (EXPLORER_DATASET, *COHORT_DATASETS)}
    finally:
        if old is None:
            os.environ.pop("ASYMFLUX_CACHE", None)
        else:
            os.environ["ASYMFLUX_CACHE"] = old
    return paths


@pytest.fixture(scope="session", autouse=True)
def _dashboard_worker_pool():
    """The views' simulation worker processes (``asymflux.views._pool``, started by the
    first simulation in this process) are shut down when the session ends, also after a
    failure or Ctrl-C, instead of at interpreter exit (never, if the process is killed)."""
    yield
    common = sys.modules.get("asymflux.views._pool")
    pool = getattr(common, "_POOL", None)
    if pool:
        workers = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in workers:  # a run still going gets 10 s, then is killed
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)
        common._POOL = None
