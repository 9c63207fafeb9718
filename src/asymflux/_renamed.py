"""Old names of renamed public functions: they still work, with a FutureWarning saying the new name."""

from __future__ import annotations

import sys
import warnings


def module_getattr(module: str, renamed: dict[str, str]):
    """A module ``__getattr__`` that serves each old name of ``renamed`` (old -> new) as the
    new object, warning once per use; any other missing name raises AttributeError."""

    def __getattr__(name):
        new = renamed.get(name)
        if new is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        warnings.warn(f"{module}.{name} was renamed {module}.{new}; the old name will go",
                      FutureWarning, stacklevel=2)
        return getattr(sys.modules[module], new)

    return __getattr__


def moved_getattr(module: str, moved: dict[str, str]):
    """A module ``__getattr__`` that serves each name of ``moved`` (name -> the module it
    moved to) as that module's object, with a FutureWarning naming the new place; any
    other missing name raises AttributeError. The new module is imported on first use."""

    def __getattr__(name):
        new = moved.get(name)
        if new is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        warnings.warn(f"{module}.{name} moved to {new}.{name}; import it from there (the old "
                      "place will go)", FutureWarning, stacklevel=2)
        import importlib

        return getattr(importlib.import_module(new), name)

    return __getattr__
