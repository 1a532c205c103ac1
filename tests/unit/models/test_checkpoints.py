"""Published checkpoints: a file is trusted only after checking, every refusal is one line naming
the file and the command that rebuilds it; publishing is atomic, keeps a backup, respects the
umask; the publish rule (nercc.models.publish) decides without training anything."""

from __future__ import annotations

import math
import os
import random
import shutil
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from nercc.models import ClassifierModule, LeNet5, load_classifier, publish_classifier
from nercc.models.checkpoints import (
    CheckpointError,
    backup_path,
    read_checkpoint,
    write_classifier,
)
from nercc.models.publish import publish_mode, publish_run

NET_CONFIG = {"_target_": "nercc.models.LeNet5", "in_channels": 1, "num_classes": 10,
              "image_size": 28}  # fmt: skip
INFO = {"model": "lenet5", "dataset": "synthetic", "channels": 1, "image_size": 28,
        "num_classes": 10, "test_acc": 0.5, "val_acc_best": 0.5}  # fmt: skip


def lenet(seed: int = 0, classes: int = 10) -> LeNet5:
    torch.manual_seed(seed)
    return LeNet5(1, classes, 28)


def publish(directory: Path, net=None, **info) -> Path:
    return publish_classifier(
        net or lenet(), NET_CONFIG, [0.5], [0.25], {**INFO, **info}, directory
    )


# --- load_classifier refuses what it cannot trust --------------------------------------------


def lightning_checkpoint(path: Path) -> None:
    """A real Lightning training checkpoint of the project's module (one step on noise)."""
    module = ClassifierModule(lenet(), optimizer=lambda params: torch.optim.SGD(params, lr=0.01))
    data = TensorDataset(torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,)))
    trainer = pl.Trainer(
        max_epochs=1, limit_train_batches=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=path.parent,
    )  # fmt: skip
    trainer.fit(module, DataLoader(data, batch_size=8))
    trainer.save_checkpoint(path)


def forged(directory: Path, **changes) -> None:
    """A valid lenet5_synthetic file whose payload is then altered (``info``/``net_config``
    entries by name, ``None`` deletes)."""
    path = publish(directory)
    payload = torch.load(path, weights_only=True)
    for key, value in changes.items():
        part, name = key.split("__")
        if value is None:
            del payload[part][name]
        elif part == "payload":
            payload[name] = value
        else:
            payload[part][name] = value
    torch.save(payload, path)


def _make(directory: Path, case: str) -> None:
    path = directory / "lenet5_synthetic.ckpt"
    if case == "empty":
        path.write_bytes(b"")
    elif case == "truncated":
        publish(directory)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) * 2 // 3])
    elif case == "random bytes":
        path.write_bytes(random.Random(0).randbytes(4096))
    elif case == "foreign torch file":
        torch.save({"a": 1}, path)
    elif case == "torch file of a list":
        torch.save([1, 2, 3], path)
    elif case == "plain pickle":
        import pickle

        path.write_bytes(pickle.dumps({"state_dict": {}}))
    elif case == "lightning checkpoint":
        lightning_checkpoint(path)
    elif case == "future format":
        forged(directory, payload__format_version=99)
    elif case == "foreign network target":
        forged(directory, net_config___target_="os.system")
    elif case == "NaN weights":
        payload = torch.load(publish(directory), weights_only=True)
        payload["state_dict"]["features.0.bias"][2] = math.nan
        torch.save(payload, path)
    elif case == "infinite weights":
        payload = torch.load(publish(directory), weights_only=True)
        for name in ("features.0.weight", "features.3.weight", "classifier.1.bias",
                     "classifier.5.weight"):  # fmt: skip
            payload["state_dict"][name].view(-1)[0] = -math.inf
        torch.save(payload, path)
    elif case == "NaN normalisation":
        forged(directory, payload__std=[math.nan])
    elif case == "zero std":
        forged(directory, payload__std=[0.0])
    elif case == "weights do not fit":
        forged(directory, net_config__num_classes=7, info__num_classes=7)
    elif case == "another model's file under this name":
        publish(directory)
        shutil.copy(path, directory / "repvgg_synthetic.ckpt")
    elif case == "another model's network, info forged":
        forged(directory, info__model="repvgg")
        shutil.copy(path, directory / "repvgg_synthetic.ckpt")
    elif case == "another dataset":
        publish(directory)
        shutil.copy(path, directory / "lenet5_mnist.ckpt")
    else:  # the cases that differ only in what the caller asks
        publish(directory)


