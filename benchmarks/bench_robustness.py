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

``--beyond``: artefacts that issue 26 does not list, at two severities each (hot pixels,
cosmic rays, dark and over-exposed frames, a dark reference frame, camera offset, flicker,
particles cut by the field's edge, NaN/inf pixels, a stage jump, duplicated frames, low
bit depth, additive stray light with drift, few photons, a wide PSF, a moving beam with
clipping: :func:`beyond_cases`), scored the same way; a movie refused before any work is
a row saying so.

    python benchmarks/bench_robustness.py
    python benchmarks/bench_robustness.py --beyond
    python benchmarks/bench_robustness.py --markdown     # both tables of docs/analysis.md
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


# ---------------------------------------------------------------- beyond the issue's list
# Artefacts of real microscopes that issue 26 does not list (``--beyond``), most likely
# first. Each is a function of the clean camera frames ("post"), applied after
# :func:`image`, or options of :func:`image`; "crop" cuts the field (particles partly
# outside it). Pixels and frames hit are drawn from fixed seeds.


def _hot(fraction, value):
    def post(s):
        s = s.copy()
        s[:, np.random.default_rng(7).random(SHAPE) < fraction] = value
        return s
    return post


def _cosmic(per_frame, *, frame=None, on=None):
    """Cosmic-ray hits: short streaks (1-5 px) of 3000-20000 counts, ``per_frame`` in every
    frame (or only in ``frame``; only on the pixels where ``on``)."""
    def post(s):
        rng = np.random.default_rng(8)
        s = s.copy()
        where = np.argwhere(np.ones(SHAPE, bool) if on is None else on)
        for k in range(N) if frame is None else (frame,):
            for _ in range(per_frame):
                r, c = where[rng.integers(len(where))]
                ang = rng.uniform(0, np.pi)
                for t in range(int(rng.integers(1, 6))):
                    rr, cc = int(r + t * np.sin(ang)), int(c + t * np.cos(ang))
                    if 0 <= rr < SHAPE[0] and 0 <= cc < SHAPE[1]:
                        s[k, rr, cc] += rng.uniform(3000, 20000)
        return s
    return post


def _dark(frames, level=2.0):
    """Shutter-closed frames: the camera's offset ``level`` and read noise only."""
    def post(s):
        s = s.copy()
        rng = np.random.default_rng(9)
        for k in frames:
            s[k] = level + rng.normal(0, 1.5, SHAPE)
        return s
    return post


def _overexposed(frame, gain):
    def post(s):
        s = s.copy()
        s[frame] = np.minimum(s[frame] * gain, s.max())
        return s
    return post


def _duplicated(frames):
    def post(s):
        s = s.copy()
        for k in frames:
            s[k + 1] = s[k]
        return s
    return post


def _flicker(amplitude):
    def post(s):
        g = 1 + np.random.default_rng(10).uniform(-amplitude, amplitude, N)
        g[0] = 1.0
        return s * g[:, None, None]
    return post


def _bits(bits):
    def post(s):
        levels = 2 ** bits - 1
        return np.round(s / s.max() * levels).astype(np.uint8 if bits <= 8 else np.uint16)
    return post


def _nonfinite(fraction, value, *, every_frame=False, flicker=0.0):
    def post(s):
        s = (_flicker(flicker)(s) if flicker else s).astype(float)
        rng = np.random.default_rng(12)
        if every_frame:
            for k in range(N):
                s[k][rng.random(SHAPE) < fraction] = value
        else:
            s[:, rng.random(SHAPE) < fraction] = value
        return s
    return post


def _gradient(fraction, background=676.0):
    """Stray light: an additive ramp across the field, from 0 to ``fraction`` x the
    background, fixed on the camera (the sample drifts under it)."""
    ramp = fraction * background * np.linspace(0, 1, SHAPE[1])[None, None, :]
    return lambda s: s + ramp


def _clip(c, labels):
    return lambda s: np.minimum(s, c * np.median(s[0][labels == 1]))


