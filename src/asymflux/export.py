"""Exports of a curated field of view: the curated particles table and one particle's movie.

Nothing here imports napari or Qt: the napari widget's *Export table* and *Export movie*
call these functions, and so can a notebook or a script.

>>> from asymflux import datasets, export
>>> from asymflux.analysis import analyze_dataset_particle
>>> from asymflux.curation import Curation
>>> ds = datasets.load("aged")                                  # doctest: +SKIP
>>> cur = Curation.from_dataset(ds)                             # doctest: +SKIP
>>> table = export.analyze_curation(ds, cur)                    # doctest: +SKIP
>>> export.write_table("curated_particles.csv", table)          # doctest: +SKIP
>>> particle = analyze_dataset_particle(ds, 1, masks=cur.labels)  # doctest: +SKIP
>>> export.write_particle_movie("particle_1.gif", particle)     # doctest: +SKIP

- :func:`curated_particles` joins a per-particle table of :func:`asymflux.analysis.analyze_dataset`
  (``asymflux analyze``'s ``particles.csv``) with the curation's ``class``, ``status``,
  ``notes``, ``who`` and ``when`` (the columns of ``annotations.csv``); the automatic
  ``classification`` is kept beside the curator's ``class``. :func:`analyze_curation`
  analyses a dataset with the curated labels and joins; :func:`write_table` writes CSV.
- :func:`write_movie` writes a dI movie: ``.mp4`` (needs ``imageio-ffmpeg``) and ``.gif``
  frames are coloured like the napari dI layer (white at dI = 0, red where lithium
  leaves, blue where it enters), enlarged, with the particle's outline; ``.tif`` /
  ``.tiff`` holds the dI values themselves (float32, ImageJ hyperstack with the pixel size
  and frame interval). :func:`write_particle_movie` writes the registered differential
  crop of :func:`asymflux.analysis.analyze_particle`.

Every file is written atomically (:func:`asymflux._atomic.atomic_path`): the previous file
or the complete new one, never a partial one.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "CURATION_COLUMNS",
    "DI_COLORMAP_COLORS",
    "MOVIE_SUFFIXES",
    "analyze_curation",
    "check_movie_path",
    "check_table_path",
    "curated_particles",
    "default_movie_suffix",
    "di_to_rgb",
    "movie_frames",
    "movie_suffixes",
    "symmetric_limit",
    "write_movie",
    "write_particle_movie",
    "write_table",
]

#: Columns the curation adds to a particles table (those of ``annotations.csv``).
CURATION_COLUMNS = ("class", "status", "notes", "who", "when")
#: Movie file suffixes :func:`write_movie` knows (``.mp4`` only with imageio-ffmpeg).
MOVIE_SUFFIXES = (".mp4", ".gif", ".tif", ".tiff")

#: Blue (lithiation, dI < 0) – white (dI = 0) – red (delithiation, dI > 0), like RdBu_r:
#: the colours of the napari dI layer and of the movies, evenly spaced over [-x, x].
DI_COLORMAP_COLORS = np.array([
    [0.020, 0.188, 0.380, 1.0],
    [0.263, 0.576, 0.765, 1.0],
    [1.000, 1.000, 1.000, 1.0],
    [0.839, 0.376, 0.302, 1.0],
    [0.404, 0.000, 0.122, 1.0],
])
_NAN_RGB = (128, 128, 128)
_OUTLINE_RGB = (40, 40, 40)
_DEFAULTS = {"class": "unclassified", "status": "pending", "notes": "", "who": "", "when": ""}


# ----------------------------------------------------------------------------- the table


def curated_particles(particles, curation) -> pd.DataFrame:
    """A per-particle table joined with the curation of its particles.

    Parameters
    ----------
    particles : pandas.DataFrame
        One row per particle with ``particle_id``: :func:`asymflux.analysis.analyze_dataset`'s
        first table (``asymflux analyze``'s ``particles.csv``) of the curated labels.
    curation : asymflux.curation.Curation or pandas.DataFrame
        The curation, or its ``features`` / ``annotations()`` table.

    Returns
    -------
    pandas.DataFrame
        ``particles``' rows and columns (its own ``class`` ... ``when`` columns, if any,
        replaced), then :data:`CURATION_COLUMNS`. A particle the curation has no row for
        gets ``unclassified`` / ``pending`` and empty text.

    Raises
    ------
    ValueError
        No ``particle_id`` column, or a particle listed twice.
    """
    features = curation.features if hasattr(curation, "features") else pd.DataFrame(curation)
    for name, df in (("particles", particles), ("curation", features)):
        if "particle_id" not in df.columns:
            raise ValueError(f"{name} table has no particle_id column (has {list(df.columns)})")
        if df["particle_id"].duplicated().any():
            dup = sorted(set(df.loc[df["particle_id"].duplicated(), "particle_id"]))
            raise ValueError(f"{name} table lists particle(s) {dup} more than once")
    left = pd.DataFrame(particles).drop(columns=[c for c in CURATION_COLUMNS if c in particles])
    right = features[["particle_id", *(c for c in CURATION_COLUMNS if c in features)]].copy()
    right["particle_id"] = right["particle_id"].astype(np.int64)
    left = left.assign(particle_id=left["particle_id"].astype(np.int64))
    out = left.merge(right, on="particle_id", how="left", validate="one_to_one")
    for c in CURATION_COLUMNS:
        if c not in out:
            out[c] = _DEFAULTS[c]
        out[c] = out[c].astype(object).where(out[c].notna(), _DEFAULTS[c])
    return out


def analyze_curation(dataset, curation, **options) -> pd.DataFrame:
    """Analyse a dataset with the curated labels and join the curation
    (:func:`asymflux.analysis.analyze_dataset`, then :func:`curated_particles`).

    Parameters
    ----------
    dataset : asymflux.io.Dataset
    curation : asymflux.curation.Curation
        Its ``labels`` are the masks analysed.
    **options
        Passed to :func:`~asymflux.analysis.analyze_dataset` (``register``,
        ``n_reference_frames``, ``normalize``, ``rolling_frames``, ...): the options of
        ``asymflux analyze``.

    Returns
    -------
    pandas.DataFrame
        One row per particle of the labels: ``dataset``, ``ageing``, the columns of
        :data:`asymflux.analysis.PARTICLE_COLUMNS`, then :data:`CURATION_COLUMNS`.
    """
    from asymflux.analysis import analyze_dataset

    labels = np.asarray(curation.labels)
    if not labels.any():
        raise ValueError("no particles to export: the labels are empty (detect particles first)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        particles, _ = analyze_dataset(dataset, masks=labels, **options)
    return curated_particles(particles, curation)


def check_table_path(path) -> Path:
    """Check a table file location before any work (:func:`asymflux._atomic.check_output`:
    not a folder, a special file, or in a missing or read-only folder); return it.

    Raises
    ------
    ValueError
        One line naming the file and what is wrong.
    """
    from asymflux._atomic import check_output

    return check_output(path, what="table file")


def write_table(path, table: pd.DataFrame) -> Path:
    """Write ``table`` as CSV (no index) to ``path``, atomically; return the path
    (checked first: :func:`check_table_path`)."""
    from asymflux._atomic import atomic_path, output_errors

    path = check_table_path(path)
    with output_errors(path, what="table file"), atomic_path(path, suffix=".csv") as tmp:
        table.to_csv(tmp, index=False)
    return path


# ----------------------------------------------------------------------------- movies


def movie_suffixes() -> tuple[str, ...]:
    """The movie suffixes that can be written here: ``.gif`` and ``.tif`` always, ``.mp4``
    when ``imageio-ffmpeg`` is installed (first)."""
    return tuple(s for s in MOVIE_SUFFIXES if s != ".mp4" or _has_ffmpeg())


def default_movie_suffix() -> str:
    """``.mp4`` when ``imageio-ffmpeg`` is installed, else ``.gif``."""
    return movie_suffixes()[0]


def _has_ffmpeg() -> bool:
    return (importlib.util.find_spec("imageio") is not None
            and importlib.util.find_spec("imageio_ffmpeg") is not None)


def symmetric_limit(dI) -> float:
    """x for contrast limits ±x: the 99.5th percentile of |dI| (finite values), else 0.1."""
    a = np.abs(np.asarray(dI, dtype=np.float64))
    a = a[np.isfinite(a)]
    x = float(np.percentile(a, 99.5)) if a.size else 0.0
    return x if x > 0 else 0.1


def di_to_rgb(dI, limit: float) -> np.ndarray:
    """dI (any shape) as uint8 RGB (shape + (3,)) with :data:`DI_COLORMAP_COLORS` over
    [-limit, limit] (clipped); NaN is grey."""
    dI = np.asarray(dI, dtype=np.float64)
    t = np.clip((dI / float(limit) + 1.0) / 2.0, 0.0, 1.0)
    controls = np.linspace(0.0, 1.0, len(DI_COLORMAP_COLORS))
    rgb = np.stack([np.interp(np.nan_to_num(t, nan=0.5), controls, DI_COLORMAP_COLORS[:, k])
                    for k in range(3)], axis=-1)
    out = np.round(rgb * 255.0).astype(np.uint8)
    out[~np.isfinite(dI)] = _NAN_RGB
    return out


def movie_frames(dI, *, mask=None, limit=None, scale=None) -> np.ndarray:
    """RGB frames of a dI movie: coloured (:func:`di_to_rgb`), enlarged, outline drawn.

    Parameters
    ----------
    dI : (n_frames, n_row, n_col) array
    mask : (n_row, n_col) bool array, optional
        The particle: its outline is drawn (dark grey, one enlarged pixel's border).
    limit : float, optional
        Colour scale ±limit (default :func:`symmetric_limit` of the whole movie).
    scale : int, optional
        Each pixel becomes ``scale`` × ``scale`` (default: the smallest making the longer
        side at least 240 px, at most 16).

    Returns
    -------
    (n_frames, n_row * scale, n_col * scale, 3) uint8 array
    """
    dI = np.asarray(dI, dtype=np.float32)
    if dI.ndim != 3 or 0 in dI.shape:
        raise ValueError(f"dI must be a (frame, row, col) movie, got shape {dI.shape}")
    limit = symmetric_limit(dI) if limit is None else float(limit)
    if not (np.isfinite(limit) and limit > 0):
        raise ValueError(f"limit must be a positive number, got {limit}")
    if scale is None:
        scale = int(min(16, max(1, np.ceil(240 / max(dI.shape[1:])))))
    scale = int(scale)
    if scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale}")
    frames = di_to_rgb(dI, limit)
    frames = np.repeat(np.repeat(frames, scale, axis=1), scale, axis=2)
    if mask is not None:
        from scipy import ndimage as ndi

        m = np.asarray(mask, dtype=bool)
        if m.shape != dI.shape[1:]:
            raise ValueError(f"mask shape {m.shape} differs from the frames {dI.shape[1:]}")
        big = np.repeat(np.repeat(m, scale, axis=0), scale, axis=1)
        width = max(1, scale // 3)
        edge = big & ~ndi.binary_erosion(big, iterations=width, border_value=0)
        frames[:, edge] = _OUTLINE_RGB
    return frames


def check_movie_path(path) -> Path:
    """Check a movie file location before any work: a known suffix (``.mp4`` only with
    imageio-ffmpeg) and a writable location (:func:`check_table_path`'s checks); return it.

    Raises
    ------
    ValueError
        One line naming the file and what is wrong.
    """
    from asymflux._atomic import check_output

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MOVIE_SUFFIXES:
        raise ValueError(f"movie file {path}: unknown format {path.suffix!r}; use one of "
                         f"{', '.join(movie_suffixes())}")
    if suffix == ".mp4" and not _has_ffmpeg():
        raise ValueError(f"movie file {path}: MP4 needs imageio-ffmpeg (pip install "
                         "imageio-ffmpeg); choose a .gif or .tif file")
    return check_output(path, what="movie file")


def write_movie(path, dI, *, mask=None, fps: float = 5.0, limit=None, scale=None,
                pixel_nm=None, time_s=None) -> Path:
    """Write a dI movie to ``path``, atomically; the suffix chooses the format.

    Parameters
    ----------
    path : str or Path
        ``.mp4`` (H.264; needs ``imageio-ffmpeg``), ``.gif`` (looping) or ``.tif`` /
        ``.tiff``.
    dI : (n_frames, n_row, n_col) array
        E.g. :attr:`asymflux.analysis.ParticleCrop.dI`.
    mask, limit, scale
        Colours, size and outline of ``.mp4`` / ``.gif`` frames (:func:`movie_frames`).
    fps : float
        Frames per second (``.mp4``, ``.gif``; in a ``.tif`` only with no ``time_s``).
    pixel_nm : float, optional
        Pixel size, stored in a ``.tif`` (µm per pixel).
    time_s : (n_frames,) array, optional
        Frame times: their median step is a ``.tif``'s frame interval.

    Returns
    -------
    Path

    Notes
    -----
    A ``.tif`` holds dI itself (float32, NaN kept; ImageJ hyperstack, axes TYX), for
    measuring; ``.mp4`` and ``.gif`` hold the coloured frames, for showing.
    """
    from asymflux._atomic import atomic_path, output_errors

    path = check_movie_path(path)
    suffix = path.suffix.lower()
    fps = float(fps)
    if not (np.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps}")
    dI = np.asarray(dI, dtype=np.float32)
    if dI.ndim != 3 or 0 in dI.shape:
        raise ValueError(f"dI must be a (frame, row, col) movie, got shape {dI.shape}")
    frames = None if suffix in (".tif", ".tiff") else movie_frames(
        dI, mask=mask, limit=limit, scale=scale)
    with output_errors(path, what="movie file"), atomic_path(path) as tmp:
        if suffix == ".gif":
            _write_gif(tmp, frames, fps)
        elif suffix == ".mp4":
            _write_mp4(tmp, frames, fps)
        else:
            _write_tiff(tmp, dI, fps=fps, pixel_nm=pixel_nm, time_s=time_s)
    return path


def _write_gif(path, frames, fps):
    from PIL import Image

    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, format="GIF", save_all=True, append_images=images[1:],
                   duration=max(20, round(1000.0 / fps)), loop=0)


def _write_mp4(path, frames, fps):  # pragma: no cover - needs imageio-ffmpeg
    import imageio.v2 as iio

    # H.264 in yuv420p needs even sizes: pad with the last row / column
    pad_r, pad_c = frames.shape[1] % 2, frames.shape[2] % 2
    if pad_r or pad_c:
        frames = np.pad(frames, ((0, 0), (0, pad_r), (0, pad_c), (0, 0)), mode="edge")
    with iio.get_writer(path, format="FFMPEG", fps=fps, codec="libx264", macro_block_size=1,
                        pixelformat="yuv420p") as writer:
        for f in frames:
            writer.append_data(f)


def _write_tiff(path, dI, *, fps, pixel_nm, time_s):
    import tifffile

    metadata = {"axes": "TYX", "unit": "um"}
    interval = 1.0 / fps
    if time_s is not None:
        dt = np.diff(np.asarray(time_s, dtype=float))
        dt = dt[np.isfinite(dt) & (dt > 0)]
        if dt.size:
            interval = float(np.median(dt))
    metadata["finterval"] = interval
    kwargs = {}
    if pixel_nm is not None and np.isfinite(pixel_nm) and pixel_nm > 0:
        per_um = 1000.0 / float(pixel_nm)
        kwargs["resolution"] = (per_um, per_um)
    tifffile.imwrite(path, np.ascontiguousarray(dI, dtype=np.float32), imagej=True,
                     metadata=metadata, **kwargs)


def write_particle_movie(path, particle, *, fps: float = 5.0, limit=None, scale=None) -> Path:
    """Write a particle's registered differential crop as a movie (:func:`write_movie`).

    Parameters
    ----------
    path : str or Path
        ``.mp4``, ``.gif`` or ``.tif``.
    particle : asymflux.analysis.ParticleAnalysis
        From :func:`asymflux.analysis.analyze_particle` /
        :func:`~asymflux.analysis.analyze_dataset_particle` with ``crop=True``: its
        ``crop.dI`` (registered), ``crop.mask``, ``pixel_nm`` and ``time_s``.
    fps, limit, scale
        See :func:`write_movie`.
    """
    crop = getattr(particle, "crop", None)
    if crop is None:
        raise ValueError("the particle has no crop: analyse it with crop=True")
    return write_movie(path, crop.dI, mask=crop.mask, fps=fps, limit=limit, scale=scale,
                       pixel_nm=particle.pixel_nm, time_s=particle.time_s)
