"""Pieces shared by the views: cached computations, dataset loading, error messages."""

from __future__ import annotations

import atexit
import gc
import os
import signal
import sys
import threading
import time
import traceback
import weakref
from collections import OrderedDict, deque
from concurrent.futures import Future
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np
import panel as pn

from . import _compute as C

# --------------------------------------------------------------------- simulations
# The model runs go to a small pool of worker processes (the solver holds the GIL, so
# threads would not overlap) through one LRU table of futures keyed by the arguments: it
# is the cache across sessions of one server (like ``pn.cache``), and unlike
# ``pn.cache`` it also shares a run that is still going. A slider change first submits
# every run its plots need (:func:`prefetch`), so they run side by side, and each plot
# then waits for its own.

WORKERS_ENV = "ASYMFLUX_DASHBOARD_WORKERS"
"""Environment variable: number of worker processes for the simulations (default
``min(2, CPUs)``; 0 runs them in the server process, one after the other)."""

_FUTURES: OrderedDict = OrderedDict()
_FUTURES_MAX = 4096
_LOCK = threading.RLock()
_POOL = None


def _pool():
    """The process pool (created on first use), or None to compute in this process."""
    global _POOL
    if _POOL is None:
        n = os.environ.get(WORKERS_ENV, "").strip()
        n = int(n) if n else min(2, os.cpu_count() or 1)
        if n <= 0:
            _POOL = False
        else:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            # forkserver: workers start from a clean interpreter (with the model already
            # imported), not a fork of a server with threads, sockets and a Bokeh document
            ctx = mp.get_context("forkserver")
            ctx.set_forkserver_preload(["asymflux.views._compute"])
            # the workers die with the server, even when it is killed (_die_with)
            _POOL = ProcessPoolExecutor(n, mp_context=ctx, initializer=_worker_init,
                                        initargs=(os.getpid(),))
            _install_stop_handlers()
            for _ in range(n):  # start every worker now, warm, not at the first slider move
                _POOL.submit(_warm_up)
    return _POOL or None


SIMULATION_NICE = 4
"""Niceness added to the simulation workers: the server (which publishes their results) and
a browser on the same machine get the CPU first when they need it, instead of waiting behind
the next runs (on two cores the workers otherwise hold both)."""
ANALYSIS_NICE = 8
"""Niceness added to a dataset analysis' worker (below the simulations)."""


def _worker_init(server_pid: int) -> None:
    """A simulation worker's start: it dies with the server and runs below it; what it
    imports is left out of the garbage collector's full collections
    (:func:`freeze_long_lived_objects`)."""
    _die_with(server_pid)
    try:
        os.nice(SIMULATION_NICE)
    except (OSError, AttributeError):  # no os.nice (Windows), or not allowed
        pass
    # what a worker's runs use, imported before the freeze: the model, the kinetic surface's
    # compiled kernels (numba), the optics and analysis of a simulated twin
    from asymflux import analysis, optics  # noqa: F401
    from asymflux.analysis import _kymograph, _measure, _particle  # noqa: F401
    from asymflux.model import kinetics

    kinetics.compile_kernels()
    freeze_long_lived_objects()
    log_slow_collections()


TIMING_ENV = "ASYMFLUX_DASHBOARD_TIMING"
"""Environment variable: when set (to anything but ``0``), the model explorer prints to the
server's log, for each change of the settings, when each kind of plot's runs were done and
when it was published (seconds since the change reached the server): what
``benchmarks/bench_dashboard.py --server-log`` reads beside the browser's times; and the
server and each simulation worker print every garbage collection longer than
:data:`SLOW_COLLECTION_S`."""

SLOW_COLLECTION_S = 0.02


def timing_on() -> bool:
    """Whether :data:`TIMING_ENV` is set."""
    return os.environ.get(TIMING_ENV, "0") not in ("", "0")


def log_slow_collections() -> bool:
    """With :data:`TIMING_ENV` set, print each garbage collection of this process that takes
    longer than :data:`SLOW_COLLECTION_S` to stderr (``gc.callbacks``; once per process).
    Returns whether the logging is on."""
    if not timing_on():
        return False
    if _gc_timer not in gc.callbacks:
        gc.callbacks.append(_gc_timer)
    return True


_GC_STARTED = [0.0]


def _gc_timer(phase, info):
    if phase == "start":
        _GC_STARTED[0] = time.perf_counter()
        return
    took = time.perf_counter() - _GC_STARTED[0]
    if took > SLOW_COLLECTION_S:
        print(f"asymflux timing: process {os.getpid()}: garbage collection of generation "
              f"{info.get('generation')} took {took:.3f} s", file=sys.stderr, flush=True)


_GC_FROZEN = False


def freeze_long_lived_objects() -> bool:
    """``gc.freeze()``, once per process (until :func:`unfreeze_long_lived_objects`): every
    object alive now is left out of the cyclic garbage collector's collections. Returns
    whether it froze (False when already frozen).

    A full collection otherwise walks all of NumPy's, pandas', SciPy's, Bokeh's, HoloViews'
    and Panel's objects: 0.2-0.4 s in the server process and 0.1-0.25 s in a simulation
    worker (measured here, :func:`log_slow_collections`), a pause that, landing in a slider
    move, made the model explorer's slowest moves. Objects made later are collected as
    before; frozen ones are still freed by reference counting, but a reference cycle among
    them (a page's Bokeh document, and what it holds) only after
    :func:`unfreeze_long_lived_objects`."""
    global _GC_FROZEN
    if _GC_FROZEN:
        return False
    gc.freeze()
    _GC_FROZEN = True
    return True


def unfreeze_long_lived_objects() -> None:
    """``gc.unfreeze()``: the frozen objects are collected again (the next full collection
    walks them all once)."""
    global _GC_FROZEN
    gc.unfreeze()
    _GC_FROZEN = False


def freeze_while_session_open() -> None:
    """In a server session: once the page has loaded (``pn.state.onload``), freeze the
    process's objects (:func:`freeze_long_lived_objects`) unless they are frozen already,
    and unfreeze them when this session ends — so the first page's document, frozen with the
    libraries, is not kept after its session (the next page to load freezes again).
    Nothing outside a server."""
    if not in_server():
        return

    def freeze():
        if freeze_long_lived_objects():
            on_session_end(unfreeze_long_lived_objects)

    log_slow_collections()
    pn.state.onload(freeze)


def _closed_websocket_errors() -> tuple:
    """Tornado's errors for a write to a websocket whose page has closed."""
    from tornado.iostream import StreamClosedError
    from tornado.websocket import WebSocketClosedError

    return (WebSocketClosedError, StreamClosedError)


def quiet_closed_websockets() -> bool:
    """In a server: an update written to a page that has just closed (its tab closed while
    the server was sending, say an analysis' progress) is dropped without the "Task exception
    was never retrieved ... WebSocketClosedError" traceback tornado otherwise logs for it;
    every other unhandled task error is reported as before. Installed once on the server's
    event loop; returns whether it is installed."""
    if not in_server():
        return False
    import asyncio

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # the app's code runs on the server's loop, not always inside it
        try:
            loop = asyncio.get_event_loop()
        except RuntimeError:
            return False
    previous = loop.get_exception_handler()
    if getattr(previous, "_asymflux_quiet", False):
        return True
    closed = _closed_websocket_errors()

    def handler(loop, context):
        if isinstance(context.get("exception"), closed):
            return  # the page is gone: nobody to send the update to
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    handler._asymflux_quiet = True
    loop.set_exception_handler(handler)
    return True


