"""Kinetic surface (Butler-Volmer through a resistive film): limits against independent results."""

import math

import numpy as np
import pytest
from scipy.optimize import brentq

from asymflux import figures, model
from asymflux.model import calibration, kinetics
from asymflux.model.discretisation import Discretisation
from asymflux.model.parameters import FARADAY_C_MOL

R_UM = 1.2
ALPHA = FARADAY_C_MOL / (2 * kinetics.GAS_CONSTANT_J_MOL_K * 298.15)


def _mean_current_A_m2(params, rate, mesh):
    return rate * params["Density [kg.m-3]"] * mesh.area_um2 / mesh.perimeter_um * 1e-6


def _film(*arcs):
    return model.Surface.kinetic([model.FilmArc(*a) for a in arcs])


def test_zero_film_gives_the_unblocked_solution():
    """A clean kinetic particle (and a quarter under a zero film) is uniform around the
    perimeter by symmetry, so it delithiates exactly as the prescribed unblocked one."""
    protocol = [model.Charge(100, minutes=12), model.Rest(minutes=3)]
    kw = dict(output_minutes=[4, 8, 12, 15], rtol=1e-8, atol=1e-10)
    plain = model.simulate(None, None, model.Surface(), protocol, **kw)
    for surface in (model.Surface.kinetic(), _film((180, 0.25, 0.0))):
        kin = model.simulate(None, None, surface, protocol, **kw)
        np.testing.assert_allclose(kin.theta, plain.theta, atol=2e-6)
        assert kin.potential_V is not None and np.all(np.isfinite(kin.voltage_V))


def test_flat_ocv_linear_kinetics_match_the_prescribed_ratio():
    """Flat OCV, constant i0 large against the current (linear Butler-Volmer): the film arc
    carries exactly η = R_ct / (R_ct + R_film) of the clean current density, at every
    instant, and the θ field is the prescribed-η solver's."""
    params = model.constant_diffusivity(1e-15)
    params["Open-circuit voltage [V]"] = lambda th: np.full(np.shape(th), 3.8)
    i0 = 1000.0
    params["Exchange-current density [A.m-2]"] = lambda th: np.full(np.shape(th), i0)
    r_ct = 1.0 / (2 * ALPHA * i0)  # RT / (F i0)
    r_film = 1.5 * r_ct
    eta = r_ct / (r_ct + r_film)
    protocol = [model.Charge(100, minutes=10)]
    kw = dict(output_minutes=[2, 5, 10], rtol=1e-9, atol=1e-11)
    kin = model.simulate(params, None, _film((180, 0.25, r_film)), protocol, **kw)
    pre = model.simulate(params, None, model.Surface([model.BlockedArc(180, 0.25, eta)]),
                         protocol, **kw)
    np.testing.assert_allclose(kin.arc_flux_ratio[:, 0], eta, rtol=1e-6)
    change = np.max(np.abs(pre.theta[-1] - pre.theta0))
    assert np.max(np.abs(kin.theta - pre.theta)) < 1e-5 * change
    assert kin.charge_weighted_flux_ratio(10)[0] == pytest.approx(eta, rel=1e-6)


def test_infinite_film_carries_no_current():
    mesh = model.disk_mesh(R_UM)
    res = model.simulate(None, mesh, _film((90, 0.25, math.inf)),
                         [model.Charge(100, minutes=5)], output_minutes=[1, 5])
    on = np.abs(np.angle(np.exp(1j * (mesh.boundary_angle_rad - np.pi / 2)))) < np.pi / 4
    assert np.all(res.face_current_A_m2[:, on] == 0)
    np.testing.assert_array_equal(res.arc_flux_ratio[:, 0], 0.0)
    # a very large finite film is the same limit
    big = model.simulate(None, mesh, _film((90, 0.25, 1e9)), [model.Charge(100, minutes=5)],
                         output_minutes=[1, 5])
    np.testing.assert_allclose(big.theta, res.theta, atol=1e-6)
    with pytest.raises(ValueError, match="infinite film"):
        model.simulate(None, mesh, _film((0, 1.0, math.inf)), [model.Charge(100, minutes=1)])


