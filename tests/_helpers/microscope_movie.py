"""The quality tests' movie: two particles delithiating, imaged by the synthetic microscope
(shared by tests/analysis/test_quality.py and tests/analysis/test_camera.py)."""

import functools

import numpy as np

from asymflux import optics
from tests._helpers.analysis_synth import disk

SHAPE = (96, 128)
N = 16
PIXEL_NM = 65.0
CENTERS = ((48, 40, 18), (48, 92, 16))


def _labels():
    lab = np.zeros(SHAPE, np.int32)
    for i, (r, c, rad) in enumerate(CENTERS, start=1):
        lab[disk(SHAPE, (r, c), rad)] = i
    return lab


def _movie(*, na_of_k=None, illumination=None, drift=None, noise=True):
    """Two particles delithiating from the outside in (the first one), imaged by the
    synthetic microscope: uint16 camera counts (4000 e- per unit)."""
    rr, cc = np.indices(SHAPE)
    lab = _labels()
    part = lab > 0
    theta = np.full((N, *SHAPE), np.nan)
    for k in range(N):
        th = np.full(SHAPE, optics.DEFAULT_THETA_REF)
        for r, c, rad in CENTERS:
            th -= 0.4 * k / (N - 1) * np.clip((np.hypot(rr - r, cc - c) - rad * (1 - k / N)) / 3,
                                              0, 1) * disk(SHAPE, (r, c), rad)
        theta[k][part] = th[part]
    matrix = optics.carbon_matrix(SHAPE, np.random.default_rng(0), pixel_nm=PIXEL_NM)
    frames = []
    for k in range(N):
        na = optics.DEFAULT_NA if na_of_k is None else na_of_k(k)
        frames.append(optics.microscope(
            theta[k:k + 1], np.random.default_rng(k), coverage=part.astype(float),
            particle_reflectivity=1.0, matrix_reflectivity=matrix, pixel_nm=PIXEL_NM, na=na,
            illumination=None if illumination is None else illumination[k:k + 1],
            drift_px=None if drift is None else drift[k:k + 1], noise=noise)[0])
    return np.array(frames), lab


@functools.cache
def clean_movie():
    """The clean movie, made once per session (test_quality.py and test_camera.py: ~10 s)."""
    return _movie()
