"""A training config (nercc.train) and the built model against the data."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from nercc.runtime.checks.common import (
    check_data,
    check_loggers,
    check_seed,
    check_trainer,
    check_writable,
)
from nercc.runtime.checks.readers import get, integer, number
from nercc.utils.errors import ConfigError


def check_train(cfg: DictConfig) -> None:
    """Check a training config: data, model, optimiser, trainer, logger, folders, publishing."""
    check_seed(cfg)
    _, size, classes = check_data(cfg)
    for key in ("model.num_classes", "model.net.num_classes"):
        if get(cfg, key, None) is not None and get(cfg, key) != classes:
            raise ConfigError(key, f"must equal data.num_classes={classes}", get(cfg, key))
    for key, want in (("image_size", size), ("in_channels", int(cfg.data.channels))):
        value = get(cfg, f"model.net.{key}", None)
        if value is not None and value != want:
            raise ConfigError(
                f"model.net.{key}", f"must equal data.{key.replace('in_', '')}={want}", value
            )
    number(cfg, "model.optimizer.lr", 0.0, low_open=True)
    number(cfg, "model.optimizer.weight_decay", 0.0, default=0.0)
    number(cfg, "model.label_smoothing", 0.0, 1.0, high_open=True, default=0.0)
    number(cfg, "model.scheduler.warmup_fraction", 0.0, 1.0, high_open=True, default=0.0)
    patch = get(cfg, "model.net.patch_size", None)
    if patch is not None:
        integer(cfg, "model.net.patch_size", 1, size)
        if size % patch:
            raise ConfigError("model.net.patch_size", f"must divide data.image_size={size}", patch)
    heads = get(cfg, "model.net.num_heads", None)
    if heads is not None:
        integer(cfg, "model.net.num_heads", 1)
        dim = integer(cfg, "model.net.embed_dim", 1)
        if dim % heads:  # type: ignore[operator]
            raise ConfigError(
                "model.net.num_heads", f"must divide model.net.embed_dim={dim}", heads
            )
    publish = get(cfg, "publish", True)
    if not (isinstance(publish, bool) or publish == "force"):
        raise ConfigError("publish", "must be true (when not worse), false or force", publish)
    metric = get(cfg, "optimized_metric", None)
    if metric is not None and not isinstance(metric, str):
        raise ConfigError("optimized_metric", "must be null or a metric name", metric)
    check_writable("paths.output_dir", get(cfg, "paths.output_dir"))
    check_trainer(cfg, training=True)
    check_loggers(cfg)
    if publish:
        check_writable("paths.checkpoint_dir", get(cfg, "paths.checkpoint_dir"))


def check_model_input(module: Any, cfg: DictConfig) -> None:
    """One forward pass of a zero image of the data's shape through the built network, so that
    a shape it cannot take is found before training (imports torch)."""
    import torch

    shape = (1, int(cfg.data.channels), int(cfg.data.image_size), int(cfg.data.image_size))
    net = module.net if hasattr(module, "net") else module
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            out = net(torch.zeros(shape))
    except (RuntimeError, ValueError, AssertionError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ConfigError(
            "model.net", f"cannot take data images of shape {shape[1:]} ({reason})",
            get(cfg, "model.net._target_", None),
        ) from None  # fmt: skip
    finally:
        net.train(was_training)
    classes = int(cfg.data.num_classes)
    if tuple(out.shape) != (1, classes):
        raise ConfigError(
            "model.net", f"must give {classes} logits per image, gives {tuple(out.shape[1:])}",
            get(cfg, "model.net._target_", None),
        )  # fmt: skip
