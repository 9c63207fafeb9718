"""Infer the surface blocking of one particle from its movie, on its own outline.

The forward model is the one the demo data and the dashboards use: the diffusion model
(:mod:`asymflux.model`) solved on a mesh of the particle's curated mask
(:func:`asymflux.model.mask_mesh`, so the model sees the real shape), turned into
differential intensity by the optical response of :mod:`asymflux.optics` and blurred by
the microscope's point-spread function. Its parameters — blocked arcs (centre, fraction,
η) and a diffusivity scale — are fitted by least squares (:func:`scipy.optimize.least_squares`)
to the measured dI inside the particle over the early-charge window.

With ``surface="kinetic"`` (``asymflux fit --kinetic``) the arcs are film arcs of the kinetic
surface (:class:`asymflux.model.FilmArc`: Butler-Volmer through a film): each arc's third
parameter is its film resistance R_film (Ω m², fitted as log10 R) instead of η, and the fit
reports each arc's *effective* η, the charge-weighted flux ratio over the first 10 min of a
100 mA/g charge (``docs/calibration.md``), from the fitted model on the particle's own outline.

Three models are compared: no blocking (diffusivity scale only), one arc, two arcs. A
more complex model is chosen only when it lowers the Bayesian information criterion by
``bic_margin`` *and* the rms residual by ``min_rms_improvement`` (pixels are correlated
by the PSF and no model is exact, so BIC alone would reward arcs that fit systematic
misfit); a model with an arc whose fitted η is above ``unblocked_eta`` does not count as
blocked.

Standard errors (:data:`UNCERTAINTY_METHOD`, :func:`residual_covariance_se`): the residuals
of a fit are not independent pixel noise (the PSF correlates neighbours, and no model is
exact: the misfit is a smooth pattern that persists over frames), so ``s² (JᵀJ)⁻¹`` would
be far too small. The residuals are modelled as white noise plus a smooth component
correlated in space and across frames (:func:`residual_noise_model`), the covariance of
the least-squares estimate under that noise is the sandwich ``A JᵀSJ A``, taken at its
largest over plausible correlation lengths, and each arc's fraction gets a model-error
term (:data:`MODEL_ERROR_FRACTION_REL`). ``benchmarks/bench_fit_coverage.py`` checks the
coverage on demo particles with known truth.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import ndimage, optimize

from . import model, optics
from ._validate import check_range
from .analysis import crop_box
from .model import calibration
from .paper import UNREACTED_THRESHOLD

MODELS = ("none", "one arc", "two arcs")
SURFACES = ("prescribed", "kinetic")

EFFECTIVE_ETA_RATE_MA_G = 100.0
"""Rate of the charge over which a fitted film's effective η is measured (the calibration's,
``docs/calibration.md``)."""

LOG10_RESISTANCE_BOUNDS = (-3.0, 1.0)
"""Bounds of the fitted log10 R_film (Ω m²): 1e-3 Ω m² (effective η ≈ 0.97 for a quarter)
to 10 Ω m² (≈ 0.01)."""


@dataclass
class FitResult:
    """Outcome of :func:`fit_particle`.

    Attributes
    ----------
    model : str
        The chosen model: ``"none"``, ``"one arc"`` or ``"two arcs"``.
    arcs : list of asymflux.model.BlockedArc, or of asymflux.model.FilmArc
        The arcs of the chosen model (empty for ``"none"``): blocked arcs (prescribed η),
        or film arcs (``surface_kind == "kinetic"``).
    diffusivity_scale : float
        Factor on the parameter set's D(θ).
    uncertainties : dict
        One standard error per fitted quantity (``center_deg_1``, ``fraction_1``,
        ``eta_1``, …, ``diffusivity_scale``; kinetic: ``log10_resistance_ohm_m2_1`` and
        its linearised ``resistance_ohm_m2_1`` instead of ``eta_1``).
    rms : float
        Root-mean-square residual in dI.
    r_squared : float
        1 − SSR / SST over the fitted pixels and frames.
    comparison : pandas.DataFrame
        One row per model tried: ``model, n_params, rms, bic, delta_bic, chosen``.
    predicted_dI, measured_dI : (n_frames, n_row, n_col) arrays
        Over the fitted frames, NaN outside the fitted pixels.
    frames : (n_frames,) int
        Indices of the fitted frames in the input stack.
    surface_kind : str
        ``"prescribed"`` (blocked arcs with a flux ratio η) or ``"kinetic"`` (film arcs).
    eta_effective : list of float
        Kinetic fits: per arc, the effective η (charge-weighted flux ratio over the first
        10 min of a 100 mA/g charge, the fitted particle on its own outline; the
        definition of ``docs/calibration.md``). Empty for prescribed fits.
    eta_effective_fit_rate : list of float
        Kinetic fits: the same at the movie's rate (equal to ``eta_effective`` at 100 mA/g).
    """

    model: str
    arcs: list
    diffusivity_scale: float
    uncertainties: dict
    rms: float
    r_squared: float
    comparison: pd.DataFrame
    predicted_dI: np.ndarray = field(repr=False)
    measured_dI: np.ndarray = field(repr=False)
    frames: np.ndarray = field(repr=False)
    surface_kind: str = "prescribed"
    eta_effective: list = field(default_factory=list)
    eta_effective_fit_rate: list = field(default_factory=list)
    noise_model: dict = field(default_factory=dict, repr=False)

    @property
    def surface(self) -> model.Surface:
        if self.surface_kind == "kinetic":
            return model.Surface.kinetic(self.arcs)
        return model.Surface(self.arcs)

    def summary(self) -> dict:
        """Flat, JSON-ready summary (what ``asymflux fit`` writes)."""
        if self.surface_kind == "kinetic":
            arcs = [
                {"center_deg": a.center_deg, "fraction": a.fraction,
                 "resistance_ohm_m2": a.resistance_ohm_m2, "eta_effective": e, "eta_effective_fit_rate": ef}
                for a, e, ef in zip(self.arcs, self.eta_effective, self.eta_effective_fit_rate, strict=True)
            ]
        else:
            arcs = [{"center_deg": a.center_deg, "fraction": a.fraction, "eta": a.eta}
                    for a in self.arcs]
        out = {
            "model": self.model,
            "surface": self.surface_kind,
            "blocked": self.surface.label if self.arcs else "none",
            "diffusivity_scale": self.diffusivity_scale,
            "rms_dI": self.rms,
            "r_squared": self.r_squared,
            "arcs": arcs,
            "uncertainties": dict(self.uncertainties),
            "uncertainty_method": UNCERTAINTY_METHOD,
            "noise_model": {k: v for k, v in self.noise_model.items()
                            if k not in ("method", "smooth_sd_per_frame")},
            "comparison": self.comparison.to_dict(orient="records"),
        }
        if self.surface_kind == "kinetic":
            out["eta_effective_definition"] = (
                "charge per unit length through the arc over that through the clean surface, "
                f"first {calibration.CALIBRATION_MINUTES:g} min of a {EFFECTIVE_ETA_RATE_MA_G:g} "
                "mA/g charge (eta_effective) or of a charge at the movie's rate "
                "(eta_effective_fit_rate), fitted particle on its own outline (docs/calibration.md)")
        return out


class _Problem:
    """Forward model for one particle: parameters -> predicted dI on the fitted pixels."""

    def __init__(self, mask, *, pixel_nm, minutes, rate_mA_g, params, psf_sigma_px,
                 max_cells):
        self.params = params
        self.rate = rate_mA_g
        self.minutes = np.asarray(minutes, dtype=float)
        k = max(1, int(np.ceil(np.sqrt(mask.sum() / max_cells))))
        coarse = _coarsen(mask, k)
        self.mesh = model.mask_mesh(coarse, pixel_nm * k)
        # fine pixel -> coarse cell
        rows, cols = np.nonzero(mask)
        row_c, col_c = self.mesh.info["centroid_rc"]
        p = self.mesh.info["pixel_um"]
        x = ((cols + 0.5) / k - 0.5 - col_c) * p
        y = -((rows + 0.5) / k - 0.5 - row_c) * p
        idx = self.mesh.sample(np.arange(self.mesh.n_cells, dtype=float), x, y)
        ok = np.isfinite(idx)
        self.rows, self.cols = rows[ok], cols[ok]
        self.cell = idx[ok].astype(int)
        self.shape = mask.shape
        self.mask = mask
        self.sigma = psf_sigma_px
        self.n_sim = 0

    def theta(self, log_ds, arcs):
        # film arcs make a kinetic surface; without arcs the kinetic particle is uniform
        # around its perimeter, exactly the prescribed unblocked one (docs/calibration.md)
        p = model.scale_diffusivity(self.params, 10.0**log_ds)
        res = model.simulate(p, self.mesh, model.Surface(arcs),
                             [model.Charge(self.rate, minutes=float(self.minutes.max()))],
                             output_minutes=self.minutes, rtol=3e-4, atol=3e-6)
        self.n_sim += 1
        return res.theta[res.index_of_minutes(self.minutes)], res.theta0

    def effective_eta(self, log_ds, films, rate_mA_g, minutes=None):
        """Each film arc's charge-weighted flux ratio over the first ``minutes`` (default
        :data:`asymflux.model.calibration.CALIBRATION_MINUTES`) of a charge at ``rate_mA_g``
        on this particle's mesh, sampled every 3 s (``docs/calibration.md``)."""
        if not films:
            return []
        minutes = calibration.CALIBRATION_MINUTES if minutes is None else float(minutes)
        p = model.scale_diffusivity(self.params, 10.0**log_ds)
        out = np.arange(0.05, minutes + 1e-9, 0.05)
        res = model.simulate(p, self.mesh, model.Surface.kinetic(films),
                             [model.Charge(float(rate_mA_g), minutes=minutes)], output_minutes=out)
        self.n_sim += 1
        return [float(v) for v in res.charge_weighted_flux_ratio(minutes)]

    def predict(self, log_ds, arcs):
        """Predicted dI, (n_frames, n_row, n_col), NaN outside the mask."""
        theta, theta0 = self.theta(log_ds, arcs)
        dI_pix = optics.dI_from_theta(theta[:, self.cell], theta_ref=theta0)
        img = np.zeros((len(self.minutes), *self.shape))
        img[:, self.rows, self.cols] = dI_pix
        if self.sigma > 0:
            w = ndimage.gaussian_filter(self.mask.astype(float), self.sigma)
            img = ndimage.gaussian_filter(img, (0, self.sigma, self.sigma))
            with np.errstate(invalid="ignore", divide="ignore"):
                img = img / w[None]
        img[:, ~self.mask] = np.nan
        return img


