"""Quality flags per particle and frame: what a real microscope does to the numbers.

:func:`~asymflux.analysis.particle_timeseries` measures, in the same pass over the movie
as the shrinking core, what would make a frame's numbers wrong, and writes the names of the
flags raised into its ``quality_flags`` column (``;``-separated, ``""`` when none).
:func:`~asymflux.analysis.summarize_particles` counts them per particle. Each flag, its
threshold and what it means for the numbers is in :data:`QUALITY_FLAGS` and
``docs/analysis.md``.

The thresholds are stated relative to the dI threshold (``threshold``, paper 0.05,
:data:`asymflux.optics.UNREACTED_THRESHOLD`): a change of the light of 1 % is a fifth of
the dI that tells a reacted pixel from an unreacted one.
"""

from __future__ import annotations

import numpy as np

from .._validate import check_range

__all__ = [
    "QUALITY_FLAGS", "BACKGROUND_DRIFT_FRACTION", "FOCUS_CHANGE_TOLERANCE",
    "REGISTRATION_RESIDUAL_PX", "RETURN_MIN_FRACTION", "default_min_core_px",
    "detect_saturation_level", "check_intensities", "flag_summary", "flag_counts",
]

#: The particle-free background near a particle drifting by more than this fraction of the
#: dI threshold (relative to the reference frames) raises ``background_drift``.
BACKGROUND_DRIFT_FRACTION = 0.2
#: Relative change of a particle's spilled light (mean of the ring 1-4 px outside it, less
#: the background ring, over the mean of its band 0-3 px inside the outline less the
#: background ring) from the reference frames that raises ``focus_change``.
FOCUS_CHANGE_TOLERANCE = 0.4
#: Departure (px) of a frame's drift estimate from the median of its 5 neighbours that
#: raises ``registration_residual``.
REGISTRATION_RESIDUAL_PX = 0.5
#: Pixels that were clearly reacted (dI >= threshold + delta) and are now clearly unreacted
#: (dI < threshold - delta), delta = the dI threshold: at least 3 and at least this
#: fraction of the particle's inner pixels raise ``returned_below_threshold``.
RETURN_MIN_FRACTION = 0.02
#: Background ring: from this far from every particle (px) ...
RING_MARGIN_PX = 6
#: ... this wide (px).
RING_WIDTH_PX = 8
#: Smallest spill (share of the particle's contrast in the near ring) whose change is
#: followed by ``focus_change``: below it the image is too sharp (or too noisy) to tell.
MIN_SPILL = 0.02
#: ... and the particle must differ from its background by this fraction at the start.
MIN_CONTRAST = 0.1
#: The band inside a particle's outline whose light is compared with the spill (px).
BAND_PX = 3
#: The near ring, where a particle's PSF spills its light (px from the particle).
NEAR_RING_PX = (1, 4)
#: Pixels at exactly the top value in one frame that make a pile-up (camera clipping).
PILE_UP_MIN_PX = 10
#: ... and at least this many times as many as any other single value (a uniform synthetic
#: image, where every value is shared by many pixels, is not clipped).
PILE_UP_RATIO = 5

QUALITY_FLAGS = {
    "background_drift": (
        "the particle-free background around the particle (a ring 6-14 px from every "
        "particle) changed by more than 0.2 x the dI threshold (1 % for 0.05) from the "
        "reference frames, after any illumination normalisation: illumination drift or a "
        "moving beam; dI of the whole particle is offset by about as much, so the "
        "unreacted region and d are biased (use normalize='frame_mean' / "
        "--normalize-illumination for a whole-frame drift)"),
    "saturated": (
        "pixels of the particle at the camera's clip level (the top value piled up on 10 or "
        "more pixels of a frame, an integer type's maximum, or saturation_level=): they are "
        "unknown (NaN), neither reacted nor unreacted; the unreacted fraction and d use the "
        "other pixels"),
    "focus_change": (
        "the particle's light spilled into the ring 1-4 px outside its outline, relative to "
        "the light of its band 0-3 px inside (both less the background ring 6-14 px out), "
        "changed by more than 40 % from the reference frames: the focus (PSF width) "
        "changed; the edge pixels' dI and the unreacted region near the outline are biased"),
    "registration_residual": (
        "the frame's drift estimate departs by more than 0.5 px from the median of its 5 "
        "neighbours: registration failed or the stage jumped; every number of the frame is "
        "suspect"),
    "returned_below_threshold": (
        "pixels that were clearly reacted (dI >= 2 x threshold) are clearly unreacted again "
        "(dI < 0): delithiation runs one way, so this is dust, a defocus or another artefact "
        "(at least 3 pixels and 2 % of the particle's inner pixels)"),
    "local_darkening": (
        "a sudden, persistent darkening of part of the particle or of its particle-free "
        "surroundings (0-14 px out), in 4 x 4 px tiles, by more than 6 x its noise measured "
        "in the movie and 0.2 x the dI threshold, against the reaction (the particle's "
        "pixels only brighten on a charge), after removing the local illumination (a plane "
        "fitted to the surroundings in each frame): dust, a speck or a shadow arriving; "
        "raised from that frame to the end of the movie. The frames' d may be wrong: the "
        "particle's class is taken from its other frames, 'undetermined' when they do not "
        "show it asymmetric"),
    "core_too_small": (
        "fewer unreacted pixels than min_core_px (default: the area of a PSF, pi x edge_px^2, "
        "at least 4): the core is unresolved and its centre is noise; d, d/R_eq and the "
        "direction are NaN"),
    "exposure_outlier": (
        "the frame's level (median) differs from the median of its 3 neighbours on each "
        "side by more than a factor 2, or its contrast (95th - 5th percentile) is below a "
        "quarter of theirs with its level below 0.8 x: a dark, shutter-closed or "
        "over-exposed frame; its measurements are NaN"),
    "psf_wide": (
        "the particle's outline in the reference image is blurred by a Gaussian wider than "
        "1.5 x edge_px (its sigma from the 25-75 % rise of the mean profile across the "
        "outline): the PSF is wider than the analysis assumes; the reacted shell's blurred "
        "light moves the thresholded core, d is biased (towards the centre on a symmetric "
        "particle, away from it on an asymmetric one) and the core vanishes early; edge_px "
        "does not correct it"),
    "outside_frame": (
        "the particle's mask touches the frame's edge, or the drift carries part of it out "
        "of the frame: the particle may go on beyond the edge and the pixels read there are "
        "copies of the edge's, so O_COM, R_eq and d are those of the part in view, not of "
        "the particle"),
    "duplicated_frame": (
        "the frame is identical to the frame before it (the camera or the writer sent the "
        "same image twice): its numbers are the previous frame's, its time is not when it "
        "was taken"),
}


#: Flags kept in the tables but not warned about: the core becomes too small at the end of
#: every charge (d is NaN there, as it should be).
NOT_WARNED = ("core_too_small",)


def default_min_core_px(edge_px) -> int:
    """Smallest core whose centre is a measurement: a PSF's area, π·σ² with σ ≈ ``edge_px``
    pixels (at least 4 pixels)."""
    return max(4, int(np.ceil(np.pi * max(int(edge_px), 1) ** 2)))


def detect_saturation_level(frames, dtype=None):
    """The camera's clip level seen in ``frames`` (any number of frames), or None.

    The top value of a frame is a clip level when at least :data:`PILE_UP_MIN_PX` pixels
    hold exactly it, and :data:`PILE_UP_RATIO` times as many as hold any other value (a
    pile-up: noise does not give one value to many pixels of a bright region), or when it is the maximum of an integer ``dtype`` (e.g. 65535 for uint16).
    """
    raw = np.asarray(frames)
    # 16-bit (or narrower) integers: the values counted by bincount, not sorted by np.unique
    small_int = raw.dtype.kind in "iu" and raw.dtype.itemsize <= 2 and raw.size > 0
    frames = np.asarray(raw, dtype=np.float64)
    finite = frames[np.isfinite(frames)]
    if finite.size == 0:
        return None
    top = float(finite.max())
    if dtype is not None and np.dtype(dtype).kind in "iu" and top >= np.iinfo(dtype).max:
        return top
    for k, f in enumerate(frames.reshape(-1, *frames.shape[-2:])):
        f = f[np.isfinite(f)]
        if not f.size or f.max() != top:
            continue
        if small_int:
            r = raw.reshape(-1, *raw.shape[-2:])[k].ravel().astype(np.int64)
            counts = np.bincount(r - r.min())
            counts = counts[counts > 0]  # those of the values present, as np.unique's
        else:
            values, counts = np.unique(f, return_counts=True)
        n_top = counts[-1]
        others = counts[:-1].max() if counts.size > 1 else 0
        if n_top >= PILE_UP_MIN_PX and n_top >= PILE_UP_RATIO * others:
            return top
    return None


