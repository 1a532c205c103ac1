"""Load curves without Ray: a trial's row, the aggregation over trials, the saturation rule and
the config checks of the rates and trials."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from nercc.runtime.checks.loadcurves import check_load_curves, load_rates
from nercc.serving.load import (
    CURVE_KEYS,
    QueryRecord,
    aggregate_trials,
    latency_summary,
    saturation_points,
    trial_row,
)
from nercc.utils.errors import ConfigError


def records(latencies, answered=None, label=0):
    """One scheme's records: query i sent at i/100 s with ``latencies[i]``, the first
    ``answered`` of them answered (prediction = label for the even queries)."""
    answered = len(latencies) if answered is None else answered
    out = []
    for i, latency in enumerate(latencies):
        record = QueryRecord("s", i, i / 100.0, label=label, base_prediction=label)
        if i < answered:
            record.status, record.latency_ms = "ok", float(latency)
            record.prediction = label if i % 2 == 0 else label + 1
        out.append(record)
    return out


def test_a_trial_row_has_the_percentiles_the_gap_and_the_answered_fraction():
    latencies = np.random.default_rng(0).pareto(1.5, 400) * 5 + 5
    summary = latency_summary(records(latencies, answered=300))
    row = trial_row("nercc", 5, 50, 2, 7, summary)
    answered = latencies[:300]
    for key, q in [("p50_ms", 50), ("p90_ms", 90), ("p99_ms", 99), ("p99_5_ms", 99.5),
                   ("p99_9_ms", 99.9)]:  # fmt: skip
        assert row[key] == pytest.approx(np.percentile(answered, q), rel=1e-12)
    assert row["gap_ms"] == pytest.approx(
        np.percentile(answered, 99.9) - np.percentile(answered, 50), rel=1e-12
    )
    assert row["answered_fraction"] == 0.75 and (row["sent"], row["answered"]) == (400, 300)
    assert row["accuracy"] == 150 / 400 and row["agreement"] == 150 / 400
    assert (row["scheme"], row["workers"], row["rate"], row["trial"], row["seed"]) == (
        "nercc", 5, 50.0, 2, 7,
    )  # fmt: skip
    assert set(CURVE_KEYS) <= set(row)


@pytest.mark.parametrize(
    ("rate", "sent", "answered", "message"),
    [(0, 10, 10, "rate"), (math.nan, 10, 10, "rate"), (5, 0, 0, "sent"), (5, 10, 11, "sent")],
)
def test_a_trial_row_refuses_a_bad_rate_or_counts(rate, sent, answered, message):
    summary = {"sent": sent, "answered": answered}
    with pytest.raises(ValueError, match=message):
        trial_row("nercc", 5, rate, 0, 0, summary)


def sweep(schemes, rates, trials, seed=0):
    """Rows of a synthetic sweep: scheme i at rate r in trial t has Pareto latencies scaled by
    (1 + i) and r, answered in full but for t queries."""
    generator = np.random.default_rng(seed)
    rows, latencies = [], {}
    for (i, scheme), rate, trial in itertools.product(enumerate(schemes), rates, range(trials)):
        drawn = (generator.pareto(1.5, 200) + 1) * (1 + i) * rate / 10
        latencies[scheme, rate, trial] = drawn[: 200 - trial]
        summary = latency_summary(records(drawn, answered=200 - trial))
        rows.append(trial_row(scheme, 4 + i, rate, trial, 100 + trial, summary))
    return rows, latencies


def test_the_sweep_summary_holds_every_scheme_and_rate_with_its_trials_aggregated():
    schemes, rates, trials = ["uncoded", "bacc", "nercc"], [20.0, 50.0, 100.0, 200.0], 3
    rows, latencies = sweep(schemes, rates, trials)
    # given in another order: the curve comes back ordered by scheme (first seen), then rate
    curve = aggregate_trials(rows[::-1])
    assert [(c["scheme"], c["rate"]) for c in curve] == [
        (s, r) for s in schemes[::-1] for r in rates
    ]
    for entry in curve:
        scheme, rate = entry["scheme"], entry["rate"]
        assert entry["trials"] == trials and entry["seeds"] == [102, 101, 100]
        assert entry["workers"] == 4 + schemes.index(scheme)
        mine = [latencies[scheme, rate, t] for t in range(trials)]
        p50 = [np.percentile(x, 50) for x in mine]
        p999 = [np.percentile(x, 99.9) for x in mine]
        gaps = [b - a for a, b in zip(p50, p999, strict=True)]
        assert entry["p50_ms"] == pytest.approx(np.mean(p50), rel=1e-12)
        assert entry["p99_9_ms_min"] == pytest.approx(min(p999), rel=1e-12)
        assert entry["p99_9_ms_max"] == pytest.approx(max(p999), rel=1e-12)
        assert entry["gap_ms"] == pytest.approx(np.mean(gaps), rel=1e-12)
        assert entry["gap_ms_min"] == pytest.approx(min(gaps), rel=1e-12)
        assert entry["gap_ms_max"] == pytest.approx(max(gaps), rel=1e-12)
        fractions = [(200 - t) / 200 for t in range(trials)]
        assert entry["answered_fraction"] == pytest.approx(np.mean(fractions), rel=1e-12)
        assert entry["answered_fraction_min"] == fractions[-1]
        assert (entry["sent"], entry["answered"]) == (600, 600 - 3)
        for key in CURVE_KEYS:
            assert entry[f"{key}_min"] <= entry[key] <= entry[f"{key}_max"]


def test_one_trial_aggregates_to_itself():
    rows, _ = sweep(["nercc"], [50.0], 1)
    (entry,) = aggregate_trials(rows)
    for key in CURVE_KEYS:
        assert entry[key] == entry[f"{key}_min"] == entry[f"{key}_max"] == rows[0][key]


def test_aggregation_refuses_a_trial_twice_or_no_rows():
    rows, _ = sweep(["nercc"], [50.0], 2)
    with pytest.raises(ValueError, match="each trial once"):
        aggregate_trials([*rows, rows[0]])
    with pytest.raises(ValueError, match="rows"):
        aggregate_trials([])


def curve_of(p50s):
    """A curve: scheme to its mean p50 at rates 10, 20, 40, ..."""
    return [
        {"scheme": scheme, "rate": 10.0 * 2**i, "p50_ms": p50}
        for scheme, values in p50s.items()
        for i, p50 in enumerate(values)
    ]


def test_saturation_is_the_lowest_rate_past_the_factor_times_the_lowest_rates_p50():
    curve = curve_of({
        "uncoded": [10.0, 12.0, 31.0, 100.0],  # 31 > 3 x 10: saturated at 40
        "bacc": [10.0, 30.0, 29.0, 30.0],  # never more than 3 x 10 (equal is not past)
        "nercc": [10.0, math.nan, 5.0, 5.0],  # nothing answered at 20
        "replication": [math.nan, 1.0, 1.0, 1.0],  # no reference: saturated from the start
    })  # fmt: skip
    # rows in any order
    assert saturation_points(curve[::-1], 3.0) == {
        "replication": 10.0, "nercc": 20.0, "bacc": None, "uncoded": 40.0,
    }  # fmt: skip
    assert saturation_points(curve, 1.1)["bacc"] == 20.0


@pytest.mark.parametrize("factor", [1.0, 0.5, math.inf, "3"])
def test_saturation_refuses_a_factor_not_above_one(factor):
    with pytest.raises(ValueError, match="factor"):
        saturation_points(curve_of({"nercc": [1.0, 2.0]}), factor)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["loadtest.rates=[]"], "loadtest.rates: must be null or a non-empty list of distinct "
         "numbers > 0 (queries per second), got []"),
        (["loadtest.rates=[20,0]"], "loadtest.rates: must be null or a non-empty list"),
        (["loadtest.rates=[20,-5]"], "loadtest.rates: must be null or a non-empty list"),
        (["loadtest.rates=[20,abc]"], "loadtest.rates: must be null or a non-empty list"),
        (["loadtest.rates=50"], "loadtest.rates: must be null or a non-empty list"),
        (["loadtest.rates=[20,true]"], "loadtest.rates: must be null or a non-empty list"),
        (["loadtest.rates=[20,20.0]"], "loadtest.rates: must be null or a non-empty list of "
         "distinct numbers > 0 (queries per second): no rate twice, got [20, 20.0]"),
        (["loadtest.trials=0"], "loadtest.trials: must be an integer >= 1, got 0"),
        (["loadtest.trials=1.5"], "loadtest.trials: must be an integer >= 1, got 1.5"),
        (["loadtest.saturation_factor=1"],
         "loadtest.saturation_factor: must be a finite number > 1, got 1"),
    ],
)  # fmt: skip
def test_bad_rates_or_trials_are_refused_in_one_line(compose_config, overrides, message):
    cfg = compose_config("loadtest", ["data=synthetic", *overrides])
    with pytest.raises(ConfigError) as refused:
        check_load_curves(cfg)
    text = str(refused.value)
    assert "\n" not in text and text.startswith(message), text


def test_rates_default_to_the_one_rate_and_come_sorted(compose_config):
    cfg = compose_config("loadtest", ["data=synthetic", "loadtest.rate=70"])
    check_load_curves(cfg)
    assert load_rates(cfg) == [70.0]
    cfg = compose_config("loadtest", ["data=synthetic", "loadtest.rates=[100,20,50.5]"])
    check_load_curves(cfg)
    assert load_rates(cfg) == [20.0, 50.5, 100.0]
