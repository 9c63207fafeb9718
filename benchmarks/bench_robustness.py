"""Benchmark: the analysis on movies with the artefacts of real microscopes (issue 26).

The project's synthetic microscope (:mod:`asymflux.optics`: carbon matrix, Gaussian PSF
σ = 140 nm ≈ 2.2 px at 65 nm/px, camera noise) images 4 particles (2 symmetric, 2 with
the core walking to one side), 30 frames, 160 x 160 px, and each artefact is added at two
severities. Each movie goes through ``analyze_dataset`` with default options, once with the true
masks and once detecting the particles itself (each true particle matched to the detected
one whose centre is within 5 px; a missed particle's frames count as wrong); the truth is
the same pipeline on the artefact-free, noise-free movie with the true masks. Printed per
case: the particle-frames whose d is within max(5 %, 1 px) of the truth (of those where
the truth has a d; a NaN d counts as wrong unless flagged), the particle-frames within
tolerance *or* flagged (any flag but core_too_small), the classes right (of 4; how many
'undetermined'), the flags raised (particle-frames, with the masks) and what the warnings
said. The dust ring darkens a 6 px ring inside particle 1, the speck a Gaussian (σ 2.5 px)
6 px outside particle 2, both from frame N / 2 on. Dropped frames: a bare stack missing
10 % / 20 % of its frames, given the kept frames' times (as ``--frame-times`` does). No
asserts.

    python benchmarks/bench_robustness.py
    python benchmarks/bench_robustness.py --markdown     # the table of docs/analysis.md
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from asymflux import analysis as an
from asymflux import io, optics

SHAPE = (160, 160)
N = 30
PIXEL_NM = 65.0
#: (row, col, radius px, asymmetry: core centre offset per unit of shrinkage)
PARTICLES = ((45, 45, 20, 0.0), (45, 115, 18, 0.6), (115, 45, 19, 0.5), (115, 115, 20, 0.0))


def disk(center, radius):
    rr, cc = np.indices(SHAPE)
    return (rr - center[0]) ** 2 + (cc - center[1]) ** 2 <= radius ** 2


def scene():
    rr, cc = np.indices(SHAPE)
    labels = np.zeros(SHAPE, np.int32)
    theta = np.full((N, *SHAPE), np.nan)
    for i, (r, c, rad, a) in enumerate(PARTICLES, start=1):
        inside = disk((r, c), rad)
        labels[inside] = i
        for k in range(N):
            r_core = rad * (1 - k / (N - 4))  # gone 4 frames before the end
            cc_core = c + a * (rad - max(r_core, 0))
            out = np.hypot(rr - r, cc - cc_core) - max(r_core, 0)
            th = optics.DEFAULT_THETA_REF - 0.4 * (1 - np.exp(-np.clip(out, 0, None) / 3.0))
            theta[k][inside] = th[inside]
    matrix = optics.carbon_matrix(SHAPE, np.random.default_rng(0), pixel_nm=PIXEL_NM)
    return theta, labels, matrix


def image(theta, labels, matrix, *, na=None, illumination=None, drift=None, electrons=4000.0,
          noise=True, seed=1):
    frames = []
    for k in range(N):
        frames.append(optics.microscope(
            theta[k:k + 1], np.random.default_rng(seed + k), coverage=(labels > 0).astype(float),
            particle_reflectivity=1.0, matrix_reflectivity=matrix, pixel_nm=PIXEL_NM,
            na=optics.DEFAULT_NA if na is None else na(k),
            drift_px=None if drift is None else drift[k:k + 1],
            electrons_per_unit=electrons, noise=False)[0])
    img = np.array(frames)
    if illumination is not None:
        img = img * illumination
    if noise:
        rng = np.random.default_rng(seed)
        gain = 0.5
        img = gain * rng.poisson(np.clip(img / gain, 0, None)) + rng.normal(0, 1.5, img.shape)
    return img


def beam(shift_px, sigma_px=120.0):
    rr, cc = np.indices(SHAPE)
    out = np.empty((N, *SHAPE))
    for k in range(N):
        c0 = 80 + shift_px * k / (N - 1)
        out[k] = np.exp(-((rr - 80) ** 2 + (cc - c0) ** 2) / (2 * sigma_px ** 2))
    return out / out[0].max()


def cases(theta, labels, matrix):
    ramp = np.linspace(1, 1, N)
    start = None
    yield "clean (camera noise)", "-", {}
    for s in (0.05, 0.10):
        yield "illumination drift", f"{s:.0%}", {"illumination": (ramp + s * np.linspace(0, 1, N))
                                                 [:, None, None]}
    for s, sigma in ((15, 120.0), (30, 120.0), (30, 60.0)):
        yield "beam profile moving", f"{s} px, σ {sigma:.0f} px", {"illumination": beam(s, sigma)}
    for s in (3, 4):
        sig0 = optics.psf_sigma_nm() / PIXEL_NM
        yield "focus drift", f"PSF {sig0:.1f} -> {s} px", {
            "na": lambda k, s=s, sig0=sig0: optics.DEFAULT_NA / (1 + (s / sig0 - 1) * k / (N - 1))}
    for s in (0.015, 0.03):
        fpn = 1 + s * np.random.default_rng(5).standard_normal(SHAPE)
        drift = np.column_stack([np.linspace(0, 0.3 * N / 2, N), np.linspace(0, 0.3 * N / 2, N)])
        yield "FPN + stage drift 0.3 px/frame", f"{s:.1%}", {"illumination": fpn, "drift": drift}
    del start
    for s in (1.10, 1.05):
        yield "clipping", f"{s:g} x start", {"clip": s}
    for s in (0.8, 0.6):
        yield "dark dust ring (mid-movie)", f"x {s:g}", {"dust": s}
    for s in (0.85, 0.7):
        yield "dark speck beside a particle (mid-movie)", f"x {s:g}", {"speck": s}
    for s in (3000.0, 1000.0):
        yield "Poisson photons", f"{s:g}", {"electrons": s}


def _match(detected, labels):
    """For each true particle, the detected label whose centre is nearest (within 5 px), or 0."""
    from scipy import ndimage as ndi

    ids = np.arange(1, int(labels.max()) + 1)
    true = np.array(ndi.center_of_mass(labels > 0, labels, ids))
    found = np.arange(1, int(detected.max()) + 1)
    if not found.size:
        return np.zeros(ids.size, int)
    cen = np.array(ndi.center_of_mass(detected > 0, detected, found))
    out = []
    for t in true:
        dist = np.hypot(*(cen - t).T)
        out.append(int(found[np.argmin(dist)]) if dist.min() <= 5 else 0)
    return np.array(out)


def score(p, ts, t_true, kept, pid_map, classes_true):
    """(% right, % right or flagged, classes right, classes undetermined, flags) of one
    analysis against the truth (frames ``kept`` of it; detected ids ``pid_map``)."""
    from asymflux.analysis._quality import flag_counts

    n_true = len(PARTICLES)
    d_true = t_true.offset_nm.to_numpy().reshape(n_true, N)[:, kept] / PIXEL_NM
    f_true = t_true.unreacted_fraction.to_numpy().reshape(n_true, N)[:, kept]
    n_kept = len(kept)
    d = np.full((n_true, n_kept), np.nan)
    fl = np.full((n_true, n_kept), False)
    cls = []
    for i, pid in enumerate(pid_map):
        rows = ts[ts.particle_id == pid].sort_values("frame")
        if pid and len(rows) == n_kept:
            d[i] = rows.offset_nm.to_numpy() / PIXEL_NM
            q = rows.quality_flags.fillna("").astype(str).to_numpy()
            fl[i] = (q != "") & (q != "core_too_small")
            cls.append(p.set_index("particle_id").classification.get(pid, "missed"))
        else:
            cls.append("missed")
    has = np.isfinite(d_true) & (f_true > 0.05)
    right = has & (np.abs(d - d_true) <= np.maximum(0.05 * d_true, 1.0))
    kept_ids = [pid for pid in pid_map if pid]
    flags = flag_counts(ts[ts.particle_id.isin(kept_ids)].quality_flags)
    return (100 * right.sum() / has.sum(), 100 * (right | fl)[has].sum() / has.sum(),
            int(sum(c == t for c, t in zip(cls, classes_true, strict=True))),
            int(sum(c == "undetermined" for c in cls)), flags)


SAID = (("spatial pattern", "illumination corrected"), ("normalised", "auto-normalised"),
        ("local_darkening", "local darkening"),
        ("clips at", "clip warning"), ("dropped", "gap warning"))


def run(markdown=False):
    theta, labels, matrix = scene()
    truth_stack = image(theta, labels, matrix, noise=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = io.Dataset(stack=truth_stack, time_s=np.arange(N) * 60.0, pixel_nm=PIXEL_NM,
                        masks=labels)
        p_true, t_true = an.analyze_dataset(ds, min_core_px=1)
    classes_true = ["asymmetric" if a else "symmetric" for *_, a in PARTICLES]
    rows = []
    all_cases = list(cases(theta, labels, matrix))
    for s in (0.1, 0.2):  # dropped frames: a bare stack given its frames' times
        all_cases.append(("dropped frames (times given)", f"{s:.0%}", {"drop": s}))
    for name, severity, kw in all_cases:
        kw = dict(kw)
        clip, dust, drop = kw.pop("clip", None), kw.pop("dust", None), kw.pop("drop", None)
        speck = kw.pop("speck", None)
        stack = image(theta, labels, matrix, **kw)
        if clip is not None:
            level = clip * np.median(stack[0][labels == 1])
            stack = np.minimum(stack, level)
        if dust is not None:
            rr, cc = np.indices(SHAPE)
            ring = np.abs(np.hypot(rr - 40, cc - 38) - 6) < 1.5
            stack[N // 2:, ring] *= dust
        if speck is not None:  # a Gaussian speck (σ 2.5 px) 6 px outside particle 2
            rr, cc = np.indices(SHAPE)
            stack[N // 2:] *= 1 - (1 - speck) * np.exp(
                -((rr - 45) ** 2 + (cc - 139) ** 2) / (2 * 2.5 ** 2))
        kept = np.arange(N)
        if drop is not None:
            gone = np.random.default_rng(11).choice(np.arange(1, N), int(round(drop * N)),
                                                    replace=False)
            kept = np.setdiff1d(kept, gone)
            stack = stack[kept]
        out = []
        for given in (True, False):
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = io.Dataset(stack=stack, time_s=kept * 60.0, pixel_nm=PIXEL_NM,
                                masks=labels if given else None)
                p, ts, used = an.analyze_dataset(ds, return_labels=True)
            dt = time.perf_counter() - t0
            pid_map = np.arange(1, len(PARTICLES) + 1) if given else _match(used, labels)
            out.append((*score(p, ts, t_true, kept, pid_map, classes_true), dt))
        (r, rf, c, u, flags, dt), (r2, rf2, c2, u2, _, dt2) = out
        said = "; ".join(dict.fromkeys(label for w in p.attrs.get("warnings", [])
                                       for key, label in SAID if key in w)) or "-"
        rows.append((name, severity, r, rf, c, u, r2, rf2, c2, u2,
                     ", ".join(f"{k} {v}" for k, v in flags.items()) or "-", said, dt + dt2))
    head = ("| artefact | severity | right (masks) | right or flagged (masks) | classes (masks) "
            "| right (detected) | right or flagged (detected) | classes (detected) "
            "| flags (particle-frames, masks) | said | s |")
    if markdown:
        print(head)
        print("| --- " * 11 + "|")
        for r in rows:
            print(f"| {r[0]} | {r[1]} | {r[2]:.0f} % | {r[3]:.0f} % | {r[4]} / 4"
                  f"{f' ({r[5]} undet.)' if r[5] else ''} | {r[6]:.0f} % | {r[7]:.0f} % | "
                  f"{r[8]} / 4{f' ({r[9]} undet.)' if r[9] else ''} | {r[10]} | {r[11]} | "
                  f"{r[12]:.1f} |")
    else:
        for r in rows:
            print(f"{r[0]:30s} {r[1]:16s} masks: right {r[2]:5.1f} % |flagged {r[3]:5.1f} % "
                  f"classes {r[4]}/4 ({r[5]} undet.)  detected: right {r[6]:5.1f} % |flagged "
                  f"{r[7]:5.1f} % classes {r[8]}/4 ({r[9]} undet.)  {r[12]:.1f} s  flags: "
                  f"{r[10]}  said: {r[11]}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table")
    run(markdown=ap.parse_args().markdown)
