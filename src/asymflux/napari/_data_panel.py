"""The *data* part of the curation dock: which dataset or stack, and the cycler's clock.

*Open* calls :meth:`~._widget.CurationWidget.open_dataset`, *Use stack*
:meth:`~._widget.CurationWidget.attach`, *Apply clock offset*
:meth:`~._widget.CurationWidget.set_time_offset`.
"""

from __future__ import annotations

from magicgui.widgets import ComboBox, Container, FileEdit, LineEdit

from ._display import button_row

__all__ = ["DataPanel"]


class DataPanel(Container):
    """Dataset folder, stack layer and clock offset fields with their buttons.

    Parameters
    ----------
    owner : CurationWidget
        Whose methods the buttons call (through ``owner.run``).
    stack_choices : callable
        The image layers to offer as stacks (magicgui ``choices``).
    """

    def __init__(self, owner, stack_choices, **kwargs):
        super().__init__(labels=True, **kwargs)
        o = owner
        self.path = FileEdit(label="dataset", mode="d")
        self.source = ComboBox(label="stack", choices=stack_choices, nullable=True)
        # the cycler's clock against the camera's (cycler time = frame time + offset)
        self.time_offset = LineEdit(label="clock offset (s, or auto)", value="")
        self.extend([self.path, button_row(o.run, ("Open", o.open_dataset), ("Use stack", o.attach)),
                     self.time_offset,
                     button_row(o.run, ("Apply clock offset", o.set_time_offset)),
                     self.source])
