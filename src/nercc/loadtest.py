"""Load test of coded serving: ``python -m nercc.loadtest`` (conf/loadtest.yaml).

Starts Ray and N worker actors once, then for each scheme of ``loadtest.schemes`` (uncoded,
replication, bacc, nercc: the same workers, so equal resources) sends ``loadtest.num_queries``
test images with Poisson arrivals at ``loadtest.rate`` per second, to the frontend in this process
(``loadtest.target=frontend``) or through HTTP (``http``: Ray Serve on 127.0.0.1), and stops by
itself. With ``'loadtest.rates=[20,50,100,200]' loadtest.trials=3`` it does so at every rate,
three times each (trial t's arrivals seeded by seed + t), and the files below go to
``rate_<r>/trial_<t>/``. Writes in the run folder:

- ``latency.csv``: one row per query (scheme, send time, latency, status, prediction, label, the
  base model's prediction, group, answers decoded, failed workers);
- ``summary.json``: per scheme p50, p90, p99 and p99.9 latency (ms), mean, throughput, accuracy
  against the labels, agreement with the base model, queries sent, answered and failed, with the
  settings of the run;
- ``latency_cdf.png``: the latency CDFs of the schemes side by side;
- ``load_curves.csv``: one row per scheme, rate and trial (p50, p90, p99, p99.5, p99.9, the
  p99.9 - p50 gap, throughput, accuracy, agreement, answered fraction, the trial's seed);
- ``load_curves.json``: per (scheme, rate) each of those as the mean over the trials with its
  min and max, and per scheme the saturation rate: the lowest rate whose mean p50 exceeds
  ``loadtest.saturation_factor`` (3) times its mean p50 at the lowest rate (null: not reached);
- ``gap_vs_rate.png``: the p99.9 - p50 gap against the offered rate per scheme, saturation ringed.

With ``logger=wandb`` the summary (``latency/<scheme>/<key>``), a table and the plot go to W&B
(with several rates or trials: ``load/<scheme>/rate_<r>/<key>``, the curves' table and the gap
plot).
The task is :func:`nercc.tasks.loadtest.loadtest`.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from nercc.paths import CONFIG_DIR
from nercc.runtime.wrapper import task_wrapper
from nercc.tasks.loadtest import loadtest


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="loadtest")
@task_wrapper
def main(cfg: DictConfig) -> None:
    loadtest(cfg)


if __name__ == "__main__":
    main()
