"""Whole-dataset analysis on top of the array functions, and writing its tables."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..paper import UNREACTED_THRESHOLD
from ._naming import dataset_name
from ._summary import DEFAULT_ASYMMETRY_THRESHOLD, DEFAULT_WINDOW

__all__ = ["analyze_dataset", "analyze_dataset_particle", "calibrate_stack",
           "dataset_normalization", "resolve_illumination", "write_tables"]


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


def resolve_normalization(dataset, normalize, stack, labels, *, threshold=UNREACTED_THRESHOLD,
                          n_reference_frames=1, rolling_frames=None):
    """``(normalize, warnings)``: ``normalize="auto"`` becomes ``"frame_mean"`` (the
    dataset's recorded illumination if it has one, :func:`dataset_normalization`) when the
    particle-free background drifts by more than
    :data:`~asymflux.analysis._quality.BACKGROUND_DRIFT_FRACTION` x ``threshold`` (1 % for
    0.05) over the movie (measured on 24 evenly spaced frames), else None; said in the
    warnings. Other values go through :func:`dataset_normalization`."""
    if not (isinstance(normalize, str) and normalize == "auto"):
        return dataset_normalization(dataset, normalize), []
    if rolling_frames is not None:
        return None, []  # a rolling differential compares neighbouring frames
    from ._quality import BACKGROUND_DRIFT_FRACTION, background_drift

    limit = BACKGROUND_DRIFT_FRACTION * abs(float(threshold))
    drift, frame = background_drift(stack, labels, n_reference_frames=n_reference_frames)
    if not np.isfinite(drift) or drift <= limit:
        return None, []
    norm = dataset_normalization(dataset, "frame_mean")
    how = ("its recorded frame intensity" if not isinstance(norm, str)
           else "the mean of its particle-free pixels")
    return norm, [f"{dataset_name(dataset)}: the particle-free background drifts by "
                  f"{100 * drift:.2g} % (frame {frame}), more than {100 * limit:.2g} % "
                  f"({BACKGROUND_DRIFT_FRACTION:g} x the dI threshold {threshold:g}): each "
                  f"frame is normalised by {how} (normalize='frame_mean'; normalize=None / "
                  "--no-normalize-illumination to keep the raw intensities)"]


def resolve_illumination(stack, labels, illumination="auto", *, threshold=UNREACTED_THRESHOLD,
                         n_reference_frames=1, name="dataset"):
    """``(stack, warnings)``: the stack read divided by each frame's smooth spatial
    illumination (:class:`~asymflux.analysis._quality.CorrectedStack`: a 2-D polynomial
    fitted to the particle-free pixels of ``labels``, a flat field that may move) when
    ``illumination`` is True, or "auto" and the illumination's spatial pattern changes over
    the particles by more than
    :data:`~asymflux.analysis._quality.ILLUMINATION_CHANGE_FRACTION` x ``threshold`` (2.5 %
    for 0.05; measured on 24 evenly spaced frames, :func:`illumination_change`; said in the
    warnings); else ``stack`` as it is (None / False)."""
    from ._quality import (
        ILLUMINATION_CHANGE_FRACTION,
        CorrectedStack,
        auto_saturation_level,
        illumination_change,
    )

    if illumination is None or illumination is False:
        return stack, []
    if isinstance(illumination, str) and illumination != "auto":
        raise ValueError(f"illumination must be 'auto', True, False or None, got "
                         f"{illumination!r}")
    from ._differential import particle_free_pixels

    try:
        free = particle_free_pixels(labels)
    except ValueError:
        return stack, []
    said = []
    if isinstance(illumination, str):  # "auto"
        limit = ILLUMINATION_CHANGE_FRACTION * abs(float(threshold))
        change, frame = illumination_change(stack, labels,
                                            n_reference_frames=n_reference_frames)
        if not np.isfinite(change) or change <= limit:
            return stack, []
        said = [f"{name}: the illumination's spatial pattern changes by {100 * change:.2g} % "
                f"over the particles (frame {frame}), more than {100 * limit:.2g} % "
                f"({ILLUMINATION_CHANGE_FRACTION:g} x the dI threshold {threshold:g}): each "
                "frame is divided by its smooth illumination fitted to the particle-free "
                "pixels (illumination=True; illumination=None to keep it)"]
    if isinstance(stack, CorrectedStack):
        return stack.with_illumination(free), said
    clip = auto_saturation_level(stack, n_reference_frames)
    return CorrectedStack(stack, free=free, clip=clip), said


def calibrate_stack(stack, *, dark=None, flat=None, n_reference_frames=1):
    """``stack`` read through the camera's dark and flat frames (arrays or paths of
    ``.npy``/``.tif`` files, :func:`~asymflux.analysis._quality.load_calibration_frame`):
    ``(raw - dark) / gain``, gain = (flat - dark) scaled to a mean of 1; ``stack`` itself
    when neither is given. ValueError naming the file for a wrong shape or dtype, NaN, or
    flat - dark not positive everywhere."""
    if dark is None and flat is None:
        return stack
    from ._quality import (
        CorrectedStack,
        auto_saturation_level,
        calibration_gain,
        load_calibration_frame,
    )

    shape = tuple(stack.shape[1:])
    d = None if dark is None else load_calibration_frame(dark, shape, name="dark")
    gain = None
    if flat is not None:
        f = load_calibration_frame(flat, shape, name="flat")
        where = f"flat frame {flat}" if isinstance(flat, (str, Path)) else "flat frame"
        gain = calibration_gain(f, d, name=where)
    clip = auto_saturation_level(stack, n_reference_frames)
    return CorrectedStack(stack, dark=d, gain=gain, clip=clip)


def _capacity(dataset, n_frames):
    """``(capacity per frame, warnings)``: the warnings (one line each) say why capacities
    are NaN or how they were obtained (no cycler data, NaN cells, frames outside the
    cycler's records, the cycler reader's own warnings)."""
    name = dataset_name(dataset)
    try:
        if hasattr(dataset, "capacity_report"):
            cap, problems = dataset.capacity_report()
        else:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                cap = dataset.capacity_at_frames()
            problems = [str(w.message) for w in caught]
    except Exception as e:  # noqa: BLE001 - no echem, or io raising for its own reasons
        return np.full(n_frames, np.nan), [f"{name}: no capacity per frame ({e}); "
                                           "capacity is NaN"]
    if cap is None:
        return np.full(n_frames, np.nan), [f"{name}: no capacity per frame; capacity is NaN"]
    cap = np.asarray(cap, dtype=float)
    if cap.shape != (n_frames,):
        raise ValueError(f"{name}: capacity_at_frames() gave shape {cap.shape} for {n_frames} "
                         "frames")
    return cap, list(problems)


def blank_frame_reason(frame) -> str | None:
    """Why a frame cannot be analysed (every pixel NaN/infinite, or every pixel the same
    value: an empty exposure, or a zarr chunk never written, read as its fill value)."""
    f = np.asarray(frame)
    if f.dtype.kind in "iub" and f.size:  # no NaN: the extremes as floats, no float copy
        lo, hi = float(f.min()), float(f.max())
    else:
        f = np.asarray(f, dtype=np.float64)
        finite = np.isfinite(f)
        if not finite.any():
            return "every pixel is NaN or infinite"
        lo, hi = f[finite].min(), f[finite].max()
    if lo == hi:
        return (f"every pixel is {lo:g}: a blank frame, or zarr chunks never written "
                "and read as their fill value")
    return None


def check_stack_signal(stack, *, name, n_reference_frames=1):
    """Refuse a stack whose reference frames or last frame hold no image, or whose
    reference frames are dark or over-exposed against the 3 frames after them
    (:func:`~asymflux.analysis._artefacts.reference_exposure_problem`): ValueError naming
    ``name`` (reads only those frames: cheap on a lazy stack)."""
    from ._chunks import as_float, read_chunk

    n = int(stack.shape[0])
    k_ref = max(1, min(int(n_reference_frames), n))
    for k in [*range(k_ref), n - 1] if n - 1 >= k_ref else range(k_ref):
        why = blank_frame_reason(read_chunk(stack, k, k + 1)[0])
        if why:
            which = "reference frame" if k < k_ref else "last frame"
            raise ValueError(f"{name}: {which} {k} of {n} holds no image ({why}); "
                             "nothing to analyse")
    if n > k_ref:  # a dark or over-exposed reference frame against the frames after it
        from ._artefacts import frame_exposure, reference_exposure_problem

        why = reference_exposure_problem(
            frame_exposure(as_float(read_chunk(stack, 0, min(n, k_ref + 3)))), k_ref)
        if why:
            raise ValueError(f"{name}: {why}")


def check_analysis_options(*, threshold=UNREACTED_THRESHOLD, edge_px=2, n_reference_frames=1,
                           rolling_frames=None, window=DEFAULT_WINDOW,
                           asymmetry_threshold=DEFAULT_ASYMMETRY_THRESHOLD, drift_every=1,
                           n_frames=None):
    """ValueError naming the option and its range unless the analysis options make sense
    (see :func:`analyze_dataset`)."""
    from .._validate import check_range

    check_range("threshold", threshold, -1, 1, low_inclusive=False, high_inclusive=False)
    check_range("edge_px", edge_px, 0, 1000, integer=True)
    check_range("n_reference_frames", n_reference_frames, 1, n_frames, integer=True)
    if rolling_frames is not None:
        check_range("rolling_frames", rolling_frames, 1,
                    None if n_frames is None else n_frames - 1, integer=True)
    check_range("asymmetry_threshold", asymmetry_threshold, 0, 1, low_inclusive=False)
    check_range("drift_every", drift_every, 1, None, integer=True)
    try:
        lo, hi = window
    except (TypeError, ValueError):
        raise ValueError(f"window must be two unreacted fractions (low, high), got {window!r}") \
            from None
    lo = check_range("window low", lo, 0, 1)
    hi = check_range("window high", hi, 0, 1)
    if lo >= hi:
        raise ValueError(f"window must be (low, high) with low < high, got {window!r}")


def detect_reference(ref, *, pixel_nm=None, detect_kwargs=None):
    """The particles of a reference image as every front end detects them:
    :func:`detect_particles` (default ``min_area_px`` from ``pixel_nm``), then again on the
    image divided by its smooth illumination fitted to the particle-free pixels
    (:func:`~asymflux.analysis._quality.flatten_illumination`: a beam profile's slope
    would pull the thresholded outlines towards its centre)."""
    from ._detect import detect_particles
    from ._quality import flatten_illumination

    kw = {"pixel_nm": pixel_nm, **(detect_kwargs or {})}
    masks = detect_particles(ref, **kw)
    if np.any(masks):
        flat = detect_particles(flatten_illumination(ref, masks), **kw)
        if np.any(flat):
            masks = flat
    return masks


def _dataset_inputs(dataset, masks, *, n_reference_frames=1, detect_kwargs=None,
                    intensity_offset=0.0, dark=None, flat=None, illumination="auto",
                    threshold=UNREACTED_THRESHOLD):
    """``(name, stack, labels, time_s, capacity_mAh_g)`` of a dataset, as every analysis
    reads them (labels: ``masks``, else the dataset's, else detected; the stack with
    ``intensity_offset`` added, refused when its reference frames hold negative
    intensities, then read through the ``dark``/``flat`` calibration frames
    (:func:`calibrate_stack`) and, after detection, the per-frame illumination correction
    (:func:`resolve_illumination`, said in the warnings))."""
    from ._differential import reference_image
    from ._measure import check_labels

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
            masks = check_labels(masks, stack.shape[1:], name=f"{name}: masks")
    else:
        masks = check_labels(masks, stack.shape[1:], name="masks")
    check_stack_signal(stack, name=_where(dataset), n_reference_frames=n_reference_frames)
    from ._chunks import read_chunk
    from ._quality import OffsetStack, check_intensities

    check_intensities(read_chunk(stack, 0, max(1, min(int(n_reference_frames), n_frames))),
                      name=_where(dataset), intensity_offset=intensity_offset)
    if intensity_offset:
        stack = OffsetStack(stack, intensity_offset)
    stack = calibrate_stack(stack, dark=dark, flat=flat, n_reference_frames=n_reference_frames)
    if masks is not None and not np.any(masks):
        raise ValueError(f"{name}: the particle masks hold no particle (every pixel is 0, "
                         "background)")
    if masks is None:
        masks = detect_reference(reference_image(stack, n_reference_frames=n_reference_frames),
                                 pixel_nm=dataset.pixel_nm, detect_kwargs=detect_kwargs)
        if not np.any(masks):
            raise ValueError(f"{_where(dataset)}: no particle detected in the reference image "
                             "(frame 0); check the stack, or give the particle masks "
                             "(masks=, --masks, or masks.tif in the dataset folder)")
    stack, said = resolve_illumination(stack, masks, illumination, threshold=threshold,
                                       n_reference_frames=n_reference_frames, name=name)
    cap, problems = _capacity(dataset, n_frames)
    from ._frametimes import timing_warnings

    problems = [*problems, *said, *timing_warnings(time_s, name=name)]
    return name, stack, masks, time_s, cap, problems


def _where(dataset) -> str:
    """The dataset's path if it has one, else its name (for messages)."""
    path = getattr(dataset, "path", None)
    return str(path) if path is not None else dataset_name(dataset)


