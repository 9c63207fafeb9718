#!/usr/bin/env python
"""Seconds from the request to Fig. 5e drawn, in a fresh ``panel serve dashboards/cohort.py``
whose datasets were analysed before (the results cache warm), in a real browser.

Goal (issue #30): a cohort page opened in a fresh server shows Fig. 5e **within 5 s** when its
datasets were analysed before, by any front end (nothing measured again), on an idle 2-core
machine.

First makes sure the results cache holds the datasets' analyses (one server analyses them,
when they are not there yet; its time is printed too), then starts ``--repeats`` fresh servers
per mode: ``panel serve dashboards/cohort.py`` and ``panel serve dashboards/cohort.py --warm``
(the page run once at the server's start: the libraries imported, the cached analyses read
into memory, every figure built; the server answers once that is done). For each it opens the
page in Debian chromium and prints the seconds from the request to Fig. 5e drawn with its
data (polled in the page), the CPU seconds the server process and the browser used meanwhile
(the machine's load inflates the seconds, not these), the machine's load average, and the
ratio goal / seconds (>= 1 meets the goal). With ``--server-log`` the server prints when each
start-up step was done (``ASYMFLUX_DASHBOARD_TIMING``): printed as seconds from the request.
Prints numbers only; exits 0.

    .venv/bin/python benchmarks/bench_cohort_start.py [--datasets cohorts] [--repeats 2]

Demo data and the results cache: $ASYMFLUX_CACHE (default: the user's cache folder, where
``make demo`` / ``asymflux datasets`` build them) and $ASYMFLUX_RESULTS_CACHE (default:
``$ASYMFLUX_CACHE/results``, docs/cache.md); nothing in them is removed.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: tests._helpers

from tests._helpers.server import FIG5E_SHOWN_JS, STATIC_PROBE, launch, serve  # noqa: E402

GOAL_S = 5.0
COHORT = str(Path(__file__).resolve().parents[1] / "dashboards" / "cohort.py")

def _cpu_s(pids) -> float:
    """CPU seconds (user + system) of the processes ``pids`` so far (NaN without psutil)."""
    try:
        import psutil
    except ImportError:
        return float("nan")
    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def _server_pids(proc) -> list[int]:
    try:
        import psutil
    except ImportError:
        return [proc.pid]
    try:
        p = psutil.Process(proc.pid)
        return [p.pid, *(c.pid for c in p.children(recursive=True))]
    except psutil.Error:
        return [proc.pid]


def open_page(browser, url, datasets, *, timeout_s: float, server_pids) -> dict:
    """Open the cohort page; seconds to Fig. 5e, CPU seconds of the server and the browser."""
    try:
        import psutil

        chromium = [c.pid for c in psutil.Process().children(recursive=True)
                    if "chrom" in c.name()]
    except ImportError:
        chromium = []
    ctx = browser.new_context(viewport={"width": 1600, "height": 1300})
    try:
        page = ctx.new_page()
        cpu0 = _cpu_s(server_pids), _cpu_s(chromium)
        t0 = time.time()
        page.goto(f"{url}/cohort?datasets={datasets}", wait_until="commit",
                  timeout=timeout_s * 1000)
        page.wait_for_function("() => window.Bokeh !== undefined", polling=20,
                               timeout=timeout_s * 1000)
        page.evaluate(FIG5E_SHOWN_JS)
        page.wait_for_function("() => window.__fig5e !== null", polling=100,
                               timeout=timeout_s * 1000)
        shown = page.evaluate("() => window.__fig5e")
        cpu1 = _cpu_s(server_pids), _cpu_s(chromium)
    finally:
        ctx.close()
    return {"t0": t0, "seconds": shown - t0, "server_cpu_s": cpu1[0] - cpu0[0],
            "browser_cpu_s": cpu1[1] - cpu0[1]}


def _steps(log: Path, t0: float) -> list[str]:
    out = []
    for line in log.read_text(errors="replace").splitlines():
        m = re.match(r"asymflux timing: (cohort page: .*) at epoch ([\d.]+) s, process CPU "
                     r"([\d.]+)", line)
        if m and float(m[2]) >= t0 - 0.5:
            out.append(f"      {float(m[2]) - t0:6.2f} s  (server CPU {float(m[3]):.2f} s)  "
                       f"{m[1][len('cohort page: '):]}")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", default="cohorts",
                    help="the page's datasets argument (default: the 15 demo datasets)")
    ap.add_argument("--repeats", type=int, default=2, help="fresh servers per mode")
    ap.add_argument("--modes", default="cold,warm",
                    help="comma-separated: cold (panel serve), warm (panel serve --warm)")
    ap.add_argument("--server-log", action="store_true",
                    help="print the server's start-up steps (ASYMFLUX_DASHBOARD_TIMING)")
    ap.add_argument("--timeout-s", type=float, default=600.0)
    args = ap.parse_args(argv)

    from playwright.sync_api import sync_playwright

    from asymflux import datasets as demo

    cache = Path(os.environ.get("ASYMFLUX_CACHE") or demo.cache_dir())
    results = os.environ.get("ASYMFLUX_RESULTS_CACHE") or str(cache / "results")
    env = {"ASYMFLUX_RESULTS_CACHE": results, "ASYMFLUX_DASHBOARD_TIMING": "1"}
    print(f"datasets {args.datasets!r}; demo data {cache}; results cache {results}")
    logs = Path(tempfile.mkdtemp(prefix="bench_cohort_start-"))
    with sync_playwright() as p:
        browser = launch(p)
        try:
            started: list = []
            with serve(str(cache), dashboards=[COHORT], probe=STATIC_PROBE, env=env,
                       timeout_s=args.timeout_s, log_path=logs / "first.log",
                       started=started) as url:
                r = open_page(browser, url, args.datasets, timeout_s=args.timeout_s,
                              server_pids=_server_pids(started[-1]))
            print(f"first server (analyses the datasets unless cached): {r['seconds']:.1f} s "
                  f"to Fig. 5e")
            for mode in args.modes.split(","):
                flags = ["--warm"] if mode == "warm" else []
                for i in range(args.repeats):
                    log = logs / f"{mode}{i}.log"
                    started = []
                    t_start = time.monotonic()
                    with serve(str(cache), dashboards=[COHORT, *flags], probe=STATIC_PROBE,
                               env=env, timeout_s=args.timeout_s, log_path=log,
                               started=started) as url:
                        up_s = time.monotonic() - t_start
                        r = open_page(browser, url, args.datasets, timeout_s=args.timeout_s,
                                      server_pids=_server_pids(started[-1]))
                    load = os.getloadavg()[0]
                    print(f"{mode:>4} server {i + 1}: {r['seconds']:5.2f} s from the request to "
                          f"Fig. 5e (server CPU {r['server_cpu_s']:.2f} s, browser CPU "
                          f"{r['browser_cpu_s']:.2f} s; server up in {up_s:.1f} s); load "
                          f"{load:.2f}; goal/seconds {GOAL_S / r['seconds']:.2f}")
                    if args.server_log:
                        print("\n".join(_steps(log, r["t0"])))
        finally:
            browser.close()
    print(f"(logs: {logs})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
