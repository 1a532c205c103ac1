"""The coding core of nercc: encoders and decoders as exact linear operators.

Pure numerical code (numpy and scipy; torch tensors are accepted where it is imported). Nothing here
knows of Lightning, Hydra, W&B or Ray. See ``docs/method.md`` for the mathematics.
"""

from nercc.coding.berrut import berrut_matrix
from nercc.coding.gcv import (
    DEFAULT_LAM_GRID,
    choose_lam_gcv,
    effective_df,
    gcv_scores,
    lam_for_df,
    loo_scores,
)
from nercc.coding.points import LAYOUTS, make_points
from nercc.coding.schemes import (
    BACC,
    CodingScheme,
    FewAnswersWarning,
    NeRCC,
    Replication,
    Uncoded,
)
from nercc.coding.splines import lam_bound, smoothing_spline_matrix

__all__ = [
    "BACC",
    "DEFAULT_LAM_GRID",
    "LAYOUTS",
    "CodingScheme",
    "FewAnswersWarning",
    "NeRCC",
    "Replication",
    "Uncoded",
    "berrut_matrix",
    "choose_lam_gcv",
    "effective_df",
    "gcv_scores",
    "lam_bound",
    "lam_for_df",
    "loo_scores",
    "make_points",
    "smoothing_spline_matrix",
]
