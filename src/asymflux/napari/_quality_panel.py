"""The *quality* part of the curation dock: the selected particle's flags and confidence.

A thin view on :func:`._quality.particle_quality` (Qt-free): four lines of text (d with
its range at the current frame, the class with the range of max d/R_eq, the particle's
flags, the frame's flags), each flag's meaning (:data:`asymflux.analysis.QUALITY_FLAGS`)
as the tooltip.
"""

from __future__ import annotations

from magicgui.widgets import Container, Label

from ._quality import describe, particle_quality

__all__ = ["QualityPanel"]


class QualityPanel(Container):
    """Labels for the selected particle's d range, class confidence and quality flags.

    Attributes
    ----------
    values : dict or None
        The numbers shown (:func:`asymflux.napari._quality.particle_quality`).
    """

    def __init__(self, **kwargs):
        super().__init__(labels=False, **kwargs)
        self.values = None
        self._table = None
        self._threshold = None
        self.lines = {k: Label(value="") for k in ("d", "class", "particle flags", "frame flags")}
        self.lines["d"].value = "quality: show a particle (Show O_COM / O_Li-rich)"
        self.extend(list(self.lines.values()))

    def show(self, timeseries, frame=None, *, asymmetry_threshold=None):
        """Show a particle's table (at ``frame``); returns :attr:`values`."""
        self._table, self._threshold = timeseries, asymmetry_threshold
        return self.show_frame(frame)

    def show_frame(self, frame=None):
        """Show the shown particle at another frame (the viewer's time slider)."""
        if self._table is None or not len(self._table):
            return None
        from asymflux.analysis import QUALITY_FLAGS

        self.values = particle_quality(self._table, frame,
                                       asymmetry_threshold=self._threshold)
        for key, text in describe(self.values).items():
            self.lines[key].value = text
        for key, column in (("particle flags", "quality_flags"), ("frame flags", "frame_flags")):
            names = [f.split(":")[0] for f in self.values[column].split(";") if f]
            self.lines[key].tooltip = "\n\n".join(f"{n}: {QUALITY_FLAGS.get(n, '')}"
                                                   for n in names) or None
        return self.values

    def clear(self):
        self._table = self.values = None
        for label in self.lines.values():
            label.value = ""
