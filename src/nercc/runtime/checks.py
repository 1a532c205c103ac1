"""One validation pass over a composed config, before any data, model or heavy import.

Every task (``nercc.tasks.*``) calls its ``check_*`` function first. A bad setting raises
:class:`ConfigError`, a ``ValueError`` whose message is ``<config key>: <what is wrong>, got
<value>``; the task wrapper prints it as one line ``error: ...`` and exits 1. The checks cover
types and ranges, the settings against each other (N >= K, integer S < N, the straggler model
against the S list, equal cost for the baselines), the logger's needs, the output and
publishing folders, and a memory estimate of the coded evaluation. What needs torch or the data
(the hardware, batches against processes) is in :func:`check_hardware` and :func:`check_batches`,
called after the imports they need.

Facts are read from their owners, not restated: a straggler or delay model's settings from its
class (``settings``, :class:`nercc.stragglers.Setting`, located by the node's ``_target_``),
a dataset's format from :data:`nercc.data.sources.FORMATS`, the point layouts from
:data:`nercc.coding.points.LAYOUTS`.

This module imports only the standard library, OmegaConf and numpy-level code.
"""

from __future__ import annotations

import inspect
import math
import netrc
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from nercc.coding.params import Tunable
from nercc.coding.points import LAYOUTS as POINT_LAYOUTS
from nercc.data.sources import DATASETS, FORMATS, SYNTHETIC_DEFAULTS
from nercc.evaluation.variants import scheme_class
from nercc.serving.plan import UNCODED
from nercc.stragglers import DelayModel, Setting, several_s_refusal
from nercc.tuning.grid import TABLE_KEY
from nercc.utils.errors import ConfigError, show
from nercc.utils.instantiate import target_class

__all__ = [
    "ConfigError",
    "check_batches",
    "check_checkpoint_exists",
    "check_eval",
    "check_hardware",
    "check_straggler_node",
    "check_train",
    "check_tune",
    "coded_memory_bytes",
    "coded_memory_terms",
    "expected_input",
]

_MISSING = object()

PRECISIONS = {
    "16", "32", "64", "bf16", "16-mixed", "bf16-mixed", "32-true", "64-true", "16-true",
    "bf16-true", "transformer-engine", "transformer-engine-float16",
}  # fmt: skip
ACCELERATORS = ("cpu", "gpu", "cuda", "mps", "tpu", "auto")


# -- reading and typing single values ---------------------------------------------------------
def get(cfg: DictConfig, key: str, default: Any = _MISSING) -> Any:
    """The resolved value at ``key`` (a dotted path); a missing key without a default, a
    mandatory ``???`` or an interpolation that fails is a :class:`ConfigError`."""
    try:
        value = OmegaConf.select(cfg, key, default=_MISSING, throw_on_missing=True)
    except OmegaConfBaseException as error:
        reason = str(error).splitlines()[0]
        raise ConfigError(key, f"cannot be resolved ({reason})") from None
    if value is _MISSING:
        if default is _MISSING:
            raise ConfigError(key, "is missing from the config")
        return default
    return value


def _as_list(value: Any) -> list | None:
    """The items of a list value (a ListConfig, or a list a resolver returned); None otherwise."""
    return list(value) if isinstance(value, ListConfig | list | tuple) else None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def integer(
    cfg: DictConfig, key: str, low: int | None = None, high: int | None = None, *,
    optional: bool = False, low_text: str | None = None, default: Any = _MISSING,
) -> int | None:  # fmt: skip
    """An integer in ``[low, high]`` (``None`` allowed when ``optional``)."""
    value = get(cfg, key, default)
    if value is None and optional:
        return None
    bounds = _bounds_text(low, high, low_text)
    if (
        not _is_int(value)
        or (low is not None and value < low)
        or (high is not None and value > high)
    ):
        what = f"must be {'null or ' if optional else ''}an integer{bounds}"
        raise ConfigError(key, what, value)
    return value


