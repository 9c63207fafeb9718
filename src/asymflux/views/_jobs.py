"""A dataset's analysis for the pages: the table of finished analyses (and of each
dataset's measured particles), shared by the sessions of one server, and the analysis of a
dataset in a worker process of its own, with progress, cancel, a size check and a time
limit (:func:`start_analysis`)."""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import panel as pn

from . import _compute as C
from ._runtime import LOCK as _LOCK
from ._runtime import WORKERS_ENV, _die_with, stop_with_server
from ._uploads import _track_dir, extract_zip, upload_root

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
    particles, ts, labels = C.analyze(ds, source=C.dataset_source(_local_spec(spec)),
                                      time_offset_s=offset)
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

    def measure():  # a dataset whose analysis was read from the results cache: opened now
        dataset = ds.dataset() if isinstance(ds, LazyDataset) else ds
        return C.measured_particle(dataset, int(particle_id), ts, labels)

    source = C.dataset_source(_local_spec(spec))
    if source is None:
        return measure()
    from asymflux.analysis import cached

    # a dataset on disk: its analysis is analyze_path's of these files with this offset
    # (C.analyze), so the particle's movie is too; kept in the results cache (docs/cache.md)
    return cached("views.measured_particle", [source],
                  {"particle_id": int(particle_id), "time_offset_s": offset}, measure)


def measured(spec: str, particle_id: int, *, time_offset_s=None) -> C.ParticleMovie:
    spec = str(spec).strip()
    return _measured(spec, dataset_stamp(spec), int(particle_id),
                     C.time_offset_value(time_offset_s))


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


# --------------------------------------------------------------------- dataset analyses
# Reading and analysing a dataset can take minutes (a real movie is tens of GB): in a
# server it runs in a worker process of its own (started from the forkserver, like the
# simulation workers), watched by a daemon thread of the server. The page shows its
# progress and a Cancel button; a stack above ``max_values()`` values is refused unless
# asked, and a run longer than ``time_limit_s()`` is stopped with a message. Cancel and the
# time limit kill the process; the server's event loop never waits for it.


ANALYSIS_NICE = 8
"""Niceness added to a dataset analysis' worker (below the simulations)."""


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
        particles, ts, labels = C.analyze(ds, source=C.dataset_source(spec),
                                          time_offset_s=offset)
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
    stop_with_server(_stop_jobs, rank=0)
    threading.Thread(target=_run_job, args=(job, key), daemon=True,
                     name=f"asymflux-analysis {spec}").start()
    return job


def cached_result(spec: str, *, time_offset_s=None):
    """``(dataset, particles, timeseries, labels)`` of ``spec`` when its analysis with this
    clock offset is in the table or in the results cache (``docs/cache.md``), else None:
    nothing is analysed, no demo dataset is built and no zip unpacked (what a page does at
    the server's start, :func:`_runtime.warming`). The dataset is not opened
    (:class:`LazyDataset`)."""
    spec = str(spec).strip()
    offset = C.time_offset_value(time_offset_s)
    stamp = dataset_stamp(spec)
    with _LOCK:
        hit = _RESULTS.get((spec, stamp, offset))
    if hit is not None:
        return hit
    if not _on_disk(spec):
        return None
    try:
        if C.results_spec(spec) is not None:  # analyze's tables: read, as a page would
            return _analyzed(spec, stamp, offset=offset)
        return _from_results_cache(AnalysisJob(spec, stamp, False, offset))
    except (OSError, ValueError):  # the page reports the dataset's problem
        return None


def _on_disk(spec: str) -> bool:
    """Whether ``spec`` is read from disk as it is: a demo dataset already built (its folder
    as :func:`asymflux.datasets.path` names it, without building it), or an existing
    dataset path that is not a zip."""
    from asymflux import datasets

    if spec in datasets.list_datasets():
        folder = datasets.cache_dir() / "datasets" / spec / datasets.cache_key(spec)
        return (folder / "metadata.json").is_file()
    path = Path(spec).expanduser()
    return bool(spec) and path.exists() and path.suffix.lower() != ".zip"


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


class LazyDataset:
    """A dataset opened when first used: an analysis read from the results cache needs none
    of it until a particle's movie is shown (and that movie is in the cache too), so a page
    showing Fig. 5e of 15 cached datasets opens none of them (their folders' tables, masks
    and stacks: 0.07 s each here). Any attribute (``stack``, ``time_s``, ``echem``, ...) is
    the dataset's, :func:`_compute.load_dataset` of ``spec`` with the clock offset the
    analysis used (``time_offset``) applied; ``time_offset`` itself is known without
    opening it (the particle table's)."""

    def __init__(self, spec: str, time_offset, *, apply_offset: bool):
        self._spec, self.time_offset = spec, time_offset
        self._apply = bool(apply_offset)
        self._lock = threading.Lock()
        self._dataset = None

    @property
    def opened(self) -> bool:
        """Whether the dataset has been opened."""
        return self._dataset is not None

    def dataset(self):
        """The dataset (opened now, once)."""
        with self._lock:
            if self._dataset is None:
                ds = C.load_dataset(self._spec)  # lazy: the stack is read when shown
                if self._apply:  # the offset the analysis used (an estimate: not made again)
                    ds = C.with_time_offset(ds, self.time_offset, spec=self._spec)
                self._dataset = ds
            return self._dataset

    def __getattr__(self, name):  # only for what is not set here: the dataset's attributes
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.dataset(), name)

    def __repr__(self) -> str:
        return f"LazyDataset({self._spec!r}, opened={self.opened})"


def _from_results_cache(job: AnalysisJob):
    """``(dataset, particles, timeseries, labels)`` when the results cache holds the
    analysis (``docs/cache.md``: analysed before, by any front end, with these files and
    this clock offset): read here, no worker process, no size check (nothing is analysed)
    and the dataset not opened (a :class:`LazyDataset`); else None."""
    spec = _local_spec(job.spec)
    found = C.cached_analysis(C.dataset_source(spec), time_offset_s=job.offset)
    if found is None:
        return None
    job.status = "read from the results cache"
    particles, ts, labels = found
    ds = LazyDataset(spec, C.time_offset_used(particles), apply_offset=job.offset is not None)
    out = (ds, particles, ts, labels)
    _keep_result((job.spec, job.stamp, job.offset), out)
    job.status, job.fraction = "done", 1.0
    return out


def _watch_job(job: AnalysisJob):
    try:
        hit = _from_results_cache(job)
    except (OSError, ValueError):  # the dataset's problem is reported by its analysis
        hit = None
    if hit is not None:
        return hit
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


def _stop_jobs() -> None:
    """The server's stop (:func:`_runtime.shutdown`): every analysis stopped, its process
    ended."""
    with _LOCK:
        jobs = list(_JOBS.values())
    for job in jobs:
        job.stop("stopped: the server is stopping")
    for job in jobs:
        if job.process is not None:
            _end_process(job.process, grace_s=0.5)


_ZIPS: dict = {}  # (zip path, stamp) -> the folder it was unpacked to


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
        folder = str(extract_zip(path.read_bytes(), name=path.name))
        _track_dir(upload_root(folder))
        with _LOCK:
            _ZIPS[key] = folder
    return folder
