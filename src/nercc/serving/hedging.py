"""Hedged requests (Dean and Barroso, The Tail at Scale): the policy the frontend follows.

A group's K inputs go to K primary workers (0 to K-1, one input each, exact answers); the other
N - K workers are spares. Once ``hedge_after_ms`` has passed since the primaries were sent, each
input still unanswered is sent once to a spare (:func:`due_inputs`), the spare with the fewest
requests in flight (:func:`pick_spare`); the first answer of each input wins, a later one is
ignored and counted. An input whose primary failed (or was known down) is hedged at once.

``hedge_after_ms`` is a number of milliseconds, or ``auto``: the ``percentile``-th percentile of
the latencies (send to answer, as the frontend sees them) of the last ``window`` answers of this
frontend's workers, primaries and spares, winners and losers (:class:`HedgeDelay`). Until the
window holds ``ceil(100 / (100 - percentile))`` answers (20 at p95: the fewest that can show one
beyond the percentile) no hedge is sent on time; failed primaries are still hedged at once.

:class:`Hedged` is the served scheme (what :func:`nercc.serving.plan.serving_plan` builds for the
name ``hedged``); :class:`Hedger` is one frontend's state: requests in flight per worker, the
delay's window, the counts that :meth:`Hedger.summary` reports.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Collection, Sequence
from typing import Any, ClassVar

import numpy as np

from nercc.coding import CodingScheme

__all__ = [
    "AUTO",
    "HedgeDelay",
    "Hedged",
    "Hedger",
    "due_inputs",
    "hedge_note",
    "next_hedge_s",
    "pick_spare",
]

#: ``hedge_after_ms`` that follows the workers' recent latencies.
AUTO = "auto"

#: Answers the auto delay looks back over.
WINDOW = 1000


def _check_after(after_ms: Any) -> float | str:
    if after_ms == AUTO and isinstance(after_ms, str):
        return AUTO
    if (
        isinstance(after_ms, bool)
        or not isinstance(after_ms, int | float)
        or not math.isfinite(after_ms)
        or after_ms <= 0
    ):
        raise ValueError(f"after_ms must be a finite number > 0 or 'auto', got {after_ms!r}")
    return float(after_ms)


def _check_percentile(percentile: Any) -> float:
    if (
        isinstance(percentile, bool)
        or not isinstance(percentile, int | float)
        or not 0 < percentile < 100
    ):
        raise ValueError(f"percentile must be a number in (0, 100), got {percentile!r}")
    return float(percentile)


class Hedged(CodingScheme):
    """Hedged requests as a scheme: K inputs, N workers, no code.

    Row k of the encoder is input k for k < K (worker k is its primary); the N - K spares' rows
    are zero, as no input is theirs until the frontend hedges one to them (it sends row k to the
    spare). Decoding takes row k as input k's answer, exactly; an input whose row has no answer
    is lost (:meth:`lost`).

    Parameters
    ----------
    num_inputs : int
        K >= 1.
    num_workers : int
        N > K (at least one spare).
    after_ms : float or "auto"
        The hedge delay in milliseconds (> 0), or ``auto`` (see :class:`HedgeDelay`).
    percentile : float
        In (0, 100): the auto delay's percentile of recent latencies.
    window : int
        >= 1, the answers the auto delay looks back over.
    """

    loses_inputs: ClassVar[bool] = True

    def __init__(
        self,
        num_inputs: int,
        num_workers: int,
        after_ms: float | str = AUTO,
        percentile: float = 95.0,
        window: int = WINDOW,
    ) -> None:
        if isinstance(num_inputs, bool) or not isinstance(num_inputs, int) or num_inputs < 1:
            raise ValueError(f"num_inputs must be an integer >= 1, got {num_inputs!r}")
        if (
            isinstance(num_workers, bool)
            or not isinstance(num_workers, int)
            or num_workers <= num_inputs
        ):
            raise ValueError(
                f"num_workers must be an integer > num_inputs={num_inputs} (a spare to hedge "
                f"to), got {num_workers!r}"
            )
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(f"window must be an integer >= 1, got {window!r}")
        self.after_ms = _check_after(after_ms)
        self.percentile = _check_percentile(percentile)
        self.window = window
        super().__init__(num_inputs, num_workers)

    def _build_encoder(self) -> np.ndarray:
        return np.eye(self.num_workers, self.num_inputs)

    def _build_decoders(self, available: np.ndarray) -> np.ndarray:
        return np.eye(self.num_inputs, self.num_workers) * available[:, None, :]

    def _describe(self) -> dict[str, Any]:
        return {
            "num_inputs": self.num_inputs,
            "num_workers": self.num_workers,
            "after_ms": self.after_ms,
            "percentile": self.percentile,
        }


def due_inputs(
    answered: Sequence[bool],
    in_flight: Sequence[int],
    hedged: Sequence[bool],
    elapsed_ms: float,
    delay_ms: float | None,
) -> list[int]:
    """The inputs of a group to send to another worker now.

    An unanswered input with no request in flight (its primary, or its hedge, failed, or its
    primary was known down) is due at once; an unanswered input not hedged yet is due once
    ``elapsed_ms`` (since the primaries were sent) reaches ``delay_ms``.

    Parameters
    ----------
    answered : sequence of bool, (K,)
        Whether each input has its answer.
    in_flight : sequence of int, (K,)
        The requests of each input sent and not yet back.
    hedged : sequence of bool, (K,)
        Whether each input was sent to a spare already.
    elapsed_ms : float
        Milliseconds since the primaries were sent.
    delay_ms : float or None
        The hedge delay; None sends no hedge on time (the auto delay without enough answers).

    Returns
    -------
    list of int
        The inputs, in order.
    """
    if not len(answered) == len(in_flight) == len(hedged):
        raise ValueError(
            f"answered, in_flight and hedged must have one entry per input, got lengths "
            f"{len(answered)}, {len(in_flight)} and {len(hedged)}"
        )
    on_time = delay_ms is not None and elapsed_ms >= delay_ms
    return [
        k
        for k in range(len(answered))
        if not answered[k] and (in_flight[k] == 0 or (on_time and not hedged[k]))
    ]


def next_hedge_s(
    answered: Sequence[bool], hedged: Sequence[bool], elapsed_ms: float, delay_ms: float | None
) -> float | None:
    """Seconds until the next hedge falls due on time (0 when one is due), None when none will
    (no delay, or every input answered or hedged)."""
    if delay_ms is None or all(a or h for a, h in zip(answered, hedged, strict=True)):
        return None
    return max(delay_ms - elapsed_ms, 0.0) / 1000.0


def pick_spare(
    in_flight: Sequence[int], spares: Sequence[int], unavailable: Collection[int] = ()
) -> int | None:
    """The spare with the fewest requests in flight, the lowest index among equals.

    Parameters
    ----------
    in_flight : sequence of int, (N,)
        Requests in flight per worker.
    spares : sequence of int
        The workers to choose from.
    unavailable : collection of int
        Workers not to send to (down, or excluded).

    Returns
    -------
    int or None
        The worker, or None when every spare is unavailable.
    """
    choices = [w for w in spares if w not in unavailable]
    if not choices:
        return None
    return min(choices, key=lambda w: (in_flight[w], w))


class HedgeDelay:
    """The hedge delay: fixed, or a running percentile of recent worker latencies.

    Parameters
    ----------
    after_ms : float or "auto"
        A delay in milliseconds (> 0), or ``auto``: the ``percentile``-th percentile (numpy's
        linear interpolation) of the last ``window`` latencies :meth:`record` was given, once
        there are :attr:`min_samples` of them (None before: no hedge on time).
    percentile : float
        In (0, 100).
    window : int
        >= 1.
    """

    def __init__(
        self, after_ms: float | str = AUTO, percentile: float = 95.0, window: int = WINDOW
    ) -> None:
        self.after_ms = _check_after(after_ms)
        self.percentile = _check_percentile(percentile)
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(f"window must be an integer >= 1, got {window!r}")
        self.window = window
        #: Latencies the auto delay needs before it hedges: one in 100 / (100 - p) lies beyond
        #: the p-th percentile, so fewer cannot show the tail (at most the window).
        self.min_samples = min(window, math.ceil(100.0 / (100.0 - self.percentile) - 1e-9))
        self._latencies: deque[float] = deque(maxlen=window)
        self._lock = threading.Lock()

    @property
    def auto(self) -> bool:
        return self.after_ms == AUTO

    def record(self, latency_ms: float) -> None:
        """Add one answer's latency to the window (the oldest leaves when it is full)."""
        with self._lock:
            self._latencies.append(float(latency_ms))

    def current(self) -> float | None:
        """The delay now, in milliseconds (None: auto without enough latencies yet)."""
        if not self.auto:
            return float(self.after_ms)  # type: ignore[arg-type]
        with self._lock:
            if len(self._latencies) < self.min_samples:
                return None
            values = np.fromiter(self._latencies, dtype=np.float64, count=len(self._latencies))
        return float(np.percentile(values, self.percentile))


