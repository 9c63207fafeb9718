"""The mirror symmetry of a problem: the whole-disk discretisation is symmetric, and the
symmetry fold is exact and used only when the problem is symmetric."""

import numpy as np
import pytest

from asymflux import model


@pytest.mark.parametrize("center_deg", [0.0, 90.0])
def test_mirror_symmetry_about_arc_centre(center_deg):
    """The whole-disk discretisation is symmetric (checked without the symmetry fold, which
    would impose it)."""
    surface = model.Surface([model.BlockedArc(center_deg=center_deg, fraction=0.25, eta=0.3)])
    res = model.simulate(None, None, surface, [model.Charge(100, minutes=10)], output_minutes=[5],
                         symmetry=False)
    img = res.to_image(pixel_nm=40).theta
    mirrored = img[:, ::-1, :] if center_deg == 0.0 else img[:, :, ::-1]
    np.testing.assert_allclose(img, mirrored, atol=1e-6, equal_nan=True)
    # and it is not trivially symmetric the other way
    other = img[:, :, ::-1] if center_deg == 0.0 else img[:, ::-1, :]
    assert np.nanmax(np.abs(img - other)) > 1e-3


@pytest.mark.parametrize(("arcs", "n_unknowns"), [
    (["180:0.25:0.3"], 1 + 20 * 24),   # one mirror line: half the disk
    (["15:0.5:0.05"], 1 + 20 * 24),    # on a sector line or through sector centres alike
    ([], 1 + 20),                      # unblocked: every sector line, so only the rings
    (["173:0.25:0.3"], 1 + 20 * 48),   # the mirror line misses the mesh's: solved whole
    (["30:0.25:0.3", "200:0.4:0.6"], 1 + 20 * 48),  # no common mirror line
])
def test_symmetry_fold_is_exact_and_only_used_when_the_problem_is_symmetric(arcs, n_unknowns):
    from asymflux.model.discretisation import Discretisation

    params, mesh = model.nmc88_lun2025(), model.disk_mesh(1.2, n_radial=20, n_angular=48)
    surface = model.Surface.from_strings(arcs)
    assert Discretisation(mesh, params, surface).n_unknowns == n_unknowns
    protocol = [model.Charge(200, minutes=8), model.Rest(minutes=2)]
    kw = dict(output_minutes=[2, 5, 8, 10], rtol=1e-7, atol=1e-9)
    folded = model.simulate(params, mesh, surface, protocol, **kw)
    whole = model.simulate(params, mesh, surface, protocol, symmetry=False, **kw)
    i, j = folded.index_of_minutes([2, 5, 8, 10]), whole.index_of_minutes([2, 5, 8, 10])
    # the same solution to the integrator's tolerance, on every cell
    np.testing.assert_allclose(folded.theta[i], whole.theta[j], atol=2e-5)
    np.testing.assert_allclose(folded.li_extracted[i], whole.li_extracted[j], atol=1e-9)
