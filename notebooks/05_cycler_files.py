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
# # 05 Real cycler files: per-cycle capacity, coulombic efficiency, and the capacity axis of a movie
#
# The paper's cycling data (Fig. 1e: capacity retention over 200 ageing cycles; Fig. 5a:
# rate capability of fresh and aged electrodes) are not public. What we have are real
# BioLogic EC-Lab `.mpr` files from public repositories, in `../shared/data/echem/` next to
# the repository (see its README): **none of them is an operando NMC cell**. So this
# notebook shows, honestly, what they do contain and how the library turns them into
# the numbers the paper plots:
#
# * per-cycle charge/discharge capacity and coulombic efficiency, and capacity retention
#   (the quantity of Fig. 1e) with `asymflux.io.cycle_summary`;
# * a capacity-per-rate table (the quantity of Fig. 5a) — the GCPL file has only one rate;
# * how a cycler table becomes the capacity axis of a movie, `Dataset.capacity_at_frames()`,
#   which `asymflux.analysis` uses for every d(capacity) curve and kymograph.
#
# The paper's numbers for comparison: the NMC half cell cycled between 3 and 4.3 V at
# 50 mA/g delivers 204 mAh/g in the first cycle and 155 mAh/g after 200 cycles (75.9 %).
#
# **Mass assumption.** Capacities per gram need the active mass, which the files do not
# record. We assume **5.0 mg** for the GCPL cell, which puts its first charge near
# 200 mAh/g; the mAh/g values are therefore illustrative. Coulombic efficiency and
# capacity retention are ratios and do not depend on it (checked below).
# Runs in about 10 s.

# %%
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from asymflux import io, plots

hv = plots.use_backend("bokeh")

ASSUMED_MASS_MG = 5.0


def repo_root(start=None):
    start = Path.cwd() if start is None else start
    for p in [start, *start.parents]:
        if (p / "pyproject.toml").is_file():
            return p
    raise FileNotFoundError("run this notebook from inside the asymflux repository")


ECHEM = repo_root().parent / "shared" / "data" / "echem"
assert ECHEM.is_dir(), f"the real cycler files are expected in {ECHEM} (see tests/io)"
GCPL = ECHEM / "jdb11-1_c3_gcpl_5cycles_2V-3p8V_C-24_data_C09.mpr"

# %% [markdown]
# ## A galvanostatic cycling file (GCPL, 2.0-3.8 V)

# %%
gcpl = io.read_mpr(GCPL)
print(gcpl.attrs)
print(f"{len(gcpl)} records over {gcpl['time_s'].iloc[-1] / 3600:.1f} h; "
      f"|I| = {gcpl['current_mA'].abs().max():.4f} mA")
gcpl.head()

# %%
every = slice(None, None, 20)
(hv.Curve((gcpl["time_s"][every] / 3600, gcpl["voltage_V"][every]), "time (h)", "voltage (V)")
 .opts(title=GCPL.name, width=700, height=280))

# %% [markdown]
# ## Per-cycle capacity and coulombic efficiency (the quantities of Fig. 1e)
#
# `cycle_summary` splits the record into half-cycles by the sign of the current (charge =
# positive, cathode convention: a cycle is a charge followed by a discharge); a half-cycle
# must last at least a minute and pass a real charge, and what does not (a leading rest,
# pulses) gets its own row, told apart by the `kind` column (the rule is in
# `docs/formats.md`). The file starts with an hour at open circuit (a `rest` row) and a
# discharge, which becomes cycle 0 (a leading partial cycle); after it the file (named
# "5cycles") holds six complete charge/discharge cycles.

# %%
summary = io.cycle_summary(gcpl, active_mass_mg=ASSUMED_MASS_MG)
assert summary["kind"].tolist() == ["rest", "discharge"] + ["cycle"] * 6
full = summary[summary["kind"] == "cycle"].copy()
full["retention"] = full["discharge_capacity_mAh_g"] / full["discharge_capacity_mAh_g"].iloc[0]
summary.round(3)

# %%
kd = hv.Dimension("cycle")
(hv.Curve(full, kd, hv.Dimension("charge_capacity_mAh_g", label="capacity (mAh/g)"), label="charge")
 * hv.Scatter(full, kd, "charge_capacity_mAh_g", label="charge")
 * hv.Curve(full, kd, "discharge_capacity_mAh_g", label="discharge")
 * hv.Scatter(full, kd, "discharge_capacity_mAh_g", label="discharge")
 ).opts(title=f"capacity per cycle (assumed {ASSUMED_MASS_MG:g} mg)", width=420, height=300,
        legend_position="bottom_right") + \
    hv.Curve(full, kd, hv.Dimension("coulombic_efficiency", range=(0.8, 1.0))).opts(
        title="coulombic efficiency", width=380, height=300) * \
    hv.Scatter(full, kd, "coulombic_efficiency")