def _coarsen(mask, k):
    if k == 1:
        return mask
    pad = [(0, (-s) % k) for s in mask.shape]
    m = np.pad(mask, pad).astype(float)
    coarse = m.reshape(m.shape[0] // k, k, m.shape[1] // k, k).mean(axis=(1, 3)) >= 0.5
    labels, n = ndimage.label(coarse)
    if n > 1:
        sizes = ndimage.sum(coarse, labels, range(1, n + 1))
        coarse = labels == (1 + int(np.argmax(sizes)))
    return ndimage.binary_fill_holes(coarse)


def _arcs_from(x, n_arcs, kinetic=False):
    """Parameter vector -> (log D scale, arcs, overlap penalty).

    Per arc: centre (rad), fraction, and η (prescribed) or log10 R_film in Ω m² (kinetic:
    :class:`~asymflux.model.FilmArc` s)."""
    arcs, penalty = [], 0.0
    specs = []
    for i in range(n_arcs):
        c, f, e = x[1 + 3 * i: 4 + 3 * i]
        third = (float(10.0 ** np.clip(e, *LOG10_RESISTANCE_BOUNDS)) if kinetic
                 else float(np.clip(e, 1e-3, 1.0)))
        specs.append([float(np.rad2deg(c) % 360.0), float(np.clip(f, 0.0, 0.95)), third])
    if n_arcs == 2:
        (c1, f1, _), (c2, f2, _) = specs
        sep = abs((c1 - c2 + 180.0) % 360.0 - 180.0) / 360.0
        over = (f1 + f2) / 2 - sep
        if over > -1e-3:
            scale = max(sep - 1e-3, 0.0) / max((f1 + f2) / 2, 1e-9)
            specs[0][1] *= scale
            specs[1][1] *= scale
            penalty = over + 1e-3
        if specs[0][1] + specs[1][1] >= 0.99:
            s = 0.98 / (specs[0][1] + specs[1][1])
            specs[0][1] *= s
            specs[1][1] *= s
    for c, f, e in specs:
        if f > 1e-4:
            arcs.append(model.FilmArc(center_deg=c, fraction=f, resistance_ohm_m2=e) if kinetic
                        else model.BlockedArc(center_deg=c, fraction=f, eta=e))
    return float(x[0]), arcs, penalty


def _noise_level(stack, mask):
    """Pixel noise of dI: the spread of each frame minus its 3x3 median, scaled for Gaussian
    noise, median over frames."""
    per_frame = []
    inner = ndimage.binary_erosion(mask, iterations=1)
    for frame in stack:
        resid = (frame - ndimage.median_filter(frame, size=3))[inner]
        resid = resid[np.isfinite(resid)]
        if resid.size:
            per_frame.append(1.4826 * np.median(np.abs(resid - np.median(resid))) / 0.83)
    return float(np.median(per_frame)) if per_frame else 0.0


def _initial_direction_deg(dI, mask, threshold):
    """Direction of the Li-rich core's offset (towards the side that delithiates last)."""
    rows, cols = np.nonzero(mask)
    r0, c0 = rows.mean(), cols.mean()
    vec = np.zeros(2)
    for frame in dI:
        v = frame[rows, cols]
        core = v < threshold
        frac = core.mean()
        if 0.1 < frac < 0.8:
            vec += frac * np.array([cols[core].mean() - c0, -(rows[core].mean() - r0)])
    if not np.any(vec):
        return 0.0
    return float(np.rad2deg(np.arctan2(vec[1], vec[0])) % 360.0)


UNCERTAINTY_METHOD = (
    "sandwich covariance of the least-squares estimate, cov = A J^T S J A with A = (J^T J)^-1, "
    "J the Jacobian at the optimum and S a noise covariance fitted to the residuals: white "
    "pixel noise plus a smooth component (amplitude per frame from the residuals' spatial "
    "autocovariance at 2 px; Gaussian correlation in space and across frames) that stands for "
    "correlated noise and model error; the spatial correlation length is poorly determined by "
    "one residual field, so each standard error is the largest over lengths of 2-32 px and the "
    "one estimated; plus a model-error term for each arc's fraction (5 % of the fraction, in "
    "quadrature: a prescribed eta fitted to film-covered arcs, docs/analysis.md)")
"""How :func:`fit_particle` estimates its standard errors (``fit.json``: ``uncertainty_method``)."""

CORRELATION_LENGTHS_PX = (2.0, 4.0, 8.0, 16.0, 32.0)
"""Spatial correlation lengths of the smooth residual component over which
:func:`residual_covariance_se` takes the largest standard error (with the estimated one)."""

MODEL_ERROR_FRACTION_REL = 0.05
"""Model-error term of an arc's fraction, relative: on 22 demo particles with one arc (21 of
them simulated with film arcs: the kinetic surface) the prescribed fit's fraction was below
the truth by 7.8 % rms, a constant η standing in for a film whose share of the flux changes
during the charge (the kinetic fit's fraction was not biased); 5 % in quadrature with the
statistical error brings the truth within two standard errors in 22 of 22
(``benchmarks/bench_fit_coverage.py``)."""


def _ring_means(values, counts, lag_r, radii):
    """Mean of ``values / counts`` over lags whose length falls in each [r - 0.5, r + 0.5)."""
    out = []
    for r in radii:
        sel = (lag_r >= r - 0.5) & (lag_r < r + 0.5)
        c = counts[..., sel].sum(-1)
        out.append(np.where(c > 0, values[..., sel].sum(-1) / np.maximum(c, 1), np.nan))
    return np.array(out)


def residual_noise_model(residual, use):
    """A noise model fitted to a fit's residuals: white noise plus a smooth component.

    Parameters
    ----------
    residual : (n,) array
        Residuals (model − data) of the pixels where ``use`` is True, in C order.
    use : (n_frames, n_row, n_col) bool array
        The fitted pixels of each frame.

    Returns
    -------
    dict
        ``white_sd`` (dI), ``smooth_sd`` (dI, rms over frames), ``smooth_sd_per_frame``
        ((n_frames,) dI), ``length_px`` (the smooth component's spatial correlation length:
        correlation exp(−d²/2ℓ²)) and ``length_frames`` (the same across frames).
        The smooth variance is the residuals' autocovariance at lags of 1.5-2.5 px (the
        pixel noise is uncorrelated there), the white variance the rest of the variance.
    """
    use = np.asarray(use, dtype=bool)
    n_t, h, w = use.shape
    cube = np.zeros(use.shape)
    cube[use] = residual
    shape = (2 * h, 2 * w)
    f_r = np.fft.rfft2(cube, s=shape)
    f_m = np.fft.rfft2(use.astype(float), s=shape)
    ac = np.fft.irfft2(f_r * np.conj(f_r), s=shape)  # (t, 2h, 2w): per-frame autocovariance sums
    cnt = np.round(np.fft.irfft2(f_m * np.conj(f_m), s=shape))
    lag_r = np.hypot(*np.meshgrid(np.fft.fftfreq(2 * h, 1 / (2 * h)),
                                  np.fft.fftfreq(2 * w, 1 / (2 * w)), indexing="ij"))
    ac, cnt, lag_r = ac.reshape(n_t, -1), cnt.reshape(n_t, -1), lag_r.ravel()
    var0 = float(ac[:, 0].sum() / max(cnt[:, 0].sum(), 1))
    ring = (lag_r >= 1.5) & (lag_r < 2.5)
    per_frame = np.clip(ac[:, ring].sum(1) / np.maximum(cnt[:, ring].sum(1), 1), 0, None)
    smooth_var = float(np.clip(ac[:, ring].sum() / max(cnt[:, ring].sum(), 1), 0, var0))
    per_frame = np.minimum(per_frame, ac[:, 0] / np.maximum(cnt[:, 0], 1))
    white_var = max(var0 - smooth_var, 0.0)
    # spatial correlation length: where the pooled autocovariance falls to exp(-1/2) of the
    # smooth variance (lags sampled by at least a quarter of the pixels)
    enough = cnt.sum(0) >= 0.25 * cnt[:, 0].sum()
    max_r = int(max(2, np.floor(lag_r[enough].max()))) if enough.any() else 2
    length_px = float(max_r)
    if smooth_var > 0:
        radii = np.arange(2, max_r + 1)
        prof = _ring_means(ac.sum(0), cnt.sum(0), lag_r, radii) / smooth_var
        below = np.nonzero(~(prof >= np.exp(-0.5)))[0]
        if below.size:
            length_px = float(radii[below[0]])
    # correlation across frames of the smooth component (white noise is independent between
    # frames): same-pixel covariance at frame lag k over the smooth amplitudes
    amp = np.sqrt(per_frame)
    length_frames = 0.0
    if smooth_var > 0 and n_t > 1:
        length_frames = float(n_t)
        for k in range(1, n_t):
            both = use[:-k] & use[k:]
            num = float((cube[:-k] * cube[k:]).sum())
            den = float((both.sum((1, 2)) * amp[:-k] * amp[k:]).sum())
            if den <= 0 or num / den < np.exp(-0.5):
                length_frames = float(k) - 1.0 + (0.5 if den > 0 else 0.0)
                break
    return {"white_sd": float(np.sqrt(white_var)), "smooth_sd": float(np.sqrt(smooth_var)),
            "smooth_sd_per_frame": amp, "length_px": length_px, "length_frames": length_frames}


def residual_covariance_se(jac, residual, use):
    """Standard errors of least-squares parameters under :func:`residual_noise_model`.

    Parameters
    ----------
    jac : (n, k) array
        Jacobian of the residuals at the optimum (rows: the pixels where ``use`` is True).
    residual : (n,) array
    use : (n_frames, n_row, n_col) bool array

    Returns
    -------
    se : (k,) array
        Standard errors: the largest over the smooth component's correlation lengths
        :data:`CORRELATION_LENGTHS_PX` and the estimated one (:data:`UNCERTAINTY_METHOD`,
        without the fraction's model-error term, which :func:`fit_particle` adds); NaN if
        the Jacobian is degenerate.
    noise : dict
        The noise model (:func:`residual_noise_model`) with ``method``.
    """
    jac = np.asarray(jac, dtype=float)
    noise = residual_noise_model(residual, use)
    n_t = use.shape[0]
    try:
        bread = np.linalg.pinv(jac.T @ jac)
    except np.linalg.LinAlgError:
        return np.full(jac.shape[1], np.nan), noise
    white = noise["white_sd"] ** 2 * (jac.T @ jac)
    se = np.sqrt(np.clip(np.diag(bread @ white @ bread), 0, None))
    if noise["smooth_sd"] > 0:
        ell_t = noise["length_frames"]
        k = np.arange(n_t)
        k_t = (np.exp(-0.5 * ((k[:, None] - k[None]) / ell_t) ** 2) if ell_t > 0
               else np.eye(n_t))
        amp = noise["smooth_sd_per_frame"][:, None, None]
        cols = np.zeros((jac.shape[1], *use.shape))
        cols[:, use] = jac.T
        cols *= amp[None]
        for ell in sorted({*CORRELATION_LENGTHS_PX, noise["length_px"]}):
            smooth = np.empty_like(jac)
            for b in range(jac.shape[1]):
                y = ndimage.gaussian_filter(cols[b], (0, ell, ell), mode="constant")
                y *= 2 * np.pi * ell**2
                smooth[:, b] = (np.tensordot(k_t, y, axes=(1, 0)) * amp)[use]
            cov = bread @ (white + jac.T @ smooth) @ bread
            se = np.maximum(se, np.sqrt(np.clip(np.diag(cov), 0, None)))
    noise = {**noise, "smooth_sd_per_frame": [float(v) for v in noise["smooth_sd_per_frame"]],
             "method": UNCERTAINTY_METHOD}
    return se, noise


def find_rest_start(time_s, current, *, tolerance: float = 0.01) -> float:
    """Start of the rest that ends a record: the first time after which |current| stays ~0.

    Parameters
    ----------
    time_s : (n,) array
        Sample times (s), increasing.
    current : (n,) array
        Current (any unit, e.g. mA); positive on charge.
    tolerance : float
        A sample is at rest when |current| ≤ ``tolerance`` × the record's largest |current|.

    Returns
    -------
    float
        Time (s) of the first sample of the final run of rest samples.

    Raises
    ------
    ValueError
        If the record does not end at rest, or has no current before its rest.
    """
    t = np.asarray(time_s, dtype=float)
    i = np.asarray(current, dtype=float)
    if t.ndim != 1 or t.shape != i.shape or t.size < 2:
        raise ValueError(f"time_s and current must be 1-D of the same length >= 2, got {t.shape} "
                         f"and {i.shape}")
    ok = np.isfinite(t) & np.isfinite(i)
    t, i = t[ok], i[ok]
    peak = float(np.max(np.abs(i))) if i.size else 0.0
    if peak == 0:
        raise ValueError("the current is zero throughout: no charge before a rest")
    rest = np.abs(i) <= tolerance * peak
    if not rest[-1]:
        raise ValueError("the record does not end at rest (its last current is "
                         f"{i[-1]:g}, more than {tolerance:g} of the largest {peak:g})")
    active = np.nonzero(~rest)[0]
    return float(t[active[-1] + 1])


def fit_particle(
    dI,
    mask,
    *,
    pixel_nm: float,
    time_s,
    rate_mA_g: float,
    params: dict | None = None,
    max_arcs: int = 2,
    max_capacity_mAh_g: float | None = None,
    threshold: float = UNREACTED_THRESHOLD,
    erode_px: int = 2,
    psf_sigma_nm: float | None = None,
    max_cells: int = 400,
    bic_margin: float = 10.0,
    min_rms_improvement: float = 0.05,
    unblocked_eta: float = 0.85,
    surface: str = "prescribed",
    progress: bool = False,
    rest_start_s: float | None = None,
) -> FitResult:
    """Fit blocked arcs and a diffusivity scale to one particle's differential movie.

    Parameters
    ----------
    dI : (n_frames, n_row, n_col) array
        Differential intensity I/I0 − 1 of the particle (registered), any float dtype;
        frame 0 is the start of the galvanostatic charge.
    mask : (n_row, n_col) bool array
        The particle's curated outline.
    pixel_nm : float
        Pixel size in nm.
    time_s : (n_frames,) array
        Frame times in s from the start of the charge.
    rate_mA_g : float
        Specific current of the charge, mA/g.
    params : dict, optional
        Parameter set (default :func:`asymflux.model.nmc88_lun2025`).
    max_arcs : int
        0, 1 or 2: the most complex model tried.
    max_capacity_mAh_g : float, optional
        Last capacity fitted. Default: 1.2 × the capacity at which the measured
        unreacted region vanishes (at least 10 mAh/g), the early-charge window of the
        paper's analysis. Never past ``rest_start_s``.
    threshold : float
        dI below which a pixel is unreacted (for the default window and initial guess).
    erode_px : int
        Pixels next to the outline, which the PSF mixes with the carbon matrix, are left
        out of the residual.
    psf_sigma_nm : float, optional
        Gaussian PSF sigma; default :func:`asymflux.optics.psf_sigma_nm`.
    max_cells : int
        The mask is coarsened by an integer factor until its mesh has at most this many
        cells (speed; the PSF blurs finer detail anyway).
    bic_margin : float
        A more complex model must lower the BIC by more than this to be chosen ...
    min_rms_improvement : float
        ... and lower the rms residual by at least this fraction (default 5 %).
    unblocked_eta : float
        A chosen one-arc fit with η above this is reported as no blocking (kinetic: the
        arcs' effective η at the movie's rate).
    surface : {"prescribed", "kinetic"}
        ``"prescribed"``: blocked arcs with a flux ratio η (the paper's model).
        ``"kinetic"``: film arcs of the kinetic surface (Butler-Volmer through a film of
        resistance R_film, fitted as log10 R in Ω m² within
        :data:`LOG10_RESISTANCE_BOUNDS`); the result also holds each arc's effective η
        (:attr:`FitResult.eta_effective`). Needs the parameter set's OCV and exchange
        current (the default set has them).
    progress : bool
        Print one line per model.
    rest_start_s : float, optional
        Start of a rest after the charge (s from the start of the charge,
        :func:`find_rest_start`): the frames from it on are left out, since the model
        charges at ``rate_mA_g`` throughout (:func:`fit_dataset` finds it in the dataset's
        cycler record). A rest is fitted by :func:`asymflux.fit_rest.fit_rest_diffusivity`.

    Returns
    -------
    FitResult
    """
    dI = np.asarray(dI, dtype=float)
    mask = np.asarray(mask).astype(bool)
    if dI.ndim != 3:
        raise ValueError(f"dI must be a (time, row, col) stack, got shape {dI.shape}")
    if mask.shape != dI.shape[1:]:
        raise ValueError(f"mask shape {mask.shape} does not match the stack's frames {dI.shape[1:]}")
    time_s = np.asarray(time_s, dtype=float)
    if time_s.shape != (dI.shape[0],):
        raise ValueError(f"time_s must have one entry per frame ({dI.shape[0]}), got {time_s.shape}")
    pixel_nm = check_range("pixel_nm", pixel_nm, 0, None, low_inclusive=False)
    rate = check_range("rate_mA_g", rate_mA_g, 0, None, low_inclusive=False)
    if max_arcs not in (0, 1, 2):
        raise ValueError(f"max_arcs must be 0, 1 or 2, got {max_arcs!r}")
    if surface not in SURFACES:
        raise ValueError(f"surface must be one of {SURFACES}, got {surface!r}")
    kinetic = surface == "kinetic"
    params = model.nmc88_lun2025() if params is None else params

    # crop to the particle
    if mask.sum() < 20:
        raise ValueError(f"the particle mask covers only {int(mask.sum())} pixels; need at least 20")
    box = crop_box(mask, pad_px=erode_px + 3)
    mask = mask[box]
    dI = dI[(slice(None), *box)]

    # early-charge window
    capacity = rate * time_s / 3600.0
    charging = time_s > 0
    if rest_start_s is not None:
        check_range("rest_start_s", rest_start_s, 0, None, low_inclusive=False)
        charging &= time_s < float(rest_start_s)
    if max_capacity_mAh_g is None:
        core = np.array([(f[mask] < threshold).mean() for f in dI])
        started = np.nonzero(charging)[0]
        gone = [i for i in started if core[i] == 0]
        vanish = capacity[gone[0]] if gone else capacity[started[-1] if started.size else -1]
        max_capacity_mAh_g = max(1.2 * vanish, 10.0)
    frames = np.nonzero(charging & (capacity <= max_capacity_mAh_g))[0]
    if frames.size < 3:
        raise ValueError(
            f"need at least 3 frames after the start of charge up to {max_capacity_mAh_g:g} mAh/g, "
            f"got {frames.size}")
    sigma_px = (optics.psf_sigma_nm() if psf_sigma_nm is None else psf_sigma_nm) / pixel_nm
    problem = _Problem(mask, pixel_nm=pixel_nm, minutes=time_s[frames] / 60.0, rate_mA_g=rate,
                       params=params, psf_sigma_px=sigma_px, max_cells=max_cells)
    fit_pixels = ndimage.binary_erosion(mask, iterations=erode_px) if erode_px else mask
    measured = dI[frames]
    use = np.broadcast_to(fit_pixels, measured.shape) & np.isfinite(measured)
    target = measured[use]
    n = target.size

    def residuals(x, n_arcs):
        log_ds, arcs, penalty = _arcs_from(x, n_arcs, kinetic)
        pred = problem.predict(log_ds, arcs)[use]
        r = np.nan_to_num(pred - target, nan=1.0)
        return np.append(r, 10.0 * penalty * np.sqrt(n)) if n_arcs == 2 else r

    def solve(x0, n_arcs, max_nfev):
        """least_squares with bounds for (log10 D scale, then centre, fraction, and eta or
        log10 R_film per arc)."""
        lo, hi, scale = [-1.5], [1.5], [0.3]
        for _ in range(n_arcs):
            lo += [-np.inf, 0.03, LOG10_RESISTANCE_BOUNDS[0] if kinetic else 0.02]
            hi += [np.inf, 0.75, LOG10_RESISTANCE_BOUNDS[1] if kinetic else 1.0]
            scale += [0.5, 0.1, 0.3 if kinetic else 0.2]
        sol = optimize.least_squares(residuals, x0, args=(n_arcs,), bounds=(lo, hi),
                                     diff_step=1e-2, x_scale=scale, max_nfev=max_nfev,
                                     xtol=1e-3, ftol=1e-4)
        if progress:
            print(f"  {MODELS[n_arcs]}: rms {np.sqrt(2 * sol.cost / n):.4f}", flush=True)
        return sol

    fits = {"none": solve([0.0], 0, 20)}
    if max_arcs >= 1:
        # start from the direction in which the measured Li-rich core is displaced
        direction = np.deg2rad(_initial_direction_deg(measured, mask, threshold))
        # kinetic: 0.1 Ω m² passes ~0.4 of the clean surface's charge (docs/calibration.md)
        fits["one arc"] = solve([fits["none"].x[0], direction, 0.3, -1.0 if kinetic else 0.4], 1, 40)
    noise = _noise_level(measured, fit_pixels)
    one_arc_fits_to_noise = (max_arcs >= 1
                             and np.sqrt(2 * fits["one arc"].cost / n) <= 1.2 * noise)
    if progress and max_arcs >= 2 and one_arc_fits_to_noise:
        print(f"  one arc fits to the noise level ({noise:.4f}); two arcs not tried", flush=True)
    if max_arcs >= 2 and not one_arc_fits_to_noise:
        # second arc starts opposite the first
        x1 = fits["one arc"].x
        fits["two arcs"] = solve([*x1, x1[1] + np.pi, 0.1, -1.5 if kinetic else 0.6], 2, 30)

    rows_ = []
    for name, s in fits.items():
        ssr = 2 * s.cost
        k = s.x.size
        rows_.append({"model": name, "n_params": k, "rms": np.sqrt(ssr / n),
                      "bic": n * np.log(ssr / n) + k * np.log(n)})
    comparison = pd.DataFrame(rows_)
    comparison["delta_bic"] = comparison["bic"] - comparison["bic"].min()
    # a model whose arcs are not all clearly blocked is not a distinct model
    fit_rate_eta = {}  # kinetic: model -> effective η of its arcs at the movie's rate

    def arc_etas(name):
        log_ds_, arcs_, _ = _arcs_from(fits[name].x, MODELS.index(name), kinetic)
        if not kinetic:
            return arcs_, [a.eta for a in arcs_]
        if name not in fit_rate_eta:
            fit_rate_eta[name] = problem.effective_eta(log_ds_, arcs_, rate)
        return arcs_, fit_rate_eta[name]

    def clearly_blocked(name):
        arcs_, etas = arc_etas(name)
        return len(arcs_) == MODELS.index(name) and all(e <= unblocked_eta for e in etas)

    comparison["clearly_blocked"] = [name == "none" or clearly_blocked(name)
                                     for name in comparison["model"]]
    valid = comparison[comparison["clearly_blocked"]]
    best_bic = valid["bic"].min()
    # the simplest valid model within the margin of the best valid one ...
    chosen = next(name for name in MODELS if name in set(valid["model"])
                  and valid.loc[valid["model"] == name, "bic"].iloc[0] <= best_bic + bic_margin)
    # ... and a more complex one only if it lowers the rms by a clear relative amount
    # (pixels are correlated by the PSF and the model is never exact, so BIC alone
    # rewards arcs that fit systematic misfit)
    rms_of = dict(zip(comparison["model"], comparison["rms"], strict=True))
    while chosen != "none":
        simpler = MODELS[MODELS.index(chosen) - 1]
        if simpler in set(valid["model"]) and rms_of[chosen] > (1 - min_rms_improvement) * rms_of[simpler]:
            chosen = simpler
        else:
            break
    sol = fits[chosen]
    n_arcs = MODELS.index(chosen)
    log_ds, arcs, _ = _arcs_from(sol.x, n_arcs, kinetic)
    comparison["chosen"] = comparison["model"] == chosen
    eta_eff, eta_eff_rate = [], []
    if kinetic and arcs:
        eta_eff_rate = arc_etas(chosen)[1]
        eta_eff = (list(eta_eff_rate) if rate == EFFECTIVE_ETA_RATE_MA_G
                   else problem.effective_eta(log_ds, arcs, EFFECTIVE_ETA_RATE_MA_G))

    # uncertainties: the least-squares estimate's covariance under a noise model fitted to
    # the residuals (white pixel noise + a smooth component correlated in space and time,
    # which stands for model error), :func:`residual_covariance_se`
    names = ["log10_diffusivity_scale"]
    for i in range(1, n_arcs + 1):
        names += [f"center_deg_{i}", f"fraction_{i}",
                  f"log10_resistance_ohm_m2_{i}" if kinetic else f"eta_{i}"]
    se, noise_model = residual_covariance_se(sol.jac[:n], sol.fun[:n], use)
    unc = {}
    for name, value in zip(names, se, strict=True):
        if name.startswith("center"):
            unc[name] = float(np.rad2deg(value))
        elif name == "log10_diffusivity_scale":
            unc["diffusivity_scale"] = float(np.log(10) * 10**log_ds * value)
        elif name.startswith("log10_resistance"):
            k = int(name.rsplit("_", 1)[1])
            unc[name] = float(value)
            r_k = arcs[k - 1].resistance_ohm_m2 if k <= len(arcs) else np.nan
            unc[f"resistance_ohm_m2_{k}"] = float(np.log(10) * r_k * value)
        elif name.startswith("fraction"):
            k = int(name.rsplit("_", 1)[1])
            f_k = arcs[k - 1].fraction if k <= len(arcs) else 0.0
            unc[name] = float(np.hypot(value, MODEL_ERROR_FRACTION_REL * f_k))
        else:
            unc[name] = float(value)

    pred = problem.predict(log_ds, arcs)
    pred[:, ~fit_pixels] = np.nan
    meas = np.where(fit_pixels[None], measured, np.nan)
    ssr = float(np.nansum((pred - meas) ** 2))
    sst = float(np.nansum((meas - np.nanmean(meas)) ** 2))
    return FitResult(
        model=chosen, arcs=arcs, diffusivity_scale=float(10**log_ds), uncertainties=unc,
        rms=float(np.sqrt(ssr / n)), r_squared=1 - ssr / sst if sst > 0 else float("nan"),
        comparison=comparison, predicted_dI=pred, measured_dI=meas, frames=frames,
        surface_kind=surface, eta_effective=eta_eff, eta_effective_fit_rate=eta_eff_rate,
        noise_model=noise_model,
    )


def fit_analysis(particle, *, rate_mA_g: float, **kwargs) -> FitResult:
    """Fit one particle analysed by :func:`asymflux.analysis.analyze_particle` (or
    :func:`~asymflux.analysis.analyze_dataset_particle`): its registered crop's dI and
    mask, its pixel size and frame times (from the first frame), at ``rate_mA_g``.

    ``asymflux fit`` (:func:`fit_dataset`), the napari widget's *Fit blocking* and the
    dashboards all fit through this function, so one particle gets one answer.

    Parameters
    ----------
    particle : asymflux.analysis.ParticleAnalysis
        Analysed with the dI relative to the reference (no ``rolling_frames``: the
        model predicts dI relative to the start of charge) and with its crop.
    rate_mA_g : float
        Specific current of the charge, mA/g.
    **kwargs
        Passed to :func:`fit_particle` (``max_arcs``, ``progress``, ...).
    """
    if particle.crop is None:
        raise ValueError("the particle was analysed without its crop (crop=False); nothing to fit")
    if particle.options.get("rolling_frames") is not None:
        raise ValueError("the blocking model predicts dI relative to the reference frames: "
                         "analyse the particle without rolling_frames to fit it")
    time_s = np.asarray(particle.time_s, dtype=float)
    return fit_particle(particle.crop.dI, particle.crop.mask, pixel_nm=particle.pixel_nm,
                        time_s=time_s - time_s[0], rate_mA_g=float(rate_mA_g), **kwargs)


def fit_dataset(dataset, particle_id: int, *, masks=None, rate_mA_g: float | None = None,
                register: bool = True, n_reference_frames: int = 1, normalize=None,
                drift_every: int = 1, time_offset_s=None, intensity_offset: float = 0.0,
                **kwargs) -> FitResult:
    """Fit one particle of an :class:`asymflux.io.Dataset` (see :func:`fit_particle`).

    The particle goes through the pipeline of ``asymflux analyze``
    (:func:`asymflux.analysis.analyze_dataset_particle`: drift estimated around all
    particles and removed, illumination normalised with ``normalize``, dI relative to the
    first ``n_reference_frames`` frames) and its registered crop is fitted
    (:func:`fit_analysis`). The particle's outline comes from ``masks`` (labels) or the
    dataset's curated masks. The charge rate defaults to the dataset's ``rate_mA_g``
    metadata. ``time_offset_s`` (s, ``"auto"``, a
    :class:`~asymflux.analysis.TimeOffset` or None: the dataset's own) puts the cycler's
    clock on the camera's (:func:`asymflux.analysis.apply_time_offset`: the capacity of
    each frame). A rest at the end of the cycler record (:func:`charge_rest_start_s`) ends
    the fitted frames (``rest_start_s`` of :func:`fit_particle`; pass ``rest_start_s=None``
    to fit every frame as charge). ``intensity_offset`` is added to every pixel first, as for
    :func:`~asymflux.analysis.analyze_dataset` (a background-subtracted movie). Other
    keyword arguments go to :func:`fit_particle`.
    """
    from . import analysis
    from .analysis import check_labels

    source = getattr(dataset, "path", None) or dataset.metadata.get("name", "dataset")
    if masks is not None:
        labels = check_labels(masks, dataset.stack.shape[1:], name=f"{source}: masks")
    else:
        labels = dataset.masks
    if labels is None:
        raise ValueError(f"{source}: no particle masks; curate or detect particles first, or pass masks")
    if rate_mA_g is not None:
        from ._validate import check_range

        check_range("rate_mA_g", rate_mA_g, 0, None, low_inclusive=False)
    ids = np.unique(labels[labels > 0])
    if int(particle_id) not in set(ids.tolist()):
        raise ValueError(f"{source}: no particle {particle_id}; particles are {ids.tolist()}")
    rate = rate_mA_g if rate_mA_g is not None else dataset.metadata.get("rate_mA_g")
    if rate is None:
        raise ValueError(f"{source}: metadata has no rate_mA_g; pass rate_mA_g")
    if time_offset_s is not None:  # the cycler's table on the camera's clock
        dataset = analysis.apply_time_offset(dataset, time_offset_s, masks=labels)
    particle = analysis.analyze_dataset_particle(
        dataset, int(particle_id), masks=labels, register=register,
        n_reference_frames=n_reference_frames, normalize=normalize, drift_every=drift_every,
        intensity_offset=intensity_offset)
    if "rest_start_s" not in kwargs:
        kwargs["rest_start_s"] = charge_rest_start_s(dataset)
    return fit_analysis(particle, rate_mA_g=float(rate), **kwargs)


def charge_rest_start_s(dataset) -> float | None:
    """Start of the rest that ends a dataset's cycler record, in s from its first frame
    (:func:`find_rest_start` on ``echem`` ``time_s`` / ``current_mA``, on the camera's
    clock), or None: no cycler record, no current, or a record that does not end at rest
    (or whose rest starts before the first frame)."""
    echem = getattr(dataset, "echem", None)
    if echem is None or "current_mA" not in echem or "time_s" not in echem:
        return None
    try:
        rest = find_rest_start(echem["time_s"].to_numpy(dtype=float),
                               echem["current_mA"].to_numpy(dtype=float))
    except ValueError:
        return None
    start = rest - float(np.asarray(dataset.time_s, dtype=float)[0])
    return start if start > 0 else None