def _report(tables, problems, *, stacklevel=3):
    """Put ``problems`` into every table's ``attrs["warnings"]`` and issue them as warnings."""
    from asymflux.io import EchemWarning

    for df in tables:
        df.attrs["warnings"] = list(problems)
    for p in problems:
        warnings.warn(p, EchemWarning, stacklevel=stacklevel)



def by_half_cycle(dataset, ts, stack, labels, *, capacity, normalize, rolling_frames,
                  **options):
    """``ts`` (the whole movie against frame 0) with each half-cycle of the dataset's
    cycler current measured against its own reference frame
    (:func:`~asymflux.analysis._half_cycles.measure_half_cycles`); ``ts`` itself for one
    charge, without cycler current, or with ``rolling_frames`` (no reference frame).
    ``options``: :func:`particle_timeseries`'s (``pixel_nm``, ``threshold``, ...)."""
    from ._half_cycles import dataset_segments, measure_half_cycles
    from ._measure import particle_timeseries

    if rolling_frames is not None:
        return ts
    segments = dataset_segments(dataset)

    def measure(frames, **kw):
        n_ref = min(int(options.get("n_reference_frames", 1)), int(frames.shape[0]))
        return particle_timeseries(frames, labels, **{**options, "n_reference_frames": n_ref},
                                   **kw)

    return measure_half_cycles(ts, segments, measure, stack=stack, capacity_mAh_g=capacity,
                               normalize=normalize)


