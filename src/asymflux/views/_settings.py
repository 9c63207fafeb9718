"""The pages' settings, without Panel: the cohort browser's (:class:`CohortSettings`: the
datasets pooled and their clock offset) and the model explorer's (:class:`ExplorerSettings`),
each a :class:`param.Parameterized` whose parameters are the page's widgets (the views make
them with ``Widget.from_param``). The explorer's methods compute, here and uncached, what the
page shows for them. Usable from a notebook or a script without Panel or Bokeh::

    s = ExplorerSettings(eta=0.7, rate_mA_g=200.0)
    s.curves()          # V(t) and the arc's flux ratio of the θ maps' run
    s.surface_model = "kinetic"
    s.rate_table()      # Fig. 5b with the current setting kinetic
    s.load_table("ocv", open("ocv.csv", "rb").read(), "ocv.csv")  # the user's OCV
    s.reset_material()  # the built-in curves again
"""

from __future__ import annotations

import math

import param

from ..model.calibration import FILM_RESISTANCE_ETA_0_3_OHM_M2
from . import _compute as C

RATE_LABELS = {f"{r:g} ★": r for r in C.PAPER_RATES_MA_G}
"""The paper's rates (50/100/200/400 mA/g), marked ★: the explorer's quick choices beside
the rate slider (which takes any value in :data:`RATE_BOUNDS_MA_G`)."""

RATE_BOUNDS_MA_G = (10.0, 1000.0)
"""Rates the explorer accepts (typed), mA/g; its slider spans :data:`RATE_SLIDER_MA_G`."""
RATE_SLIDER_MA_G = (25.0, 800.0)
"""The rate slider's span, mA/g (the former positions' range)."""

DSCALE_OPTIONS = (0.25, 0.35, 0.5, 0.7, 1.0, 1.4, 2.0, 2.8, 4.0)
"""Diffusivity scale factors (log-spaced)."""

MODEL_SETTINGS = ("eta", "blocked_fraction", "angle_deg", "rate_mA_g", "diffusivity_scale",
                  "film_ohm_m2", "material")
"""The model's settings, in the order of the plots' keys; ``film_ohm_m2`` is the film
resistance of a kinetic surface, None for the prescribed flux ratio η (the paper's model);
``material`` the user's OCV / D(θ) tables (:class:`asymflux.views._compute.Material`), None
for the built-in set's curves."""

TABLE_KINDS = {"ocv": "OCV table", "diffusivity": "D(θ) table"}
"""The user's tables (:meth:`ExplorerSettings.load_table`'s ``kind``) and how the page names
them."""

SURFACE_MODELS = {"prescribed η (the paper's model)": "prescribed",
                  "kinetic: Butler-Volmer through a film": "kinetic"}
"""The surface switch: label -> :attr:`ExplorerSettings.surface_model`."""


def model_settings(values) -> dict:
    """``{name: value}`` of the first ``len(MODEL_SETTINGS)`` values (e.g. of a plot's key);
    numbers as floats, the material as it is."""
    return {n: (v if v is None or n == "material" else float(v))
            for n, v in zip(MODEL_SETTINGS, values, strict=False)}


