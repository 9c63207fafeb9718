"""One particle at a time: its crop, its registered differential movie, its line-cut."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["crop_box", "horizontal_line", "particle_crop", "ParticleCrop"]


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
        columns of :func:`particle_timeseries` / :func:`analyze_dataset`.
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
    from ._registration import apply_drift

    n_frames = int(stack.shape[0])
    normalize = _check_normalize(normalize, n_frames)
    rolling_frames = _check_rolling(rolling_frames, n_frames)
    labels = np.asarray(labels)
    mask = labels == int(particle_id)
    if not mask.any():
        raise ValueError(f"particle {particle_id} is not in the labels")
    box = crop_box(mask, pad_px=pad_px)
    crop = np.asarray(stack[(slice(None), *box)])
    crop = crop.astype(np.float32 if crop.dtype == np.float32 else np.float64, copy=False)
    if shifts_px is not None:
        shifts_px = np.asarray(shifts_px, dtype=float)
        if shifts_px.shape != (crop.shape[0], 2):
            raise ValueError(f"shifts_px must have shape ({crop.shape[0]}, 2), got {shifts_px.shape}")
        if np.any(shifts_px):
            crop = apply_drift(crop, shifts_px)
    if isinstance(normalize, str):  # "frame_mean": measured on the whole frames
        if background_mask is None:
            background_mask = particle_free_pixels(labels)
        normalize = frame_intensity(stack, background_mask=background_mask)
    dI = np.asarray(differential_intensity(crop, n_reference_frames=n_reference_frames,
                                           normalize=normalize, rolling_frames=rolling_frames))
    return ParticleCrop(stack=crop, dI=dI, mask=mask[box], box=box)
