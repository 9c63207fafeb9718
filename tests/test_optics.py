"""The synthetic microscope: response, outlines, mapping, PSF, drift, camera."""

from __future__ import annotations

import numpy as np
import pytest

from asymflux import model, optics

PIXEL_NM = 65.0


# ----------------------------------------------------------------------------- response


def test_response_threshold_slope_and_saturation():
    di = optics.dI_from_theta
    assert di(0.97) == pytest.approx(0.0, abs=1e-15)
    # the paper's "unreacted" threshold is reached 0.025 below the reference
    assert di(0.97 - 0.025) == pytest.approx(0.05, abs=1e-12)
    # initial slope 2 per unit theta
    h = 1e-6
    assert (di(0.97 - h) - di(0.97)) / h == pytest.approx(2.0, rel=0.005)
    # saturates between 0.5 and 0.8 for a full charge
    assert 0.5 <= di(0.2) <= 0.8
    assert 0.5 <= di(0.0) <= 0.8


def test_response_monotonic_and_inverse():
    theta = np.linspace(0.0, 1.0, 2001)
    di = optics.dI_from_theta(theta)
    assert np.all(np.diff(di) < 0)  # intensity rises as theta falls
    back = optics.theta_from_dI(di)
    np.testing.assert_allclose(back, theta, atol=1e-9)
    assert np.isnan(optics.theta_from_dI(0.9))
    assert np.isnan(optics.dI_from_theta(np.nan))


def test_response_rejects_bad_parameters():
    with pytest.raises(ValueError, match="slope"):
        optics.dI_from_theta(0.5, slope=0)
    with pytest.raises(ValueError, match="saturation"):
        optics.theta_from_dI(0.1, saturation=-1)


# ----------------------------------------------------------------------------- outlines


