"""analysis_options: a user's choices -> analyze_dataset's keyword arguments, with its defaults."""

from __future__ import annotations

import inspect

import pytest

from asymflux.analysis import ILLUMINATION_CHOICES, analysis_options, analyze_dataset


def test_defaults_are_analyze_datasets():
    params = inspect.signature(analyze_dataset).parameters
    options = analysis_options()
    assert set(options) <= set(params)
    for name, value in options.items():
        assert params[name].default == value, name
    assert options["normalize"] == "auto"  # the command line's default, and napari's


@pytest.mark.parametrize(("choice", "normalize"), [
    ("auto", "auto"), ("on", "frame_mean"), ("off", None), (True, "frame_mean"), (False, None),
    (None, None), ("none", None), ("frame_mean", "frame_mean"), (" Auto ", "auto")])
def test_illumination_choices(choice, normalize):
    assert analysis_options(normalize_illumination=choice)["normalize"] == normalize
    assert set(ILLUMINATION_CHOICES) == {"auto", "on", "off"}


def test_zero_means_the_default_and_given_choices_are_passed():
    assert analysis_options(rolling_frames=0, min_area_px=0, max_area_px=0, min_core_px=0,
                            min_solidity=0) == analysis_options()
    options = analysis_options(threshold=0.04, edge_px=3, register=False, n_reference_frames=2,
                               rolling_frames=3, asymmetry_threshold=0.1, min_area_px=40,
                               max_area_px=900, min_solidity=0.8, min_core_px=6,
                               saturation_level="4000", intensity_offset=100)
    assert options == {"threshold": 0.04, "edge_px": 3, "register": False,
                       "n_reference_frames": 2, "normalize": "auto", "rolling_frames": 3,
                       "asymmetry_threshold": 0.1,
                       "detect_kwargs": {"min_area_px": 40, "max_area_px": 900,
                                         "min_solidity": 0.8},
                       "min_core_px": 6, "saturation_level": 4000.0, "intensity_offset": 100.0}
    assert set(options) <= set(inspect.signature(analyze_dataset).parameters)
    assert analysis_options(saturation_level="none")["saturation_level"] is None
    assert "saturation_level" not in analysis_options(saturation_level="auto")


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"normalize_illumination": "sometimes"}, "normalize_illumination must be one of auto, on"),
    ({"threshold": 1.5}, "threshold must be between"),
    ({"edge_px": -1}, "edge_px must be"),
    ({"n_reference_frames": 0}, "n_reference_frames must be a positive"),
    ({"rolling_frames": 2.5}, "rolling_frames must be a whole number"),
    ({"rolling_frames": -2}, "rolling_frames must be a positive"),
    ({"asymmetry_threshold": 2}, "asymmetry_threshold must be in"),
    ({"min_solidity": 1.5}, "min_solidity must be in"),
    ({"saturation_level": "high"}, "saturation_level must be a number, 'auto' or 'none'"),
])
def test_bad_choices_name_the_parameter(kwargs, words):
    with pytest.raises(ValueError, match=words):
        analysis_options(**kwargs)
