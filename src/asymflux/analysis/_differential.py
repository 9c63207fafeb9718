"""Differential intensity dI = I / I0 − 1 relative to a reference image (or to frame t − n),
optionally after normalising each frame by its illumination."""

from __future__ import annotations

import numbers
import warnings

import numpy as np

from ._chunks import as_float, frame_chunks, is_dask, read_chunk

__all__ = [
    "reference_image", "differential_intensity", "NonPositiveReferenceWarning",
    "frame_intensity", "particle_free_pixels", "DEFAULT_BACKGROUND_MARGIN_PX",
    "registered_differential",
]

DEFAULT_BACKGROUND_MARGIN_PX = 6
"""Pixels this close to a particle are not background for :func:`particle_free_pixels`:
the PSF's halo (about 3 σ = 3 × 140 nm at NA 0.9, 600 nm, i.e. ~6 pixels of 65 nm) carries
the particle's own, charge-dependent, intensity."""

NORMALIZE_CHOICES = ("frame_mean",)


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
    n = _check_n_reference(n_reference_frames, stack.shape[0])
    return np.mean(as_float(read_chunk(stack, 0, n)), axis=0, dtype=np.float64)


def _check_n_reference(n_reference_frames, n_frames):
    n = int(n_reference_frames)
    if n < 1 or n > n_frames:
        raise ValueError(
            f"n_reference_frames must be in [1, {n_frames}] (the number of frames), got {n}"
        )
    return n


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


# ----------------------------------------------------------------------------- illumination


#: :func:`particle_free_pixels`' last answer: (occupied pixels, margin, free pixels).
_FREE_PIXELS_LAST: tuple = ()


def particle_free_pixels(labels, *, margin_px=DEFAULT_BACKGROUND_MARGIN_PX):
    """Background pixels: farther than ``margin_px`` from every labelled particle.

    Parameters
    ----------
    labels : (n_row, n_col) int or bool array
        Particle labels, 0 = background.
    margin_px : int
        Pixels within this distance of a particle are left out (its PSF halo changes
        with its charge); default :data:`DEFAULT_BACKGROUND_MARGIN_PX`.

    Returns
    -------
    (n_row, n_col) bool array
        True where the pixel is particle-free.

    Raises
    ------
    ValueError
        No pixel is left (particles, with their margin, fill the frame).
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be a 2-D (row, col) image, got shape {labels.shape}")
    margin = int(margin_px)
    if margin < 0:
        raise ValueError(f"margin_px must be >= 0, got {margin_px}")
    occupied = labels != 0
    global _FREE_PIXELS_LAST
    last = _FREE_PIXELS_LAST
    if last and last[1] == margin and np.array_equal(last[0], occupied):
        return last[2].copy()  # the setup asks 4 times for the same labels (~0.15 s each)
    key = occupied
    if margin > 0 and occupied.any():
        from scipy import ndimage as ndi
        from skimage.morphology import disk

        occupied = ndi.binary_dilation(occupied, structure=disk(margin).astype(bool))
    free = ~occupied
    if free.any():
        _FREE_PIXELS_LAST = (key, margin, free.copy())
    if not free.any():
        raise ValueError(
            f"no particle-free pixel farther than {margin} px from the particles to measure "
            "the illumination on; give a smaller margin, a background mask or the frame "
            "intensities"
        )
    return free


def _check_background_mask(background_mask, frame_shape):
    if background_mask is None:
        return None
    mask = np.asarray(background_mask)
    if mask.shape != tuple(frame_shape):
        raise ValueError(f"background_mask shape {mask.shape} does not match the frames "
                         f"{tuple(frame_shape)} (row, col)")
    if mask.dtype != bool:
        raise ValueError(f"background_mask must be a bool (row, col) image, got dtype {mask.dtype}")
    if not mask.any():
        raise ValueError("background_mask selects no pixel")
    return mask


def _frame_means(chunk, background_flat=None):
    """(n,) float64 mean intensity of each frame of a (n, n_row, n_col) NumPy chunk, over the
    flat pixel indices ``background_flat`` (None: every pixel), of its finite pixels (NaN
    when none); O(pixels) per frame."""
    flat = chunk.reshape(chunk.shape[0], -1)
    if background_flat is not None:
        flat = np.take(flat, background_flat, axis=1)
    out = flat.mean(axis=1, dtype=np.float64)
    bad = ~np.isfinite(out)
    if bad.any():  # NaN / infinite pixels (dead pixels) are unknown: the mean of the others
        part = flat[bad].astype(np.float64)
        ok = np.isfinite(part)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[bad] = np.where(ok, part, 0.0).sum(axis=1) / ok.sum(axis=1)
    return out


def _check_frame_intensity(values, n_frames, *, name="frame intensity"):
    """Frame intensities as a (n_frames,) float64 array, all finite and > 0."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if values.shape != (n_frames,):
        raise ValueError(f"{name} must have one value per frame ({n_frames}), got {values.size}")
    bad = np.flatnonzero(~(np.isfinite(values) & (values > 0)))
    if bad.size:
        raise ValueError(f"{name} must be finite and > 0 in every frame; frame {int(bad[0])} has "
                         f"{values[bad[0]]!r}")
    return values


