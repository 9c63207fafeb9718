"""Measure the shrinking core of every particle in an operando movie (Lun et al. 2025).

Array functions (scikit-image style: arrays in, arrays/tables out, axes (time, row, col)):

- registration: :func:`estimate_drift`, :func:`correct_drift`, :func:`register_stack`,
  :func:`default_registration_region`
- differential intensity: :func:`reference_image`, :func:`differential_intensity`
  (relative to the reference, or rolling I_t / I_(t−n) − 1), :func:`registered_differential`
  (the whole movie registered as :func:`analyze_dataset` registers it), illumination:
  :func:`frame_intensity`, :func:`particle_free_pixels`
- particles: :func:`detect_particles`
- shrinking core: :func:`particle_timeseries` (per particle and frame: mean dI, unreacted
  fraction, O_COM, O_Li-rich, d, d/R_eq, direction), :func:`summarize_particles`
  (per particle: classification, where/when the core vanishes), :func:`classify_asymmetry`
- one particle: :func:`crop_box`, :func:`particle_crop` (registered crop and its dI),
  :func:`horizontal_line`
- line cuts: :func:`line_kymograph`, :func:`kymograph_boundaries`, :func:`last_unreacted_point`
- cohorts: :func:`cohort_statistics`, :func:`wilson_interval`, validation against synthetic
  ground truth: :func:`true_classes`, :func:`confusion_matrix`, :func:`validate_classification`

and on top, :func:`analyze_dataset` for an :class:`asymflux.io.Dataset` (and
:func:`analyze_streaming`, the same tables from the particles' crops, chunk by chunk, for
movies of large frames)
(:func:`dataset_normalization`: its recorded illumination, if any;
:func:`resolve_normalization`: what ``normalize="auto"`` becomes; :func:`calibrate_stack`:
the camera's dark and flat frames; :func:`resolve_illumination`: each frame divided by its
smooth spatial illumination).
:func:`analysis_options` turns a user's choices (a front end's check boxes and fields)
into :func:`analyze_dataset`'s keyword arguments, with its defaults.

A dataset path (a folder, or a bare stack with its cycler file, frame times, clock offset):
:func:`analyze_path` reads and measures it as ``asymflux analyze`` does;
:func:`analyze_campaign` runs many on a dask.distributed client (:func:`local_client`);
:func:`write_analyze_output` writes their folder (tables, masks, ``clock.csv``,
``failures.csv``: :func:`write_clock_table`, :func:`write_failures_table`;
:func:`partial_output_warnings` reads the latter back). Results are kept and reused
when the files and options are unchanged (:func:`cached`, :func:`results_cache_dir`,
:func:`clear_results_cache`, :func:`find_cached_analysis`; ``analyze_path(cache=False)`` to
measure again; :func:`lookup`: an entry's value, or None).

What every front end checks and detects the same way: :func:`check_analysis_options`,
:func:`check_labels` (masks against the frames), :func:`check_stack_signal` /
:func:`blank_frame_reason` (frames that hold no image), :func:`detect_reference` (the
particles of a reference image, default size :func:`default_min_area_px`),
:func:`dataset_time_offset` (the clock offset a dataset carries), :func:`cohort_rows` (the
rows a cohort counts).

One particle, the same numbers everywhere: :func:`analyze_particle` (arrays) and
:func:`analyze_dataset_particle` (a dataset) run one particle through the pipeline of
:func:`analyze_dataset` -- register (:func:`estimate_drift` on
:func:`default_registration_region` of all particles), normalise the illumination,
dI, measure (:func:`particle_timeseries`) -- and crop it with that drift
(:func:`particle_crop`); :func:`asymflux.fit.fit_analysis` fits the crop. ``asymflux
analyze`` / ``asymflux fit``, the napari widget, the dashboards and the notebooks all call
these, so a particle has the same d(capacity) and the same fitted arcs in each.

Submodules are imported on first use (nothing heavy at ``import asymflux.analysis``).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "estimate_drift": "_registration",
    "correct_drift": "_registration",
    "register_stack": "_registration",
    "default_registration_region": "_registration",
    "reference_image": "_differential",
    "differential_intensity": "_differential",
    "registered_differential": "_differential",
    "NonPositiveReferenceWarning": "_differential",
    "frame_intensity": "_differential",
    "particle_free_pixels": "_differential",
    "DEFAULT_BACKGROUND_MARGIN_PX": "_differential",
    "detect_particles": "_detect",
    "default_min_area_px": "_detect",
    "particle_timeseries": "_measure",
    "TIMESERIES_COLUMNS": "_measure",
    "summarize_particles": "_summary",
    "classify_asymmetry": "_summary",
    "DEFAULT_WINDOW": "_summary",
    "DEFAULT_ASYMMETRY_THRESHOLD": "_summary",
    "PARTICLE_COLUMNS": "_summary",
    "crop_box": "_particle",
    "horizontal_line": "_particle",
    "particle_crop": "_particle",
    "ParticleCrop": "_particle",
    "analyze_particle": "_particle",
    "ParticleAnalysis": "_particle",
    "line_kymograph": "_kymograph",
    "kymograph_boundaries": "_kymograph",
    "last_unreacted_point": "_kymograph",
    "cohort_statistics": "_cohort",
    "wilson_interval": "_cohort",
    "true_classes": "_cohort",
    "confusion_matrix": "_cohort",
    "validate_classification": "_cohort",
    "analyze_dataset": "_pipeline",
    "check_analysis_options": "_pipeline",
    "check_stack_signal": "_pipeline",
    "blank_frame_reason": "_pipeline",
    "detect_reference": "_pipeline",
    "check_labels": "_measure",
    "cohort_rows": "_results",
    "dataset_time_offset": "_clock",
    "analyze_streaming": "_streaming",
    "analyze_dataset_particle": "_pipeline",
    "dataset_normalization": "_pipeline",
    "calibrate_stack": "_pipeline",
    "resolve_illumination": "_pipeline",
    "write_tables": "_pipeline",
    "dataset_name": "_naming",
    "is_analyze_output": "_pipeline",
    "ANALYZE_OUTPUTS": "_pipeline",
    "read_results": "_results",
    "results_folders": "_results",
    "read_frame_times": "_frametimes",
    "resolve_time_offset": "_clock",
    "analyze_path": "_dataset",
    "find_cached_analysis": "_dataset",
    "analyze_campaign": "_dataset",
    "local_client": "_dataset",
    "campaign_names": "_dataset",
    "write_clock_table": "_dataset",
    "write_failures_table": "_dataset",
    "write_analyze_output": "_dataset",
    "partial_output_warnings": "_dataset",
    "STREAM_MIN_PIXELS": "_dataset",
    "WORKER_MEMORY_BYTES": "_dataset",
    "cached": "_cache",
    "lookup": "_cache",
    "input_identity": "_cache",
    "results_cache_dir": "_cache",
    "clear_results_cache": "_cache",
    "resolve_normalization": "_pipeline",
    "analysis_options": "_options",
    "ILLUMINATION_CHOICES": "_options",
    "QUALITY_FLAGS": "_quality",
    "TimeOffset": "_clock",
    "apply_time_offset": "_clock",
    "estimate_time_offset": "_clock",
    "estimate_dataset_time_offset": "_clock",
    "mean_particle_signal": "_clock",
    "cycler_at_frames": "_clock",
    "incremental_capacity": "_clock",
    "incremental_capacity_table": "_clock",
}

__all__ = sorted(_EXPORTS)

def __getattr__(name):
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'asymflux.analysis' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{mod}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
