"""One particle: crop box, registered crop with its dI, horizontal line-cut."""

import numpy as np
import pytest
from _analysis_synth import core_stack

from asymflux import analysis as an


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
    full = an.apply_drift(stack, shifts)
    np.testing.assert_allclose(crop.stack, full[(slice(None), *crop.box)], atol=1e-6)
    np.testing.assert_allclose(crop.dI, an.differential_intensity(crop.stack), atol=1e-6)
    assert crop.mask.shape == crop.stack.shape[1:] and crop.mask.sum() == (labels == 5).sum()
    start, end = an.horizontal_line(crop.mask)
    assert start[0] == end[0] and end[1] - start[1] == pytest.approx(2 * 20 + 1)
    with pytest.raises(ValueError, match="particle 2 is not in the labels"):
        an.particle_crop(stack, labels, 2)
    with pytest.raises(ValueError, match=r"shifts_px must have shape \(4, 2\)"):
        an.particle_crop(stack, labels, 5, shifts_px=shifts[:3])
