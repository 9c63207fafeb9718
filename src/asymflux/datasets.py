"""Deterministic demo datasets: simulated operando movies through the synthetic microscope.

Real operando movies are not public, so the demo data are made by the forward model:
each particle of a field of view is simulated with :func:`asymflux.model.simulate` on a
disk of its equivalent radius, mapped onto its outline and imaged with
:mod:`asymflux.optics` (response, carbon matrix, PSF, stage and illumination drift,
shot and read noise). Every dataset is a folder in the format of
``docs/dataset-format.md`` with its ground truth in ``ground_truth/``.

Datasets are built on first use and cached in ``platformdirs.user_cache_dir("asymflux")``
(override with the environment variable ``ASYMFLUX_CACHE``). The cache key is a hash of
the recipe and of the source of the code that makes the data (model, optics, this
module, the dataset writer), so a change rebuilds. No network is used.

>>> from asymflux import datasets
>>> datasets.list_datasets()[:3]
['fresh', 'aged', 'aged-50mA_g']
>>> ds = datasets.load("aged")                      # doctest: +SKIP
>>> ds.stack.shape                                  # doctest: +SKIP
(49, 256, 256)

Names (see :func:`describe`):

- ``fresh``: fresh electrode at 100 mA/g; 5 particles, 4 symmetric, 1 mildly blocked.
- ``aged``: aged electrode (3-4.3 V, 50 mA/g, 200 cycles) at 100 mA/g; 5 particles, 4 of
  them blocked (particle 1 is blocked on its left, like Fig. 2d of Lun et al. 2025).
- ``aged-50mA_g`` … ``aged-400mA_g`` (group ``aged-rates``): the same aged field of view
  charged at 50, 100, 200 and 400 mA/g to the same capacity (60 mAh/g) (Fig. 5c, d).
- ``charge-rest``: the same aged field, 70 mA/g for 20 min, then 20 min at rest (Fig. 2e, f).
- ``cohort-<ageing>-<k>`` (groups ``cohort-<ageing>`` and ``cohorts``): fields of view
  whose symmetric/asymmetric counts follow Fig. 5e (see :data:`COHORTS`); only the first
  20 min of charge at 100 mA/g.

Every field is 256 × 256 pixels of 65 nm with 5-6 particles of 2.5-5 µm equivalent
diameter. "Asymmetric" particles have one or two blocked arcs with η ≤ 0.5 covering at
least a quarter of the perimeter; "symmetric" ones are unblocked or carry one weak arc
(η ≥ 0.9). All particles see the same specific current. The fresh datasets use the
paper's prescribed flux ratio (each arc passes η times the clean surface's flux); every
aged dataset (``aged``, ``aged-*``, ``charge-rest``, the aged cohorts) uses the kinetic
surface: each arc is a rock-salt film whose resistance passes η of the clean surface's
charge at 100 mA/g (:func:`asymflux.model.calibration.film_resistance_for_eta`), so the split
depends on the rate, as in Fig. 5c/d. The ground truth lists ``eta`` (that η) and
``film_resistance_ohm_m2`` (NaN for a prescribed arc, 0 for an unblocked particle).

Modelling choices (judgement calls, recorded here):

- Particles are simulated on disks of their equivalent radius with a 16 × 48 polar mesh
  and ``rtol=1e-4`` (within ~1 % of the default 24 × 64 mesh in the Li-rich area) and
  mapped onto their outlines by :func:`asymflux.optics.map_disk_to_outline`.
- Cell voltage = area-weighted mean over the field's particles of the mean surface OCV,
  plus a first-order overpotential ``r·I`` (τ = 30 s) with r = 0.6 mV per mA/g (fresh) or
  1.2 mV per mA/g (aged: more polarization, Fig. 1f). Current is positive on charge, for
  0.5 mg of active material.
- Microscope: Gaussian PSF for NA 0.9 at 600 nm (σ ≈ 140 nm ≈ 2.2 px), stage drift up to
  0.6 px, illumination drift up to ±1 %, 4000 photo-electrons per frame on a bare
  particle, gain 0.5 count/e⁻, read noise 1.5 counts, offset 100 counts.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

RECIPE_VERSION = "1"
"""Bump when a recipe changes in a way the source hash would not see."""

ENV_CACHE = "ASYMFLUX_CACHE"
"""Environment variable overriding the cache folder."""

PIXEL_NM = 65.0
FIELD_SHAPE = (256, 256)
MATERIAL = "LiNi0.88Mn0.05Co0.07O2"
ACTIVE_MASS_MG = 0.5
AGED = "3-4.3V 50mA/g 200 cycles"
AGED_RATES_MA_G = (50.0, 100.0, 200.0, 400.0)

COHORTS: dict[str, dict] = {
    "fresh": {"ageing": "fresh", "asymmetric": 2, "total": 18, "source": "paper (2 of 18)"},
    "3-4.3V-50mA_g": {"ageing": "3-4.3V 50mA/g 200 cycles", "asymmetric": 12, "total": 17,
                      "source": "paper (12 of 17, 71 %)"},
    "3-4.3V-200mA_g": {"ageing": "3-4.3V 200mA/g 200 cycles", "asymmetric": 7, "total": 16,
                       "source": "assumption (44 %): no number in the text"},
    "3-4.3V-400mA_g": {"ageing": "3-4.3V 400mA/g 200 cycles", "asymmetric": 5, "total": 16,
                       "source": "assumption (31 %): no number in the text"},
    "3-4.5V-200mA_g": {"ageing": "3-4.5V 200mA/g 200 cycles", "asymmetric": 11, "total": 15,
                       "source": "paper (73 %; 11 of 15 chosen)"},
}
"""Fig. 5e cohorts: ageing condition → number of asymmetric particles out of the total.

