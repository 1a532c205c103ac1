"""One setup helper: what a task loads before its work, in the same order for every task."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from nercc.runtime.checks import (
    check_batches,
    check_checkpoint_exists,
    check_hardware,
    expected_input,
)
from nercc.utils.instantiate import build

__all__ = ["Loaded", "load_task_inputs"]


@dataclass
class Loaded:
    """What :func:`load_task_inputs` loaded.

    Attributes
    ----------
    checkpoint : Path
        The published classifier's file.
    processes : int
        The processes of ``cfg.trainer`` (1 without a hardware check).
    data : LightningDataModule
        ``cfg.data``, set up for its test and validation splits.
    classifier : torch.nn.Module
        The published classifier for (``cfg.model_name``, ``cfg.data.name``), in eval mode.
    """

    checkpoint: Path
    processes: int
    data: Any
    classifier: Any


def load_task_inputs(
    cfg: DictConfig,
    *,
    hardware: bool = True,
    seed: bool = True,
    batches: DictConfig | None = None,
) -> Loaded:
    """Load what a task needs, cheapest check first: the checkpoint is there, the trainer fits
    this machine, the seed, the data, every process gets a batch, then the classifier (whose
    content, input shape and classes are checked as it is read).

    Parameters
    ----------
    cfg : DictConfig
        The task's checked config (``model_name``, ``data``, ``paths``, ``seed``, ``trainer``).
    hardware : bool, optional
        Check ``cfg.trainer`` against this machine (tasks that run a Lightning trainer).
    seed : bool, optional
        Seed every generator with ``cfg.seed`` (tasks whose randomness is not seeded
        explicitly; the load test passes ``cfg.seed`` to what draws).
    batches : DictConfig, optional
        The config whose ``eval`` node is run (the validation one when tuning): its batches are
        checked against the split's size and the processes.

    Returns
    -------
    Loaded
    """
    checkpoint = check_checkpoint_exists(cfg)
    processes = check_hardware(cfg) if hardware else 1
    import pytorch_lightning as pl

    from nercc.models import load_classifier

    if seed:
        pl.seed_everything(cfg.seed, workers=True)
    data = build(cfg.data)
    data.setup("test")
    if batches is not None:
        check_batches(batches, len(data.raw_set(batches.eval.split)), processes)
    classifier = load_classifier(
        cfg.model_name, cfg.data.name, cfg.paths.checkpoint_dir, **expected_input(cfg)
    )
    return Loaded(checkpoint, processes, data, classifier)
