"""The fit's standard errors are honest: on 20 seeded synthetic particles with known truth
(the demo's, ``benchmarks/bench_fit_coverage.py``), the true arc centre and fraction lie
within two reported standard errors in at least 80 % of them (issue 26). 9-13 min on two
loaded cores: too slow for every CI run, so opt-in: ``ASYMFLUX_COVERAGE=1`` (the same
check, with a printed table: ``python benchmarks/bench_fit_coverage.py``)."""

import importlib
import os
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
N_PARTICLES = 20


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("ASYMFLUX_COVERAGE") != "1",
                    reason="the 20-particle coverage of the fit's standard errors takes 9-13 "
                           "min: set ASYMFLUX_COVERAGE=1 to run it, or run the equivalent "
                           "benchmark benchmarks/bench_fit_coverage.py")
def test_the_truth_lies_within_two_standard_errors_in_80_percent_of_particles(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # importable by name: the workers unpickle
    bench = importlib.import_module("bench_fit_coverage")
    jobs = bench.select_jobs(N_PARTICLES)
    assert len(jobs) == N_PARTICLES
    table = bench.fit_jobs(jobs, workers=2)
    cov = bench.coverage(table)
    n = len(table)
    assert cov["centre (truth in the fit's frame)"] >= 0.8 * n, (cov, table)
    assert cov["fraction (truth in the fit's frame)"] >= 0.8 * n, (cov, table)
