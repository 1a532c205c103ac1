"""When a training run may replace the published classifier.

Health first, whatever ``publish`` says: a model whose weights hold a NaN or an infinity, whose
test loss is not finite, or whose logits are not finite on some test image (a diverged run) is
never published, not even with ``publish=force``; it is kept in the run folder and the run fails.

The rule (``publish=true``, the default): a run that trained at least one epoch publishes its
model at ``outputs/checkpoints/<model>_<dataset>.ckpt`` when its accuracy is clearly above chance
(:func:`chance_problem`) and nothing usable is published there yet (no file, or one that cannot
be read or is not a classifier for this model, dataset and input shape), or when its test
accuracy is at least the published one's (on the same dataset; the best validation accuracy when
either lacks a test accuracy). An untrained model is never published. Otherwise its model is kept
in its run folder (``<run>/classifier.ckpt``, the same format) and the run says why it was not
published. ``publish=force`` publishes a healthy model even when these rules would not (an
untrained one too), ``publish=false`` never does. A replaced file is kept as
``<name>.previous.ckpt`` with its JSON. A broken model and ``publish=false`` never touch the
checkpoint folder; a folder that cannot be locked (read-only, not a folder) keeps the model in the
run folder with one line saying so, and the run goes on.

Runs publishing to one folder at once decide and write one after the other
(:func:`nercc.models.checkpoints.publish_lock`): the second compares itself with what the first
published, and, when it loses, keeps its model in its own run folder and says so.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from nercc.models.checkpoints import (
    CheckpointError,
    backup_path,
    checkpoint_path,
    nonfinite_summary,
    parity_checkpoint_path,
    parity_rebuild_command,
    publish_classifier,
    publish_lock,
    read_checkpoint,
    write_classifier,
)

__all__ = [
    "CHANCE_MARGIN_SE",
    "DivergedModelError",
    "PublishOutcome",
    "chance_problem",
    "health_problem",
    "publish_mode",
    "publish_parity",
    "publish_run",
]

KEPT_NAME = "classifier.ckpt"
#: How many binomial standard errors above chance an accuracy must be (see chance_problem).
CHANCE_MARGIN_SE = 3.0


class DivergedModelError(ValueError):
    """A training run whose model is not finite (:func:`health_problem`): it was kept in the run
    folder, not published. The message is the outcome's one line."""


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
    failed: bool = False  # the model is broken (not finite): the run must fail

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


def health_problem(net: nn.Module, info: dict[str, Any]) -> str | None:
    """Why the model is broken, or None: weights holding a NaN or an infinity, a test loss that
    is not finite (``info["test_loss"]``), or test images whose logits are not finite
    (``info["test_nonfinite"]``, a count)."""
    bad = nonfinite_summary(net.state_dict())
    if bad is not None:
        return f"its weights are not finite ({bad})"
    count = info.get("test_nonfinite")
    if isinstance(count, int | float) and not isinstance(count, bool) and count != 0:
        images = info.get("test_images")
        of = f" of {images}" if images is not None else ""
        return f"its logits are not finite on {count:g}{of} test images"
    loss = info.get("test_loss")
    if isinstance(loss, int | float) and not isinstance(loss, bool) and not math.isfinite(loss):
        return f"its test loss is {loss}"
    return None


def chance_problem(info: dict[str, Any]) -> str | None:
    """Why the accuracy is not clearly above chance, or None.

    The accuracy is the test accuracy (else the best validation accuracy) on ``n`` images
    (``info["<split>_images"]``). Chance ``p`` is the accuracy of always answering the most
    frequent class of those images (``info["<split>_chance"]``), else ``1 / num_classes``.
    "Clearly above" means above ``p + 3 * sqrt(p * (1 - p) / n)``: three standard errors of the
    accuracy of a chance-level classifier on ``n`` images, so that a model at chance passes
    about once in a thousand runs (with ``n`` unknown: above ``p``). On the 256 synthetic test
    images with 10 classes that is about 0.16; on 10 000 test images, about 0.11. None also
    when nothing tells chance (no class count) or no accuracy was measured.
    """
    for key, name, split in (
        ("test_acc", "test/acc", "test"),
        ("val_acc_best", "val/acc_best", "val"),
    ):
        accuracy = _accuracy(info, key)
        if accuracy is None:
            continue
        chance = _accuracy(info, f"{split}_chance")
        classes = info.get("num_classes")
        if chance is None and isinstance(classes, int) and not isinstance(classes, bool):
            chance = 1.0 / classes if classes >= 1 else None
        if chance is None:
            return None
        images = info.get(f"{split}_images")
        known = isinstance(images, int) and not isinstance(images, bool) and images > 0
        margin = CHANCE_MARGIN_SE * math.sqrt(chance * (1 - chance) / images) if known else 0.0
        if accuracy > chance + margin:
            return None
        how = (
            f"chance {chance:.4f} + {CHANCE_MARGIN_SE:g} standard errors on {images} images"
            if known
            else f"chance {chance:.4f}"
        )
        needs = f"needs > {chance + margin:.4f}: {how}"
        return f"{name} {accuracy:.4f} is not clearly above chance ({needs})"
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
    broken = health_problem(net, info)
    model, dataset = info["model"], info["dataset"]
    path = checkpoint_path(model, dataset, directory)

    def keep(reason: str, why: str, hint: str = "; publish=force replaces it") -> PublishOutcome:
        kept = write_classifier(Path(run_dir) / KEPT_NAME, net, net_config, mean, std, info)
        message = f"not published: {why} (kept in {kept}{hint})"
        return PublishOutcome(False, reason, message, path, kept=kept)

    # decided before the lock: these never touch the checkpoint folder (it may be read-only)
    if broken is not None:  # whatever the mode: force never publishes a broken model
        kept = write_classifier(Path(run_dir) / KEPT_NAME, net, net_config, mean, std, info)
        message = f"training diverged: {broken}; not published (kept in {kept})"
        return PublishOutcome(False, "not finite", message, path, kept=kept, failed=True)
    if mode == "never":
        return keep("publish=false", "publish=false", hint="")
    with contextlib.ExitStack() as stack:
        try:  # two runs publishing at once decide one after the other
            stack.enter_context(publish_lock(directory))
        except OSError as exc:
            why = f"the checkpoint folder {directory} cannot be written ({exc.strerror or exc})"
            return keep("unwritable", why, hint="")
        shape = (info.get("channels"), info.get("image_size"), info.get("image_size"))
        image_shape = None if None in shape else tuple(int(v) for v in shape)
        acc_name, new_acc, old_acc = "test/acc", _accuracy(info, "test_acc"), None

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

        if mode == "force":
            if not path.exists():
                return publish("first", "")
            return publish("publish=force", "the published one as publish=force asks")
        if trained_epochs < 1 and not path.exists():
            now = "" if new_acc is None else f" ({acc_name} {new_acc:.4f})"
            return keep("untrained", f"the run trained {trained_epochs} epochs{now}")
        at_chance = chance_problem(info)
        if trained_epochs >= 1 and at_chance is not None:
            return keep("chance", at_chance)
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


