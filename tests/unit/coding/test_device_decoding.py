"""NeRCC's decoding on a device, checked on the CPU.

On a GPU (``arrays.on_accelerator``) NeRCC decodes with its cached per-pattern decoders in one
batched float64 product where the outputs are, instead of fitting on the host. These tests make
CPU tensors count as on an accelerator, so the device path runs here, and compare it with the
host path: estimates to 1e-12 relative in float64 (both are float64 computations of the same
linear map, one fitted by a banded solve, one through the decoder matrix) and to float32 rounding
in float32; parameters per pattern identical; the outputs never converted to a host array. GCV
too: its lambdas are scored on the host from the energies of the answers' projections (small),
its fit applied on the device.
"""

import warnings

import numpy as np
import pytest
import torch

from nercc.coding import NeRCC, arrays
from nercc.coding.base import FewAnswersWarning

K, N = 8, 30


def patterns(sizes, seed):
    rng = np.random.default_rng(seed)
    masks = np.zeros((len(sizes), N), dtype=bool)
    for row, size in zip(masks, sizes, strict=True):
        row[rng.choice(N, size, replace=False)] = True
    return masks


def outputs_for(scheme, count, seed, dtype=torch.float64):
    rng = np.random.default_rng(seed)
    betas = scheme.betas
    values = np.stack(
        [np.sin(2 * betas + c) + 0.1 * rng.normal(size=N) for c in range(count * 3)]
    ).reshape(count, 3, N)
    return torch.as_tensor(values.transpose(0, 2, 1).copy(), dtype=dtype)


def count_cpu_tensors_as_on_device(monkeypatch):
    """CPU tensors count as on an accelerator, and no tensor may be copied to a host array."""
    monkeypatch.setattr(arrays, "on_accelerator", arrays.is_tensor)
    original = arrays.as_float64

    def no_host_copy(values):
        if arrays.is_tensor(values):
            raise AssertionError("the device path copied the outputs to the host")
        return original(values)

    monkeypatch.setattr(arrays, "as_float64", no_host_copy)


@pytest.fixture
def on_device(monkeypatch):
    count_cpu_tensors_as_on_device(monkeypatch)


def host_decode(scheme, outputs, masks):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FewAnswersWarning)
        return scheme.decode_each_with_params(outputs, masks)


@pytest.mark.parametrize(
    "settings",
    [
        {"lam_enc": 1e-4, "lam_dec": 1e-5},
        {"lam_enc": 0.0, "lam_dec": 0.0},
        {"df_dec": 6.5},
    ],
    ids=["fixed", "interpolating", "df_dec"],
)
def test_device_path_equals_the_host_path(settings, monkeypatch):
    masks = patterns([30, 25, 25, 17, 9, 4], seed=1)
    outputs = outputs_for(NeRCC(K, N), len(masks), seed=1)
    expected, expected_params = host_decode(NeRCC(K, N, **settings), outputs, masks)
    monkeypatch.setattr(arrays, "on_accelerator", arrays.is_tensor)
    spy = []
    original = arrays.as_float64
    monkeypatch.setattr(arrays, "as_float64", lambda v: spy.append(v) or original(v))
    scheme = NeRCC(K, N, **settings)
    estimates, params = host_decode(scheme, outputs, masks)
    assert not any(arrays.is_tensor(v) for v in spy)
    assert estimates.dtype == torch.float64 and estimates.device == outputs.device
    torch.testing.assert_close(estimates, expected, rtol=1e-12, atol=1e-12)
    assert params.keys() == expected_params.keys()
    for name in params:
        np.testing.assert_array_equal(params[name], expected_params[name], err_msg=name)
    assert len(scheme.decoder_cache) == len(masks)


def test_float32_outputs_decode_in_float64_and_come_back_in_float32(monkeypatch):
    """The product runs in float64 whatever the outputs' dtype (as the host path fits in
    float64): float32 estimates within one float32 rounding of the host path's."""
    masks = patterns([30, 28, 20, 12], seed=2)
    outputs = outputs_for(NeRCC(K, N), 4, seed=2).float()
    scheme = NeRCC(K, N, lam_enc=0.0, lam_dec=0.0)
    expected = host_decode(scheme, outputs, masks)[0]
    monkeypatch.setattr(arrays, "on_accelerator", arrays.is_tensor)
    estimates = NeRCC(K, N, lam_enc=0.0, lam_dec=0.0).decode_each(outputs, masks)
    assert estimates.dtype == torch.float32
    torch.testing.assert_close(estimates, expected, rtol=1.2e-7, atol=1e-7)


def test_straggler_rows_are_ignored_even_when_not_finite(on_device):
    masks = patterns([22, 15], seed=3)
    outputs = outputs_for(NeRCC(K, N), 2, seed=3)
    scheme = NeRCC(K, N, lam_enc=1e-4, lam_dec=1e-5)
    clean = scheme.decode_each(outputs, masks)
    poisoned = outputs.clone()
    poisoned[torch.as_tensor(~masks)] = float("nan")
    poisoned[0, int(np.flatnonzero(~masks[0])[0])] = float("inf")
    torch.testing.assert_close(scheme.decode_each(poisoned, masks), clean, rtol=0, atol=0)


def test_decoders_are_built_once_per_pattern(on_device, monkeypatch):
    masks = patterns([26, 26, 19], seed=4)
    outputs = outputs_for(NeRCC(K, N), 3, seed=4)
    scheme = NeRCC(K, N, lam_enc=1e-4, lam_dec=1e-5)
    first = scheme.decode_each(outputs, masks)
    monkeypatch.setattr(
        scheme, "_build_decoders", lambda m: pytest.fail("a cached pattern was rebuilt")
    )
    torch.testing.assert_close(scheme.decode_each(outputs, masks), first, rtol=0, atol=0)


@pytest.mark.parametrize("grid", [None, [0.0, 1e-8, 1e-5, 1e-2, 1e3]], ids=["default", "coarse"])
def test_gcv_on_the_device_equals_the_host(grid, monkeypatch):
    """GCV on a device: energies of the projections on each pattern's eigenvectors scored on the
    host, the fit applied in the eigenbasis on the device; the same lambdas and dfs as the host
    path and estimates to 1e-9 of the data's scale (two exact forms of one smoother: a banded
    solve against eigenvectors, accurate to about 1e-10 at these sizes). Patterns of 1 and 2
    answers are a constant and a line."""
    masks = patterns([30, 24, 24, 13, 5, 3, 2, 1], seed=5)
    outputs = outputs_for(NeRCC(K, N), len(masks), seed=5)
    outputs[torch.as_tensor(~masks)] = float("nan")
    expected, expected_params = host_decode(
        NeRCC(K, N, lam_dec="gcv", lam_grid=grid), outputs, masks
    )
    count_cpu_tensors_as_on_device(monkeypatch)
    estimates, params = host_decode(NeRCC(K, N, lam_dec="gcv", lam_grid=grid), outputs, masks)
    assert estimates.dtype == torch.float64
    torch.testing.assert_close(estimates, expected, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(params["lam_dec"], expected_params["lam_dec"])
    np.testing.assert_allclose(params["df_dec"], expected_params["df_dec"], rtol=1e-12)
    assert np.any(params["lam_dec"][:6] > 0)  # some patterns smooth: the eigenbasis fit runs
