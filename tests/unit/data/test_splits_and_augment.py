"""The datamodule's splits and augmentation against independent references.

The data are written here as torchvision IDX files whose every training image is distinct and
whose label is the image's index in the file, so each split can be traced back to the file: the
validation split is carved out of the training file, disjoint from the training split, the same
for the same seed; the raw validation and test images are the file's pixels / 255; the loaders
give them normalised by the training split's own statistics. The augmentation is checked to be a
(possibly mirrored) integer translation of each image by at most ``shift`` pixels, with the fill
value where the image was shifted away.
"""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from nercc.data import ImageDataModule
from nercc.data.datamodule import augment
from nercc.evaluation.data import CodedEvalData
from tests.unit.data.test_sources import write_idx

NUM_TRAIN, NUM_TEST, VAL = 40, 10, 10


@pytest.fixture
def files(tmp_path):
    """Fashion-MNIST-layout files: (train images, test images) as written (uint8, N x 28 x 28)."""
    rng = np.random.default_rng(11)
    train = rng.integers(0, 256, size=(NUM_TRAIN, 28, 28)).astype(np.uint8)
    test = rng.integers(0, 256, size=(NUM_TEST, 28, 28)).astype(np.uint8)
    raw = tmp_path / "FashionMNIST" / "raw"
    write_idx(raw / "train-images-idx3-ubyte", train, True)
    write_idx(raw / "train-labels-idx1-ubyte", np.arange(NUM_TRAIN), True)  # label = index
    write_idx(raw / "t10k-images-idx3-ubyte", test, True)
    write_idx(raw / "t10k-labels-idx1-ubyte", np.arange(NUM_TEST) + 100, True)
    return tmp_path, train, test


def make(root, **overrides):
    kwargs = dict(name="fashion_mnist", root=root, channels=1, image_size=28, val_size=VAL, seed=3)
    kwargs.update(overrides)
    dm = ImageDataModule(**kwargs, batch_size=8, eval_batch_size=7)
    dm.setup("fit")
    return dm


def unit(images):
    """uint8 (N, H, W) from the file to float32 (N, 1, H, W) in [0, 1]."""
    return torch.from_numpy(images[:, None].astype(np.float32) / np.float32(255.0))


def reference_stats(train, train_idx):
    pixels = unit(train[train_idx]).double()
    return pixels.mean().item(), pixels.std().item()


# -- splits (item 7) ----------------------------------------------------------------------------
def test_validation_is_carved_from_the_training_file_disjoint_from_training(files):
    root, train, test = files
    dm = make(root)
    train_x, train_idx = dm.train_set.tensors
    val_x, val_idx = dm.val_set.tensors
    train_idx, val_idx = train_idx.numpy(), val_idx.numpy()
    assert len(val_idx) == VAL and len(train_idx) == NUM_TRAIN - VAL
    assert len(set(val_idx)) == VAL and len(set(train_idx)) == NUM_TRAIN - VAL
    assert set(val_idx).isdisjoint(train_idx)
    assert set(val_idx) | set(train_idx) == set(range(NUM_TRAIN))
    # the images go with their labels: each split's images are the file's images at its indices
    mean, std = reference_stats(train, train_idx)
    torch.testing.assert_close(train_x, (unit(train[train_idx]) - mean) / std, atol=1e-5, rtol=0)
    torch.testing.assert_close(val_x, (unit(train[val_idx]) - mean) / std, atol=1e-5, rtol=0)
    # the test split is the test file, in order, and none of its images is a training image
    test_x, test_y = dm.test_set.tensors
    assert test_y.tolist() == list(range(100, 100 + NUM_TEST))
    torch.testing.assert_close(test_x, (unit(test) - mean) / std, atol=1e-5, rtol=0)
    in_train = {image.tobytes() for image in train}
    assert not any(image.tobytes() in in_train for image in test)


def test_the_same_seed_gives_the_same_split_whatever_the_global_rng(files):
    root, _, _ = files
    torch.manual_seed(0)
    first = make(root, seed=3)
    torch.manual_seed(12345)
    torch.rand(1000)  # the global generator moves on between the two
    second = make(root, seed=3)
    assert torch.equal(first.val_set.tensors[1], second.val_set.tensors[1])
    assert torch.equal(first.train_set.tensors[1], second.train_set.tensors[1])
    torch.testing.assert_close(first.train_set.tensors[0], second.train_set.tensors[0])
    other = make(root, seed=4)  # the same files, another seed: another split
    assert set(other.val_set.tensors[1].tolist()) != set(first.val_set.tensors[1].tolist())
    # A training subset takes from the training split only: validation is unchanged.
    subset = make(root, seed=3, train_subset=12)
    assert torch.equal(subset.val_set.tensors[1], first.val_set.tensors[1])
    kept = subset.train_set.tensors[1].tolist()
    assert len(kept) == 12 and set(kept) <= set(first.train_set.tensors[1].tolist())


