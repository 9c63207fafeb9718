"""Mirror symmetries of a discretised problem: one integrator unknown per orbit of cells.

A mirror line through the mesh's centroid is a symmetry of the problem when relabelling the
cells by their mirror images leaves the cell areas, the transmissibility operator and the
boundary source unchanged (to round-off); the solution then has that symmetry too, and the
integrator needs one cell per orbit (:class:`~asymflux.model.discretisation.Discretisation`
folds and unfolds its state). Candidate lines: a disk's sector lines on a uniform surface,
else the centres of the blocked or film arcs.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from .mesh import Mesh
from .surface import Surface


def mirror_orbits(mesh: Mesh, surface: Surface, weights, L_scaled, source):
    """The orbits of the cells under the problem's mirror symmetries.

    Parameters
    ----------
    mesh : Mesh
    surface : Surface
    weights : (n_faces,) array
        Per boundary face, the surface's weight (blocking or film signature): uniform
        weights make every sector line a candidate, else the arcs' centres are.
    L_scaled : (n_cells, n_cells) sparse matrix
        The operator ``A⁻¹ L``.
    source : (n_cells,) array
        The boundary source (or, on a kinetic surface, a signature of it) per cell.

    Returns
    -------
    orbit : (n_cells,) int
        The orbit of each cell.
    representative : (n_orbits,) int
        The cell standing for each orbit (the first of its cells). Without a symmetry
        every cell is its own orbit.
    """
    n = mesh.n_cells
    perms = [p for p in (_mirror_permutation(mesh, a) for a in _mirror_axes(mesh, surface, weights))
             if p is not None and _invariant(p, mesh.cell_area_um2, L_scaled, source)]
    if perms:
        edges = np.concatenate([np.column_stack([np.arange(n), p]) for p in perms])
        graph = sp.coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
        _, rep, orbit = np.unique(connected_components(graph, directed=False)[1],
                                  return_index=True, return_inverse=True)
    else:
        orbit, rep = np.arange(n), np.arange(n)
    return orbit, rep


def _mirror_axes(mesh: Mesh, surface: Surface, weights) -> list:
    """Candidate mirror lines through the centroid (polar angles, rad): a disk's sector lines
    (a boundary face's midpoint and its edge) when the surface is uniform, else the centres
    of the blocked arcs. :func:`_invariant` decides which of them are symmetries."""
    if mesh.boundary_angle_rad.size == 0:
        return []
    w = np.asarray(weights, dtype=float)
    if np.ptp(w) <= 1e-12 * np.max(np.abs(w)):
        angle, span = mesh.boundary_angle_rad[0], mesh.boundary_span_rad[0]
        return [angle, angle + span / 2]
    return [np.deg2rad(arc.center_deg) for arc in surface.arcs]


def _mirror_permutation(mesh: Mesh, axis_rad: float):
    """The cell each cell's node is mirrored onto across the line through the centroid at
    ``axis_rad``, or None when some node has no mirror image among the nodes."""
    c, s = np.cos(2 * axis_rad), np.sin(2 * axis_rad)
    x, y = mesh.cell_x_um, mesh.cell_y_um
    xm, ym = c * x + s * y, s * x - c * y
    tol = 1e-9 * max(mesh.extent_um, 1e-300)
    dist, perm = cKDTree(np.column_stack([x, y])).query(np.column_stack([xm, ym]))
    if np.any(dist > tol) or np.unique(perm).size != perm.size:
        return None
    return perm


def _invariant(perm, area, L_scaled, source) -> bool:
    """Whether relabelling the cells by ``perm`` leaves the areas, the operator and the
    boundary source unchanged (to round-off): then the solution has that symmetry."""
    if not np.allclose(area[perm], area, rtol=1e-10, atol=0):
        return False
    if not np.allclose(source[perm], source, rtol=1e-10, atol=1e-12 * np.max(np.abs(source))):
        return False
    moved = L_scaled[perm][:, perm]
    scale = np.max(np.abs(L_scaled.data)) if L_scaled.nnz else 1.0
    diff = abs(moved - L_scaled)
    return diff.nnz == 0 or diff.max() <= 1e-10 * scale
