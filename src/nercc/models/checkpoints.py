"""Published classifiers: a stable path per (model, dataset), and loading them back.

``outputs/checkpoints/<model>_<dataset>.ckpt`` holds the best weights of the latest training run,
the network's config (its Hydra ``_target_`` node), the normalisation of its inputs and a summary;
a JSON file beside it repeats the summary (test accuracy, config hash, date) for people and tools.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from torch import nn

from nercc.utils.io import write_json

__all__ = [
    "Classifier",
    "checkpoint_path",
    "file_sha256",
    "load_classifier",
    "publish_classifier",
]

FORMAT_VERSION = 1


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


def file_sha256(path: str | Path) -> str:
    """SHA-256 hex digest of a file's content (what a tuned table records of its checkpoint)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def publish_classifier(
    net: nn.Module,
    net_config: dict[str, Any],
    mean: list[float],
    std: list[float],
    info: dict[str, Any],
    directory: str | Path,
) -> Path:
    """Write the classifier to its stable path (atomically) and its summary as JSON beside it.

    ``info`` must hold ``model`` and ``dataset`` (they name the file) and anything worth keeping:
    test accuracy, config hash, date, data source.
    """
    path = checkpoint_path(info["model"], info["dataset"], directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format_version": FORMAT_VERSION,
        "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
        "net_config": net_config,
        "mean": [float(v) for v in mean],
        "std": [float(v) for v in std],
        "info": info,
    }
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    write_json(path.with_suffix(".json"), info)
    return path


def load_classifier(
    model: str,
    dataset: str,
    directory: str | Path | None = None,
    device: str | torch.device = "cpu",
) -> Classifier:
    """Return the published classifier for (model, dataset), frozen and in eval mode.

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
    """
    from timm.utils import reparameterize_model

    from nercc.paths import checkpoint_dir
    from nercc.utils.instantiate import build

    path = checkpoint_path(model, dataset, directory or checkpoint_dir())
    if not path.is_file():
        raise FileNotFoundError(
            f"no trained {model} for {dataset} at {path}. Train it with:\n"
            f"  python -m nercc.train model={model} data={dataset}"
            f"   (or: make models, for the default set)"
        )
    payload = torch.load(path, map_location="cpu", weights_only=True)
    net = build(OmegaConf.create(payload["net_config"]))
    net.load_state_dict(payload["state_dict"])
    net.eval()
    net = reparameterize_model(net)
    classifier = Classifier(net, payload["mean"], payload["std"])
    classifier.info = {**payload["info"], "path": str(path), "sha256": file_sha256(path)}
    classifier.requires_grad_(False)
    return classifier.eval().to(device)
