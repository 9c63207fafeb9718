"""The instrument path (``analysis._streaming.analyze_streaming``): a movie of the
instrument HDF5 layout measured on the particles' crops gives the tables of the
full-frame ``analyze_dataset`` on the movie loaded in memory, exactly, and holds a
memory that does not grow with the number of frames (tracemalloc; no timings)."""

from __future__ import annotations

import tracemalloc
import warnings

import h5py
import numpy as np
import pandas as pd
import pytest

from asymflux import analysis as an
from asymflux import io
from asymflux.analysis._streaming import CropMosaic, analyze_streaming

SHAPE = (120, 176)
CENTERS = [(30, 34), (34, 90), (84, 60), (88, 132), (58, 150), (62, 10)]  # one at the edge
RADII = [13, 11, 14, 10, 12, 9]


def write_movie(path, n_frames, *, drift_px_per_frame=(0.04, -0.03), seed=1):
    """A small movie in the instrument layout: discs whose cores shrink (off-centre in
    some), a linear stage drift rendered sub-pixel, camera noise; uint16, one frame per
    HDF5 chunk."""
    rng = np.random.default_rng(seed)
    rr, cc = np.indices(SHAPE).astype(float)
    offsets = [(0, 5), (0, 0), (-4, 0), (0, 0), (3, 3), (0, 0)]
    with h5py.File(path, "w") as f:
        movie = f.create_dataset("movie", (n_frames, *SHAPE), dtype="u2", chunks=(1, *SHAPE))
        movie.attrs["pixel_nm"] = 65.0
        f["camera_timing"] = np.arange(n_frames) * 2.0
        for k in range(n_frames):
            dr, dc = k * drift_px_per_frame[0], k * drift_px_per_frame[1]
            img = np.full(SHAPE, 700.0)
            front = 1.3 * (1 - k / max(1, n_frames - 1))
            for (r0, c0), rad, (orow, ocol) in zip(CENTERS, RADII, offsets, strict=True):
                d = np.hypot(rr - r0 - dr, cc - c0 - dc)
                inside = np.clip(rad - d + 0.5, 0, 1)
                core = np.hypot(rr - r0 - dr - orow, cc - c0 - dc - ocol) / rad
                dI = 0.2 * np.clip((core - front) * 4 + 1, 0, 1)
                img = img * (1 - inside) + inside * 2500 * (1 + dI)
            movie[k] = np.clip(img + rng.normal(0, 15, SHAPE), 0, 65535).astype(np.uint16)
        f["potentiostat_value"] = np.linspace(3.6, 4.2, n_frames)
    return path


def _quiet(fn, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kw)


@pytest.fixture(scope="module")
def movie(tmp_path_factory):
    return write_movie(tmp_path_factory.mktemp("instrument") / "run.h5", 30)


RING_FLAGS = ("background_drift", "focus_change", "local_darkening")  # surroundings: crops
D_RANGE = ["d_nm_low", "d_nm_high", "offset_norm_low", "offset_norm_high"]


def _pixel_flags(table):
    """``table`` without the flags measured on the background ring (and the per-particle
    flagged fraction they enter)."""
    out = table.drop(columns=["flagged_fraction"], errors="ignore")

    def keep(s):
        return ";".join(k for k in str(s).split(";")
                        if k and k.split(":")[0] not in RING_FLAGS)

    out["quality_flags"] = out["quality_flags"].map(keep)
    return out


def _pixel_flags_warnings(table):
    return [w for w in table.attrs.get("warnings", [])
            if not any(f"quality flag {k} " in w for k in RING_FLAGS)]


@pytest.mark.parametrize("options", [
    {}, {"normalize": "frame_mean"}, {"rolling_frames": 4}, {"edge_px": 0},
    {"register": False},
    {"margin_px": 2, "edge_px": 0},  # a drift (1.2 px) larger than the margin: measured again
    pytest.param({"illumination": True, "threshold": 0.08},  # each frame's illumination
                 marks=pytest.mark.slow),  # fitted and divided: 8 s
], ids=["default", "frame_mean", "rolling", "edge0", "no-register", "small-margin",
        "illumination"])
