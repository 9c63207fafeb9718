"""Reading stacks chunk by chunk (NumPy, dask, zarr or anything sliceable)."""

from __future__ import annotations

import weakref

import numpy as np

CHUNK_BYTES = 64 * 2**20


def is_dask(a) -> bool:
    return type(a).__module__.startswith("dask.")


def as_float(a):
    """float32 stays float32, everything else becomes float64. Infinite pixels (a float
    stack's dead or overflowed pixels) become NaN: unknown, as NaN pixels are (a copy;
    the input is not changed)."""
    a = np.asarray(a)
    if a.dtype == np.float32 or a.dtype == np.float64:
        if np.isinf(a).any():
            a = np.where(np.isinf(a), a.dtype.type(np.nan), a)
        return a
    if a.dtype.kind not in "biuf":
        raise ValueError(f"stack must hold real numbers, got dtype {a.dtype}")
    return a.astype(np.float64)


def direct_source(stack):
    """The array a dask stack was made from by ``dask.array.from_array`` alone (an h5py,
    zarr or TIFF store, as the readers of :mod:`asymflux.io` open them), read without
    dask's per-chunk tasks and concatenation; else the stack itself."""
    if not is_dask(stack):
        return stack
    try:  # from_array's two layers, without making the graph's task per chunk (~0.2 ms each)
        layers = stack.__dask_graph__().layers
        original = layers.get("original-" + stack.name) if len(layers) == 2 else None
        if original is not None and stack.name in layers and len(original) == 1:
            (source,) = original.values()
            if (tuple(getattr(source, "shape", ())) == tuple(stack.shape)
                    and np.dtype(getattr(source, "dtype", None)) == stack.dtype):
                return source
    except Exception:  # noqa: BLE001 - anything unexpected: the graph's tasks below
        pass
    try:
        graph = dict(stack.__dask_graph__())
    except Exception:  # noqa: BLE001 - anything unexpected: read through dask
        return stack
    sources = [v for k, v in graph.items()
               if isinstance(k, str) and k.startswith("original-")]
    n_blocks = int(np.prod(stack.numblocks))
    if (len(sources) == 1 and len(graph) == n_blocks + 1
            and tuple(getattr(sources[0], "shape", ())) == tuple(stack.shape)
            and np.dtype(getattr(sources[0], "dtype", None)) == stack.dtype
            and all(isinstance(k, tuple) and k[0] == stack.name for k in graph
                    if not isinstance(k, str))):
        return sources[0]
    return stack


#: :func:`direct_source` of the dask stacks read lately, by their name (weak: a stack's
#: file is not kept open by this).
_DIRECT = weakref.WeakValueDictionary()
#: Names of dask stacks not made by ``from_array`` alone (computed through dask).
_NOT_DIRECT: set = set()


def read_chunk(stack, t0, t1) -> np.ndarray:
    """Frames ``t0:t1`` as a NumPy array (dask is computed in the calling thread; a dask
    stack made by ``from_array`` alone is read from its source, :func:`direct_source`)."""
    if is_dask(stack) and stack.name not in _NOT_DIRECT:
        source = _DIRECT.get(stack.name)
        if source is not None and tuple(source.shape) != tuple(stack.shape):
            source = None  # another array of that name (dask's contract: should not happen)
        if source is None:
            source = direct_source(stack)
            if source is stack:
                if len(_NOT_DIRECT) > 1000:
                    _NOT_DIRECT.clear()
                _NOT_DIRECT.add(stack.name)
            else:
                try:
                    _DIRECT[stack.name] = source
                except TypeError:  # no weak reference to it: looked up each time
                    pass
        if source is not stack:
            return np.asarray(source[t0:t1])
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
