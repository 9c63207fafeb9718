"""Where the particle's side surface lets lithium out, and how easily.

Two kinds of surface, the choice of the :class:`Surface`:

* **Prescribed flux ratio** (the paper's model, Lun et al. 2025, Fig. 4): a
  :class:`BlockedArc` is a part of the perimeter covered by a rock-salt layer (RSL)
  through which the flux is ``η = j_RSL / j_NMC`` times the flux through the clean
  surface. Any number of non-overlapping arcs, or a free profile ``η(φ)``, can be
  given. The local flux is ``j(φ) = j̄ · w(φ) / ⟨w⟩`` with ``w`` the relative
  permeability (1 on clean surface, η on blocked surface) and ``⟨w⟩`` its
  perimeter-weighted mean, so the split does not depend on the rate or the state.
* **Kinetic** (:meth:`Surface.kinetic`): every boundary face carries a Butler-Volmer
  current ``i = i0(θ_s) 2 sinh(F η_s / 2RT)``, ``η_s = V − U(θ_s) − i R_film(φ)``,
  through a film of area-specific resistance ``R_film`` on each :class:`FilmArc` (0
  elsewhere), with one particle potential ``V`` set so that the total current is the
  applied one (:mod:`asymflux.model.kinetics`). The split then follows from the
  state and the rate.

Either way the *total* current is always the applied current.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .._validate import check_range


def _parse_arc(text, what: str, third: str, example: str) -> tuple[float, float, float]:
    """Split ``"CENTER_DEG:FRACTION:<third>"`` into three floats, or a ValueError naming ``what``."""
    parts = str(text).split(":")
    if len(parts) != 3:
        raise ValueError(
            f"{what} expects CENTER_DEG:FRACTION:{third} (e.g. {example}), got {text!r}"
        )
    try:
        c, f, x = (float(p) for p in parts)
    except ValueError:
        raise ValueError(
            f"{what} expects three numbers CENTER_DEG:FRACTION:{third}, got {text!r}"
        ) from None
    return c, f, x


def _check_center_text(name: str, value: float, text: str) -> float:
    """An angle written in an arc string must lie in [0, 360) (no silent wrapping)."""
    if not (math.isfinite(value) and 0.0 <= value < 360.0):
        raise ValueError(f"{name} must be in [0, 360) degrees, got {value:g} in {text!r}")
    return value


@dataclass(frozen=True)
class BlockedArc:
    """A blocked part of the perimeter.

    Parameters
    ----------
    center_deg : float
        Angle of the arc's centre, degrees counter-clockwise from +x as seen on screen.
    fraction : float
        Fraction of the perimeter covered, in [0, 1).
    eta : float
        Flux ratio η = j_RSL / j_NMC, in (0, 1].
    """

    center_deg: float
    fraction: float
    eta: float

    def __post_init__(self):
        check_range("blocked arc center_deg", self.center_deg)
        check_range("blocked arc fraction", self.fraction, 0, 1, high_inclusive=False)
        check_range("eta (j_RSL/j_NMC)", self.eta, 0, 1, low_inclusive=False)

    @classmethod
    def parse(cls, text: str) -> BlockedArc:
        """Parse ``"CENTER_DEG:FRACTION:ETA"``, e.g. ``"180:0.25:0.3"``."""
        c, f, e = _parse_arc(text, "a blocked arc", "ETA", "180:0.25:0.3")
        return cls(_check_center_text("blocked arc center_deg", c, text), f, e)

    def __str__(self) -> str:
        return f"{self.center_deg:g}:{self.fraction:g}:{self.eta:g}"

    @property
    def half_width_rad(self) -> float:
        return np.pi * self.fraction


@dataclass(frozen=True)
class FilmArc:
    """A part of the perimeter covered by a resistive film (a kinetic surface's arc).

    Parameters
    ----------
    center_deg : float
        Angle of the arc's centre, degrees counter-clockwise from +x as seen on screen.
    fraction : float
        Fraction of the perimeter covered, in (0, 1] (1: a uniform film).
    resistance_ohm_m2 : float
        Area-specific resistance of the film, Ω m², in [0, inf]; ``math.inf`` makes the
        arc carry no current. For a rock-salt layer of thickness L and Li-ion
        conductivity σ, R = L / σ (``docs/calibration.md``).
    """

    center_deg: float
    fraction: float
    resistance_ohm_m2: float

    def __post_init__(self):
        check_range("film arc center_deg", self.center_deg)
        check_range("film arc fraction", self.fraction, 0, 1, low_inclusive=False)
        r = self.resistance_ohm_m2
        if not (isinstance(r, int | float | np.floating | np.integer) and not isinstance(r, bool)
                and math.isinf(r) and r > 0):
            check_range("film resistance_ohm_m2", r, 0, None)

    @classmethod
    def parse(cls, text: str) -> FilmArc:
        """Parse ``"CENTER_DEG:FRACTION:R_OHM_M2"``, e.g. ``"180:0.25:0.05"`` (finite R)."""
        c, f, r = _parse_arc(text, "a film arc", "R_OHM_M2", "180:0.25:0.05")
        check_range("film resistance_ohm_m2", r, 0, None)  # finite in text
        return cls(_check_center_text("film arc center_deg", c, text), f, r)

    def __str__(self) -> str:
        return f"{self.center_deg:g}:{self.fraction:g}:{self.resistance_ohm_m2:g}"

    @property
    def half_width_rad(self) -> float:
        return np.pi * self.fraction


class Surface:
    """Where and how easily lithium crosses the perimeter.

    Parameters
    ----------
    arcs : sequence of BlockedArc, or of FilmArc
        Non-overlapping arcs. :class:`BlockedArc` s make a prescribed-ratio surface (their
        fractions must sum to less than 1); :class:`FilmArc` s a kinetic surface (their
        fractions may sum to 1). The two kinds cannot be mixed.
    eta_profile : callable, optional
        ``η(φ)`` with φ in radians (array in, array out), values in (0, 1]. Exclusive
        with ``arcs``; prescribed ratio.
    kinetic : bool, optional
        Butler-Volmer kinetics (:mod:`asymflux.model.kinetics`) instead of a prescribed
        flux ratio. Default: kinetic when ``arcs`` are :class:`FilmArc` s. A kinetic
        surface without arcs is a clean particle (``Surface.kinetic()``).
    """

    def __init__(
        self,
        arcs: Sequence[BlockedArc] | Sequence[FilmArc] = (),
        *,
        eta_profile: Callable[[np.ndarray], np.ndarray] | None = None,
        kinetic: bool | None = None,
    ):
        arcs = tuple(arcs)
        if arcs and eta_profile is not None:
            raise ValueError("give either arcs or an eta_profile, not both")
        films = [isinstance(a, FilmArc) for a in arcs]
        for a in arcs:
            if not isinstance(a, BlockedArc | FilmArc):
                raise ValueError(f"arcs must be BlockedArc or FilmArc objects, got {a!r}")
        if any(films) and not all(films):
            raise ValueError("a surface has either blocked arcs (prescribed flux ratio η) or film "
                             "arcs (kinetic, film resistance), not both")
        if kinetic is None:
            kinetic = bool(arcs) and all(films)
        kinetic = bool(kinetic)
        if kinetic and (eta_profile is not None or not all(films)):
            raise ValueError("a kinetic surface takes FilmArc arcs (film resistance), "
                             "not blocked arcs or an eta_profile")
        if not kinetic and any(films):
            raise ValueError("FilmArc arcs make a kinetic surface; kinetic=False needs BlockedArc arcs")
        total = sum(a.fraction for a in arcs)
        if kinetic:
            if total > 1 + 1e-12:
                raise ValueError(f"film arc fractions must sum to at most 1, got {total:g}")
        elif total >= 1:
            raise ValueError(f"blocked arc fractions must sum to less than 1, got {total:g}")
        for i, a in enumerate(arcs):
            for b in arcs[i + 1 :]:
                sep = abs((np.deg2rad(a.center_deg - b.center_deg) + np.pi) % (2 * np.pi) - np.pi)
                if sep < a.half_width_rad + b.half_width_rad - 1e-9:
                    raise ValueError(f"{'film' if kinetic else 'blocked'} arcs overlap: {a} and {b}")
        self.arcs = arcs
        self.eta_profile = eta_profile
        self.is_kinetic = kinetic

    @classmethod
    def unblocked(cls) -> Surface:
        return cls()

    @classmethod
    def kinetic(cls, films: Sequence[FilmArc] = ()) -> Surface:
        """A kinetic (Butler-Volmer) surface with these film arcs (none: a clean particle)."""
        return cls(films, kinetic=True)

    @classmethod
    def from_strings(cls, specs: Sequence[str]) -> Surface:
        """Build from ``["CENTER_DEG:FRACTION:ETA", ...]`` (the CLI's ``--blocked``)."""
        return cls([BlockedArc.parse(s) for s in specs or ()])

    @classmethod
    def from_film_strings(cls, specs: Sequence[str]) -> Surface:
        """A kinetic surface from ``["CENTER_DEG:FRACTION:R_OHM_M2", ...]`` (the CLI's ``--film``)."""
        return cls.kinetic([FilmArc.parse(s) for s in specs or ()])

    @property
    def label(self) -> str:
        """``"none"``, or the arcs as ``CENTER:FRACTION:ETA`` joined by spaces; a kinetic
        surface: ``"kinetic"`` or ``"film CENTER:FRACTION:R ..."``."""
        if self.eta_profile is not None:
            return "profile"
        if self.is_kinetic:
            return ("film " + " ".join(str(a) for a in self.arcs)) if self.arcs else "kinetic"
        return " ".join(str(a) for a in self.arcs) if self.arcs else "none"

    def __repr__(self) -> str:
        return f"Surface({self.label})"

    def arc_coverage(self, angle_rad: np.ndarray, span_rad: np.ndarray) -> np.ndarray:
        """Fraction of each boundary face covered by each arc, (n_faces, n_arcs).

        Each face covers ``[angle - span/2, angle + span/2]``; the covered length is exact.
        """
        angle = np.asarray(angle_rad, dtype=float)
        span = np.asarray(span_rad, dtype=float)
        out = np.zeros((angle.size, len(self.arcs)))
        for k, a in enumerate(self.arcs):
            out[:, k] = _covered(angle, span, np.deg2rad(a.center_deg), a.half_width_rad)
        return out

    def weights(self, angle_rad: np.ndarray, span_rad: np.ndarray) -> np.ndarray:
        """Mean permeability ``w`` over boundary faces.

        Each face covers ``[angle - span/2, angle + span/2]``; a face partly covered by
        an arc gets the length-weighted mean, so the blocked length is exact.
        """
        angle = np.asarray(angle_rad, dtype=float)
        span = np.asarray(span_rad, dtype=float)
        if self.eta_profile is not None:
            offsets = (np.arange(16) + 0.5) / 16 - 0.5
            pts = angle[:, None] + offsets[None, :] * span[:, None]
            eta = np.asarray(self.eta_profile(np.mod(pts, 2 * np.pi)), dtype=float)
            if eta.shape != pts.shape or not np.all((eta > 0) & (eta <= 1)):
                raise ValueError("eta_profile must return values in (0, 1] for every angle")
            return eta.mean(axis=1)
        if self.is_kinetic:
            raise ValueError("a kinetic surface has no fixed weights: its flux split follows "
                             "from Butler-Volmer kinetics (asymflux.model.kinetics)")
        w = np.ones_like(angle)
        for a in self.arcs:
            w -= (1 - a.eta) * _covered(angle, span, np.deg2rad(a.center_deg), a.half_width_rad)
        return w


def _covered(angle, span, center, half_width):
    """Fraction of each face ``[angle ± span/2]`` inside the arc ``[center ± half_width]``."""
    # face interval relative to the arc centre, wrapped to (-pi, pi]
    d = (angle - center + np.pi) % (2 * np.pi) - np.pi
    lo = np.maximum(d - span / 2, -half_width)
    hi = np.minimum(d + span / 2, half_width)
    covered = np.clip(hi - lo, 0, None)
    if half_width >= np.pi - 1e-12:  # the whole perimeter
        return np.ones_like(angle)
    return covered / span
