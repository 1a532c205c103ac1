"""Networks from timm, built for small images and trained from scratch (no weights offline)."""

from __future__ import annotations

import timm
from timm.models.vision_transformer import VisionTransformer
from torch import nn

__all__ = ["repvgg", "vit"]


def repvgg(
    in_channels: int = 1,
    num_classes: int = 10,
    image_size: int = 28,
    variant: str = "repvgg_a0",
    drop_rate: float = 0.0,
) -> nn.Module:
    """A timm RepVGG (``repvgg_a0`` by default) for ``in_channels`` x ``image_size``^2 inputs.

    It trains in its multi-branch form; :func:`nercc.models.load_classifier` re-parameterises it
    into the plain 3x3-conv form for inference (same function, fewer operations).
    """
    del image_size  # global pooling makes the network size-agnostic
    return timm.create_model(
        variant,
        pretrained=False,
        in_chans=in_channels,
        num_classes=num_classes,
        drop_rate=drop_rate,
    )


def vit(
    in_channels: int = 1,
    num_classes: int = 10,
    image_size: int = 28,
    patch_size: int = 4,
    embed_dim: int = 128,
    depth: int = 6,
    num_heads: int = 4,
    mlp_ratio: float = 2.0,
    drop_rate: float = 0.0,
) -> nn.Module:
    """A small timm VisionTransformer for 28x28 or 32x32 images (patches of ``patch_size``)."""
    if image_size % patch_size:
        raise ValueError(
            f"model.net.patch_size must divide image_size={image_size}, got {patch_size}"
        )
    return VisionTransformer(
        img_size=image_size,
        patch_size=patch_size,
        in_chans=in_channels,
        num_classes=num_classes,
        embed_dim=embed_dim,
        depth=depth,
        num_heads=num_heads,
        mlp_ratio=mlp_ratio,
        drop_rate=drop_rate,
    )
