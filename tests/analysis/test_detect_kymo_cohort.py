import numpy as np
import pandas as pd
import pytest

from asymflux import analysis as an
from tests._helpers.analysis_synth import core_stack, disk


def test_detect_splits_touching_particles_and_drops_border_small_and_matrix():
    shape = (160, 200)
    img = np.full(shape, 0.5)  # electrolyte
    img[disk(shape, (120, 150), 30)] = 0.2  # darker carbon matrix
    a = disk(shape, (50, 50), 18)
    b = disk(shape, (50, 83), 18)  # touches a
    c = disk(shape, (120, 100), 14)
    border = disk(shape, (5, 180), 12)
    tiny = disk(shape, (140, 30), 2)
    for m in (a, b, c, border, tiny):
        img[m] = 1.0
    img += np.random.default_rng(0).normal(0, 0.02, shape)
    labels = an.detect_particles(img, min_area_px=50)
    assert labels.dtype == np.int32
    assert labels.max() == 3
    for m in (a, b, c):
        ids, counts = np.unique(labels[m], return_counts=True)
        assert ids[np.argmax(counts)] > 0
        assert counts.max() > 0.85 * m.sum()  # one label covers the particle
    assert len({np.bincount(labels[m]).argmax() for m in (a, b, c)}) == 3  # a and b split
    assert not labels[border].any() and not labels[tiny].any()
    # three classes: the matrix is below the upper threshold too
    assert an.detect_particles(img, min_area_px=50, classes=3).max() == 3


def test_detect_on_empty_image():
    assert an.detect_particles(np.zeros((20, 20))).max() == 0


def test_kymograph_traces_the_core_boundaries():
    stack, labels, dI = core_stack(core_offset=(0, -6), n_frames=3)
    # horizontal line across the particle (centre row 48, columns 28..68)
    kymo, x_nm = an.line_kymograph(dI, (48, 28), (48, 68), linewidth=3, pixel_nm=65)
    assert kymo.shape == (3, 41)
    assert x_nm[-1] == pytest.approx(40 * 65)
    b = an.kymograph_boundaries(kymo, x_nm, threshold=0.05)
    f1 = b[b.frame == 1]
    assert list(f1.kind) == ["enter", "exit"]
    # core spans columns 48-6-9 = 33 .. 48-6+9 = 51 -> 5 .. 23 px along the line
    # averaged over 3 rows the (round) core is a little narrower than on its centre row
    np.testing.assert_allclose(f1.position_nm / 65, [5.625, 22.375], atol=0.01)
    k1, _ = an.line_kymograph(dI, (48, 28), (48, 68), linewidth=1, pixel_nm=65)
    b1 = an.kymograph_boundaries(k1, x_nm, threshold=0.05)
    np.testing.assert_allclose(b1[b1.frame == 1].position_nm / 65, [4.75, 23.25], atol=0.01)
    assert (b.frame == 0).sum() == 0  # frame 0: everything unreacted, no crossing
    frame, pos = an.last_unreacted_point(kymo, x_nm)
    assert frame == 1 and pos / 65 == pytest.approx(14, abs=0.6)
    # lazily from a dask dI, chunk by chunk
    import dask.array as da

    k2, _ = an.line_kymograph(da.from_array(dI, chunks=(1, 96, 96)), (48, 28), (48, 68),
                              linewidth=3, pixel_nm=65)
    np.testing.assert_allclose(k2, kymo)


def test_wilson_interval_matches_known_values():
    lo, hi = an.wilson_interval(12, 17)
    assert lo == pytest.approx(0.4687, abs=1e-3) and hi == pytest.approx(0.8672, abs=1e-3)
    lo, hi = an.wilson_interval([0, 2], [0, 18])
    assert np.isnan(lo[0]) and hi[1] == pytest.approx(0.3280, abs=1e-3)


def test_cohort_statistics_and_confusion_matrix():
    parts = pd.DataFrame({
        "dataset": ["a"] * 17 + ["b"] * 19,
        "ageing": ["aged"] * 17 + ["fresh"] * 19,
        "particle_id": np.arange(36),
        "classification": ["asymmetric"] * 12 + ["symmetric"] * 5
        + ["asymmetric"] * 2 + ["symmetric"] * 16 + ["undetermined"],
    })
    s = an.cohort_statistics(parts).set_index("ageing")
    assert s.loc["aged", "n_asymmetric"] == 12 and s.loc["aged", "n_particles"] == 17
    assert s.loc["aged", "fraction_asymmetric"] == pytest.approx(12 / 17)
    assert s.loc["fresh", "n_undetermined"] == 1
    assert s.loc["fresh", "fraction_asymmetric"] == pytest.approx(2 / 18)
    assert s.loc["aged", "ci_low"] < 12 / 17 < s.loc["aged", "ci_high"]
    assert {"n_datasets", "ci_low", "ci_high"} <= set(s.columns)

    gt = pd.DataFrame({  # one row per arc; particle 3 has two arcs, 4 none
        "particle_id": [1, 2, 3, 3, 4],
        "center_deg": [180, 0, 90, 270, 0],
        "fraction": [0.25, 0.25, 0.1, 0.2, 0.0],
        "eta": [0.3, 0.7, 0.5, 0.4, 1.0],
    })
    truth = an.true_classes(gt)
    assert truth.to_dict() == {1: "asymmetric", 2: "asymmetric", 3: "asymmetric", 4: "symmetric"}
    assert an.true_classes(gt, max_eta=0.5, min_fraction=0.25)[3] == "asymmetric"
    assert an.true_classes(gt, max_eta=0.5)[2] == "symmetric"
    pred = pd.DataFrame({"particle_id": [1, 2, 3, 4],
                         "classification": ["asymmetric", "symmetric", "asymmetric", "symmetric"]})
    m, acc = an.validate_classification(pred, gt)
    assert m.loc["asymmetric", "asymmetric"] == 2 and m.loc["asymmetric", "symmetric"] == 1
    assert m.loc["symmetric", "symmetric"] == 1 and acc == pytest.approx(0.75)