def auto_saturation_level(stack, n_reference_frames=1):
    """:func:`detect_saturation_level` on the reference frames and the last frame of a
    stack (reads only those)."""
    from ._chunks import read_chunk

    n_frames = int(stack.shape[0])
    n_look = max(1, min(int(n_reference_frames), n_frames))
    return detect_saturation_level(
        np.concatenate([read_chunk(stack, 0, n_look), read_chunk(stack, n_frames - 1, n_frames)]),
        dtype=getattr(stack, "dtype", None))


#: Frames read to decide whether the whole frame's illumination drifts (evenly spaced).
AUTO_NORMALIZE_FRAMES = 24


def background_drift(stack, labels, *, n_reference_frames=1, n_sample=AUTO_NORMALIZE_FRAMES):
    """``(largest |B_t / B_ref - 1|, frame)`` of the mean particle-free intensity B_t
    (:func:`particle_free_pixels`) over ``n_sample`` evenly spaced frames, B_ref the mean
    of the reference frames; ``(nan, -1)`` when there is no particle-free pixel."""
    from ._chunks import as_float, read_chunk
    from ._differential import _frame_means, particle_free_pixels

    n_frames = int(stack.shape[0])
    try:
        free = np.flatnonzero(particle_free_pixels(labels))
    except ValueError:
        return np.nan, -1
    n_ref = max(1, min(int(n_reference_frames), n_frames))
    ref = float(np.mean(_frame_means(as_float(read_chunk(stack, 0, n_ref)), free)))
    if not (np.isfinite(ref) and ref > 0):
        return np.nan, -1
    frames = np.unique(np.linspace(0, n_frames - 1, min(n_frames, int(n_sample))).astype(int))
    b = np.full(frames.size, np.nan)
    for i, k in enumerate(frames):
        frame = as_float(read_chunk(stack, k, k + 1))
        finite = frame[np.isfinite(frame)]
        if finite.size and finite.max() > finite.min():  # not blank (reported elsewhere)
            b[i] = _frame_means(frame, free)[0]
    rel = np.abs(b / ref - 1.0)
    if not np.isfinite(rel).any():
        return np.nan, -1
    i = int(np.nanargmax(rel))
    return float(rel[i]), int(frames[i])


def dI_noise(i0, px, labels, n_reference_frames=1):
    """Pixel noise of dI (one standard deviation) of each particle, from its reference
    image alone (so that it is known from the first frame on, live as in batch).

    The differences between horizontally neighbouring inner pixels of a particle,
    relative to their value, have a spread of sqrt(2) x the reference's relative noise s
    (1.4826 x their median absolute deviation; the PSF-smooth signal hardly differs
    between neighbours, texture of the particle counts as noise: conservative). With a
    reference averaged over n frames, dI = I/I0 - 1 has the noise of one frame and of
    I0: s x sqrt(n + 1). (n_particles,); 0 where fewer than 10 pixel pairs.
    """
    i0 = np.asarray(i0, dtype=np.float64)
    n_col = labels.shape[1]
    out = np.zeros(px.ids.size)
    flat = px.flat
    inner = px.inner > 0
    img = np.full(labels.size, np.nan)
    img[flat[inner]] = i0[inner]
    right = flat + 1
    ok = inner & ((flat % n_col) < n_col - 1)
    right = np.where(ok, right, flat)
    same = labels.ravel()[right] == labels.ravel()[flat]
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = (img[right] - img[flat]) / img[flat]
    ok &= same & np.isfinite(rel)
    bounds = np.r_[px.starts, flat.size]
    n = max(1, int(n_reference_frames))
    for i in range(px.ids.size):
        v = rel[bounds[i]:bounds[i + 1]][ok[bounds[i]:bounds[i + 1]]]
        if v.size >= 10:
            s = 1.4826 * np.median(np.abs(v - np.median(v))) / np.sqrt(2)
            out[i] = s * np.sqrt(n + 1)
    return out


def check_intensities(frames, *, name, intensity_offset=0.0):
    """Refuse frames holding negative intensities (a background-subtracted movie): dI =
    I/I0 − 1 needs intensities proportional to the light. ValueError naming ``name`` and
    the fix (``intensity_offset=`` / ``--intensity-offset``)."""
    f = np.asarray(frames, dtype=np.float64) + float(intensity_offset)
    finite = f[np.isfinite(f)]
    if finite.size == 0:
        return
    lo = float(finite.min())
    if lo < 0:
        frac = np.count_nonzero(finite < 0) / finite.size
        raise ValueError(
            f"{name}: {100 * frac:.2g} % of the reference pixels are negative (minimum "
            f"{lo:g}{' after the offset' if intensity_offset else ''}): the movie looks "
            "background- or dark-subtracted, but dI = I/I0 - 1 needs intensities "
            "proportional to the light. Analyse the raw movie, or add back what was "
            f"subtracted with intensity_offset= (--intensity-offset), e.g. {-lo * 1.5:.3g} "
            "if nothing better is known (dI then shrinks by I0/(I0 + offset))")


class OffsetStack:
    """A stack read with ``offset`` added to every pixel (float64): ``intensity_offset=``."""

    def __init__(self, stack, offset):
        self.stack = stack
        self.offset = float(offset)
        self.shape = tuple(stack.shape)
        self.ndim = len(self.shape)
        self.dtype = np.dtype(np.float64)

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, key):
        block = self.stack[key]
        if type(block).__module__.startswith("dask."):
            block = block.compute(scheduler="synchronous")
        return np.asarray(block, dtype=np.float64) + self.offset


def saturation_warning(ref_values, px, clip, threshold):
    """A warning (or None) naming the particles whose starting brightness × (1 + threshold)
    reaches the clip level on some pixels: those pixels cannot be seen reacting."""
    if clip is None:
        return None
    hit = px.reduce(((ref_values * (1 + threshold)) >= clip).astype(np.float64)[None])[0]
    bad = np.flatnonzero(hit > 0)
    if not bad.size:
        return None
    shown = ", ".join(f"{int(px.ids[i])} ({100 * hit[i] / px.area_px[i]:.0f} %)"
                      for i in bad[:10]) + (", ..." if bad.size > 10 else "")
    return (f"saturation: the camera clips at {clip:g}, and the starting brightness x (1 + "
            f"threshold {threshold:g}) reaches it on pixels of {bad.size} particle(s): "
            f"{shown}; those pixels saturate before they can read as reacted (they are NaN "
            "where clipped, flag saturated): lower the exposure or the gain")


class _Regions:
    """Pixels around the particles, assigned to the nearest one: the background ring
    (particle-free) and the near ring (1-4 px out), where a wider PSF spills more light."""

    def __init__(self, labels, px_cls, context=None):
        from scipy import ndimage as ndi

        own = labels
        if context is not None:  # the rings as among all particles, kept for ``labels``'
            labels = np.asarray(context)
        bg = labels == 0
        if not bg.any() or not (~bg).any():
            self.ring = None
            return
        dist, (ir, ic) = ndi.distance_transform_edt(bg, return_indices=True)
        nearest = labels[ir, ic]
        if context is not None:
            nearest = np.where(np.isin(nearest, np.unique(own[own > 0])), nearest, 0)
        ring = (dist > RING_MARGIN_PX) & (dist <= RING_MARGIN_PX + RING_WIDTH_PX)
        ring_lab = np.where(ring, nearest, 0)
        self.ring = px_cls(ring_lab)
        # the near ring, where a wider PSF spills more of the particle's light
        self.near = px_cls(np.where((dist > NEAR_RING_PX[0]) & (dist <= NEAR_RING_PX[1]),
                                    nearest, 0))


