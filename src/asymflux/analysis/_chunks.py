"""Reading stacks chunk by chunk (NumPy, dask, zarr or anything sliceable)."""

from __future__ import annotations

import numpy as np

CHUNK_BYTES = 64 * 2**20


def is_dask(a) -> bool:
    return type(a).__module__.startswith("dask.")


def as_float(a):
    """float32 stays float32, everything else becomes float64."""
    a = np.asarray(a)
    if a.dtype == np.float32 or a.dtype == np.float64:
        return a
    if a.dtype.kind not in "biuf":
        raise ValueError(f"stack must hold real numbers, got dtype {a.dtype}")
    return a.astype(np.float64)


def read_chunk(stack, t0, t1) -> np.ndarray:
    """Frames ``t0:t1`` as a NumPy array (dask is computed in the calling thread)."""
    block = stack[t0:t1]
    if is_dask(block):
        from dask.local import get_sync

        # the synchronous scheduler itself: named ("synchronous"), dask first imports
        # distributed when it is installed to look for a client (~0.7 s, once)
        return np.asarray(block.compute(scheduler=get_sync))
    return np.asarray(block)


def frame_chunks(stack, chunk_frames=None):
    """``(t0, t1)`` pairs covering the stack's frames, aligned with its time chunks."""
    n = int(stack.shape[0])
    if chunk_frames is None:
        frame_bytes = max(1, int(np.prod(stack.shape[1:])) * 8)
        chunk_frames = max(1, CHUNK_BYTES // frame_bytes)
        native = None
        if is_dask(stack):
            native = stack.chunks[0][0]
        elif hasattr(stack, "chunks") and isinstance(stack.chunks, tuple) and stack.chunks:
            native = stack.chunks[0]  # zarr
        if native:
            native = int(native)
            chunk_frames = max(native, (chunk_frames // native) * native)
    chunk_frames = max(1, int(chunk_frames))
    return [(t0, min(n, t0 + chunk_frames)) for t0 in range(0, n, chunk_frames)]
