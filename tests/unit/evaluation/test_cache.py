"""Classifier outputs cached on disk: bitwise hits, fingerprints, atomic and concurrent writes."""

import multiprocessing
import os
import signal
import stat

import numpy as np
import pytest
import torch
from torch import nn

from nercc.evaluation.cache import OutputCache, fingerprint

KEY = fingerprint("test_cache", 0)


def special_values(dtype: torch.dtype) -> torch.Tensor:
    """Values a lossy round trip would change: -0, NaN, infinities, subnormals, extremes."""
    info = torch.finfo(dtype)
    values = [0.0, -0.0, float("nan"), float("inf"), -float("inf"), info.tiny / 4, info.max, 1 / 3]
    return torch.cat([torch.tensor(values, dtype=dtype), torch.randn(8, dtype=dtype)]).reshape(2, 8)


def bits(tensor: torch.Tensor) -> torch.Tensor:
    """The tensor's bit patterns, so NaN and -0.0 compare exactly."""
    return tensor.view({torch.float32: torch.int32, torch.float64: torch.int64}[tensor.dtype])


def entries(root) -> list:
    return sorted(p.name for p in root.rglob("*.npy"))


def leftovers(root) -> list:
    return sorted(p.name for p in root.rglob("*.tmp"))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_hit_equals_miss_bitwise_and_skips_compute(tmp_path, dtype):
    torch.manual_seed(0)
    value = special_values(dtype)
    calls = []

    def compute():
        calls.append(1)
        return value

    cache = OutputCache(tmp_path)
    missed = cache.get_or_compute(KEY, compute)
    assert missed is value and len(calls) == 1
    assert (cache.hits, cache.misses) == (0, 1)

    def must_not_run():
        raise AssertionError("compute called on a hit")

    hit = cache.get_or_compute(KEY, must_not_run)
    assert (cache.hits, cache.misses) == (1, 1)
    assert hit.dtype == dtype and hit.device.type == "cpu" and hit.shape == value.shape
    assert torch.equal(bits(hit), bits(value))

    # The next job of the sweep: a fresh cache on the same folder.
    again = OutputCache(tmp_path)
    loaded = again.get_or_compute(KEY, must_not_run, device="meta")
    assert loaded.device.type == "meta" and loaded.dtype == dtype
    assert (again.hits, again.misses) == (1, 0)


def test_entry_is_a_plain_npy_file_at_its_path(tmp_path):
    cache = OutputCache(tmp_path / "cache")
    value = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    assert cache.load(KEY) is None and cache.misses == 1
    cache.store(KEY, value)
    path = cache.path(KEY)
    assert path == tmp_path / "cache" / KEY[:2] / f"{KEY}.npy"
    np.testing.assert_array_equal(np.load(path, allow_pickle=False), value.numpy())
    assert entries(tmp_path) == [f"{KEY}.npy"] and leftovers(tmp_path) == []


def test_entry_mode_follows_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        OutputCache(tmp_path).store(KEY, torch.zeros(3))
    finally:
        os.umask(old)
    mode = stat.S_IMODE(os.stat(OutputCache(tmp_path).path(KEY)).st_mode)
    assert mode == 0o640  # mkstemp's 0o600 unless chmod-ed


def test_fingerprint_is_equal_for_equal_inputs():
    torch.manual_seed(1)
    x = torch.randn(4, 3)
    module = nn.Linear(3, 2)
    twin = nn.Linear(3, 2)
    twin.load_state_dict(module.state_dict())
    digest = fingerprint(x, module, {"b": 1, "a": [1, 2.5]}, "mnist")
    assert digest == fingerprint(x.clone(), twin, {"a": [1, 2.5], "b": 1}, "mnist")
    assert digest == fingerprint(x.T.contiguous().T, twin, {"a": [1, 2.5], "b": 1}, "mnist")
    assert len(digest) == 64 and int(digest, 16) >= 0 and digest == digest.lower()
    assert fingerprint(x.numpy()) == fingerprint(x.numpy().copy())


def test_fingerprint_changes_with_anything_the_output_depends_on():
    torch.manual_seed(2)
    x = torch.randn(4, 3)
    base = fingerprint(x)
    changed = x.clone()
    changed[2, 1] += 1e-6
    assert fingerprint(changed) != base
    assert fingerprint(x.double()) != base
    assert fingerprint(x.view(torch.int32)) != base  # same bytes, other dtype
    assert fingerprint(x.reshape(3, 4)) != base  # same bytes, other shape
    assert fingerprint(x.reshape(12)) != base
    assert fingerprint(x.numpy()) != fingerprint(x.numpy().view(np.int32))
    assert fingerprint(x.numpy()) != fingerprint(x.numpy().reshape(2, 6))

    module = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 2))
    before = fingerprint(module)
    with torch.no_grad():
        module[2].weight[1, 0] += 1.0
    assert fingerprint(module) != before

    assert fingerprint("ab", "c") != fingerprint("a", "bc")
    assert fingerprint(["ab"], "c") != fingerprint("ab", "c")
    assert len({fingerprint(1), fingerprint(1.0), fingerprint(True), fingerprint("1")}) == 4
    assert fingerprint(x, "s") != fingerprint("s", x)


