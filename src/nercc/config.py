"""Hydra helpers shared by the entry points: resolvers, the one place that instantiates, and a
wrapper that turns bad input into one clear line and always closes the W&B run."""

from __future__ import annotations

import functools
import hashlib
import json
import sys
import warnings
from collections.abc import Callable
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from nercc.paths import project_root

__all__ = ["build", "build_all", "config_hash", "plain", "task_wrapper"]

# Lightning 2.6 on torch 2.14 warns about its own use of a deprecated torch API at every run.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")

if not OmegaConf.has_resolver("nercc_root"):
    OmegaConf.register_new_resolver("nercc_root", lambda: str(project_root()))
if not OmegaConf.has_resolver("nercc_div"):  # integer division, e.g. replicas = N // K
    OmegaConf.register_new_resolver("nercc_div", lambda a, b: int(a) // int(b))


def build(node: DictConfig | None, **kwargs: Any) -> Any:
    """Instantiate one ``_target_`` node (None stays None)."""
    if node is None:
        return None
    return instantiate(node, **kwargs)


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


def task_wrapper(task: Callable[[DictConfig], Any]) -> Callable[[DictConfig], Any]:
    """Run ``task(cfg)``; on a known user error print one clear message and exit with status 1;
    whatever happens, finish the W&B run if one was started."""

    @functools.wraps(task)
    def wrapped(cfg: DictConfig) -> Any:
        from hydra.errors import InstantiationException

        from nercc.data.sources import DataNotFoundError

        try:
            return task(cfg)
        except (DataNotFoundError, FileNotFoundError, ValueError, InstantiationException) as error:
            print(f"error: {error}", file=sys.stderr)
            raise SystemExit(1) from None
        finally:
            if "wandb" in sys.modules:
                import wandb

                if wandb.run is not None:
                    wandb.finish()

    return wrapped
