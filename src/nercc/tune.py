"""Tune a scheme's parameters per straggler count: ``python -m nercc.tune experiment=<name>``.

On the validation split (``tune.split``), evaluates a grid of settings (``tune.search=grid``: one
classifier pass per encoder setting, every decoder setting, S and pattern reusing it) or Optuna's
TPE (``tune.search=optuna``), picks the best setting per S by ``tune.objective``, writes
``grid.csv``, ``table.json`` and heatmaps in the run folder, publishes the table to
``outputs/lambdas/<model>_<dataset>_<scheme>_K<K>_N<N>_<points>.json`` (the previous one kept as
``*.previous.json``), then runs the coded evaluation of the run's own ``table.json`` (never the
published path, which a concurrent tuner may have replaced) on ``eval.split`` (test) in
``<run>/test``. ``grid.csv`` is rewritten after every evaluation round or trial, so an
interrupted search keeps the rows it finished. With ``logger=wandb`` the grid goes to W&B as a
table, with the heatmaps.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from nercc.paths import CONFIG_DIR
from nercc.runtime.wrapper import task_wrapper
from nercc.tasks.tune import tune


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="tune")
@task_wrapper
def main(cfg: DictConfig) -> float | None:
    """Run the task (:func:`nercc.tasks.tune.tune`); return ``optimized_metric`` to a
    sweeper."""
    metrics, _ = tune(cfg)
    return metrics.get(cfg.get("optimized_metric"))


if __name__ == "__main__":
    main()
