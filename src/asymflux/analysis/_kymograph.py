"""Line-cut kymographs: dI along a line against time/capacity (Lun et al. 2025, Fig. 5c)."""

from __future__ import annotations

import warnings

import numpy as np

from ..paper import UNREACTED_THRESHOLD
from ._chunks import as_float, frame_chunks, read_chunk

__all__ = ["line_kymograph", "kymograph_boundaries", "last_unreacted_point"]


def line_kymograph(dI, start, end, *, linewidth=1, pixel_nm=1.0, order=1, chunk_frames=None):
    """Differential intensity along a line, for every frame.

    Parameters
    ----------
    dI : (n_frames, n_row, n_col) array-like
        Differential intensity (NumPy, dask or zarr; read a chunk of frames at a time).
    start, end : (float, float)
        Line end points in (row, col) pixels; both are included
        (:func:`skimage.measure.profile_line`).
    linewidth : int
        Width of the line in pixels; values across it are averaged (NaN-aware).
    pixel_nm : float
        Pixel size, for the distance axis.
    order : int
        Interpolation order along the line.

    Returns
    -------
    kymograph : (n_frames, n_points) float array
        dI along the line (row = frame).
    distance_nm : (n_points,) float array
        Distance of each point from ``start`` in nm.
    """
    from skimage.measure import profile_line

    if dI.ndim != 3:
        raise ValueError(f"dI must be 3-D (time, row, col), got shape {tuple(dI.shape)}")
    start = np.asarray(start, dtype=float)
    end = np.asarray(end, dtype=float)
    if start.shape != (2,) or end.shape != (2,):
        raise ValueError(f"start and end must be (row, col) pairs, got {start!r} and {end!r}")
    linewidth = max(1, int(linewidth))
    parts = []
    for t0, t1 in frame_chunks(dI, chunk_frames):
        chunk = as_float(read_chunk(dI, t0, t1))
        # frames as channels: one interpolation call per chunk
        prof = profile_line(
            np.moveaxis(chunk, 0, -1), start, end, linewidth=linewidth, order=order,
            mode="nearest", reduce_func=None,
        )  # (n_points, linewidth, n) -- the last axis is taken as channels
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns stay NaN
            parts.append(np.nanmean(prof.reshape(prof.shape[0], -1, t1 - t0), axis=1).T)
    kymo = np.concatenate(parts, axis=0)
    length_px = float(np.hypot(*(end - start)))
    n = kymo.shape[1]
    distance_nm = np.linspace(0.0, length_px, n) * float(pixel_nm) if n > 1 else np.zeros(1)
    return kymo, distance_nm


def kymograph_boundaries(kymograph, distance_nm, *, threshold=UNREACTED_THRESHOLD):
    """Where dI crosses ``threshold`` along the line, frame by frame.

    Parameters
    ----------
    kymograph : (n_frames, n_points) array
        From :func:`line_kymograph`.
    distance_nm : (n_points,) array
        Distance along the line.
    threshold : float
        Reacted/unreacted threshold on dI.

    Returns
    -------
    pandas.DataFrame
        One row per crossing: ``frame``, ``position_nm`` (linear interpolation between
        samples), ``kind`` (``"enter"``: going along the line, dI drops below the
        threshold -- start of an unreacted segment; ``"exit"``: it rises above it).
    """
    import pandas as pd

    k = np.asarray(kymograph, dtype=float)
    x = np.asarray(distance_nm, dtype=float)
    below = k < threshold
    frames, pos, kind = [], [], []
    i, j = np.nonzero(below[:, 1:] != below[:, :-1])
    with np.errstate(invalid="ignore", divide="ignore"):
        a, b = k[i, j], k[i, j + 1]
        frac = np.where(np.isfinite(a) & np.isfinite(b) & (b != a), (threshold - a) / (b - a), 0.5)
    frames = i
    pos = x[j] + np.clip(frac, 0, 1) * (x[j + 1] - x[j])
    kind = np.where(below[i, j + 1], "enter", "exit")
    return pd.DataFrame({"frame": frames, "position_nm": pos, "kind": kind}).sort_values(
        ["frame", "position_nm"], ignore_index=True)


def last_unreacted_point(kymograph, distance_nm, *, threshold=UNREACTED_THRESHOLD):
    """Frame and position where the last unreacted part of the line vanishes.

    Parameters
    ----------
    kymograph : (n_frames, n_points) array
    distance_nm : (n_points,) array
    threshold : float

    Returns
    -------
    frame : int
        Last frame with any point below ``threshold`` before none is (-1 if it never
        vanishes).
    position_nm : float
        Centre of the unreacted points in that frame (NaN if it never vanishes).
    """
    k = np.asarray(kymograph, dtype=float)
    x = np.asarray(distance_nm, dtype=float)
    any_below = np.any(k < threshold, axis=1)
    seen = np.cumsum(any_below) > 0
    gone = np.flatnonzero(~any_below & seen)
    if gone.size == 0 or gone[0] == 0:
        return -1, float("nan")
    f = int(gone[0] - 1)
    return f, float(x[k[f] < threshold].mean())
