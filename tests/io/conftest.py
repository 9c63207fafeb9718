"""Fixtures shared by the io tests."""

from __future__ import annotations

import pytest

from tests._helpers.io_utils import require_echem_dir


@pytest.fixture(scope="module")
def echem_dir():
    """The folder of real cycler files in ``../shared`` (skip when absent)."""
    return require_echem_dir()
