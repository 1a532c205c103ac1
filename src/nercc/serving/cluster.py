"""Start a local Ray instance or join a running cluster, and always leave cleanly."""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

import ray

__all__ = ["PATIENT_SERVE", "freeze_startup_heap", "ray_cluster"]

#: Ray Serve's proxy checks for a local instance: seconds to become ready (Serve's default 5 s is
#: missed on a busy 2-core machine, and the proxy is then killed) and to answer a health check.
PATIENT_SERVE = {
    "RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S": "60",
    "RAY_SERVE_PROXY_HEALTH_CHECK_TIMEOUT_S": "30",
}


@contextlib.contextmanager
def ray_cluster(address: str | None = None, num_cpus: int | None = None) -> Iterator[None]:
    """Ray for the duration of the block: a new local instance with ``num_cpus`` CPUs (all of
    this machine's by default) when ``address`` is None, or the cluster at ``address`` (``auto``,
    ``ray://host:port``, ``host:port``). A local instance is shut down at the end; a joined
    cluster is only disconnected from.

    Ray's own services listen where Ray decides: on Ray 2.60 its GCS, raylet and workers listen
    on every interface (it turns 127.0.0.1 into the node's address), protected by Ray's token
    authentication unless ``RAY_AUTH_MODE=disabled``. What nercc serves itself, the HTTP
    endpoint, binds to ``serving.host`` (127.0.0.1 by default).

    A local instance's HTTP proxy answers its own errors (no application routed, a replica that
    died) in JSON, through :mod:`nercc.serving.http_errors`, unless the environment already names
    another proxy callback.

    A local instance also gives its HTTP proxy time to start on a busy machine
    (:data:`PATIENT_SERVE`: Serve's controller kills a proxy not ready within 5 s, and
    ``serve.start`` then fails with ``ActorDiedError``); values set in the environment win.

    The process's SIGTERM handler is the same after ``ray.init`` as before (Ray's driver would
    otherwise exit with status 15, bypassing the task wrapper's handler).
    """
    if ray.is_initialized():
        raise RuntimeError("Ray is already initialised in this process; shut it down first")
    from nercc.serving.http_errors import PROXY_CALLBACK, PROXY_CALLBACK_ENV

    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
    added = []
    if address is None:
        options["num_cpus"] = num_cpus or os.cpu_count() or 1
        # Ray's processes take the environment of ray.init's caller
        for name, value in {PROXY_CALLBACK_ENV: PROXY_CALLBACK, **PATIENT_SERVE}.items():
            if name not in os.environ:
                os.environ[name] = value
                added.append(name)
    else:
        options["address"] = address
    try:
        _init_keeping_sigterm(options)
        try:
            yield
        finally:
            ray.shutdown()
    finally:
        for name in added:
            os.environ.pop(name, None)


def _init_keeping_sigterm(options: dict[str, Any]) -> None:
    """``ray.init(**options)``, then the SIGTERM handler it replaces put back (main thread)."""
    if threading.current_thread() is not threading.main_thread():
        ray.init(**options)  # Ray sets no handler off the main thread
        return
    previous = signal.getsignal(signal.SIGTERM)
    try:
        ray.init(**options)
    finally:
        if previous is not None:  # None: a handler not set from Python, cannot be restored
            signal.signal(signal.SIGTERM, previous)


def freeze_startup_heap() -> None:
    """Collect once, then move every object alive now out of the garbage collector's sight.

    A serving process holds torch, Ray and the data: a full collection walks ~240,000 objects
    and stops the process for about 120 ms on these machines, a pause that lands in the latency
    tail. Objects made after this are collected as usual. Call it at the end of a process's setup.
    """
    gc.collect()
    gc.freeze()
