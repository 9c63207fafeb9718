"""What the plugin's panels draw with: the dI colormap and a matplotlib canvas.

Shared by the curation widget (:mod:`._widget`) and the *Live* panel (:mod:`._live`), so
that neither imports the other.
"""

from __future__ import annotations

import numpy as np

from asymflux.export import DI_COLORMAP_COLORS

__all__ = ["DI_COLORMAP_COLORS", "diverging_colormap", "make_canvas"]


def diverging_colormap():
    """napari colormap for dI: white at the centre, red for positive (delithiation)."""
    from napari.utils.colormaps import Colormap

    return Colormap(DI_COLORMAP_COLORS, controls=np.linspace(0, 1, 5), name="asymflux dI")


def make_canvas(parent, *, figsize=(3.2, 2.2), min_height_px=160):
    """``(figure, canvas)``: a matplotlib figure on a Qt canvas added to ``parent``'s layout
    (a magicgui Container), or ``(None, None)`` without matplotlib (it is optional: no
    plot then)."""
    try:
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None, None
    figure = Figure(figsize=figsize, tight_layout=True)
    canvas = FigureCanvasQTAgg(figure)
    canvas.setMinimumHeight(min_height_px)
    parent.native.layout().addWidget(canvas)
    return figure, canvas


def button_row(run, *buttons):
    """A horizontal row of buttons: ``(text, method)`` pairs, each click calls
    ``run(method)`` (the widget's :meth:`~._widget.CurationWidget.run`: errors become
    notifications)."""
    from magicgui.widgets import Container, PushButton

    row = Container(layout="horizontal", labels=False)
    for text, method in buttons:
        b = PushButton(text=text)
        b.text = text  # magicgui's constructor turns "_" into " " ("O_COM" -> "O COM")
        b.changed.connect(lambda *_, m=method: run(m))
        row.append(b)
    return row