def _warm_up():
    """A tiny run, so that a worker's first real one does not pay for imports and caches
    (the model, and the optics and analysis a simulated twin goes through: without this
    the first twin of each worker took ~1 s longer than the next ones)."""
    from asymflux import model

    rows, cols = np.mgrid[:24, :24]
    disk = (rows - 12) ** 2 + (cols - 12) ** 2 < 64
    C.simulated_particle(disk, 65.0, np.linspace(0.0, 20.0, 4), eta=0.3, blocked_fraction=0.25,
                         angle_deg=180.0, rate_mA_g=400.0)

    # the twin ran the prescribed model; the kinetic one (Butler-Volmer, the OCV) too
    model.simulate(model.nmc88_lun2025(), model.disk_mesh(1.0, n_radial=4, n_angular=8),
                   C.make_surface(0.5, 0.25, film_ohm_m2=0.2), [model.Charge(400.0, minutes=1.0)])


def _submit(fn, *args, key=None) -> Future:
    """The future of ``fn(*args)``: an existing one for the same key (default: the
    function's name and the arguments), else a new one (a failed run is retried)."""
    key = (fn.__name__, args) if key is None else key
    run_here = False
    with _LOCK:
        fut = _FUTURES.get(key)
        if fut is not None and not _failed(fut):
            _FUTURES.move_to_end(key)
            return fut
        pool = _pool()
        if pool is not None:
            try:
                fut = pool.submit(fn, *args)
                _track(fut)
            except Exception as e:  # noqa: BLE001 - a broken pool: compute here from now on
                _pool_broken(e)
                pool = None
        if pool is None:
            fut, run_here = Future(), True
        _FUTURES[key] = fut
        while len(_FUTURES) > _FUTURES_MAX:
            _FUTURES.popitem(last=False)
    if run_here:
        try:
            fut.set_result(fn(*args))
        except Exception as e:  # noqa: BLE001 - re-raised by .result()
            fut.set_exception(e)
    return fut


_BACKGROUND: deque = deque()
_IN_FLIGHT: set = set()


def _track(fut):
    _IN_FLIGHT.add(fut)

    def done(f):
        with _LOCK:
            _IN_FLIGHT.discard(f)
        _run_background()

    fut.add_done_callback(done)


def _run_background():
    """When no run is in flight, start the next background run: one at a time, so that a
    slider change waits for at most one short run and the server keeps a core."""
    with _LOCK:
        pool = _POOL or None
        while pool is not None and _BACKGROUND and not _IN_FLIGHT:
            start = _BACKGROUND.popleft()
            try:
                if start():  # a run was started
                    break
            except Exception:  # noqa: BLE001 - a broken pool: no background work
                _BACKGROUND.clear()
                return


def warm_rate_curves(diffusivity_scales) -> int:
    """Queue, as background work for idle workers, the Fig. 5b reference curves at each
    diffusivity scale in ``diffusivity_scales`` (a change of the D-scale slider would
    otherwise wait for 12 more points). One point a run (~0.06 s), not a curve's rates side
    by side (~0.2 s): a slider move waits for at most one short background run. Returns
    the number of points waiting (0 without worker processes)."""
    if _pool() is None:
        return 0
    jobs = []
    for d in diffusivity_scales:
        for _label, e, f in C.REFERENCE_SURFACES.values():
            for r in C.CURVE_RATES_MA_G:
                known = _FUTURES.get(_point_key(e, f, r, d))
                if known is not None and not _failed(known):
                    continue

                def start(e=e, f=f, r=r, d=d):
                    return bool(_submit_points(e, f, [r], d)[1])
                jobs.append(start)
    with _LOCK:
        _BACKGROUND.extend(jobs)
        n = len(_BACKGROUND)
    _run_background()
    return n


def _point_key(eta, blocked_fraction, rate_mA_g, diffusivity_scale, film_ohm_m2=None):
    return (C.li_extracted.__name__, _li_args(eta, blocked_fraction, rate_mA_g,
                                              diffusivity_scale, film_ohm_m2))


def _failed(fut) -> bool:
    """A run that ended without a result (an error, or cancelled when the pool stopped)."""
    return fut.done() and (fut.cancelled() or fut.exception() is not None)


def _submit_points(eta, blocked_fraction, rates, diffusivity_scale, film_ohm_m2=None):
    """The futures of Fig. 5b's points of one surface at ``rates`` (one per rate, in order)
    and whether a run was started: the points already in the table (done, or still
    running) are reused; a missing point alone is one run
    (:func:`asymflux.views._compute.li_extracted`), several are computed together, side by
    side in one run (:func:`~asymflux.views._compute.li_extracted_at_rates`), and each one's
    own future is filled from it. A point whose run failed is tried again."""
    rates = list(dict.fromkeys(float(r) for r in rates))  # once each
    keys = [_point_key(eta, blocked_fraction, r, diffusivity_scale, film_ohm_m2) for r in rates]
    with _LOCK:
        futures = [_FUTURES.get(k) for k in keys]
        missing = [i for i, f in enumerate(futures) if f is None or _failed(f)]
        for i, k in enumerate(keys):
            if i not in missing:
                _FUTURES.move_to_end(k)
        if not missing:
            return futures, False
        points = {i: Future() for i in missing} if len(missing) > 1 else {}
        for i, f in points.items():  # registered first: another page waits for these
            _FUTURES[keys[i]] = futures[i] = f
        while len(_FUTURES) > _FUTURES_MAX:
            _FUTURES.popitem(last=False)
    # submitted outside the lock (without worker processes a run is computed right here)
    if not points:
        i = missing[0]
        futures[i] = _submit(C.li_extracted, *_li_args(eta, blocked_fraction, rates[i],
                                                      diffusivity_scale, film_ohm_m2))
        return futures, True
    eta, blocked_fraction, _, diffusivity_scale, film = _li_args(
        eta, blocked_fraction, 0.0, diffusivity_scale, film_ohm_m2)  # the keys' values
    batch = _submit(C.li_extracted_at_rates, eta, blocked_fraction,
                    tuple(rates[i] for i in missing), diffusivity_scale, film)

    def fill(done):
        try:
            values = done.result()
        except BaseException as e:  # noqa: BLE001 - each point's .result() re-raises it
            for f in points.values():
                f.set_exception(e)
            return
        for (_i, f), value in zip(sorted(points.items()), values, strict=True):
            if isinstance(value, BaseException):  # that rate alone failed
                f.set_exception(value)
            else:
                f.set_result(value)

    batch.add_done_callback(fill)
    return futures, True


def _pool_broken(exc):
    """Stop using the worker processes (e.g. they could not start: a script run as
    ``__main__`` without an ``if __name__ == "__main__":`` guard); warn once."""
    global _POOL
    import warnings

    if _POOL:
        _POOL.shutdown(wait=False, cancel_futures=True)
        warnings.warn(f"asymflux dashboards: the simulation worker processes failed ({exc}); "
                      "simulating in this process from now on", RuntimeWarning, stacklevel=3)
    _POOL = False


def _run(fn, *args, key=None):
    """``fn(*args)``, from the table of futures (see :func:`_submit`)."""
    from concurrent.futures.process import BrokenProcessPool

    try:
        return _submit(fn, *args, key=key).result()
    except BrokenProcessPool as e:
        with _LOCK:
            _pool_broken(e)
        return _submit(fn, *args, key=key).result()


def _film(film_ohm_m2):
    return None if film_ohm_m2 is None else float(film_ohm_m2)


def _theta_maps_args(eta, blocked_fraction, angle_deg, rate_mA_g, diffusivity_scale, pixel_nm,
                     film_ohm_m2=None, mesh=C.MAPS_MESH):
    film = _film(film_ohm_m2)
    return (1.0 if film is not None else float(eta),  # η is unused by a kinetic surface
            float(blocked_fraction), float(angle_deg), float(rate_mA_g),
            float(diffusivity_scale), float(pixel_nm), film, tuple(int(n) for n in mesh))


