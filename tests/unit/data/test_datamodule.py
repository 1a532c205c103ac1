"""The image datamodule on synthetic data."""

import numpy as np
import pytest
import torch

from nercc.data import ImageDataModule
from nercc.data.datamodule import augment
from tests.unit.data.test_sources import write_torchvision_idx


def make(**overrides):
    kwargs = dict(
        name="synthetic", channels=2, image_size=12, num_classes=3, batch_size=16, val_size=40
    )
    kwargs.update(overrides)
    return ImageDataModule(**kwargs, synthetic={"num_train": 200, "num_test": 30})


def test_splits_normalisation_and_raw_test_set():
    dm = make()
    dm.setup("fit")
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (160, 40, 30)
    train_x = dm.train_set.tensors[0]
    torch.testing.assert_close(train_x.mean(dim=(0, 2, 3)), torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(train_x.std(dim=(0, 2, 3)), torch.ones(2), atol=1e-4, rtol=0)
    raw_x, raw_y = dm.raw_set("test").tensors
    assert raw_x.min() >= 0 and raw_x.max() <= 1
    torch.testing.assert_close(dm.normalize(raw_x), dm.test_set.tensors[0])
    torch.testing.assert_close(raw_y, dm.test_set.tensors[1])
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (16, 2, 12, 12) and y.dtype == torch.int64


def test_same_seed_same_split_other_seed_other_split():
    a, b, c = make(seed=1), make(seed=1), make(seed=2)
    for dm in (a, b, c):
        dm.setup()
    torch.testing.assert_close(a.val_set.tensors[0], b.val_set.tensors[0])
    assert not torch.equal(a.val_set.tensors[1], c.val_set.tensors[1])


def test_train_subset_and_describe():
    dm = make(train_subset=50)
    info = dm.describe()
    assert info["num_train"] == 50 and info["dataset"] == "synthetic" and not info["subset"]


@pytest.mark.parametrize(
    ("overrides", "text"),
    [
        ({"name": "imagenet"}, "'imagenet'"),
        ({"val_size": 500}, "val_size must be below the 200"),
        ({"batch_size": 0}, "batch_size must be >= 1, got 0"),
    ],
)
def test_bad_settings_are_refused(overrides, text):
    with pytest.raises(ValueError, match=text):
        make(**overrides).setup()


def test_declared_shape_must_match_the_data(tmp_path):
    write_torchvision_idx(tmp_path, "FashionMNIST", np.random.default_rng(0))
    dm = ImageDataModule("fashion_mnist", root=tmp_path, channels=1, image_size=32, val_size=2)
    with pytest.raises(ValueError, match=r"shape \(1, 28, 28\), the config says \(1, 32, 32\)"):
        dm.setup()


def test_augment_flips_and_shifts_without_changing_content():
    torch.manual_seed(0)
    images = torch.rand(64, 1, 8, 8)
    out = augment(images, shift=2, fill=torch.zeros(1, 1, 1, 1))
    assert out.shape == images.shape
    changed = ~torch.isclose(out, images).all(dim=(1, 2, 3))
    assert changed.float().mean() > 0.5
    # Without shifts the only change is a flip of some of the images.
    flipped = augment(images, shift=0, fill=torch.zeros(1, 1, 1, 1))
    same = torch.isclose(flipped, images).all(dim=(1, 2, 3))
    mirrored = torch.isclose(flipped, images.flip(-1)).all(dim=(1, 2, 3))
    assert bool((same | mirrored).all()) and 0 < int(mirrored.sum()) < 64
