r"""Butler-Volmer charge transfer through a resistive film: the kinetic surface.

Every boundary face (or the part of it a :class:`~asymflux.model.surface.FilmArc`
covers) carries the current density, positive on charge (Li leaving the particle),

.. math::  i = i_0(\theta_s)\, 2\sinh\!\Big(\frac{F\eta_s}{2RT}\Big), \qquad
           \eta_s = V - U(\theta_s) - i\,R_{film}(\varphi), \qquad
           i_0 = k_0\sqrt{\theta_s(1-\theta_s)},

with ``U`` the open-circuit voltage, ``θ_s`` the occupancy of the face's boundary cell,
``R_film`` the film's area-specific resistance (0 on clean surface, in series with the
charge transfer) and one particle potential ``V`` (vs Li/Li+), set at every instant so that
the perimeter integral of ``i`` is the applied current (zero at rest).

Solving it (:class:`KineticBoundary`): the unknowns are the charge-transfer overpotential
``x_k`` of every face part ``k`` and ``V``; the equations are

.. math::  H_k = R_k\, s_k(x_k) + x_k - V + U_k = 0, \qquad
           G = \textstyle\sum_k \omega_k s_k - \bar\imath = 0,

with ``s_k = 2 i0_k sinh(α x_k)``, ``α = F/2RT``, ``ω_k`` the length fractions and
``ī`` the mean current density. The film's implicit ``i`` is thereby explicit. The
Newton matrix is diagonal in ``x`` bordered by one row and column for ``V``, so each
iteration eliminates ``x`` face by face and solves one scalar equation (the Schur
complement); steps are limited to 50 mV (the sinh) and warm-started from the last call.
The iterations run compiled (numba), each run side by side on its own.

The coupling through ``V`` makes the surface Jacobian ``∂s/∂θ_s`` a diagonal plus a
rank-one matrix (:meth:`KineticBoundary.sensitivities`); the solver keeps the Newton
matrices of its time integrator sparse and applies the rank-one part by Sherman-Morrison.

Calibration helpers (:func:`initial_flux_ratio`, :func:`film_resistance_for_ratio`) and
the default film resistances (:data:`FILM_RESISTANCE_ETA_0_3_OHM_M2`,
:data:`FILM_RESISTANCE_ETA_0_7_OHM_M2`) are documented in ``docs/calibration.md``.
"""

from __future__ import annotations

import numpy as np

from .._validate import check_range
from .parameters import FARADAY_C_MOL

GAS_CONSTANT_J_MOL_K = 8.314462618

FILM_RESISTANCE_ETA_0_3_OHM_M2 = 0.135
"""Default film resistance (Ω m²) of a quarter that passes ~0.3 of the clean surface's
charge per unit length over the first 10 min of a 100 mA/g charge of the default set
(:func:`effective_flux_ratio` = 0.30; ``docs/calibration.md``). What it means: as a 4 nm
rock-salt layer (:data:`ROCKSALT_THICKNESS_NM`) it needs a Li-ion conductivity of 3.0e-8 S/m,
~34x below the paper's own estimate for rock salt (~1e-6 S/m, which gives only 4e-3 Ω m²);
read it as the aged surface's total interfacial resistance (rock salt, surface films, contact),
not rock salt alone."""

FILM_RESISTANCE_ETA_0_7_OHM_M2 = 0.0192
"""Default film resistance (Ω m²) for an effective ratio of ~0.7 (0.70; 4 nm at 2.1e-7 S/m)."""

ROCKSALT_THICKNESS_NM = 4.0
"""Thickest rock-salt layer seen by HAADF-STEM on the aged particle (Lun et al. 2025,
Fig. 3b, region 1): the thickness used to turn a film resistance into a conductivity."""

MAX_STEP_V = 0.05
"""Largest change of an overpotential in one Newton iteration (V)."""


