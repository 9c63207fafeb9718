"""What a simulation returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from .mesh import Mesh


class ThetaImage(NamedTuple):
    """θ sampled on pixels: ``theta`` is (n_times, n_row, n_col), NaN outside."""

    x_um: np.ndarray
    y_um: np.ndarray
    theta: np.ndarray


@dataclass
class Result:
    """A solved protocol.

    Attributes
    ----------
    times_s : (n_times,)
        Sample times in s: t = 0, every requested output time that was reached, and
        the end of every step.
    capacity_mAh_g : (n_times,)
        Charge passed per gram of active material, positive on charge.
    theta : (n_times, n_cells)
        Occupancy on the mesh cells.
    step_index : (n_times,) int
        Which protocol step each sample belongs to.
    steps : list of dict
        For each step that ran: ``step``, ``start_s``, ``end_s``, ``reason``.
    potential_V : (n_times,) or None
        Kinetic surface: the particle potential V vs Li/Li+ (the sample at a step's end
        sees that step's current). None with a prescribed flux ratio.
    face_current_A_m2 : (n_times, n_boundary)
        Current density through each boundary face, A/m², positive on charge.
    arc_flux_ratio : (n_times, n_arcs)
        Effective flux ratio of each arc of the surface: its mean current density over
        that of the clean surface (η itself for a prescribed surface; NaN at rest).
    """

    mesh: Mesh
    params: dict
    surface: object
    times_s: np.ndarray
    capacity_mAh_g: np.ndarray
    theta: np.ndarray
    step_index: np.ndarray
    steps: list = field(default_factory=list)
    potential_V: np.ndarray | None = None
    face_current_A_m2: np.ndarray | None = None
    arc_flux_ratio: np.ndarray | None = None

    @property
    def minutes(self) -> np.ndarray:
        return self.times_s / 60.0

    @property
    def theta0(self) -> float:
        return float(self.params["Initial occupancy"])

    @property
    def mean_theta(self) -> np.ndarray:
        """Area-weighted mean occupancy (n_times,)."""
        return self.mesh.mean(self.theta)

    @property
    def li_extracted(self) -> np.ndarray:
        """Lithium removed per formula unit, θ0 − mean θ (n_times,)."""
        return self.theta0 - self.mean_theta

    @property
    def surface_theta(self) -> np.ndarray:
        """Occupancy at the boundary faces (n_times, n_boundary)."""
        return self.theta[:, self.mesh.boundary_cell]

    @property
    def min_surface_theta(self) -> np.ndarray:
        return self.surface_theta.min(axis=1)

    @property
    def max_surface_theta(self) -> np.ndarray:
        return self.surface_theta.max(axis=1)

    @property
    def voltage_V(self) -> np.ndarray:
        """The voltage vs Li a cut-off sees, in V: the particle potential V with a kinetic
        surface; with a prescribed flux ratio (no overpotential) the highest local surface
        OCV (at the least lithiated surface point). NaN without an OCV."""
        if self.potential_V is not None:
            return np.asarray(self.potential_V, dtype=float)
        ocv = self.params.get("Open-circuit voltage [V]")
        if ocv is None:
            return np.full(self.times_s.shape, np.nan)
        return np.asarray(ocv(self.min_surface_theta), dtype=float)

    @property
    def end_reason(self) -> str:
        return self.steps[-1]["reason"] if self.steps else ""

    def charge_weighted_flux_ratio(self, until_minutes: float) -> np.ndarray:
        """Charge passed per unit length through each arc over that through the clean
        surface, from t = 0 to ``until_minutes`` (trapezoid over the samples: request dense
        output times), (n_arcs,). For a prescribed surface with arcs on face boundaries this
        is η; for a kinetic surface it is the effective η of the early charge
        (``docs/calibration.md``)."""
        keep = self.times_s <= until_minutes * 60.0 + 1e-9
        t, i = self.times_s[keep], self.face_current_A_m2[keep]
        q = np.sum(0.5 * (i[1:] + i[:-1]) * np.diff(t)[:, None], axis=0)  # C/m² per face
        cov = self.surface.arc_coverage(self.mesh.boundary_angle_rad, self.mesh.boundary_span_rad)
        ell = self.mesh.boundary_length_um
        clean = np.clip(1 - cov.sum(axis=1), 0, 1) * ell
        ref = (clean @ q) / clean.sum() if clean.sum() > 0 else np.nan
        return np.array([(cov[:, k] * ell) @ q / (cov[:, k] @ ell) / ref
                         for k in range(cov.shape[1])])

    def index_of_minutes(self, minutes) -> np.ndarray:
        """Indices of the samples at ``minutes`` (must have been requested and reached)."""
        minutes = np.atleast_1d(np.asarray(minutes, dtype=float))
        idx = np.searchsorted(self.minutes, minutes - 1e-9)
        idx = np.clip(idx, 0, self.minutes.size - 1)
        bad = np.abs(self.minutes[idx] - minutes) > 1e-6
        if np.any(bad):
            raise ValueError(
                f"no sample at minutes {minutes[bad].tolist()}: request them as output "
                f"times (the run ended at {self.minutes[-1]:.3g} min: {self.end_reason})"
            )
        return idx

    def to_image(self, pixel_nm: float = 50.0, *, indices=None) -> ThetaImage:
        """Sample θ on a Cartesian pixel grid (NaN outside the particle).

        Parameters
        ----------
        pixel_nm : float
            Pixel size in nm.
        indices : array of int, optional
            Which samples (default: all).

        Returns
        -------
        ThetaImage
            ``x_um`` (n_col,) ascending, ``y_um`` (n_row,) descending (row 0 on top),
            ``theta`` (n_times, n_row, n_col).
        """
        x_um, y_um = self.mesh.pixel_grid(pixel_nm)
        X, Y = np.meshgrid(x_um, y_um)
        values = self.theta if indices is None else self.theta[np.asarray(indices)]
        return ThetaImage(x_um, y_um, self.mesh.sample(values, X, Y))
