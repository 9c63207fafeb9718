"""Names that moved to another io module still work from the old place, with a
FutureWarning naming the new one."""

from __future__ import annotations

import importlib

import pytest

MOVED = [
    ("asymflux.io.stacks", "read_hdf5", "asymflux.io.dataset"),
    ("asymflux.io.stacks", "read_stack", "asymflux.io.readers"),
    ("asymflux.io.echem", "current_from_increments", "asymflux.io._counters"),
    ("asymflux.io.instrument", "read_instrument_hdf5", "asymflux.io.dataset"),
]


@pytest.mark.parametrize(("old", "name", "new"), MOVED)
def test_a_moved_name_is_the_new_object_with_a_warning(old, name, new):
    module = importlib.import_module(old)
    with pytest.warns(FutureWarning, match=rf"{old}\.{name} moved to {new}\.{name}"):
        got = getattr(module, name)
    assert got is getattr(importlib.import_module(new), name)


def test_other_missing_names_still_raise():
    from asymflux.io import stacks

    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        stacks.no_such_name  # noqa: B018
    assert not hasattr(stacks, "read_nothing")