# %%
print(full[["cycle", "charge_capacity_mAh_g", "discharge_capacity_mAh_g",
            "coulombic_efficiency", "retention"]].round(3).to_string(index=False))
ce = full["coulombic_efficiency"].to_numpy()
print(f"first-cycle CE {ce[0]:.1%}, later cycles {ce[1:].min():.1%}-{ce[1:].max():.1%}; "
      f"discharge capacity retention after {len(full)} cycles: {full['retention'].iloc[-1]:.1%} "
      "(paper's NMC: 75.9 % after 200 cycles)")
assert 0.8 < ce[0] < ce[1:].min() and ce[1:].max() < 1.0, \
    "first-cycle loss, then a stable CE below 100 %"
assert 0.95 < full["retention"].iloc[-1] < 1.1, "no fade over a few cycles"

# %% [markdown]
# Ratios do not depend on the mass assumption, and the library's capacity (the current
# integrated over time) agrees with the cycler's own charge counter `(Q-Qo)`:

# %%
other = io.cycle_summary(gcpl, active_mass_mg=2 * ASSUMED_MASS_MG)
assert np.allclose(other["coulombic_efficiency"], summary["coulombic_efficiency"], equal_nan=True)
assert np.allclose(other["charge_capacity_mAh_g"] * 2, summary["charge_capacity_mAh_g"])
c1 = summary.set_index("cycle").loc[1]
in_cycle_1 = gcpl["time_s"].between(c1.start_time_s, c1.end_time_s)
first_charge = gcpl[in_cycle_1 & (gcpl["current_mA"] > 0)]
counter_mAh = first_charge["charge_mAh"].iloc[-1] - first_charge["charge_mAh"].iloc[0]
ours_mAh = c1.charge_capacity_mAh_g * ASSUMED_MASS_MG / 1000
print(f"cycle 1 charge: integrated {ours_mAh:.4f} mAh, cycler counter {counter_mAh:.4f} mAh")
assert abs(ours_mAh / counter_mAh - 1) < 0.01

# %% [markdown]
# ## Capacity per rate (the quantity of Fig. 5a)
#
# A rate-capability test steps the current; grouping the cycles of `cycle_summary` by
# their discharge rate gives Fig. 5a (one such table per electrode, fresh and aged). This
# GCPL file was run at a single current, so its table has one row — Fig. 5a itself cannot
# be made from the public files.

# %%
def rate_table(summary, *, decimals=0):
    """Mean discharge capacity per (rounded) discharge rate, over complete cycles."""
    s = summary[summary["kind"] == "cycle"].assign(
        rate_mA_g=lambda d: d["discharge_rate_mA_g"].round(decimals))
    return s.groupby("rate_mA_g").agg(n_cycles=("cycle", "size"),
                                      discharge_capacity_mAh_g=("discharge_capacity_mAh_g", "mean"),
                                      ).reset_index()


rates = rate_table(summary)
print(rates.round(2))
assert len(rates) == 1

# %% [markdown]
# ## The other two files
#
# `biol.mpr` (cellpy test data, 2017) is a 0.12-1.0 V test — the potential range of an
# anode against Li, not a cathode — a modulo-bat sequence of 4-h constant-current charge
# steps separated by rests and impedance measurements. The impedance rows (one per
# frequency) are dropped from the time series with a warning; the charge steps follow
# each other with only rests between them, so `cycle_summary` sees one intermittent
# charge (after a leading rest), not the 63 sign-change "cycles" of zero capacity that
# the impedance rows' alternating current made of it before. `00_test_04_MB_C01.mpr` (a
# modulo-bat technique) holds 1.5 s of a constant current at −1.65 V: readable, but it
# carries essentially no capacity.

# %%
with warnings.catch_warnings():
    warnings.simplefilter("ignore", io.EchemWarning)  # the impedance rows: in attrs
    biol = io.read_mpr(ECHEM / "biol.mpr")