def test_streamed_tables_equal_the_eager_full_frame_ones(movie, options, monkeypatch):
    from asymflux.analysis import _streaming

    mosaics = []

    class Counted(CropMosaic):
        def __init__(self, *args, **kw):
            mosaics.append(kw["margin_px"])
            super().__init__(*args, **kw)

    monkeypatch.setattr(_streaming, "CropMosaic", Counted)
    lazy = io.read_dataset(movie)
    assert isinstance(lazy.stack, __import__("dask.array").array.Array)
    eager_ds = io.read_dataset(movie, lazy=False)
    assert isinstance(eager_ds.stack, np.ndarray)
    full = {k: v for k, v in options.items() if k != "margin_px"}
    p1, t1, l1 = _quiet(an.analyze_dataset, eager_ds, return_labels=True, **full)
    p2, t2, l2 = _quiet(analyze_streaming, lazy, return_labels=True, **options)
    assert len(p1) == len(CENTERS)
    np.testing.assert_array_equal(l1, l2)
    # the flags measured on the particles' surroundings (their background ring) see the
    # crops, not the frame: compared without them, the rest exactly
    # and the range of d over the threshold's noise, to rounding (it is measured in the
    # crops' coordinates)
    t1f, t2f = _pixel_flags(t1), _pixel_flags(t2)
    pd.testing.assert_frame_equal(t2f.drop(columns=D_RANGE), t1f.drop(columns=D_RANGE),
                                  check_exact=True)
    pd.testing.assert_frame_equal(t2f[D_RANGE], t1f[D_RANGE], rtol=1e-9)
    pd.testing.assert_frame_equal(_pixel_flags(p2), _pixel_flags(p1), rtol=1e-9)
    assert _pixel_flags_warnings(t2) == _pixel_flags_warnings(t1)
    if options.get("register", True):
        assert t1["drift_row_px"].abs().max() > 1  # the drift was there, and removed
    assert len(mosaics) == (2 if "margin_px" in options else 1), mosaics


def test_the_options_of_the_frames_reach_the_streamed_path(movie, monkeypatch):
    """The threshold (which sets where ``illumination="auto"`` switches on), the illumination
    and the dark and flat frames reach the reading of the frames (``_dataset_inputs``) of the
    streamed path as of ``analyze_dataset``'s, and a dark and flat frame change its numbers."""
    from asymflux.analysis import _pipeline

    seen = []
    real = _pipeline._dataset_inputs

    def spy(*args, **kw):
        seen.append(kw)
        return real(*args, **kw)

    monkeypatch.setattr(_pipeline, "_dataset_inputs", spy)
    dark = np.full(SHAPE, 100.0)
    flat = np.ones(SHAPE) + np.linspace(0, 0.5, SHAPE[1])
    kw = {"threshold": 0.08, "illumination": None, "dark": dark, "flat": flat + dark}
    lazy = io.read_dataset(movie)
    p2, t2 = _quiet(analyze_streaming, lazy, **kw)
    assert len(seen) == 1
    assert seen[0]["threshold"] == 0.08 and seen[0]["illumination"] is None
    assert seen[0]["dark"] is dark and seen[0]["flat"] is kw["flat"]
    p1, t1 = _quiet(an.analyze_dataset, io.read_dataset(movie, lazy=False), **kw)
    pd.testing.assert_frame_equal(_pixel_flags(t2).drop(columns=D_RANGE),
                                  _pixel_flags(t1).drop(columns=D_RANGE), check_exact=True)
    t0 = _quiet(analyze_streaming, lazy, threshold=0.08, illumination=None)[1]
    assert np.nanmax(np.abs(t0["mean_dI"] - t2["mean_dI"])) > 1e-3


def test_mosaic_holds_the_crops_and_region(movie):
    ds = io.read_dataset(movie)
    frames = np.asarray(ds.stack[:3])
    labels = an.detect_particles(an.reference_image(frames))
    region = an.default_registration_region(labels)
    m = CropMosaic(ds.stack, labels, region=region, margin_px=20)  # crops overlap neighbours
    got = m[0:3]
    assert got.shape == (3, *m.shape[1:]) and got.dtype == np.float64
    np.testing.assert_array_equal(got[(slice(None), *m.region)], frames[(slice(None), *region)])
    for pid, (d_row, d_col) in m.offsets.items():
        rows, cols = np.nonzero(m.labels == pid)
        np.testing.assert_array_equal(got[:, rows, cols], frames[:, rows + d_row, cols + d_col])
        assert (labels == pid).sum() == rows.size
    assert m.labels.max() > labels.max()  # neighbours inside a crop: stand-in labels


def test_cli_uses_the_streamed_path_for_large_frames(movie, tmp_path, monkeypatch):
    from asymflux.analysis import _dataset
    from asymflux.cli import main

    assert main(["analyze", str(movie), "--out", str(tmp_path / "full")]) == 0
    monkeypatch.setattr(_dataset, "STREAM_MIN_PIXELS", 1)  # these 120 x 176 frames count as large
    called = []
    real = analyze_streaming

    def spy(*args, **kw):
        called.append(1)
        return real(*args, **kw)

    monkeypatch.setattr("asymflux.analysis._streaming.analyze_streaming", spy)
    assert main(["analyze", str(movie), "--out", str(tmp_path / "streamed"), "--no-cache"]) == 0
    assert called
    for name in ("particles.csv", "timeseries.csv"):
        # byte for byte but for the flags measured on the crops' background rings
        full = pd.read_csv(tmp_path / "full" / name, keep_default_na=False, dtype=str)
        streamed = pd.read_csv(tmp_path / "streamed" / name, keep_default_na=False, dtype=str)
        streamed, full = _pixel_flags(streamed), _pixel_flags(full)
        d_range = [c for c in [*D_RANGE, "asymmetry_score_low", "asymmetry_score_high"]
                   if c in full.columns]
        pd.testing.assert_frame_equal(streamed.drop(columns=d_range), full.drop(columns=d_range))
        pd.testing.assert_frame_equal(streamed[d_range].apply(pd.to_numeric, errors="coerce"),
                                      full[d_range].apply(pd.to_numeric, errors="coerce"),
                                      rtol=1e-9)


