"""``python -m nercc.figures``: the paper's figures (conf/figures.yaml, conf/figure/*.yaml).

Checks every figure config and every run's eval config first (one ``error: <key>: ...`` line per
bad key, exit 1), then evaluates, draws and writes ``<figures.output_dir>/summary.md``
(:func:`nercc.tasks.figures.make_figures`: the checks are its first step, before any work).
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from nercc.paths import CONFIG_DIR
from nercc.runtime.wrapper import task_wrapper


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="figures")
@task_wrapper
def main(cfg: DictConfig) -> None:
    from nercc.tasks.figures import make_figures

    make_figures(cfg)


if __name__ == "__main__":
    main()