print(biol.attrs["warnings"])
biol_cycles = io.cycle_summary(biol, active_mass_mg=ASSUMED_MASS_MG)
print(f"biol.mpr: {len(biol)} records, {biol['voltage_V'].min():.2f}-{biol['voltage_V'].max():.2f} V, "
      f"{biol.attrs['impedance_rows']} impedance rows dropped")
assert biol_cycles["kind"].tolist() == ["rest", "charge"]
print(biol_cycles.round(3).to_string(index=False))
mb = io.read_mpr(ECHEM / "00_test_04_MB_C01.mpr")
print(f"00_test_04_MB_C01.mpr: {len(mb)} records over {np.ptp(mb['time_s']):.2f} s, "
      f"I = {mb['current_mA'].mean():.4f} mA, E = {mb['voltage_V'].mean():.3f} V")
(hv.Curve((biol["time_s"][::10] / 3600, biol["voltage_V"][::10]), "time (h)", "voltage (V)")
 .opts(title="biol.mpr", width=700, height=250))

# %% [markdown]
# ## Every brand, one table
#
# `io.read_echem` picks the reader from the file's content (BioLogic `.mpr`/`.mpt` through
# galvani; Neware, Arbin, Landt/Lanhe and Ivium through navani; Gamry `.DTA` through
# asymflux's own reader of Gamry's EXPLAIN layout; see `docs/formats.md`) and returns the
# same columns for every brand. `attrs` says where the current and the charge came from:
# the cycler's own charge counters, never a set point. The impedance file (`PEIS.mpr`) is
# refused: one row per frequency is not a time series. The two Gamry files (a
# chronopotentiometry written with decimal commas, a PWR800 battery discharge) are read,
# the discharge with a negative current as for every brand.

# %%
rows = []
for f in sorted(ECHEM.glob("*")):
    if f.name.startswith(("README", "LICENSE")):
        continue
    try:
        t = io.read_echem(f)
    except io.DatasetError as e:
        rows.append({"file": f.name, "format": "refused", "note": str(e).split(": ", 1)[1][:70]})
        continue
    rows.append({"file": f.name, "format": t.attrs["format"], "records": len(t),
                 "current from": t.attrs["current_from"][:40], "net charge (mAh)": t["charge_mAh"].iloc[-1]})
brands = pd.DataFrame(rows)
assert (brands["format"] == "refused").sum() == 1  # only the impedance file
gamry = brands[brands["format"].str.startswith("Gamry")]
assert len(gamry) == 2 and (gamry["net charge (mAh)"] < 0).all()  # both pass current out
brands

# %% [markdown]
# The CC-CV file holds constant-voltage holds. During them BioLogic's `control/V/mA`
# column holds the set *voltage* (4.9 V here); read as a current it would double the
# charge. The current is the charge counter's increment per interval instead, and it
# decays through each hold as it should.

# %%
cccv = io.read_echem(ECHEM / "250116_kigr_gen6_01_02_GCPL_CD8.mpr")
print(cccv.attrs["current_from"])
(hv.Curve((cccv["time_s"] / 3600, cccv["current_mA"]), "time (h)", "current (mA)")
 .opts(title="CC-CV: the current through the holds", width=700, height=250))

# %% [markdown]
# ## From a cycler table to the capacity axis of a movie
#
# A movie's frames have times on the cycler's clock. `Dataset` keeps the cycler table
# (`echem`); when it has no `capacity_mAh_g` column it computes one from the cycler's
# charge counter `(Q-Qo)` and `metadata["active_mass_mg"]`, counting from the table's
# first row. `capacity_at_frames()` interpolates it at the frame times; that is the
# capacity axis of every d(capacity) curve (Fig. 5d) and kymograph (Fig. 5c).
#
# Here: pretend a movie was filmed during the first charge of the GCPL cell, one frame
# every 10 min (the image stack is a placeholder; only the times matter). The cycler
# table is cut at the start of that charge, so capacity counts from there.

# %%
charge_start = c1.start_time_s
echem = gcpl[gcpl["time_s"] >= charge_start].reset_index(drop=True)
frame_times = charge_start + np.arange(0, 6 * 3600 + 1, 600.0)
movie = io.Dataset(stack=np.ones((frame_times.size, 8, 8), np.float32), time_s=frame_times,
                   pixel_nm=65.0, echem=echem,
                   metadata={"name": "gcpl-first-charge", "active_mass_mg": ASSUMED_MASS_MG})