The paper gives 2/18 (fresh), 12/17 (3-4.3 V, 50 mA/g) and 73 % (3-4.5 V, 200 mA/g). For
3-4.3 V at 200 and 400 mA/g it gives no numbers, only that deeper delithiation (slower
ageing rate or higher cut-off) gives more asymmetry; the fractions 7/16 and 5/16 are
assumptions that keep that order."""

MAX_PARTICLES_PER_FIELD = 6


# ----------------------------------------------------------------------------- recipes


@dataclass(frozen=True)
class Recipe:
    """How one demo dataset is made (all fields are plain values, hashed into the cache key).

    ``classes`` lists the particles' categories (``"symmetric"``/``"asymmetric"``);
    ``fixed`` optionally pins the first particles' blocked arcs as
    ``((center_deg, fraction, eta), ...)`` tuples. ``protocol`` is
    ``(("charge"|"rest", rate_mA_g, minutes), ...)``. ``surface`` is ``"prescribed"``
    (each arc passes η times the clean surface's flux, the paper's model) or ``"kinetic"``
    (each arc is a film whose resistance gives that η at 100 mA/g,
    :func:`asymflux.model.calibration.film_resistance_for_eta`, so the split depends on rate).
    """

    name: str
    description: str
    field_seed: int
    noise_seed: int
    classes: tuple[str, ...]
    ageing: str
    rate_mA_g: float
    protocol: tuple[tuple[str, float, float], ...]
    n_frames: int
    fixed: tuple = ()
    echem_per_frame: int = 3
    mesh: tuple[int, int] = (16, 48)
    overpotential_V_per_mA_g: float = 0.0006
    overpotential_tau_s: float = 30.0
    surface: str = "prescribed"
    shape: tuple[int, int] = FIELD_SHAPE
    pixel_nm: float = PIXEL_NM
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def total_minutes(self) -> float:
        return float(sum(m for _, _, m in self.protocol))

    def as_json(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "extra"}
        return json.loads(json.dumps(d))


def _charge_minutes(rate, capacity_mAh_g):
    return capacity_mAh_g / rate * 60.0


_FIELD_AGED = 2024
_FIELD_FRESH = 1001
_AGED_FIXED = ((180.0, 0.3, 0.25),)
_AGED_CLASSES = ("asymmetric", "asymmetric", "symmetric", "asymmetric", "asymmetric")
_R_FRESH = 0.0006  # V per mA/g: 60 mV at 100 mA/g
_R_AGED = 0.0012  # aged: more polarization (Fig. 1f)


@lru_cache(maxsize=1)
def _recipes() -> dict[str, Recipe]:
    rec: dict[str, Recipe] = {}

    def add(r: Recipe):
        rec[r.name] = r

    add(Recipe(
        name="fresh", description="Fresh electrode charged at 100 mA/g (Fig. 2a, b): "
        "5 particles, 4 unblocked or nearly so, 1 mildly blocked.",
        field_seed=_FIELD_FRESH, noise_seed=1, ageing="fresh", rate_mA_g=100.0,
        classes=("symmetric", "symmetric", "symmetric", "asymmetric", "symmetric"),
        protocol=(("charge", 100.0, 36.0),), n_frames=49, overpotential_V_per_mA_g=_R_FRESH,
    ))
    add(Recipe(
        name="aged", description="Aged electrode (3-4.3 V, 50 mA/g, 200 cycles) charged at "
        "100 mA/g (Fig. 2c, d): 5 particles, 4 blocked; particle 1 is blocked on its left "
        "(30 % of the perimeter, eta 0.25).",
        field_seed=_FIELD_AGED, noise_seed=2, ageing=AGED, rate_mA_g=100.0,
        classes=_AGED_CLASSES, fixed=_AGED_FIXED, surface="kinetic",
        protocol=(("charge", 100.0, 36.0),), n_frames=49, overpotential_V_per_mA_g=_R_AGED,
    ))
    for rate in AGED_RATES_MA_G:
        add(Recipe(
            name=f"aged-{rate:g}mA_g", description=f"The aged field of view charged at "
            f"{rate:g} mA/g to 60 mAh/g (Fig. 5c, d).",
            field_seed=_FIELD_AGED, noise_seed=100 + int(rate), ageing=AGED, rate_mA_g=rate,
            classes=_AGED_CLASSES, fixed=_AGED_FIXED, surface="kinetic",
            protocol=(("charge", rate, _charge_minutes(rate, 60.0)),), n_frames=49,
            overpotential_V_per_mA_g=_R_AGED,
        ))
    add(Recipe(
        name="charge-rest", description="The aged field of view charged at 70 mA/g for 20 min, "
        "then at rest for 20 min (Fig. 2e, f): the Li-rich cores shrink during the rest.",
        field_seed=_FIELD_AGED, noise_seed=3, ageing=AGED, rate_mA_g=70.0,
        classes=_AGED_CLASSES, fixed=_AGED_FIXED, surface="kinetic",
        protocol=(("charge", 70.0, 20.0), ("rest", 0.0, 20.0)), n_frames=49,
        overpotential_V_per_mA_g=_R_AGED,
    ))
    for k, (key, c) in enumerate(COHORTS.items()):
        n, n_asym = c["total"], c["asymmetric"]
        cls = np.array(["asymmetric"] * n_asym + ["symmetric"] * (n - n_asym))
        np.random.default_rng((7000 + k,)).shuffle(cls)
        n_fields = -(-n // MAX_PARTICLES_PER_FIELD)
        for j, part in enumerate(np.array_split(cls, n_fields)):
            add(Recipe(
                name=f"cohort-{key}-{j + 1}",
                description=f"Cohort '{c['ageing']}' (Fig. 5e), field {j + 1} of {n_fields}: "
                f"first 20 min of charge at 100 mA/g. Cohort counts: {n_asym} asymmetric of "
                f"{n} ({c['source']}).",
                field_seed=5000 + 100 * k + j, noise_seed=5000 + 100 * k + j, ageing=c["ageing"],
                rate_mA_g=100.0, classes=tuple(str(s) for s in part),
                protocol=(("charge", 100.0, 20.0),), n_frames=21,
                overpotential_V_per_mA_g=_R_FRESH if key == "fresh" else _R_AGED,
                surface="prescribed" if key == "fresh" else "kinetic",
                extra={"cohort": key},
            ))
    return rec


def _groups() -> dict[str, list[str]]:
    names = list(_recipes())
    groups = {"aged-rates": [f"aged-{r:g}mA_g" for r in AGED_RATES_MA_G]}
    for key in COHORTS:
        groups[f"cohort-{key}"] = [n for n in names if n.startswith(f"cohort-{key}-")]
    groups["cohorts"] = [n for n in names if n.startswith("cohort-")]
    return groups


def list_datasets() -> list[str]:
    """Names of the single demo datasets, in build order."""
    return list(_recipes())


def list_groups() -> dict[str, list[str]]:
    """Named groups of datasets: ``aged-rates``, ``cohort-<ageing>`` and ``cohorts``."""
    return {k: list(v) for k, v in _groups().items()}


def expand(names) -> list[str]:
    """Dataset names from names and group names (order kept, duplicates dropped)."""
    if isinstance(names, str):
        names = [names]
    rec, groups = _recipes(), _groups()
    out: list[str] = []
    for n in names:
        if n in rec:
            members = [n]
        elif n in groups:
            members = groups[n]
        else:
            raise ValueError(
                f"unknown demo dataset {n!r}; datasets: {', '.join(rec)}; groups: {', '.join(groups)}"
            )
        out += [m for m in members if m not in out]
    return out


def describe(name: str) -> str:
    """One-paragraph description of a dataset or group."""
    groups = _groups()
    if name in groups:
        return f"group of {len(groups[name])} datasets: {', '.join(groups[name])}"
    return _recipe(name).description


def _recipe(name: str) -> Recipe:
    rec = _recipes()
    if name not in rec:
        if name in _groups():
            raise ValueError(
                f"{name!r} is a group of datasets ({', '.join(_groups()[name])}); "
                f"use load_group({name!r}) or pick one of them"
            )
        expand(name)  # raises with the list of names
    return rec[name]


# ----------------------------------------------------------------------------- geometry


@dataclass(frozen=True)
class _Particle:
    outline: object  # optics.Outline
    arcs: tuple  # of model.BlockedArc
    category: str
    reflectivity: float


def _draw_arcs(rng, category, fixed=None):
    from .model import BlockedArc, Surface

    if fixed is not None:
        return tuple(BlockedArc(*a) for a in fixed)
    if category == "asymmetric":
        for _ in range(100):
            c1 = rng.uniform(0, 360)
            if rng.random() < 0.6:
                arcs = (BlockedArc(round(c1, 1), round(rng.uniform(0.25, 0.45), 3),
                                   round(rng.uniform(0.15, 0.5), 3)),)
            else:
                f1 = rng.uniform(0.15, 0.3)
                f2 = max(rng.uniform(0.12, 0.25), 0.26 - f1)
                c2 = c1 + rng.uniform(100, 260)
                arcs = (BlockedArc(round(c1, 1), round(f1, 3), round(rng.uniform(0.15, 0.5), 3)),
                        BlockedArc(round(c2 % 360, 1), round(f2, 3), round(rng.uniform(0.15, 0.5), 3)))
            try:
                Surface(arcs)
                return arcs
            except ValueError:
                continue
        raise RuntimeError("could not draw non-overlapping arcs")  # pragma: no cover
    if category == "symmetric":
        if rng.random() < 0.6:
            return ()
        return (BlockedArc(round(rng.uniform(0, 360), 1), round(rng.uniform(0.1, 0.35), 3),
                           round(rng.uniform(0.9, 0.98), 3)),)
    raise ValueError(f"particle category must be 'symmetric' or 'asymmetric', got {category!r}")


def _make_field(recipe: Recipe):
    """Particles (outlines, arcs), matrix and particle reflectivity map of a field of view."""
    from scipy import ndimage

    from . import optics

    rng = np.random.default_rng((recipe.field_seed, 0))
    shape, p_um = recipe.shape, recipe.pixel_nm / 1000.0
    matrix = optics.carbon_matrix(shape, rng, pixel_nm=recipe.pixel_nm)
    n = len(recipe.classes)
    diam = np.clip(rng.normal(3.6, 0.5, n), 2.5, 5.0)
    gap_px = 8.0
    placed: list[tuple[float, float, float]] = []  # row, col, max radius px
    particles = []
    for i, category in enumerate(recipe.classes):
        d = float(diam[i])
        for _attempt in range(200):
            outline = optics.random_outline(rng, equivalent_diameter_um=d)
            rmax = outline.max_radius_um / p_um
            lo = rmax + 6
            if i == 0:  # the first particle sits near the middle of the field
                rc = rng.uniform(0.4, 0.6, 2) * np.array(shape)
            else:
                rc = np.array([rng.uniform(lo, shape[0] - lo), rng.uniform(lo, shape[1] - lo)])
            if all(np.hypot(rc[0] - r, rc[1] - c) >= rmax + m + gap_px for r, c, m in placed):
                break
            d = max(2.5, d * 0.97)
        else:  # pragma: no cover - the fields are small enough
            raise RuntimeError(f"could not place particle {i + 1} of {recipe.name}")
        rc = (round(float(rc[0]), 2), round(float(rc[1]), 2))
        outline = type(outline)(rc, outline.kind, outline.params)
        placed.append((rc[0], rc[1], rmax))
        fixed = recipe.fixed[i] if i < len(recipe.fixed) else None
        arcs = _draw_arcs(rng, category, None if fixed is None else (fixed,))
        particles.append(_Particle(outline, arcs, category, float(rng.uniform(0.85, 1.15))))
    # static texture of the particles' own reflectivity (cancels in I/I0)
    tex = ndimage.gaussian_filter(rng.standard_normal(shape), 3.0, mode="wrap")
    tex = 1.0 + 0.02 * tex / tex.std()
    return particles, matrix, tex


def _surface_arcs(arcs: tuple, surface: str) -> tuple:
    """The arcs a recipe's ``surface`` simulates: blocked arcs as drawn, or each as the film
    whose resistance gives its η at 100 mA/g (:func:`~asymflux.model.calibration.film_resistance_for_eta`)."""
    from .model import FilmArc, calibration

    if surface == "prescribed":
        return arcs
    if surface != "kinetic":
        raise ValueError(f"recipe surface must be 'prescribed' or 'kinetic', got {surface!r}")
    return tuple(FilmArc(a.center_deg, a.fraction, round(calibration.film_resistance_for_eta(a.eta), 6))
                 for a in arcs)


@lru_cache(maxsize=24)
def _simulate(radius_um: float, arcs: tuple, protocol: tuple, output_minutes: tuple, mesh: tuple,
              kinetic: bool = False):
    from . import model

    steps = [model.Charge(rate, minutes=m) if kind == "charge" else model.Rest(m)
             for kind, rate, m in protocol]
    return model.simulate(
        model.nmc88_lun2025(), model.disk_mesh(radius_um, n_radial=mesh[0], n_angular=mesh[1]),
        model.Surface(arcs, kinetic=kinetic), steps, output_minutes=output_minutes, rtol=1e-4, atol=1e-6,
    )


def _polarization(time_s, current, r_V, tau_s):
    """First-order overpotential η: dη/dt = (r I − η)/τ, exact for piecewise-constant I."""
    eta = np.zeros_like(time_s)
    for k in range(1, time_s.size):
        a = np.exp(-(time_s[k] - time_s[k - 1]) / tau_s)
        eta[k] = eta[k - 1] * a + r_V * current[k] * (1 - a)
    return eta


# ----------------------------------------------------------------------------- building


def make_dataset(name: str):
    """Build one demo dataset in memory (no cache, nothing written).

    Parameters
    ----------
    name : str
        One of :func:`list_datasets`.

    Returns
    -------
    asymflux.io.Dataset
        ``stack`` (n_frames, 256, 256) ``uint16``, ``time_s``, ``echem``, ``masks`` and
        ``ground_truth`` with ``particles`` (DataFrame, one row per blocked arc),
        ``theta`` (n_frames, row, col) float32, NaN outside particles, ``masks`` and
        ``drift`` (DataFrame: frame, time_s, drift_row_px, drift_col_px, illumination).
        Masks and θ are in the coordinates of frame 0; in frame k the content has moved
        by (drift_row_px, drift_col_px) and been multiplied by ``illumination``.
    """
    import pandas as pd

    from . import __version__, optics
    from .io import Dataset

    recipe = _recipe(name)
    particles, matrix, tex = _make_field(recipe)
    shape, pixel_nm = recipe.shape, recipe.pixel_nm
    total = recipe.total_minutes
    frame_min = np.round(np.linspace(0.0, total, recipe.n_frames), 6)
    echem_min = np.round(np.linspace(0.0, total, (recipe.n_frames - 1) * recipe.echem_per_frame + 1), 6)
    out_min = tuple(float(m) for m in np.union1d(frame_min, echem_min))

    theta_gt = np.full((recipe.n_frames, *shape), np.nan)  # inside masks
    theta_img = np.full((recipe.n_frames, *shape), np.nan)  # where coverage > 0
    coverage = np.zeros(shape)
    masks = np.zeros(shape, np.uint16)
    rows, ocv_sum, area_sum = [], 0.0, 0.0
    covs = [part.outline.coverage(shape, pixel_nm=pixel_nm) for part in particles]
    capacity = None
    for pid, part in enumerate(particles, start=1):
        r_eq = round(part.outline.equivalent_radius_um, 6)
        sim_arcs = _surface_arcs(part.arcs, recipe.surface)
        res = _simulate(r_eq, sim_arcs, recipe.protocol, out_min, recipe.mesh,
                        recipe.surface == "kinetic")
        cov = covs[pid - 1]
        mask = part.outline.mask(shape, pixel_nm=pixel_nm)
        fi = res.index_of_minutes(frame_min)
        th = optics.map_disk_to_outline(res, part.outline, shape=shape, pixel_nm=pixel_nm,
                                        indices=fi, where=cov > 0)
        sel = cov > 0
        theta_img[:, sel] = th[:, sel]
        theta_gt[:, mask] = th[:, mask]
        coverage += cov
        masks[mask] = pid
        ei = res.index_of_minutes(echem_min)
        ocv = res.params["Open-circuit voltage [V]"]
        area = part.outline.area_um2
        ocv_sum = ocv_sum + area * ocv(res.surface_theta[ei]).mean(axis=1)
        area_sum += area
        capacity = res.capacity_mAh_g[ei]
        o = part.outline
        base = {
            "class": part.category, "n_arcs": len(part.arcs),
            "center_row": o.center_rc[0], "center_col": o.center_rc[1],
            "equivalent_diameter_um": round(2 * o.equivalent_radius_um, 6),
            "area_um2": round(o.area_um2, 6), "mask_area_um2": round(mask.sum() * (pixel_nm / 1000) ** 2, 6),
            "outline": o.kind, "outline_params": " ".join(f"{v:.6g}" for v in o.params),
            "reflectivity": round(part.reflectivity, 6),
        }
        for arc, sim in zip(part.arcs or (None,), sim_arcs or (None,), strict=True):
            rows.append({
                "particle_id": pid, "center_deg": arc.center_deg if arc else 0.0,
                "fraction": arc.fraction if arc else 0.0, "eta": arc.eta if arc else 1.0,
                "film_resistance_ohm_m2": (sim.resistance_ohm_m2 if recipe.surface == "kinetic"
                                           else float("nan")) if arc else 0.0,
                **base,
            })
    p_refl = np.zeros(shape)
    for pid, part in enumerate(particles, start=1):
        p_refl[covs[pid - 1] > 0] = part.reflectivity
    p_refl *= tex

    nrng = np.random.default_rng((recipe.noise_seed, recipe.field_seed, 1))
    drift = optics.smooth_drift(recipe.n_frames, nrng, max_shift_px=0.6)
    illum = optics.illumination_drift(recipe.n_frames, nrng, amplitude=0.01)
    stack = optics.microscope(
        theta_img, nrng, coverage=np.clip(coverage, 0, 1), particle_reflectivity=p_refl,
        matrix_reflectivity=matrix, pixel_nm=pixel_nm, drift_px=drift, illumination=illum,
    )

    time_s = frame_min * 60.0
    et = echem_min * 60.0
    step_edges = np.cumsum([0.0] + [m * 60.0 for _, _, m in recipe.protocol])
    # the current of the step running at t (t0 <= t < t1; the last sample belongs to the last step)
    step = np.clip(np.searchsorted(step_edges, et + 1e-6, side="right") - 1, 0, len(recipe.protocol) - 1)
    rate = np.array([r if kind == "charge" else 0.0 for kind, r, _ in recipe.protocol])[step]
    current_mA = rate * ACTIVE_MASS_MG / 1000.0
    # the overpotential over (t_k-1, t_k] follows the current applied from t_k-1
    voltage = ocv_sum / area_sum + _polarization(et, np.r_[0.0, rate[:-1]],
                                                 recipe.overpotential_V_per_mA_g,
                                                 recipe.overpotential_tau_s)
    echem = pd.DataFrame({
        "time_s": et, "voltage_V": np.round(voltage, 6), "current_mA": np.round(current_mA, 9),
        "capacity_mAh_g": np.round(capacity, 9),
    })
    metadata = {
        "format": "asymflux-dataset", "version": 1, "name": recipe.name,
        "material": MATERIAL, "ageing": recipe.ageing, "rate_mA_g": float(recipe.rate_mA_g),
        "cell": "optical half-cell vs Li", "pixel_nm": float(pixel_nm),
        "active_mass_mg": ACTIVE_MASS_MG, "synthetic": True,
        "description": recipe.description,
        "generator": f"asymflux {__version__} datasets recipe {RECIPE_VERSION}",
        "seed": [recipe.field_seed, recipe.noise_seed],
        "optics": {"na": optics.DEFAULT_NA, "wavelength_nm": optics.DEFAULT_WAVELENGTH_NM,
                   "psf": "gaussian", "response": "dI = A tanh(s (theta_ref - theta) / A)",
                   "response_saturation": optics.RESPONSE_SATURATION,
                   "response_slope": round(optics.RESPONSE_SLOPE, 9), "theta_ref": 0.97},
    }
    if "cohort" in recipe.extra:
        metadata["cohort"] = recipe.extra["cohort"]
    metadata["model_surface"] = recipe.surface
    ground_truth = {
        "particles": pd.DataFrame(rows),
        "theta": theta_gt.astype(np.float32),
        "masks": masks,
        "drift": pd.DataFrame({
            "frame": np.arange(recipe.n_frames), "time_s": time_s,
            "drift_row_px": np.round(drift[:, 0], 9), "drift_col_px": np.round(drift[:, 1], 9),
            "illumination": np.round(illum, 9),
        }),
    }
    return Dataset(stack=stack, time_s=time_s, pixel_nm=float(pixel_nm), echem=echem,
                   metadata=metadata, masks=masks, ground_truth=ground_truth)


# ----------------------------------------------------------------------------- cache


def _source_digest() -> str:
    here = Path(__file__).parent
    files = sorted((here / "model").glob("*.py")) + [here / "optics.py", here / "datasets.py",
                                                      here / "_validate.py"]
    files += sorted((here / "io").glob("*.py"))
    h = hashlib.sha256()
    for f in files:
        if f.exists():
            h.update(f.name.encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def cache_key(name: str) -> str:
    """12 hex digits from the recipe, :data:`RECIPE_VERSION` and the generating code."""
    from . import __version__

    payload = json.dumps({"recipe": _recipe(name).as_json(), "version": __version__,
                          "recipe_version": RECIPE_VERSION, "code": _source_digest()},
                         sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def cache_dir() -> Path:
    """The cache folder: ``$ASYMFLUX_CACHE`` or ``platformdirs.user_cache_dir("asymflux")``."""
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("asymflux"))


def _write(dataset, target: Path) -> Path:
    from .io import write_dataset

    return Path(write_dataset(dataset, target))


def path(name: str) -> Path:
    """Folder of the cached dataset ``name``, building it first if needed."""
    key = cache_key(name)
    folder = cache_dir() / "datasets" / name
    target = folder / key
    if not (target / "metadata.json").exists():
        _write(make_dataset(name), target)  # atomic: a temporary folder, then a rename
        if folder.exists():  # drop stale versions of this dataset
            for old in folder.iterdir():
                if old.name != key and old.is_dir() and len(old.name) == 12:
                    shutil.rmtree(old, ignore_errors=True)
    return target


def load(name: str, *, lazy: bool = True):
    """Load a demo dataset (built and cached on first use).

    Parameters
    ----------
    name : str
        One of :func:`list_datasets` (for a group use :func:`load_group`).
    lazy : bool, keyword-only
        Passed to :func:`asymflux.io.read_dataset`.

    Returns
    -------
    asymflux.io.Dataset
    """
    from .io import read_dataset

    return read_dataset(path(name), lazy=lazy)


def load_group(name: str, *, lazy: bool = True) -> dict:
    """Load every dataset of a group (or a single dataset): ``{name: Dataset}``."""
    return {n: load(n, lazy=lazy) for n in expand(name)}


def write_demo_data(out_dir, names=None, progress: bool = True) -> list[Path]:
    """Write demo dataset folders into ``out_dir`` (``out_dir/<name>/``).

    Parameters
    ----------
    out_dir : path
        Created if missing; existing dataset folders of the same names are replaced, each
        in one step, keeping their curation (``annotations.csv``, ``curation.autosave.npz``,
        ``*.prev.*``, and a ``masks.tif`` that fits the frames, which is kept in place of
        the demo's masks); other folders or files of those names are refused before any
        dataset is built.
    names : str or list of str, optional
        Datasets and/or groups (default: all datasets).
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    list of Path
        The dataset folders written.
    """
    from tqdm.auto import tqdm

    from .io import DatasetError
    from .io.dataset import is_dataset_folder, masks_fit

    todo = list_datasets() if names is None else expand(names)
    out = Path(out_dir)
    for n in todo:
        target = out / n
        if (target.exists() or target.is_symlink()) and not is_dataset_folder(target):
            raise DatasetError(f"{target}: exists and is not an asymflux dataset folder (no "
                               "metadata.json); refusing to replace it")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for n in tqdm(todo, desc="demo datasets", unit="dataset", disable=not progress):
        ds = make_dataset(n)
        target = out / n
        if (target / "masks.tif").is_file() and masks_fit(target / "masks.tif",
                                                          ds.stack.shape[1:]):
            ds.masks = None  # the folder's (curated) masks are kept
        written.append(_write(ds, target))
    return written


__all__ = [
    "AGED_RATES_MA_G", "COHORTS", "ENV_CACHE", "RECIPE_VERSION", "Recipe", "cache_dir",
    "cache_key", "describe", "expand", "list_datasets", "list_groups", "load", "load_group",
    "make_dataset", "path", "write_demo_data",
]
