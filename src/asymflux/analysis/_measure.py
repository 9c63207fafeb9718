"""Per-particle, per-frame measurement of the shrinking core (Lun et al. 2025, Fig. 5d).

For every labelled particle and frame: the particle-averaged differential intensity,
the 'unreacted' (Li-rich) region ``dI < threshold`` inside the particle, its area
fraction and centre of mass ``O_Li-rich``, and the offset ``d`` from the particle's
centre of mass ``O_COM`` (in nm, relative to the equivalent radius, and its direction).

The stack is read chunk by chunk (a few frames at a time, in a small thread pool) and
only the particles' pixels are kept, so a zarr/dask stack larger than memory streams
through at the speed of reading it. Drift correction (optional) samples each particle
pixel at its shifted position with :func:`scipy.ndimage.map_coordinates`, which is
the same bilinear interpolation as :func:`scipy.ndimage.shift` with ``order=1``.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .._validate import check_range
from ..paper import UNREACTED_THRESHOLD
from ._chunks import as_float, frame_chunks, read_chunk
from ._differential import (
    _check_background_mask,
    _check_normalize,
    _check_rolling,
    _masked_reference,
    particle_free_pixels,
)

__all__ = ["particle_timeseries", "TIMESERIES_COLUMNS"]

TIMESERIES_COLUMNS = [
    "particle_id", "frame", "time_s", "capacity_mAh_g", "mean_dI", "norm_intensity",
    "unreacted_fraction", "unreacted_area_um2", "offset_nm", "offset_norm", "offset_angle_deg",
    "offset_reason", "area_um2", "com_row", "com_col", "li_rich_row", "li_rich_col",
    "drift_row_px", "drift_col_px", "quality_flags", "d_nm_low", "d_nm_high",
    "offset_norm_low", "offset_norm_high", "noise_dI",
]


def check_labels(labels, frame_shape, *, name="labels"):
    """A label image checked against the frames: ``(row, col)`` integer labels (int64 for
    booleans and whole-number floats), 0 the background, no negative label; ValueError
    naming ``name`` otherwise.

    Examples
    --------
    >>> check_labels([[0, 1], [1, 2.0]], (2, 2)).dtype
    dtype('int64')
    >>> check_labels([[0, 1]], (2, 2), name="masks")
    Traceback (most recent call last):
    ...
    ValueError: masks shape (1, 2) does not match the stack's frames (2, 2) (row, col)
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (row, col) label image, got shape {labels.shape}")
    if labels.shape != tuple(frame_shape):
        raise ValueError(
            f"{name} shape {labels.shape} does not match the stack's frames {tuple(frame_shape)} "
            "(row, col)"
        )
    if labels.dtype.kind == "b":
        labels = labels.astype(np.int64)
    if labels.dtype.kind not in "iu":
        if labels.dtype.kind == "f" and np.all(np.isfinite(labels)) and np.all(labels == np.round(labels)):
            labels = labels.astype(np.int64)
        else:
            raise ValueError(f"{name} must hold integer labels, got dtype {labels.dtype}")
    if labels.size and labels.min() < 0:
        raise ValueError(f"{name} must be >= 0 (0 = background), got a minimum of {labels.min()}")
    return labels


def _per_frame(values, name, n_frames):
    if values is None:
        return np.full(n_frames, np.nan)
    values = np.asarray(values, dtype=float).reshape(-1)
    if values.shape != (n_frames,):
        raise ValueError(f"{name} must have one value per frame ({n_frames}), got {values.shape[0]}")
    return values