# (case, model, dataset, load_classifier keywords, what the message must say)
BAD = [
    ("empty", "lenet5", "synthetic", {}, "empty file (0 bytes)"),
    ("truncated", "lenet5", "synthetic", {}, "truncated or corrupt (cannot be read"),
    ("random bytes", "lenet5", "synthetic", {}, "truncated or corrupt (cannot be read"),
    ("plain pickle", "lenet5", "synthetic", {}, "truncated or corrupt (cannot be read"),
    ("foreign torch file", "lenet5", "synthetic", {}, "not a published classifier"),
    ("torch file of a list", "lenet5", "synthetic", {}, "not a published classifier"),
    ("lightning checkpoint", "lenet5", "synthetic", {}, "a Lightning training checkpoint"),
    ("future format", "lenet5", "synthetic", {}, "format_version 99"),
    ("foreign network target", "lenet5", "synthetic", {}, "its network is os.system"),
    ("weights do not fit", "lenet5", "synthetic", {}, "weights do not fit its network"),
    ("NaN weights", "lenet5", "synthetic", {},
     "its weights are not finite (NaN or inf in 1 of 10 tensors: features.0.bias)"),
    ("infinite weights", "lenet5", "synthetic", {},
     "its weights are not finite (NaN or inf in 4 of 10 tensors: features.0.weight, "
     "features.3.weight, classifier.1.bias and 1 more)"),
    ("NaN normalisation", "lenet5", "synthetic", {}, "its input normalisation is not finite"),
    ("zero std", "lenet5", "synthetic", {}, "its input normalisation divides by std [0.0]"),
    ("another model's file under this name", "repvgg", "synthetic", {},
     "holds a 'lenet5' model, not 'repvgg'"),
    ("another model's network, info forged", "repvgg", "synthetic", {},
     "its network is nercc.models.LeNet5, model=repvgg builds nercc.models.repvgg"),
    ("another dataset", "lenet5", "mnist", {}, "was trained on 'synthetic', not 'mnist'"),
    ("wrong class count", "lenet5", "synthetic", {"num_classes": 100},
     "trained for 10 classes, data.num_classes is 100"),
    ("wrong channels", "lenet5", "synthetic", {"image_shape": (3, 28, 28)},
     "trained on 1x28x28 images, the data has 3x28x28"),
    ("wrong image size", "lenet5", "synthetic", {"image_shape": (1, 32, 32)},
     "trained on 1x28x28 images, the data has 1x32x32"),
]  # fmt: skip


@pytest.mark.filterwarnings("ignore:You defined a `validation_step` but have no `val_dataloader`")
@pytest.mark.parametrize(
    ("case", "model", "dataset", "kwargs", "says"), BAD, ids=[b[0] for b in BAD]
)
def test_untrustworthy_checkpoint_is_one_line_value_error(
    tmp_path, case, model, dataset, kwargs, says
):
    _make(tmp_path, case)
    path = tmp_path / f"{model}_{dataset}.ckpt"
    with pytest.raises(ValueError) as caught:
        load_classifier(model, dataset, tmp_path, **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"checkpoint {path}: ")
    assert says in message
    assert "weights_only" not in message
    expected = "experiment=lenet5_mnist" if dataset == "mnist" else f"model={model} data={dataset}"
    assert message.endswith(f", rebuild it with: python -m nercc.train {expected}")


