"""Benchmark: end-to-end particle analysis of a large zarr stack.

Builds a (frames, 512, 512) float32 zarr stack with 20 particles (a smooth field plus
a little noise, so it compresses, and a random-walk stage drift of ~0.05 px per frame)
in a temporary folder, then times ``asymflux.analysis.particle_timeseries`` (with drift
registration, as ``asymflux analyze`` runs by default) + ``summarize_particles``
streaming it chunk by chunk, against a naive version that loads everything into NumPy
first, registers whole frames one by one and measures with boolean masks. Prints
frames/s, peak memory (RSS high-water mark of this process) and their ratios; no
asserts.

    python benchmarks/bench_analysis.py                 # 2000 frames (~2 GB raw)
    python benchmarks/bench_analysis.py --frames 200
    python benchmarks/bench_analysis.py --no-register   # measurement alone
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def make_stack(path: Path, n_frames: int, size: int, n_particles: int, chunk_frames: int, seed=0,
               drift_px=0.05):
    import zarr
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    rr, cc = np.indices((size, size))
    centers = []
    while len(centers) < n_particles:  # non-overlapping, away from the border
        c = rng.uniform(40, size - 40, 2)
        if all(np.hypot(*(c - o)) > 70 for o in centers):
            centers.append(c)
    radius = rng.uniform(14, 22, n_particles)
    offsets = rng.uniform(-0.4, 0.4, (n_particles, 2)) * radius[:, None]
    labels = np.zeros((size, size), np.int32)
    dist_core = np.full((n_particles, size, size), np.inf, np.float32)
    for i, (c, r, o) in enumerate(zip(centers, radius, offsets, strict=True)):
        d = np.hypot(rr - c[0], cc - c[1])
        labels[d <= r] = i + 1
        dist_core[i] = np.hypot(rr - c[0] - o[0], cc - c[1] - o[1]) / r
    base = np.where(labels > 0, 1.0, 0.3).astype(np.float32)
    drift = np.cumsum(rng.normal(0, drift_px, (n_frames, 2)), axis=0)
    drift -= drift[0]
    from zarr.codecs import BloscCodec

    # lz4 + byte shuffle: decompresses at several GB/s (zarr's default zstd is slower)
    store = zarr.create_array(str(path), shape=(n_frames, size, size),
                              chunks=(chunk_frames, size, size), dtype="f4",
                              compressors=BloscCodec(cname="lz4", clevel=3, shuffle="shuffle"))
    for t0 in range(0, n_frames, chunk_frames):
        t1 = min(n_frames, t0 + chunk_frames)
        block = np.empty((t1 - t0, size, size), np.float32)
        for k in range(t0, t1):
            front = 1.3 * (1 - k / max(1, n_frames - 1))  # shrinking core radius (relative)
            dI = np.zeros((size, size), np.float32)
            for i in range(n_particles):
                m = labels == i + 1
                dI[m] = 0.2 * np.clip((dist_core[i][m] - front) * 4 + 1, 0, 1)
            # little noise, quantised so the float32 data compress like a camera's
            frame = ndi.shift(base * (1 + dI), drift[k], order=1, mode="nearest")
            noisy = frame + rng.normal(0, 0.003, dI.shape).astype(np.float32)
            block[k - t0] = np.round(noisy * 4096) / 4096
        store[t0:t1] = block
    return labels, drift


def naive(path: Path, labels: np.ndarray, pixel_nm: float, threshold=0.05, register=True):
    """Load everything, register whole frames, then per frame and particle with boolean masks."""
    import zarr
    from scipy import ndimage as ndi
    from skimage.registration import phase_cross_correlation

    stack = np.asarray(zarr.open_array(str(path), mode="r")[:], dtype=np.float64)
    if register:
        for k in range(1, stack.shape[0]):
            shift, _, _ = phase_cross_correlation(stack[0], stack[k], upsample_factor=10)
            stack[k] = ndi.shift(stack[k], shift, order=1, mode="nearest")
    dI = stack / stack[0] - 1
    ids = np.unique(labels[labels > 0])
    out = []
    rr, cc = np.indices(labels.shape)
    for i in ids:
        m = labels == i
        r0, c0 = rr[m].mean(), cc[m].mean()
        for k in range(stack.shape[0]):
            u = m & (dI[k] < threshold)
            d = np.hypot(rr[u].mean() - r0, cc[u].mean() - c0) if u.any() else np.nan
            out.append((i, k, u.sum() / m.sum(), d * pixel_nm))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=2000)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--particles", type=int, default=20)
    p.add_argument("--chunk-frames", type=int, default=16)
    p.add_argument("--no-register", dest="register", action="store_false",
                   help="skip drift registration (the stack is then measured as it drifts)")
    p.add_argument("--drift-px", type=float, default=0.05,
                   help="standard deviation of the frame-to-frame stage drift, pixels")
    p.add_argument("--drift-every", type=int, default=1)
    p.add_argument("--naive-frames", type=int, default=200,
                   help="frames for the naive version (it needs the whole stack in memory)")
    p.add_argument("--zarr-direct", action="store_true",
                   help="pass the zarr array itself instead of a dask array over it")
    p.add_argument("--keep", action="store_true", help="keep the temporary stack")
    p.add_argument("--repeats", type=int, default=3,
                   help="timed runs of the streamed analysis (the median is reported)")
    args = p.parse_args(argv)

    import dask.array as da

    from asymflux import analysis as an

    tmp = Path(tempfile.mkdtemp(prefix="asymflux-bench-"))
    try:
        path = tmp / "stack.zarr"
        t = time.perf_counter()
        labels, drift = make_stack(path, args.frames, args.size, args.particles, args.chunk_frames,
                            drift_px=args.drift_px)
        du = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        print(f"stack: {args.frames} x {args.size} x {args.size} float32 "
              f"({args.frames * args.size**2 * 4 / 2**30:.2f} GiB raw, {du / 2**30:.2f} GiB on disk),"
              f" {labels.max()} particles, written in {time.perf_counter() - t:.1f} s")
        rss0 = peak_rss_mb()
        import zarr

        stack = zarr.open_array(str(path), mode="r") if args.zarr_direct else da.from_zarr(str(path))
        times = []
        for _ in range(max(1, args.repeats)):
            t = time.perf_counter()
            ts = an.particle_timeseries(stack, labels, pixel_nm=65.0, register=args.register,
                                        drift_every=args.drift_every)
            parts = an.summarize_particles(ts)
            times.append(time.perf_counter() - t)
        rss1 = peak_rss_mb()
        # the first run includes the one-off imports (pandas, dask.distributed, ...; ~1 s);
        # later ones show the steady rate. Judged on the median of all runs.
        dt = float(np.median(times))
        fps = args.frames / dt
        print("runs: " + ", ".join(f"{args.frames / x:.0f}" for x in times)
              + f" frames/s (first includes one-off imports; load average {os.getloadavg()[0]:.2f})")
        if args.register:
            first = ts[ts.particle_id == ts.particle_id.iloc[0]]
            err = np.hypot(first.drift_row_px + drift[:, 0], first.drift_col_px + drift[:, 1])
            print(f"drift: {np.abs(drift).max():.1f} px at most; estimated within "
                  f"{np.sqrt(np.mean(err**2)):.3f} px rms, {err.max():.3f} px at worst")
        print(f"asymflux (streamed, register={args.register}, median of {len(times)}): {dt:.2f} s, {fps:.0f} frames/s, "
              f"peak RSS {rss1:.0f} MiB (+{rss1 - rss0:.0f} MiB during the run), "
              f"{len(parts)} particles, {(parts.classification == 'asymmetric').sum()} asymmetric")

        n_naive = min(args.naive_frames, args.frames)
        npath = tmp / "naive.zarr"
        import zarr

        zarr.open_array(str(npath), mode="w", shape=(n_naive, args.size, args.size),
                        chunks=(args.chunk_frames, args.size, args.size), dtype="f4")[:] = \
            zarr.open_array(str(path), mode="r")[:n_naive]
        t = time.perf_counter()
        ref = naive(npath, labels, 65.0, register=args.register)
        dt_n = time.perf_counter() - t
        fps_n = n_naive / dt_n
        print(f"naive (load everything, NumPy masks, {n_naive} frames): {dt_n:.2f} s, "
              f"{fps_n:.0f} frames/s, needs {n_naive * args.size**2 * 8 / 2**20:.0f} MiB for "
              f"the float64 stack alone ({args.frames * args.size**2 * 8 / 2**30:.1f} GiB for all)")
        sub = ts[ts.frame < n_naive].sort_values(["particle_id", "frame"])
        ref_d = np.array([r[3] for r in ref])
        diff = np.abs(sub.offset_nm.to_numpy() - ref_d)
        same_nan = np.isnan(sub.offset_nm.to_numpy()) == np.isnan(ref_d)
        print(f"speed-up: {fps / fps_n:.1f}x; offsets d against the naive version: median |diff| "
              f"{np.nanmedian(diff):.2f} nm, 99th percentile {np.nanpercentile(diff, 99):.1f} nm "
              f"(pixel 65 nm), NaN in the same places: {bool(same_nan.all())}")
        print(f"target: >= 300 frames/s -> {'met' if fps >= 300 else 'NOT met'} ({fps / 300:.2f}x); "
              f"peak < 1024 MiB -> {'met' if rss1 < 1024 else 'NOT met'} ({rss1:.0f} MiB, "
              "includes the naive run only if it ran first: it runs after)")
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
