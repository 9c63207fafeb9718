"""Classification against the synthetic ground truth of the demo cohorts (issue: >= 95 %)."""

import pandas as pd
import pytest

from asymflux import analysis as an
from asymflux import datasets


@pytest.fixture(scope="module")
def cohort_tables():
    parts, truths = [], []
    for name in datasets.list_groups()["cohorts"]:
        ds = datasets.load(name)
        particles, _ = an.analyze_dataset(ds)
        gt = ds.ground_truth["particles"]
        matrix, _ = an.validate_classification(particles, gt, max_eta=0.5, min_fraction=0.25)
        parts.append(particles)
        truths.append(matrix)
    return pd.concat(parts, ignore_index=True), sum(truths)


@pytest.mark.slow
def test_classification_is_at_least_95_percent_correct(cohort_tables):
    _, matrix = cohort_tables
    print("\n" + matrix.to_string())
    correct = matrix.loc["symmetric", "symmetric"] + matrix.loc["asymmetric", "asymmetric"]
    total = int(matrix.to_numpy().sum())
    assert total >= 80
    assert correct / total >= 0.95
    assert matrix.loc["symmetric", "asymmetric"] == 0  # no false asymmetry


@pytest.mark.slow
def test_cohort_statistics_follow_the_paper(cohort_tables):
    particles, _ = cohort_tables
    stats = an.cohort_statistics(particles).set_index("ageing")
    fresh = stats.loc["fresh", "fraction_asymmetric"]
    slow_aged = stats.loc["3-4.3V 50mA/g 200 cycles", "fraction_asymmetric"]
    assert fresh < 0.25 < 0.5 < slow_aged
    assert (stats["ci_low"] <= stats["fraction_asymmetric"]).all()
    assert (stats["fraction_asymmetric"] <= stats["ci_high"]).all()
