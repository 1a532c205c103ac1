"""The coding core of nercc: encoders and decoders as exact linear operators.

Pure numerical code (numpy and scipy; torch tensors are accepted where it is imported). Nothing here
knows of Lightning, Hydra, W&B or Ray. See ``docs/method.md`` for the mathematics.

One concept per module: :mod:`~nercc.coding.base` (the contract of every scheme),
:mod:`~nercc.coding.params` (what a scheme declares about its parameters),
:mod:`~nercc.coding.decoder_cache` and :mod:`~nercc.coding.spectrum_cache` (the caches a scheme
holds), :mod:`~nercc.coding.nercc`, :mod:`~nercc.coding.bacc` and
:mod:`~nercc.coding.baselines` and :mod:`~nercc.coding.parm` (the schemes; ParM's parity
worker runs a learned parity model), :mod:`~nercc.coding.screening` (what a scheme
that drops adversarial answers shares), :mod:`~nercc.coding.robust` (NeRCC and BACC that screen
with a robust spline), :mod:`~nercc.coding.locator` (BACC with an error locator), and the
numerics under them
(:mod:`~nercc.coding.points`, :mod:`~nercc.coding.splines`, :mod:`~nercc.coding.gcv`,
:mod:`~nercc.coding.berrut`, :mod:`~nercc.coding.floater_hormann`).
"""

from nercc.coding.bacc import BACC, FloaterHormann
from nercc.coding.base import CodingScheme, FewAnswersWarning
from nercc.coding.baselines import Replication, Uncoded, VotingReplication
from nercc.coding.berrut import berrut_matrix
from nercc.coding.floater_hormann import floater_hormann_matrix, floater_hormann_weights
from nercc.coding.gcv import (
    DEFAULT_LAM_GRID,
    choose_lam_gcv,
    effective_df,
    gcv_scores,
    lam_for_df,
    loo_scores,
)
from nercc.coding.locator import LocatingBACC
from nercc.coding.nercc import NeRCC
from nercc.coding.params import Choice, Tunable
from nercc.coding.parm import ParM
from nercc.coding.points import LAYOUTS, make_points
from nercc.coding.robust import RobustBACC, RobustNeRCC
from nercc.coding.splines import lam_bound, smoothing_spline_matrix

#: Every scheme class by its name (the last part of a config's ``_target_``), in the order a
#: comparison lists them.
SCHEMES: dict[str, type[CodingScheme]] = {
    cls.__name__: cls
    for cls in (
        NeRCC,
        RobustNeRCC,
        BACC,
        RobustBACC,
        LocatingBACC,
        FloaterHormann,
        ParM,
        Replication,
        VotingReplication,
        Uncoded,
    )
}

__all__ = [
    "BACC",
    "DEFAULT_LAM_GRID",
    "LAYOUTS",
    "LocatingBACC",
    "SCHEMES",
    "Choice",
    "CodingScheme",
    "FewAnswersWarning",
    "FloaterHormann",
    "NeRCC",
    "ParM",
    "Replication",
    "RobustBACC",
    "RobustNeRCC",
    "Tunable",
    "Uncoded",
    "VotingReplication",
    "berrut_matrix",
    "choose_lam_gcv",
    "effective_df",
    "floater_hormann_matrix",
    "floater_hormann_weights",
    "gcv_scores",
    "lam_bound",
    "lam_for_df",
    "loo_scores",
    "make_points",
    "smoothing_spline_matrix",
]