def frame_intensity(stack, *, background_mask=None, chunk_frames=None):
    """Illumination of each frame: its mean intensity over particle-free pixels.

    Dividing each frame by it removes lamp flicker and slow illumination drift, which
    multiply the whole frame, before the differential intensity is taken.

    Parameters
    ----------
    stack : (n_frames, n_row, n_col) array-like
        Raw intensities, any real dtype; NumPy, zarr (read ``chunk_frames`` frames at a
        time) or dask (the result is then lazy).
    background_mask : (n_row, n_col) bool array, optional
        The pixels to average, e.g. :func:`particle_free_pixels` of the particle labels.
        Default: the whole frame.
    chunk_frames : int, optional
        Frames read at once (default: aligned with the stack's chunks, ~64 MB).

    Returns
    -------
    (n_frames,) float64 array
        Mean intensity per frame, in the stack's units. A dask array for dask input.

    Notes
    -----
    The normalisation assumes intensities proportional to the light: subtract any
    camera offset (dark counts) first, or the offset's share of each frame is
    'normalised' too.
    """
    if stack.ndim != 3:
        raise ValueError(f"stack must be 3-D (time, row, col), got shape {tuple(stack.shape)}")
    mask = _check_background_mask(background_mask, stack.shape[1:])
    if is_dask(stack):
        frames = stack.astype(np.float64)
        if mask is None:
            return frames.mean(axis=(1, 2))
        weights = mask / float(mask.sum())
        return (frames * weights).sum(axis=(1, 2))
    flat = None if mask is None else np.flatnonzero(mask)
    out = np.empty(int(stack.shape[0]), dtype=np.float64)
    for t0, t1 in frame_chunks(stack, chunk_frames):
        out[t0:t1] = _frame_means(as_float(read_chunk(stack, t0, t1)), flat)
    return out


def _first_values(illumination, n):
    """The first ``n`` frame intensities as NumPy float64 (computing only those of a dask array)."""
    head = illumination[:n]
    if is_dask(head):
        head = head.compute(scheduler="synchronous")
    head = _check_frame_intensity(head, n, name="frame intensity")
    return head


def _check_normalize(normalize, n_frames):
    """None, ``"frame_mean"`` or a checked (n_frames,) float64 array."""
    if normalize is None:
        return None
    if isinstance(normalize, str):
        if normalize not in NORMALIZE_CHOICES:
            raise ValueError(f"normalize must be None, 'frame_mean' or one intensity per frame, "
                             f"got {normalize!r}")
        return normalize
    if isinstance(normalize, bool | np.bool_):
        raise ValueError(f"normalize must be None, 'frame_mean' or one intensity per frame, "
                         f"got {normalize!r}")
    return _check_frame_intensity(normalize, n_frames, name="normalize (frame intensities)")


