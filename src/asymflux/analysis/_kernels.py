"""Compiled (numba) inner loops of the measurement: the crops cut out of a frame and the
registered particle pixels sampled, each in one pass with no temporary arrays.

Each kernel computes exactly what the NumPy code it replaces computes (the same IEEE
operations in the same order; no fast-math), so results are identical bit for bit with
and without them (``tests/analysis/test_streaming.py``). They release the GIL, so the
measurement's worker threads run them side by side. ``ASYMFLUX_COMPILED=0`` in the
environment (read at each call) switches them off: the NumPy code runs instead. Compiled
at first use (numba is imported then, not with the package) and cached on disk when the
package's folder or numba's user cache is writable (~1-2 s to compile, ~0.3 s to load).
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["use_compiled", "prepare", "gather_float", "bilinear_sample", "blank_frames",
           "unreacted_sums"]

_COMPILED = {}


def use_compiled() -> bool:
    """Whether the compiled kernels run (numba importable and ``ASYMFLUX_COMPILED`` not
    ``0``)."""
    if os.environ.get("ASYMFLUX_COMPILED", "1").strip() in ("0", "false", "no", "off"):
        return False
    if "numba" not in _COMPILED:
        try:
            import numba  # noqa: F401
        except ImportError:
            _COMPILED["numba"] = False
        else:
            _COMPILED["numba"] = True
    return _COMPILED["numba"]


def _compiled(kernel):
    fast = _COMPILED.get(kernel)
    if fast is None:
        import numba

        try:
            fast = numba.njit(cache=True, nogil=True)(kernel)
        except RuntimeError:  # no writable cache location: compiled in each process
            fast = numba.njit(nogil=True)(kernel)
        _COMPILED[kernel] = fast
    return fast


def _gather_float(src, index, out):
    n, m = out.shape
    for k in range(n):
        s = src[k]
        o = out[k]
        for i in range(m):
            o[i] = s[index[i]]


def gather_float(src, index, out):
    """``out[k, i] = float(src[k, index[i]])``: (n, n_pix) any real dtype -> (n, m) float64.

    As ``np.take(src, index, axis=1)`` converted to float64 (exact for every integer
    dtype up to 32 bits and for float32/float64).
    """
    _compiled(_gather_float)(src, index, out)
    return out


def _bilinear(flat, rows, cols, n_row, n_col, r_lo, w_r, c_lo, w_c, out):
    n, m = out.shape
    if m == 0:
        return
    rmin, rmax, cmin, cmax = rows[0], rows[0], cols[0], cols[0]
    for i in range(m):
        rmin = min(rmin, rows[i])
        rmax = max(rmax, rows[i])
        cmin = min(cmin, cols[i])
        cmax = max(cmax, cols[i])
    for k in range(n):
        f = flat[k]
        o = out[k]
        if w_r[k] == 0.0 and w_c[k] == 0.0 and r_lo[k] == 0 and c_lo[k] == 0:
            for i in range(m):  # no shift: the pixel itself (as np.take)
                o[i] = f[rows[i] * n_col + cols[i]]
            continue
        ur = 1.0 - w_r[k]
        uc = 1.0 - w_c[k]
        wr = w_r[k]
        wc = w_c[k]
        if (rmin + r_lo[k] >= 0 and rmax + r_lo[k] + 1 < n_row
                and cmin + c_lo[k] >= 0 and cmax + c_lo[k] + 1 < n_col):
            shift = r_lo[k] * n_col + c_lo[k]  # every neighbour inside: no clipping
            for i in range(m):
                p = rows[i] * n_col + cols[i] + shift
                top = f[p] * uc + f[p + 1] * wc
                bottom = f[p + n_col] * uc + f[p + n_col + 1] * wc
                o[i] = top * ur + bottom * wr
            continue
        for i in range(m):
            r0 = min(max(rows[i] + r_lo[k], 0), n_row - 1)
            r1 = min(max(rows[i] + r_lo[k] + 1, 0), n_row - 1)
            c0 = min(max(cols[i] + c_lo[k], 0), n_col - 1)
            c1 = min(max(cols[i] + c_lo[k] + 1, 0), n_col - 1)
            top = f[r0 * n_col + c0] * uc + f[r0 * n_col + c1] * wc
            bottom = f[r1 * n_col + c0] * uc + f[r1 * n_col + c1] * wc
            o[i] = top * ur + bottom * wr


def bilinear_sample(flat, rows, cols, n_row, n_col, r_lo, w_r, c_lo, w_c, out):
    """Bilinear samples of (n, n_row * n_col) float64 frames at (rows + r_lo + w_r,
    cols + c_lo + w_c) per frame, edges repeated: what ``_measure._Pixels.sample`` computes
    with four gathers and a weighted sum, in one pass. ``out`` (n, m) float64."""
    _compiled(_bilinear)(flat, rows, cols, int(n_row), int(n_col), r_lo, w_r, c_lo, w_c, out)
    return out


def _blank_frames(flat, out):
    n, m = flat.shape
    for k in range(n):
        f = flat[k]
        blank = True
        i = 0
        while i < m and f[i] != f[i]:  # NaN
            i += 1
        if i < m:
            first = f[i]
            for j in range(i + 1, m):
                v = f[j]
                if v == v and v != first:
                    blank = False
                    break
        out[k] = blank


def blank_frames(flat):
    """(n,) bool: frames of (n, n_pix) float ``flat`` holding no image, every pixel NaN or
    one value (``~(np.fmax.reduce(flat, 1) > np.fmin.reduce(flat, 1))``); stops at a
    frame's second distinct value."""
    out = np.empty(flat.shape[0], np.bool_)
    _compiled(_blank_frames)(flat, out)
    return out


