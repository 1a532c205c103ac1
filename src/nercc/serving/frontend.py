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

A worker that fails (crashed, killed, restarting) counts as a straggler. When the answers cannot
meet the policy any more and an input would be lost (uncoded, replication; a coded scheme with no
answer at all), the failed workers get their coded input again, with a growing pause for Ray to
restart them, for up to ``retry_s`` seconds; a query whose input cannot be estimated by then
fails with :class:`QueryFailed`. Every query is answered exactly once, with an answer or with
that error.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import ray

from nercc.coding import CodingScheme
from nercc.stragglers import WaitPolicy

__all__ = ["Answer", "Frontend", "GroupTrace", "QueryFailed", "waits_for_every_input"]

log = logging.getLogger(__name__)


class QueryFailed(RuntimeError):
    """A query whose input could not be estimated (every worker that holds it failed)."""


@dataclass(frozen=True)
class Answer:
    """The answer to one query.

    ``logits`` (classes,) float32 and ``prediction`` their argmax; ``workers`` the workers whose
    answers were decoded, ``failed`` those that failed (crashed or killed) for this group;
    ``group`` the group's number and ``position`` the query's place in it.
    """

    logits: np.ndarray
    prediction: int
    scheme: str
    workers: tuple[int, ...]
    failed: tuple[int, ...]
    group: int
    position: int


@dataclass(frozen=True)
class GroupTrace:
    """What the frontend did with one group (kept when ``keep_traces`` is set, for checks).

    ``coded`` (N, C, H, W) the coded inputs sent, ``outputs`` (N, classes) the answers (zero rows
    where none was decoded), ``available`` (N,) the decoded answers, ``size`` the real queries.
    """

    group: int
    coded: np.ndarray
    outputs: np.ndarray
    available: np.ndarray
    size: int