class QualityPass:
    """The per-chunk measurements behind the flags (called from ``particle_timeseries``)."""

    def __init__(self, labels, px, *, threshold, edge_px, saturation_level, min_core_px,
                 px_cls, context=None, direction="charge"):
        self.px = px
        self.threshold = float(threshold)
        self.clip = None if saturation_level is None else float(saturation_level)
        self.min_core_px = (default_min_core_px(edge_px) if min_core_px is None
                            else int(check_range("min_core_px", min_core_px, 1, None,
                                                 integer=True)))
        reg = _Regions(labels, px_cls, context)
        self.regions = reg
        self.ids = px.ids
        self.inner = px.inner > 0
        # the particle's band next to its outline, whose light the PSF spills out
        if reg.ring is not None:
            from scipy import ndimage as ndi

            depth = ndi.distance_transform_edt(np.pad(labels > 0, 1))[1:-1, 1:-1]
            self.band = (depth.ravel()[px.flat] <= BAND_PX).astype(np.float64)
        self.darkening = _DarkeningTiles(labels, px, px_cls, context,
                                         charge=direction != "discharge")

    def _per_particle(self, sub, values):
        """Sum over each particle's pixels of ``sub`` (a ``_Pixels``), as (n, n_particles)."""
        out = np.zeros((values.shape[0], self.ids.size))
        if sub is None or sub.flat.size == 0:
            return out
        sums = sub.reduce(values)
        out[:, np.searchsorted(self.ids, sub.ids)] = sums
        return out

    def saturated(self, chunk):
        """(n, n_row, n_col) bool: pixels at the clip level, or None."""
        if self.clip is None:
            return None
        sat = chunk >= self.clip
        return sat if sat.any() else None

    def chunk(self, chunk, shifts, vals, dI, illumination):
        """Per-chunk sums for the flags: ``chunk`` raw frames, ``vals`` the particle pixels
        as measured (registered, normalised), ``dI`` theirs."""
        px, reg = self.px, self.regions
        n = chunk.shape[0]
        res = {}
        sat = self.saturated(chunk)
        if sat is None:
            res["q_n_sat"] = np.zeros((n, self.ids.size))
        else:
            hit = px.sample(sat.astype(np.float64), shifts) > 0
            res["q_n_sat"] = px.reduce(hit.astype(np.float64))
        if reg.ring is not None:
            for name, region in (("ring", reg.ring), ("near", reg.near)):
                v = region.sample(chunk, shifts).astype(np.float64, copy=False)
                if illumination is not None:
                    v = v / illumination[:, None]
                ok = np.isfinite(v)
                res[f"q_sum_{name}"] = self._per_particle(region, np.where(ok, v, 0.0))
                res[f"q_n_{name}"] = self._per_particle(region, ok.astype(np.float64))
            ok = np.isfinite(vals)
            res["q_sum_part"] = px.reduce(np.where(ok, vals, 0.0) * self.band)
            res["q_n_part"] = px.reduce(ok * self.band)
        thr, delta = self.threshold, abs(self.threshold)
        res["q_above"] = np.packbits((dI >= thr + delta) & self.inner, axis=1)
        res["q_below"] = np.packbits((dI < thr - delta) & self.inner, axis=1)
        res.update(self.darkening.chunk(chunk, shifts, vals, illumination))
        return res

    def finish(self, cat, *, n_unr, shifts, n_reference_frames, rolling):
        """``(flags (n_frames, n_particles) dict name -> bool array, warnings)``."""
        n_frames = n_unr.shape[0]
        flags = {}
        n_ref = max(1, min(int(n_reference_frames), n_frames))
        with np.errstate(invalid="ignore", divide="ignore"):
            if "q_sum_ring" in cat:
                ring = cat["q_sum_ring"] / cat["q_n_ring"]
                ring0 = np.nanmean(ring[:n_ref], axis=0)
                rel = ring / ring0 - 1.0
                flags["background_drift"] = (np.abs(rel) >
                                             BACKGROUND_DRIFT_FRACTION * abs(self.threshold))
                near = cat["q_sum_near"] / cat["q_n_near"]
                part = cat["q_sum_part"] / cat["q_n_part"]
                spill = (near - ring) / (part - ring)  # share of the particle's light
                spill0 = np.nanmean(spill[:n_ref], axis=0)
                self.spill = spill / spill0
                # a sharp image (no measurable spill) has no PSF width to follow
                part0 = np.nanmean(part[:n_ref], axis=0)
                seen = np.abs(part0 - ring0) > MIN_CONTRAST * np.abs(ring0)
                flags["focus_change"] = (seen & np.isfinite(spill0) & (spill0 > MIN_SPILL)
                                         & (np.abs(spill / spill0 - 1.0)
                                            > FOCUS_CHANGE_TOLERANCE))
        flags["saturated"] = cat["q_n_sat"] > 0
        flags["registration_residual"] = np.broadcast_to(
            _registration_residual(shifts)[:, None], n_unr.shape)
        flags["returned_below_threshold"] = self._returns(cat["q_above"], cat["q_below"])
        flags["local_darkening"] = self.darkening.finish(
            cat["q_dark_tiles"], cat["q_dark_slope"], cat["q_dark_frames"],
            threshold=self.threshold,
            n_reference_frames=n_ref)
        flags["core_too_small"] = (n_unr > 0) & (n_unr < self.min_core_px)
        if rolling is not None:  # no reference frames: only flags that do not need them
            flags.pop("background_drift", None)
            flags.pop("focus_change", None)
            flags.pop("returned_below_threshold", None)
        return flags

    def _returns(self, above, below):
        px = self.px
        n_frames = above.shape[0]
        n_pix = px.flat.size
        ever = np.zeros(above.shape[1], np.uint8)
        counts = np.zeros((n_frames, px.ids.size))
        for t in range(n_frames):
            back = np.unpackbits(ever & below[t], count=n_pix).astype(np.float64)
            if back.any():
                counts[t] = px.reduce(back[None])[0]
            ever |= above[t]
        need = np.maximum(3, RETURN_MIN_FRACTION * np.maximum(px.inner_px, 1))
        return counts >= need


def _registration_residual(shifts):
    """(n_frames,) bool: drift estimates off the median of their 5 neighbours by more than
    :data:`REGISTRATION_RESIDUAL_PX`."""
    s = np.asarray(shifts, dtype=float)
    n = s.shape[0]
    if n < 3 or not np.any(s):
        return np.zeros(n, bool)
    from scipy.ndimage import median_filter

    med = median_filter(s, size=(5, 1), mode="nearest")
    return np.hypot(*(s - med).T) > REGISTRATION_RESIDUAL_PX


def join_flags(flags, order=tuple(QUALITY_FLAGS)):
    """(n_frames, n_particles) str array: the names of the flags raised, ``;``-separated."""
    names = [k for k in order if k in flags]
    if not names:
        return None
    shape = np.shape(flags[names[0]])
    out = np.full(shape, "", dtype=object)
    for k in names:
        f = np.asarray(flags[k], bool)
        if not f.any():
            continue
        out = np.where(f, np.where(out == "", k, out + ";" + k), out)
    return out


def flag_counts(flags_column):
    """``{flag: number of rows}`` of a ``quality_flags`` column (``;``-separated names), in
    the order of :data:`QUALITY_FLAGS`."""
    counts = {}
    for s in flags_column:
        if isinstance(s, str) and s:
            for k in s.split(";"):
                counts[k] = counts.get(k, 0) + 1
    return {k: counts[k] for k in sorted(counts, key=lambda k: (k not in QUALITY_FLAGS,
            list(QUALITY_FLAGS).index(k) if k in QUALITY_FLAGS else 0, k))}


