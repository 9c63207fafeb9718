"""The *curation* part of the dock: the selected particle, its class and notes, and the
buttons that edit the curation.

Each button calls one named method of :class:`~._widget.CurationWidget` (``accept``,
``merge``, ``undo``, ...), which hands off to :class:`asymflux.curation.Curation`.
"""

from __future__ import annotations

from magicgui.widgets import ComboBox, Container, Label, LineEdit, SpinBox

from asymflux.curation import CLASSES

from ._display import button_row

__all__ = ["CurationPanel"]


class CurationPanel(Container):
    """Particle selector, status line, class, notes, merge partner and the edit buttons.

    Parameters
    ----------
    owner : CurationWidget
        Whose methods the buttons call (through ``owner.run``).
    """

    def __init__(self, owner, **kwargs):
        super().__init__(labels=True, **kwargs)
        o = owner
        self.particle = SpinBox(label="particle", value=0, min=0, max=2**31 - 1)
        self.klass = ComboBox(label="class", choices=list(CLASSES), value="unclassified")
        self.notes = LineEdit(label="notes")
        self.other = SpinBox(label="merge with", value=0, min=0, max=2**31 - 1)
        self.info = Label(label="", value="")
        self.extend([
            self.particle, self.info,
            button_row(o.run, ("Accept", o.accept), ("Reject", o.reject), ("Flag", o.flag)),
            self.klass, self.notes,
            button_row(o.run, ("Set class", o.set_class), ("Set notes", o.set_notes)),
            self.other,
            button_row(o.run, ("Merge", o.merge), ("Split", o.split), ("Delete", o.delete),
                       ("Relabel 1..n", o.relabel)),
            button_row(o.run, ("Undo", o.undo), ("Redo", o.redo), ("Save", o.save)),
        ])

    def show_row(self, row):
        """Show a particle's curation row (``Curation.row``), or a message (a str)."""
        if isinstance(row, str):
            self.info.value = row
            return
        self.info.value = f"{row['status']}, {row['class']}" + (f" ({row['who']})" if row["who"] else "")
        if row["class"] in CLASSES:
            self.klass.value = row["class"]
        self.notes.value = row["notes"]
