"""Published classifiers: a stable path per (model, dataset), and loading them back after checking.

``outputs/checkpoints/<model>_<dataset>.ckpt`` holds the best weights of a training run (see
:mod:`nercc.models.publish` for when a run replaces it), the network's config (its Hydra
``_target_`` node), the normalisation of its inputs and a summary (``info``: model, dataset,
channels, image size, class count, test accuracy, config hash, date); a JSON file beside it repeats
the summary for people and tools.

A file is trusted only after checking: :func:`read_checkpoint` refuses an empty, truncated or
foreign file, one holding Python objects beyond tensors and plain data (it is read with
``weights_only=True``: loading never runs code from the file), another model's or dataset's
weights, weights for another input shape or class count than asked, and weights or a
normalisation that are not finite (a diverged training run), each with a one-line ``ValueError``
that names the file and the command that rebuilds it.
"""

from __future__ import annotations

import hashlib
import io
import math
import pickle
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from torch import nn

from nercc.utils.io import copy_atomic, publish_lock, write_bytes_atomic, write_json

__all__ = [
    "CheckpointError",
    "Classifier",
    "backup_path",
    "checkpoint_path",
    "file_sha256",
    "load_classifier",
    "load_parity",
    "nonfinite_summary",
    "nonfinite_tensors",
    "parity_checkpoint_path",
    "parity_rebuild_command",
    "publish_classifier",
    "publish_lock",
    "read_checkpoint",
    "rebuild_command",
    "write_classifier",
]

FORMAT_VERSION = 2  # 2: info records channels, image_size and num_classes (1 did not)
READABLE_VERSIONS = (1, 2)
PAYLOAD_KEYS = ("format_version", "state_dict", "net_config", "mean", "std", "info")


class CheckpointError(ValueError):
    """A published checkpoint that cannot be trusted: one line naming the file, what is wrong
    (``problem``) and the command that rebuilds it."""

    def __init__(self, path: str | Path, problem: str, command: str) -> None:
        self.path, self.problem, self.command = Path(path), " ".join(str(problem).split()), command
        super().__init__(f"checkpoint {self.path}: {self.problem}, rebuild it with: {command}")

    def __reduce__(self) -> tuple[Any, ...]:
        # pickled by joblib and submitit: rebuilt from its three arguments, not its message
        return (type(self), (self.path, self.problem, self.command))


