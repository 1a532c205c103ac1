"""Coded prediction serving on Ray: worker actors, a batching frontend, HTTP, and load.

Builds on :mod:`nercc.coding` (the codes), :mod:`nercc.stragglers` (delays and wait policies) and
:mod:`nercc.models` (the classifiers); :mod:`nercc.serving.plan` (what a config serves, shared by
the serve and load-test tasks) also on :mod:`nercc.tuning` (the published tables).

The names load on first use, so that Ray Serve's HTTP proxy, which imports
:mod:`nercc.serving.http_errors` (its middleware), imports neither torch nor the codes.
"""

from __future__ import annotations

from nercc.utils.lazy import lazy_attributes

_WHERE = {
    "READY_TIMEOUT_S": "nercc.serving.workers",
    "Answer": "nercc.serving.frontend",
    "FlagTracker": "nercc.serving.screening",
    "Frontend": "nercc.serving.frontend",
    "GroupTrace": "nercc.serving.frontend",
    "HedgeDelay": "nercc.serving.hedging",
    "Hedged": "nercc.serving.hedging",
    "NonFiniteOutputs": "nercc.serving.frontend",
    "QueryFailed": "nercc.serving.frontend",
    "QueryRecord": "nercc.serving.load",
    "Worker": "nercc.serving.workers",
    "adversary_seed": "nercc.serving.workers",
    "delay_seed": "nercc.serving.workers",
    "freeze_startup_heap": "nercc.serving.cluster",
    "flag_summary": "nercc.serving.load",
    "latency_summary": "nercc.serving.load",
    "poisson_arrivals": "nercc.serving.load",
    "ray_cluster": "nercc.serving.cluster",
    "run_load": "nercc.serving.load",
    "start_workers": "nercc.serving.workers",
    "stop_workers": "nercc.serving.workers",
    "wait_ready": "nercc.serving.workers",
}

__all__ = sorted(_WHERE)

__getattr__ = lazy_attributes(__name__, _WHERE)
