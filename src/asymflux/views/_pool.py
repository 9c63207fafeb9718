"""The simulation worker processes and their table of futures: the model explorer's θ maps,
Fig. 5b's points, simulated twins and fits, computed in a small pool of worker processes
(:func:`prefetch` starts every run a slider change needs, side by side), kept across the
sessions of one server."""

from __future__ import annotations

import os
from collections import OrderedDict, deque
from concurrent.futures import Future

import numpy as np

from . import _compute as C
from ._errors import log_exception
from ._jobs import _measured, _used_offset, analysis_ready, dataset_stamp
from ._runtime import LOCK as _LOCK
from ._runtime import (
    WORKERS_ENV,
    _die_with,
    freeze_long_lived_objects,
    in_server,
    log_slow_collections,
    stop_with_server,
)

# --------------------------------------------------------------------- simulations
# The model runs go to a small pool of worker processes (the solver holds the GIL, so
# threads would not overlap) through one LRU table of futures keyed by the arguments: it
# is the cache across sessions of one server (like ``pn.cache``), and unlike
# ``pn.cache`` it also shares a run that is still going. A slider change first submits
# every run its plots need (:func:`prefetch`), so they run side by side, and each plot
# then waits for its own.


_FUTURES: OrderedDict = OrderedDict()
_FUTURES_MAX = 4096
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
            stop_with_server(_stop_workers, rank=1)
            for _ in range(n):  # start every worker now, warm, not at the first slider move
                _POOL.submit(_warm_up)
    return _POOL or None


SIMULATION_NICE = 4
"""Niceness added to the simulation workers: the server (which publishes their results) and
a browser on the same machine get the CPU first when they need it, instead of waiting behind
the next runs (on two cores the workers otherwise hold both)."""


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
    from asymflux.analysis import (  # noqa: F401 - each imports its module
        analyze_particle,
        line_kymograph,
        particle_timeseries,
    )
    from asymflux.model import kinetics

    kinetics.compile_kernels()
    freeze_long_lived_objects()
    log_slow_collections()


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


def warm_rate_curves(diffusivity_scales, material=None) -> int:
    """Queue, as background work for idle workers, the Fig. 5b reference curves at each
    diffusivity scale in ``diffusivity_scales`` (with the user's tables ``material``,
    :class:`~asymflux.views._compute.Material`; a change of the D-scale slider would
    otherwise wait for 12 more points). One point a run (~0.06 s), not a curve's rates side
    by side (~0.2 s): a slider move waits for at most one short background run. Returns
    the number of points waiting (0 without worker processes)."""
    if _pool() is None:
        return 0
    jobs = []
    for d in diffusivity_scales:
        for _label, e, f in C.REFERENCE_SURFACES.values():
            for r in C.CURVE_RATES_MA_G:
                known = _FUTURES.get(_point_key(e, f, r, d, None, material))
                if known is not None and not _failed(known):
                    continue

                def start(e=e, f=f, r=r, d=d):
                    return bool(_submit_points(e, f, [r], d, None, material)[1])
                jobs.append(start)
    with _LOCK:
        _BACKGROUND.extend(jobs)
        n = len(_BACKGROUND)
    _run_background()
    return n


def _point_key(eta, blocked_fraction, rate_mA_g, diffusivity_scale, film_ohm_m2=None,
               material=None):
    return (C.li_extracted.__name__, _li_args(eta, blocked_fraction, rate_mA_g,
                                              diffusivity_scale, film_ohm_m2, material))


def _failed(fut) -> bool:
    """A run that ended without a result (an error, or cancelled when the pool stopped)."""
    return fut.done() and (fut.cancelled() or fut.exception() is not None)


