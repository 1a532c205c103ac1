"""Schemes shared by threads decode exactly as one scheme decoding serially; cached patterns are
decoded without rebuilding or converting their decoders again; pickles and copies work.

References: every result of the threads is compared with a fresh scheme (of the same settings and
cache size) computing the same decode alone, in order. The cached decoders and their torch copies
are checked against those of a fresh scheme too, and the eigen-decomposition cache's byte count
against the entries it holds (a lost update under contention would break it).
"""

import copy
import pickle
import sys
import threading

import numpy as np
import pytest
import torch

from nercc.coding import (
    BACC,
    DEFAULT_LAM_GRID,
    FloaterHormann,
    NeRCC,
    Replication,
    arrays,
    decoder_cache,
    spectrum_cache,
)

THREADS, CALLS, POOL = 8, 24, 16
CACHE = 8  # far fewer decoders than patterns: eviction happens while threads decode
# GCV: each decode eigen-decomposes unless its mask's spectrum is still cached. Fewer threads:
# concurrent eigh calls into a multi-threaded OpenBLAS oversubscribe the cores (slow, not wrong).
GCV_THREADS, GCV_CALLS = 4, 2
SWITCH = 1e-5  # seconds between the interpreter's thread switches (5e-3 by default)

SCHEMES = {
    "nercc": lambda: NeRCC(20, 100, lam_enc=1e-4, lam_dec=1e-3),
    "nercc_df": lambda: NeRCC(20, 100, lam_enc=1e-4, df_dec=8.0),  # eigen-decompositions too
    "bacc": lambda: BACC(20, 100),
    "replication": lambda: Replication(4, 3),
}


