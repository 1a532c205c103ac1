"""Base networks: shapes for each dataset's images, RepVGG's re-parameterisation, the schedule."""

import pytest
import torch
from timm.utils import reparameterize_model

from nercc.models import LeNet5, repvgg, vit, warmup_cosine


@pytest.mark.parametrize(("channels", "size", "classes"), [(1, 28, 10), (3, 32, 10), (3, 32, 100)])
@pytest.mark.parametrize("build", ["lenet5", "repvgg", "vit"])
def test_logits_shape_for_every_dataset(build, channels, size, classes):
    if build == "lenet5":
        net = LeNet5(channels, classes, size)
    elif build == "repvgg":
        net = repvgg(channels, classes, size)
    else:
        net = vit(channels, classes, size, patch_size=4, embed_dim=32, depth=1, num_heads=2)
    assert net(torch.randn(2, channels, size, size)).shape == (2, classes)


def test_repvgg_reparameterised_is_the_same_function():
    torch.manual_seed(0)
    net = repvgg(1, 10, 28).eval()
    x = torch.randn(4, 1, 28, 28)
    before = net(x)
    fused = reparameterize_model(net)
    assert sum(p.numel() for p in fused.parameters()) < sum(p.numel() for p in net.parameters())
    torch.testing.assert_close(fused(x), before, atol=1e-4, rtol=1e-4)


def test_vit_patch_must_divide_the_image():
    with pytest.raises(ValueError, match="patch_size must divide image_size=28, got 5"):
        vit(1, 10, 28, patch_size=5)


def test_lenet5_refuses_tiny_images():
    with pytest.raises(ValueError, match="image_size must be at least 12"):
        LeNet5(1, 10, 8)


def test_warmup_cosine_schedule():
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    scheduler = warmup_cosine(optimizer, total_steps=100, warmup_fraction=0.1)
    lrs = []
    for _ in range(100):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[55] == pytest.approx(0.5, abs=0.02) and lrs[-1] < 0.01
