"""Coded-inference evaluation: ``python -m nercc.eval experiment=<name>`` (conf/eval.yaml).

Loads the published classifier for (model, data), checks the whole config before any work, runs
:class:`~nercc.evaluation.CodedInferenceModule` with Lightning on one or more devices, and writes
``results.csv``, ``results.json``, ``mse_vs_stragglers.png`` and ``rel_acc_vs_stragglers.png`` in
the run directory beside Hydra's resolved config. NeRCC's lambdas come from the published table of
the classifier and code (``scheme.nercc.lambdas``) unless the config gives them. ``main`` returns
the ``optimized_metric`` to a sweeper. With ``logger=wandb`` the metrics (one step per S), the
results table, the plots and the objective go to W&B too.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from nercc.paths import CONFIG_DIR
from nercc.runtime.wrapper import task_wrapper
from nercc.tasks.evaluate import evaluate


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="eval")
@task_wrapper
def main(cfg: DictConfig) -> float | None:
    """Run the task (:func:`nercc.tasks.evaluate.evaluate`); return ``optimized_metric`` to a
    sweeper."""
    metrics, _ = evaluate(cfg)
    return metrics.get(cfg.get("optimized_metric"))


if __name__ == "__main__":
    main()
