"""``make lab``: JupyterLab serves the notebooks; a notebook is fetched over HTTP."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("jupyterlab")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _lab_command() -> list[str]:
    """The command of the Makefile's ``lab`` target, with this interpreter's jupyter."""
    text = (ROOT / "Makefile").read_text()
    m = re.search(r"^lab:.*\n\t\$\(VENV\)/bin/jupyter (lab [^\n]*)$", text, re.M)
    assert m, "the Makefile has no `lab` target running jupyter lab"
    as_root = "--allow-root" if os.geteuid() == 0 else ""
    args = m.group(1).replace("$(LAB_PORT)", "{port}").replace("$(LAB_AS_ROOT)", as_root).split()
    return [sys.executable, "-m", "jupyterlab", *args[1:]]


@pytest.mark.slow
def test_make_lab_serves_the_notebooks(tmp_path):
    port = _free_port()
    token = "asymflux-test"
    cmd = [a.format(port=port) for a in _lab_command()]
    cmd += ["--no-browser", f"--IdentityProvider.token={token}", "--ServerApp.open_browser=False"]
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt"), "JUPYTER_DATA_DIR": str(tmp_path / "data")}
    log = open(tmp_path / "lab.log", "w+")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        model = None
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            try:
                req = urllib.request.Request(f"{base}/api/contents/01_model.ipynb?content=1",
                                             headers={"Authorization": f"token {token}"})
                with urllib.request.urlopen(req, timeout=5) as r:
                    model = json.load(r)
                break
            except OSError:
                time.sleep(0.5)
        log.seek(0)
        assert model is not None, f"JupyterLab did not serve the notebook:\n{log.read()[-3000:]}"
        assert model["type"] == "notebook" and model["name"] == "01_model.ipynb"
        cells = model["content"]["cells"]
        assert len(cells) > 5 and any(c["cell_type"] == "code" for c in cells)
        with urllib.request.urlopen(f"{base}/lab?token={token}", timeout=10) as r:
            assert r.status == 200 and b"JupyterLab" in r.read()
    finally:
        with __import__("contextlib").suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        log.close()