def patterns(num_workers, count, seed=0):
    """``count`` distinct masks (count, N), each with a random number of stragglers."""
    rng = np.random.default_rng(seed)
    found = {}
    while len(found) < count:
        mask = np.ones(num_workers, dtype=bool)
        mask[rng.choice(num_workers, rng.integers(1, num_workers // 3 + 1), replace=False)] = False
        found.setdefault(mask.tobytes(), mask)
    return np.stack(list(found.values()))


@pytest.fixture
def contention(monkeypatch):
    """A small decoder and spectrum cache, and threads switching as often as Python allows."""
    monkeypatch.setattr(decoder_cache, "DECODER_CACHE_SIZE", CACHE)
    one = 80 * 78 * 8 + 78 * 8  # the eigen-decomposition of one mask of 80 answering workers
    monkeypatch.setattr(spectrum_cache, "SPECTRUM_CACHE_BYTES", 4 * one)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH)
    yield monkeypatch
    sys.setswitchinterval(interval)


def decode_call(scheme, outputs, mask, kind):
    """One decode of one group: torch float32 or numpy float64, as a float64 ndarray."""
    if kind == "torch":
        result = scheme.decode(torch.as_tensor(outputs, dtype=torch.float32), mask)
        assert result.dtype == torch.float32
        return result.numpy().astype(np.float64)
    result = scheme.decode(outputs, mask)
    assert result.dtype == np.float64
    return result


@pytest.mark.parametrize("name", list(SCHEMES))
def test_threads_sharing_a_scheme_decode_as_one_thread_alone(contention, name):
    scheme = SCHEMES[name]()
    n = scheme.num_workers
    masks = patterns(n, POOL, seed=1)
    rng = np.random.default_rng(2)
    outputs = rng.normal(size=(THREADS, n, 10))
    # each thread's calls: (pattern, kind); a few patterns are hot so that hits race evictions
    plans = [
        [
            (int(rng.choice([0, 1, 2]) if rng.random() < 0.3 else rng.integers(POOL)), kind)
            for kind in rng.choice(["torch", "numpy"], CALLS)
        ]
        for _ in range(THREADS)
    ]
    results = [[] for _ in range(THREADS)]
    encoders = [None] * THREADS
    errors = []
    start = threading.Barrier(THREADS)

    def work(t):
        try:
            start.wait()
            encoders[t] = scheme.encoder_matrix()  # built lazily, raced by every thread
            scheme.encode(torch.ones(scheme.num_inputs, 3))
            for i, kind in plans[t]:
                results[t].append(decode_call(scheme, outputs[t], masks[i], kind))
        except Exception as error:  # reported below, in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []

    contention.setattr(decoder_cache, "DECODER_CACHE_SIZE", POOL)  # the reference: no eviction
    reference = SCHEMES[name]()
    for t in range(THREADS):
        for (i, kind), result in zip(plans[t], results[t], strict=True):
            expected = decode_call(reference, outputs[t], masks[i], kind)
            np.testing.assert_array_equal(result, expected, err_msg=f"thread {t}, {kind}")
    # one encoder for everyone; the caches hold what a fresh scheme builds, within their bounds
    assert all(encoder is encoders[0] for encoder in encoders)
    assert 0 < len(scheme.decoder_cache) <= CACHE
    by_key = {np.packbits(mask).tobytes(): mask for mask in masks}
    for key, entry in scheme.decoder_cache.items():
        fresh = reference.decoder_matrix(by_key[key])
        np.testing.assert_array_equal(entry.matrix, fresh)
        for (dtype, _), tensor in entry.tensors.items():
            torch.testing.assert_close(tensor, torch.tensor(fresh, dtype=dtype), rtol=0, atol=0)
    if isinstance(scheme, NeRCC):
        held = sum(
            d.nbytes + (0 if w is None else w.nbytes) for d, w in scheme.spectrum_cache.values()
        )
        assert scheme.spectrum_cache.nbytes == held <= spectrum_cache.SPECTRUM_CACHE_BYTES
        assert (len(scheme.spectrum_cache) > 0) == (name == "nercc_df")


def test_gcv_decoding_from_threads_matches_serial(contention):
    """NeRCC(lam_dec="gcv") shares its eigen-decompositions between threads."""
    scheme = NeRCC(20, 100, lam_enc=1e-4, lam_dec="gcv")
    masks = patterns(100, 3, seed=3)
    outputs = np.random.default_rng(4).normal(size=(GCV_THREADS, 100, 10))
    results = [[] for _ in range(GCV_THREADS)]
    start = threading.Barrier(GCV_THREADS)

    def work(t):
        start.wait()
        for i in np.random.default_rng(t).integers(len(masks), size=GCV_CALLS):
            results[t].append((i, scheme.decode(outputs[t], masks[i])))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(GCV_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    reference = NeRCC(20, 100, lam_enc=1e-4, lam_dec="gcv")
    assert sum(len(r) for r in results) == GCV_THREADS * GCV_CALLS
    for t in range(GCV_THREADS):
        for i, result in results[t]:
            np.testing.assert_allclose(
                result, reference.decode(outputs[t], masks[i]), rtol=1e-12, atol=0
            )
    held = sum(d.nbytes + (0 if w is None else w.nbytes) for d, w in scheme.spectrum_cache.values())
    assert scheme.spectrum_cache.nbytes == held <= spectrum_cache.SPECTRUM_CACHE_BYTES


@pytest.fixture
def conversions(monkeypatch):
    """Count the numpy -> torch conversions of decoders and encoders."""
    calls = []
    real = arrays.to_torch

    def counted(matrix, like):
        calls.append(matrix.shape)
        return real(matrix, like)

    monkeypatch.setattr(arrays, "to_torch", counted)
    return calls


def test_a_cached_pattern_is_neither_rebuilt_nor_converted_again(conversions):
    scheme = NeRCC(20, 100, lam_enc=1e-4, lam_dec=1e-3)
    built = []
    original = scheme._build_decoders
    scheme._build_decoders = lambda available: built.append(len(available)) or original(available)
    masks = patterns(100, 4, seed=5)
    outputs = torch.randn(100, 10, generator=torch.Generator().manual_seed(0))

    first = scheme.decode(outputs, masks[0])
    decoder = scheme.decoder_matrix(masks[0])
    assert built == [1] and len(conversions) == 1
    for _ in range(3):  # the same group again: the same float32 decoder, no conversion
        torch.testing.assert_close(scheme.decode(outputs, masks[0]), first, rtol=0, atol=0)
    assert scheme.decoder_matrix(masks[0].copy()) is decoder
    assert built == [1] and len(conversions) == 1
    # the float32 copy is the float64 decoder rounded once; the estimate its product
    torch.testing.assert_close(first, torch.tensor(decoder, dtype=torch.float32) @ outputs)
    expected = decoder @ outputs.double().numpy()
    np.testing.assert_allclose(first.double().numpy(), expected, rtol=1e-5, atol=1e-5)

    # another dtype: one more conversion, kept too; numpy outputs convert nothing
    scheme.decode(outputs.double(), masks[0])
    scheme.decode(outputs.double(), masks[0])
    scheme.decode(outputs.numpy(), masks[0])
    assert len(conversions) == 2 and built == [1]

    # a batch: the missing patterns built and converted in one go, then nothing again
    batch = scheme.decode(outputs, masks)
    assert built == [1, 3] and len(conversions) == 3
    again = scheme.decode(outputs, masks[::-1])
    assert built == [1, 3] and len(conversions) == 3
    torch.testing.assert_close(again, batch.flip(0), rtol=0, atol=0)
    for p, mask in enumerate(masks):
        torch.testing.assert_close(batch[p], scheme.decode(outputs, mask), rtol=0, atol=0)
    assert len(conversions) == 3

    # the encoder's copy is kept as before
    scheme.encode(torch.ones(20, 5))
    scheme.encode(torch.ones(20, 5))
    assert len(conversions) == 4


def test_torch_copies_are_evicted_with_their_decoders(monkeypatch, conversions):
    monkeypatch.setattr(decoder_cache, "DECODER_CACHE_SIZE", 2)
    scheme = BACC(20, 100)
    masks = patterns(100, 3, seed=6)
    outputs = torch.randn(100, 10, generator=torch.Generator().manual_seed(1))
    first = scheme.decode(outputs, masks[0])
    scheme.decode(outputs, masks[1])
    assert len(conversions) == 2
    scheme.decode(outputs, masks[2])  # masks[0] goes, with its float32 copy
    assert len(scheme.decoder_cache) == 2 and len(conversions) == 3
    assert np.packbits(masks[0]).tobytes() not in scheme.decoder_cache
    torch.testing.assert_close(scheme.decode(outputs, masks[0]), first, rtol=0, atol=0)
    assert len(conversions) == 4  # rebuilt and converted again


@pytest.mark.parametrize("roundtrip", ["pickle", "deepcopy"])
@pytest.mark.parametrize(
    "make",
    [
        lambda: NeRCC(20, 100, lam_enc=1e-4, lam_dec=1e-3),
        lambda: NeRCC(20, 100, lam_enc=1e-4, lam_dec="gcv"),
        lambda: NeRCC(20, 100, df_enc=10.0, df_dec=8.0),
        lambda: BACC(20, 100),
        lambda: FloaterHormann(20, 100, d=3),
        lambda: Replication(4, 3),
    ],
    ids=["nercc", "nercc_gcv", "nercc_df", "bacc", "fh", "replication"],
)
def test_a_scheme_with_full_caches_survives_pickle_and_deepcopy(roundtrip, make):
    scheme = make()
    n = scheme.num_workers
    masks = patterns(n, 3, seed=7)
    outputs = torch.randn(n, 10, generator=torch.Generator().manual_seed(2))
    inputs = torch.randn(scheme.num_inputs, 4, generator=torch.Generator().manual_seed(3))
    before = [scheme.decode(outputs, mask) for mask in masks]
    batch = scheme.decode_each(outputs.expand(3, n, 10), masks)
    coded = scheme.encode(inputs)
    if isinstance(scheme, NeRCC) and scheme.lam_dec != "gcv":
        df = scheme.decoder_df(masks)
        scheme.encoder_df()

    other = pickle.loads(pickle.dumps(scheme)) if roundtrip == "pickle" else copy.deepcopy(scheme)

    assert repr(other) == repr(scheme) and other.decoder_key() == scheme.decoder_key()
    assert other.params() == scheme.params()
    assert other.decoder_cache is not scheme.decoder_cache
    assert len(other.decoder_cache) == 0 and other._torch_cache == {}  # caches start empty
    for p, mask in enumerate(masks):
        torch.testing.assert_close(other.decode(outputs, mask), before[p], rtol=0, atol=0)
    torch.testing.assert_close(
        other.decode_each(outputs.expand(3, n, 10), masks), batch, rtol=0, atol=0
    )
    torch.testing.assert_close(other.encode(inputs), coded, rtol=0, atol=0)
    if isinstance(scheme, NeRCC):
        assert not other.alphas.flags.writeable and not other.betas.flags.writeable
        if scheme.lam_dec == "gcv":
            assert other.lam_grid is DEFAULT_LAM_GRID
        else:
            np.testing.assert_array_equal(other.decoder_df(masks), df)
            assert other.encoder_df() == scheme.encoder_df()
    # the original keeps its caches (a gcv NeRCC has no decoder matrices to cache)
    gcv = isinstance(scheme, NeRCC) and scheme.lam_dec == "gcv"
    assert len(scheme.decoder_cache) == (0 if gcv else 3)
    torch.testing.assert_close(scheme.decode(outputs, masks[0]), before[0], rtol=0, atol=0)