def beyond_cases(theta, labels, matrix):
    sig0 = optics.psf_sigma_nm() / PIXEL_NM
    drift = np.column_stack([np.linspace(0, 0.3 * N / 2, N), np.linspace(0, 0.3 * N / 2, N)])
    on_particles = binary_erosion_mask(labels)
    yield "hot pixels", "0.05 % at 16000", {"post": _hot(5e-4, 16000.0)}
    yield "hot pixels", "0.3 % at 4095", {"post": _hot(3e-3, 4095.0)}
    yield "cosmic rays (every frame)", "2 / frame", {"post": _cosmic(2)}
    yield "cosmic rays (every frame)", "10 / frame", {"post": _cosmic(10)}
    yield "cosmic rays on the particles, reference frame", "4 hits", {
        "post": _cosmic(4, frame=0, on=on_particles)}
    yield "cosmic rays on the particles, reference frame", "12 hits", {
        "post": _cosmic(12, frame=0, on=on_particles)}
    yield "dark (shutter-closed) frames", "1 frame", {"post": _dark([13])}
    yield "dark (shutter-closed) frames", "3 frames", {"post": _dark([5, 13, 21])}
    yield "dark reference frame (offset 100)", "frame 0", {
        "post": lambda s: _dark([0], level=100.0)(s + 100.0)}
    yield "over-exposed frame", "x 2", {"post": _overexposed(13, 2.0)}
    yield "over-exposed frame", "x 3", {"post": _overexposed(13, 3.0)}
    yield "camera offset (not subtracted)", "100", {"post": lambda s: s + 100.0}
    yield "camera offset (not subtracted)", "500", {"post": lambda s: s + 500.0}
    yield "flicker (uniform, per frame)", "± 10 %", {"post": _flicker(0.10)}
    yield "flicker (uniform, per frame)", "± 20 %", {"post": _flicker(0.20)}
    yield "particles cut by the field's edge", "3 of 4 cut", {"crop": 30}
    yield "particles cut by the field's edge", "3 of 4, deeper", {"crop": 36}
    yield "NaN / inf pixels (float stack)", "0.1 % inf", {"post": _nonfinite(1e-3, np.inf)}
    yield "NaN / inf pixels (float stack)", "0.1 % NaN per frame + flicker 10 %", {
        "post": _nonfinite(1e-3, np.nan, every_frame=True, flicker=0.10)}
    for px in (5, 12):
        yield "stage jump (mid-movie)", f"{px} px", {
            "drift": np.array([[0, 0] if k < N // 2 else [px, px] for k in range(N)], float)}
    yield "duplicated frames", "1", {"post": _duplicated([10])}
    yield "duplicated frames", "2", {"post": _duplicated([10, 20])}
    yield "low bit depth", "8 bit", {"post": _bits(8)}
    yield "low bit depth", "6 bit", {"post": _bits(6)}
    yield "additive stray-light ramp + drift 0.3 px/frame", "30 % of background", {
        "post": _gradient(0.3), "drift": drift}
    yield "additive stray-light ramp + drift 0.3 px/frame", "100 % of background", {
        "post": _gradient(1.0), "drift": drift}
    yield "Poisson photons", "300", {"electrons": 300.0}
    yield "Poisson photons", "100", {"electrons": 100.0}
    for s in (4, 6):
        yield "wide PSF (static)", f"σ {s} px", {
            "na": lambda k, s=s: optics.DEFAULT_NA * sig0 / s}
    for sigma in (120.0, 60.0):
        yield "moving beam (30 px) + clipping 1.1 x start", f"σ {sigma:.0f} px", {
            "illumination": beam(30, sigma), "post": _clip(1.1, labels)}


def binary_erosion_mask(labels, px=3):
    """The particles' pixels at least ``px`` inside their outline."""
    from scipy import ndimage as ndi

    return ndi.binary_erosion(labels > 0, iterations=px)


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
        ("clips at", "clip warning"), ("dropped", "gap warning"),
        ("spikes in the reference", "reference spikes"),
        ("exposure outliers", "exposure outliers"),
        ("identical to the frame before", "duplicated frames"),
        ("blurred wider", "wide PSF"))


def run(markdown=False, beyond=False):
    theta, labels, matrix = scene()
    truth_stack = image(theta, labels, matrix, noise=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = io.Dataset(stack=truth_stack, time_s=np.arange(N) * 60.0, pixel_nm=PIXEL_NM,
                        masks=labels)
        p_true, t_true = an.analyze_dataset(ds, min_core_px=1)
    classes_true = ["asymmetric" if a else "symmetric" for *_, a in PARTICLES]
    rows = []
    if beyond:
        all_cases = list(beyond_cases(theta, labels, matrix))
    else:
        all_cases = list(cases(theta, labels, matrix))
        for s in (0.1, 0.2):  # dropped frames: a bare stack given its frames' times
            all_cases.append(("dropped frames (times given)", f"{s:.0%}", {"drop": s}))
    for name, severity, kw in all_cases:
        kw = dict(kw)
        clip, dust, drop = kw.pop("clip", None), kw.pop("dust", None), kw.pop("drop", None)
        speck = kw.pop("speck", None)
        post, crop = kw.pop("post", None), kw.pop("crop", None)
        stack = image(theta, labels, matrix, **kw)
        if post is not None:
            stack = post(stack)
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
        case_labels = labels
        if crop is not None:  # the field cut: particles partly outside it
            stack, case_labels = stack[:, crop:, crop:], labels[crop:, crop:]
        out = []
        refused = None
        for given in (True, False):
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = io.Dataset(stack=stack, time_s=kept * 60.0, pixel_nm=PIXEL_NM,
                                masks=case_labels if given else None)
                try:
                    p, ts, used = an.analyze_dataset(ds, return_labels=True)
                except ValueError as e:  # refused before any work, with the reason
                    refused = str(e)
                    break
            dt = time.perf_counter() - t0
            pid_map = (np.arange(1, len(PARTICLES) + 1) if given
                       else _match(used, case_labels))
            out.append((*score(p, ts, t_true, kept, pid_map, classes_true), dt))
        if refused is not None:
            rows.append((name, severity, refused))
            continue
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
            if len(r) == 3:
                print(f"| {r[0]} | {r[1]} | refused before any work: {r[2][:160]} |"
                      + " |" * 8)
                continue
            print(f"| {r[0]} | {r[1]} | {r[2]:.0f} % | {r[3]:.0f} % | {r[4]} / 4"
                  f"{f' ({r[5]} undet.)' if r[5] else ''} | {r[6]:.0f} % | {r[7]:.0f} % | "
                  f"{r[8]} / 4{f' ({r[9]} undet.)' if r[9] else ''} | {r[10]} | {r[11]} | "
                  f"{r[12]:.1f} |")
    else:
        for r in rows:
            if len(r) == 3:
                print(f"{r[0]:30s} {r[1]:16s} refused: {r[2]}")
                continue
            print(f"{r[0]:30s} {r[1]:16s} masks: right {r[2]:5.1f} % |flagged {r[3]:5.1f} % "
                  f"classes {r[4]}/4 ({r[5]} undet.)  detected: right {r[6]:5.1f} % |flagged "
                  f"{r[7]:5.1f} % classes {r[8]}/4 ({r[9]} undet.)  {r[12]:.1f} s  flags: "
                  f"{r[10]}  said: {r[11]}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--markdown", action="store_true",
                    help="print Markdown tables (the issue's artefacts, then the --beyond ones)")
    ap.add_argument("--beyond", action="store_true",
                    help="only the artefacts beyond issue 26's list (hot pixels, cosmic rays, "
                         "dark frames, camera offset, cut particles, ...)")
    args = ap.parse_args()
    if not args.beyond:
        run(markdown=args.markdown)
    if args.beyond or args.markdown:
        if args.markdown and not args.beyond:
            print()
        run(markdown=args.markdown, beyond=True)
