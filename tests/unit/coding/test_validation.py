"""Bad input is refused at the public boundary with a ValueError naming the argument and value."""

import math

import numpy as np
import pytest

from nercc.coding import BACC, NeRCC, Replication, Uncoded, berrut_matrix, make_points
from nercc.coding import smoothing_spline_matrix as ssm

OK = np.array([True] * 9 + [False])

CASES = [
    (lambda: NeRCC(4, 10, lam_enc=-1.0), "lam_enc", "-1.0"),
    (lambda: NeRCC(4, 10, lam_dec=math.nan), "lam_dec", "nan"),
    (lambda: NeRCC(4, 10, lam_dec=math.inf), "lam_dec", "inf"),
    (lambda: NeRCC(4, 10, lam_enc="big"), "lam_enc", "'big'"),
    (lambda: NeRCC(0, 10), "num_inputs", "0"),
    (lambda: NeRCC(4, 1), "num_workers", "1"),
    (lambda: BACC(4, 2.5), "num_workers", "2.5"),
    (lambda: NeRCC(20, 10), "num_workers", "at least num_inputs=20"),
    (lambda: BACC(8, 5), "num_workers", "got 5"),
    (lambda: NeRCC(4, 10, points="random"), "points", "'random'"),
    (lambda: make_points(3, 5, "spiral"), "layout", "'spiral'"),
    (lambda: Uncoded(0), "num_inputs", "0"),
    (lambda: Replication(3, 0), "replicas", "0"),
    (lambda: ssm([0.0, 0.5, 0.3], [0.1], 1.0), "sites", "ascending"),
    (lambda: ssm([0.0, 0.5, 0.5], [0.1], 1.0), "sites", "duplicates"),
    (lambda: ssm([0.0, np.nan], [0.1], 1.0), "sites", "finite"),
    (lambda: ssm([0.0, 1.0], [0.1], -0.5), "lam", "-0.5"),
    (lambda: ssm([0.0, 1.0], [[0.1]], 0.5), "targets", "(1, 1)"),
    (lambda: ssm([0.0, 1.0], [0.1], 0.5, weights=[1.0, 0.0]), "weights", "> 0"),
    (lambda: ssm([0.0, 1.0], [0.1], 0.5, weights=[1.0]), "weights", "(1,)"),
    (lambda: berrut_matrix([1.0, 0.0], [0.5]), "nodes", "ascending"),
    (lambda: NeRCC(4, 10).decoder_matrix(np.ones(9, dtype=bool)), "available", "(9,)"),
    (lambda: NeRCC(4, 10).decoder_matrix(np.ones(10)), "available", "float64"),
    (lambda: NeRCC(4, 10).decoder_matrix(np.zeros(10, dtype=bool)), "available", "none"),
    (lambda: NeRCC(4, 10).decode(np.ones((10, 2)), np.zeros((3, 10), bool)), "available", "none"),
    (
        lambda: NeRCC(4, 10).decode(np.ones((10, 2)), np.ones((2, 3, 10), bool)),
        "available",
        "(2, 3, 10)",
    ),
    (lambda: NeRCC(4, 10).decode(np.ones((9, 2)), OK), "outputs", "(9, 2)"),
    (lambda: NeRCC(4, 10).encode(np.ones((5, 2))), "inputs", "(5, 2)"),
    (lambda: Uncoded(4).lost(np.ones(5, dtype=bool)), "available", "(5,)"),
]


@pytest.mark.parametrize(("call", "argument", "value"), CASES)
def test_bad_input_names_argument_and_value(call, argument, value):
    with pytest.raises(ValueError) as error:
        call()
    message = str(error.value)
    assert argument in message and value in message, message
