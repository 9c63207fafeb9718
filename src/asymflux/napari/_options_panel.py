"""The *analysis options* part of the curation dock: a user's choices, nothing else.

Each control is one parameter of :func:`asymflux.analysis.analysis_options`, which turns
them into the keyword arguments of :func:`asymflux.analysis.analyze_dataset` with the
library's (and ``asymflux analyze``'s) defaults: *normalise illumination* is ``auto`` by
default, as on the command line.
"""

from __future__ import annotations

from magicgui.widgets import CheckBox, ComboBox, Container, SpinBox

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
        self.extend([self.n_ref, self.register, self.normalize, self.rolling, self.min_area])

    def choices(self, *, rolling=True) -> dict:
        """The user's choices as parameters of :func:`asymflux.analysis.analysis_options`."""
        return {"n_reference_frames": int(self.n_ref.value), "register": bool(self.register.value),
                "normalize_illumination": self.normalize.value,
                "rolling_frames": int(self.rolling.value) if rolling else None,
                "min_area_px": int(self.min_area.value)}

    def options(self, *, rolling=True) -> dict:
        """Keyword arguments of :func:`asymflux.analysis.analyze_dataset`."""
        from asymflux.analysis import analysis_options

        return analysis_options(**self.choices(rolling=rolling))
