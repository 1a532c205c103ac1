"""Poisson arrivals, the open-loop sender and the latency summary, without Ray."""

from __future__ import annotations

import math
import time
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import pytest

from nercc.serving.load import (
    QueryRecord,
    flag_summary,
    latency_summary,
    poisson_arrivals,
    run_load,
)


def test_poisson_arrivals_are_seeded_exponential_gaps():
    times = poisson_arrivals(20000, 50.0, seed=3)
    assert times[0] == 0.0 and np.all(np.diff(times) >= 0)
    gaps = np.diff(times)
    # mean 1/50 s; the SE of the mean of 20k exponential gaps is 0.02/sqrt(20k) = 1.4e-4
    assert abs(gaps.mean() - 0.02) < 6e-4
    # exponential: the sd equals the mean
    assert abs(gaps.std() / gaps.mean() - 1.0) < 0.03
    np.testing.assert_array_equal(times, poisson_arrivals(20000, 50.0, seed=3))
    assert not np.array_equal(times, poisson_arrivals(20000, 50.0, seed=4))


@pytest.mark.parametrize(("count", "rate", "message"), [(0, 1.0, "count"), (5, 0, "rate")])
def test_poisson_arrivals_refuse_bad_arguments(count, rate, message):
    with pytest.raises(ValueError, match=message):
        poisson_arrivals(count, rate, 0)


def test_run_load_sends_on_schedule_and_records_every_query():
    sent_at = {}
    start = time.perf_counter()

    def answer(i):
        time.sleep(0.004 if i % 2 else 0.0)
        if i == 3:
            raise RuntimeError("worker gone")
        return i * 10

    with ThreadPoolExecutor(8) as pool:

        def send(i):
            sent_at[i] = time.perf_counter() - start
            return pool.submit(answer, i)

        def read(record, value):
            record.prediction = value

        arrivals = [0.0, 0.01, 0.02, 0.05, 0.06]
        records = run_load(send, arrivals, "x", read, timeout=5.0)
    assert [r.query for r in records] == [0, 1, 2, 3, 4]
    assert [r.status for r in records] == ["ok", "ok", "ok", "failed", "ok"]
    assert records[3].error == "worker gone"
    assert [r.prediction for r in records if r.status == "ok"] == [0, 10, 20, 40]
    for i, at in enumerate(arrivals):  # open loop: never early, at most a little late
        assert at - 1e-4 <= sent_at[i] < at + 0.5
    assert records[1].latency_ms >= 4.0


def test_run_load_leaves_unanswered_queries_pending():
    never: Future = Future()
    records = run_load(lambda i: never, [0.0], "x", lambda r, v: None, timeout=0.05)
    assert records[0].status == "pending" and math.isnan(records[0].latency_ms)


def test_summary_percentiles_accuracy_and_counts():
    records = []
    for i in range(1000):
        r = QueryRecord("s", i, sent_s=i * 0.01, latency_ms=float(i + 1), status="ok")
        r.prediction, r.label, r.base_prediction, r.group = i % 3, 0, i % 3 if i < 900 else 1, i
        records.append(r)
    records[-1].status = "failed"
    summary = latency_summary(records)
    latencies = np.arange(1, 1000, dtype=float)  # the failed query's latency is not counted
    assert summary["p50_ms"] == pytest.approx(np.percentile(latencies, 50))
    assert summary["p99_ms"] == pytest.approx(np.percentile(latencies, 99))
    assert summary["p99_9_ms"] == pytest.approx(np.percentile(latencies, 99.9))
    assert (summary["sent"], summary["answered"], summary["failed"]) == (1000, 999, 1)
    # labels 0: predictions i % 3 == 0 among the answered, over all sent
    assert summary["accuracy"] == pytest.approx(sum(i % 3 == 0 for i in range(999)) / 1000)
    agree = sum((i % 3) == (i % 3 if i < 900 else 1) for i in range(999))
    assert summary["agreement"] == pytest.approx(agree / 1000)
    # 999 answers from t=0 to the last answer at 9.98 s + 999 ms
    assert summary["throughput_qps"] == pytest.approx(999 / (9.98 + 0.999))


def test_flag_summary_counts_each_group_once_and_scores_the_flags():
    """Two records of group 0 (worker 2 flagged), one of group 1 (workers 2 and 4 flagged), a
    failed one ignored; worker 2 lies: 2 of its 2 answers flagged (recall 1), 2 of the 3 flags
    on it (precision 2/3)."""
    records = [
        QueryRecord("s", 0, 0.0, status="ok", group=0, workers="0 1 2 3", flagged="2"),
        QueryRecord("s", 1, 0.0, status="ok", group=0, workers="0 1 2 3", flagged="2"),
        QueryRecord("s", 2, 0.0, status="ok", group=1, workers="1 2 4", flagged="2 4"),
        QueryRecord("s", 3, 0.0, status="failed", group=2, workers="", flagged="0"),
    ]
    summary = flag_summary(records, 5, adversarial=[2])
    assert summary["flagged_by_worker"] == {"0": 0, "1": 0, "2": 2, "3": 0, "4": 1}
    assert summary["answers_by_worker"] == {"0": 1, "1": 2, "2": 2, "3": 1, "4": 1}
    assert summary["flagged_groups"] == 2
    assert summary["flag_precision"] == pytest.approx(2 / 3)
    assert summary["flag_recall"] == 1.0
    none = flag_summary(records[:1], 5, adversarial=[])
    assert none["flag_precision"] == 0.0 and none["flag_recall"] is None
