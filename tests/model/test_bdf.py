"""The model's BDF: its version guard, SciPy's own BDF as the fallback on an untested SciPy, and
its linear algebra (the Newton matrices, their banded, SuperLU and dense LU)."""

import numpy as np
import pytest

from asymflux import model
from asymflux.model import _bdf
from asymflux.model.discretisation import Discretisation

SMALL = model.disk_mesh(1.2, n_radial=8, n_angular=16)  # 65 unknowns folded: the dense path


@pytest.mark.parametrize(("version", "tested"), [
    ("1.11.0", True), ("1.11.4", True), ("1.14.1", True), ("1.17.1", True), ("1.17.0rc1", True),
    ("1.10.1", False), ("1.18.0", False), ("1.18.0.dev0+1234", False), ("2.0.0", False),
    ("0.19.1", False), ("unknown", False),
])
def test_only_the_tested_scipy_releases_take_the_fast_path(version, tested):
    assert _bdf.scipy_is_tested(version) is tested


def test_the_installed_scipy_is_a_tested_one():
    """The suite runs the fast path (the fallback is forced below); a SciPy outside
    TESTED_SCIPY must be tested and added, not silently run slower."""
    import scipy

    assert _bdf.FAST_PATH and _bdf.scipy_is_tested(scipy.__version__)