class KineticBoundary:
    """Butler-Volmer kinetics on the boundary of one (mesh, parameters, surface).

    Parameters
    ----------
    mesh : Mesh
    params : dict
        Needs ``"Open-circuit voltage [V]"``, ``"Exchange-current prefactor [A.m-2]"``
        (k0), ``"Density [kg.m-3]"``, ``"Molar mass [kg.mol-1]"``; ``"Temperature [K]"``
        (default 298.15). A callable ``"Exchange-current density [A.m-2]"`` i0(θ), if
        given, replaces ``k0 √(θ(1−θ))``.
    surface : Surface
        A kinetic surface (:meth:`Surface.kinetic`).

    Attributes
    ----------
    face : (n_parts,) int
        Boundary face of each face part (a face split by a film arc's edge has two parts;
        parts under an infinite film are left out: they carry no current).
    length_um : (n_parts,) float
    resistance_ohm_m2 : (n_parts,) float
    arc : (n_parts,) int
        Film arc of each part, -1 on clean surface.
    """

    def __init__(self, mesh, params, surface):
        self.i0_function = params.get("Exchange-current density [A.m-2]")
        needed = ["Open-circuit voltage [V]"]
        if self.i0_function is None:
            needed.append("Exchange-current prefactor [A.m-2]")
        elif not callable(self.i0_function):
            raise ValueError("'Exchange-current density [A.m-2]' must be a callable i0(theta)")
        for key in needed:
            if params.get(key) is None:
                raise ValueError(f"a kinetic surface needs {key!r} in the parameter set")
        self.ocv = params["Open-circuit voltage [V]"]
        # the OCV's own analytic slope and closed form, if it declares them and they are
        # this function's (attributes copied onto a wrapper of another curve, e.g. by
        # functools.wraps, are not used): then the central difference, the NumPy calls
        both = getattr(self.ocv, "value_and_slope", None)
        self._ocv_and_slope = both if both is not None and self._reproduces_ocv(
            lambda theta: both(theta)[0]) else None
        series = getattr(self.ocv, "tanh_series", None)
        try:  # (c0, c1, amp, rate, mid): U = c0 + c1 θ + Σ amp tanh(rate (θ − mid))
            c0, c1 = float(series[0]), float(series[1])
            amp, rate, mid = (np.array(a, dtype=float, ndmin=1) for a in series[2:])
            usable = (len(series) == 5 and amp.ndim == 1 and amp.shape == rate.shape == mid.shape
                      and self._reproduces_ocv(lambda theta: c0 + c1 * theta + np.tanh(
                          rate * (theta[:, None] - mid)) @ amp))
        except Exception:  # noqa: BLE001 - none, or not a closed form of this shape
            usable = False
        # used compiled for the right-hand side's U and i0 (_surface_u_i0)
        self._ocv_series = (c0, c1, amp, rate, mid) if usable else None
        k0 = params.get("Exchange-current prefactor [A.m-2]")
        if k0 is None:  # only with an i0(θ) of the set's own, which replaces k0 √(θ(1−θ))
            self.k0 = float("nan")
        else:
            self.k0 = check_range("'Exchange-current prefactor [A.m-2]' (k0)", k0, 0, None,
                                  low_inclusive=False)
        temperature = float(params.get("Temperature [K]", 298.15))
        if not np.isfinite(temperature) or temperature <= 0:
            raise ValueError(f"'Temperature [K]' must be > 0, got {temperature!r}")
        self.alpha = FARADAY_C_MOL / (2 * GAS_CONSTANT_J_MOL_K * temperature)  # 1/V
        self.n_faces = mesh.boundary_cell.size
        self.n_arcs = len(surface.arcs)
        cov = surface.arc_coverage(mesh.boundary_angle_rad, mesh.boundary_span_rad)
        clean = np.clip(1.0 - cov.sum(axis=1), 0.0, 1.0)
        faces, lengths, res, arcs = [], [], [], []
        ell = mesh.boundary_length_um
        for f in range(self.n_faces):
            if clean[f] > 1e-12:
                faces.append(f), lengths.append(clean[f] * ell[f]), res.append(0.0), arcs.append(-1)
            for k, a in enumerate(surface.arcs):
                if cov[f, k] > 1e-12:
                    faces.append(f), lengths.append(cov[f, k] * ell[f])
                    res.append(float(a.resistance_ohm_m2)), arcs.append(k)
        faces, lengths, res, arcs = (np.asarray(v) for v in (faces, lengths, res, arcs))
        #: all parts, for reporting (infinite films included)
        self.all_face, self.all_length_um, self.all_arc = faces.astype(np.int64), lengths, arcs
        self.all_resistance = res
        live = np.isfinite(res)
        if not np.any(live):
            raise ValueError("every part of the surface is under an infinite film: no current can flow")
        self.face = faces[live].astype(np.int64)
        self.length_um = lengths[live]
        self.resistance_ohm_m2 = res[live]
        self.arc = arcs[live].astype(np.int64)
        self.perimeter_um = float(ell.sum())
        self.omega = self.length_um / self.perimeter_um
        # mean current density (A/m²) per A/kg of specific current: I ρ A / P
        self.mean_current_per_A_kg = (float(params["Density [kg.m-3]"]) * mesh.area_um2
                                      / self.perimeter_um * 1e-6)
        # occupancy·µm/s of outward flux per A/m² of current density: M / (F ρ) in µm/s
        self.flux_per_A_m2 = (float(params["Molar mass [kg.mol-1]"])
                              / (FARADAY_C_MOL * float(params["Density [kg.m-3]"])) * 1e6)
        self._guess = {}  # the last solution per array shape: the next solve's start

    # ----------------------------------------------------------------------------------
    def _reproduces_ocv(self, values_of) -> bool:
        """Whether ``values_of(θ)`` equals the OCV function at a few occupancies (1e-12 V)."""
        probe = np.linspace(0.05, 0.95, 7)
        try:
            return bool(np.allclose(np.asarray(values_of(probe), dtype=float),
                                    np.asarray(self.ocv(probe), dtype=float), rtol=0, atol=1e-12))
        except Exception:  # noqa: BLE001 - not usable
            return False

    def exchange_current(self, theta_s):
        """``i0 = k0 √(θ(1−θ))`` in A/m² and its derivative in θ (0 outside (0, 1))."""
        th = np.asarray(theta_s, dtype=float)
        if self.i0_function is not None:
            f, h = self.i0_function, 1e-6
            return (np.asarray(f(th), dtype=float),
                    (np.asarray(f(th + h), dtype=float) - np.asarray(f(th - h), dtype=float)) / (2 * h))
        prod = np.maximum(th * (1 - th), 1e-18)
        root = np.sqrt(prod)
        inside = prod > 1e-18
        return self.k0 * root, np.where(inside, self.k0 * (1 - 2 * th) / (2 * root), 0.0)

    def ocv_and_slope(self, theta_s):
        """``U(θ)`` in V and ``dU/dθ``: the OCV function's own ``value_and_slope`` when it has
        one (:func:`~asymflux.model.parameters.ocv_nmc811_chen2020` does), else a central
        difference (h = 1e-6)."""
        th = np.asarray(theta_s, dtype=float)
        if self._ocv_and_slope is not None:
            u, du = self._ocv_and_slope(th)
            return np.asarray(u, dtype=float), np.asarray(du, dtype=float)
        h = 1e-6
        u = np.asarray(self.ocv(th), dtype=float)
        du = (np.asarray(self.ocv(th + h), dtype=float) - np.asarray(self.ocv(th - h), dtype=float)) / (2 * h)
        return u, du

    def solve(self, theta_face, current_A_kg, *, with_slopes=False):
        """The particle potential and the face currents for occupancies at the faces.

        Parameters
        ----------
        theta_face : (n_faces,) or (n_runs, n_faces) array
            Occupancy of each boundary face (its boundary cell); a 2-D array holds several
            independent runs side by side (each its own particle potential).
        current_A_kg : float or (n_runs,) array
            Applied specific current, A/kg (= mA/g), positive on charge, 0 at rest (one per
            run for a 2-D ``theta_face``).
        with_slopes : bool
            Also compute ``dU/dθ`` and ``di0/dθ`` (for :meth:`sensitivities`).

        Returns
        -------
        dict
            ``V`` (V vs Li; a float, or (n_runs,)), ``s`` (current density of each part,
            A/m²), ``x`` (charge-transfer overpotential, V), ``i0``, ``U`` (per part), and
            the internals the Jacobian needs.
        """
        th = np.asarray(theta_face, dtype=float)
        if th.ndim > 2:
            raise ValueError(f"theta_face must be (n_faces,) or (n_runs, n_faces), got shape "
                             f"{np.shape(theta_face)}")
        return self.solve_parts(th[..., self.face], current_A_kg, with_slopes=with_slopes)

    def solve_parts(self, theta_part, current_A_kg, *, with_slopes=False):
        """:meth:`solve` given the occupancy of each face part, (n_parts,) or (n_runs,
        n_parts) (``theta_face[..., self.face]``: the solver gathers it from its state in
        one step)."""
        th = np.asarray(theta_part, dtype=float)
        if th.ndim not in (1, 2):
            raise ValueError(f"theta_part must be (n_parts,) or (n_runs, n_parts), got shape "
                             f"{th.shape}")
        runs = th.ndim > 1
        # the kernels work on (n_runs, n_parts), C-ordered float64 (one compiled signature
        # serves every call): one run is a batch of one
        th2 = np.ascontiguousarray(th.reshape(-1, th.shape[-1]))
        n_runs = th2.shape[0]
        du = di0 = None
        kernel = (_compiled(_surface_u_i0) if self._ocv_series is not None
                  and self.i0_function is None else None)
        if kernel is not None and kernel is not _surface_u_i0:  # compiled (not plain Python)
            # U, i0 (and their slopes) in a few us instead of ~40 us of NumPy calls
            u2, i02 = np.empty_like(th2), np.empty_like(th2)
            du2, di02 = (np.empty_like(th2), np.empty_like(th2)) if with_slopes else (u2, i02)
            kernel(th2, *self._ocv_series, self.k0, u2, i02, du2, di02, with_slopes)
            u, i0 = u2.reshape(th.shape), i02.reshape(th.shape)
            if with_slopes:
                du, di0 = du2.reshape(th.shape), di02.reshape(th.shape)
        else:
            if with_slopes:
                u, du = self.ocv_and_slope(th)
                i0, di0 = self.exchange_current(th)
            else:
                u = np.asarray(self.ocv(th), dtype=float)
                if self.i0_function is not None:
                    i0 = np.asarray(self.i0_function(th), dtype=float)
                else:
                    i0 = self.k0 * np.sqrt(np.maximum(th * (1 - th), 1e-18))
            u2 = np.ascontiguousarray(np.broadcast_to(u, th.shape).reshape(th2.shape),
                                      dtype=float)
            i02 = np.ascontiguousarray(np.broadcast_to(i0, th.shape).reshape(th2.shape),
                                       dtype=float)
        target = np.empty(n_runs)  # mean current density of each run, A/m²
        target[:] = np.asarray(current_A_kg, dtype=float) * self.mean_current_per_A_kg
        guess = self._guess.get(th2.shape)  # the last solution of this shape: the start
        if guess is None:
            v = u2 @ self.omega
            x = np.clip(v[:, None] - u2, -MAX_STEP_V, MAX_STEP_V)
        else:
            v, x = guess[0].copy(), guess[1].copy()  # the kernel overwrites them
        s, c, sinh = np.empty((3,) + th2.shape)
        status = _compiled(_butler_volmer_balance)(u2, i02, self.resistance_ohm_m2, self.omega,
                                                   target, v, x, s, c, sinh, self.alpha,
                                                   MAX_STEP_V)
        if status == 1:
            raise FloatingPointError("the surface has no exchange current (occupancy 0 or 1 "
                                     "everywhere): the particle potential is undefined")
        if status == 2:
            raise FloatingPointError("the Butler-Volmer balance did not converge")
        self._guess[th2.shape] = (v.copy(), x.copy())  # the caller may change what it gets
        if not runs:
            v, x, s, c, sinh = float(v[0]), x[0], s[0], c[0], sinh[0]
        return {"V": v, "s": s, "x": x, "i0": i0, "di0": di0, "U": u, "dU": du, "c": c,
                "sinh": sinh}

    def sensitivities(self, sol):
        """``∂s/∂θ_face`` at a solution: ``s_k`` depends on its own face's occupancy
        (``−a_k``) and on every face's through ``V``: ``g_k · Σ_j ω_j a_j δθ_j / Σ ω g``.

        Returns ``(a, g_over_sum)``: ``∂s_k/∂θ_m = −a_k [face_k = m] + g_over_sum_k ·
        Σ_{j: face_j = m} ω_j a_j``, and ``dV/dθ_m = Σ_{j: face_j = m} ω_j a_j / Σ ω g``.
        """
        den = 1.0 + self.resistance_ohm_m2 * sol["c"]
        g = sol["c"] / den
        # ∂s/∂i0 at fixed V, x eliminated: (s/i0) / (1 + R c) = 2 sinh / (1 + R c)
        k = 2 * sol["sinh"] / den
        a = g * sol["dU"] - k * sol["di0"]
        total = g @ self.omega
        return a, g / (total[..., None] if g.ndim > 1 else float(total))

    def face_current(self, sol):
        """Mean current density of each boundary face, A/m² (n_faces,)."""
        num = np.bincount(self.face, self.length_um * sol["s"], minlength=self.n_faces)
        den = np.bincount(self.all_face, self.all_length_um, minlength=self.n_faces)
        return num / den

    def arc_flux_ratio(self, sol):
        """Mean current density on each film arc over that on the clean surface (n_arcs,);
        NaN without clean surface or with no current through it."""
        s_all = np.zeros(self.all_face.size)
        s_all[np.isfinite(self.all_resistance)] = sol["s"]
        clean = self.all_arc < 0
        ell = self.all_length_um
        out = np.full(self.n_arcs, np.nan)
        if not np.any(clean):
            return out
        ref = float(ell[clean] @ s_all[clean] / ell[clean].sum())
        if ref == 0:
            return out
        for k in range(self.n_arcs):
            on = self.all_arc == k
            if np.any(on):
                out[k] = float(ell[on] @ s_all[on] / ell[on].sum()) / ref
        return out



