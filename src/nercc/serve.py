"""Coded prediction serving over HTTP: ``python -m nercc.serve`` (conf/serve.yaml).

Starts a local Ray instance on 127.0.0.1 (or joins ``serving.address``), N worker actors holding
the published classifier, and a Ray Serve endpoint for ``serving.scheme``:

- ``POST /predict``: one image (PNG bytes, or a JSON array (C, H, W) / (H, W) of values in
  [0, 1]) to ``{"class", "logits", "scheme", "workers", "failed_workers", "group",
  "underdetermined"}``; any other answer is JSON ``{"error": ...}`` with its status;
- ``GET /healthz``: the scheme and the code.

The HTTP address and the checkpoint are checked before Ray starts (a port in use, a missing or
corrupt checkpoint: one error line). It serves until
Ctrl-C (or ``serving.duration_s``), then shuts everything down. The helpers here
(:func:`serving_plan`, :func:`model_loader`, :func:`table_warnings`) are shared with
:mod:`nercc.loadtest`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from nercc.paths import CONFIG_DIR
from nercc.runtime.checks import check_checkpoint_exists, check_serve, expected_input
from nercc.runtime.wrapper import task_wrapper
from nercc.tuning import TABLE_KEY, expand_schemes, resolve_table
from nercc.utils.errors import ConfigError
from nercc.utils.instantiate import build_checked

__all__ = ["ServingPlan", "model_loader", "serving_plan"]

log = logging.getLogger("nercc.serve")  # not __main__ under python -m

#: The schemes that can be served, in the order a load test compares them.
SCHEMES = ("uncoded", "replication", "bacc", "nercc")


@dataclass
class ServingPlan:
    """What a checked config serves: the schemes by name, their wait policies, the delays."""

    schemes: dict[str, Any]
    policies: dict[str, Any]
    delays: Any
    num_workers: int
    notes: list[str] = field(default_factory=list)
    tables: dict[str, Any] = field(default_factory=dict)  # name: the ParamTable it took, or None


def serving_plan(cfg: DictConfig, names: list[str]) -> ServingPlan:
    """Build the schemes ``names`` of a checked config, with NeRCC's lambdas at S from the
    published table when the config leaves them open (and one exists)."""
    from nercc.coding import Uncoded
    from nercc.stragglers import WaitPolicy

    k, n = int(cfg.coding.num_inputs), int(cfg.coding.num_workers)
    s = int(cfg.serving.num_stragglers)
    deadline = cfg.serving.deadline_ms
    notes: list[str] = []
    schemes: dict[str, Any] = {}
    policies: dict[str, Any] = {}
    tables: dict[str, Any] = {}
    for name in names:
        if name == "uncoded":
            schemes[name] = Uncoded(k)
            policies[name] = WaitPolicy(num_stragglers=0)  # waits for all K in any case
            continue
        node = cfg.scheme[name]
        table = None
        if TABLE_KEY in node:
            code = {"num_inputs": k, "num_workers": n, "points": node.get("points", "chebyshev")}
            try:
                table = resolve_table(
                    node[TABLE_KEY], cfg.paths.lambdas_dir, cfg.model_name, cfg.data.name, code
                )
            except ValueError as error:
                raise ConfigError(f"scheme.{name}.{TABLE_KEY}", str(error)) from None
            if table is None and node[TABLE_KEY] == "published":
                notes.append(
                    f"no tuned table for {cfg.model_name} on {cfg.data.name} with K={k}, N={n}: "
                    f"{name} serves with its defaults (0: interpolation); tune with: python -m "
                    f"nercc.tune experiment=paper/{cfg.model_name} coding.num_inputs={k} "
                    f"coding.num_workers={n} stragglers=[{s}]"
                )
        tables[name] = table
        try:
            (variant,) = expand_schemes({name: node}, [s], {name: table})
        except ValueError as error:
            raise ConfigError(f"scheme.{name}", str(error)) from None
        schemes[name] = variant.scheme
        if variant.source.startswith("table:") or variant.source.startswith("config+table:"):
            params = ", ".join(f"{p} {v:.3g}" for p, v in variant.params.items())
            notes.append(f"{name}: {params} from {variant.source.split('table:', 1)[1]} (S={s})")
        # Replication waits for the first answer of each input; S and the deadline are for codes.
        policies[name] = WaitPolicy(num_stragglers=s, deadline=deadline)
    delays = None
    if cfg.get("delay") is not None:
        delays = build_checked("delay", cfg.delay)
    return ServingPlan(schemes, policies, delays, n, notes, tables)


def table_warnings(
    plan: ServingPlan, checkpoint: str | Path, sha256: str | None = None
) -> list[str]:
    """The warnings for tables of ``plan`` tuned on another checkpoint than ``checkpoint``
    (its content hash differs), worded as the evaluation's; ``sha256`` is the checkpoint's
    content hash when the caller has it (else it is read, only when some table records one)."""
    from nercc.models.checkpoints import file_sha256

    found = []
    for table in filter(None, plan.tables.values()):
        if table.checkpoint_sha256 is None:
            continue
        sha256 = sha256 or file_sha256(checkpoint)
        stale = table.stale_warning(checkpoint, sha256)
        if stale is not None:
            found.append(stale)
    return found


def model_loader(cfg: DictConfig) -> functools.partial:
    """What each worker calls to build its classifier: :func:`nercc.models.load_classifier` of
    the published checkpoint for (model, data), checked against the data's shape."""
    from nercc.models import load_classifier

    return functools.partial(
        load_classifier,
        cfg.model_name,
        cfg.data.name,
        cfg.paths.checkpoint_dir,
        **expected_input(cfg),
    )


