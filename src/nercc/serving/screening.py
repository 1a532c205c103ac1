"""Which workers lie: a screening decoder's flags counted per worker, and when to stop asking.

A scheme that screens its answers (``scheme.screens``: RobustNeRCC, RobustBACC) drops, in each
group, the answers it judges adversarial. :class:`FlagTracker` keeps, for each worker, whether
its answer was dropped in each of the last ``window`` groups where it answered, and excludes a
worker once it was flagged in more than ``fraction x window`` of them::

    excluded after group g  <=>  flags in its last `window` answered groups > fraction * window

The count is over the whole window, so a worker is excluded after at least
``floor(fraction x window) + 1`` flagged groups, never on its first few answers. An exclusion
clears the worker's window: when it is asked again (the frontend probes it later, as it probes a
dead worker), it starts afresh. At most ``max_excluded`` workers are excluded at once (the
frontend sets it so that a code can still reach its quorum).

No Ray here: the frontend (:mod:`nercc.serving.frontend`) records each decoded group and holds
the workers this excludes.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Collection, Iterable

__all__ = ["FlagTracker"]


class FlagTracker:
    """Counts the groups in which each worker's answer was flagged, and decides exclusions.

    Parameters
    ----------
    num_workers : int
        N, the workers tracked (0 to N - 1).
    fraction : float
        In [0, 1): a worker flagged in more than ``fraction x window`` of its last ``window``
        answered groups is excluded.
    window : int
        >= 1, the answered groups a worker's flag count looks back over.
    max_excluded : int, optional
        >= 0, the most workers excluded at once (None: N).

    Attributes
    ----------
    flagged_by_worker : list of int
        Per worker, the groups in which its answer was flagged (since the start).
    answered_by_worker : list of int
        Per worker, the groups recorded in which it answered.
    exclusions : list of (int, int)
        ``(group, worker)`` of each exclusion, in order: the group whose flags excluded it.
    """

    def __init__(
        self,
        num_workers: int,
        fraction: float = 0.5,
        window: int = 20,
        max_excluded: int | None = None,
    ) -> None:
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 1:
            raise ValueError(f"num_workers must be an integer >= 1, got {num_workers!r}")
        if (
            isinstance(fraction, bool)
            or not isinstance(fraction, int | float)
            or not (math.isfinite(fraction) and 0.0 <= fraction < 1.0)
        ):
            raise ValueError(f"fraction must be a number >= 0 and < 1, got {fraction!r}")
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(f"window must be an integer >= 1, got {window!r}")
        if max_excluded is None:
            max_excluded = num_workers
        if isinstance(max_excluded, bool) or not isinstance(max_excluded, int) or max_excluded < 0:
            raise ValueError(f"max_excluded must be null or an integer >= 0, got {max_excluded!r}")
        self.num_workers = num_workers
        self.fraction = float(fraction)
        self.window = window
        self.max_excluded = max_excluded
        self.flagged_by_worker = [0] * num_workers
        self.answered_by_worker = [0] * num_workers
        self.exclusions: list[tuple[int, int]] = []
        self._recent: list[deque[bool]] = [deque(maxlen=window) for _ in range(num_workers)]
        self._lock = threading.Lock()

    @property
    def limit(self) -> int:
        """The flags in a window that a worker may have without being excluded:
        ``floor(fraction x window)``."""
        return math.floor(self.fraction * self.window)

    def recent_flags(self, worker: int) -> int:
        """How many of ``worker``'s last ``window`` answered groups flagged it (since its last
        exclusion)."""
        with self._lock:
            return sum(self._recent[self._check(worker)])

    def record(
        self,
        group: int,
        answered: Iterable[int],
        flagged: Iterable[int],
        excluded: Collection[int] = (),
    ) -> list[int]:
        """Record one decoded group and return the workers it excludes.

        Parameters
        ----------
        group : int
            The group's number (kept with each exclusion).
        answered : iterable of int
            The workers whose answers the decoder got.
        flagged : iterable of int
            The workers whose answers it dropped (each must have answered).
        excluded : collection of int
            The workers excluded now (not excluded again; they count towards ``max_excluded``).

        Returns
        -------
        list of int
            The workers excluded by this group, ascending; their windows are cleared.
        """
        answered = sorted({self._check(w) for w in answered})
        flagged_set = {self._check(w) for w in flagged}
        if not flagged_set <= set(answered):
            raise ValueError(
                f"flagged must be workers that answered {answered}, got {sorted(flagged_set)}"
            )
        now = {self._check(w) for w in excluded}
        newly = []
        with self._lock:
            for worker in answered:
                hit = worker in flagged_set
                self._recent[worker].append(hit)
                self.answered_by_worker[worker] += 1
                self.flagged_by_worker[worker] += hit
            for worker in answered:
                if worker in now or len(now) + len(newly) >= self.max_excluded:
                    continue
                if sum(self._recent[worker]) > self.limit:
                    newly.append(worker)
                    self._recent[worker].clear()
                    self.exclusions.append((int(group), worker))
        return newly

    def _check(self, worker: int) -> int:
        if isinstance(worker, bool) or not (0 <= int(worker) < self.num_workers):
            raise ValueError(f"worker must be in [0, {self.num_workers}), got {worker!r}")
        return int(worker)
