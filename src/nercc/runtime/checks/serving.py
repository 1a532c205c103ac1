"""Serving and load-test configs (nercc.serve, nercc.loadtest)."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from omegaconf import DictConfig, ListConfig, OmegaConf

from nercc.data.sources import SYNTHETIC_DEFAULTS
from nercc.runtime.checks.common import check_data, check_loggers, check_seed, check_writable
from nercc.runtime.checks.readers import as_list, choice, get, integer, number
from nercc.runtime.checks.schemes import check_schemes, declared_tunables, model_settings
from nercc.serving.plan import ENDPOINT_CPUS, UNCODED
from nercc.stragglers import DelayModel
from nercc.utils.errors import ConfigError


def served_schemes(cfg: DictConfig) -> list[str]:
    """The schemes a serving config can serve: ``uncoded`` and every scheme of its ``scheme``
    group (``scheme=all``: nercc, bacc and replication)."""
    schemes = get(cfg, "scheme", None)
    return [UNCODED, *(schemes if isinstance(schemes, DictConfig) else [])]


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def check_serve(cfg: DictConfig, schemes: Sequence[str] | None = None, http: bool = True) -> None:
    """Check a serving config (``nercc.serve``, and the shared part of ``nercc.loadtest``).

    The code (N >= K), S <= N - 1, the schemes served (``serving.scheme``, or ``schemes``) and
    their nodes with one setting each (a list is a grid, not something to serve), equal resources
    (replication's copies fill the N workers), the delay model, the wait and fault settings,
    Ray's address and CPU shares, the HTTP address, the data, the loggers and the output folder.
    """
    check_seed(cfg)
    check_data(cfg)
    k = integer(cfg, "coding.num_inputs", 1)
    n = integer(cfg, "coding.num_workers", k, low_text=f"coding.num_inputs K={k}")
    assert k is not None and n is not None
    if schemes is None:
        schemes = [choice(cfg, "serving.scheme", served_schemes(cfg))]
    integer(cfg, "serving.num_stragglers", 0, n - 1)
    for name in schemes:
        if name == UNCODED:
            continue
        node = get(cfg, f"scheme.{name}", None)
        if not isinstance(node, DictConfig) or "_target_" not in node:
            raise ConfigError(
                f"scheme.{name}",
                f"serving {name} needs its config (scheme=all has nercc, bacc and replication)",
                node,
            )
        declared = declared_tunables(node)
        for param, value in node.items():
            if isinstance(value, ListConfig):
                raise ConfigError(
                    f"scheme.{name}.{param}",
                    "serving uses one setting; a list is a grid for nercc.eval or nercc.tune",
                    value,
                )
            if param in declared and isinstance(value, str):
                raise ConfigError(
                    f"scheme.{name}.{param}",
                    "serving takes a number, or null for the published table (auto is "
                    f"calibrated by nercc.eval; {value} is not served)",
                    value,
                )
    check_schemes(_served(cfg, schemes), k)
    number(cfg, "serving.deadline_ms", 0.0, low_open=True, optional=True)
    number(cfg, "serving.max_wait_ms", 0.0)
    integer(cfg, "serving.kill_every", 1, optional=True)
    address = get(cfg, "serving.address", None)
    if address is not None and not (
        address == "auto"
        or (isinstance(address, str) and re.fullmatch(r"(ray://)?[\w.\-\[\]:]+:\d+", address))
    ):
        raise ConfigError(
            "serving.address",
            "must be null (a local instance), auto, host:port or ray://host:port",
            address,
        )
    cpus = integer(cfg, "serving.num_cpus", 1, optional=True)
    if address is not None and cpus is not None:
        raise ConfigError(
            "serving.num_cpus",
            f"sizes a local instance; the cluster at serving.address={address} has its own, "
            "use null",
            cpus,
        )
    share = number(cfg, "serving.worker_cpus", 0.0, low_open=True)
    assert share is not None
    if address is None:
        total = cpus or os.cpu_count() or 1
        need = n * share + (ENDPOINT_CPUS if http else 0.0)
        if need > total + 1e-9:
            raise ConfigError(
                "serving.worker_cpus",
                f"N={n} workers of {share:g} CPU{' and the HTTP replica' if http else ''} need "
                f"{need:g} CPUs, more than the {total} of the local instance (lower it, or raise "
                "serving.num_cpus: a share is a reservation, not a limit)",
                share,
            )
    host = get(cfg, "serving.host")
    if not isinstance(host, str) or not host:
        raise ConfigError("serving.host", "must be an address to bind, e.g. 127.0.0.1", host)
    integer(cfg, "serving.port", 1, 65535)
    number(cfg, "serving.duration_s", 0.0, low_open=True, optional=True)
    delay = get(cfg, "delay", None)
    if delay is not None:
        if not isinstance(delay, DictConfig) or "_target_" not in delay:
            raise ConfigError(
                "delay", f"must be null or a {DelayModel.__name__} config with a _target_", delay
            )
        model_settings(cfg, "delay")
    check_writable("paths.output_dir", get(cfg, "paths.output_dir"))
    check_loggers(cfg)


def check_loadtest(cfg: DictConfig) -> None:
    """Check a load test's config: :func:`check_serve` for every scheme of ``loadtest.schemes``,
    and the load (target, queries, rate, split, timeout)."""
    names = get(cfg, "loadtest.schemes")
    items = as_list(names)
    if not items or any(name not in served_schemes(cfg) for name in items):
        raise ConfigError(
            "loadtest.schemes",
            f"must be a non-empty list of {', '.join(served_schemes(cfg))} (uncoded and the "
            "schemes of the scheme group)",
            names,
        )
    if len(set(items)) != len(items):
        raise ConfigError("loadtest.schemes", "must not repeat a scheme", names)
    target = choice(cfg, "loadtest.target", ("frontend", "http"))
    check_serve(cfg, items, http=target == "http")
    if target == "http" and get(cfg, "serving.host") not in LOOPBACK:
        raise ConfigError(
            "serving.host",
            f"a load test sends on loopback only: use one of {', '.join(LOOPBACK)}",
            get(cfg, "serving.host"),
        )
    integer(cfg, "loadtest.num_queries", 1)
    integer(cfg, "loadtest.warmup", 0, default=0)
    number(cfg, "loadtest.rate", 0.0, low_open=True)
    choice(cfg, "loadtest.split", ("test", "val"))
    number(cfg, "loadtest.timeout_s", 0.0, low_open=True)
    split, queries = cfg.loadtest.split, get(cfg, "loadtest.num_queries")
    size = int(cfg.data.val_size) if split == "val" else None
    if split == "test" and cfg.data.name == "synthetic":
        size = int(get(cfg, "data.synthetic.num_test", SYNTHETIC_DEFAULTS["num_test"]))
    if size is not None and queries > size:
        raise ConfigError(
            "loadtest.num_queries", f"the {split} split of {cfg.data.name} has {size} images",
            queries,
        )  # fmt: skip


def _served(cfg: DictConfig, schemes: Sequence[str]) -> DictConfig:
    """A view of ``cfg`` whose ``scheme`` group holds only the schemes served (uncoded: K)."""
    view = OmegaConf.create({"coding": OmegaConf.to_container(cfg.coding, resolve=True)})
    nodes = {}
    for name in schemes:
        if name == UNCODED:
            nodes[name] = {"_target_": "nercc.coding.Uncoded", "num_inputs": cfg.coding.num_inputs}
        else:
            nodes[name] = OmegaConf.to_container(cfg.scheme[name], resolve=True)
    view.scheme = nodes
    return view
