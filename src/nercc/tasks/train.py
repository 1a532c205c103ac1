"""The training task (``python -m nercc.train``, conf/train.yaml): a base classifier, or a parity
model of a published one (``experiment=parity/<model>_k<k>``: :mod:`nercc.models.parity`,
published as ``outputs/checkpoints/parity_<model>_<dataset>_k<k>.ckpt`` with the base
checkpoint's content hash, by :func:`nercc.models.publish.publish_parity`'s rule).

:func:`check_config` checks the config, the hardware and one image through the model before any
work; :func:`train` fits with Lightning, tests the best epoch's weights, then publishes them at
``outputs/checkpoints/<model>_<dataset>.ckpt`` (with a JSON summary) when they are healthy, clearly
above chance and not worse than the published model (the rule: :mod:`nercc.models.publish`;
otherwise they are kept in the run folder), and writes ``metrics.json`` in the run folder.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from nercc.runtime.checks import check_hardware, check_model_input, check_train
from nercc.runtime.loggers import log_run
from nercc.utils.instantiate import build, build_all, build_checked, config_hash, plain
from nercc.utils.io import write_json

__all__ = ["check_config", "train"]

log = logging.getLogger("nercc.train")  # the command's logger: its lines keep their name


def check_config(cfg: DictConfig) -> Any:
    """Check every setting (:func:`nercc.runtime.checks.check_train`, the hardware), then build the
    model and pass one image of the data's shape through it.

    Parameters
    ----------
    cfg : DictConfig
        A composed training config (conf/train.yaml).

    Returns
    -------
    LightningModule
        The model that was checked (built before seeding: :func:`train` builds its own after
        seeding).

    Raises
    ------
    ConfigError
        A setting that cannot run, named by its key.
    """
    check_train(cfg)
    check_hardware(cfg)
    module = build_checked("model", cfg.model)
    check_model_input(module, cfg)
    return module


def train(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train, test and publish the classifier described by ``cfg``.

    Returns
    -------
    metrics : dict
        The logged metrics after testing (``val/acc_best``, ``test/acc``, ...), plus
        ``train_seconds``, ``published``, ``publish_reason`` and ``checkpoint`` (published) or
        ``kept_checkpoint`` (kept in the run folder).
    objects : dict
        ``datamodule``, ``module`` and ``trainer``.

    Raises
    ------
    DivergedModelError (a ValueError)
        The tested weights, the test loss or the test logits are not finite: the model is kept
        in the run folder (``classifier.ckpt``), ``metrics.json`` is written, nothing published.
    """
    check_config(cfg)
    import pytorch_lightning as pl

    pl.seed_everything(cfg.seed, workers=True)
    datamodule = build(cfg.data)
    datamodule.setup("fit")  # fail here, before any model is built, when the data is missing
    data_info = datamodule.describe()
    for note in data_info["notes"]:
        log.info(f"note: {note}")
    module = build(cfg.model)
    callbacks = _callbacks(cfg)
    loggers = build_all(cfg.get("logger"))
    trainer = build(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    log_run(loggers, {**plain(cfg), "data_source": data_info})

    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule)
    train_seconds = time.perf_counter() - start
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    checkpoint = trainer.checkpoint_callback
    best = checkpoint.best_model_path if checkpoint is not None else ""
    trainer.test(module, datamodule=datamodule, ckpt_path=best or None)
    metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
    metrics["train_seconds"] = train_seconds

    # Publishing: the rule is nercc.models.publish's (a run replaces the published model only if
    # it trained and tests at least as well; publish=force always, publish=false never).
    if trainer.fast_dev_run:
        metrics.update(published=False, publish_reason="fast_dev_run")
    elif trainer.is_global_zero and _is_parity(module):
        outcome = _publish_parity(cfg, module, datamodule, trainer, metrics, data_info)
        metrics.update(outcome.metrics())
        if outcome.failed:
            write_json(Path(cfg.paths.output_dir) / "metrics.json", metrics)
            from nercc.models.publish import DivergedModelError

            raise DivergedModelError(outcome.message)
        (log.warning if outcome.reason == "unwritable" else log.info)(outcome.message)
    elif trainer.is_global_zero:
        from nercc.models import publish_run

        info = {
            "model": cfg.model_name,
            "dataset": cfg.data.name,
            "channels": int(cfg.data.channels),
            "image_size": int(cfg.data.image_size),
            "num_classes": int(cfg.data.num_classes),
            "test_acc": metrics.get("test/acc"),
            "val_acc_best": metrics.get("val/acc_best"),
            "test_loss": metrics.get("test/loss"),
            "test_nonfinite": metrics.get("test/nonfinite"),
            **_evaluated_images(trainer, datamodule),
            "epochs": trainer.current_epoch,
            "train_seconds": round(train_seconds, 1),
            "config_hash": config_hash(cfg),
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "data": data_info,
            "seed": cfg.seed,
        }
        outcome = publish_run(
            module.net,  # the best epoch's weights: trainer.test loaded them from `best`
            plain(cfg.model.net),
            datamodule.mean.tolist(),
            datamodule.std.tolist(),
            info,
            cfg.paths.checkpoint_dir,
            cfg.paths.output_dir,
            mode=cfg.get("publish", True),
            trained_epochs=trainer.current_epoch if trainer.global_step > 0 else 0,
        )
        metrics.update(outcome.metrics())
        if outcome.failed:
            write_json(Path(cfg.paths.output_dir) / "metrics.json", metrics)
            from nercc.models.publish import DivergedModelError

            raise DivergedModelError(outcome.message)
        (log.warning if outcome.reason in ("chance", "unwritable") else log.info)(outcome.message)
    write_json(Path(cfg.paths.output_dir) / "metrics.json", metrics)
    return metrics, {"datamodule": datamodule, "module": module, "trainer": trainer}


