"""What the dashboards compute, without Panel: plain functions, arrays and tables in and out.

The views (:mod:`asymflux.views.model_explorer`, :mod:`asymflux.views.cohort`) cache these
(:mod:`asymflux.views._jobs`: ``pn.cache``; :mod:`asymflux.views._pool`: worker processes
for the simulations)
and bind them to widgets. Keeping them here makes them testable without a
server and usable from notebooks.

Simulated and measured particles go through one code path: a simulated θ movie is imaged
by :func:`asymflux.optics.microscope` and then measured by
:func:`asymflux.analysis.analyze_particle` (the one-particle pipeline under
:func:`asymflux.analysis.analyze_dataset_particle`) and :func:`particle_kymograph`,
exactly as a measured movie is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from ..paper import (
    FIG4_MINUTES,  # times of the θ maps
    FIG4_RADIUS_UM,  # radius of the θ-map particle
    FIG4_SURFACES,
    FIG5B_SURFACES,
    PAPER_RATES_MA_G,  # marked on the rate slider
    UNREACTED_THRESHOLD,
    arc_text,
)
from ._errors import DatasetSpecError
from ._uploads import extract_zip

RATE_OPTIONS_MA_G = (25.0, 50.0, 75.0, 100.0, 150.0, 200.0, 300.0, 400.0, 600.0, 800.0)
"""Positions of the rate slider (mA/g)."""

CURVE_RATES_MA_G = PAPER_RATES_MA_G
"""Rates of the rate-capability curves (Fig. 5b) in the model explorer: the paper's four
(its Fig. 5b); the current setting's point is added at the slider's rate, whatever it is."""

SWEEP_MESH = (8, 16)
"""(n_radial, n_angular) of the rate-capability runs: Li extracted at the cut-off agrees with
the 20 x 48 mesh within 5e-5 per f.u. (the curves of Fig. 5b differ by 1e-3 to
1e-2; tests/views/test_pages.py) and runs 4-9x faster (60-100 ms a run here)."""

PARTICLE_MESH = (10, 32)
"""(n_radial, n_angular) of the simulated twin of a measured particle. Imaged through the
PSF and 65 nm pixels, its d(capacity) agrees with a 16 x 48 mesh's (the demo data's) within
15 nm (a quarter of a pixel), prescribed and kinetic, for the demo's particles 1-3 with a
quarter blocked at 180° (the test: particle 1, both surfaces), and it runs ~1.5x faster.
32 faces put the edges of that quarter on face edges, as 48 do; 12 x 36 (10° faces) split a
face at each edge, which the kinetic surface felt: 32-42 nm from the 16 x 48 twin. Other
fractions and angles split faces on any of these meshes."""

MAPS_MESH = (20, 48)
"""(n_radial, n_angular) of the θ-map run: the model's default disk mesh until issue #29 (now
20 x 96, for the core's offset at 400 mA/g); its θ maps at the sliders' rates are converged
and its runs 2-4x faster. ``asymflux simulate --mesh 20x48`` gives the same numbers."""

PREVIEW_MESH = (6, 16)
"""(n_radial, n_angular) of the coarse preview of the θ maps and curves that the model explorer
shows first after a slider move, while the :data:`MAPS_MESH` run refines them (4-6x faster;
its θ maps within ~0.06 occupancy of the fine ones over the sliders' range, 0.04 on 8 x 24 for
1.5x the time)."""

CURVE_MINUTES = tuple(round(0.25 * k, 2) for k in range(1, 81))
"""Sample times (min) of the V(t) and flux-ratio curves of the θ-map run (every 15 s to
20 min; t = 0 is always sampled)."""

FILM_LOG10_RANGE = (-3.0, 0.5)
"""The film-resistance slider's range, log10(Ω m²): 1e-3 (η ≈ 1) to 3.2 Ω m²."""


def film_from_log10(x: float) -> float:
    """Film resistance (Ω m²) of a log-scale slider position ``x`` = log10(R), to 3
    significant digits (``-0.69897`` -> ``0.2``)."""
    return float(f"{10.0 ** float(x):.3g}")


REFERENCE_SURFACES = {arc_text(label): (label, FIG4_SURFACES[label][1], FIG4_SURFACES[label][0])
                      for label in FIG5B_SURFACES}
"""Fig. 5b reference curves (:data:`asymflux.paper.FIG5B_SURFACES`): key (``"none"``,
``"180:0.25:0.7"``, ``"180:0.25:0.3"``) -> (label, η, blocked fraction)."""

CURRENT_LABEL = "current setting"

FIG5B_END_TEXT = "each charge ends when the surface occupancy first reaches 0.2"
"""Fig. 5b's end condition in words (:data:`asymflux.model.FIG5B_END`, every run: the
reference curves, the current setting, prescribed or kinetic), written on the PNG's title."""

FIG5B_END_SHORT = "end: surface θ 0.2"
""":data:`FIG5B_END_TEXT` short enough for the page's 600-pixel plot title."""


# ----------------------------------------------------------------------------- model