def _theta_maps(eta, blocked_fraction, angle_deg, rate_mA_g, diffusivity_scale, pixel_nm,
                film_ohm_m2=None, mesh=C.MAPS_MESH):
    return C.theta_maps(eta, blocked_fraction, angle_deg, rate_mA_g, diffusivity_scale,
                        pixel_nm=pixel_nm, film_ohm_m2=film_ohm_m2, mesh=mesh)


def theta_maps(eta, blocked_fraction, angle_deg, rate_mA_g, diffusivity_scale, pixel_nm,
               film_ohm_m2=None, mesh=C.MAPS_MESH):
    """θ maps at 5/10/15/20 min and the run's curves
    (:func:`asymflux.views._compute.theta_maps`), cached; ``film_ohm_m2``: kinetic surface;
    ``mesh``: :data:`~asymflux.views._compute.PREVIEW_MESH` for the coarse preview."""
    return _run(_theta_maps, *_theta_maps_args(eta, blocked_fraction, angle_deg, rate_mA_g,
                                               diffusivity_scale, pixel_nm, film_ohm_m2, mesh))


def _li_args(eta, blocked_fraction, rate_mA_g, diffusivity_scale, film_ohm_m2=None):
    film = _film(film_ohm_m2)
    return (1.0 if film is not None else float(eta), float(blocked_fraction), float(rate_mA_g),
            float(diffusivity_scale), film)


def li_extracted(eta, blocked_fraction, rate_mA_g, diffusivity_scale, film_ohm_m2=None):
    """Li extracted at the cut-off (:func:`asymflux.views._compute.li_extracted`), cached."""
    return _run(C.li_extracted, *_li_args(eta, blocked_fraction, rate_mA_g, diffusivity_scale,
                                          film_ohm_m2))


def rate_table(eta, blocked_fraction, diffusivity_scale, film_ohm_m2=None):
    """Fig. 5b table, each point cached (a new rate or η computes only the points it lacks:
    a curve's missing rates side by side in one run, :func:`_submit_points`)."""
    _submit_rate_points(eta, blocked_fraction, diffusivity_scale, film_ohm_m2=film_ohm_m2)
    return C.rate_table(eta, blocked_fraction, diffusivity_scale, point=li_extracted,
                        film_ohm_m2=film_ohm_m2)


def _submit_rate_points(eta, blocked_fraction, diffusivity_scale, rate_mA_g=None, *,
                        film_ohm_m2=None) -> list:
    curves = [(e, f, None) for _label, e, f in C.REFERENCE_SURFACES.values()]
    curves.append((float(eta), float(blocked_fraction), film_ohm_m2))
    rates = list(C.CURVE_RATES_MA_G) + ([] if rate_mA_g is None else [float(rate_mA_g)])
    # the current setting's points first: the reference curves are usually cached
    return [point for e, f, film in curves[::-1]
            for point in _submit_points(e, f, rates, diffusivity_scale, film)[0]]


def prefetch(settings: dict, *, pixel_nm: float, dataset=None, particle_id=None,
             preview: bool = False, time_offset_s=None) -> dict:
    """Start, side by side, every simulation the model explorer shows for ``settings``
    (``eta, blocked_fraction, angle_deg, rate_mA_g, diffusivity_scale`` and optionally
    ``film_ohm_m2``: a kinetic surface); returns at once. ``time_offset_s``: the dataset's
    clock offset (its analysis' key; :func:`analyzed`).

    Returns
    -------
    dict
        The futures each kind of plot waits for: ``"maps"`` (the θ maps and the V(t) and
        flux-ratio curves of the same run), with ``preview`` also ``"preview"`` (the same on
        :data:`~asymflux.views._compute.PREVIEW_MESH`, submitted first), ``"twin"`` (empty
        without a measured particle, or when it cannot be read: its plot then reports why)
        and ``"rate"`` (Fig. 5b's points).
    """
    s = {k: (None if v is None else float(v)) for k, v in settings.items()}
    film = s.get("film_ohm_m2")
    args = (s["eta"], s["blocked_fraction"], s["angle_deg"], s["rate_mA_g"],
            s["diffusivity_scale"], pixel_nm, film)
    out = {}
    fine = _theta_maps_args(*args)
    with _LOCK:
        cached = _FUTURES.get((_theta_maps.__name__, fine))
    if preview and not (cached is not None and cached.done()):  # submitted first: quicker
        out["preview"] = [_submit(_theta_maps, *_theta_maps_args(*args, mesh=C.PREVIEW_MESH))]
    # then Fig. 5b's points (one run per curve, its rates side by side: as long as the maps'
    # run with a kinetic surface), so that on two workers the four runs end together
    out["rate"] = _submit_rate_points(s["eta"], s["blocked_fraction"], s["diffusivity_scale"],
                                      s["rate_mA_g"], film_ohm_m2=film)
    out["maps"] = [_submit(_theta_maps, *fine)]
    out["twin"] = []
    # in a server, the twin waits for the dataset's analysis (a worker's job, never this loop)
    offset = C.time_offset_value(time_offset_s)
    if dataset is not None and particle_id is not None and (
            not in_server() or analysis_ready(dataset, time_offset_s=offset)):
        try:
            out["twin"].append(_submit_simulated(str(dataset).strip(), int(particle_id), s,
                                                 offset))
        except Exception as e:  # noqa: BLE001 - the plot that needs it reports it
            log_exception(e)
    return out


def _fit_particle(spec, particle_id, max_arcs, time_offset_s=None):
    from asymflux import fit as fitting

    return fitting.fit_dataset(C.load_dataset(spec, time_offset_s=time_offset_s),
                               int(particle_id), max_arcs=max_arcs)


def fit(spec, particle_id, *, max_arcs=1, time_offset_s=None) -> Future:
    """The future of :func:`asymflux.fit.fit_dataset` on a dataset name/path's particle,
    run by a worker process (10-60 s) and kept like the simulations. ``time_offset_s``: the
    clock offset (:func:`_compute.time_offset_value`); ``"auto"`` uses the estimate of the
    dataset's analysis when it is in the table (else estimates it in the worker)."""
    spec = str(spec).strip()
    offset = _used_offset(spec, C.time_offset_value(time_offset_s))
    args = (spec, int(particle_id), int(max_arcs), offset)
    return _submit(_fit_particle, *args, key=("fit", dataset_stamp(spec), *args))


def _used_offset(spec, offset, stamp=None):
    """``"auto"`` as the TimeOffset estimated by the dataset's analysis in the table (no
    second estimate), any other offset as it is."""
    if offset != "auto":
        return offset
    stamp = dataset_stamp(spec) if stamp is None else stamp
    with _LOCK:
        hit = _RESULTS.get((spec, int(stamp), offset))
    if hit is not None and hit[0] is not None:
        return C.time_offset_used(hit[1], hit[0])
    return offset


# --------------------------------------------------------------------- measured data
# ``pn.cache`` memoizes across sessions of one server process (keys: the plain arguments).


def dataset_stamp(spec: str) -> int:
    """Modification time (ns) of a dataset path, 0 for a demo name: part of the cache keys,
    so an edited or replaced dataset is re-read."""
    p = Path(str(spec).strip()).expanduser()
    results = C.results_spec(spec) if not p.is_file() else None
    try:
        if results is not None:  # an analyze output: its particle table
            f = results[0] / "particles.csv"
            return int((f if f.is_file() else results[0] / "particles.parquet").stat()
                       .st_mtime_ns)
        meta = p / "metadata.json" if p.is_dir() else p
        return int(meta.stat().st_mtime_ns)
    except OSError:
        return 0


_RESULTS: OrderedDict = OrderedDict()
_RESULTS_MAX = 32


