"""Where the particle's side surface lets lithium out, and how easily.

A blocked arc is a part of the perimeter covered by a rock-salt layer (RSL) through
which the flux is ``η = j_RSL / j_NMC`` times the flux through the clean surface
(Lun et al. 2025, Fig. 4). Any number of non-overlapping arcs, or a free profile
``η(φ)``, can be given. The *total* current is always the applied current: the local
flux is ``j(φ) = j̄ · w(φ) / ⟨w⟩`` with ``w`` the relative permeability (1 on clean
surface, η on blocked surface) and ``⟨w⟩`` its perimeter-weighted mean.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .._validate import check_range


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
        parts = str(text).split(":")
        if len(parts) != 3:
            raise ValueError(
                f"--blocked expects CENTER_DEG:FRACTION:ETA (e.g. 180:0.25:0.3), got {text!r}"
            )
        try:
            c, f, e = (float(p) for p in parts)
        except ValueError:
            raise ValueError(
                f"--blocked expects three numbers CENTER_DEG:FRACTION:ETA, got {text!r}"
            ) from None
        return cls(c, f, e)

    def __str__(self) -> str:
        return f"{self.center_deg:g}:{self.fraction:g}:{self.eta:g}"

    @property
    def half_width_rad(self) -> float:
        return np.pi * self.fraction


class Surface:
    """Relative surface permeability ``w(φ)`` around the perimeter.

    Parameters
    ----------
    arcs : sequence of BlockedArc, optional
        Non-overlapping blocked arcs; their fractions must sum to less than 1.
    eta_profile : callable, optional
        ``η(φ)`` with φ in radians (array in, array out), values in (0, 1]. Exclusive
        with ``arcs``.
    """

    def __init__(
        self,
        arcs: Sequence[BlockedArc] = (),
        *,
        eta_profile: Callable[[np.ndarray], np.ndarray] | None = None,
    ):
        arcs = tuple(arcs)
        if arcs and eta_profile is not None:
            raise ValueError("give either blocked arcs or an eta_profile, not both")
        for a in arcs:
            if not isinstance(a, BlockedArc):
                raise ValueError(f"arcs must be BlockedArc objects, got {a!r}")
        total = sum(a.fraction for a in arcs)
        if total >= 1:
            raise ValueError(f"blocked arc fractions must sum to less than 1, got {total:g}")
        for i, a in enumerate(arcs):
            for b in arcs[i + 1 :]:
                sep = abs((np.deg2rad(a.center_deg - b.center_deg) + np.pi) % (2 * np.pi) - np.pi)
                if sep < a.half_width_rad + b.half_width_rad - 1e-12:
                    raise ValueError(f"blocked arcs overlap: {a} and {b}")
        self.arcs = arcs
        self.eta_profile = eta_profile

    @classmethod
    def unblocked(cls) -> Surface:
        return cls()

    @classmethod
    def from_strings(cls, specs: Sequence[str]) -> Surface:
        """Build from ``["CENTER_DEG:FRACTION:ETA", ...]`` (the CLI's ``--blocked``)."""
        return cls([BlockedArc.parse(s) for s in specs or ()])

    @property
    def label(self) -> str:
        """``"none"``, or the arcs as ``CENTER:FRACTION:ETA`` joined by spaces."""
        if self.eta_profile is not None:
            return "profile"
        return " ".join(str(a) for a in self.arcs) if self.arcs else "none"

    def __repr__(self) -> str:
        return f"Surface({self.label})"

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
        w = np.ones_like(angle)
        for a in self.arcs:
            c = np.deg2rad(a.center_deg)
            hw = a.half_width_rad
            # face interval relative to the arc centre, wrapped to (-pi, pi]
            d = (angle - c + np.pi) % (2 * np.pi) - np.pi
            lo = np.maximum(d - span / 2, -hw)
            hi = np.minimum(d + span / 2, hw)
            covered = np.clip(hi - lo, 0, None) / span
            w -= (1 - a.eta) * covered
        return w