def make_surface(eta: float, blocked_fraction: float, angle_deg: float = 180.0,
                 film_ohm_m2: float | None = None):
    """One blocked arc (or none when the fraction is 0 or η is 1).

    With ``film_ohm_m2`` a kinetic surface instead (Butler-Volmer through a film of that
    resistance on the arc, ``asymflux simulate --film CENTER:FRACTION:R``; ``eta`` unused;
    a clean kinetic particle when the fraction is 0)."""
    from asymflux import model

    if film_ohm_m2 is not None:
        if blocked_fraction <= 0:
            return model.Surface.kinetic()
        return model.Surface.kinetic([model.FilmArc(float(angle_deg) % 360.0,
                                                    float(blocked_fraction), float(film_ohm_m2))])
    if blocked_fraction <= 0 or eta >= 1:
        return model.Surface()
    return model.Surface([model.BlockedArc(float(angle_deg) % 360.0, float(blocked_fraction),
                                           float(eta))])


class UserTable(NamedTuple):
    """A user's material table as the explorer holds it (hashable: part of the runs' cache
    keys; sent to the worker processes): the uploaded file's ``name``, ``theta`` and the
    values (``voltage_V`` of an OCV, ``diffusivity_m2_s`` of a D(θ)), sorted by θ."""

    name: str
    theta: tuple
    values: tuple


class Material(NamedTuple):
    """The user's tables a run uses instead of the built-in set's curves
    (``asymflux simulate --ocv FILE.csv --diffusivity FILE.csv``): a :class:`UserTable`
    or None (the built-in curve) each."""

    ocv: UserTable | None = None
    diffusivity: UserTable | None = None


TABLE_COLUMNS = {"ocv": "voltage_V", "diffusivity": "diffusivity_m2_s"}
"""The value column of each kind of table (after ``theta``), as ``--ocv`` / ``--diffusivity``
read them."""


def read_user_table(data: bytes, name: str, kind: str) -> UserTable:
    """An uploaded CSV table (``kind`` ``"ocv"``: columns ``theta, voltage_V``;
    ``"diffusivity"``: ``theta, diffusivity_m2_s``) read and checked by the functions
    behind ``asymflux simulate --ocv / --diffusivity``
    (:func:`asymflux.model.parameters.read_table_csv`, :class:`~asymflux.model.parameters.TableOCV`,
    :class:`~asymflux.model.parameters.TableDiffusivity`): the same ``ValueError``, naming
    the file ``name``, the column and what was expected."""
    import io

    from asymflux import model
    from asymflux.model.parameters import read_table_csv

    column = TABLE_COLUMNS[kind]
    name = str(name or "the upload")
    if not data:
        raise ValueError(f"{name}: the file is empty; expected a CSV table with a header line "
                         f"'theta,{column}'")
    theta, values = read_table_csv(io.BytesIO(data), column, source=name)
    table = (model.TableOCV if kind == "ocv" else model.TableDiffusivity)(theta, values,
                                                                          source=name)
    return UserTable(name, tuple(float(v) for v in table.theta),
                     tuple(float(v) for v in getattr(table, column)))


def material_label(material: Material | None, *, short: bool = False) -> str:
    """Which OCV and D(θ) the runs use, in words: the uploaded files' names, else the
    built-in set's (``short``: a plot title's few words)."""
    ocv = material.ocv if material is not None else None
    d = material.diffusivity if material is not None else None
    if short:
        return (f"OCV {ocv.name if ocv else 'built-in'}, "
                f"D(θ) {d.name if d else 'built-in'}")
    built_in = built_in_curves()
    return (f"OCV: {_table_text(ocv, 'V') if ocv else built_in['ocv']}; "
            f"D(θ): {_table_text(d, 'm²/s') if d else built_in['diffusivity']}")


def built_in_curves() -> dict:
    """The default set's OCV and D(θ) in words (``{"ocv": ..., "diffusivity": ...}``): the
    set's name and each curve's function name, or its ``repr``."""
    from asymflux import model

    params = model.nmc88_lun2025()
    out = {}
    for kind, key in (("ocv", "Open-circuit voltage [V]"), ("diffusivity", "Diffusivity [m2.s-1]")):
        f = params[key]
        out[kind] = f"built-in (nmc88_lun2025: {getattr(f, '__name__', None) or repr(f)})"
    return out


def _table_text(table: UserTable, unit: str) -> str:
    return (f"{table.name} ({len(table.theta)} points, θ {table.theta[0]:g}-"
            f"{table.theta[-1]:g}, {min(table.values):.3g}-{max(table.values):.3g} {unit})")


def material_curves(material: Material | None, theta=None) -> pd.DataFrame:
    """The OCV and D(θ) the runs use (:func:`_params`), sampled at ``theta`` (default 0.2-1
    in 161 steps): ``theta, voltage_V, diffusivity_m2_s``."""
    params = _params(1.0, material)
    th = np.linspace(0.2, 1.0, 161) if theta is None else np.asarray(theta, dtype=float)
    return pd.DataFrame({"theta": th,
                         "voltage_V": np.asarray(params["Open-circuit voltage [V]"](th), float),
                         "diffusivity_m2_s": np.asarray(params["Diffusivity [m2.s-1]"](th),
                                                        float)})


def _params(diffusivity_scale: float, material: Material | None = None):
    """The explorer's parameter set: ``nmc88_lun2025`` with the user's tables
    (:func:`asymflux.model.parameters_from_tables`, as ``--ocv`` / ``--diffusivity``) and D
    scaled."""
    from asymflux import model

    params = model.nmc88_lun2025()
    if material is not None and (material.ocv or material.diffusivity):
        ocv, d = material
        params = model.parameters_from_tables(
            ocv=None if ocv is None else model.TableOCV(ocv.theta, ocv.values,
                                                        source=ocv.name),
            diffusivity=None if d is None else model.TableDiffusivity(d.theta, d.values,
                                                                      source=d.name),
            base=params)
    if diffusivity_scale != 1.0:
        params = model.scale_diffusivity(params, float(diffusivity_scale))
    return params