@pytest.mark.parametrize("kind", ["ellipse", "polygon"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_outline_area_matches_mask_and_coverage(kind, seed):
    rng = np.random.default_rng(seed)
    d_um = rng.uniform(2.5, 5.0)
    o = optics.random_outline(rng, equivalent_diameter_um=d_um, center_rc=(63.3, 70.6), kind=kind)
    assert o.equivalent_radius_um == pytest.approx(d_um / 2, rel=1e-6)
    shape = (130, 140)
    px_um2 = (PIXEL_NM / 1000) ** 2
    assert o.mask(shape, pixel_nm=PIXEL_NM).sum() * px_um2 == pytest.approx(o.area_um2, rel=0.01)
    cov = o.coverage(shape, pixel_nm=PIXEL_NM)
    assert cov.min() >= 0 and cov.max() <= 1
    assert cov.sum() * px_um2 == pytest.approx(o.area_um2, rel=0.003)
    # the outline radius is where the gauge is 1
    phi = np.linspace(0, 2 * np.pi, 50)
    r = o.radius_um(phi)
    np.testing.assert_allclose(o.gauge(r * np.cos(phi), r * np.sin(phi)), 1.0, rtol=1e-12)
    assert o.max_radius_um == pytest.approx(r.max(), rel=0.01)


def test_outline_orientation_and_validation():
    # an ellipse elongated along x: wider in columns than in rows
    o = optics.Outline((50.0, 50.0), "ellipse", (2.0, 1.0, 0.0))
    m = o.mask((101, 101), pixel_nm=PIXEL_NM)
    rows, cols = np.nonzero(m)
    assert np.ptp(cols) > 1.8 * np.ptp(rows)
    with pytest.raises(ValueError, match="kind"):
        optics.Outline((0, 0), "star", (1,))
    with pytest.raises(ValueError, match="equivalent_diameter_um"):
        optics.random_outline(np.random.default_rng(0), equivalent_diameter_um=-1)


@pytest.fixture(scope="module")
def blocked_left():
    """A disk blocked on its left (180°), 10 min of charge at 100 mA/g."""
    o = optics.random_outline(np.random.default_rng(5), equivalent_diameter_um=3.2,
                              center_rc=(40.0, 41.0), kind="ellipse")
    res = model.simulate(
        model.nmc88_lun2025(),
        model.disk_mesh(o.equivalent_radius_um, n_radial=12, n_angular=40),
        model.Surface([model.BlockedArc(180, 0.3, 0.25)]),
        [model.Charge(100, minutes=10)], output_minutes=[5, 10],
    )
    return o, res


def test_map_disk_to_outline_conserves_lithium(blocked_left):
    o, res = blocked_left
    shape = (80, 82)
    mask = o.mask(shape, pixel_nm=PIXEL_NM)
    th = optics.map_disk_to_outline(res, o, shape=shape, pixel_nm=PIXEL_NM)
    assert th.shape == (res.times_s.size, *shape)
    assert np.all(np.isnan(th[:, ~mask])) and np.all(np.isfinite(th[:, mask]))
    # theta0 - mean theta = capacity / theoretical capacity, exactly
    q = res.params["Theoretical capacity [mA.h.g-1]"]
    np.testing.assert_allclose(res.theta0 - th[:, mask].mean(axis=1), res.capacity_mAh_g / q,
                               atol=1e-9)
    # the rescaling that enforces it is a small correction
    raw = optics.map_disk_to_outline(res, o, shape=shape, pixel_nm=PIXEL_NM, conserve=False)
    dep_raw = res.theta0 - raw[-1][mask].mean()
    assert dep_raw == pytest.approx(res.li_extracted[-1], rel=0.05)
    # blocked on the left: the left half keeps more lithium than the right half
    cols = np.nonzero(mask)[1]
    left = cols < o.center_rc[1]
    assert th[-1][mask][left].mean() > th[-1][mask][~left].mean() + 0.01
    # edge pixels outside the mask can be filled with the surface value
    cov = o.coverage(shape, pixel_nm=PIXEL_NM)
    ext = optics.map_disk_to_outline(res, o, shape=shape, pixel_nm=PIXEL_NM, where=cov > 0)
    assert np.all(np.isfinite(ext[:, cov > 0]))
    np.testing.assert_allclose(ext[:, mask], th[:, mask])


# ----------------------------------------------------------------------------- object


def test_object_reflectivity_mixes_particle_and_matrix():
    theta = np.array([[[0.97, 0.5, np.nan]]])
    cov = np.array([[1.0, 0.5, 0.0]])
    out = optics.object_reflectivity(theta, coverage=cov, particle_reflectivity=1.0,
                                     matrix_reflectivity=0.3)
    di = optics.dI_from_theta(0.5)
    np.testing.assert_allclose(out[0, 0], [1.0, 0.15 + 0.5 * (1 + di), 0.3])
    with pytest.raises(ValueError, match="finite"):
        optics.object_reflectivity(theta, coverage=np.ones((1, 3)), particle_reflectivity=1.0,
                                   matrix_reflectivity=0.3)


def test_carbon_matrix_is_darker_textured_and_seeded():
    a = optics.carbon_matrix((64, 64), np.random.default_rng(3), pixel_nm=PIXEL_NM)
    b = optics.carbon_matrix((64, 64), np.random.default_rng(3), pixel_nm=PIXEL_NM)
    np.testing.assert_array_equal(a, b)
    assert a.min() > 0 and 0.2 < a.mean() < 0.4 and a.std() > 0.05


# ----------------------------------------------------------------------------- PSF


@pytest.mark.parametrize("kind", ["gaussian", "airy"])
def test_psf_kernel_normalised_and_sized(kind):
    k = optics.psf_kernel(pixel_nm=PIXEL_NM, na=0.9, wavelength_nm=600, kind=kind)
    assert k.sum() == pytest.approx(1.0)
    c = k.shape[0] // 2
    assert k[c, c] == k.max()
    np.testing.assert_allclose(k, k.T)
    if kind == "gaussian":
        x = (np.arange(k.shape[0]) - c) * PIXEL_NM
        var = np.sum(k.sum(axis=0) * x**2)
        sigma = optics.psf_sigma_nm(na=0.9, wavelength_nm=600)
        assert sigma == pytest.approx(0.21 * 600 / 0.9)
        assert np.sqrt(var) == pytest.approx(np.hypot(sigma, PIXEL_NM / np.sqrt(12)), rel=0.02)
    else:  # first dark ring near 0.61 lambda / NA
        profile = k[c, c:]
        first_min = np.argmin(profile[: int(np.ceil(0.9 * 600 / 0.9 / PIXEL_NM))])
        assert first_min * PIXEL_NM == pytest.approx(0.61 * 600 / 0.9, abs=PIXEL_NM)


@pytest.mark.parametrize("kind", ["gaussian", "airy"])
def test_blur_conserves_total_intensity(kind):
    rng = np.random.default_rng(0)
    img = np.zeros((3, 120, 120))
    img[:, 40:80, 35:90] = rng.uniform(0.5, 1.5, (3, 40, 55))
    out = optics.blur(img, pixel_nm=PIXEL_NM, kind=kind)
    assert out.shape == img.shape
    np.testing.assert_allclose(out.sum(axis=(1, 2)), img.sum(axis=(1, 2)), rtol=1e-9)
    assert out.max() < img.max()  # it did blur
    # frames are blurred independently
    np.testing.assert_allclose(optics.blur(img[1], pixel_nm=PIXEL_NM, kind=kind), out[1])


def test_blur_resolution_follows_na():
    img = np.zeros((61, 61))
    img[30, 30] = 1.0
    sharp = optics.blur(img, pixel_nm=PIXEL_NM, na=1.3)
    soft = optics.blur(img, pixel_nm=PIXEL_NM, na=0.5)
    assert sharp.max() > soft.max()


# ----------------------------------------------------------------------------- drift


def test_smooth_drift_properties():
    d = optics.smooth_drift(50, np.random.default_rng(1), max_shift_px=0.6)
    assert d.shape == (50, 2)
    np.testing.assert_array_equal(d[0], 0.0)
    assert np.abs(d).max() <= 0.6 + 1e-12
    assert np.abs(np.diff(d, axis=0)).max() < 0.1  # smooth and slow
    np.testing.assert_array_equal(d, optics.smooth_drift(50, np.random.default_rng(1)))
    illum = optics.illumination_drift(50, np.random.default_rng(1), amplitude=0.01)
    assert illum[0] == 1.0 and np.abs(illum - 1).max() <= 0.01 + 1e-12


def test_add_drift_moves_content_by_the_given_subpixel_shift():
    # a smooth periodic pattern whose shifted version is known analytically
    n = 96
    r, c = np.indices((n, n), dtype=float)

    def pattern(dr, dc):
        rr, cc = r - dr, c - dc
        return (2 + np.cos(2 * np.pi * (3 * rr + 2 * cc) / n + 0.4)
                + 0.5 * np.sin(2 * np.pi * (5 * rr - 4 * cc) / n + 1.1))

    shifts = np.array([[0.0, 0.0], [0.3, -0.45], [-0.7, 0.2]])
    moved = optics.add_drift(np.repeat(pattern(0, 0)[None], 3, axis=0), shifts)
    np.testing.assert_array_equal(moved[0], pattern(0, 0))
    for k in (1, 2):
        # content at (r, c) in frame 0 is at (r + dr, c + dc) in frame k
        np.testing.assert_allclose(moved[k, 10:-10, 10:-10],
                                   pattern(*shifts[k])[10:-10, 10:-10], atol=2e-3)
    with pytest.raises(ValueError, match="shifts"):
        optics.add_drift(moved, shifts[:2])


# ----------------------------------------------------------------------------- camera


def test_camera_noise_statistics_and_seed():
    intensity = np.full((200, 200), 0.5)
    kw = dict(electrons_per_unit=4000.0, gain_counts_per_electron=0.5, read_noise_counts=1.5,
              offset_counts=100.0)
    a = optics.add_camera_noise(intensity, np.random.default_rng(7), **kw)
    b = optics.add_camera_noise(intensity, np.random.default_rng(7), **kw)
    assert a.dtype == np.uint16
    np.testing.assert_array_equal(a, b)
    assert a.mean() == pytest.approx(0.5 * 4000 * 0.5 + 100, rel=0.002)
    expected_var = 0.5**2 * 0.5 * 4000 + 1.5**2 + 1 / 12  # shot + read + rounding
    assert a.astype(float).var() == pytest.approx(expected_var, rel=0.05)


def test_microscope_chain_is_monotonic_in_theta():
    n = 5
    theta = np.full((n, 40, 40), np.nan)
    cov = np.zeros((40, 40))
    cov[10:30, 10:30] = 1.0
    theta[:, 10:30, 10:30] = np.linspace(0.97, 0.3, n)[:, None, None]
    expected = optics.microscope(theta, np.random.default_rng(0), coverage=cov,
                                 particle_reflectivity=1.0, matrix_reflectivity=0.3,
                                 pixel_nm=PIXEL_NM, noise=False)
    centre = expected[:, 20, 20] - 100.0  # the camera offset
    assert np.all(np.diff(centre) > 0)  # delithiation brightens
    di = centre / centre[0] - 1
    np.testing.assert_allclose(di, optics.dI_from_theta(theta[:, 20, 20]), rtol=1e-4)
    counts = optics.microscope(theta, np.random.default_rng(0), coverage=cov,
                               particle_reflectivity=1.0, matrix_reflectivity=0.3,
                               pixel_nm=PIXEL_NM, drift_px=np.zeros((n, 2)),
                               illumination=np.ones(n))
    assert counts.dtype == np.uint16 and counts.shape == theta.shape
