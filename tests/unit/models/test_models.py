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


class HalfBroken(torch.nn.Module):
    """Logits that favour class 0 everywhere, and are NaN (or inf) for images whose first pixel
    is above 0.5: an argmax would still answer class 0 for those."""

    def __init__(self, bad: float) -> None:
        super().__init__()
        self.bad = bad
        self.scale = torch.nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(len(x), 10) + self.scale * torch.eye(10)[0]
        return torch.where(x[:, :1, 0, 0] > 0.5, torch.full_like(logits, self.bad), logits)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_an_image_with_logits_that_are_not_finite_counts_as_wrong(bad):
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader, TensorDataset

    from nercc.models import ClassifierModule

    images = torch.zeros(8, 1, 28, 28)
    images[:3, 0, 0, 0] = 1.0  # three broken answers, all of class 0 as labelled
    labels = torch.tensor([0, 0, 0, 0, 0, 1, 2, 3])
    module = ClassifierModule(HalfBroken(bad), optimizer=lambda params: None)
    trainer = pl.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False,
                         enable_checkpointing=False)  # fmt: skip
    (metrics,) = trainer.test(module, DataLoader(TensorDataset(images, labels), batch_size=4),
                              verbose=False)  # fmt: skip
    assert metrics["test/acc"] == pytest.approx(2 / 8)  # not 5 / 8: argmax of NaN is class 0
    assert metrics["test/nonfinite"] == 3
    assert not torch.isfinite(torch.tensor(metrics["test/loss"]))  # never dropped from the mean