def _submit_points(eta, blocked_fraction, rates, diffusivity_scale, film_ohm_m2=None,
                   material=None):
    """The futures of Fig. 5b's points of one surface at ``rates`` (one per rate, in order)
    and whether a run was started: the points already in the table (done, or still
    running) are reused; a missing point alone is one run
    (:func:`asymflux.views._compute.li_extracted`), several are computed together, side by
    side in one run (:func:`~asymflux.views._compute.li_extracted_at_rates`), and each one's
    own future is filled from it. A point whose run failed is tried again."""
    rates = list(dict.fromkeys(float(r) for r in rates))  # once each
    keys = [_point_key(eta, blocked_fraction, r, diffusivity_scale, film_ohm_m2, material)
            for r in rates]
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
                                                      diffusivity_scale, film_ohm_m2, material))
        return futures, True
    eta, blocked_fraction, _, diffusivity_scale, film, material = _li_args(
        eta, blocked_fraction, 0.0, diffusivity_scale, film_ohm_m2, material)  # the keys' values
    batch = _submit(C.li_extracted_at_rates, eta, blocked_fraction,
                    tuple(rates[i] for i in missing), diffusivity_scale, film, material)

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


def _material(material):
    """The user's tables as a cache key holds them: None for the built-in set."""
    if material is None or not (material.ocv or material.diffusivity):
        return None
    return C.Material(*material)


def _theta_maps_args(eta, blocked_fraction, angle_deg, rate_mA_g, diffusivity_scale, pixel_nm,
                     film_ohm_m2=None, mesh=C.MAPS_MESH, material=None):
    film = _film(film_ohm_m2)
    return (1.0 if film is not None else float(eta),  # η is unused by a kinetic surface
            float(blocked_fraction), float(angle_deg), float(rate_mA_g),
            float(diffusivity_scale), float(pixel_nm), film, tuple(int(n) for n in mesh),
            _material(material))


def _theta_maps(eta, blocked_fraction, angle_deg, rate_mA_g, diffusivity_scale, pixel_nm,
                film_ohm_m2=None, mesh=C.MAPS_MESH, material=None):
    return C.theta_maps(eta, blocked_fraction, angle_deg, rate_mA_g, diffusivity_scale,
                        pixel_nm=pixel_nm, film_ohm_m2=film_ohm_m2, mesh=mesh,
                        material=material)


def theta_maps(eta, blocked_fraction, angle_deg, rate_mA_g, diffusivity_scale, pixel_nm,
               film_ohm_m2=None, mesh=C.MAPS_MESH, material=None):
    """θ maps at 5/10/15/20 min and the run's curves
    (:func:`asymflux.views._compute.theta_maps`), cached; ``film_ohm_m2``: kinetic surface;
    ``mesh``: :data:`~asymflux.views._compute.PREVIEW_MESH` for the coarse preview;
    ``material``: the user's tables (:class:`~asymflux.views._compute.Material`)."""
    return _run(_theta_maps, *_theta_maps_args(eta, blocked_fraction, angle_deg, rate_mA_g,
                                               diffusivity_scale, pixel_nm, film_ohm_m2, mesh,
                                               material))


def _li_args(eta, blocked_fraction, rate_mA_g, diffusivity_scale, film_ohm_m2=None,
             material=None):
    film = _film(film_ohm_m2)
    return (1.0 if film is not None else float(eta), float(blocked_fraction), float(rate_mA_g),
            float(diffusivity_scale), film, _material(material))


def li_extracted(eta, blocked_fraction, rate_mA_g, diffusivity_scale, film_ohm_m2=None,
                 material=None):
    """Li extracted at the cut-off (:func:`asymflux.views._compute.li_extracted`), cached."""
    return _run(C.li_extracted, *_li_args(eta, blocked_fraction, rate_mA_g, diffusivity_scale,
                                          film_ohm_m2, material))


def rate_table(eta, blocked_fraction, diffusivity_scale, film_ohm_m2=None, material=None):
    """Fig. 5b table, each point cached (a new rate or η computes only the points it lacks:
    a curve's missing rates side by side in one run, :func:`_submit_points`)."""
    _submit_rate_points(eta, blocked_fraction, diffusivity_scale, film_ohm_m2=film_ohm_m2,
                        material=material)
    return C.rate_table(eta, blocked_fraction, diffusivity_scale, point=li_extracted,
                        film_ohm_m2=film_ohm_m2, material=material)


