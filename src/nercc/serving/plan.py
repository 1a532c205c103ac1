"""What a checked serving config serves, shared by the serve and load-test tasks.

:func:`serving_plan` builds the schemes by name with their wait policies and the workers' delay
model (NeRCC's lambdas at S from the published table when the config leaves them open), and the
models that schemes run on some workers besides the classifier (ParM's parity model: every
worker holds it, and the frontend names it in the messages of the rows that run it);
:func:`table_warnings` words the tables tuned on another checkpoint; :func:`model_loader` is what
each worker calls to build its classifier.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from nercc.tuning import expand_schemes
from nercc.tuning.planning import scheme_tables, untuned
from nercc.utils.errors import ConfigError
from nercc.utils.instantiate import build_checked

__all__ = [
    "ENDPOINT_CPUS",
    "HEDGED",
    "UNCODED",
    "ServingPlan",
    "model_loader",
    "serving_plan",
    "table_warnings",
]

#: The scheme every serving config can serve without a node of its own: K workers, no code.
UNCODED = "uncoded"

#: Hedged requests, also served without a node of its own: K primaries and N - K spares
#: (:mod:`nercc.serving.hedging`), its delay from ``serving.hedge_after_ms`` and
#: ``serving.hedge_percentile``.
HEDGED = "hedged"

#: The served names that need no ``scheme`` node.
BUILT_IN = (UNCODED, HEDGED)

#: The CPU share of the HTTP deployment's replica (:func:`nercc.serving.endpoint.http_endpoint`),
#: which the workers' shares must leave free on a local instance.
ENDPOINT_CPUS = 0.1


@dataclass
class ServingPlan:
    """What a checked config serves: the schemes by name, their wait policies, the delays, and
    the Byzantine workers (``adversaries``, by index) with the ``adversary`` they answer with
    (None when no worker lies)."""

    schemes: dict[str, Any]
    policies: dict[str, Any]
    delays: Any
    num_workers: int
    notes: list[str] = field(default_factory=list)
    tables: dict[str, Any] = field(default_factory=dict)  # name: the ParamTable it took, or None
    adversary: Any = None
    adversaries: list[int] = field(default_factory=list)
    #: The checkpoints of the models that served schemes run on their ``parity_workers``, with
    #: the group size k each was trained for; worker model m (from 1) is the m-th of them.
    parity_models: dict[str, int] = field(default_factory=dict)
    #: How the frontend orders and groups the queries (``coding.order``, ``coding.grouping``;
    #: :meth:`arrange_with`), and the proxy whose logits it reads (``order=proxy``).
    arranger: Any = None
    embedding: Any = None

    def arrange_with(self, cfg: DictConfig, data: Any) -> None:
        """Build :attr:`arranger` (and :attr:`embedding`) from ``cfg.coding``: the evaluation's
        rule (:func:`nercc.evaluation.runner.build_arranger`, its direction fitted on ``data``'s
        training images), for groups of ``coding.num_inputs``."""
        from nercc.evaluation.runner import build_arranger, load_proxy

        self.embedding = load_proxy(cfg)
        self.arranger = build_arranger(cfg, data, int(cfg.coding.num_inputs), self.embedding)

    def frontend_options(self, cfg: DictConfig, name: str) -> dict[str, Any]:
        """What the :class:`~nercc.serving.frontend.Frontend` of scheme ``name`` takes besides
        the scheme: the batching wait, the faults, the seed, the exclusion of lying workers and
        the model of each row (:meth:`row_models`)."""
        serving = cfg.serving
        return {
            "max_wait_ms": float(serving.max_wait_ms),
            "kill_every": serving.kill_every,
            "seed": int(cfg.seed),
            "flag_fraction": float(serving.flag_fraction),
            "flag_window": int(serving.flag_window),
            "exclude_groups": int(serving.exclude_groups),
            "row_models": self.row_models(name),
            "arranger": self.arranger,
            "buffer": int(serving.get("buffer", 1)),
            "embedding": self.embedding,
        }

    def row_models(self, name: str) -> list[int] | None:
        """The worker model that runs each of scheme ``name``'s N rows: 0 (the classifier), and
        on its ``parity_workers`` the place (from 1) of its ``parity_model`` among
        :attr:`parity_models`; None for a scheme without parity workers."""
        scheme = self.schemes[name]
        parity = [int(w) for w in scheme.parity_workers]
        if not parity:
            return None
        models = [0] * scheme.num_workers
        for w in parity:
            models[w] = 1 + list(self.parity_models).index(scheme.parity_model)
        return models

    def extra_models(self) -> list[functools.partial]:
        """What each worker calls to build the :attr:`parity_models` from its classifier, in
        order (:func:`nercc.models.checkpoints.load_parity`: a parity model trained against
        another classifier is refused there)."""
        from nercc.models.checkpoints import load_parity

        return [functools.partial(load_parity, path, k=k) for path, k in self.parity_models.items()]

    def check_parity_models(self, classifier: Any) -> None:
        """Load each of :attr:`parity_models` once against the served ``classifier`` here, so that
        a missing or mismatched checkpoint is one line before any worker starts.

        Raises
        ------
        FileNotFoundError
            No checkpoint: the message names the command that trains it.
        CheckpointError (a ValueError)
            One trained for another classifier or another k.
        """
        for build in self.extra_models():
            build(classifier)


def serving_plan(cfg: DictConfig, names: list[str]) -> ServingPlan:
    """Build the schemes ``names`` of a checked config, with NeRCC's lambdas at S from the
    published table when the config leaves them open (and one exists).

    Parameters
    ----------
    cfg : DictConfig
        A checked serve or load-test config (``coding``, ``serving``, ``scheme``, ``delay``,
        ``adversary``).
    names : list of str
        The schemes to serve, in order (``uncoded``, ``hedged``, ``replication``, ``bacc``,
        ``nercc``).

    Returns
    -------
    ServingPlan
        With a note per table taken (or published table missing) for the log.

    Raises
    ------
    ConfigError
        A table setting or file that cannot be read, or a scheme the settings cannot build.
    """
    from nercc.coding import Uncoded
    from nercc.stragglers import WaitPolicy

    k, n = int(cfg.coding.num_inputs), int(cfg.coding.num_workers)
    s = int(cfg.serving.num_stragglers)
    deadline = cfg.serving.deadline_ms
    notes: list[str] = []
    schemes: dict[str, Any] = {}
    policies: dict[str, Any] = {}
    tables: dict[str, Any] = {}
    parity_models: dict[str, int] = {}
    for name in names:
        if name == UNCODED:
            schemes[name] = Uncoded(k)
            policies[name] = WaitPolicy(num_stragglers=0)  # waits for all K in any case
            continue
        if name == HEDGED:
            schemes[name], note = hedged_scheme(cfg)
            policies[name] = WaitPolicy(num_stragglers=0)  # the first answer of each input
            notes.append(note)
            continue
        node = cfg.scheme[name]
        # one scheme at a time: its table's error comes before a later scheme's
        table = scheme_tables(cfg, [name], {"num_inputs": k, "num_workers": n})[name]
        if untuned(node, table):
            notes.append(
                f"no tuned table for {cfg.model_name} on {cfg.data.name} with K={k}, N={n}: "
                f"{name} serves with its defaults (0: interpolation); tune with: python -m "
                f"nercc.tune experiment=paper/{cfg.model_name} coding.num_inputs={k} "
                f"coding.num_workers={n} stragglers=[{s}]"
            )
        tables[name] = table
        try:
            (variant,) = expand_schemes({name: node}, [s], {name: table})
        except ValueError as error:  # its message may name the scheme's node already
            what = str(error).removeprefix(f"scheme.{name}: ")
            raise ConfigError(f"scheme.{name}", what) from None
        schemes[name] = variant.scheme
        _add_parity_model(name, variant.scheme, parity_models)
        if variant.source.startswith("table:") or variant.source.startswith("config+table:"):
            params = ", ".join(f"{p} {v:.3g}" for p, v in variant.params.items())
            notes.append(f"{name}: {params} from {variant.source.split('table:', 1)[1]} (S={s})")
        # Replication waits for the first answer of each input; S and the deadline are for codes.
        policies[name] = WaitPolicy(num_stragglers=s, deadline=deadline)
    delays = None
    if cfg.get("delay") is not None:
        delays = build_checked("delay", cfg.delay)
    liars = [int(w) for w in cfg.serving.get("adversaries") or []]
    adversary = build_checked("adversary", cfg.adversary) if liars else None
    if liars:
        notes.append(
            f"workers {liars} answer adversarially ({adversary!r}); each corrupts its own answer"
        )
    return ServingPlan(schemes, policies, delays, n, notes, tables, adversary, liars, parity_models)


def _add_parity_model(name: str, scheme: Any, parity_models: dict[str, int]) -> None:
    """Record the model that ``scheme`` runs on its parity workers (none: nothing)."""
    if not scheme.parity_workers:
        return
    if not scheme.parity_model:
        raise ConfigError(
            f"scheme.{name}.parity_model",
            f"{name} runs a parity model on its workers {list(scheme.parity_workers)}: give its "
            "checkpoint",
            scheme.parity_model,
        )
    parity_models[str(scheme.parity_model)] = int(scheme.num_inputs)


def hedged_scheme(cfg: DictConfig) -> tuple[Any, str]:
    """The :class:`~nercc.serving.hedging.Hedged` scheme of a checked config (K, N,
    ``serving.hedge_after_ms``, ``serving.hedge_percentile``; ``auto`` and 95 when absent) and
    its note for the log."""
    from nercc.serving.hedging import Hedged, HedgeDelay

    k, n = int(cfg.coding.num_inputs), int(cfg.coding.num_workers)
    after = cfg.serving.get("hedge_after_ms", "auto")
    percentile = float(cfg.serving.get("hedge_percentile", 95))
    scheme = Hedged(k, n, after if after == "auto" else float(after), percentile)
    if after == "auto":
        delay = (
            f"the p{percentile:g} of the last {scheme.window} answers' latencies (no hedge on "
            f"time before {HedgeDelay('auto', percentile, scheme.window).min_samples} answers)"
        )
    else:
        delay = f"{float(after):g} ms"
    note = f"hedged: {k} primaries, {n - k} spares; an unanswered input is hedged after {delay}"
    return scheme, note


def table_warnings(
    plan: ServingPlan, checkpoint: str | Path, sha256: str | None = None
) -> list[str]:
    """The warnings for tables of ``plan`` tuned on another checkpoint than ``checkpoint``.

    Parameters
    ----------
    plan : ServingPlan
        The plan whose tables are compared.
    checkpoint : str or Path
        The served classifier's file.
    sha256 : str, optional
        Its content hash when the caller has it (else it is read, only when some table records
        one).

    Returns
    -------
    list of str
        One warning per table whose recorded content hash differs, worded as the evaluation's.
    """
    from nercc.models.checkpoints import file_sha256

    found = []
    for table in filter(None, plan.tables.values()):
        if table.checkpoint_sha256 is None:
            continue
        sha256 = sha256 or file_sha256(checkpoint)
        stale = table.stale_warning(checkpoint, sha256)
        if stale is not None:
            found.append(stale)
    return found


def model_loader(cfg: DictConfig, expected: Mapping[str, Any]) -> functools.partial:
    """What each worker calls to build its classifier.

    Parameters
    ----------
    cfg : DictConfig
        The config (``model_name``, ``data.name``, ``paths.checkpoint_dir``).
    expected : mapping
        What the classifier must take and give (``num_classes``, ``image_shape``), as
        :func:`nercc.models.load_classifier` checks.

    Returns
    -------
    functools.partial
        :func:`nercc.models.load_classifier` of the published checkpoint for (model, data).
    """
    from nercc.models import load_classifier

    return functools.partial(
        load_classifier,
        cfg.model_name,
        cfg.data.name,
        cfg.paths.checkpoint_dir,
        **expected,
    )
