"""The one place that instantiates Hydra ``_target_`` nodes, and plain views of configs.

Layers below the command line (models, evaluation) use these; the command-line helpers (resolvers,
the task wrapper, warning filters) live in :mod:`nercc.runtime`.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

__all__ = ["build", "build_all", "build_checked", "config_hash", "plain", "target_class"]


@functools.cache
def target_class(target: str) -> type | None:
    """The class a ``_target_`` string names, or None where it names no importable class (the
    instantiation then says why)."""
    module, _, name = str(target).rpartition(".")
    try:
        found = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return None
    return found if isinstance(found, type) else None


def build(node: DictConfig | None, **kwargs: Any) -> Any:
    """Instantiate one ``_target_`` node (None stays None)."""
    if node is None:
        return None
    return instantiate(node, **kwargs)


def build_checked(key: str, node: DictConfig | Any, **kwargs: Any) -> Any:
    """Instantiate a ``_target_`` node whose arguments come from the user: an argument the
    target refuses or does not take raises :class:`ConfigError` ``'<key>: <reason>'`` (one line).
    """
    from hydra.errors import InstantiationException

    from nercc.utils.errors import ConfigError

    try:
        return build(node, **kwargs)
    except InstantiationException as error:
        cause = error.__cause__ if error.__cause__ is not None else error
        reason = " ".join(str(cause).split()) or type(cause).__name__
        raise ConfigError(key, reason) from None


def build_all(group: DictConfig | None) -> list[Any]:
    """Instantiate every ``_target_`` node of a group of named entries (callbacks, loggers)."""
    if not group:
        return []
    return [
        build(node)
        for node in group.values()
        if isinstance(node, DictConfig) and "_target_" in node
    ]


def plain(node: DictConfig) -> dict[str, Any]:
    """A resolved config as plain Python containers (without Hydra's own ``hydra`` node)."""
    node = node.copy()
    if "hydra" in node:
        with open_dict(node):
            del node["hydra"]
    return OmegaConf.to_container(node, resolve=True)  # type: ignore[return-value]


def config_hash(
    cfg: DictConfig, keys: tuple[str, ...] = ("data", "model", "trainer", "seed")
) -> str:
    """Short SHA-256 of the resolved parts of a config that decide a result."""
    subset = {
        k: plain(cfg[k]) if isinstance(cfg[k], DictConfig) else cfg[k] for k in keys if k in cfg
    }
    subset.get("data", {}).pop("root", None)  # where the data lives does not change the result
    blob = json.dumps(subset, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