def test_two_arc_split_at_t0_matches_the_brentq_root():
    params = model.nmc88_lun2025()
    mesh = model.disk_mesh(R_UM)
    arcs = [(0.0, 0.25, 0.05), (180.0, 0.25, 0.3)]  # on face boundaries of the 48-sector mesh
    rate = 200.0
    res = model.simulate(params, mesh, _film(*arcs), [model.Charge(rate, minutes=0.01)])
    theta0 = params["Initial occupancy"]
    i0 = params["Exchange-current prefactor [A.m-2]"] * np.sqrt(theta0 * (1 - theta0))
    mean_i = _mean_current_A_m2(params, rate, mesh)

    def through(r, over):  # current density through a film r at V − U = over
        if r == 0:
            return 2 * i0 * np.sinh(ALPHA * over)
        return brentq(lambda i: i - 2 * i0 * np.sinh(ALPHA * (over - i * r)), 0, over / r,
                      xtol=1e-14, rtol=1e-13)

    def balance(over):
        return 0.5 * through(0.0, over) + sum(f * through(r, over) for _, f, r in arcs) - mean_i

    over = brentq(balance, 0.0, 0.5, xtol=1e-15, rtol=1e-14)
    expected = [through(r, over) for _, _, r in arcs]
    clean = through(0.0, over)
    np.testing.assert_allclose(res.arc_flux_ratio[0], np.array(expected) / clean, rtol=1e-8)
    u0 = params["Open-circuit voltage [V]"](theta0)
    assert res.potential_V[0] == pytest.approx(u0 + over, abs=1e-9)
    ang = mesh.boundary_angle_rad
    on0 = np.abs(np.angle(np.exp(1j * ang))) < np.pi / 4
    np.testing.assert_allclose(res.face_current_A_m2[0, on0], expected[0], rtol=1e-8)


@pytest.mark.parametrize("symmetry", [True, False])
def test_lithium_equals_charge_and_current_integral_is_the_applied_current(symmetry):
    params = model.nmc88_lun2025()
    mesh = model.disk_mesh(R_UM)
    surface = _film((30, 0.25, 0.1), (200, 0.3, 0.02))
    protocol = [model.Charge(200, minutes=8), model.Rest(minutes=5), model.Discharge(50, minutes=4)]
    res = model.simulate(params, mesh, surface, protocol, output_minutes=[3, 10, 15],
                         symmetry=symmetry)
    expected = res.capacity_mAh_g / params["Theoretical capacity [mA.h.g-1]"]
    np.testing.assert_allclose(res.li_extracted[1:], expected[1:], rtol=1e-6)
    total = res.face_current_A_m2 @ mesh.boundary_length_um / mesh.perimeter_um
    rates = np.array([protocol[k].sign * protocol[k].rate_mA_g for k in res.step_index])
    np.testing.assert_allclose(total, _mean_current_A_m2(params, rates, mesh), atol=1e-12)
    rest = res.step_index == 1
    assert np.all(np.abs(total[rest]) < 1e-12)
    # at rest the faces still exchange lithium with each other
    assert np.max(np.abs(res.face_current_A_m2[rest])) > 1e-4


def test_at_rest_the_potential_tends_to_the_ocv_of_the_mean_occupancy():
    params = model.nmc88_lun2025()
    res = model.simulate(params, None, _film((180, 0.25, calibration.FILM_RESISTANCE_ETA_0_3_OHM_M2)),
                         [model.Charge(100, minutes=15), model.Rest(minutes=60)],
                         output_minutes=[15, 20, 75])
    ocv = params["Open-circuit voltage [V]"]
    i15, i20, i75 = res.index_of_minutes([15, 20, 75])
    gap = np.abs(res.potential_V - ocv(res.mean_theta))
    assert gap[i75] < 2e-3
    assert gap[i75] < 0.2 * gap[i20]
    assert res.steps[1]["reason"] == "duration reached"


