"""Classifier outputs cached on disk: bitwise hits, fingerprints, atomic and concurrent writes,
entries checked against their record (discarded with one warning), a cache that cannot be written
turning itself off."""

import errno
import json
import logging
import multiprocessing
import os
import signal
import stat

import numpy as np
import pytest
import torch
from torch import nn

from nercc.evaluation import cache as cache_module
from nercc.evaluation.cache import OutputCache, fingerprint

KEY = fingerprint("test_cache", 0)
WHAT = {"classifier": "abc", "images": "def", "chunk_size": 7}  # a description
CACHE_LOG = "nercc.evaluation.cache"


def special_values(dtype: torch.dtype) -> torch.Tensor:
    """Finite values a lossy round trip would change: -0, subnormals, extremes, 1/3."""
    info = torch.finfo(dtype)
    values = [0.0, -0.0, info.tiny / 4, -info.tiny / 3, info.max, -info.max, info.eps, 1 / 3]
    return torch.cat([torch.tensor(values, dtype=dtype), torch.randn(8, dtype=dtype)]).reshape(2, 8)


def bits(tensor: torch.Tensor) -> torch.Tensor:
    """The tensor's bit patterns, so -0.0 compares exactly."""
    return tensor.view({torch.float32: torch.int32, torch.float64: torch.int64}[tensor.dtype])


def entries(root) -> list:
    return sorted(p.name for p in root.rglob("*.npy"))


def records(root) -> list:
    return sorted(p.name for p in root.rglob("*.json"))


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


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


def test_entry_is_a_plain_npy_file_with_its_record_beside_it(tmp_path):
    import hashlib

    cache = OutputCache(tmp_path / "cache")
    value = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    assert cache.load(KEY) is None and cache.misses == 1
    cache.store(KEY, value, WHAT)
    path = cache.path(KEY)
    assert path == tmp_path / "cache" / KEY[:2] / f"{KEY}.npy"
    assert cache.record_path(KEY) == path.with_suffix(".json")
    np.testing.assert_array_equal(np.load(path, allow_pickle=False), value.numpy())
    record = json.loads(cache.record_path(KEY).read_text())
    assert record == {
        "format": cache_module.RECORD_FORMAT,
        "key": KEY,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "shape": [2, 3],
        "dtype": "<f4",
        "description": WHAT,
    }
    assert entries(tmp_path) == [f"{KEY}.npy"] and records(tmp_path) == [f"{KEY}.json"]
    assert leftovers(tmp_path) == []
    assert torch.equal(cache.load(KEY, WHAT), value) and cache.hits == 1


def test_entry_mode_follows_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        OutputCache(tmp_path).store(KEY, torch.zeros(3))
    finally:
        os.umask(old)
    cache = OutputCache(tmp_path)
    for path in (cache.path(KEY), cache.record_path(KEY)):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o640  # mkstemp's 0o600 unless chmod-ed


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_values_that_are_not_finite_are_returned_but_never_stored(tmp_path, bad):
    cache = OutputCache(tmp_path)
    value = torch.tensor([1.0, bad, 2.0])
    assert cache.get_or_compute(KEY, lambda: value) is value
    assert entries(tmp_path) == [] and records(tmp_path) == []


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

    # A buffer left out of the state_dict (persistent=False) changes the outputs all the same.
    scaled = nn.Linear(3, 2)
    scaled.register_buffer("scale", torch.ones(2), persistent=False)
    unscaled = fingerprint(scaled)
    scaled.scale.fill_(2.0)
    assert "scale" not in scaled.state_dict() and fingerprint(scaled) != unscaled
    # Same tensors, another class: another forward.
    relu, tanh = nn.Sequential(nn.ReLU()), nn.Sequential(nn.Tanh())
    assert fingerprint(relu) != fingerprint(tanh)

    assert fingerprint("ab", "c") != fingerprint("a", "bc")
    assert fingerprint(["ab"], "c") != fingerprint("ab", "c")
    assert len({fingerprint(1), fingerprint(1.0), fingerprint(True), fingerprint("1")}) == 4
    assert fingerprint(x, "s") != fingerprint("s", x)


