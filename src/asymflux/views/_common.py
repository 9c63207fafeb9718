"""Pieces shared by the views: cached computations, dataset loading, error messages."""

from __future__ import annotations

import atexit
import os
import threading
import traceback
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
            _POOL = ProcessPoolExecutor(n, mp_context=ctx)
            atexit.register(_POOL.shutdown, wait=False, cancel_futures=True)
            for _ in range(n):  # start every worker now, warm, not at the first slider move
                _POOL.submit(_warm_up)
    return _POOL or None


def _warm_up():
    """A tiny run, so that a worker's first real one does not pay for imports and caches."""
    from asymflux import model

    model.simulate(model.nmc88_lun2025(), model.disk_mesh(1.0, n_radial=4, n_angular=8),
                   C.make_surface(0.5, 0.25), [model.Charge(400.0, minutes=1.0)])


def _submit(fn, *args, key=None) -> Future:
    """The future of ``fn(*args)``: an existing one for the same key (default: the
    function's name and the arguments), else a new one (a failed run is retried)."""
    key = (fn.__name__, args) if key is None else key
    run_here = False
    with _LOCK:
        fut = _FUTURES.get(key)
        if fut is not None and not (fut.done() and fut.exception() is not None):
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
            fn, args, key = _BACKGROUND.popleft()
            if key in _FUTURES:
                continue
            try:
                fut = pool.submit(fn, *args)
            except Exception:  # noqa: BLE001 - a broken pool: no background work
                _BACKGROUND.clear()
                return
            _FUTURES[key] = fut
            _track(fut)


def warm_rate_curves(diffusivity_scales) -> int:
    """Queue, as background work for idle workers, the Fig. 5b reference curves at each
    diffusivity scale in ``diffusivity_scales`` (a change of the D-scale slider would
    otherwise wait for 18 more runs). Returns the number of runs waiting (0 without
    worker processes)."""
    if _pool() is None:
        return 0
    jobs = []
    for d in diffusivity_scales:
        for _label, e, f in C.REFERENCE_SURFACES.values():
            for r in C.CURVE_RATES_MA_G:
                args = (float(e), float(f), float(r), float(d))
                jobs.append((C.li_extracted, args, (C.li_extracted.__name__, args)))
    with _LOCK:
        _BACKGROUND.extend(j for j in jobs if j[2] not in _FUTURES)
        n = len(_BACKGROUND)
    _run_background()
    return n


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


def _theta_maps_args(eta, blocked_fraction, angle_deg, rate_mA_g, diffusivity_scale, pixel_nm):
    return (float(eta), float(blocked_fraction), float(angle_deg), float(rate_mA_g),
            float(diffusivity_scale), float(pixel_nm))


def _theta_maps(eta, blocked_fraction, angle_deg, rate_mA_g, diffusivity_scale, pixel_nm):
    return C.theta_maps(eta, blocked_fraction, angle_deg, rate_mA_g, diffusivity_scale,
                        pixel_nm=pixel_nm)


def theta_maps(eta, blocked_fraction, angle_deg, rate_mA_g, diffusivity_scale, pixel_nm):
    """θ maps at 5/10/15/20 min (:func:`asymflux.views._compute.theta_maps`), cached."""
    return _run(_theta_maps, *_theta_maps_args(eta, blocked_fraction, angle_deg, rate_mA_g,
                                               diffusivity_scale, pixel_nm))


def li_extracted(eta, blocked_fraction, rate_mA_g, diffusivity_scale):
    """Li extracted at the cut-off (:func:`asymflux.views._compute.li_extracted`), cached."""
    return _run(C.li_extracted, float(eta), float(blocked_fraction), float(rate_mA_g),
                float(diffusivity_scale))


def rate_table(eta, blocked_fraction, diffusivity_scale):
    """Fig. 5b table, one cached simulation per point (a new rate or η costs few runs)."""
    _submit_rate_points(eta, blocked_fraction, diffusivity_scale)
    return C.rate_table(eta, blocked_fraction, diffusivity_scale, point=li_extracted)


def _submit_rate_points(eta, blocked_fraction, diffusivity_scale, rate_mA_g=None) -> list:
    curves = [(e, f) for _label, e, f in C.REFERENCE_SURFACES.values()]
    curves.append((float(eta), float(blocked_fraction)))
    rates = list(C.CURVE_RATES_MA_G) + ([] if rate_mA_g is None else [float(rate_mA_g)])
    return [_submit(C.li_extracted, float(e), float(f), float(r), float(diffusivity_scale))
            for e, f in curves for r in rates]


def prefetch(settings: dict, *, pixel_nm: float, dataset=None, particle_id=None) -> dict:
    """Start, side by side, every simulation the model explorer shows for ``settings``
    (``eta, blocked_fraction, angle_deg, rate_mA_g, diffusivity_scale``); returns at once.

    Returns
    -------
    dict
        The futures each kind of plot waits for: ``"maps"``, ``"twin"`` (empty without a
        measured particle, or when it cannot be read: its plot then reports why) and
        ``"rate"`` (Fig. 5b's points).
    """
    s = {k: float(v) for k, v in settings.items()}
    out = {"maps": [_submit(_theta_maps, *_theta_maps_args(
        s["eta"], s["blocked_fraction"], s["angle_deg"], s["rate_mA_g"], s["diffusivity_scale"],
        pixel_nm))], "twin": []}
    if dataset is not None and particle_id is not None:
        try:
            out["twin"].append(_submit_simulated(str(dataset).strip(), int(particle_id), s))
        except Exception as e:  # noqa: BLE001 - the plot that needs it reports it
            log_exception(e)
    out["rate"] = _submit_rate_points(s["eta"], s["blocked_fraction"], s["diffusivity_scale"],
                                      s["rate_mA_g"])
    return out