def theta_maps(eta, blocked_fraction, angle_deg, rate_mA_g, diffusivity_scale=1.0, *,
               pixel_nm=40.0, minutes=FIG4_MINUTES, radius_um=FIG4_RADIUS_UM,
               film_ohm_m2=None, mesh=MAPS_MESH, curve_minutes=CURVE_MINUTES,
               material=None) -> pd.DataFrame:
    """θ maps of one surface at ``minutes`` of charge (one row of Fig. 4).

    One run of the model (``mesh`` = (n_radial, n_angular)), sampled at ``minutes`` and at
    ``curve_minutes`` (up to the last of ``minutes``): the same run, sample times and
    numbers as ``asymflux simulate --minutes <both, sorted>``. ``material``: the user's
    OCV / D(θ) tables (:class:`Material`; ``--ocv`` / ``--diffusivity``).

    Returns
    -------
    DataFrame
        ``surface, minutes, x_um, y_um, theta, reached`` (the layout of
        :func:`asymflux.figures.fig4_data`); a time after the end of the run (the surface
        emptied) has an all-NaN ``theta`` and ``reached=False``. ``attrs["curves"]`` is
        :func:`run_curves` of the run (V(t), the arc's flux ratio).
    """
    from asymflux import model

    surface = make_surface(eta, blocked_fraction, angle_deg, film_ohm_m2)
    output = run_minutes(minutes, curve_minutes)
    res = model.simulate(_params(diffusivity_scale, material),
                         model.disk_mesh(radius_um, n_radial=mesh[0], n_angular=mesh[1]), surface,
                         [model.Charge(float(rate_mA_g), minutes=max(minutes))],
                         output_minutes=output)
    x_um, y_um = res.mesh.pixel_grid(pixel_nm)
    rows = []
    label = surface_label(eta, blocked_fraction, angle_deg, film_ohm_m2)
    for m in minutes:
        hit = np.flatnonzero(np.abs(res.minutes - m) < 1e-6)
        if hit.size:
            th = res.to_image(pixel_nm, indices=hit[:1]).theta[0]
        else:
            th = np.full((y_um.size, x_um.size), np.nan)
        rows.append({"surface": label, "minutes": float(m),
                     "x_um": x_um, "y_um": y_um, "theta": th, "reached": bool(hit.size)})
    out = pd.DataFrame(rows)
    out.attrs["end_reason"] = res.end_reason
    out.attrs["end_minutes"] = float(res.minutes[-1])
    out.attrs["curves"] = run_curves(res)
    out.attrs["mesh"] = tuple(int(n) for n in mesh)
    return out


def run_minutes(minutes=FIG4_MINUTES, curve_minutes=CURVE_MINUTES) -> list[float]:
    """The output times of :func:`theta_maps`' run: ``minutes`` and ``curve_minutes`` up to
    the last of ``minutes``, sorted (pass them to ``asymflux simulate --minutes``)."""
    end = max(minutes)
    return sorted({float(m) for m in minutes} | {float(m) for m in curve_minutes if m <= end})


def run_curves(res) -> pd.DataFrame:
    """V(t) and the flux ratio of a run's first arc at every sample (the end of the charge,
    e.g. at 4.3 V, included): ``minutes, capacity_mAh_g, voltage_V, flux_ratio``.

    ``voltage_V`` is :attr:`asymflux.model.Result.voltage_V` (the particle potential with a
    kinetic surface, else the highest surface OCV); ``flux_ratio`` the arc's mean current
    density over the clean surface's (:attr:`~asymflux.model.Result.arc_flux_ratio`: η
    itself for a prescribed arc; NaN without an arc)."""
    ratio = res.arc_flux_ratio
    flux = (np.asarray(ratio[:, 0], dtype=float) if ratio is not None and ratio.ndim == 2
            and ratio.shape[1] else np.full(res.times_s.shape, np.nan))
    return pd.DataFrame({"minutes": res.minutes, "capacity_mAh_g": res.capacity_mAh_g,
                         "voltage_V": res.voltage_V, "flux_ratio": flux})


def empty_theta_maps(*, pixel_nm=40.0, minutes=FIG4_MINUTES, radius_um=FIG4_RADIUS_UM,
                     surface="no data") -> pd.DataFrame:
    """The table of :func:`theta_maps` with every map NaN (``reached=False``)."""
    from asymflux import model

    x_um, y_um = model.disk_mesh(radius_um).pixel_grid(pixel_nm)
    out = pd.DataFrame([{"surface": surface, "minutes": float(m), "x_um": x_um, "y_um": y_um,
                         "theta": np.full((y_um.size, x_um.size), np.nan), "reached": False}
                        for m in minutes])
    out.attrs["curves"] = pd.DataFrame({"minutes": [], "capacity_mAh_g": [], "voltage_V": [],
                                        "flux_ratio": []})
    return out