def test_fingerprint_rejects_what_it_cannot_hash():
    with pytest.raises(ValueError, match=r"parts\[1\].*object"):
        fingerprint("ok", object())
    with pytest.raises(ValueError, match=r"parts\[0\]"):
        fingerprint(np.array([None, 1], dtype=object))


VALUE = torch.linspace(-1, 1, 1000, dtype=torch.float32).reshape(100, 10)


def save_npy(path, array):
    with open(path, "wb") as file:
        np.save(file, array, allow_pickle=False)


def edit_record(cache, **changes):
    path = cache.record_path(KEY)
    record = json.loads(path.read_text())
    record.update(changes)
    path.write_text(json.dumps(record))


def forge(cache, array):
    """Replace the entry's data and make its record's digest match (shape and dtype unchanged)."""
    import hashlib

    save_npy(cache.path(KEY), array)
    edit_record(cache, sha256=hashlib.sha256(cache.path(KEY).read_bytes()).hexdigest())


# Each damage: what is done to a stored entry of VALUE (described by WHAT), and what the warning
# must say about it.
DAMAGES = {
    "same shape, other values": (
        lambda c: save_npy(c.path(KEY), VALUE.numpy()[::-1].copy()),
        "content changed after it was written",
    ),
    "float64": (lambda c: save_npy(c.path(KEY), VALUE.double().numpy()), "dtype is <f8"),
    "NaN entry, record made to match": (
        lambda c: forge(c, np.full((100, 10), np.nan, np.float32)),
        "1000 of its 1000 values are not finite",
    ),
    "cut to another shape": (
        lambda c: save_npy(c.path(KEY), VALUE.numpy()[:50]),
        "shape is [50, 10], its record says [100, 10]",
    ),
    "truncated file": (
        lambda c: c.path(KEY).write_bytes(c.path(KEY).read_bytes()[:1000]),
        "not a readable .npy file",
    ),
    "empty file": (lambda c: c.path(KEY).write_bytes(b""), "not a readable .npy file"),
    "pickle": (lambda c: c.path(KEY).write_bytes(b"\x80\x04K\x01."), "not a readable .npy"),
    "record missing": (lambda c: c.record_path(KEY).unlink(), f"record {KEY}.json is missing"),
    "record not JSON": (
        lambda c: c.record_path(KEY).write_bytes(b"\xff{"),
        "record is not readable JSON",
    ),
    "record of another format": (lambda c: edit_record(c, format="old"), "format 'old'"),
    "record of another key": (lambda c: edit_record(c, key="0" * 64), "names another key"),
    "record of another description": (
        lambda c: edit_record(c, description={**WHAT, "chunk_size": 8}),
        '"chunk_size": 8',
    ),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_damaged_entry_is_discarded_with_one_warning_then_recomputed(tmp_path, caplog, damage):
    harm, reason = DAMAGES[damage]
    cache = OutputCache(tmp_path)
    cache.store(KEY, VALUE, WHAT)
    path = cache.path(KEY)
    whole = path.read_bytes()
    harm(cache)

    with caplog.at_level(logging.WARNING, logger=CACHE_LOG):
        assert cache.load(KEY, WHAT) is None
    (warning,) = warnings_of(caplog)
    assert str(path) in warning and reason in warning and "\n" not in warning
    assert (cache.misses, cache.discarded, cache.hits) == (1, 1, 0)
    assert not path.exists() and not cache.record_path(KEY).exists()  # both removed

    # Damaged again: get_or_compute recomputes and rewrites a whole entry.
    cache.store(KEY, VALUE, WHAT)
    harm(cache)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=CACHE_LOG):
        result = cache.get_or_compute(KEY, lambda: VALUE.clone(), description=WHAT)
    assert len(warnings_of(caplog)) == 1
    assert torch.equal(result, VALUE) and cache.misses == 2 and cache.discarded == 2
    assert path.read_bytes() == whole  # replaced by a whole entry
    assert torch.equal(cache.load(KEY, WHAT), VALUE) and cache.hits == 1


