"""Finite-volume meshes of a particle's ab-plane.

A :class:`Mesh` is only arrays: cells (area, position), interior faces (the two cells
they join and their transmissibility length/distance) and boundary faces (the cell they
belong to, their length, the polar angle of their midpoint seen from the particle's
centroid, the angle they subtend, and the distance from the cell's node to the face).
The solver in :mod:`asymflux.model.solver` only sees these arrays, so any outline that
can be turned into such a mesh (a disk here; a curated particle mask later) is solved by
the same code.

Coordinates are in micrometres, ``x`` to the right (image columns) and ``y`` up on the
screen (towards row 0); angles are measured from +x counter-clockwise as seen on screen.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .._validate import check_range


@dataclass(frozen=True, eq=False)
class Mesh:
    """Two-point-flux finite-volume mesh.

    Attributes
    ----------
    cell_area_um2 : (n_cells,) float
        Cell areas in µm².
    cell_x_um, cell_y_um : (n_cells,) float
        Node positions in µm (relative to the particle centroid).
    face_cells : (n_faces, 2) int
        The two cells joined by each interior face.
    face_transmissibility : (n_faces,) float
        Face length divided by the node-to-node distance (dimensionless).
    boundary_cell : (n_boundary,) int
        The cell each boundary face belongs to.
    boundary_length_um : (n_boundary,) float
        Boundary face lengths in µm (perimeter per unit particle thickness).
    boundary_angle_rad : (n_boundary,) float
        Polar angle of each boundary face's midpoint, in [0, 2π).
    boundary_span_rad : (n_boundary,) float
        Angle subtended by each boundary face, seen from the centroid.
    boundary_distance_um : (n_boundary,) float
        Distance from the cell node to the face (0 when the node lies on the surface).
    kind : str
        ``"disk"`` or ``"mask"``; tells :meth:`sample` how to interpolate.
    """

    cell_area_um2: np.ndarray
    cell_x_um: np.ndarray
    cell_y_um: np.ndarray
    face_cells: np.ndarray
    face_transmissibility: np.ndarray
    boundary_cell: np.ndarray
    boundary_length_um: np.ndarray
    boundary_angle_rad: np.ndarray
    boundary_span_rad: np.ndarray
    boundary_distance_um: np.ndarray
    kind: str = "disk"
    info: dict = field(default_factory=dict)

    @property
    def n_cells(self) -> int:
        return self.cell_area_um2.size

    @property
    def area_um2(self) -> float:
        return float(self.cell_area_um2.sum())

    @property
    def perimeter_um(self) -> float:
        return float(self.boundary_length_um.sum())

    @property
    def equivalent_radius_um(self) -> float:
        """Radius of the disk with the same area, R_eq = sqrt(A/π), in µm."""
        return float(np.sqrt(self.area_um2 / np.pi))

    @property
    def extent_um(self) -> float:
        """Largest distance of any node from the centroid, in µm."""
        return float(np.max(np.hypot(self.cell_x_um, self.cell_y_um)))

    def mean(self, values: np.ndarray) -> np.ndarray:
        """Area-weighted mean over cells of ``values`` (..., n_cells)."""
        return np.asarray(values) @ self.cell_area_um2 / self.area_um2

    def pixel_grid(self, pixel_nm: float) -> tuple[np.ndarray, np.ndarray]:
        """Pixel-centre coordinates covering the particle.

        Returns ``x_um`` (n_col,), ascending, and ``y_um`` (n_row,), descending, so that
        row 0 is the top of the image and +y points up on the screen.
        """
        p = check_range("pixel_nm", pixel_nm, 0, None, low_inclusive=False) / 1000.0
        half = self.info.get("half_extent_um", self.extent_um)
        n = int(np.ceil(2 * half / p - 1e-9))
        coords = (np.arange(n) - (n - 1) / 2) * p
        return coords, coords[::-1].copy()

    def sample(self, values: np.ndarray, x_um: np.ndarray, y_um: np.ndarray) -> np.ndarray:
        """Interpolate cell values onto points; NaN outside the particle.

        Parameters
        ----------
        values : (..., n_cells) array
        x_um, y_um : arrays of the same shape (points, in µm)

        Returns
        -------
        (..., *x_um.shape) float array
        """
        if self.kind == "disk":
            return _sample_disk(self, values, x_um, y_um)
        raise NotImplementedError(f"sampling for mesh kind {self.kind!r}")


def disk_mesh(radius_um: float = 1.2, *, n_radial: int = 20, n_angular: int = 48) -> Mesh:
    """Polar finite-volume mesh of a disk with nodes on the surface.

    Nodes sit at radii ``r_k = k h`` (``h = R / n_radial``, ``k = 0 … n_radial``): one
    central disk cell of radius ``h/2`` and ``n_radial`` rings of ``n_angular`` sectors,
    the outermost ring half as wide so that its nodes lie on the surface. The surface
    occupancy is then a node value, with no extrapolation.

    Parameters
    ----------
    radius_um : float
        Disk radius in µm (the paper's particle: 1.2 µm).
    n_radial, n_angular : int
        Number of node rings outside the centre and of angular sectors.

    Returns
    -------
    Mesh
    """
    R = check_range("radius_um", radius_um, 0, None, low_inclusive=False)
    nr = int(check_range("n_radial", n_radial, 2, None))
    nphi = int(check_range("n_angular", n_angular, 4, None))
    h = R / nr
    dphi = 2 * np.pi / nphi
    phi = (np.arange(nphi) + 0.5) * dphi
    k = np.arange(1, nr + 1)
    r_node = k * h
    r_in = (k - 0.5) * h
    r_out = np.minimum((k + 0.5) * h, R)

    def cell(ring, j):  # ring >= 1
        return 1 + (ring - 1) * nphi + j

    n_cells = 1 + nr * nphi
    area = np.empty(n_cells)
    area[0] = np.pi * (h / 2) ** 2
    area[1:] = np.repeat(0.5 * dphi * (r_out**2 - r_in**2), nphi)
    x = np.zeros(n_cells)
    y = np.zeros(n_cells)
    rr = np.repeat(r_node, nphi)
    pp = np.tile(phi, nr)
    x[1:] = rr * np.cos(pp)
    y[1:] = rr * np.sin(pp)

    faces, trans = [], []
    j = np.arange(nphi)
    # centre <-> ring 1
    faces.append(np.column_stack([np.zeros(nphi, int), cell(1, j)]))
    trans.append(np.full(nphi, (h / 2) * dphi / h))
    for ring in range(1, nr + 1):
        # angular faces inside the ring (between sector j and j+1)
        faces.append(np.column_stack([cell(ring, j), cell(ring, (j + 1) % nphi)]))
        width = r_out[ring - 1] - r_in[ring - 1]
        trans.append(np.full(nphi, width / (r_node[ring - 1] * dphi)))
        if ring < nr:  # radial faces ring -> ring+1 at radius (ring + 1/2) h
            faces.append(np.column_stack([cell(ring, j), cell(ring + 1, j)]))
            trans.append(np.full(nphi, (ring + 0.5) * h * dphi / h))
    return Mesh(
        cell_area_um2=area,
        cell_x_um=x,
        cell_y_um=y,
        face_cells=np.concatenate(faces).astype(np.int64),
        face_transmissibility=np.concatenate(trans),
        boundary_cell=cell(nr, j).astype(np.int64),
        boundary_length_um=np.full(nphi, R * dphi),
        boundary_angle_rad=phi.copy(),
        boundary_span_rad=np.full(nphi, dphi),
        boundary_distance_um=np.zeros(nphi),
        kind="disk",
        info={"radius_um": R, "n_radial": nr, "n_angular": nphi, "half_extent_um": R},
    )


def _sample_disk(mesh: Mesh, values, x_um, y_um):
    values = np.asarray(values, dtype=float)
    R = mesh.info["radius_um"]
    nr, nphi = mesh.info["n_radial"], mesh.info["n_angular"]
    h, dphi = R / nr, 2 * np.pi / nphi
    x = np.asarray(x_um, dtype=float)
    y = np.asarray(y_um, dtype=float)
    r = np.hypot(x, y)
    inside = r <= R * (1 + 1e-9)
    phi = np.mod(np.arctan2(y, x), 2 * np.pi)
    # radial: between node rings k and k+1 (ring 0 = centre)
    fr = np.clip(r / h, 0, nr)
    k0 = np.minimum(np.floor(fr).astype(int), nr - 1)
    t = fr - k0
    # angular: between sector nodes j0 and j0+1 (nodes at (j+1/2) dphi)
    fa = phi / dphi - 0.5
    j0 = np.floor(fa).astype(int)
    s = fa - j0
    j0 %= nphi
    j1 = (j0 + 1) % nphi

    def idx(ring, jj):
        return np.where(ring == 0, 0, 1 + (ring - 1) * nphi + jj)

    v = values[..., None] if values.ndim == 1 else values
    lead = values.shape[:-1]
    flat = values.reshape(-1, values.shape[-1])
    a = flat[:, idx(k0, j0)] * (1 - s) + flat[:, idx(k0, j1)] * s
    b = flat[:, idx(k0 + 1, j0)] * (1 - s) + flat[:, idx(k0 + 1, j1)] * s
    out = (1 - t) * a + t * b
    out[:, ~inside] = np.nan
    del v
    return out.reshape(*lead, *x.shape)