def surface_label(eta, blocked_fraction, angle_deg, film_ohm_m2=None) -> str:
    if film_ohm_m2 is not None:
        if blocked_fraction <= 0:
            return "kinetic, no film"
        return (f"kinetic, {blocked_fraction:.0%} film at {angle_deg % 360:g}°, "
                f"R = {film_ohm_m2:.3g} Ω m²")
    if blocked_fraction <= 0 or eta >= 1:
        return "no blocking"
    return f"{blocked_fraction:.0%} blocked at {angle_deg % 360:g}°, η = {eta:.2g}"


def li_extracted(eta, blocked_fraction, rate_mA_g, diffusivity_scale=1.0,
                 film_ohm_m2=None, material=None) -> float:
    """Li extracted per f.u. when the surface occupancy first reaches 0.2 (Fig. 5b), on a
    prescribed or a kinetic surface (``film_ohm_m2``) alike: every run of the figure ends
    at :data:`asymflux.model.FIG5B_END` (:data:`FIG5B_END_TEXT`), as ``asymflux rate-sweep``'s
    runs do; the same number as ``rate-sweep`` on the :data:`SWEEP_MESH` mesh.

    The disk is rotationally symmetric, so the arc's angle does not matter: it is fixed at
    180° here (one cached value per (η, fraction, rate, D scale, film, material)).
    ``material``: the user's tables (:class:`Material`), as ``rate-sweep --ocv``.
    """
    from asymflux import model

    surface = make_surface(eta, blocked_fraction, 180.0, film_ohm_m2)
    res = model.simulate(_params(diffusivity_scale, material),
                         model.disk_mesh(FIG4_RADIUS_UM, n_radial=SWEEP_MESH[0],
                                         n_angular=SWEEP_MESH[1]),
                         surface, [model.fig5b_charge(float(rate_mA_g))])
    return float(res.li_extracted[-1])


def li_extracted_at_rates(eta, blocked_fraction, rates_mA_g, diffusivity_scale=1.0,
                          film_ohm_m2=None, material=None) -> list[float]:
    """:func:`li_extracted` at several rates, the runs side by side in one integration
    (:func:`asymflux.model.simulate_side_by_side`: the same runs, to the integrator's
    tolerance, within 1e-4 per f.u. of one run each; 4-5 kinetic runs cost ~0.4-0.6 s instead
    of ~0.75-0.9 s). The angle is fixed at 180° as in :func:`li_extracted`.

    Returns one value per rate; if a run fails (the solver's error names its step), each rate
    is run alone and a rate that fails alone gets its exception in its place, so that the
    others are still shown."""
    from asymflux import model

    surface = make_surface(eta, blocked_fraction, 180.0, film_ohm_m2)
    try:
        ends = model.simulate_side_by_side(
            _params(diffusivity_scale, material),
            model.disk_mesh(FIG4_RADIUS_UM, n_radial=SWEEP_MESH[0], n_angular=SWEEP_MESH[1]),
            surface, [model.fig5b_charge(float(r)) for r in rates_mA_g])
    except model.SolverError:
        out = []
        for r in rates_mA_g:
            try:
                out.append(li_extracted(eta, blocked_fraction, r, diffusivity_scale, film_ohm_m2,
                                        material))
            except model.SolverError as e:
                out.append(e)
        return out
    return [float(end["li_extracted"]) for end in ends]


def rate_table(eta, blocked_fraction, diffusivity_scale=1.0, *, rates=CURVE_RATES_MA_G,
               point=None, film_ohm_m2=None, material=None) -> pd.DataFrame:
    """Fig. 5b table: the paper's three surfaces and the current setting, against rate.

    ``point`` is a callable ``(eta, fraction, rate, dscale, film_ohm_m2, material) -> float``
    (default :func:`li_extracted`; the views pass a cached one). ``film_ohm_m2``: the current
    setting is a kinetic surface (the paper's three stay prescribed). ``material``: the
    user's tables (:class:`Material`), used by every curve.

    Returns
    -------
    DataFrame
        ``rate_mA_g, blocked, label, li_extracted``; ``blocked`` is the paper's key
        (``"none"``, ``"180:0.25:0.7"``, ``"180:0.25:0.3"``) or ``"current setting"``;
        ``attrs["end_condition"]`` as :func:`asymflux.model.rate_capability`'s.
    """
    point = li_extracted if point is None else point
    rows = []
    curves = dict(REFERENCE_SURFACES)
    curves[CURRENT_LABEL] = (CURRENT_LABEL, float(eta), float(blocked_fraction))
    for key, (label, e, f) in curves.items():
        film = film_ohm_m2 if key == CURRENT_LABEL else None
        for r in rates:
            rows.append({"rate_mA_g": float(r), "blocked": key, "label": label,
                         "li_extracted": point(e, f, float(r), float(diffusivity_scale), film,
                                               material)})
    table = pd.DataFrame(rows)
    table.attrs["end_condition"] = FIG5B_END_TEXT.removeprefix("each charge ")
    return table


# ----------------------------------------------------------------------------- particles


