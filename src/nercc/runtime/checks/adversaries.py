"""The adversary node and the A list (``adversaries``), read through what the adversary classes
declare (``nercc.adversaries.Adversary.settings``)."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from nercc.adversaries import ADVERSARIES, Adversary
from nercc.runtime.checks.readers import get, integer_list
from nercc.runtime.checks.schemes import _from_outputs, model_settings
from nercc.utils.errors import ConfigError, show
from nercc.utils.instantiate import target_class

#: What the refusal of A > 0 without an adversary proposes.
_KINDS = ", ".join(f"adversary={kind}" for kind in ADVERSARIES if kind != "none")


def check_adversaries(cfg: DictConfig, stragglers: list[int], num_workers: int) -> list[int]:
    """Check the A list and the ``adversary`` node; return the A list.

    ``adversaries`` is a non-empty list of distinct integers >= 0 (an integer alone is refused,
    like ``stragglers``), each at most ``N - max(S)``, the fewest workers that answer; the
    ``adversary`` node names an adversary class by ``_target_`` and gives only the settings it
    declares, each in its range; the model is built from them (a value its constructor refuses
    is a :class:`ConfigError` naming the setting); A > 0 needs an adversary kind other than
    ``none``; and an attack that reads the scheme's decoder matrices (``targeted``, or
    ``placement=adversarial``) refuses a scheme that chooses its decoder from the answers
    (``lam_dec=gcv``).

    Parameters
    ----------
    cfg : DictConfig
        The evaluation's config.
    stragglers : list of int
        The S list, already checked.
    num_workers : int
        N, the workers of the schemes compared.

    Returns
    -------
    list of int
        The A list.

    Raises
    ------
    ConfigError
        One line naming the key: ``adversaries: A=90 exceeds the N - S = 80 workers that answer
        at S=20, got [0, 90]``.
    """
    counts = integer_list(cfg, "adversaries", 0)
    model = _adversary(cfg)
    _check_target_class(cfg, model)
    largest = max(counts)
    if largest == 0:
        return counts
    if model is not None and model.kind == "none":
        raise ConfigError(
            "adversaries",
            f"adversary=none cannot place A={largest} adversaries; choose an adversary kind "
            f"({_KINDS})",
            counts,
        )
    s = max(stragglers)
    if largest > num_workers - s:
        raise ConfigError(
            "adversaries",
            f"A={largest} exceeds the N - S = {num_workers - s} workers that answer at S={s}",
            counts,
        )
    if model is not None and model.depends_on_scheme:
        _refuse_decoders_from_answers(cfg, model)
    return counts


def _adversary(cfg: DictConfig) -> Adversary | None:
    """The model of the ``adversary`` node (None for a class that declares no settings: its
    instantiation says what is wrong)."""
    node = get(cfg, "adversary")
    if not isinstance(node, DictConfig) or "_target_" not in node:
        raise ConfigError("adversary", "must be an adversary model config with a _target_", node)
    found = target_class(node["_target_"])
    if found is not None and not issubclass(found, Adversary):
        raise ConfigError(
            "adversary._target_",
            f"must name an adversary class (nercc.adversaries: "
            f"{', '.join(c.__name__ for c in ADVERSARIES.values())})",
            node["_target_"],
        )
    cls, _ = model_settings(cfg, "adversary", "the adversaries list gives A")
    if cls is None:
        return None
    # The values as given (model_settings reads numbers as floats; target_class is an integer).
    values = {s.name: get(cfg, f"adversary.{s.name}", s.default) for s in cls.settings}
    try:
        return cls(**values)
    except ValueError as error:
        named = next((n for n in values if str(error).startswith(f"{n} ")), None)
        key, got = (f"adversary.{named}", values[named]) if named else ("adversary", node)
        raise ConfigError(key, f"{cls.__name__} refuses it ({error})", got) from None


def _check_target_class(cfg: DictConfig, model: Adversary | None) -> None:
    """A class the adversary votes for (``target_class``) is one of the data's classes."""
    target = getattr(model, "target_class", None)
    classes = get(cfg, "data.num_classes", None)
    if target is not None and isinstance(classes, int) and target >= classes:
        raise ConfigError(
            "adversary.target_class", f"must be below data.num_classes={classes}", target
        )


def _refuse_decoders_from_answers(cfg: DictConfig, model: Adversary) -> None:
    """Refuse a scheme without decoder matrices (``lam_dec=gcv``) for an attack that reads them."""
    what = (
        "adversary=targeted"
        if model.kind == "targeted"
        else f"adversary={model.kind} with placement=adversarial"
    )
    fix = "another adversary kind" if model.kind == "targeted" else "adversary.placement=random"
    schemes: Any = get(cfg, "scheme", None) or {}
    for name in schemes:
        for param, value in _from_outputs(schemes[name]):
            raise ConfigError(
                f"scheme.{name}.{param}",
                f"{show(value)} decodes each pattern from its answers, so it has no decoder "
                f"matrix for {what} to read; use {fix}, or a number or auto",
                value,
            )
