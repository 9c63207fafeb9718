#!/usr/bin/env python3
"""What the test suite needs beyond Python, checked before ``pytest`` starts (``make test``).

The GUI tests (napari, marker ``gui``) need an X display: ``DISPLAY`` pointing at a live X
server, or ``Xvfb`` on PATH for pytest-xvfb (``QT_QPA_PLATFORM=offscreen`` is not enough for
vispy). Without one, Qt aborts the whole pytest process, so ``tests/conftest.py`` uses
:func:`display_problem` to skip them before Qt starts. The browser tests (marker ``browser``)
need Debian's chromium at ``/usr/bin/chromium``. Arbin ``.res`` files need mdbtools.

``python tools/prereqs.py`` (run by ``make test``): when something is missing and this runs as
root with apt-get (and ``ASYMFLUX_NO_APT`` is not set), installs the Debian packages with
``tools/install-system-deps.sh``; otherwise prints one line naming the tests that will not
run and the command that enables them. Always exits 0: the tests then run and skip cleanly
(in CI, ``CI`` set, ``tests/conftest.py`` turns such skips into failures).

Standard library only; never imports Qt.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INSTALL_SCRIPT = "tools/install-system-deps.sh"
NO_APT_ENV = "ASYMFLUX_NO_APT"
"""Set to 1 to never install Debian packages from ``make test``."""
CHROMIUM_ENV = "ASYMFLUX_CHROMIUM"
"""Path of the chromium the browser tests drive (default ``/usr/bin/chromium``)."""


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() not in ("", "0", "false", "no")


def in_ci() -> bool:
    return _truthy(os.environ.get("CI"))


def chromium_path() -> str:
    return os.environ.get(CHROMIUM_ENV) or "/usr/bin/chromium"


def display_reachable(display: str | None) -> bool:
    """Whether an X server answers at ``display`` (``:N``, ``unix:N``, ``host:N[.s]``)."""
    if not display or ":" not in display:
        return False
    host, _, rest = display.rpartition(":")
    number = rest.split(".")[0]
    if not number.isdigit():
        return False
    if host in ("", "unix") or host.startswith("/"):
        sock_path = f"/tmp/.X11-unix/X{number}"
        for address in (sock_path, "\0" + sock_path):  # file socket, then Linux abstract
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    s.settimeout(2.0)
                    s.connect(address)
                    return True
            except OSError:
                continue
        if host:
            return False
        host = "localhost"
    try:
        with socket.create_connection((host, 6000 + int(number)), timeout=2.0):
            return True
    except OSError:
        return False


def display_problem(*, xvfb_allowed: bool = True) -> str | None:
    """None when the GUI tests can have an X display, else why not (a few words).

    ``xvfb_allowed``: pytest-xvfb will start ``Xvfb`` (found on PATH) for the session."""
    display = os.environ.get("DISPLAY", "")
    if display and display_reachable(display):
        return None
    if xvfb_allowed and shutil.which("Xvfb"):
        return None
    if display:
        return f"no Xvfb, DISPLAY={display} does not answer"
    return "no Xvfb"


def chromium_problem() -> str | None:
    path = chromium_path()
    return None if os.access(path, os.X_OK) else f"no {path}"


def mdbtools_problem() -> str | None:
    return None if shutil.which("mdb-export") else "no mdbtools"


def problems(*, xvfb_allowed: bool = True) -> list[str]:
    """What is missing, in a few words each (empty when everything is there)."""
    found = [display_problem(xvfb_allowed=xvfb_allowed), chromium_problem(), mdbtools_problem()]
    return [p for p in found if p]


def enable_command() -> str:
    """The command that installs what is missing, then runs the tests again."""
    if shutil.which("apt-get") is None and not Path("/usr/bin/apt-get").exists():
        return (f"install the equivalents of the Debian packages in `{INSTALL_SCRIPT} --list`, "
                "then `make test`")
    sudo = "" if hasattr(os, "geteuid") and os.geteuid() == 0 else "sudo "
    return f"run `{sudo}{INSTALL_SCRIPT}` then `make test`"


def message(missing: list[str], n_tests: int | None = None) -> str:
    """The one line saying which tests do not run, and how to make them run."""
    gui = [p for p in missing if "mdbtools" not in p]
    parts = []
    if gui:
        if n_tests is None:
            what = "GUI/browser tests will not run"
        else:
            what = f"{n_tests} GUI/browser test{'s' if n_tests != 1 else ''} did not run"
        parts.append(f"{what}: {', '.join(gui)}")
    if len(gui) < len(missing):
        parts.append("Arbin .res files cannot be read: no mdbtools")
    return "; ".join([*parts, enable_command()])


def _missing_packages() -> list[str] | None:
    """Debian packages of the install script that are not installed (None: cannot tell)."""
    if shutil.which("dpkg-query") is None or shutil.which("bash") is None:
        return None
    try:
        out = subprocess.run(["bash", str(ROOT / INSTALL_SCRIPT), "--missing"], check=True,
                             capture_output=True, text=True, timeout=120).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.split()


def can_install() -> bool:
    return (not _truthy(os.environ.get(NO_APT_ENV)) and hasattr(os, "geteuid")
            and os.geteuid() == 0 and shutil.which("apt-get") is not None
            and shutil.which("bash") is not None)


def main() -> int:
    if can_install():
        packages = _missing_packages()
        if packages or (packages is None and problems()):
            print(f"prereqs: installing Debian packages for the GUI/browser tests: "
                  f"{' '.join(packages or [])}".rstrip(), flush=True)
            try:
                subprocess.run(["bash", str(ROOT / INSTALL_SCRIPT)], check=True, timeout=1800)
            except (OSError, subprocess.SubprocessError) as e:
                print(f"prereqs: {INSTALL_SCRIPT} failed ({e})", flush=True)
    missing = problems()
    if missing:
        print(message(missing), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
