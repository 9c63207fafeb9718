# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 One particle, from image stack to numbers (Fig. 1d/f, 2a-d, 5c, 5d)
#
# The demo movies are simulated (the paper's movies are not public): each particle is
# solved by the diffusion model on its own outline and imaged by a synthetic microscope
# (PSF, carbon matrix, drift, shot and read noise), so we know the truth. The movie goes
# through `asymflux.analysis` exactly as a measured one would.
#
# **Claims reproduced here**
#
# * Fig. 1d/f: a particle's optical intensity rises monotonically as the cell charges;
#   the aged electrode shows more polarisation (higher voltage at the same capacity).
# * Fig. 2a-d: a fresh particle delithiates as a *symmetric* shrinking core; an aged
#   particle's Li-rich core is displaced (here, like Fig. 2d, towards its left edge).
# * Fig. 5c: at higher rates the Li-rich region survives to a higher capacity
#   (paper: ~15 mAh/g at 50 mA/g, ~30 mAh/g at 400 mA/g).
# * Fig. 5d: the distance *d* between the particle's centre of mass and the centre of its
#   Li-rich region grows during early charge — and, in the paper, reaches larger values
#   at higher rates, with the last part of the core closer to the edge. The aged demo
#   particles are simulated with the *kinetic* surface (Butler-Volmer through a rock-salt
#   film, `docs/calibration.md`), and the rate trend comes out of the analysis; see the end.
#
# Runs in about 30 s (six demo datasets are built on first use, a few seconds each).

# %%
import numpy as np
import pandas as pd
from IPython.display import display
from scipy import stats

from asymflux import analysis, datasets, plots

hv = plots.use_backend("bokeh")

# %% [markdown]
# ## Load and analyse a fresh and an aged field of view
#
# `analyze_dataset` registers the stack, takes the dataset's particle masks, and returns
# one row per particle (classification, where and when the core vanishes) and one row per
# particle and frame (mean dI, unreacted fraction, O_COM, O_Li-rich, d).

# %%
fresh, aged = datasets.load("fresh"), datasets.load("aged")
fresh_p, fresh_ts = analysis.analyze_dataset(fresh)
aged_p, aged_ts = analysis.analyze_dataset(aged)
cols = ["particle_id", "classification", "asymmetry_score", "direction_deg", "r_eq_um",
        "vanish_capacity_mAh_g"]
print(fresh.metadata["description"])
display(fresh_p[cols].round(3))
print(aged.metadata["description"])
display(aged_p[cols].round(3))

# %% [markdown]
# The particles we follow: fresh particle 2 (unblocked in the ground truth) and aged
# particle 1 (30 % of its perimeter blocked on the left, η = 0.25, like Fig. 2d).

# %%
FRESH_ID, AGED_ID = 2, 1
display(fresh.ground_truth["particles"].query("particle_id == @FRESH_ID")[
    ["particle_id", "center_deg", "fraction", "eta", "class"]])
display(aged.ground_truth["particles"].query("particle_id == @AGED_ID")[
    ["particle_id", "center_deg", "fraction", "eta", "class"]])
first = [hv.Image(np.asarray(ds.stack[0], float), bounds=(0, 0, 256, 256)).opts(
    cmap="gray", title=f"{ds.metadata['name']}: first frame", width=300, height=300)
    for ds in (fresh, aged)]
first += [hv.Image(aged.masks.astype(float), bounds=(0, 0, 256, 256)).opts(
    cmap="Category10", title="aged: particle labels", width=300, height=300)]
hv.Layout(first)

# %% [markdown]
# ## Fig. 1d/f: cell voltage and the particle's normalised intensity
#
# The demo protocol is the first 36 min of charge at 100 mA/g (the paper's Fig. 1d/f also
# show the discharge and the constant-voltage hold, which the demo data do not contain).

# %%
def voltage_and_intensity(ds, ts, pid, label):
    e = ds.echem
    one = ts[ts["particle_id"] == pid]
    v = hv.Curve((e["time_s"] / 60, e["voltage_V"]), "time (min)", "voltage (V)",
                 label=label).opts(title="cell voltage", width=400, height=300)
    i = hv.Curve((one["time_s"] / 60, one["norm_intensity"]), "time (min)",
                 "normalised intensity", label=label).opts(
        title="particle intensity ΣI/ΣI0", width=400, height=300)
    return v, i


(vf, i_f), (va, i_a) = (voltage_and_intensity(fresh, fresh_ts, FRESH_ID, "fresh"),
                        voltage_and_intensity(aged, aged_ts, AGED_ID, "aged"))
(vf * va + i_f * i_a).opts(shared_axes=False)

# %%
for name, ts, pid in (("fresh", fresh_ts, FRESH_ID), ("aged", aged_ts, AGED_ID)):
    one = ts[ts["particle_id"] == pid]
    rho = stats.spearmanr(one["capacity_mAh_g"], one["norm_intensity"]).statistic
    print(f"{name}: Spearman ρ(capacity, intensity) = {rho:.3f}")
    assert rho > 0.95, "intensity should rise monotonically on charge"