_COMPILED = {}


def _compiled(kernel):
    """``kernel`` (:func:`_butler_volmer_balance`, :func:`_surface_u_i0`) compiled by numba,
    at its first use (numba is imported then, not with the package; the machine code is
    cached on disk when the package's folder, or numba's user cache, is writable: ~2 s to
    compile, ~0.5 s to load). Without numba the same loops run as plain Python (right,
    ~20x slower) after one warning."""
    fast = _COMPILED.get(kernel)
    if fast is None:
        try:
            import numba
        except ImportError as exc:
            import warnings

            if not _COMPILED:
                warnings.warn(f"numba could not be imported ({exc}): the kinetic surface's "
                              "Newton loop runs as plain Python, ~20x slower", RuntimeWarning,
                              stacklevel=3)
            fast = kernel
        else:
            try:
                fast = numba.njit(cache=True, nogil=True)(kernel)
            except RuntimeError:  # no writable cache location: compiled in each process
                fast = numba.njit(nogil=True)(kernel)
        _COMPILED[kernel] = fast
    return fast


def _surface_u_i0(theta, c0, c1, amp, rate, mid, k0, u, i0, du, di0, slopes):
    """``U = c0 + c1 θ + Σ_m amp_m tanh(rate_m (θ − mid_m))`` (an OCV's ``tanh_series``)
    and ``i0 = k0 √(θ(1−θ))`` of each part, as :meth:`KineticBoundary.ocv_and_slope` and
    :meth:`~KineticBoundary.exchange_current` compute them; with ``slopes`` also ``dU/dθ``
    and ``di0/dθ`` (0 where θ(1−θ) <= 1e-18). ``theta`` and the outputs (n_runs, n_parts);
    compiled by :func:`_compiled`."""
    n_runs, n = theta.shape
    for k in range(n_runs):
        for j in range(n):
            t = theta[k, j]
            acc = c0 + c1 * t
            slope = c1
            for m in range(amp.size):
                th_m = np.tanh(rate[m] * (t - mid[m]))
                acc += amp[m] * th_m
                slope += amp[m] * rate[m] * (1.0 - th_m * th_m)
            u[k, j] = acc
            prod = t * (1.0 - t)
            root = np.sqrt(max(prod, 1e-18))
            i0[k, j] = k0 * root
            if slopes:
                du[k, j] = slope
                di0[k, j] = k0 * (1.0 - 2.0 * t) / (2.0 * root) if prod > 1e-18 else 0.0


