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
