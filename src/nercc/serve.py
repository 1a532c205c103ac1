"""Coded prediction serving over HTTP: ``python -m nercc.serve`` (conf/serve.yaml).

Starts a local Ray instance on 127.0.0.1 (or joins ``serving.address``), N worker actors holding
the published classifier, and a Ray Serve endpoint for ``serving.scheme``:

- ``POST /predict``: one image (PNG bytes, or a JSON array (C, H, W) / (H, W) of values in
  [0, 1]) to ``{"class", "logits", "scheme", "workers", "failed_workers", "group",
  "underdetermined"}``; any other answer is JSON ``{"error": ...}`` with its status;
- ``GET /healthz``: the scheme and the code.

The HTTP address and the checkpoint are checked before Ray starts (a port in use, a missing or
corrupt checkpoint: one error line). It serves until Ctrl-C or SIGTERM (or
``serving.duration_s``), then shuts everything down. The task is :func:`nercc.tasks.serve.serve`.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from nercc.paths import CONFIG_DIR
from nercc.runtime.wrapper import task_wrapper
from nercc.tasks.serve import serve


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="serve")
@task_wrapper
def main(cfg: DictConfig) -> None:
    serve(cfg)


if __name__ == "__main__":
    main()
