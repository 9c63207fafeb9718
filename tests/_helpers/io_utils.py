"""Shared helpers for the asymflux.io tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from asymflux.io import Dataset

ECHEM_DIR = (Path(__file__).parents[2] / ".." / "shared" / "data" / "echem").resolve()


def require_echem_dir() -> Path:
    """The folder of real BioLogic files (never copied into the project); skip if absent."""
    if not ECHEM_DIR.is_dir():
        pytest.skip(f"real cycler files not present at {ECHEM_DIR}")
    return ECHEM_DIR


def read_echem_quietly(path, **kw):
    """``asymflux.io.read_echem`` with its ``EchemWarning``s silenced (tests that check the
    table, not the warnings)."""
    import warnings

    from asymflux.io import read_echem
    from asymflux.io.echem import EchemWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EchemWarning)
        return read_echem(path, **kw)


def snapshot(folder: Path) -> dict:
    """Every file and folder under ``folder`` with size and mtime: equal snapshots = nothing written."""
    out = {}
    for p in sorted(Path(folder).rglob("*")):
        st = p.stat()
        out[str(p.relative_to(folder))] = (
            p.is_dir(),
            st.st_size if p.is_file() else 0,
            st.st_mtime_ns,
        )
    return out


def make_dataset(*, n=6, shape=(24, 32), dtype=np.uint16, seed=0, with_extras=True) -> Dataset:
    """A small, fully populated dataset with random pixels (any dtype)."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        stack = rng.random((n, *shape)) > 0.5
    elif np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        stack = rng.integers(info.min, info.max, size=(n, *shape), dtype=dtype, endpoint=True)
    else:
        stack = (rng.normal(size=(n, *shape)) * 1e3).astype(dtype)
    time_s = np.cumsum(rng.uniform(0.5, 2.0, n)) + 0.1  # irregular, not round numbers
    m = 200
    t = np.linspace(0.0, time_s[-1] + 1.0, m)
    echem = pd.DataFrame(
        {
            "time_s": t,
            "voltage_V": 3.6 + 0.7 * t / t[-1] + rng.normal(0, 1e-4, m),
            "current_mA": np.full(m, 0.05) + rng.normal(0, 1e-5, m),
        }
    )
    masks = annotations = None
    if with_extras:
        masks = np.zeros(shape, dtype=np.int32)
        masks[2:8, 3:9] = 1
        masks[12:20, 15:25] = 2
        annotations = pd.DataFrame(
            {
                "particle_id": [1, 2],
                "class": ["core-shell", "blocked"],
                "notes": ["", "crack, top left"],
                "who": ["ana", "ana"],
                "when": ["2025-01-02T10:00:00", "2025-01-02T10:01:30"],
            }
        )
    return Dataset(
        stack=stack,
        time_s=time_s,
        pixel_nm=65.3,
        echem=echem,
        metadata={
            "name": "test",
            "material": "LiNi0.88Mn0.05Co0.07O2",
            "ageing": "3-4.3V 50mA/g 200 cycles",
            "rate_mA_g": 100.0,
            "cell": "optical half-cell vs Li",
            "active_mass_mg": 0.5,
        },
        masks=masks,
        annotations=annotations,
    )
