"""The scheme and straggler nodes, read through what their classes declare (nercc.coding.Tunable,
nercc.stragglers.Setting)."""

from __future__ import annotations

import inspect
import math
from typing import Any

from omegaconf import DictConfig

from nercc.coding.params import Tunable
from nercc.coding.points import LAYOUTS as POINT_LAYOUTS
from nercc.evaluation.variants import scheme_class
from nercc.runtime.checks.readers import as_list, choice, get, integer, is_int, is_number, number
from nercc.stragglers import Setting, several_s_refusal
from nercc.tuning.grid import TABLE_KEY
from nercc.utils.errors import ConfigError, show
from nercc.utils.instantiate import target_class


def check_schemes(cfg: DictConfig, k: int) -> list[int]:
    """Types of every scheme node; returns the number of workers of each (equal cost)."""
    schemes = get(cfg, "scheme")
    if not isinstance(schemes, DictConfig) or not len(schemes):
        raise ConfigError("scheme", "must name at least one scheme", schemes)
    n = int(cfg.coding.num_workers)
    workers = []
    for name in schemes:
        where = f"scheme.{name}"
        node = schemes[name]
        if not isinstance(node, DictConfig) or "_target_" not in node:
            raise ConfigError(where, "must be a scheme config with a _target_", node)
        if "num_inputs" in node:
            integer(cfg, f"{where}.num_inputs", k, k, low_text=f"coding.num_inputs K={k}")
        if "points" in node:
            choice(cfg, f"{where}.points", POINT_LAYOUTS)
        _check_tunables(cfg, where, node, k)
        if "replicas" in node:
            replicas = integer(cfg, f"{where}.replicas", 1)
            assert replicas is not None
            if replicas * k != n:
                raise ConfigError(
                    f"{where}.replicas",
                    f"equal cost needs replicas x K = coding.num_workers N={n}: N must be a "
                    f"multiple of K={k} (N // K copies of each input leave {n - replicas * k} "
                    f"of the {n} workers idle)",
                    replicas,
                )
            workers.append(replicas * k)
        elif "num_workers" in node:
            workers.append(integer(cfg, f"{where}.num_workers", k, low_text=f"K={k}"))
        else:
            workers.append(k)  # uncoded: the reference without redundancy, not a baseline
    coded = [w for name, w in zip(schemes, workers, strict=True) if not _is_uncoded(schemes[name])]
    if len(set(coded)) > 1:
        names = ", ".join(f"{name}: {w}" for name, w in zip(schemes, workers, strict=True))
        raise ConfigError(
            "scheme",
            f"schemes are compared at equal cost, on the same number of workers ({names})",
            list(schemes),
        )
    return workers  # type: ignore[return-value]


def _is_uncoded(node: DictConfig) -> bool:
    """A scheme on K workers (no ``num_workers``, no ``replicas``): the reference without
    redundancy, outside the equal-cost comparison."""
    return "num_workers" not in node and "replicas" not in node


#: What ``auto`` means for a parameter declared with ``auto=True`` (calibrated per S on validation
#: images by the evaluation, every such parameter of a scheme together).
AUTO_MEANING = "auto: calibrated on validation images"


def declared_tunables(node: Any) -> dict[str, Tunable]:
    """The tunable parameters the scheme of ``node`` declares, by name (none for a scheme class
    that cannot be imported)."""
    cls = scheme_class(node)
    return {t.name: t for t in cls.tunables} if cls is not None else {}


def _range_text(tunable: Tunable, k: int, n: int) -> str:
    """The numbers a parameter takes, in words: ``a finite number >= 0``, ``an integer >= 0``,
    ``a number in (2, K=20]``."""
    low, high = tunable.limits(k, n)
    kind = "an integer" if tunable.integer else "a finite number"
    if math.isinf(high):
        return f"{kind} {'>' if tunable.low_open else '>='} {low:g}"
    names = {"num_inputs": "K=", "num_workers": "N="}
    top = f"{names.get(str(tunable.high), '')}{high:g}"
    kind = "an integer" if tunable.integer else "a number"
    left, right = "(" if tunable.low_open else "[", ")" if tunable.high_open else "]"
    return f"{kind} in {left}{low:g}, {top}{right}"


