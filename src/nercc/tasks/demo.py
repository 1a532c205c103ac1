"""The coding demo: NeRCC and BACC on a smooth synthetic function, for a range of stragglers.

``demo(cfg) -> (metrics, objects)`` is what ``python -m nercc.demo`` calls (conf/demo.yaml). It
prints a table of the mean squared error of the decoded outputs against ``f(x)`` and writes
``results.json`` and ``results.csv`` in ``cfg.output_dir`` (the run folder, next to Hydra's
resolved config in ``.hydra/``). The code is ``coding.num_inputs`` (K) inputs on
``coding.num_workers`` (N) workers, and the straggler patterns come from the ``straggler`` model
of the config, as in every other command (:mod:`nercc.stragglers`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, ListConfig
from rich.console import Console
from rich.table import Table

from nercc.coding import BACC, LAYOUTS, CodingScheme, NeRCC
from nercc.runtime.checks import (
    check_seed,
    check_straggler_node,
    check_writable,
    choice,
    get,
    integer,
    integer_list,
    is_number,
)
from nercc.stragglers import FixedStragglers
from nercc.utils.errors import ConfigError
from nercc.utils.instantiate import build_checked
from nercc.utils.io import write_csv, write_json

__all__ = ["check_config", "coding_demo", "demo", "print_table"]

log = logging.getLogger("nercc.demo")


def _schemes(
    num_inputs: int, num_workers: int, nercc_lams: Sequence[tuple[float, float]], points: str
) -> dict[str, CodingScheme]:
    schemes: dict[str, CodingScheme] = {"bacc": BACC(num_inputs, num_workers, points=points)}
    for lam_enc, lam_dec in nercc_lams:
        name = f"nercc({lam_enc:g}, {lam_dec:g})"
        schemes[name] = NeRCC(num_inputs, num_workers, lam_enc, lam_dec, points=points)
    return schemes


def check_config(cfg: DictConfig) -> Callable[..., Any]:
    """Check the demo's config (conf/demo.yaml), building its schemes and straggler models.

    Parameters
    ----------
    cfg : DictConfig
        The composed demo config.

    Returns
    -------
    callable
        The straggler model's factory: ``straggler(num_stragglers=S)``.

    Raises
    ------
    ConfigError
        A setting that cannot run, named by its key (``coding.num_workers``, ``stragglers``,
        ``nercc_lams``, ``straggler.<setting>``, ...), read as every command reads it
        (:mod:`nercc.runtime.checks`).
    """
    check_seed(cfg)
    k = integer(cfg, "coding.num_inputs", 1)
    n = integer(cfg, "coding.num_workers", k, low_text=f"coding.num_inputs K={k}")
    assert k is not None and n is not None
    stragglers = integer_list(cfg, "stragglers", 0, n - 1, f"coding.num_workers - 1 = {n - 1}")
    integer(cfg, "trials", 1)
    integer(cfg, "features", 1)
    integer(cfg, "logits", 1)
    points = choice(cfg, "coding.points", LAYOUTS)
    pairs = get(cfg, "nercc_lams")
    ok = isinstance(pairs, ListConfig) and all(
        isinstance(p, ListConfig) and len(p) == 2 and all(is_number(v) and v >= 0 for v in p)
        for p in pairs
    )
    if not ok or not len(pairs):
        raise ConfigError(
            "nercc_lams",
            "must be a non-empty list of [lam_enc, lam_dec] pairs of numbers >= 0",
            pairs,
        )
    try:
        BACC(k, n, points=points)
    except ValueError as error:
        raise ConfigError("coding.num_inputs", f"BACC refuses K={k}, N={n} ({error})", k) from None
    for pair in pairs:
        try:
            NeRCC(k, n, float(pair[0]), float(pair[1]), points=points)
        except ValueError as error:
            raise ConfigError(
                "nercc_lams", f"NeRCC refuses {list(pair)} ({error})", pairs
            ) from None
    check_straggler_node(cfg, stragglers)  # its declared settings, against the S list
    factory = build_checked("straggler", cfg.straggler)
    for s in stragglers:  # a model that declares nothing is built here
        try:
            factory(num_stragglers=s).check(n)
        except (TypeError, ValueError) as error:  # a setting it refuses or does not take
            raise ConfigError("straggler", f"{error} (at S={s})") from None
    check_writable("output_dir", get(cfg, "output_dir"))
    return factory


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
    straggler: Callable[..., Any] | None = None,
) -> list[dict[str, Any]]:
    """Return one row per (scheme, S): the MSE of the decoded ``f(x)`` over random trials.

    ``f(x) = tanh(W x)`` with a fixed Gaussian ``W`` (features -> logits). Each trial draws K
    Gaussian inputs (numpy, from ``seed``) and a straggler pattern of the model
    ``straggler(num_stragglers=S)`` (default :class:`~nercc.stragglers.FixedStragglers`: exactly
    S, at random; torch, from ``seed``); every scheme sees the same draws, but for a model whose
    patterns depend on the scheme (the adversarial worst case).

    Parameters
    ----------
    num_inputs, num_workers : int
        K and N.
    stragglers : list of int
        The S values, each in ``[0, num_workers)``.
    trials : int
        Patterns (and groups of K inputs) per S, at least 1.
    features, logits : int
        The input and output dimensions of f.
    nercc_lams : list of (float, float)
        The ``(lam_enc, lam_dec)`` of each NeRCC curve.
    points : str
        The code's points, ``chebyshev`` or ``uniform``.
    seed : int
        The seed of every draw.
    straggler : callable, optional
        The straggler model's factory (``straggler(num_stragglers=S)``, a ``_partial_`` node of
        conf/straggler/ built).

    Returns
    -------
    list of dict
        ``scheme``, ``num_inputs``, ``num_workers``, ``num_stragglers``, ``mse``, ``trials``.
    """
    import torch

    for s in stragglers:
        if not 0 <= s < num_workers:
            raise ValueError(f"stragglers must lie in [0, num_workers), got {s}")
    if trials < 1:
        raise ValueError(f"trials must be >= 1, got {trials}")
    factory = FixedStragglers if straggler is None else straggler
    schemes = _schemes(num_inputs, num_workers, nercc_lams, points)

    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(features, logits)) / np.sqrt(features)
    inputs = rng.normal(size=(trials, num_inputs, features))
    truth = np.tanh(inputs @ weights)  # (T, K, logits)
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for s in stragglers:
        model = factory(num_stragglers=s)
        shared = None
        for name, scheme in schemes.items():
            if shared is None or model.depends_on_scheme:
                drawn = model.sample(trials, num_workers, generator, scheme)
                shared = drawn.available.numpy()  # (T, N)
            coded = scheme.encode(inputs.transpose(1, 0, 2))  # (N, T, features)
            outputs = np.tanh(coded @ weights).transpose(1, 0, 2)  # (T, N, logits)
            decoders = scheme.decoder_matrices(shared)  # (T, K, N)
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


def demo(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Check ``cfg`` (:func:`check_config`), run the demo, print its table and write
    ``results.csv`` and ``results.json`` in ``cfg.output_dir``.

    Parameters
    ----------
    cfg : DictConfig
        The composed demo config (conf/demo.yaml), with ``output_dir`` set.

    Returns
    -------
    metrics : dict
        ``rows`` (as :func:`coding_demo` gives them).
    objects : dict
        ``straggler`` (the straggler model's factory) and ``output_dir`` (a Path).
    """
    straggler = check_config(cfg)
    output_dir = Path(cfg.output_dir)
    rows = coding_demo(
        num_inputs=cfg.coding.num_inputs,
        num_workers=cfg.coding.num_workers,
        stragglers=list(cfg.stragglers),
        trials=cfg.trials,
        features=cfg.features,
        logits=cfg.logits,
        nercc_lams=[(float(a), float(b)) for a, b in cfg.nercc_lams],
        points=cfg.coding.points,
        seed=cfg.seed,
        straggler=straggler,
    )
    print_table(rows)
    write_csv(output_dir / "results.csv", rows)
    write_json(output_dir / "results.json", rows)
    log.info(f"results: {output_dir}")
    return {"rows": rows}, {"straggler": straggler, "output_dir": output_dir}
