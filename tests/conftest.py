"""Project-wide test configuration.

GUI (napari, marker ``gui``) tests need an X display: without one, Qt aborts the whole pytest
process the moment pytest-qt creates its ``QApplication``. So whether a display can be had is
decided here, at collection, before any Qt application exists (this file never imports Qt; the
check runs ``QApplication`` in a subprocess), and the GUI tests are skipped when it cannot.
Browser (dashboard, marker ``browser``) tests are skipped when Debian's chromium is missing.
The run then ends with one line naming what did not run and the command that enables it
(``tools/prereqs.py``, shared with ``make test``).

In CI (``CI`` set), a skipped GUI or browser test is a failure: those tests must run there,
with Xvfb and Debian's chromium installed by ``.ci/run`` (``tools/install-system-deps.sh``).

No process outlives the session: a SIGTERM ends the run like Ctrl-C (fixtures tear down), and
whatever child processes are left at the end are killed (and named).
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

# PNG/SVG/PDF exports are drawn off screen: with a display (pytest-xvfb's) matplotlib would
# otherwise pick its Qt backend once anything imports pyplot, and its figures then depend on
# that display ("Invalid DISPLAY variable" seen in some runs). The napari widgets draw on
# their own Qt canvases, which this does not change.
os.environ.setdefault("MPLBACKEND", "Agg")

ROOT = Path(__file__).resolve().parents[1]


def _load_prereqs():
    spec = importlib.util.spec_from_file_location("_asymflux_prereqs", ROOT / "tools" / "prereqs.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


prereqs = _load_prereqs()
IN_CI = prereqs.in_ci()
SYSTEM_SKIP_PREFIX = "needs system packages: "

# A QApplication in a fresh interpreter: proves that Qt can open the display (an X server that
# answers, the xcb libraries present) without risking this process (Qt aborts on failure).
_QT_PROBE = ("from qtpy.QtWidgets import QApplication; app = QApplication([]); "
             "print('qt-ok', app.platformName())")
_QT_PROBE_TIMEOUT_S = 120


def _qt_problem() -> str | None:
    try:
        proc = subprocess.run([sys.executable, "-c", _QT_PROBE], capture_output=True, text=True,
                              timeout=_QT_PROBE_TIMEOUT_S, start_new_session=True)
    except subprocess.TimeoutExpired:
        return f"Qt did not start within {_QT_PROBE_TIMEOUT_S} s"
    if proc.returncode == 0 and "qt-ok" in proc.stdout:
        return None
    lines = [ln.strip() for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
    detail = next((ln for key in ("could not", "cannot", "xcb", "display") for ln in lines
                   if key in ln.lower()), lines[-1] if lines else f"exit code {proc.returncode}")
    return f"Qt cannot open the display ({detail[:200]})"


def _gui_problem(config) -> str | None:
    """Why the GUI tests cannot run here (None: they can). pytest-xvfb, if it found Xvfb, has
    already started it and pointed DISPLAY at it."""
    problem = prereqs.display_problem(xvfb_allowed=False)
    if problem is not None:
        if prereqs.display_problem(xvfb_allowed=True) is None:  # Xvfb on PATH, but not started
            off = (not config.pluginmanager.has_plugin("xvfb")
                   or config.getoption("no_xvfb", default=False))
            problem = "no DISPLAY and pytest-xvfb disabled" if off else "Xvfb did not start"
        return problem
    return _qt_problem()


def pytest_configure(config):
    # a SIGTERM (a CI timeout, `kill`) ends the run like Ctrl-C: fixtures tear down, children die
    if (sys.platform != "win32" and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL):
        def _terminate(signum, frame):
            raise KeyboardInterrupt(f"signal {signum}")

        try:
            signal.signal(signal.SIGTERM, _terminate)
        except ValueError:  # not the main thread
            pass
    config._asymflux_missing = []


def pytest_collection_modifyitems(config, items):
    gui = [it for it in items if it.get_closest_marker("gui")]
    browser = [it for it in items if it.get_closest_marker("browser")]
    missing = []
    if gui:
        problem = _gui_problem(config)
        if problem:
            missing.append(problem)
            mark = pytest.mark.skip(reason=f"{SYSTEM_SKIP_PREFIX}{problem} (GUI test)")
            for it in gui:
                it.add_marker(mark)
    if browser:
        problem = prereqs.chromium_problem()
        if problem:
            missing.append(problem)
            mark = pytest.mark.skip(reason=f"{SYSTEM_SKIP_PREFIX}{problem} (browser test)")
            for it in browser:
                it.add_marker(mark)
    config._asymflux_missing = missing


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and (item.get_closest_marker("gui") or item.get_closest_marker("browser")):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"GUI/browser test skipped in CI (not allowed): {reason}"


def _is_gui_or_browser(report) -> bool:
    return "gui" in report.keywords or "browser" in report.keywords


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter, exitstatus, config):
    # outermost wrapper: this line comes after the short test summary, just before the counts
    try:
        return (yield)
    finally:
        missing = getattr(config, "_asymflux_missing", [])
        stats = terminalreporter.stats
        n = sum(1 for r in stats.get("skipped", []) if _is_gui_or_browser(r))
        n += sum(1 for kind in ("failed", "error") for r in stats.get(kind, [])
                 if _is_gui_or_browser(r) and "skipped in CI" in str(r.longrepr))
        if missing and n:
            terminalreporter.write_line(prereqs.message(missing, n), yellow=True, bold=True)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Demo datasets are cached once per test session, never in the user's cache; analysis
    results once per test."""
    cache = tmp_path_factory.getbasetemp() / "asymflux-cache"
    monkeypatch.setenv("ASYMFLUX_CACHE", str(cache))
    # analysis results (asymflux.analysis._cache): one cache per test, so that no test reads
    # another's results
    import uuid

    monkeypatch.setenv("ASYMFLUX_RESULTS_CACHE", str(tmp_path_factory.getbasetemp()
                                                     / "results-cache" / uuid.uuid4().hex))


