"""Sample data: the deterministic demo datasets of :mod:`asymflux.datasets`.

Built on first use (a few seconds) and cached; stacks are opened lazily.
"""

from __future__ import annotations

__all__ = ["aged", "fresh", "sample"]


def sample(name: str) -> list[tuple]:
    """Layer data (stack + particle labels) of the demo dataset ``name``."""
    from asymflux import datasets

    from ._reader import dataset_layers

    return dataset_layers(datasets.load(name, lazy=True), name=name)


def fresh() -> list[tuple]:
    """Fresh electrode charged at 100 mA/g (5 particles, 4 symmetric)."""
    return sample("fresh")


def aged() -> list[tuple]:
    """Aged electrode charged at 100 mA/g (5 particles, 4 blocked)."""
    return sample("aged")
