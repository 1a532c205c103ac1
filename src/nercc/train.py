"""Train a base classifier: ``python -m nercc.train experiment=<name>`` (Hydra, conf/train.yaml).

Fits with Lightning, tests the best checkpoint, then publishes it at
``outputs/checkpoints/<model>_<dataset>.ckpt`` (with a JSON summary) and writes ``metrics.json``
in the run directory beside Hydra's resolved config.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
from omegaconf import DictConfig

from nercc.config import task_wrapper
from nercc.paths import CONFIG_DIR
from nercc.utils.instantiate import build, build_all, config_hash, plain
from nercc.utils.io import write_json

__all__ = ["train"]


def train(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train, test and publish the classifier described by ``cfg``.

    Returns
    -------
    metrics : dict
        The logged metrics after testing (``val/acc_best``, ``test/acc``, ...), plus
        ``train_seconds`` and ``checkpoint``.
    objects : dict
        ``datamodule``, ``module`` and ``trainer``.
    """
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = build(cfg.data)
    datamodule.setup("fit")  # fail here, before any model is built, when the data is missing
    data_info = datamodule.describe()
    for note in data_info["notes"]:
        print(f"note: {note}")
    module = build(cfg.model)
    callbacks = build_all(cfg.get("callbacks"))
    loggers = build_all(cfg.get("logger"))
    trainer: pl.Trainer = build(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    for logger in loggers:
        logger.log_hyperparams({**plain(cfg), "data_source": data_info})

    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule)
    train_seconds = time.perf_counter() - start
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    checkpoint = trainer.checkpoint_callback
    best = checkpoint.best_model_path if checkpoint is not None else ""
    trainer.test(module, datamodule=datamodule, ckpt_path=best or None)
    metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
    metrics["train_seconds"] = train_seconds

    if cfg.get("publish", True) and trainer.is_global_zero and not trainer.fast_dev_run:
        info = {
            "model": cfg.model_name,
            "dataset": cfg.data.name,
            "test_acc": metrics.get("test/acc"),
            "val_acc_best": metrics.get("val/acc_best"),
            "epochs": trainer.current_epoch,
            "train_seconds": round(train_seconds, 1),
            "config_hash": config_hash(cfg),
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "data": data_info,
            "seed": cfg.seed,
        }
        from nercc.models import publish_classifier

        path = publish_classifier(
            module.net,
            plain(cfg.model.net),
            datamodule.mean.tolist(),
            datamodule.std.tolist(),
            info,
            cfg.paths.checkpoint_dir,
        )
        metrics["checkpoint"] = str(path)
        print(f"published {path} (test/acc {info['test_acc']:.4f})")
    write_json(Path(cfg.paths.output_dir) / "metrics.json", metrics)
    return metrics, {"datamodule": datamodule, "module": module, "trainer": trainer}


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
@task_wrapper
def main(cfg: DictConfig) -> float | None:
    metrics, _ = train(cfg)
    name = cfg.get("optimized_metric")
    return metrics.get(name) if name else None


if __name__ == "__main__":
    main()