CASES = {
    "prescribed, banded": (None, model.Surface.from_strings(["180:0.25:0.3"]),
                           [model.Charge(100, minutes=10), model.Rest(minutes=2)]),
    "kinetic, sparse + rank one": (None, model.Surface.kinetic([model.FilmArc(180, 0.25, 0.2)]),
                                   [model.Charge(100, minutes=10)]),
    "kinetic, dense": (SMALL, model.Surface.kinetic([model.FilmArc(90, 0.25, 0.2)]),
                       [model.Charge(200)]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_an_untested_scipy_runs_scipys_own_bdf_to_the_same_result(case, monkeypatch):
    mesh, surface, protocol = CASES[case]
    params = model.nmc88_lun2025()
    kw = dict(output_minutes=[2, 5, 8])
    fast = model.simulate(params, mesh, surface, protocol, **kw)
    monkeypatch.setattr(_bdf, "FAST_PATH", False)
    with pytest.warns(RuntimeWarning, match=r"untested .* using SciPy's own BDF"):
        slow = model.simulate(params, mesh, surface, protocol, **kw)
    # the same end (a cut-off's time to the integrator's tolerance) and the same fields
    assert [s["reason"] for s in slow.steps] == [s["reason"] for s in fast.steps]
    # (the 200 mA/g charge's 4.3 V cut-off: 1.04e-5 apart with the Sturm 2019 table, within
    # 1e-5 with the Verbrugge 2017 series; both integrate at rtol 1e-4)
    np.testing.assert_allclose(slow.times_s[-1], fast.times_s[-1], rtol=2e-5)
    i, j = fast.index_of_minutes([2, 5, 8]), slow.index_of_minutes([2, 5, 8])
    # (each run's error is within its tolerances, rtol 1e-4: their difference ~3e-4 here)
    np.testing.assert_allclose(slow.theta[j], fast.theta[i], atol=1e-3)
    np.testing.assert_allclose(slow.theta[-1], fast.theta[-1], atol=1e-3)
    np.testing.assert_allclose(slow.li_extracted[j], fast.li_extracted[i], atol=1e-9)
    if fast.potential_V is not None:
        np.testing.assert_allclose(slow.potential_V[j], fast.potential_V[i], atol=1e-4)


def test_the_fallback_gets_the_full_jacobian_and_no_replaced_internals(monkeypatch):
    """SciPy's own BDF holds the Jacobian with the kinetic surface's rank-one coupling in it
    (the fast path applies it by Sherman-Morrison) and its own I, J and LU."""
    disc = Discretisation(model.disk_mesh(1.2), model.nmc88_lun2025(),
                          model.Surface.kinetic([model.FilmArc(180, 0.25, 0.2)]))
    y0 = np.full(disc.n_unknowns, 0.9)
    monkeypatch.setattr(_bdf, "FAST_PATH", False)
    with pytest.warns(RuntimeWarning, match="untested"):
        bdf = _bdf.SymmetricOrderingBDF(lambda t, y: disc.rhs(y, 100.0), 0.0, y0, 10.0,
                                        jac=lambda t, y: disc.jacobian(y, 100.0),
                                        rank_one=lambda: disc.last_rank_one)
    assert not isinstance(bdf.J, _bdf._UnscaledJacobian)
    assert not isinstance(bdf.I, _bdf._IdentityMinus)
    full = disc.jacobian_dense(y0, 100.0)
    np.testing.assert_allclose(bdf.J.toarray(), full, rtol=1e-12, atol=1e-12 * np.abs(full).max())


def test_runs_side_by_side_fall_back_too(monkeypatch):
    params, surface = model.nmc88_lun2025(), model.Surface.kinetic([model.FilmArc(90, 0.25, 0.2)])
    steps = [model.Charge(rate) for rate in (50, 400)]
    fast = model.simulate_side_by_side(params, SMALL, surface, steps)
    monkeypatch.setattr(_bdf, "FAST_PATH", False)
    with pytest.warns(RuntimeWarning, match="untested"):
        slow = model.simulate_side_by_side(params, SMALL, surface, steps)
    for a, b in zip(fast, slow, strict=True):
        assert a["reason"] == b["reason"]
        assert b["li_extracted"] == pytest.approx(a["li_extracted"], abs=1e-4)
        np.testing.assert_allclose(b["theta"], a["theta"], atol=1e-3)


@pytest.mark.parametrize("arcs", [["180:0.25:0.3"], ["173:0.25:0.3"]], ids=["folded", "whole"])
def test_band_and_sparse_lu_solve_the_newton_matrices_alike(arcs):
    """The integrator's Newton matrices I - cJ: banded LU (the plan for disk meshes) and
    SuperLU (for wide patterns) give SciPy's sparse solution."""
    import scipy.sparse as sp
    from scipy.sparse.linalg import spsolve

    from asymflux.model import _bdf, discretisation

    disc = discretisation.Discretisation(model.disk_mesh(1.2, n_radial=20, n_angular=48),
                                 model.nmc88_lun2025(), model.Surface.from_strings(arcs))
    rng = np.random.default_rng(0)
    n = disc.n_unknowns
    A = sp.csc_matrix(sp.identity(n) - 30.0 * disc.jacobian(rng.uniform(0.2, 1.0, n)))
    b = rng.normal(size=n)
    expected = spsolve(A, b)
    band = _bdf._BandPlan.for_pattern(A)
    assert band is not None and max(band.kl, band.ku) <= n // 19  # one ring: 24 folded, 48 whole
    sparse = _bdf._SuperLUPlan(A)
    for plan in (band, sparse, sparse):  # SuperLU: the planning LU, then a refactorisation
        assert plan.matches(A)
        np.testing.assert_allclose(plan.factor(A).solve(b), expected, rtol=1e-9,
                                   atol=1e-12 * np.abs(expected).max())
    # a pattern without a narrow band is left to SuperLU
    W = sp.random(300, 300, density=0.03, random_state=1)
    W = sp.csc_matrix(W + W.T + sp.identity(300))
    assert _bdf._BandPlan.for_pattern(W) is None


def test_small_problems_use_a_dense_lu_that_refuses_a_singular_matrix():
    from asymflux.model import _bdf, discretisation, simulation

    disc = discretisation.Discretisation(model.disk_mesh(1.2, n_radial=4, n_angular=8),
                                 model.nmc88_lun2025(), model.Surface())
    assert disc.n_unknowns <= simulation.DENSE_MAX_UNKNOWNS
    y0 = np.full(disc.n_unknowns, 0.9)
    bdf = _bdf.SymmetricOrderingBDF(lambda t, y: disc.rhs(y, 100.0), 0.0, y0, 10.0,
                                      jac=lambda t, y: disc.jacobian_dense(y, 100.0))
    A = np.eye(3)
    b = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(bdf.solve_lu(bdf.lu(A.copy()), b.copy()), b)
    with pytest.raises(np.linalg.LinAlgError, match="singular"):
        bdf.lu(np.zeros((3, 3)))
    with pytest.raises(np.linalg.LinAlgError, match="non-finite"):
        bdf.lu(np.full((3, 3), np.nan))
    # and the same answer as the sparse path, to round-off
    kw = dict(output_minutes=[5.0, 10.0])
    dense = model.simulate(None, disc.mesh, None, [model.Charge(100.0, minutes=10.0)], **kw)
    old, simulation.DENSE_MAX_UNKNOWNS = simulation.DENSE_MAX_UNKNOWNS, 0
    try:
        sparse = model.simulate(None, disc.mesh, None, [model.Charge(100.0, minutes=10.0)], **kw)
    finally:
        simulation.DENSE_MAX_UNKNOWNS = old
    np.testing.assert_allclose(dense.theta, sparse.theta, atol=1e-9)


def test_the_reused_newton_matrix_leaves_earlier_factorisations_intact():
    # I - cJ is written into one matrix, overwritten at the next factorisation: each LU
    # (banded, SuperLU's first and later ones, with the rank-one part) must not depend on it
    import scipy.sparse as sp
    from scipy.sparse.linalg import spsolve

    from asymflux.model import _bdf, discretisation

    disc = discretisation.Discretisation(model.disk_mesh(1.2, n_radial=12, n_angular=36),
                                 model.nmc88_lun2025(), model.Surface.from_strings(["180:0.25:0.3"]))
    J = disc.jacobian(np.full(disc.n_unknowns, 0.85), 100.0)
    eye = sp.identity(disc.n_unknowns, format="csc")
    held = _bdf._UnscaledJacobian(J)
    b = np.random.default_rng(0).random(disc.n_unknowns)
    for plan_of in (_bdf._BandPlan.for_pattern, _bdf._SuperLUPlan):
        fast = _bdf._IdentityMinus(eye)
        A = fast - 0.5 * held
        plan = plan_of(A)  # as the solver does: planned on the first matrix it factors
        assert plan is not None
        lus = [(0.5, plan.factor(A))]  # SuperLU: the LU made while planning
        for c in (2.0, 7.0):
            A = fast - c * held
            lus.append((c, plan.factor(A)))
        for c, lu in lus:  # every earlier LU still solves its own matrix
            np.testing.assert_allclose(lu.solve(b), spsolve((eye - c * J).tocsc(), b),
                                       rtol=1e-10, atol=1e-12)


def test_the_integrator_keeps_the_sparse_jacobian_as_it_is():
    from asymflux.model import _bdf, discretisation

    disc = discretisation.Discretisation(model.disk_mesh(1.2, n_radial=12, n_angular=36),
                                 model.nmc88_lun2025(), model.Surface.from_strings(["180:0.25:0.3"]))
    y0 = np.full(disc.n_unknowns, 0.97)
    bdf = _bdf.SymmetricOrderingBDF(lambda t, y: disc.rhs(y, 100.0), 0.0, y0, 600.0,
                                      jac=lambda t, y: disc.jacobian(y, 100.0), rtol=1e-4,
                                      atol=1e-6)
    assert isinstance(bdf.J, _bdf._UnscaledJacobian)
    while bdf.t < 600.0 and bdf.njev < 3:  # past a Jacobian refresh
        assert bdf.step() is None
    assert bdf.njev >= 2 and isinstance(bdf.J, _bdf._UnscaledJacobian)
    assert isinstance(bdf.I, _bdf._IdentityMinus) and bdf.I._out is not None


def test_a_band_in_another_ordering_solves_as_spsolve():
    # the disk meshes get the natural ordering; a scrambled band takes the permuted branch
    import scipy.sparse as sp
    from scipy.sparse.linalg import spsolve

    from asymflux.model import _bdf

    n = 129
    band = sp.diags([np.full(n - 3, -1.0), np.full(n - 1, -0.5), np.full(n, 4.0),
                     np.full(n - 1, -0.7), np.full(n - 3, -1.2)], [-3, -1, 0, 1, 3])
    perm = np.random.default_rng(1).permutation(n)
    A = sp.csc_matrix(band.tocsr()[perm][:, perm])
    plan = _bdf._BandPlan.for_pattern(A)
    assert plan is not None and plan.perm is not None
    b = np.random.default_rng(2).random(n)
    np.testing.assert_allclose(plan.factor(A).solve(b), spsolve(A, b), rtol=1e-12, atol=1e-14)


def test_identity_minus_gives_scipys_newton_matrix():
    import scipy.sparse as sp

    from asymflux.model import _bdf, discretisation

    disc = discretisation.Discretisation(model.disk_mesh(1.2, n_radial=12, n_angular=36),
                                 model.nmc88_lun2025(), model.Surface.from_strings(["180:0.25:0.3"]))
    J = disc.jacobian(np.full(disc.n_unknowns, 0.85), 100.0)
    J0 = J.toarray()
    eye = sp.identity(disc.n_unknowns, format="csc")
    fast = _bdf._IdentityMinus(eye)
    held = _bdf._UnscaledJacobian(J)  # as the integrator holds it
    for c in (np.float64(0.5), 3.0):  # a NumPy scalar too; the second call reuses the pattern
        A = fast - c * held
        assert sp.issparse(A) and A.format == "csc"
        np.testing.assert_array_equal(A.toarray(), (eye - c * J).toarray())
    np.testing.assert_array_equal(J.toarray(), J0)  # J itself is not touched
    # anything else, and a matrix without its whole diagonal stored, go SciPy's way
    holes = sp.csc_matrix(np.array([[0.0, 1.0], [1.0, 2.0]]))
    small = _bdf._IdentityMinus(sp.identity(2, format="csc"))
    np.testing.assert_array_equal((small - holes).toarray(), np.eye(2) - holes.toarray())
    np.testing.assert_array_equal((small - 2.0 * _bdf._UnscaledJacobian(holes)).toarray(),
                                  np.eye(2) - 2.0 * holes.toarray())
