"""Instrument-scale movies: the particles' crops streamed, not the whole frames.

An instrument movie (1200 x 1920 uint16 frames, ~13,000 of them, one HDF5 chunk per frame)
is measured by :func:`analyze_streaming` with the numbers of :func:`analyze_dataset`, but
the per-frame work is done on a *mosaic*: each particle's crop (its bounding box plus a
margin) and the registration region, copied side by side out of every frame as it is
read. Only reading the frame (and, with ``normalize="frame_mean"`` and no recorded
illumination, the mean of its particle-free pixels) touches all of its pixels; the float
conversion, the blank-frame check, the drift estimate and the bilinear sampling of the
particle pixels run on the mosaic (typically a quarter of the frame or less).

The mosaic goes through the same :func:`particle_timeseries` as any stack:

- a crop's margin (``margin_px``, at least ``edge_px + 1``) holds every pixel a particle
  pixel is registered from (drift up to ``margin_px - 1`` px) and every pixel its outline
  test looks at; pixels beyond the frame repeat its edge (the ``mode="nearest"`` of the
  registration) and are labelled background, as beyond the frame;
- pixels of a neighbour inside a crop get a stand-in label (measured, then dropped), so
  that the outline margin ``edge_px`` sees them as "another particle";
- the registration region is copied whole, so the drift is estimated on the same pixels;
- the illumination F_t of ``normalize="frame_mean"`` is measured on the whole frame's
  particle-free pixels and passed through one extra mosaic pixel.

Positions (``com_row``, ``li_rich_row``, ...) come back in the frame's pixels, computed
from the same integer sums as :func:`particle_timeseries` computes them on the frame, so
the table equals :func:`analyze_dataset`'s (``tests/analysis/test_streaming.py``). If the
estimated drift exceeds the margin, the movie is measured again with a larger one.
"""

from __future__ import annotations

import threading

import numpy as np

from ..paper import UNREACTED_THRESHOLD
from ._chunks import as_float, is_dask, read_chunk
from ._chunks import direct_source as _direct_source
from ._summary import DEFAULT_ASYMMETRY_THRESHOLD, DEFAULT_WINDOW

__all__ = ["analyze_streaming", "CropMosaic", "DEFAULT_MARGIN_PX"]

#: Margin around each particle's bounding box, pixels: the largest drift it allows is
#: one pixel less (a larger drift makes :func:`analyze_streaming` measure again).
DEFAULT_MARGIN_PX = 16