def _is_parity(module: Any) -> bool:
    """Whether the run trains a parity model (:class:`nercc.models.parity.ParityModule`)."""
    from nercc.models.parity import ParityModule

    return isinstance(module, ParityModule)


def _publish_parity(
    cfg: DictConfig,
    module: Any,
    datamodule: Any,
    trainer: Any,
    metrics: dict[str, Any],
    data_info: dict[str, Any],
) -> Any:
    """Publish the parity model at ``parity_<model>_<dataset>_k<k>.ckpt`` beside its base model
    (:func:`nercc.models.publish.publish_parity`), recording the base checkpoint's content hash
    (checked when the evaluation loads it), its test reconstruction accuracy and training time."""
    from nercc.models.publish import publish_parity

    base = module.base_info
    info = {
        "model": base.get("model", cfg.model_name),
        "dataset": cfg.data.name,
        "parity_k": module.k,
        "base_checkpoint": base.get("path"),
        "base_sha256": base.get("sha256"),
        "base_test_acc": base.get("test_acc"),
        "channels": int(cfg.data.channels),
        "image_size": int(cfg.data.image_size),
        "num_classes": int(cfg.data.num_classes),
        "test_loss": metrics.get("test/loss"),
        "test_recon_acc": metrics.get("test/recon_acc"),
        "test_recon_label_acc": metrics.get("test/recon_label_acc"),
        "val_recon_acc_best": metrics.get("val/recon_acc_best"),
        "epochs": trainer.current_epoch,
        "train_seconds": round(metrics["train_seconds"], 1),
        "config_hash": config_hash(cfg),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "data": data_info,
        "seed": cfg.seed,
    }
    return publish_parity(
        module.net,
        plain(cfg.model.net),
        module.mean,
        module.std,
        info,
        cfg.paths.checkpoint_dir,
        cfg.paths.output_dir,
        mode=cfg.get("publish", True),
        trained_epochs=trainer.current_epoch if trainer.global_step > 0 else 0,
    )


def _evaluated_images(trainer: Any, datamodule: Any) -> dict[str, Any]:
    """How many test and validation images the accuracies were measured on, and the sizes of
    the splits (accuracies are compared only on the same images), and the chance accuracy on
    those images: the share of their most frequent class (a model must beat it clearly)."""
    out: dict[str, Any] = {}
    for split, batches, dataset in (
        ("test", trainer.num_test_batches, datamodule.test_set),
        ("val", trainer.num_val_batches, datamodule.val_set),
    ):
        size = len(dataset)
        count = sum(int(b) for b in batches) * datamodule.eval_batch_size if batches else 0
        out[f"{split}_images"], out[f"{split}_set_size"] = min(count, size), size
        labels = getattr(dataset, "tensors", (None, None))[1]
        if labels is not None and min(count, size) > 0:
            counts = labels[: min(count, size)].bincount()
            out[f"{split}_chance"] = round(float(counts.max()) / min(count, size), 6)
    return out


def _callbacks(cfg: DictConfig) -> list[Any]:
    """The configured callbacks, without a progress bar or model summary the trainer's settings
    turn off (Lightning refuses the pair: ``trainer.enable_progress_bar=false`` just works)."""
    from pytorch_lightning.callbacks import ModelSummary, ProgressBar

    callbacks = build_all(cfg.get("callbacks"))
    if not cfg.trainer.get("enable_progress_bar", True):
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    if not cfg.trainer.get("enable_model_summary", True):
        callbacks = [c for c in callbacks if not isinstance(c, ModelSummary)]
    return callbacks