def _butler_volmer_balance(u, i0, r, w, target, v, x, s, c, sinh, alpha, max_step):
    """Newton on the Butler-Volmer balance of each run (row) alone: the loops of
    :meth:`KineticBoundary.solve`, compiled by numba (:func:`_compiled`: ~7 us a call
    instead of ~120 us of NumPy calls on a few dozen faces; it runs at every right-hand side
    of the integrator).

    ``u``, ``i0`` (n_runs, n_parts): OCV and exchange current of each part; ``r``, ``w``
    (n_parts,): film resistance and length fraction; ``target`` (n_runs,): mean current
    density. ``v`` (n_runs,) and ``x`` (n_runs, n_parts) hold the start and are overwritten
    by the solution; ``s``, ``c``, ``sinh`` receive the current density, its derivative in
    ``x`` and ``sinh(α x)`` (at the last iterate, ``s`` corrected by the last step).
    Returns 0, 1 (no exchange current anywhere) or 2 (no convergence in 200 iterations).
    """
    n_runs, n = u.shape
    inv = np.empty(n)
    h = np.empty(n)
    dx = np.empty(n)
    for k in range(n_runs):
        vk = v[k]
        converged = False
        for _ in range(200):
            sw = 0.0
            sws = 0.0
            swh = 0.0
            for j in range(n):
                e = np.exp(alpha * x[k, j])
                ei = 1.0 / e
                sj = i0[k, j] * (e - ei)  # 2 i0 sinh(α x)
                cj = alpha * i0[k, j] * (e + ei)  # its derivative, 2 i0 α cosh(α x)
                s[k, j] = sj
                c[k, j] = cj
                sinh[k, j] = 0.5 * (e - ei)
                invj = 1.0 / (1.0 + r[j] * cj)
                hj = r[j] * sj + x[k, j] + u[k, j] - vk
                inv[j] = invj
                h[j] = hj
                sw += w[j] * cj * invj
                sws += w[j] * sj
                swh += w[j] * cj * invj * hj
            if not sw > 0:
                return 1
            dv = (target[k] - sws + swh) / sw  # the Schur complement's scalar equation
            big = 0.0
            for j in range(n):
                dx[j] = (dv - h[j]) * inv[j]
                big = max(big, abs(dx[j]))
            if big <= max_step:
                for j in range(n):
                    x[k, j] += dx[j]
                vk += dv
                if big < 1e-8 and abs(dv) < 1e-8:
                    # converged: the step's linear update is exact to O(α dx²) ~ 1e-15
                    for j in range(n):
                        s[k, j] += c[k, j] * dx[j]
                    converged = True
                    break
            else:  # damped: no overpotential moves by more than max_step
                scale = max_step / big
                for j in range(n):
                    x[k, j] += scale * dx[j]
                vk += scale * dv
        if not converged:
            return 2
        v[k] = vk
    return 0