def _check_tunables(cfg: DictConfig, where: str, node: DictConfig, k: int) -> None:
    """Every parameter the scheme of ``node`` declares (:class:`nercc.coding.Tunable`): null (not
    given), a number in its range, a list of them (a grid), one of its words (a word marked
    ``in_grid`` also inside a list), or ``auto`` where it may be calibrated; at most one of a
    setting's alternatives given (``df_enc`` or ``lam_enc``)."""
    cls = scheme_class(node)
    if cls is not None:
        arguments = [a for a in inspect.signature(cls).parameters if a != "self"]
        for key in node:
            if key not in (*arguments, "_target_", TABLE_KEY):
                raise ConfigError(
                    f"{where}.{key}",
                    f"is not a parameter of {cls.__name__} (its parameters: "
                    f"{', '.join(arguments)})",
                    node[key],
                )
    declared = declared_tunables(node)
    n = node.get("num_workers") if is_int(node.get("num_workers")) else int(cfg.coding.num_workers)
    k = node.get("num_inputs") if is_int(node.get("num_inputs")) else k
    for name, tunable in declared.items():
        key = f"{where}.{name}"
        value = get(cfg, key) if name in node else None
        if value is None:
            continue
        items = as_list(value)
        values = items if items is not None else [value]
        for item in values:
            if isinstance(item, str) and tunable.choice(item) is None and item != "auto":
                _refuse_other_word(key, tunable, declared, item, value)
        words = [f"{c.value}: {c.meaning}" for c in tunable.choices]
        words += [AUTO_MEANING] if tunable.auto else []
        if isinstance(value, str) and (value == "auto" and tunable.auto or tunable.choice(value)):
            continue

        if not values or not all(_accepted(tunable, v, k, n) for v in values):
            why = f" (or {'; '.join(words)})" if words else f" ({tunable.meaning})"
            what = f"must be null, {_range_text(tunable, k, n)} or a list of them{why}"
            raise ConfigError(key, what, value)
        setting = tunable.alternative_of
        other = get(cfg, f"{where}.{setting}", None) if setting is not None else None
        if other is not None:
            raise ConfigError(
                key,
                f"and {setting}={show(other)} both give the {tunable.side}'s setting {setting}: "
                f"set one of them, the other null ({where}.{setting}=null)",
                value,
            )


def _accepted(tunable: Tunable, item: Any, k: int, n: int) -> bool:
    """One value of a parameter (alone or in a list): a word of it that may stand in a grid, or
    a number in its range."""
    word = tunable.choice(item)
    if word is not None:
        return word.in_grid
    return is_number(item) and tunable.accepts(item, k, n)


def _refuse_other_word(
    key: str, tunable: Tunable, declared: dict[str, Tunable], word: str, value: Any
) -> None:
    """Refuse a word ``tunable`` does not take, saying whose word it is where another parameter
    of the scheme takes it (``lam_enc=gcv``: the decoder's)."""
    owner = next((t for t in declared.values() if t.choice(word) is not None), None)
    if owner is None:
        return  # the range check names what the parameter takes
    meaning = owner.choice(word).meaning  # type: ignore[union-attr]
    takes = ["a number", "a list", "null", *(["auto"] if tunable.auto else [])]
    takes += [a for a, t in declared.items() if t.alternative_of == tunable.name]
    raise ConfigError(
        key,
        f"{word} is a word of {owner.name} ({meaning}), not of {tunable.name}: give "
        f"{tunable.name} {', '.join(takes[:-1])} or {takes[-1]}",
        value,
    )


