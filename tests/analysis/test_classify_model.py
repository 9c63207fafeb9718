"""Classification validated on diffusion-model output through a simple microscope stand-in."""

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi

from asymflux import analysis as an
from asymflux import model

PIXEL_NM = 65.0
TILE = 48


def model_movie(cases, *, rate_mA_g=100, minutes=24, noise=0.005, psf_px=1.5, seed=0):
    """Tile one simulated particle per case into a movie: I = 1 + 2 (θ0 − θ) inside,
    0.3 (matrix) outside, Gaussian PSF, multiplicative noise and a random-walk drift.

    cases: list of (radius_um, [BlockedArc, ...]). Returns stack, labels (truth), capacity,
    time_s, ground-truth arc table.
    """
    rng = np.random.default_rng(seed)
    out_min = np.arange(0.5, minutes + 1e-9, 0.5)
    n_t = out_min.size + 1
    canvas = np.full((n_t, TILE * 2, TILE * int(np.ceil(len(cases) / 2))), 0.3)
    labels = np.zeros(canvas.shape[1:], np.int32)
    gt = []
    for i, (radius, arcs) in enumerate(cases):
        res = model.simulate(model.nmc88_lun2025(), model.disk_mesh(radius), model.Surface(arcs),
                             [model.Charge(rate_mA_g, minutes=minutes)], output_minutes=out_min)
        th = res.to_image(pixel_nm=PIXEL_NM).theta
        inside = np.isfinite(th[0])
        h, w = inside.shape
        r0 = (i % 2) * TILE + (TILE - h) // 2
        c0 = (i // 2) * TILE + (TILE - w) // 2
        tile = canvas[:, r0:r0 + h, c0:c0 + w]
        tile[:, inside] = (1 + 2 * (res.theta0 - th))[:, inside]
        labels[r0:r0 + h, c0:c0 + w][inside] = i + 1
        gt += [{"particle_id": i + 1, "center_deg": a.center_deg, "fraction": a.fraction,
                "eta": a.eta} for a in arcs] or [
            {"particle_id": i + 1, "center_deg": 0.0, "fraction": 0.0, "eta": 1.0}]
    drift = np.cumsum(rng.normal(0, 0.08, (n_t, 2)), axis=0)
    drift[0] = 0
    stack = np.empty(canvas.shape, np.float32)
    for k in range(n_t):
        f = ndi.shift(ndi.gaussian_filter(canvas[k], psf_px), drift[k], order=1, mode="nearest")
        stack[k] = f * (1 + noise * rng.standard_normal(f.shape))
    return stack, labels, res.capacity_mAh_g, res.times_s, pd.DataFrame(gt)


B = model.BlockedArc


@pytest.mark.slow
def test_classification_on_model_output_is_at_least_95_percent_correct():
    cases = [
        (1.2, []), (1.0, []), (1.4, []), (0.9, []), (1.2, []),
        (1.2, [B(180, 0.25, 0.3)]), (1.2, [B(45, 0.25, 0.5)]), (1.0, [B(270, 0.5, 0.3)]),
        (1.4, [B(100, 0.3, 0.5)]), (0.9, [B(0, 0.25, 0.4)]),
    ]
    stack, truth_labels, capacity, time_s, gt = model_movie(cases)
    ts = an.particle_timeseries(stack, truth_labels, pixel_nm=PIXEL_NM, time_s=time_s,
                                capacity_mAh_g=capacity, register=True)
    particles = an.summarize_particles(ts)
    matrix, accuracy = an.validate_classification(particles, gt)
    print(matrix, particles[["particle_id", "classification", "max_offset_norm",
                             "direction_deg", "vanish_capacity_mAh_g"]], sep="\n")
    assert accuracy >= 0.95, matrix
    # the Li-rich core sits on the blocked side (its last part too)
    p = particles.set_index("particle_id")
    for pid, (_, arcs) in enumerate(cases, start=1):
        if arcs:
            diff = (p.loc[pid, "direction_deg"] - arcs[0].center_deg + 180) % 360 - 180
            assert abs(diff) < 45, (pid, p.loc[pid, "direction_deg"])
    # every core vanishes during the charge, before ~24 min at 100 mA/g (40 mAh/g)
    assert p.vanish_capacity_mAh_g.between(5, 40).all()
    # symmetric particles stay far below the threshold, asymmetric ones well above
    sym = p.loc[[1, 2, 3, 4, 5], "max_offset_norm"]
    asym = p.loc[[6, 7, 8, 9, 10], "max_offset_norm"]
    assert sym.max() < 0.5 * an.DEFAULT_ASYMMETRY_THRESHOLD
    assert asym.min() > 1.2 * an.DEFAULT_ASYMMETRY_THRESHOLD


def test_detection_finds_the_model_particles_and_d_grows_on_a_blocked_disk():
    stack, truth_labels, capacity, time_s, gt = model_movie(
        [(1.2, []), (1.2, [B(180, 0.25, 0.3)])], minutes=12, noise=0.002)
    labels = an.detect_particles(stack[0])
    assert labels.max() == 2
    for i in (1, 2):
        overlap = np.bincount(labels[truth_labels == i]).argmax()
        assert overlap > 0
        iou = ((labels == overlap) & (truth_labels == i)).sum() / (
            (labels == overlap) | (truth_labels == i)).sum()
        assert iou > 0.8
    ts = an.particle_timeseries(stack, truth_labels, pixel_nm=PIXEL_NM, capacity_mAh_g=capacity,
                                register=True)
    blocked = ts[(ts.particle_id == 2) & ts.unreacted_fraction.between(0.15, 0.8)]
    assert blocked.offset_norm.is_monotonic_increasing or np.corrcoef(
        blocked.capacity_mAh_g, blocked.offset_norm)[0, 1] > 0.9
    assert (((blocked.offset_angle_deg - 180 + 180) % 360 - 180).abs() < 30).all()
