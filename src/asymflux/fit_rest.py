"""The diffusivity scale of one particle, or several jointly, from a rest after a charge.

During a rest the cell passes no current, so what changes in the movie is the
redistribution of lithium inside each particle: the Li-rich cores left by the charge
shrink at a speed set by the diffusivity (Lun et al. 2025, Fig. 2e, f). This module fits
the factor on the parameter set's D(θ) (``diffusivity_scale``, as
:func:`asymflux.model.scale_diffusivity` names it) to the particle's measured dI over the
frames of the rest.

Forward model: the one of :mod:`asymflux.fit` (the diffusion model on a mesh of the
particle's own outline, the optical response, the PSF), run through the measured
protocol, a charge at the movie's rate up to the rest's start (from the echem: the time
after which the current stays ~0, :func:`find_rest_start`) and then the rest. The particle's
surface (blocked or film arcs) is given, typically from a blocking fit of the charge
frames (:func:`asymflux.fit.fit_particle`); on a kinetic surface it matters during the rest
too (lithium moves between parts of the surface through the electrolyte at zero net
current). Only the frames from the rest's start on enter the residual, so the
diffusivity is set by the state the charge left and its relaxation.

One parameter, log10 of the scale, is fitted by :func:`scipy.optimize.least_squares`;
several particles share it (their residuals are stacked). The standard error is the
sandwich covariance of :func:`asymflux.fit.residual_covariance_se` (white pixel noise plus
a smooth component correlated in space and across frames fitted to each particle's
residuals, largest over correlation lengths), combined over particles, plus a relative
model-error term :data:`MODEL_ERROR_SCALE_REL` in quadrature (:data:`UNCERTAINTY_METHOD`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage, optimize

from . import model, optics
from ._validate import check_range
from .analysis import crop_box
from .fit import _Problem, find_rest_start, fit_analysis, residual_covariance_se

__all__ = ["MODEL_ERROR_SCALE_REL", "UNCERTAINTY_METHOD", "RestFitResult", "fit_rest_dataset",
           "find_rest_start", "fit_rest_diffusivity"]

LOG10_SCALE_BOUNDS = (-1.5, 1.5)
"""Bounds of the fitted log10 diffusivity scale (×0.03 to ×30)."""

MODEL_ERROR_SCALE_REL = 0.06
"""Model-error term of the diffusivity scale, relative, added in quadrature to the
statistical error. The forward model meshes the particle's curated outline, coarsened to
``max_cells`` (on a synthetic ellipse with D × 0.5 the fitted scale moved from 0.444 to 0.527
between 60 and 300 cells), and the data come from other meshes and the real outline; on the
five particles of the ``charge-rest`` demo (truth 1, true surfaces, 400 cells) the fitted
scales are 0.88-1.005, 6 % rms from the truth (``docs/analysis.md``): the term is that rms
(it was 5 %, under the scatter it is meant to cover; a joint fit of the five came out 5 %
low with every OCV tried)."""

UNCERTAINTY_METHOD = (
    "sandwich covariance of the least-squares estimate of log10(diffusivity scale), "
    "asymflux.fit.residual_covariance_se per particle (white pixel noise plus a smooth "
    "component correlated in space and across frames, fitted to the residuals; the largest "
    "over correlation lengths of 2-32 px), combined over particles as A (sum_p J_p^T S_p J_p) A "
    "with A = (sum_p J_p^T J_p)^-1; linearised to the scale and combined in quadrature with "
    "a 6 % model-error term")
"""How :func:`fit_rest_diffusivity` estimates its standard error (``uncertainty_method``)."""


@dataclass
class RestFitResult:
    """Outcome of :func:`fit_rest_diffusivity`.

    Attributes
    ----------
    diffusivity_scale : float
        Factor on the parameter set's D(θ) shared by the particles fitted.
    uncertainties : dict
        ``{"diffusivity_scale": standard error, "log10_diffusivity_scale": ...}``.
    rest_start_s : float
        Start of the rest (s from the start of the charge).
    at_bound : bool
        The fitted scale is at a bound of :data:`LOG10_SCALE_BOUNDS` (its standard error
        then means nothing: the rest frames do not determine the diffusivity).
    rms : float
        Root-mean-square residual in dI over the fitted pixels and frames.
    per_particle : list of dict
        Per particle: ``n_frames``, ``n_pixels``, ``rms``, ``se_log10`` (its own sandwich
        standard error of log10 scale) and its ``noise_model`` summary.
    predicted_dI, measured_dI : list of (n_frames, n_row, n_col) arrays
        Per particle, over the rest frames (cropped), NaN outside the fitted pixels.
    frames : list of (n_frames,) int arrays
        Indices of the rest frames in each input stack.
    """

    diffusivity_scale: float
    uncertainties: dict
    rest_start_s: float
    at_bound: bool
    rms: float
    per_particle: list
    predicted_dI: list = field(repr=False, default_factory=list)
    measured_dI: list = field(repr=False, default_factory=list)
    frames: list = field(repr=False, default_factory=list)

    def summary(self) -> dict:
        """Flat, JSON-ready summary (the ``fit.json`` form of :mod:`asymflux.fit`)."""
        return {
            "model": "rest relaxation",
            "diffusivity_scale": self.diffusivity_scale,
            "rest_start_s": self.rest_start_s,
            "at_bound": self.at_bound,
            "rms_dI": self.rms,
            "uncertainties": dict(self.uncertainties),
            "uncertainty_method": UNCERTAINTY_METHOD,
            "particles": [{k: v for k, v in p.items()} for p in self.per_particle],
        }


class _RestProblem(_Problem):
    """:class:`asymflux.fit._Problem` through a charge up to ``rest_start_min``, then a rest,
    on a given surface."""

    def __init__(self, mask, *, surface, rest_start_min, **kwargs):
        super().__init__(mask, **kwargs)
        self.surface = surface
        self.rest_start_min = float(rest_start_min)

    def theta(self, log_ds, arcs):
        p = model.scale_diffusivity(self.params, 10.0**log_ds)
        rest_min = float(self.minutes.max()) - self.rest_start_min
        steps = [model.Charge(self.rate, minutes=self.rest_start_min)]
        if rest_min > 0:
            steps.append(model.Rest(rest_min))
        res = model.simulate(p, self.mesh, self.surface, steps, output_minutes=self.minutes,
                             rtol=3e-4, atol=3e-6)
        self.n_sim += 1
        return res.theta[res.index_of_minutes(self.minutes)], res.theta0


def _per_particle(value, n, name, *, shared):
    """``value`` for each of ``n`` particles: a list of n, or one ``shared`` value for all."""
    if shared(value):
        return [value] * n
    value = list(value)
    if len(value) != n:
        raise ValueError(f"{name} must have one entry per particle ({n}), got {len(value)}")
    return value


def fit_rest_diffusivity(
    dI,
    mask,
    *,
    pixel_nm: float,
    time_s,
    rate_mA_g: float,
    rest_start_s: float,
    surface=None,
    params: dict | None = None,
    erode_px: int = 2,
    psf_sigma_nm: float | None = None,
    max_cells: int = 400,
    progress: bool = False,
) -> RestFitResult:
    """Fit the diffusivity scale to the rest frames of one particle's movie, or several's.

    Parameters
    ----------
    dI : (n_frames, n_row, n_col) array, or a list of them
        Differential intensity I/I0 − 1 of the particle (registered), relative to the
        frames before the charge; frame times ``time_s``. A list: one stack per particle,
        fitted jointly (one shared scale).
    mask : (n_row, n_col) bool array, or a list of them
        The particle's curated outline (one per stack).
    pixel_nm : float
        Pixel size in nm.
    time_s : (n_frames,) array, or a list of them
        Frame times in s from the start of the charge.
    rate_mA_g : float
        Specific current of the charge before the rest, mA/g.
    rest_start_s : float
        Start of the rest, s from the start of the charge (:func:`find_rest_start` from the
        echem). Frames at or after it are fitted (at least 3 per particle).
    surface : asymflux.model.Surface, or a list of them, optional
        Each particle's surface (e.g. ``FitResult.surface`` of a blocking fit of the
        charge). Default: an unblocked surface, kinetic when the parameter set has an OCV
        and an exchange current (as the demo data's aged fields), else prescribed.
    params : dict, optional
        Parameter set (default :func:`asymflux.model.nmc88_lun2025`); the scale multiplies
        its D(θ).
    erode_px : int
        Pixels next to the outline (mixed with the carbon matrix by the PSF) are left out.
    psf_sigma_nm : float, optional
        Gaussian PSF sigma; default :func:`asymflux.optics.psf_sigma_nm`.
    max_cells : int
        Each mask is coarsened by an integer factor until its mesh has at most this many
        cells (as :func:`asymflux.fit.fit_particle`).
    progress : bool
        Print the scale and rms of each evaluation.

    Returns
    -------
    RestFitResult
    """
    single = isinstance(dI, np.ndarray)
    stacks = [dI] if single else list(dI)
    n = len(stacks)
    if n == 0:
        raise ValueError("no particle to fit")
    masks = [mask] if single else _per_particle(mask, n, "mask", shared=lambda v: False)
    times = [time_s] if single else _per_particle(
        time_s, n, "time_s", shared=lambda v: isinstance(v, np.ndarray) and v.ndim == 1)
    pixel_nm = check_range("pixel_nm", pixel_nm, 0, None, low_inclusive=False)
    rate = check_range("rate_mA_g", rate_mA_g, 0, None, low_inclusive=False)
    t_rest = check_range("rest_start_s", rest_start_s, 0, None, low_inclusive=False)
    params = model.nmc88_lun2025() if params is None else params
    if surface is None:
        kinetic = (params.get("Open-circuit voltage [V]") is not None
                   and params.get("Exchange-current prefactor [A.m-2]") is not None)
        surface = model.Surface(kinetic=kinetic)
    surfaces = _per_particle(surface, n, "surface", shared=lambda v: not isinstance(v, list | tuple))
    sigma_px = (optics.psf_sigma_nm() if psf_sigma_nm is None else psf_sigma_nm) / pixel_nm

    problems, uses, targets, frame_lists, fit_pixels_list, measured_list = [], [], [], [], [], []
    for k, (st, m, t, s) in enumerate(zip(stacks, masks, times, surfaces, strict=True)):
        where = f"particle {k + 1}: " if n > 1 else ""
        st = np.asarray(st, dtype=float)
        m = np.asarray(m).astype(bool)
        t = np.asarray(t, dtype=float)
        if st.ndim != 3:
            raise ValueError(f"{where}dI must be a (time, row, col) stack, got shape {st.shape}")
        if m.shape != st.shape[1:]:
            raise ValueError(f"{where}mask shape {m.shape} does not match the stack's frames "
                             f"{st.shape[1:]}")
        if t.shape != (st.shape[0],):
            raise ValueError(f"{where}time_s must have one entry per frame ({st.shape[0]}), "
                             f"got {t.shape}")
        if m.sum() < 20:
            raise ValueError(f"{where}the particle mask covers only {int(m.sum())} pixels; "
                             "need at least 20")
        if not isinstance(s, model.Surface):
            raise ValueError(f"{where}surface must be an asymflux.model.Surface, got {s!r}")
        frames = np.nonzero(t >= t_rest - 1e-6)[0]
        if frames.size < 3:
            raise ValueError(f"{where}need at least 3 frames from the rest's start "
                             f"({t_rest:g} s) on, got {frames.size}")
        if np.any(t[frames] < 0):
            raise ValueError(f"{where}time_s must be counted from the start of the charge")
        box = crop_box(m, pad_px=erode_px + 3)
        m = m[box]
        measured = st[frames][(slice(None), *box)]
        problems.append(_RestProblem(m, surface=s, rest_start_min=t_rest / 60.0,
                                     pixel_nm=pixel_nm, minutes=t[frames] / 60.0,
                                     rate_mA_g=rate, params=params, psf_sigma_px=sigma_px,
                                     max_cells=max_cells))
        fp = ndimage.binary_erosion(m, iterations=erode_px) if erode_px else m
        use = np.broadcast_to(fp, measured.shape) & np.isfinite(measured)
        if not use.any():
            raise ValueError(f"{where}no finite dI inside the eroded mask")
        uses.append(use)
        targets.append(measured[use])
        frame_lists.append(frames)
        fit_pixels_list.append(fp)
        measured_list.append(measured)
    sizes = [tg.size for tg in targets]

    def residuals(x):
        out = []
        for prob, use, target in zip(problems, uses, targets, strict=True):
            pred = prob.predict(float(x[0]), [])[use]
            out.append(np.nan_to_num(pred - target, nan=1.0))
        r = np.concatenate(out)
        if progress:
            print(f"  D x {10 ** x[0]:.4g}: rms {np.sqrt(np.mean(r ** 2)):.4f}", flush=True)
        return r

    sol = optimize.least_squares(residuals, [0.0], bounds=LOG10_SCALE_BOUNDS, diff_step=1e-2,
                                 x_scale=[0.3], xtol=1e-3, ftol=1e-5, max_nfev=30)
    log_ds = float(sol.x[0])

    # standard error: per particle the sandwich of fit.residual_covariance_se, whose
    # one-parameter form is se_p^2 = M_p / H_p^2 (H_p = J_p^T J_p, M_p = J_p^T S_p J_p);
    # jointly var = sum_p M_p / (sum_p H_p)^2
    per, bread, meat = [], 0.0, 0.0
    offsets = np.cumsum([0, *sizes])
    for k in range(n):
        sl = slice(offsets[k], offsets[k + 1])
        jac_k, res_k = sol.jac[sl], sol.fun[sl]
        h = float(jac_k[:, 0] @ jac_k[:, 0])
        se_k, noise = residual_covariance_se(jac_k, res_k, uses[k])
        bread += h
        meat += float(se_k[0]) ** 2 * h**2
        per.append({"n_frames": int(frame_lists[k].size), "n_pixels": int(fit_pixels_list[k].sum()),
                    "rms": float(np.sqrt(np.mean(res_k**2))), "se_log10": float(se_k[0]),
                    "noise_model": {kk: v for kk, v in noise.items()
                                    if kk not in ("method", "smooth_sd_per_frame")}})
    se_log = float(np.sqrt(meat) / bread) if bread > 0 else float("nan")
    scale = float(10.0**log_ds)
    se_stat = np.log(10) * scale * se_log
    se = float(np.hypot(se_stat, MODEL_ERROR_SCALE_REL * scale))
    unc = {"diffusivity_scale": se,
           "log10_diffusivity_scale": float(np.hypot(se_log, MODEL_ERROR_SCALE_REL / np.log(10)))}

    preds, meas = [], []
    for prob, fp, measured in zip(problems, fit_pixels_list, measured_list, strict=True):
        p = prob.predict(log_ds, [])
        p[:, ~fp] = np.nan
        preds.append(p)
        meas.append(np.where(fp[None], measured, np.nan))
    return RestFitResult(
        diffusivity_scale=scale, uncertainties=unc, rest_start_s=float(t_rest),
        at_bound=bool(min(abs(log_ds - b) for b in LOG10_SCALE_BOUNDS) < 1e-3),
        rms=float(np.sqrt(np.mean(sol.fun**2))), per_particle=per, predicted_dI=preds,
        measured_dI=meas, frames=frame_lists)


def fit_rest_dataset(dataset, particle_ids, *, surfaces=None, blocking_fit: dict | None = None,
                     masks=None, rate_mA_g: float | None = None, rest_start_s: float | None = None,
                     register: bool = True, n_reference_frames: int = 1, normalize=None,
                     drift_every: int = 1, time_offset_s=None, intensity_offset: float = 0.0,
                     **kwargs) -> RestFitResult:
    """Fit the diffusivity scale from the rest of a dataset, one particle or several jointly.

    Each particle goes through the pipeline of ``asymflux analyze``
    (:func:`asymflux.analysis.analyze_dataset_particle`, as :func:`asymflux.fit.fit_dataset`)
    and its registered crop's dI is fitted by :func:`fit_rest_diffusivity`.

    Parameters
    ----------
    dataset : asymflux.io.Dataset
    particle_ids : int or sequence of int
    surfaces : asymflux.model.Surface, a sequence (one per particle), or "fit", optional
        Each particle's surface. ``"fit"``: fitted first from the frames of the charge
        (:func:`asymflux.fit.fit_analysis` on the frames up to the rest's start, i.e.
        ``max_capacity_mAh_g`` = the charge passed by then; the chosen model's surface),
        the summaries of those fits in ``per_particle[k]["surface_fit"]``. Default:
        unblocked (see :func:`fit_rest_diffusivity`).
    blocking_fit : dict, optional
        With ``surfaces="fit"``: options of :func:`asymflux.fit.fit_particle`
        (``surface="kinetic"``, ``max_arcs``, ...).
    masks : (n_row, n_col) int array, optional
        Labels (default: the dataset's curated masks).
    rate_mA_g : float, optional
        Rate of the charge before the rest (default: the dataset's metadata).
    rest_start_s : float, optional
        Start of the rest in s from the first frame. Default: from the echem
        (:func:`find_rest_start` of ``time_s`` and ``current_mA``, on the camera's clock
        after ``time_offset_s``).
    register, n_reference_frames, normalize, drift_every, time_offset_s, intensity_offset :
        As for :func:`asymflux.fit.fit_dataset`.
    **kwargs
        Passed to :func:`fit_rest_diffusivity`.
    """
    from . import analysis

    source = getattr(dataset, "path", None) or dataset.metadata.get("name", "dataset")
    ids = [int(particle_ids)] if np.ndim(particle_ids) == 0 else [int(p) for p in particle_ids]
    labels = dataset.masks if masks is None else np.asarray(masks)
    if labels is None:
        raise ValueError(f"{source}: no particle masks; curate or detect particles first, or pass masks")
    present = set(np.unique(labels[labels > 0]).tolist())
    missing = [p for p in ids if p not in present]
    if missing:
        raise ValueError(f"{source}: no particle {missing}; particles are {sorted(present)}")
    rate = rate_mA_g if rate_mA_g is not None else dataset.metadata.get("rate_mA_g")
    if rate is None:
        raise ValueError(f"{source}: metadata has no rate_mA_g; pass rate_mA_g")
    if time_offset_s is not None:  # the cycler's table on the camera's clock, once for all
        dataset = analysis.apply_time_offset(dataset, time_offset_s, masks=labels)
    if rest_start_s is None:
        echem = dataset.echem
        if echem is None or "current_mA" not in echem:
            raise ValueError(f"{source}: no echem current to find the rest's start; pass rest_start_s")
        t0 = float(np.asarray(dataset.time_s, dtype=float)[0])
        try:
            rest_start_s = find_rest_start(echem["time_s"].to_numpy(),
                                           echem["current_mA"].to_numpy()) - t0
        except ValueError as exc:
            raise ValueError(f"{source}: echem current_mA: {exc}") from None
    fit_surfaces = isinstance(surfaces, str)
    if fit_surfaces and surfaces != "fit":
        raise ValueError(f"surfaces must be a Surface, a list of them or 'fit', got {surfaces!r}")
    if blocking_fit is not None and not fit_surfaces:
        raise ValueError("blocking_fit is for surfaces='fit'")
    stacks, crop_masks, times, fitted, surface_fits = [], [], [], [], []
    for pid in ids:
        part = analysis.analyze_dataset_particle(
            dataset, pid, masks=labels, register=register, n_reference_frames=n_reference_frames,
            normalize=normalize, drift_every=drift_every, intensity_offset=intensity_offset)
        t = np.asarray(part.time_s, dtype=float)
        stacks.append(part.crop.dI)
        crop_masks.append(part.crop.mask)
        times.append(t - t[0])
        pixel_nm = part.pixel_nm
        if fit_surfaces:  # the blocking from the charge frames only
            options = {"max_capacity_mAh_g": float(rate) * float(rest_start_s) / 3600.0,
                       **(blocking_fit or {})}
            blocking = fit_analysis(part, rate_mA_g=float(rate), **options)
            fitted.append(blocking.surface)
            surface_fits.append(blocking.summary())
    result = fit_rest_diffusivity(stacks, crop_masks, pixel_nm=pixel_nm, time_s=times,
                                  rate_mA_g=float(rate), rest_start_s=float(rest_start_s),
                                  surface=fitted if fit_surfaces else surfaces, **kwargs)
    for entry, summary in zip(result.per_particle, surface_fits, strict=False):
        entry["surface_fit"] = summary
    return result