def flag_summary(timeseries, *, name=""):
    """One line per flag raised in a ``timeseries`` table (for the warnings and the CLI):
    how many particles and particle-frames, and what it means (not for
    :data:`NOT_WARNED`)."""
    if "quality_flags" not in timeseries.columns or not len(timeseries):
        return []
    lines = []
    flagged = timeseries["quality_flags"].fillna("").astype(str)
    n_rows = len(timeseries)
    n_part = timeseries["particle_id"].nunique()
    import pandas as pd

    codes, distinct = pd.factorize(flagged)  # a few distinct strings: each split once
    names = [set(v.split(";")) for v in distinct]
    for k, meaning in QUALITY_FLAGS.items():
        if k in NOT_WARNED:
            continue
        hit = np.array([k in n for n in names], bool)[codes] if len(names) else \
            np.zeros(n_rows, bool)
        if hit.any():
            parts = timeseries.loc[hit, "particle_id"].nunique()
            lines.append(f"{name + ': ' if name else ''}quality flag {k} on {int(hit.sum())} of "
                         f"{n_rows} particle-frames ({parts} of {n_part} particles): {meaning}")
    return lines


def flatten_illumination(image, labels, *, order=2):
    """``image`` divided by a smooth illumination fitted to its particle-free pixels (a 2-D
    polynomial of ``order`` in row and column, least squares; :func:`particle_free_pixels`
    of ``labels``), scaled to a mean of 1 over those pixels: a beam profile's slope no
    longer moves the particles' thresholded outlines (and so their detected centres).
    When that fit is not positive everywhere (a steep beam), the log-polynomial fit of
    :func:`illumination_field` instead; ``image`` unchanged when there are too few
    particle-free pixels."""
    from ._differential import particle_free_pixels

    img = np.asarray(image, dtype=np.float64)
    try:
        free = particle_free_pixels(labels) & np.isfinite(img)
    except ValueError:
        return img
    n_terms = (order + 1) * (order + 2) // 2
    if free.sum() < 10 * n_terms:
        return img
    # a column of rows and a row of columns: the terms by one product each (the same values)
    rr = np.arange(img.shape[0], dtype=np.float64)[:, None] / max(img.shape[0] - 1, 1) - 0.5
    cc = np.arange(img.shape[1], dtype=np.float64)[None, :] / max(img.shape[1] - 1, 1) - 0.5
    terms = [np.broadcast_to(rr ** i * cc ** j, img.shape) for i in range(order + 1)
             for j in range(order + 1 - i)]
    # least squares by the normal equations (the terms on [-0.5, 0.5] are well conditioned;
    # ~10x faster than lstsq's SVD of millions of rows)
    at = [t[free] for t in terms]
    ata = np.array([[np.dot(p, q) for q in at] for p in at])
    coef = np.linalg.lstsq(ata, np.array([np.dot(p, img[free]) for p in at]), rcond=None)[0]
    fit = sum(c * t for c, t in zip(coef, terms, strict=True))
    if not (fit > 0).all():  # a steep beam: its log is the polynomial (always positive)
        field = illumination_field(img, free, order=order)
        return img if field is None else img / field
    return img / (fit / fit[free].mean())


#: The illumination's spatial pattern (a smooth fit to the particle-free pixels, scaled to
#: a mean of 1) changing over the particles by more than this fraction x the dI threshold
#: (relative to the reference frames) switches ``illumination="auto"`` on: 2.5 % for 0.05
#: (below, dI moves by less than half the threshold; a demo field drifting 3.7 px, its
#: texture crossing the fitted pixels, reads 1.8 %, a clean one 0.1-0.4 %).
ILLUMINATION_CHANGE_FRACTION = 0.5
#: Order of the 2-D polynomial fitted as the illumination (2: a Gaussian beam's cap).
ILLUMINATION_ORDER = 2


def _poly_terms(shape, order):
    rr, cc = np.indices(shape, dtype=np.float64)
    rr = rr / max(shape[0] - 1, 1) - 0.5
    cc = cc / max(shape[1] - 1, 1) - 0.5
    return [rr ** i * cc ** j for i in range(order + 1) for j in range(order + 1 - i)]