def _analyzed(spec: str, stamp: int, allow_large: bool = False, offset=None):
    """``(dataset, particles, timeseries, labels)``: from the table of finished analyses
    (filled by :func:`start_analysis`'s worker processes too), else computed here, after
    the size check (:func:`check_size`). ``offset``: the clock offset
    (:func:`_compute.time_offset_value`), part of the key with the spec and its stamp."""
    key = (spec, int(stamp), offset)
    with _LOCK:
        hit = _RESULTS.get(key)
        if hit is not None:
            _RESULTS.move_to_end(key)
            return hit
    if C.results_spec(spec) is not None:  # analyze's tables, read (no dataset, no movie)
        _refuse_results_offset(spec, offset)
        out = (None, *C.read_results_spec(spec))
        _keep_result(key, out)
        return out
    ds = C.load_dataset(_local_spec(spec))
    check_size(ds, spec, allow_large=allow_large)
    ds = C.with_time_offset(ds, offset, spec=spec)
    particles, ts, labels = C.analyze(ds)
    out = (ds, particles, ts, labels)
    _keep_result(key, out)
    return out


def _refuse_results_offset(spec, offset):
    if offset is not None:
        raise C.DatasetSpecError(
            f"{spec}: an analyze results folder holds tables made with their own clock offset "
            "(its time_offset_s column); a clock offset cannot be applied to them: clear the "
            "clock offset, or run `asymflux analyze --time-offset-s` on the dataset again")


def _keep_result(key, value):
    with _LOCK:
        _RESULTS[key] = value
        _RESULTS.move_to_end(key)
        while len(_RESULTS) > _RESULTS_MAX:
            _RESULTS.popitem(last=False)


def analyzed(spec: str, *, allow_large: bool = False, time_offset_s=None):
    """``(dataset, particles, timeseries, labels)`` of a dataset name/path (cached). A stack
    above :func:`max_values` values is refused (:class:`DatasetTooLarge`) unless
    ``allow_large``. In a server the views use :func:`start_analysis` instead (a worker
    process, with progress, cancel and a time limit). ``time_offset_s``: the clock offset
    (seconds, ``"auto"`` or None: the dataset's own; :func:`_compute.time_offset_value`),
    as ``asymflux analyze --time-offset-s``; the offset used is
    :func:`_compute.time_offset_used`."""
    spec = str(spec).strip()
    return _analyzed(spec, dataset_stamp(spec), bool(allow_large),
                     C.time_offset_value(time_offset_s))


def analysis_ready(spec: str, *, time_offset_s=None) -> bool:
    """True when the analysis of ``spec`` (as it is on disk now, with this clock offset) is
    in the table."""
    spec = str(spec).strip()
    with _LOCK:
        return (spec, dataset_stamp(spec), C.time_offset_value(time_offset_s)) in _RESULTS


@pn.cache(max_items=64)
def _measured(spec: str, stamp: int, particle_id: int, offset=None):
    ds, _particles, ts, labels = _analyzed(spec, stamp, offset=offset)
    if ds is None:  # a particle of an analyze output: its table only
        return C.results_particle(ts, int(particle_id))
    return C.measured_particle(ds, int(particle_id), ts, labels)


def measured(spec: str, particle_id: int, *, time_offset_s=None) -> C.ParticleMovie:
    spec = str(spec).strip()
    return _measured(spec, dataset_stamp(spec), int(particle_id),
                     C.time_offset_value(time_offset_s))


def _submit_simulated(spec, particle_id, s, offset=None) -> Future:
    args, kw = _simulated_call(spec, particle_id, s, offset)
    return _submit(*args, **kw)


def _simulated_call(spec, particle_id, s, offset=None):
    """``(function, *arguments, key=...)`` of a simulated twin, for :func:`_submit`."""
    stamp = dataset_stamp(spec)
    m = _measured(spec, stamp, int(particle_id), offset)
    names = ("eta", "blocked_fraction", "angle_deg", "rate_mA_g", "diffusivity_scale")
    film = _film(s.get("film_ohm_m2"))
    values = tuple(float(s[n]) for n in names)
    if film is not None:
        values = (1.0, *values[1:])  # η is unused by a kinetic surface
    return (_simulated_particle, m.mask, float(m.pixel_nm), m.capacity_mAh_g, *values, film), \
        {"key": ("simulated", spec, stamp, offset, int(particle_id), values, film)}


def _simulated_particle(mask, pixel_nm, capacity_mAh_g, eta, blocked_fraction, angle_deg,
                        rate_mA_g, diffusivity_scale, film_ohm_m2=None):
    return C.simulated_particle(mask, pixel_nm, capacity_mAh_g, eta=eta,
                                blocked_fraction=blocked_fraction, angle_deg=angle_deg,
                                rate_mA_g=rate_mA_g, diffusivity_scale=diffusivity_scale,
                                film_ohm_m2=film_ohm_m2)


def simulated(spec, particle_id, eta, blocked_fraction, angle_deg, rate_mA_g,
              diffusivity_scale, film_ohm_m2=None, *, time_offset_s=None) -> C.ParticleMovie:
    """The simulated twin of a measured particle (cached); ``film_ohm_m2``: kinetic surface;
    ``time_offset_s``: the measured particle's clock offset (its capacity per frame)."""
    s = {"eta": float(eta), "blocked_fraction": float(blocked_fraction),
         "angle_deg": float(angle_deg), "rate_mA_g": float(rate_mA_g),
         "diffusivity_scale": float(diffusivity_scale), "film_ohm_m2": film_ohm_m2}
    args, kw = _simulated_call(str(spec).strip(), int(particle_id), s,
                               C.time_offset_value(time_offset_s))
    return _run(*args, **kw)


# --------------------------------------------------------------------- dataset analyses
# Reading and analysing a dataset can take minutes (a real movie is tens of GB): in a
# server it runs in a worker process of its own (started from the forkserver, like the
# simulation workers), watched by a daemon thread of the server. The page shows its
# progress and a Cancel button; a stack above ``max_values()`` values is refused unless
# asked, and a run longer than ``time_limit_s()`` is stopped with a message. Cancel and the
# time limit kill the process; the server's event loop never waits for it.

MAX_VALUES_ENV = "ASYMFLUX_DASHBOARD_MAX_VALUES"
"""Environment variable: largest stack (frames x rows x columns) a page analyses without
being asked (default 1e9)."""
TIME_LIMIT_ENV = "ASYMFLUX_DASHBOARD_TIME_LIMIT_S"
"""Environment variable: seconds after which a page's analysis is stopped (default 600)."""


def _env_number(name, default):
    text = os.environ.get(name, "").strip()
    try:
        value = float(text) if text else float(default)
    except ValueError:
        import warnings

        warnings.warn(f"{name}={text!r} is not a number; using {default:g}", RuntimeWarning,
                      stacklevel=3)
        return float(default)
    return value if value > 0 else float(default)


def max_values() -> float:
    """Largest stack (frames x rows x columns) analysed without ``allow_large``."""
    return _env_number(MAX_VALUES_ENV, 1e9)


def time_limit_s() -> float:
    """Seconds after which a dashboard analysis is stopped."""
    return _env_number(TIME_LIMIT_ENV, 600.0)


class DatasetTooLarge(C.DatasetSpecError):
    """A stack above the dashboard's size limit (the message says how to go on)."""


class AnalysisStopped(RuntimeError):
    """An analysis cancelled from the page, stopped by the time limit or the server's stop."""