def test_an_entry_asked_for_with_another_description_is_not_used(tmp_path, caplog):
    cache = OutputCache(tmp_path)
    cache.store(KEY, VALUE, WHAT)
    with caplog.at_level(logging.WARNING, logger=CACHE_LOG):
        assert cache.load(KEY, {**WHAT, "images": "other"}) is None
    (warning,) = warnings_of(caplog)
    assert '"images": "def"' in warning and '"images": "other"' in warning


def test_failed_write_leaves_no_entry_and_no_temporary(tmp_path, monkeypatch):
    cache = OutputCache(tmp_path)

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space left"):
        cache.store(KEY, torch.ones(5))
    assert entries(tmp_path) == records(tmp_path) == leftovers(tmp_path) == []
    monkeypatch.undo()

    real = os.replace

    def refuse_data(source, target):  # the record is in place, the data is not
        if str(target).endswith(".npy"):
            raise OSError("rename refused")
        real(source, target)

    monkeypatch.setattr(os, "replace", refuse_data)
    with pytest.raises(OSError, match="rename refused"):
        cache.store(KEY, torch.ones(5))
    assert entries(tmp_path) == [] and leftovers(tmp_path) == []
    monkeypatch.undo()
    assert cache.load(KEY) is None and cache.discarded == 0  # a record alone: a plain miss


@pytest.mark.parametrize(
    "error",
    [
        OSError(errno.ENOSPC, "No space left on device"),
        OSError(errno.EDQUOT, "Disk quota exceeded"),
        OSError(errno.EROFS, "Read-only file system"),
        PermissionError(errno.EACCES, "Permission denied"),
    ],
    ids=["ENOSPC", "EDQUOT", "EROFS", "EACCES"],
)
def test_a_cache_that_cannot_be_written_turns_itself_off_with_one_warning(
    tmp_path, monkeypatch, caplog, error
):
    cache = OutputCache(tmp_path / "cache")

    def fail(path, data):
        raise error

    monkeypatch.setattr(cache_module, "write_bytes_atomic", fail)
    calls = []

    def compute():
        calls.append(1)
        return VALUE.clone()

    with caplog.at_level(logging.WARNING, logger=CACHE_LOG):
        for _ in range(3):
            assert torch.equal(cache.get_or_compute(KEY, compute, description=WHAT), VALUE)
    (warning,) = warnings_of(caplog)
    assert str(tmp_path / "cache") in warning and error.strerror in warning
    assert "off for the rest of this run" in warning
    assert cache.off == error.strerror and len(calls) == 3  # computed every time, no more tries
    monkeypatch.undo()
    cache.get_or_compute(KEY, compute)
    assert entries(tmp_path) == [] and len(calls) == 4  # off stays off


def test_a_cache_folder_that_is_a_file_turns_the_cache_off(tmp_path, caplog):
    (tmp_path / "cache").write_text("not a folder")
    cache = OutputCache(tmp_path / "cache")
    with caplog.at_level(logging.WARNING, logger=CACHE_LOG):
        assert torch.equal(cache.get_or_compute(KEY, VALUE.clone), VALUE)
        assert torch.equal(cache.get_or_compute(KEY, VALUE.clone), VALUE)
    (warning,) = warnings_of(caplog)
    assert str(tmp_path / "cache") in warning and cache.off is not None