def _count_encoders(cfg: DictConfig) -> int:
    """The most distinct encoders a scheme of ``cfg`` lists: the product of the list lengths of
    its parameters that set the encoder (a grid over NeRCC's lam_enc or df_enc)."""
    count = 1
    for name in cfg.scheme:
        node = cfg.scheme[name]
        here = 1
        for param, tunable in declared_tunables(node).items():
            if tunable.side in ("encoder", "both"):
                value = node.get(param)
                here *= len(as_list(value) or [value])
        count = max(count, here)
    return count


def _from_outputs(node: Any) -> list[tuple[str, Any]]:
    """The parameters of a scheme node given a word whose decoding depends on the workers'
    outputs (``lam_dec=gcv``; also inside a list): (name, value)."""
    found = []
    for name, tunable in declared_tunables(node).items():
        value = node.get(name)
        items = as_list(value)
        for item in items if items is not None else [value]:
            chosen = tunable.choice(item)
            if chosen is not None and chosen.from_outputs:
                found.append((name, value))
                break
    return found


def check_straggler_node(cfg: DictConfig, stragglers: list[int]) -> None:
    """The ``straggler`` node: the settings its class declares (``settings``), the S list
    against a setting that makes S a label (:func:`nercc.stragglers.several_s_refusal`), the
    model built for the largest S, and a model whose patterns depend on the scheme (the
    adversarial placement) against gcv decoders."""
    node = get(cfg, "straggler")
    if not isinstance(node, DictConfig) or "_target_" not in node:
        raise ConfigError("straggler", "must be a straggler model config with a _target_", node)
    cls, values = model_settings(cfg, "straggler", "the S list gives num_stragglers")
    if cls is None:
        return
    for setting in cls.settings:
        value = values[setting.name]
        if setting.ignores_s is None or value is None:
            continue
        key = f"straggler.{setting.name}"
        reason = several_s_refusal(setting.ignores_s, stragglers, setting.fix.format(key=key))
        if reason is not None:
            raise ConfigError(key, reason, value)
    try:
        model = cls(num_stragglers=max(stragglers), **values)
    except ValueError as error:
        raise ConfigError("straggler", f"{cls.__name__} refuses it ({error})", node) from None
    if not model.depends_on_scheme:
        return
    schemes = get(cfg, "scheme", None) or {}
    for name in schemes:
        for param, value in _from_outputs(schemes[name]):
            raise ConfigError(
                f"scheme.{name}.{param}",
                f"{show(value)} decodes each pattern from its answers, so it has no decoder "
                "matrix for the adversarial placement to attack; use "
                "straggler.placement=random, or a number or auto",
                value,
            )


def model_settings(
    cfg: DictConfig, where: str, note: str = ""
) -> tuple[type | None, dict[str, Any]]:
    """Check the node at ``where`` against the settings its ``_target_`` class declares (a
    :class:`nercc.stragglers.Setting` tuple named ``settings``): no other key, each value in its
    range. Returns the class and every declared setting's value (its default where not given);
    a target that cannot be imported or declares nothing gives (None, {}) and is left to its
    instantiation."""
    node = get(cfg, where)
    cls = target_class(node["_target_"])
    settings = getattr(cls, "settings", None)
    if not isinstance(settings, tuple) or not all(isinstance(s, Setting) for s in settings):
        return None, {}
    names = [s.name for s in settings]
    for key in node:
        if key not in names and key not in ("_target_", "_partial_"):
            known = f"its settings: {', '.join(names)}" if names else "it has none"
            raise ConfigError(
                f"{where}.{key}",
                f"is not a setting of {cls.__name__} ({known}{'; ' + note if note else ''})",
                node[key],
            )
    values = {}
    for setting in settings:
        key = f"{where}.{setting.name}"
        if setting.optional and get(cfg, key, setting.default) is None:
            values[setting.name] = None
        elif setting.options:
            values[setting.name] = choice(cfg, key, setting.options, setting.default)
        else:
            values[setting.name] = number(
                cfg, key, setting.low, setting.high, low_open=setting.low_open,
                high_open=setting.high_open, optional=setting.optional, default=setting.default,
            )  # fmt: skip
    return cls, values
