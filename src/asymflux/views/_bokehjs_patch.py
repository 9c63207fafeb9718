"""A workaround in the pages' BokehJS, alone here: BokehJS skips rewriting a ``<style>``
element with the text it already holds (:func:`skip_unchanged_stylesheets`).

Written for the Bokeh and Panel versions in :data:`STYLESHEET_PATCH_BOKEH` and
:data:`STYLESHEET_PATCH_PANEL`; with any other installed version it is skipped, with a
one-line warning (once per process), and the pages work as BokehJS draws them."""

from __future__ import annotations

import warnings
import weakref

import panel as pn

from ._runtime import in_server

STYLESHEET_PATCH_BOKEH = ("3.7", "3.8", "3.9")
"""Bokeh versions (major.minor) whose BokehJS :func:`skip_unchanged_stylesheets` was checked
against (``tests/dashboards/test_served.py`` fails when the installed one is not listed, or
when the page did not apply the change)."""

STYLESHEET_PATCH_PANEL = ("1.7", "1.8", "1.9")
"""Panel versions (major.minor) the change was written for: those that serve the Bokeh
versions of :data:`STYLESHEET_PATCH_BOKEH` (Panel 1.9: Bokeh 3.7-3.9)."""

STYLESHEET_UPDATE_SOURCE = r"^_update\((\w+)\)\s*\{\s*this\.el\.textContent\s*=\s*\1;?\s*\}$"
"""The source text of BokehJS's ``core/dom.InlineStyleSheet._update`` as checked (minified or
not: ``_update(t){this.el.textContent=t}``), a regular expression valid in Python and
JavaScript: :data:`STYLESHEET_PATCH_JS` changes the method only when it matches."""

STYLESHEET_PATCH_JS = """
const STYLESHEET_UPDATE_SOURCE = String.raw`""" + STYLESHEET_UPDATE_SOURCE + """`;
if (window.__asymflux_stylesheets === undefined) {
  let applied = false;
  try {
    const sheet = Bokeh.require("core/dom").InlineStyleSheet.prototype;
    const update = sheet._update;
    // only the method as checked: `_update(css) { this.el.textContent = css }`
    if (new RegExp(STYLESHEET_UPDATE_SOURCE).test(String(update))) {
      sheet._update = function (css) {
        if (this.el.textContent !== css) update.call(this, css);
      };
      applied = true;
    }
  } catch (e) {
    console.warn("asymflux: stylesheet change not applied:", e);
  }
  window.__asymflux_stylesheets = applied;
}
"""


def skip_unchanged_stylesheets(doc=None) -> bool:
    """Let the page's BokehJS skip rewriting a ``<style>`` element with the text it already
    holds (one JavaScript callback on the document's ``document_ready`` event, public Bokeh
    API).

    At every paint, each BokehJS renderer view rewrites its position stylesheet, and each
    element its CSS variables, even when the text is unchanged (BokehJS 3.7-3.9:
    ``core/dom.InlineStyleSheet._update``); every rewrite invalidates the page's style, and
    the next read of a visual property (a ``getComputedStyle``) recomputes it. In the model
    explorer that was ~670 rewrites and ~0.1-0.2 s of the browser's main thread per slider
    move. The change applies only to the Bokeh and Panel versions in
    :data:`STYLESHEET_PATCH_BOKEH` and :data:`STYLESHEET_PATCH_PANEL` (other versions: a
    one-line warning, :func:`written_for_installed_versions`) and only when the method is
    still the one checked (its source text); otherwise the page is left as it is. Only in a
    server session; returns whether the callback was added.
    """
    from bokeh.models import CustomJS

    if doc is None:
        doc = pn.state.curdoc if in_server() else None
    if doc is None or doc in _STYLESHEETS_DONE:
        return False
    if not written_for_installed_versions():
        return False
    doc.js_on_event("document_ready", CustomJS(code=STYLESHEET_PATCH_JS))
    _STYLESHEETS_DONE.add(doc)
    return True


_STYLESHEETS_DONE = weakref.WeakSet()  # documents given the callback (once each)
_WARNED: list = []


def _major_minor(version: str) -> str:
    return ".".join(str(version).split(".")[:2])


def written_for_installed_versions() -> bool:
    """True when the installed Bokeh and Panel are versions the change was written for
    (:data:`STYLESHEET_PATCH_BOKEH`, :data:`STYLESHEET_PATCH_PANEL`); otherwise False, with a
    one-line warning (once per process) saying the change is skipped."""
    import bokeh

    bokeh_v, panel_v = _major_minor(bokeh.__version__), _major_minor(pn.__version__)
    if bokeh_v in STYLESHEET_PATCH_BOKEH and panel_v in STYLESHEET_PATCH_PANEL:
        return True
    if not _WARNED:
        _WARNED.append(True)
        warnings.warn(f"asymflux dashboards: the BokehJS stylesheet change was written for Bokeh "
                      f"{'/'.join(STYLESHEET_PATCH_BOKEH)} and Panel "
                      f"{'/'.join(STYLESHEET_PATCH_PANEL)}, not Bokeh {bokeh.__version__} with "
                      f"Panel {pn.__version__}: skipped", RuntimeWarning, stacklevel=3)
    return False
