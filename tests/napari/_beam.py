"""A small dataset folder under a drifting illumination (a Gaussian beam sliding across
the field), for the GUI = CLI tests of the napari dock (Qt-free and Qt)."""

import numpy as np
import pandas as pd

from tests._helpers.microscope_movie import PIXEL_NM, SHAPE, N, clean_movie


def _beam(c0, edge=0.6):
    """A Gaussian beam centred at (48, c0) whose farthest frame corner gets ``edge``."""
    rr, cc = np.indices(SHAPE)
    far = np.hypot(max(48, SHAPE[0] - 48), max(c0, SHAPE[1] - c0))
    s = far / np.sqrt(-2 * np.log(edge))
    return np.exp(-((rr - 48) ** 2 + (cc - c0) ** 2) / (2 * s ** 2))


def beam_folder(path, n_frames=N):
    """A dataset folder at ``path`` (masks, cycler table) of the quality tests' movie lit by
    a beam sliding 30 px over its 16 frames (its first ``n_frames``)."""
    from asymflux.io import Dataset, write_dataset

    stack, labels = clean_movie()
    beams = np.array([_beam(30 + 30 * k / (N - 1)) for k in range(n_frames)])
    moving = np.round(stack[:n_frames] * beams).astype(np.uint16)
    time_s = np.arange(n_frames) * 60.0
    echem = pd.DataFrame({"time_s": time_s, "voltage_V": 3.6 + 0.02 * np.arange(n_frames),
                          "current_mA": np.full(n_frames, 0.01),
                          "capacity_mAh_g": 10.0 * np.arange(n_frames)})
    return write_dataset(Dataset(stack=moving, time_s=time_s, pixel_nm=PIXEL_NM,
                                 echem=echem, masks=labels,
                                 metadata={"name": "beam", "ageing": "fresh", "material": "NMC",
                                           "cell": "c1", "rate_mA_g": 50.0}),
                         path)
