r"""The synthetic microscope: occupancy fields θ(x, y, t) → camera frames.

A simulated movie goes through the same steps a measured one went through, so that the
analysis cannot tell them apart by construction:

1. **Response** (:func:`dI_from_theta`, inverse
   :func:`theta_from_dI`): the local reflectivity of NMC rises
   monotonically as lithium leaves it (Lun et al. 2025, Fig. 1d). The default curve
   reaches the paper's "unreacted" threshold dI = 0.05 exactly when θ has fallen by
   0.025 below the reference occupancy, and saturates near dI ≈ 0.63 for a full charge.
2. **Geometry** (:class:`Outline`, :func:`random_outline`, :func:`map_disk_to_outline`):
   particles of random outline (ellipses and rounded polygons) are given the occupancy
   of a disk simulation, mapped radially onto the outline.
3. **Object** (:func:`carbon_matrix`, :func:`object_reflectivity`): bright particles in a
   darker, textured carbon matrix, with partial pixel coverage at the particle edges.
4. **Optics** (:func:`psf_kernel`, :func:`blur`): a diffraction-limited point-spread
   function (Airy pattern or its Gaussian approximation, σ = 0.21 λ/NA) applied to the
   reflectivity as an incoherent intensity image.
5. **Drift** (:func:`smooth_drift`, :func:`add_drift`, :func:`illumination_drift`):
   slow sub-pixel stage drift applied by spline interpolation, and a slow
   multiplicative illumination drift.
6. **Camera** (:func:`add_camera_noise`): Poisson shot noise in photo-electrons, a gain,
   Gaussian read noise and an offset, quantised to ``uint16`` counts.

:func:`microscope` chains 3-6. All random draws come from a ``numpy.random.Generator``
passed by the caller, so the same seed gives the same frames.

Arrays are (time, row, col) stacks or (row, col) images. Positions on the sample are in
µm with x to the right (columns) and y up on the screen (towards row 0); angles are
degrees counter-clockwise from +x as seen on screen (``docs/architecture.md``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validate import check_range
from .paper import UNREACTED_THRESHOLD  # dI of an "unreacted" pixel (Lun et al. 2025, Fig. 5d)

# ----------------------------------------------------------------------------- response

THRESHOLD_DELTA_THETA = 0.025
"""Fall of occupancy below the reference at which the default response reaches the threshold."""

RESPONSE_SATURATION = 0.65
"""Default saturation of the differential intensity, dI → 0.65 for a fully delithiated pixel."""

RESPONSE_SLOPE = float(
    RESPONSE_SATURATION * np.arctanh(UNREACTED_THRESHOLD / RESPONSE_SATURATION)
    / THRESHOLD_DELTA_THETA
)
"""Initial slope −d(dI)/dθ of the default response (≈ 2.004 per unit θ), chosen so that
``dI_from_theta(theta_ref - 0.025) == 0.05`` exactly."""

DEFAULT_THETA_REF = 0.97
"""Reference occupancy (the model's default initial occupancy)."""

DEFAULT_WAVELENGTH_NM = 600.0
"""Default illumination wavelength (visible, broadband LED centre; an assumption)."""

DEFAULT_NA = 0.9
"""Default numerical aperture of the objective (an assumption)."""


def dI_from_theta(
    theta,
    *,
    theta_ref: float = DEFAULT_THETA_REF,
    slope: float = RESPONSE_SLOPE,
    saturation: float = RESPONSE_SATURATION,
):
    r"""Normalised differential intensity of a pixel as a function of its occupancy.

    .. math:: dI = \frac{I}{I_{ref}} - 1 = A \tanh\!\left(\frac{s\,(\theta_{ref} - \theta)}{A}\right)

    with initial slope ``s`` and saturation ``A``. The curve is strictly decreasing in θ
    (intensity *rises* on delithiation), linear to within 0.3 % up to the unreacted
    threshold, and saturates towards ``A`` for a full charge: with the defaults
    dI = 0.05 at θ = θ_ref − 0.025 and dI ≈ 0.63 at θ = 0.2.

    This is a phenomenological response (the paper shows only that the intensity is
    monotonic in the state of charge, Fig. 1d); the threshold and the initial slope are
    the quantities the analysis depends on.

    Parameters
    ----------
    theta : array_like
        Occupancy (1 = fully lithiated), any shape. NaN stays NaN.
    theta_ref : float, keyword-only
        Occupancy of the reference (first) frame, where dI = 0.
    slope : float, keyword-only
        Initial slope −d(dI)/dθ at θ_ref (> 0).
    saturation : float, keyword-only
        Asymptotic |dI| (> 0).

    Returns
    -------
    ndarray, same shape as ``theta``
        dI, dimensionless.
    """
    s = check_range("slope", slope, 0, None, low_inclusive=False)
    a = check_range("saturation", saturation, 0, None, low_inclusive=False)
    th = np.asarray(theta, dtype=float)
    return a * np.tanh(s * (theta_ref - th) / a)


def theta_from_dI(
    di,
    *,
    theta_ref: float = DEFAULT_THETA_REF,
    slope: float = RESPONSE_SLOPE,
    saturation: float = RESPONSE_SATURATION,
):
    r"""Inverse of :func:`dI_from_theta`: occupancy from dI.

    .. math:: \theta = \theta_{ref} - \frac{A}{s}\,\operatorname{artanh}(dI / A)

    Parameters
    ----------
    di : array_like
        Differential intensity I/I_ref − 1, any shape.
    theta_ref, slope, saturation : float, keyword-only
        As for :func:`dI_from_theta`.

    Returns
    -------
    ndarray, same shape as ``di``
        Occupancy; NaN where |dI| ≥ ``saturation`` (no occupancy gives that intensity).
    """
    s = check_range("slope", slope, 0, None, low_inclusive=False)
    a = check_range("saturation", saturation, 0, None, low_inclusive=False)
    d = np.asarray(di, dtype=float) / a
    with np.errstate(invalid="ignore", divide="ignore"):
        out = theta_ref - a / s * np.arctanh(d)
    return np.where(np.abs(d) < 1, out, np.nan)


# ----------------------------------------------------------------------------- outlines


@dataclass(frozen=True)
class Outline:
    r"""A convex particle outline in the image, described by its gauge function.

    The gauge ``g(d)`` of an offset ``d`` (µm, from the outline's centre) is 1 on the
    outline, < 1 inside and positively homogeneous (``g(λd) = λ g(d)``), so the outline's
    radius in the direction φ is ``r(φ) = 1 / g(cos φ, sin φ)``.

    - ``kind="ellipse"``: ``params = (a_um, b_um, orientation_deg)``, semi-axes and the
      angle of the ``a`` axis; ``g = sqrt((x'/a)² + (y'/b)²)``.
    - ``kind="polygon"``: a rounded convex polygon, ``params = (p, n1_deg, h1_um, n2_deg,
      h2_um, ...)``: faces with outward normal angle ``n_i`` at distance ``h_i`` from the
      centre; ``g = (Σ_i max(d·n̂_i / h_i, 0)^p)^{1/p}`` (a p-norm of the face functions:
      a sharp polygon as p → ∞, corners rounded for p ≈ 6-16).

    Parameters
    ----------
    center_rc : (float, float)
        Centre in pixel coordinates (row, col), sub-pixel allowed.
    kind : {"ellipse", "polygon"}
    params : tuple of float
        See above.
    """

    center_rc: tuple[float, float]
    kind: str
    params: tuple[float, ...]

    def __post_init__(self):
        if self.kind not in ("ellipse", "polygon"):
            raise ValueError(f"Outline kind must be 'ellipse' or 'polygon', got {self.kind!r}")
        if self.kind == "ellipse" and len(self.params) != 3:
            raise ValueError("ellipse Outline params must be (a_um, b_um, orientation_deg)")
        if self.kind == "polygon" and (len(self.params) < 7 or len(self.params) % 2 != 1):
            raise ValueError("polygon Outline params must be (p, n1_deg, h1_um, ...) with >= 3 faces")

    def gauge(self, x_um, y_um):
        """Gauge function at offsets (x right, y up, µm) from the centre; 1 on the outline."""
        x = np.asarray(x_um, dtype=float)
        y = np.asarray(y_um, dtype=float)
        if self.kind == "ellipse":
            a, b, ang = self.params
            c, s = np.cos(np.deg2rad(ang)), np.sin(np.deg2rad(ang))
            xr, yr = c * x + s * y, -s * x + c * y
            return np.hypot(xr / a, yr / b)
        p = self.params[0]
        faces = np.asarray(self.params[1:], dtype=float).reshape(-1, 2)
        acc = np.zeros(np.broadcast(x, y).shape)
        for n_deg, h in faces:
            f = (np.cos(np.deg2rad(n_deg)) * x + np.sin(np.deg2rad(n_deg)) * y) / h
            acc += np.maximum(f, 0.0) ** p
        return acc ** (1.0 / p)

    def radius_um(self, angle_rad):
        """Outline radius r(φ) in µm at polar angles φ (radians, CCW from +x, y up)."""
        phi = np.asarray(angle_rad, dtype=float)
        return 1.0 / self.gauge(np.cos(phi), np.sin(phi))

    @property
    def area_um2(self) -> float:
        """Enclosed area, ½∮ r(φ)² dφ, in µm²."""
        phi = (np.arange(4096) + 0.5) * (2 * np.pi / 4096)
        return float(0.5 * np.sum(self.radius_um(phi) ** 2) * (2 * np.pi / 4096))

    @property
    def equivalent_radius_um(self) -> float:
        """Radius of the disk with the same area, in µm."""
        return float(np.sqrt(self.area_um2 / np.pi))

    @property
    def max_radius_um(self) -> float:
        """Largest distance of the outline from its centre, in µm."""
        phi = np.linspace(0, 2 * np.pi, 2048, endpoint=False)
        return float(np.max(self.radius_um(phi)))

    def offsets_um(self, shape, *, pixel_nm: float):
        """Offsets (x_um, y_um), each (row, col), of pixel centres from the centre."""
        p = check_range("pixel_nm", pixel_nm, 0, None, low_inclusive=False) / 1000.0
        rows, cols = np.indices(tuple(shape), dtype=float)
        r0, c0 = self.center_rc
        return (cols - c0) * p, -(rows - r0) * p

    def bounding_box(self, shape, *, pixel_nm: float, pad_px: int = 2) -> tuple[slice, slice]:
        """Row and column slices of ``shape`` that contain the particle (plus ``pad_px``)."""
        p = check_range("pixel_nm", pixel_nm, 0, None, low_inclusive=False) / 1000.0
        reach = self.max_radius_um / p + pad_px
        r0, c0 = self.center_rc
        rows = slice(max(int(np.floor(r0 - reach)), 0), max(min(int(np.ceil(r0 + reach)) + 1, shape[0]), 0))
        cols = slice(max(int(np.floor(c0 - reach)), 0), max(min(int(np.ceil(c0 + reach)) + 1, shape[1]), 0))
        return rows, cols

    def mask(self, shape, *, pixel_nm: float) -> np.ndarray:
        """Pixels whose centre lies inside the outline: bool (row, col)."""
        shape = tuple(shape)
        rows, cols = self.bounding_box(shape, pixel_nm=pixel_nm)
        out = np.zeros(shape, dtype=bool)
        sub = Outline((self.center_rc[0] - rows.start, self.center_rc[1] - cols.start),
                      self.kind, self.params)
        x, y = sub.offsets_um((rows.stop - rows.start, cols.stop - cols.start), pixel_nm=pixel_nm)
        out[rows, cols] = sub.gauge(x, y) <= 1.0
        return out

    def coverage(self, shape, *, pixel_nm: float, supersample: int = 4) -> np.ndarray:
        """Fraction of each pixel covered by the particle, float (row, col) in [0, 1].

        Computed on a ``supersample`` × ``supersample`` sub-pixel grid and averaged with
        :func:`skimage.transform.downscale_local_mean`.
        """
        from skimage.transform import downscale_local_mean

        k = int(check_range("supersample", supersample, 1, 16))
        shape = tuple(shape)
        rows, cols = self.bounding_box(shape, pixel_nm=pixel_nm)
        n_r, n_c = rows.stop - rows.start, cols.stop - cols.start
        out = np.zeros(shape)
        if n_r <= 0 or n_c <= 0:
            return out
        r0, c0 = self.center_rc[0] - rows.start, self.center_rc[1] - cols.start
        fine = Outline(((r0 + 0.5) * k - 0.5, (c0 + 0.5) * k - 0.5), self.kind, self.params)
        x, y = fine.offsets_um((n_r * k, n_c * k), pixel_nm=pixel_nm / k)
        out[rows, cols] = downscale_local_mean((fine.gauge(x, y) <= 1.0).astype(float), (k, k))
        return out

    def describe(self) -> str:
        """Short human-readable description, e.g. ``"ellipse a=1.90 b=1.55 µm at 35°"``."""
        if self.kind == "ellipse":
            a, b, ang = self.params
            return f"ellipse a={a:.3f} b={b:.3f} um at {ang:.1f} deg"
        n = (len(self.params) - 1) // 2
        return f"rounded {n}-gon p={self.params[0]:.1f}"


def random_outline(
    rng: np.random.Generator,
    *,
    equivalent_diameter_um: float,
    center_rc: tuple[float, float] = (0.0, 0.0),
    kind: str | None = None,
    max_aspect: float = 1.4,
) -> Outline:
    """Draw a particle outline with a given equivalent diameter.

    Ellipses have an aspect ratio uniform in [1, ``max_aspect``] and a random
    orientation; rounded polygons have 5-8 faces (hexagons most often, as for
    single-crystal layered oxides seen along c), face normals jittered around the
    regular ones, face distances jittered by ±12 % and corner rounding p in [7, 14].
    The outline is then scaled so that its area is π (d/2)².

    Parameters
    ----------
    rng : numpy.random.Generator
    equivalent_diameter_um : float, keyword-only
        Diameter of the disk of equal area, µm.
    center_rc : (float, float), keyword-only
        Centre in pixels (row, col).
    kind : {"ellipse", "polygon"} or None, keyword-only
        Default: ellipse with probability 0.4, polygon otherwise.
    max_aspect : float, keyword-only
        Largest ellipse aspect ratio (≥ 1).

    Returns
    -------
    Outline
    """
    d = check_range("equivalent_diameter_um", equivalent_diameter_um, 0, None, low_inclusive=False)
    max_aspect = check_range("max_aspect", max_aspect, 1, None)
    if kind is None:
        kind = "ellipse" if rng.random() < 0.4 else "polygon"
    center = (float(center_rc[0]), float(center_rc[1]))
    r_eq = d / 2
    if kind == "ellipse":
        aspect = rng.uniform(1.0, max_aspect)
        ang = rng.uniform(0.0, 180.0)
        b = r_eq / np.sqrt(aspect)
        return Outline(center, "ellipse", (float(b * aspect), float(b), float(ang)))
    if kind != "polygon":
        raise ValueError(f"kind must be 'ellipse', 'polygon' or None, got {kind!r}")
    n = int(rng.choice([5, 6, 6, 6, 7, 8]))
    p = rng.uniform(7.0, 14.0)
    start = rng.uniform(0.0, 360.0)
    normals = start + 360.0 * np.arange(n) / n + rng.normal(0.0, 0.12 * 360.0 / n, n)
    h = 1.0 + rng.uniform(-0.12, 0.12, n)
    params = [p]
    for a, hh in zip(np.mod(normals, 360.0), h, strict=True):
        params += [float(a), float(hh)]
    unit = Outline(center, "polygon", tuple(float(v) for v in params))
    scale = r_eq / unit.equivalent_radius_um
    params = [p] + [v * (scale if i % 2 else 1.0) for i, v in enumerate(params[1:])]
    return Outline(center, "polygon", tuple(float(v) for v in params))


def map_disk_to_outline(
    result,
    outline: Outline,
    *,
    shape,
    pixel_nm: float,
    indices=None,
    where=None,
    conserve: bool = True,
) -> np.ndarray:
    r"""Occupancy of a disk simulation mapped onto a particle outline.

    The model meshes only disks, so a particle of any outline is simulated on a disk of
    its equivalent radius ``R`` and the result is mapped radially: the pixel at polar
    angle φ and distance ρ from the outline's centre takes the disk's occupancy at angle
    φ and radius ``R ρ / r(φ)`` (``r(φ)`` the outline radius). The disk's surface lands
    on the particle's edge, blocked arcs keep their polar angles and the core stays at
    the centre. This is an approximation, not a solution on the real outline: the
    diffusion length is stretched along long axes and squeezed along short ones.

    Because the stretch weights angular sectors by ``(r(φ)/R)²``, the pixel mean of the
    mapped field differs slightly from the disk's mean. With ``conserve=True`` the
    depletion ``θ0 − θ`` is rescaled, frame by frame, by one factor (typically within a
    few per cent of 1) so that the mean over the particle's mask equals the disk's mean,
    i.e. every particle obeys ``θ0 − ⟨θ⟩ = capacity / theoretical capacity`` exactly.

    Parameters
    ----------
    result : asymflux.model.Result
        A solved disk (``result.mesh.kind == "disk"``).
    outline : Outline
    shape : (int, int), keyword-only
        Image shape (row, col).
    pixel_nm : float, keyword-only
    indices : array of int, optional, keyword-only
        Which samples of ``result`` (default all).
    where : (row, col) bool array, optional, keyword-only
        Pixels to fill (default: the outline's mask). Pixels of ``where`` outside the
        outline (e.g. partly covered edge pixels) take the surface value.
    conserve : bool, keyword-only
        Rescale the depletion to conserve lithium on the mask (see above).

    Returns
    -------
    ndarray, float (n_times, row, col)
        Occupancy; NaN outside ``where``.
    """
    mesh = result.mesh
    if mesh.kind != "disk":
        raise ValueError(f"map_disk_to_outline needs a disk result, got mesh kind {mesh.kind!r}")
    R = float(mesh.info["radius_um"])
    values = result.theta if indices is None else result.theta[np.asarray(indices)]
    x, y = outline.offsets_um(shape, pixel_nm=pixel_nm)
    g = outline.gauge(x, y)
    mask = g <= 1.0
    fill = mask if where is None else (np.asarray(where, dtype=bool) | mask)
    xs, ys, gs = x[fill], y[fill], np.minimum(g[fill], 1.0)
    rho = np.hypot(xs, ys)
    with np.errstate(invalid="ignore", divide="ignore"):
        k = np.where(rho > 0, R * gs / rho * (1 - 1e-12), 0.0)
    th = mesh.sample(values, xs * k, ys * k)  # (n, n_fill)
    if conserve:
        theta0 = result.theta0
        target = mesh.mean(values)  # disk mean, (n,)
        inner = mask[fill]
        got = th[:, inner].mean(axis=1)
        dep_got, dep_target = theta0 - got, theta0 - target
        factor = np.where(np.abs(dep_got) > 1e-12, dep_target / np.where(
            np.abs(dep_got) > 1e-12, dep_got, 1.0), 1.0)
        th = theta0 - factor[:, None] * (theta0 - th)
    out = np.full((values.shape[0], *tuple(shape)), np.nan)
    out[:, fill] = th
    return out


# ----------------------------------------------------------------------------- object


def carbon_matrix(
    shape,
    rng: np.random.Generator,
    *,
    pixel_nm: float,
    mean: float = 0.3,
    contrast: float = 0.35,
    grain_nm: tuple[float, ...] = (130.0, 520.0),
) -> np.ndarray:
    """Reflectivity of the carbon/binder matrix: dark, log-normally textured.

    Gaussian white noise smoothed at each grain size (``scipy.ndimage.gaussian_filter``),
    summed, normalised to unit variance and exponentiated:
    ``mean · exp(contrast · z − contrast²/2)``.

    Parameters
    ----------
    shape : (int, int)
    rng : numpy.random.Generator
    pixel_nm : float, keyword-only
    mean : float, keyword-only
        Mean reflectivity relative to a bare particle (≈ 1).
    contrast : float, keyword-only
        Standard deviation of the log-reflectivity.
    grain_nm : tuple of float, keyword-only
        Texture length scales (Gaussian σ) in nm.

    Returns
    -------
    ndarray, float (row, col), positive
    """
    from scipy import ndimage

    pixel_nm = check_range("pixel_nm", pixel_nm, 0, None, low_inclusive=False)
    z = np.zeros(tuple(shape))
    for g in grain_nm:
        f = ndimage.gaussian_filter(rng.standard_normal(tuple(shape)), g / pixel_nm, mode="wrap")
        z += f / f.std()
    z /= z.std()
    return mean * np.exp(contrast * z - contrast**2 / 2)


def object_reflectivity(
    theta,
    *,
    coverage,
    particle_reflectivity,
    matrix_reflectivity,
    theta_ref: float = DEFAULT_THETA_REF,
    slope: float = RESPONSE_SLOPE,
    saturation: float = RESPONSE_SATURATION,
) -> np.ndarray:
    r"""Reflectivity of the sample plane: particles (response to θ) over the matrix.

    .. math:: O = (1 - c)\,M + c\,P\,(1 + dI(\theta))

    with ``c`` the particle coverage of each pixel, ``M`` the matrix reflectivity and
    ``P`` the particles' reflectivity at θ_ref.

    Parameters
    ----------
    theta : (n_times, row, col) or (row, col) array
        Occupancy; may be NaN where ``coverage == 0``.
    coverage : (row, col) array in [0, 1], keyword-only
        Particle fraction of each pixel (all particles together).
    particle_reflectivity, matrix_reflectivity : (row, col) arrays or floats, keyword-only
    theta_ref, slope, saturation : float, keyword-only
        The response, see :func:`dI_from_theta`.

    Returns
    -------
    ndarray, float, same shape as ``theta``
    """
    cov = np.clip(np.asarray(coverage, dtype=float), 0.0, 1.0)
    di = dI_from_theta(theta, theta_ref=theta_ref, slope=slope, saturation=saturation)
    di = np.where(cov > 0, di, 0.0)
    if np.any(np.isnan(di)):
        raise ValueError("theta must be finite wherever coverage > 0")
    return (1 - cov) * matrix_reflectivity + cov * particle_reflectivity * (1 + di)


# ----------------------------------------------------------------------------- optics


def psf_sigma_nm(*, na: float = DEFAULT_NA, wavelength_nm: float = DEFAULT_WAVELENGTH_NM) -> float:
    """Standard deviation of the Gaussian approximation of the Airy PSF, 0.21 λ/NA, in nm."""
    na = check_range("na", na, 0, 1.7, low_inclusive=False)
    lam = check_range("wavelength_nm", wavelength_nm, 0, None, low_inclusive=False)
    return 0.21 * lam / na


def psf_kernel(
    *,
    pixel_nm: float,
    na: float = DEFAULT_NA,
    wavelength_nm: float = DEFAULT_WAVELENGTH_NM,
    kind: str = "gaussian",
    radius_px: int | None = None,
    oversample: int = 5,
) -> np.ndarray:
    r"""Point-spread function sampled on pixels, normalised to sum 1.

    - ``"airy"``: :math:`I(r) = [2 J_1(v)/v]^2`, :math:`v = 2\pi\,\mathrm{NA}\,r/\lambda`
      (first zero at 0.61 λ/NA), averaged over ``oversample²`` points per pixel.
    - ``"gaussian"``: :math:`\exp(-r^2/2\sigma^2)`, σ = 0.21 λ/NA.

    Parameters
    ----------
    pixel_nm, na, wavelength_nm : float, keyword-only
    kind : {"gaussian", "airy"}, keyword-only
    radius_px : int, optional, keyword-only
        Half-width of the kernel; default covers 4 λ/NA (Airy) or 4 σ (Gaussian).
    oversample : int, keyword-only

    Returns
    -------
    ndarray, float (2 radius_px + 1, 2 radius_px + 1)
    """
    from scipy.special import j1

    pixel_nm = check_range("pixel_nm", pixel_nm, 0, None, low_inclusive=False)
    sigma = psf_sigma_nm(na=na, wavelength_nm=wavelength_nm)
    if kind not in ("gaussian", "airy"):
        raise ValueError(f"kind must be 'gaussian' or 'airy', got {kind!r}")
    if radius_px is None:
        reach = 4 * wavelength_nm / na if kind == "airy" else 4 * sigma
        radius_px = int(np.ceil(reach / pixel_nm))
    radius_px = int(check_range("radius_px", radius_px, 1, None))
    k = int(check_range("oversample", oversample, 1, 32))
    sub = (np.arange(k) + 0.5) / k - 0.5
    axis = (np.arange(-radius_px, radius_px + 1)[:, None] + sub[None, :]).ravel() * pixel_nm
    yy, xx = np.meshgrid(axis, axis, indexing="ij")
    r = np.hypot(xx, yy)
    if kind == "gaussian":
        fine = np.exp(-0.5 * (r / sigma) ** 2)
    else:
        v = 2 * np.pi * na * r / wavelength_nm
        with np.errstate(invalid="ignore", divide="ignore"):
            fine = np.where(v > 0, (2 * j1(v) / np.where(v > 0, v, 1.0)) ** 2, 1.0)
    n = 2 * radius_px + 1
    kernel = fine.reshape(n, k, n, k).mean(axis=(1, 3))
    return kernel / kernel.sum()


def blur(
    image,
    *,
    pixel_nm: float,
    na: float = DEFAULT_NA,
    wavelength_nm: float = DEFAULT_WAVELENGTH_NM,
    kind: str = "gaussian",
) -> np.ndarray:
    """Convolve images with the microscope's PSF (incoherent imaging).

    The Gaussian PSF uses :func:`scipy.ndimage.gaussian_filter`; the Airy PSF
    :func:`scipy.signal.fftconvolve` with the kernel of :func:`psf_kernel`. Edges are
    extended by mirror reflection. Total intensity is conserved exactly for an image
    whose border (the PSF's reach) is zero, and to within edge effects otherwise.

    Parameters
    ----------
    image : (..., row, col) array
        Intensity; leading axes (e.g. time) are not blurred.
    pixel_nm, na, wavelength_nm : float, keyword-only
    kind : {"gaussian", "airy"}, keyword-only

    Returns
    -------
    ndarray, float, same shape
    """
    from scipy import ndimage, signal

    img = np.asarray(image, dtype=float)
    if img.ndim < 2:
        raise ValueError(f"image must have at least 2 dimensions (row, col), got shape {img.shape}")
    pixel_nm = check_range("pixel_nm", pixel_nm, 0, None, low_inclusive=False)
    if kind == "gaussian":
        s = psf_sigma_nm(na=na, wavelength_nm=wavelength_nm) / pixel_nm
        return ndimage.gaussian_filter(img, (0,) * (img.ndim - 2) + (s, s), mode="reflect",
                                       truncate=5.0)
    kernel = psf_kernel(pixel_nm=pixel_nm, na=na, wavelength_nm=wavelength_nm, kind=kind)
    r = kernel.shape[0] // 2
    pad = [(0, 0)] * (img.ndim - 2) + [(r, r), (r, r)]
    padded = np.pad(img, pad, mode="symmetric")
    k = kernel.reshape((1,) * (img.ndim - 2) + kernel.shape)
    return signal.fftconvolve(padded, k, mode="valid", axes=(-2, -1))


# ----------------------------------------------------------------------------- drift


def _smooth_curve(rng, n, *, smooth_frames):
    """A smooth random curve of ``n`` samples starting at 0 with max |value| 1."""
    from scipy import ndimage

    if n < 2:
        return np.zeros(n)
    walk = np.cumsum(rng.standard_normal(n + 1))
    # a slow trend plus a smoothed random walk
    curve = ndimage.gaussian_filter1d(walk, max(smooth_frames, 1e-3), mode="nearest")[:n]
    curve = curve + rng.normal() * np.linspace(0, 1, n) * np.ptp(curve)
    curve = curve - curve[0]
    peak = np.max(np.abs(curve))
    return curve / peak if peak > 0 else curve


def smooth_drift(
    n_frames: int,
    rng: np.random.Generator,
    *,
    max_shift_px: float = 0.6,
) -> np.ndarray:
    """Slow, smooth sub-pixel stage drift.

    Each axis is a Gaussian-smoothed random walk plus a linear trend, zero at frame 0,
    scaled so that its largest excursion is ``max_shift_px`` × U(0.5, 1).

    Parameters
    ----------
    n_frames : int
    rng : numpy.random.Generator
    max_shift_px : float, keyword-only
        Upper bound of |shift| along each axis, pixels.

    Returns
    -------
    ndarray, float (n_frames, 2)
        (row, col) shift of the image content in each frame relative to frame 0, pixels:
        what sat at (r, c) in frame 0 sits at (r + Δr, c + Δc) in frame t.
    """
    n = int(check_range("n_frames", n_frames, 1, None))
    m = check_range("max_shift_px", max_shift_px, 0, None)
    out = np.empty((n, 2))
    for axis in range(2):
        out[:, axis] = _smooth_curve(rng, n, smooth_frames=n / 5) * m * rng.uniform(0.5, 1.0)
    return out


def illumination_drift(
    n_frames: int,
    rng: np.random.Generator,
    *,
    amplitude: float = 0.01,
) -> np.ndarray:
    """Slow multiplicative illumination drift, 1 at frame 0.

    Parameters
    ----------
    n_frames : int
    rng : numpy.random.Generator
    amplitude : float, keyword-only
        Largest relative change, e.g. 0.01 for ±1 %.

    Returns
    -------
    ndarray, float (n_frames,)
    """
    n = int(check_range("n_frames", n_frames, 1, None))
    a = check_range("amplitude", amplitude, 0, 0.5)
    return 1.0 + a * _smooth_curve(rng, n, smooth_frames=n / 4)


def add_drift(stack, shifts_px, *, order: int = 3) -> np.ndarray:
    """Shift each frame by a sub-pixel amount (:func:`scipy.ndimage.shift`, spline interpolation).

    Parameters
    ----------
    stack : (n_frames, row, col) array
    shifts_px : (n_frames, 2) array
        (row, col) shift of the content, pixels (positive moves content down/right).
    order : int, keyword-only
        Spline order (3: cubic).

    Returns
    -------
    ndarray, float (n_frames, row, col)
    """
    from scipy import ndimage

    stack = np.asarray(stack, dtype=float)
    shifts = np.asarray(shifts_px, dtype=float)
    if stack.ndim != 3 or shifts.shape != (stack.shape[0], 2):
        raise ValueError(
            f"add_drift needs a (n_frames, row, col) stack and (n_frames, 2) shifts, got "
            f"{stack.shape} and {shifts.shape}"
        )
    out = np.empty_like(stack)
    for i in range(stack.shape[0]):
        if np.any(shifts[i]):
            out[i] = ndimage.shift(stack[i], shifts[i], order=order, mode="reflect")
        else:
            out[i] = stack[i]
    return out


# ----------------------------------------------------------------------------- camera


def add_camera_noise(
    intensity,
    rng: np.random.Generator,
    *,
    electrons_per_unit: float = 4000.0,
    gain_counts_per_electron: float = 0.5,
    read_noise_counts: float = 1.5,
    offset_counts: float = 100.0,
) -> np.ndarray:
    """Shot noise, gain, read noise and offset: expected intensity → ``uint16`` counts.

    ``counts = round(gain · Poisson(electrons_per_unit · I) + N(0, read_noise²) + offset)``,
    clipped to [0, 65535].

    Parameters
    ----------
    intensity : array, ≥ 0
        Expected intensity in reflectivity units (a bare particle ≈ 1).
    rng : numpy.random.Generator
    electrons_per_unit : float, keyword-only
        Photo-electrons per pixel and frame for intensity 1 (sets the shot noise:
        1/sqrt(4000) ≈ 1.6 % on a particle with the default).
    gain_counts_per_electron, read_noise_counts, offset_counts : float, keyword-only

    Returns
    -------
    ndarray, uint16, same shape
    """
    lam = np.clip(np.asarray(intensity, dtype=float), 0, None) * check_range(
        "electrons_per_unit", electrons_per_unit, 0, None, low_inclusive=False)
    gain = check_range("gain_counts_per_electron", gain_counts_per_electron, 0, None,
                       low_inclusive=False)
    read = check_range("read_noise_counts", read_noise_counts, 0, None)
    offset = check_range("offset_counts", offset_counts, 0, 65535)
    counts = gain * rng.poisson(lam) + read * rng.standard_normal(lam.shape) + offset
    return np.clip(np.rint(counts), 0, 65535).astype(np.uint16)


def microscope(
    theta,
    rng: np.random.Generator,
    *,
    coverage,
    particle_reflectivity,
    matrix_reflectivity,
    pixel_nm: float,
    theta_ref: float = DEFAULT_THETA_REF,
    na: float = DEFAULT_NA,
    wavelength_nm: float = DEFAULT_WAVELENGTH_NM,
    psf: str = "gaussian",
    drift_px=None,
    illumination=None,
    electrons_per_unit: float = 4000.0,
    gain_counts_per_electron: float = 0.5,
    read_noise_counts: float = 1.5,
    offset_counts: float = 100.0,
    noise: bool = True,
) -> np.ndarray:
    """Camera frames of an occupancy movie: object → PSF → stage drift → illumination → camera.

    Parameters
    ----------
    theta : (n_frames, row, col) array
        Occupancy, finite wherever ``coverage > 0``.
    rng : numpy.random.Generator
        Used only for the camera noise.
    coverage, particle_reflectivity, matrix_reflectivity : keyword-only
        See :func:`object_reflectivity`.
    pixel_nm, theta_ref, na, wavelength_nm : float, keyword-only
    psf : {"gaussian", "airy"}, keyword-only
    drift_px : (n_frames, 2) array, optional, keyword-only
        Stage drift, see :func:`smooth_drift` (default none).
    illumination : (n_frames,) array, optional, keyword-only
        Multiplicative illumination, see :func:`illumination_drift` (default 1).
    electrons_per_unit, gain_counts_per_electron, read_noise_counts, offset_counts
        See :func:`add_camera_noise`.
    noise : bool, keyword-only
        If False, return the expected counts as float (no shot/read noise, no rounding).

    Returns
    -------
    ndarray (n_frames, row, col): ``uint16`` counts, or float expected counts if ``noise=False``.
    """
    theta = np.asarray(theta, dtype=float)
    if theta.ndim != 3:
        raise ValueError(f"theta must be (n_frames, row, col), got shape {theta.shape}")
    obj = object_reflectivity(theta, coverage=coverage, particle_reflectivity=particle_reflectivity,
                              matrix_reflectivity=matrix_reflectivity, theta_ref=theta_ref)
    img = blur(obj, pixel_nm=pixel_nm, na=na, wavelength_nm=wavelength_nm, kind=psf)
    if drift_px is not None:
        img = add_drift(img, drift_px)
    if illumination is not None:
        illum = np.asarray(illumination, dtype=float)
        if illum.shape != (theta.shape[0],):
            raise ValueError(f"illumination must be (n_frames,) = ({theta.shape[0]},), got {illum.shape}")
        img = img * illum[:, None, None]
    if not noise:
        return gain_counts_per_electron * electrons_per_unit * img + offset_counts
    return add_camera_noise(img, rng, electrons_per_unit=electrons_per_unit,
                            gain_counts_per_electron=gain_counts_per_electron,
                            read_noise_counts=read_noise_counts, offset_counts=offset_counts)


__all__ = [
    "DEFAULT_NA", "DEFAULT_THETA_REF", "DEFAULT_WAVELENGTH_NM", "RESPONSE_SATURATION",
    "RESPONSE_SLOPE", "THRESHOLD_DELTA_THETA", "UNREACTED_THRESHOLD", "Outline",
    "add_camera_noise", "add_drift", "blur", "carbon_matrix", "dI_from_theta",
    "illumination_drift", "map_disk_to_outline", "microscope", "object_reflectivity",
    "theta_from_dI", "psf_kernel", "psf_sigma_nm", "random_outline",
    "smooth_drift",
]
