"""Method-of-lines solver: finite-volume fluxes in space, SciPy's stiff BDF in time.

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
without the rank-one part, as sparse as before, and it is applied by Sherman-Morrison.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from scipy.integrate import BDF, solve_ivp
from scipy.linalg.lapack import dgbtrf, dgbtrs, dgetrf, dgetrs
from scipy.sparse.csgraph import connected_components
from scipy.sparse.linalg import splu
from scipy.spatial import cKDTree

from . import parameters as _parameters
from .kinetics import KineticBoundary
from .mesh import Mesh, disk_mesh
from .protocol import Charge, Discharge, Rest
from .result import Result
from .surface import Surface

M2_TO_UM2 = 1e12


MAX_BANDWIDTH = 64
"""Widest half-band (in the better of the natural and the reverse Cuthill-McKee orderings)
for which the Newton matrices are factored as banded matrices (LAPACK ``dgbtrf``); wider
patterns go to SuperLU. A disk mesh numbered ring by ring has a half-band of one ring
(48 on the default mesh, 24 once folded): banded LU is then 2-5x faster than SuperLU."""


DENSE_MAX_UNKNOWNS = 128
"""Up to this many unknowns (after folding the symmetry) the integrator works with a dense
Jacobian and LAPACK's dense LU: on such small problems the sparse matrices' bookkeeping
costs more than the arithmetic (a Fig. 5b point of the model explorer, 8 x 16 mesh folded
to 65 unknowns: 108 -> 70 ms prescribed, 153 -> 130 ms kinetic). Larger problems keep the
sparse/banded path (a dense 216-unknown twin ran 2x slower)."""


class SymmetricOrderingBDF(BDF):
    """SciPy's BDF with a linear solver suited to the mesh's sparsity pattern.

    Every matrix BDF factors (``I - c J``) has the pattern of the mesh graph, so the solver
    is planned once, at the first factorisation: a banded LU when the pattern has a narrow
    band in its natural or reverse Cuthill-McKee ordering (:data:`MAX_BANDWIDTH`), else
    SuperLU in the minimum-degree ordering on A + A^T (about half the fill of the default
    COLAMD for these symmetric patterns), computed once and reused.
    """

    _blocks = 1  # equal dense diagonal blocks of the Jacobian (runs side by side)

    def __init__(self, *args, rank_one=None, blocks=1, **kwargs):
        # rank_one(): (p, q, diag of J) of the last Jacobian, whose full form is J + p q^T;
        # blocks: a dense Jacobian that is block diagonal with this many equal blocks
        # (independent runs side by side): each block is factored alone
        self._rank_one = rank_one
        self._blocks = int(blocks)
        super().__init__(*args, **kwargs)
        # SciPy's Newton tolerance is min(0.03, sqrt(rtol)); at rtol 1e-4 that is 0.01, which
        # makes Newton give up with a stale Jacobian at the steep D(theta) front and forces
        # extra refactorisations. min(0.03, 3 sqrt(rtol)) = 0.03 at the default rtol keeps the
        # error against a 4x refined reference unchanged (benchmarks/bench_model.py) and
        # stays tight for tight tolerances.
        self.newton_tol = max(self.newton_tol, min(0.03, 3.0 * np.sqrt(self.rtol)))
        if sp.issparse(self.J):
            self._plan = None
            self.I = _IdentityMinus(self.I)
            jac = kwargs.get("jac")
            if callable(jac):  # SciPy's wrapper makes a new csc_matrix of every Jacobian

                def jac_as_is(t, y):
                    self.njev += 1
                    J = jac(t, y)
                    if not (sp.issparse(J) and J.format == "csc" and J.dtype == np.float64):
                        J = sp.csc_matrix(J, dtype=float)
                    return _UnscaledJacobian(J)
                self.jac = jac_as_is
            self.J = _UnscaledJacobian(self.J)

            def lu(A):
                self.nlu += 1
                return self._factor(A)
            self.lu = lu
        else:  # LAPACK directly: scipy.linalg's lu_factor/lu_solve wrappers cost ~0.1 ms a call

            def lu_dense(A):
                self.nlu += 1
                return _dense_lu(A, overwrite=True)

            def solve_lu_dense(LU, b):
                return dgetrs(LU[0], LU[1], b, overwrite_b=1)[0]
            self.lu, self.solve_lu = lu_dense, solve_lu_dense

    def _factor(self, A):
        """LU of ``A`` (CSC), by the plan made at the first call for A's pattern; with a
        rank-one part of the Jacobian, the LU of ``A − c p q^T`` (Sherman-Morrison)."""
        if not (sp.issparse(A) and A.format == "csc"):  # a CSC matrix as it is: no new
            A = sp.csc_matrix(A)  # wrapper object, no format check
        if self._blocks > 1:
            return _BlockLU(A, self._blocks)
        if self._plan is None:
            self._plan = _BandPlan.for_pattern(A) or _SuperLUPlan(A)
        if not self._plan.matches(A):  # another pattern: SuperLU, planned for this one only
            lu = _SuperLUPlan(A).factor(A)
        else:
            lu = self._plan.factor(A)
        if self._rank_one is None:
            return lu
        p, q, jdiag = self._rank_one()
        # A = I - c J: recover c from the largest diagonal entry of J
        i = int(np.argmax(np.abs(jdiag)))
        pos = self._plan.diag_pos if self._plan.matches(A) else None
        a_ii = A.data[pos[i]] if pos is not None else A[i, i]
        c = (1.0 - a_ii) / jdiag[i] if jdiag[i] != 0 else 0.0
        return _RankOneLU(lu, c, p, q)


def _dense_lu(A, *, overwrite=False):
    """LAPACK's ``dgetrf`` of a dense matrix: ``(factors, pivots)``; refuses a non-finite or
    singular matrix (as the banded path: no silent infinities)."""
    if not np.all(np.isfinite(A)):
        raise np.linalg.LinAlgError("the Newton matrix has non-finite entries")
    factors, piv, info = dgetrf(A, overwrite_a=int(overwrite))
    if info != 0:
        raise np.linalg.LinAlgError(f"the Newton matrix is singular (dgetrf info {info})")
    return factors, piv


class _BlockLU:
    """LU of a block-diagonal CSC matrix of ``blocks`` equal dense blocks (independent runs
    side by side, :func:`simulate_side_by_side`), block by block."""

    def __init__(self, A, blocks):
        self.size = size = A.shape[0] // blocks
        if A.nnz == blocks * size * size and A.has_sorted_indices:
            # every entry of the blocks stored: column j of block k holds its rows in order
            dense = A.data.reshape(blocks, size, size).transpose(0, 2, 1)
        else:
            full = A.toarray()
            dense = np.stack([full[k * size:(k + 1) * size, k * size:(k + 1) * size]
                              for k in range(blocks)])
        self.factors = [_dense_lu(np.array(d, order="F")) for d in dense]

    def solve(self, b):
        n = self.size
        return np.concatenate([dgetrs(f, piv, b[k * n:(k + 1) * n])[0]
                               for k, (f, piv) in enumerate(self.factors)])


class _UnscaledJacobian:
    """The sparse Jacobian ``J`` as BDF holds it: its only use (scipy.integrate's
    ``BDF._step_impl``) is ``I - c * J``, so ``c * J`` stays a pair (c, J) and
    :class:`_IdentityMinus` writes ``I - c J`` into one reused matrix: no new sparse matrix
    (and its format checks) per factorisation."""

    __array_ufunc__ = None  # a NumPy scalar ``c * J`` defers to __rmul__

    def __init__(self, J):
        self.J = J

    def __rmul__(self, c):
        return _ScaledJacobian(float(c), self.J)


class _ScaledJacobian:
    def __init__(self, c, J):
        self.c, self.J = c, J


class _IdentityMinus:
    """BDF's sparse identity in ``I - c J`` (its only use, scipy.integrate's ``BDF._step_impl``):
    writes ``-c J`` into one matrix of J's pattern kept for the purpose and adds one on its
    stored diagonal, instead of SciPy's scalar product and sparse subtraction (new matrices
    and a pattern merge per factorisation, ~10 % of a run on the twin's mesh, measured then).
    The matrix is overwritten at the next factorisation: the factorisations copy what they
    need. A Jacobian without every diagonal entry stored goes the general way."""

    def __init__(self, identity):
        self.identity = identity
        self._pattern = None  # (indptr, indices, positions of the diagonal in data)
        self._out = None  # the matrix written

    def __sub__(self, M):
        if not isinstance(M, _ScaledJacobian):
            return self.identity - M
        J, c = M.J, M.c
        if not (sp.issparse(J) and J.format == "csc" and J.shape == self.identity.shape):
            return self.identity - c * J
        known = self._pattern
        if known is None or not (np.array_equal(known[0], J.indptr)
                                 and np.array_equal(known[1], J.indices)):
            pos = _diagonal_positions(J)
            if pos is None:
                return self.identity - c * J
            known = self._pattern = (J.indptr.copy(), J.indices.copy(), pos)
            self._out = sp.csc_matrix((np.zeros(J.nnz), known[1], known[0]), shape=J.shape)
        out = self._out
        np.multiply(J.data, -c, out=out.data)
        out.data[known[2]] += 1.0
        return out


def _diagonal_positions(A):
    """Positions in ``A.data`` (CSC, sorted or not) of the diagonal entries, or None when one
    is not stored."""
    n = A.shape[0]
    cols = np.repeat(np.arange(n), np.diff(A.indptr))
    on = np.flatnonzero(A.indices == cols)
    if on.size != n or not np.array_equal(np.sort(cols[on]), np.arange(n)):
        return None
    out = np.empty(n, dtype=np.int64)
    out[cols[on]] = on
    return out


class _RankOneLU:
    """Solves ``(A − c p q^T) x = b`` from an LU of ``A`` (Sherman-Morrison)."""

    def __init__(self, lu, c, p, q):
        self.lu, self.c, self.q = lu, c, q
        self.z = lu.solve(p)
        denom = 1.0 - c * float(q @ self.z)
        if denom == 0 or not np.isfinite(denom):
            raise np.linalg.LinAlgError("the Newton matrix with the potential coupling is singular")
        self.factor = c / denom

    def solve(self, b):
        y = self.lu.solve(b)
        return y + (self.factor * float(self.q @ y)) * self.z


class _PatternPlan:
    """A way to factor matrices with one CSC pattern (A's)."""

    def __init__(self, A):
        self.indptr, self.indices = A.indptr.copy(), A.indices.copy()
        self.diag_pos = _diagonal_positions(A)

    def matches(self, A) -> bool:
        return np.array_equal(A.indptr, self.indptr) and np.array_equal(A.indices, self.indices)


def _entry_positions(A, perm):
    """(row, column) of each stored entry of CSC ``A`` (in storage order) in ``A[perm][:, perm]``."""
    n = A.shape[0]
    where = np.empty(n, dtype=np.int64)
    where[perm] = np.arange(n)  # position of each row/column in the ordering
    return where[A.indices], where[np.repeat(np.arange(n), np.diff(A.indptr))]


class _BandPlan(_PatternPlan):
    """Banded LU (LAPACK ``dgbtrf``/``dgbtrs``) of matrices with one CSC pattern, in a
    symmetric ordering ``perm`` (the matrix factored is ``A[perm][:, perm]``)."""

    def __init__(self, A, perm, kl, ku):
        super().__init__(A)
        self.kl, self.ku = kl, ku
        rows, cols = _entry_positions(A, perm)
        # the ordering's permutation, None for the natural one (no gathers at each solve)
        self.perm = None if np.array_equal(perm, np.arange(A.shape[0])) else perm
        # LAPACK band storage with kl extra rows for the pivoting's fill: ab[kl+ku+i-j, j]
        self.ab_index = (kl + ku + rows - cols, cols)
        self.ab_shape = (2 * kl + ku + 1, A.shape[0])

    @classmethod
    def for_pattern(cls, A):
        """The plan in the ordering with the narrower band, or None if it is wider than
        :data:`MAX_BANDWIDTH`."""
        from scipy.sparse.csgraph import reverse_cuthill_mckee

        best = None
        for perm in (np.arange(A.shape[0]),
                     reverse_cuthill_mckee(sp.csr_matrix(A), symmetric_mode=True)):
            rows, cols = _entry_positions(A, perm)
            kl, ku = int(np.max(rows - cols, initial=0)), int(np.max(cols - rows, initial=0))
            if best is None or max(kl, ku) < max(best[1], best[2]):
                best = (perm, kl, ku)
        return cls(A, *best) if max(best[1], best[2]) <= MAX_BANDWIDTH else None

    def factor(self, A):
        if not np.all(np.isfinite(A.data)):  # LAPACK would carry NaN on without a word
            raise np.linalg.LinAlgError("the Newton matrix has non-finite entries")
        ab = np.zeros(self.ab_shape)
        ab[self.ab_index] = A.data
        lu, piv, info = dgbtrf(ab, self.kl, self.ku, overwrite_ab=1)
        if info > 0:
            raise np.linalg.LinAlgError(f"the Newton matrix is singular (dgbtrf info {info})")
        return _BandLU(lu, piv, self)


class _BandLU:
    def __init__(self, lu, piv, plan):
        self.lu, self.piv, self.plan = lu, piv, plan

    def solve(self, b):
        p = self.plan
        if p.perm is None:  # the natural ordering
            return dgbtrs(self.lu, p.kl, p.ku, b, self.piv)[0]
        y, info = dgbtrs(self.lu, p.kl, p.ku, b[p.perm], self.piv)
        x = np.empty_like(y)
        x[p.perm] = y
        return x


class _SuperLUPlan(_PatternPlan):
    """SuperLU of matrices with one CSC pattern: the fill-reducing ordering is computed once
    (minimum degree on A + A^T) and later factorisations factor the permuted matrix in that
    order (~25% faster each)."""

    def __init__(self, A):
        super().__init__(A)
        lu = splu(A, permc_spec="MMD_AT_PLUS_A")
        self.p = np.argsort(lu.perm_c)  # symmetric permutation giving the same fill
        # A's entries numbered (1.., CSC order) and permuted: where each entry of A[p][:, p]
        # comes from in A, and that matrix's structure
        numbered = sp.csc_matrix((np.arange(1, A.nnz + 1, dtype=float), A.indices, A.indptr),
                                 shape=A.shape)[self.p][:, self.p].tocsc()
        numbered.sort_indices()
        self.take = numbered.data.astype(np.int64) - 1
        self.b_indptr, self.b_indices = numbered.indptr, numbered.indices
        self._first = lu

    def factor(self, A):
        if self._first is not None:  # the LU computed while planning
            lu, self._first = self._first, None
            return _PermutedLU(lu, None)
        B = sp.csc_matrix((A.data[self.take], self.b_indices, self.b_indptr), shape=A.shape)
        return _PermutedLU(splu(B, permc_spec="NATURAL"), self.p)


class _PermutedLU:
    """``solve`` of A x = b from the LU of A or of its symmetric permutation A[p][:, p]."""

    def __init__(self, lu, p):
        self.lu, self.p = lu, p

    def solve(self, b):
        if self.p is None:
            return self.lu.solve(b)
        x = np.empty_like(b)
        x[self.p] = self.lu.solve(b[self.p])
        return x


class SolverError(RuntimeError):
    """The time integration failed; the message says at which time and step."""


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
        perms = [p for p in (_mirror_permutation(mesh, a) for a in _mirror_axes(mesh, surface, w))
                 if p is not None and _invariant(p, mesh.cell_area_um2, L_scaled, source)] \
            if symmetry else []
        if perms:
            edges = np.concatenate([np.column_stack([np.arange(n), p]) for p in perms])
            graph = sp.coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
            _, rep, orbit = np.unique(connected_components(graph, directed=False)[1],
                                      return_index=True, return_inverse=True)
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
        uses it for problems of at most :data:`DENSE_MAX_UNKNOWNS` unknowns; larger ones
        keep :meth:`jacobian`'s sparse form)."""
        J = self.jacobian(theta, current_A_kg).toarray()
        if self.kinetics is not None:
            p, q, _ = self.last_rank_one
            J += np.outer(p, q)
        return J

    # several runs side by side (:func:`simulate_side_by_side`): states (n_runs, n_unknowns)
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


def simulate(
    params: dict | None = None,
    mesh: Mesh | None = None,
    surface: Surface | None = None,
    protocol: Sequence = (Charge(100.0, minutes=20.0),),
    *,
    output_minutes: Sequence[float] = (),
    rtol: float = 1e-4,
    atol: float = 1e-6,
    symmetry: bool = True,
) -> Result:
    """Solve the occupancy in a particle's ab-plane through a protocol.

    Parameters
    ----------
    params : dict, optional
        A parameter set (default :func:`~asymflux.model.parameters.nmc88_lun2025`).
    mesh : Mesh, optional
        Default: :func:`~asymflux.model.mesh.disk_mesh` (radius 1.2 µm).
    surface : Surface, optional
        Blocked arcs or η(φ); default unblocked.
    protocol : sequence of Charge, Discharge, Rest
        Steps run in order.
    output_minutes : sequence of float
        Times (from the start of the protocol) at which to keep θ.
    rtol, atol : float
        Tolerances of the BDF integrator.
    symmetry : bool
        Solve one cell per orbit of the problem's mirror symmetries (exact; see the module
        docstring). ``False`` solves every cell, e.g. to check the symmetry itself.

    Returns
    -------
    Result
    """
    params = _parameters.nmc88_lun2025() if params is None else params
    mesh = disk_mesh() if mesh is None else mesh
    surface = Surface() if surface is None else surface
    disc = Discretisation(mesh, params, surface, symmetry=symmetry)
    params = disc.params
    m_over_f = params["Molar mass [kg.mol-1]"] / _parameters.FARADAY_C_MOL
    ocv = params.get("Open-circuit voltage [V]")
    out_s = np.unique(np.asarray(list(output_minutes), dtype=float) * 60.0)
    if np.any(~np.isfinite(out_s)) or np.any(out_s < 0):
        raise ValueError(f"output minutes must be finite and >= 0, got {list(output_minutes)}")
    steps = list(protocol)
    if not steps:
        raise ValueError("protocol must have at least one step")

    theta = np.full(mesh.n_cells, params["Initial occupancy"], dtype=float)
    t_now, cap_now = 0.0, 0.0
    times, caps, thetas, step_idx = [0.0], [0.0], [theta.copy()], [0]
    volts, face_i, ratios = [np.nan], [None], [None]
    log = []
    for k, step in enumerate(steps):
        if not isinstance(step, Charge | Discharge | Rest):
            raise ValueError(f"protocol step {k + 1} must be Charge, Discharge or Rest, got {step!r}")
        current = step.sign * step.rate_mA_g  # A/kg, positive on charge
        duration = step.duration_s
        events = []
        if not isinstance(step, Rest):
            duration = _galvanostatic_duration(step, mesh.mean(theta), m_over_f)
            events += _occupancy_events(disc, current, step, ocv)
        if not np.isfinite(duration) or duration <= 0:
            raise ValueError(f"protocol step {k + 1} ({step}) has no end: give minutes, a capacity or a cut-off")
        t_end = t_now + duration
        t_eval = out_s[(out_s > t_now) & (out_s < t_end)]
        t_eval = np.append(t_eval, t_end)

        sol = _integrate(disc, current, theta, (t_now, t_end), t_eval, events, rtol, atol,
                         where=f"protocol step {k + 1} ({step})")
        reason = _end_reason(step)  # unless an event ends it (below)
        sol_t = np.atleast_1d(np.asarray(sol.t, dtype=float))
        sol_y = disc.unfold(np.asarray(sol.y, dtype=float).reshape(disc.n_unknowns, sol_t.size).T)
        ts, ys = list(sol_t), list(sol_y)
        if sol.status == 1:
            for (_, name), te, ye in zip(events, sol.t_events, sol.y_events, strict=True):
                if te.size:
                    reason = name
                    # keep samples before the event, then the event state itself
                    keep = [i for i, t in enumerate(ts) if t < te[0]]
                    ts = [ts[i] for i in keep] + [float(te[0])]
                    ys = [ys[i] for i in keep] + [disc.unfold(ye[0])]
                    break
        if k == 0:  # the t = 0 sample sees the first step's current
            v0, f0, r0 = _surface_outputs(disc, thetas[0], current)
            volts[0], face_i[0], ratios[0] = v0, f0, r0
        for t, y in zip(ts, ys, strict=True):
            times.append(float(t))
            caps.append(cap_now + current * (float(t) - t_now) / 3600.0)
            thetas.append(np.asarray(y, dtype=float))
            step_idx.append(k)
            v, f, r = _surface_outputs(disc, thetas[-1], current)
            volts.append(v), face_i.append(f), ratios.append(r)
        cap_now = caps[-1]
        log.append({"step": step, "start_s": t_now, "end_s": times[-1], "reason": reason})
        t_now, theta = times[-1], thetas[-1].copy()

    return Result(
        mesh=mesh,
        params=params,
        surface=surface,
        times_s=np.asarray(times),
        capacity_mAh_g=np.asarray(caps),
        theta=np.vstack(thetas),
        step_index=np.asarray(step_idx),
        steps=log,
        potential_V=np.asarray(volts, dtype=float) if disc.is_kinetic else None,
        face_current_A_m2=np.vstack(face_i),
        arc_flux_ratio=np.vstack(ratios).reshape(len(times), len(surface.arcs)),
    )


def simulate_side_by_side(
    params: dict | None = None,
    mesh: Mesh | None = None,
    surface: Surface | None = None,
    steps: Sequence = (Charge(100.0),),
    *,
    rtol: float = 1e-4,
    atol: float = 1e-6,
) -> list[dict]:
    """Run each galvanostatic step alone from the initial state, all in one integration.

    The same runs as ``[simulate(params, mesh, surface, [step]) for step in steps]`` (same
    end conditions, tolerances and mesh), to the integrator's tolerance, for the states at
    their ends only (Fig. 5b's points: Li extracted at a cut-off against rate). Each run is
    integrated in its own charge-passed time (time x rate), so the runs' fronts move
    together and share the integrator's steps, its Python overhead and, on a kinetic
    surface, one Butler-Volmer solve for all; the Newton matrices are factored run by run
    (their block diagonal). A run that reaches its end leaves the integration, which goes on
    with the others; if the joint integration fails, the runs still going are run one at a
    time by :func:`simulate` (whose failure then names its step). For small meshes (at most :data:`DENSE_MAX_UNKNOWNS` unknowns after
    folding the symmetry); 4-5 runs cost about 1.5-2x one.

    Parameters
    ----------
    params, mesh, surface :
        As for :func:`simulate`.
    steps : sequence of Charge or Discharge
        One run each, from the initial occupancy.

    Returns
    -------
    list of dict
        Per step, in order: ``minutes`` (end time), ``capacity_mAh_g``, ``li_extracted``
        (θ0 − mean θ at the end), ``reason`` (as :attr:`Result.steps`' ``reason``) and
        ``theta`` (θ on every cell at the end, (n_cells,)).
    """
    params = _parameters.nmc88_lun2025() if params is None else params
    mesh = disk_mesh() if mesh is None else mesh
    surface = Surface() if surface is None else surface
    disc = Discretisation(mesh, params, surface)
    params = disc.params
    n = disc.n_unknowns
    if n > DENSE_MAX_UNKNOWNS:
        raise ValueError(f"simulate_side_by_side is for meshes of at most {DENSE_MAX_UNKNOWNS} "
                         f"unknowns after folding; this one has {n}: use simulate()")
    steps = list(steps)
    if not steps:
        raise ValueError("steps must hold at least one Charge or Discharge")
    m_over_f = params["Molar mass [kg.mol-1]"] / _parameters.FARADAY_C_MOL
    ocv = params.get("Open-circuit voltage [V]")
    theta0 = np.full(mesh.n_cells, params["Initial occupancy"], dtype=float)
    mean0 = mesh.mean(theta0)
    runs = []
    for k, step in enumerate(steps):
        if not isinstance(step, Charge | Discharge):
            raise ValueError(f"step {k + 1} must be a Charge or Discharge, got {step!r}")
        duration = _galvanostatic_duration(step, mean0, m_over_f)
        if not np.isfinite(duration) or duration <= 0:
            raise ValueError(f"step {k + 1} ({step}) has no end: give minutes, a capacity or a cut-off")
        runs.append({"step": step, "current": step.sign * step.rate_mA_g,
                     "rate": step.rate_mA_g, "end": duration * step.rate_mA_g})  # in t x rate
    out: list = [None] * len(runs)

    def finish(k, tau_k, theta, reason):
        run = runs[k]
        t_s = tau_k / run["rate"]
        out[k] = {"minutes": t_s / 60.0, "capacity_mAh_g": run["current"] * t_s / 3600.0,
                  "li_extracted": float(params["Initial occupancy"] - mesh.mean(theta)),
                  "reason": reason, "theta": theta}

    def alone(k):  # the run by simulate(), from the start
        res = simulate(params, mesh, surface, [runs[k]["step"]], rtol=rtol, atol=atol)
        finish(k, float(res.times_s[-1]) * runs[k]["rate"], res.theta[-1],
               res.steps[-1]["reason"])

    if len(runs) == 1:  # nothing to share: the run itself, the same numbers as simulate()
        alone(0)
        return out
    potentials = _RunPotentials(disc, n)
    for k, run in enumerate(runs):
        run["events"] = _occupancy_events(disc, run["current"], run["step"], ocv,
                                          voltage_of=lambda y, k=k: potentials.of(k))

    active = list(range(len(runs)))
    state = np.tile(disc.fold(theta0), (len(runs), 1))
    tau = 0.0  # charge-passed time: t x rate (s mA/g)

    while active:
        currents = np.array([runs[k]["current"] for k in active])
        per_rate = 1.0 / np.array([runs[k]["rate"] for k in active])
        m = len(active)
        tau_end = min(runs[k]["end"] for k in active)

        def fun(t, y, currents=currents, per_rate=per_rate, m=m):
            return (disc.rhs_runs(y.reshape(m, n), currents) * per_rate[:, None]).ravel()

        # the Jacobian is block diagonal: CSC with every entry of the blocks stored
        indptr = np.arange(0, m * n * n + 1, n)
        indices = np.tile(np.arange(n), m * n) + np.repeat(np.arange(m) * n, n * n)

        def jac(t, y, currents=currents, per_rate=per_rate, m=m, indptr=indptr, indices=indices):
            blocks = disc.jacobian_runs(y.reshape(m, n), currents) * per_rate[:, None, None]
            if m == 1:  # the last run: dense, as simulate() has it
                return blocks[0]
            return sp.csc_matrix((blocks.transpose(0, 2, 1).ravel(), indices, indptr),
                                 shape=(m * n, m * n))

        potentials.runs(active, currents)
        events, owner = [], []
        for i, k in enumerate(active):
            for f, name in runs[k]["events"]:
                def g(t, y, f=f, i=i, rate=runs[k]["rate"]):
                    potentials.at(y)  # the kinetic V of every run at y, solved once for all
                    return f(t / rate, y[i * n:(i + 1) * n])
                g.terminal, g.direction = True, f.direction
                events.append(g), owner.append((i, name))
        # the integrator's error norm is the RMS over all runs: tolerances / sqrt(m) keep
        # each run's own error norm within the tolerances, as when it runs alone
        try:
            sol = solve_ivp(fun, (tau, tau_end), state.ravel(), method=SymmetricOrderingBDF,
                            t_eval=[tau_end], jac=jac, events=events, rtol=rtol / np.sqrt(m),
                            atol=atol / np.sqrt(m), blocks=m)
            failed = sol.status < 0
        except (RuntimeError, ValueError, ArithmeticError, np.linalg.LinAlgError):
            failed = True
        if failed:  # the runs still going, one at a time (each failure then says its step)
            for k in active:
                alone(k)
            break
        hit = [(float(te[0]), j) for j, te in enumerate(sol.t_events) if te.size]
        if sol.status == 1 and hit:
            tau, j = min(hit)
            y_end = sol.y_events[j][0]
            state = y_end.reshape(m, n)
            done = {owner[j][0]: owner[j][1]}
            # SciPy stops at one event: any other run whose event is reached at the same
            # state (identical steps, round-off) ends here too, or it would never see its
            # event again (its value already past zero) and run on to the next limit
            for g, (i, name) in zip(events, owner, strict=True):
                if i not in done and g.direction * g(tau, y_end) >= -1e-12:
                    done[i] = name
        else:
            tau = float(sol.t[-1])
            state = sol.y[:, -1].reshape(m, n)
            done = {i: _end_reason(runs[k]["step"]) for i, k in enumerate(active)
                    if runs[k]["end"] <= tau_end * (1 + 1e-12)}
        for i, reason in done.items():
            finish(active[i], tau, disc.unfold(state[i]), reason)
        keep = [i for i in range(m) if i not in done]
        active = [active[i] for i in keep]
        state = state[keep]
    return out


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


def _galvanostatic_duration(step, mean_theta, m_over_f) -> float:
    """A charge's or discharge's length (s): its own (``step.duration_s``), at most until the
    mean occupancy would pass 0 (charge) or 1 (discharge), by 0.01 %."""
    room = mean_theta if step.sign > 0 else 1.0 - mean_theta
    return min(step.duration_s, max(room, 0.0) / (step.rate_mA_g * m_over_f) * 1.0001)


def _end_reason(step) -> str:
    """Why a step ended when none of its events did: its capacity, its duration, or (a charge
    or discharge with neither) the mean occupancy's limit."""
    if isinstance(step, Rest):
        return "duration reached"
    if step.capacity_mAh_g is not None and (step.minutes is None
                                            or step.duration_s < step.minutes * 60.0):
        return "capacity reached"
    return "mean occupancy limit" if step.minutes is None else "duration reached"


class _RunPotentials:
    """The particle potential of every run of :func:`simulate_side_by_side` at the stacked
    state its events see: one Butler-Volmer solve for all runs per state, not one per run
    and event (the state is compared by value: the events of one step share it)."""

    def __init__(self, disc, n):
        self.disc, self.n = disc, n
        self._row, self._currents = {}, None  # run -> its row in the stacked state
        self._state = self._y = self._V = None

    def runs(self, active, currents):
        self._row = {k: i for i, k in enumerate(active)}
        self._currents = np.asarray(currents, dtype=float)
        self._y = self._V = None

    def at(self, y):
        self._state = y

    def of(self, k):
        y = self._state
        if self._y is None or not np.array_equal(self._y, y):
            states = np.asarray(y, dtype=float).reshape(len(self._row), self.n)
            self._V = self.disc.kinetic_state(states, self._currents)["V"]
            self._y = np.array(y, dtype=float, copy=True)
        return self._V[self._row[k]]


def _surface_outputs(disc, theta, current):
    """(V or NaN, current density per boundary face in A/m², flux ratio per arc) at one state
    (θ on every cell)."""
    mesh = disc.mesh
    n_arcs = len(disc.surface.arcs)
    if disc.is_kinetic:
        sol = disc.kinetic_state(disc.fold(theta), current)
        ratio = disc.kinetics.arc_flux_ratio(sol) if current != 0 else np.full(n_arcs, np.nan)
        return float(sol["V"]), disc.kinetics.face_current(sol), ratio
    # prescribed: j = j̄ w/<w>, i = F c_max j
    per_A_m2 = disc.params["Molar mass [kg.mol-1]"] / (
        _parameters.FARADAY_C_MOL * disc.params["Density [kg.m-3]"]) * 1e6
    faces = current * disc.boundary_flux_per_A_kg / per_A_m2
    ratio = np.array([getattr(a, "eta", np.nan) for a in disc.surface.arcs], dtype=float)
    if current == 0:
        ratio = np.full(n_arcs, np.nan)
    if mesh.boundary_cell.size == 0:
        faces = np.zeros(0)
    return np.nan, faces, ratio


def _integrate(disc, current, theta, t_span, t_eval, events, rtol, atol, *, where):
    """One ``solve_ivp`` call; any failure becomes a :class:`SolverError` saying when and where."""
    last_t = [t_span[0]]

    def fun(t, y):
        last_t[0] = t
        return disc.rhs(y, current)

    def fail(message):
        t = last_t[0]
        return SolverError(f"solver failed at t = {t:.1f} s ({t / 60:.2f} min) in {where}: {message}")

    dense = disc.n_unknowns <= DENSE_MAX_UNKNOWNS  # small: dense LU, the rank-one part inside

    def jac(t, y):
        return disc.jacobian_dense(y, current) if dense else disc.jacobian(y, current)

    rank_one = (lambda: disc.last_rank_one) if disc.is_kinetic and not dense else None
    try:
        sol = solve_ivp(
            fun,
            t_span,
            disc.fold(theta),
            method=SymmetricOrderingBDF,
            t_eval=t_eval,
            jac=jac,
            events=[e for e, _ in events] or None,
            rtol=rtol,
            atol=atol,
            rank_one=rank_one,
        )
    except (RuntimeError, ValueError, ArithmeticError, np.linalg.LinAlgError) as exc:
        raise fail(f"{type(exc).__name__}: {exc}") from exc
    if sol.status < 0:
        raise fail(sol.message)
    return sol


def _occupancy_events(disc, current, step, ocv, *, voltage_of=None):
    """Terminal events for a galvanostatic step: (function, reason) pairs. ``voltage_of(y)``:
    the particle potential of a kinetic surface at state ``y`` (default: solved here)."""
    events = []
    charge = step.sign > 0
    cutoff_occupancy, cutoff_voltage = step.cutoffs(kinetic=disc.is_kinetic)
    limits = [(0.0 if charge else 1.0, "surface occupancy limit")]
    if cutoff_occupancy is not None:
        limits.append((cutoff_occupancy, "cut-off occupancy"))
    for level, name in limits:
        if charge:
            def f(t, y, lv=level):
                return float(np.min(disc.surface_theta_from_state(disc.unfold(y), current))) - lv
            f.direction = -1
        else:
            def f(t, y, lv=level):
                return float(np.max(disc.surface_theta_from_state(disc.unfold(y), current))) - lv
            f.direction = 1
        f.terminal = True
        events.append((f, f"{name} {level:g}"))
    if cutoff_voltage is not None:
        if ocv is None:
            raise ValueError("cutoff_voltage_V needs an 'Open-circuit voltage [V]' in the parameter set")
        v = cutoff_voltage

        if disc.is_kinetic:
            def g(t, y):
                if voltage_of is not None:
                    return float(voltage_of(y)) - v
                return float(disc.kinetic_state(y, current)["V"]) - v
        else:
            def g(t, y):
                s = disc.surface_theta_from_state(disc.unfold(y), current)
                return float(ocv(np.min(s) if charge else np.max(s))) - v
        g.direction = 1 if charge else -1
        g.terminal = True
        events.append((g, f"cut-off voltage {v:g} V"))
    return events


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
