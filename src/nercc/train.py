"""Train a base classifier: ``python -m nercc.train experiment=<name>`` (Hydra, conf/train.yaml).

Checks the config, fits with Lightning, tests the best epoch's weights, then publishes them at
``outputs/checkpoints/<model>_<dataset>.ckpt`` (with a JSON summary) when they are healthy, clearly
above chance and not worse than the published model (the rule: :mod:`nercc.models.publish`;
otherwise they are kept in the run folder), and writes ``metrics.json`` in the run directory
beside Hydra's resolved config. A diverged model (weights, test loss or logits not finite) is
kept in the run folder and the run fails (:class:`~nercc.models.publish.DivergedModelError`, a
``ValueError``: one ``error:`` line, exit status 1); a model kept for its accuracy (at chance, or
worse than the published one) is a successful run that says why on one line.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from nercc.paths import CONFIG_DIR
from nercc.runtime.wrapper import task_wrapper
from nercc.tasks.train import train


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
@task_wrapper
def main(cfg: DictConfig) -> float | None:
    """Run the task (:func:`nercc.tasks.train.train`); return ``optimized_metric`` to a
    sweeper."""
    metrics, _ = train(cfg)
    name = cfg.get("optimized_metric")
    return metrics.get(name) if name else None


if __name__ == "__main__":
    main()
