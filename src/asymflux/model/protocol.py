"""Cycling protocols: a list of galvanostatic and rest steps.

Each step ends at the first of its limits. Rates are specific currents in mA/g
(= A/kg) of active material; charge removes lithium (occupancy falls).
"""

from __future__ import annotations

from dataclasses import dataclass

from .._validate import check_range

DEFAULT_CUTOFF_OCCUPANCY = 0.2
"""Charge ends when the surface occupancy reaches 0.2 anywhere (Lun et al. 2025, Fig. 5b)."""


@dataclass(frozen=True)
class Charge:
    """Galvanostatic charge (delithiation) at ``rate_mA_g``.

    Give any of ``minutes``, ``capacity_mAh_g``, ``cutoff_occupancy`` and
    ``cutoff_voltage_V``; the step ends at the first one reached. With none of them the
    step ends at the default cut-off, surface occupancy 0.2 anywhere. Every charge also
    ends if the surface empties (occupancy 0), which is unphysical to go past.
    """

    rate_mA_g: float
    minutes: float | None = None
    capacity_mAh_g: float | None = None
    cutoff_occupancy: float | None = None
    cutoff_voltage_V: float | None = None

    sign = +1

    def __post_init__(self):
        check_range("rate_mA_g", self.rate_mA_g, 0, None, low_inclusive=False)
        if self.minutes is not None:
            check_range("minutes", self.minutes, 0, None, low_inclusive=False)
        if self.capacity_mAh_g is not None:
            check_range("capacity_mAh_g", self.capacity_mAh_g, 0, None, low_inclusive=False)
        if self.cutoff_occupancy is not None:
            check_range("cutoff_occupancy", self.cutoff_occupancy, 0, 1, low_inclusive=False,
                        high_inclusive=False)
        if self.cutoff_voltage_V is not None:
            check_range("cutoff_voltage_V", self.cutoff_voltage_V, 0, 10, low_inclusive=False)

    @property
    def effective_cutoff_occupancy(self) -> float | None:
        if self.cutoff_occupancy is not None:
            return self.cutoff_occupancy
        if self.minutes is None and self.capacity_mAh_g is None and self.cutoff_voltage_V is None:
            return DEFAULT_CUTOFF_OCCUPANCY
        return None


@dataclass(frozen=True)
class Discharge(Charge):
    """Galvanostatic discharge (lithiation); the default cut-off is surface occupancy 0.99
    anywhere, and every discharge also ends when the surface is full (occupancy 1)."""

    sign = -1

    @property
    def effective_cutoff_occupancy(self) -> float | None:
        if self.cutoff_occupancy is not None:
            return self.cutoff_occupancy
        if self.minutes is None and self.capacity_mAh_g is None and self.cutoff_voltage_V is None:
            return 0.99
        return None


@dataclass(frozen=True)
class Rest:
    """Open circuit (zero current) for ``minutes``."""

    minutes: float
    rate_mA_g: float = 0.0
    sign = 0

    def __post_init__(self):
        check_range("minutes", self.minutes, 0, None, low_inclusive=False)


Step = Charge | Discharge | Rest