class ExplorerSettings(param.Parameterized):
    """The model explorer's settings: the surface (blocked arc with a prescribed flux ratio
    η, or a kinetic film), the rate, the diffusivity scale, the θ maps' pixel size and the
    user's OCV / D(θ) tables (:meth:`load_table`; None: the built-in set's curves).

    The film resistance is also held as its log10 (:attr:`film_log10`, the slider's
    position); either may be set, the other follows (3 significant digits in Ω m²).
    """

    eta = param.Number(default=0.3, bounds=(0.05, 1.0), step=0.05,
                       label="η = j_RSL / j_NMC (blocked flux ratio)",
                       doc="Flux ratio η = j_RSL / j_NMC of the blocked arc (prescribed surface).")
    blocked_fraction = param.Number(default=0.25, bounds=(0.0, 0.75), step=0.05,
                                    label="blocked fraction of the perimeter",
                                    doc="Fraction of the perimeter that is blocked.")
    rate_mA_g = param.Number(default=100.0, bounds=RATE_BOUNDS_MA_G,
                             softbounds=RATE_SLIDER_MA_G, step=5.0,
                             label="rate (mA/g; any value; ★ = the paper's rates)",
                             doc="Charging rate, mA/g: any value in RATE_BOUNDS_MA_G (a loaded "
                                 "dataset's rate by default: use_dataset_rate).")
    angle_deg = param.Number(default=180.0, bounds=(0.0, 360.0), step=15.0,
                             label="blocked-arc centre (° CCW from +x; 180 = left)",
                             doc="Centre of the blocked arc, degrees CCW from +x (180 = left).")
    diffusivity_scale = param.Selector(default=1.0, objects=list(DSCALE_OPTIONS),
                                       label="diffusivity scale (× D(θ))",
                                       doc="Factor on the diffusivity D(θ).")
    surface_model = param.Selector(default="prescribed", objects=SURFACE_MODELS,
                                   label="surface", doc=(
        "'prescribed': the blocked arc passes η times the clean surface's flux (the paper's "
        "model); 'kinetic': Butler-Volmer kinetics through a film of resistance "
        "film_resistance_ohm_m2 on the arc (asymflux simulate --film)."))
    film_resistance_ohm_m2 = param.Number(
        default=FILM_RESISTANCE_ETA_0_3_OHM_M2,
        bounds=(10 ** C.FILM_LOG10_RANGE[0], 10 ** C.FILM_LOG10_RANGE[1]),
        doc="Area-specific resistance of the film on the arc (kinetic surface), Ω m²; "
            "0.20 gives an effective η ≈ 0.3 at 100 mA/g (docs/calibration.md).")
    film_log10 = param.Number(
        default=math.log10(FILM_RESISTANCE_ETA_0_3_OHM_M2), bounds=C.FILM_LOG10_RANGE,
        step=0.05, label="film resistance on the arc (log scale)",
        doc="log10 of the film resistance in Ω m² (the film slider's position).")
    pixel_nm = param.Number(default=40.0, bounds=(5.0, 200.0),
                            doc="Pixel size of the θ maps, nm (the default resolution).")
    ocv_table = param.ClassSelector(class_=C.UserTable, default=None, allow_None=True,
                                    precedence=-1, doc=(
        "The user's OCV table (load_table('ocv', ...): columns theta, voltage_V, as "
        "`asymflux simulate --ocv FILE.csv`), used by every run instead of the built-in OCV; "
        "None: the built-in curve."))
    diffusivity_table = param.ClassSelector(class_=C.UserTable, default=None, allow_None=True,
                                            precedence=-1, doc=(
        "The user's D(θ) table (load_table('diffusivity', ...): columns theta, "
        "diffusivity_m2_s, as `--diffusivity FILE.csv`), scaled by diffusivity_scale; None: "
        "the built-in D(θ)."))

    def __init__(self, **params):
        super().__init__(**params)
        if "film_log10" in params and "film_resistance_ohm_m2" not in params:
            self._film_from_log10()
        else:
            self._log10_from_film()

    @param.depends("film_log10", watch=True)
    def _film_from_log10(self):
        r = C.film_from_log10(self.film_log10)
        if r != self.film_resistance_ohm_m2:
            self.film_resistance_ohm_m2 = r

    @param.depends("film_resistance_ohm_m2", watch=True)
    def _log10_from_film(self):
        # unless the log10 already rounds to it (a slider position between two digits)
        if C.film_from_log10(self.film_log10) != self.film_resistance_ohm_m2:
            self.film_log10 = math.log10(self.film_resistance_ohm_m2)

    def use_dataset_rate(self, metadata) -> float | None:
        """Set the rate to a dataset's (``metadata["rate_mA_g"]``, rounded to 0.1 mA/g) and
        return it; None, and the rate left as it is, when the dataset gives none, or one
        that is not a number within :data:`RATE_BOUNDS_MA_G`."""
        try:
            rate = round(float((metadata or {}).get("rate_mA_g")), 1)
        except (TypeError, ValueError):
            return None
        lo, hi = RATE_BOUNDS_MA_G
        if not (math.isfinite(rate) and lo <= rate <= hi):
            return None
        if rate != self.rate_mA_g:
            self.rate_mA_g = rate
        return rate

    @property
    def kinetic(self) -> bool:
        """True when the surface is kinetic (Butler-Volmer through a film)."""
        return self.surface_model == "kinetic"

    @property
    def material(self):
        """The user's tables in use (:class:`asymflux.views._compute.Material`), None for the
        built-in set's OCV and D(θ)."""
        if self.ocv_table is None and self.diffusivity_table is None:
            return None
        return C.Material(self.ocv_table, self.diffusivity_table)

    def load_table(self, kind: str, data: bytes, name: str):
        """Use the user's table ``kind`` (``"ocv"`` or ``"diffusivity"``, :data:`TABLE_KINDS`)
        from a CSV file's bytes ``data`` (``name``: the file's name) in every run. Read and
        checked by the functions behind ``asymflux simulate --ocv / --diffusivity``
        (:func:`asymflux.views._compute.read_user_table`); a bad file raises their
        ``ValueError`` (naming the file, the column and what was expected) and changes
        nothing. Returns the :class:`~asymflux.views._compute.UserTable`."""
        if kind not in TABLE_KINDS:
            raise ValueError(f"kind must be one of {sorted(TABLE_KINDS)}, got {kind!r}")
        table = C.read_user_table(data, name, kind)
        setattr(self, f"{kind}_table", table)
        return table

    def reset_material(self) -> None:
        """The built-in set's OCV and D(θ) again (one change)."""
        self.param.update(ocv_table=None, diffusivity_table=None)

    def material_curves(self):
        """The OCV and D(θ) the runs use (:func:`asymflux.views._compute.material_curves`):
        ``theta, voltage_V, diffusivity_m2_s`` (D unscaled)."""
        return C.material_curves(self.material)

    def model_settings(self, **overrides) -> dict:
        """What every plot is computed from: ``eta, blocked_fraction, angle_deg, rate_mA_g,
        diffusivity_scale, film_ohm_m2`` (the film resistance with the kinetic surface, else
        None) and ``material`` (:attr:`material`), with ``overrides``."""
        values = {n: getattr(self, n) for n in MODEL_SETTINGS[:-2]}
        values["film_ohm_m2"] = self.film_resistance_ohm_m2 if self.kinetic else None
        values["material"] = self.material
        s = model_settings(values[n] for n in MODEL_SETTINGS)
        s.update(overrides)
        return s

    # ------------------------------------------------------------------ computed here
    # Plain calls of asymflux.views._compute, no cache (the page uses the cached ones).

    def theta_maps(self, **overrides):
        """θ maps at 5/10/15/20 min (:func:`asymflux.views._compute.theta_maps`)."""
        s = self.model_settings(**overrides)
        return C.theta_maps(s["eta"], s["blocked_fraction"], s["angle_deg"], s["rate_mA_g"],
                            s["diffusivity_scale"], pixel_nm=float(self.pixel_nm),
                            film_ohm_m2=s["film_ohm_m2"], mesh=s.get("mesh", C.MAPS_MESH),
                            material=s["material"])

    def curves(self, **overrides):
        """V(t) and the arc's flux ratio of the θ maps' run (``minutes, capacity_mAh_g,
        voltage_V, flux_ratio``)."""
        return self.theta_maps(**overrides).attrs["curves"]

    def li_extracted(self, **overrides) -> float:
        """Li extracted at the cut-off at the current rate (Fig. 5b's star)."""
        s = self.model_settings(**overrides)
        return C.li_extracted(s["eta"], s["blocked_fraction"], s["rate_mA_g"],
                              s["diffusivity_scale"], s["film_ohm_m2"], s["material"])

    def rate_table(self, **overrides):
        """Fig. 5b: the paper's surfaces and the current setting against rate."""
        s = self.model_settings(**overrides)
        return C.rate_table(s["eta"], s["blocked_fraction"], s["diffusivity_scale"],
                            film_ohm_m2=s["film_ohm_m2"], material=s["material"])


class CohortSettings(param.Parameterized):
    """The cohort browser's settings: the datasets pooled and their clock offset
    (Panel-free: usable from a notebook or a test; :class:`asymflux.views.CohortBrowser`
    makes its text fields from these parameters with ``Widget.from_param``)."""

    datasets = param.String(default="cohorts", doc=(
        "Datasets to pool: a demo group ('cohorts', 'cohort-fresh', ...), dataset names or "
        "paths separated by commas, a folder holding dataset folders, or an asymflux analyze "
        "output folder (or a folder of them)."))
    time_offset = param.String(default="", doc=(
        "The camera-cycler clock offset applied to every dataset, s (cycler time = frame time "
        "+ offset), or 'auto' (estimated per dataset, as `asymflux analyze --time-offset-s "
        "auto`); empty: each dataset's own (as before). A change re-analyses."))