def voltage_at(ds, capacity):
    e = ds.echem
    return float(np.interp(capacity, e["capacity_mAh_g"], e["voltage_V"]))


dv = {c: 1000 * (voltage_at(aged, c) - voltage_at(fresh, c)) for c in (10, 20, 30)}
print("aged − fresh voltage at 10/20/30 mAh/g (mV):", {k: round(v) for k, v in dv.items()})
assert all(v > 0 for v in dv.values()), "the aged electrode should be more polarised"

# %% [markdown]
# ## Fig. 2a-d: differential intensity dI = I/I0 − 1 of the two particles
#
# White: unchanged (Li-rich); red: intensity up, Li removed. One particle goes through
# `analysis.analyze_dataset_particle`, the pipeline of `analyze_dataset` for one particle
# (the one behind `asymflux fit`, the napari widget and the dashboards): the same drift,
# the same table, and a crop registered with that drift.

# %%
def particle_movie(ds, ts, pid):
    """Registered dI crop around one particle and its mask (the one-particle pipeline);
    its table must be the particle's rows of ``ts`` (``analyze_dataset``)."""
    one = analysis.analyze_dataset_particle(ds, pid)
    rows = ts[ts["particle_id"] == pid].sort_values("frame").reset_index(drop=True)
    # the same rows; the dataset's table also carries each frame's cycler values
    # (cycler_time_s, voltage_V, current_mA), the one-particle table does not
    assert set(rows.columns) - set(one.timeseries.columns) <= {"cycler_time_s", "voltage_V",
                                                               "current_mA"}
    pd.testing.assert_frame_equal(one.timeseries.reset_index(drop=True),
                                  rows[list(one.timeseries.columns)])
    return one.crop.dI, one.crop.mask


MINUTES = (5, 10, 15, 20)
panels = []
for name, ds, ts, pid in (("fresh", fresh, fresh_ts, FRESH_ID), ("aged", aged, aged_ts, AGED_ID)):
    dI, mask = particle_movie(ds, ts, pid)
    t_min = (ds.time_s - ds.time_s[0]) / 60
    for m in MINUTES:
        k = int(np.argmin(np.abs(t_min - m)))
        panels.append(plots.differential_frame(dI[k], ds.pixel_nm,
                                               title=f"{name} #{pid}, {t_min[k]:.0f} min"
                                               ).opts(width=220, height=200, colorbar=False))
hv.Layout(panels).cols(len(MINUTES))

# %%
f_row = fresh_p.set_index("particle_id").loc[FRESH_ID]
a_row = aged_p.set_index("particle_id").loc[AGED_ID]
print(f"fresh #{FRESH_ID}: {f_row.classification}, max d/R_eq = {f_row.asymmetry_score:.3f}")
print(f"aged  #{AGED_ID}: {a_row.classification}, max d/R_eq = {a_row.asymmetry_score:.3f}, "
      f"Li-rich core towards {a_row.direction_deg:.0f}° (180° = left)")
assert f_row.classification == "symmetric"
assert a_row.classification == "asymmetric"
assert abs((a_row.direction_deg - 180 + 180) % 360 - 180) < 30, "core should sit on the left"

# %% [markdown]
# ## Fig. 5c: line-cut kymographs of the aged particle at 50-400 mA/g
#
# The same aged field charged at four rates to 60 mAh/g (group `aged-rates`). A horizontal
# line through the particle's centre of mass, from its left to its right edge (0 nm = left
# edge). Black dots: where dI crosses 0.05 (the paper's dashed guides); the line's last
# unreacted point is the blue circle of Fig. 5c.

# %%
rate_names = datasets.list_groups()["aged-rates"]
kymos, rate_ts, last = [], [], []
for name in rate_names:
    ds = datasets.load(name)
    rate = ds.metadata["rate_mA_g"]
    p, ts = analysis.analyze_dataset(ds)
    dI, mask = particle_movie(ds, ts, AGED_ID)
    kymo, dist = analysis.line_kymograph(dI, *analysis.horizontal_line(mask),
                                         pixel_nm=ds.pixel_nm)
    bounds = analysis.kymograph_boundaries(kymo, dist)
    cap = ds.capacity_at_frames()
    frame, pos = analysis.last_unreacted_point(kymo, dist)
    last.append({"rate_mA_g": rate, "line_length_nm": dist[-1],
                 "line_vanish_capacity_mAh_g": cap[frame + 1] if frame >= 0 else np.nan,
                 "last_point_nm": pos,
                 "particle_vanish_capacity_mAh_g":
                     p.set_index("particle_id").loc[AGED_ID, "vanish_capacity_mAh_g"]})
    early = cap <= 45
    kymos.append(plots.kymograph(kymo[early], dist, cap[early], boundaries=bounds,
                                 title=f"{rate:g} mA/g").opts(width=260, height=260)
                 * hv.Points([(pos, cap[frame])]).opts(color="blue", size=10, marker="circle"))
    one = ts[ts["particle_id"] == AGED_ID].assign(rate=f"{rate:g} mA/g")
    rate_ts.append(one)