class Classifier(nn.Module):
    """A trained network behind its input normalisation: raw images in [0, 1] to logits."""

    def __init__(self, net: nn.Module, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        self.info: dict[str, Any] = {}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net((images - self.mean) / self.std)


def checkpoint_path(model: str, dataset: str, directory: str | Path) -> Path:
    """``<directory>/<model>_<dataset>.ckpt``."""
    return Path(directory) / f"{model}_{dataset}.ckpt"


def parity_checkpoint_path(model: str, dataset: str, k: int, directory: str | Path) -> Path:
    """``<directory>/parity_<model>_<dataset>_k<k>.ckpt``: the parity model of the published
    ``<model>_<dataset>.ckpt`` for groups of k inputs."""
    return Path(directory) / f"parity_{model}_{dataset}_k{int(k)}.ckpt"


def parity_rebuild_command(model: str, dataset: str, k: int) -> str:
    """The command that trains (and publishes) a parity model: the experiment
    ``parity/<model>_k<k>`` when the project has one (Fashion-MNIST), else
    ``parity/default`` with the model, data and k."""
    from nercc.paths import CONFIG_DIR

    name = f"parity/{model}_k{int(k)}"
    if (Path(CONFIG_DIR) / "experiment" / f"{name}.yaml").is_file() and dataset == "fashion_mnist":
        return f"python -m nercc.train experiment={name}"
    return (
        f"python -m nercc.train experiment=parity/default model={model} data={dataset} "
        f"parity.k={int(k)}"
    )


def backup_path(path: str | Path) -> Path:
    """Where a replaced checkpoint is kept: ``<name>.previous.ckpt`` (its JSON beside it)."""
    path = Path(path)
    return path.with_name(f"{path.stem}.previous{path.suffix}")


def rebuild_command(model: str, dataset: str) -> str:
    """The command that trains (and publishes) ``<model>_<dataset>.ckpt``: the experiment of that
    name when the project has one (it holds the published recipe), else the plain groups."""
    from nercc.paths import CONFIG_DIR

    if (Path(CONFIG_DIR) / "experiment" / f"{model}_{dataset}.yaml").is_file():
        return f"python -m nercc.train experiment={model}_{dataset}"
    return f"python -m nercc.train model={model} data={dataset}"


def file_sha256(path: str | Path) -> str:
    """SHA-256 hex digest of a file's content (what a tuned table records of its checkpoint)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def nonfinite_tensors(tensors: Mapping[str, Any]) -> list[str]:
    """The names of the floating-point tensors of ``tensors`` (a state dict) that hold a NaN or
    an infinity, in order."""
    return [
        name
        for name, value in tensors.items()
        if isinstance(value, torch.Tensor)
        and (value.is_floating_point() or value.is_complex())
        and not bool(torch.isfinite(value).all())
    ]


def nonfinite_summary(tensors: Mapping[str, Any]) -> str | None:
    """``NaN or inf in <n> of <m> tensors: a, b, c and <k> more`` for a state dict holding
    tensors that are not finite (:func:`nonfinite_tensors`), None when every one is finite."""
    bad = nonfinite_tensors(tensors)
    if not bad:
        return None
    more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
    return f"NaN or inf in {len(bad)} of {len(tensors)} tensors: {', '.join(bad[:3])}{more}"


def write_classifier(
    path: str | Path,
    net: nn.Module,
    net_config: Mapping[str, Any],
    mean: list[float],
    std: list[float],
    info: Mapping[str, Any],
) -> Path:
    """Write the classifier payload to ``path`` atomically (a temporary file, fsync, rename).

    Readers see the old file or the complete new one. The file gets the mode of any new file under
    the process umask (:func:`nercc.utils.io.file_mode`), not the 0600 of a temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format_version": FORMAT_VERSION,
        "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
        "net_config": dict(net_config),
        "mean": [float(v) for v in mean],
        "std": [float(v) for v in std],
        "info": dict(info),
    }
    buffer = io.BytesIO()  # serialised in memory: a full disk is then an OSError naming the file
    torch.save(payload, buffer)
    return write_bytes_atomic(path, buffer.getvalue())


def publish_classifier(
    net: nn.Module,
    net_config: Mapping[str, Any],
    mean: list[float],
    std: list[float],
    info: Mapping[str, Any],
    directory: str | Path,
    path: str | Path | None = None,
) -> Path:
    """Write the classifier to its stable path (atomically) and its summary as JSON beside it.

    Unconditional: the rule of when a run may replace a published model is
    :func:`nercc.models.publish.publish_run`'s. A file already there is first kept as
    ``<name>.previous.ckpt`` (and its JSON as ``<name>.previous.json``); the stable path never
    disappears meanwhile. Everything is written under :func:`publish_lock` of the folder, each
    file staged under a unique temporary name, fsynced (the checkpoint) and renamed.

    ``info`` must hold ``model`` and ``dataset`` (they name the file) and should hold
    ``channels``, ``image_size`` and ``num_classes`` (what :func:`read_checkpoint` checks), and
    anything worth keeping: test accuracy, config hash, date, data source.

    ``path``, when given, is the stable path instead of :func:`checkpoint_path` of ``info`` in
    ``directory`` (a parity model's: :func:`parity_checkpoint_path`).

    Returns the published checkpoint's path (the backup, if any, is :func:`backup_path` of it).
    Weights that are not finite are never published: ``ValueError``, nothing written.
    """
    bad = nonfinite_summary(net.state_dict())
    if bad is not None:
        raise ValueError(f"net: weights that are not finite are never published, got {bad}")
    path = (
        Path(path)
        if path is not None
        else checkpoint_path(info["model"], info["dataset"], directory)
    )
    with publish_lock(path.parent):  # the backup and the new file are one publisher's
        if path.exists():
            backup = backup_path(path)
            copy_atomic(path, backup)
            if path.with_suffix(".json").exists():
                copy_atomic(path.with_suffix(".json"), backup.with_suffix(".json"))
            else:
                backup.with_suffix(".json").unlink(missing_ok=True)
        write_classifier(path, net, net_config, mean, std, info)
        write_json(path.with_suffix(".json"), dict(info))
    return path