class CropMosaic:
    """A lazy (n_frames, n_row, n_col) float64 stack of the particles' crops of a movie.

    Parameters
    ----------
    stack : (n_frames, n_row, n_col) array-like
        The movie (NumPy, dask, zarr, h5py), any real dtype.
    labels : (n_row, n_col) int array
        Particle labels of the movie's frames, 0 = background.
    region : (slice, slice), optional
        Registration region of the frames, copied whole (default: none).
    margin_px : int
        Pixels added around each particle's bounding box.
    background_flat : (n,) int array, optional
        Flat indices of the frame's particle-free pixels: their mean intensity is put
        into one extra mosaic pixel (:attr:`illumination_pixel`).

    Attributes
    ----------
    labels : (n_row, n_col) int64 array
        The mosaic's labels: the particles' own ids, stand-ins (> ``labels.max()``) for
        neighbours inside a crop, 0 elsewhere.
    region : (slice, slice) or None
        The registration region in the mosaic.
    offsets : dict
        ``{particle_id: (d_row, d_col)}``: frame position = mosaic position + offset.
    illumination_pixel : (n_row, n_col) bool array or None
        The pixel holding F_t.
    """

    def __init__(self, stack, labels, *, region=None, margin_px=DEFAULT_MARGIN_PX,
                 background_flat=None):
        self.stack = stack
        self._source = _direct_source(stack)
        labels = np.asarray(labels)
        n_row, n_col = labels.shape
        self.frame_shape = (n_row, n_col)
        self.n_frames = int(stack.shape[0])
        self.max_id = int(labels.max()) if labels.size else 0
        m = int(margin_px)
        tiles = []  # (kind, id, r0, c0, h, w): frame origin of the tile (may lie outside)
        from scipy import ndimage as ndi

        boxes = ndi.find_objects(labels.astype(np.int64, copy=False))
        for pid, box in enumerate(boxes, start=1):
            if box is None:
                continue
            r0, c0 = box[0].start - m, box[1].start - m
            tiles.append(("particle", pid, r0, c0, box[0].stop + m - r0, box[1].stop + m - c0))
        if region is not None:
            rs, cs = region
            r0, r1, _ = rs.indices(n_row)
            c0, c1, _ = cs.indices(n_col)
            tiles.append(("region", 0, r0, c0, r1 - r0, c1 - c0))
        # shelf packing: tallest first, rows of tiles no wider than ~ the square's side
        area = sum(t[4] * t[5] for t in tiles)
        width = max([int(np.ceil(np.sqrt(area) * 1.1))] + [t[5] for t in tiles])
        placed, x, y, shelf = [], 0, 0, 0
        for t in sorted(tiles, key=lambda t: (-t[4], -t[5], t[1])):
            if x + t[5] > width:
                x, y, shelf = 0, y + shelf, 0
            placed.append((t, y, x))
            x += t[5]
            shelf = max(shelf, t[4])
        height = y + shelf + (1 if background_flat is not None else 0)
        height = max(height, 1)
        self.shape = (self.n_frames, height, width)
        self.dtype = np.dtype(np.float64)
        self.ndim = 3
        mosaic_labels = np.zeros((height, width), np.int64)
        index = np.zeros((height, width), np.intp)  # gaps: the frame's first pixel
        self.offsets, self.region, self._copies = {}, None, []
        for k, (t, y, x) in enumerate(placed):
            kind, pid, r0, c0, h, w = t
            rows = np.arange(r0, r0 + h)
            cols = np.arange(c0, c0 + w)
            inside = ((rows >= 0) & (rows < n_row))[:, None] & ((cols >= 0) & (cols < n_col))
            rr = np.clip(rows, 0, n_row - 1)[:, None]
            cc = np.clip(cols, 0, n_col - 1)[None, :]
            if inside.all():  # cut by slicing
                self._copies.append(((slice(y, y + h), slice(x, x + w)),
                                     (slice(r0, r0 + h), slice(c0, c0 + w)), None))
            else:  # beyond the frame: the edge repeated, by indexing
                self._copies.append(((slice(y, y + h), slice(x, x + w)), None,
                                     np.ix_(rr.ravel(), cc.ravel())))
            index[y:y + h, x:x + w] = rr * n_col + cc  # the frame pixel of each mosaic pixel
            if kind == "region":
                self.region = (slice(y, y + h), slice(x, x + w))
                continue
            crop = np.where(inside, labels[rr, cc], 0).astype(np.int64)
            others = (crop != 0) & (crop != pid)
            crop[others] = self.max_id + 1 + k  # a neighbour: "another particle"
            mosaic_labels[y:y + h, x:x + w] = crop
            self.offsets[pid] = (r0 - y, c0 - x)
        self.labels = mosaic_labels
        self._index = index.ravel()
        self._direct = None  # the movie's frames read straight from its file (set below)
        self._buffers = threading.local()
        self.background_flat = None if background_flat is None else np.asarray(background_flat)
        self.illumination_pixel = None
        if background_flat is not None:
            self.illumination_pixel = np.zeros((height, width), bool)
            self.illumination_pixel[-1, 0] = True
        native = None
        if is_dask(stack):
            native = int(stack.chunks[0][0])
        elif hasattr(stack, "chunks") and isinstance(stack.chunks, tuple) and stack.chunks:
            native = int(stack.chunks[0])
        self.native = max(1, native or 1)
        self.chunks = (self.native, height, width)
        if not is_dask(self._source) or self._source is not stack:
            from ..io.instrument import direct_frames

            self._direct = direct_frames(self._source)

    @property
    def fraction(self) -> float:
        """Mosaic pixels per frame pixel."""
        return self.shape[1] * self.shape[2] / float(np.prod(self.frame_shape))

    def __len__(self):
        return self.n_frames

    def __getitem__(self, key):
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise TypeError("CropMosaic reads contiguous frames only: mosaic[t0:t1]")
        t0, t1, _ = key.indices(self.n_frames)
        t1 = max(t0, t1)
        out = np.empty((t1 - t0, *self.shape[1:]), np.float64)
        from ._kernels import use_compiled

        if use_compiled():
            return self._cut_compiled(t0, t1, out)
        # whole frames are held only while they are cut: one native chunk at a time read
        # directly (cache-friendly), or ~64 MB of them through dask (its per-task cost)
        step = self.native
        if is_dask(self._source):
            frame_bytes = int(np.prod(self.frame_shape)) * np.dtype(self.stack.dtype).itemsize
            step = max(1, (64 << 20) // max(1, frame_bytes) // self.native) * self.native
        a = t0
        while a < t1:
            b = min(t1, a - a % self.native + step)
            block = read_chunk(self._source, a, b)
            dst = out[a - t0:b - t0]
            # gaps between the crops: the frame's first pixel (so that a blank frame, one
            # value throughout, is one value in the mosaic too)
            dst[...] = block[:, :1, :1]
            for into, cut, index in self._copies:
                dst[(slice(None), *into)] = block[(slice(None), *cut)] if index is None \
                    else block[(slice(None), *index)]
            if self.background_flat is not None:
                from ._differential import _frame_means

                flat = block.reshape(b - a, -1)
                bg = as_float(np.take(flat, self.background_flat, axis=1))
                dst[:, -1, 0] = _frame_means(bg[:, None, :])
            a = b
        return out

    def _cut_compiled(self, t0, t1, out):
        """:meth:`__getitem__` with the compiled kernels: each frame read into this thread's
        buffer (straight from the file when :func:`~asymflux.io.instrument.direct_frames`
        can; the frames after these prefetched meanwhile) and its crops cut and converted
        to float64 in one gather; the same numbers as the NumPy path."""
        from ._kernels import gather_float

        direct = self._direct
        n_pix = int(np.prod(self.frame_shape))
        flat_out = out.reshape(t1 - t0, -1)
        if direct is not None:
            # the next chunks are read by the disk while these frames are measured
            direct.prefetch(t1, t1 + 2 * (t1 - t0))
            buf = getattr(self._buffers, "frame", None)
            if buf is None:
                buf = self._buffers.frame = np.empty(self.frame_shape, direct.dtype)
            for k in range(t0, t1):
                direct.read(k, buf)
                self._cut_one(buf.reshape(1, n_pix), flat_out[k - t0:k - t0 + 1], gather_float)
            return out
        step = self.native
        if is_dask(self._source):
            frame_bytes = n_pix * np.dtype(self.stack.dtype).itemsize
            step = max(1, (64 << 20) // max(1, frame_bytes) // self.native) * self.native
        a = t0
        while a < t1:
            b = min(t1, a - a % self.native + step)
            block = np.ascontiguousarray(read_chunk(self._source, a, b)).reshape(b - a, n_pix)
            self._cut_one(block, flat_out[a - t0:b - t0], gather_float)
            a = b
        return out

    def _cut_one(self, block, dst, gather_float):
        """(n, n_pix) raw frames -> their (n, mosaic pixels) float64 crops, and F_t."""
        if block.dtype.kind in "iuf" and block.dtype.itemsize <= 8:
            gather_float(block, self._index, dst)
        else:
            dst[...] = np.take(block, self._index, axis=1)
        if self.background_flat is not None:
            from ._differential import _frame_means

            for k in range(block.shape[0]):  # one frame at a time, as the NumPy path
                bg = as_float(np.take(block[k], self.background_flat))
                dst[k, -self.shape[2]] = _frame_means(bg[None, None, :])[0]  # mosaic [-1, 0]


def _frame_positions(table, mosaic, frame_labels, pixel_nm):
    """Positions of ``table`` (from :func:`particle_timeseries` on the mosaic) moved to the
    frame: the centres of mass from the frame's labels, O_Li-rich from the integer sums of
    the unreacted pixels' rows and columns, and d, d/R_eq and the direction recomputed as
    :func:`particle_timeseries` computes them (so they equal its numbers on the frame)."""
    from ._measure import _Pixels

    px = _Pixels(frame_labels, edge_px=0)
    ids = table["particle_id"].to_numpy()
    pos = np.searchsorted(px.ids, ids)
    com_row, com_col = px.com_row[pos], px.com_col[pos]
    d_row = np.array([mosaic.offsets[int(i)][0] for i in px.ids], float)[pos]
    d_col = np.array([mosaic.offsets[int(i)][1] for i in px.ids], float)[pos]
    px_um2 = (pixel_nm * 1e-3) ** 2
    n_unr = np.rint(table["unreacted_area_um2"].to_numpy() / px_um2)
    with np.errstate(invalid="ignore", divide="ignore"):
        li_row_m = table["li_rich_row"].to_numpy()
        li_col_m = table["li_rich_col"].to_numpy()
        has = n_unr > 0
        s_row = np.rint(np.where(has, li_row_m, 0.0) * n_unr) + n_unr * d_row
        s_col = np.rint(np.where(has, li_col_m, 0.0) * n_unr) + n_unr * d_col
        li_row = np.where(has, s_row / np.maximum(n_unr, 1), np.nan)
        li_col = np.where(has, s_col / np.maximum(n_unr, 1), np.nan)
        drow = li_row - com_row
        dcol = li_col - com_col
        offset_px = np.hypot(drow, dcol)
        offset_px[table["offset_reason"].to_numpy() == "core too small"] = np.nan
        r_eq_px = np.sqrt(px.area_px[pos] / np.pi)
        angle = np.degrees(np.arctan2(0.0 - drow, dcol))
        angle = np.where(offset_px > 1e-9, angle, np.nan)
    out = table.copy()
    out.attrs = dict(table.attrs)
    out["com_row"], out["com_col"] = com_row, com_col
    out["li_rich_row"], out["li_rich_col"] = li_row, li_col
    out["offset_nm"] = offset_px * pixel_nm
    out["offset_norm"] = offset_px / r_eq_px
    out["offset_angle_deg"] = angle
    return out


def analyze_streaming(
    dataset,
    *,
    masks=None,
    threshold=UNREACTED_THRESHOLD,
    edge_px=2,
    register=True,
    n_reference_frames=1,
    normalize="auto",
    rolling_frames=None,
    window=DEFAULT_WINDOW,
    asymmetry_threshold=DEFAULT_ASYMMETRY_THRESHOLD,
    statistic="max",
    detect_kwargs=None,
    drift_every=1,
    margin_px=DEFAULT_MARGIN_PX,
    chunk_frames=None,
    n_threads=None,
    progress=False,
    return_labels=False,
    saturation_level="auto",
    min_core_px=None,
    intensity_offset=0.0,
    illumination="auto",
    dark=None,
    flat=None,
):
    """:func:`analyze_dataset` on the particles' crops: for movies of large frames.

    Same options and same tables as :func:`analyze_dataset` (the labels are found, or
    taken, in the same way); the movie is read once, frame chunk by frame chunk, and only
    a mosaic of the particles' crops and the registration region is converted to floats,
    checked, registered and measured (:class:`CropMosaic`). Memory: a few frame chunks,
    whatever the number of frames (plus the tables: ~0.2 kB per particle and frame).

    Parameters
    ----------
    dataset : asymflux.io.Dataset
        Its ``stack`` (n_frames, n_row, n_col), any real dtype, lazy or not.
    masks, threshold, edge_px, register, n_reference_frames, normalize, rolling_frames,
    window, asymmetry_threshold, statistic, detect_kwargs, drift_every, chunk_frames,
    n_threads, progress, return_labels, saturation_level, min_core_px, intensity_offset,
    illumination, dark, flat
        As for :func:`analyze_dataset` (the flags measured on the particles' surroundings,
        ``background_drift`` and ``focus_change``, see the crops: they may differ near
        the crops' edges). ``chunk_frames`` counts mosaic frames (default
        ~24 MiB of them).
    margin_px : int
        Pixels around each particle's bounding box (at least ``edge_px + 1``); a drift
        larger than ``margin_px - 1`` px is measured again with a margin that holds it.

    Returns
    -------
    particles, timeseries[, labels]
        As :func:`analyze_dataset`.
    """
    from ._differential import particle_free_pixels
    from ._measure import particle_timeseries
    from ._pipeline import (
        _dataset_inputs,
        check_analysis_options,
        dataset_tables,
        resolve_normalization,
    )
    from ._registration import default_registration_region

    check_analysis_options(threshold=threshold, edge_px=edge_px,
                           n_reference_frames=n_reference_frames, rolling_frames=rolling_frames,
                           window=window, asymmetry_threshold=asymmetry_threshold,
                           drift_every=drift_every,
                           n_frames=int(getattr(dataset.stack, "shape", (0,))[0]) or None)
    name, stack, labels, time_s, capacity, problems = _dataset_inputs(
        dataset, masks, n_reference_frames=n_reference_frames, detect_kwargs=detect_kwargs,
        intensity_offset=intensity_offset, dark=dark, flat=flat, illumination=illumination,
        threshold=threshold)
    if isinstance(saturation_level, str) and saturation_level == "auto":  # as on the frames
        from ._quality import auto_saturation_level

        saturation_level = auto_saturation_level(stack, n_reference_frames)
    norm, said = resolve_normalization(dataset, normalize, stack, labels, threshold=threshold,
                                       n_reference_frames=n_reference_frames,
                                       rolling_frames=rolling_frames)
    problems = [*problems, *said]
    background_flat = None
    if isinstance(norm, str):  # "frame_mean": measured on the frame's particle-free pixels
        background_flat = np.flatnonzero(particle_free_pixels(labels))
    region = default_registration_region(labels) if register else None
    margin = max(int(margin_px), int(edge_px) + 1)
    from ._kernels import prepare

    prepare()  # numba imported and the kernels loaded once, before the pass
    while True:
        mosaic = CropMosaic(stack, labels, region=region, margin_px=margin,
                            background_flat=background_flat)
        if chunk_frames is None:  # ~24 MiB of mosaic frames: below glibc's mmap threshold
            # (32 MiB), so each thread's buffers are reused, not mapped and faulted anew
            chunk_frames = max(1, (24 << 20) // (8 * mosaic.shape[1] * mosaic.shape[2]))
        ts = particle_timeseries(
            mosaic, mosaic.labels, pixel_nm=dataset.pixel_nm, time_s=time_s,
            capacity_mAh_g=capacity, threshold=threshold, edge_px=edge_px,
            register=register, registration_region=mosaic.region,
            n_reference_frames=n_reference_frames,
            normalize=norm, background_mask=mosaic.illumination_pixel,
            rolling_frames=rolling_frames, drift_every=drift_every,
            chunk_frames=chunk_frames, n_threads=n_threads, progress=progress,
            saturation_level=saturation_level, min_core_px=min_core_px,
        )
        drift = np.abs(ts[["drift_row_px", "drift_col_px"]].to_numpy())
        worst = float(np.nanmax(drift)) if drift.size else 0.0
        if not worst >= margin - 1:
            break
        margin = int(np.ceil(worst)) + 2  # a larger drift than the crops hold: again
    from ._pipeline import by_half_cycle

    ts = by_half_cycle(dataset, ts, mosaic, mosaic.labels, capacity=capacity, normalize=norm,
                       rolling_frames=rolling_frames, pixel_nm=dataset.pixel_nm,
                       threshold=threshold, edge_px=edge_px,
                       n_reference_frames=n_reference_frames,
                       background_mask=mosaic.illumination_pixel, chunk_frames=chunk_frames,
                       n_threads=n_threads)
    attrs = dict(ts.attrs)  # warnings (blank frames)
    ts = ts[ts["particle_id"] <= mosaic.max_id].reset_index(drop=True)  # no stand-ins
    ts["particle_id"] = ts["particle_id"].astype(labels.dtype)  # as the frame's labels
    ts = _frame_positions(ts, mosaic, labels, float(dataset.pixel_nm))
    ts.attrs = attrs
    particles, ts = dataset_tables(dataset, name, ts, problems, window=window,
                                   asymmetry_threshold=asymmetry_threshold, statistic=statistic)
    if return_labels:
        return particles, ts, labels
    return particles, ts
