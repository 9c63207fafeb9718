"""Bad model inputs (protocol steps, arcs, surfaces, meshes, parameters): a ValueError naming
the parameter and the range expected."""

import pytest

from asymflux import model


@pytest.mark.parametrize(
    "build, name",
    [
        (lambda: model.Charge(0), "rate_mA_g"),
        (lambda: model.Charge(-5, minutes=1), "rate_mA_g"),
        (lambda: model.Charge(float("nan"), minutes=1), "rate_mA_g"),
        (lambda: model.BlockedArc(0, 0.25, 0.0), "eta"),
        (lambda: model.BlockedArc(0, 0.25, 1.5), "eta"),
        (lambda: model.BlockedArc(0, 1.0, 0.3), "fraction"),
        (lambda: model.BlockedArc(0, -0.1, 0.3), "fraction"),
        (lambda: model.Surface.from_strings(["0:0.25:0.3", "45:0.25:0.3"]), "overlap"),
        (lambda: model.disk_mesh(0), "radius_um"),
        (lambda: model.disk_mesh(-1), "radius_um"),
        (lambda: model.constant_diffusivity(1e-15, theta0=1.2), "theta0"),
        (lambda: model.constant_diffusivity(1e-15, theta0=0.0), "theta0"),
        (lambda: model.constant_diffusivity(float("nan")), "diffusivity"),
        (lambda: model.BlockedArc.parse("0:0.25"), "CENTER_DEG:FRACTION:ETA"),
    ],
)
def test_bad_parameters_name_the_parameter_and_range(build, name):
    with pytest.raises(ValueError, match=name) as info:
        build()
    msg = str(info.value)
    assert "overlap" in msg or "[" in msg or "(" in msg or "expects" in msg
