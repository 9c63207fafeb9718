"""A 2000 x 512 x 512 uint16 stack (1 GB in memory) opens lazily and reads a few frames cheaply."""

from __future__ import annotations

import time
import tracemalloc

import dask.array as da
import numpy as np
import pytest
import zarr

from asymflux.io import Dataset, read_dataset, read_zarr, write_dataset

N, R, C = 2000, 512, 512
FULL_BYTES = N * R * C * 2  # 1.05 GB


@pytest.fixture(scope="module")
def big_zarr(tmp_path_factory):
    """Written chunk by chunk (8 frames each, value = frame index): tiny on disk, never whole in RAM."""
    path = tmp_path_factory.mktemp("big") / "big.zarr"
    z = zarr.create_array(
        store=str(path),
        shape=(N, R, C),
        chunks=(8, R, C),
        dtype="uint16",
        attributes={"pixel_nm": 65.0, "frame_interval_s": 2.0},
    )
    block = np.empty((8, R, C), np.uint16)
    for k in range(0, N, 8):
        block[:] = np.arange(k, k + 8, dtype=np.uint16)[:, None, None]
        z[k : k + 8] = block
    return path


def _lazy_read(path, frames):
    tracemalloc.start()
    try:
        t0 = time.perf_counter()
        ds = read_dataset(path)
        opened = time.perf_counter() - t0
        got = [np.asarray(ds.stack[k]) for k in frames]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return ds, got, peak, opened


def test_big_zarr_opens_lazily(big_zarr):
    disk = sum(p.stat().st_size for p in big_zarr.rglob("*") if p.is_file())
    assert disk < 20e6  # the 1 GB stack costs a few MB on disk

    frames = [0, 999, 1999]
    ds, got, peak, opened = _lazy_read(big_zarr, frames)
    assert isinstance(ds.stack, da.Array)
    assert ds.stack.shape == (N, R, C) and ds.stack.dtype == np.uint16
    assert ds.stack.chunksize == (8, R, C)
    assert ds.pixel_nm == 65.0 and ds.time_s[-1] == 2.0 * (N - 1)
    for k, frame in zip(frames, got, strict=True):
        assert frame.shape == (R, C) and np.all(frame == k)
    # three 8-frame chunks are 12 MB; the whole stack is 1 GB
    assert peak < 64e6, f"peak traced memory {peak / 1e6:.0f} MB"
    assert peak < FULL_BYTES / 15
    assert opened < 5.0
    # a reduction over the time axis streams chunk by chunk
    assert int(ds.stack[:, 100, 100].max().compute()) == N - 1


def test_big_zarr_bare_reader(big_zarr):
    raw = read_zarr(big_zarr)
    assert isinstance(raw.stack, da.Array)
    assert raw.stack.nbytes == FULL_BYTES


@pytest.mark.slow
def test_big_lazy_stack_written_as_dataset_without_loading(big_zarr, tmp_path):
    """write_dataset streams a dask stack into stack.zarr chunk by chunk."""
    src = read_zarr(big_zarr).stack
    ds = Dataset(
        stack=src,
        time_s=np.arange(N) * 2.0,
        pixel_nm=65.0,
        metadata={"material": "NMC811", "ageing": "fresh", "rate_mA_g": 100.0, "cell": "c"},
    )
    tracemalloc.start()
    try:
        write_dataset(ds, tmp_path / "big_ds", stack_format="zarr")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 200e6, f"peak traced memory {peak / 1e6:.0f} MB"
    back = read_dataset(tmp_path / "big_ds")
    assert isinstance(back.stack, da.Array)
    np.testing.assert_array_equal(np.asarray(back.stack[1234]), 1234)