def dataset_tables(dataset, name, ts, problems, *, window, asymmetry_threshold, statistic):
    """The end of a dataset's analysis, shared by :func:`analyze_dataset` and
    :func:`~asymflux.analysis.analyze_streaming`: the ``dataset`` column, the particle table
    (:func:`summarize_particles`, with the dataset's ageing), and the warnings (``problems``,
    the measurement's own, and an empty vanish capacity) put into both tables and issued.
    Returns ``(particles, timeseries)``."""
    from ._clock import add_cycler_columns, dataset_time_offset
    from ._half_cycles import summarize_half_cycles
    from ._summary import summarize_particles

    meta = getattr(dataset, "metadata", None) or {}
    ts.insert(0, "dataset", name)
    ts = add_cycler_columns(dataset, ts)
    particles = summarize_half_cycles(ts, lambda rows: summarize_particles(
        rows, window=window, asymmetry_threshold=asymmetry_threshold, statistic=statistic))
    particles.insert(1, "ageing", str(meta.get("ageing", "unknown")))
    clock = dataset_time_offset(dataset).as_dict()
    for col in ("time_offset_s", "time_offset_uncertainty_s", "time_offset_method"):
        particles[col] = clock[col]
    particles.attrs["time_offset"] = clock
    from ._quality import flag_summary

    problems = [*problems, *(f"{_where(dataset)}: {w}" for w in ts.attrs.get("warnings", [])),
                *flag_summary(ts, name=name)]
    if (not problems and particles["vanish_frame"].notna().any()
            and particles["vanish_capacity_mAh_g"].isna().all()):
        problems.append(f"{name}: the unreacted region vanishes in "
                        f"{int(particles['vanish_frame'].notna().sum())} particle(s) but no "
                        "capacity is known at those frames: vanish_capacity_mAh_g is empty")
    _report((particles, ts), problems)
    return particles, ts