@dataclass
class ParticleMovie:
    """A particle's movie and measurements (measured or simulated: same fields).

    ``stack`` is the (registered, for measured data) crop (n_frames, row, col) of raw
    intensity; ``dI`` its differential intensity; ``mask`` the particle's pixels in the
    crop; ``timeseries`` the rows of :func:`asymflux.analysis.particle_timeseries` with a
    ``source`` column; ``kymograph`` / ``distance_nm`` / ``line`` the horizontal line-cut
    through the centre of mass ((row, col) end points in crop pixels); ``boundaries`` the
    dI = 0.05 crossings (:func:`asymflux.analysis.kymograph_boundaries`).
    """

    source: str
    pixel_nm: float
    capacity_mAh_g: np.ndarray
    time_s: np.ndarray
    stack: np.ndarray
    dI: np.ndarray
    mask: np.ndarray
    timeseries: pd.DataFrame
    kymograph: np.ndarray
    distance_nm: np.ndarray
    line: tuple
    boundaries: pd.DataFrame
    extra: dict


def particle_kymograph(dI, mask, pixel_nm, *, threshold=UNREACTED_THRESHOLD):
    """Line-cut kymograph of a particle (both measured and simulated use this)."""
    from asymflux import analysis

    start, end = analysis.horizontal_line(mask)
    kymo, dist = analysis.line_kymograph(np.asarray(dI), start, end, linewidth=1,
                                         pixel_nm=pixel_nm)
    bounds = analysis.kymograph_boundaries(kymo, dist, threshold=threshold)
    return kymo, dist, (start, end), bounds


def particle_movie(one, source: str, *, extra=None) -> ParticleMovie:
    """The :class:`ParticleMovie` of one particle through the one-particle pipeline
    (``one``: an :class:`asymflux.analysis.ParticleAnalysis`, measured or simulated): its
    table with a ``source`` column first, its registered crop and the crop's line-cut."""
    crop = one.crop
    table = one.timeseries.drop(columns="dataset", errors="ignore")
    table.insert(0, "source", source)
    kymo, dist, line, bounds = particle_kymograph(crop.dI, crop.mask, one.pixel_nm)
    return ParticleMovie(source=source, pixel_nm=float(one.pixel_nm),
                         capacity_mAh_g=one.capacity_mAh_g, time_s=one.time_s, stack=crop.stack,
                         dI=np.asarray(crop.dI, dtype=np.float32), mask=crop.mask, timeseries=table,
                         kymograph=kymo, distance_nm=dist, line=line, boundaries=bounds,
                         extra=dict(extra or {}))


def measured_particle(dataset, particle_id: int, timeseries: pd.DataFrame, labels,
                      *, pad_px=6) -> ParticleMovie:
    """The movie of one particle of a dataset through the one-particle pipeline
    (:func:`asymflux.analysis.analyze_dataset_particle`), registered with the drift that
    :func:`asymflux.analysis.analyze_dataset` estimated (``timeseries`` is its table): the
    same d(capacity) as ``asymflux analyze`` and the napari widget."""
    from asymflux import analysis

    ts = timeseries[timeseries["particle_id"] == int(particle_id)].sort_values("frame")
    shifts = ts[["drift_row_px", "drift_col_px"]].to_numpy(dtype=float)
    if shifts.shape[0] != dataset.stack.shape[0] or not np.all(np.isfinite(shifts)):
        shifts = None
    one = analysis.analyze_dataset_particle(dataset, int(particle_id), masks=labels,
                                            shifts_px=shifts, pad_px=pad_px)
    return particle_movie(one, "measured", extra={"box": one.crop.box, "shifts_px": one.shifts_px})


def ellipse_outline(mask, pixel_nm, *, center_rc):
    """An :class:`asymflux.optics.Outline` ellipse with the mask's area and second moments."""
    from asymflux import optics

    rows, cols = np.nonzero(mask)
    p = float(pixel_nm) / 1000.0
    x = (cols - cols.mean()) * p
    y = -(rows - rows.mean()) * p
    area = rows.size * p * p
    r_eq = np.sqrt(area / np.pi)
    cov = np.cov(np.vstack([x, y])) if rows.size > 2 else np.eye(2)
    w, v = np.linalg.eigh(cov)
    w = np.clip(w, 1e-12, None)
    aspect = float(np.clip(np.sqrt(w[1] / w[0]), 1.0, 3.0))
    ang = float(np.degrees(np.arctan2(v[1, 1], v[0, 1])))
    b = r_eq / np.sqrt(aspect)
    return optics.Outline(tuple(float(c) for c in center_rc), "ellipse", (b * aspect, b, ang))