def number(
    cfg: DictConfig, key: str, low: float | None = None, high: float | None = None, *,
    low_open: bool = False, high_open: bool = False, optional: bool = False,
    default: Any = _MISSING,
) -> float | None:  # fmt: skip
    """A finite number in the interval from ``low`` to ``high`` (open ends as asked)."""
    value = get(cfg, key, default)
    if value is None and optional:
        return None
    ok = _is_number(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        interval = ""
        if low is not None and high is not None:
            interval = f" in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        elif low is not None:
            interval = f" {'>' if low_open else '>='} {low:g}"
        elif high is not None:
            interval = f" {'<' if high_open else '<='} {high:g}"
        what = f"must be {'null or ' if optional else ''}a finite number{interval}"
        raise ConfigError(key, what, value)
    return float(value)


def choice(cfg: DictConfig, key: str, options: Sequence[Any], default: Any = _MISSING) -> Any:
    """One of ``options``."""
    value = get(cfg, key, default)
    same_type = not isinstance(value, bool) or any(isinstance(o, bool) for o in options)
    if not same_type or value not in options:
        shown = ", ".join(str(o) for o in options)
        raise ConfigError(key, f"must be one of {shown}", value)
    return value


def boolean(cfg: DictConfig, key: str, default: Any = _MISSING) -> bool:
    value = get(cfg, key, default)
    if not isinstance(value, bool):
        raise ConfigError(key, "must be true or false", value)
    return value


def integer_list(
    cfg: DictConfig, key: str, low: int = 0, high: int | None = None, high_text: str = ""
) -> list[int]:
    """A non-empty list of integers in ``[low, high]``."""
    value = get(cfg, key)
    items = _as_list(value)
    bounds = _bounds_text(low, None, None) + (
        f" and <= {high_text or high}" if high is not None else ""
    )
    what = f"must be a non-empty list of integers{bounds}"
    if not items or not all(_is_int(v) for v in items):
        raise ConfigError(key, what, value)
    for v in items:
        if v < low or (high is not None and v > high):
            raise ConfigError(key, what, value)
    if len(set(items)) != len(items):
        raise ConfigError(key, "must not repeat a value", value)
    return [int(v) for v in items]


def _bounds_text(low: int | None, high: int | None, low_text: str | None) -> str:
    parts = []
    if low is not None:
        parts.append(f">= {low_text or low}")
    if high is not None:
        parts.append(f"<= {high}")
    return (" " + " and ".join(parts)) if parts else ""


# -- shared pieces ------------------------------------------------------------------------------
def check_seed(cfg: DictConfig, key: str = "seed") -> int:
    return integer(cfg, key, 0, 2**32 - 1)  # type: ignore[return-value]


def check_data(cfg: DictConfig) -> tuple[int, int, int]:
    """The data node; returns (channels, image size, classes)."""
    name = choice(cfg, "data.name", DATASETS)
    channels = integer(cfg, "data.channels", 1)
    size = integer(cfg, "data.image_size", 1)
    classes = integer(cfg, "data.num_classes", 2)
    if name in FORMATS:
        want = FORMATS[name]
        for key, got, right, what in (
            ("data.channels", channels, want.channels, f"{want.channels} channel(s)"),
            ("data.image_size", size, want.image_size,
             f"{want.image_size}x{want.image_size} images"),
            ("data.num_classes", classes, want.num_classes, f"{want.num_classes} classes"),
        ):  # fmt: skip
            if got != right:
                raise ConfigError(key, f"must be {right}: {name} has {what}", got)
    integer(cfg, "data.batch_size", 1)
    integer(cfg, "data.eval_batch_size", 1)
    val_size = integer(cfg, "data.val_size", 1)
    check_seed(cfg, "data.seed")
    integer(cfg, "data.num_workers", 0, default=0)
    integer(cfg, "data.train_subset", 1, optional=True, default=None)
    boolean(cfg, "data.download", default=False)
    boolean(cfg, "data.augment", default=False)
    integer(cfg, "data.shift", 0, size - 1, default=0)
    if name == "synthetic":
        num_train = integer(
            cfg, "data.synthetic.num_train", 2, default=SYNTHETIC_DEFAULTS["num_train"]
        )
        integer(cfg, "data.synthetic.num_test", 1, default=SYNTHETIC_DEFAULTS["num_test"])
        number(cfg, "data.synthetic.noise", 0.0, default=SYNTHETIC_DEFAULTS["noise"])
        if val_size >= num_train:
            raise ConfigError(
                "data.val_size", f"must be below data.synthetic.num_train={num_train}", val_size
            )
    return channels, size, classes  # type: ignore[return-value]


def expected_input(cfg: DictConfig) -> dict[str, Any]:
    """What a classifier for ``cfg.data`` must take and give: ``num_classes`` and
    ``image_shape`` (channels, height, width), as :func:`nercc.models.load_classifier` checks."""
    size = int(cfg.data.image_size)
    return {
        "num_classes": int(cfg.data.num_classes),
        "image_shape": (int(cfg.data.channels), size, size),
    }


def check_writable(key: str, path: Any) -> Path:
    """``path`` is (or can become) a folder this process can write: its first existing
    ancestor is a folder in which a file can be created."""
    if not isinstance(path, str | os.PathLike) or not str(path):
        raise ConfigError(key, "must be a folder path", path)
    folder = Path(path)
    existing = folder
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(key, f"{existing} is not a folder", str(path))
    try:
        fd, probe = tempfile.mkstemp(prefix=".nercc-write-check.", dir=existing)
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ConfigError(key, f"cannot write in {existing} ({reason})", str(path)) from None
    os.close(fd)
    os.unlink(probe)
    return folder


def check_loggers(cfg: DictConfig) -> None:
    """What each logger needs: W&B online needs an API key (found before any work)."""
    loggers = get(cfg, "logger", None)
    if loggers is None:
        return
    if not isinstance(loggers, DictConfig):
        raise ConfigError("logger", "must be a group of logger configs or null", loggers)
    for name in loggers:
        node = loggers[name]
        if not isinstance(node, DictConfig) or "_target_" not in node:
            continue
        if "save_dir" in node:
            check_writable(f"logger.{name}.save_dir", get(cfg, f"logger.{name}.save_dir"))
        if str(node["_target_"]).endswith("WandbLogger"):
            offline = boolean(cfg, f"logger.{name}.offline", default=False)
            mode = os.environ.get("WANDB_MODE", "").lower()
            if not offline and mode not in ("offline", "disabled", "dryrun") and not _wandb_key():
                raise ConfigError(
                    f"logger.{name}.offline",
                    "W&B online needs an API key and none was found (WANDB_API_KEY, or "
                    "`wandb login`); log offline with logger.wandb.offline=true and upload later "
                    "with `wandb sync`",
                    offline,
                )


def _wandb_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").split("://")[-1].split("/")[0]
    path = os.environ.get("NETRC") or str(Path.home() / ".netrc")
    try:
        return netrc.netrc(path).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def check_trainer(cfg: DictConfig, *, training: bool) -> None:
    """Types and ranges of the trainer node (the hardware is :func:`check_hardware`)."""
    choice(cfg, "trainer.accelerator", ACCELERATORS, default="auto")
    devices = get(cfg, "trainer.devices", "auto")
    if not (
        devices == "auto"
        or (_is_int(devices) and (devices >= 1 or devices == -1))
        or (isinstance(devices, ListConfig) and len(devices) and all(_is_int(d) for d in devices))
        or (isinstance(devices, str) and _device_string(devices))
    ):
        raise ConfigError(
            "trainer.devices", "must be an integer >= 1, -1 (all), auto or a list", devices
        )
    integer(cfg, "trainer.num_nodes", 1, default=1)
    precision = get(cfg, "trainer.precision", 32)
    if precision is not None and (str(precision) not in PRECISIONS or isinstance(precision, bool)):
        raise ConfigError(
            "trainer.precision",
            "must be one of 32, 16-mixed, bf16-mixed, 64, 32-true, ...",
            precision,
        )
    for key in ("limit_train_batches", "limit_val_batches", "limit_test_batches"):
        value = get(cfg, f"trainer.{key}", None)
        if value is None:
            continue
        if isinstance(value, float) and _is_number(value) and 0.0 <= value <= 1.0:
            continue
        if _is_int(value) and value >= 0:
            continue
        raise ConfigError(
            f"trainer.{key}",
            "must be null, an integer >= 0 (batches) or a fraction in [0, 1]",
            value,
        )
    fast = get(cfg, "trainer.fast_dev_run", False)
    if not (isinstance(fast, bool) or (_is_int(fast) and fast >= 0)):
        raise ConfigError("trainer.fast_dev_run", "must be true, false or an integer >= 0", fast)
    deterministic = get(cfg, "trainer.deterministic", False)
    if not (deterministic is None or isinstance(deterministic, bool) or deterministic == "warn"):
        raise ConfigError("trainer.deterministic", "must be true, false or warn", deterministic)
    for key in ("enable_progress_bar", "enable_model_summary"):
        if get(cfg, f"trainer.{key}", None) is not None:
            boolean(cfg, f"trainer.{key}")
    if training:
        integer(cfg, "trainer.max_epochs", -1, low_text="0 (or -1: no limit)", optional=True)
        integer(cfg, "trainer.min_epochs", 0, optional=True, default=None)
        integer(cfg, "trainer.log_every_n_steps", 1, optional=True, default=50)
        integer(cfg, "trainer.check_val_every_n_epoch", 1, optional=True, default=1)
    else:  # the coded evaluation deals whole batches itself: eval.limit limits it
        limit = get(cfg, "trainer.limit_test_batches", None)
        if limit is not None and not (limit == 1.0 and not isinstance(limit, bool)):
            raise ConfigError(
                "trainer.limit_test_batches",
                "must be null for a coded evaluation (it deals whole batches to the processes); "
                "evaluate fewer images with eval.limit",
                limit,
            )


def _device_string(value: str) -> bool:
    """Lightning's device strings: ``"2"``, ``"-1"``, ``"0,1"`` (a trailing comma allowed)."""
    parts = [p.strip() for p in value.split(",") if p.strip()]
    return bool(parts) and all(p.lstrip("-").isdigit() for p in parts)


def check_hardware(cfg: DictConfig) -> int:
    """The trainer against this machine (imports torch); returns the number of processes."""
    import torch

    accelerator = get(cfg, "trainer.accelerator", "auto")
    devices = get(cfg, "trainer.devices", "auto")
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if accelerator in ("gpu", "cuda") and gpus == 0:
        raise ConfigError(
            "trainer.accelerator",
            "no CUDA GPU on this machine (torch.cuda.is_available() is False); use trainer=cpu",
            accelerator,
        )
    uses_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and gpus > 0)
    if isinstance(devices, str) and devices != "auto":  # "2" is a count, "0,1" a list
        parts = [p for p in devices.split(",") if p.strip()]
        devices = int(parts[0]) if len(parts) == 1 and "," not in devices else ListConfig(parts)
    if isinstance(devices, ListConfig):
        count = len(devices)
    elif devices == "auto" or devices == -1:
        count = gpus if uses_gpu else 1
    else:
        count = int(devices)
    if uses_gpu and count > gpus:
        raise ConfigError("trainer.devices", f"this machine has {gpus} GPU(s)", devices)
    return count * int(get(cfg, "trainer.num_nodes", 1))


