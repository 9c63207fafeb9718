"""Differential intensity dI = I / I0 − 1 relative to a reference image."""

from __future__ import annotations

import warnings

import numpy as np

from ._chunks import as_float, is_dask, read_chunk

__all__ = ["reference_image", "differential_intensity", "NonPositiveReferenceWarning"]


class NonPositiveReferenceWarning(UserWarning):
    """Some reference pixels are <= 0 (or not finite); their dI is NaN."""


def reference_image(stack, *, n_reference_frames=1):
    """Mean of the first ``n_reference_frames`` frames.

    Parameters
    ----------
    stack : (n_frames, n_row, n_col) array-like
        Any real dtype; NumPy, dask or zarr.
    n_reference_frames : int
        How many leading frames to average (>= 1).

    Returns
    -------
    i0 : (n_row, n_col) float64 array
    """
    n = int(n_reference_frames)
    if n < 1 or n > stack.shape[0]:
        raise ValueError(
            f"n_reference_frames must be in [1, {stack.shape[0]}] (the number of frames), got {n}"
        )
    return np.mean(as_float(read_chunk(stack, 0, n)), axis=0, dtype=np.float64)


def _masked_reference(i0, *, stacklevel=3):
    i0 = np.array(i0, dtype=np.float64)
    bad = ~(i0 > 0)  # also catches NaN
    if np.any(bad):
        warnings.warn(
            f"{int(bad.sum())} reference pixel(s) have I0 <= 0 (or are not finite); their "
            "differential intensity is masked (NaN)",
            NonPositiveReferenceWarning,
            stacklevel=stacklevel,
        )
        i0[bad] = np.nan
    return i0


def differential_intensity(stack, *, reference=None, n_reference_frames=1):
    """Per-pixel differential intensity ``dI = I / I0 − 1``.

    Parameters
    ----------
    stack : (n_frames, n_row, n_col) array
        Intensities, any real dtype; NumPy or dask (the result is then lazy).
    reference : (n_row, n_col) array, optional
        I0. Default: the mean of the first ``n_reference_frames`` frames.
    n_reference_frames : int
        Frames averaged for the default reference.

    Returns
    -------
    dI : (n_frames, n_row, n_col) float array
        Dimensionless; float32 for float32 input, float64 otherwise. Pixels with
        I0 <= 0 are NaN (with a :class:`NonPositiveReferenceWarning`).
    """
    if stack.ndim != 3:
        raise ValueError(f"stack must be 3-D (time, row, col), got shape {tuple(stack.shape)}")
    if reference is None:
        reference = reference_image(stack, n_reference_frames=n_reference_frames)
    reference = np.asarray(reference)
    if reference.shape != tuple(stack.shape[1:]):
        raise ValueError(
            f"reference shape {reference.shape} does not match the frames {tuple(stack.shape[1:])}"
        )
    i0 = _masked_reference(reference)
    dtype = np.float32 if stack.dtype == np.float32 else np.float64
    inv = (1.0 / i0).astype(dtype)
    if is_dask(stack):
        return stack.astype(dtype) * inv - 1
    return as_float(stack).astype(dtype, copy=False) * inv - 1