def simulated_particle(mask, pixel_nm, capacity_mAh_g, *, eta, blocked_fraction, angle_deg,
                       rate_mA_g, diffusivity_scale=1.0, pad_px=6, theta_ref=None,
                       film_ohm_m2=None, material=None) -> ParticleMovie:
    """The simulated twin of a measured particle, measured the same way.

    The particle is simulated on a disk of its equivalent radius (charge at ``rate_mA_g``
    to the measured frames' capacities), mapped onto an ellipse with the mask's area and
    orientation (:func:`asymflux.optics.map_disk_to_outline`), imaged by
    :func:`asymflux.optics.microscope` (PSF, no noise, no drift) and measured by
    :func:`asymflux.analysis.analyze_particle`, the one-particle pipeline a measured
    particle goes through (:func:`measured_particle`), without registration (the twin
    does not drift) and cropped with the same ``pad_px``.

    Parameters
    ----------
    mask : (row, col) bool array
        The measured particle's pixels.
    capacity_mAh_g : (n_frames,) array
        Capacities of the measured frames; NaN frames are dropped. Frames after the end
        of the simulated charge (the surface emptied) are dropped too.
    film_ohm_m2 : float, optional
        A kinetic surface (:func:`make_surface`); ``eta`` is then unused.
    material : Material, optional
        The user's OCV / D(θ) tables.
    """
    from asymflux import analysis, model, optics

    mask = np.asarray(mask, dtype=bool)
    cap = np.asarray(capacity_mAh_g, dtype=float)
    cap = np.unique(cap[np.isfinite(cap) & (cap >= 0)])
    if cap.size < 2:
        raise ValueError("the measured particle needs at least two frames with a capacity")
    rate = float(rate_mA_g)
    minutes = cap / rate * 60.0
    rows, cols = np.nonzero(mask)
    h = int(rows.max() - rows.min() + 1 + 2 * pad_px)
    w = int(cols.max() - cols.min() + 1 + 2 * pad_px)
    center = (rows.mean() - rows.min() + pad_px, cols.mean() - cols.min() + pad_px)
    outline = ellipse_outline(mask, pixel_nm, center_rc=center)
    r_eq = outline.equivalent_radius_um
    params = _params(diffusivity_scale, material)
    surface = make_surface(eta, blocked_fraction, angle_deg, film_ohm_m2)
    res = model.simulate(params, model.disk_mesh(r_eq, n_radial=PARTICLE_MESH[0],
                                                 n_angular=PARTICLE_MESH[1]), surface,
                         [model.Charge(rate, minutes=float(minutes.max()))],
                         output_minutes=[float(m) for m in minutes if m > 0])
    idx, keep = [], []
    for k, m in enumerate(minutes):
        hit = np.flatnonzero(np.abs(res.minutes - m) < 1e-6)
        if hit.size:
            idx.append(int(hit[0]))
            keep.append(k)
    idx = np.asarray(idx)
    shape = (h, w)
    cov = outline.coverage(shape, pixel_nm=pixel_nm)
    theta = optics.map_disk_to_outline(res, outline, shape=shape, pixel_nm=pixel_nm, indices=idx,
                                       where=cov > 0)
    theta = np.where(cov[None] > 0, theta, np.nan)
    stack = optics.microscope(theta, np.random.default_rng(0), coverage=cov,
                              particle_reflectivity=1.0, matrix_reflectivity=0.3,
                              pixel_nm=pixel_nm, noise=False,
                              **({} if theta_ref is None else {"theta_ref": theta_ref}))
    sim_mask = outline.mask(shape, pixel_nm=pixel_nm)
    one = analysis.analyze_particle(stack, sim_mask.astype(np.int32), 1, pixel_nm=pixel_nm,
                                    time_s=minutes[keep] * 60.0, capacity_mAh_g=cap[keep],
                                    register=False, pad_px=pad_px)
    return particle_movie(one, "simulated",
                          extra={"end_reason": res.end_reason, "r_eq_um": r_eq, "outline": outline})


# ----------------------------------------------------------------------------- datasets


def time_offset_value(value):
    """The clock offset a page was given: None (empty: the dataset's own), ``"auto"`` or
    seconds (float); ``cycler_time_s = camera_time_s + offset``. A
    :class:`~asymflux.analysis.TimeOffset` is kept as it is. Part of the cache keys.

    Raises
    ------
    DatasetSpecError
        Text that is neither empty, ``auto`` nor a finite number of seconds.
    """
    import math

    from asymflux.analysis import TimeOffset

    if value is None or isinstance(value, TimeOffset):
        return value
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if text.lower() == "auto":
            return "auto"
        value = text.removesuffix("s").strip()
    try:
        out = float(value)
    except (TypeError, ValueError):
        out = math.nan
    if not math.isfinite(out):
        raise DatasetSpecError(f"clock offset: expected seconds (cycler time = frame time + "
                               f"offset), 'auto' or nothing, got {value!r}")
    return out


def time_offset_used(particles, dataset=None):
    """The clock offset a dataset was analysed with (:class:`~asymflux.analysis.TimeOffset`):
    the dataset's, else the particle table's ``attrs["time_offset"]`` or its
    ``time_offset_*`` columns, else none."""
    from asymflux.analysis import TimeOffset, dataset_time_offset

    if dataset is not None:
        return dataset_time_offset(dataset)
    own = (getattr(particles, "attrs", None) or {}).get("time_offset")
    if own:
        return TimeOffset.from_dict(own)
    cols = ("time_offset_s", "time_offset_uncertainty_s", "time_offset_method")
    if particles is not None and set(cols) <= set(particles.columns) and len(particles):
        row = particles.iloc[0]
        return TimeOffset(offset_s=float(row[cols[0]]), uncertainty_s=float(row[cols[1]]),
                          method=str(row[cols[2]]))
    return TimeOffset()


def load_dataset(spec: str, *, time_offset_s=None):
    """A demo dataset by name (``"aged"``), or a dataset folder / stack by path.

    ``time_offset_s`` (:func:`time_offset_value`: None, seconds, ``"auto"`` or a
    TimeOffset): its cycler table put on the camera's clock
    (:func:`asymflux.analysis.apply_time_offset`, as ``asymflux analyze --time-offset-s``);
    None keeps the dataset's own."""
    return with_time_offset(_load_dataset(spec), time_offset_s, spec=spec)


