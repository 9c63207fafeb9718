#!/usr/bin/env python
"""The paper's Fig. 5c/d rate trend with the kinetic surface, beside the prescribed-η model.

A quarter of a 2.4 µm disk centred at 180° under the default film for an effective flux
ratio of ~0.3 (``model.calibration.FILM_RESISTANCE_ETA_0_3_OHM_M2``), charged at 50, 100,
200 and 400 mA/g; θ sampled on pixels every 0.25 mAh/g and measured as a movie is
(``figures.fig5d_data`` / ``figures.fig5d_summary``: max d, the capacity at which the
core vanishes, and where its last point was). The prescribed model (a quarter at η = 0.3)
is printed for comparison: its asymmetry barely depends on rate.

    .venv/bin/python benchmarks/bench_kinetic_trend.py           # 20 x 48 mesh, 20 nm pixels, ~1 min
    .venv/bin/python benchmarks/bench_kinetic_trend.py --fine    # 40 x 96 mesh, 10 nm pixels, ~5 min

Always exits 0; prints PASS/MISS per trend (asserted in tests/model/test_kinetics.py).
"""

from __future__ import annotations

import argparse
import sys
import time

from asymflux import figures, model
from asymflux.model import calibration


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fine", action="store_true", help="40 x 96 mesh and 10 nm pixels (the issue's)")
    ap.add_argument("--no-prescribed", action="store_true", help="skip the prescribed-η comparison")
    args = ap.parse_args(argv)
    nr, na, px = (40, 96, 10.0) if args.fine else (20, 48, 20.0)
    mesh = model.disk_mesh(1.2, n_radial=nr, n_angular=na)
    surfaces = {"kinetic, film " + f"{calibration.FILM_RESISTANCE_ETA_0_3_OHM_M2:g} ohm m2":
                model.paper_film_surfaces()["quarter, film η≈0.3"]}
    if not args.no_prescribed:
        surfaces["prescribed, η = 0.3"] = model.Surface.from_strings(["180:0.25:0.3"])
    print(f"Fig. 5c/d trend: quarter at 180°, {nr} x {na} mesh, {px:g} nm pixels")
    for label, surface in surfaces.items():
        t0 = time.perf_counter()
        summary = figures.fig5d_summary(figures.fig5d_data(surface, mesh=mesh, pixel_nm=px))
        print(f"\n{label} ({time.perf_counter() - t0:.0f} s)")
        print("  " + summary.round(1).to_string(index=False).replace("\n", "\n  "))
        for statement, holds in figures.fig5d_trend_checks(summary):
            print(f"  {'PASS' if holds else 'MISS'}  {statement}")
    return 0


if __name__ == "__main__":
    main()
    sys.exit(0)
