"""Synthetic particles with a known unreacted core, for the analysis tests."""

from __future__ import annotations

import numpy as np


def disk(shape, center, radius):
    rr, cc = np.indices(shape)
    return (rr - center[0]) ** 2 + (cc - center[1]) ** 2 <= radius**2


def core_stack(
    *,
    shape=(96, 96),
    center=(48, 48),
    radius=20,
    core_offset=(0, 6),
    core_radius=9,
    n_frames=3,
    reacted_dI=0.2,
    background=0.5,
    particle=1.0,
):
    """Intensity stack: frame 0 reference, frames 1.. with a Li-rich core (dI = 0) offset
    by ``core_offset`` (row, col) pixels inside a delithiated disk (dI = reacted_dI); the
    last frame is fully reacted when ``n_frames >= 3``.

    Returns (stack (n_frames, *shape) float32, labels, dI truth (n_frames, *shape)).
    """
    part = disk(shape, center, radius)
    core = disk(shape, (center[0] + core_offset[0], center[1] + core_offset[1]), core_radius) & part
    i0 = np.where(part, particle, background)
    dI = np.zeros((n_frames, *shape))
    for k in range(1, n_frames):
        dI[k][part] = reacted_dI
        if k < n_frames - 1 or n_frames < 3:
            dI[k][core] = 0.0
    stack = (i0 * (1 + dI)).astype(np.float32)
    return stack, part.astype(np.int32), dI