def with_time_offset(dataset, time_offset_s, *, spec=""):
    """``dataset`` with its cycler table on the camera's clock
    (:func:`asymflux.analysis.apply_time_offset`; ``"auto"`` estimates the offset from the
    particles detected on frame 0, as ``asymflux analyze --time-offset-s auto``); itself
    for None. An offset that cannot be applied or estimated: :class:`DatasetSpecError`
    naming ``spec``."""
    offset = time_offset_value(time_offset_s)
    if offset is None:
        return dataset
    from asymflux.analysis import apply_time_offset

    try:
        return apply_time_offset(dataset, offset)
    except ValueError as e:
        spec = str(spec).strip()
        raise DatasetSpecError(str(e) if spec in str(e) else f"{spec}: {e}") from e


def _load_dataset(spec: str):
    from asymflux import datasets
    from asymflux.io import read_dataset

    spec = str(spec).strip()
    if not spec:
        raise DatasetSpecError("no dataset given: type a demo dataset name or a folder path")
    if spec in datasets.list_datasets():
        return datasets.load(spec)
    path = Path(spec).expanduser()
    if not path.exists():
        raise DatasetSpecError(
            f"{spec!r} is neither a demo dataset ({', '.join(datasets.list_datasets()[:4])}, ...) "
            "nor an existing path")
    if path.is_file() and path.suffix.lower() == ".zip":
        return read_dataset(extract_zip(path.read_bytes(), name=path.name))
    return read_dataset(path)


_DATASET_FILES = ("frames.csv", "echem.csv", "masks.tif", "annotations.csv", "stack.ome.tif",
                  "stack.zarr")
"""Files of a dataset folder besides metadata.json (docs/dataset-format.md)."""


RESULTS_SEP = "#"
"""``<analyze output folder>#<dataset name>``: one dataset of an ``asymflux analyze``
results folder, read from its tables (:func:`results_spec`)."""


def results_spec(spec) -> tuple[Path, str | None] | None:
    """``(folder, dataset name or None)`` when ``spec`` names an ``asymflux analyze`` output
    folder (``folder`` or ``folder#dataset``, :data:`RESULTS_SEP`), else None."""
    from asymflux.analysis import is_analyze_output

    text = str(spec).strip()
    folder, sep, name = text.rpartition(RESULTS_SEP)
    if not sep:
        folder, name = text, ""
    path = Path(folder).expanduser()
    if path.is_dir() and not (path / "metadata.json").exists() and is_analyze_output(path):
        return path, (name or None)
    return None


def results_dataset_specs(folder) -> list[str]:
    """One spec per dataset of the analyze outputs ``folder`` is or holds (``[]`` if
    none): ``<output>#<dataset>`` (the output itself when its tables name no dataset)."""
    from asymflux.analysis import read_results, results_folders

    out = []
    for f in results_folders(folder):
        try:
            particles = read_results(f, timeseries=False, require=())[0]
        except ValueError:
            out.append(str(f))  # its reading says why, as that dataset's problem
            continue
        names = (list(dict.fromkeys(particles["dataset"].astype(str)))
                 if "dataset" in particles.columns else [])
        out += [f"{f}{RESULTS_SEP}{n}" for n in names] or [str(f)]
    return out


def read_results_spec(spec):
    """``(particles, timeseries, labels)`` of one dataset of an analyze output (a
    :func:`results_spec`), read from its tables, not analysed again; ``labels`` from its
    ``masks/<dataset>.tif`` (None if absent). DatasetSpecError if it cannot be read."""
    from asymflux.analysis import read_results

    found = results_spec(spec)
    if found is None:
        raise DatasetSpecError(f"{spec}: not an asymflux analyze output folder")
    folder, name = found
    try:
        particles, ts = read_results(folder, require=("classification", "particle_id"))
    except ValueError as e:
        raise DatasetSpecError(str(e)) from None
    if ts is None:
        raise DatasetSpecError(f"{folder}: holds no timeseries.csv (the particles' "
                               "d(capacity)); analyse the datasets again")
    if name is not None and "dataset" in particles.columns:
        particles = particles[particles["dataset"].astype(str) == name]
        ts = ts[ts["dataset"].astype(str) == name] if "dataset" in ts.columns else ts
        if particles.empty:
            raise DatasetSpecError(f"{folder}: its particles.csv holds no dataset {name!r}")
    labels = None
    mask_file = folder / "masks" / f"{name}.tif"
    if name is not None and mask_file.is_file():
        import tifffile

        labels = tifffile.imread(mask_file)
    if "ageing" not in particles.columns:
        particles = particles.assign(ageing="unknown")
    return particles.reset_index(drop=True), ts.reset_index(drop=True), labels


def results_particle(timeseries, particle_id: int) -> ParticleMovie:
    """A particle of an analyze output: its d(capacity) from the table, no movie (an
    analyze output holds none: ``dI`` has no pixels, ``extra["no_movie"]`` says why)."""
    ts = timeseries[timeseries["particle_id"] == int(particle_id)].sort_values("frame")
    if ts.empty:
        raise DatasetSpecError(f"no particle {particle_id} in the results table")
    table = ts.drop(columns=[c for c in ("dataset",) if c in ts.columns])
    table.insert(0, "source", "measured")
    n = len(table)
    empty = np.zeros((n, 0, 0), np.float32)
    return ParticleMovie(
        source="measured", pixel_nm=float("nan"),
        capacity_mAh_g=table["capacity_mAh_g"].to_numpy(float),
        time_s=table["time_s"].to_numpy(float), stack=empty, dI=empty,
        mask=np.zeros((0, 0), bool), timeseries=table.reset_index(drop=True),
        kymograph=np.zeros((n, 0)), distance_nm=np.zeros(0), line=None,
        boundaries=pd.DataFrame(), extra={"no_movie": "an analyze results folder holds the "
                                                    "tables, not the movie"})


