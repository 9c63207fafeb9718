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
    "frame_exposure", "exposure_outliers", "frame_fingerprints", "duplicated_frames",
    "reference_exposure_problem", "registered_frame_means", "edge_width_px", "outside_frame",
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
#: ... or whose contrast is below 1 / (2 x that factor) with its level below this
#: fraction of theirs (a dark frame above a camera offset).
DARK_LEVEL_RATIO = 0.8
#: Neighbours on each side compared with (:func:`exposure_outliers`).
EXPOSURE_NEIGHBOURS = 3


def reference_spikes(frames, where=None):
    """Pixels that are spikes in any of ``frames``: more than :data:`SPIKE_EXCESS` above
    the median of their 3 x 3 neighbourhood, and by more than :data:`SPIKE_NOISE` x the
    frame's robust spread (1.4826 x MAD) of that difference.

    A cosmic ray or a hot pixel in the reference frame gives that pixel a huge I0: its dI
    stays far below the threshold for the whole movie, an "unreacted" pixel that pulls
    the core's centre and outlives the core. Such pixels are left unknown (NaN). A frame
    without noise (a model's or a synthetic image, MAD 0) has none.

    Parameters
    ----------
    frames : (n, n_row, n_col) or (n_row, n_col) array
        Raw intensities (NaN allowed).
    where : (n_row, n_col) bool array, optional
        The pixels whose differences give the noise (default: all; the analysis passes
        the particles', the same on a frame and on a mosaic of their crops).

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
        on = finite if where is None else finite & np.asarray(where, bool)
        if on.sum() < 9:
            continue
        spread = 1.4826 * np.median(np.abs(res[on] - np.median(res[on])))
        if not spread > 0:  # a noise-free (synthetic) image: its sharp corners are no spikes
            continue
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
    """(n_frames,) bool: frames whose level (:func:`frame_exposure`) is more than ``factor``
    times above or below the median of the ``n_neighbours`` frames on each side (itself
    left out), or whose contrast is below 1 / (2 ``factor``) of theirs with the level
    below :data:`DARK_LEVEL_RATIO` of theirs: a dark or shutter-closed frame, an
    over-exposed or lamp-flash frame. A slow drift, flicker of tens of per cent or a steady charge
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
        out[k] = _odd_exposure(e[k], ref, factor) is not None
    return out


def _odd_exposure(e, ref, factor):
    """Why exposure ``e`` (level, contrast) is off ``ref``, or None: the level more than
    ``factor`` above or below, or a dark frame under a camera offset (contrast below
    1 / (2 ``factor``) and the level below 0.8 x). A particle as bright as its background
    at the start (no contrast, the level unchanged) is no outlier."""
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.abs(np.asarray(e, float)) / np.abs(np.asarray(ref, float))
    if np.isfinite(ratio[0]) and (ratio[0] > factor or ratio[0] < 1.0 / factor):
        return f"level (median) is {ratio[0]:.2g} x"
    if (np.isfinite(ratio).all() and ratio[1] < 1.0 / (2 * factor)
            and ratio[0] < DARK_LEVEL_RATIO):
        return (f"contrast (95th - 5th percentile) is {ratio[1]:.2g} x and its level "
                f"{ratio[0]:.2g} x")
    return None