def check_size(ds, spec, *, allow_large=False, limit=None) -> None:
    """Refuse (:class:`DatasetTooLarge`) a stack above ``limit`` (default :func:`max_values`)
    values unless ``allow_large``; reads only the stack's shape."""
    limit = max_values() if limit is None else float(limit)
    shape = tuple(int(n) for n in getattr(ds.stack, "shape", ()))
    n = float(np.prod(shape, dtype=float)) if shape else 0.0
    if allow_large or n <= limit:
        return
    dims = " x ".join(f"{d:,}" for d in shape)
    raise DatasetTooLarge(
        f"{spec}: the stack holds {dims} = {n:.3g} values (frames x rows x columns), above the "
        f"dashboard's limit of {limit:.3g} ({MAX_VALUES_ENV}); press 'Analyse anyway' (it may "
        f"take long, and stops after {time_limit_s():g} s), or run `asymflux analyze` on it")


def _alive(pid: int) -> bool:
    """True while process ``pid`` runs (a zombie counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except FileNotFoundError:
        return False
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def _die_with(server_pid: int) -> None:
    """In a worker process: end when the server process ends, even when it is killed.
    Linux: PR_SET_PDEATHSIG (the parent is the forkserver, which ends with the server); and
    everywhere a daemon thread that watches the server's pid."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    parent = os.getppid()

    def watch():
        while _alive(server_pid) and os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="asymflux-watch-server").start()


class _ServerGone(BaseException):
    """The server closed this worker's pipe (the job was stopped): end quietly.

    A ``BaseException`` so that no ``except Exception`` in the analysis swallows it."""


def _job_main(conn, spec, allow_large, limit, server_pid, offset=None):
    """A worker process: read and analyse ``spec`` (its cycler table put on the camera's
    clock with ``offset``, :func:`_compute.load_dataset`), report progress through ``conn``;
    its result carries the offset used (:class:`~asymflux.analysis.TimeOffset`).

    When the server has closed the pipe (the job was cancelled or stopped), the worker
    ends quietly at its next report instead of printing a traceback."""
    _die_with(server_pid)

    def send(message):
        try:
            conn.send(message)
        except (OSError, EOFError) as e:  # BrokenPipeError, ConnectionResetError, closed
            raise _ServerGone from e

    try:
        os.nice(ANALYSIS_NICE)  # below the server and the simulations: the pages stay quick
    except (OSError, AttributeError):
        pass
    import tqdm.auto
    import tqdm.std

    last = [0.0]

    class Report(tqdm.std.tqdm):  # the analysis' frame loop reports through tqdm
        def __init__(self, *a, **kw):
            kw.update(disable=False, file=open(os.devnull, "w"))  # noqa: SIM115
            super().__init__(*a, **kw)

        def update(self, n=1):
            out = super().update(n)
            now = time.monotonic()
            if now - last[0] > 0.25 or (self.total and self.n >= self.total):
                last[0] = now
                send(("status", f"{self.desc or 'measuring'}: frame {self.n:,} of "
                           f"{self.total or 0:,}", self.n / self.total if self.total else None))
            return out

        def close(self):
            fp = self.fp
            super().close()
            try:
                fp.close()
            except (OSError, AttributeError):
                pass

    Report.set_lock(threading.RLock())  # no multiprocessing lock: this process may be killed
    tqdm.auto.tqdm = Report
    try:
        send(("status", "reading the dataset", None))
        ds = C.load_dataset(spec)
        check_size(ds, spec, allow_large=allow_large, limit=limit)
        if offset is not None:
            send(("status", "estimating the clock offset" if offset == "auto"
                  else "applying the clock offset", None))
            ds = C.with_time_offset(ds, offset, spec=spec)
        shape = " x ".join(f"{d:,}" for d in ds.stack.shape)
        send(("status", f"finding the particles ({shape} stack)", None))
        particles, ts, labels = C.analyze(ds)
        send(("done", (particles, ts, labels, C.time_offset_used(particles, ds))))
    except _ServerGone:
        pass
    except BaseException as e:  # noqa: BLE001 - reported to the page
        try:
            try:
                send(("error", e))
            except _ServerGone:
                raise
            except Exception:  # noqa: BLE001 - not picklable: its text
                send(("error", RuntimeError(f"{type(e).__name__}: {e}")))
        except _ServerGone:
            pass
    finally:
        try:
            conn.close()
        except OSError:
            pass


class AnalysisJob:
    """One dataset's analysis in a worker process, shared by the sessions that wait for it.

    ``future`` gives ``(dataset, particles, timeseries, labels)`` or raises (the dataset's
    error, :class:`DatasetTooLarge`, :class:`AnalysisStopped`); ``status`` / ``fraction``
    describe where it is (``fraction`` None when unknown); :meth:`release` is a waiter's
    cancel: the process is killed when no session waits any more."""

    def __init__(self, spec, stamp, allow_large, offset=None):
        self.spec, self.stamp, self.allow_large = spec, stamp, bool(allow_large)
        self.offset = offset  # the clock offset asked for (_compute.time_offset_value)
        self.future: Future = Future()
        self.status = "waiting for a worker"
        self.fraction = None
        self.started = time.monotonic()
        self.waiters = 0
        self.stop_reason = None
        self._stop = threading.Event()
        self.process = None

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    def describe(self) -> str:
        return f"{self.spec}: {self.status} ({self.elapsed_s:.0f} s)"

    def release(self, reason="cancelled from the page") -> None:
        with _LOCK:
            self.waiters = max(0, self.waiters - 1)
            if self.waiters:
                return
        self.stop(reason)

    def stop(self, reason) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
        self._stop.set()


_JOBS: dict = {}
_JOB_SLOTS = None


def _slots():
    global _JOB_SLOTS
    with _LOCK:
        if _JOB_SLOTS is None:
            n = os.environ.get(WORKERS_ENV, "").strip()
            n = int(n) if n else min(2, os.cpu_count() or 1)
            _JOB_SLOTS = threading.BoundedSemaphore(max(1, n))
    return _JOB_SLOTS


def start_analysis(spec: str, *, allow_large: bool = False,
                   time_offset_s=None) -> AnalysisJob:
    """The analysis of a dataset name/path, started in a worker process (or shared with a
    session already waiting for it; done at once when in the table). Each call counts one
    waiter: call :meth:`AnalysisJob.release` to cancel. ``time_offset_s``: the clock offset
    (seconds, ``"auto"`` or None: the dataset's own; :func:`_compute.time_offset_value`),
    part of the keys: another offset is another analysis, the same one is shared."""
    spec = str(spec).strip()
    offset = C.time_offset_value(time_offset_s)
    stamp = dataset_stamp(spec)
    key = (spec, stamp, offset, bool(allow_large))
    if C.results_spec(spec) is not None:  # analyze's tables: read here, no worker process
        job = AnalysisJob(spec, stamp, allow_large, offset)
        job.waiters = 1
        hit = _read_results_job(job, spec, stamp)
        if hit is not None:
            job.status, job.fraction = "done", 1.0
            job.future.set_result(hit)
        return job
    with _LOCK:
        hit = _RESULTS.get((spec, stamp, offset))
        job = _JOBS.get(key)
        if hit is None and job is not None and not job.future.done():
            job.waiters += 1
            return job
        job = AnalysisJob(spec, stamp, allow_large, offset)
        job.waiters = 1
        if hit is not None:
            job.status, job.fraction = "done", 1.0
            job.future.set_result(hit)
            return job
        _JOBS[key] = job
    _install_stop_handlers()
    threading.Thread(target=_run_job, args=(job, key), daemon=True,
                     name=f"asymflux-analysis {spec}").start()
    return job


def _read_results_job(job: AnalysisJob, spec, stamp):
    """The tables of an analyze output (:func:`_analyzed`), or None with the error set on
    ``job`` (finished)."""
    try:
        return _analyzed(spec, stamp, offset=job.offset)
    except Exception as e:  # noqa: BLE001 - the waiting page shows it
        job.status, job.fraction = "failed", 1.0
        job.future.set_exception(e)
        return None


