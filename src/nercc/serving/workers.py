"""Worker actors: each holds the frozen classifier and answers one coded input at a time.

A worker sleeps a delay drawn from the configured :class:`~nercc.stragglers.DelayModel` before it
answers, so stragglers are real: the frontend waits for them (or not) on the wall clock. The delay
of worker ``n`` for group ``g`` comes from a stream seeded by ``(seed, n, g)``: the same run draws
the same delays, and a worker that Ray restarts after a crash draws what it would have drawn.

Workers are threaded actors (``max_concurrency``): a sleeping worker takes the next coded input
at once (a delay is a response time, not a queue); torch runs on one thread per worker. Coded
inputs and logits travel as raw float32 bytes, the cheapest message Ray sends (a quarter less
time per call than numpy arrays on a 2-core machine).

A worker given an :class:`~nercc.adversaries.Adversary` is Byzantine: it corrupts its own answer
(the classifier's logits) with it before answering, drawing from a stream seeded by ``(seed, n,
g, attempt)`` (:func:`adversary_seed`, apart from the delays' stream), so that the same run lies
the same way and a restarted worker lies as it would have.

A worker may hold models besides the classifier (``extra_models``: ParM's parity model), each
built from the classifier in the worker's process; a message names the model that runs its coded
input (0: the classifier), so that any worker can stand in for any other, a parity worker too.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import ray
import torch

from nercc.serving.cluster import freeze_startup_heap
from nercc.stragglers import DelayModel

if TYPE_CHECKING:
    from nercc.adversaries import Adversary

__all__ = [
    "READY_TIMEOUT_S",
    "Message",
    "Worker",
    "adversary_seed",
    "delay_seed",
    "pack_input",
    "slow_workers",
    "start_workers",
    "stop_workers",
    "unpack_input",
    "wait_ready",
]

#: Seconds to wait for the workers to start (or restart) before giving up.
READY_TIMEOUT_S = 300.0

#: Coded inputs a worker holds at once (each sleeping its delay on a thread of its own).
MAX_CONCURRENCY = 256


_HEADER = struct.Struct("<qqqq")  # group, attempt, model, number of dimensions


class Message(NamedTuple):
    """What a worker is asked: its coded input for ``group`` (``attempt`` >= 1 when sent again
    after a failure), to be run by its model ``model`` (0: the classifier)."""

    group: int
    attempt: int
    coded: np.ndarray
    model: int = 0


def pack_input(group: int, attempt: int, coded: np.ndarray, model: int = 0) -> bytes:
    """One message for :meth:`Worker.compute`: a header (group, attempt, model, shape) and the
    coded input's float32 values."""
    coded = np.ascontiguousarray(coded, dtype=np.float32)
    shape = struct.pack(f"<{coded.ndim}q", *coded.shape)
    return _HEADER.pack(group, attempt, model, coded.ndim) + shape + coded.tobytes()


def unpack_input(message: bytes) -> Message:
    """The :class:`Message` of a :func:`pack_input` message (its coded input a writable copy)."""
    group, attempt, model, ndim = _HEADER.unpack_from(message)
    shape = struct.unpack_from(f"<{ndim}q", message, _HEADER.size)
    start = _HEADER.size + 8 * ndim
    values = np.frombuffer(message, dtype=np.float32, offset=start).reshape(shape)
    return Message(group, attempt, values.copy(), model)


def delay_seed(seed: int, worker: int, group: int, attempt: int = 0) -> int:
    """The seed of worker ``worker``'s delay for group ``group`` (a 63-bit integer); a coded
    input sent again (``attempt`` >= 1) draws from a stream of its own."""
    entropy = [seed, worker, group] + ([attempt] if attempt else [])
    state = np.random.SeedSequence(entropy).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 31 | int(state[1]) >> 1


#: Keeps the adversary's stream apart from the delays' stream of the same (seed, worker, group).
_ADVERSARY_STREAM = 0xAD5E


def adversary_seed(seed: int, worker: int, group: int, attempt: int = 0) -> int:
    """The seed of a Byzantine worker's attack on its answer for group ``group`` (a 63-bit
    integer), drawn as :func:`delay_seed` is but from a stream of its own."""
    entropy = [seed, worker, group, attempt, _ADVERSARY_STREAM]
    state = np.random.SeedSequence(entropy).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 31 | int(state[1]) >> 1


