"""A machine without Xvfb or chromium (issue 14): ``make test``'s prerequisite check says in
one line which tests will not run and how to enable them, and pytest skips the GUI tests
before Qt starts (no abort), ending with the same line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENABLE = "`make test`"  # the line ends with the command enabling the tests, then this

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX PATH and X display")


@pytest.fixture
def bare_env(tmp_path):
    """An environment as on a fresh machine: a PATH with a few basic tools but no Xvfb,
    xvfb-run or chromium, no DISPLAY, not CI, and no installing from the tests."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sh", "bash", "env", "python3"):
        found = _which_outside(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    (bin_dir / "python").symlink_to(sys.executable)
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "CI", "PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER")}
    env.update(PATH=str(bin_dir), ASYMFLUX_NO_APT="1",
               ASYMFLUX_CHROMIUM=str(tmp_path / "no-chromium"))
    return env


def _which_outside(tool):
    for d in os.environ.get("PATH", "").split(os.pathsep):
        p = Path(d) / tool
        if p.is_file() and os.access(p, os.X_OK):
            return p
    return None


def _run(cmd, env, timeout_s):
    """Run ``cmd`` in its own process group; kill the whole group whatever happens."""
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    finally:  # also on a timeout or Ctrl-C: nothing of it stays behind
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait()
    return proc.returncode, out


def _last_line(out: str) -> str:
    return [ln for ln in out.splitlines() if ln.strip()][-1]


def test_prereq_check_names_what_will_not_run(bare_env):
    code, out = _run([sys.executable, str(ROOT / "tools" / "prereqs.py")], bare_env, 60)
    assert code == 0, out
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert len(lines) == 1, out
    assert lines[0].startswith("GUI/browser tests will not run: no Xvfb, no "), out
    assert "no-chromium" in lines[0] and "tools/install-system-deps.sh" in lines[0], out
    assert lines[0].endswith(ENABLE), out


def test_gui_tests_skip_without_a_display(bare_env):
    """No Xvfb, no DISPLAY: every napari GUI test skips, pytest exits 0 (no Qt abort), and the
    run ends with the line saying so (just before pytest's counts). ``-m gui``: tests/napari
    also holds the Qt-free session's tests, which run anywhere."""
    cmd = [sys.executable, "-m", "pytest", "tests/napari", "-m", "gui", "-q", "-p",
           "no:cacheprovider"]
    code, out = _run(cmd, bare_env, 120)
    assert code == 0, out
    assert "Fatal Python error" not in out and "Aborted" not in out, out
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert " skipped" in lines[-1] and "passed" not in lines[-1] and "failed" not in lines[-1], out
    n = int(lines[-1].split()[0])
    assert lines[-2].startswith(f"{n} GUI/browser tests did not run: no Xvfb; "), out
    assert "tools/install-system-deps.sh" in lines[-2] and lines[-2].endswith(ENABLE), out