def _run_job(job: AnalysisJob, key) -> None:
    try:
        job.future.set_result(_watch_job(job))
    except BaseException as e:  # noqa: BLE001 - the waiting page shows it
        job.future.set_exception(e)
    finally:
        with _LOCK:
            if _JOBS.get(key) is job:
                del _JOBS[key]


def _watch_job(job: AnalysisJob):
    slots = _slots()
    while not slots.acquire(timeout=0.2):
        if job._stop.is_set():
            raise AnalysisStopped(f"{job.spec}: analysis {job.stop_reason}")
    try:
        return _run_process(job)
    finally:
        slots.release()


def _run_process(job: AnalysisJob):
    import multiprocessing as mp

    if job._stop.is_set():
        raise AnalysisStopped(f"{job.spec}: analysis {job.stop_reason}")
    spec = _local_spec(job.spec)
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["asymflux.views._compute"])
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_job_main, name=f"asymflux-analysis {job.spec}", daemon=True,
                       args=(send, spec, job.allow_large, max_values(), os.getpid(),
                             job.offset))
    job.status = "starting a worker process"
    proc.start()
    send.close()
    job.process = proc
    deadline = time.monotonic() + time_limit_s()  # from the process' start, not the queue
    try:
        while True:
            if job._stop.is_set():
                raise AnalysisStopped(f"{job.spec}: analysis {job.stop_reason} after "
                                      f"{job.elapsed_s:.0f} s")
            if time.monotonic() > deadline:
                raise AnalysisStopped(
                    f"{job.spec}: analysis stopped after the dashboard's time limit of "
                    f"{time_limit_s():g} s ({TIME_LIMIT_ENV}); it was at: {job.status}. "
                    "Run `asymflux analyze` on this dataset instead")
            try:
                ready = recv.poll(0.2)
                msg = recv.recv() if ready else None
            except (EOFError, OSError):
                msg = ("died", None)
            except Exception as e:  # noqa: BLE001 - an error that did not unpickle
                msg = ("error", RuntimeError(f"{type(e).__name__}: {e}"))
            if msg is None:
                continue
            if msg[0] == "status":
                job.status, job.fraction = msg[1], msg[2]
            elif msg[0] == "done":
                particles, ts, labels, used = msg[1]
                break
            elif msg[0] == "error":
                raise msg[1]
            else:
                proc.join(2)
                raise RuntimeError(
                    f"{job.spec}: the analysis process ended unexpectedly (exit code "
                    f"{proc.exitcode}{'; out of memory?' if proc.exitcode == -9 else ''}) "
                    f"while {job.status}")
    finally:
        recv.close()
        _end_process(proc)
    job.status = "opening the dataset"
    ds = C.load_dataset(spec)  # lazy: for the particles' movies, read when shown
    if job.offset is not None:  # the worker's offset (its estimate: not made again)
        ds = C.with_time_offset(ds, used, spec=job.spec)
    out = (ds, particles, ts, labels)
    _keep_result((job.spec, job.stamp, job.offset), out)
    job.status, job.fraction = "done", 1.0
    return out


def _end_process(proc, grace_s=1.0):
    if proc.is_alive():
        proc.terminate()
        proc.join(grace_s)
    if proc.is_alive():
        proc.kill()
    proc.join(5)


def run_in_thread(fn, *args) -> Future:
    """``fn(*args)`` in a daemon thread (never keeps a stopping server waiting)."""
    fut: Future = Future()

    def run():
        try:
            fut.set_result(fn(*args))
        except BaseException as e:  # noqa: BLE001 - re-raised by .result()
            fut.set_exception(e)

    threading.Thread(target=run, daemon=True, name="asymflux-read").start()
    return fut


# --------------------------------------------------------------------- temporary folders
# Uploaded zips are unpacked into ``asymflux-upload-*`` folders of the temporary directory:
# each removed when the session that uploaded it ends, and all of them when the server stops.

_TEMP_DIRS: set = set()
_ZIPS: dict = {}


def _track_dir(path) -> None:
    with _LOCK:
        _TEMP_DIRS.add(str(path))
    _install_stop_handlers()


def end_session(progress, uploads) -> None:
    """A page's session ended: stop waiting on its jobs (a job no other page waits for is
    stopped) and remove the upload folders it unpacked."""
    progress.cancel()
    for d in uploads:
        remove_dir(d)


def remove_dir(path) -> None:
    import shutil

    with _LOCK:
        _TEMP_DIRS.discard(str(path))
    shutil.rmtree(path, ignore_errors=True)


def _local_spec(spec: str) -> str:
    """A dataset path of a ``.zip`` as the folder it unpacks to (once per zip and version,
    removed when the server stops); any other spec as it is."""
    path = Path(str(spec).strip()).expanduser()
    if not (path.suffix.lower() == ".zip" and path.is_file()):
        return spec
    key = (str(path), dataset_stamp(str(path)))
    with _LOCK:
        folder = _ZIPS.get(key)
    if folder is None or not Path(folder).is_dir():
        folder = str(C.extract_zip(path.read_bytes(), name=path.name))
        _track_dir(upload_root(folder))
        with _LOCK:
            _ZIPS[key] = folder
    return folder


def upload_root(folder) -> Path:
    """The ``asymflux-upload-*`` folder holding an unpacked dataset folder."""
    p = Path(folder)
    for q in (p, *p.parents):
        if q.name.startswith("asymflux-upload-"):
            return q
    return p


class _Waiting:
    """A plain future shown by :class:`JobProgress` (e.g. a particle's movie being read)."""

    def __init__(self, future, label):
        self.future, self.label, self.started = future, label, time.monotonic()
        self.fraction = None

    def describe(self) -> str:
        return f"{self.label} ({time.monotonic() - self.started:.0f} s)"

    def release(self) -> None:
        pass


class JobProgress(pn.viewable.Viewer):
    """A page's progress bar, status line and Cancel button while it waits for work done
    off the event loop (:func:`start_analysis` jobs, :func:`run_in_thread` futures); hidden
    when idle. :meth:`wait` is awaited by the page's coroutine; *Cancel* (or
    :meth:`cancel`, e.g. at the end of the session) makes it return False at once and
    releases the jobs (a job no other session waits for is stopped)."""

    def __init__(self, **params):
        super().__init__(**params)
        self.bar = pn.indicators.Progress(value=-1, max=1000, active=True, width=220,
                                          visible=False, margin=(12, 10))
        self.text = pn.pane.Markdown("", visible=False, width=700, margin=(0, 10))
        self.cancel_button = pn.widgets.Button(label="Cancel", color="warning", width=90,
                                               visible=False)
        self.cancel_button.on_click(lambda _e: self.cancel())
        self._items: list = []
        self._generation = 0

    def __panel__(self):
        return pn.Row(self.bar, self.text, self.cancel_button)

    @property
    def busy(self) -> bool:
        return bool(self._items)

    def cancel(self) -> None:
        items, self._items = self._items, []
        self._generation += 1
        for item in items:
            item.release()
        self._show(False)

    def _show(self, on: bool) -> None:
        for w in (self.bar, self.text, self.cancel_button):
            w.visible = on
        if not on:
            self.text.object = ""

    def _update(self, title: str) -> None:
        items = self._items
        done = [i for i in items if i.future.done()]
        going = [i for i in items if not i.future.done()]
        fractions = [1.0 if i.future.done() else (i.fraction or 0.0) for i in items]
        known = all(i.future.done() or i.fraction is not None for i in items)
        self.bar.value = int(1000 * sum(fractions) / len(items)) if known else -1
        head = f"**{title}**" + (f": {len(done)} of {len(items)} done" if len(items) > 1 else "")
        self.text.object = head + "".join(f"<br>{i.describe()}" for i in going[:3])

    async def wait(self, items, title: str) -> bool:
        """Show ``items`` (jobs, or ``(future, label)`` pairs) until all are done: True, or
        False when cancelled meanwhile (or superseded by another :meth:`wait`)."""
        import asyncio

        items = [_Waiting(*i) if isinstance(i, tuple) else i for i in items]
        self.cancel()  # a new wait replaces the previous one
        generation = self._generation
        self._items = items
        if all(i.future.done() for i in items):  # (no asyncio wrapper: none to retrieve)
            self._items = []
            return True
        futures = [asyncio.wrap_future(i.future) for i in items]
        self._update(title)
        self._show(True)
        try:
            while generation == self._generation:
                _done, pending = await asyncio.wait(futures, timeout=0.5)
                if not pending:
                    return generation == self._generation
                if generation == self._generation:
                    self._update(title)
            return False
        finally:
            for f in futures:  # retrieved, so asyncio logs no "exception never retrieved"
                if f.done() and not f.cancelled():
                    f.exception()
            if generation == self._generation:
                self._items = []
                self._show(False)