class Hedger:
    """One frontend's hedging state: the delay, the requests in flight per worker, the counts.

    Thread-safe: the groups in flight share it, and :meth:`finished` runs on Ray's callback
    thread.

    Parameters
    ----------
    scheme : Hedged
        K primaries (workers 0 to K-1), the spares K to N-1, and the delay's settings.
    """

    def __init__(self, scheme: Hedged) -> None:
        self.num_inputs, self.num_workers = scheme.num_inputs, scheme.num_workers
        self.spares = list(range(scheme.num_inputs, scheme.num_workers))
        self.delay = HedgeDelay(scheme.after_ms, scheme.percentile, scheme.window)
        self._in_flight = [0] * scheme.num_workers
        self._delays: list[float] = []  # the delay each group used (auto: when it had one)
        self._counts = dict.fromkeys(
            ("primary", "after_delay", "on_failure", "answers", "accepted", "groups", "blind"), 0
        )
        self._idle = threading.Condition()

    def group_delay(self) -> float | None:
        """The delay for a group starting now (recorded for :meth:`summary`)."""
        delay = self.delay.current()
        with self._idle:
            self._counts["groups"] += 1
            if delay is None:
                self._counts["blind"] += 1
            else:
                self._delays.append(delay)
        return delay

    def choose(self, unavailable: Collection[int]) -> int | None:
        """The spare for a hedge now (:func:`pick_spare` over the requests in flight)."""
        with self._idle:
            return pick_spare(self._in_flight, self.spares, unavailable)

    def least_busy(self, candidates: Sequence[int]) -> int:
        """The candidate worker with the fewest requests in flight (lowest index among equals)."""
        with self._idle:
            return min(candidates, key=lambda w: (self._in_flight[w], w))

    def sent(self, worker: int, kind: str) -> float:
        """Count a request to ``worker``: ``primary``, ``after_delay`` (a hedge on time) or
        ``on_failure`` (an input whose requests all failed); returns its send time."""
        with self._idle:
            self._in_flight[worker] += 1
            self._counts[kind] += 1
        return time.monotonic()

    def finished(self, worker: int, sent_at: float, ok: bool) -> None:
        """A request came back (an answer when ``ok``, else a failure): its latency joins the
        delay's window."""
        if ok:
            self.delay.record((time.monotonic() - sent_at) * 1000.0)
        with self._idle:
            self._in_flight[worker] -= 1
            self._counts["answers"] += ok
            if not any(self._in_flight):
                self._idle.notify_all()

    def accepted(self, count: int = 1) -> None:
        """Count answers taken (the first of their input); the other answers are ignored."""
        with self._idle:
            self._counts["accepted"] += count

    def in_flight(self) -> list[int]:
        """Requests in flight per worker."""
        with self._idle:
            return list(self._in_flight)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no request is in flight (the late duplicates back), at most ``timeout``
        seconds; whether none is."""
        with self._idle:
            return self._idle.wait_for(lambda: not any(self._in_flight), timeout)

    def summary(self) -> dict[str, Any]:
        """The counts so far.

        Returns
        -------
        dict
            ``hedge_delay`` (``fixed`` or ``auto``), ``hedge_percentile`` (auto's, else None),
            ``hedge_after_ms`` (the fixed delay, or the median of the auto delays the groups
            used; None when none had one), ``primary_requests``, ``hedges`` (every request
            beyond the primaries: ``hedges_after_delay`` + ``hedges_on_failure``),
            ``hedge_fraction`` (hedges / primary requests), ``late_answers`` (answers ignored:
            their input had one already; those back so far), ``groups`` and
            ``groups_without_delay`` (auto: started before the window held enough latencies).
        """
        with self._idle:
            counts, delays = dict(self._counts), list(self._delays)
        hedges = counts["after_delay"] + counts["on_failure"]
        after = None
        if not self.delay.auto:
            after = float(self.delay.after_ms)  # type: ignore[arg-type]
        elif delays:
            after = float(np.median(delays))
        return {
            "hedge_delay": "auto" if self.delay.auto else "fixed",
            "hedge_percentile": self.delay.percentile if self.delay.auto else None,
            "hedge_after_ms": after,
            "primary_requests": counts["primary"],
            "hedges": hedges,
            "hedge_fraction": hedges / counts["primary"] if counts["primary"] else 0.0,
            "hedges_after_delay": counts["after_delay"],
            "hedges_on_failure": counts["on_failure"],
            "late_answers": counts["answers"] - counts["accepted"],
            "groups": counts["groups"],
            "groups_without_delay": counts["blind"],
        }


def hedge_note(summary: dict[str, Any]) -> str:
    """One line of a :meth:`Hedger.summary` for the log: the hedges, their share of the primary
    requests, the delay."""
    after = summary["hedge_after_ms"]
    delay = "none yet" if after is None else f"{after:.1f} ms"
    if summary["hedge_delay"] == "auto":
        delay = f"auto p{summary['hedge_percentile']:g}, median {delay}"
    return (
        f"{summary['hedges']} hedges ({summary['hedges_after_delay']} after the delay, "
        f"{summary['hedges_on_failure']} on failures) for {summary['primary_requests']} primary "
        f"requests ({summary['hedge_fraction']:.1%}); delay {delay}; "
        f"{summary['late_answers']} late answers ignored"
    )
