"""A linear classifier of the pixels: the cheap model that orders the inputs of a group.

Its logits cost one (pixels x classes) product per image, a small fraction of the base
classifier's, yet they place similar images near each other: ``coding.order=proxy`` sorts a
group along a path through them (:mod:`nercc.coding.order`).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["LinearClassifier"]


class LinearClassifier(nn.Module):
    """Logits ``W x + b`` of the flattened image.

    Parameters
    ----------
    in_channels : int
        Image channels.
    num_classes : int
        Number of logits.
    image_size : int
        Height and width of the (square) input.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> None:
        super().__init__()
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(in_channels * image_size * image_size, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(x)