def on_session_end(callback) -> None:
    """``callback()`` when the current server session ends (nothing outside a server)."""
    if in_server():
        pn.state.on_session_destroyed(lambda _ctx: callback())


class DatasetLoader(pn.viewable.Viewer):
    """What a page needs to load datasets off the event loop, shared by the views: its
    error :attr:`alert`, the :class:`JobProgress` of its analyses, the *Analyse anyway*
    button (shown for a stack above the size limit), the zip :attr:`upload` (unpacked
    folders removed when the session ends) and the load token (a load overtaken by a newer
    one drops its result).

    ``on_analyse_anyway()`` is called by the button (after hiding it); ``on_upload(folder)``
    with each unpacked upload, ``on_upload_error(exc, filename)`` when one cannot be used.
    """

    def __init__(self, *, on_analyse_anyway, on_upload, on_upload_error, alert_width=1000,
                 **params):
        super().__init__(**params)
        self.alert = pn.pane.Alert("", alert_type="danger", visible=False, width=alert_width)
        self.progress = JobProgress()
        self.large_button = pn.widgets.Button(label="Analyse anyway", color="danger",
                                              width=160, visible=False)
        self.upload = pn.widgets.FileInput(accept=".zip", multiple=False)
        self._on_analyse_anyway = on_analyse_anyway
        self._on_upload, self._on_upload_error = on_upload, on_upload_error
        self.large_button.on_click(self._analyse_anyway)
        self.upload.param.watch(self._uploaded, "value")
        self.uploads: list = []
        self.token = 0
        on_session_end(self.end_session)

    def __panel__(self):
        return pn.Row(self.progress, self.large_button)

    def new_load(self) -> int:
        """Start a new load: hides *Analyse anyway*; returns its token."""
        self.token += 1
        self.large_button.visible = False
        return self.token

    def current(self, token: int) -> bool:
        """True while no newer load was started than the one of ``token``."""
        return token == self.token

    def _analyse_anyway(self, _event=None):
        self.large_button.visible = False
        self._on_analyse_anyway()

    def _uploaded(self, event):
        if not event.new:
            return
        try:
            folder = save_upload(event.new, self.upload.filename)
        except Exception as e:  # noqa: BLE001 - shown in the page
            self._on_upload_error(e, self.upload.filename)
            return
        self.uploads.append(upload_root(folder))  # removed when the session ends
        self._on_upload(folder)

    def end_session(self) -> None:
        """The session ended: stop waiting (a job no other page waits for is stopped) and
        remove this session's unpacked uploads."""
        end_session(self.progress, self.uploads)
        self.uploads = []


# --------------------------------------------------------------------- server stop

_STOP_INSTALLED = False


def shutdown(*, remove_uploads: bool = True) -> None:
    """Stop every analysis and simulation worker process now, and remove the unpacked
    uploads: what the server does when it stops (SIGTERM, Ctrl-C or exit)."""
    global _POOL
    with _LOCK:
        jobs = list(_JOBS.values())
    for job in jobs:
        job.stop("stopped: the server is stopping")
    for job in jobs:
        if job.process is not None:
            _end_process(job.process, grace_s=0.5)
    pool = _POOL
    if pool and hasattr(pool, "kill_workers"):  # Python >= 3.14: the public way
        pool.kill_workers()
        _POOL = None
    elif pool:
        # before 3.14 no public call stops a pool's busy workers: read its process table
        # (guarded: an executor without one leaves the workers to PR_SET_PDEATHSIG)
        workers = list((getattr(pool, "_processes", None) or {}).values())
        for proc in workers:
            if proc.is_alive():
                proc.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in workers:
            proc.join(2)
            if proc.is_alive():
                proc.kill()
        _POOL = None
    if remove_uploads:
        with _LOCK:
            dirs = list(_TEMP_DIRS)
        for d in dirs:
            remove_dir(d)


def _install_stop_handlers() -> None:
    """Once per process: :func:`shutdown` at exit, and in a ``panel serve`` process on
    SIGTERM before the server's own handling (stop the event loop). The server's
    SIGTERM handler runs in its event loop: with the heavy work in workers it runs at once."""
    global _STOP_INSTALLED
    with _LOCK:
        if _STOP_INSTALLED:
            return
        _STOP_INSTALLED = True
    atexit.register(shutdown)
    if threading.current_thread() is not threading.main_thread() or not in_server():
        return
    try:
        import asyncio

        loop = asyncio.get_event_loop()
    except RuntimeError:
        return

    def on_sigterm():
        print("Received signal SIGTERM, stopping the asymflux workers and the server",
              flush=True)
        try:
            shutdown()
        finally:
            from tornado.ioloop import IOLoop

            IOLoop.current().stop()  # what Bokeh's own SIGTERM handler does

    try:
        loop.add_signal_handler(signal.SIGTERM, on_sigterm)
    except (RuntimeError, ValueError, NotImplementedError):
        pass


# --------------------------------------------------------------------- Bokeh / Panel


def load_extensions(*panel_extensions: str) -> None:
    """Load what a view needs to render, whichever page a server opens first: HoloViews'
    bokeh backend (made the current one) and Panel's ``panel_extensions`` (e.g.
    ``"tabulator"``; for a served page, registered with its session).

    Each view calls this when it is created, so a page does not depend on another page
    (or on the app file) having loaded them: served alone, the cohort browser once found no
    plotting extension (its first plot was made before anything had loaded HoloViews').
    """
    from asymflux import plots

    plots.use_backend("bokeh")
    if panel_extensions:
        pn.extension(*panel_extensions)


@contextmanager
def one_update(doc, *, freeze: bool = True):
    """Send the changes made within this block to the page as one message, and let Bokeh
    recompute the document's model graph once, at the end, instead of after each plot.

    HoloViews wraps every plot update in ``doc.models.freeze()``, and Bokeh walks every model
    of the page (~540 in the model explorer) each time the outermost freeze ends; one outer
    freeze (public Bokeh API, reference counted) leaves one walk per publication instead of
    one per plot. The walk itself costs 50-70 ms of the server's loop: ``freeze=False`` for
    a block that only replaces the data of plain Bokeh figures (no HoloViews plot, no new
    model: nothing to walk), which then costs a few ms. Without a document (notebook, tests)
    this does nothing.
    """
    models = getattr(doc, "models", None)
    frozen = models.freeze() if freeze and hasattr(models, "freeze") else nullcontext()
    with pn.io.hold(doc), frozen:
        yield


