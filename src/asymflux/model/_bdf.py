"""SciPy's BDF integrator with linear algebra suited to the model's Newton matrices.

:class:`SymmetricOrderingBDF` is ``scipy.integrate.BDF`` whose Newton matrices ``I − cJ``
are factored by a plan made once for the mesh's sparsity pattern (banded LAPACK, SuperLU in
a reused ordering, dense LAPACK for small problems, block by block for runs side by side),
with a kinetic surface's rank-one coupling applied by Sherman-Morrison, and ``I − cJ``
written into one reused matrix. It does so by replacing attributes that SciPy's private
``BDF._step_impl`` uses (``I``, ``J``, ``lu``, ``solve_lu``, ``jac``, ``newton_tol``), so it
is used only with the SciPy versions it was tested on (:data:`TESTED_SCIPY`). With any other
SciPy the class is SciPy's own BDF (the full Jacobian, the rank-one part included, handed to
it as a matrix), after a one-line warning: the same results to the integrator's tolerances,
slower.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import scipy
import scipy.sparse as sp
from scipy.integrate import BDF
from scipy.linalg.lapack import dgbtrf, dgbtrs, dgetrf, dgetrs
from scipy.sparse.linalg import splu

TESTED_SCIPY = ((1, 11), (1, 17))
"""The oldest and newest SciPy releases (major, minor) the fast path was tested with: the
model's tests pass, with the same numbers to the bit, on 1.11.4 (the floor in pyproject)
and 1.17.1, whose ``BDF._step_impl`` is the same code; the releases between were not run.
A new SciPy release is added here once ``tests/model`` passes with it."""


def scipy_is_tested(version: str) -> bool:
    """Whether SciPy ``version`` (e.g. ``"1.17.1"``) is within :data:`TESTED_SCIPY`."""
    match = re.match(r"(\d+)\.(\d+)", str(version))
    if match is None:
        return False
    release = (int(match.group(1)), int(match.group(2)))
    return TESTED_SCIPY[0] <= release <= TESTED_SCIPY[1]


FAST_PATH = scipy_is_tested(scipy.__version__)
"""Whether :class:`SymmetricOrderingBDF` replaces SciPy's linear algebra (the installed SciPy
is a tested one); else it is SciPy's own BDF."""


MAX_BANDWIDTH = 64
"""Widest half-band (in the better of the natural and the reverse Cuthill-McKee orderings)
for which the Newton matrices are factored as banded matrices (LAPACK ``dgbtrf``); wider
patterns go to SuperLU. A disk mesh numbered ring by ring has a half-band of one ring
(48 on a 20 x 48 mesh, 24 once folded): banded LU is then 2-5x faster than SuperLU. On the
default 20 x 96 mesh (issue #29) a folded run's half-band is 48, an unfolded run's 96 (SuperLU).
Measured there (20 min at 100 mA/g, load ~7 on 2 cores): one blocked arc (folded, banded)
0.8 s, two arcs that cannot be folded (SuperLU) 2.5 s; the same unfolded run factored as a
banded matrix of half-band 96 (this constant at 128) took 33 s: SuperLU is right there."""


class SymmetricOrderingBDF(BDF):
    """SciPy's BDF with a linear solver suited to the mesh's sparsity pattern.

    Every matrix BDF factors (``I - c J``) has the pattern of the mesh graph, so the solver
    is planned once, at the first factorisation: a banded LU when the pattern has a narrow
    band in its natural or reverse Cuthill-McKee ordering (:data:`MAX_BANDWIDTH`), else
    SuperLU in the minimum-degree ordering on A + A^T (about half the fill of the default
    COLAMD for these symmetric patterns), computed once and reused.

    With a SciPy outside :data:`TESTED_SCIPY` (:data:`FAST_PATH` false) it is SciPy's own
    BDF, given the full Jacobian (``rank_one`` added to it), after a warning.
    """

    _blocks = 1  # equal dense diagonal blocks of the Jacobian (runs side by side)

    def __init__(self, *args, rank_one=None, blocks=1, **kwargs):
        # rank_one(): (p, q, diag of J) of the last Jacobian, whose full form is J + p q^T;
        # blocks: a dense Jacobian that is block diagonal with this many equal blocks
        # (independent runs side by side): each block is factored alone
        self._rank_one = rank_one
        self._blocks = int(blocks)
        if not FAST_PATH:  # an untested SciPy: its own BDF, given the full Jacobian
            warnings.warn(f"SciPy {scipy.__version__} is untested with asymflux's BDF "
                          f"linear algebra (tested {_tested_range()}): using SciPy's own BDF "
                          "(slower)", RuntimeWarning, stacklevel=2)
            jac = kwargs.get("jac")
            if rank_one is not None and callable(jac):
                kwargs["jac"] = _with_rank_one(jac, rank_one)
            super().__init__(*args, **kwargs)
            return
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
    side by side, :func:`~asymflux.model.simulation.simulate_side_by_side`), block by block."""

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


def _tested_range() -> str:
    (a, b), (c, d) = TESTED_SCIPY
    return f"{a}.{b} to {c}.{d}"


def _with_rank_one(jac, rank_one):
    """``jac`` with the rank-one part ``p q^T`` that ``rank_one()`` gives after each call
    added: the full Jacobian, for SciPy's own BDF (sparse: p and q are zero off the
    boundary)."""

    def full(t, y):
        J = jac(t, y)
        p, q, _ = rank_one()
        return sp.csc_matrix(J) + sp.csc_matrix(p[:, None]) @ sp.csr_matrix(q[None, :])
    return full