def frame_fingerprints(chunk):
    """One hash per frame of a (n, n_row, n_col) chunk (of its bytes; of every k-th pixel
    on frames over 262 144 pixels), for :func:`duplicated_frames`."""
    import hashlib

    c = np.asarray(chunk)
    flat = c.reshape(c.shape[0], -1)
    step = max(1, flat.shape[1] // 262144)  # large frames: a regular subsample suffices
    return [hashlib.blake2b(np.ascontiguousarray(f[::step]).tobytes(), digest_size=16).digest()
            for f in flat]


def reference_exposure_problem(exposure, n_reference_frames=1,
                               factor=EXPOSURE_OUTLIER_FACTOR):
    """Why the reference frames cannot be I0 (a str), or None: a reference frame whose level
    or contrast (:func:`frame_exposure`, rows: the reference frames then the next ones)
    differs by more than ``factor`` from the median of the frames after the reference (a
    shutter-closed or dark first frame, an over-exposed one). Every dI would be wrong."""
    e = np.asarray(exposure, dtype=np.float64)
    n_ref = max(1, int(n_reference_frames))
    after = e[n_ref:]
    if after.shape[0] == 0:
        return None
    ref = np.nanmedian(after, axis=0)
    for k in range(min(n_ref, e.shape[0])):
        why = _odd_exposure(e[k], ref, factor)
        if why:
            return (f"reference frame {k}'s {why} that of the {after.shape[0]} frames after "
                    "it: a dark, shutter-closed or over-exposed frame cannot be the "
                    "reference I0 (every dI = I/I0 - 1 would be wrong); drop it from the "
                    "stack")
    return None


def duplicated_frames(fingerprints):
    """(n_frames,) bool: frames identical to the frame before them (a camera or a writer
    that sent the same buffer twice: that frame's time is not when it was taken).
    ``fingerprints``: one hashable value per frame (e.g. a hash of its bytes)."""
    fp = list(fingerprints)
    out = np.zeros(len(fp), bool)
    for k in range(1, len(fp)):
        out[k] = fp[k] is not None and fp[k] == fp[k - 1]
    return out


#: A drift (px) from which the particle-free pixels measuring a frame's illumination are
#: moved with it: half the particles' background margin (6 px), before a drifting
#: particle's light reaches them. Below it they stay where they are (the crops' path
#: measures them so).
BACKGROUND_SHIFT_PX = 3.0


def registered_frame_means(chunk, background_flat, shifts=None,
                           min_shift_px=BACKGROUND_SHIFT_PX):
    """(n,) mean intensity of each frame of ``chunk`` over the particle-free pixels
    ``background_flat`` (flat indices in the reference frame), each moved by its frame's
    drift ``shifts`` (n, 2) (row, col; rounded to whole pixels; those moved off the frame
    left out) when the drift reaches ``min_shift_px``: a stage jump of many pixels would
    otherwise carry the particles into the background and its mean (the normalisation)
    with them. Finite pixels only (:func:`_frame_means`)."""
    from ._differential import _frame_means

    out = _frame_means(chunk, background_flat)
    if shifts is None:
        return out
    s = np.rint(np.asarray(shifts, dtype=float))
    n_row, n_col = chunk.shape[1:]
    big = np.flatnonzero(np.hypot(s[:, 0], s[:, 1]) >= min_shift_px)
    if not big.size:
        return out
    rows, cols = np.divmod(np.asarray(background_flat), n_col)
    for k in big:
        r = rows - int(s[k, 0])  # the reference pixel (r, c) is at (r - shift) in the frame
        c = cols - int(s[k, 1])
        ok = (r >= 0) & (r < n_row) & (c >= 0) & (c < n_col)
        if ok.any():
            out[k] = _frame_means(chunk[k:k + 1], r[ok] * n_col + c[ok])[0]
    return out


#: A particle whose outline in the reference image is wider (the σ of a Gaussian blur of
#: a step, from its 25-75 % rise) than this many times ``edge_px`` raises ``psf_wide``.
PSF_WIDE_FACTOR = 1.5
#: Distances (px) from the outline over which its profile is read, each side.
EDGE_PROFILE_PX = 8
#: The particle must differ from its surroundings by this fraction for a width.
EDGE_MIN_CONTRAST = 0.1


def edge_width_px(image, labels, ids=None, *, max_px=EDGE_PROFILE_PX):
    """The blur of each particle's outline in ``image`` (its reference): the σ (px) of the
    Gaussian that blurs a step into the particle's mean intensity profile across its
    outline (the median intensity at each whole-pixel distance from the outline, out to
    ``max_px`` on both sides; outside pixels belong to their nearest particle), from the
    distance between its 25 % and 75 % rise (1.349 σ). A measure of the PSF (plus ~0.3 px
    of the pixel grid), whatever ``edge_px`` says. (n_particles,) float64 in the order of
    ``ids`` (default: the labels present); NaN where the particle differs from its
    surroundings by less than :data:`EDGE_MIN_CONTRAST` or the profile is cut."""
    from scipy import ndimage as ndi

    img = np.asarray(image, dtype=np.float64)
    lab = np.asarray(labels)
    if ids is None:
        ids = np.unique(lab[lab > 0])
    ids = np.asarray(ids)
    out = np.full(ids.size, np.nan)
    if not ids.size:
        return out
    inside = ndi.distance_transform_edt(lab > 0)
    outside, (ir, ic) = ndi.distance_transform_edt(lab == 0, return_indices=True)
    owner = np.where(lab > 0, lab, lab[ir, ic])
    signed = np.where(lab > 0, inside - 0.5, 0.5 - outside)
    near = (np.abs(signed) <= max_px + 0.5) & np.isfinite(img)
    bins = np.rint(signed[near]).astype(int)
    own = owner[near]
    vals = img[near]
    steps = np.arange(-max_px, max_px + 1)
    for i, pid in enumerate(ids):
        sel = own == pid
        if sel.sum() < 20:
            continue
        b, v = bins[sel], vals[sel]
        prof = np.array([np.median(v[b == s]) if np.any(b == s) else np.nan for s in steps])
        lo = prof[steps <= -max_px // 2]
        hi = prof[steps >= max_px // 2]
        if not (np.isfinite(lo).any() and np.isfinite(hi).any()):
            continue
        bg, top = np.nanmedian(lo), np.nanmedian(hi)
        if not abs(top - bg) > EDGE_MIN_CONTRAST * abs(bg):
            continue
        ok = np.isfinite(prof)
        y = np.maximum.accumulate((prof[ok] - bg) / (top - bg))  # monotone rise
        x = steps[ok].astype(float)
        if y[0] > 0.25 or y[-1] < 0.75:
            continue
        d25 = np.interp(0.25, y, x)  # first crossing of a non-decreasing profile
        d75 = np.interp(0.75, y, x)
        out[i] = (d75 - d25) / 1.349
    return out


def outside_frame(rows, cols, starts, shifts, frame_shape):
    """(n_frames, n_particles) bool: particles that touch the frame's edge (their mask
    reaches its first or last row or column: the particle may go on beyond it) or that
    the drift ``shifts`` (n_frames, 2) carries partly out of it (registered, their pixels
    beyond the edge are copies of the edge's). ``rows``, ``cols``: the particles' pixels,
    sorted by particle, each particle's first at ``starts``."""
    n_row, n_col = frame_shape
    s = np.asarray(shifts, dtype=float)
    rmin = np.minimum.reduceat(rows, starts).astype(float)
    rmax = np.maximum.reduceat(rows, starts).astype(float)
    cmin = np.minimum.reduceat(cols, starts).astype(float)
    cmax = np.maximum.reduceat(cols, starts).astype(float)
    touch = (rmin <= 0) | (cmin <= 0) | (rmax >= n_row - 1) | (cmax >= n_col - 1)
    # a pixel at (r, c) in the reference is read at (r - shift) in the frame
    r_lo, r_hi = rmin[None] - s[:, :1], rmax[None] - s[:, :1]
    c_lo, c_hi = cmin[None] - s[:, 1:], cmax[None] - s[:, 1:]
    out = (r_lo < 0) | (c_lo < 0) | (r_hi > n_row - 1) | (c_hi > n_col - 1)
    return out | touch[None]