def image_shape(cfg: DictConfig) -> tuple[int, int, int]:
    """(channels, height, width) of the data's images."""
    return expected_input(cfg)["image_shape"]


def serve(
    cfg: DictConfig, ready: threading.Event | None = None, stop: threading.Event | None = None
) -> None:
    """Serve ``serving.scheme`` over HTTP until interrupted (Ctrl-C, SIGTERM), ``stop`` is set
    or ``serving.duration_s`` passes, then shut everything down.

    ``ready`` is set once the endpoint answers (for callers that run this on a thread)."""
    check_serve(cfg)
    from nercc.serving.address import check_bind

    if cfg.serving.address is None:  # a local instance: the HTTP server listens here
        check_bind(cfg.serving.host, int(cfg.serving.port))
    from nercc.models.checkpoints import read_checkpoint
    from nercc.serving import ray_cluster, start_workers, stop_workers
    from nercc.serving.endpoint import http_endpoint

    checkpoint = check_checkpoint_exists(cfg)
    # checked here, before Ray starts: a bad file is one line, not N workers failing to start
    sha256 = read_checkpoint(checkpoint, cfg.model_name, cfg.data.name, **expected_input(cfg))[
        "sha256"
    ]
    name = cfg.serving.scheme
    plan = serving_plan(cfg, [name])
    for note in plan.notes:
        log.info(f"note: {note}")
    for warning in table_warnings(plan, checkpoint, sha256):
        log.warning(warning)

    scheme = plan.schemes[name]
    serving = cfg.serving
    stop = stop or threading.Event()
    # SIGTERM and Ctrl-C stop the service cleanly from here on (installed after ray.init, which
    # installs its own handler): stopping a server is how it ends, not a failure
    with ray_cluster(serving.address, serving.num_cpus), _stop_on_signals(stop):
        workers = start_workers(
            model_loader(cfg),
            scheme.num_workers,
            plan.delays,
            seed=cfg.seed,
            num_cpus=serving.worker_cpus,
        )
        try:
            with http_endpoint(
                workers,
                scheme,
                name,
                plan.policies[name],
                image_shape(cfg),
                host=serving.host,
                port=serving.port,
                max_wait_ms=serving.max_wait_ms,
                kill_every=serving.kill_every,
                seed=cfg.seed,
                shutdown=serving.address is None,
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


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM and SIGINT set ``stop`` (a clean shutdown, exit 0) for the duration of the block,
    on the main thread; elsewhere signals are not ours to handle. A second one, while the
    service shuts down, interrupts as the task wrapper's handler does (a failed run)."""
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


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="serve")
@task_wrapper
def main(cfg: DictConfig) -> None:
    serve(cfg)


if __name__ == "__main__":
    main()
