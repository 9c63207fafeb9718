"""Sub-pixel drift registration of image stacks.

Shifts are estimated by cross-correlation on a reference region with the algorithm of
:func:`skimage.registration.phase_cross_correlation` (Guizar-Sicairos et al. 2008), run on
a batch of frames at once (every frame, or every ``every``-th frame, interpolated in
between), and applied per frame with :func:`scipy.ndimage.shift`. Both work chunk by
chunk, so a dask or zarr stack is never loaded whole.
"""

from __future__ import annotations

import numpy as np

from ._chunks import as_float, frame_chunks, is_dask, read_chunk

__all__ = ["estimate_drift", "correct_drift", "register_stack", "default_registration_region"]


def default_registration_region(labels=None, shape=None, *, pad_px=8, max_size_px=256):
    """Region used for drift estimation: around the particles, at most ``max_size_px`` a side.

    Parameters
    ----------
    labels : (n_row, n_col) int array, optional
        Particle labels; without them (or with no particle) the centre of the frame.
    shape : (n_row, n_col), optional
        Frame shape (needed without ``labels``).
    pad_px : int
        Margin around the particles' bounding box, pixels.
    max_size_px : int
        Largest side of the region, pixels (phase correlation costs O(n log n) in its area).

    Returns
    -------
    (slice, slice)
        Row and column slices.
    """
    if labels is not None:
        labels = np.asarray(labels)
        shape = labels.shape
    n_row, n_col = (int(s) for s in shape)
    if labels is not None and np.any(labels > 0):
        rows = np.flatnonzero(np.any(labels > 0, axis=1))
        cols = np.flatnonzero(np.any(labels > 0, axis=0))
        r0, r1 = rows[0] - pad_px, rows[-1] + 1 + pad_px
        c0, c1 = cols[0] - pad_px, cols[-1] + 1 + pad_px
        center = ((r0 + r1) // 2, (c0 + c1) // 2)
        if r1 - r0 > max_size_px or c1 - c0 > max_size_px:
            # centre on the largest particle instead
            ids, counts = np.unique(labels[labels > 0], return_counts=True)
            rr, cc = np.nonzero(labels == ids[np.argmax(counts)])
            center = (int(rr.mean()), int(cc.mean()))
    else:
        r0, r1, c0, c1 = 0, n_row, 0, n_col
        center = (n_row // 2, n_col // 2)
    out = []
    for lo, hi, c, n in ((r0, r1, center[0], n_row), (c0, c1, center[1], n_col)):
        size = min(max(hi - lo, 16), max_size_px, n)
        start = int(np.clip(c - size // 2, 0, n - size))
        out.append(slice(start, start + size))
    return tuple(out)


def _check_region(region, shape):
    if region is None:
        return (slice(0, shape[0]), slice(0, shape[1]))
    if len(region) != 2 or not all(isinstance(s, slice) for s in region):
        raise ValueError(f"region must be a pair of slices (rows, cols), got {region!r}")
    return tuple(region)


def _clip_level(ref):
    """Intensity above which the reference is clipped for registration.

    Particles brighten as they delithiate, and unevenly so in an asymmetric particle,
    which would pull a plain cross-correlation towards the bright side. Clipping every
    frame at a level between the dark surroundings (Otsu class below) and the particles'
    initial intensity keeps their outlines -- which do not move -- and removes their
    changing interior.
    """
    from skimage.filters import threshold_otsu

    finite = ref[np.isfinite(ref)]
    if finite.size == 0 or np.ptp(finite) == 0:
        return None
    t = threshold_otsu(finite)
    bright = finite[finite > t]
    return float(t + 0.5 * (np.median(bright) - t)) if bright.size else None


def _window(shape):
    """Separable 2-D Hann window (NumPy's; no scipy.signal import, which costs ~1 s)."""
    return np.outer(np.hanning(shape[0]), np.hanning(shape[1]))


def _bin2(a):
    """2x2 binning (sum) of the last two axes (an odd last row/column is dropped)."""
    h, w = 2 * (a.shape[-2] // 2), 2 * (a.shape[-1] // 2)
    return (a[..., 0:h:2, 0:w:2] + a[..., 1:h:2, 0:w:2]) + (a[..., 0:h:2, 1:w:2] + a[..., 1:h:2, 1:w:2])


def _correlation_at(product_half, n_col, rows_px, cols_px):
    """Cross-correlation of real images evaluated off the pixel grid, by a direct DFT.

    ``irfft2(product_half)`` sampled at the points ``(rows_px[f, i], cols_px[f, j])`` of
    each frame f: the band-limited interpolation of the correlation, computed as two
    matrix products over the half spectrum (the matrix-multiply DFT of Guizar-Sicairos
    et al., Opt. Lett. 33, 156 (2008), used by
    :func:`skimage.registration.phase_cross_correlation`).

    Parameters
    ----------
    product_half : (n_frames, n_row, n_col // 2 + 1) complex array
        ``rfft2(reference) * conj(rfft2(moving))``.
    n_col : int
        Columns of the images.
    rows_px : (n_frames, n_i) float array
    cols_px : (n_frames, n_j) float array
        Row and column shifts (pixels) at which to evaluate.

    Returns
    -------
    (n_frames, n_i, n_j) float array
    """
    n_row, n_half = product_half.shape[-2:]
    # a real image's spectrum is Hermitian: the columns rfft2 leaves out are the
    # conjugates of columns 1 .. n_col - n_half, hence the weight 2 and the real part
    weight = np.full(n_half, 2.0)
    weight[0] = 1.0
    if n_col % 2 == 0:
        weight[-1] = 1.0
    dtype = product_half.dtype
    k_row = np.exp((2j * np.pi) * rows_px[:, :, None] * np.fft.fftfreq(n_row)).astype(dtype)
    k_col = (np.exp((2j * np.pi) * cols_px[:, None, :] * (np.arange(n_half) / n_col)[:, None])
             * weight[:, None]).astype(dtype)
    return np.matmul(np.matmul(k_row, product_half), k_col).real / (n_row * n_col)


def _refine_shifts(product_half, n_col, guess_px, *, search_px, upsample_factor):
    """Sub-pixel shifts near integer guesses: the correlation peak within ``search_px``
    pixels of each guess, then refined on a 1/``upsample_factor`` grid over +-0.75 px
    (the two steps of :func:`skimage.registration.phase_cross_correlation`, searched
    locally instead of over the whole frame).

    Returns
    -------
    shifts_px : (n_frames, 2) float array
    """
    n = product_half.shape[0]
    if n == 0:
        return np.zeros((0, 2))
    steps = np.arange(-search_px, search_px + 1, dtype=float)
    corr = _correlation_at(product_half, n_col, guess_px[:, :1] + steps, guess_px[:, 1:] + steps)
    best = np.unravel_index(np.argmax(np.abs(corr).reshape(n, -1), axis=1), corr.shape[1:])
    shift = guess_px + steps[np.stack(best, axis=1)]
    if upsample_factor <= 1:
        return shift
    uf = float(upsample_factor)
    size = int(np.ceil(uf * 1.5))
    fine = (np.arange(size) - np.trunc(size / 2.0)) / uf
    corr = _correlation_at(product_half, n_col, shift[:, :1] + fine, shift[:, 1:] + fine)
    best = np.unravel_index(np.argmax(np.abs(corr).reshape(n, -1), axis=1), corr.shape[1:])
    return shift + fine[np.stack(best, axis=1)]


def _integer_shifts(product_half, shape):
    """Integer shifts at the peak of |cross-correlation| (wrapped to +-half the size)."""
    from scipy import fft

    corr = fft.irfft2(product_half, s=tuple(shape), axes=(1, 2))
    n = corr.shape[0]
    peak = np.stack(np.unravel_index(np.argmax(np.abs(corr).reshape(n, -1), axis=1), tuple(shape)),
                    axis=1).astype(float)
    size = np.array(shape)
    return np.where(peak > np.trunc(size / 2), peak - size, peak)


def _estimate_chunk(chunk, ref_region, region, upsample_factor, frames, clip=None):
    """Shifts (len(frames), 2) of ``chunk[frames]`` relative to ``ref_region`` (already clipped)."""
    from scipy import fft

    # Two steps per frame, each on the whole batch of frames from real single-precision
    # FFTs (float32 keeps ~1e-6 relative precision, far below 1/upsample_factor px):
    # a coarse integer estimate on Hann-windowed, 2x2-binned images, which cannot match
    # one particle with a look-alike neighbour across the region's (periodic) edge; then
    # the precise one on the unwindowed images (unbiased), searched only near the coarse
    # one, so it cannot jump to such a neighbour either.
    frames = np.asarray(frames)
    moving = chunk[:, region[0], region[1]][frames].astype(np.float32)
    if clip is not None:
        np.minimum(moving, np.float32(clip), out=moving)
    mean = moving.mean(axis=(1, 2), keepdims=True)
    for i in np.flatnonzero(~np.isfinite(mean.ravel())):  # NaN/inf pixels: set to the mean
        m = moving[i]
        bad = ~np.isfinite(m)
        m[bad] = np.float32(m[~bad].mean()) if not bad.all() else np.float32(0.0)
        mean[i] = m.mean()
    moving -= mean
    ref0 = (ref_region - ref_region.mean()).astype(np.float32)

    binning = 2 if min(ref0.shape) >= 64 else 1
    ref_c = _bin2(ref0) if binning == 2 else ref0
    mov_c = _bin2(moving) if binning == 2 else moving
    win_c = _window(ref_c.shape).astype(np.float32)
    coarse = binning * _integer_shifts(
        fft.rfft2(ref_c * win_c)[None] * np.conj(fft.rfft2(mov_c * win_c, axes=(1, 2))),
        ref_c.shape)
    product = fft.rfft2(ref0)[None] * np.conj(fft.rfft2(moving, axes=(1, 2)))
    return _refine_shifts(product, ref0.shape[1], coarse, search_px=binning + 1,
                          upsample_factor=upsample_factor)


def _reference_region(stack, region, n_reference_frames, clip="auto"):
    """(reference region, clip level): the reference is returned already clipped."""
    ref = as_float(read_chunk(stack, 0, max(1, int(n_reference_frames))))
    ref = np.nanmean(ref, axis=0)[region]
    if not np.all(np.isfinite(ref)):
        ref = np.nan_to_num(ref, nan=float(np.nanmean(ref)) if np.any(np.isfinite(ref)) else 0.0)
    if isinstance(clip, str):
        if clip != "auto":
            raise ValueError(f"clip must be 'auto', None or a number, got {clip!r}")
        clip = _clip_level(ref)
    if clip is not None:
        ref = np.minimum(ref, clip)
    return ref, clip


def estimate_drift(
    stack,
    *,
    region=None,
    n_reference_frames=1,
    upsample_factor=10,
    every=1,
    clip="auto",
    chunk_frames=None,
):
    """Sub-pixel drift of every frame relative to the reference frame(s).

    Parameters
    ----------
    stack : (n_frames, n_row, n_col) array-like
        NumPy, dask or zarr stack, any real dtype.
    region : (slice, slice), optional
        Rows and columns used for the estimate (default: the whole frame). Choose a part
        with static, textured features (particle edges, matrix), e.g.
        :func:`default_registration_region`.
    n_reference_frames : int
        The reference is the mean of the first ``n_reference_frames`` frames.
    upsample_factor : int
        Precision of 1/``upsample_factor`` pixel.
    every : int
        Estimate on every ``every``-th frame (and the last) and interpolate linearly in
        between; drift is slow, so this trades little accuracy for speed.
    clip : "auto", float or None
        Frames are clipped at this intensity before the correlation, so that the
        particles' outlines (static) rather than their brightening interiors (the
        signal) drive it. "auto": halfway between the Otsu threshold of the reference
        region and the median of its bright class. None: no clipping.
    chunk_frames : int, optional
        Frames read at once (default: from the dask chunks, or ~64 MB).

    Returns
    -------
    shifts_px : (n_frames, 2) float array
        (row, col) shift in pixels that registers each frame onto the reference, as
        returned by ``phase_cross_correlation`` and taken by :func:`correct_drift`.
    """
    n_frames = stack.shape[0]
    if stack.ndim != 3:
        raise ValueError(f"stack must be 3-D (time, row, col), got shape {tuple(stack.shape)}")
    every = max(1, int(every))
    region = _check_region(region, stack.shape[1:])
    ref, clip = _reference_region(stack, region, n_reference_frames, clip)
    wanted = np.unique(np.r_[np.arange(0, n_frames, every), n_frames - 1])
    est = {}
    for t0, t1 in frame_chunks(stack, chunk_frames):
        ks = wanted[(wanted >= t0) & (wanted < t1)]
        if ks.size == 0:
            continue
        chunk = as_float(read_chunk(stack, t0, t1))
        for k, s in zip(ks, _estimate_chunk(chunk, ref, region, upsample_factor, ks - t0, clip), strict=True):
            est[int(k)] = s
    ks = np.array(sorted(est))
    vals = np.array([est[k] for k in ks])
    frames = np.arange(n_frames)
    return np.column_stack([np.interp(frames, ks, vals[:, 0]), np.interp(frames, ks, vals[:, 1])])


def _shift_block(block, shifts, order, mode):
    from scipy import ndimage as ndi

    block = as_float(block)
    out = np.empty_like(block)
    for k in range(block.shape[0]):
        ndi.shift(block[k], shifts[k], output=out[k], order=order, mode=mode)
    return out


def correct_drift(stack, shifts_px, *, order=1, mode="nearest"):
    """Shift every frame by ``shifts_px`` (lazily for dask input).

    Parameters
    ----------
    stack : (n_frames, n_row, n_col) array
        NumPy or dask array, any real dtype.
    shifts_px : (n_frames, 2) array
        (row, col) shifts in pixels, e.g. from :func:`estimate_drift`.
    order : int
        Spline order of :func:`scipy.ndimage.shift` (1 = bilinear).
    mode : str
        How pixels beyond the edge are filled (``scipy.ndimage`` modes).

    Returns
    -------
    registered : (n_frames, n_row, n_col) float array
        float32 for float32 input, float64 otherwise; a dask array for dask input.
    """
    shifts_px = np.asarray(shifts_px, dtype=float)
    if stack.ndim != 3 or shifts_px.shape != (stack.shape[0], 2):
        raise ValueError(
            f"shifts_px must have shape (n_frames, 2) = ({stack.shape[0]}, 2) for a stack of "
            f"shape {tuple(stack.shape)}, got {shifts_px.shape}"
        )
    if is_dask(stack):
        import dask.array as da

        stack = stack.rechunk({1: -1, 2: -1})
        dtype = np.float32 if stack.dtype == np.float32 else np.float64

        def fn(block, block_info=None):
            t0 = block_info[0]["array-location"][0][0]
            return _shift_block(block, shifts_px[t0 : t0 + block.shape[0]], order, mode)

        return da.map_blocks(fn, stack, dtype=dtype)
    return _shift_block(np.asarray(stack), shifts_px, order, mode)


def register_stack(stack, *, region=None, n_reference_frames=1, upsample_factor=10, every=1,
                   clip="auto"):
    """Estimate and apply drift: ``(registered, shifts_px)``; lazy for dask input.

    See :func:`estimate_drift` and :func:`correct_drift` for the parameters.
    """
    shifts = estimate_drift(
        stack, region=region, n_reference_frames=n_reference_frames,
        upsample_factor=upsample_factor, every=every, clip=clip,
    )
    return correct_drift(stack, shifts), shifts
