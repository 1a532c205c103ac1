"""What the Byzantine figures compute besides the evaluation's rows: the number of adversaries
A(N) = round(N^a) of the convergence figure under adversaries, the slope the theory gives it, and
the check that a figure drawn against A has one S and several A.

The theory (docs/method.md, "Adversarial (Byzantine) answers"; arXiv 2502.08058): the
smoothing-spline scheme tolerates A = O(N^a) adversaries with an average error decaying like
N^{(6/5)(a - 1)}, so that log mse falls on log N with slope (6/5)(a - 1): -0.84 at a = 0.3 and
-0.6 at a = 0.5.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["THEORY_ADVERSARIES", "adversaries_at", "adversary_axis_problem", "theory_slope"]

THEORY_ADVERSARIES = (
    'Theory (docs/method.md, "Adversarial (Byzantine) answers"; arXiv 2502.08058): a robust '
    "smoothing-spline scheme tolerates A = O(N^a) adversaries with an average error decaying like "
    "N^((6/5)(a - 1)), a slope of (6/5)(a - 1) of log mse on log N (-0.84 at a = 0.3, -0.6 at "
    "a = 0.5), drawn dotted through the centre of the first curve. The bound is for the smooth "
    "functions the theorem assumes and its own robust estimator; a real network decoded by this "
    "screening need not follow it: a flatter or steeper slope is a finding, not a failure."
)


def _exponent(a: object) -> float:
    if isinstance(a, bool) or not isinstance(a, int | float) or not 0 <= a < 1:
        raise ValueError(f"a must be a number in [0, 1), got {a!r}")
    return float(a)


def adversaries_at(n: int, a: float) -> int:
    """The adversaries among N workers at exponent ``a``: A = round(N^a), halves rounded up.

    Parameters
    ----------
    n : int
        The workers N, at least 1.
    a : float
        The exponent, in [0, 1) (A grows slower than N).

    Returns
    -------
    int
        ``floor(N^a + 1/2)``.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    return int(math.floor(n ** _exponent(a) + 0.5))


def theory_slope(a: float) -> float:
    """The slope of log mse on log N that the theory gives under A = O(N^a) adversaries:
    (6/5)(a - 1) (the error decays like N^{(6/5)(a - 1)}).

    Parameters
    ----------
    a : float
        The exponent, in [0, 1).
    """
    return 1.2 * (_exponent(a) - 1.0)


def adversary_axis_problem(stragglers: Sequence[int], adversaries: Sequence[int]) -> str | None:
    """Why rows of an evaluation with this S list and A list cannot be drawn against A (one S,
    at least two A), or None when they can."""
    stragglers, adversaries = list(stragglers), list(adversaries)
    if len(stragglers) != 1 or len(set(adversaries)) < 2:
        return (
            f"a figure against A needs one S and at least two A (stragglers=[S], "
            f"adversaries=[0,...]), got stragglers={stragglers}, adversaries={adversaries}"
        )
    return None
