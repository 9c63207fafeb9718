"""The spatial operator: finite-volume fluxes on a mesh, the boundary source.

Space: two-point fluxes on any :class:`~asymflux.model.mesh.Mesh`, written with the
Kirchhoff potential Φ(θ) = ∫D dθ, so the flux through a face is ``T (Φ_j − Φ_i)``. This
is exact for 1-D steady states and keeps steep D(θ) fronts sharp on coarse meshes. The
semi-discrete system is

    dθ/dt = A⁻¹ L Φ(θ) − s,        J = ∂f/∂θ = A⁻¹ L diag(D(θ)),

with L the (constant) transmissibility Laplacian and s the boundary source. The
Jacobian is analytic and as sparse as L. Lithium is conserved to round-off: the
columns of L sum to zero, so the area-weighted mean follows the applied current exactly.

With a kinetic surface (:mod:`asymflux.model.kinetics`) the boundary source is the
Butler-Volmer current of each face, solved inside the right-hand side together with the
particle potential V. Its Jacobian is a diagonal (each face's own occupancy) plus a
rank-one matrix (every face through V): the Newton matrices ``I − cJ`` are factored
without the rank-one part, as sparse as before, and it is applied by Sherman-Morrison
(:mod:`asymflux.model._bdf`).

The integrator's unknowns are one cell per orbit of the problem's mirror symmetries
(:mod:`asymflux.model.symmetry`).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from . import parameters as _parameters
from ._bdf import _diagonal_positions
from .kinetics import KineticBoundary
from .mesh import Mesh
from .surface import Surface
from .symmetry import mirror_orbits

M2_TO_UM2 = 1e12


class Discretisation:
    """The spatial operator of one (mesh, parameters, surface), reusable across steps.

    The integrator's state is θ on one cell per symmetry orbit (:attr:`representative`);
    :meth:`fold` and :meth:`unfold` convert from and to all cells. With
    ``symmetry=False``, or without symmetries, every cell is its own orbit.
    """

    def __init__(self, mesh: Mesh, params: dict, surface: Surface, *, symmetry: bool = True):
        self.mesh = mesh
        self.params = _parameters.validate(params)
        self.surface = surface
        D = self.params["Diffusivity [m2.s-1]"]
        phi = _parameters.kirchhoff_function(D)
        self.D = lambda th: M2_TO_UM2 * np.asarray(D(th), dtype=float)
        self.phi = lambda th: M2_TO_UM2 * phi(th)
        n = mesh.n_cells
        i, j = mesh.face_cells[:, 0], mesh.face_cells[:, 1]
        t = mesh.face_transmissibility
        rows = np.concatenate([i, j, i, j])
        cols = np.concatenate([j, i, i, j])
        vals = np.concatenate([t, t, -t, -t])
        inv_area = 1.0 / mesh.cell_area_um2
        L = sp.coo_matrix((vals, (rows, cols)), shape=(n, n)).tocsc()
        L.sum_duplicates()
        L_scaled = sp.csc_matrix(sp.diags(inv_area) @ L)  # A^-1 L
        self.kinetics = None
        if surface.is_kinetic:
            kb = self.kinetics = KineticBoundary(mesh, self.params, surface)
            self.boundary_flux_per_A_kg = None
            # a per-face and per-cell signature of the film, for the symmetry search
            sig_part = kb.all_length_um / (1.0 + 100.0 * kb.all_resistance)  # 0 under R = inf
            w = np.bincount(kb.all_face, sig_part, minlength=mesh.boundary_cell.size) \
                / mesh.boundary_length_um
            src = np.zeros(n)
            np.add.at(src, mesh.boundary_cell[kb.all_face], sig_part)
            src2 = np.zeros(n)
            np.add.at(src2, mesh.boundary_cell, mesh.boundary_length_um)
            source = (src + 0.5 * src2) * inv_area
        else:
            # boundary: unit-current source per cell (θ/s per A/kg of specific current)
            w = surface.weights(mesh.boundary_angle_rad, mesh.boundary_span_rad)
            m = self.params["Molar mass [kg.mol-1]"]
            per_current = (m / _parameters.FARADAY_C_MOL) * mesh.area_um2 * w / np.sum(
                w * mesh.boundary_length_um
            )  # occupancy·µm/s per (A/kg), outward
            self.boundary_flux_per_A_kg = per_current
            src = np.zeros(n)
            np.add.at(src, mesh.boundary_cell, per_current * mesh.boundary_length_um)
            source = src * inv_area

        # one cell per orbit of the problem's mirror symmetries (all cells without any)
        if symmetry:
            orbit, rep = mirror_orbits(mesh, surface, w, L_scaled, source)
        else:
            orbit, rep = np.arange(n), np.arange(n)
        self.orbit_of_cell = orbit
        """(n_cells,) int: the orbit (integrator unknown) of each cell."""
        self.representative = rep
        """(n_orbits,) int: the cell standing for each orbit."""
        spread = sp.csc_matrix((np.ones(n), (np.arange(n), orbit)), shape=(n, rep.size))
        self.L_scaled = sp.csc_matrix(L_scaled[rep] @ spread)  # R A^-1 L S
        self.L_scaled.sort_indices()
        self._col_of_entry = np.repeat(np.arange(rep.size), np.diff(self.L_scaled.indptr))
        self.source_per_A_kg = None if self.kinetics is not None else source[rep]
        self.last_rank_one = None
        self._runs_cache = None  # _run_matrices
        if self.kinetics is not None:
            kb = self.kinetics
            bcell = mesh.boundary_cell
            part_cell = bcell[kb.face]
            self._part_unknown = orbit[part_cell]
            writes = rep[orbit[part_cell]] == part_cell  # the part's cell is its orbit's representative
            self._src_row = self._part_unknown[writes]
            self._src_mask = writes
            self._src_w = (kb.length_um * kb.flux_per_A_m2 / mesh.cell_area_um2[part_cell])[writes]
            self._diag_pos = _diagonal_positions(self.L_scaled)
            if self._diag_pos is None:
                raise ValueError("the mesh operator has an empty diagonal entry")
            # θ at the surface: the boundary cell's node, or, where the node lies inside
            # (mask meshes), linearly extrapolated from it and the cell behind it:
            # θ_s = (1 + d/h) θ_cell − (d/h) θ_behind (h the node spacing)
            self._face_inner, self._face_w = _surface_extrapolation(mesh)
            self._extrapolated = self._face_inner is not None
            if self._extrapolated:
                w = self._face_w[kb.face]
                self._part_inner = orbit[self._face_inner[kb.face]]
                self._part_w = w
                # entries (source row, behind cell) of the Jacobian, in L's pattern
                rows_w, cols_w = self._src_row, self._part_inner[writes]
                self._inner_pos = _entry_positions_of(self.L_scaled, rows_w, cols_w)

    @property
    def n_unknowns(self) -> int:
        """Number of integrator unknowns (orbits; ``mesh.n_cells`` without symmetry)."""
        return self.representative.size

    def fold(self, theta):
        """θ on every cell (..., n_cells) -> the integrator's state (..., n_unknowns)."""
        return np.asarray(theta)[..., self.representative]

    def unfold(self, state):
        """The integrator's state (..., n_unknowns) -> θ on every cell (..., n_cells)."""
        return np.asarray(state)[..., self.orbit_of_cell]

    @property
    def is_kinetic(self) -> bool:
        return self.kinetics is not None

    def part_theta(self, state):
        """Surface occupancy of each face part of a kinetic surface from the integrator's
        state (..., n_unknowns) -> (..., n_parts): the boundary cell's, extrapolated to the
        face on meshes whose nodes lie inside it (:func:`_surface_extrapolation`)."""
        state = np.asarray(state)
        th = state[..., self._part_unknown]
        if self._extrapolated:
            th = th + self._part_w * (th - state[..., self._part_inner])
        return th

    def kinetic_state(self, state, current_A_kg, *, with_slopes=False):
        """The Butler-Volmer solution (:meth:`KineticBoundary.solve`) for the integrator's state."""
        return self.kinetics.solve_parts(self.part_theta(state), current_A_kg,
                                         with_slopes=with_slopes)

    def _kinetic_source(self, sol):
        return np.bincount(self._src_row, self._src_w * sol["s"][self._src_mask],
                           minlength=self.n_unknowns)

    def rhs(self, theta, current_A_kg):
        if self.kinetics is not None:
            sol = self.kinetic_state(theta, current_A_kg)
            return self.L_scaled @ self.phi(theta) - self._kinetic_source(sol)
        return self.L_scaled @ self.phi(theta) - current_A_kg * self.source_per_A_kg

    def jacobian(self, theta, current_A_kg=0.0):
        """Sparse ``∂f/∂θ`` of the integrator's state. With a kinetic surface this is the
        part without the rank-one coupling through V, which is stored in
        :attr:`last_rank_one` as ``(p, q, diagonal of J)``: the full Jacobian is
        ``J + p q^T`` (:meth:`jacobian_dense`)."""
        J = self.L_scaled.copy()
        J.data = self.L_scaled.data * self.D(theta)[self._col_of_entry]
        if self.kinetics is not None:
            sol = self.kinetic_state(theta, current_A_kg, with_slopes=True)
            a, g_over_sum = self.kinetics.sensitivities(sol)
            n = self.n_unknowns
            # rhs = ... − Σ_k src_w s_k;  ∂s_k/∂θ = −a_k e_own + g_k/Σωg · Σ_j ω_j a_j e_j
            own = self._src_w * a[self._src_mask]
            wa = self.kinetics.omega * a
            if self._extrapolated:  # ∂θ_s/∂θ_cell = 1 + w, ∂θ_s/∂θ_behind = −w
                w = self._part_w
                np.add.at(J.data, self._inner_pos, -w[self._src_mask] * own)
                own = own * (1.0 + w[self._src_mask])
                q = (np.bincount(self._part_unknown, wa * (1.0 + w), minlength=n)
                     - np.bincount(self._part_inner, wa * w, minlength=n))
            else:
                q = np.bincount(self._part_unknown, wa, minlength=n)
            J.data[self._diag_pos] += np.bincount(self._src_row, own, minlength=n)
            p = -np.bincount(self._src_row, self._src_w * g_over_sum[self._src_mask], minlength=n)
            self.last_rank_one = (p, q, J.data[self._diag_pos].copy())
        return J

    def jacobian_dense(self, theta, current_A_kg=0.0):
        """The full Jacobian as a dense array, the rank-one coupling included (the solver
        uses it for problems of at most :data:`~asymflux.model.simulation.DENSE_MAX_UNKNOWNS`
        unknowns; larger ones keep :meth:`jacobian`'s sparse form)."""
        J = self.jacobian(theta, current_A_kg).toarray()
        if self.kinetics is not None:
            p, q, _ = self.last_rank_one
            J += np.outer(p, q)
        return J

    # several runs side by side (:func:`~asymflux.model.simulation.simulate_side_by_side`):
    # states (n_runs, n_unknowns)
    def _run_matrices(self):
        """Dense ``(L, source rows, part columns)`` for :meth:`rhs_runs` and
        :meth:`jacobian_runs`, made at the first call."""
        if self._runs_cache is None:
            n = self.n_unknowns
            src = part = None
            if self.kinetics is not None:
                src = np.zeros((self._src_row.size, n))
                src[np.arange(self._src_row.size), self._src_row] = self._src_w
                part = np.zeros((self._part_unknown.size, n))
                k = np.arange(self._part_unknown.size)
                if self._extrapolated:  # ∂θ_s/∂state, as part_theta
                    np.add.at(part, (k, self._part_unknown), 1.0 + self._part_w)
                    np.add.at(part, (k, self._part_inner), -self._part_w)
                else:
                    part[k, self._part_unknown] = 1.0
            self._runs_cache = (self.L_scaled.toarray(), src, part)
        return self._runs_cache

    def rhs_runs(self, states, currents_A_kg):
        """:meth:`rhs` of independent runs side by side: ``states`` (n_runs, n_unknowns), one
        applied current per run (n_runs,); returns (n_runs, n_unknowns)."""
        states = np.asarray(states, dtype=float)
        currents = np.asarray(currents_A_kg, dtype=float)
        L, src, _ = self._run_matrices()
        out = self.phi(states) @ L.T
        if self.kinetics is not None:
            sol = self.kinetic_state(states, currents)
            return out - sol["s"][:, self._src_mask] @ src
        return out - currents[:, None] * self.source_per_A_kg

    def jacobian_runs(self, states, currents_A_kg):
        """The full Jacobian of each run (:meth:`jacobian_dense`), (n_runs, n_unknowns,
        n_unknowns)."""
        states = np.asarray(states, dtype=float)
        currents = np.asarray(currents_A_kg, dtype=float)
        L, src, part = self._run_matrices()
        J = L[None, :, :] * self.D(states)[:, None, :]
        if self.kinetics is not None:
            sol = self.kinetic_state(states, currents, with_slopes=True)
            a, g_over_sum = self.kinetics.sensitivities(sol)
            n = self.n_unknowns
            if self._extrapolated:
                J += np.einsum("kn,rk,km->rnm", src, a[:, self._src_mask], part[self._src_mask])
            else:
                J[:, np.arange(n), np.arange(n)] += a[:, self._src_mask] @ src
            p = -(g_over_sum[:, self._src_mask] @ src)
            q = (self.kinetics.omega * a) @ part
            J += p[:, :, None] * q[:, None, :]
        return J

    def surface_theta_from_state(self, theta, current_A_kg):
        """Occupancy at the boundary faces (extrapolated where the node is inside: through Φ
        and the prescribed flux, or linearly on a kinetic surface, as :meth:`part_theta`),
        from θ on every cell."""
        mesh = self.mesh
        th = theta[mesh.boundary_cell]
        if self.kinetics is not None:
            if self._extrapolated:
                th = th + self._face_w * (th - theta[self._face_inner])
            return th
        if not np.any(mesh.boundary_distance_um):
            return th
        target = self.phi(th) - current_A_kg * self.boundary_flux_per_A_kg * mesh.boundary_distance_um
        grid = np.linspace(-0.5, 1.5, 4001)
        return np.interp(target, self.phi(grid), grid)