def analyze_dataset(
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
    chunk_frames=None,
    n_threads=None,
    progress=False,
    return_labels=False,
    time_offset_s=None,
    saturation_level="auto",
    min_core_px=None,
    intensity_offset=0.0,
    illumination="auto",
    dark=None,
    flat=None,
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
    normalize : "auto", None, "frame_mean" or (n_frames,) array
        Divide each frame by its illumination before the differential (lamp flicker,
        illumination drift). ``"auto"`` (default): ``"frame_mean"`` when the particle-free
        background drifts by more than 0.2 x ``threshold`` over the movie, else None (said
        in the warnings; :func:`resolve_normalization`). ``"frame_mean"``: the dataset's recorded per-frame intensity
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
    time_offset_s : float, "auto" or TimeOffset, optional
        The cycler's clock against the camera's: ``cycler_time_s = camera_time_s +
        time_offset_s`` (s); ``"auto"`` estimates it
        (:func:`~asymflux.analysis.estimate_dataset_time_offset`). Default: the
        dataset's own (:func:`~asymflux.analysis.apply_time_offset`), else 0.
    saturation_level, min_core_px
        See :func:`particle_timeseries` (the clip level, default found in the movie; the
        smallest core whose d is reported).
    intensity_offset : float
        Added to every pixel before anything else: a background-subtracted movie (negative
        intensities, refused without it) with the subtracted level added back.
    illumination : "auto", True, False or None
        Divide each frame by its own smooth spatial illumination (a 2-D polynomial fitted
        to the particle-free pixels: a beam profile that moves or changes shape), before
        registration and the differential (:func:`resolve_illumination`). ``"auto"``
        (default): when that pattern changes over the particles by more than 0.5 x
        ``threshold`` over the movie (said in the warnings). The frame's overall
        brightness is left to ``normalize``.
    dark, flat : (n_row, n_col) array or path, optional
        Camera calibration frames (``.npy`` or ``.tif``; a stack of them is averaged):
        every frame is read as ``(raw - dark) / gain``, gain = ``flat - dark`` scaled to a
        mean of 1 (:func:`calibrate_stack`), before detection.

    Returns
    -------
    particles : pandas.DataFrame
        One row per particle (:func:`summarize_particles`) with ``dataset`` and
        ``ageing`` first, and the clock offset (``time_offset_s``,
        ``time_offset_uncertainty_s``, ``time_offset_method``; all of it in
        ``attrs["time_offset"]``).
    timeseries : pandas.DataFrame
        One row per particle and frame (:func:`particle_timeseries`) with ``dataset``,
        and each frame's ``cycler_time_s``, ``voltage_V`` and ``current_mA`` (the
        cycler's, interpolated; NaN outside its record).
    labels : (n_row, n_col) int array
        Only with ``return_labels``.
    """
    from ._measure import particle_timeseries

    if time_offset_s is not None:
        from ._clock import apply_time_offset

        dataset = apply_time_offset(dataset, time_offset_s, masks=masks)
    check_analysis_options(threshold=threshold, edge_px=edge_px,
                           n_reference_frames=n_reference_frames, rolling_frames=rolling_frames,
                           window=window, asymmetry_threshold=asymmetry_threshold,
                           drift_every=drift_every,
                           n_frames=int(getattr(dataset.stack, "shape", (0,))[0]) or None)
    name, stack, masks, time_s, capacity, problems = _dataset_inputs(
        dataset, masks, n_reference_frames=n_reference_frames, detect_kwargs=detect_kwargs,
        intensity_offset=intensity_offset, dark=dark, flat=flat, illumination=illumination,
        threshold=threshold)
    norm, said = resolve_normalization(dataset, normalize, stack, masks, threshold=threshold,
                                       n_reference_frames=n_reference_frames,
                                       rolling_frames=rolling_frames)
    problems = [*problems, *said]
    ts = particle_timeseries(
        stack, masks, pixel_nm=dataset.pixel_nm, time_s=time_s,
        capacity_mAh_g=capacity, threshold=threshold, edge_px=edge_px,
        register=register, n_reference_frames=n_reference_frames,
        normalize=norm, rolling_frames=rolling_frames,
        drift_every=drift_every,
        chunk_frames=chunk_frames, n_threads=n_threads, progress=progress,
        saturation_level=saturation_level, min_core_px=min_core_px,
    )
    ts = by_half_cycle(dataset, ts, stack, masks, capacity=capacity, normalize=norm,
                       rolling_frames=rolling_frames, pixel_nm=dataset.pixel_nm,
                       threshold=threshold, edge_px=edge_px,
                       n_reference_frames=n_reference_frames, chunk_frames=chunk_frames,
                       n_threads=n_threads, saturation_level=saturation_level,
                       min_core_px=min_core_px)
    particles, ts = dataset_tables(dataset, name, ts, problems, window=window,
                                   asymmetry_threshold=asymmetry_threshold, statistic=statistic)
    if return_labels:
        return particles, ts, masks
    return particles, ts


def analyze_dataset_particle(
    dataset,
    particle_id: int,
    *,
    masks=None,
    threshold=UNREACTED_THRESHOLD,
    edge_px=2,
    register=True,
    shifts_px=None,
    n_reference_frames=1,
    normalize="auto",
    rolling_frames=None,
    detect_kwargs=None,
    drift_every=1,
    pad_px=6,
    crop=True,
    chunk_frames=None,
    n_threads=None,
    progress=False,
    time_offset_s=None,
    illumination="auto",
    dark=None,
    flat=None,
    saturation_level="auto",
    min_core_px=None,
    intensity_offset=0.0,
):
    """One particle of a dataset through the pipeline of :func:`analyze_dataset`.

    The dataset is read as :func:`analyze_dataset` reads it (labels, frame times, capacity,
    recorded illumination) and the particle goes through :func:`analyze_particle`: its
    table holds the numbers :func:`analyze_dataset` (``asymflux analyze``) gives it with the
    same options, and its crop is registered with that drift (what ``asymflux fit``
    fits and the dashboards show).

    Parameters
    ----------
    dataset : asymflux.io.Dataset
    particle_id : int
    masks : (n_row, n_col) int array, optional
        Labels of all particles (default: the dataset's, else detected).
    threshold, edge_px, register, n_reference_frames, normalize, rolling_frames,
    detect_kwargs, drift_every, chunk_frames, n_threads, progress
        As for :func:`analyze_dataset`.
    shifts_px : (n_frames, 2) array, optional
        Known drift (e.g. from :func:`analyze_dataset`'s table) instead of estimating it.
    pad_px, crop
        See :func:`analyze_particle`.
    time_offset_s : float, "auto" or TimeOffset, optional
        As for :func:`analyze_dataset`.
    illumination, dark, flat, saturation_level, min_core_px, intensity_offset
        As for :func:`analyze_dataset`.

    Returns
    -------
    ParticleAnalysis
        Its ``timeseries`` has a ``dataset`` column first, as :func:`analyze_dataset`'s.
    """
    from ._particle import analyze_particle

    if time_offset_s is not None:
        from ._clock import apply_time_offset

        dataset = apply_time_offset(dataset, time_offset_s, masks=masks)
    check_analysis_options(threshold=threshold, edge_px=edge_px,
                           n_reference_frames=n_reference_frames, rolling_frames=rolling_frames,
                           drift_every=drift_every)
    name, stack, masks, time_s, capacity, problems = _dataset_inputs(
        dataset, masks, n_reference_frames=n_reference_frames, detect_kwargs=detect_kwargs,
        intensity_offset=intensity_offset, dark=dark, flat=flat, illumination=illumination,
        threshold=threshold)
    normalize, said = resolve_normalization(dataset, normalize, stack, masks, threshold=threshold,
                                            n_reference_frames=n_reference_frames,
                                            rolling_frames=rolling_frames)
    problems = [*problems, *said]
    try:
        result = analyze_particle(
            stack, masks, particle_id, pixel_nm=dataset.pixel_nm, time_s=time_s,
            capacity_mAh_g=capacity, threshold=threshold, edge_px=edge_px, register=register,
            shifts_px=shifts_px, n_reference_frames=n_reference_frames,
            normalize=normalize, rolling_frames=rolling_frames,
            drift_every=drift_every, pad_px=pad_px, crop=crop, chunk_frames=chunk_frames,
            n_threads=n_threads, progress=progress, saturation_level=saturation_level,
            min_core_px=min_core_px)
    except ValueError as e:
        raise ValueError(str(e) if name in str(e) else f"{name}: {e}") from e
    # a movie over several half-cycles: each against its own reference frame, as
    # analyze_dataset measures it (the crop's dI stays against frame 0)
    norm = dataset_normalization(dataset, normalize)
    extra = {"context_labels": masks}  # the background rings among all particles
    if isinstance(norm, str):  # "frame_mean": the particle-free pixels of all particles
        from ._differential import particle_free_pixels

        extra["background_mask"] = particle_free_pixels(masks)
    ts = by_half_cycle(dataset, result.timeseries, stack,
                       np.where(masks == int(particle_id), masks, 0), capacity=capacity,
                       normalize=norm, rolling_frames=rolling_frames, pixel_nm=dataset.pixel_nm,
                       threshold=threshold, edge_px=edge_px,
                       n_reference_frames=n_reference_frames, chunk_frames=chunk_frames,
                       n_threads=n_threads, saturation_level=saturation_level,
                       min_core_px=min_core_px, **extra)
    if ts is not result.timeseries:
        result = result._replace(timeseries=ts,
                                 capacity_mAh_g=ts["capacity_mAh_g"].to_numpy(dtype=float))
    result.timeseries.insert(0, "dataset", name)
    problems = [*problems, *(f"{_where(dataset)}: {w}"
                             for w in result.timeseries.attrs.get("warnings", []))]
    _report((result.timeseries,), problems)
    return result


#: What ``asymflux analyze`` writes into its output folder (a rewrite replaces all of them).
ANALYZE_OUTPUTS = ("particles.csv", "particles.parquet", "timeseries.csv", "timeseries.parquet",
                   "masks", "failures.csv", "clock.csv")


def is_analyze_output(folder) -> bool:
    """True for a folder written by ``asymflux analyze`` / :func:`write_tables`."""
    return any((Path(folder) / n).is_file() for n in ANALYZE_OUTPUTS if "." in n)


def write_tables(out_dir, tables: dict, *, parquet=False, files=None, replaces=()):
    """Write ``{"particles": df, ...}`` as ``out_dir/<name>.csv`` (and ``.parquet``), as one
    transaction.

    The tables, and whatever ``files(folder)`` writes into the new folder, appear together:
    ``out_dir`` is replaced in one step (:func:`asymflux._atomic.atomic_folder`), so a
    reader finds the previous complete set or the new one. Files of the previous folder are
    kept except ``<name>.csv`` / ``<name>.parquet`` of every table and the names in
    ``replaces`` (e.g. ``"masks"``), which belong to the previous set. Returns the table
    files written.
    """
    from .._atomic import atomic_folder, link_into

    out_dir = Path(out_dir)
    owned = {f"{stem}{ext}" for stem in tables for ext in (".csv", ".parquet")} | set(replaces)

    def carry(old, new):
        for entry in old.iterdir():
            # hidden entries too (a user's .notes.old-2024/ is no leftover): the old
            # folder is removed after the swap
            if entry.name not in owned and not (new / entry.name).exists():
                link_into(entry, new / entry.name)

    paths = []
    with atomic_folder(out_dir, carry=carry) as tmp:
        for stem, df in tables.items():
            df.to_csv(tmp / f"{stem}.csv", index=False)
            paths.append(out_dir / f"{stem}.csv")
            if parquet:
                df.to_parquet(tmp / f"{stem}.parquet", index=False)
                paths.append(out_dir / f"{stem}.parquet")
        if files is not None:
            files(tmp)
    return paths
