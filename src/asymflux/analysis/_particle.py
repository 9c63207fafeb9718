"""One particle at a time: the pipeline of :func:`analyze_dataset` for one particle
(:func:`analyze_particle`), its registered crop and differential movie, its line-cut."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from ..paper import UNREACTED_THRESHOLD

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["crop_box", "horizontal_line", "particle_crop", "ParticleCrop", "analyze_particle",
           "ParticleAnalysis"]


def crop_box(mask, *, pad_px: int = 8) -> tuple[slice, slice]:
    """(row, col) slices of a mask's bounding box grown by ``pad_px``, clipped to the image.

    Parameters
    ----------
    mask : (n_row, n_col) bool array
        The particle's pixels.
    pad_px : int
        Margin around the bounding box, pixels.
    """
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        raise ValueError("the particle mask is empty")
    mask = np.asarray(mask)
    return (slice(int(max(rows.min() - pad_px, 0)), int(min(rows.max() + pad_px + 1, mask.shape[0]))),
            slice(int(max(cols.min() - pad_px, 0)), int(min(cols.max() + pad_px + 1, mask.shape[1]))))


def horizontal_line(mask) -> tuple[tuple[float, float], tuple[float, float]]:
    """End points ((row, col), (row, col)) of the horizontal line-cut through a mask's
    centre of mass, from its left edge to its right edge (as in Fig. 5c), for
    :func:`line_kymograph`."""
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        raise ValueError("the particle mask is empty")
    r = float(rows.mean())
    in_row = cols[rows == int(round(r))]
    if in_row.size == 0:
        in_row = cols
    return (r, float(in_row.min()) - 0.5), (r, float(in_row.max()) + 0.5)


class ParticleCrop(NamedTuple):
    """One particle's registered crop (:func:`particle_crop`)."""

    stack: np.ndarray
    """(n_frames, row, col) float: raw intensity, registered."""
    dI: np.ndarray
    """(n_frames, row, col) float: dI = I/I0 - 1 of ``stack`` (or I_t/I_(t-n) - 1, after
    normalising the illumination: see :func:`particle_crop`)."""
    mask: np.ndarray
    """(row, col) bool: the particle's pixels in the crop."""
    box: tuple
    """(row slice, col slice) of the crop in the full frame."""


def particle_crop(stack, labels, particle_id: int, *, shifts_px=None, pad_px: int = 6,
                   n_reference_frames: int = 1, normalize=None, background_mask=None,
                   rolling_frames=None) -> ParticleCrop:
    """Crop one particle out of a movie, register it and take its differential intensity.

    Parameters
    ----------
    stack : (n_frames, n_row, n_col) array-like
        Raw intensities (NumPy, dask, zarr); only the crop is read.
    labels : (n_row, n_col) int array
        Particle labels.
    particle_id : int
        The particle.
    shifts_px : (n_frames, 2) array, optional
        Drift (row, col) in pixels to undo, e.g. the ``drift_row_px, drift_col_px``
        columns of :func:`particle_timeseries` / :func:`analyze_dataset`. The crop is
        read with a margin of the largest shift, so it equals the registered full frame
        (:func:`correct_drift`) cropped.
    pad_px : int
        Margin around the particle, pixels.
    n_reference_frames : int
        Frames averaged into I0.
    normalize : None, "frame_mean" or (n_frames,) array
        Divide each frame by its illumination before the differential (see
        :func:`differential_intensity`). ``"frame_mean"`` is :func:`frame_intensity` of the
        whole frames over ``background_mask`` (so the whole stack is read once).
    background_mask : (n_row, n_col) bool array, optional
        Particle-free pixels; default :func:`particle_free_pixels` of ``labels``.
    rolling_frames : int, optional
        Rolling differential ``I_t / I_(t−n) − 1`` (first n frames NaN).

    Returns
    -------
    ParticleCrop
        ``(stack, dI, mask, box)``.
    """
    from ._differential import (
        _check_normalize,
        _check_rolling,
        differential_intensity,
        frame_intensity,
        particle_free_pixels,
    )
    from ._registration import correct_drift

    n_frames = int(stack.shape[0])
    normalize = _check_normalize(normalize, n_frames)
    rolling_frames = _check_rolling(rolling_frames, n_frames)
    labels = np.asarray(labels)
    mask = labels == int(particle_id)
    if not mask.any():
        raise ValueError(f"particle {particle_id} is not in the labels")
    box = crop_box(mask, pad_px=pad_px)
    if shifts_px is not None:
        shifts_px = np.asarray(shifts_px, dtype=float)
        if shifts_px.shape != (n_frames, 2):
            raise ValueError(f"shifts_px must have shape ({n_frames}, 2), got {shifts_px.shape}")
        if not np.all(np.isfinite(shifts_px)):
            raise ValueError("shifts_px must be finite")
        if not np.any(shifts_px):
            shifts_px = None
    if shifts_px is None:
        crop = np.asarray(stack[(slice(None), *box)])
        crop = crop.astype(np.float32 if crop.dtype == np.float32 else np.float64, copy=False)
    else:
        # read a margin of the largest shift (+1 for the interpolation) around the box, so
        # that the crop is the registered full frame cropped (not the crop's edge repeated)
        margin = int(np.ceil(np.abs(shifts_px).max())) + 1
        wide = crop_box(mask, pad_px=pad_px + margin)
        crop = np.asarray(stack[(slice(None), *wide)])
        crop = crop.astype(np.float32 if crop.dtype == np.float32 else np.float64, copy=False)
        crop = correct_drift(crop, shifts_px)
        inner = tuple(slice(b.start - w.start, b.stop - w.start) for b, w in zip(box, wide, strict=True))
        crop = np.ascontiguousarray(crop[(slice(None), *inner)])
    if isinstance(normalize, str):  # "frame_mean": measured on the whole frames
        if background_mask is None:
            background_mask = particle_free_pixels(labels)
        normalize = frame_intensity(stack, background_mask=background_mask)
    dI = np.asarray(differential_intensity(crop, n_reference_frames=n_reference_frames,
                                           normalize=normalize, rolling_frames=rolling_frames))
    return ParticleCrop(stack=crop, dI=dI, mask=mask[box], box=box)