class Planted:
    """An object whose unpickling creates ``marker``: what a crafted checkpoint could run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("where", ["info", "state_dict", "whole file"])
def test_a_checkpoint_holding_python_objects_is_refused_without_running_them(tmp_path, where):
    # read with weights_only=True: unpickling stops at the object, its code never runs
    path = publish(tmp_path)
    marker = tmp_path / "code-ran"
    payload = torch.load(path, weights_only=True)
    if where == "info":
        payload["info"]["note"] = Planted(marker)
    elif where == "state_dict":
        payload["state_dict"]["features.0.bias"] = Planted(marker)
    else:
        payload = Planted(marker)
    torch.save(payload, path)
    assert not marker.exists()
    with pytest.raises(CheckpointError) as caught:
        load_classifier("lenet5", "synthetic", tmp_path)
    assert not marker.exists(), "loading the checkpoint ran code from it"
    assert str(caught.value) == (
        f"checkpoint {path}: not a published classifier (it holds Python objects beyond tensors "
        "and plain data), rebuild it with: python -m nercc.train model=lenet5 data=synthetic"
    )


def test_every_torch_load_of_the_project_passes_weights_only_true():
    # a torch.load without it (or with False) would unpickle, and run, whatever a file holds
    import nercc

    root = Path(nercc.__file__).parent
    calls = [
        (path.relative_to(root), line)
        for path in sorted(root.rglob("*.py"))
        for line in path.read_text().splitlines()
        if "torch.load(" in line or "weights_only" in line.replace("``weights_only=True``", "")
    ]
    assert calls, "no torch.load found: the test looks in the wrong place"
    assert [c for c in calls if "weights_only=True" not in c[1]] == []


def test_missing_checkpoint_is_one_line_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError) as caught:
        load_classifier("vit", "mnist", tmp_path)
    message = str(caught.value)
    assert "\n" not in message and str(tmp_path / "vit_mnist.ckpt") in message
    assert "python -m nercc.train model=vit data=mnist" in message


def test_checkpoint_that_fits_loads_as_the_same_function(tmp_path):
    net = lenet(3).eval()
    publish(tmp_path, net)
    classifier = load_classifier(
        "lenet5", "synthetic", tmp_path, num_classes=10, image_shape=(1, 28, 28)
    )
    images = torch.rand(4, 1, 28, 28)
    torch.testing.assert_close(classifier(images), net((images - 0.5) / 0.25))
    assert classifier.info["num_classes"] == 10 and classifier.info["image_size"] == 28


def test_the_digest_describes_the_bytes_whose_weights_were_loaded(tmp_path, monkeypatch):
    # a publisher replacing the file between the load and the hash must not make info["sha256"]
    # describe another file than the weights: the file is read once, parsed and hashed as such
    import hashlib
    import io

    publish(tmp_path, lenet(1))
    parsed: list[bytes] = []
    real_load = torch.load

    def load_then_replace(source, *args, **kwargs):
        if isinstance(source, io.BytesIO):
            parsed.append(source.getvalue())
        else:
            parsed.append(Path(source).read_bytes())
        payload = real_load(source, *args, **kwargs)
        publish(tmp_path, lenet(2), test_acc=0.9)  # a concurrent publisher replaces the file
        return payload

    monkeypatch.setattr(torch, "load", load_then_replace)
    classifier = load_classifier("lenet5", "synthetic", tmp_path)
    assert len(parsed) == 1
    assert classifier.info["sha256"] == hashlib.sha256(parsed[0]).hexdigest()
    assert classifier.info["test_acc"] == INFO["test_acc"]  # the weights of the bytes parsed


def test_format_1_file_without_the_new_fields_loads_and_is_still_checked(tmp_path):
    forged(tmp_path, payload__format_version=1, info__channels=None, info__image_size=None,
           info__num_classes=None)  # fmt: skip
    classifier = load_classifier(
        "lenet5", "synthetic", tmp_path, num_classes=10, image_shape=(1, 28, 28)
    )
    assert "num_classes" not in classifier.info
    with pytest.raises(ValueError, match="trained for 10 classes, data.num_classes is 5"):
        load_classifier("lenet5", "synthetic", tmp_path, num_classes=5)
    with pytest.raises(ValueError, match="trained on 1x28x28 images, the data has 3x32x32"):
        load_classifier("lenet5", "synthetic", tmp_path, image_shape=(3, 32, 32))


# --- publishing: atomic, backed up, readable as any file the user writes ------------------------


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o027, 0o640)])
def test_published_files_get_the_umask_mode(tmp_path, mask, mode):
    old = os.umask(mask)
    try:
        path = publish(tmp_path)
        kept = write_classifier(tmp_path / "run" / "classifier.ckpt", lenet(), NET_CONFIG,
                                [0.5], [0.25], INFO)  # fmt: skip
    finally:
        os.umask(old)
    for file in (path, path.with_suffix(".json"), kept):
        assert file.stat().st_mode & 0o777 == mode, file
    assert not list(tmp_path.rglob("*.tmp"))


def test_republishing_keeps_the_previous_file_as_backup(tmp_path):
    path = publish(tmp_path, lenet(1), test_acc=0.5)
    first, first_json = path.read_bytes(), path.with_suffix(".json").read_bytes()
    publish(tmp_path, lenet(2), test_acc=0.6)
    backup = backup_path(path)
    assert backup.name == "lenet5_synthetic.previous.ckpt"
    assert backup.read_bytes() == first and path.read_bytes() != first
    assert backup.with_suffix(".json").read_bytes() == first_json
    assert read_checkpoint(path, "lenet5", "synthetic")["info"]["test_acc"] == 0.6


def test_a_failed_publish_leaves_the_published_file_as_it_was(tmp_path, monkeypatch):
    path = publish(tmp_path)
    before = path.read_bytes()

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        publish(tmp_path, lenet(5))
    assert path.read_bytes() == before
    assert not list(tmp_path.glob(".*.tmp"))


# --- the publish rule, decided on files (no training) -----------------------------------------


def run_publish(tmp_path, *, mode=True, epochs=1, seed=9, **info):
    return publish_run(lenet(seed), NET_CONFIG, [0.5], [0.25], {**INFO, **info},
                       tmp_path / "published", tmp_path / "run", mode=mode,
                       trained_epochs=epochs)  # fmt: skip


@pytest.mark.parametrize(
    ("case", "published", "mode", "epochs", "new", "publishes", "says"),
    [
        ("first", None, True, 2, {"test_acc": 0.5}, True, "nothing was published there before"),
        ("untrained first", None, True, 0, {"test_acc": 0.1}, False,
         "not published: the run trained 0 epochs (test/acc 0.1000) (kept in"),
        ("untrained first, forced", None, "force", 0, {"test_acc": 0.1}, True,
         "nothing was published there before"),
        ("untrained", {"test_acc": 0.5}, True, 0, {"test_acc": 0.9}, False,
         "not published: the run trained 0 epochs (test/acc 0.9000)"),
        ("worse", {"test_acc": 0.5}, True, 3, {"test_acc": 0.4}, False,
         "not published: test/acc 0.4000 < 0.5000 of the published"),
        ("equal", {"test_acc": 0.5}, True, 3, {"test_acc": 0.5}, True,
         "replaced the published one (test/acc 0.5000)"),
        ("better", {"test_acc": 0.5}, True, 3, {"test_acc": 0.6}, True, "(backup: "),
        ("no test, val compared", {"test_acc": None, "val_acc_best": 0.7}, True, 3,
         {"test_acc": None, "val_acc_best": 0.6}, False, "val/acc_best 0.6000 < 0.7000"),
        ("other class count published", {"num_classes": 7, "seed_classes": 7}, True, 3,
         {"test_acc": 0.5}, True, "a file that is not usable (trained for 7 classes"),
        ("force", {"test_acc": 0.9}, "force", 0, {"test_acc": 0.1}, True,
         "replaced the published one as publish=force asks"),
        ("never", None, False, 3, {"test_acc": 0.9}, False, "not published: publish=false"),
        # chance: 1 / 10 classes, or the measured share of the most frequent class; clearly
        # above it: above chance + 3 standard errors of a chance-level accuracy on n images
        ("at chance, first", None, True, 3, {"test_acc": 0.15, "test_images": 256}, False,
         "not published: test/acc 0.1500 is not clearly above chance (needs > 0.1562: chance "
         "0.1000 + 3 standard errors on 256 images) (kept in"),
        ("clearly above chance", None, True, 3, {"test_acc": 0.16, "test_images": 256}, True,
         "nothing was published there before"),
        ("at chance, better than the published", {"test_acc": 0.1}, True, 3,
         {"test_acc": 0.15, "test_images": 256}, False, "is not clearly above chance"),
        ("most frequent class", None, True, 3,
         {"test_acc": 0.38, "test_images": 256, "test_chance": 0.3}, False,
         "(needs > 0.3859: chance 0.3000 + 3 standard errors on 256 images)"),
        ("no image count: above chance", None, True, 3, {"test_acc": 0.11}, True,
         "nothing was published there before"),
        ("no test: val compared with chance", None, True, 3,
         {"test_acc": None, "val_acc_best": 0.2, "val_images": 64}, False,
         "val/acc_best 0.2000 is not clearly above chance (needs > 0.2125"),
        ("at chance, forced", {"test_acc": 0.9}, "force", 3,
         {"test_acc": 0.1, "test_images": 256}, True, "as publish=force asks"),
    ],
)  # fmt: skip
def test_publish_rule(tmp_path, case, published, mode, epochs, new, publishes, says):
    path = tmp_path / "published" / "lenet5_synthetic.ckpt"
    if published is not None:
        published = dict(published)
        classes = published.pop("seed_classes", 10)
        config = {**NET_CONFIG, "num_classes": classes}
        publish_classifier(lenet(1, classes), config, [0.5], [0.25], {**INFO, **published},
                           tmp_path / "published")  # fmt: skip
        before = path.read_bytes()
    outcome = run_publish(tmp_path, mode=mode, epochs=epochs, **new)
    assert "\n" not in outcome.message and says in outcome.message, outcome.message
    assert outcome.published is publishes
    assert outcome.metrics()["published"] is publishes
    if publishes:
        assert outcome.message.startswith(f"published {path} ")
        assert read_checkpoint(path, "lenet5", "synthetic")["info"]["test_acc"] == new["test_acc"]
        if published is not None:
            assert backup_path(path).read_bytes() == before
            assert f"(backup: {backup_path(path)})" in outcome.message
    else:
        kept = tmp_path / "run" / "classifier.ckpt"
        assert outcome.kept == kept and f"(kept in {kept}" in outcome.message
        assert read_checkpoint(kept, "lenet5", "synthetic")["info"]["test_acc"] == new["test_acc"]
        if published is not None:
            assert path.read_bytes() == before and not backup_path(path).exists()
            assert outcome.message.endswith("; publish=force replaces it)")
    assert outcome.failed is False


def nan_net(seed: int = 3) -> LeNet5:
    net = lenet(seed)
    with torch.no_grad():
        net.classifier[-1].weight[0, 0] = math.nan
    return net


@pytest.mark.parametrize(
    ("net", "mode", "reason", "says"),
    [
        (lenet, False, "publish=false", "not published: publish=false (kept in"),
        (nan_net, True, "not finite", "training diverged: its weights are not finite"),
        (lenet, True, "unwritable", "not published: the checkpoint folder"),
        (lenet, "force", "unwritable", "not published: the checkpoint folder"),
    ],
)  # fmt: skip
def test_a_checkpoint_folder_that_cannot_be_written_never_loses_the_model(
    tmp_path, net, mode, reason, says
):
    # a folder under a regular file cannot be made (NotADirectoryError, even as root):
    # publish=false and a broken model never touch it; a publish keeps the model in the run
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    outcome = publish_run(net(), NET_CONFIG, [0.5], [0.25], {**INFO, "test_acc": 0.9},
                          blocker / "checkpoints", tmp_path / "run", mode=mode,
                          trained_epochs=3)  # fmt: skip
    kept = tmp_path / "run" / "classifier.ckpt"
    assert not outcome.published and outcome.reason == reason and outcome.kept == kept
    assert "\n" not in outcome.message and outcome.message.startswith(says), outcome.message
    assert f"(kept in {kept})" in outcome.message
    assert kept.is_file()  # a diverged one is kept to look at (loading it is refused)
    if reason != "not finite":
        assert read_checkpoint(kept, "lenet5", "synthetic")["info"]["test_acc"] == 0.9
    assert blocker.read_text() == "not a folder"


@pytest.mark.parametrize("mode", [True, "force", False])
@pytest.mark.parametrize(
    ("net", "info", "says"),
    [
        (nan_net, {}, "its weights are not finite (NaN or inf in 1 of 10 tensors: "
         "classifier.5.weight)"),
        (lenet, {"test_loss": math.nan}, "its test loss is nan"),
        (lenet, {"test_nonfinite": 3.0, "test_images": 256},
         "its logits are not finite on 3 of 256 test images"),
    ],
)  # fmt: skip
def test_a_model_that_is_not_finite_is_never_published(tmp_path, mode, net, info, says):
    # not even by force, nor over a published model of lower accuracy; kept and failed
    published = publish(tmp_path / "published", test_acc=0.2)
    before = published.read_bytes()
    outcome = publish_run(net(), NET_CONFIG, [0.5], [0.25], {**INFO, "test_acc": 0.9, **info},
                          tmp_path / "published", tmp_path / "run", mode=mode,
                          trained_epochs=3)  # fmt: skip
    kept = tmp_path / "run" / "classifier.ckpt"
    assert outcome.failed and not outcome.published and outcome.reason == "not finite"
    assert outcome.message == f"training diverged: {says}; not published (kept in {kept})"
    assert outcome.metrics()["kept_checkpoint"] == str(kept) and kept.is_file()
    assert published.read_bytes() == before and not backup_path(published).exists()


def test_publish_classifier_refuses_weights_that_are_not_finite(tmp_path):
    with pytest.raises(ValueError, match=r"^net: weights that are not finite are never published"):
        publish(tmp_path, nan_net())
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("value", "mode"),
    [(True, "guarded"), (False, "never"), ("force", "force"), ("true", "guarded"),
     ("False", "never")],
)  # fmt: skip
def test_publish_mode(value, mode):
    assert publish_mode(value) == mode


@pytest.mark.parametrize("value", ["maybe", 1, None, "forced"])
def test_publish_mode_refuses_other_values(value):
    with pytest.raises(ValueError, match=r"publish must be true, false or force, got"):
        publish_mode(value)


def test_the_errors_of_checkpoints_and_publishing_pickle():
    # joblib and submitit ship a failed job's exception back by pickle
    import pickle

    from nercc.models.publish import DivergedModelError

    errors = [
        CheckpointError(Path("/x/a.ckpt"), "empty file (0 bytes)", "make models"),
        DivergedModelError("training diverged: its test loss is nan; not published"),
    ]
    for error in errors:
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error) and str(copy) == str(error)
        assert vars(copy) == vars(error)