def check_batches(cfg: DictConfig, num_images: int, processes: int) -> None:
    """Every process of a coded evaluation gets at least one batch."""
    batch = int(cfg.eval.batch_size)
    limit = cfg.eval.get("limit")
    count = min(num_images, limit) if limit is not None else num_images
    batches = -(-count // batch)
    if batches < processes:
        raise ConfigError(
            "eval.batch_size",
            f"{count} images make {batches} batch(es), fewer than the {processes} processes "
            f"of trainer.devices (each process needs one); use eval.batch_size <= "
            f"{max(count // processes, 1)} or fewer devices",
            batch,
        )


# -- coded evaluation ---------------------------------------------------------------------------
def check_eval(cfg: DictConfig) -> None:
    """Check an evaluation config (``nercc.eval`` and the evaluations of ``nercc.tune``).

    Types and ranges of ``coding``, ``stragglers``, ``eval``, the scheme and straggler nodes and
    the optimised metric; N >= K and integer S <= N - 1; the straggler model's parameters against
    the S list; equal cost for the baselines (every scheme on the same number of workers); the
    logger's needs; the output folder (not the cache's: one that cannot be written turns itself
    off); the memory the coded batches would need.
    """
    check_seed(cfg)
    _, size, classes = check_data(cfg)
    channels = int(cfg.data.channels)
    k = integer(cfg, "coding.num_inputs", 1)
    n = integer(cfg, "coding.num_workers", k, low_text=f"coding.num_inputs K={k}")
    assert k is not None and n is not None
    choice(cfg, "eval.split", ("test", "val"))
    batch = integer(cfg, "eval.batch_size", k, low_text=f"K={k}")
    patterns = integer(cfg, "eval.num_patterns", 1)
    integer(cfg, "eval.chunk_size", 1)
    limit = integer(cfg, "eval.limit", 1, optional=True, default=None)
    boolean(cfg, "eval.cache", default=True)
    integer(cfg, "eval.auto_images", 1, default=500)
    workers = _check_schemes(cfg, k)
    stragglers = integer_list(cfg, "stragglers", 0, min(workers) - 1, f"N - 1 = {min(workers) - 1}")
    check_straggler_node(cfg, stragglers)
    metric = get(cfg, "optimized_metric", None)
    if metric is not None and not isinstance(metric, str):
        raise ConfigError("optimized_metric", "must be null or coded/<scheme>/<metric>", metric)
    check_writable("paths.output_dir", get(cfg, "paths.output_dir"))
    check_loggers(cfg)
    check_trainer(cfg, training=False)
    # paths.cache_dir is not checked: the cache is a speed-up, and one that cannot be written
    # (full, read-only, not a folder) turns itself off for the run with one warning.
    images = min(v for v in (batch, limit, _split_size(cfg)) if v is not None)
    terms = coded_memory_terms(
        k,
        max(workers),
        images,
        patterns,  # type: ignore[arg-type]
        channels * size * size,
        classes,
        encoders=_count_encoders(cfg),
        decoders=len(cfg.scheme),
    )
    need, available = sum(terms.values()), available_memory_bytes()
    if available is not None and need > available:
        key = max(terms, key=terms.__getitem__)
        raise ConfigError(
            key,
            f"K={k}, N={max(workers)}, {images} images per batch and {patterns} pattern(s) per "
            f"group need about {need / 2**30:.1f} GiB (encoder, coded batch, outputs and "
            f"decoders; {key} weighs most), more than the {available / 2**30:.1f} GiB available",
            get(cfg, key),
        )


def check_checkpoint_exists(cfg: DictConfig) -> Path:
    """The published classifier the evaluation loads is there (its content is checked when it
    is loaded); a missing one is found before any data is read."""
    model, dataset = get(cfg, "model_name"), cfg.data.name
    path = Path(str(get(cfg, "paths.checkpoint_dir"))) / f"{model}_{dataset}.ckpt"
    if not path.is_file():
        raise ConfigError(
            "model",
            f"no trained {model} for {dataset} at {path}; train it with: python -m nercc.train "
            f"model={model} data={dataset} (or: make models, for the default set)",
            model,
        )
    return path


def _split_size(cfg: DictConfig) -> int | None:
    """Images in the evaluated split where the config tells (the validation split, synthetic
    data); None where only the data knows."""
    if cfg.eval.split == "val":
        return int(cfg.data.val_size)
    if cfg.data.name == "synthetic":
        return int(get(cfg, "data.synthetic.num_test", SYNTHETIC_DEFAULTS["num_test"]))
    return None


def _check_schemes(cfg: DictConfig, k: int) -> list[int]:
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


def _declared(node: Any) -> dict[str, Tunable]:
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
    declared = _declared(node)
    n = node.get("num_workers") if _is_int(node.get("num_workers")) else int(cfg.coding.num_workers)
    k = node.get("num_inputs") if _is_int(node.get("num_inputs")) else k
    for name, tunable in declared.items():
        key = f"{where}.{name}"
        value = get(cfg, key) if name in node else None
        if value is None:
            continue
        items = _as_list(value)
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
    return _is_number(item) and tunable.accepts(item, k, n)


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
        for param, tunable in _declared(node).items():
            if tunable.side in ("encoder", "both"):
                value = node.get(param)
                here *= len(_as_list(value) or [value])
        count = max(count, here)
    return count


def _from_outputs(node: Any) -> list[tuple[str, Any]]:
    """The parameters of a scheme node given a word whose decoding depends on the workers'
    outputs (``lam_dec=gcv``; also inside a list): (name, value)."""
    found = []
    for name, tunable in _declared(node).items():
        value = node.get(name)
        items = _as_list(value)
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
    cls, values = _model_settings(cfg, "straggler", "the S list gives num_stragglers")
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


def _model_settings(
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


def coded_memory_terms(
    num_inputs: int, num_workers: int, batch_size: int, num_patterns: int, image_elements: int,
    num_classes: int, encoders: int = 1, decoders: int = 1,
) -> dict[str, int]:  # fmt: skip
    """Bytes a coded evaluation holds at once for one batch, roughly, by the setting that drives
    each part.

    ``coding.num_workers``: the encoder (N x K, float64, five copies while it is built: the peak
    measured for NeRCC and BACC at K=100..200, N=10,000..20,000). ``eval.batch_size``: per
    distinct encoder the coded images of the G groups (G N images, float32). ``eval.num_patterns``:
    per encoder the outputs repeated for the T patterns of each group (G T N classes, float32),
    and per decoding scheme the decoder matrices of the G T patterns (K x N, float64, and their
    float32 operand), with the estimates. G = ceil(batch / K).
    """
    groups = -(-batch_size // num_inputs)
    patterns = groups * num_patterns
    return {
        "coding.num_workers": 5 * 8 * num_workers * num_inputs,
        "eval.batch_size": 4 * encoders * groups * num_workers * image_elements,
        "eval.num_patterns": 4 * encoders * patterns * num_workers * num_classes
        + (8 + 4) * decoders * patterns * num_inputs * num_workers
        + 4 * patterns * num_inputs * num_classes * encoders,
    }


def coded_memory_bytes(*args: Any, **kwargs: Any) -> int:
    """The sum of :func:`coded_memory_terms`."""
    return sum(coded_memory_terms(*args, **kwargs).values())


def available_memory_bytes() -> int | None:
    """MemAvailable of /proc/meminfo (Linux); None where unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


# -- tuning ---------------------------------------------------------------------------------------
def check_tune(cfg: DictConfig, objectives: Sequence[str]) -> None:
    """The ``tune`` node (the evaluation settings are :func:`check_eval`)."""
    check_eval(cfg)
    names = list(cfg.scheme)
    scheme = get(cfg, "tune.scheme")
    if scheme not in names:
        raise ConfigError(
            "tune.scheme", f"must be a scheme of this run ({', '.join(names)})", scheme
        )
    baseline = get(cfg, "tune.baseline", None)
    if baseline is not None and (baseline not in names or baseline == scheme):
        raise ConfigError(
            "tune.baseline",
            f"must be null or another scheme of this run ({', '.join(names)})",
            baseline,
        )
    if get(cfg, "tune.split") == "test":
        raise ConfigError("tune.split", "lambdas are never chosen on the test split", "test")
    choice(cfg, "tune.split", ("val",))
    integer(cfg, "tune.limit", 1, optional=True)
    integer(cfg, "tune.num_patterns", 1)
    choice(cfg, "tune.objective", tuple(objectives))
    search = choice(cfg, "tune.search", ("grid", "optuna"))
    if search == "grid":
        _check_space(cfg, scheme, "grid")
        integer(cfg, "tune.refine", 0)
    else:
        integer(cfg, "tune.optuna.n_trials", 1)
        check_seed(cfg, "tune.optuna.seed")
        _check_space(cfg, scheme, "search")
    integer(cfg, "tune.heatmaps", 0)
    boolean(cfg, "tune.publish")
    boolean(cfg, "tune.test")
    if get(cfg, "tune.publish"):
        check_writable("paths.lambdas_dir", get(cfg, "paths.lambdas_dir"))


def _check_space(cfg: DictConfig, scheme: str, kind: str) -> None:
    """``tune.grid`` (``kind="grid"``) or ``tune.optuna.ranges`` (``"search"``): null (the
    tuned scheme's declared defaults, :func:`nercc.tuning.search.search_space`) or a mapping
    whose keys are parameters the scheme declares (:class:`nercc.coding.Tunable`), each a
    non-empty list of values it accepts, or ``[low, high]`` of such values with low < high (and
    0 < low for a parameter searched on a log scale). The largest value of every parameter
    searched, given or declared, must build the scheme (a lambda within its finite range)."""
    from nercc.tuning.search import SPACES, search_space

    key, field = SPACES[kind]
    node = cfg.scheme[scheme]
    given = get(cfg, key, None)
    takes = "lists of values" if kind == "grid" else "[low, high]"
    if given is not None and (not isinstance(given, DictConfig) or not len(given)):
        raise ConfigError(
            key, f"must be null (the scheme's declared {field}) or map parameters to {takes}", given
        )
    cls = scheme_class(node)
    if cls is None or not cls.tunables:
        what = "a scheme that declares tunable parameters"
        found = f" ({cls.__name__} declares none)" if cls is not None else ""
        raise ConfigError("tune.scheme", f"must name {what}{found}", scheme)
    for param in given or ():
        if param not in {t.name for t in cls.tunables}:
            known = ", ".join(t.name for t in cls.tunables)
            raise ConfigError(
                f"{key}.{param}",
                f"is not a tunable parameter of scheme.{scheme} ({cls.__name__}: {known})",
                param,
            )
    try:
        space = search_space(cls, given, kind)  # type: ignore[arg-type]
    except ValueError as error:
        at, _, what = str(error).partition(": ")
        raise ConfigError(at, what, get(cfg, at, None)) from None
    n = node.get("num_workers") if _is_int(node.get("num_workers")) else cfg.coding.num_workers
    k = node.get("num_inputs") if _is_int(node.get("num_inputs")) else cfg.coding.num_inputs
    for param in given or ():
        at = f"{key}.{param}"
        tunable = cls.tunable(param)
        values = get(cfg, at)
        items = _as_list(values)
        accepted = bool(items) and all(_is_number(v) and tunable.accepts(v, k, n) for v in items)
        each = _range_text(tunable, int(k), int(n))
        if kind == "grid" and not accepted:
            raise ConfigError(
                at, f"must be a non-empty list of values of {param}, each {each}", values
            )
        if kind == "search" and not (
            accepted and len(items) == 2 and items[0] < items[1]  # type: ignore[arg-type]
            and (items[0] > 0 or not tunable.log)  # type: ignore[index]
        ):  # fmt: skip
            floor = "0 < low < high" if tunable.log else "low < high"
            raise ConfigError(at, f"must be [low, high] with {floor}, each {each}", values)
    for param, values in space.items():
        at, got = (
            (f"{key}.{param}", get(cfg, f"{key}.{param}"))
            if param in (given or ())
            else (key, given)
        )
        _buildable(cfg, scheme, param, max(values), at, got, declared=at == key)


def _buildable(
    cfg: DictConfig,
    scheme: str,
    param: str,
    value: Any,
    key: str,
    got: Any,
    declared: bool = False,
) -> None:
    """The tuned scheme accepts ``param=value`` (e.g. a lambda within its finite range);
    ``declared``: the value is of the scheme's declared defaults, not of the config."""
    from nercc.evaluation.variants import build_scheme

    node = {k: v for k, v in cfg.scheme[scheme].items() if k != TABLE_KEY and v is not None}
    node[param] = value
    try:
        build_scheme(scheme, OmegaConf.create(node))
    except ValueError as error:
        reason = str(error).split(": ", 1)[-1]
        whose = " (of its declared defaults)" if declared else ""
        raise ConfigError(
            key, f"the scheme refuses {param}={value:g}{whose} ({reason})", got
        ) from None


# -- training -------------------------------------------------------------------------------------
def check_train(cfg: DictConfig) -> None:
    """Check a training config: data, model, optimiser, trainer, logger, folders, publishing."""
    check_seed(cfg)
    _, size, classes = check_data(cfg)
    for key in ("model.num_classes", "model.net.num_classes"):
        if get(cfg, key, None) is not None and get(cfg, key) != classes:
            raise ConfigError(key, f"must equal data.num_classes={classes}", get(cfg, key))
    for key, want in (("image_size", size), ("in_channels", int(cfg.data.channels))):
        value = get(cfg, f"model.net.{key}", None)
        if value is not None and value != want:
            raise ConfigError(
                f"model.net.{key}", f"must equal data.{key.replace('in_', '')}={want}", value
            )
    number(cfg, "model.optimizer.lr", 0.0, low_open=True)
    number(cfg, "model.optimizer.weight_decay", 0.0, default=0.0)
    number(cfg, "model.label_smoothing", 0.0, 1.0, high_open=True, default=0.0)
    number(cfg, "model.scheduler.warmup_fraction", 0.0, 1.0, high_open=True, default=0.0)
    patch = get(cfg, "model.net.patch_size", None)
    if patch is not None:
        integer(cfg, "model.net.patch_size", 1, size)
        if size % patch:
            raise ConfigError("model.net.patch_size", f"must divide data.image_size={size}", patch)
    heads = get(cfg, "model.net.num_heads", None)
    if heads is not None:
        integer(cfg, "model.net.num_heads", 1)
        dim = integer(cfg, "model.net.embed_dim", 1)
        if dim % heads:  # type: ignore[operator]
            raise ConfigError(
                "model.net.num_heads", f"must divide model.net.embed_dim={dim}", heads
            )
    publish = get(cfg, "publish", True)
    if not (isinstance(publish, bool) or publish == "force"):
        raise ConfigError("publish", "must be true (when not worse), false or force", publish)
    metric = get(cfg, "optimized_metric", None)
    if metric is not None and not isinstance(metric, str):
        raise ConfigError("optimized_metric", "must be null or a metric name", metric)
    check_writable("paths.output_dir", get(cfg, "paths.output_dir"))
    check_trainer(cfg, training=True)
    check_loggers(cfg)
    if publish:
        check_writable("paths.checkpoint_dir", get(cfg, "paths.checkpoint_dir"))


def check_model_input(module: Any, cfg: DictConfig) -> None:
    """One forward pass of a zero image of the data's shape through the built network, so that
    a shape it cannot take is found before training (imports torch)."""
    import torch

    shape = (1, int(cfg.data.channels), int(cfg.data.image_size), int(cfg.data.image_size))
    net = module.net if hasattr(module, "net") else module
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            out = net(torch.zeros(shape))
    except (RuntimeError, ValueError, AssertionError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ConfigError(
            "model.net", f"cannot take data images of shape {shape[1:]} ({reason})",
            get(cfg, "model.net._target_", None),
        ) from None  # fmt: skip
    finally:
        net.train(was_training)
    classes = int(cfg.data.num_classes)
    if tuple(out.shape) != (1, classes):
        raise ConfigError(
            "model.net", f"must give {classes} logits per image, gives {tuple(out.shape[1:])}",
            get(cfg, "model.net._target_", None),
        )  # fmt: skip


# -- serving --------------------------------------------------------------------------------------
def served_schemes(cfg: DictConfig) -> list[str]:
    """The schemes a serving config can serve: ``uncoded`` and every scheme of its ``scheme``
    group (``scheme=all``: nercc, bacc and replication)."""
    schemes = get(cfg, "scheme", None)
    return [UNCODED, *(schemes if isinstance(schemes, DictConfig) else [])]


#: The CPU share of the HTTP deployment's replica (nercc.serving.endpoint).
ENDPOINT_CPUS = 0.1
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def check_serve(cfg: DictConfig, schemes: Sequence[str] | None = None, http: bool = True) -> None:
    """Check a serving config (``nercc.serve``, and the shared part of ``nercc.loadtest``).

    The code (N >= K), S <= N - 1, the schemes served (``serving.scheme``, or ``schemes``) and
    their nodes with one setting each (a list is a grid, not something to serve), equal resources
    (replication's copies fill the N workers), the delay model, the wait and fault settings,
    Ray's address and CPU shares, the HTTP address, the data, the loggers and the output folder.
    """
    check_seed(cfg)
    check_data(cfg)
    k = integer(cfg, "coding.num_inputs", 1)
    n = integer(cfg, "coding.num_workers", k, low_text=f"coding.num_inputs K={k}")
    assert k is not None and n is not None
    if schemes is None:
        schemes = [choice(cfg, "serving.scheme", served_schemes(cfg))]
    integer(cfg, "serving.num_stragglers", 0, n - 1)
    for name in schemes:
        if name == UNCODED:
            continue
        node = get(cfg, f"scheme.{name}", None)
        if not isinstance(node, DictConfig) or "_target_" not in node:
            raise ConfigError(
                f"scheme.{name}",
                f"serving {name} needs its config (scheme=all has nercc, bacc and replication)",
                node,
            )
        declared = _declared(node)
        for param, value in node.items():
            if isinstance(value, ListConfig):
                raise ConfigError(
                    f"scheme.{name}.{param}",
                    "serving uses one setting; a list is a grid for nercc.eval or nercc.tune",
                    value,
                )
            if param in declared and isinstance(value, str):
                raise ConfigError(
                    f"scheme.{name}.{param}",
                    "serving takes a number, or null for the published table (auto is "
                    f"calibrated by nercc.eval; {value} is not served)",
                    value,
                )
    _check_schemes(_served(cfg, schemes), k)
    number(cfg, "serving.deadline_ms", 0.0, low_open=True, optional=True)
    number(cfg, "serving.max_wait_ms", 0.0)
    integer(cfg, "serving.kill_every", 1, optional=True)
    address = get(cfg, "serving.address", None)
    if address is not None and not (
        address == "auto"
        or (isinstance(address, str) and re.fullmatch(r"(ray://)?[\w.\-\[\]:]+:\d+", address))
    ):
        raise ConfigError(
            "serving.address",
            "must be null (a local instance), auto, host:port or ray://host:port",
            address,
        )
    cpus = integer(cfg, "serving.num_cpus", 1, optional=True)
    if address is not None and cpus is not None:
        raise ConfigError(
            "serving.num_cpus",
            f"sizes a local instance; the cluster at serving.address={address} has its own, "
            "use null",
            cpus,
        )
    share = number(cfg, "serving.worker_cpus", 0.0, low_open=True)
    assert share is not None
    if address is None:
        total = cpus or os.cpu_count() or 1
        need = n * share + (ENDPOINT_CPUS if http else 0.0)
        if need > total + 1e-9:
            raise ConfigError(
                "serving.worker_cpus",
                f"N={n} workers of {share:g} CPU{' and the HTTP replica' if http else ''} need "
                f"{need:g} CPUs, more than the {total} of the local instance (lower it, or raise "
                "serving.num_cpus: a share is a reservation, not a limit)",
                share,
            )
    host = get(cfg, "serving.host")
    if not isinstance(host, str) or not host:
        raise ConfigError("serving.host", "must be an address to bind, e.g. 127.0.0.1", host)
    integer(cfg, "serving.port", 1, 65535)
    number(cfg, "serving.duration_s", 0.0, low_open=True, optional=True)
    delay = get(cfg, "delay", None)
    if delay is not None:
        if not isinstance(delay, DictConfig) or "_target_" not in delay:
            raise ConfigError(
                "delay", f"must be null or a {DelayModel.__name__} config with a _target_", delay
            )
        _model_settings(cfg, "delay")
    check_writable("paths.output_dir", get(cfg, "paths.output_dir"))
    check_loggers(cfg)


def check_loadtest(cfg: DictConfig) -> None:
    """Check a load test's config: :func:`check_serve` for every scheme of ``loadtest.schemes``,
    and the load (target, queries, rate, split, timeout)."""
    names = get(cfg, "loadtest.schemes")
    items = _as_list(names)
    if not items or any(name not in served_schemes(cfg) for name in items):
        raise ConfigError(
            "loadtest.schemes",
            f"must be a non-empty list of {', '.join(served_schemes(cfg))} (uncoded and the "
            "schemes of the scheme group)",
            names,
        )
    if len(set(items)) != len(items):
        raise ConfigError("loadtest.schemes", "must not repeat a scheme", names)
    target = choice(cfg, "loadtest.target", ("frontend", "http"))
    check_serve(cfg, items, http=target == "http")
    if target == "http" and get(cfg, "serving.host") not in LOOPBACK:
        raise ConfigError(
            "serving.host",
            f"a load test sends on loopback only: use one of {', '.join(LOOPBACK)}",
            get(cfg, "serving.host"),
        )
    integer(cfg, "loadtest.num_queries", 1)
    integer(cfg, "loadtest.warmup", 0, default=0)
    number(cfg, "loadtest.rate", 0.0, low_open=True)
    choice(cfg, "loadtest.split", ("test", "val"))
    number(cfg, "loadtest.timeout_s", 0.0, low_open=True)
    split, queries = cfg.loadtest.split, get(cfg, "loadtest.num_queries")
    size = int(cfg.data.val_size) if split == "val" else None
    if split == "test" and cfg.data.name == "synthetic":
        size = int(get(cfg, "data.synthetic.num_test", SYNTHETIC_DEFAULTS["num_test"]))
    if size is not None and queries > size:
        raise ConfigError(
            "loadtest.num_queries", f"the {split} split of {cfg.data.name} has {size} images",
            queries,
        )  # fmt: skip


def _served(cfg: DictConfig, schemes: Sequence[str]) -> DictConfig:
    """A view of ``cfg`` whose ``scheme`` group holds only the schemes served (uncoded: K)."""
    view = OmegaConf.create({"coding": OmegaConf.to_container(cfg.coding, resolve=True)})
    nodes = {}
    for name in schemes:
        if name == UNCODED:
            nodes[name] = {"_target_": "nercc.coding.Uncoded", "num_inputs": cfg.coding.num_inputs}
        else:
            nodes[name] = OmegaConf.to_container(cfg.scheme[name], resolve=True)
    view.scheme = nodes
    return view
