"""Cycling protocols: a list of galvanostatic and rest steps.

Each step ends at the first of its limits. Rates are specific currents in mA/g
(= A/kg) of active material; charge removes lithium (occupancy falls).
"""

from __future__ import annotations

from dataclasses import dataclass

from .._validate import check_range

DEFAULT_CUTOFF_OCCUPANCY = 0.2
"""Charge ends when the surface occupancy reaches 0.2 anywhere (Lun et al. 2025, Fig. 5b)."""

DEFAULT_CUTOFF_VOLTAGE_V = 4.3
"""With a kinetic surface, a charge ends when the particle potential reaches 4.3 V vs Li
(the paper's upper cut-off, Fig. 1d/f)."""

DEFAULT_DISCHARGE_CUTOFF_VOLTAGE_V = 3.0
"""With a kinetic surface, a discharge also ends when the particle potential falls to 3.0 V
vs Li (the paper's lower cut-off, its 3.0-4.3 V protocol), whichever of this and surface
occupancy 0.99 comes first."""


def end_condition_text(cutoff_occupancy: float | None = None,
                       cutoff_voltage_V: float | None = None, *, charge: bool = True) -> str:
    """A run's end condition in words, for a plot's title or a table's caption, e.g.
    ``"ends when the surface occupancy first reaches 0.2"``.

    ``cutoff_occupancy`` and ``cutoff_voltage_V`` as for :class:`Charge` (the first reached
    ends the run); with neither the text says so.
    """
    parts = []
    if cutoff_occupancy is not None:
        parts.append(f"the surface occupancy first reaches {cutoff_occupancy:g}")
    if cutoff_voltage_V is not None:
        parts.append(f"the voltage {'rises' if charge else 'falls'} to {cutoff_voltage_V:g} V")
    if not parts:
        return "ends at its duration or when the surface empties"
    return "ends when " + " or ".join(parts)


@dataclass(frozen=True)
class Charge:
    """Galvanostatic charge (delithiation) at ``rate_mA_g``.

    Give any of ``minutes``, ``capacity_mAh_g``, ``cutoff_occupancy`` and
    ``cutoff_voltage_V``; the step ends at the first one reached. With none of them the
    step ends at the default cut-off: surface occupancy 0.2 anywhere with a prescribed
    flux ratio, the particle potential reaching 4.3 V with a kinetic surface
    (:data:`DEFAULT_CUTOFF_VOLTAGE_V`). Every charge also ends if the surface empties
    (occupancy 0), which is unphysical to go past.

    The voltage a cut-off sees is the particle potential V vs Li with a kinetic surface,
    and the open-circuit voltage of the least lithiated surface point with a prescribed
    flux ratio (which has no overpotential).
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
    def has_limit(self) -> bool:
        """Whether any of the step's own limits is given."""
        return not (self.minutes is None and self.capacity_mAh_g is None
                    and self.cutoff_voltage_V is None and self.cutoff_occupancy is None)

    @property
    def effective_cutoff_occupancy(self) -> float | None:
        """The occupancy cut-off with a prescribed flux ratio (the default when no limit is given)."""
        if self.cutoff_occupancy is not None:
            return self.cutoff_occupancy
        if not self.has_limit:
            return DEFAULT_CUTOFF_OCCUPANCY
        return None

    def cutoffs(self, *, kinetic: bool) -> tuple[float | None, float | None]:
        """``(occupancy, voltage)`` cut-offs of the step on a prescribed or kinetic surface."""
        if kinetic and not self.has_limit:
            return None, DEFAULT_CUTOFF_VOLTAGE_V
        return self.effective_cutoff_occupancy, self.cutoff_voltage_V

    @property
    def duration_s(self) -> float:
        """The step's length from ``minutes`` and ``capacity_mAh_g`` (inf without either)."""
        duration = float("inf")
        if self.minutes is not None:
            duration = self.minutes * 60.0
        if self.capacity_mAh_g is not None:  # mAh/g over mA/g is hours
            duration = min(duration, self.capacity_mAh_g / self.rate_mA_g * 3600.0)
        return duration


@dataclass(frozen=True)
class Discharge(Charge):
    """Galvanostatic discharge (lithiation); the default cut-off is surface occupancy 0.99
    anywhere and, with a kinetic surface, also the particle potential falling to 3.0 V
    (:data:`DEFAULT_DISCHARGE_CUTOFF_VOLTAGE_V`); every discharge also ends when the surface
    is full (occupancy 1). A ``cutoff_voltage_V`` given is a lower limit."""

    sign = -1

    @property
    def effective_cutoff_occupancy(self) -> float | None:
        if self.cutoff_occupancy is not None:
            return self.cutoff_occupancy
        if not self.has_limit:
            return 0.99
        return None

    def cutoffs(self, *, kinetic: bool) -> tuple[float | None, float | None]:
        """``(occupancy, voltage)`` cut-offs; a discharge defaults to surface occupancy 0.99
        on either surface and 3.0 V on a kinetic one."""
        if kinetic and not self.has_limit:
            return self.effective_cutoff_occupancy, DEFAULT_DISCHARGE_CUTOFF_VOLTAGE_V
        return self.effective_cutoff_occupancy, self.cutoff_voltage_V


@dataclass(frozen=True)
class Rest:
    """Open circuit (zero current) for ``minutes``."""

    minutes: float
    rate_mA_g: float = 0.0
    sign = 0

    def __post_init__(self):
        check_range("minutes", self.minutes, 0, None, low_inclusive=False)

    @property
    def duration_s(self) -> float:
        return self.minutes * 60.0


Step = Charge | Discharge | Rest