class Worker:
    """One worker: the classifier, its delay model and whether it is one of the slow machines.

    Parameters
    ----------
    index : int
        n, the worker's place among the N workers (its beta).
    load_model : callable
        Builds the classifier in the worker's process (e.g. ``functools.partial(load_classifier,
        "lenet5", "fashion_mnist", directory)``): images (B, C, H, W) in [0, 1] to logits
        (B, classes). It is frozen and put in eval mode here.
    delays : DelayModel or None
        Where the delays come from (milliseconds); None answers without delay.
    slow : bool
        Whether this worker is one of the ``slow_fraction`` slow ones.
    seed : int
        The run's seed (see :func:`delay_seed` and :func:`adversary_seed`).
    adversary : Adversary, optional
        Makes this worker Byzantine: each answer is the adversary's attack on the classifier's
        logits (see :meth:`corrupt`); None answers honestly.
    extra_models : sequence of callables
        Models besides the classifier, model ``m`` (from 1) built by ``extra_models[m - 1]``
        from the classifier (e.g. ParM's parity model, checked against it); a message names the
        model that runs its coded input.
    """

    def __init__(
        self,
        index: int,
        load_model: Callable[[], torch.nn.Module],
        delays: DelayModel | None = None,
        slow: bool = False,
        seed: int = 0,
        adversary: Adversary | None = None,
        extra_models: Sequence[Callable[[torch.nn.Module], torch.nn.Module]] = (),
    ) -> None:
        torch.set_num_threads(1)
        self.index = index
        self.model = load_model().eval().requires_grad_(False)
        self.models = [self.model] + [
            build(self.model).eval().requires_grad_(False) for build in extra_models
        ]
        self.delays = delays
        self.slow = torch.tensor([[bool(slow)]])
        self.seed = seed
        self.adversary = adversary
        freeze_startup_heap()

    def delay_ms(self, group: int, attempt: int = 0) -> float:
        """This worker's delay for ``group`` in milliseconds (0 without a delay model)."""
        if self.delays is None:
            return 0.0
        seed = delay_seed(self.seed, self.index, group, attempt)
        generator = torch.Generator().manual_seed(seed)
        return float(self.delays.times(1, 1, generator, slow=self.slow)[0, 0])

    def compute(self, message: bytes) -> bytes:
        """Sleep this worker's delay for the message's group, then return the logits of the
        message's model (the classifier, or an extra model) on its coded input, as float32 bytes
        of shape (rows, classes).

        ``message`` is :func:`pack_input` of (group, attempt, coded input, model): this worker's
        own coded input, or, when ``attempt`` >= 1, one sent again after its worker failed. One
        bytes argument and one bytes result are the cheapest call Ray makes (a quarter less time
        than separate arguments and a tuple on a 2-core machine).

        Raises
        ------
        ValueError
            The message names a model this worker does not hold.
        """
        group, attempt, inputs, model = unpack_input(message)
        if not 0 <= model < len(self.models):
            raise ValueError(
                f"model must be in [0, {len(self.models)}) (this worker holds the classifier and "
                f"{len(self.models) - 1} extra models), got {model}"
            )
        delay = self.delay_ms(group, attempt)
        if delay > 0:
            time.sleep(delay / 1000.0)
        with torch.inference_mode():
            logits = self.models[model](torch.from_numpy(inputs)).float()
        if self.adversary is not None:
            logits = self.corrupt(logits, group, attempt)
        return logits.numpy().tobytes()

    def corrupt(self, logits: torch.Tensor, group: int, attempt: int = 0) -> torch.Tensor:
        """This worker's adversarial answer for ``group`` in place of ``logits`` (rows, classes).

        The adversary attacks the one answer alone: ``attack(logits as (1, 1, classes), or
        (1, 1, rows, classes), available=[[True]], num_adversaries=1, generator, scheme=None)``,
        the generator seeded by :func:`adversary_seed` of (seed, index, group, attempt). Without
        an adversary the logits come back as they are.
        """
        if self.adversary is None:
            return logits
        seed = adversary_seed(self.seed, self.index, group, attempt)
        generator = torch.Generator().manual_seed(seed)
        rows, classes = logits.shape
        shaped = logits.reshape(1, 1, classes) if rows == 1 else logits.reshape(1, 1, rows, classes)
        attack = self.adversary.attack(shaped, np.ones((1, 1), dtype=bool), 1, generator, None)
        return attack.outputs.reshape(rows, classes)

    def ready(self) -> int:
        """The worker's index: answers once the worker has started."""
        return self.index


