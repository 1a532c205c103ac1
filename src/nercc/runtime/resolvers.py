"""The ``nercc_*`` resolvers of the configs, registered once when this module is imported (the
only import-time effect of the runtime): ``nercc_root`` (the project folder), ``nercc_div``
(integer division, e.g. replicas = N // K), ``nercc_run_stamp`` (unique run folder names),
``nercc_wandb_group`` (one W&B group per sweep) and ``nercc_log_grid`` (0 and ``num``
log-spaced values, low to high: a tuning grid)."""

from __future__ import annotations

import secrets
from datetime import datetime
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import OmegaConf

from nercc.paths import project_root
from nercc.tuning.search import log_grid

__all__ = ["is_multirun", "register_resolvers", "run_stamp", "wandb_group"]


def run_stamp() -> str:
    """A run folder's name: the local time to the second and 8 random hex digits.

    ``2026-12-05_21-30-12_3fa85f64``: runs started in the same second, in several processes or on
    several hosts sharing a file system, get distinct folders (a collision needs the same
    32 random bits in the same second). Registered as the resolver ``nercc_run_stamp`` with
    Hydra's cache on, so every ``${nercc_run_stamp:}`` of one config, and of every job of a
    multirun (Hydra copies the primary config's resolver cache into each job's config, also when
    a launcher ships it to another process), reads the same value.
    """
    return f"{datetime.now():%Y-%m-%d_%H-%M-%S}_{secrets.token_hex(4)}"


def is_multirun() -> bool:
    """Whether this process runs one job of a Hydra multirun (False outside Hydra)."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def wandb_group(task_name: str) -> str:
    """The W&B group of a run (resolver ``nercc_wandb_group``).

    Parameters
    ----------
    task_name : str
        The config's ``task_name``.

    Returns
    -------
    str
        ``task_name`` in a single run; ``<task_name>-<sweep dir name>`` in every job of a
        multirun, so that all the trials of one sweep land in one group.
    """
    if is_multirun():
        return f"{task_name}-{Path(str(HydraConfig.get().sweep.dir)).name}"
    return str(task_name)


def register_resolvers() -> None:
    """Register the ``nercc_*`` resolvers (each once: a second call changes nothing)."""
    resolvers = {
        "nercc_root": (lambda: str(project_root()), False),
        "nercc_div": (lambda a, b: int(a) // int(b), False),
        "nercc_run_stamp": (run_stamp, True),
        "nercc_wandb_group": (wandb_group, False),
        "nercc_log_grid": (log_grid, False),
    }
    for name, (resolver, cached) in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver, use_cache=cached)


register_resolvers()
