"""The dashboard server's runtime, shared by the pages: whether code runs in a ``panel
serve`` session, a page's arguments and the end of its session, what the server sets up when
a page starts (:func:`start_page`, called by the app files ``dashboards/*.py``: the garbage
collector's freeze, closed websockets), work in daemon threads, worker processes that end
with the server, and the server's stop (SIGTERM or exit: :func:`shutdown` runs what the
analyses, the simulation workers and the upload folders registered with
:func:`stop_with_server`)."""

from __future__ import annotations

import atexit
import gc
import os
import signal
import sys
import threading
import time
from concurrent.futures import Future

import panel as pn

LOCK = threading.RLock()
"""The lock of the server's shared tables (the simulations' futures, the analyses and their
results, what the server's stop runs)."""


WORKERS_ENV = "ASYMFLUX_DASHBOARD_WORKERS"
"""Environment variable: number of worker processes for the simulations (default
``min(2, CPUs)``; 0 runs them in the server process, one after the other)."""


# --------------------------------------------------------------------- the page's session


def in_server() -> bool:
    """True in a session of ``panel serve`` (not in a notebook, a test or a script)."""
    doc = pn.state.curdoc
    return doc is not None and getattr(doc, "session_context", None) is not None


def warming() -> bool:
    """True while ``panel serve --warm`` runs a page at the server's start, before it serves
    any (a session Panel made itself, with no server behind it: no browser will connect).
    A page then does what makes the first real page quick (imports, reading cached
    results) and starts no analysis."""
    doc = pn.state.curdoc
    ctx = getattr(doc, "session_context", None) if doc is not None else None
    return ctx is not None and getattr(ctx, "server_context", None) is None


def on_session_end(callback) -> None:
    """``callback()`` when the current server session ends (nothing outside a server)."""
    if in_server():
        pn.state.on_session_destroyed(lambda _ctx: callback())


def session_arg(name: str, default=None):
    """A query-string argument of the page (``?dataset=aged``), or ``default``."""
    args = getattr(pn.state, "session_args", None) or {}
    vals = args.get(name)
    if not vals:
        return default
    v = vals[0]
    return v.decode() if isinstance(v, bytes) else str(v)


def start_page() -> None:
    """What the server sets up for a page it starts (the app files ``dashboards/*.py`` call
    it after ``.servable()``; nothing outside a server): the process's objects frozen once
    the page has loaded (:func:`freeze_while_session_open`), a closed page's last update
    dropped quietly (:func:`quiet_closed_websockets`), and no update left unsent in Panel's
    write queue (:func:`unstrand_queued_writes`)."""
    if not in_server():
        return
    freeze_while_session_open()  # no full garbage collections of the libraries
    quiet_closed_websockets()  # a closed tab's last update: no traceback
    unstrand_queued_writes()  # no update left unsent in Panel's write queue


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


# --------------------------------------------------------------------- garbage collection


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


def timing_mark(what: str) -> None:
    """With :data:`TIMING_ENV` set: print ``what`` with the wall-clock time (``time.time()``,
    seconds since the epoch: comparable with a browser's or a benchmark's clock on the same
    machine) and this process' CPU time to stderr; nothing otherwise. The cohort page marks
    its start-up steps so (``benchmarks/bench_cohort_start.py`` reads them)."""
    if timing_on():
        print(f"asymflux timing: {what} at epoch {time.time():.3f} s, process CPU "
              f"{time.process_time():.3f} s", file=sys.stderr, flush=True)


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


# --------------------------------------------------------------------- closed pages


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


def unstrand_queued_writes() -> bool:
    """In a server: no update of a page is left unsent in Panel's write queue. Panel (1.9)
    queues a page's update when Bokeh is writing to its websocket (``panel.io.document``:
    ``schedule_write_events``, dispatched by a ``_dispatch_msgs`` task); an update queued
    while that task's last write is completing starts a second task, which finds the queue
    already released by the first (``_WRITE_BLOCK``) and returns without sending it: the
    update stays in the queue until the page's next queued update. When it was the last
    one (the θ maps after their preview, say) the page kept showing the previous state
    (a possible cause of the model explorer's kinetic browser test's one 90 s timeout; any
    page's last update can be left so). Here a dispatch
    that finds updates queued but the queue released takes the queue again and sends them.
    Installed once; returns whether it is installed (False with a Panel without that
    queue)."""
    from collections.abc import MutableMapping

    try:
        from panel.io import document as pdoc
    except ImportError:
        return False
    dispatch = getattr(pdoc, "_dispatch_msgs", None)
    block, queued = getattr(pdoc, "_WRITE_BLOCK", None), getattr(pdoc, "_WRITE_MSGS", None)
    if dispatch is None or not all(isinstance(d, MutableMapping) for d in (block, queued)):
        return False
    if getattr(dispatch, "_asymflux_unstranded", False):
        return True

    async def _dispatch_msgs(doc):
        if doc not in block and queued.get(doc):  # left behind by the previous dispatch
            block[doc] = True
        return await dispatch(doc)

    _dispatch_msgs._asymflux_unstranded = True
    pdoc._dispatch_msgs = _dispatch_msgs  # looked up there at each dispatch
    return True


# --------------------------------------------------------------------- worker processes


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


# --------------------------------------------------------------------- server stop

_STOP_INSTALLED = False
_STOP_STEPS: list = []  # (rank, step), lowest rank first


def stop_with_server(step, *, rank: int) -> None:
    """Run ``step()`` when the server stops (:func:`shutdown`), once however often it is
    registered, in the order of ``rank`` (lowest first: the analyses 0, the simulation
    workers 1, the upload folders 2); and install the stop handlers (once per process)."""
    with LOCK:
        if not any(s is step for _r, s in _STOP_STEPS):
            _STOP_STEPS.append((rank, step))
            _STOP_STEPS.sort(key=lambda rs: rs[0])
    _install_stop_handlers()


def shutdown() -> None:
    """Stop every analysis and simulation worker process now, and remove the unpacked
    uploads: what the server does when it stops (SIGTERM, Ctrl-C or exit); each the step its
    module registered (:func:`stop_with_server`)."""
    with LOCK:
        steps = [s for _r, s in _STOP_STEPS]
    for step in steps:
        step()


def _install_stop_handlers() -> None:
    """Once per process: :func:`shutdown` at exit, and in a ``panel serve`` process on
    SIGTERM before the server's own handling (stop the event loop). The server's
    SIGTERM handler runs in its event loop: with the heavy work in workers it runs at once."""
    global _STOP_INSTALLED
    with LOCK:
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
