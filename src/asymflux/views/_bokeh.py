"""Bokeh, HoloViews and Panel helpers of the pages: the extensions a page loads, one
update per publication, download buttons and their file names, an empty plot."""

from __future__ import annotations

from contextlib import contextmanager, nullcontext

import panel as pn


def load_extensions(*panel_extensions: str) -> None:
    """Load what a view needs to render, whichever page a server opens first: HoloViews'
    bokeh backend (made the current one) and Panel's ``panel_extensions`` (e.g.
    ``"tabulator"``; for a served page, registered with its session).

    Each view calls this when it is created, so a page does not depend on another page
    (or on the app file) having loaded them: served alone, the cohort browser once found no
    plotting extension (its first plot was made before anything had loaded HoloViews').
    """
    from asymflux import plots

    plots.use_backend("bokeh")
    if panel_extensions:
        pn.extension(*panel_extensions)


@contextmanager
def one_update(doc, *, freeze: bool = True):
    """Send the changes made within this block to the page as one message, and let Bokeh
    recompute the document's model graph once, at the end, instead of after each plot.

    HoloViews wraps every plot update in ``doc.models.freeze()``, and Bokeh walks every model
    of the page (~540 in the model explorer) each time the outermost freeze ends; one outer
    freeze (public Bokeh API, reference counted) leaves one walk per publication instead of
    one per plot. The walk itself costs 50-70 ms of the server's loop: ``freeze=False`` for
    a block that only replaces the data of plain Bokeh figures (no HoloViews plot, no new
    model: nothing to walk), which then costs a few ms. Without a document (notebook, tests)
    this does nothing.
    """
    models = getattr(doc, "models", None)
    frozen = models.freeze() if freeze and hasattr(models, "freeze") else nullcontext()
    with pn.io.hold(doc), frozen:
        yield


def download_button(label: str, filename: str, make, *, width: int = 170):
    """A :class:`panel.widgets.FileDownload` button whose file is made when clicked:
    ``make()`` returns ``bytes`` (``filename`` is the suggested name) or ``(bytes,
    filename)``."""
    button = pn.widgets.FileDownload(label=label, filename=filename, width=width, embed=False)

    def callback():
        import io

        out = make()
        data, name = out if isinstance(out, tuple) else (out, filename)
        button.filename = name
        return io.BytesIO(data)

    button.callback = callback
    return button


def csv_bytes(table) -> bytes:
    """A table as CSV (UTF-8, no index): what the CSV download buttons send."""
    return table.to_csv(index=False).encode("utf-8")


def safe_name(text: str) -> str:
    """``text`` as a file-name part (letters, digits, ``-_.`` only)."""
    import re

    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)).strip("_") or "data"


def empty_plot(message: str = ""):
    from asymflux import plots

    hv = plots.use_backend("bokeh")
    return hv.Text(0.5, 0.5, message).opts(xaxis=None, yaxis=None, title=message[:60])
