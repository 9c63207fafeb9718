"""The widgets the pages share: :class:`JobProgress` (progress bar, status and Cancel while a
page waits for work done off the event loop) and :class:`DatasetLoader` (what a page needs
to load datasets: the alert, the progress, *Analyse anyway*, the zip upload)."""

from __future__ import annotations

import time

import panel as pn

from ._runtime import on_session_end
from ._uploads import remove_dir, save_upload, upload_root


def end_session(progress, uploads) -> None:
    """A page's session ended: stop waiting on its jobs (a job no other page waits for is
    stopped) and remove the upload folders it unpacked."""
    progress.cancel()
    for d in uploads:
        remove_dir(d)


class _Waiting:
    """A plain future shown by :class:`JobProgress` (e.g. a particle's movie being read)."""

    def __init__(self, future, label):
        self.future, self.label, self.started = future, label, time.monotonic()
        self.fraction = None

    def describe(self) -> str:
        return f"{self.label} ({time.monotonic() - self.started:.0f} s)"

    def release(self) -> None:
        pass


class JobProgress(pn.viewable.Viewer):
    """A page's progress bar, status line and Cancel button while it waits for work done
    off the event loop (:func:`start_analysis` jobs, :func:`run_in_thread` futures); hidden
    when idle. :meth:`wait` is awaited by the page's coroutine; *Cancel* (or
    :meth:`cancel`, e.g. at the end of the session) makes it return False at once and
    releases the jobs (a job no other session waits for is stopped)."""

    def __init__(self, **params):
        super().__init__(**params)
        self.bar = pn.indicators.Progress(value=-1, max=1000, active=True, width=220,
                                          visible=False, margin=(12, 10))
        self.text = pn.pane.Markdown("", visible=False, width=700, margin=(0, 10))
        self.cancel_button = pn.widgets.Button(label="Cancel", color="warning", width=90,
                                               visible=False)
        self.cancel_button.on_click(lambda _e: self.cancel())
        self._items: list = []
        self._generation = 0

    def __panel__(self):
        return pn.Row(self.bar, self.text, self.cancel_button)

    @property
    def busy(self) -> bool:
        return bool(self._items)

    def cancel(self) -> None:
        items, self._items = self._items, []
        self._generation += 1
        for item in items:
            item.release()
        self._show(False)

    def _show(self, on: bool) -> None:
        for w in (self.bar, self.text, self.cancel_button):
            w.visible = on
        if not on:
            self.text.object = ""

    def _update(self, title: str) -> None:
        items = self._items
        done = [i for i in items if i.future.done()]
        going = [i for i in items if not i.future.done()]
        fractions = [1.0 if i.future.done() else (i.fraction or 0.0) for i in items]
        known = all(i.future.done() or i.fraction is not None for i in items)
        self.bar.value = int(1000 * sum(fractions) / len(items)) if known else -1
        head = f"**{title}**" + (f": {len(done)} of {len(items)} done" if len(items) > 1 else "")
        self.text.object = head + "".join(f"<br>{i.describe()}" for i in going[:3])

    async def wait(self, items, title: str) -> bool:
        """Show ``items`` (jobs, or ``(future, label)`` pairs) until all are done: True, or
        False when cancelled meanwhile (or superseded by another :meth:`wait`)."""
        import asyncio

        items = [_Waiting(*i) if isinstance(i, tuple) else i for i in items]
        self.cancel()  # a new wait replaces the previous one
        generation = self._generation
        self._items = items
        if all(i.future.done() for i in items):  # (no asyncio wrapper: none to retrieve)
            self._items = []
            return True
        futures = [asyncio.wrap_future(i.future) for i in items]
        self._update(title)
        self._show(True)
        try:
            while generation == self._generation:
                _done, pending = await asyncio.wait(futures, timeout=0.5)
                if not pending:
                    return generation == self._generation
                if generation == self._generation:
                    self._update(title)
            return False
        finally:
            for f in futures:  # retrieved, so asyncio logs no "exception never retrieved"
                if f.done() and not f.cancelled():
                    f.exception()
            if generation == self._generation:
                self._items = []
                self._show(False)


class DatasetLoader(pn.viewable.Viewer):
    """What a page needs to load datasets off the event loop, shared by the views: its
    error :attr:`alert`, the :class:`JobProgress` of its analyses, the *Analyse anyway*
    button (shown for a stack above the size limit), the zip :attr:`upload` (unpacked
    folders removed when the session ends) and the load token (a load overtaken by a newer
    one drops its result).

    ``on_analyse_anyway()`` is called by the button (after hiding it); ``on_upload(folder)``
    with each unpacked upload, ``on_upload_error(exc, filename)`` when one cannot be used.
    """

    def __init__(self, *, on_analyse_anyway, on_upload, on_upload_error, alert_width=1000,
                 **params):
        super().__init__(**params)
        self.alert = pn.pane.Alert("", alert_type="danger", visible=False, width=alert_width)
        self.progress = JobProgress()
        self.large_button = pn.widgets.Button(label="Analyse anyway", color="danger",
                                              width=160, visible=False)
        self.upload = pn.widgets.FileInput(accept=".zip", multiple=False)
        self._on_analyse_anyway = on_analyse_anyway
        self._on_upload, self._on_upload_error = on_upload, on_upload_error
        self.large_button.on_click(self._analyse_anyway)
        self.upload.param.watch(self._uploaded, "value")
        self.uploads: list = []
        self.token = 0
        on_session_end(self.end_session)

    def __panel__(self):
        return pn.Row(self.progress, self.large_button)

    def new_load(self) -> int:
        """Start a new load: hides *Analyse anyway*; returns its token."""
        self.token += 1
        self.large_button.visible = False
        return self.token

    def current(self, token: int) -> bool:
        """True while no newer load was started than the one of ``token``."""
        return token == self.token

    def _analyse_anyway(self, _event=None):
        self.large_button.visible = False
        self._on_analyse_anyway()

    def _uploaded(self, event):
        if not event.new:
            return
        try:
            folder = save_upload(event.new, self.upload.filename)
        except Exception as e:  # noqa: BLE001 - shown in the page
            self._on_upload_error(e, self.upload.filename)
            return
        self.uploads.append(upload_root(folder))  # removed when the session ends
        self._on_upload(folder)

    def end_session(self) -> None:
        """The session ended: stop waiting (a job no other page waits for is stopped) and
        remove this session's unpacked uploads."""
        end_session(self.progress, self.uploads)
        self.uploads = []