def _submit_rate_points(eta, blocked_fraction, diffusivity_scale, rate_mA_g=None, *,
                        film_ohm_m2=None, material=None) -> list:
    curves = [(e, f, None) for _label, e, f in C.REFERENCE_SURFACES.values()]
    curves.append((float(eta), float(blocked_fraction), film_ohm_m2))
    rates = list(C.CURVE_RATES_MA_G) + ([] if rate_mA_g is None else [float(rate_mA_g)])
    # the current setting's points first: the reference curves are usually cached
    return [point for e, f, film in curves[::-1]
            for point in _submit_points(e, f, rates, diffusivity_scale, film, material)[0]]


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
    material = _material(settings.get("material"))
    s = {k: (None if v is None else float(v)) for k, v in settings.items() if k != "material"}
    s["material"] = material
    film = s.get("film_ohm_m2")
    args = (s["eta"], s["blocked_fraction"], s["angle_deg"], s["rate_mA_g"],
            s["diffusivity_scale"], pixel_nm, film)
    out = {}
    fine = _theta_maps_args(*args, material=material)
    with _LOCK:
        cached = _FUTURES.get((_theta_maps.__name__, fine))
    if preview and not (cached is not None and cached.done()):  # submitted first: quicker
        out["preview"] = [_submit(_theta_maps, *_theta_maps_args(*args, mesh=C.PREVIEW_MESH,
                                                                 material=material))]
    # then Fig. 5b's points (one run per curve, its rates side by side: as long as the maps'
    # run with a kinetic surface), so that on two workers the four runs end together
    out["rate"] = _submit_rate_points(s["eta"], s["blocked_fraction"], s["diffusivity_scale"],
                                      s["rate_mA_g"], film_ohm_m2=film, material=material)
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


def _submit_simulated(spec, particle_id, s, offset=None) -> Future:
    args, kw = _simulated_call(spec, particle_id, s, offset)
    return _submit(*args, **kw)


def _simulated_call(spec, particle_id, s, offset=None):
    """``(function, *arguments, key=...)`` of a simulated twin, for :func:`_submit`."""
    stamp = dataset_stamp(spec)
    m = _measured(spec, stamp, int(particle_id), offset)
    names = ("eta", "blocked_fraction", "angle_deg", "rate_mA_g", "diffusivity_scale")
    film = _film(s.get("film_ohm_m2"))
    material = _material(s.get("material"))
    values = tuple(float(s[n]) for n in names)
    if film is not None:
        values = (1.0, *values[1:])  # η is unused by a kinetic surface
    return (_simulated_particle, m.mask, float(m.pixel_nm), m.capacity_mAh_g, *values, film,
            material), \
        {"key": ("simulated", spec, stamp, offset, int(particle_id), values, film, material)}


def _simulated_particle(mask, pixel_nm, capacity_mAh_g, eta, blocked_fraction, angle_deg,
                        rate_mA_g, diffusivity_scale, film_ohm_m2=None, material=None):
    return C.simulated_particle(mask, pixel_nm, capacity_mAh_g, eta=eta,
                                blocked_fraction=blocked_fraction, angle_deg=angle_deg,
                                rate_mA_g=rate_mA_g, diffusivity_scale=diffusivity_scale,
                                film_ohm_m2=film_ohm_m2, material=material)


def simulated(spec, particle_id, eta, blocked_fraction, angle_deg, rate_mA_g,
              diffusivity_scale, film_ohm_m2=None, *, time_offset_s=None,
              material=None) -> C.ParticleMovie:
    """The simulated twin of a measured particle (cached); ``film_ohm_m2``: kinetic surface;
    ``time_offset_s``: the measured particle's clock offset (its capacity per frame);
    ``material``: the user's tables (:class:`~asymflux.views._compute.Material`)."""
    s = {"eta": float(eta), "blocked_fraction": float(blocked_fraction),
         "angle_deg": float(angle_deg), "rate_mA_g": float(rate_mA_g),
         "diffusivity_scale": float(diffusivity_scale), "film_ohm_m2": film_ohm_m2,
         "material": material}
    args, kw = _simulated_call(str(spec).strip(), int(particle_id), s,
                               C.time_offset_value(time_offset_s))
    return _run(*args, **kw)


def _stop_workers() -> None:
    """The server's stop (:func:`_runtime.shutdown`): the simulation workers killed now."""
    global _POOL
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