def _check_rolling(rolling_frames, n_frames):
    """None, or the lag n of a rolling differential as an int in [1, n_frames - 1]."""
    if rolling_frames is None:
        return None
    ok = isinstance(rolling_frames, numbers.Integral) and not isinstance(rolling_frames, bool)
    if ok:
        n = int(rolling_frames)
        ok = 1 <= n < n_frames
    if not ok:
        raise ValueError(
            f"rolling_frames must be a whole number of frames in [1, {n_frames - 1}] (fewer than "
            f"the {n_frames} frames; None for dI relative to the reference), got {rolling_frames!r}"
        )
    return n


# ----------------------------------------------------------------------------- differential


def differential_intensity(stack, *, reference=None, n_reference_frames=1, normalize=None,
                           background_mask=None, rolling_frames=None):
    """Per-pixel differential intensity ``dI = I / I0 − 1``, or ``I_t / I_(t−n) − 1``.

    Parameters
    ----------
    stack : (n_frames, n_row, n_col) array
        Intensities, any real dtype; NumPy or dask (the result is then lazy).
    reference : (n_row, n_col) array, optional
        I0 (raw intensities, like the frames). Default: the mean of the first
        ``n_reference_frames`` frames. Not with ``rolling_frames``.
    n_reference_frames : int
        Frames averaged for the default reference (and, with ``normalize``, for the
        illumination of a given ``reference``).
    normalize : None, "frame_mean" or (n_frames,) array
        Divide each frame by its illumination F_t before the differential:
        ``"frame_mean"`` is :func:`frame_intensity` over ``background_mask``; an array
        gives F_t directly (e.g. a lamp monitor's reading). The reference is the mean of
        the normalised reference frames, so only changes of the *relative* intensity
        remain: ``dI_t = (I_t / F_t) / mean_k(I_k / F_k) − 1``, ~0 at the start. A given
        ``reference`` is taken at the reference frames' mean illumination.
    background_mask : (n_row, n_col) bool array, optional
        Particle-free pixels for ``normalize="frame_mean"`` (see
        :func:`particle_free_pixels`); default: the whole frame.
    rolling_frames : int, optional
        Rolling differential ``dI_t = I_t / I_(t−n) − 1`` with n = ``rolling_frames``
        (1 <= n < n_frames): where the intensity changed over the last n frames, e.g. a
        moving reaction front. The first n frames have no frame n before them and are
        NaN. Default None: dI relative to the reference.

    Returns
    -------
    dI : (n_frames, n_row, n_col) float array
        Dimensionless; float32 for float32 input, float64 otherwise. Pixels whose
        reference (I0, or I_(t−n) for a rolling differential) is <= 0 are NaN (with a
        :class:`NonPositiveReferenceWarning`).
    """
    if stack.ndim != 3:
        raise ValueError(f"stack must be 3-D (time, row, col), got shape {tuple(stack.shape)}")
    n_frames = int(stack.shape[0])
    normalize = _check_normalize(normalize, n_frames)
    rolling_frames = _check_rolling(rolling_frames, n_frames)
    if rolling_frames is not None and reference is not None:
        raise ValueError("reference and rolling_frames exclude each other: a rolling differential "
                         "is relative to frame t - rolling_frames")
    dtype = np.float32 if stack.dtype == np.float32 else np.float64
    lazy = is_dask(stack)
    frames = stack.astype(dtype) if lazy else as_float(stack).astype(dtype, copy=False)

    illumination = None  # F_t, (n_frames,)
    if normalize is not None:
        illumination = normalize
        if isinstance(normalize, str):
            illumination = frame_intensity(stack, background_mask=background_mask)
        frames = frames * (1.0 / illumination).astype(dtype)[:, None, None]

    if rolling_frames is not None:
        n = rolling_frames
        if lazy:
            import dask.array as da

            before = frames[:-n]
            bad = ~(before > 0)
            before = da.where(bad, np.nan, before)
            head = da.full((n, *frames.shape[1:]), np.nan, dtype=dtype,
                           chunks=(n, *frames.chunksize[1:]))
            return da.concatenate([head, frames[n:] / before - 1], axis=0)
        before = frames[:-n]
        bad = ~(before > 0)
        if np.any(bad):
            warnings.warn(
                f"{int(bad.sum())} pixel value(s) of the frames t - {n} are <= 0 (or not finite); "
                "their rolling differential intensity is masked (NaN)",
                NonPositiveReferenceWarning, stacklevel=2)
        out = np.full(frames.shape, np.nan, dtype=dtype)
        with np.errstate(invalid="ignore", divide="ignore"):
            np.divide(frames[n:], np.where(bad, np.nan, before), out=out[n:])
        out[n:] -= 1
        return out

    if reference is None:
        n_ref = _check_n_reference(n_reference_frames, n_frames)
        first = as_float(read_chunk(stack, 0, n_ref)).astype(np.float64)
        if illumination is not None:
            first = first / _first_values(illumination, n_ref)[:, None, None]
        reference = first.mean(axis=0)
    else:
        reference = np.asarray(reference, dtype=np.float64)
        if reference.shape != tuple(stack.shape[1:]):
            raise ValueError(
                f"reference shape {reference.shape} does not match the frames "
                f"{tuple(stack.shape[1:])}"
            )
        if illumination is not None:
            n_ref = _check_n_reference(n_reference_frames, n_frames)
            reference = reference / float(np.mean(_first_values(illumination, n_ref)))
    i0 = _masked_reference(reference)
    inv = (1.0 / i0).astype(dtype)
    return frames * inv - 1


