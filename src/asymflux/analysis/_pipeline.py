"""Whole-dataset analysis on top of the array functions, and writing its tables."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ._summary import DEFAULT_ASYMMETRY_THRESHOLD, DEFAULT_WINDOW

__all__ = ["analyze_dataset", "dataset_name", "dataset_normalization", "write_tables"]


def dataset_name(dataset) -> str:
    """``metadata["name"]``, else the folder/file name, else ``"dataset"``."""
    meta = getattr(dataset, "metadata", None) or {}
    if meta.get("name"):
        return str(meta["name"])
    path = getattr(dataset, "path", None)
    if path is not None:
        p = Path(path)
        return p.name.split(".")[0] if p.is_file() else p.name
    return "dataset"


def dataset_normalization(dataset, normalize="frame_mean"):
    """What to pass as ``normalize=`` for a dataset: its instrument's illumination if it has one.

    Parameters
    ----------
    dataset : asymflux.io.Dataset or None
    normalize : None, "frame_mean" or (n_frames,) array
        ``"frame_mean"`` becomes the dataset's own per-frame intensity
        (``dataset.frame_intensity``, e.g. a lamp monitor recorded by the instrument) when
        it has one, else stays ``"frame_mean"`` (measured on particle-free pixels). None
        and arrays are returned as they are.

    Returns
    -------
    None, "frame_mean" or (n_frames,) float64 array
    """
    if isinstance(normalize, str) and normalize == "frame_mean":
        recorded = getattr(dataset, "frame_intensity", None)
        if recorded is not None:
            from ._differential import _check_frame_intensity

            stack = getattr(dataset, "stack", None)
            n_frames = int(stack.shape[0]) if stack is not None else np.size(recorded)
            return _check_frame_intensity(recorded, n_frames,
                                          name=f"{dataset_name(dataset)}: frame_intensity")
    return normalize


def _capacity(dataset, n_frames):
    try:
        cap = dataset.capacity_at_frames()
    except Exception as e:  # no echem, or io raising for its own reasons
        warnings.warn(f"{dataset_name(dataset)}: no capacity per frame ({e}); capacity is NaN",
                      stacklevel=3)
        return np.full(n_frames, np.nan)
    if cap is None:
        return np.full(n_frames, np.nan)
    return np.asarray(cap, dtype=float)


def analyze_dataset(
    dataset,
    *,
    masks=None,
    threshold=0.05,
    edge_px=2,
    register=True,
    n_reference_frames=1,
    normalize=None,
    rolling_frames=None,
    window=DEFAULT_WINDOW,
    asymmetry_threshold=DEFAULT_ASYMMETRY_THRESHOLD,
    statistic="max",
    detect_kwargs=None,
    drift_every=1,
    chunk_frames=None,
    n_threads=None,
    progress=False,
    return_labels=False,
):
    """Measure and classify every particle of an :class:`asymflux.io.Dataset`.

    Parameters
    ----------
    dataset : asymflux.io.Dataset
        Uses ``stack``, ``time_s``, ``pixel_nm``, ``metadata`` (``name``, ``ageing``),
        ``masks`` and ``capacity_at_frames()``.
    masks : (n_row, n_col) int array, optional
        Particle labels used as given. Default: ``dataset.masks``, else
        :func:`detect_particles` on the reference image.
    threshold : float
        dI below which a pixel is unreacted.
    edge_px : int
        Outline margin left out of the unreacted region (see :func:`particle_timeseries`).
    register : bool
        Correct drift on the fly (see :func:`particle_timeseries`).
    n_reference_frames : int
        Frames averaged into I0.
    normalize : None, "frame_mean" or (n_frames,) array
        Divide each frame by its illumination before the differential (lamp flicker,
        illumination drift). ``"frame_mean"``: the dataset's recorded per-frame intensity
        (``dataset.frame_intensity``) if it has one, else the mean of the pixels farther
        than :data:`DEFAULT_BACKGROUND_MARGIN_PX` from every particle
        (:func:`dataset_normalization`, :func:`particle_timeseries`).
    rolling_frames : int, optional
        Rolling differential I_t / I_(t−n) − 1 (see :func:`particle_timeseries`; the
        unreacted region and d then describe recent change, not the Li-rich core).
    window, asymmetry_threshold, statistic
        Classification criterion (:func:`classify_asymmetry`).
    detect_kwargs : dict, optional
        Passed to :func:`detect_particles`.
    drift_every, chunk_frames, n_threads, progress
        See :func:`particle_timeseries`.
    return_labels : bool
        Also return the labels used.

    Returns
    -------
    particles : pandas.DataFrame
        One row per particle (:func:`summarize_particles`) with ``dataset`` and
        ``ageing`` first.
    timeseries : pandas.DataFrame
        One row per particle and frame (:func:`particle_timeseries`) with ``dataset``.
    labels : (n_row, n_col) int array
        Only with ``return_labels``.
    """
    from ._detect import detect_particles
    from ._differential import reference_image
    from ._measure import _check_labels, particle_timeseries
    from ._summary import summarize_particles

    name = dataset_name(dataset)
    stack = dataset.stack
    if stack is None or getattr(stack, "ndim", 0) != 3:
        raise ValueError(f"{name}: the stack must be 3-D (time, row, col), got "
                         f"{getattr(stack, 'shape', None)}")
    n_frames = int(stack.shape[0])
    if getattr(dataset, "pixel_nm", None) is None:
        raise ValueError(f"{name}: pixel size unknown (metadata pixel_nm); give it (--pixel-nm)")
    time_s = getattr(dataset, "time_s", None)
    if time_s is None:
        time_s = np.full(n_frames, np.nan)
    if masks is None:
        masks = getattr(dataset, "masks", None)
        if masks is not None:
            masks = _check_labels(masks, stack.shape[1:], name=f"{name}: masks")
    else:
        masks = _check_labels(masks, stack.shape[1:], name="masks")
    if masks is None:
        masks = detect_particles(reference_image(stack, n_reference_frames=n_reference_frames),
                                 **(detect_kwargs or {}))
    ts = particle_timeseries(
        stack, masks, pixel_nm=dataset.pixel_nm, time_s=time_s,
        capacity_mAh_g=_capacity(dataset, n_frames), threshold=threshold, edge_px=edge_px,
        register=register, n_reference_frames=n_reference_frames,
        normalize=dataset_normalization(dataset, normalize), rolling_frames=rolling_frames,
        drift_every=drift_every,
        chunk_frames=chunk_frames, n_threads=n_threads, progress=progress,
    )
    meta = getattr(dataset, "metadata", None) or {}
    ts.insert(0, "dataset", name)
    particles = summarize_particles(ts, window=window, asymmetry_threshold=asymmetry_threshold,
                                    statistic=statistic)
    particles.insert(1, "ageing", str(meta.get("ageing", "unknown")))
    if return_labels:
        return particles, ts, masks
    return particles, ts


def write_tables(out_dir, tables: dict, *, parquet=False):
    """Write ``{"particles": df, ...}`` as ``out_dir/<name>.csv`` (and ``.parquet``), atomically."""
    from .._atomic import atomic_path

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for stem, df in tables.items():
        p = out_dir / f"{stem}.csv"
        with atomic_path(p) as tmp:
            df.to_csv(tmp, index=False)
        paths.append(p)
        if parquet:
            p = out_dir / f"{stem}.parquet"
            with atomic_path(p) as tmp:
                df.to_parquet(tmp, index=False)
            paths.append(p)
    return paths
