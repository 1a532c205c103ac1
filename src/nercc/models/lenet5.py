"""LeNet-5 (LeCun et al., 1998), adapted to any channel count, image size and class count."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["LeNet5"]


class LeNet5(nn.Module):
    """Two 5x5 convolutions (6 and 16 maps) with 2x2 max pooling, then 120-84-classes.

    As in the classic network, a 28x28 input is padded by 2 so the first convolution sees 32x32;
    ReLU replaces the original squashing functions.

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
        padding = 2 if image_size < 32 else 0
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, kernel_size=5, padding=padding),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, kernel_size=5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        side = ((image_size + 2 * padding - 4) // 2 - 4) // 2
        if side < 1:
            raise ValueError(f"image_size must be at least 12 for LeNet5, got {image_size}")
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * side * side, 120),
            nn.ReLU(inplace=True),
            nn.Linear(120, 84),
            nn.ReLU(inplace=True),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
