"""The serve task: coded prediction serving over HTTP until stopped (``python -m nercc.serve``).

The HTTP address and the checkpoint are checked before Ray starts; then a local Ray instance (or
``serving.address``), N worker actors holding the published classifier, and a Ray Serve endpoint
for ``serving.scheme``, until Ctrl-C, SIGTERM, ``stop`` or ``serving.duration_s``.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from typing import Any

from omegaconf import DictConfig

from nercc.runtime.checks import check_checkpoint_exists, check_serve, expected_input
from nercc.serving.plan import model_loader, serving_plan, table_warnings

__all__ = ["serve", "stop_on_signals"]

log = logging.getLogger("nercc.serve")  # the command's name in its log file


def serve(
    cfg: DictConfig, ready: threading.Event | None = None, stop: threading.Event | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Serve ``serving.scheme`` over HTTP until interrupted (Ctrl-C, SIGTERM), ``stop`` is set
    or ``serving.duration_s`` passes, then shut everything down.

    Parameters
    ----------
    cfg : DictConfig
        A serve config (conf/serve.yaml), checked here first.
    ready : threading.Event, optional
        Set once the endpoint answers (for callers that run this on a thread).
    stop : threading.Event, optional
        Set by the caller to stop the service.

    Returns
    -------
    metrics : dict
        Empty: a service measures nothing (``python -m nercc.loadtest`` does).
    objects : dict
        ``plan``: the :class:`~nercc.serving.plan.ServingPlan` it served.
    """
    check_serve(cfg)
    from nercc.serving.address import check_bind

    if cfg.serving.address is None:  # a local instance: the HTTP server listens here
        check_bind(cfg.serving.host, int(cfg.serving.port))
    from nercc.models.checkpoints import read_checkpoint
    from nercc.serving import ray_cluster, start_workers, stop_workers
    from nercc.serving.endpoint import http_endpoint

    checkpoint = check_checkpoint_exists(cfg)
    expected = expected_input(cfg)
    # checked here, before Ray starts: a bad file is one line, not N workers failing to start
    sha256 = read_checkpoint(checkpoint, cfg.model_name, cfg.data.name, **expected)["sha256"]
    name = cfg.serving.scheme
    plan = serving_plan(cfg, [name])
    for note in plan.notes:
        log.info(f"note: {note}")
    for warning in table_warnings(plan, checkpoint, sha256):
        log.warning(warning)
    if plan.parity_models:  # a missing or mismatched parity model: one line, before Ray
        from nercc.models import load_classifier

        plan.check_parity_models(
            load_classifier(cfg.model_name, cfg.data.name, checkpoint.parent, **expected)
        )
    if (
        cfg.coding.get("order", "none") != "none"
        or cfg.coding.get("grouping", "arrival") != "arrival"
    ):
        from nercc.utils.instantiate import build

        data = build(cfg.data)  # the training images an order's direction is fitted on
        plan.arrange_with(cfg, data)

    scheme = plan.schemes[name]
    serving = cfg.serving
    stop = stop or threading.Event()
    # SIGTERM and Ctrl-C stop the service cleanly from here on (installed after ray.init, which
    # installs its own handler): stopping a server is how it ends, not a failure
    with ray_cluster(serving.address, serving.num_cpus), stop_on_signals(stop):
        workers = start_workers(
            model_loader(cfg, expected),
            scheme.num_workers,
            plan.delays,
            seed=cfg.seed,
            num_cpus=serving.worker_cpus,
            adversary=plan.adversary,
            adversaries=plan.adversaries,
            extra_models=plan.extra_models(),
        )
        try:
            with http_endpoint(
                workers,
                scheme,
                name,
                plan.policies[name],
                expected["image_shape"],
                host=serving.host,
                port=serving.port,
                shutdown=serving.address is None,
                **plan.frontend_options(cfg, name),
            ) as url:
                log.info(
                    f"serving {name} (K={scheme.num_inputs}, N={scheme.num_workers}) of "
                    f"{cfg.model_name} on {cfg.data.name} at {url}: POST {url}/predict "
                    f"(PNG or JSON), GET {url}/healthz; Ctrl-C stops"
                )
                if ready is not None:
                    ready.set()
                try:
                    stop.wait(serving.duration_s)
                except KeyboardInterrupt:
                    pass
        finally:
            stop_workers(workers)
    log.info("stopped; Ray shut down")
    return {}, {"plan": plan}


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM and SIGINT set ``stop`` (a clean shutdown, exit 0) for the duration of the block.

    Only on the main thread; elsewhere signals are not ours to handle. A second signal, while
    the service shuts down, goes to the handler from before (the task wrapper's: it interrupts,
    a failed run), which is installed again on leaving the block.

    Parameters
    ----------
    stop : threading.Event
        Set by the first signal.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}

    def stop_once(signum: int, frame: Any) -> None:
        signal.signal(signum, previous[signum])  # the next one is the wrapper's again
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        previous[signum] = signal.signal(signum, stop_once)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