@pytest.mark.parametrize("symmetry", [True, False])
@pytest.mark.parametrize("current", [150.0, 0.0])
def test_analytic_jacobian_matches_finite_differences(symmetry, current):
    params = model.nmc88_lun2025()
    surface = _film((180, 0.25, 0.2), (20, 0.1, 0.05))
    disc = Discretisation(model.disk_mesh(R_UM, n_radial=6, n_angular=16), params, surface,
                          symmetry=symmetry)
    rng = np.random.default_rng(1)
    y = rng.uniform(0.6, 0.95, disc.n_unknowns)
    J = disc.jacobian_dense(y, current)
    fd = np.empty_like(J)
    for j in range(y.size):
        h = 1e-6
        yp, ym = y.copy(), y.copy()
        yp[j] += h
        ym[j] -= h
        fd[:, j] = (disc.rhs(yp, current) - disc.rhs(ym, current)) / (2 * h)
    scale = np.max(np.abs(J))
    assert np.max(np.abs(J - fd)) < 1e-6 * scale
    # the rank-one coupling through V is really there (every face row depends on every face)
    p, q, _ = disc.last_rank_one
    assert np.count_nonzero(p) > 1 and np.count_nonzero(q) > 1


def test_newton_matrices_stay_sparse_and_sherman_morrison_solves_the_full_system():
    from asymflux.model import _bdf

    disc = Discretisation(model.disk_mesh(R_UM), model.nmc88_lun2025(),
                          _film((180, 0.25, 0.2)))
    rng = np.random.default_rng(2)
    y = rng.uniform(0.8, 0.97, disc.n_unknowns)
    J = disc.jacobian(y, 100.0)
    assert J.nnz == disc.L_scaled.nnz  # the pattern of the diffusion operator
    c = 20.0
    import scipy.sparse as sp
    A = sp.csc_matrix(sp.identity(disc.n_unknowns) - c * J)
    bdf = _bdf.SymmetricOrderingBDF.__new__(_bdf.SymmetricOrderingBDF)
    bdf._plan, bdf._rank_one = None, lambda: disc.last_rank_one
    lu = bdf._factor(A)
    full = np.eye(disc.n_unknowns) - c * disc.jacobian_dense(y, 100.0)
    b = rng.normal(size=disc.n_unknowns)
    np.testing.assert_allclose(full @ lu.solve(b), b, atol=1e-9)


@pytest.mark.parametrize("center_deg", [0.0, 90.0])
def test_mirror_symmetry_about_the_arc_centre(center_deg):
    surface = _film((center_deg, 0.25, 0.2))
    res = model.simulate(None, None, surface, [model.Charge(100, minutes=10)], output_minutes=[5],
                         symmetry=False)
    img = res.to_image(pixel_nm=40).theta
    mirrored = img[:, ::-1, :] if center_deg == 0.0 else img[:, :, ::-1]
    np.testing.assert_allclose(img, mirrored, atol=1e-6, equal_nan=True)
    other = img[:, :, ::-1] if center_deg == 0.0 else img[:, ::-1, :]
    assert np.nanmax(np.abs(img - other)) > 1e-3
    # and the folded solve (one mirror line: half the disk) gives the same
    assert Discretisation(res.mesh, res.params, surface).n_unknowns == 1 + 20 * 48  # 20 x 96
    folded = model.simulate(None, None, surface, [model.Charge(100, minutes=10)],
                            output_minutes=[5])
    # (1.3e-4 with the Verbrugge 2017 OCV, steep near θ = 1; 3e-5 was enough with Chen 2020)
    np.testing.assert_allclose(folded.theta, res.theta, atol=2e-4)


def test_kinetic_charge_ends_at_4_3_V_by_default():
    res = model.simulate(None, None, _film((180, 0.25, 0.2)), [model.Charge(400)])
    assert res.end_reason == "cut-off voltage 4.3 V"
    assert res.voltage_V[-1] == pytest.approx(4.3, abs=1e-3)
    occ = model.simulate(None, None, _film((180, 0.25, 0.2)),
                         [model.Charge(400, cutoff_occupancy=0.5)])
    assert occ.end_reason == "cut-off occupancy 0.5"
    assert occ.min_surface_theta[-1] == pytest.approx(0.5, abs=1e-4)


def test_default_films_give_their_effective_ratios():
    """docs/calibration.md: ~0.3 and ~0.7 of the clean surface's charge over the first 10 min."""
    assert calibration.effective_flux_ratio(calibration.FILM_RESISTANCE_ETA_0_3_OHM_M2) == \
        pytest.approx(0.3, abs=0.01)
    assert calibration.effective_flux_ratio(calibration.FILM_RESISTANCE_ETA_0_7_OHM_M2) == \
        pytest.approx(0.7, abs=0.01)