last = pd.DataFrame(last)
hv.Layout(kymos).cols(4)

# %%
display(last.round(1))
v = last["particle_vanish_capacity_mAh_g"].to_numpy()
print("capacity at which the Li-rich region vanishes (mAh/g) at 50/100/200/400 mA/g:", v)
print("paper (Fig. 5c): ~15 mAh/g at 50 mA/g and ~30 mAh/g at 400 mA/g")
assert np.all(np.diff(v) > 0), "the Li-rich region should survive to higher capacity at higher rate"
assert np.all(np.diff(last["line_vanish_capacity_mAh_g"]) >= 0)

# %% [markdown]
# Reproduced: the heterogeneity extends to higher states of charge at higher rates. The
# capacities (26-36 mAh/g) are higher than the paper's (15-30 mAh/g): the demo particle is
# 3 µm across, not 2.4 µm, and the diffusivity is calibrated on the paper's fresh-particle
# lifetime, not on this aged particle.
#
# ## Fig. 5d: d against capacity

# %%
rate_ts = pd.concat(rate_ts, ignore_index=True)
plots.offset_vs_capacity(rate_ts, by="rate").opts(width=600, height=400)

# %%
window = rate_ts[(rate_ts["unreacted_fraction"] > 0.05) & (rate_ts["unreacted_fraction"] < 0.95)]
for rate, g in window.groupby("rate", sort=False):
    rho = stats.spearmanr(g["capacity_mAh_g"], g["offset_nm"]).statistic
    print(f"{rate}: Spearman ρ(capacity, d) = {rho:.3f} over {len(g)} frames")
    assert rho > 0.9, "d should grow as the core shrinks"

at15 = rate_ts[np.isclose(rate_ts["capacity_mAh_g"], 15.0)].set_index("rate")["offset_nm"]
dmax = window.groupby("rate", sort=False)["offset_nm"].max()
summary_5d = pd.DataFrame({"d at 15 mAh/g (nm)": at15, "max d in window (nm)": dmax}).round(0)
display(summary_5d)
print("last unreacted point on the line (nm from its left end):",
      last["last_point_nm"].round(0).tolist())
# d at 15 mAh/g: it grows with rate up to 200 mA/g, then levels off (the asymmetry at the
# highest rates forms before 15 mAh/g: on a noise-free 2.4 µm disk it is 197 and 201 nm at
# 200 and 400 mA/g, with the Sturm 2019 or the Verbrugge 2017 OCV; measured on this movie,
# with its noise and drift, the two lie within a quarter pixel); max d keeps growing with
# rate (below)
step_nm = np.diff(at15.to_numpy())
assert np.all(step_nm[:-1] > 0), "d at 15 mAh/g should grow with rate up to 200 mA/g"
assert step_nm[-1] > -0.25 * ds.pixel_nm, "d at 15 mAh/g should not fall from 200 to 400 mA/g"
# (400 over 50 mA/g at 15 mAh/g: 1.20x on this movie, 1.42x on the noise-free disk)
assert at15.iloc[-1] > 1.15 * at15.iloc[0], "d at 15 mAh/g at 400 mA/g should exceed that at 50"
assert np.all(np.diff(dmax.to_numpy()) > 0), "max d should grow with rate"
assert dmax.iloc[-1] >= 1.5 * dmax.iloc[0], "max d at 400 mA/g should be >= 1.5x that at 50"
print("paper's Fig. 5d claim 'd is larger at higher rate': REPRODUCED")

# %% [markdown]
# **Reproduced, and why.** *d* grows during early charge at every rate, and at higher rate
# it reaches larger values (the paper's Fig. 5d). The demo's aged particles carry a
# resistive film (the rock-salt layer) on their blocked arcs: a resistance in series with
# the charge-transfer reaction (`model.Surface.kinetic`, calibrated so that the film passes
# ~0.3 of the clean surface's charge at 100 mA/g). The ohmic drop across the film grows in
# proportion to the current, while the OCV difference that sends current back onto the
# film builds up with the charge passed, whatever the rate: the harder the particle is
# driven, the smaller the share of a given charge the film carries, and the Li-rich core
# is pushed further towards it (`docs/calibration.md`, "Where the rate trend comes from"). The
# paper's own model, which prescribes the flux ratio η, cannot show this: with a fixed η
# the same flux pattern is laid down at every rate (`Surface(arcs)` with `BlockedArc`s;
# compare `benchmarks/bench_kinetic_trend.py`).
