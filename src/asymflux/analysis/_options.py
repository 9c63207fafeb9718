"""Analysis options from a user's choices: one mapping for every front end.

A front end (the napari widget, the command line) collects a user's choices in its own
words (a check box, a ``--no-register`` flag, ``"auto"`` typed in a field) and needs the
keyword arguments of :func:`asymflux.analysis.analyze_dataset` /
:func:`~asymflux.analysis.analyze_dataset_particle`. :func:`analysis_options` does that
translation once, with the library's defaults, so that the same choice gives the same
numbers everywhere (the napari widget once meant *no normalisation* where the command
line meant *auto*).
"""

from __future__ import annotations

import math

__all__ = ["ILLUMINATION_CHOICES", "analysis_options"]

ILLUMINATION_CHOICES = ("auto", "on", "off")
"""The choices of *normalise illumination*: ``"auto"`` (the library's default: normalise
when the particle-free background drifts, said in the warnings), ``"on"`` (always) and
``"off"`` (raw intensities)."""

_NORMALIZE = {"auto": "auto", "on": "frame_mean", "off": None}


def _illumination(value):
    if value is None or value is False:
        return None
    if value is True:
        return "frame_mean"
    key = str(value).strip().lower()
    key = {"none": "off", "frame_mean": "on", "true": "on", "false": "off"}.get(key, key)
    if key not in _NORMALIZE:
        raise ValueError(f"normalize_illumination must be one of {', '.join(ILLUMINATION_CHOICES)}"
                         f" (or True / False / None), got {value!r}")
    return _NORMALIZE[key]


def _saturation(value):
    if value is None:
        return None
    if isinstance(value, str):
        key = value.strip().lower()
        if key == "auto":
            return "auto"
        if key == "none":
            return None
        try:
            value = float(key)
        except ValueError:
            raise ValueError(f"saturation_level must be a number, 'auto' or 'none', got "
                             f"{value!r}") from None
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"saturation_level must be finite, got {value!r}")
    return value


def _positive_int(name, value, *, zero_is_none=True):
    if value is None:
        return None
    number = int(value)
    if number != value:
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    if number == 0 and zero_is_none:
        return None
    if number < 1:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return number


def analysis_options(
    *,
    threshold=0.05,
    edge_px=2,
    register=True,
    n_reference_frames=1,
    normalize_illumination="auto",
    rolling_frames=None,
    asymmetry_threshold=None,
    min_area_px=None,
    max_area_px=None,
    min_solidity=None,
    min_core_px=None,
    saturation_level="auto",
    intensity_offset=0.0,
) -> dict:
    """Keyword arguments of :func:`~asymflux.analysis.analyze_dataset` from a user's choices.

    Every parameter defaults to the library's (and ``asymflux analyze``'s) default; a
    choice that means "the default" (``0`` for *off* / *auto* in a number field) is left out
    of the result, so that ``analyze_dataset(dataset, **analysis_options())`` is
    ``analyze_dataset(dataset)``.

    Parameters
    ----------
    threshold : float
        dI below which a pixel is unreacted.
    edge_px : int
        Outline margin left out of the unreacted region (pixels).
    register : bool
        Correct stage drift.
    n_reference_frames : int
        Frames averaged into the reference I0 (>= 1).
    normalize_illumination : {"auto", "on", "off"}, bool or None
        ``"auto"`` (default): normalise each frame when the particle-free background
        drifts (``normalize="auto"``); ``"on"`` / True: always (``"frame_mean"``: the
        dataset's recorded illumination, else its particle-free pixels); ``"off"`` / False
        / None: raw intensities (``normalize=None``).
    rolling_frames : int, optional
        Rolling differential over this many frames; None or 0: dI against the reference.
    asymmetry_threshold : float, optional
        d/R_eq at or above which a particle is asymmetric (default: the library's 0.08).
    min_area_px, max_area_px : int, optional
        Detection's smallest / largest particle (pixels); None or 0: the library's default
        (a few PSF areas at the pixel size / no limit).
    min_solidity : float, optional
        Detection: drop particles less solid than this (0-1).
    min_core_px : int, optional
        Fewer unreacted pixels leave d NaN (default: a PSF's area).
    saturation_level : float, "auto", "none" or None
        The camera's clip level (``"auto"``: found in the movie; ``"none"`` / None: no clip).
    intensity_offset : float
        Added to every pixel first (background-subtracted movies).

    Returns
    -------
    dict
        Keyword arguments of :func:`~asymflux.analysis.analyze_dataset`: ``threshold``,
        ``edge_px``, ``register``, ``n_reference_frames``, ``normalize`` and, when chosen,
        ``rolling_frames``, ``asymmetry_threshold``, ``detect_kwargs`` (``min_area_px``,
        ``max_area_px``, ``min_solidity``), ``min_core_px``, ``saturation_level``,
        ``intensity_offset``.

    Raises
    ------
    ValueError
        A choice outside its range, named by its parameter.

    Examples
    --------
    >>> analysis_options(normalize_illumination="off", rolling_frames=0)["normalize"] is None
    True
    >>> analysis_options(min_area_px=40)["detect_kwargs"]
    {'min_area_px': 40}
    """
    threshold = float(threshold)
    if not -1 < threshold < 1:
        raise ValueError(f"threshold must be between -1 and 1, got {threshold!r}")
    edge = int(edge_px)
    if edge != edge_px or edge < 0:
        raise ValueError(f"edge_px must be a whole number >= 0, got {edge_px!r}")
    n_ref = _positive_int("n_reference_frames", n_reference_frames, zero_is_none=False)
    options = {"threshold": threshold, "edge_px": edge, "register": bool(register),
               "n_reference_frames": 1 if n_ref is None else n_ref,
               "normalize": _illumination(normalize_illumination)}
    rolling = _positive_int("rolling_frames", rolling_frames)
    if rolling is not None:
        options["rolling_frames"] = rolling
    if asymmetry_threshold is not None:
        a = float(asymmetry_threshold)
        if not 0 < a <= 1:
            raise ValueError(f"asymmetry_threshold must be in (0, 1], got {asymmetry_threshold!r}")
        options["asymmetry_threshold"] = a
    detect = {}
    for name, value in (("min_area_px", min_area_px), ("max_area_px", max_area_px)):
        number = _positive_int(name, value)
        if number is not None:
            detect[name] = number
    if min_solidity is not None and float(min_solidity) > 0:
        if not 0 < float(min_solidity) <= 1:
            raise ValueError(f"min_solidity must be in (0, 1], got {min_solidity!r}")
        detect["min_solidity"] = float(min_solidity)
    if detect:
        options["detect_kwargs"] = detect
    core = _positive_int("min_core_px", min_core_px)
    if core is not None:
        options["min_core_px"] = core
    level = _saturation(saturation_level)
    if level != "auto":
        options["saturation_level"] = level
    if intensity_offset:
        options["intensity_offset"] = float(intensity_offset)
    return options