# Calibration helpers ---------------------------------------------------------------------
def _split_at_uniform_state(params, rate_mA_g, fraction, resistance_ohm_m2, theta):
    """Current densities (film, clean) in A/m² when the whole surface is at occupancy
    ``theta``, a fraction ``fraction`` of the perimeter under the film (``brentq`` on V)."""
    from scipy.optimize import brentq

    from .mesh import disk_mesh

    mesh = disk_mesh(1.2, n_radial=2, n_angular=8)  # only the area/perimeter ratio matters
    mean_i = rate_mA_g * float(params["Density [kg.m-3]"]) * mesh.area_um2 / mesh.perimeter_um * 1e-6
    k0 = float(params["Exchange-current prefactor [A.m-2]"])
    alpha = FARADAY_C_MOL / (2 * GAS_CONSTANT_J_MOL_K * float(params.get("Temperature [K]", 298.15)))
    i0 = k0 * np.sqrt(theta * (1 - theta))

    def clean_current(over):  # over = V - U
        return 2 * i0 * np.sinh(alpha * over)

    def film_current(over):
        if resistance_ohm_m2 == 0:
            return clean_current(over)
        if not np.isfinite(resistance_ohm_m2):
            return 0.0
        # i = 2 i0 sinh(α (over − i R)): monotone in i, root between 0 and over / R
        hi = over / resistance_ohm_m2
        return brentq(lambda i: i - 2 * i0 * np.sinh(alpha * (over - i * resistance_ohm_m2)),
                      min(0.0, hi), max(0.0, hi), xtol=1e-15, rtol=1e-14)

    def balance(over):
        return (1 - fraction) * clean_current(over) + fraction * film_current(over) - mean_i

    top = np.arcsinh(mean_i / (2 * i0 * (1 - fraction))) / alpha + mean_i * (
        resistance_ohm_m2 if np.isfinite(resistance_ohm_m2) else 0.0) + 1e-6
    over = brentq(balance, 0.0, top, xtol=1e-16, rtol=1e-14)
    return film_current(over), clean_current(over), over