# ------------------------------------------------------------------ no process left behind


def _descendants(pid: int) -> dict[int, int]:
    """Every living descendant of ``pid``, with its parent (Linux /proc; empty elsewhere)."""
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return {}
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 1 and fields[0] != "Z":  # zombies are already dead
            children.setdefault(int(fields[1]), []).append(int(name))
    out, todo = {}, [pid]
    while todo:
        parent = todo.pop()
        for child in children.get(parent, []):
            out[child] = parent
            todo.append(child)
    return out


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


# Helpers that leave by themselves when this process exits, once the workers they serve are
# gone: multiprocessing's fork server (its workers have the same command line: they are not
# spared) and resource tracker, and pytest-xvfb's Xvfb (stopped at exit).
_FORKSERVER = "multiprocessing.forkserver import main"
_SELF_ENDING = ("multiprocessing.resource_tracker import main", "Xvfb ")


def _leftovers() -> list[int]:
    me = os.getpid()
    out = []
    for pid, parent in _descendants(me).items():
        cmd = _cmdline(pid)
        if any(s in cmd for s in _SELF_ENDING):
            continue
        if _FORKSERVER in cmd and parent == me:  # the fork server itself, not a worker
            continue
        out.append(pid)
    return out


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """Kill the processes this session started and left running (servers, pools, kernels)."""
    left = _leftovers()
    if not left:
        return
    names = [f"{pid} {_cmdline(pid)[:100]}" for pid in left]
    for sig, grace_s in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 2.0)):
        for pid in left:
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            alive = set(_leftovers())
            left = [p for p in left if p in alive]
            if not left:
                break
            time.sleep(0.1)
        if not left:
            break
    sys.stderr.write("tests/conftest.py: killed processes left by the session: "
                     + "; ".join(names) + "\n")


# The good dataset folder the bad-input tables start from (tests/_bad_inputs.py), one per
# test module, and a fresh copy of it per test: shared by the API, CLI, napari and
# dashboard tables.
@pytest.fixture(scope="module")
def good_folder(tmp_path_factory):
    from asymflux import io

    from ._bad_inputs import good_dataset

    return io.write_dataset(good_dataset(), tmp_path_factory.mktemp("good") / "exp")


@pytest.fixture
def folder(tmp_path, good_folder):
    """A fresh copy of the good dataset folder, in ``tmp_path/exp``."""
    import shutil

    return shutil.copytree(good_folder, tmp_path / "exp")
