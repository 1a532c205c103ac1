"""Serving and load-test configs (nercc.serve, nercc.loadtest)."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from omegaconf import DictConfig, ListConfig, OmegaConf

from nercc.data.sources import SYNTHETIC_DEFAULTS
from nercc.evaluation.variants import scheme_class
from nercc.runtime.checks.common import (
    check_arrangement,
    check_data,
    check_loggers,
    check_seed,
    check_writable,
)
from nercc.runtime.checks.readers import (
    as_list,
    choice,
    get,
    integer,
    is_int,
    is_number,
    number,
)
from nercc.runtime.checks.schemes import check_schemes, declared_tunables, model_settings
from nercc.serving.plan import BUILT_IN, ENDPOINT_CPUS, HEDGED, UNCODED
from nercc.stragglers import DelayModel
from nercc.utils.errors import ConfigError


def served_schemes(cfg: DictConfig) -> list[str]:
    """The schemes a serving config can serve: ``uncoded``, ``hedged`` and every scheme of its
    ``scheme`` group (``scheme=all``: nercc, bacc and replication)."""
    schemes = get(cfg, "scheme", None)
    return [*BUILT_IN, *(schemes if isinstance(schemes, DictConfig) else [])]


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def check_serve(cfg: DictConfig, schemes: Sequence[str] | None = None, http: bool = True) -> None:
    """Check a serving config (``nercc.serve``, and the shared part of ``nercc.loadtest``).

    The code (N >= K), S <= N - 1, the schemes served (``serving.scheme``, or ``schemes``) and
    their nodes with one setting each (a list is a grid, not something to serve), equal resources
    (replication's copies fill the N workers), the delay model, the wait and fault settings,
    Ray's address and CPU shares, the HTTP address, the data, the loggers and the output folder,
    the Byzantine workers (:func:`check_byzantine`) and the hedge settings (:func:`check_hedging`).
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
        if name in BUILT_IN:
            continue
        node = get(cfg, f"scheme.{name}", None)
        if not isinstance(node, DictConfig) or "_target_" not in node:
            raise ConfigError(
                f"scheme.{name}",
                f"serving {name} needs its config: scheme=all has nercc, bacc and replication; "
                f"add others with e.g. 'scheme=[all,{name}]'",
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
    check_byzantine(cfg, schemes, k, n)
    check_hedging(cfg, schemes, k, n)
    number(cfg, "serving.deadline_ms", 0.0, low_open=True, optional=True)
    number(cfg, "serving.max_wait_ms", 0.0)
    check_arrangement(cfg)
    integer(cfg, "serving.buffer", 1, default=1)
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


def check_hedging(cfg: DictConfig, schemes: Sequence[str], k: int, n: int) -> None:
    """Check the hedge settings: ``serving.hedge_after_ms`` a finite number > 0 or ``auto``,
    ``serving.hedge_percentile`` in (0, 100) (``auto`` and 95 when absent), and N > K when
    ``hedged`` is served (a spare to hedge to).

    Raises
    ------
    ConfigError
        One line naming the key and the value, e.g. ``serving.hedge_after_ms: must be a finite
        number > 0 (milliseconds) or auto, got 0``.
    """
    after = get(cfg, "serving.hedge_after_ms", "auto")
    if not (after == "auto" and isinstance(after, str)) and not (is_number(after) and after > 0):
        raise ConfigError(
            "serving.hedge_after_ms", "must be a finite number > 0 (milliseconds) or auto", after
        )
    number(cfg, "serving.hedge_percentile", 0.0, 100.0, low_open=True, high_open=True, default=95)
    if HEDGED in schemes and n <= k:
        raise ConfigError(
            "coding.num_workers",
            f"hedged needs a spare to hedge to: N > K={k} (K primaries, N - K spares)",
            n,
        )


#: The adversary kinds a serving worker can apply to its own answer alone.
_SERVABLE = "gaussian, sign_flip, constant or label_flip"


def check_byzantine(cfg: DictConfig, schemes: Sequence[str], k: int, n: int) -> None:
    """Check the Byzantine workers of a serving config.

    ``serving.adversaries`` is a list (possibly empty) of distinct worker indices in [0, N);
    the ``adversary`` node gives only the settings its class declares, each in its range, and is
    a kind a worker can apply to its own answer (not ``targeted``, not ``placement:
    adversarial``: both read the decoder of a whole group); a non-empty list needs a kind other
    than ``none``; every served scheme that screens (``screens``) must be able to drop the A
    adversarial answers from the N - S answers it decodes: A <= (N - S - K) // 2; and
    ``serving.flag_fraction`` is in [0, 1), ``serving.flag_window`` and
    ``serving.exclude_groups`` integers >= 1.

    Raises
    ------
    ConfigError
        One line naming the key, e.g. ``serving.adversaries: nercc_robust screens at most
        (N - S - K) // 2 = 2 adversarial answers of the N - S = 8 it decodes, got [1, 2, 3]``.
    """
    number(cfg, "serving.flag_fraction", 0.0, 1.0, high_open=True)
    integer(cfg, "serving.flag_window", 1)
    integer(cfg, "serving.exclude_groups", 1)
    value = get(cfg, "serving.adversaries")
    items = as_list(value)
    what = f"must be a list of distinct worker indices in [0, {n}) (N={n})"
    if items is None or not all(is_int(w) and 0 <= w < n for w in items):
        raise ConfigError("serving.adversaries", what, value)
    if len(set(items)) != len(items):
        raise ConfigError("serving.adversaries", f"{what}: no index twice", value)
    kind = _adversary_kind(cfg)
    if not items:
        return
    if kind == "none":
        raise ConfigError(
            "serving.adversaries",
            f"adversary=none cannot make workers {list(items)} lie; choose adversary= "
            f"{_SERVABLE.replace(' or ', ', ')}",
            value,
        )
    s = integer(cfg, "serving.num_stragglers", 0, n - 1)
    assert s is not None
    most = max((n - s - k) // 2, 0)
    for name in schemes:
        cls = None if name in BUILT_IN else scheme_class(get(cfg, f"scheme.{name}", None))
        if cls is not None and cls.screens and len(items) > most:
            raise ConfigError(
                "serving.adversaries",
                f"{name} screens at most (N - S - K) // 2 = {most} adversarial answers of the "
                f"N - S = {n - s} it decodes (K={k}); use fewer, or a smaller S",
                value,
            )


def _adversary_kind(cfg: DictConfig) -> str | None:
    """The kind of the ``adversary`` node, checked against what its class declares; a kind
    that needs a whole group's decoder is refused (None: a class that declares nothing, left to
    its instantiation)."""
    node = get(cfg, "adversary", None)
    if not isinstance(node, DictConfig) or "_target_" not in node:
        raise ConfigError("adversary", "must be an adversary model config with a _target_", node)
    cls, values = model_settings(cfg, "adversary", "serving.adversaries names the workers")
    kind = getattr(cls, "kind", None)
    if kind == "targeted":
        raise ConfigError(
            "adversary",
            "targeted aims at a whole group's decoded estimate; a serving worker corrupts only "
            f"its own answer: use {_SERVABLE}",
            kind,
        )
    if values.get("placement") == "adversarial":
        raise ConfigError(
            "adversary.placement",
            "adversarial placement reads a whole group's decoder; serving places the "
            "adversaries by index (serving.adversaries): use random",
            values["placement"],
        )
    return kind


def check_loadtest(cfg: DictConfig) -> None:
    """Check a load test's config: :func:`check_serve` for every scheme of ``loadtest.schemes``,
    and the load (target, queries, rate, split, timeout)."""
    names = get(cfg, "loadtest.schemes")
    items = as_list(names)
    if not items or any(name not in served_schemes(cfg) for name in items):
        raise ConfigError(
            "loadtest.schemes",
            f"must be a non-empty list of {', '.join(served_schemes(cfg))} (uncoded, hedged "
            "and the schemes of the scheme group; add one with e.g. 'scheme=[all,parm]')",
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
    """A view of ``cfg`` whose ``scheme`` group holds only the schemes served (uncoded: K;
    hedged: N, at equal cost with the codes)."""
    view = OmegaConf.create({"coding": OmegaConf.to_container(cfg.coding, resolve=True)})
    nodes = {}
    for name in schemes:
        if name == UNCODED:
            nodes[name] = {"_target_": "nercc.coding.Uncoded", "num_inputs": cfg.coding.num_inputs}
        elif name == HEDGED:
            nodes[name] = {
                "_target_": "nercc.serving.hedging.Hedged",
                "num_inputs": cfg.coding.num_inputs,
                "num_workers": cfg.coding.num_workers,
            }
        else:
            nodes[name] = OmegaConf.to_container(cfg.scheme[name], resolve=True)
    view.scheme = nodes
    return view
