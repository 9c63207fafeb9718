"""The protocol loops: a particle through its steps, one integration per step.

:func:`simulate` runs a protocol (:mod:`asymflux.model.protocol`) on a
:class:`~asymflux.model.discretisation.Discretisation`, step by step, each step one call of
SciPy's ``solve_ivp`` with the model's BDF (:mod:`asymflux.model._bdf`) and the step's end
conditions as terminal events. :func:`simulate_side_by_side` runs several charges or
discharges from the initial state in one integration (Fig. 5b's points).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from scipy.integrate import solve_ivp

from . import parameters as _parameters
from ._bdf import SymmetricOrderingBDF
from .discretisation import Discretisation
from .mesh import Mesh, disk_mesh
from .protocol import Charge, Discharge, Rest
from .result import Result
from .surface import Surface

DENSE_MAX_UNKNOWNS = 128
"""Up to this many unknowns (after folding the symmetry) the integrator works with a dense
Jacobian and LAPACK's dense LU: on such small problems the sparse matrices' bookkeeping
costs more than the arithmetic (a Fig. 5b point of the model explorer, 8 x 16 mesh folded
to 65 unknowns: 108 -> 70 ms prescribed, 153 -> 130 ms kinetic). Larger problems keep the
sparse/banded path (a dense 216-unknown twin ran 2x slower)."""


class SolverError(RuntimeError):
    """The time integration failed; the message says at which time and step."""


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
