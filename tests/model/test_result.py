"""A simulation's result on a pixel grid."""

import numpy as np
import pytest

from asymflux import model


def test_to_image_shape_and_nan_outside():
    res = model.simulate(None, model.disk_mesh(1.2), None, [model.Charge(100, minutes=5)],
                         output_minutes=[1, 5])
    img = res.to_image(pixel_nm=100)
    assert img.theta.shape == (res.times_s.size, 24, 24)
    assert img.x_um[0] < img.x_um[-1] and img.y_um[0] > img.y_um[-1]
    assert np.isnan(img.theta[0, 0, 0]) and not np.isnan(img.theta[0, 12, 12])
    assert np.nanmax(img.theta[0]) == pytest.approx(0.97)
