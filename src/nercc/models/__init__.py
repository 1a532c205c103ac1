"""Base classifiers (LeNet5, timm RepVGG and ViT), their training module and checkpoints."""

from nercc.models.checkpoints import (
    Classifier,
    checkpoint_path,
    load_classifier,
    publish_classifier,
)
from nercc.models.lenet5 import LeNet5
from nercc.models.module import ClassifierModule, warmup_cosine
from nercc.models.timm_models import repvgg, vit

__all__ = [
    "Classifier",
    "ClassifierModule",
    "LeNet5",
    "checkpoint_path",
    "load_classifier",
    "publish_classifier",
    "repvgg",
    "vit",
    "warmup_cosine",
]