def download_button(label: str, filename: str, make, *, width: int = 170):
    """A :class:`panel.widgets.FileDownload` button whose file is made when clicked:
    ``make()`` returns ``bytes`` (``filename`` is the suggested name) or ``(bytes,
    filename)``."""
    button = pn.widgets.FileDownload(label=label, filename=filename, width=width, embed=False)

    def callback():
        import io

        out = make()
        data, name = out if isinstance(out, tuple) else (out, filename)
        button.filename = name
        return io.BytesIO(data)

    button.callback = callback
    return button


def csv_bytes(table) -> bytes:
    """A table as CSV (UTF-8, no index): what the CSV download buttons send."""
    return table.to_csv(index=False).encode("utf-8")


def safe_name(text: str) -> str:
    """``text`` as a file-name part (letters, digits, ``-_.`` only)."""
    import re

    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)).strip("_") or "data"


# --------------------------------------------------------------------- helpers


_EXPECTED_ERRORS = ("DatasetError", "DatasetSpecError", "DatasetTooLarge", "AnalysisStopped")


#: The bold label an alert gives an error, in words (never a class name on the page).
_ERROR_LABELS = {"DatasetError": "Cannot use this dataset",
                 "DatasetSpecError": "Cannot open this",
                 "DatasetTooLarge": "Too large",
                 "AnalysisStopped": "Stopped",
                 "CurationError": "Cannot use this curation"}


def error_text(exc: BaseException, *, source=None, name_source=True) -> str:
    """One line for the page: a label in words and the message (no traceback, no class
    name). An error the readers did not word themselves (``OverflowError``, ``BadZipFile``,
    ...) names ``source`` (the dataset or file; ``name_source=False`` when the caller's text
    names it already) and says it was not expected."""
    msg = _without_class_names(" ".join(str(exc).split())) or "no details given"
    name = next((_ERROR_LABELS[c.__name__] for c in type(exc).__mro__
                 if c.__name__ in _ERROR_LABELS), "Unexpected error")
    if source is not None and not any(c.__name__ in _EXPECTED_ERRORS for c in type(exc).__mro__):
        src = str(source)
        if name_source and src not in msg:
            msg = f"{src}: {msg}"
        msg += (" (an unexpected error while reading or analysing it: check its files against "
                "docs/dataset-format.md)")
    return f"**{name}**: {msg}"


_CLASS_NAMES = (r"(?:[A-Za-z_]\w*\.)*(?:[A-Z]\w*(?:Error|Exception|Warning)|BadZipFile|"
                r"LargeZipFile)|(?:zlib|struct|binascii)\.error")


def _without_class_names(msg: str) -> str:
    """A message without the exception class names a library put in it
    (``(TiffFileError: x)`` becomes ``(x)``, ``raised TiffFileError('x')`` ``raised 'x'``)."""
    import re

    msg = re.sub(rf"\b(?:{_CLASS_NAMES}): ", "", msg)
    msg = re.sub(rf"\b(?:{_CLASS_NAMES})\((.*?)\)", r"\1", msg)
    return re.sub(rf"\b(?:{_CLASS_NAMES})\b", "error", msg)


def log_exception(exc: BaseException) -> None:
    if os.environ.get("ASYMFLUX_DASHBOARD_DEBUG"):
        traceback.print_exception(exc)


def save_upload(data: bytes, filename: str) -> str:
    """Unpack an uploaded zip of a dataset folder into a new ``asymflux-upload-*`` folder of
    the temporary directory; returns the dataset folder's path as text. The folder is
    removed by :func:`remove_dir` (the views call it when their session ends) or when the
    server stops."""
    name = str(filename or "the upload")
    if not data:
        raise C.DatasetSpecError(f"{name}: the upload is empty; expected a .zip of one dataset "
                                 "folder")
    if not name.lower().endswith(".zip"):
        raise C.DatasetSpecError(f"{name}: upload a .zip of one dataset folder (with "
                                 "metadata.json), not this file")
    folder = C.extract_zip(data, name=name)
    _track_dir(upload_root(folder))
    return str(folder)


def empty_plot(message: str = ""):
    from asymflux import plots

    hv = plots.use_backend("bokeh")
    return hv.Text(0.5, 0.5, message).opts(xaxis=None, yaxis=None, title=message[:60])


def in_server() -> bool:
    """True in a session of ``panel serve`` (not in a notebook, a test or a script)."""
    doc = pn.state.curdoc
    return doc is not None and getattr(doc, "session_context", None) is not None


STYLESHEET_PATCH_BOKEH = ("3.7", "3.8", "3.9")
"""Bokeh versions (major.minor) whose BokehJS :func:`skip_unchanged_stylesheets` was checked
against (``tests/dashboards/test_served.py`` fails when the installed one is not listed, or
when the page did not apply the change)."""

STYLESHEET_UPDATE_SOURCE = r"^_update\((\w+)\)\s*\{\s*this\.el\.textContent\s*=\s*\1;?\s*\}$"
"""The source text of BokehJS's ``core/dom.InlineStyleSheet._update`` as checked (minified or
not: ``_update(t){this.el.textContent=t}``), a regular expression valid in Python and
JavaScript: :data:`STYLESHEET_PATCH_JS` changes the method only when it matches."""

STYLESHEET_PATCH_JS = """
const STYLESHEET_UPDATE_SOURCE = String.raw`""" + STYLESHEET_UPDATE_SOURCE + """`;
if (window.__asymflux_stylesheets === undefined) {
  let applied = false;
  try {
    const sheet = Bokeh.require("core/dom").InlineStyleSheet.prototype;
    const update = sheet._update;
    // only the method as checked: `_update(css) { this.el.textContent = css }`
    if (new RegExp(STYLESHEET_UPDATE_SOURCE).test(String(update))) {
      sheet._update = function (css) {
        if (this.el.textContent !== css) update.call(this, css);
      };
      applied = true;
    }
  } catch (e) {
    console.warn("asymflux: stylesheet change not applied:", e);
  }
  window.__asymflux_stylesheets = applied;
}
"""


def skip_unchanged_stylesheets(doc=None) -> bool:
    """Let the page's BokehJS skip rewriting a ``<style>`` element with the text it already
    holds (one JavaScript callback on the document's ``document_ready`` event, public Bokeh
    API).

    At every paint, each BokehJS renderer view rewrites its position stylesheet, and each
    element its CSS variables, even when the text is unchanged (BokehJS 3.7-3.9:
    ``core/dom.InlineStyleSheet._update``); every rewrite invalidates the page's style, and
    the next read of a visual property (a ``getComputedStyle``) recomputes it. In the model
    explorer that was ~670 rewrites and ~0.1-0.2 s of the browser's main thread per slider
    move. The change applies only to the Bokeh versions in
    :data:`STYLESHEET_PATCH_BOKEH` and only when the method is still the one checked (its
    source text); otherwise the page is left as it is. Only in a server session; returns
    whether the callback was added.
    """
    import bokeh
    from bokeh.models import CustomJS

    if doc is None:
        doc = pn.state.curdoc if in_server() else None
    if doc is None or doc in _STYLESHEETS_DONE:
        return False
    if ".".join(bokeh.__version__.split(".")[:2]) not in STYLESHEET_PATCH_BOKEH:
        return False
    doc.js_on_event("document_ready", CustomJS(code=STYLESHEET_PATCH_JS))
    _STYLESHEETS_DONE.add(doc)
    return True


_STYLESHEETS_DONE = weakref.WeakSet()  # documents given the callback (once each)


def session_arg(name: str, default=None):
    """A query-string argument of the page (``?dataset=aged``), or ``default``."""
    args = getattr(pn.state, "session_args", None) or {}
    vals = args.get(name)
    if not vals:
        return default
    v = vals[0]
    return v.decode() if isinstance(v, bytes) else str(v)


def finite_max(values, default=1.0) -> float:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return float(v.max()) if v.size else default
