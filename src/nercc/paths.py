"""Where the project lives: its configs, data and outputs (overridable with NERCC_ROOT)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CONFIG_DIR", "checkpoint_dir", "project_root"]


def project_root() -> Path:
    """The project folder: ``$NERCC_ROOT`` if set, else the checkout this package lives in."""
    env = os.environ.get("NERCC_ROOT")
    return Path(env).resolve() if env else Path(__file__).resolve().parents[2]


CONFIG_DIR = str(project_root() / "conf")


def checkpoint_dir() -> Path:
    """Where trained classifiers are published: ``<root>/outputs/checkpoints``."""
    return project_root() / "outputs" / "checkpoints"
