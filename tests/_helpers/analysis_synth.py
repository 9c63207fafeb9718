"""Synthetic particles with a known unreacted core, for the analysis tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from asymflux import io


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


def shrinking_core_movie(
    *,
    n_frames=12,
    shape=(72, 72),
    center=(36, 36),
    radius=20,
    pixel_nm=65.0,
    front_px=4.0,
    illumination=None,
    seed=0,
):
    """A particle whose Li-rich core shrinks towards its right edge, imaged by the synthetic
    microscope (:func:`asymflux.optics.microscope`: textured carbon matrix, Gaussian PSF,
    no camera noise or offset, so intensity is proportional to the light).

    The core (θ = θ_ref) has radius ``radius · (1 − k/(n_frames − 1))`` in frame k and
    stays tangent to the particle's right edge, so its offset d grows as it shrinks;
    outside it θ falls smoothly over ``front_px`` pixels (a reaction front with a dI
    gradient, as in the paper's movies). ``illumination`` (n_frames,) multiplies each
    frame (lamp flicker).

    Returns (stack (n_frames, *shape) float64, labels (int32, 1 = the particle)).
    """
    from asymflux import optics

    rr, cc = np.indices(shape)
    part = disk(shape, center, radius)
    theta = np.full((n_frames, *shape), np.nan)
    for k in range(n_frames):
        r_core = radius * (1 - k / (n_frames - 1))
        core_col = center[1] + (radius - r_core)
        out = np.hypot(rr - center[0], cc - core_col) - r_core
        th = optics.DEFAULT_THETA_REF - 0.4 * (1 - np.exp(-np.clip(out, 0, None) / front_px))
        theta[k][part] = th[part]
    matrix = optics.carbon_matrix(shape, np.random.default_rng(seed), pixel_nm=pixel_nm)
    stack = optics.microscope(theta, np.random.default_rng(seed), coverage=part.astype(float),
                              particle_reflectivity=1.0, matrix_reflectivity=matrix,
                              pixel_nm=pixel_nm, illumination=illumination, noise=False,
                              offset_counts=0.0)
    return stack, part.astype(np.int32)


def make_dataset(ageing="fresh", name="exp", offset=(0, 6), n_frames=10, masks=True):
    a, la, _ = core_stack(shape=(64, 160), center=(32, 40), core_offset=offset, n_frames=n_frames)
    b, lb, _ = core_stack(shape=(64, 160), center=(32, 115), core_offset=(0, 0), n_frames=n_frames)
    stack = np.maximum(a, b)
    time_s = np.arange(n_frames) * 30.0
    echem = pd.DataFrame({"time_s": time_s, "voltage_V": np.linspace(3.6, 3.8, n_frames),
                          "current_mA": 0.01, "capacity_mAh_g": np.linspace(0, 9, n_frames)})
    return io.Dataset(stack=stack, time_s=time_s, pixel_nm=65.0, echem=echem,
                      metadata={"name": name, "ageing": ageing, "material": "NMC88",
                                "rate_mA_g": 100.0, "cell": "optical half-cell vs Li"},
                      masks=(la + 2 * lb) if masks else None)
