"""When a training run may replace the published classifier.

The rule (``publish=true``, the default): a run that trained at least one epoch publishes its
model at ``outputs/checkpoints/<model>_<dataset>.ckpt`` when nothing usable is published there yet
(no file, or one that cannot be read or is not a classifier for this model, dataset and input
shape), or when its test accuracy is at least the published one's (on the same dataset; the best
validation accuracy when either lacks a test accuracy). An untrained model is never published.
Otherwise its model is kept in its run folder (``<run>/classifier.ckpt``, the same format) and the
run says why it was not published. ``publish=force`` always publishes (even an untrained model),
``publish=false`` never does. A replaced file is kept as ``<name>.previous.ckpt`` with its JSON.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from nercc.models.checkpoints import (
    CheckpointError,
    backup_path,
    checkpoint_path,
    publish_classifier,
    read_checkpoint,
    write_classifier,
)

__all__ = ["PublishOutcome", "publish_mode", "publish_run"]

KEPT_NAME = "classifier.ckpt"


def publish_mode(value: Any) -> str:
    """``cfg.publish`` as one of ``"guarded"`` (true), ``"never"`` (false), ``"force"``.

    Raises ``ValueError`` for anything else (check it before training, not after).
    """
    if isinstance(value, bool):
        return "guarded" if value else "never"
    text = str(value).strip().lower()
    modes = {"true": "guarded", "false": "never", "force": "force"}
    if text not in modes:
        raise ValueError(f"publish must be true, false or force, got {value!r}")
    return modes[text]


@dataclass
class PublishOutcome:
    """What :func:`publish_run` did: ``message`` is the one line to show."""

    published: bool
    reason: str
    message: str
    path: Path  # the stable path (published there or not)
    kept: Path | None = None  # where the model was kept instead
    backup: Path | None = None  # the replaced file's new name

    def metrics(self) -> dict[str, Any]:
        """What ``metrics.json`` records of it."""
        out: dict[str, Any] = {"published": self.published, "publish_reason": self.reason}
        out["checkpoint" if self.published else "kept_checkpoint"] = str(
            self.path if self.published else self.kept
        )
        if self.backup is not None:
            out["replaced_checkpoint_backup"] = str(self.backup)
        return out


def _accuracy(info: dict[str, Any], key: str) -> float | None:
    value = info.get(key)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _comparable(new: dict[str, Any], old: dict[str, Any], split: str) -> bool:
    """Whether both accuracies of ``split`` (test or val) were measured on the same images: the
    same count, and the new run saw the whole split (a published file without a count, from
    before counts were recorded, was measured on the whole split)."""
    count, size = new.get(f"{split}_images"), new.get(f"{split}_set_size")
    if count is None or size is None:
        return True  # nothing recorded by the caller: trust the accuracies
    old_count = old.get(f"{split}_images")
    return count == size and (old_count is None or old_count == count)


def _compare(new: dict[str, Any], old: dict[str, Any]) -> tuple[str, float | None, float | None]:
    """The accuracy both runs have on the same images (test, else best validation) and its two
    values; the old one None when none compares."""
    for key, name, split in (
        ("test_acc", "test/acc", "test"),
        ("val_acc_best", "val/acc_best", "val"),
    ):
        a, b = _accuracy(new, key), _accuracy(old, key)
        if a is not None and b is not None and _comparable(new, old, split):
            return name, a, b
    test = _accuracy(new, "test_acc")
    if test is not None:
        return "test/acc", test, None
    return "val/acc_best", _accuracy(new, "val_acc_best"), None


def publish_run(
    net: nn.Module,
    net_config: dict[str, Any],
    mean: list[float],
    std: list[float],
    info: dict[str, Any],
    directory: str | Path,
    run_dir: str | Path,
    *,
    mode: str | bool = True,
    trained_epochs: int,
) -> PublishOutcome:
    """Publish the run's classifier under the rule of this module, or keep it in ``run_dir``.

    Parameters
    ----------
    net, net_config, mean, std, info
        As for :func:`nercc.models.checkpoints.publish_classifier`; ``info`` holds ``model``,
        ``dataset``, ``channels``, ``image_size``, ``num_classes``, ``test_acc`` and
        ``val_acc_best`` (None when not measured).
    directory : path
        Where classifiers are published.
    run_dir : path
        The run's folder: a model not published is written there as ``classifier.ckpt``.
    mode : bool or str
        ``cfg.publish``: true (the rule), false (never) or ``"force"`` (always).
    trained_epochs : int
        Complete training epochs of the run (0 for ``trainer.max_epochs=0``).
    """
    mode = publish_mode(mode)
    Path(directory).mkdir(parents=True, exist_ok=True)
    with _publish_lock(Path(directory)):  # two runs publishing at once decide one after the other
        model, dataset = info["model"], info["dataset"]
        path = checkpoint_path(model, dataset, directory)
        shape = (info.get("channels"), info.get("image_size"), info.get("image_size"))
        image_shape = None if None in shape else tuple(int(v) for v in shape)
        acc_name, new_acc, old_acc = "test/acc", _accuracy(info, "test_acc"), None

        def keep(reason: str, why: str) -> PublishOutcome:
            kept = write_classifier(Path(run_dir) / KEPT_NAME, net, net_config, mean, std, info)
            hint = "" if mode == "never" else "; publish=force replaces it"
            message = f"not published: {why} (kept in {kept}{hint})"
            return PublishOutcome(False, reason, message, path, kept=kept)

        def publish(reason: str, why: str) -> PublishOutcome:
            existed = path.exists()
            publish_classifier(net, net_config, mean, std, info, directory)
            score = "n/a" if new_acc is None else f"{new_acc:.4f}"
            if existed:
                backup = backup_path(path)
                message = (
                    f"published {path} ({acc_name} {score}): replaced {why} (backup: {backup})"
                )
                return PublishOutcome(True, reason, message, path, backup=backup)
            message = f"published {path} ({acc_name} {score}; nothing was published there before)"
            return PublishOutcome(True, reason, message, path)

        if mode == "never":
            return keep("publish=false", "publish=false")
        if mode == "force":
            if not path.exists():
                return publish("first", "")
            return publish("publish=force", "the published one as publish=force asks")
        if trained_epochs < 1 and not path.exists():
            now = "" if new_acc is None else f" ({acc_name} {new_acc:.4f})"
            return keep("untrained", f"the run trained {trained_epochs} epochs{now}")
        if not path.exists():
            return publish("first", "")
        try:
            old = read_checkpoint(
                path, model, dataset, num_classes=info.get("num_classes"), image_shape=image_shape
            )["info"]
        except CheckpointError as exc:
            if trained_epochs < 1:
                why = f"the run trained {trained_epochs} epochs (the published file is not usable)"
                return keep("untrained", why)
            return publish("unusable", f"a file that is not usable ({exc.problem})")
        acc_name, new_acc, old_acc = _compare(info, old)
        if trained_epochs < 1:
            now = "" if new_acc is None else f" ({acc_name} {new_acc:.4f})"
            was = "" if old_acc is None else f" has {old_acc:.4f}"
            why = f"the run trained {trained_epochs} epochs{now}, the published {path}{was}"
            return keep("untrained", why)
        if old_acc is None:
            if any(_accuracy(old, k) is not None for k in ("test_acc", "val_acc_best")):
                why = (
                    f"its accuracies were measured on other images than those of the published "
                    f"{path} (a limited test or validation set)"
                )
                return keep("not comparable", why)
            if new_acc is None:
                return keep("no accuracy", f"the run measured no accuracy to compare with {path}")
            return publish("published has no accuracy", "one that records no accuracy")
        if new_acc is None or not new_acc >= old_acc:
            score = "n/a" if new_acc is None else f"{new_acc:.4f}"
            why = f"{acc_name} {score} < {old_acc:.4f} of the published {path}"
            return keep("worse", why)
        return publish("better", f"the published one ({acc_name} {old_acc:.4f})")


@contextlib.contextmanager
def _publish_lock(directory: Path) -> Iterator[None]:
    with open(directory / ".publish.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
