"""Regenerate the film-resistance calibration of the kinetic surface (``docs/calibration.md``).

Prints, ready to paste, ``FILM_RESISTANCE_ETA_0_3_OHM_M2``, ``FILM_RESISTANCE_ETA_0_7_OHM_M2``
and ``EFFECTIVE_RATIO_TABLE``: the effective flux ratio (charge per unit length through a
quarter under the film over that through the clean surface, first 10 min of a 100 mA/g
charge; ``calibration.effective_flux_ratio``) of the default parameter set on the default mesh
at each film resistance, and the resistances whose ratio is 0.3 and 0.7
(``calibration.film_resistance_for_effective_ratio``, rounded to three significant digits).
Re-run it whenever the default set's OCV, D(θ), k0 or the default mesh changes.

    PYTHONPATH=src python tools/film_calibration.py [--params NAME]

About 40 simulations (a few minutes on one core).
"""

from __future__ import annotations

import argparse

from asymflux.model import calibration, get_parameter_set

GRID_OHM_M2 = (0.0005, 0.001, 0.002, 0.004, 0.01, 0.02, 0.05, 0.1, 0.3, 0.5, 1.0, 2.0)
"""Resistances of the table besides the two calibrated ones."""


def calibrate(params=None):
    """``(r_eta_0_3, r_eta_0_7, rows)``: the two calibrated resistances (Ω m², three significant
    digits) and the table rows ``(R_film, effective ratio)`` sorted by R."""
    kw = {} if params is None else {"params": params}
    r03 = float(f"{calibration.film_resistance_for_effective_ratio(0.3, **kw):.3g}")
    r07 = float(f"{calibration.film_resistance_for_effective_ratio(0.7, **kw):.3g}")
    resistances = sorted(set(GRID_OHM_M2) | {r03, r07})
    rows = [(r, round(calibration.effective_flux_ratio(r, **kw), 3)) for r in resistances]
    return r03, r07, rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default=None, help="parameter set name (default: the default set)")
    args = ap.parse_args(argv)
    params = get_parameter_set(args.params) if args.params else None
    r03, r07, rows = calibrate(params)
    print(f"FILM_RESISTANCE_ETA_0_3_OHM_M2 = {r03:g}")
    print(f"FILM_RESISTANCE_ETA_0_7_OHM_M2 = {r07:g}")
    print("EFFECTIVE_RATIO_TABLE = (")
    for k in range(0, len(rows), 5):
        print("    " + " ".join(f"({r:g}, {e:.3f})," for r, e in rows[k:k + 5]))
    print(")")


if __name__ == "__main__":
    main()