def test_a_full_tmpfs_turns_the_cache_off_and_leaves_nothing_behind(full_tmpfs, caplog):
    cache = OutputCache(full_tmpfs / "cache")
    with caplog.at_level(logging.WARNING, logger=CACHE_LOG):
        assert torch.equal(cache.get_or_compute(KEY, VALUE.clone, description=WHAT), VALUE)
        assert torch.equal(cache.get_or_compute(KEY, VALUE.clone, description=WHAT), VALUE)
    (warning,) = warnings_of(caplog)
    assert str(full_tmpfs / "cache") in warning and "No space left on device" in warning
    assert entries(full_tmpfs) == [] and leftovers(full_tmpfs) == []


def _killed_mid_write(root, key, value):
    real = os.replace

    def die(source, target):  # the record is in place, the data written but not renamed
        if str(target).endswith(".npy"):
            os.kill(os.getpid(), signal.SIGKILL)
        real(source, target)

    os.replace = die
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
    assert cache.load(KEY) is None and cache.misses == 1 and cache.discarded == 0
    assert torch.equal(cache.get_or_compute(KEY, lambda: value), value)
    assert torch.equal(OutputCache(tmp_path).load(KEY), value)


def _store_many(root, key, value, barrier, repeats, done):
    cache = OutputCache(root)
    barrier.wait(timeout=20)
    for _ in range(repeats):
        cache.store(key, value, WHAT)
    with done.get_lock():
        done.value += 1


def _load_while_writing(root, key, values, barrier, done, seen):
    """Read until both writers are done: every value used must be one writer's, whole."""
    cache = OutputCache(root)
    barrier.wait(timeout=20)
    logging.disable(logging.WARNING)  # mixes of two writers' files are discarded, and warned
    while done.value < 2:
        loaded = cache.load(key, WHAT)
        if loaded is not None:
            if not any(torch.equal(loaded, v) for v in values):
                raise SystemExit(4)
            seen[int(loaded[0, 0]) - 1] += 1
    seen[2] = cache.discarded


def test_writers_of_different_values_never_give_a_mix(tmp_path):
    # Two writers of one key with different values (a nondeterministic classifier): a reader
    # gets one of them, whole, or a miss (a mix of their files is discarded), never a mix.
    context = fork_context()
    values = [torch.full((64, 10), float(i)) for i in (1, 2)]
    barrier, done, seen = context.Barrier(3), context.Value("i", 0), context.Array("i", 3)
    processes = [
        context.Process(target=_store_many, args=(tmp_path, KEY, v, barrier, 100, done))
        for v in values
    ]
    processes.append(
        context.Process(
            target=_load_while_writing, args=(tmp_path, KEY, values, barrier, done, seen)
        )
    )
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=60)
    assert [process.exitcode for process in processes] == [0, 0, 0]
    assert seen[0] + seen[1] > 0  # the reader did use entries while they were being written
    final = OutputCache(tmp_path).load(KEY, WHAT)
    assert final is None or any(torch.equal(final, v) for v in values)


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


@pytest.mark.parametrize("planted", ["symlink", "folder", "fifo"])
def test_an_entry_that_is_no_regular_file_is_discarded_not_read(tmp_path, caplog, planted):
    # A pipe would block the run for ever, a link point anywhere, a folder turn the cache off.
    import os as os_module

    cache = OutputCache(tmp_path / "cache")
    value = torch.arange(6.0).reshape(2, 3)
    cache.store(KEY, value)
    path = cache.path(KEY)
    path.unlink()
    if planted == "symlink":
        other = tmp_path / "elsewhere.npy"
        np.save(other, np.zeros((2, 3), dtype=np.float32))
        path.symlink_to(other)
    elif planted == "folder":
        path.mkdir()
    else:
        os_module.mkfifo(path)
    with caplog.at_level("WARNING"):
        assert cache.load(KEY) is None
    (line,) = [r.getMessage() for r in caplog.records if "cache:" in r.getMessage()]
    assert line.startswith(f"cache: discarded the entry {path}: it is ")
    assert cache.get_or_compute(KEY, lambda: value).equal(value)  # the cache is still on
    assert cache.load(KEY).equal(value) and not path.is_symlink()
