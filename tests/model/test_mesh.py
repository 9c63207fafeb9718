"""A particle's own outline: a mask mesh of a disk gives the disk result."""

import numpy as np
import pytest

from asymflux import model

R_UM = 1.2


def _disk_mask(pixel_nm, radius_um=R_UM):
    n = int(np.ceil(2 * radius_um * 1000 / pixel_nm)) + 4
    c = (np.arange(n) - (n - 1) / 2) * pixel_nm / 1000
    X, Y = np.meshgrid(c, c)
    return np.hypot(X, Y) <= radius_um


@pytest.fixture(scope="module")
def pair():
    pixel_nm = 60.0
    mesh = model.mask_mesh(_disk_mask(pixel_nm), pixel_nm)
    surface = model.Surface.from_strings(["180:0.25:0.3"])
    protocol = [model.Charge(200)]  # to the 0.2 cut-off
    on_mask = model.simulate(None, mesh, surface, protocol, output_minutes=[5])
    on_disk = model.simulate(None, model.disk_mesh(R_UM), surface, protocol, output_minutes=[5])
    return on_mask, on_disk


def test_mask_mesh_geometry_is_the_smooth_outline():
    mesh = model.mask_mesh(_disk_mask(40.0), 40.0)
    assert mesh.area_um2 == pytest.approx(np.pi * R_UM**2, rel=0.01)
    # effective boundary lengths recover the smooth perimeter, not the staircase (x 4/pi)
    assert mesh.perimeter_um == pytest.approx(2 * np.pi * R_UM, rel=0.01)
    # and distribute it evenly in angle
    hist, _ = np.histogram(mesh.boundary_angle_rad, bins=8, range=(0, 2 * np.pi),
                           weights=mesh.boundary_length_um)
    assert np.ptp(hist) < 0.05 * hist.mean()


def test_disk_mask_gives_disk_result_within_1_percent(pair):
    on_mask, on_disk = pair
    # Li extracted at the cut-off and the time it takes
    assert on_mask.li_extracted[-1] == pytest.approx(on_disk.li_extracted[-1], rel=0.01)
    assert on_mask.minutes[-1] == pytest.approx(on_disk.minutes[-1], rel=0.01)
    # the Li-rich core's offset at 5 min
    offsets = []
    for res in pair:
        i = res.index_of_minutes(5)[0]
        core = res.theta[i] >= res.theta0 - 0.025
        w = res.mesh.cell_area_um2 * core
        offsets.append(np.array([w @ res.mesh.cell_x_um, w @ res.mesh.cell_y_um]) / w.sum())
    assert np.hypot(*(offsets[0] - offsets[1])) < 0.01 * 2 * R_UM
    assert offsets[0][0] < -0.05  # towards the blocked side
    # theta field at 5 min, compared at the mask's pixels
    mesh = on_mask.mesh
    i = on_mask.index_of_minutes(5)[0]
    disk_theta = on_disk.mesh.sample(on_disk.theta[i], mesh.cell_x_um, mesh.cell_y_um)
    rms = np.sqrt(np.nanmean((on_mask.theta[i] - disk_theta) ** 2))
    assert rms < 0.01


def test_mask_result_to_image_returns_the_mask_pixels(pair):
    on_mask, _ = pair
    img = on_mask.to_image(pixel_nm=60.0)
    mask = on_mask.mesh.info["mask"]
    assert img.theta.shape[1:] == pytest.approx(mask.shape, abs=2)
    assert np.isfinite(img.theta[0]).sum() == pytest.approx(mask.sum(), rel=0.02)


@pytest.mark.parametrize(
    "mask, words",
    [
        (np.ones((3, 3, 3), bool), "2-D"),
        (np.zeros((10, 10), bool), "at least 9"),
        (np.pad(np.ones((4, 4), bool), 2) | np.pad(np.eye(2, 8, 6, dtype=bool), ((6, 0), (0, 0))), "connected"),
        (np.pad(np.pad(np.zeros((2, 2), bool), 3, constant_values=True), 1), "holes"),
    ],
)
def test_bad_masks(mask, words):
    with pytest.raises(ValueError, match=words):
        model.mask_mesh(mask, 50)


def _disk_mask(pixel_nm, radius_um=1.2):
    n = int(np.ceil(2 * radius_um * 1000 / pixel_nm)) + 2
    c = (n - 1) / 2
    yy, xx = np.mgrid[:n, :n]
    return np.hypot((xx - c) * pixel_nm, (yy - c) * pixel_nm) <= radius_um * 1000


def _without_extrapolation(mesh):
    import dataclasses

    return dataclasses.replace(mesh, info={k: v for k, v in mesh.info.items()
                                           if k != "boundary_inner_cell"})


def test_kinetic_surface_theta_extrapolated_to_the_boundary():
    """On a mask mesh the kinetic surface sees θ extrapolated from the boundary cell's node
    (half a pixel inside) to the surface: the effective flux ratio of a quarter under the
    η ≈ 0.3 film on a disk mask comes closer to the disk mesh's (0.300) than with the node's
    θ (default Sturm 2019 OCV, 0.171 Ω m²: errors 0.015 / 0.004 against 0.031 / 0.012 at
    100 / 60 nm pixels)."""
    from asymflux.model import calibration

    film = calibration.FILM_RESISTANCE_ETA_0_3_OHM_M2
    ref = calibration.effective_flux_ratio(film)
    for pixel_nm in (100.0, 60.0):
        mesh = model.mask_mesh(_disk_mask(pixel_nm), pixel_nm)
        new = calibration.effective_flux_ratio(film, mesh=mesh)
        old = calibration.effective_flux_ratio(film, mesh=_without_extrapolation(mesh))
        assert abs(new - ref) < 0.5 * abs(old - ref)
        assert abs(new - ref) < 0.016


def test_extrapolated_kinetic_jacobian_matches_finite_differences():
    """The analytic Jacobian (sparse with its rank-one part, and the dense runs' form) of the
    extrapolated kinetic surface is the derivative of the right-hand side."""
    from asymflux.model.discretisation import Discretisation

    mesh = model.mask_mesh(_disk_mask(300.0), 300.0)
    surface = model.Surface.kinetic([model.FilmArc(180.0, 0.25, 0.2)])
    disc = Discretisation(mesh, model.nmc88_lun2025(), surface, symmetry=False)
    assert disc._extrapolated
    rng = np.random.default_rng(0)
    y = 0.9 + 0.05 * rng.random(disc.n_unknowns)
    J = disc.jacobian_dense(y, 100.0)
    h = 1e-7
    fd = np.column_stack([(disc.rhs(y + h * e, 100.0) - disc.rhs(y - h * e, 100.0)) / (2 * h)
                          for e in np.eye(disc.n_unknowns)])
    np.testing.assert_allclose(J, fd, rtol=1e-4, atol=1e-6 * np.abs(fd).max())
    runs = disc.jacobian_runs(y[None, :], [100.0])[0]
    np.testing.assert_allclose(runs, J, rtol=1e-9, atol=1e-12 * np.abs(J).max())
