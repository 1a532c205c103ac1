"""Coded prediction serving on Ray: worker actors, a batching frontend, HTTP, and load.

Builds on :mod:`nercc.coding` (the codes), :mod:`nercc.stragglers` (delays and wait policies) and
:mod:`nercc.models` (the classifiers); not on :mod:`nercc.evaluation`.
"""

from nercc.serving.cluster import freeze_startup_heap, ray_cluster
from nercc.serving.frontend import Answer, Frontend, GroupTrace, QueryFailed, waits_for_every_input
from nercc.serving.load import QueryRecord, latency_summary, poisson_arrivals, run_load
from nercc.serving.workers import (
    READY_TIMEOUT_S,
    Worker,
    delay_seed,
    start_workers,
    stop_workers,
    wait_ready,
)

__all__ = [
    "READY_TIMEOUT_S",
    "Answer",
    "Frontend",
    "GroupTrace",
    "QueryFailed",
    "QueryRecord",
    "Worker",
    "delay_seed",
    "freeze_startup_heap",
    "latency_summary",
    "poisson_arrivals",
    "ray_cluster",
    "run_load",
    "start_workers",
    "stop_workers",
    "wait_ready",
    "waits_for_every_input",
]
