"""Finite-volume meshes of a particle's ab-plane.

A :class:`Mesh` is only arrays: cells (area, position), interior faces (the two cells
they join and their transmissibility length/distance) and boundary faces (the cell they
belong to, their length, the polar angle of their midpoint seen from the particle's
centroid, the angle they subtend, and the distance from the cell's node to the face).
The solver (:mod:`asymflux.model.discretisation`) only sees these arrays, so any outline that
can be turned into such a mesh (a disk here; a curated particle mask later) is solved by
the same code.

Coordinates are in micrometres, ``x`` to the right (image columns) and ``y`` up on the
screen (towards row 0); angles are measured from +x counter-clockwise as seen on screen.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .._validate import check_range
from ..paper import FIG4_RADIUS_UM


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
        if self.kind == "mask":
            return _sample_mask(self, values, x_um, y_um)
        raise NotImplementedError(f"sampling for mesh kind {self.kind!r}")


def disk_mesh(radius_um: float = FIG4_RADIUS_UM, *, n_radial: int = 20, n_angular: int = 96) -> Mesh:
    """Polar finite-volume mesh of a disk with nodes on the surface.

    Nodes sit at radii ``r_k = k h`` (``h = R / n_radial``, ``k = 0 … n_radial``): one
    central disk cell of radius ``h/2`` and ``n_radial`` rings of ``n_angular`` sectors,
    the outermost ring half as wide so that its nodes lie on the surface. The surface
    occupancy is then a node value, with no extrapolation.

    Parameters
    ----------
    radius_um : float
        Disk radius in µm (the paper's particle: 1.2 µm, :data:`asymflux.paper.FIG4_RADIUS_UM`).
    n_radial, n_angular : int
        Number of node rings outside the centre and of angular sectors. The default
        20 x 96 puts the core's offset d of Fig. 5d at 400 mA/g within 2.7 % of a 4x finer
        mesh (40 x 192); 20 x 48 is 8 % low (docs/calibration.md, issue #29).

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


def mask_mesh(mask, pixel_nm: float, *, smoothing_px: float = 1.5) -> Mesh:
    """Finite-volume mesh of a particle outline given as a mask: one cell per pixel.

    Cells are the ``True`` pixels (4-connected faces between them); every pixel edge on
    the outline is a boundary face. A staircase outline is longer than the smooth one
    (by up to 4/π for a disk) and puts more of it at diagonal angles, which would bias
    the surface flux; each boundary face therefore gets the *effective* length
    ``pixel · |n_edge · n_outline|``, with the outline normal taken from the gradient of a
    Gaussian-smoothed mask, so the perimeter and its angular distribution are those of the
    smooth outline. Angles are measured from the mask's centroid. The surface occupancy is
    extrapolated from the cell node half a pixel inside: through the Kirchhoff potential
    and the prescribed flux, or, on a kinetic surface, linearly from the boundary cell and
    the cell behind it along the face normal (``info["boundary_inner_cell"]``, -1 where
    there is none: then the boundary cell's own occupancy).

    Parameters
    ----------
    mask : (row, col) array
        Non-zero inside the particle; must be one 4-connected region without holes.
    pixel_nm : float
        Pixel size in nm.
    smoothing_px : float
        Gaussian sigma (pixels) for the outline normal.

    Returns
    -------
    Mesh
        ``kind="mask"``; ``info`` holds the mask, pixel size and centroid (row, col).
    """
    from scipy import ndimage

    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"mask must be a 2-D (row, col) image, got shape {m.shape}")
    m = m.astype(bool)
    p_um = check_range("pixel_nm", pixel_nm, 0, None, low_inclusive=False) / 1000.0
    if m.sum() < 9:
        raise ValueError(f"mask must cover at least 9 pixels, got {int(m.sum())}")
    _, n_regions = ndimage.label(m)
    if n_regions != 1:
        raise ValueError(f"mask must be one connected particle, got {n_regions} regions")
    if not np.array_equal(ndimage.binary_fill_holes(m), m):
        raise ValueError("mask must not have holes")
    padded = np.pad(m, 1)
    rows, cols = np.nonzero(padded)
    index = -np.ones(padded.shape, dtype=np.int64)
    index[rows, cols] = np.arange(rows.size)
    row_c, col_c = rows.mean(), cols.mean()
    x = (cols - col_c) * p_um
    y = -(rows - row_c) * p_um
    area = np.full(rows.size, p_um**2)
    # interior faces: right and down neighbours
    faces = []
    for dr, dc in ((0, 1), (1, 0)):
        nb = index[rows + dr, cols + dc]
        ok = nb >= 0
        faces.append(np.column_stack([np.arange(rows.size)[ok], nb[ok]]))
    faces = np.concatenate(faces)
    # outline normal from a smoothed mask (pointing outwards = down the gradient)
    smooth = ndimage.gaussian_filter(padded.astype(float), smoothing_px)
    g_row, g_col = np.gradient(smooth)
    b_cell, b_len, b_ang, b_span, b_inner = [], [], [], [], []
    for dr, dc in ((0, 1), (0, -1), (1, 0), (-1, 0)):
        nb = index[rows + dr, cols + dc]
        out = nb < 0
        r, c = rows[out], cols[out]
        # the pixel behind the boundary cell, one pixel further from the face (-1: none)
        inner = np.full(r.size, -1, dtype=np.int64)
        ok = (r - dr >= 0) & (r - dr < padded.shape[0]) & (c - dc >= 0) & (c - dc < padded.shape[1])
        inner[ok] = index[r[ok] - dr, c[ok] - dc]
        b_inner.append(inner)
        # face midpoint in pixel coordinates; its normal in (x, y) = (dc, -dr)
        fr, fc = r + dr / 2, c + dc / 2
        # gradient at the face (mean of the two pixels), outward normal = -grad
        gr = -(g_row[r, c] + g_row[r + dr, c + dc]) / 2
        gc = -(g_col[r, c] + g_col[r + dr, c + dc]) / 2
        nx, ny = gc, -gr
        norm = np.hypot(nx, ny)
        norm[norm == 0] = 1.0
        proj = np.abs(dc * nx + (-dr) * ny) / norm
        # endpoints of the edge, to get the subtended angle
        er1 = fr - (0.5 if dc else 0.0)
        er2 = fr + (0.5 if dc else 0.0)
        ec1 = fc - (0.5 if dr else 0.0)
        ec2 = fc + (0.5 if dr else 0.0)
        a1 = np.arctan2(-(er1 - row_c), ec1 - col_c)
        a2 = np.arctan2(-(er2 - row_c), ec2 - col_c)
        span = np.abs((a2 - a1 + np.pi) % (2 * np.pi) - np.pi)
        b_cell.append(index[r, c])
        b_len.append(p_um * proj)
        b_ang.append(np.mod(np.arctan2(-(fr - row_c), fc - col_c), 2 * np.pi))
        b_span.append(np.maximum(span, 1e-9))
    b_len = np.concatenate(b_len)
    return Mesh(
        cell_area_um2=area,
        cell_x_um=x,
        cell_y_um=y,
        face_cells=faces.astype(np.int64),
        face_transmissibility=np.ones(len(faces)),
        boundary_cell=np.concatenate(b_cell).astype(np.int64),
        boundary_length_um=b_len,
        boundary_angle_rad=np.concatenate(b_ang),
        boundary_span_rad=np.concatenate(b_span),
        boundary_distance_um=np.full(b_len.size, p_um / 2),
        kind="mask",
        info={"mask": m, "pixel_um": p_um, "centroid_rc": (row_c - 1, col_c - 1),
              "boundary_inner_cell": np.concatenate(b_inner),
              "half_extent_um": float(np.max(np.hypot(x, y)) + p_um)},
    )


def _sample_mask(mesh: Mesh, values, x_um, y_um):
    """Nearest-pixel lookup on the mask's own pixels; NaN outside."""
    values = np.asarray(values, dtype=float)
    info = mesh.info
    m, p = info["mask"], info["pixel_um"]
    row_c, col_c = info["centroid_rc"]
    cell_of = -np.ones(m.shape, dtype=np.int64)
    cell_of[m] = np.arange(int(m.sum()))  # row-major, the order mask_mesh numbers cells
    x = np.asarray(x_um, dtype=float)
    y = np.asarray(y_um, dtype=float)
    r = np.rint(row_c - y / p).astype(int)
    c = np.rint(col_c + x / p).astype(int)
    ok = (r >= 0) & (r < m.shape[0]) & (c >= 0) & (c < m.shape[1])
    idx = np.full(x.shape, -1, dtype=np.int64)
    idx[ok] = cell_of[r[ok], c[ok]]
    flat = values.reshape(-1, values.shape[-1])
    out = flat[:, np.clip(idx, 0, None)]
    out[:, idx < 0] = np.nan
    return out.reshape(*values.shape[:-1], *x.shape)
