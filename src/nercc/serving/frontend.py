"""The frontend: batches queries into groups of K, codes them over the workers, decodes.

One group's life: take up to K queries (a partial group leaves after ``max_wait_ms``; it is padded
by repeating its queries, as the evaluation pads), encode them with the scheme, send coded input
``n`` to worker ``n``, wait with ``ray.wait`` until the wait policy is met, decode the answers and
answer every query of the group.

When the wait ends:

- Coded schemes (every answer helps every input: NeRCC, BACC) stop at the policy's quorum, N - S
  answers, or at its deadline with at least one answer.
- Schemes that lose an input when its workers straggle (uncoded, replication) stop as soon as no
  input is lost: uncoded waits for all K, replication takes the first answer of each input.

A worker that fails (crashed, killed, restarting) counts as a straggler, and is not asked again
until it answers a probe. A scheme that can lose an input (uncoded, replication, ParM) sends a
failed worker's coded input to a live worker instead: at once when no answer or pending call
covers the input, and, once some worker has answered the group, when no answer covers it yet (the
failed row was the redundancy against a pending call that straggles: a second copy, ParM's parity
row), preferring workers that answered the group (they are not straggling). Workers are
interchangeable: each runs what the coded input's row asks (f, or ParM's parity model on its
parity row). A code sends its failed rows elsewhere only when no answer came at all. When every
worker failed, a row goes to its own worker again after a pause for Ray to restart it, for up to
``retry_s`` seconds; a query whose input cannot be estimated by then fails with
:class:`QueryFailed`. A query whose estimate is not finite (the model answered NaN or inf, or the
decoder overflowed from finite answers) fails with :class:`NonFiniteOutputs`. Every query is
answered exactly once, with an answer or with one of these errors.

Byzantine workers: a scheme that screens its answers (``scheme.screens``: RobustNeRCC,
RobustBACC) decodes each group with ``decode_each_flagged`` and reports the workers whose answers
it dropped (:attr:`Answer.flagged`). A :class:`~nercc.serving.screening.FlagTracker` counts them
per worker (:attr:`Frontend.flagged_by_worker`); a worker flagged in more than
``flag_fraction`` of its last ``flag_window`` answered groups is excluded
(:attr:`Frontend.exclusions`): it is treated like a dead worker (a straggler, not asked) for
``exclude_groups`` groups, then probed as a dead worker is, and asked again once the probe
answers, with a fresh window. At most (N - K) // 2 workers are excluded at once: more would say
that most answers beyond the K a decoder needs lie, which no screening decoder can outvote. An
excluded worker is a straggler: past S of them, a code decodes from every answer it asked for.

A code that stops at a deadline may decode from fewer answers than inputs (K): the estimates are
underdetermined. The frontend counts such groups (:attr:`Frontend.underdetermined_groups`, and
:attr:`Answer.underdetermined`) instead of letting the scheme warn once per group.

Hedged requests (:class:`~nercc.serving.hedging.Hedged`): input k goes to worker k alone (a
primary known down: to a spare at once); after the hedge delay each input still unanswered goes
once to the spare with the fewest requests in flight, and an input whose requests all failed goes
at once to a live worker, as above. The first answer of each input is taken; the duplicates are
counted (:meth:`Frontend.hedge_summary`), their answers ignored. The policy is
:mod:`nercc.serving.hedging`'s.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import ray

from nercc.coding import CodingScheme, FewAnswersWarning
from nercc.serving.hedging import Hedged, Hedger, due_inputs, hedge_note, next_hedge_s
from nercc.serving.screening import FlagTracker
from nercc.serving.workers import pack_input
from nercc.stragglers import WaitPolicy

__all__ = [
    "Answer",
    "Frontend",
    "GroupTrace",
    "NonFiniteOutputs",
    "QueryFailed",
]

log = logging.getLogger(__name__)

#: Held while a decode runs with the scheme's FewAnswersWarning silenced: the warning filters are
#: process-wide, so that two groups do not interleave their changes to them.
_SILENCE_LOCK = threading.Lock()

#: Seconds :meth:`Frontend.close` waits for a hedged scheme's duplicates still computing, so
#: that :meth:`Frontend.hedge_summary` counts their answers.
LATE_WAIT_S = 10.0


class QueryFailed(RuntimeError):
    """A query whose input could not be estimated (every worker that holds it failed)."""


class NonFiniteOutputs(QueryFailed):
    """A query whose decoded logits are not finite: the model answered NaN or inf, or the
    decoder overflowed from finite answers (the message says which)."""


@dataclass(frozen=True)
class Answer:
    """The answer to one query.

    ``logits`` (classes,) float32 and ``prediction`` their argmax; ``workers`` the coded inputs
    (by worker: n is worker n's) whose answers were decoded, ``failed`` the workers that failed
    (crashed, killed, or known down) for this group: a failed worker's input is decoded only
    when another worker computed it instead (uncoded, replication); ``group`` the group's number
    and ``position`` the query's place in it; ``underdetermined`` whether a code decoded it from
    fewer answers than inputs (K), after a deadline; ``flagged`` the workers whose answers a
    screening decoder dropped (their rows are in ``workers``: received, then dropped);
    ``excluded`` the workers not asked because they were excluded for lying.
    """

    logits: np.ndarray
    prediction: int
    scheme: str
    workers: tuple[int, ...]
    failed: tuple[int, ...]
    group: int
    position: int
    underdetermined: bool = False
    flagged: tuple[int, ...] = ()
    excluded: tuple[int, ...] = ()


@dataclass(frozen=True)
class GroupTrace:
    """What the frontend did with one group (kept when ``keep_traces`` is set, for checks).

    ``coded`` (N, C, H, W) the coded inputs sent, ``outputs`` (N, classes) the answers (zero rows
    where none was decoded), ``available`` (N,) the decoded answers, ``size`` the real queries,
    ``flagged`` (N,) the rows a screening decoder dropped (all False for other schemes),
    ``answered_by`` (N,) the worker whose answer each row holds (-1 where none).
    """

    group: int
    coded: np.ndarray
    outputs: np.ndarray
    available: np.ndarray
    size: int
    flagged: np.ndarray | None = None
    answered_by: np.ndarray | None = None


class Frontend:
    """Takes queries one at a time and answers each through coded groups of K.

    Parameters
    ----------
    workers : list of ray.actor.ActorHandle
        At least ``scheme.num_workers`` :class:`~nercc.serving.workers.Worker` actors; the scheme
        uses the first N (uncoded: K of them).
    scheme : CodingScheme
        The code; queries are images (C, H, W) in [0, 1].
    name : str
        The scheme's name in answers (``nercc``, ``bacc``, ``replication``, ``uncoded``).
    policy : WaitPolicy
        When a coded scheme stops waiting (quorum N - S, or a deadline in milliseconds).
    max_wait_ms : float
        How long the first query of a partial group waits for the rest.
    kill_every : int, optional
        Fault injection: once every ``kill_every``-th group is sent, kill one of its workers
        (drawn from ``seed``) while it computes; Ray restarts it. :attr:`killed` lists
        ``(group, worker)``.
    seed : int
        Seeds the choice of killed workers.
    retry_s : float
        How long the inputs of failed workers are sent again (a restart takes seconds) before
        the queries that need them fail.
    max_groups : int
        Groups in flight at once (each waits on its own thread).
    keep_traces : bool
        Keep a :class:`GroupTrace` per group in :attr:`traces`.
    image_shape : (channels, height, width), optional
        What every query must be; another shape is refused by :meth:`submit` (without it, the
        first query's shape is taken).
    flag_fraction : float
        In [0, 1): a screening scheme's worker flagged in more than this fraction of its last
        ``flag_window`` answered groups is excluded.
    flag_window : int
        >= 1, the answered groups the flag count looks back over.
    exclude_groups : int
        >= 1, the groups an excluded worker is not asked before it is probed again.
    first_group : int
        >= 0, the number of the first group; the next ones follow. A worker seeds its delay
        by (seed, worker, group), so frontends over the same workers that should draw other
        delays (the trials of a load test) start from groups far apart. ``kill_every`` counts
        groups from this one.
    row_models : sequence of int, optional
        N entries: the worker model that runs each coded input (0: the classifier; m: the
        workers' m-th extra model, see :class:`~nercc.serving.workers.Worker`), wherever the
        input is sent. Required when the scheme has ``parity_workers`` (ParM: the parity model
        on row K), which must run a model other than the classifier; None: the classifier
        everywhere.
    arranger : nercc.coding.order.Arranger, optional
        Orders (and groups) the queries before encoding, for a scheme that mixes inputs
        (``mixes_inputs``); its time is in every query's latency. None: as they came.
    buffer : int
        >= 1, the groups' worth of queries (``buffer`` x K) the batcher takes before arranging
        them into groups (the first waits at most ``max_wait_ms`` for the rest): more lets a
        grouping put similar queries together, at the price of waiting for them. A scheme that
        is not arranged takes K at a time.
    embedding : callable, optional
        What the arranger reads of the queries: ``embedding(images (B, C, H, W) float32 tensor)``
        (the proxy's logits); None: the flattened pixels.
    """

    def __init__(
        self,
        workers: list[Any],
        scheme: CodingScheme,
        name: str,
        policy: WaitPolicy,
        max_wait_ms: float = 5.0,
        kill_every: int | None = None,
        seed: int = 0,
        retry_s: float = 60.0,
        max_groups: int = 256,
        keep_traces: bool = False,
        image_shape: tuple[int, ...] | None = None,
        flag_fraction: float = 0.5,
        flag_window: int = 20,
        exclude_groups: int = 50,
        first_group: int = 0,
        row_models: Any = None,
        arranger: Any = None,
        buffer: int = 1,
        embedding: Any = None,
    ) -> None:
        if len(workers) < scheme.num_workers:
            raise ValueError(
                f"workers must hold at least N={scheme.num_workers} actors for {name}, "
                f"got {len(workers)}"
            )
        if kill_every is not None and (isinstance(kill_every, bool) or kill_every < 1):
            raise ValueError(f"kill_every must be null or an integer >= 1, got {kill_every!r}")
        policy.check(scheme.num_workers)
        if (
            isinstance(exclude_groups, bool)
            or not isinstance(exclude_groups, int)
            or (exclude_groups < 1)
        ):
            raise ValueError(f"exclude_groups must be an integer >= 1, got {exclude_groups!r}")
        if (
            isinstance(first_group, bool)
            or not isinstance(first_group, int | np.integer)
            or first_group < 0
        ):
            raise ValueError(f"first_group must be an integer >= 0, got {first_group!r}")
        self.row_models = _check_row_models(row_models, scheme, name)
        if isinstance(buffer, bool) or not isinstance(buffer, int | np.integer) or buffer < 1:
            raise ValueError(f"buffer must be an integer >= 1, got {buffer!r}")
        if arranger is not None and arranger.num_inputs != scheme.num_inputs:
            raise ValueError(
                f"arranger must group K={scheme.num_inputs} queries, got "
                f"num_inputs={arranger.num_inputs}"
            )
        self.buffer = int(buffer)
        # only a scheme that mixes inputs is arranged (uncoded, replication: as they came)
        mixes = arranger is not None and not arranger.identity and scheme.mixes_inputs
        self.arranger = arranger if mixes else None
        self.embedding = embedding
        self.workers = list(workers[: scheme.num_workers])
        self.scheme = scheme
        self.name = name
        self.policy = policy
        self.max_wait = max_wait_ms / 1000.0
        self.kill_every = kill_every
        self.retry_s = retry_s
        # a scheme that can lose an input (uncoded, replication) waits until every input has an
        # answer, instead of for a quorum
        self.every_input = scheme.loses_inputs
        self._health = _Health(self.workers)
        # excluding more than (N - K) // 2 would say that most answers beyond K lie: more than
        # any screening decoder can outvote, so more likely a screen too strict than liars
        most = (scheme.num_workers - scheme.num_inputs) // 2
        self._tracker = FlagTracker(scheme.num_workers, flag_fraction, flag_window, most)
        self.exclude_groups = exclude_groups
        self._screen_lock = threading.Lock()  # a decision and its hold, one group at a time
        self.traces: list[GroupTrace] = []
        #: Groups decoded from fewer answers than inputs (a code past its deadline).
        self.underdetermined_groups = 0
        self._count_lock = threading.Lock()
        self.killed: list[tuple[int, int]] = []  # (group, worker) of each injected fault
        self._keep_traces = keep_traces
        self._kill_rng = np.random.default_rng([seed, 0x6B111])
        self._hedger = Hedger(scheme) if isinstance(scheme, Hedged) else None
        self._queue: queue.SimpleQueue[tuple[np.ndarray, Future[Answer]] | None] = (
            queue.SimpleQueue()
        )
        self.first_group = int(first_group)
        self._groups = itertools.count(self.first_group)
        self._pool = ThreadPoolExecutor(max_groups, thread_name_prefix=f"{name}-group")
        self._closed = False
        self._lock = threading.Lock()  # submit and close: nothing queued behind the sentinel
        self.image_shape = None if image_shape is None else tuple(image_shape)
        self._batcher = threading.Thread(target=self._batch, name=f"{name}-batcher", daemon=True)
        self._batcher.start()

    # -- public -------------------------------------------------------------------------------
    def submit(self, image: Any) -> Future[Answer]:
        """Queue one image (C, H, W) in [0, 1]; the future gives its :class:`Answer` (or raises
        :class:`QueryFailed`). An image of another shape than :attr:`image_shape` raises
        ``ValueError`` here, so that it cannot fail the group it would join."""
        image = np.asarray(image, dtype=np.float32)
        future: Future[Answer] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the frontend is closed")
            if self.image_shape is None:
                self.image_shape = image.shape
            if image.shape != self.image_shape:
                raise ValueError(f"image must have shape {self.image_shape}, got {image.shape}")
            self._queue.put((image, future))
        return future

    def predict(self, image: Any, timeout: float | None = None) -> Answer:
        """Submit one image and wait for its answer."""
        return self.submit(image).result(timeout)

    @property
    def flagged_by_worker(self) -> list[int]:
        """Per worker, the groups in which a screening decoder dropped its answer (warm-up
        groups included; all 0 for a scheme that does not screen)."""
        return list(self._tracker.flagged_by_worker)

    @property
    def exclusions(self) -> list[tuple[int, int]]:
        """``(group, worker)`` of each exclusion for lying, in order (a worker probed and
        excluded again appears again)."""
        return list(self._tracker.exclusions)

    def hedge_summary(self) -> dict[str, Any]:
        """A hedged scheme's counts so far (:meth:`nercc.serving.hedging.Hedger.summary`:
        ``hedges``, ``hedge_fraction``, ``hedge_after_ms``, ...; warm-up groups included); empty
        for other schemes. After :meth:`close` the duplicates' late answers are counted too
        (those back within ``LATE_WAIT_S``)."""
        return {} if self._hedger is None else self._hedger.summary()

    def workers_excluded(self) -> set[int]:
        """The workers excluded for lying now (not asked until their probe)."""
        return self._health.held()

    def workers_down(self) -> set[int]:
        """The workers known to be down now: a call to each failed and no probe (``ready``) has
        answered since. Asks without waiting; a worker that died unasked is not known yet."""
        return self._health.down()

    def close(self) -> None:
        """Answer what is queued, then stop the batcher and wait for the groups in flight (and
        for a hedged scheme's duplicates still computing, at most ``LATE_WAIT_S``)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        self._batcher.join()
        self._pool.shutdown(wait=True)
        if self._hedger is None:
            return
        if not self._hedger.wait_idle(LATE_WAIT_S):
            log.info("%s: duplicates still computing after %g s: not counted", self.name,
                     LATE_WAIT_S)  # fmt: skip
        log.info("%s: %s", self.name, hedge_note(self._hedger.summary()))

    def __enter__(self) -> Frontend:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- batching -----------------------------------------------------------------------------
    def _batch(self) -> None:
        k = self.scheme.num_inputs
        while True:
            item = self._queue.get()
            if item is None:
                return
            items = [item]
            deadline = time.monotonic() + self.max_wait
            closing = False
            while len(items) < k * (self.buffer if self.arranger is not None else 1):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    item = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
                if item is None:  # close() was called: send this group, then stop
                    closing = True
                    break
                items.append(item)
            for members in self._arrange(items):
                self._pool.submit(self._answer_group, next(self._groups), members)
            if closing:
                return

    def _arrange(self, items: list[tuple[np.ndarray, Future[Answer]]]) -> list[list[Any]]:
        """The groups of K (the last one possibly partial) of a buffer of queries: the
        arranger's groups, each in curve order, or consecutive queries without one."""
        k = self.scheme.num_inputs
        if self.arranger is None or len(items) == 1:
            return [items[i : i + k] for i in range(0, len(items), k)]
        images = np.stack([image for image, _ in items])
        if self.embedding is None:
            features = images.reshape(len(items), -1)
        else:
            import torch

            with torch.inference_mode():
                features = self.embedding(torch.from_numpy(images)).numpy()
        take, real = self.arranger(features.reshape(len(items), -1))
        groups = []
        for slots in np.arange(take.size).reshape(-1, k):
            members = [items[int(take[j])] for j in slots if real[j]]
            groups.append(members)
        return groups

    def _answer_group(self, group: int, items: list[tuple[np.ndarray, Future[Answer]]]) -> None:
        futures = [future for _, future in items]
        try:
            self._serve_group(group, [image for image, _ in items], futures)
        except BaseException as error:  # never leave a query unanswered
            log.exception("group %d of %s failed", group, self.name)
            for future in futures:
                if not future.done():
                    future.set_exception(QueryFailed(f"group {group}: {error}"))

    # -- one group ----------------------------------------------------------------------------
    def _serve_group(self, group: int, images: list[np.ndarray], futures: list[Future]) -> None:
        k, n = self.scheme.num_inputs, self.scheme.num_workers
        size = len(images)
        batch = np.stack([images[i % size] for i in range(k)])  # pad by repeating, as eval does
        coded = np.ascontiguousarray(self.scheme.encode(batch), dtype=np.float32)
        victim = None
        sent = group - self.first_group  # the groups sent before this one
        if self.kill_every is not None and sent % self.kill_every == self.kill_every - 1:
            victim = int(self._kill_rng.integers(n))
        outputs, available, failed, answered_by, excluded = self._gather(group, coded, victim)
        lost = self.scheme.lost(available) if available.any() else np.ones(k, dtype=bool)
        few = bool(available.any() and self.scheme.underdetermined(available))
        dropped = np.zeros(n, dtype=bool)
        if available.any():
            estimates, dropped = self._decode(outputs, available, few)
            finite = np.isfinite(estimates).all(axis=1)
        workers = tuple(int(i) for i in np.flatnonzero(available))
        flagged = tuple(sorted(int(answered_by[row]) for row in np.flatnonzero(dropped)))
        if self.scheme.screens and available.any():
            self._screen(group, [int(answered_by[row]) for row in workers], flagged)
        if few:
            with self._count_lock:
                self.underdetermined_groups += 1
        if self._keep_traces:
            self.traces.append(
                GroupTrace(group, coded, outputs, available, size, dropped, answered_by)
            )
        for position, future in enumerate(futures):
            if lost[position]:
                future.set_exception(
                    QueryFailed(
                        f"group {group}: input {position} lost, no worker computed it within "
                        f"{self.retry_s:g} s (failed: {sorted(failed)})"
                    )
                )
                continue
            if not finite[position]:
                future.set_exception(NonFiniteOutputs(non_finite_reason(group, outputs, workers)))
                continue
            logits = estimates[position]
            future.set_result(
                Answer(
                    logits=logits,
                    prediction=int(np.argmax(logits)),
                    scheme=self.name,
                    workers=workers,
                    failed=tuple(sorted(failed)),
                    group=group,
                    position=position,
                    underdetermined=few,
                    flagged=flagged,
                    excluded=excluded,
                )
            )

    def _decode(
        self, outputs: np.ndarray, available: np.ndarray, few: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """The scheme's estimates (K, classes) and the rows it dropped (N,); a group decoded from
        fewer answers than inputs is counted by the caller, so the scheme's warning is silenced
        for it."""
        if not few:
            return self._decode_rows(outputs, available)
        with _SILENCE_LOCK, warnings.catch_warnings():
            warnings.simplefilter("ignore", FewAnswersWarning)
            return self._decode_rows(outputs, available)

    def _decode_rows(
        self, outputs: np.ndarray, available: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        if not self.scheme.screens:
            estimates = np.asarray(self.scheme.decode(outputs, available))
            return estimates, np.zeros(available.shape, dtype=bool)
        estimates, _, flagged = self.scheme.decode_each_flagged(outputs[None], available[None])
        return np.asarray(estimates)[0], np.asarray(flagged, dtype=bool)[0]

    def _screen(self, group: int, answered: list[int], flagged: tuple[int, ...]) -> None:
        """Count the group's flags per worker; hold the workers they exclude for
        ``exclude_groups`` groups (then probed, as a dead worker is)."""
        with self._screen_lock:
            newly = self._tracker.record(group, answered, flagged, self._health.held())
            for worker in newly:
                self._health.hold(worker, group + self.exclude_groups)
        for worker in newly:
            log.warning(
                "%s: worker %d excluded after group %d: its answers were dropped in more than "
                "%g of its last %d groups; probed again from group %d",
                self.name, worker, group, self._tracker.fraction, self._tracker.window,
                group + self.exclude_groups,
            )  # fmt: skip

    def _call(self, worker: int, row: int, group: int, coded: np.ndarray, attempt: int) -> Any:
        """Send coded input ``row`` of ``group`` to ``worker`` (its own row on a first try), to
        be run by the row's model."""
        message = pack_input(group, attempt, coded[row : row + 1], self.row_models[row])
        return self.workers[worker].compute.remote(message)

    def _gather(
        self, group: int, coded: np.ndarray, victim: int | None = None
    ) -> tuple[np.ndarray, np.ndarray, set[int], np.ndarray, tuple[int, ...]]:
        """Send the coded inputs and wait until the policy is met; kill worker ``victim`` (fault
        injection) once its input is sent: the frontend finds out as Ray tells it.

        Returns the outputs (N, classes) with zero rows where none was taken, the mask of the
        rows taken, the workers that failed for this group (or were known to be down and not
        asked), the worker whose answer each row holds (N,) (-1 where none), and the workers
        excluded for lying (not asked; their rows are stragglers, as a failed worker's).
        """
        if self._hedger is not None:
            return self._gather_hedged(group, coded, victim)
        n = self.scheme.num_workers
        answers: dict[int, np.ndarray] = {}
        available = np.zeros(n, dtype=bool)
        answered_by = np.full(n, -1, dtype=np.int64)
        down = self._health.down(group)
        excluded = tuple(sorted(down & self._health.held()))
        failed = set(down)  # workers that failed (or are down): their rows are stragglers
        unsent = set(down)  # rows of failed workers not yet sent elsewhere
        quorum = self.policy.quorum(n)
        start = time.monotonic()
        deadline = None if self.policy.deadline is None else start + self.policy.deadline / 1e3
        give_up = start + self.retry_s
        pending = {
            self._call(row, row, group, coded, 0): (row, row) for row in range(n) if row not in down
        }
        if victim is not None:
            ray.kill(self.workers[victim], no_restart=False)
            self.killed.append((group, victim))
        attempt = 0
        while not self._satisfied(available, quorum, deadline):
            rows = self._to_resend(available, pending, unsent)
            if rows:
                if time.monotonic() >= give_up:
                    break
                attempt += 1
                busy = failed | self._health.down()
                # workers that answered this group first: they are not the ones straggling
                done = set(answered_by[available].tolist())
                live = sorted((w for w in range(n) if w not in busy), key=lambda w: w not in done)
                if not live:  # every worker failed: give Ray a moment to restart them
                    time.sleep(min(0.02 * 2**attempt, 1.0))
                    live = sorted(rows)
                for i, row in enumerate(rows):
                    worker = live[i % len(live)]
                    pending[self._call(worker, row, group, coded, attempt)] = (row, worker)
                    unsent.discard(row)
                continue
            if not pending:
                break
            if self.every_input or not available.any():
                need, timeout = 1, None  # the first answer, however long it takes
            else:
                need = max(quorum - int(available.sum()), 1)
                timeout = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            ready, _ = ray.wait(list(pending), num_returns=min(need, len(pending)), timeout=timeout)
            for ref, result in zip(ready, _results(ready), strict=True):
                row, worker = pending.pop(ref)
                if result is None:
                    failed.add(worker)
                    unsent.add(row)
                    self._health.mark_down(worker)
                elif not available[row]:
                    answers[row] = np.frombuffer(result, dtype=np.float32)
                    available[row] = True
                    answered_by[row] = worker
        classes = next(iter(answers.values())).shape[0] if answers else 1
        outputs = np.zeros((n, classes), dtype=np.float32)
        for row, logits in answers.items():
            outputs[row] = logits
        return outputs, available, failed - set(excluded), answered_by, excluded

    def _gather_hedged(
        self, group: int, coded: np.ndarray, victim: int | None = None
    ) -> tuple[np.ndarray, np.ndarray, set[int], np.ndarray, tuple[int, ...]]:
        """:meth:`_gather` for hedged requests: input k to primary k; after the hedge delay each
        unanswered input once to a spare; an input with nothing in flight (its requests failed,
        or its primary is down) at once to a spare, or any live worker, or, when every worker
        failed, its primary again after a pause; until every input has an answer or
        ``retry_s`` has passed with an input that no request covers."""
        hedger = self._hedger
        assert hedger is not None
        k, n = self.scheme.num_inputs, self.scheme.num_workers
        answers: dict[int, np.ndarray] = {}
        available = np.zeros(n, dtype=bool)
        answered_by = np.full(n, -1, dtype=np.int64)
        down = self._health.down(group)
        excluded = tuple(sorted(down & self._health.held()))
        failed = set(down)
        in_flight, hedged = [0] * k, [False] * k
        pending: dict[Any, tuple[int, int]] = {}
        extra = itertools.count(1)  # each duplicate its own delay stream; primaries draw 0's

        def send(worker: int, row: int, kind: str) -> None:
            sent_at = hedger.sent(worker, kind)
            attempt = 0 if kind == "primary" else next(extra)
            ref = self._call(worker, row, group, coded, attempt)
            ref.future().add_done_callback(
                lambda f, w=worker, t=sent_at: hedger.finished(w, t, f.exception() is None)
            )
            pending[ref] = (row, worker)
            in_flight[row] += 1

        start = time.monotonic()
        give_up = start + self.retry_s
        delay = hedger.group_delay()
        for row in range(k):
            if row not in down:  # a primary known down: its input is hedged at once below
                send(row, row, "primary")
        if victim is not None:
            ray.kill(self.workers[victim], no_restart=False)
            self.killed.append((group, victim))
        pause = 0
        while not available[:k].all():
            elapsed = (time.monotonic() - start) * 1000.0
            due = due_inputs(available[:k], in_flight, hedged, elapsed, delay)
            if any(in_flight[row] == 0 for row in due) and time.monotonic() >= give_up:
                break
            for row in due:
                busy = failed | self._health.down()
                worker = hedger.choose(busy)
                if in_flight[row]:  # on time: to a spare, or not at all when none is up
                    hedged[row] = True
                    if worker is not None:
                        send(worker, row, "after_delay")
                    continue
                if worker is None:
                    live = [w for w in range(n) if w not in busy]
                    if live:
                        worker = hedger.least_busy(live)
                    else:  # every worker failed: give Ray a moment to restart them
                        pause += 1
                        time.sleep(min(0.02 * 2**pause, 1.0))
                        worker = row
                hedged[row] = True
                send(worker, row, "on_failure")
            if not pending:
                break
            elapsed = (time.monotonic() - start) * 1000.0
            timeout = next_hedge_s(available[:k], hedged, elapsed, delay)
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=timeout)
            for ref, result in zip(ready, _results(ready), strict=True):
                row, worker = pending.pop(ref)
                in_flight[row] -= 1
                if result is None:
                    failed.add(worker)
                    self._health.mark_down(worker)
                elif not available[row]:  # the first answer wins; a later one is ignored
                    answers[row] = np.frombuffer(result, dtype=np.float32)
                    available[row] = True
                    answered_by[row] = worker
                    hedger.accepted()
        classes = next(iter(answers.values())).shape[0] if answers else 1
        outputs = np.zeros((n, classes), dtype=np.float32)
        for row, logits in answers.items():
            outputs[row] = logits
        return outputs, available, failed - set(excluded), answered_by, excluded

    def _to_resend(self, available: np.ndarray, pending: dict, unsent: set[int]) -> list[int]:
        """The failed rows to send to another worker now.

        For a scheme that loses inputs: at once, those that bring back an input that no answer
        or pending call covers; and once some worker has answered the group, those that bring
        back an input no answer covers yet (a pending call may straggle: the failed row is the
        redundancy the scheme was given against that, ParM's parity row or a second copy), sent
        then to a worker that answered. For a code: all of them once nothing is pending and
        nothing answered.
        """
        if not unsent:
            return []
        if not self.every_input:
            return sorted(unsent) if not pending and not available.any() else []
        covered = available.copy()
        for row, _ in pending.values():
            covered[row] = True
        rows = self._restoring(covered, sorted(unsent))
        if available.any():
            answered = available.copy()
            answered[rows] = True
            rows += self._restoring(answered, sorted(unsent - set(rows)))
        return rows

    def _restoring(self, covered: np.ndarray, candidates: list[int]) -> list[int]:
        """The rows of ``candidates`` that, added one at a time to ``covered`` (which this
        updates), each bring back an input that ``covered`` loses; the first one when nothing is
        covered."""
        rows = []
        for row in candidates:
            if not covered.any():
                covered[row] = True
                rows.append(row)
                continue
            lost = int(self.scheme.lost(covered).sum())
            if lost == 0:
                break
            covered[row] = True
            if int(self.scheme.lost(covered).sum()) < lost:
                rows.append(row)
            else:
                covered[row] = False
        return rows

    def _satisfied(self, available: np.ndarray, quorum: int, deadline: float | None) -> bool:
        if not available.any():
            return False
        if self.every_input:
            return not self.scheme.lost(available).any()
        if int(available.sum()) >= quorum:
            return True
        return deadline is not None and time.monotonic() >= deadline


def _check_row_models(row_models: Any, scheme: CodingScheme, name: str) -> tuple[int, ...]:
    """The model index of each of the scheme's N rows (all 0 for None), checked: N integers >= 0,
    not 0 on a parity worker's row."""
    n = scheme.num_workers
    parity = [int(w) for w in scheme.parity_workers]
    if row_models is None:
        if parity:
            raise ValueError(
                f"row_models must give the model of each of the N={n} rows: {name} runs a "
                f"model other than the classifier on its workers {parity}, got None"
            )
        return (0,) * n
    models = tuple(row_models)
    if len(models) != n or not all(
        isinstance(m, int | np.integer) and not isinstance(m, bool) and m >= 0 for m in models
    ):
        raise ValueError(f"row_models must be N={n} integers >= 0, got {list(models)}")
    if any(models[w] == 0 for w in parity):
        raise ValueError(
            f"row_models must name another model than the classifier (0) on {name}'s parity "
            f"workers {parity}, got {list(models)}"
        )
    return tuple(int(m) for m in models)


def non_finite_reason(group: int, outputs: np.ndarray, workers: tuple[int, ...]) -> str:
    """Why a query's estimate is not finite: some answers were not, or the decoder overflowed
    although every answer was finite."""
    bad = [w for w in workers if not np.isfinite(outputs[w]).all()]
    if bad:
        return (
            f"group {group}: the model returned non-finite outputs (NaN or inf): "
            f"workers {bad} of {list(workers)} answered non-finite logits"
        )
    return (
        f"group {group}: the decoded estimates are not finite (overflow) although every answer "
        f"was: workers {list(workers)}"
    )


def _results(refs: list[Any]) -> list[Any]:
    """The values of ready refs in one ``ray.get``; None for a ref whose worker failed."""
    try:
        return ray.get(refs)
    except ray.exceptions.RayError:
        results = []
        for ref in refs:
            try:
                results.append(ray.get(ref))
            except ray.exceptions.RayError:
                results.append(None)
        return results


class _Health:
    """The workers known to be down: a call to one failed, and no probe has answered since; or
    one excluded for lying, held until a group number, then probed the same way.

    A group does not send to them (their rows count as failed at once, and a scheme that would
    lose an input sends it to a live worker); each check of :meth:`down` looks, without waiting,
    whether a worker's probe (``ready``) has answered, and probes again after a failure.
    """

    def __init__(self, workers: list[Any]) -> None:
        self._workers = workers
        self._probes: dict[int, Any] = {}
        self._held: dict[int, int] = {}  # worker: the group from which it is probed
        self._group = -1  # the latest group that asked
        self._lock = threading.Lock()

    def hold(self, worker: int, until_group: int) -> None:
        """Take ``worker`` out of service until group ``until_group`` asks; then probe it."""
        with self._lock:
            self._held[worker] = until_group

    def held(self) -> set[int]:
        """The workers held out of service for lying (their probe not yet sent)."""
        with self._lock:
            return set(self._held)

    def mark_down(self, worker: int) -> None:
        with self._lock:
            if worker not in self._probes:
                self._probes[worker] = self._workers[worker].ready.remote()

    def down(self, group: int | None = None) -> set[int]:
        """The workers down (failed, or held) as ``group`` is sent (None: now); a held worker
        whose hold is over is probed from here on."""
        with self._lock:
            if group is not None:
                self._group = max(self._group, group)
            for worker, until in list(self._held.items()):
                if self._group >= until:
                    del self._held[worker]
                    if worker not in self._probes:
                        self._probes[worker] = self._workers[worker].ready.remote()
            if not self._probes:
                return set(self._held)
            by_ref = {ref: worker for worker, ref in self._probes.items()}
            ready, _ = ray.wait(list(by_ref), num_returns=len(by_ref), timeout=0)
            for ref, result in zip(ready, _results(ready), strict=True):
                worker = by_ref[ref]
                if result is None:
                    self._probes[worker] = self._workers[worker].ready.remote()
                else:
                    del self._probes[worker]
            return set(self._probes) | set(self._held)