class ParticleAnalysis(NamedTuple):
    """One particle through the whole pipeline (:func:`analyze_particle`)."""

    particle_id: int
    timeseries: pd.DataFrame
    """The particle's rows of :func:`particle_timeseries`, the same numbers
    as :func:`analyze_dataset` gives it with the same options (``drift_*`` columns: the
    drift removed)."""
    crop: ParticleCrop | None
    """Its registered crop and dI (:func:`particle_crop`, with the drift of the table);
    None with ``crop=False``."""
    shifts_px: np.ndarray | None
    """(n_frames, 2) drift (row, col) removed, pixels; None when not registered."""
    pixel_nm: float
    time_s: np.ndarray
    """(n_frames,) frame times, s (NaN if unknown)."""
    capacity_mAh_g: np.ndarray
    """(n_frames,) capacity of each frame, mAh/g (NaN if unknown)."""
    options: dict
    """The options the particle was analysed with (``register``, ``n_reference_frames``,
    ``normalize``, ``rolling_frames``, ...)."""


def analyze_particle(stack, labels, particle_id: int, *, pixel_nm, time_s=None,
                     capacity_mAh_g=None, threshold=UNREACTED_THRESHOLD, edge_px=2, register=True,
                     shifts_px=None, n_reference_frames=1, normalize=None, background_mask=None,
                     rolling_frames=None, drift_every=1, pad_px: int = 6, crop: bool = True,
                     chunk_frames=None, n_threads=None, progress=False,
                     saturation_level="auto", min_core_px=None) -> ParticleAnalysis:
    """One particle through the pipeline of :func:`analyze_dataset`: register, normalise,
    dI, measure, and its registered crop.

    The numbers are those :func:`analyze_dataset` (``asymflux analyze``) gives the particle
    with the same options: the drift is estimated on the same region (around *all*
    particles of ``labels``, :func:`default_registration_region`), the illumination on the
    same particle-free pixels, and the particle measured by :func:`particle_timeseries`.
    The crop (:func:`particle_crop`) is registered with the drift of that table; it is
    what :func:`asymflux.fit.fit_analysis` fits and what the napari widget and the
    dashboards show. Steps, each a public function: :func:`default_registration_region` /
    :func:`estimate_drift` (in the same pass as the measurement), :func:`particle_free_pixels`
    / :func:`frame_intensity`, :func:`differential_intensity`, :func:`particle_timeseries`,
    :func:`particle_crop`.

    Parameters
    ----------
    stack : (n_frames, n_row, n_col) array-like
        Raw intensities (NumPy, dask, zarr).
    labels : (n_row, n_col) int array
        Labels of all particles of the field (the registration region and the background
        are taken around all of them).
    particle_id : int
        The particle.
    pixel_nm : float
        Pixel size, nm.
    time_s, capacity_mAh_g : (n_frames,) arrays, optional
        Frame times (s) and capacities (mAh/g).
    threshold, edge_px
        Unreacted region (see :func:`particle_timeseries`).
    register : bool
        Estimate the drift (on the fly, as :func:`analyze_dataset` does) and remove it.
    shifts_px : (n_frames, 2) array, optional
        Known drift (e.g. the ``drift_row_px, drift_col_px`` columns of
        :func:`analyze_dataset`): used instead of estimating it.
    n_reference_frames, normalize, background_mask, rolling_frames
        How dI is taken (see :func:`particle_timeseries`, :func:`dataset_normalization`);
        ``background_mask`` defaults to :func:`particle_free_pixels` of ``labels``.
    drift_every, chunk_frames, n_threads, progress
        See :func:`particle_timeseries`.
    saturation_level, min_core_px
        See :func:`particle_timeseries` (the clip level, default found in the movie; the
        smallest core whose d is reported).
    pad_px : int
        Margin of the crop around the particle, pixels.
    crop : bool
        Also make the crop (False: the table only, one pass over the stack less with
        ``normalize="frame_mean"``).

    Returns
    -------
    ParticleAnalysis
    """
    from ._differential import _check_normalize, particle_free_pixels
    from ._measure import check_labels, particle_timeseries
    from ._registration import default_registration_region

    if getattr(stack, "ndim", 0) != 3:
        raise ValueError(f"stack must be 3-D (time, row, col), got shape "
                         f"{tuple(getattr(stack, 'shape', ()))}")
    n_frames = int(stack.shape[0])
    labels = check_labels(labels, stack.shape[1:])
    pid = int(particle_id)
    one = labels == pid
    if pid <= 0 or not one.any():
        ids = np.unique(labels[labels > 0]).tolist()
        raise ValueError(f"particle {particle_id} is not in the labels; particles are {ids}")
    normalize = _check_normalize(normalize, n_frames)
    if isinstance(normalize, str) and background_mask is None:
        background_mask = particle_free_pixels(labels)
    register = bool(register) and shifts_px is None
    options = {"threshold": threshold, "edge_px": edge_px, "register": register,
               "n_reference_frames": n_reference_frames, "normalize": normalize,
               "rolling_frames": rolling_frames, "drift_every": drift_every,
               "saturation_level": saturation_level, "min_core_px": min_core_px}
    table = particle_timeseries(
        stack, np.where(one, labels, 0), pixel_nm=pixel_nm, time_s=time_s,
        capacity_mAh_g=capacity_mAh_g, threshold=threshold, edge_px=edge_px,
        n_reference_frames=n_reference_frames, normalize=normalize,
        background_mask=background_mask, rolling_frames=rolling_frames, shifts_px=shifts_px,
        register=register, registration_region=default_registration_region(labels) if register
        else None, drift_every=drift_every, chunk_frames=chunk_frames, n_threads=n_threads,
        progress=progress, context_labels=labels, saturation_level=saturation_level,
        min_core_px=min_core_px)
    shifts = None
    if register or shifts_px is not None:
        shifts = table[["drift_row_px", "drift_col_px"]].to_numpy(dtype=float)
    movie = None
    if crop:
        movie = particle_crop(stack, labels, pid, shifts_px=shifts, pad_px=pad_px,
                              n_reference_frames=n_reference_frames, normalize=normalize,
                              background_mask=background_mask, rolling_frames=rolling_frames)
    return ParticleAnalysis(
        particle_id=pid, timeseries=table, crop=movie, shifts_px=shifts, pixel_nm=float(pixel_nm),
        time_s=table["time_s"].to_numpy(dtype=float),
        capacity_mAh_g=table["capacity_mAh_g"].to_numpy(dtype=float), options=options)