def test_rest_relaxes_heterogeneity_with_the_kinetic_film():
    """Fig. 2e/f with the default η≈0.3 film: 70 mA/g for 20 min, relaxed within ~10 min."""
    surface = _film((0, 0.25, calibration.FILM_RESISTANCE_ETA_0_3_OHM_M2))
    res = model.simulate(None, None, surface, [model.Charge(70, minutes=20), model.Rest(minutes=20)],
                         output_minutes=[20, 30, 40])
    spread = np.ptp(res.theta[res.index_of_minutes([20, 30, 40])], axis=1)
    assert spread[0] > 0.05
    assert spread[1] < 0.25 * spread[0]
    assert spread[2] < spread[1]


def _d_summary(rates, mesh, pixel_nm=20.0):
    return figures.fig5d_summary(figures.fig5d_data(rates_mA_g=rates, mesh=mesh, pixel_nm=pixel_nm))


@pytest.mark.slow
def test_convergence_of_max_d_20x48_vs_40x96():
    coarse = _d_summary([100.0], model.disk_mesh(R_UM, n_radial=20, n_angular=48))
    fine = _d_summary([100.0], model.disk_mesh(R_UM, n_radial=40, n_angular=96))
    d0, d1 = coarse["max_d_nm"].iloc[0], fine["max_d_nm"].iloc[0]
    assert abs(d0 - d1) <= 0.08 * d1, (d0, d1)


@pytest.mark.slow
def test_max_d_converged_at_400_mA_g():
    """Fig. 5d at the highest rate, 400 mA/g, on three meshes: on the library's DEFAULT disk
    mesh (``model.disk_mesh()``, 20 x 96 since issue #29, = ``figures.FIG5D_MESH``) max d is
    within 5 % and the last core point's distance from the edge within 8 % of a 4x finer mesh
    (40 x 192), and 30 x 144 lies between. With the default Sturm 2019 OCV and its 0.171 Ω m²
    film: 690 / 710 / 710 nm, last core point 510 / 490 / 490 nm from the edge (2.8 %, 4.1 %).
    (With the Verbrugge 2017 OCV and its 0.135 Ω m² film, the default before: 720 / 740 /
    740 nm, 480 / 460 / 460 nm; the former default mesh 20 x 48 gave 680 nm there, 8 % low.)"""
    default = model.disk_mesh(R_UM)
    assert (default.info["n_radial"], default.info["n_angular"]) == figures.FIG5D_MESH
    rows = [_d_summary([400.0], mesh).iloc[0]
            for mesh in (default, model.disk_mesh(R_UM, n_radial=30, n_angular=144),
                         model.disk_mesh(R_UM, n_radial=40, n_angular=192))]
    d = np.array([r["max_d_nm"] for r in rows])
    edge = np.array([r["last_from_edge_nm"] for r in rows])
    assert abs(d[0] - d[-1]) <= 0.05 * d[-1], d
    assert abs(edge[0] - edge[-1]) <= 0.08 * edge[-1], edge
    assert abs(d[1] - d[-1]) <= abs(d[0] - d[-1]) + 20.0, d  # within a pixel of converging


@pytest.mark.slow
def test_fig5d_rate_trend_with_the_kinetic_surface():
    """Paper Fig. 5c/d: with the default η≈0.3 film on a quarter, max d and the capacity at
    which the core vanishes grow with rate, max d at 400 mA/g is >= 1.5x that at 50, and
    the last core point moves towards the edge (benchmarks/bench_kinetic_trend.py prints it)."""
    summary = _d_summary(model.PAPER_RATES_MA_G, model.disk_mesh(R_UM))
    for statement, holds in figures.fig5d_trend_checks(summary):
        assert holds, (statement, summary.to_dict("list"))