def publish_parity(
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
    """Publish a parity model at :func:`~nercc.models.checkpoints.parity_checkpoint_path`, or
    keep it in ``run_dir``, by the rule of base models adapted to parity models.

    Health first (weights and test loss finite; a broken model is kept and the run fails), then
    ``publish=false`` keeps it. ``force`` publishes. Otherwise an untrained model is kept; a
    trained one is published when nothing usable is published there, when the published one was
    trained against another base model (``base_sha256``: it is stale) or for another k, or when
    its test reconstruction accuracy (``test_recon_acc``) is at least the published one's.

    Parameters
    ----------
    net, net_config, mean, std
        The parity network, its config and the normalisation of its input (sums of k images).
    info : dict
        ``model`` and ``dataset`` (the base model's), ``parity_k``, ``base_sha256``,
        ``test_recon_acc``, ``test_loss`` and anything worth keeping.
    directory, run_dir, mode, trained_epochs
        As for :func:`publish_run`.
    """
    mode = publish_mode(mode)
    model, dataset, k = info["model"], info["dataset"], int(info["parity_k"])
    path = parity_checkpoint_path(model, dataset, k, directory)
    new_acc = _accuracy(info, "test_recon_acc")
    score = "n/a" if new_acc is None else f"{new_acc:.4f}"

    def keep(reason: str, why: str, failed: bool = False) -> PublishOutcome:
        kept = write_classifier(Path(run_dir) / KEPT_NAME, net, net_config, mean, std, info)
        message = f"not published: {why} (kept in {kept})"
        return PublishOutcome(False, reason, message, path, kept=kept, failed=failed)

    broken = health_problem(net, info)
    if broken is not None:
        return keep("not finite", f"training diverged: {broken}", failed=True)
    if mode == "never":
        return keep("publish=false", "publish=false")
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(publish_lock(directory))
        except OSError as exc:
            why = f"the checkpoint folder {directory} cannot be written ({exc.strerror or exc})"
            return keep("unwritable", why)

        def publish(reason: str, why: str) -> PublishOutcome:
            existed = path.exists()
            publish_classifier(net, net_config, mean, std, info, directory, path=path)
            backup = backup_path(path) if existed else None
            replaced = f": replaced {why} (backup: {backup})" if existed else ""
            message = f"published {path} (test/recon_acc {score}){replaced}"
            return PublishOutcome(True, reason, message, path, backup=backup)

        if mode == "force":
            return publish("publish=force", "the published one as publish=force asks")
        if trained_epochs < 1:
            return keep("untrained", f"the run trained {trained_epochs} epochs")
        if not path.exists():
            return publish("first", "")
        try:
            old = read_checkpoint(
                path, model, dataset, command=parity_rebuild_command(model, dataset, k)
            )["info"]
        except CheckpointError as exc:
            return publish("unusable", f"a file that is not usable ({exc.problem})")
        if old.get("parity_k") != k or old.get("base_sha256") != info.get("base_sha256"):
            return publish("stale", "one trained against another base model or k")
        old_acc = _accuracy(old, "test_recon_acc")
        if old_acc is not None and (new_acc is None or not new_acc >= old_acc):
            return keep("worse", f"test/recon_acc {score} < {old_acc:.4f} of the published {path}")
        return publish("better", "the published one")