def _peak_bytes(path, **kw):
    ds = io.read_dataset(path)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        _quiet(analyze_streaming, ds, chunk_frames=4, n_threads=1, **kw)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_peak_memory_does_not_grow_with_the_number_of_frames(tmp_path):
    short = write_movie(tmp_path / "short.h5", 24)
    long = write_movie(tmp_path / "long.h5", 96)
    _peak_bytes(short)  # imports and caches first
    peak_short, peak_long = _peak_bytes(short), _peak_bytes(long)
    # frames: 4x; memory: the same few chunks (the tables, ~0.2 kB a particle and frame,
    # are the only part that grows)
    assert peak_long / peak_short < 1.5, (peak_short, peak_long)


@pytest.mark.parametrize("options", [{}, {"normalize": "frame_mean", "margin_px": 40}],
                         ids=["default", "frame_mean-edge-tiles"])
def test_compiled_kernels_give_the_numpy_paths_numbers_bit_for_bit(movie, options,
                                                                   monkeypatch):
    """The numba kernels (``analysis._kernels``: the crops' gather from frames read straight
    from the file, the registered bilinear sampling, the blank-frame test) against the
    NumPy path (``ASYMFLUX_COMPILED=0``), on the streamed and the full-frame analyses."""
    from asymflux.analysis import _kernels

    if not _kernels.use_compiled():
        pytest.skip("numba is not importable")
    lazy = io.read_dataset(movie)
    # the movie's frames are read straight from the file (one chunk per frame, raw)
    labels = _quiet(analyze_streaming, lazy, return_labels=True, **options)[2]
    assert CropMosaic(lazy.stack, labels)._direct is not None
    out = {}
    for flag in ("0", "1"):
        monkeypatch.setenv("ASYMFLUX_COMPILED", flag)
        out[flag] = (_quiet(analyze_streaming, lazy, **options),
                     _quiet(an.analyze_dataset, lazy, **{k: v for k, v in options.items()
                                                        if k != "margin_px"}))
    for numpy_tables, compiled_tables in zip(out["0"], out["1"], strict=True):
        for a, b in zip(numpy_tables, compiled_tables, strict=True):
            pd.testing.assert_frame_equal(b, a, check_exact=True)
    assert out["1"][0][1]["drift_row_px"].abs().max() > 1  # registered: bilinear sampling


def test_direct_frames_read_what_h5py_reads(tmp_path):
    """``io.instrument.direct_frames``: raw frames at the chunks' offsets, equal to h5py's
    reads, for a chunked and a contiguous movie and a chunk never written (its fill
    value); none for a compressed movie."""
    from asymflux.io.instrument import direct_frames

    rng = np.random.default_rng(3)
    data = rng.integers(0, 4000, (5, 7, 9)).astype(np.uint16)
    path = tmp_path / "m.h5"
    with h5py.File(path, "w") as f:
        chunked = f.create_dataset("chunked", (6, 7, 9), dtype="u2", chunks=(1, 7, 9),
                                   fillvalue=17)
        chunked[:5] = data  # frame 5 never written
        f.create_dataset("contiguous", data=data)
        f.create_dataset("gzip", data=data, chunks=(1, 7, 9), compression="gzip")
    with h5py.File(path, "r") as f:
        for name, n in (("chunked", 6), ("contiguous", 5)):
            reader = direct_frames(f[name])
            assert reader is not None, name
            reader.prefetch(0, n)
            buf = np.empty((7, 9), np.uint16)
            for k in range(n):
                np.testing.assert_array_equal(reader.read(k, buf), f[name][k])
            if name == "chunked":
                assert np.all(buf == 17)  # the unwritten frame: h5py's fill value
        assert direct_frames(f["gzip"]) is None


def test_read_chunk_reads_a_from_array_stack_from_its_source_and_others_through_dask():
    import dask.array as da

    from asymflux.analysis._chunks import direct_source, read_chunk

    class Store:  # an array-like (an h5py or zarr array in use), weakly referenced
        def __init__(self, a):
            self.a, self.shape, self.dtype, self.ndim = a, a.shape, a.dtype, a.ndim
            self.reads = 0

        def __getitem__(self, key):
            self.reads += 1
            return self.a[key]

    a = np.arange(5 * 3 * 4, dtype=np.uint16).reshape(5, 3, 4)
    store = Store(a)
    stack = da.from_array(store, chunks=(1, 3, 4), name="test-read-chunk-direct")
    assert direct_source(stack) is store
    store.reads = 0  # (from_array looked at it)
    assert np.array_equal(read_chunk(stack, 1, 4), a[1:4]) and store.reads == 1  # one read
    derived = stack + 1  # not from_array alone: through dask, the same numbers
    assert direct_source(derived) is derived
    assert np.array_equal(read_chunk(derived, 0, 5), a + 1)
