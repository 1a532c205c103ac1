"""Base classifiers (LeNet5, timm RepVGG and ViT; a linear one to order inputs), their training
module and checkpoints.

The names load on first use, so that a serving worker that unpickles a LeNet5 imports neither
Lightning nor timm.
"""

from __future__ import annotations

from nercc.utils.lazy import lazy_attributes

_WHERE = {
    "CheckpointError": "nercc.models.checkpoints",
    "Classifier": "nercc.models.checkpoints",
    "ClassifierModule": "nercc.models.module",
    "LeNet5": "nercc.models.lenet5",
    "LinearClassifier": "nercc.models.linear",
    "checkpoint_path": "nercc.models.checkpoints",
    "load_classifier": "nercc.models.checkpoints",
    "publish_classifier": "nercc.models.checkpoints",
    "publish_mode": "nercc.models.publish",
    "publish_run": "nercc.models.publish",
    "read_checkpoint": "nercc.models.checkpoints",
    "repvgg": "nercc.models.timm_models",
    "vit": "nercc.models.timm_models",
    "warmup_cosine": "nercc.models.module",
}

__all__ = sorted(_WHERE)


__getattr__ = lazy_attributes(__name__, _WHERE)