def initial_flux_ratio(resistance_ohm_m2, *, params=None, rate_mA_g=100.0, fraction=0.25,
                       theta=None) -> float:
    """Effective ``η = i_film / i_clean`` at the start of a charge (uniform occupancy).

    Parameters
    ----------
    resistance_ohm_m2 : float
        Film resistance on the arc.
    params : dict, optional
        Default :func:`~asymflux.model.parameters.nmc88_lun2025`.
    rate_mA_g : float
        Specific current.
    fraction : float
        Fraction of the perimeter under the film.
    theta : float, optional
        Occupancy of the surface (default: the set's initial occupancy).
    """
    from .parameters import nmc88_lun2025

    params = nmc88_lun2025() if params is None else params
    theta = float(params["Initial occupancy"]) if theta is None else float(theta)
    film, clean, _ = _split_at_uniform_state(params, rate_mA_g, fraction, resistance_ohm_m2, theta)
    return film / clean


def film_resistance_for_ratio(eta, *, params=None, rate_mA_g=100.0, fraction=0.25,
                              theta=None) -> float:
    """The film resistance (Ω m²) whose :func:`initial_flux_ratio` is ``eta`` (in (0, 1))."""
    from scipy.optimize import brentq

    if not 0 < eta < 1:
        raise ValueError(f"eta must be in (0, 1), got {eta!r}")
    kw = dict(params=params, rate_mA_g=rate_mA_g, fraction=fraction, theta=theta)
    hi = 1e-3
    while initial_flux_ratio(hi, **kw) > eta:
        hi *= 4
    return brentq(lambda r: initial_flux_ratio(r, **kw) - eta, 0.0, hi, xtol=1e-12, rtol=1e-12)


