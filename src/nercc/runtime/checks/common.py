"""Checks shared by several tasks: the seed, the data, the folders, the loggers, the trainer and
the hardware."""

from __future__ import annotations

import netrc
import os
import tempfile
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig

from nercc.data.sources import DATASETS, FORMATS, SYNTHETIC_DEFAULTS
from nercc.runtime.checks.readers import boolean, choice, get, integer, is_int, is_number, number
from nercc.utils.errors import ConfigError

PRECISIONS = {
    "16", "32", "64", "bf16", "16-mixed", "bf16-mixed", "32-true", "64-true", "16-true",
    "bf16-true", "transformer-engine", "transformer-engine-float16",
}  # fmt: skip
#: Precisions that would run the whole evaluation, its encoding and decoding too, in 16 bits.
HALF_PRECISIONS = {"16-true", "bf16-true", "transformer-engine", "transformer-engine-float16"}


ACCELERATORS = ("cpu", "gpu", "cuda", "mps", "tpu", "auto")


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
        or (is_int(devices) and (devices >= 1 or devices == -1))
        or (isinstance(devices, ListConfig) and len(devices) and all(is_int(d) for d in devices))
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
    if not training and str(precision) in HALF_PRECISIONS:
        raise ConfigError(
            "trainer.precision",
            "must keep the coding in float32 or higher: 32, 64, 16-mixed or bf16-mixed (the "
            "classifier then runs under autocast, encoding and decoding in float32)",
            precision,
        )
    for key in ("limit_train_batches", "limit_val_batches", "limit_test_batches"):
        value = get(cfg, f"trainer.{key}", None)
        if value is None:
            continue
        if isinstance(value, float) and is_number(value) and 0.0 <= value <= 1.0:
            continue
        if is_int(value) and value >= 0:
            continue
        raise ConfigError(
            f"trainer.{key}",
            "must be null, an integer >= 0 (batches) or a fraction in [0, 1]",
            value,
        )
    fast = get(cfg, "trainer.fast_dev_run", False)
    if not (isinstance(fast, bool) or (is_int(fast) and fast >= 0)):
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


def check_checkpoint_exists(cfg: DictConfig) -> Path:
    """The published classifier the evaluation loads is there (its content is checked when it
    is loaded); a missing one is found before any data is read."""
    model, dataset = get(cfg, "model_name"), cfg.data.name
    path = _published(cfg, model)
    if not path.is_file():
        raise ConfigError(
            "model",
            f"no trained {model} for {dataset} at {path}; train it with: python -m nercc.train "
            f"model={model} data={dataset} (or: make models, for the default set)",
            model,
        )
    return path


def check_arrangement(cfg: DictConfig) -> None:
    """``coding.order`` and ``coding.grouping`` name an order and a grouping of
    :mod:`nercc.coding.order` (``none`` and ``arrival`` when absent), and, for ``order=proxy``,
    ``coding.proxy`` names a model trained for the run's dataset (its checkpoint is there; its
    content is checked when it is loaded)."""
    from nercc.coding.order import GROUPINGS, ORDERS

    choice(cfg, "coding.grouping", GROUPINGS, default="arrival")
    if choice(cfg, "coding.order", ORDERS, default="none") != "proxy":
        return
    proxy = get(cfg, "coding.proxy", None)
    if not isinstance(proxy, str) or not proxy:
        raise ConfigError("coding.proxy", "must name the model whose logits order (linear)", proxy)
    dataset = cfg.data.name
    path = _published(cfg, proxy)
    if not path.is_file():
        raise ConfigError(
            "coding.proxy",
            f"coding.order=proxy orders by the logits of {proxy}, not trained for {dataset} at "
            f"{path}; train it with: python -m nercc.train model={proxy} data={dataset}",
            proxy,
        )


def _published(cfg: DictConfig, model: str) -> Path:
    """Where ``model`` trained on the run's dataset is published."""
    return Path(str(get(cfg, "paths.checkpoint_dir"))) / f"{model}_{cfg.data.name}.ckpt"
