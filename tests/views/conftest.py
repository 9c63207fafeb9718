"""Fixtures of the dashboard tests: small demo datasets built once per session in the
session's cache folder (the one ``tests/conftest.py`` points ASYMFLUX_CACHE at)."""

from __future__ import annotations

import os

import pytest

from tests._helpers.server import COHORT_DATASETS, EXPLORER_DATASET


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
