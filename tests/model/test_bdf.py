"""The model's BDF: its version guard, and SciPy's own BDF as the fallback on an untested SciPy."""

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
    np.testing.assert_allclose(slow.times_s[-1], fast.times_s[-1], rtol=1e-5)
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
