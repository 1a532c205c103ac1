"""What each scheme class declares (tunable parameters, whether inputs can be lost, the parameters
it reports), against the scheme's own behaviour: the constructor accepts every declared parameter
and the values declared acceptable, decode_each_with_params reports the declared names in order,
a parameter declared fixed per pattern is the same for every pattern, lost() agrees with
loses_inputs, and a declared choice that depends on the outputs leaves no decoder matrix."""

import contextlib
import inspect
import math

import numpy as np
import pytest

from nercc.coding import (
    BACC,
    SCHEMES,
    Choice,
    CodingScheme,
    FewAnswersWarning,
    FloaterHormann,
    LocatingBACC,
    NeRCC,
    ParM,
    Replication,
    RobustBACC,
    RobustNeRCC,
    Tunable,
    Uncoded,
    VotingReplication,
    effective_df,
)

K, N = 8, 20


def patterns(count, seed=0, num_workers=N):
    """Patterns of different sizes, from one answer to all."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((count, num_workers), dtype=bool)
    for row, size in zip(masks, np.linspace(1, num_workers, count).astype(int), strict=True):
        row[rng.choice(num_workers, size, replace=False)] = True
    return masks


INSTANCES = {
    "nercc": lambda: NeRCC(K, N, lam_enc=1e-4, lam_dec=1e-3),
    "nercc_gcv": lambda: NeRCC(K, N, df_enc=5.0, lam_dec="gcv"),
    "nercc_df": lambda: NeRCC(K, N, lam_enc=1e-5, df_dec=6.0),
    "bacc": lambda: BACC(K, N),
    "fh": lambda: FloaterHormann(K, N, d=2),
    "uncoded": lambda: Uncoded(K),
    "replication": lambda: Replication(K, 2),
    "replication_vote": lambda: VotingReplication(K, 2),
    "nercc_robust": lambda: RobustNeRCC(K, N, lam_enc=1e-4, lam_dec=1e-3),
    "nercc_robust_df": lambda: RobustNeRCC(K, N, lam_enc=1e-4, df_dec=6.0),
    "bacc_robust": lambda: RobustBACC(K, N),
    "bacc_locator": lambda: LocatingBACC(K, N),
    "parm": lambda: ParM(K, K + 1),
}


def test_the_registry_holds_every_scheme_class_by_name():
    assert list(SCHEMES) == [
        "NeRCC",
        "RobustNeRCC",
        "BACC",
        "RobustBACC",
        "LocatingBACC",
        "FloaterHormann",
        "ParM",
        "Replication",
        "VotingReplication",
        "Uncoded",
    ]
    for name, cls in SCHEMES.items():
        assert cls.__name__ == name and issubclass(cls, CodingScheme)


@pytest.mark.parametrize("cls", list(SCHEMES.values()), ids=list(SCHEMES))
def test_every_tunable_is_a_keyword_of_the_constructor_and_every_report_a_tunable(cls):
    arguments = inspect.signature(cls.__init__).parameters
    for tunable in cls.tunables:
        assert tunable.name in arguments
        assert cls.tunable(tunable.name) is tunable
        if tunable.alternative_of is not None:
            assert cls.tunable(tunable.alternative_of).side == tunable.side
        for value in tunable.grid + tunable.auto_candidates:
            assert tunable.accepts(value, num_inputs=K, num_workers=N)
    for name in cls.reported:
        cls.tunable(name)
    names = [t.name for t in cls.tunables]
    assert len(set(names)) == len(names)


def test_nercc_declares_its_vocabulary():
    lam_enc, lam_dec, df_enc, df_dec = NeRCC.tunables
    assert [t.name for t in NeRCC.tunables] == ["lam_enc", "lam_dec", "df_enc", "df_dec"]
    assert [t.side for t in NeRCC.tunables] == ["encoder", "decoder", "encoder", "decoder"]
    assert NeRCC.settings() == ("lam_enc", "lam_dec")
    assert (df_enc.setting, df_dec.setting) == ("lam_enc", "lam_dec")
    assert (lam_enc.log, lam_dec.log) == (True, True)
    assert lam_enc.search == (1e-12, 1e-3) and lam_dec.search == (1e-12, 1e-5)
    # tuning grids: 0 and 8 log-spaced values, 1e-10 .. 1e-3 and 1e-11 .. 1e-4
    for tunable, low, high in ((lam_enc, 1e-10, 1e-3), (lam_dec, 1e-11, 1e-4)):
        assert len(tunable.grid) == 9 and tunable.grid[0] == 0.0
        np.testing.assert_allclose(np.diff(np.log10(tunable.grid[1:])), 1.0, rtol=1e-12)
        np.testing.assert_allclose([tunable.grid[1], tunable.grid[-1]], [low, high], rtol=1e-15)
    assert df_enc.grid == df_dec.grid == ()
    assert [c.value for c in lam_dec.choices] == ["gcv"] and lam_enc.choices == ()
    assert lam_dec.choice("gcv") == Choice(
        "gcv", "chosen per pattern by cross-validation on the answers", True, True
    )
    assert (lam_enc.auto, lam_dec.auto, df_enc.auto, df_dec.auto) == (True, True, False, False)
    assert lam_dec.auto_candidates == (0.0, 1e-9, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3)
    assert [t.per_pattern for t in NeRCC.tunables] == [
        "never",
        "unless_fixed",
        "never",
        "always",
    ]
    assert NeRCC.reported == ("lam_enc", "lam_dec", "df_enc", "df_dec")
    assert not NeRCC.loses_inputs


def test_the_other_schemes_declare_theirs():
    for cls in (BACC, Uncoded, Replication):
        assert cls.tunables == () and cls.reported == () and cls.settings() == ()
    assert (BACC.loses_inputs, Uncoded.loses_inputs, Replication.loses_inputs) == (
        False,
        True,
        True,
    )


@pytest.mark.parametrize(
    ("name", "good", "bad"),
    [
        ("lam_enc", [0, 0.0, 1e-6, 1e100], [-1e-9, math.nan, math.inf, "gcv", "auto", True, None]),
        ("lam_dec", [0, 1e-3, "gcv"], [-1.0, math.inf, "auto", "GCV", [1e-3]]),
        ("df_enc", [2.0001, 5, K], [2, 2.0, K + 0.5, math.nan, "gcv"]),
        ("df_dec", [3, N], [2, N + 1]),
    ],
)
def test_nercc_accepts_what_it_declares(name, good, bad):
    tunable = NeRCC.tunable(name)
    for value in good:
        assert tunable.accepts(value, num_inputs=K, num_workers=N), value
    for value in bad:
        assert not tunable.accepts(value, num_inputs=K, num_workers=N), value
    # the constructor takes every value declared acceptable; a lambda's refusals are its own
    # too (a df past K or N is a config error only: the constructor interpolates there)
    for value in good:
        NeRCC(K, N, **{name: value})
    if name.startswith("lam_"):
        for value in bad:
            with pytest.raises(ValueError, match=name):
                NeRCC(K, N, **{name: value})


def test_a_bound_naming_a_code_size_needs_it():
    df_enc = NeRCC.tunable("df_enc")
    assert df_enc.limits(num_inputs=K) == (2.0, float(K))
    with pytest.raises(ValueError, match="num_inputs"):
        df_enc.accepts(5.0)


def test_an_unknown_parameter_is_refused_naming_the_known_ones():
    with pytest.raises(ValueError, match=r"'lam' is not a parameter of NeRCC \(its parameters: "):
        NeRCC.tunable("lam")
    with pytest.raises(ValueError, match=r"its parameters: none"):
        BACC.tunable("d")


def test_a_malformed_declaration_is_refused():
    with pytest.raises(ValueError, match="side"):
        Tunable("x", "middle", "")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="per_pattern"):
        Tunable("x", "encoder", "", per_pattern="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="bound"):
        Tunable("x", "encoder", "", high="num_groups")


@pytest.mark.parametrize("name", list(INSTANCES))
def test_reports_follow_the_declaration(name):
    """decode_each_with_params reports ``reported`` in order; a parameter that does not vary per
    pattern (for these settings) has one value for all; encoder_params are what it reports."""
    scheme = INSTANCES[name]()
    masks = patterns(7, seed=1, num_workers=scheme.num_workers)
    outputs = np.random.default_rng(2).normal(size=(7, scheme.num_workers, 3))
    few = scheme.underdetermined(masks).any()
    with pytest.warns(FewAnswersWarning) if few else contextlib.nullcontext():
        _, params = scheme.decode_each_with_params(outputs, masks)
    assert tuple(params) == type(scheme).reported
    settings = scheme.params()
    for key, values in params.items():
        tunable = scheme.tunable(key)
        if not tunable.varies(settings):
            assert np.all(values == values[0]), key
        elif name != "nercc_gcv" or key != "lam_dec":  # GCV may choose one lambda for all
            assert len(set(values.tolist())) > 1, key
    for key, value in scheme.encoder_params().items():
        assert scheme.tunable(key).side == "encoder"
        np.testing.assert_array_equal(params[key], value)
    encoder_side = {k for k in type(scheme).reported if scheme.tunable(k).side == "encoder"}
    assert set(scheme.encoder_params()) == encoder_side


def test_schemes_sharing_a_decoder_differ_only_in_encoder_params():
    one, two = NeRCC(K, N, lam_enc=1e-4, df_dec=6.0), NeRCC(K, N, df_enc=5.0, df_dec=6.0)
    assert one.decoder_key() == two.decoder_key()
    masks = patterns(5, seed=3)
    outputs = np.random.default_rng(4).normal(size=(5, N, 2))
    with pytest.warns(FewAnswersWarning):
        _, first = one.decode_each_with_params(outputs, masks)
        _, second = two.decode_each_with_params(outputs, masks)
    for key in NeRCC.reported:
        same = np.array_equal(first[key], second[key])
        assert same == (key not in one.encoder_params()), key


@pytest.mark.parametrize("name", list(INSTANCES))
def test_loses_inputs_is_what_lost_shows(name):
    scheme = INSTANCES[name]()
    one = np.zeros(scheme.num_workers, dtype=bool)
    one[0] = True
    assert bool(scheme.lost(one).any()) == type(scheme).loses_inputs


def test_a_choice_from_the_outputs_leaves_no_decoder_matrix():
    assert NeRCC.tunable("lam_dec").choice("gcv").from_outputs
    with pytest.raises(ValueError, match="no decoder matrix"):
        NeRCC(K, N, lam_dec="gcv").decoder_matrix(np.ones(N, dtype=bool))


def test_auto_candidates():
    scheme = NeRCC(20, 100)
    lams = scheme.auto_candidates("lam_enc")
    assert lams == sorted(lams) and lams[0] == 0.0 and len(lams) == len(NeRCC.AUTO_DF_FRACTIONS)
    dfs = [effective_df(scheme.alphas, lam) for lam in lams]
    np.testing.assert_allclose(dfs, [20 * f for f in NeRCC.AUTO_DF_FRACTIONS], rtol=1e-9)
    # fractions at or below 2/K are dropped: K = 3 keeps df 3 (lam 0), 2.985, 2.925, 2.76, 2.25
    assert len(NeRCC(3, 10).auto_candidates("lam_enc")) == 5
    assert scheme.auto_candidates("lam_dec") == [0.0, 1e-9, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3]
    with pytest.raises(ValueError, match="cannot be calibrated"):
        scheme.auto_candidates("df_enc")
    with pytest.raises(ValueError, match="not a parameter"):
        BACC(K, N).auto_candidates("lam_enc")