def _surface_extrapolation(mesh: Mesh):
    """``(behind, weight)`` per boundary face for a linear extrapolation of θ from the
    boundary cell's node to the face, ``θ_s = θ_cell + weight (θ_cell − θ_behind)``, with
    ``weight = d / h`` (d the node's distance to the face, h the distance between the two
    nodes): on meshes whose boundary nodes lie inside (mask meshes, d = half a pixel,
    ``info["boundary_inner_cell"]``); ``(None, None)`` when the nodes are on the surface.
    A face without a cell behind its own (a one-pixel-wide neck) keeps the node's θ."""
    inner = mesh.info.get("boundary_inner_cell") if mesh.info else None
    if inner is None or not np.any(mesh.boundary_distance_um):
        return None, None
    inner = np.asarray(inner, dtype=np.int64)
    bcell = mesh.boundary_cell
    has = inner >= 0
    behind = np.where(has, inner, bcell)
    h = np.hypot(mesh.cell_x_um[bcell] - mesh.cell_x_um[behind],
                 mesh.cell_y_um[bcell] - mesh.cell_y_um[behind])
    weight = np.where(has & (h > 0), mesh.boundary_distance_um / np.where(h > 0, h, 1.0), 0.0)
    return behind, weight


def _entry_positions_of(A, rows, cols):
    """Positions in ``A.data`` (CSC, sorted indices) of the entries ``(rows[i], cols[i])``;
    raises if one is not stored."""
    pos = np.empty(len(rows), dtype=np.int64)
    for i, (r, c) in enumerate(zip(rows, cols, strict=True)):
        lo, hi = A.indptr[c], A.indptr[c + 1]
        j = lo + np.searchsorted(A.indices[lo:hi], r)
        if j >= hi or A.indices[j] != r:
            raise ValueError("the surface extrapolation needs an entry outside the mesh operator")
        pos[i] = j
    return pos
