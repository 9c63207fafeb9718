"""One particle: crop box, registered crop with its dI, horizontal line-cut."""

import numpy as np
import pandas as pd
import pytest

from asymflux import analysis as an
from tests._helpers.analysis_synth import core_stack


def test_crop_box_pads_and_clips():
    mask = np.zeros((20, 30), bool)
    mask[2:5, 20:28] = True
    rows, cols = an.crop_box(mask, pad_px=3)
    assert (rows.start, rows.stop, cols.start, cols.stop) == (0, 8, 17, 30)
    with pytest.raises(ValueError, match="empty"):
        an.crop_box(np.zeros((4, 4), bool))


def test_particle_crop_is_the_registered_full_frame_cropped():
    stack, labels, _ = core_stack(n_frames=4)
    labels = labels * 5
    shifts = np.array([[0, 0], [0.4, -0.3], [1.2, 0.5], [-0.7, 0.9]])
    crop = an.particle_crop(stack, labels, 5, shifts_px=shifts, pad_px=4)
    full = an.correct_drift(stack, shifts)
    np.testing.assert_allclose(crop.stack, full[(slice(None), *crop.box)], atol=1e-6)
    np.testing.assert_allclose(crop.dI, an.differential_intensity(crop.stack), atol=1e-6)
    assert crop.mask.shape == crop.stack.shape[1:] and crop.mask.sum() == (labels == 5).sum()
    start, end = an.horizontal_line(crop.mask)
    assert start[0] == end[0] and end[1] - start[1] == pytest.approx(2 * 20 + 1)
    with pytest.raises(ValueError, match="particle 2 is not in the labels"):
        an.particle_crop(stack, labels, 2)
    with pytest.raises(ValueError, match=r"shifts_px must have shape \(4, 2\)"):
        an.particle_crop(stack, labels, 5, shifts_px=shifts[:3])


def test_particle_crop_reads_around_a_large_drift():
    """A shift larger than the crop's margin: the crop is still the registered full frame
    cropped (read with a margin of the shift), not the crop's own edge repeated."""
    rng = np.random.default_rng(3)
    stack, labels, _ = core_stack(n_frames=4)
    stack = stack + rng.uniform(0, 0.2, stack.shape).astype(np.float32)  # texture around
    shifts = np.array([[0, 0], [3.4, -2.6], [-4.2, 1.5], [2.0, 5.5]])
    crop = an.particle_crop(stack, labels, 1, shifts_px=shifts, pad_px=2)
    full = an.correct_drift(stack, shifts)
    np.testing.assert_allclose(crop.stack, full[(slice(None), *crop.box)], rtol=0, atol=1e-5)


def test_analyze_particle_is_analyze_for_one_particle():
    """analyze_particle's table is the particle's rows of particle_timeseries over all
    particles (registered around all of them), and its crop is registered with that drift."""
    stack, labels, _ = core_stack(n_frames=5)
    labels = labels.copy()
    labels[5:15, 5:15] = 2  # a second particle, in the registration region and background
    stack = an.correct_drift(stack, np.array([[0, 0], [0.6, -0.4], [1.3, 0.2], [1.9, 0.9],
                                            [2.4, 1.5]])).astype(np.float32)
    kw = {"pixel_nm": 65.0, "n_reference_frames": 1}
    everything = an.particle_timeseries(stack, labels, register=True, n_threads=1, **kw)
    one = an.analyze_particle(stack, labels, 1, **kw)
    expected = everything[everything["particle_id"] == 1].reset_index(drop=True)
    pd.testing.assert_frame_equal(one.timeseries.reset_index(drop=True), expected, check_exact=True)
    assert np.abs(one.shifts_px).max() > 2
    np.testing.assert_array_equal(one.shifts_px, expected[["drift_row_px", "drift_col_px"]])
    crop = an.particle_crop(stack, labels, 1, shifts_px=one.shifts_px)
    np.testing.assert_array_equal(one.crop.dI, crop.dI)
    plain = an.analyze_particle(stack, labels, 1, register=False, crop=False, **kw)
    assert plain.shifts_px is None and plain.crop is None
    with pytest.raises(ValueError, match=r"particle 3 is not in the labels; particles are \[1, 2\]"):
        an.analyze_particle(stack, labels, 3, **kw)