def read_checkpoint(
    path: str | Path,
    model: str,
    dataset: str,
    *,
    num_classes: int | None = None,
    image_shape: tuple[int, int, int] | None = None,
    command: str | None = None,
) -> dict[str, Any]:
    """Read a published classifier file and check it is what ``(model, dataset)`` asks for.

    Checks that the file is a complete torch archive holding our payload (a readable format
    version), that it was published for ``model`` and ``dataset``, that its network config is
    ``model``'s network, that its weights fit that network, and, where the file records it (files
    of format 1 record the shape in their network config only), its class count and input shape
    against ``num_classes`` and ``image_shape`` when given, and that every weight and the input
    normalisation are finite (a diverged run's NaN weights answer class 0 to everything). Loads
    with ``weights_only=True``: a file holding other Python objects is refused, never run.

    Returns
    -------
    dict
        The payload, with ``net`` (the network, its weights loaded, not re-parameterised) and
        ``sha256`` (the content hash of the very bytes that were parsed; the file is read once)
        added.

    ``command``, when given, is the command that rebuilds the file, named in every refusal
    (a parity model's: :func:`parity_rebuild_command`); the base model's by default.

    Raises
    ------
    FileNotFoundError
        No file at ``path``; one line naming the command that trains it.
    CheckpointError (a ValueError)
        Anything else wrong with the file; one line naming the file, what is wrong and the
        command that rebuilds it.
    """
    from nercc.utils.instantiate import build

    if image_shape is not None and len(image_shape) != 3:
        raise ValueError(f"image_shape must be (channels, height, width), got {image_shape!r}")
    path = Path(path)
    command = command or rebuild_command(model, dataset)
    if not path.is_file():
        raise FileNotFoundError(
            f"no trained {model} for {dataset} at {path}, train it with: "
            f"{command} (or: make models, for the default set)"
        )

    def fail(what: str) -> CheckpointError:
        return CheckpointError(path, what, command)

    # read once: the digest and the weights describe the same bytes even if a publisher
    # replaces the file meanwhile
    data = path.read_bytes()
    size = len(data)
    if size == 0:
        raise fail("empty file (0 bytes)")
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise fail(
            f"truncated or corrupt (cannot be read: not a complete torch archive, {size} bytes)"
        )
    try:
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise fail(
            "not a published classifier (it holds Python objects beyond tensors and plain data)"
        ) from None
    except (RuntimeError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        reason = str(exc).split(".")[0][:120]
        raise fail(f"truncated or corrupt (cannot be read: {reason})") from None

    if not isinstance(payload, dict):
        raise fail(f"not a published classifier (a torch file holding a {type(payload).__name__})")
    missing = [key for key in PAYLOAD_KEYS if key not in payload]
    if missing:
        lightning = "pytorch-lightning_version" in payload
        kind = "a Lightning training checkpoint" if lightning else "a torch file"
        keys = ", ".join(map(str, list(payload)[:6])) or "none"
        raise fail(
            f"not a published classifier ({kind} with keys {keys}; missing {', '.join(missing)})"
        )
    version = payload["format_version"]
    if type(version) is not int or version not in READABLE_VERSIONS:
        raise fail(
            f"format_version {version!r} is not one this nercc reads "
            f"({', '.join(map(str, READABLE_VERSIONS))})"
        )
    info, net_config = payload["info"], payload["net_config"]
    if not isinstance(info, dict) or not isinstance(net_config, dict):
        raise fail("not a published classifier (its info or net_config is not a mapping)")
    if not isinstance(payload["state_dict"], dict) or not all(
        isinstance(v, torch.Tensor) for v in payload["state_dict"].values()
    ):
        raise fail("not a published classifier (its state_dict is not a mapping of tensors)")

    if info.get("model") != model:
        raise fail(f"holds a {info.get('model')!r} model, not {model!r}")
    if info.get("dataset") != dataset:
        raise fail(f"was trained on {info.get('dataset')!r}, not {dataset!r}")
    targets = _targets(net_config)
    expected = _expected_target(model)
    allowed = {expected} if expected else set()
    foreign = [t for t in targets if t not in allowed and not t.startswith("nercc.models.")]
    if not targets or foreign:
        got = ", ".join(foreign or ["no _target_"])
        want = expected or "a network of nercc.models"
        raise fail(f"its network is {got}, model={model} builds {want}")
    if expected and net_config.get("_target_") != expected:
        raise fail(f"its network is {net_config.get('_target_')}, model={model} builds {expected}")

    shape = _recorded(info, net_config)
    if num_classes is not None and shape["num_classes"] is not None:
        if int(shape["num_classes"]) != int(num_classes):
            raise fail(
                f"trained for {shape['num_classes']} classes, data.num_classes is {num_classes}"
            )
    if image_shape is not None:
        channels, height, width = (int(v) for v in image_shape)
        stored_c, stored_s = shape["channels"], shape["image_size"]
        if (stored_c is not None and int(stored_c) != channels) or (
            stored_s is not None and (int(stored_s), int(stored_s)) != (height, width)
        ):
            trained = "x".join("?" if v is None else str(v) for v in (stored_c, stored_s, stored_s))
            raise fail(f"trained on {trained} images, the data has {channels}x{height}x{width}")
    mean, std = payload["mean"], payload["std"]
    if not (isinstance(mean, list) and isinstance(std, list) and len(mean) == len(std)) or (
        shape["channels"] is not None and len(mean) not in (1, int(shape["channels"]))
    ):
        raise fail("its input normalisation (mean, std) does not fit its channel count")
    numbers = [v for v in (*mean, *std) if isinstance(v, int | float) and not isinstance(v, bool)]
    if len(numbers) != 2 * len(mean) or not all(math.isfinite(v) for v in numbers):
        raise fail(f"its input normalisation is not finite numbers (mean {mean}, std {std})")
    if not all(v > 0 for v in std):
        raise fail(f"its input normalisation divides by std {std} (it must be > 0)")

    bad = nonfinite_summary(payload["state_dict"])
    if bad is not None:
        raise fail(f"its weights are not finite ({bad})")

    try:
        net = build(OmegaConf.create(net_config))
    except Exception as exc:  # noqa: BLE001 - any failure to build is a bad file
        raise fail(f"its network config cannot be built ({type(exc).__name__})") from None
    try:
        net.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        first = str(exc).split("\n\t", 2)
        detail = first[1] if len(first) > 1 else first[0]
        raise fail(f"its weights do not fit its network ({detail[:160]})") from None
    return {**payload, "net": net, "sha256": hashlib.sha256(data).hexdigest()}


def _targets(node: Any) -> list[str]:
    """Every ``_target_`` in a config tree."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "_target_":
                found.append(str(value))
            else:
                found.extend(_targets(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_targets(value))
    return found


def _expected_target(model: str) -> str | None:
    """``net._target_`` of ``conf/model/<model>.yaml``, None when the project has no such file."""
    from nercc.paths import CONFIG_DIR

    file = Path(CONFIG_DIR) / "model" / f"{model}.yaml"
    if not re.fullmatch(r"[\w.-]+", model) or not file.is_file():
        return None
    try:
        target = OmegaConf.select(OmegaConf.load(file), "net._target_", default=None)
    except Exception:  # noqa: BLE001 - an unreadable config checks nothing
        return None
    return str(target) if target else None


def _recorded(info: Mapping[str, Any], net_config: Mapping[str, Any]) -> dict[str, Any]:
    """Channels, image size and class count the file records (info first, else net_config)."""
    sources = {"channels": "in_channels", "image_size": "image_size", "num_classes": "num_classes"}
    recorded: dict[str, Any] = {}
    for key, config_key in sources.items():
        value = info.get(key, net_config.get(config_key))
        recorded[key] = value if isinstance(value, int) and not isinstance(value, bool) else None
    return recorded


def load_classifier(
    model: str,
    dataset: str,
    directory: str | Path | None = None,
    device: str | torch.device = "cpu",
    *,
    num_classes: int | None = None,
    image_shape: tuple[int, int, int] | None = None,
) -> Classifier:
    """Return the published classifier for (model, dataset), checked, frozen and in eval mode.

    RepVGG-style networks are re-parameterised into their inference form. The classifier takes
    raw images in [0, 1] and normalises them itself. Its ``info`` holds the published summary,
    the file's ``path`` and its content hash ``sha256``.

    Parameters
    ----------
    model, dataset : str
        Names as in ``model=<model> data=<dataset>``.
    directory : path, optional
        Where checkpoints are published; ``outputs/checkpoints`` of the project by default.
    device : str or torch.device
        Where to put the classifier.
    num_classes : int, optional
        The class count the caller's data has; a checkpoint trained for another is refused.
    image_shape : (channels, height, width), optional
        The caller's input shape; a checkpoint trained on another is refused.

    Raises
    ------
    FileNotFoundError
        Nothing published for (model, dataset).
    ValueError
        The file is empty, truncated, corrupt or not ours, or holds another model, dataset, class
        count or input shape (see :func:`read_checkpoint`); one line ending with the command that
        rebuilds it.
    """
    from nercc.paths import checkpoint_dir

    path = checkpoint_path(model, dataset, directory or checkpoint_dir())
    payload = read_checkpoint(
        path, model, dataset, num_classes=num_classes, image_shape=image_shape
    )
    net = payload["net"]
    net.eval()
    if type(net).__module__.split(".")[0] == "timm":  # LeNet5 loads without importing timm
        from timm.utils import reparameterize_model

        net = reparameterize_model(net)
    classifier = Classifier(net, payload["mean"], payload["std"])
    classifier.info = {**payload["info"], "path": str(path), "sha256": payload["sha256"]}
    classifier.requires_grad_(False)
    return classifier.eval().to(device)


def load_parity(
    path: str | Path,
    base: Classifier,
    k: int,
    device: str | torch.device = "cpu",
) -> Classifier:
    """Return the parity model published at ``path`` for ``base`` and groups of ``k`` inputs,
    checked, frozen and in eval mode: raw sums of k images to logits.

    Besides :func:`read_checkpoint`'s checks (against the base model's name, dataset, class
    count and input shape), the file must record ``parity_k == k`` and the content hash of
    ``base``'s checkpoint (``base_sha256``): a parity model trained against another base model
    (a retrained one) would reconstruct another model's outputs, so it is refused.

    Parameters
    ----------
    path : path
        The parity checkpoint (:func:`parity_checkpoint_path`).
    base : Classifier
        The published base classifier (``info`` holds ``model``, ``dataset``, ``sha256``).
    k : int
        The inputs of a group.
    device : str or torch.device
        Where to put the parity model.

    Raises
    ------
    FileNotFoundError
        No file at ``path``; one line naming the command that trains it.
    CheckpointError (a ValueError)
        A file :func:`read_checkpoint` refuses, or one for another k or another base model.
    """
    info = base.info
    model, dataset = str(info.get("model")), str(info.get("dataset"))
    command = parity_rebuild_command(model, dataset, k)
    shape = (info.get("channels"), info.get("image_size"), info.get("image_size"))
    payload = read_checkpoint(
        path,
        model,
        dataset,
        num_classes=info.get("num_classes"),
        image_shape=None if None in shape else tuple(int(v) for v in shape),
        command=command,
    )
    recorded = payload["info"]
    if recorded.get("parity_k") != int(k):
        raise CheckpointError(
            path, f"is a parity model for k={recorded.get('parity_k')!r}, not k={k}", command
        )
    if recorded.get("base_sha256") != info.get("sha256"):
        raise CheckpointError(
            path,
            f"was trained against another {model} (base sha256 "
            f"{str(recorded.get('base_sha256'))[:12]}), the published {info.get('path')} has "
            f"{str(info.get('sha256'))[:12]}: its parity outputs are another model's",
            command,
        )
    net = payload["net"].eval()
    parity = Classifier(net, payload["mean"], payload["std"])
    parity.info = {**recorded, "path": str(path), "sha256": payload["sha256"]}
    parity.requires_grad_(False)
    return parity.eval().to(device)
