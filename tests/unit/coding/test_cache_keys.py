"""Every input of every cache key in the coding core counts: the encoder's and the decoders'
torch copies follow the dtype and the device of the tensor they are applied to, decoders and
spectra are cached per pattern (and a spectrum without eigenvectors never serves one that needs
them), and decoder_key changes with every setting that changes a decoder.

There is no GPU here: the 'meta' device stands for another device (tensors with a shape and a
dtype, no data), which is enough to see which device a cached copy lives on."""

import numpy as np
import pytest
import torch

from nercc.coding import BACC, NeRCC, Replication, Uncoded, arrays

K, N = 4, 10


def mask_of(stragglers, num_workers=N):
    mask = np.ones(num_workers, dtype=bool)
    mask[list(stragglers)] = False
    return mask


@pytest.fixture
def meta_outputs(monkeypatch):
    """Decoding meta tensors: the finiteness check reads values, which meta tensors lack."""
    monkeypatch.setattr(arrays, "all_finite", lambda values: True)


@pytest.mark.parametrize("make", [lambda: NeRCC(K, N, lam_enc=1e-3), lambda: BACC(K, N)])
def test_the_encoders_torch_copy_follows_the_device(make):
    scheme = make()
    inputs = torch.randn(K, 3)
    on_cpu = scheme.encode(inputs)  # caches a CPU float32 copy
    assert on_cpu.device.type == "cpu"
    elsewhere = scheme.encode(inputs.to("meta"))  # the same dtype on another device
    assert elsewhere.device.type == "meta" and elsewhere.shape == (N, 3)
    # and back: the CPU copy is still the CPU one, with the same values
    torch.testing.assert_close(scheme.encode(inputs), on_cpu, rtol=0, atol=0)


def test_the_encoders_torch_copy_follows_the_dtype():
    scheme = NeRCC(K, N, lam_enc=1e-3)
    inputs = torch.randn(K, 3, dtype=torch.float64)
    single = scheme.encode(inputs.float())
    double = scheme.encode(inputs)
    assert single.dtype == torch.float32 and double.dtype == torch.float64
    # the float64 result is the exact float64 product, not one through a float32 copy
    expected = scheme.encoder_matrix() @ inputs.numpy()
    np.testing.assert_allclose(double.numpy(), expected, rtol=1e-15, atol=1e-15)


@pytest.mark.parametrize("batched", [False, True], ids=["one_pattern", "patterns"])
def test_the_decoders_torch_copies_follow_the_device(meta_outputs, batched):
    scheme = NeRCC(K, N, lam_dec=1e-3)
    available = mask_of([1, 5])
    if batched:
        available = np.stack([available, mask_of([0])])
    outputs = torch.randn(N, 3)
    on_cpu = scheme.decode(outputs, available)  # caches CPU float32 copies
    assert on_cpu.device.type == "cpu"
    elsewhere = scheme.decode(outputs.to("meta"), available)
    assert elsewhere.device.type == "meta" and elsewhere.shape == on_cpu.shape
    torch.testing.assert_close(scheme.decode(outputs, available), on_cpu, rtol=0, atol=0)


@pytest.mark.parametrize("batched", [False, True], ids=["one_pattern", "patterns"])
def test_the_decoders_torch_copies_follow_the_dtype(batched):
    scheme = BACC(K, N)
    available = mask_of([2])
    if batched:
        available = np.stack([available, mask_of([3, 7])])
    outputs = torch.randn(N, 3, dtype=torch.float64)
    single = scheme.decode(outputs.float(), available)
    double = scheme.decode(outputs, available)
    assert single.dtype == torch.float32 and double.dtype == torch.float64
    expected = scheme.decoder_matrices(np.atleast_2d(available)) @ outputs.numpy()
    np.testing.assert_allclose(
        double.numpy(), expected if batched else expected[0], rtol=1e-14, atol=1e-14
    )


@pytest.mark.parametrize("make", [lambda: NeRCC(K, N, lam_dec=1e-3), lambda: Replication(K, 2)])
def test_decoders_are_cached_per_pattern(make):
    """Every worker of a pattern counts in its key: patterns of the same size, and patterns that
    differ only in the last worker (N not a multiple of 8: the one packbits pads around), get
    their own decoders, built or cached, in any order."""
    scheme = make()
    n = scheme.num_workers
    masks = np.stack([mask_of([], n), mask_of([n - 1], n), mask_of([n - 2], n), mask_of([0], n)])
    first = scheme.decoder_matrices(masks)
    fresh = make()
    for p in (3, 1, 0, 2):
        np.testing.assert_array_equal(fresh.decoder_matrix(masks[p]), first[p])
    for p in range(len(masks)):
        np.testing.assert_array_equal(first[p][:, ~masks[p]], 0.0)  # its own stragglers
        for q in range(p):
            assert not np.array_equal(first[p], first[q])


def test_a_spectrum_without_eigenvectors_never_serves_one_that_needs_them():
    scheme = NeRCC(K, N, df_dec=3.0)
    masks = np.stack([mask_of([1]), mask_of([2])])
    sites = np.stack([scheme.betas[m] for m in masks])
    values, none = scheme.spectrum_cache.lookup(masks, sites, vectors=False)
    assert none is None
    again, vectors = scheme.spectrum_cache.lookup(masks, sites, vectors=True)
    assert vectors is not None and vectors.shape == (2, N - 1, N - 3)
    np.testing.assert_allclose(again, values, rtol=1e-12)
    # per pattern: the second mask's spectrum is its own, not the first one's
    one, _ = scheme.spectrum_cache.lookup(masks[1:], sites[1:], vectors=False)
    np.testing.assert_array_equal(one[0], again[1])
    assert not np.array_equal(again[0], again[1])


def test_decoder_key_changes_with_every_setting_of_the_decoder():
    key = NeRCC(K, N, lam_dec=1e-3).decoder_key()
    assert NeRCC(K, N, lam_enc=1.0, lam_dec=1e-3).decoder_key() == key  # the encoder's own
    others = [
        NeRCC(K + 1, N, lam_dec=1e-3),  # K: other alphas
        NeRCC(K, N + 1, lam_dec=1e-3),  # N: other betas
        NeRCC(K, N, lam_dec=1e-3, points="uniform"),
        NeRCC(K, N, lam_dec=1e-2),
        NeRCC(K, N, df_dec=3.0),
        BACC(K, N),  # the same points, another decoder
    ]
    keys = [scheme.decoder_key() for scheme in others]
    assert key not in keys and len(set(keys)) == len(keys)
    assert BACC(K, N).decoder_key() != BACC(K, N, points="uniform").decoder_key()
    assert BACC(K, N).decoder_key() != BACC(K, N + 1).decoder_key()
    assert Replication(K, 2).decoder_key() != Replication(K, 3).decoder_key()
    assert Replication(K, 1).decoder_key() != Uncoded(K).decoder_key()
    assert Uncoded(K).decoder_key() != Uncoded(K + 1).decoder_key()
