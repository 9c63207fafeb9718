"""Runs side by side in one integration (model.simulate_side_by_side) against one run each."""

import numpy as np
import pytest
import scipy.sparse as sp

from asymflux import model
from asymflux.model import _bdf, discretisation

MESH = model.disk_mesh(1.2, n_radial=8, n_angular=16)  # 65 unknowns once folded


def _surface(kind):
    if kind == "kinetic":
        return model.Surface.kinetic([model.FilmArc(180.0, 0.25, 0.2)])
    return model.Surface([model.BlockedArc(180.0, 0.25, 0.3)])


@pytest.mark.parametrize("kind", ["prescribed", "kinetic"])
def test_side_by_side_equals_one_run_each(kind):
    """Every run ends where it ends alone (its own cut-off, capacity or time): Li extracted
    within 1e-4 per f.u., the end time within 0.1 %, the same end reason."""
    surface = _surface(kind)
    steps = [model.Charge(50.0), model.Charge(400.0), model.Charge(150.0),
             model.Charge(100.0, capacity_mAh_g=60.0), model.Charge(200.0, minutes=7.0)]
    ends = model.simulate_side_by_side(None, MESH, surface, steps)
    assert len(ends) == len(steps)
    for step, end in zip(steps, ends, strict=True):
        alone = model.simulate(None, MESH, surface, [step])
        assert end["reason"] == alone.steps[-1]["reason"], step
        assert end["li_extracted"] == pytest.approx(float(alone.li_extracted[-1]), abs=1e-4), step
        assert end["minutes"] == pytest.approx(float(alone.minutes[-1]), rel=1e-3), step
        assert end["capacity_mAh_g"] == pytest.approx(step.rate_mA_g * end["minutes"] / 60.0)
        assert end["theta"].shape == (MESH.n_cells,)
        np.testing.assert_allclose(end["theta"], alone.theta[-1], atol=2e-3)
    reasons = {e["reason"] for e in ends}
    assert {"capacity reached", "duration reached"} <= reasons
    # the charge-limited runs end at the paper's cut-offs, later in Li at lower rate
    assert ends[0]["li_extracted"] > ends[2]["li_extracted"] > ends[1]["li_extracted"]


def test_side_by_side_refuses_what_it_cannot_run():
    with pytest.raises(ValueError, match="step 2 must be a Charge or Discharge"):
        model.simulate_side_by_side(None, MESH, None, [model.Charge(100.0), model.Rest(5.0)])
    with pytest.raises(ValueError, match="at least one"):
        model.simulate_side_by_side(None, MESH, None, [])
    with pytest.raises(ValueError, match="at most 128 unknowns"):
        model.simulate_side_by_side(None, model.disk_mesh(1.2), _surface("kinetic"),
                                    [model.Charge(100.0)])


def test_runs_side_by_side_share_one_kinetic_solve():
    """The batched Butler-Volmer balance and Jacobian equal each run's own (rhs_runs,
    jacobian_runs against rhs, jacobian_dense)."""
    disc = discretisation.Discretisation(MESH, model.nmc88_lun2025(), _surface("kinetic"))
    rng = np.random.default_rng(3)
    states = rng.uniform(0.5, 0.95, (3, disc.n_unknowns))
    currents = np.array([50.0, 0.0, 400.0])
    rhs, jac = disc.rhs_runs(states, currents), disc.jacobian_runs(states, currents)
    for k in range(3):
        one = disc.rhs(states[k], currents[k])
        np.testing.assert_allclose(rhs[k], one, rtol=1e-10, atol=1e-12 * np.abs(one).max())
        np.testing.assert_allclose(jac[k], disc.jacobian_dense(states[k], currents[k]),
                                   rtol=1e-10, atol=1e-12)
    V = disc.kinetic_state(states, currents)["V"]
    assert V.shape == (3,)
    assert V[1] == pytest.approx(disc.kinetic_state(states[1], 0.0)["V"], abs=1e-12)


@pytest.mark.parametrize("stored", ["all", "some"])
def test_block_lu_solves_the_block_diagonal_system(stored):
    rng = np.random.default_rng(4)
    blocks = [np.eye(5) * 4 + rng.normal(size=(5, 5)) for _ in range(3)]
    if stored == "some":
        blocks[1][0, 4] = blocks[1][4, 0] = 0.0
    A = sp.csc_matrix(sp.block_diag(blocks))
    if stored == "some":
        A.eliminate_zeros()
        assert A.nnz < 75
    b = rng.normal(size=15)
    x = _bdf._BlockLU(A, 3).solve(b)
    np.testing.assert_allclose(A.toarray() @ x, b, atol=1e-12)


def test_a_failed_joint_integration_falls_back_to_one_run_each(monkeypatch):
    """If the runs together fail (one run's Newton iterate leaves the physical range), each
    run still going is run alone: the same ends as simulate() gives, exactly."""
    def broken(self, states, currents):
        raise FloatingPointError("the surface has no exchange current")

    monkeypatch.setattr(discretisation.Discretisation, "rhs_runs", broken)
    surface = _surface("kinetic")
    steps = [model.Charge(100.0, minutes=3.0), model.Charge(400.0, minutes=2.0)]
    ends = model.simulate_side_by_side(None, MESH, surface, steps)
    for step, end in zip(steps, ends, strict=True):
        alone = model.simulate(None, MESH, surface, [step])
        assert end["li_extracted"] == pytest.approx(float(alone.li_extracted[-1]), abs=1e-12)
        assert end["minutes"] == pytest.approx(float(alone.minutes[-1]), rel=1e-12)
        assert end["reason"] == alone.steps[-1]["reason"] == "duration reached"


@pytest.mark.parametrize("kind", ["prescribed", "kinetic"])
def test_runs_that_end_together_all_end(kind):
    """Identical steps reach their cut-offs at the same state: every one ends there (SciPy
    reports one event; the others must not run on to the next limit)."""
    surface = _surface(kind)
    ends = model.simulate_side_by_side(None, MESH, surface, [model.Charge(100.0)] * 3)
    alone = model.simulate(None, MESH, surface, [model.Charge(100.0)])
    for end in ends:
        assert end["reason"] == alone.steps[-1]["reason"]
        assert end["li_extracted"] == pytest.approx(float(alone.li_extracted[-1]), abs=1e-4)


def test_one_step_is_simulate_itself():
    surface = _surface("kinetic")
    step = model.Discharge(100.0, minutes=5.0)
    (end,) = model.simulate_side_by_side(None, MESH, surface, [step])
    alone = model.simulate(None, MESH, surface, [step])
    # the same integration; equal to rounding (2e-16 apart with the Verbrugge 2017 OCV)
    assert end["li_extracted"] == pytest.approx(float(alone.li_extracted[-1]), rel=1e-12)
    assert end["capacity_mAh_g"] == pytest.approx(float(alone.capacity_mAh_g[-1]), rel=1e-12)
    assert end["capacity_mAh_g"] < 0
    assert end["reason"] == alone.steps[-1]["reason"]