def waits_for_every_input(scheme: CodingScheme) -> bool:
    """Whether the scheme loses an input when only one worker answers (uncoded, replication):
    such a scheme must wait until every input has an answer, instead of for a quorum."""
    one = np.zeros(scheme.num_workers, dtype=bool)
    one[0] = True
    return bool(scheme.lost(one).any())


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
        Fault injection: as every ``kill_every``-th group is sent, kill one of its workers
        (drawn from ``seed``); Ray restarts it. :attr:`killed` lists ``(group, worker)``.
    seed : int
        Seeds the choice of killed workers.
    retry_s : float
        How long the inputs of failed workers are sent again (a restart takes seconds) before
        the queries that need them fail.
    max_groups : int
        Groups in flight at once (each waits on its own thread).
    keep_traces : bool
        Keep a :class:`GroupTrace` per group in :attr:`traces`.
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
    ) -> None:
        if len(workers) < scheme.num_workers:
            raise ValueError(
                f"workers must hold at least N={scheme.num_workers} actors for {name}, "
                f"got {len(workers)}"
            )
        if kill_every is not None and (isinstance(kill_every, bool) or kill_every < 1):
            raise ValueError(f"kill_every must be null or an integer >= 1, got {kill_every!r}")
        policy.check(scheme.num_workers)
        self.workers = list(workers[: scheme.num_workers])
        self.scheme = scheme
        self.name = name
        self.policy = policy
        self.max_wait = max_wait_ms / 1000.0
        self.kill_every = kill_every
        self.retry_s = retry_s
        self.every_input = waits_for_every_input(scheme)
        self.traces: list[GroupTrace] = []
        self.killed: list[tuple[int, int]] = []  # (group, worker) of each injected fault
        self._keep_traces = keep_traces
        self._kill_rng = np.random.default_rng([seed, 0x6B111])
        self._queue: queue.SimpleQueue[tuple[np.ndarray, Future[Answer]] | None] = (
            queue.SimpleQueue()
        )
        self._groups = itertools.count()
        self._pool = ThreadPoolExecutor(max_groups, thread_name_prefix=f"{name}-group")
        self._closed = False
        self._batcher = threading.Thread(target=self._batch, name=f"{name}-batcher", daemon=True)
        self._batcher.start()

    # -- public -------------------------------------------------------------------------------
    def submit(self, image: Any) -> Future[Answer]:
        """Queue one image (C, H, W) in [0, 1]; the future gives its :class:`Answer` (or raises
        :class:`QueryFailed`)."""
        if self._closed:
            raise RuntimeError("the frontend is closed")
        future: Future[Answer] = Future()
        self._queue.put((np.asarray(image, dtype=np.float32), future))
        return future

    def predict(self, image: Any, timeout: float | None = None) -> Answer:
        """Submit one image and wait for its answer."""
        return self.submit(image).result(timeout)

    def close(self) -> None:
        """Answer what is queued, then stop the batcher and wait for the groups in flight."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._batcher.join()
        self._pool.shutdown(wait=True)

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
            while len(items) < k:
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
            self._pool.submit(self._answer_group, next(self._groups), items)
            if closing:
                return

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
        if self.kill_every is not None and group % self.kill_every == self.kill_every - 1:
            # The fault lands while this group is in flight: its victim never answers it.
            victim = int(self._kill_rng.integers(n))
            ray.kill(self.workers[victim], no_restart=False)
            self.killed.append((group, victim))
        calls = {self._send(worker, group, coded): worker for worker in range(n)}
        outputs, available, failed = self._gather(group, coded, calls)
        lost = self.scheme.lost(available) if available.any() else np.ones(k, dtype=bool)
        if available.any():
            estimates = self.scheme.decode(outputs, available)
        workers = tuple(int(i) for i in np.flatnonzero(available))
        if self._keep_traces:
            self.traces.append(GroupTrace(group, coded, outputs, available, size))
        for position, future in enumerate(futures):
            if lost[position]:
                future.set_exception(
                    QueryFailed(
                        f"group {group}: input {position} lost, its workers {sorted(failed)} "
                        f"failed for {self.retry_s:g} s"
                    )
                )
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
                )
            )

    def _send(self, worker: int, group: int, coded: np.ndarray) -> Any:
        row = coded[worker : worker + 1]
        return self.workers[worker].compute.remote(group, row.tobytes(), row.shape)

    def _gather(
        self, group: int, coded: np.ndarray, calls: dict[Any, int]
    ) -> tuple[np.ndarray, np.ndarray, set[int]]:
        """Wait for answers until the policy is met; return the outputs (N, classes) with zero
        rows where none was taken, the mask of answers taken, and the workers that failed."""
        n = self.scheme.num_workers
        answers: dict[int, np.ndarray] = {}
        available = np.zeros(n, dtype=bool)
        failed: set[int] = set()
        quorum = self.policy.quorum(n)
        deadline = None
        if self.policy.deadline is not None:
            deadline = time.monotonic() + self.policy.deadline / 1000.0
        attempts = 0
        give_up = time.monotonic() + self.retry_s
        pending = dict(calls)
        while True:
            if self._satisfied(available, quorum, deadline):
                break
            if not pending:
                if not failed or time.monotonic() >= give_up or self._decodable(available):
                    break
                # An input would be lost: send the failed workers' inputs again once Ray has had
                # a moment to restart them.
                time.sleep(min(0.02 * 2**attempts, 1.0, max(give_up - time.monotonic(), 0.0)))
                attempts += 1
                pending = {self._send(worker, group, coded): worker for worker in sorted(failed)}
                failed = set()
                continue
            need = n if self.every_input else max(quorum - int(available.sum()), 1)
            timeout = None
            if deadline is not None and not self.every_input and available.any():
                timeout = max(deadline - time.monotonic(), 0.0)
            ready, _ = ray.wait(
                list(pending),
                num_returns=min(need if not self.every_input else 1, len(pending)),
                timeout=timeout,
            )
            for ref, result in zip(ready, _results(ready), strict=True):
                worker = pending.pop(ref)
                if result is None:
                    failed.add(worker)
                    continue
                answers[worker] = np.frombuffer(result[1], dtype=np.float32)
                available[worker] = True
            if not ready and timeout is not None:
                break  # the deadline passed with at least one answer
        classes = next(iter(answers.values())).shape[0] if answers else 1
        outputs = np.zeros((n, classes), dtype=np.float32)
        for worker, logits in answers.items():
            outputs[worker] = logits
        return outputs, available, failed

    def _satisfied(self, available: np.ndarray, quorum: int, deadline: float | None) -> bool:
        if not available.any():
            return False
        if self.every_input:
            return not self.scheme.lost(available).any()
        if int(available.sum()) >= quorum:
            return True
        return deadline is not None and time.monotonic() >= deadline

    def _decodable(self, available: np.ndarray) -> bool:
        """A coded scheme decodes from any answer; the others need every input answered."""
        if not available.any():
            return False
        return not self.every_input or not self.scheme.lost(available).any()


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
