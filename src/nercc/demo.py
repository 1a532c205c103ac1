"""The coding demo: ``python -m nercc.demo`` (conf/demo.yaml).

NeRCC and BACC on a smooth synthetic function ``f(x) = tanh(W x)``, for a range of stragglers
drawn by the config's straggler model: prints the table of the MSE of the decoded outputs and
writes ``results.json`` and ``results.csv`` in the run folder, next to Hydra's resolved config in
``.hydra/`` (:func:`nercc.tasks.demo.demo`, which checks the whole config first).
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from nercc.paths import CONFIG_DIR
from nercc.runtime.wrapper import task_wrapper


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="demo")
@task_wrapper
def main(cfg: DictConfig) -> None:
    from nercc.tasks.demo import demo

    demo(cfg)


if __name__ == "__main__":
    main()
