"""Shared fixtures: composing the project's Hydra configs as a run would, in a scratch folder."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from nercc.paths import CONFIG_DIR

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
# Ray instances of the tests are local and short-lived: no auth token written under $HOME
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


@pytest.fixture(autouse=True)
def finish_wandb():
    """Task functions called directly (not through the CLI wrapper) leave the W&B run open."""
    yield
    if "wandb" in sys.modules:
        import wandb

        if wandb.run is not None:
            wandb.finish()


@pytest.fixture
def compose_config(tmp_path: Path) -> Callable[..., DictConfig]:
    """``compose_config("train", ["data=synthetic"])``: the composed config with Hydra's runtime
    set, writing only under ``tmp_path`` (outputs, checkpoints, data)."""

    def _compose(name: str, overrides: list[str] | None = None) -> DictConfig:
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            cfg = compose(config_name=name, overrides=overrides or [], return_hydra_config=True)
        cfg.hydra.runtime.output_dir = str(tmp_path / "run")
        HydraConfig.instance().set_config(cfg)
        given = {o.split("=", 1)[0] for o in overrides or []}
        scratch = {"log_dir": "outputs", "output_dir": "run", "checkpoint_dir": "checkpoints"}
        scratch["data_dir"] = "data"
        with open_dict(cfg):
            for key, folder in scratch.items():
                if f"paths.{key}" not in given:
                    cfg.paths[key] = str(tmp_path / folder)
        return cfg

    yield _compose
    GlobalHydra.instance().clear()


def _train_into(root: Path, overrides: list[str]) -> dict:
    """Run ``nercc.train`` with ``overrides`` (plus no callbacks, logger or bars) publishing into
    ``root``; its metrics."""
    from nercc.tasks.train import train

    GlobalHydra.instance().clear()
    quiet = ["callbacks=none", "logger=none", "trainer.enable_progress_bar=false",
             "trainer.enable_model_summary=false"]  # fmt: skip
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", [*overrides, *quiet], return_hydra_config=True)
    cfg.hydra.runtime.output_dir = str(root / "run")
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(root / "run")
        cfg.paths.checkpoint_dir = str(root)
    metrics, _ = train(cfg)
    GlobalHydra.instance().clear()
    return metrics


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory):
    """A LeNet5 trained for a few epochs on the synthetic images, published in a scratch folder."""
    root = tmp_path_factory.mktemp("published")
    _train_into(root, ["data=synthetic", "trainer.max_epochs=3"])
    return root


@pytest.fixture(scope="session")
def parity(checkpoints, tmp_path_factory):
    """A parity model (k = 2) of the synthetic LeNet5, trained one step and published beside a
    copy of its base model."""
    import shutil

    root = tmp_path_factory.mktemp("parity")
    for suffix in (".ckpt", ".json"):
        shutil.copy(checkpoints / f"lenet5_synthetic{suffix}", root / f"lenet5_synthetic{suffix}")
    overrides = ["experiment=parity/default", "data=synthetic", "parity.k=2",
                 "trainer.max_epochs=1", "trainer.limit_train_batches=1"]  # fmt: skip
    return root, _train_into(root, overrides)
