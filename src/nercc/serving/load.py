"""Open-loop load: Poisson arrivals, one record per query, tail-latency summaries.

The generator sends query ``i`` at its scheduled arrival time whatever the answers before it
(open loop, as a real client population does), so a slow scheme queues and its tail grows; the
latency of a query runs from its send to its answer.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = [
    "CURVE_KEYS",
    "QueryRecord",
    "aggregate_trials",
    "flag_summary",
    "latency_summary",
    "poisson_arrivals",
    "run_load",
    "saturation_points",
    "trial_row",
]

#: The percentiles of a summary, by key.
PERCENTILES = {
    "p50_ms": 50.0, "p90_ms": 90.0, "p99_ms": 99.0, "p99_5_ms": 99.5, "p99_9_ms": 99.9,
}  # fmt: skip

#: What a load curve reports per (scheme, rate, trial), each aggregated over the trials.
CURVE_KEYS = (
    "p50_ms", "p90_ms", "p99_ms", "p99_5_ms", "p99_9_ms", "gap_ms", "throughput_qps",
    "accuracy", "agreement", "answered_fraction",
)  # fmt: skip


@dataclass
class QueryRecord:
    """One query: when it was sent (seconds from the start, as it happened, not as scheduled),
    its latency, what came back."""

    scheme: str
    query: int
    sent_s: float
    latency_ms: float = math.nan
    status: str = "pending"  # ok, failed or pending (no answer by the end)
    prediction: int = -1
    label: int = -1
    base_prediction: int = -1
    group: int = -1
    answered_by: int = 0  # how many coded inputs' answers were decoded
    failed_workers: int = 0  # workers that failed (or were down) while its group was served
    underdetermined: bool = False  # decoded from fewer answers than inputs (after a deadline)
    workers: str = ""  # the coded inputs (by worker) whose answers were decoded, e.g. "0 1 3"
    flagged: str = ""  # the workers whose answers a screening decoder dropped, e.g. "2 7"
    excluded: str = ""  # the workers excluded for lying (not asked) while its group was served
    error: str = ""

    def row(self) -> dict[str, Any]:
        return asdict(self)


def poisson_arrivals(count: int, rate: float, seed: int) -> np.ndarray:
    """Arrival times (seconds, from 0) of ``count`` queries at ``rate`` per second: cumulative
    exponential gaps from a generator seeded by ``seed``; the first query arrives at 0."""
    if not (isinstance(count, int) and count >= 1):
        raise ValueError(f"count must be an integer >= 1, got {count!r}")
    if not (isinstance(rate, int | float) and math.isfinite(rate) and rate > 0):
        raise ValueError(f"rate must be a finite number > 0, got {rate!r}")
    gaps = np.random.default_rng(seed).exponential(1.0 / rate, size=count)
    gaps[0] = 0.0
    return np.cumsum(gaps)


def run_load(
    send: Callable[[int], Future],
    arrivals: Sequence[float],
    scheme: str,
    read: Callable[[QueryRecord, Any], None],
    timeout: float = 120.0,
) -> list[QueryRecord]:
    """Send query ``i`` through ``send(i)`` at ``arrivals[i]`` and record its answer.

    Parameters
    ----------
    send : callable
        Sends query i and returns a future of its answer.
    arrivals : sequence of float
        Send times in seconds from the start, non-decreasing.
    scheme : str
        The name in the records.
    read : callable
        ``read(record, answer)`` fills the record's prediction and workers from an answer.
    timeout : float
        Seconds to wait for the last answers after the last send; queries still unanswered then
        stay ``pending`` (counted as not answered).

    Returns
    -------
    list of QueryRecord, one per query in order.
    """
    records = [QueryRecord(scheme, i, float(t)) for i, t in enumerate(arrivals)]
    remaining = threading.Semaphore(0)
    lock = threading.Lock()
    over = False  # after the timeout, late answers leave their records pending
    start = time.perf_counter()

    def finish(record: QueryRecord, sent: float, future: Future) -> None:
        now = time.perf_counter()
        with lock:
            if over:
                return
            record.latency_ms = (now - sent) * 1000.0
            error = future.exception()
            if error is None:
                record.status = "ok"
                read(record, future.result())
            else:
                record.status = "failed"
                record.error = " ".join(str(error).split())[:300] or type(error).__name__
        remaining.release()

    for record in records:
        wait = start + record.sent_s - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        sent = time.perf_counter()
        record.sent_s = sent - start
        try:
            future = send(record.query)
        except Exception as error:  # a send that cannot even start fails its query
            future = Future()
            future.set_exception(error)
        future.add_done_callback(lambda f, r=record, s=sent: finish(r, s, f))
    end = time.monotonic() + timeout
    for _ in records:
        if not remaining.acquire(timeout=max(end - time.monotonic(), 0.0)):
            break
    with lock:
        over = True
    return records


def latency_summary(records: Sequence[QueryRecord]) -> dict:
    """Tail latency, throughput, accuracy and counts of one scheme's records.

    Latencies are of the answered queries. ``throughput_qps`` is answered queries per second over
    the time from the first send to the last answer. ``accuracy`` is
    against the labels, ``agreement`` against the base model's own predictions, both over the
    queries sent (an unanswered query counts as wrong). ``worker_failures`` counts, over the
    groups answered, the workers that failed (or were down) while each group was served;
    ``underdetermined_groups`` the groups answered that a code decoded from fewer answers than
    inputs (K), after its deadline.
    """
    sent = len(records)
    ok = [r for r in records if r.status == "ok"]
    latencies = np.array([r.latency_ms for r in ok], dtype=np.float64)
    summary: dict[str, Any] = {"sent": sent, "answered": len(ok)}
    summary["failed"] = sum(r.status == "failed" for r in records)
    summary["pending"] = sum(r.status == "pending" for r in records)
    for key, q in PERCENTILES.items():
        summary[key] = float(np.percentile(latencies, q)) if len(ok) else math.nan
    summary["mean_ms"] = float(latencies.mean()) if len(ok) else math.nan
    duration_s = 0.0
    if ok:
        last = max(r.sent_s + r.latency_ms / 1000.0 for r in ok)
        duration_s = last - min(r.sent_s for r in records)
    summary["throughput_qps"] = len(ok) / duration_s if duration_s > 0 else 0.0
    if sent:
        summary["accuracy"] = sum(r.prediction == r.label for r in ok) / sent
        summary["agreement"] = sum(r.prediction == r.base_prediction for r in ok) / sent
    summary["mean_answers_decoded"] = (
        float(np.mean([r.answered_by for r in ok])) if ok else math.nan
    )
    # each group once: the workers that failed (or were down) while it was served
    by_group = {r.group: r.failed_workers for r in ok}
    summary["worker_failures"] = int(sum(by_group.values()))
    summary["underdetermined_groups"] = len({r.group for r in ok if r.underdetermined})
    return summary


def flag_summary(
    records: Sequence[QueryRecord], num_workers: int, adversarial: Sequence[int] = ()
) -> dict[str, Any]:
    """Per worker, the answered groups in which a screening decoder dropped its answer, and how
    well those flags find the adversarial workers.

    Each answered group counts once (its records share ``workers`` and ``flagged``).
    ``flagged_by_worker[w]`` is the groups that flagged worker w, ``answers_by_worker[w]`` the
    groups whose decoded answers include w's (the row of coded input w). With F the flags
    (worker, group) and T those on ``adversarial`` workers:

    - ``flag_precision`` = |T| / |F| (None without flags): the share of flags that hit a liar;
    - ``flag_recall`` = |T| / (the answers of adversarial workers) (None without any): the
      share of the liars' answers dropped.

    Parameters
    ----------
    records : sequence of QueryRecord
        One scheme's records.
    num_workers : int
        The scheme's workers (keys ``"0"`` to ``"N-1"``).
    adversarial : sequence of int
        The workers configured to lie.

    Returns
    -------
    dict
        ``flagged_by_worker``, ``answers_by_worker`` (str worker to int), ``flagged_groups``
        (groups with any flag), ``flag_precision``, ``flag_recall``.
    """
    groups = {r.group: r for r in records if r.status == "ok"}
    flagged = [0] * num_workers
    answers = [0] * num_workers
    flagged_groups = 0
    for record in groups.values():
        hits = [int(w) for w in record.flagged.split()]
        flagged_groups += bool(hits)
        for w in hits:
            flagged[w] += 1
        for w in record.workers.split():
            answers[int(w)] += 1
    liars = [w for w in adversarial if 0 <= w < num_workers]
    true = sum(flagged[w] for w in liars)
    lied = sum(answers[w] for w in liars)
    total = sum(flagged)
    return {
        "flagged_by_worker": {str(w): c for w, c in enumerate(flagged)},
        "answers_by_worker": {str(w): c for w, c in enumerate(answers)},
        "flagged_groups": flagged_groups,
        "flag_precision": true / total if total else None,
        "flag_recall": true / lied if lied else None,
    }


def trial_row(
    scheme: str, workers: int, rate: float, trial: int, seed: int, summary: Mapping[str, Any]
) -> dict[str, Any]:
    """One row of ``load_curves.csv``: one scheme's load at one offered rate in one trial.

    Parameters
    ----------
    scheme : str
        The scheme's name.
    workers : int
        The workers it used.
    rate : float
        The offered rate (queries per second), > 0.
    trial : int
        The trial's number, >= 0.
    seed : int
        The trial's seed (arrivals and faults).
    summary : mapping
        The :func:`latency_summary` of that load.

    Returns
    -------
    dict
        ``scheme, workers, rate, trial, seed``, then the :data:`CURVE_KEYS`: the latency
        percentiles (ms), ``gap_ms`` = p99.9 - p50, ``throughput_qps`` (answered queries per
        second from the first send to the last answer), ``accuracy``, ``agreement`` and
        ``answered_fraction`` = answered / sent; then ``sent`` and ``answered``.
    """
    if not (isinstance(rate, int | float) and math.isfinite(rate) and rate > 0):
        raise ValueError(f"rate must be a finite number > 0, got {rate!r}")
    sent, answered = int(summary["sent"]), int(summary["answered"])
    if sent < 1 or not 0 <= answered <= sent:
        raise ValueError(
            f"summary must have sent >= 1 and 0 <= answered <= sent, got sent={sent}, "
            f"answered={answered}"
        )
    row: dict[str, Any] = {
        "scheme": scheme, "workers": int(workers), "rate": float(rate), "trial": int(trial),
        "seed": int(seed),
    }  # fmt: skip
    for key in PERCENTILES:
        row[key] = float(summary[key])
    row["gap_ms"] = row["p99_9_ms"] - row["p50_ms"]
    row["throughput_qps"] = float(summary["throughput_qps"])
    row["accuracy"] = float(summary["accuracy"])
    row["agreement"] = float(summary["agreement"])
    row["answered_fraction"] = answered / sent
    row["sent"], row["answered"] = sent, answered
    return row


def aggregate_trials(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The load curve: per (scheme, rate), each of :data:`CURVE_KEYS` as its mean over the
    trials with the spread min-max over them.

    For a key x and the T trials of (scheme, rate)::

        x = (1 / T) sum_t x_t        x_min = min_t x_t        x_max = max_t x_t

    A trial with nothing answered has NaN latencies, and makes the mean NaN (not hidden).

    Parameters
    ----------
    rows : sequence of mapping
        :func:`trial_row` rows, any order; one per (scheme, rate, trial).

    Returns
    -------
    list of dict
        One per (scheme, rate), schemes in order of first appearance, rates ascending:
        ``scheme, workers, rate, trials`` (T), ``seeds``, then ``x, x_min, x_max`` per key, then
        ``sent`` and ``answered`` summed over the trials.

    Raises
    ------
    ValueError
        ``rows`` empty, a (scheme, rate, trial) twice, or a scheme with two worker counts.
    """
    if not rows:
        raise ValueError("rows must hold at least one trial row, got none")
    groups: dict[tuple[str, float], list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["scheme"], float(row["rate"])), []).append(row)
    order = list(dict.fromkeys(row["scheme"] for row in rows))
    out = []
    for (scheme, rate), trials in sorted(
        groups.items(), key=lambda g: (order.index(g[0][0]), g[0][1])
    ):
        numbers = [int(t["trial"]) for t in trials]
        if len(set(numbers)) != len(numbers):
            raise ValueError(
                f"rows must hold each trial once, got trials {numbers} of {scheme} at {rate:g}/s"
            )
        workers = {int(t["workers"]) for t in trials}
        if len(workers) != 1:
            raise ValueError(f"rows must give {scheme} one worker count, got {sorted(workers)}")
        entry: dict[str, Any] = {
            "scheme": scheme, "workers": workers.pop(), "rate": rate, "trials": len(trials),
            "seeds": [int(t["seed"]) for t in trials],
        }  # fmt: skip
        for key in CURVE_KEYS:
            values = np.array([float(t[key]) for t in trials], dtype=np.float64)
            entry[key] = float(values.mean())
            entry[f"{key}_min"] = float(values.min())
            entry[f"{key}_max"] = float(values.max())
        entry["sent"] = sum(int(t["sent"]) for t in trials)
        entry["answered"] = sum(int(t["answered"]) for t in trials)
        out.append(entry)
    return out