CALIBRATION_MINUTES = 10.0
"""The early charge over which a film's effective flux ratio is measured (the first 10 min
of a 100 mA/g charge: the Li-rich core of a clean particle lasts ~17 min)."""


def effective_flux_ratio(resistance_ohm_m2, *, params=None, mesh=None, rate_mA_g=100.0,
                         fraction=0.25, minutes=CALIBRATION_MINUTES) -> float:
    """The charge-weighted flux ratio of a film arc over the first ``minutes`` of a charge.

    The charge passed per unit length through an arc (centred at 180°, ``fraction`` of the
    perimeter, film ``resistance_ohm_m2``) over that through the clean surface
    (:meth:`~asymflux.model.result.Result.charge_weighted_flux_ratio`), sampled every 3 s.
    This is the kinetic surface's counterpart of the prescribed η: the prescribed model
    passes exactly η times the clean surface's charge through a blocked arc.
    """
    from .protocol import Charge
    from .solver import simulate
    from .surface import FilmArc, Surface

    surface = Surface.kinetic([FilmArc(180.0, fraction, resistance_ohm_m2)])
    out = np.arange(0.05, minutes + 1e-9, 0.05)
    res = simulate(params, mesh, surface, [Charge(rate_mA_g, minutes=minutes)], output_minutes=out)
    return float(res.charge_weighted_flux_ratio(minutes)[0])


