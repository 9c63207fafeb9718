"""A small charging dataset folder at a given rate (4 frames of 48 x 48, one particle whose
core moves off centre), quickly analysed: for the explorer's tests."""

from __future__ import annotations

import numpy as np
import pandas as pd


def dataset_at(rate, folder):
    """Write the dataset at ``rate`` (mA/g) into ``folder``; returns ``folder``."""
    from asymflux import io

    shape, r = (48, 48), 16
    rr, cc = np.indices(shape)
    part = np.hypot(rr - 24, cc - 24) <= r
    stack = np.repeat(np.where(part, 1.0, 0.5)[None], 4, axis=0)
    for f in range(1, 4):
        core = np.hypot(rr - 24, cc - 24 - 2 * f) <= r * (1 - f / 3)
        stack[f][part & ~core] = 1.2
    t = np.arange(4) * 60.0
    echem = pd.DataFrame({"time_s": t, "voltage_V": 3.8, "current_mA": 0.01,
                          "capacity_mAh_g": np.linspace(0, 3.5, 4)})
    ds = io.Dataset(stack=stack.astype(np.float32), time_s=t, pixel_nm=65.0, echem=echem,
                    masks=part.astype(np.int32),
                    metadata={"name": "slow", "ageing": "fresh", "material": "NMC88",
                              "rate_mA_g": rate, "cell": "optical half-cell vs Li"})
    io.write_dataset(ds, folder)
    return folder
