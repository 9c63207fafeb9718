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
    """

    mesh: Mesh
    params: dict
    surface: object
    times_s: np.ndarray
    capacity_mAh_g: np.ndarray
    theta: np.ndarray
    step_index: np.ndarray
    steps: list = field(default_factory=list)

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
        """Highest local surface OCV (at the least lithiated surface point), in V:
        the potential an upper cut-off voltage sees on charge. NaN without an OCV."""
        ocv = self.params.get("Open-circuit voltage [V]")
        if ocv is None:
            return np.full(self.times_s.shape, np.nan)
        return np.asarray(ocv(self.min_surface_theta), dtype=float)

    @property
    def end_reason(self) -> str:
        return self.steps[-1]["reason"] if self.steps else ""

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
