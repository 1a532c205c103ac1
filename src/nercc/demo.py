"""The coding demo: NeRCC and BACC on a smooth synthetic function, for a range of stragglers.

``python -m nercc.demo`` (Hydra; see ``conf/demo.yaml``). Prints a table of the mean squared error
of the decoded outputs against ``f(x)`` and writes ``results.json`` and ``results.csv`` in the run
directory, next to Hydra's resolved config in ``.hydra/``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import numpy as np
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from nercc.coding import BACC, NeRCC
from nercc.coding.schemes import CodingScheme
from nercc.paths import CONFIG_DIR
from nercc.runtime.checks import check_demo
from nercc.runtime.wrapper import task_wrapper
from nercc.utils.io import write_csv, write_json

log = logging.getLogger("nercc.demo")  # not __main__ under python -m


def coding_demo(
    num_inputs: int,
    num_workers: int,
    stragglers: list[int],
    trials: int,
    features: int,
    logits: int,
    nercc_lams: list[tuple[float, float]],
    points: str = "chebyshev",
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Return one row per (scheme, S): the MSE of the decoded ``f(x)`` over random trials.

    ``f(x) = tanh(W x)`` with a fixed Gaussian ``W`` (features -> logits). Each trial draws K
    Gaussian inputs and a pattern of exactly S stragglers; every scheme sees the same draws.
    """
    for s in stragglers:
        if not 0 <= s < num_workers:
            raise ValueError(f"stragglers must lie in [0, num_workers), got {s}")
    if trials < 1:
        raise ValueError(f"trials must be >= 1, got {trials}")
    schemes: dict[str, CodingScheme] = {"bacc": BACC(num_inputs, num_workers, points=points)}
    for lam_enc, lam_dec in nercc_lams:
        name = f"nercc({lam_enc:g}, {lam_dec:g})"
        schemes[name] = NeRCC(num_inputs, num_workers, lam_enc, lam_dec, points=points)

    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(features, logits)) / np.sqrt(features)
    inputs = rng.normal(size=(trials, num_inputs, features))
    truth = np.tanh(inputs @ weights)  # (T, K, logits)
    rows = []
    for s in stragglers:
        available = np.ones((trials, num_workers), dtype=bool)
        for row in available:
            row[rng.choice(num_workers, s, replace=False)] = False
        for name, scheme in schemes.items():
            coded = scheme.encode(inputs.transpose(1, 0, 2))  # (N, T, features)
            outputs = np.tanh(coded @ weights).transpose(1, 0, 2)  # (T, N, logits)
            decoders = scheme.decoder_matrices(available)  # (T, K, N)
            estimates = decoders @ outputs
            rows.append(
                {
                    "scheme": name,
                    "num_inputs": num_inputs,
                    "num_workers": num_workers,
                    "num_stragglers": s,
                    "mse": float(np.mean((estimates - truth) ** 2)),
                    "trials": trials,
                }
            )
    return rows


def print_table(rows: list[dict[str, Any]], console: Console | None = None) -> None:
    """Print the MSE table: one line per S, one column per scheme."""
    schemes = list(dict.fromkeys(r["scheme"] for r in rows))
    table = Table(title="MSE of the decoded f(x); nercc(lam_enc, lam_dec)")
    table.add_column("S", justify="right")
    for name in schemes:
        table.add_column(name, justify="right")
    for s in dict.fromkeys(r["num_stragglers"] for r in rows):
        by_scheme = {r["scheme"]: r["mse"] for r in rows if r["num_stragglers"] == s}
        table.add_row(str(s), *(f"{by_scheme[n]:.3e}" for n in schemes))
    (console or Console()).print(table)


def run(cfg: DictConfig, output_dir: Path) -> list[dict[str, Any]]:
    """Run the demo from a composed config, print the table and write the results files."""
    rows = coding_demo(
        num_inputs=cfg.num_inputs,
        num_workers=cfg.num_workers,
        stragglers=list(cfg.stragglers),
        trials=cfg.trials,
        features=cfg.features,
        logits=cfg.logits,
        nercc_lams=[tuple(pair) for pair in cfg.nercc_lams],
        points=cfg.points,
        seed=cfg.seed,
    )
    print_table(rows)
    write_csv(output_dir / "results.csv", rows)
    write_json(output_dir / "results.json", rows)
    return rows


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="demo")
@task_wrapper
def main(cfg: DictConfig) -> None:
    check_demo(cfg)
    output_dir = Path(hydra.core.hydra_config.HydraConfig.get().runtime.output_dir)
    run(cfg, output_dir)
    log.info(f"results: {output_dir}")


if __name__ == "__main__":
    main()