def test_film_arc_validation():
    with pytest.raises(ValueError, match=r"\[0, 360\)"):
        model.FilmArc.parse("400:0.25:0.1")
    with pytest.raises(ValueError, match=r"\[0, 360\)"):
        model.BlockedArc.parse("400:0.25:0.3")
    with pytest.raises(ValueError, match="fraction"):
        model.FilmArc.parse("0:0:0.1")
    with pytest.raises(ValueError, match="resistance"):
        model.FilmArc.parse("0:0.25:-1")
    with pytest.raises(ValueError, match="resistance"):
        model.FilmArc.parse("0:0.25:inf")
    with pytest.raises(ValueError, match="not both"):
        model.Surface([model.BlockedArc(0, 0.25, 0.3), model.FilmArc(180, 0.25, 0.1)])
    assert model.FilmArc(0, 1.0, math.inf).resistance_ohm_m2 == math.inf
    assert model.Surface.from_film_strings(["180:0.25:0.2"]).label == "film 180:0.25:0.2"


def test_ocv_slope_is_analytic_only_for_its_own_curve():
    import functools

    from asymflux.model.kinetics import KineticBoundary

    chen = model.parameters.ocv_nmc811_chen2020
    th = np.linspace(0.2, 0.95, 31)
    u, du = chen.value_and_slope(th)
    np.testing.assert_allclose(u, chen(th), rtol=0, atol=1e-14)
    np.testing.assert_allclose(du, (chen(th + 1e-6) - chen(th - 1e-6)) / 2e-6, rtol=1e-6)
    mesh = model.disk_mesh(R_UM, n_radial=4, n_angular=8)
    surface = _film((180, 0.25, 0.2))
    kb = KineticBoundary(mesh, model.get_parameter_set("nmc88_chen2020_ocv"), surface)
    assert kb._ocv_and_slope is not None
    assert kb._ocv_series is not None  # its closed form: U computed compiled

    # a shifted curve that inherited the attribute (functools.wraps copies __dict__)
    @functools.wraps(chen)
    def shifted(theta):
        return chen(theta) + 0.1

    params = dict(model.nmc88_lun2025(), **{"Open-circuit voltage [V]": shifted})
    kb = KineticBoundary(mesh, params, surface)
    assert kb._ocv_and_slope is None
    assert kb._ocv_series is None  # nor its closed form
    u2, du2 = kb.ocv_and_slope(th)
    np.testing.assert_allclose(u2, u + 0.1, atol=1e-12)
    np.testing.assert_allclose(du2, du, rtol=1e-5)


def _series_params():
    """A set whose OCV has a closed form (``tanh_series``) that the kinetic surface compiles:
    the Verbrugge 2017 curve (the default's, the Sturm 2019 table, has none)."""
    return model.get_parameter_set("nmc88_verbrugge2017_ocv")


def test_the_newton_loop_compiled_and_as_plain_python_agree():
    # the kernel runs compiled (numba); without numba the same function runs as Python
    from asymflux.model import kinetics as K

    rng = np.random.default_rng(3)
    n_runs, n = 3, 12
    u = 3.6 + 0.1 * rng.random((n_runs, n))
    i0 = 1.0 + rng.random((n_runs, n))
    r = np.where(np.arange(n) < 4, 0.2, 0.0)
    w = np.full(n, 1.0 / n)
    target = np.array([0.0, 2.0, -5.0])
    out = []
    for kernel in (K._compiled(K._butler_volmer_balance), K._butler_volmer_balance):
        v, x = u.mean(axis=1), np.zeros((n_runs, n))
        s, c, sh = np.empty((n_runs, n)), np.empty((n_runs, n)), np.empty((n_runs, n))
        alpha = FARADAY_C_MOL / (2 * K.GAS_CONSTANT_J_MOL_K * 298.15)
        assert kernel(u, i0, r, w, target, v, x, s, c, sh, alpha, K.MAX_STEP_V) == 0
        assert np.allclose(s @ w, target, atol=1e-9)  # the balance holds
        out.append((v, x, s))
    for a, b in zip(*out, strict=True):
        assert np.allclose(a, b, rtol=1e-12, atol=1e-12)


