"""The *particle* part of the curation dock: the selected particle's analysis.

*Show O_COM / O_Li-rich* (:meth:`~._widget.CurationWidget.show_particle`), then its
quality (:class:`~._quality_panel.QualityPanel`) and d(capacity) with its range, and the
*Draw line* / *Kymograph* / *Fit blocking* buttons.
"""

from __future__ import annotations

import numpy as np
from magicgui.widgets import Container

from ._display import button_row, make_canvas
from ._quality_panel import QualityPanel

__all__ = ["ParticlePanel"]


class ParticlePanel(Container):
    """Buttons of a particle's analysis, its quality lines and its d(capacity) plot.

    Parameters
    ----------
    owner : CurationWidget
        Whose methods the buttons call (through ``owner.run``).
    """

    def __init__(self, owner, **kwargs):
        super().__init__(labels=False, **kwargs)
        o = owner
        self.quality = QualityPanel()
        self.extend([button_row(o.run, ("Show O_COM / O_Li-rich", o.show_particle)),
                     self.quality])
        self.figure, self.canvas = make_canvas(self)
        if self.figure is not None:
            ax = self.figure.add_subplot(111)
            ax.set_xlabel("capacity (mAh/g)", fontsize=8)
            ax.set_ylabel("d (nm)", fontsize=8)
            ax.set_title("select a particle, then Show O_COM / O_Li-rich", fontsize=8)
            ax.tick_params(labelsize=7)
        self.extend([button_row(o.run, ("Draw line", o.add_line_layer),
                                ("Kymograph", o.kymograph)),
                     button_row(o.run, ("Fit blocking", o.start_fit_blocking))])

    def plot(self, table, pid):
        """d(capacity) of a particle's table (d(time) without capacity), with its range
        (``d_nm_low`` to ``d_nm_high``: the dI threshold ∓ the pixel noise) as a band."""
        if self.figure is None:
            return
        fig = self.figure
        fig.clear()
        ax = fig.add_subplot(111)
        x = table["capacity_mAh_g"].to_numpy(float)
        xlabel = "capacity (mAh/g)"
        if not np.isfinite(x).any():
            x, xlabel = table["time_s"].to_numpy(float) / 60.0, "time (min)"
        if {"d_nm_low", "d_nm_high"} <= set(table.columns):
            ax.fill_between(x, table["d_nm_low"].to_numpy(float),
                            table["d_nm_high"].to_numpy(float), color="tab:red", alpha=0.25,
                            lw=0, label="range")
        ax.plot(x, table["offset_nm"].to_numpy(float), "o-", ms=3, color="tab:red")
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel("d (nm)", fontsize=8)
        ax.set_title(f"particle {pid}: d = |O_Li-rich − O_COM|", fontsize=8)
        ax.tick_params(labelsize=7)
        self.canvas.draw_idle()
