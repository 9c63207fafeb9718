"""Diffusion of lithium in the ab-plane of a partly blocked single-crystal particle.

Pieces (PyBaMM-style): parameter sets (:mod:`.parameters`), geometry and mesh
(:mod:`.mesh`), surface blocking (:mod:`.surface`: a prescribed flux ratio, or a kinetic
surface whose Butler-Volmer kinetics through a film are in :mod:`.kinetics`), protocol
(:mod:`.protocol`), the method-of-lines solver (the spatial operator in
:mod:`.discretisation`, its mirror symmetries in :mod:`.symmetry`, SciPy's BDF with linear
algebra for its Newton matrices in :mod:`._bdf`, the protocol loops in :mod:`.simulation`)
and its :class:`~.result.Result`; the film's calibration in :mod:`.calibration`.

>>> from asymflux import model
>>> res = model.simulate(
...     model.nmc88_lun2025(), model.disk_mesh(1.2),
...     model.Surface.from_strings(["180:0.25:0.3"]),
...     [model.Charge(100, minutes=20)], output_minutes=[5, 10, 15, 20])
>>> res.to_image(pixel_nm=50).theta.shape
(5, 48, 48)
"""

from . import kinetics
from .mesh import Mesh, disk_mesh, mask_mesh
from .parameters import (
    PARAMETER_SETS,
    TableDiffusivity,
    TableOCV,
    constant_diffusivity,
    get_parameter_set,
    nmc88_chen2020_ocv,
    nmc88_h2h3_low_diffusivity,
    nmc88_lun2025,
    nmc88_verbrugge2017_ocv,
    parameters_from_tables,
    scale_diffusivity,
)
from .protocol import (
    DEFAULT_CUTOFF_OCCUPANCY,
    DEFAULT_CUTOFF_VOLTAGE_V,
    DEFAULT_DISCHARGE_CUTOFF_VOLTAGE_V,
    Charge,
    Discharge,
    Rest,
    end_condition_text,
)
from .result import Result, ThetaImage
from .simulation import SolverError, simulate, simulate_side_by_side
from .surface import BlockedArc, FilmArc, Surface
from .sweep import (
    FIG5B_END,
    PAPER_RATES_MA_G,
    fig5b_charge,
    paper_fig5b_surfaces,
    paper_film_surfaces,
    rate_capability,
)

__all__ = [
    "BlockedArc", "Charge", "DEFAULT_CUTOFF_OCCUPANCY", "DEFAULT_CUTOFF_VOLTAGE_V",
    "DEFAULT_DISCHARGE_CUTOFF_VOLTAGE_V", "Discharge", "FIG5B_END", "FilmArc", "Mesh", "PAPER_RATES_MA_G", "PARAMETER_SETS", "Rest", "Result", "SolverError",
    "Surface", "TableDiffusivity", "TableOCV", "ThetaImage", "constant_diffusivity", "disk_mesh", "kinetics", "mask_mesh",
    "get_parameter_set", "nmc88_chen2020_ocv", "nmc88_h2h3_low_diffusivity", "nmc88_lun2025", "nmc88_verbrugge2017_ocv", "paper_fig5b_surfaces", "paper_film_surfaces", "parameters_from_tables",
    "end_condition_text", "fig5b_charge", "rate_capability", "scale_diffusivity", "simulate", "simulate_side_by_side",
]
