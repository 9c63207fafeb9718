"""The clock tests' synthetic movie: particles following a cycler's charge, imaged on a
camera clock offset from the cycler's (shared by tests/analysis/test_clock.py and
tests/cli/test_fit.py)."""

import numpy as np
import pandas as pd

from asymflux import io, optics
from tests._helpers.analysis_synth import disk

FRAME_S = 30.0
N_FRAMES = 60  # 0 .. 1770 s on the camera's clock
CHARGE_S = (300.0, 1200.0)  # the current flows between these cycler times


def cycler_table(*, dt_s=10.0, t_end_s=2400.0, current_mA=0.05, mass_mg=1.0):
    """A rest, a charge, a rest, sampled every ``dt_s`` on the cycler's clock (from 0)."""
    t = np.arange(0.0, t_end_s + dt_s / 2, dt_s)
    i = np.where((t >= CHARGE_S[0]) & (t < CHARGE_S[1]), current_mA, 0.0)
    q_mAh = np.concatenate([[0.0], np.cumsum(0.5 * (i[1:] + i[:-1]) * np.diff(t))]) / 3600
    v = 3.6 + 0.4 * q_mAh / q_mAh.max() + 0.05 * (i > 0)  # an IR step when the current flows
    return pd.DataFrame({"time_s": t, "voltage_V": v, "current_mA": i,
                         "capacity_mAh_g": q_mAh / (mass_mg / 1000)})


def clock_dataset(offset_s, *, seed=0, lag_s=5.0, noise=0.002):
    """Three particles whose occupancy follows the cycler's charge (with a first-order lag
    ``lag_s`` of the optical response), imaged every FRAME_S on the camera's clock; the
    cycler's clock reads ``camera + offset_s`` (so its table is on its own clock)."""
    rng = np.random.default_rng(seed)
    shape = (64, 96)
    labels = np.zeros(shape, np.int32)
    for k, (c, r) in enumerate((((20, 20), 10), ((40, 60), 12), ((18, 75), 8)), start=1):
        labels[disk(shape, c, r)] = k
    echem = cycler_table()
    cam_t = np.arange(N_FRAMES) * FRAME_S
    # the charge the particles have seen at each frame (cycler clock), lagged
    fine_t = np.arange(-600.0, 3000.0, 1.0)
    q = np.interp(fine_t, echem.time_s, echem.capacity_mAh_g)
    lagged = np.empty_like(q)
    lagged[0] = q[0]
    a = np.exp(-1.0 / lag_s)
    for k in range(1, q.size):
        lagged[k] = a * lagged[k - 1] + (1 - a) * q[k]
    q_frames = np.interp(cam_t + offset_s, fine_t, lagged)
    theta = 1.0 - 0.6 * q_frames / echem.capacity_mAh_g.max()
    dI = optics.dI_from_theta(theta, theta_ref=1.0)
    illum = 1 + 0.01 * np.sin(cam_t / 500.0)
    base = np.where(labels > 0, 1.0, 0.5)
    stack = (base[None] * (1 + (labels[None] > 0) * dI[:, None, None]) * illum[:, None, None])
    stack = stack * (1 + noise * rng.standard_normal(stack.shape))
    ds = io.Dataset(stack=stack.astype(np.float32), time_s=cam_t, pixel_nm=65.0, echem=echem,
                    metadata={"name": "clock", "active_mass_mg": 1.0, "material": "NMC",
                              "ageing": "fresh", "rate_mA_g": 50.0, "cell": "synthetic"},
                    masks=labels)
    return ds

