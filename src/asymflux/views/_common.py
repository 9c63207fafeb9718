"""Pieces shared by the views: cached computations, dataset loading, error messages."""

from __future__ import annotations

import os
import traceback
from pathlib import Path

import numpy as np
import panel as pn

from . import _compute as C

# --------------------------------------------------------------------- cached computations
# ``pn.cache`` memoizes across sessions of one server process (keys: the plain arguments).


@pn.cache(max_items=64)
def theta_maps(eta, blocked_fraction, angle_deg, rate_mA_g, diffusivity_scale, pixel_nm):
    return C.theta_maps(eta, blocked_fraction, angle_deg, rate_mA_g, diffusivity_scale,
                        pixel_nm=pixel_nm)


@pn.cache(max_items=2048)
def li_extracted(eta, blocked_fraction, rate_mA_g, diffusivity_scale):
    return C.li_extracted(eta, blocked_fraction, rate_mA_g, diffusivity_scale)


def rate_table(eta, blocked_fraction, diffusivity_scale):
    """Fig. 5b table, one cached simulation per point (a new rate or η costs few runs)."""
    return C.rate_table(eta, blocked_fraction, diffusivity_scale, point=li_extracted)


def dataset_stamp(spec: str) -> int:
    """Modification time (ns) of a dataset path, 0 for a demo name: part of the cache keys,
    so an edited or replaced dataset is re-read."""
    p = Path(str(spec).strip()).expanduser()
    try:
        meta = p / "metadata.json" if p.is_dir() else p
        return int(meta.stat().st_mtime_ns)
    except OSError:
        return 0


@pn.cache(max_items=32)
def _analyzed(spec: str, stamp: int):
    ds = C.load_dataset(spec)
    particles, ts, labels = C.analyze(ds)
    return ds, particles, ts, labels


def analyzed(spec: str):
    """``(dataset, particles, timeseries, labels)`` of a dataset name/path (cached)."""
    spec = str(spec).strip()
    return _analyzed(spec, dataset_stamp(spec))


@pn.cache(max_items=64)
def _measured(spec: str, stamp: int, particle_id: int):
    ds, _particles, ts, labels = _analyzed(spec, stamp)
    return C.measured_particle(ds, int(particle_id), ts, labels)


def measured(spec: str, particle_id: int) -> C.ParticleMovie:
    spec = str(spec).strip()
    return _measured(spec, dataset_stamp(spec), int(particle_id))


@pn.cache(max_items=64)
def _simulated(spec, stamp, particle_id, eta, blocked_fraction, angle_deg, rate_mA_g,
               diffusivity_scale):
    m = _measured(spec, stamp, int(particle_id))
    return C.simulated_particle(m.mask, m.pixel_nm, m.capacity_mAh_g, eta=eta,
                                blocked_fraction=blocked_fraction, angle_deg=angle_deg,
                                rate_mA_g=rate_mA_g, diffusivity_scale=diffusivity_scale)


def simulated(spec, particle_id, eta, blocked_fraction, angle_deg, rate_mA_g,
              diffusivity_scale) -> C.ParticleMovie:
    spec = str(spec).strip()
    return _simulated(spec, dataset_stamp(spec), int(particle_id), float(eta),
                      float(blocked_fraction), float(angle_deg), float(rate_mA_g),
                      float(diffusivity_scale))


# --------------------------------------------------------------------- helpers


def error_text(exc: BaseException) -> str:
    """One line for the page: the exception's type and message (no traceback)."""
    msg = str(exc).strip() or type(exc).__name__
    return f"**{type(exc).__name__}**: {msg}"


def log_exception(exc: BaseException) -> None:
    if os.environ.get("ASYMFLUX_DASHBOARD_DEBUG"):
        traceback.print_exception(exc)


def save_upload(data: bytes, filename: str) -> str:
    """Unpack an uploaded zip of a dataset folder; returns the folder's path as text."""
    if not data:
        raise C.DatasetSpecError("the upload is empty")
    if not str(filename or "").lower().endswith(".zip"):
        raise C.DatasetSpecError(f"{filename}: upload a .zip of a dataset folder")
    return str(C.extract_zip(data, name=filename))


def empty_plot(message: str = ""):
    import holoviews as hv

    return hv.Text(0.5, 0.5, message).opts(xaxis=None, yaxis=None, title=message[:60])


def session_arg(name: str, default=None):
    """A query-string argument of the page (``?dataset=aged``), or ``default``."""
    args = getattr(pn.state, "session_args", None) or {}
    vals = args.get(name)
    if not vals:
        return default
    v = vals[0]
    return v.decode() if isinstance(v, bytes) else str(v)


def finite_max(values, default=1.0) -> float:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return float(v.max()) if v.size else default
