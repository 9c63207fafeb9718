"""The *analysis options* part of the curation dock: a user's choices, nothing else.

Each control is one parameter of :func:`asymflux.analysis.analysis_options`, which turns
them into the keyword arguments of :func:`asymflux.analysis.analyze_dataset` with the
library's (and ``asymflux analyze``'s) defaults: *normalise illumination* is ``auto`` by
default, as on the command line. *Illumination field* (``--illumination``), *dark frame*
and *flat frame* (``--dark``, ``--flat``) are ``asymflux analyze``'s camera corrections
(:class:`~._session.CurationSession` passes them on); *results cache* (``--no-cache`` when
off) reads and stores the analyses in the results cache (``docs/cache.md``).
"""

from __future__ import annotations

from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, SpinBox

__all__ = ["OptionsPanel"]


class OptionsPanel(Container):
    """Reference frames, registration, illumination, rolling differential, min area."""

    def __init__(self, **kwargs):
        from asymflux.analysis import ILLUMINATION_CHOICES

        super().__init__(labels=True, **kwargs)
        self.n_ref = SpinBox(label="reference frames", value=1, min=1, max=10_000)
        self.register = CheckBox(text="Register drift", value=True)
        self.normalize = ComboBox(
            label="normalise illumination", choices=list(ILLUMINATION_CHOICES), value="auto",
            tooltip="auto: when the particle-free background drifts (as asymflux analyze); "
                    "on: always; off: raw intensities")
        self.rolling = SpinBox(label="Rolling differential (frames, 0 = off)", value=0, min=0,
                               max=1_000_000)
        # 0: the analysis default (a few PSF areas at the dataset's pixel size)
        self.min_area = SpinBox(label="min area (px, 0 = auto)", value=0, min=0,
                                max=10_000_000)
        self.illumination = ComboBox(
            label="illumination field", choices=["auto", "on", "off"], value="auto",
            tooltip="divide each frame by its smooth spatial illumination fitted to the "
                    "particle-free pixels (a beam profile that moves): auto, when that pattern "
                    "changes over the particles (as asymflux analyze --illumination)")
        self.dark = FileEdit(label="dark frame", mode="r", filter="*.npy *.tif *.tiff",
                             tooltip="optional: subtracted from every frame (--dark)")
        self.flat = FileEdit(label="flat frame", mode="r", filter="*.npy *.tif *.tiff",
                             tooltip="optional: every frame divided by (flat - dark) scaled to "
                                     "a mean of 1 (--flat)")
        self.cache = CheckBox(text="Results cache", value=True,
                              tooltip="read an analysis of unchanged data, labels and options "
                                      "from the results cache, store new ones (docs/cache.md)")
        self.extend([self.n_ref, self.register, self.normalize, self.rolling, self.min_area,
                     self.illumination, self.dark, self.flat, self.cache])

    @staticmethod
    def _file(edit):
        value = edit.value
        return None if value is None or str(value).strip() in ("", ".") else str(value)

    def choices(self, *, rolling=True) -> dict:
        """The user's choices: parameters of :func:`asymflux.analysis.analysis_options`,
        and ``illumination``, ``dark``, ``flat`` when chosen
        (:attr:`~._session.CurationSession.choices`)."""
        out = {"n_reference_frames": int(self.n_ref.value),
               "register": bool(self.register.value),
               "normalize_illumination": self.normalize.value,
               "rolling_frames": int(self.rolling.value) if rolling else None,
               "min_area_px": int(self.min_area.value)}
        if self.illumination.value != "auto":
            out["illumination"] = self.illumination.value
        for name in ("dark", "flat"):
            if self._file(getattr(self, name)) is not None:
                out[name] = self._file(getattr(self, name))
        return out

    def options(self, *, rolling=True) -> dict:
        """Keyword arguments of :func:`asymflux.analysis.analyze_dataset`
        (:meth:`~._session.CurationSession.analysis_options` of :meth:`choices`)."""
        from ._session import CurationSession

        return CurationSession(choices=self.choices(rolling=rolling)).analysis_options()
