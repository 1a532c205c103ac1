"""Fewer answers than inputs: NeRCC and BACC still decode, but warn FewAnswersWarning once per
call, naming K and the count, pointing at the caller; exactly K answers do not warn; Uncoded and
Replication lose inputs instead and never warn."""

import pickle
import warnings

import numpy as np
import pytest
import torch

from nercc.coding import BACC, FewAnswersWarning, FloaterHormann, NeRCC, Replication, Uncoded

K, N = 4, 10


def answering(count, num_workers=N):
    """A pattern with the first ``count`` workers answering."""
    mask = np.zeros(num_workers, dtype=bool)
    mask[:count] = True
    return mask


def outputs(num_workers=N, width=3, seed=0):
    return np.random.default_rng(seed).normal(size=(num_workers, width))


def recorded(call):
    """Run ``call`` recording every warning; return its result and the FewAnswersWarnings."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = call()
    return result, [w for w in caught if issubclass(w.category, FewAnswersWarning)]


SCHEMES = {
    "nercc": lambda: NeRCC(K, N, lam_enc=1e-4, lam_dec=1e-3),
    "nercc_df": lambda: NeRCC(K, N, df_dec=3.0),
    "nercc_gcv": lambda: NeRCC(K, N, lam_dec="gcv"),
    "bacc": lambda: BACC(K, N),
    "fh": lambda: FloaterHormann(K, N, d=2),
}


def test_the_warning_is_a_runtime_warning_exported_and_pickles():
    import nercc.coding

    assert "FewAnswersWarning" in nercc.coding.__all__
    assert issubclass(FewAnswersWarning, RuntimeWarning)
    again = pickle.loads(pickle.dumps(FewAnswersWarning("only 3 of 10")))
    assert type(again) is FewAnswersWarning and str(again) == "only 3 of 10"


@pytest.mark.parametrize("name", sorted(SCHEMES))
def test_decode_with_fewer_than_k_answers_warns_once_naming_k_and_the_count(name):
    scheme = SCHEMES[name]()
    values, mask = outputs(), answering(K - 1)
    estimates, caught = recorded(lambda: scheme.decode(values, mask))
    assert len(caught) == 1
    message = str(caught[0].message)
    assert f"only {K - 1} of the N={N} workers answered" in message
    assert f"fewer than K={K} inputs" in message
    assert caught[0].filename == __file__  # points at the caller, not at nercc.coding
    # the estimates are returned, the same as without the warning
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FewAnswersWarning)
        quiet = scheme.decode(values, mask)
    np.testing.assert_array_equal(estimates, quiet)
    assert estimates.shape == (K, 3) and np.all(np.isfinite(estimates))


@pytest.mark.parametrize("name", sorted(SCHEMES))
def test_exactly_k_answers_do_not_warn(name):
    scheme = SCHEMES[name]()
    values = outputs()
    masks = np.stack([answering(K), answering(N)])
    for call in (
        lambda: scheme.decode(values, masks[0]),
        lambda: scheme.decode(values, masks),
        lambda: scheme.decode_each(np.stack([values, values]), masks),
        lambda: scheme.decode_each_with_params(np.stack([values, values]), masks),
    ):
        _, caught = recorded(call)
        assert caught == []
    assert scheme.underdetermined(masks).tolist() == [False, False]
    assert scheme.underdetermined(answering(K - 1)) is True


@pytest.mark.parametrize("name", sorted(SCHEMES))
def test_several_patterns_warn_once_with_how_many_and_the_fewest(name):
    scheme = SCHEMES[name]()
    masks = np.stack([answering(N), answering(K - 1), answering(2), answering(K)])
    stacked = np.stack([outputs(seed=s) for s in range(len(masks))])
    expected = "2 of 4 patterns had fewer answers than K=4 inputs (as few as 2 of the N=10 workers)"
    calls = {
        "decode": lambda: scheme.decode(stacked[0], masks),
        "decode_each": lambda: scheme.decode_each(stacked, masks),
        "decode_each_with_params": lambda: scheme.decode_each_with_params(stacked, masks)[0],
    }
    for method, call in calls.items():
        estimates, caught = recorded(call)
        assert len(caught) == 1, method
        assert expected in str(caught[0].message), method
        assert caught[0].filename == __file__, method
        assert estimates.shape == (4, K, 3)
    np.testing.assert_array_equal(scheme.underdetermined(masks), [False, True, True, False])


def test_the_estimates_are_the_decoders_applied():
    """The warning changes nothing: the estimates are the pattern's decoder times the outputs."""
    scheme = NeRCC(K, N, lam_enc=1e-4, lam_dec=1e-3)
    values, mask = outputs(), answering(2)
    with pytest.warns(FewAnswersWarning, match="only 2 of the N=10"):
        estimates = scheme.decode(values, mask)
    np.testing.assert_allclose(estimates, scheme.decoder_matrix(mask) @ values, atol=1e-12)


def test_torch_outputs_warn_too():
    scheme = BACC(K, N)
    values = torch.as_tensor(outputs(), dtype=torch.float32)
    with pytest.warns(FewAnswersWarning, match="fewer than K=4"):
        estimates = scheme.decode(values, answering(1))
    assert isinstance(estimates, torch.Tensor) and estimates.shape == (K, 3)


def test_an_ignore_filter_silences_it():
    """What an evaluation that counts such patterns itself does."""
    scheme = NeRCC(K, N)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", FewAnswersWarning)
        scheme.decode(outputs(), answering(1))


def test_uncoded_and_replication_lose_inputs_instead_and_never_warn():
    for scheme in (Uncoded(K), Replication(K, 2)):
        n = scheme.num_workers
        mask = answering(1, n)
        values = outputs(n)
        _, caught = recorded(lambda s=scheme, m=mask, v=values: s.decode(v, m))
        assert caught == []
        _, caught = recorded(lambda s=scheme, m=mask, v=values: s.decode_each(v[None], m[None]))
        assert caught == []
        assert scheme.underdetermined(mask) is False
        assert scheme.lost(mask).sum() == K - 1  # what it reports instead


def test_one_input_never_warns():
    _, caught = recorded(lambda: NeRCC(1, N).decode(outputs(), answering(1)))
    assert caught == []