def dataset_specs(spec: str) -> list[str]:
    """Several datasets: a demo group (``"cohorts"``), names/paths separated by commas, a
    folder holding dataset folders, or an ``asymflux analyze`` output (or a folder of
    them): one spec per dataset of its tables (:func:`results_dataset_specs`)."""
    from asymflux import datasets

    spec = str(spec).strip()
    if not spec:
        raise DatasetSpecError("no datasets given: a demo group (e.g. 'cohorts'), names or a folder")
    groups = datasets.list_groups()
    if spec in groups:
        return list(groups[spec])
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    out = []
    for p in parts:
        if p in groups:
            out += groups[p]
            continue
        path = Path(p).expanduser()
        if path.is_dir() and not (path / "metadata.json").exists():
            results = results_dataset_specs(path)
            if results:  # analyze's tables: read, not analysed again
                out += results
                continue
            # asymflux.io's scan: hidden entries (leftovers of interrupted writes,
            # .name.tmp-*, .name.old-*, .asymflux-partial/) are never counted
            from asymflux.io import dataset_folders

            subs = [str(s) for s in dataset_folders(path)]
            if not subs and any((path / f).exists() for f in _DATASET_FILES):
                out.append(p)  # a dataset folder without metadata.json: its reader says so
                continue
            if not subs:
                raise DatasetSpecError(f"{path}: holds no dataset folders (with metadata.json) "
                                       "and no asymflux analyze output (particles.csv)")
            out += subs
        else:
            out.append(p)
    return out


def dataset_source(spec) -> Path | None:
    """The path the dataset ``spec`` is read from, for the results cache: a demo dataset's
    folder (the one ``make demo`` / ``asymflux datasets`` built, :func:`asymflux.datasets.path`),
    a dataset folder or stack; None for a zip or an uploaded folder (unpacked anew by each
    server: nothing to find again) and for what is not on disk."""
    from asymflux import datasets

    spec = str(spec).strip()
    if spec in datasets.list_datasets():
        return datasets.path(spec)
    path = Path(spec).expanduser()
    if not spec or not path.exists() or (path.is_file() and path.suffix.lower() == ".zip"):
        return None
    if any(q.name.startswith("asymflux-upload-") for q in (path, *path.parents)):
        return None
    return path


def cached_analysis(source, *, time_offset_s=None):
    """``(particles, timeseries, labels)`` of :func:`analyze` of the dataset read from
    ``source`` (:func:`dataset_source`) with this clock offset when the results cache holds
    them, else None: nothing measured (a page shows them at once, without a worker)."""
    if source is None:
        return None
    from asymflux import analysis

    found = analysis.find_cached_analysis(source, time_offset_s=time_offset_value(time_offset_s))
    return None if found is None else found[:3]


def analyze(dataset, *, source=None, time_offset_s=None, cache=True):
    """``(particles, timeseries, labels)`` of :func:`asymflux.analysis.analyze_dataset`.

    With ``source``, the path ``dataset`` was read from (:func:`dataset_source`), and
    ``time_offset_s``, the clock offset applied to it (:func:`with_time_offset`): the
    analysis of ``asymflux analyze`` (:func:`asymflux.analysis.analyze_path`, the same
    tables), through the results cache (``cache``; ``docs/cache.md``): read back when the
    dataset was analysed before, with the same files and options, by any front end.

    The analysis refuses a dataset it cannot use (a blank stack, no particle, ...) with a
    ValueError naming it: raised as :class:`DatasetSpecError` (the page shows it as the
    dataset's problem, not as an unexpected error)."""
    from asymflux import analysis

    try:
        if source is not None and cache:
            particles, ts, labels, _ = analysis.analyze_path(
                source, time_offset_s=time_offset_value(time_offset_s), cache=cache,
                require_capacity=False)
            return particles, ts, labels
        return analysis.analyze_dataset(dataset, return_labels=True)
    except ValueError as e:
        if isinstance(e, DatasetSpecError) or type(e).__name__ == "DatasetError":
            raise
        where = [str(x) for x in (getattr(dataset, "path", None),
                                  (getattr(dataset, "metadata", None) or {}).get("name"))
                 if x]
        if any(w in str(e) for w in where):  # worded by the analysis: names the dataset
            raise DatasetSpecError(str(e)) from e
        raise


def cohort_tables(analyzed: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Concatenate ``{name: (particles, timeseries, labels)}`` and compute Fig. 5e statistics.

    Returns ``(particles, stats)``; ``particles`` has a ``key`` column (``"<dataset> / <id>"``).
    """
    from asymflux import analysis

    frames = []
    for name, (particles, _ts, _labels) in analyzed.items():
        p = particles.copy()
        p["source_spec"] = name
        frames.append(p)
    if not frames:
        raise DatasetSpecError("no datasets to summarise")
    particles = pd.concat(frames, ignore_index=True)
    particles["key"] = particles["dataset"].astype(str) + " / " + particles["particle_id"].astype(str)
    stats = analysis.cohort_statistics(particles, by="ageing")
    return particles, stats