class _Pixels:
    """Particle pixels sorted by label, with per-label segment starts."""

    def __init__(self, labels, edge_px=0):
        n_col = labels.shape[1]
        flat = np.flatnonzero(labels.ravel())
        lab = labels.ravel()[flat]
        order = np.argsort(lab, kind="stable")
        self.flat = flat[order]
        lab = lab[order]
        self.ids = np.unique(lab)
        self.starts = np.searchsorted(lab, self.ids)
        self.rows, self.cols = np.divmod(self.flat, n_col)
        self.area_px = np.diff(np.r_[self.starts, self.flat.size])
        self.com_row = np.add.reduceat(self.rows, self.starts) / self.area_px
        self.com_col = np.add.reduceat(self.cols, self.starts) / self.area_px
        inner = _inner_pixels(labels, edge_px).ravel()[self.flat]
        if self.flat.size:
            # a particle with no inner pixel (smaller than the margin) keeps all of them
            n_inner = np.add.reduceat(inner.astype(np.int64), self.starts)
            inner |= np.repeat(n_inner == 0, self.area_px)
        self.inner = inner.astype(np.float64)  # 0/1: reduceat is fastest on float64
        self.all_inner = bool(inner.all())
        self.inner_px = (self.reduce(self.inner[None])[0] if self.flat.size
                         else np.zeros(0))

    def sample(self, chunk, shifts):
        """Pixel values (n, n_pix) of a chunk (n, n_row, n_col), registered by ``shifts``.

        Bilinear, with edge values repeated beyond the frame: for one shift per frame
        this is :func:`scipy.ndimage.map_coordinates` with ``order=1, mode="nearest"``
        written as four gathers and a weighted sum (~20x faster on particle pixels).
        """
        flat = chunk.reshape(chunk.shape[0], -1)
        if shifts is None or not np.any(shifts):
            # np.take keeps C order (flat[:, idx] does not, and reduceat along
            # rows of the result would then be ~20x slower)
            return np.take(flat, self.flat, axis=1)
        n_row, n_col = chunk.shape[1:]
        out = np.empty((chunk.shape[0], self.flat.size), dtype=np.float64)
        from ._kernels import bilinear_sample, use_compiled

        if flat.dtype == np.float64 and use_compiled():  # the same numbers, in one pass
            lo_r, w_r = np.divmod(-np.asarray(shifts[:, 0], dtype=float), 1.0)
            lo_c, w_c = np.divmod(-np.asarray(shifts[:, 1], dtype=float), 1.0)
            return bilinear_sample(np.ascontiguousarray(flat), self.rows, self.cols, n_row,
                                   n_col, lo_r.astype(np.int64), w_r, lo_c.astype(np.int64),
                                   w_c, out)
        for k in range(chunk.shape[0]):
            if shifts[k, 0] == 0 and shifts[k, 1] == 0:
                out[k] = np.take(flat[k], self.flat)
                continue
            # sample at (row - shift_row, col - shift_col)
            r_lo, w_r = divmod(-float(shifts[k, 0]), 1.0)
            c_lo, w_c = divmod(-float(shifts[k, 1]), 1.0)
            r0 = self._clipped(self.rows, int(r_lo), n_row)
            r1 = self._clipped(self.rows, int(r_lo) + 1, n_row)
            c0 = self._clipped(self.cols, int(c_lo), n_col)
            c1 = self._clipped(self.cols, int(c_lo) + 1, n_col)
            f = flat[k]
            top = f[r0 * n_col + c0] * (1.0 - w_c) + f[r0 * n_col + c1] * w_c
            bottom = f[r1 * n_col + c0] * (1.0 - w_c) + f[r1 * n_col + c1] * w_c
            np.add(top * (1.0 - w_r), bottom * w_r, out=out[k], casting="unsafe")
        return out

    @staticmethod
    def _clipped(index, offset, size):
        moved = index + offset
        if moved.size and (moved.min() < 0 or moved.max() >= size):
            np.clip(moved, 0, size - 1, out=moved)
        return moved

    def reduce(self, values, dtype=None):
        return np.add.reduceat(values, self.starts, axis=1, dtype=dtype)


def _inner_pixels(labels, edge_px):
    """Pixels farther than ``edge_px`` from any pixel of another label (or background, or
    beyond the frame): (n_row, n_col) bool."""
    edge_px = int(edge_px)
    if edge_px <= 0:
        return labels > 0
    from scipy import ndimage as ndi
    from skimage.morphology import disk

    footprint = disk(edge_px).astype(bool)
    lo = ndi.minimum_filter(labels, footprint=footprint, mode="constant", cval=0)
    hi = ndi.maximum_filter(labels, footprint=footprint, mode="constant", cval=0)
    return (labels > 0) & (lo == labels) & (hi == labels)


def _chunk_shifts(chunk, ref_region, region, upsample_factor, every, clip):
    from ._registration import _estimate_chunk

    n = chunk.shape[0]
    ks = np.unique(np.r_[np.arange(0, n, every), n - 1])
    est = _estimate_chunk(chunk, ref_region, region, upsample_factor, ks, clip)
    frames = np.arange(n)
    return np.column_stack([np.interp(frames, ks, est[:, 0]), np.interp(frames, ks, est[:, 1])])


