"""Coded-inference evaluation: ``python -m nercc.eval experiment=<name>`` (conf/eval.yaml).

Loads the published classifier for (model, data), checks the whole config before any work, runs
:class:`~nercc.evaluation.CodedInferenceModule` with Lightning on one or more devices, and writes
``results.csv``, ``results.json``, ``mse_vs_stragglers.png`` and ``rel_acc_vs_stragglers.png`` in
the run directory beside Hydra's resolved config. With ``logger=wandb`` the metrics (one step per
S), the results table and the plots go to W&B too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
from omegaconf import DictConfig

from nercc.config import build, build_all, plain, task_wrapper
from nercc.evaluation import CodedInferenceModule, expand_schemes
from nercc.evaluation.data import CodedEvalData
from nercc.evaluation.module import straggler_models
from nercc.evaluation.report import plot_vs_stragglers, print_results
from nercc.paths import CONFIG_DIR
from nercc.utils.io import write_csv, write_json

__all__ = ["evaluate", "check_config"]

PLOTS = {"mse": "mse_vs_stragglers.png", "rel_acc": "rel_acc_vs_stragglers.png"}


def check_config(cfg: DictConfig) -> tuple[list, Any]:
    """Build the schemes and straggler models and check the settings, before any data or model
    is loaded. Returns the scheme variants and the straggler factory."""
    variants = expand_schemes(cfg.scheme, list(cfg.stragglers))
    k = variants[0].scheme.num_inputs
    if cfg.eval.batch_size < k:
        raise ValueError(
            f"eval.batch_size must be at least num_inputs K={k} (one group per batch), "
            f"got {cfg.eval.batch_size}"
        )
    factory = build(cfg.straggler)
    straggler_models(factory, list(cfg.stragglers), variants)
    return variants, factory


def evaluate(cfg: DictConfig) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Run the coded evaluation of ``cfg``; return the result rows and the objects used."""
    variants, factory = check_config(cfg)
    pl.seed_everything(cfg.seed, workers=True)
    from nercc.models import load_classifier

    data = build(cfg.data)
    data.setup("test")
    info = data.describe()
    for note in info["notes"]:
        print(f"note: {note}")
    classifier = load_classifier(cfg.model_name, cfg.data.name, cfg.paths.checkpoint_dir)
    module = CodedInferenceModule(
        classifier,
        variants,
        list(cfg.stragglers),
        factory,
        num_patterns=cfg.eval.num_patterns,
        chunk_size=cfg.eval.chunk_size,
        seed=cfg.seed,
    )
    eval_data = CodedEvalData(data, cfg.eval.split, cfg.eval.batch_size, cfg.eval.get("limit"))
    loggers = build_all(cfg.get("logger"))
    # CodedEvalData deals whole batches to the processes: Lightning must not re-shard them.
    trainer: pl.Trainer = build(
        cfg.trainer, logger=loggers or False, callbacks=[], use_distributed_sampler=False
    )
    trainer.test(module, datamodule=eval_data, verbose=False)
    rows = module.results
    if trainer.is_global_zero:
        _report(cfg, rows, loggers, info, classifier.info)
    return rows, {"module": module, "trainer": trainer, "data": data}


def _report(
    cfg: DictConfig, rows: list[dict[str, Any]], loggers: list, info: dict, model_info: dict
) -> None:
    out = Path(cfg.paths.output_dir)
    title = (
        f"{cfg.model_name} on {cfg.data.name} ({cfg.eval.split}), {rows[0]['num_inputs']} inputs"
    )
    print_results(rows, title)
    write_csv(out / "results.csv", rows)
    write_json(out / "results.json", rows)
    plots = {
        m: plot_vs_stragglers(rows, m, out / name, f"{title}: {m}") for m, name in PLOTS.items()
    }
    for logger in loggers:
        logger.log_hyperparams({**plain(cfg), "data_source": info, "classifier": model_info})
        for s in dict.fromkeys(r["num_stragglers"] for r in rows):
            metrics = {
                f"coded/{r['variant']}/{m}": r[m]
                for r in rows
                if r["num_stragglers"] == s
                for m in ("mse", "acc", "base_acc", "rel_acc", "agreement")
            }
            logger.log_metrics(metrics, step=s)
        if hasattr(logger, "log_table"):  # W&B
            columns = list(rows[0])
            logger.log_table(
                "coded/results", columns=columns, data=[[r[c] for c in columns] for r in rows]
            )
            for metric, path in plots.items():
                logger.log_image(f"coded/{metric}_vs_stragglers", images=[str(path)])
        logger.save()
    print(f"results: {out}")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="eval")
@task_wrapper
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
