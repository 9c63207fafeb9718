"""The name a dataset goes by in tables, file names and messages.

Below both the pipeline (:mod:`._pipeline`) and the clock check (:mod:`._clock`), which
name the dataset they work on.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["dataset_name"]


def dataset_name(dataset) -> str:
    """``metadata["name"]``, else the folder/file name, else ``"dataset"``.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> dataset_name(SimpleNamespace(metadata={"name": "cell3_50mAg"}, path=None))
    'cell3_50mAg'
    >>> dataset_name(SimpleNamespace(metadata={}, path=None))
    'dataset'
    """
    meta = getattr(dataset, "metadata", None) or {}
    if meta.get("name"):
        return str(meta["name"])
    path = getattr(dataset, "path", None)
    if path is not None:
        p = Path(path)
        return p.name.split(".")[0] if p.is_file() else p.name
    return "dataset"