def film_resistance_for_effective_ratio(eta, **kwargs) -> float:
    """The film resistance (Ω m²) whose :func:`effective_flux_ratio` is ``eta`` (in (0, 1)).

    Keyword arguments are those of :func:`effective_flux_ratio` (default: a quarter, 100
    mA/g, the first 10 minutes, the default set and mesh). About 10 simulations.
    """
    from scipy.optimize import brentq

    if not 0 < eta < 1:
        raise ValueError(f"eta must be in (0, 1), got {eta!r}")
    hi = 0.05
    while effective_flux_ratio(hi, **kwargs) > eta:
        hi *= 2
    return brentq(lambda r: effective_flux_ratio(r, **kwargs) - eta, 0.0, hi, xtol=1e-4, rtol=1e-3)


#: ``(R_film [Ω m²], effective flux ratio)`` of a quarter of the perimeter under the film,
#: charge-weighted over the first 10 min of a 100 mA/g charge of the default set and mesh:
#: :func:`effective_flux_ratio` at each resistance (``tests/model/test_kinetic.py`` checks
#: rows against it). :func:`film_resistance_for_eta` interpolates it.
EFFECTIVE_RATIO_TABLE = (
    (0.001, 0.976), (0.002, 0.954), (0.004, 0.913), (0.01, 0.811), (0.0192, 0.700),
    (0.02, 0.692), (0.05, 0.497), (0.1, 0.354), (0.135, 0.300), (0.3, 0.186),
    (0.5, 0.134), (1.0, 0.084), (2.0, 0.050),
)


def film_resistance_for_eta(eta) -> float:
    """The film resistance (Ω m²) whose effective flux ratio is ``eta``, from the table.

    Interpolates log R_film linearly in η through :data:`EFFECTIVE_RATIO_TABLE` (a quarter,
    100 mA/g, the first 10 min, the default set): no simulation, so it is cheap enough for
    every arc of a demo field of view. :func:`film_resistance_for_effective_ratio` solves
    the same question by simulation for other fractions, rates or parameter sets.

    Parameters
    ----------
    eta : float
        Effective flux ratio, within the table's range (0.050 to 0.976).

    Returns
    -------
    float
        R_film, Ω m².
    """
    r, e = np.array(EFFECTIVE_RATIO_TABLE).T
    if not e[-1] <= eta <= e[0]:
        raise ValueError(f"eta must be within {e[-1]:g} to {e[0]:g} (the calibration table), "
                         f"got {eta!r}")
    return float(np.exp(np.interp(eta, e[::-1], np.log(r[::-1]))))