def start_workers(
    load_model: Callable[[], torch.nn.Module],
    num_workers: int,
    delays: DelayModel | None = None,
    seed: int = 0,
    num_cpus: float = 0.1,
    max_restarts: int = -1,
    slow: Sequence[int] | None = None,
    adversary: Adversary | None = None,
    adversaries: Sequence[int] = (),
    extra_models: Sequence[Callable[[torch.nn.Module], torch.nn.Module]] = (),
) -> list[Any]:
    """Start ``num_workers`` worker actors, each building its classifier with ``load_model``
    (and its ``extra_models`` from it, see :class:`Worker`), and wait until all answer; the
    workers ``adversaries`` (indices) are Byzantine, answering with ``adversary``'s attack on
    their own answers (see :meth:`Worker.corrupt`).

    ``load_model`` travels with each actor (a small picklable callable, so that Ray can restart
    an actor from its arguments alone; on a cluster the checkpoint must be readable from every
    node). A crashed worker is restarted by Ray (up to
    ``max_restarts`` times, -1: always); its unanswered calls fail and the frontend counts them
    as stragglers. With a ``slow_fraction``, the slow workers are drawn once from ``seed``,
    unless ``slow`` names them.

    Returns
    -------
    list of ray.actor.ActorHandle
        The workers, in beta order.
    """
    liars = sorted({int(n) for n in adversaries})
    if liars and (liars[0] < 0 or liars[-1] >= num_workers):
        raise ValueError(
            f"adversaries must be worker indices in [0, {num_workers}), got {list(adversaries)}"
        )
    if liars and adversary is None:
        raise ValueError(f"adversaries {liars} need an adversary, got adversary=None")
    is_slow = torch.zeros(num_workers, dtype=torch.bool)
    is_slow[list(slow_workers(delays, num_workers, seed) if slow is None else slow)] = True
    actor = ray.remote(Worker).options(
        num_cpus=num_cpus,
        max_restarts=max_restarts,
        max_task_retries=0,
        max_concurrency=MAX_CONCURRENCY,
    )
    workers = [
        actor.remote(
            n,
            load_model,
            delays,
            bool(is_slow[n]),
            seed,
            adversary if n in liars else None,
            tuple(extra_models),
        )
        for n in range(num_workers)
    ]
    try:
        wait_ready(workers)
    except RuntimeError:
        stop_workers(workers)
        raise
    except TimeoutError:
        stop_workers(workers)
        resources = ray.available_resources().get("CPU", 0.0)
        raise RuntimeError(
            f"the {num_workers} workers did not start within {READY_TIMEOUT_S:g} s (each asks "
            f"num_cpus={num_cpus}; Ray has {resources:g} CPUs free)"
        ) from None
    return workers


def slow_workers(delays: DelayModel | None, num_workers: int, seed: int) -> list[int]:
    """The workers that a run with ``seed`` makes slow (``delays.slow_fraction`` of them, drawn
    once; the same in every scheme of a load test, so uncoded's K may hold more or fewer)."""
    if delays is None or delays.slow_count(num_workers) == 0:
        return []
    mask = delays.slow_workers(num_workers, torch.Generator().manual_seed(seed))
    return [int(n) for n in torch.nonzero(mask).flatten()]


def wait_ready(workers: list[Any], timeout: float = READY_TIMEOUT_S) -> None:
    """Wait until every worker answers ``ready``; a worker that Ray is restarting is asked again.

    Raises
    ------
    RuntimeError
        A worker's constructor raised (Ray does not restart it): at once, with its error's last
        line (e.g. the classifier could not be loaded).
    TimeoutError
        Some worker did not answer within ``timeout`` seconds.
    """
    end = time.monotonic() + timeout
    waiting = list(range(len(workers)))
    while waiting:
        refs = {workers[n].ready.remote(): n for n in waiting}
        left = max(end - time.monotonic(), 0.0)
        ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=left)
        answered = set()
        for ref in ready:
            try:
                ray.get(ref)
                answered.add(refs[ref])
            except ray.exceptions.RayActorError as error:
                if error.actor_init_failed:  # dead for good: asking again would only wait
                    raise RuntimeError(
                        f"worker {refs[ref]} failed to start: {_last_line(error)}"
                    ) from None
            except ray.exceptions.RayError:
                pass
        waiting = [n for n in waiting if n not in answered]
        if waiting and time.monotonic() >= end:
            raise TimeoutError(f"workers {waiting} did not answer within {timeout:g} s")
        if waiting:
            time.sleep(0.1)


def _last_line(error: BaseException) -> str:
    """The last non-empty line of an error's text (a remote error's own message, after its
    traceback)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def stop_workers(workers: list[Any]) -> None:
    """Kill the workers for good (no restart)."""
    for worker in workers:
        ray.kill(worker, no_restart=True)