def particle_timeseries(
    stack,
    labels,
    *,
    pixel_nm,
    time_s=None,
    capacity_mAh_g=None,
    threshold=UNREACTED_THRESHOLD,
    edge_px=2,
    differential=False,
    reference=None,
    n_reference_frames=1,
    normalize=None,
    background_mask=None,
    rolling_frames=None,
    shifts_px=None,
    register=False,
    registration_region=None,
    drift_every=1,
    upsample_factor=10,
    chunk_frames=None,
    n_threads=None,
    progress=False,
    direction="charge",
    quality=True,
    saturation_level="auto",
    min_core_px=None,
    noise_dI=None,
    context_labels=None,
):
    """Shrinking-core measurements for every labelled particle and frame.

    Parameters
    ----------
    stack : (n_frames, n_row, n_col) array-like
        Raw intensities (or, with ``differential=True``, dI), any real dtype; NumPy,
        dask or zarr (read a chunk of frames at a time).
    labels : (n_row, n_col) int array
        Particle labels, 0 = background (e.g. :func:`detect_particles`, curated).
    pixel_nm : float
        Pixel size in nm.
    time_s, capacity_mAh_g : (n_frames,) arrays, optional
        Time (s) and capacity (mAh/g) of each frame; copied into the table (NaN if not
        given).
    threshold : float
        A pixel is 'unreacted' (Li-rich) when dI < ``threshold`` (paper: 0.05).
    edge_px : int
        Pixels within ``edge_px`` of the particle's outline (background, another particle
        or the frame's edge) are left out of the unreacted region and its area fraction:
        the point-spread function mixes them with the dark matrix, so their dI stays
        below the threshold after the particle has reacted, and a few of them would
        otherwise pass for the 'last unreacted part' at the very edge. The default, 2,
        is about one PSF σ (0.21 λ/NA = 140 nm at NA 0.9 and 600 nm) in 65 nm pixels; use
        about σ / pixel size for other optics. 0 keeps every pixel (the plain
        definition); a particle with no pixel farther in keeps all of its own.
    differential : bool
        ``stack`` already holds dI (e.g. from :func:`differential_intensity` or a model).
    reference : (n_row, n_col) array, optional
        I0. Default: the mean of the first ``n_reference_frames`` (registered) frames.
    n_reference_frames : int
        Frames averaged for the default reference.
    normalize : None, "frame_mean" or (n_frames,) array
        Divide each frame by its illumination F_t before the differential, as
        :func:`differential_intensity` does: ``"frame_mean"`` measures F_t in the same
        pass as the mean raw intensity of ``background_mask`` (each chunk's frames, before
        registration); an array gives F_t (e.g. the instrument's lamp reading).
    background_mask : (n_row, n_col) bool array, optional
        Particle-free pixels for ``normalize="frame_mean"``. Default:
        :func:`particle_free_pixels` of ``labels`` (pass the mask of *all* particles
        when ``labels`` holds only some of them).
    rolling_frames : int, optional
        Measure the rolling differential ``dI_t = I_t / I_(t−n) − 1``, n =
        ``rolling_frames`` (1 <= n < n_frames), instead of dI relative to the reference
        (each chunk also reads the n frames before it). The first n frames are NaN
        (``offset_reason`` "no valid pixels"). Note that ``dI < threshold`` then selects
        pixels that changed little over the last n frames (unreacted *or* finished), not
        the Li-rich core: d is then not the paper's offset.
    shifts_px : (n_frames, 2) array, optional
        Known drift (row, col) in pixels, as from :func:`estimate_drift`; each frame is
        registered by it before measuring.
    register : bool
        Estimate the drift on the fly (phase correlation against the reference frames in
        ``registration_region``, default :func:`default_registration_region`, frames
        clipped as in :func:`estimate_drift`), in the same pass over the data. Ignored when ``shifts_px`` is given.
    drift_every : int
        With ``register``, estimate on every ``drift_every``-th frame of each chunk and
        interpolate in between.
    upsample_factor : int
        Registration precision of 1/``upsample_factor`` pixel.
    chunk_frames : int, optional
        Frames read at once (default: aligned with the stack's chunks, ~64 MB).
    n_threads : int, optional
        Worker threads (default: the number of CPUs, at most 4).
    progress : bool
        Show a tqdm progress bar.
    direction : {"charge", "discharge"}
        The half-cycle the frames span. On a discharge the particle lithiates back and dI
        (relative to the reference) falls where it has changed: the unreacted region is
        then ``-dI < threshold`` (the region not yet changed since the reference frame),
        and d is measured on it. ``mean_dI`` keeps its sign.
    quality : bool
        Measure the quality flags (:data:`asymflux.analysis.QUALITY_FLAGS`) in the same
        pass: the ``quality_flags`` column. False leaves it empty (a little faster).
    saturation_level : "auto", float or None
        The camera's clip level: pixels at or above it are unknown (NaN) and flag their
        particle ``saturated``. ``"auto"``: a pile-up at the top value of the reference
        frames or the last frame, or an integer dtype's maximum
        (:func:`~asymflux.analysis._quality.detect_saturation_level`); None: no clipping.
    min_core_px : int, optional
        Fewer unreacted pixels than this leave d, d/R_eq and the direction NaN
        (``offset_reason`` "core too small", flag ``core_too_small``). Default: a PSF's
        area, π·edge_px² (at least 4).
    context_labels : (n_row, n_col) int array, optional
        All the particles, when ``labels`` holds only some of them: the flags measured
        on the particles' surroundings (background rings) then see the others as the
        full analysis does.
    noise_dI : float or (n_particles,) array, optional
        The pixel noise of dI per particle (in label order) for ``d_nm_low`` /
        ``d_nm_high``; default: measured on the reference image
        (:func:`~asymflux.analysis._quality.dI_noise`).

    Returns
    -------
    pandas.DataFrame
        One row per particle and frame, columns :data:`TIMESERIES_COLUMNS`:
        ``mean_dI`` (particle mean of dI), ``norm_intensity`` (ΣI/ΣI0 over the particle,
        of the illumination-normalised I with ``normalize``, ΣI_t/ΣI_(t−n) with
        ``rolling_frames``; NaN for dI input), ``quality_flags`` (the quality flags raised,
        ``;``-separated, ``""`` for none), ``unreacted_fraction`` (of the particle's valid pixels at
        least ``edge_px`` inside its outline),
        ``offset_nm`` = d = |O_Li-rich − O_COM|, ``offset_norm`` = d / R_eq with
        R_eq = sqrt(area/π), ``offset_angle_deg`` (direction from O_COM to O_Li-rich,
        counter-clockwise from +x as seen on screen, in (-180, 180]), ``offset_reason``
        (``""``, ``"no unreacted pixels"``, ``"core too small"`` or ``"no valid pixels"``; d is NaN unless
        ``""``), centres of mass in pixel (row, col) and the drift applied
        (``drift_row_px``, ``drift_col_px``).
    """
    import pandas as pd

    pixel_nm = check_range("pixel_nm", pixel_nm, 0, None, low_inclusive=False)
    threshold = check_range("threshold", threshold)
    if direction not in ("charge", "discharge"):
        raise ValueError(f"direction must be 'charge' or 'discharge', got {direction!r}")
    discharge = direction == "discharge"
    if stack.ndim != 3:
        raise ValueError(f"stack must be 3-D (time, row, col), got shape {tuple(stack.shape)}")
    n_frames = int(stack.shape[0])
    labels = check_labels(labels, stack.shape[1:])
    time_s = _per_frame(time_s, "time_s", n_frames)
    capacity_mAh_g = _per_frame(capacity_mAh_g, "capacity_mAh_g", n_frames)
    edge_px = int(check_range("edge_px", edge_px, 0, None))
    px = _Pixels(labels, edge_px=edge_px)
    from ._quality import QualityPass, auto_saturation_level, default_min_core_px

    if min_core_px is None:
        min_core_px = default_min_core_px(edge_px)
    min_core_px = int(check_range("min_core_px", min_core_px, 1, None, integer=True))
    qc = sat_warn = None
    noise = noise_pix = None  # dI pixel noise: d is also measured at threshold -/+ noise
    if quality and not differential:
        if isinstance(saturation_level, str):
            if saturation_level != "auto":
                raise ValueError(f"saturation_level must be 'auto', a number or None, got "
                                 f"{saturation_level!r}")
            saturation_level = auto_saturation_level(stack, n_reference_frames)
        elif saturation_level is not None:
            saturation_level = check_range("saturation_level", saturation_level)
        qc = QualityPass(labels, px, threshold=threshold, edge_px=edge_px,
                         saturation_level=saturation_level, min_core_px=min_core_px,
                         px_cls=_Pixels, direction=direction,
                         context=None if context_labels is None
                         else check_labels(context_labels, stack.shape[1:],
                                            name="context_labels"))
    if shifts_px is not None:
        shifts_px = np.asarray(shifts_px, dtype=float)
        if shifts_px.shape != (n_frames, 2):
            raise ValueError(f"shifts_px must have shape ({n_frames}, 2), got {shifts_px.shape}")
        register = False
    drift_every = max(1, int(drift_every))
    normalize = _check_normalize(normalize, n_frames)
    rolling_frames = _check_rolling(rolling_frames, n_frames)
    if differential and (normalize is not None or rolling_frames is not None):
        raise ValueError("normalize and rolling_frames apply to raw intensities, not to a stack "
                         "that already holds dI (differential=True)")
    if rolling_frames is not None and reference is not None:
        raise ValueError("reference and rolling_frames exclude each other: a rolling differential "
                         "is relative to frame t - rolling_frames")
    background_flat = None
    if isinstance(normalize, str):  # "frame_mean"
        if background_mask is None:
            background_mask = particle_free_pixels(labels)
        background_flat = np.flatnonzero(_check_background_mask(background_mask, labels.shape))

    def illumination(chunk, t0, t1, shifts=None):
        """F_t of frames t0:t1 (None without ``normalize``); the background pixels moved
        with the drift ``shifts`` when it is large (particles drifting into them)."""
        if normalize is None:
            return None
        if background_flat is None:
            return normalize[t0:t1]
        from ._artefacts import registered_frame_means

        f = registered_frame_means(chunk, background_flat, shifts)
        bad = np.flatnonzero(~(np.isfinite(f) & (f > 0)))
        if bad.size:
            raise ValueError(f"frame {t0 + int(bad[0])}: mean background intensity {f[bad[0]]!r} "
                             "is not > 0; cannot normalise by it")
        return f

    def sample(chunk, t0, t1, shifts):
        """Registered particle pixel values of frames t0:t1, divided by F_t with ``normalize``."""
        vals = px.sample(chunk, shifts).astype(np.float64, copy=False)
        sat = qc.saturated(chunk) if qc is not None else None
        if sat is not None:  # clipped pixels are unknown, not unreacted
            vals = np.where(px.sample(sat.astype(np.float64), shifts) > 0, np.nan, vals)
        f = illumination(chunk, t0, t1, shifts)
        return vals if f is None else vals / f[:, None]

    ref_region = region = clip = None
    if register:
        from ._registration import _check_region, _reference_region, default_registration_region

        region = registration_region or default_registration_region(labels)
        region = _check_region(region, stack.shape[1:])
        ref_region, clip = _reference_region(stack, region, n_reference_frames)

    # reference intensities at the particle pixels (a rolling differential has none)
    i0 = sum_i0 = None
    spike_px = spike_warn = edge_sigma = None
    # a stack read through the illumination correction marks clipped pixels with a value of
    # its own: I0 (corrected) and that marker are in different units, so every clipped
    # pixel may be unreacted (d NaN where they could move it)
    clip_out = getattr(stack, "clip_out", None)
    marker_clip = (qc is not None and qc.clip is not None and clip_out is not None
                   and qc.clip >= clip_out)
    if not differential and rolling_frames is None:
        if reference is not None:
            reference = np.asarray(reference)
            if reference.shape != tuple(stack.shape[1:]):
                raise ValueError(
                    f"reference shape {reference.shape} does not match the frames "
                    f"{tuple(stack.shape[1:])}"
                )
            i0 = reference.ravel()[px.flat].astype(np.float64)
            if normalize is not None:  # I0 at the reference frames' mean illumination
                n_ref = int(n_reference_frames)
                if n_ref < 1 or n_ref > n_frames:
                    raise ValueError(f"n_reference_frames must be in [1, {n_frames}], got {n_ref}")
                first = as_float(read_chunk(stack, 0, n_ref))
                i0 = i0 / float(np.mean(illumination(first, 0, n_ref)))
        else:
            n_ref = int(n_reference_frames)
            if n_ref < 1 or n_ref > n_frames:
                raise ValueError(f"n_reference_frames must be in [1, {n_frames}], got {n_ref}")
            first = as_float(read_chunk(stack, 0, n_ref))
            if shifts_px is not None:
                s = shifts_px[:n_ref]
            elif register:
                s = _chunk_shifts(first, ref_region, region, upsample_factor, 1, clip)
            else:
                s = None
            i0 = sample(first, 0, n_ref, s).mean(axis=0)
            if quality:  # the blur of the outlines against edge_px (psf_wide)
                from ._artefacts import edge_width_px

                edge_sigma = edge_width_px(np.nanmean(first, axis=0), labels, px.ids)
            if quality:  # cosmic rays / hot pixels in the reference: unknown, not unreacted
                from scipy.ndimage import binary_erosion

                from ._artefacts import reference_spikes

                # on the particles, off their outline and the frame's edge (there the 3 x 3
                # median holds the background: a sharp outline is no spike)
                spikes = reference_spikes(first, labels > 0) & binary_erosion(
                    labels > 0, np.ones((3, 3), bool), border_value=0)
                if qc is not None and qc.clip is not None:  # clipped: unknown already
                    spikes &= ~np.any(first >= qc.clip, axis=0)
                if spikes.any():
                    spike_px = px.sample(spikes[None].astype(np.float64),
                                         None if s is None else s[:1])[0] > 0
        if qc is not None and qc.clip is not None:
            from ._quality import saturation_warning

            n_look = max(1, min(int(n_reference_frames), n_frames))
            sat_warn = saturation_warning(
                px.sample(as_float(read_chunk(stack, 0, n_look)), None).mean(axis=0), px,
                qc.clip, threshold)
        i0 = _masked_reference(i0, stacklevel=3)
        if spike_px is not None and spike_px.any():
            i0[spike_px] = np.nan
            spike_warn = (f"{int(spike_px.sum())} pixel(s) of the particles are spikes in the "
                          "reference frame(s) (cosmic rays or hot pixels: more than 50 % above "
                          "the median of their 3 x 3 neighbours): they are unknown (NaN) for the "
                          "whole movie, not unreacted")
        if noise_dI is not None:
            noise = np.broadcast_to(np.asarray(noise_dI, dtype=np.float64),
                                    (px.ids.size,)).copy()
            noise_pix = np.repeat(noise, px.area_px)
        elif quality:
            from ._quality import dI_noise

            noise = dI_noise(i0, px, labels,
                             1 if reference is not None else n_reference_frames)
            noise_pix = np.repeat(noise, px.area_px)
        sum_i0 = px.reduce(np.where(np.isfinite(i0), i0, 0.0)[None], np.float64)[0]
    rows_f = px.rows.astype(np.float64)
    cols_f = px.cols.astype(np.float64)

    def before_frames(vals, t0, t1):
        """Pixel values of frames t - n for t in t0:t1 (NaN for t < n, and where <= 0)."""
        n = rolling_frames
        before = np.full(vals.shape, np.nan)
        lo, hi = max(0, t0 - n), t1 - n  # frames t - n for t = max(t0, n) .. t1 - 1
        if hi > lo:
            parts = []
            if min(hi, t0) > lo:  # before this chunk: read them (and register them) again
                e1 = min(hi, t0)
                extra = as_float(read_chunk(stack, lo, e1))
                if shifts_px is not None:
                    es = shifts_px[lo:e1]
                elif register:
                    es = _chunk_shifts(extra, ref_region, region, upsample_factor, drift_every, clip)
                else:
                    es = None
                parts.append(sample(extra, lo, e1, es))
            if hi > t0:
                parts.append(vals[: hi - t0])
            before[lo + n - t0:] = np.concatenate(parts)
        before[~(before > 0)] = np.nan
        return before

    def work(bounds):
        t0, t1 = bounds
        chunk = as_float(read_chunk(stack, t0, t1))
        blank = np.zeros(t1 - t0, bool)
        exposure = fingerprint = None
        if not differential and quality:  # dark / over-exposed / duplicated frames
            from ._artefacts import frame_exposure, frame_fingerprints

            exposure = frame_exposure(chunk)
            fingerprint = frame_fingerprints(chunk)
        if not differential:  # a frame with no image (NaN, or one value: never written)
            flat = chunk.reshape(t1 - t0, -1)
            from ._kernels import blank_frames, use_compiled

            if flat.flags.c_contiguous and use_compiled():
                blank = blank_frames(flat)
            else:
                blank = ~(np.fmax.reduce(flat, axis=1) > np.fmin.reduce(flat, axis=1))
            if blank.any():
                chunk = np.where(blank[:, None, None], np.nan, chunk)
        if shifts_px is not None:
            s = shifts_px[t0:t1]
        elif register:
            s = _chunk_shifts(chunk, ref_region, region, upsample_factor, drift_every, clip)
        else:
            s = np.zeros((t1 - t0, 2))
        vals = sample(chunk, t0, t1, s)  # float64: reduceat is slow on casts
        ref = i0 if not differential else None
        if differential:
            dI = vals
        elif rolling_frames is not None:
            ref = before_frames(vals, t0, t1)
            with np.errstate(invalid="ignore", divide="ignore"):
                dI = vals / ref - 1.0
        else:
            dI = vals / i0 - 1.0  # division, as I/I0 - 1 is written (no rounding surprises at the threshold)
        valid = np.isfinite(dI)
        all_valid = bool(valid.all())
        n = t1 - t0
        out = {
            "n_valid": (np.broadcast_to(px.area_px.astype(np.float64), (n, px.ids.size))
                        if all_valid else px.reduce(valid.astype(np.float64))),
            "n_valid_inner": (np.broadcast_to(px.inner_px, (n, px.ids.size)) if all_valid
                              else px.reduce(valid * px.inner)),
            "sum_dI": px.reduce(dI if all_valid else np.where(valid, dI, 0.0)),
            "shifts": s,
            "blank": blank,
        }
        if exposure is not None:
            exposure[blank] = np.nan  # no image: not a neighbour to compare with
            out["exposure"] = exposure
            out["fingerprint"] = fingerprint
        from ._kernels import unreacted_sums, use_compiled

        fused = use_compiled() and dI.dtype == np.float64 and dI.flags.c_contiguous \
            and px.flat.size > 0
        if fused:  # the unreacted pixels' counts and row/col sums in one pass (exact)
            u = unreacted_sums(dI, discharge, threshold, noise_pix if noise is not None
                               else None, None if px.all_inner else px.inner, rows_f,
                               cols_f, px.starts)
            for j, side in enumerate(("", "_lo", "_hi")[:u.shape[0] // 3]):
                out.update({f"n_unr{side}": u[3 * j], f"sum_unr_row{side}": u[3 * j + 1],
                            f"sum_unr_col{side}": u[3 * j + 2]})
        else:
            # NaN compares False: never unreacted; on discharge the unchanged region is
            # -dI < threshold
            unr = ((-dI if discharge else dI) < threshold).astype(np.float64)
            if not px.all_inner:
                unr *= px.inner
            # float64 0/1 arrays: reduceat is ~7x faster on them than on bool with a dtype
            out.update(n_unr=px.reduce(unr), sum_unr_row=px.reduce(unr * rows_f),
                       sum_unr_col=px.reduce(unr * cols_f))
        for side, sign in (("lo", -1.0), ("hi", 1.0)) if noise is not None and not fused \
                else ():
            thr_s = threshold + sign * noise_pix
            u = ((-dI if discharge else dI) < thr_s).astype(np.float64)
            if not px.all_inner:
                u *= px.inner
            out[f"n_unr_{side}"] = px.reduce(u)
            out[f"sum_unr_row_{side}"] = px.reduce(u * rows_f)
            out[f"sum_unr_col_{side}"] = px.reduce(u * cols_f)
        if qc is not None and qc.clip is not None:  # where clipped pixels could put the core
            unk = (np.isnan(vals) * px.inner) if not all_valid else np.zeros(dI.shape)
            if (i0 is not None and not discharge and threshold > 0 and unk.any()
                    and not marker_clip):
                f_t = illumination(chunk, t0, t1, s)  # clipped but I0 x (1 + threshold) below
                raw_i0 = i0 if f_t is None else i0 * f_t[:, None]  # the clip: reacted
                unk = unk * (raw_i0 * (1 + threshold) > qc.clip)
            out.update(n_unk=px.reduce(unk), sum_unk_row=px.reduce(unk * rows_f),
                       sum_unk_col=px.reduce(unk * cols_f))
        if qc is not None:
            out.update(qc.chunk(chunk, s, vals, -dI if discharge else dI,  # reaction's sign
                                illumination(chunk, t0, t1, s)))
        if not differential:
            out["sum_I"] = px.reduce(vals if all_valid else np.where(valid, vals, 0.0))
            out["sum_I0"] = (np.broadcast_to(sum_i0, (n, px.ids.size))
                             if all_valid and rolling_frames is None
                             else px.reduce(np.where(valid, ref, 0.0), np.float64))
        return out

    chunks = frame_chunks(stack, chunk_frames)
    if n_threads is None:
        n_threads = min(4, os.cpu_count() or 1)
    from tqdm.auto import tqdm

    results = []
    with tqdm(total=n_frames, unit="frame", disable=not progress, desc="measuring") as bar:
        if n_threads <= 1 or len(chunks) == 1:
            for b in chunks:
                results.append(work(b))
                bar.update(b[1] - b[0])
        else:
            # one BLAS thread per worker: the registration's small matrix products
            # would otherwise oversubscribe the cores (2 workers ran slower than 1)
            from threadpoolctl import threadpool_limits

            with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(n_threads) as ex:
                for b, r in zip(chunks, ex.map(work, chunks), strict=True):
                    results.append(r)
                    bar.update(b[1] - b[0])

    n_lab = px.ids.size
    cat = {k: np.concatenate([r[k] for r in results]) for k in results[0]} if results else {}
    shifts = cat.pop("shifts")
    blank = np.flatnonzero(cat.pop("blank")) if results else np.zeros(0, int)
    outlier = duplicate = None
    if "exposure" in cat:  # frames unlike their neighbours: their numbers are NaN
        from ._artefacts import duplicated_frames, exposure_outliers

        outlier = exposure_outliers(cat.pop("exposure"))
        outlier[blank] = False
        duplicate = duplicated_frames(cat.pop("fingerprint"))
        duplicate[blank] = False
        if "q_above" in cat and outlier.any():  # nor count as 'clearly reacted' earlier
            cat["q_above"][outlier] = 0
    if n_lab == 0:
        df = pd.DataFrame({c: [] for c in TIMESERIES_COLUMNS})
        return df

    with np.errstate(invalid="ignore", divide="ignore"):
        n_valid = np.rint(cat["n_valid"]).astype(np.int64)
        n_valid_inner = np.rint(cat["n_valid_inner"]).astype(np.int64)
        n_unr = np.rint(cat["n_unr"]).astype(np.int64)
        frac = np.where(n_valid_inner > 0, n_unr / np.maximum(n_valid_inner, 1), np.nan)
        mean_dI = np.where(n_valid > 0, cat["sum_dI"] / np.maximum(n_valid, 1), np.nan)
        if differential:
            norm_int = np.full(mean_dI.shape, np.nan)
        else:
            norm_int = np.where(n_valid > 0, cat["sum_I"] / cat["sum_I0"], np.nan)
        li_row = np.where(n_unr > 0, cat["sum_unr_row"] / np.maximum(n_unr, 1), np.nan)
        li_col = np.where(n_unr > 0, cat["sum_unr_col"] / np.maximum(n_unr, 1), np.nan)
        drow = li_row - px.com_row
        dcol = li_col - px.com_col
        offset_px = np.hypot(drow, dcol)
        r_eq_px = np.sqrt(px.area_px / np.pi)
        angle = np.degrees(np.arctan2(0.0 - drow, dcol))  # 0 - 0.0 = +0: left is 180, not -180
        angle = np.where(offset_px > 1e-9, angle, np.nan)
        # d at the threshold -/+ the pixel noise: its range from the threshold's uncertainty
        d_band = [offset_px]
        for side in ("lo", "hi") if noise is not None else ():
            n_s = np.rint(cat.pop(f"n_unr_{side}"))
            r_s = cat.pop(f"sum_unr_row_{side}") / np.maximum(n_s, 1)
            c_s = cat.pop(f"sum_unr_col_{side}") / np.maximum(n_s, 1)
            d_band.append(np.where(n_s >= min_core_px,
                                   np.hypot(r_s - px.com_row, c_s - px.com_col), np.nan))
        d_low = np.fmin.reduce(d_band)
        d_high = np.fmax.reduce(d_band)
    small = (n_unr > 0) & (n_unr < min_core_px)  # an unresolved core: its centre is noise
    unknown = np.zeros(n_unr.shape, bool)
    if "n_unk" in cat:  # clipped pixels are unknown: d NaN where they could move the core
        from ._quality import saturation_ambiguous

        unknown = saturation_ambiguous(n_unr, cat["sum_unr_row"], cat["sum_unr_col"],
                                       cat.pop("n_unk"), cat.pop("sum_unk_row"),
                                       cat.pop("sum_unk_col"), px.com_row, px.com_col)
        offset_px = np.where(unknown, np.nan, offset_px)
        angle = np.where(unknown, np.nan, angle)
    d_low = np.where(np.isfinite(offset_px) & ~small, d_low, np.nan)
    d_high = np.where(np.isfinite(offset_px) & ~small, d_high, np.nan)
    if small.any():
        offset_px = np.where(small, np.nan, offset_px)
        angle = np.where(small, np.nan, angle)
    if outlier is not None and outlier.any():
        for a in (mean_dI, norm_int, frac, li_row, li_col, offset_px, angle, d_low, d_high):
            a[outlier] = np.nan
        n_unr = np.where(outlier[:, None], 0, n_unr)
    reason = np.where(n_valid == 0, "no valid pixels",
                      np.where(n_unr == 0, "no unreacted pixels",
                               np.where(small, "core too small",
                                        np.where(unknown, "clipped pixels", ""))))
    if outlier is not None and outlier.any():
        reason = np.where(outlier[:, None], "exposure outlier", reason)
    flags = None
    if qc is not None:
        from ._quality import join_flags

        q = {k: cat.pop(k) for k in list(cat) if k.startswith("q_")}
        raised = qc.finish(q, n_unr=n_unr, shifts=shifts,
                           n_reference_frames=n_reference_frames, rolling=rolling_frames)
        if not differential:
            from ._artefacts import outside_frame

            raised["outside_frame"] = outside_frame(px.rows, px.cols, px.starts, shifts,
                                                    labels.shape)
        if outlier is not None:  # on such a frame only what makes its numbers NaN
            for k in raised:
                raised[k] = np.where(outlier[:, None], False, raised[k])
            raised["exposure_outlier"] = np.broadcast_to(outlier[:, None], n_unr.shape)
            raised["duplicated_frame"] = np.broadcast_to(duplicate[:, None], n_unr.shape)
        if edge_sigma is not None:
            from ._artefacts import PSF_WIDE_FACTOR

            wide = edge_sigma > PSF_WIDE_FACTOR * max(edge_px, 1)  # NaN: False
            raised["psf_wide"] = np.broadcast_to(wide[None, :], n_unr.shape)
        flags = join_flags(raised)
    elif small.any():
        flags = np.where(small, "core_too_small", "")

    # tidy: particle-major (all frames of particle 1, then particle 2, ...)
    def col(a):
        return np.asarray(a).T.reshape(-1)

    frames = np.arange(n_frames)
    df = pd.DataFrame({
        "particle_id": np.repeat(px.ids, n_frames),
        "frame": np.tile(frames, n_lab),
        "time_s": np.tile(time_s, n_lab),
        "capacity_mAh_g": np.tile(capacity_mAh_g, n_lab),
        "mean_dI": col(mean_dI),
        "norm_intensity": col(norm_int),
        "unreacted_fraction": col(frac),
        "unreacted_area_um2": col(n_unr * (pixel_nm * 1e-3) ** 2),
        "offset_nm": col(offset_px * pixel_nm),
        "offset_norm": col(offset_px / r_eq_px),
        "offset_angle_deg": col(angle),
        "offset_reason": col(reason),
        "area_um2": np.repeat(px.area_px * (pixel_nm * 1e-3) ** 2, n_frames),
        "com_row": np.repeat(px.com_row, n_frames),
        "com_col": np.repeat(px.com_col, n_frames),
        "li_rich_row": col(li_row),
        "li_rich_col": col(li_col),
        "drift_row_px": np.tile(shifts[:, 0], n_lab),
        "drift_col_px": np.tile(shifts[:, 1], n_lab),
        "quality_flags": col(flags) if flags is not None else "",
        "d_nm_low": col(d_low * pixel_nm),
        "d_nm_high": col(d_high * pixel_nm),
        "offset_norm_low": col(d_low / r_eq_px),
        "offset_norm_high": col(d_high / r_eq_px),
        "noise_dI": np.repeat(noise if noise is not None else np.zeros(n_lab), n_frames),
    })
    if sat_warn:
        df.attrs.setdefault("warnings", []).append(sat_warn)
    if spike_warn:
        df.attrs.setdefault("warnings", []).append(spike_warn)
    if edge_sigma is not None:
        from ._artefacts import PSF_WIDE_FACTOR

        wide = np.flatnonzero(edge_sigma > PSF_WIDE_FACTOR * max(edge_px, 1))
        if wide.size:
            shown = ", ".join(f"{int(px.ids[i])} ({edge_sigma[i]:.1f} px)" for i in wide[:10])
            df.attrs.setdefault("warnings", []).append(
                f"the outlines of {wide.size} particle(s) are blurred wider than "
                f"{PSF_WIDE_FACTOR:g} x edge_px = {PSF_WIDE_FACTOR * max(edge_px, 1):g} px "
                f"(sigma): {shown}{', ...' if wide.size > 10 else ''}; their d is biased by "
                "the blur (flag psf_wide): refocus, or read d as an estimate")
    for frames_hit, what in ((outlier, "are exposure outliers (their level differs from their "
                              "neighbours' by more than a factor 2, or they are dark: a "
                              "shutter-closed or over-exposed frame): their measurements are "
                              "NaN (flag exposure_outlier)"),
                             (duplicate, "are identical to the frame before them (a duplicated "
                              "frame: its time is not when it was taken; flag "
                              "duplicated_frame)")):
        if frames_hit is not None and frames_hit.any():
            k = np.flatnonzero(frames_hit)
            shown = ", ".join(map(str, k[:10])) + (", ..." if k.size > 10 else "")
            df.attrs.setdefault("warnings", []).append(
                f"{k.size} of {n_frames} frames {what}: frame(s) {shown}")
    if blank.size:
        shown = ", ".join(map(str, blank[:10])) + (", ..." if blank.size > 10 else "")
        df.attrs.setdefault("warnings", []).extend([
            f"{blank.size} of {n_frames} frames hold no image (every pixel NaN or one value: "
            f"a blank exposure, or zarr chunks never written): frame(s) {shown}; their "
            "measurements are NaN"])
    return df