def _unreacted_sums(dI, negate, threshold, noise, inner, rows, cols, starts, out):
    n, m = dI.shape
    n_seg = starts.size
    n_thr = 1 if noise.size == 0 else 3
    use_inner = inner.size > 0
    for k in range(n):
        d = dI[k]
        for s in range(n_seg):
            a = starts[s]
            b = starts[s + 1] if s + 1 < n_seg else m
            for t in range(n_thr):
                cnt = 0.0
                sr = 0.0
                sc = 0.0
                for i in range(a, b):
                    v = -d[i] if negate else d[i]
                    if t == 0:
                        thr = threshold
                    elif t == 1:
                        thr = threshold + -1.0 * noise[i]
                    else:
                        thr = threshold + 1.0 * noise[i]
                    if v < thr and (not use_inner or inner[i] != 0.0):
                        cnt += 1.0
                        sr += rows[i]
                        sc += cols[i]
                out[3 * t, k, s] = cnt
                out[3 * t + 1, k, s] = sr
                out[3 * t + 2, k, s] = sc


def unreacted_sums(dI, negate, threshold, noise, inner, rows, cols, starts):
    """Per particle and frame, the unreacted pixels' count and sums of row and column, for
    the threshold (``dI < threshold``; ``-dI`` with ``negate``) and, with ``noise`` (n_pix,),
    for ``threshold - noise`` and ``threshold + noise``; only pixels where ``inner`` is
    non-zero (None: all). ``dI`` (n, n_pix) float64, ``rows``/``cols`` (n_pix,) float64
    (integers), ``starts`` (n_particles,) increasing segment starts from 0. Returns
    (3 or 9, n, n_particles) float64: what ``np.add.reduceat`` of the 0/1 arrays and their
    products with rows and cols gives, in one pass (the sums are of integers, exact in any
    order: identical bit for bit)."""
    empty = np.zeros(0)
    noise = empty if noise is None else np.ascontiguousarray(noise, dtype=np.float64)
    inner = empty if inner is None else np.ascontiguousarray(inner, dtype=np.float64)
    out = np.empty((3 if noise.size == 0 else 9, dI.shape[0], starts.size))
    _compiled(_unreacted_sums)(dI, bool(negate), float(threshold), noise, inner, rows, cols,
                               np.ascontiguousarray(starts, dtype=np.int64), out)
    return out


def prepare():
    """Import numba and load (or compile) the kernels now, before a timed pass over the
    frames: a one-off ~0.5-2 s that would otherwise land in the pass's first chunk. No-op
    when the kernels are off."""
    if not use_compiled():
        return
    frames = np.zeros((1, 4 * 4))
    for dtype in (np.uint16, np.float64):
        gather_float(frames.astype(dtype), np.arange(2), np.empty((1, 2)))
    blank_frames(frames)
    one = np.zeros(1, np.int64)
    bilinear_sample(frames, np.arange(2), np.arange(2), 4, 4, one, np.full(1, 0.5), one,
                    np.zeros(1), np.empty((1, 2)))
    two = np.zeros(2)
    for noise, inner in ((None, None), (two, two)):
        unreacted_sums(np.zeros((1, 2)), False, 0.05, noise, inner, two, two,
                       np.zeros(1, np.int64))