cap = movie.capacity_at_frames()
current_mA = float(echem["current_mA"].iloc[1:50].median())  # the constant charging current
expected = current_mA / (ASSUMED_MASS_MG / 1000) * (frame_times - charge_start) / 3600
pd.DataFrame({"frame": np.arange(cap.size), "time_h": (frame_times - charge_start) / 3600,
              "capacity_mAh_g": cap, "I·t/m": expected}).round(2).head(8)

# %%
v_at = np.interp(frame_times, movie.echem["time_s"], movie.echem["voltage_V"])
(hv.Curve(movie.echem[movie.echem["time_s"] <= frame_times[-1]], "capacity_mAh_g", "voltage_V")
 .opts(color="grey") * hv.Scatter((cap, v_at), "capacity_mAh_g", "voltage_V").opts(size=7)
 ).opts(title="frames on the capacity axis (first charge)", width=600, height=300)

# %%
print(f"capacity at the frames: {cap[0]:.3f} ... {cap[-1]:.2f} mAh/g; constant current "
      f"{current_mA:.4f} mA = {current_mA / ASSUMED_MASS_MG * 1000:.1f} mA/g")
assert abs(cap[0]) < 1e-9
assert np.allclose(cap, expected, rtol=0.01, atol=0.05), "capacity should grow as I·t/m"
assert np.all(np.diff(cap) > 0)

# %% [markdown]
# ## Two clocks: the camera's against the cycler's
#
# A movie's frames are timed by the camera, the cycler table by the cycler: two clocks.
# asymflux uses one sign: **cycler time = camera time + offset** (`time_offset_s`, s). Give
# it (`asymflux analyze ... --time-offset-s S`, `analyze_dataset(ds, time_offset_s=S)`), or
# estimate it with its uncertainty (`--time-offset-s auto`,
# `analysis.estimate_dataset_time_offset`): here the particles' mean intensity, whose rate
# of change follows the current, is aligned with the cycler's current (method
# `optical-rate`, [docs/analysis.md](../docs/analysis.md#camera-and-cycler-clocks)); an
# instrument file's camera-recorded voltage is aligned with the cycler file's when there is
# one (`recorded-voltage`).
#
# The demo dataset `charge-rest` (70 mA/g for 20 min, then 20 min of rest, a frame every
# 50 s) has both on one clock. We put its cycler table on a clock that reads 180 s more
# than the camera's, and let the estimate find the offset again.

# %%
from asymflux import analysis, datasets, plots

TRUE_OFFSET_S = 180.0
demo = datasets.load("charge-rest", lazy=False)
cycler = demo.echem.assign(time_s=demo.echem["time_s"] + TRUE_OFFSET_S)  # the cycler's clock
two_clocks = io.Dataset(stack=demo.stack, time_s=demo.time_s, pixel_nm=demo.pixel_nm,
                        echem=cycler, metadata=demo.metadata, masks=demo.masks)
estimate = analysis.estimate_dataset_time_offset(two_clocks)
print(f"estimated offset {estimate}; true {TRUE_OFFSET_S:g} s")
print(estimate.detail)
assert abs(estimate.offset_s - TRUE_OFFSET_S) <= estimate.uncertainty_s

# %% [markdown]
# Analysed with the estimate, every frame gets the cycler's capacity, voltage and current
# at its cycler time (`cycler_time_s`); the offset used is in the tables (`time_offset_*`
# columns of the particles, `attrs["time_offset"]`) and, from `asymflux analyze`, in
# `clock.csv`. Without it, the frames would be read 180 s early on the cycler's record. The
# estimate is a few seconds short of the truth here, so frame 0 falls just before the
# cycler's record: its capacity is NaN, and the analysis says so (the warning).

# %%
particles, ts = analysis.analyze_dataset(two_clocks, time_offset_s=estimate)
one = ts[ts["particle_id"] == 1]
print(particles[["particle_id", "time_offset_s", "time_offset_uncertainty_s",
                 "time_offset_method"]].head(2))
one[["frame", "time_s", "cycler_time_s", "capacity_mAh_g", "voltage_V", "current_mA"]].iloc[20:28]

# %% [markdown]
# ## dQ/dV beside the mean optical signal
#
# dQ/dV (from each frame's capacity and voltage) and the derivative of the particles' mean
# dI against voltage, scaled to the same peak: when the optical signal follows the charge
# (and the clocks are aligned) their peaks line up. Rest frames (zero current) are left out.

# %%
plots.dqdv_optical(analysis.incremental_capacity_table(ts))