def illumination_field(image, free, *, order=ILLUMINATION_ORDER, terms=None):
    """The smooth illumination of ``image``: exp of a 2-D polynomial of ``order`` in row and
    column fitted by least squares to the log intensity of the pixels where ``free``
    (particle-free, finite, > 0; a Gaussian beam is exactly such a field, and it is positive
    everywhere), once more after leaving out those off the first fit by more than 3 x the
    residuals' robust spread (dust, a particle drifting into the background), scaled to a
    mean of 1 over ``free``. (n_row, n_col) float64, or None when there are too few free
    pixels."""
    img = np.asarray(image, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        free = np.asarray(free, bool) & np.isfinite(img) & (img > 0)
    terms = _poly_terms(img.shape, order) if terms is None else terms
    if free.sum() < 10 * len(terms):
        return None
    a = np.stack([t[free] for t in terms], axis=1)
    y = np.log(img[free])
    keep = np.ones(y.size, bool)
    for _ in range(2):
        coef, *_ = np.linalg.lstsq(a[keep], y[keep], rcond=None)
        res = y - a @ coef
        spread = 1.4826 * np.median(np.abs(res[keep] - np.median(res[keep])))
        if not spread > 0:
            break
        keep = np.abs(res) <= 3 * spread
        if keep.sum() < 10 * len(terms):
            return None
    fit = np.exp(sum(c * t for c, t in zip(coef, terms, strict=True)))
    if not np.isfinite(fit).all():
        return None
    return fit / fit[free].mean()


#: :func:`illumination_change` fits each sampled frame's illumination to the means of
#: ``ILLUMINATION_BIN`` x ``ILLUMINATION_BIN`` blocks of particle-free pixels (a quadratic
#: needs no more, and a block's mean is as precise as its pixels together: 144 000 blocks of
#: a 1200 x 1920 frame's 2.3 million pixels; the change it reports moves by < 1e-3, against
#: a decision limit of 0.025: ``tests/analysis/test_camera.py``), and evaluates it on every
#: particle pixel. 25 frames of that size: ~1 s of CPU instead of ~22 s.
ILLUMINATION_BIN = 4


def _log_poly_coef(a, values, min_pixels):
    """The robust log-polynomial fit of :func:`illumination_field` on design-matrix rows
    ``a`` (n, n_terms) and intensities ``values`` (n,), by its normal equations (the
    terms are well conditioned on [-0.5, 0.5]): ``(coef, ok)``, ``ok`` (n,) the rows that
    took part (finite, > 0); None when too few."""
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(values) & (values > 0)
    if ok.sum() < min_pixels:
        return None
    if not ok.all():
        a, values = a[ok], values[ok]
    y = np.log(values)
    keep = None
    for _ in range(2):
        ak, yk = (a, y) if keep is None else (a[keep], y[keep])
        coef = np.linalg.lstsq(ak.T @ ak, ak.T @ yk, rcond=None)[0]
        res = y - a @ coef
        rk = res if keep is None else res[keep]
        spread = 1.4826 * np.median(np.abs(rk - np.median(rk)))
        if not spread > 0:
            break
        keep = np.abs(res) <= 3 * spread
        if keep.sum() < min_pixels:
            return None
    return coef, ok


def illumination_change(stack, labels, *, n_reference_frames=1,
                        n_sample=AUTO_NORMALIZE_FRAMES, order=ILLUMINATION_ORDER,
                        bin_px=ILLUMINATION_BIN):
    """``(largest |F_t / F_ref - 1| over the particles' pixels, frame)``: how much the
    spatial pattern of the illumination (:func:`illumination_field` of the particle-free
    pixels, mean 1: a whole-frame change is not counted) changes over ``n_sample`` evenly
    spaced frames against the reference frames'; ``(nan, -1)`` when it cannot be fitted.
    The fields are fitted to (and averaged over) the means of ``bin_px`` x ``bin_px``
    blocks of particle-free pixels (:data:`ILLUMINATION_BIN`; to every particle-free pixel,
    as :func:`illumination_field`, for ``bin_px=1`` or when fewer than 1000 x the
    polynomial's terms of such blocks would be left) and evaluated on every particle
    pixel."""
    from ._chunks import as_float, read_chunk
    from ._differential import particle_free_pixels

    n_frames = int(stack.shape[0])
    try:
        free = particle_free_pixels(labels)
    except ValueError:
        return np.nan, -1
    shape = free.shape
    n_terms = (order + 1) * (order + 2) // 2
    b = max(1, int(bin_px))
    nb = (shape[0] // b, shape[1] // b)
    if b > 1:
        free_b = free[:nb[0] * b, :nb[1] * b].reshape(nb[0], b, nb[1], b).all(axis=(1, 3))
        if np.count_nonzero(free_b) < 1000 * n_terms:
            b, nb, free_b = 1, shape, free  # a small frame or few free pixels: all of them
    else:
        free_b = free
    on = np.asarray(labels) > 0

    def design(r, c):  # the polynomial's terms at (row, col), as _poly_terms
        rr = r / max(shape[0] - 1, 1) - 0.5
        cc = c / max(shape[1] - 1, 1) - 0.5
        return np.stack([rr ** i * cc ** j for i in range(order + 1)
                         for j in range(order + 1 - i)], axis=1)

    where_free = np.flatnonzero(free_b)
    centre = (b - 1) / 2  # a block's centre, in pixels from its first
    a_free = design(where_free // nb[1] * b + centre, where_free % nb[1] * b + centre)
    r_on, c_on = np.nonzero(on)
    a_on = design(r_on.astype(np.float64), c_on.astype(np.float64))

    def field_on(image):  # the field on the particle pixels, mean 1 over the free ones
        img = np.asarray(image)
        if b > 1:  # block means: b rows added (contiguous), then b columns
            img = np.add.reduce(img[:nb[0] * b, :nb[1] * b].reshape(nb[0], b, nb[1] * b),
                                axis=1, dtype=np.float64)
            img = img.reshape(nb[0], nb[1], b).sum(axis=2) / (b * b)
        img = np.asarray(img, dtype=np.float64)
        fit = _log_poly_coef(a_free, img.reshape(-1)[where_free], 10 * n_terms)
        if fit is None:
            return None
        coef, ok = fit
        with np.errstate(over="ignore", invalid="ignore"):
            f_on = np.exp(a_on @ coef)
            mean = np.exp(a_free[ok] @ coef).mean()
        if not (np.isfinite(f_on).all() and np.isfinite(mean)):
            return None
        return f_on / mean

    n_ref = max(1, min(int(n_reference_frames), n_frames))
    ref = field_on(np.nanmean(as_float(read_chunk(stack, 0, n_ref)), axis=0))
    if ref is None:
        return np.nan, -1
    frames = np.unique(np.linspace(0, n_frames - 1, min(n_frames, int(n_sample))).astype(int))
    best, where = np.nan, -1
    for k in frames:
        frame = np.asarray(read_chunk(stack, k, k + 1))[0]
        if frame.dtype.kind == "f" and _blank(frame) or (
                frame.dtype.kind != "f" and not (frame.size and frame.max() > frame.min())):
            continue
        f = field_on(frame)
        if f is None:
            continue
        rel = float(np.max(np.abs(f / ref - 1.0)))
        if not rel <= best:
            best, where = rel, int(k)
    return best, where


def _blank(frame):
    finite = frame[np.isfinite(frame)]
    return not (finite.size and finite.max() > finite.min())


def load_calibration_frame(value, shape, *, name):
    """A dark or flat calibration frame (``name``: "dark" / "flat"): an array, or the path
    of a ``.npy`` or ``.tif``/``.tiff`` file (a stack of frames is averaged). Returns a
    (n_row, n_col) float64 array; ValueError naming the file (or ``name``) and what was
    expected when it cannot be read, is not numeric, has another shape than the frames
    ``shape``, or holds NaN/infinite pixels."""
    from pathlib import Path

    where = name
    if isinstance(value, (str, Path)):
        path = Path(value)
        where = f"{name} frame {path}"
        if not path.is_file():
            raise ValueError(f"{where}: no such file")
        suffix = path.suffix.lower()
        try:
            if suffix == ".npy":
                arr = np.load(path, allow_pickle=False)
            elif suffix in (".tif", ".tiff"):
                import tifffile

                arr = tifffile.imread(path)
            else:
                raise ValueError(f"{where}: expected a .npy or .tif/.tiff file, got "
                                 f"'{path.suffix}'")
        except ValueError:
            raise
        except Exception as e:  # noqa: BLE001 - a corrupt file: say which and why
            raise ValueError(f"{where}: cannot be read ({e})") from e
    else:
        arr = value
        where = f"{name} frame"
    arr = np.asarray(arr)
    if arr.dtype.kind not in "iuf":
        raise ValueError(f"{where}: expected a numeric image (integer or float), got dtype "
                         f"{arr.dtype}")
    arr = arr.astype(np.float64)
    if arr.ndim == 3 and arr.shape[1:] == tuple(shape):
        arr = arr.mean(axis=0)  # a stack of calibration frames: their mean
    if arr.shape != tuple(shape):
        raise ValueError(f"{where}: shape {arr.shape}, expected the frames' (n_row, n_col) = "
                         f"{tuple(shape)} (or a stack of such frames)")
    if not np.isfinite(arr).all():
        raise ValueError(f"{where}: {int((~np.isfinite(arr)).sum())} pixel(s) are NaN or "
                         "infinite")
    return arr


def calibration_gain(flat, dark=None, *, name="flat"):
    """The per-pixel gain of a flat frame: (flat - dark) scaled to a mean of 1. ValueError
    naming ``name`` when any pixel of flat - dark is zero or negative (a dead pixel, or the
    dark frame of another exposure)."""
    g = flat - (0.0 if dark is None else dark)
    bad = ~(g > 0)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise ValueError(f"{name}: {int(bad.sum())} pixel(s) of flat{' - dark' if dark is not None else ''}"
                         f" are zero or negative (first at row {r}, col {c}: {g[r, c]:g}); "
                         "a flat frame must be a bright, evenly lit exposure (taken with the "
                         "same camera settings as the dark frame)")
    return g / g.mean()


class CorrectedStack:
    """A stack read through the camera's calibration and the illumination correction
    (float64 frames): ``(raw - dark) / gain`` (:func:`calibration_gain` of the flat frame),
    then, with ``free`` (particle-free pixels), divided by each frame's own smooth
    illumination (:func:`illumination_field`, mean 1: the frame's overall brightness is
    kept, for ``normalize``). Pixels at the raw clip level ``clip`` (or above) read as
    ``clip_out`` = 4 x ``clip`` in every frame (everything else is kept below it), so that
    the clipped pixels still pile up at one top value and the analysis finds them unknown
    (flag ``saturated``)."""

    def __init__(self, stack, *, dark=None, gain=None, free=None, order=ILLUMINATION_ORDER,
                 clip=None):
        self.stack = stack
        self.dark, self.gain, self.free, self.order = dark, gain, free, int(order)
        self.clip = None if clip is None else float(clip)
        self.clip_out = None if clip is None else 4.0 * abs(self.clip)
        self.shape = tuple(stack.shape)
        self.ndim = len(self.shape)
        self.dtype = np.dtype(np.float64)
        self._terms = None if free is None else _poly_terms(self.shape[1:], self.order)

    def __len__(self):
        return self.shape[0]

    def with_illumination(self, free, order=ILLUMINATION_ORDER):
        """The same calibration, with the per-frame illumination correction."""
        return CorrectedStack(self.stack, dark=self.dark, gain=self.gain, free=free,
                              order=order, clip=self.clip)

    def _frame(self, f):
        f = np.array(f, dtype=np.float64)
        clipped = None if self.clip is None else f >= self.clip
        if self.dark is not None:
            f -= self.dark
        if self.gain is not None:
            f /= self.gain
        if self.free is not None and not _blank(f):
            field = illumination_field(f, self.free, order=self.order, terms=self._terms)
            if field is not None:
                f /= field
        if clipped is not None:
            np.minimum(f, np.nextafter(self.clip_out, 0), out=f)
            f[clipped] = self.clip_out
        return f

    def __getitem__(self, key):
        if isinstance(key, tuple) and len(key) > 1:  # a crop: whole frames, then cut
            frames = self[key[0]]
            return frames[(slice(None), *key[1:]) if frames.ndim == 3 else key[1:]]
        block = self.stack[key[0] if isinstance(key, tuple) else key]
        if type(block).__module__.startswith("dask."):
            block = block.compute(scheduler="synchronous")
        block = np.asarray(block)
        if block.ndim == 2:
            return self._frame(block)
        if block.ndim != 3:
            return np.asarray(block, dtype=np.float64)
        return np.stack([self._frame(f) for f in block]) if len(block) else \
            block.astype(np.float64)


#: d moving by more than max(this fraction of d, :data:`SATURATION_D_TOLERANCE_PX`) when
#: the clipped (unknown) pixels are counted as unreacted instead of left out makes d NaN.
SATURATION_D_TOLERANCE = 0.05
SATURATION_D_TOLERANCE_PX = 1.0


def saturation_ambiguous(n_unr, sum_row, sum_col, n_unk, sum_unk_row, sum_unk_col,
                         com_row, com_col):
    """(n_frames, n_particles) bool: particle-frames whose d is not known because of clipped
    pixels. A clipped pixel may be unreacted or reacted: d is measured without them and
    again with them counted as unreacted; when the two cores' centres are farther apart than
    max(:data:`SATURATION_D_TOLERANCE` x d, :data:`SATURATION_D_TOLERANCE_PX` px), or
    the core is only clipped pixels, d is NaN (its frame carries the flag ``saturated``)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        d = np.hypot(sum_row / n_unr - com_row, sum_col / n_unr - com_col)
        n_all = n_unr + n_unk
        d_all = np.hypot((sum_row + sum_unk_row) / n_all - com_row,
                         (sum_col + sum_unk_col) / n_all - com_col)
        tol = np.maximum(SATURATION_D_TOLERANCE * d, SATURATION_D_TOLERANCE_PX)
        # the core's centre moved (as a point: a core as far on the other side has the
        # same d but another direction)
        moved = (np.hypot((sum_row + sum_unk_row) / n_all - sum_row / n_unr,
                          (sum_col + sum_unk_col) / n_all - sum_col / n_unr) > tol)
        moved |= np.abs(d_all - d) > tol
    return (n_unk > 0) & ((n_unr == 0) | moved)


# --- local_darkening: dust, a speck or a shadow arriving on or next to a particle ----------

__all__ += ["DARKENING_TILE_PX", "DARKENING_SURROUND_PX", "DARKENING_SIGMAS",
            "DARKENING_MIN_FRACTION", "UNTRUSTED_D_FLAGS", "local_darkening"]

#: Side (px) of the square tiles (of one particle, or of its surroundings) whose mean log
#: intensity is followed: a dust speck blurred by the PSF covers at least part of one, and
#: the mean of ~16 pixels has a quarter of a pixel's noise.
DARKENING_TILE_PX = 4
#: The particle-free surroundings followed: pixels up to this far from the particle's
#: outline (px; the background ring's outer edge), assigned to their nearest particle.
DARKENING_SURROUND_PX = RING_MARGIN_PX + RING_WIDTH_PX
#: Frames before (at most) and after (exactly) a candidate step that are compared.
DARKENING_BEFORE_FRAMES = 8
DARKENING_AFTER_FRAMES = 3
#: A tile's step down (mean after - mean before) must exceed this many times its noise
#: (measured in the movie) ...
DARKENING_SIGMAS = 6.0
#: ... and so must the step of a line-plus-step fitted to those frames (a gradual
#: darkening, a focus or beam drift, is a line), by this many times its noise; at least
#: :data:`DARKENING_TREND_MIN_FRAMES` frames must precede it (with fewer, gradual and
#: sudden cannot be told apart: a speck arriving in the first frames is not flagged) ...
DARKENING_TREND_SIGMAS = 4.0
DARKENING_TREND_MIN_FRAMES = 3
#: ... and this fraction of the dI threshold (in log intensity: 1 % for 0.05).
DARKENING_MIN_FRACTION = 0.2
#: A registration error this large (px) must not pass for a darkening: the step needed
#: grows by the tile's mean edge contrast (:func:`_edge_contrast`, per px) x this.
DARKENING_REGISTRATION_PX = 0.2
#: Tiles with fewer pixels (cut by the outline or the frame's edge) are not followed.
DARKENING_MIN_TILE_PX = 4
#: Flags whose frames' d is not trusted for the classification
#: (:func:`~asymflux.analysis.summarize_particles`): the class is taken from the other
#: frames of the window, 'undetermined' when they do not show the particle asymmetric.
UNTRUSTED_D_FLAGS = ("local_darkening",)


class _DarkeningTiles:
    """The tiles followed for ``local_darkening``: each particle's pixels and its
    particle-free surroundings cut into :data:`DARKENING_TILE_PX` squares (a tile holds
    pixels of one particle, or of one particle's surroundings, never both)."""

    def __init__(self, labels, px, px_cls, context=None, *, charge=True):
        from scipy import ndimage as ndi
        from scipy import sparse

        self.px = px
        self.charge = bool(charge)
        self.ids = px.ids
        lab = labels if context is None else np.asarray(context)
        bg = lab == 0
        self.surround = None
        dist = np.zeros(labels.shape)
        if bg.any() and (~bg).any():
            dist, (ir, ic) = ndi.distance_transform_edt(bg, return_indices=True)
            nearest = labels[ir, ic]
            if context is not None:
                nearest = np.where(np.isin(nearest, px.ids), nearest, 0)
            self.surround = px_cls(np.where(bg & (dist <= DARKENING_SURROUND_PX), nearest, 0))
        n_col = labels.shape[1]
        t = DARKENING_TILE_PX
        n_tc = -(-n_col // t)
        n_tr = -(-labels.shape[0] // t)
        keys = []
        for kind, pix in ((0, px), (1, self.surround)):
            if pix is None or pix.flat.size == 0:
                keys.append(np.zeros(0, np.int64))
                continue
            lab_of = np.repeat(np.searchsorted(px.ids, pix.ids), pix.area_px)
            tile = (pix.rows // t) * n_tc + pix.cols // t
            keys.append(((lab_of * 2 + kind) * (n_tr * n_tc) + tile).astype(np.int64))
        allkeys = np.concatenate(keys)
        uniq, inv, count = np.unique(allkeys, return_inverse=True, return_counts=True)
        keep = count >= DARKENING_MIN_TILE_PX
        col = np.cumsum(keep) - 1  # tile index of each kept key
        self.n_tiles = int(keep.sum())
        self.tile_px = count[keep].astype(np.float64)
        owner = (uniq[keep] // (n_tr * n_tc)) // 2
        region = (uniq[keep] // (n_tr * n_tc)) % 2
        self.owner = owner.astype(np.int64)  # index into px.ids
        self.is_surround = region.astype(bool)
        parts = [p for p in (px, self.surround) if p is not None and p.flat.size]
        rows = np.concatenate([p.rows for p in parts] or [np.zeros(0)]).astype(np.float64)
        cols = np.concatenate([p.cols for p in parts] or [np.zeros(0)]).astype(np.float64)
        flat = np.concatenate([p.flat for p in parts] or [np.zeros(0, np.int64)])
        on = keep[inv]
        tile_of = np.where(on, col[inv], 0)
        n = np.maximum(np.bincount(tile_of[on], minlength=self.n_tiles), 1)
        #: mean distance of the tile's pixels from the particles (0 on a particle)
        self.dist = np.bincount(tile_of[on], dist.ravel()[flat[on]], minlength=self.n_tiles) / n
        self.row = np.bincount(tile_of[on], rows[on], minlength=self.n_tiles) / n
        self.col = np.bincount(tile_of[on], cols[on], minlength=self.n_tiles) / n
        self.matrix = []
        start = 0
        for k in keys:  # (n_pix, n_tiles) 0/1: the tiles' pixels, one for each part
            sl = slice(start, start + k.size)
            i = np.flatnonzero(on[sl])
            self.matrix.append(sparse.csr_matrix((np.ones(i.size), (i, tile_of[sl][i])),
                                                 shape=(k.size, self.n_tiles)))
            start += k.size

    def _sums(self, values, m):
        """(n, n_tiles) sums of each tile's log intensity, and of its valid pixels."""
        with np.errstate(invalid="ignore", divide="ignore"):
            lv = np.log(values)
        ok = np.isfinite(lv)
        sums = np.asarray(m.T @ np.where(ok, lv, 0.0).T).T
        counts = np.asarray(m.T @ ok.T.astype(np.float64)).T
        return sums, counts

    def chunk(self, chunk, shifts, vals, illumination):
        """``{"q_dark_tiles": (n, n_tiles), "q_dark_slope": (1, n_tiles)}`` float32 and
        ``"q_dark_frames"`` ``[n]``: each tile's mean log intensity per frame (NaN where
        one of its pixels is not valid: clipped, blank) and its mean edge contrast
        (:func:`_edge_contrast`, per px) on the chunk's first frame (one frame's work per
        chunk, and before a speck arriving in the chunk)."""
        n = chunk.shape[0]
        k_t = self.n_tiles
        sums = np.zeros((n, k_t))
        counts = np.zeros((n, k_t))
        edges = np.zeros((1, k_t))
        if k_t:
            seen = np.flatnonzero(np.isfinite(chunk.reshape(n, -1)[:, 0]))
            first = int(seen[0]) if seen.size else 0  # the first frame not blank
            contrast = _edge_contrast(chunk[first:first + 1])
            first_shift = None if shifts is None else \
                np.asarray(shifts, dtype=np.float64)[first:first + 1]
            s, c = self._sums(vals, self.matrix[0])
            sums += s
            counts += c
            e = self.px.sample(contrast, first_shift)
            edges += np.asarray(self.matrix[0].T @ np.nan_to_num(e).T).T
            if self.surround is not None and self.surround.flat.size:
                v = self.surround.sample(chunk, shifts).astype(np.float64, copy=False)
                if illumination is not None:
                    v = v / illumination[:, None]
                s, c = self._sums(v, self.matrix[1])
                sums += s
                counts += c
                e = self.surround.sample(contrast, first_shift)
                edges += np.asarray(self.matrix[1].T @ np.nan_to_num(e).T).T
        ok = counts >= self.tile_px
        with np.errstate(invalid="ignore", divide="ignore"):
            means = np.where(ok, sums / np.maximum(counts, 1), np.nan)
        return {"q_dark_tiles": means.astype(np.float32),
                "q_dark_slope": (edges / self.tile_px).astype(np.float32),  # (1, n_tiles)
                "q_dark_frames": np.array([n])}

    def finish(self, tiles, slopes, slope_frames, *, threshold, n_reference_frames=1):
        """(n_frames, n_particles) bool: ``local_darkening`` (:func:`local_darkening`)."""
        return local_darkening(tiles, slopes=slopes, slope_frames=slope_frames,
                               owner=self.owner, is_surround=self.is_surround,
                               tile_px=self.tile_px, tile_row=self.row, tile_col=self.col,
                               tile_dist_px=self.dist,
                               n_particles=self.ids.size, threshold=threshold,
                               n_reference_frames=n_reference_frames,
                               check_particles=self.charge)


def _robust_sigma(v):
    v = v[np.isfinite(v)]
    if v.size < 10:
        return np.nan
    return 1.4826 * float(np.median(np.abs(v - np.median(v))))


def local_darkening(tiles, *, slopes=None, slope_frames=None, owner, is_surround, tile_px,
                    tile_row, tile_col, n_particles, threshold, tile_dist_px=None,
                    n_reference_frames=1, check_particles=True):
    """Where a particle, or its particle-free surroundings, darkened suddenly and for good.

    A dark speck (dust settling on the sample or the window, a shadow) arriving mid-movie
    darkens some pixels from one frame on. The particle's own pixels only brighten on a
    charge (delithiation runs one way), the particle-free ones stay as they are, and the
    whole field's illumination (flicker, a drifting lamp, a moving beam) changes smoothly
    in space: removing, in each frame, a plane fitted to the particle's surroundings
    (:func:`_plane_fit`, robust to the darkened tiles) leaves a tile's mean log
    intensity z_k(t) flat or rising. A darkening at frame t is a step down: the mean of
    z_k over the :data:`DARKENING_AFTER_FRAMES` frames from t below the mean over the (at
    most) :data:`DARKENING_BEFORE_FRAMES` frames before by more than
    :data:`DARKENING_SIGMAS` x its noise and :data:`DARKENING_MIN_FRACTION` x
    ``threshold``, and so is the step of a line + step fitted to those frames (by
    :data:`DARKENING_TREND_SIGMAS` x its noise: a focus or beam drift is a line), *sudden*
    (at least half of it between frames t - 1 and t) and *persistent* (each of those
    frames below the half-way level), with at least :data:`DARKENING_TREND_MIN_FRAMES`
    frames before t; both steps must also exceed what a registration error of
    :data:`DARKENING_REGISTRATION_PX` could do to the tile (``slopes``). The noise of z is
    measured in the movie: 1.4826 x the median absolute deviation of its frame-to-frame
    differences, per particle, for its own tiles and its surroundings' (scaled by each
    tile's number of pixels). The particles are taken one at a time: the memory beyond
    ``tiles`` is that of one particle's tiles.

    Parameters
    ----------
    tiles : (n_frames, n_tiles) array
        Mean log intensity of each tile per frame (NaN where not valid).
    slopes : (n_frames, n_tiles) or (n_chunks, n_tiles) array, optional
        Each tile's mean edge contrast (:func:`_edge_contrast`: a pixel's largest relative
        difference to a neighbour, per px): a step at t must also exceed its value at
        frame t - 1 x :data:`DARKENING_REGISTRATION_PX`, what a registration error moving
        a steep edge could do. One row per chunk of ``slope_frames`` frames.
    slope_frames : (n_chunks,) int array, optional
        Frames of each row of ``slopes`` (default: one row per frame).
    owner : (n_tiles,) int array
        Index of the particle each tile belongs to (or surrounds).
    is_surround : (n_tiles,) bool array
        The tile is particle-free (around ``owner``).
    tile_px : (n_tiles,) array
        Pixels per tile.
    tile_row, tile_col : (n_tiles,) arrays
        Tile centres (px).
    tile_dist_px : (n_tiles,) array, optional
        Mean distance of a tile's pixels from the particles (px): the illumination plane is
        fitted to the surroundings' tiles at least :data:`RING_MARGIN_PX` out, beyond the
        light the particle spills as it brightens (default: all of them).
    n_particles : int
    threshold : float
        The dI threshold.
    n_reference_frames : int
        Frames averaged as each tile's starting level.
    check_particles : bool
        Test the particles' own tiles (False on a discharge, when they darken as they react).

    Returns
    -------
    (n_frames, n_particles) bool
        From the first frame of a darkening among a particle's tiles to the end of the movie.
    """
    import warnings

    y = np.asarray(tiles)
    n_frames = y.shape[0]
    flags = np.zeros((n_frames, int(n_particles)), bool)
    if y.size == 0 or n_frames < DARKENING_AFTER_FRAMES + 1:
        return flags
    owner = np.asarray(owner)
    is_surround = np.asarray(is_surround, bool)
    tile_row = np.asarray(tile_row, dtype=np.float64)
    tile_col = np.asarray(tile_col, dtype=np.float64)
    tile_px = np.asarray(tile_px, dtype=np.float64)
    n_ref = max(1, min(int(n_reference_frames), n_frames))
    far = is_surround if tile_dist_px is None else \
        is_surround & (np.asarray(tile_dist_px) >= RING_MARGIN_PX)
    if slopes is not None:
        slopes = np.asarray(slopes)
        slope_frames = (np.ones(slopes.shape[0], np.int64) if slope_frames is None
                        else np.asarray(slope_frames, dtype=np.int64))
        if slope_frames.sum() != n_frames:
            raise ValueError(f"slopes cover {slope_frames.sum()} frames, expected {n_frames}")
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)

        def change_of(cols):
            v = np.asarray(y[:, cols], dtype=np.float64)
            base = np.nanmean(v[:n_ref], axis=0)
            gone = ~np.isfinite(base)  # no reference: the tile's median (only there)
            if gone.any():
                base[gone] = np.nanmedian(v[:, gone], axis=0)
            return v - base

        # the illumination where a particle has too few surroundings of its own: a plane
        # fitted to (up to 256 of) all the surroundings' tiles
        all_far = np.flatnonzero(far)
        if all_far.size > 256:
            all_far = all_far[np.linspace(0, all_far.size - 1, 256).astype(int)]
        coef = _plane_fit(change_of(all_far), tile_row[all_far], tile_col[all_far])
        center = (tile_row[all_far].mean(), tile_col[all_far].mean()) if all_far.size \
            else (0.0, 0.0)
        # each particle with its surroundings: the memory is one particle's tiles
        for i in np.unique(owner):
            cols = np.flatnonzero(owner == i)
            change = change_of(cols)
            mine = far[cols]
            if np.count_nonzero(mine) >= 12:  # its own plane
                c = _plane_fit(change[:, mine], tile_row[cols][mine], tile_col[cols][mine])
                ctr = (tile_row[cols][mine].mean(), tile_col[cols][mine].mean())
            else:
                c, ctr = coef, center
            z = change if c is None else change - _plane_at(c, ctr, tile_row[cols],
                                                            tile_col[cols])
            # the noise of one pixel, for its tiles and its surroundings', from the
            # frame-to-frame differences
            diff = np.diff(z, axis=0) * np.sqrt(tile_px[cols]) / np.sqrt(2.0)
            sigma = np.full(cols.size, np.nan)
            for sur in (False, True):
                sel = is_surround[cols] == sur
                if sel.any():
                    sigma[sel] = _robust_sigma(diff[:, sel].ravel())
            sigma = sigma / np.sqrt(tile_px[cols])
            st = _darkening_steps(z, sigma, None if slopes is None else np.repeat(
                np.asarray(slopes[:, cols], dtype=np.float64), slope_frames, axis=0),
                threshold)
            hit = (st["step"] < -st["need"]) & (st["worst"] < st["before"] + st["step"] / 2) \
                & (st["jump"] < st["step"] / 2) & (st["delta"] < -st["need_delta"]) \
                & (st["n_before"] >= DARKENING_TREND_MIN_FRAMES)
            if not check_particles:
                hit &= is_surround[cols][None, :]
            rows = np.flatnonzero(hit.any(axis=1))
            if rows.size:
                flags[int(st["t"][rows[0]]):, i] = True
    return flags


def _plane_fit(change, rows, cols):
    """(n_frames, 3) coefficients of the plane a + b·row + c·col (row, col relative to the
    tiles' mean, / 50 px) fitted in each frame to the tiles' ``change`` (n_frames, n_tiles),
    least squares, once more without those off by more than 3 x the residuals' robust
    spread; NaN in a frame with fewer than 6 tiles; None when there are fewer than 6
    tiles."""
    import warnings

    if change.shape[1] < 6:
        return None
    a = np.column_stack([np.ones(rows.size), (rows - rows.mean()) / 50.0,
                         (cols - cols.mean()) / 50.0])
    w = np.isfinite(change)
    yz = np.where(w, change, 0.0)
    coef = None
    for _ in range(2):
        wf = w.astype(np.float64)
        nm = np.einsum("tk,ki,kj->tij", wf, a, a) + 1e-9 * np.eye(3)
        rhs = np.einsum("tk,ki,tk->ti", wf, a, yz)
        coef = np.linalg.solve(nm, rhs[..., None])[..., 0]
        res = np.where(w, change - coef @ a.T, np.nan)
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a frame with no tile
            spread = 1.4826 * np.nanmedian(
                np.abs(res - np.nanmedian(res, axis=1, keepdims=True)), axis=1)
        w = np.isfinite(change) & (np.abs(res) <= 3 * spread[:, None] + 1e-12)
    coef[w.sum(axis=1) < 6] = np.nan
    return coef


def _plane_at(coef, center, rows, cols):
    """(n_frames, n_tiles) the planes ``coef`` (:func:`_plane_fit`, fitted about
    ``center``) at the tiles (0 in a frame without a plane)."""
    a = np.column_stack([np.ones(rows.size), (rows - center[0]) / 50.0,
                         (cols - center[1]) / 50.0])
    return np.nan_to_num(coef @ a.T)


def _step_weights(n_before, n_after):
    """Weights over frames [t - n_before, t + n_after) giving the step at t of a least-squares
    line + step, and its noise over one frame's."""
    tau = np.arange(-n_before, n_after, dtype=np.float64)
    x = np.column_stack([np.ones(tau.size), tau, tau >= 0])
    pinv = np.linalg.pinv(x)
    return pinv[2], float(np.sqrt(np.sum(pinv[2] ** 2)))


def _darkening_steps(z, sigma, slopes, threshold):
    """The statistics of :func:`local_darkening` at each candidate frame t = 1 ..
    n_frames - :data:`DARKENING_AFTER_FRAMES` (rows) and tile (columns): ``step`` (mean
    of the after frames - mean of the up to :data:`DARKENING_BEFORE_FRAMES` before),
    ``need`` (what it must exceed), ``delta`` / ``need_delta`` (the line-plus-step fit's),
    ``worst`` (the highest after frame), ``before``, ``jump`` (z_t - z_(t-1)) and
    ``n_before``."""
    n_frames = z.shape[0]
    p_after, w_before = DARKENING_AFTER_FRAMES, DARKENING_BEFORE_FRAMES
    fin = np.isfinite(z)
    zf = np.where(fin, z, 0.0)
    cs = np.vstack([np.zeros((1, z.shape[1])), np.cumsum(zf, axis=0)])
    cn = np.vstack([np.zeros((1, z.shape[1])), np.cumsum(fin, axis=0)])
    t = np.arange(1, n_frames - p_after + 1)
    lo = np.maximum(t - w_before, 0)
    n_b = (cn[t] - cn[lo])
    n_a = cn[t + p_after] - cn[t]
    with np.errstate(invalid="ignore", divide="ignore"):
        before = np.where(n_b > 0, (cs[t] - cs[lo]) / np.maximum(n_b, 1), np.nan)
        after = np.where(n_a == p_after, (cs[t + p_after] - cs[t]) / p_after, np.nan)
    step = after - before
    noise = sigma * np.sqrt(1.0 / np.maximum(n_b, 1) + 1.0 / p_after)
    need = np.maximum(DARKENING_SIGMAS * noise, DARKENING_MIN_FRACTION * abs(threshold))
    allow = 0.0
    if slopes is not None:
        g = np.asarray(slopes, dtype=np.float64)
        allow = DARKENING_REGISTRATION_PX * g[t - 1]  # the edges before (not the speck's)
        need = need + allow
    delta = np.full(step.shape, np.nan)
    need_delta = np.full(step.shape, np.inf)
    for nb in range(DARKENING_TREND_MIN_FRAMES, w_before + 1):
        rows = np.flatnonzero((t - lo) == nb)
        if not rows.size:
            continue
        w, sd = _step_weights(nb, p_after)
        acc = np.zeros((rows.size, z.shape[1]))
        for j, wj in enumerate(w):  # NaN where any frame of the window is
            acc += wj * z[t[rows] - nb + j]
        delta[rows] = acc
        need_delta[rows] = np.maximum(DARKENING_TREND_SIGMAS * sd * sigma,
                                      DARKENING_MIN_FRACTION * abs(threshold))
    need_delta = need_delta + allow
    worst = z[t]
    for j in range(1, p_after):
        worst = np.maximum(worst, z[t + j])  # NaN when any is NaN: not tested
    jump = z[t] - z[t - 1]
    return {"t": t, "step": step, "need": need, "delta": delta, "need_delta": need_delta,
            "worst": worst, "before": before, "jump": jump,
            "n_before": np.broadcast_to((t - lo)[:, None], step.shape)}


def _edge_contrast(frames):
    """(n, n_row, n_col): each pixel's largest difference to one of its 4 neighbours,
    relative to its own value (per px): how much a registration error moving the image by
    a fraction of a pixel changes it (large next to a sharp edge, even on its dark side;
    NaN where the pixel is not > 0)."""
    f = np.asarray(frames, dtype=np.float64)
    out = np.zeros_like(f)
    for axis in (1, 2):
        d = np.abs(np.diff(f, axis=axis))
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[axis], hi[axis] = slice(None, -1), slice(1, None)
        np.maximum(out[tuple(lo)], d, out=out[tuple(lo)])
        np.maximum(out[tuple(hi)], d, out=out[tuple(hi)])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(f > 0, out / f, np.nan)
