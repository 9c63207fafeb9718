"""Camera artefacts beyond the optics: spikes (cosmic rays, hot pixels) in the reference
frames, exposure outliers (a dark, shutter-closed or over-exposed frame), duplicated
frames, the PSF width seen at the particles' outlines.

Each is a small, array-in/array-out function used by the measurement
(:func:`~asymflux.analysis.particle_timeseries`) and by the checks made before any work
(:func:`~asymflux.analysis._pipeline.check_stack_signal`). What they do to the numbers and
their thresholds are in ``docs/analysis.md`` ("Camera artefacts").
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "SPIKE_EXCESS", "SPIKE_NOISE", "EXPOSURE_OUTLIER_FACTOR", "reference_spikes",
    "frame_exposure", "exposure_outliers", "duplicated_frames",
]

#: A pixel of a reference frame more than this fraction above the median of its 3 x 3
#: neighbourhood ...
SPIKE_EXCESS = 0.5
#: ... and by more than this many times the frame's robust noise of that difference is a
#: spike (a cosmic ray or a hot pixel): no optics with a PSF wider than ~1 px makes one
#: pixel 50 % brighter than the median of its neighbours.
SPIKE_NOISE = 6.0
#: A frame whose overall level or contrast (:func:`frame_exposure`) differs from the
#: median of its neighbours' by more than this factor (either way) is an exposure outlier.
EXPOSURE_OUTLIER_FACTOR = 2.0
#: Neighbours on each side compared with (:func:`exposure_outliers`).
EXPOSURE_NEIGHBOURS = 3


def reference_spikes(frames):
    """Pixels that are spikes in any of ``frames``: more than :data:`SPIKE_EXCESS` above
    the median of their 3 x 3 neighbourhood, and by more than :data:`SPIKE_NOISE` x the
    frame's robust spread (1.4826 x MAD) of that difference.

    A cosmic ray or a hot pixel in the reference frame gives that pixel a huge I0: its dI
    stays far below the threshold for the whole movie, an "unreacted" pixel that pulls
    the core's centre and outlives the core. Such pixels are left unknown (NaN).

    Parameters
    ----------
    frames : (n, n_row, n_col) or (n_row, n_col) array
        Raw intensities (NaN allowed).

    Returns
    -------
    (n_row, n_col) bool array
    """
    from scipy.ndimage import median_filter

    f = np.asarray(frames, dtype=np.float64)
    if f.ndim == 2:
        f = f[None]
    out = np.zeros(f.shape[1:], bool)
    for frame in f:
        finite = np.isfinite(frame)
        if finite.sum() < 9:
            continue
        img = np.where(finite, frame, np.nanmedian(frame))
        med = median_filter(img, size=3, mode="nearest")
        res = img - med
        spread = 1.4826 * np.median(np.abs(res[finite] - np.median(res[finite])))
        with np.errstate(invalid="ignore"):
            out |= finite & (res > SPIKE_EXCESS * np.abs(med)) & (res > SPIKE_NOISE * spread)
    return out


def frame_exposure(chunk):
    """(n, 2) float64: each frame's level (median) and contrast (the spread between its 95th
    and 5th percentiles) of a (n, n_row, n_col) chunk, over a regular subsample of at most
    ~40 000 pixels (cheap on large frames); NaN for a frame with no finite pixel."""
    c = np.asarray(chunk)
    flat = c.reshape(c.shape[0], -1)
    step = max(1, flat.shape[1] // 40000)
    sub = flat[:, ::step].astype(np.float64)
    out = np.full((c.shape[0], 2), np.nan)
    for k, v in enumerate(sub):
        v = v[np.isfinite(v)]
        if v.size:
            lo, med, hi = np.percentile(v, (5, 50, 95))
            out[k] = med, hi - lo
    return out


def exposure_outliers(exposure, *, n_neighbours=EXPOSURE_NEIGHBOURS,
                      factor=EXPOSURE_OUTLIER_FACTOR):
    """(n_frames,) bool: frames whose level or contrast (:func:`frame_exposure`) is more
    than ``factor`` times above or below the median of the ``n_neighbours`` frames on each
    side (itself left out): a dark or shutter-closed frame (no contrast), an over-exposed
    or lamp-flash frame. A slow drift, flicker of tens of per cent or a steady charge
    never moves a frame by a factor 2 against its neighbours."""
    e = np.asarray(exposure, dtype=np.float64)
    n = e.shape[0]
    out = np.zeros(n, bool)
    if n < 3:
        return out
    for k in range(n):
        idx = [j for j in range(max(0, k - n_neighbours), min(n, k + n_neighbours + 1))
               if j != k]
        ref = np.nanmedian(e[idx], axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.abs(e[k]) / np.abs(ref)
        bad = (ratio > factor) | (ratio < 1.0 / factor)
        out[k] = bool(np.any(bad & np.isfinite(ratio)))
    return out


def duplicated_frames(fingerprints):
    """(n_frames,) bool: frames identical to the frame before them (a camera or a writer
    that sent the same buffer twice: that frame's time is not when it was taken).
    ``fingerprints``: one hashable value per frame (e.g. a hash of its bytes)."""
    fp = list(fingerprints)
    out = np.zeros(len(fp), bool)
    for k in range(1, len(fp)):
        out[k] = fp[k] is not None and fp[k] == fp[k - 1]
    return out