def test_fingerprint_rejects_what_it_cannot_hash():
    with pytest.raises(ValueError, match=r"parts\[1\].*object"):
        fingerprint("ok", object())
    with pytest.raises(ValueError, match=r"parts\[0\]"):
        fingerprint(np.array([None, 1], dtype=object))


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda raw: raw[: len(raw) // 2], id="half"),
        pytest.param(lambda raw: b"", id="empty"),
        pytest.param(lambda raw: b"\x80\x04K\x01.", id="pickle"),
    ],
)
def test_unreadable_entry_is_a_miss_then_recomputed(tmp_path, damage):
    cache = OutputCache(tmp_path)
    value = torch.linspace(-1, 1, 1000, dtype=torch.float32)
    cache.store(KEY, value)
    path = cache.path(KEY)
    whole = path.read_bytes()
    path.write_bytes(damage(whole))

    assert cache.load(KEY) is None and cache.misses == 1
    assert not path.exists()  # removed

    path.write_bytes(damage(whole))
    result = cache.get_or_compute(KEY, lambda: value.clone())
    assert torch.equal(result, value) and cache.misses == 2
    assert path.read_bytes() == whole  # replaced by a whole entry
    assert torch.equal(cache.load(KEY), value) and cache.hits == 1


def partial_save(file, array, allow_pickle=True):
    """np.save that dies after writing part of the entry."""
    file.write(b"\x93NUMPY\x01\x00" + b"x" * 40)
    raise OSError("disk full")


def test_failed_write_leaves_no_entry_and_no_temporary(tmp_path, monkeypatch):
    cache = OutputCache(tmp_path)
    monkeypatch.setattr(np, "save", partial_save)
    with pytest.raises(OSError, match="disk full"):
        cache.store(KEY, torch.ones(5))
    assert entries(tmp_path) == [] and leftovers(tmp_path) == []
    monkeypatch.undo()

    def refuse(source, target):
        raise OSError("rename refused")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="rename refused"):
        cache.get_or_compute(KEY, lambda: torch.ones(5))
    assert entries(tmp_path) == [] and leftovers(tmp_path) == []
    monkeypatch.undo()
    assert cache.load(KEY) is None


def _killed_mid_write(root, key, value):
    def die(file, array, allow_pickle=True):
        file.write(b"\x93NUMPY\x01\x00" + b"x" * 40)
        file.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    np.save = die
    OutputCache(root).store(key, value)


def _store_after_barrier(root, key, value, barrier, repeats):
    cache = OutputCache(root)
    barrier.wait(timeout=20)
    for _ in range(repeats):
        cache.store(key, value)
    if not torch.equal(cache.load(key), value):
        raise SystemExit(3)


def fork_context():
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("needs the fork start method")
    return multiprocessing.get_context("fork")


def test_writer_killed_mid_write_leaves_no_entry(tmp_path):
    value = torch.arange(100, dtype=torch.float32)
    process = fork_context().Process(target=_killed_mid_write, args=(tmp_path, KEY, value))
    process.start()
    process.join(timeout=20)
    assert process.exitcode == -signal.SIGKILL
    assert entries(tmp_path) == []  # at most a stray .tmp, never a half entry
    cache = OutputCache(tmp_path)
    assert cache.load(KEY) is None and cache.misses == 1
    assert torch.equal(cache.get_or_compute(KEY, lambda: value), value)
    assert torch.equal(OutputCache(tmp_path).load(KEY), value)


def test_concurrent_writers_of_one_key_all_succeed(tmp_path):
    context = fork_context()
    value = torch.randn(64, 10, generator=torch.Generator().manual_seed(3))
    barrier = context.Barrier(4)
    processes = [
        context.Process(target=_store_after_barrier, args=(tmp_path, KEY, value, barrier, 20))
        for _ in range(4)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=30)
    assert [process.exitcode for process in processes] == [0, 0, 0, 0]
    assert entries(tmp_path) == [f"{KEY}.npy"] and leftovers(tmp_path) == []
    assert torch.equal(OutputCache(tmp_path).load(KEY), value)


@pytest.mark.parametrize(
    "key",
    ["abc", KEY.upper(), KEY[:-1], KEY + "0", "g" * 64, "../" + KEY[3:], 12, None],
)
@pytest.mark.parametrize("method", ["path", "load", "store", "get_or_compute"])
def test_bad_key_is_rejected(tmp_path, key, method):
    cache = OutputCache(tmp_path)
    args = {"path": (), "load": (), "store": (torch.zeros(1),), "get_or_compute": (torch.zeros,)}
    with pytest.raises(ValueError, match="key") as error:
        getattr(cache, method)(key, *args[method])
    assert repr(key) in str(error.value)
    assert not tmp_path.joinpath("..", KEY[3:] + ".npy").exists()
    assert list(tmp_path.iterdir()) == []


def test_store_rejects_what_is_not_a_tensor(tmp_path):
    with pytest.raises(ValueError, match="value"):
        OutputCache(tmp_path).store(KEY, np.zeros(3))