def test_the_compiled_surface_terms_equal_the_numpy_ones():
    # U, i0 and their slopes as the right-hand side computes them (compiled, from the OCV's
    # closed form) against the OCV function and exchange_current; also at θ = 0 and 1
    from asymflux.model import kinetics as K
    from asymflux.model.kinetics import KineticBoundary

    mesh = model.disk_mesh(R_UM, n_radial=4, n_angular=8)
    kb = KineticBoundary(mesh, _series_params(), _film((180, 0.25, 0.2)))
    th = np.concatenate([[0.0, 1.0, 1e-12], np.linspace(0.05, 0.999, 37)]).reshape(4, 10)
    u_ref, du_ref = kb.ocv_and_slope(th)
    i0_ref, di0_ref = kb.exchange_current(th)
    for kernel in (K._compiled(K._surface_u_i0), K._surface_u_i0):
        u, i0, du, di0 = (np.full(th.shape, np.nan) for _ in range(4))
        kernel(th, *kb._ocv_series, kb.k0, u, i0, du, di0, True)
        np.testing.assert_allclose(u, u_ref, rtol=0, atol=1e-12)
        np.testing.assert_allclose(i0, i0_ref, rtol=1e-13, atol=0)
        np.testing.assert_allclose(du, du_ref, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(di0, di0_ref, rtol=1e-12, atol=0)
    assert di0_ref[0, 0] == 0 and di0_ref[0, 1] == 0  # outside (0, 1): no slope


def test_the_compiled_surface_path_solves_as_the_generic_one():
    # the same OCV without its closed form goes the NumPy way: the same V, currents, slopes
    from asymflux.model.kinetics import KineticBoundary

    chen = _series_params()["Open-circuit voltage [V]"]  # Verbrugge 2017's tanh series
    mesh = model.disk_mesh(R_UM, n_radial=4, n_angular=12)
    surface = _film((180, 0.25, 0.2), (30, 0.1, 1.0))
    fast = KineticBoundary(mesh, _series_params(), surface)
    plain = KineticBoundary(mesh, dict(_series_params(), **{
        "Open-circuit voltage [V]": lambda theta: chen(theta)}), surface)
    assert fast._ocv_series is not None and plain._ocv_series is None
    rng = np.random.default_rng(7)
    one = 0.5 + 0.45 * rng.random(fast.n_faces)
    runs = 0.3 + 0.6 * rng.random((3, fast.n_faces))
    for th, current in ((one, 150.0), (runs, np.array([0.0, 50.0, -400.0]))):
        for slopes in (False, True):
            a = fast.solve(th, current, with_slopes=slopes)
            b = plain.solve(th, current, with_slopes=slopes)
            for key in ("V", "s", "x", "U", "i0"):
                np.testing.assert_allclose(a[key], b[key], rtol=1e-10, atol=1e-12)
            if slopes:  # dU: analytic vs the generic path's central difference; di0 analytic
                np.testing.assert_allclose(a["dU"], b["dU"], rtol=1e-5, atol=1e-6)
                np.testing.assert_allclose(a["di0"], b["di0"], rtol=1e-12, atol=0)
                for sa, sb in zip(fast.sensitivities(a), plain.sensitivities(b), strict=True):
                    np.testing.assert_allclose(sa, sb, rtol=1e-5, atol=1e-9)
    with pytest.raises(ValueError, match="n_parts"):
        fast.solve_parts(np.full((2, 2, fast.face.size), 0.5), 0.0)


def test_without_numba_the_surface_terms_go_the_numpy_way(monkeypatch):
    # the closed-form kernel as plain Python would be ~10x slower than NumPy: not used then
    from asymflux.model import kinetics as K
    from asymflux.model.kinetics import KineticBoundary

    mesh = model.disk_mesh(R_UM, n_radial=4, n_angular=8)
    kb = KineticBoundary(mesh, _series_params(), _film((180, 0.25, 0.2)))
    th = np.linspace(0.3, 0.9, kb.n_faces)
    ref = kb.solve(th, 100.0)
    monkeypatch.setattr(K, "_COMPILED", {K._surface_u_i0: K._surface_u_i0,
                                         K._butler_volmer_balance: K._butler_volmer_balance})

    def refuse(*args):
        raise AssertionError("the plain-Python closed-form kernel was used")
    monkeypatch.setattr(K, "_surface_u_i0", refuse)
    monkeypatch.setitem(K._COMPILED, refuse, refuse)
    kb._guess.clear()
    out = kb.solve(th, 100.0)
    np.testing.assert_allclose(out["V"], ref["V"], rtol=0, atol=1e-12)
