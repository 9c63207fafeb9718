# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 06 Inferring the surface blocking of a particle from its movie
#
# The paper infers partial surface blocking *qualitatively*: the asymmetric shrinking core
# of aged particles (Fig. 2d) looks like the model with a blocked arc (Fig. 4), and STEM
# finds rock-salt layers of uneven thickness on aged surfaces (Fig. 3).
# `asymflux.fit` makes that quantitative: it fits the diffusion model, solved on the
# particle's own outline and seen through the microscope's optical response and PSF, to
# the particle's differential-intensity movie, and returns the blocked arc(s) — centre,
# fraction of the perimeter, η = j_RSL / j_NMC — and a diffusivity scale. It compares no
# blocking, one arc and two arcs, and keeps the simpler model unless the more complex one
# is clearly better.
#
# **Claim checked here:** the asymmetric core of aged particle 1 (Fig. 2d analogue) is
# explained by a blocked arc on its left, and the fit recovers the arc the demo data were
# made with (ground truth: centre 180°, 30 % of the perimeter, η = 0.25); an unblocked-looking
# particle of the same field gets no arc. Runs in about 45-60 s (one fit ≈ 20-30 s).

# %%
import numpy as np
import pandas as pd

from asymflux import datasets, fit, model, plots

hv = plots.use_backend("bokeh")

# %%
ds = datasets.load("aged")
truth = ds.ground_truth["particles"]
truth[["particle_id", "center_deg", "fraction", "eta", "class", "equivalent_diameter_um"]]

# %% [markdown]
# ## Fit particle 1

# %%
res = fit.fit_dataset(ds, 1)
summary = res.summary()
print(f"chosen model: {res.model}; arcs: {res.surface.label}; "
      f"diffusivity scale {res.diffusivity_scale:.2f}; rms dI {res.rms:.4f}; R² {res.r_squared:.3f}")
res.comparison

# %%
def angle_diff(a, b):
    return abs((a - b + 180.0) % 360.0 - 180.0)


true1 = truth[truth["particle_id"] == 1].iloc[0]
arc = res.arcs[0] if res.arcs else None
unc = res.uncertainties
table = pd.DataFrame({
    "truth": [true1.center_deg, true1.fraction, true1.eta],
    "fit": [arc.center_deg, arc.fraction, arc.eta] if arc else [np.nan] * 3,
    "± (lower bound)": [unc.get("center_deg_1"), unc.get("fraction_1"), unc.get("eta_1")],
}, index=["centre (deg)", "fraction of perimeter", "η"])
table.round(3)

# %%
assert res.model != "none", "particle 1 should be fitted with a blocked arc"
assert len(res.arcs) == 1, "one arc, as in the ground truth"
assert angle_diff(arc.center_deg, true1.center_deg) < 30, "the arc should be on the left"
assert abs(arc.fraction - true1.fraction) < 0.1
assert arc.eta < 0.5 and abs(arc.eta - true1.eta) < 0.15
print(f"recovered: centre off by {angle_diff(arc.center_deg, true1.center_deg):.0f}°, "
      f"fraction off by {abs(arc.fraction - true1.fraction):.3f}, η off by {abs(arc.eta - true1.eta):.3f}")

# %% [markdown]
# The quoted uncertainties come from the Jacobian and treat pixels as independent; the PSF
# correlates neighbouring pixels, so they are lower bounds (the actual error of the centre
# is about ten degrees, much more than its quoted ±).
#
# ## Measured and fitted movies side by side

# %%
frames = np.linspace(0, len(res.frames) - 1, 4).round().astype(int)
minutes = (ds.time_s[res.frames] - ds.time_s[0]) / 60


def show(img, title):
    return plots.differential_frame(img, ds.pixel_nm, title=title).opts(
        width=200, height=190, colorbar=False)


panels = [show(res.measured_dI[k], f"measured {minutes[k]:.0f} min") for k in frames]
panels += [show(res.predicted_dI[k], f"fitted {minutes[k]:.0f} min") for k in frames]
hv.Layout(panels).cols(4)

# %%
r_um = true1.equivalent_diameter_um / 2
true_surface = plots.surface_outline(
    model.Surface([model.BlockedArc(true1.center_deg, true1.fraction, true1.eta)]), r_um)
fit_surface = plots.surface_outline(res.surface, r_um * 1.15)
(true_surface.relabel("truth") * fit_surface.relabel("fit")).opts(
    title="blocked arc: truth (inner), fit (outer)", width=350, height=350, data_aspect=1)

# %% [markdown]
# ## A control: a particle whose core stays centred
#
# Particle 3 carries only a weak arc (η = 0.95) in the ground truth, which the analysis
# classifies as symmetric. The fit should not invent a blocked arc.

# %%
res3 = fit.fit_dataset(ds, 3)
print(f"particle 3: chosen model {res3.model!r}, arcs {res3.surface.label}, rms dI {res3.rms:.4f}")
res3.comparison

# %%
assert res3.model == "none" or all(a.eta > 0.85 for a in res3.arcs), \
    "no blocked arc should be reported for particle 3"
print("Reproduced: the fit finds the left-hand blocked arc of particle 1 and no blocking "
      "for particle 3.")