def saturation_points(curve: Sequence[Mapping[str, Any]], factor: float) -> dict[str, float | None]:
    """Per scheme, the offered rate at which it saturates: the lowest rate whose mean p50
    exceeds ``factor`` times the mean p50 at the scheme's lowest rate.

    With r_0 < r_1 < ... the scheme's rates and m(r) its mean p50::

        saturation = min { r_i : m(r_i) > factor * m(r_0) }      (None: not reached)

    An open-loop load past what the machine serves queues without bound, so its median latency
    grows with the run rather than with the stragglers (which move the tail, not the median). A
    rate at which nothing was answered (p50 NaN) counts as saturated; so does every rate when
    m(r_0) is NaN. The lowest rate is the reference, so it is never found saturated otherwise:
    pick it well below the machine's capacity.

    Parameters
    ----------
    curve : sequence of mapping
        :func:`aggregate_trials` rows (``scheme``, ``rate``, ``p50_ms``).
    factor : float
        The multiple of the lowest rate's p50, > 1.

    Returns
    -------
    dict
        Scheme (in order of first appearance) to its saturation rate, or None when not reached.
    """
    if not (isinstance(factor, int | float) and math.isfinite(factor) and factor > 1):
        raise ValueError(f"factor must be a finite number > 1, got {factor!r}")
    points: dict[str, float | None] = {}
    for scheme in dict.fromkeys(row["scheme"] for row in curve):
        mine = sorted(
            (float(r["rate"]), float(r["p50_ms"])) for r in curve if r["scheme"] == scheme
        )
        reference = mine[0][1]
        points[scheme] = next(
            (
                rate
                for rate, p50 in mine
                if math.isnan(p50) or math.isnan(reference) or p50 > factor * reference
            ),
            None,
        )
    return points