# -- raw images (item 6) ------------------------------------------------------------------------
@pytest.mark.parametrize("split", ["val", "test"])
def test_raw_sets_are_pixels_over_255_and_loaders_normalise(files, split):
    root, train, test = files
    dm = make(root)
    raw_x, raw_y = dm.raw_set(split).tensors
    if split == "val":
        expected = unit(train[raw_y.numpy()])  # label = index in the training file
        loaded = dm.val_set
        loader = dm.val_dataloader()
        assert torch.equal(raw_y, dm.val_set.tensors[1])
    else:
        expected = unit(test)
        loaded = dm.test_set
        loader = dm.test_dataloader()
    assert raw_x.dtype == torch.float32 and raw_x.min() >= 0.0 and raw_x.max() <= 1.0
    assert torch.equal(raw_x, expected)  # exactly pixel / 255
    mean, std = reference_stats(train, dm.train_set.tensors[1].numpy())
    normalised = (expected - mean) / std
    torch.testing.assert_close(loaded.tensors[0], normalised, atol=1e-5, rtol=0)
    batches = list(loader)
    torch.testing.assert_close(torch.cat([x for x, _ in batches]), normalised, atol=1e-5, rtol=0)
    assert torch.equal(torch.cat([y for _, y in batches]), raw_y)
    assert float(normalised.min()) < -1.0  # normalised values are not raw ones
    # what the coded evaluation reads is the raw split, with the positions as indices
    images, labels, index = CodedEvalData(dm, split, batch_size=4).dataset().tensors
    assert torch.equal(images, expected) and torch.equal(labels, raw_y)
    assert index.tolist() == list(range(len(raw_y)))


# -- augmentation (item 4) ----------------------------------------------------------------------
def translate(image, oy, ox, fill):
    """Reference: out[c, i, j] = image[c, i + oy, j + ox] where inside, else fill[c]."""
    c, h, w = image.shape
    out = np.broadcast_to(np.asarray(fill, dtype=image.dtype).reshape(c, 1, 1), image.shape).copy()
    rows = slice(max(0, -oy), min(h, h - oy))
    cols = slice(max(0, -ox), min(w, w - ox))
    src_rows = slice(max(0, oy), min(h, h + oy))
    src_cols = slice(max(0, ox), min(w, w + ox))
    out[:, rows, cols] = image[:, src_rows, src_cols]
    return out


def match_translation(image, result, shift, fill):
    """The (mirrored, oy, ox) with |oy|, |ox| <= shift that maps image to result, or None."""
    for mirrored in (False, True):
        source = image[:, :, ::-1] if mirrored else image
        for oy in range(-shift, shift + 1):
            for ox in range(-shift, shift + 1):
                if np.allclose(translate(source, oy, ox, fill), result, rtol=0, atol=1e-6):
                    return mirrored, oy, ox
    return None


def test_augmented_images_are_bounded_translations_with_fill_at_the_border():
    torch.manual_seed(3)
    images = torch.rand(200, 2, 5, 7)  # non-square, two channels
    fill = torch.tensor([-0.7, 1.3]).view(1, 2, 1, 1)
    shift = 2
    out = augment(images, shift, fill)
    assert out.shape == images.shape
    found = []
    for image, result in zip(images.numpy(), out.numpy(), strict=True):
        match = match_translation(image, result, shift, fill.flatten().numpy())
        assert match is not None, "an augmented image is no translation of its input"
        found.append(match)
    # every offset in the range is drawn (25 offsets x 2 flips over 200 images), and both flips
    offsets = {(oy, ox) for _, oy, ox in found}
    assert offsets == {(y, x) for y in range(-2, 3) for x in range(-2, 3)}
    assert {mirrored for mirrored, _, _ in found} == {False, True}
    # a shift of at most 1 never moves farther
    small = augment(images[:60], 1, fill)
    for image, result in zip(images[:60].numpy(), small.numpy(), strict=True):
        assert match_translation(image, result, 1, fill.flatten().numpy()) is not None


def test_training_batches_are_augmented_with_the_normalised_black_as_fill(files):
    root, train, _ = files
    dm = make(root, augment=True, shift=3)
    images, labels = next(iter(dm.train_dataloader()))
    dm.trainer = SimpleNamespace(training=False)
    same, _ = dm.on_after_batch_transfer((images, labels), 0)
    assert torch.equal(same, images)  # never outside training
    dm.trainer = SimpleNamespace(training=True)
    torch.manual_seed(1)
    augmented, kept = dm.on_after_batch_transfer((images, labels), 0)
    assert torch.equal(kept, labels)
    mean, std = reference_stats(train, dm.train_set.tensors[1].numpy())
    black = np.array([(0.0 - mean) / std], dtype=np.float32)
    moved = 0
    for image, result in zip(images.numpy(), augmented.numpy(), strict=True):
        match = match_translation(image, result, 3, black)
        assert match is not None
        moved += match[1:] != (0, 0)
    assert moved > 0