def registered_differential(stack, labels=None, *, register=True, shifts_px=None,
                            n_reference_frames=1, normalize=None, background_mask=None,
                            rolling_frames=None, drift_every=1):
    """The whole differential movie, registered as :func:`analyze_dataset` registers it.

    The drift is estimated on :func:`default_registration_region` of ``labels`` (as
    :func:`analyze_dataset` and :func:`analyze_particle` do, so the frames line up with
    the particle outlines and with their tables) and removed (:func:`correct_drift`); the
    illumination F_t is measured on the raw frames' particle-free pixels; then
    :func:`differential_intensity`. For showing a movie or cutting kymographs across the
    field; the numbers of a particle come from :func:`analyze_particle`.

    Parameters
    ----------
    stack : (n_frames, n_row, n_col) array-like
        Raw intensities; NumPy, zarr or dask (the registered dI is then lazy, but the
        drift and F_t are computed: one pass over the stack).
    labels : (n_row, n_col) int array, optional
        All particles (registration region, background); None: the frame's centre and the
        whole frame.
    register : bool
        Estimate and remove the drift.
    shifts_px : (n_frames, 2) array, optional
        Known drift, used instead of estimating it.
    n_reference_frames, normalize, background_mask, rolling_frames
        As for :func:`differential_intensity` (``background_mask`` defaults to
        :func:`particle_free_pixels` of ``labels``).
    drift_every : int
        Estimate the drift on every ``drift_every``-th frame (:func:`estimate_drift`).

    Returns
    -------
    dI : (n_frames, n_row, n_col) float array (dask for dask input)
    shifts_px : (n_frames, 2) float array or None
        The drift removed (None: not registered).
    """
    from ._registration import correct_drift, default_registration_region, estimate_drift

    if stack.ndim != 3:
        raise ValueError(f"stack must be 3-D (time, row, col), got shape {tuple(stack.shape)}")
    n_frames = int(stack.shape[0])
    has_labels = labels is not None and np.any(np.asarray(labels))
    normalize = _check_normalize(normalize, n_frames)
    if isinstance(normalize, str):  # F_t of the raw frames, as particle_timeseries measures it
        if background_mask is None and has_labels:
            background_mask = particle_free_pixels(labels)
        normalize = frame_intensity(stack, background_mask=background_mask)
        if is_dask(normalize):
            normalize = normalize.compute()
    if shifts_px is None and register:
        region = default_registration_region(labels if has_labels else None, stack.shape[1:])
        shifts_px = estimate_drift(stack, region=region, n_reference_frames=n_reference_frames,
                                   every=drift_every)
    moved = stack
    if shifts_px is not None:
        shifts_px = np.asarray(shifts_px, dtype=float)
        if np.any(shifts_px):
            moved = correct_drift(stack, shifts_px)
    dI = differential_intensity(moved, n_reference_frames=n_reference_frames, normalize=normalize,
                                rolling_frames=rolling_frames)
    return dI, shifts_px
