"""Training: every config option composes, each model trains on synthetic data, the published
checkpoint loads back as the same classifier, missing data fails fast with a clear message."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate

from nercc.models import load_classifier
from nercc.paths import CONFIG_DIR
from nercc.tasks.train import train

GROUPS = {
    group: sorted(p.stem for p in (Path(CONFIG_DIR) / group).glob("*.yaml"))
    for group in ("data", "model", "trainer", "callbacks", "logger", "experiment", "debug")
}
TINY = ["data=synthetic", "debug=fdr"]
TINY_VIT = ["model.net.embed_dim=32", "model.net.depth=1", "model.net.num_heads=2"]


@pytest.mark.parametrize("data", GROUPS["data"])
@pytest.mark.parametrize("model", GROUPS["model"])
def test_data_and_model_options_compose_and_instantiate(compose_config, data, model):
    cfg = compose_config("train", [f"data={data}", f"model={model}"])
    datamodule = instantiate(cfg.data)
    assert datamodule.name == cfg.data.name
    module = instantiate(cfg.model)
    shape = (2, cfg.data.channels, cfg.data.image_size, cfg.data.image_size)
    assert module(torch.zeros(shape)).shape == (2, cfg.data.num_classes)
    assert cfg.model_name == model


@pytest.mark.parametrize(
    ("group", "option"), [(g, o) for g in ("trainer", "callbacks", "logger") for o in GROUPS[g]]
)
def test_runtime_options_compose_and_instantiate(compose_config, group, option):
    cfg = compose_config("train", [f"{group}={option}"])
    if group == "trainer":
        assert cfg.trainer._target_ == "pytorch_lightning.Trainer"
        if cfg.trainer.accelerator != "gpu" or torch.cuda.is_available():
            assert isinstance(instantiate(cfg.trainer, logger=False), pl.Trainer)
    elif cfg.get(group):
        for node in cfg[group].values():
            assert instantiate(node) is not None


@pytest.mark.parametrize("option", GROUPS["experiment"] + [f"debug/{d}" for d in GROUPS["debug"]])
def test_experiment_and_debug_presets_compose(compose_config, option):
    group, name = ("debug", option[6:]) if option.startswith("debug/") else ("experiment", option)
    cfg = compose_config("train", [f"{group}={name}"])
    if group == "experiment":
        model, dataset = name.rsplit("_", 1)[0].split("_", 1)[0], cfg.data.name
        assert cfg.model_name == model and name.endswith(dataset)
        assert cfg.trainer.max_epochs >= 1


@pytest.mark.parametrize("model", ["lenet5", "repvgg", "vit"])
def test_fast_dev_run_of_each_model(compose_config, model):
    overrides = [*TINY, f"model={model}"] + (TINY_VIT if model == "vit" else [])
    metrics, objects = train(compose_config("train", overrides))
    assert 0.0 <= metrics["test/acc"] <= 1.0
    assert "checkpoint" not in metrics  # fast_dev_run publishes nothing


def test_training_learns_and_checkpoint_round_trips(compose_config, tmp_path):
    cfg = compose_config(
        "train",
        [
            "data=synthetic",
            "callbacks=none",
            "logger=csv",
            "trainer.max_epochs=4",
            "trainer.enable_progress_bar=false",
            "trainer.enable_model_summary=false",
        ],
    )
    metrics, objects = train(cfg)
    assert metrics["test/acc"] > 0.8  # prototypes plus noise are easy to learn
    summary = json.loads((tmp_path / "checkpoints" / "lenet5_synthetic.json").read_text())
    assert summary["test_acc"] == pytest.approx(metrics["test/acc"])
    assert len(summary["config_hash"]) == 16 and summary["date"].startswith("20")
    assert (
        json.loads((tmp_path / "run" / "metrics.json").read_text())["test/acc"]
        == metrics["test/acc"]
    )
    assert (tmp_path / "run" / "csv" / "metrics.csv").exists()

    classifier = load_classifier("lenet5", "synthetic", tmp_path / "checkpoints")
    assert not classifier.training and not any(p.requires_grad for p in classifier.parameters())
    datamodule, module = objects["datamodule"], objects["module"].eval()
    raw, labels = datamodule.raw_set("test").tensors
    with torch.no_grad():
        expected = module(datamodule.normalize(raw))
    torch.testing.assert_close(classifier(raw), expected, atol=1e-5, rtol=1e-5)
    accuracy = (classifier(raw).argmax(1) == labels).float().mean().item()
    assert accuracy == pytest.approx(metrics["test/acc"], abs=1e-6)


def test_repvgg_checkpoint_loads_reparameterised(compose_config, tmp_path):
    cfg = compose_config(
        "train",
        [
            "data=synthetic",
            "model=repvgg",
            "callbacks=none",
            "logger=none",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=2",
            "trainer.enable_progress_bar=false",
            "publish=force",  # two steps leave RepVGG at chance: the guard would keep it
        ],
    )
    metrics, objects = train(cfg)
    classifier = load_classifier("repvgg", "synthetic", tmp_path / "checkpoints")
    raw, _ = objects["datamodule"].raw_set("test").tensors
    with torch.no_grad():
        expected = objects["module"].eval()(objects["datamodule"].normalize(raw[:16]))
    torch.testing.assert_close(classifier(raw[:16]), expected, atol=1e-3, rtol=1e-3)
    names = [name for name, _ in classifier.named_modules()]
    assert any(name.endswith("reparam_conv") for name in names)  # the plain inference form
    assert not any(name.endswith(("conv_kxk", "conv_1x1")) for name in names)


def test_missing_checkpoint_names_the_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m nercc.train model=vit data=mnist"):
        load_classifier("vit", "mnist", tmp_path)


def test_wandb_offline_logger(compose_config, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = compose_config(
        "train",
        [
            "data=synthetic",
            "logger=wandb",
            "callbacks=none",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=2",
            "trainer.enable_progress_bar=false",
            "publish=false",
        ],
    )
    train(cfg)
    runs = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and any(runs[0].rglob("*.wandb"))


def test_cli_fails_fast_without_cifar(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "nercc.train",
            "data=cifar10",
            f"paths.data_dir={tmp_path / 'nothing'}",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    assert "dataset 'cifar10' not found" in result.stderr
    assert str(tmp_path / "nothing" / "cifar-10-batches-py") in result.stderr
    assert "Traceback" not in result.stderr


def test_progress_bar_and_summary_can_be_turned_off_with_the_default_callbacks(compose_config):
    # Lightning refuses enable_progress_bar=False beside a RichProgressBar callback: train drops it
    cfg = compose_config(
        "train",
        ["data=synthetic", "trainer.max_epochs=1", "trainer.limit_train_batches=1",
         "trainer.limit_val_batches=1", "trainer.enable_progress_bar=false",
         "trainer.enable_model_summary=false", "logger=none"],
    )  # fmt: skip
    metrics, objects = train(cfg)
    names = {type(c).__name__ for c in objects["trainer"].callbacks}
    assert "RichProgressBar" not in names and "RichModelSummary" not in names
    assert "ModelCheckpoint" in names and metrics["published"] is True
