"""Base classifiers (LeNet5, timm RepVGG and ViT), their training module and checkpoints."""

from nercc.models.checkpoints import (
    CheckpointError,
    Classifier,
    checkpoint_path,
    load_classifier,
    publish_classifier,
    read_checkpoint,
)
from nercc.models.lenet5 import LeNet5
from nercc.models.module import ClassifierModule, warmup_cosine
from nercc.models.publish import publish_mode, publish_run
from nercc.models.timm_models import repvgg, vit

__all__ = [
    "CheckpointError",
    "Classifier",
    "ClassifierModule",
    "LeNet5",
    "checkpoint_path",
    "load_classifier",
    "publish_classifier",
    "publish_mode",
    "publish_run",
    "read_checkpoint",
    "repvgg",
    "vit",
    "warmup_cosine",
]