def _fit_particle(spec, particle_id, max_arcs):
    from asymflux import fit as fitting

    return fitting.fit_dataset(C.load_dataset(spec), int(particle_id), max_arcs=max_arcs)


def fit(spec, particle_id, *, max_arcs=1) -> Future:
    """The future of :func:`asymflux.fit.fit_dataset` on a dataset name/path's particle,
    run by a worker process (10-60 s) and kept like the simulations."""
    spec = str(spec).strip()
    args = (spec, int(particle_id), int(max_arcs))
    return _submit(_fit_particle, *args, key=("fit", dataset_stamp(spec), *args))


# --------------------------------------------------------------------- measured data
# ``pn.cache`` memoizes across sessions of one server process (keys: the plain arguments).


def dataset_stamp(spec: str) -> int:
    """Modification time (ns) of a dataset path, 0 for a demo name: part of the cache keys,
    so an edited or replaced dataset is re-read."""
    p = Path(str(spec).strip()).expanduser()
    try:
        meta = p / "metadata.json" if p.is_dir() else p
        return int(meta.stat().st_mtime_ns)
    except OSError:
        return 0


@pn.cache(max_items=32)
def _analyzed(spec: str, stamp: int):
    ds = C.load_dataset(spec)
    particles, ts, labels = C.analyze(ds)
    return ds, particles, ts, labels


def analyzed(spec: str):
    """``(dataset, particles, timeseries, labels)`` of a dataset name/path (cached)."""
    spec = str(spec).strip()
    return _analyzed(spec, dataset_stamp(spec))


@pn.cache(max_items=64)
def _measured(spec: str, stamp: int, particle_id: int):
    ds, _particles, ts, labels = _analyzed(spec, stamp)
    return C.measured_particle(ds, int(particle_id), ts, labels)


def measured(spec: str, particle_id: int) -> C.ParticleMovie:
    spec = str(spec).strip()
    return _measured(spec, dataset_stamp(spec), int(particle_id))


def _submit_simulated(spec, particle_id, s) -> Future:
    args, kw = _simulated_call(spec, particle_id, s)
    return _submit(*args, **kw)


def _simulated_call(spec, particle_id, s):
    """``(function, *arguments, key=...)`` of a simulated twin, for :func:`_submit`."""
    stamp = dataset_stamp(spec)
    m = _measured(spec, stamp, int(particle_id))
    names = ("eta", "blocked_fraction", "angle_deg", "rate_mA_g", "diffusivity_scale")
    values = tuple(float(s[n]) for n in names)
    return (_simulated_particle, m.mask, float(m.pixel_nm), m.capacity_mAh_g, *values), \
        {"key": ("simulated", spec, stamp, int(particle_id), values)}


def _simulated_particle(mask, pixel_nm, capacity_mAh_g, eta, blocked_fraction, angle_deg,
                        rate_mA_g, diffusivity_scale):
    return C.simulated_particle(mask, pixel_nm, capacity_mAh_g, eta=eta,
                                blocked_fraction=blocked_fraction, angle_deg=angle_deg,
                                rate_mA_g=rate_mA_g, diffusivity_scale=diffusivity_scale)


def simulated(spec, particle_id, eta, blocked_fraction, angle_deg, rate_mA_g,
              diffusivity_scale) -> C.ParticleMovie:
    """The simulated twin of a measured particle (cached)."""
    s = {"eta": float(eta), "blocked_fraction": float(blocked_fraction),
         "angle_deg": float(angle_deg), "rate_mA_g": float(rate_mA_g),
         "diffusivity_scale": float(diffusivity_scale)}
    args, kw = _simulated_call(str(spec).strip(), int(particle_id), s)
    return _run(*args, **kw)


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
def one_update(doc):
    """Send the changes made within this block to the page as one message, and let Bokeh
    recompute the document's model graph once, at the end, instead of after each plot.

    HoloViews wraps every plot update in ``doc.models.freeze()``, and Bokeh walks every model
    of the page (~540 in the model explorer) each time the outermost freeze ends; one outer
    freeze (public Bokeh API, reference counted) leaves one walk per publication instead of
    one per plot. Without a document (notebook, tests) this does nothing.
    """
    models = getattr(doc, "models", None)
    with pn.io.hold(doc), (models.freeze() if hasattr(models, "freeze") else nullcontext()):
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


def error_text(exc: BaseException) -> str:
    """One line for the page: the exception's type and message (no traceback)."""
    msg = str(exc).strip() or type(exc).__name__
    return f"**{type(exc).__name__}**: {msg}"


def log_exception(exc: BaseException) -> None:
    if os.environ.get("ASYMFLUX_DASHBOARD_DEBUG"):
        traceback.print_exception(exc)


def save_upload(data: bytes, filename: str) -> str:
    """Unpack an uploaded zip of a dataset folder; returns the folder's path as text."""
    if not data:
        raise C.DatasetSpecError("the upload is empty")
    if not str(filename or "").lower().endswith(".zip"):
        raise C.DatasetSpecError(f"{filename}: upload a .zip of a dataset folder")
    return str(C.extract_zip(data, name=filename))


def empty_plot(message: str = ""):
    from asymflux import plots

    hv = plots.use_backend("bokeh")
    return hv.Text(0.5, 0.5, message).opts(xaxis=None, yaxis=None, title=message[:60])


def in_server() -> bool:
    """True in a session of ``panel serve`` (not in a notebook, a test or a script)."""
    doc = pn.state.curdoc
    return doc is not None and getattr(doc, "session_context", None) is not None


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
