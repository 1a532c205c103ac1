"""Which inputs share a group, and where each sits on the curve: the master's free choice.

The encoder fits a curve u(alpha) with u(alpha_k) = x_k through the K inputs of a group, and the
decoder fits one through the workers' answers; both are smoother when neighbouring points of the
curve hold similar inputs. The master may put a group's K inputs at the K points in any order
(the estimates are mapped back), and may choose which inputs of a batch share a group. This
module chooses both from a cheap embedding of each input (its pixels, or a cheap model's
outputs); every scheme gets the same arrangement, so that comparisons stay fair.

Orders within a group (``ORDERS``):

- ``none``: as they came.
- ``pc1``: ascending projection on a fixed direction (the first principal component of the
  training split's embeddings, :func:`principal_direction`).
- ``spectral``: ascending Fiedler vector of the group's graph (weights exp(-d^2 / median d^2)
  between inputs at squared distance d^2): a 1-D embedding that keeps near inputs near.
- ``path``: the spectral order improved by 2-opt moves (reversing a stretch) until none lowers
  the sum of squared distances between neighbours: a near-shortest open path through the group.
- ``proxy``: ``path``, through embeddings that a cheap model gives (a linear classifier's
  logits: the caller passes them as the features), so that neighbours are inputs the base
  model is likely to answer alike.

Groupings of a batch (``GROUPINGS``):

- ``arrival``: consecutive inputs, as they came.
- ``sorted``: the batch sorted by its projection on the direction, cut into groups of K.
- ``clustered``: balanced k-means into groups of K (each group K inputs), started from
  ``sorted``: each round places the inputs by proposals to the nearest centre with room.

A batch whose size is not a multiple of K leaves a remainder group, padded with copies of its
own inputs (in the same slots as its last one: a copy next to its original adds no roughness).
Ties are broken by input index, and a spectral order or a path (which have no direction) is
reversed when its first input has a larger index than its last, so that an arrangement is a
function of the inputs alone.
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

import numpy as np

from nercc.coding._validation import check_int

__all__ = [
    "GROUPINGS",
    "ORDERS",
    "Arrangement",
    "Arranger",
    "arrange",
    "neighbour_cost",
    "order_groups",
    "principal_direction",
]

#: The orders within a group.
ORDERS = ("none", "pc1", "spectral", "path", "proxy")
#: The groupings of a batch.
GROUPINGS = ("arrival", "sorted", "clustered")

#: The orders and groupings that read a fitted direction.
NEEDS_DIRECTION = {"pc1", "sorted", "clustered"}

#: 2-opt moves applied at most per group (each lowers the cost: it ends long before).
MAX_MOVES = 10_000
#: Balanced k-means rounds at most (each lowers the within-group distance or stops).
MAX_ROUNDS = 20


class Arrangement(NamedTuple):
    """Where the inputs of a batch of B sit: ``take`` (G*K,) the input in each slot (group g's
    slots are g*K ... g*K + K - 1, in curve order) and ``real`` (G*K,) whether a slot holds its
    input for the first time (False for a padding copy). Every input is in exactly one real
    slot."""

    take: np.ndarray
    real: np.ndarray


def principal_direction(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mean and the first principal direction of ``features``.

    Parameters
    ----------
    features : ndarray, shape (M, D)
        Embeddings (e.g. a training split's flattened images), M >= 2.

    Returns
    -------
    mean : ndarray, shape (D,)
    direction : ndarray, shape (D,)
        The unit vector v maximising the variance of (x - mean) . v; its sign makes its
        largest-magnitude component positive (the lowest index on a tie).
    """
    x = _features("features", features)
    if x.shape[0] < 2:
        raise ValueError(f"features must hold at least 2 rows, got shape {x.shape}")
    mean = x.mean(axis=0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    direction = vt[0]
    if direction[np.argmax(np.abs(direction))] < 0:
        direction = -direction
    return mean, direction


def arrange(
    features: np.ndarray,
    num_inputs: int,
    order: str = "none",
    grouping: str = "arrival",
    direction: tuple[np.ndarray, np.ndarray] | None = None,
) -> Arrangement:
    """Group a batch into groups of K and order each group.

    Parameters
    ----------
    features : ndarray, shape (B, D)
        One embedding per input of the batch.
    num_inputs : int
        K, the inputs of a group.
    order : str
        One of :data:`ORDERS`.
    grouping : str
        One of :data:`GROUPINGS`.
    direction : (mean (D,), direction (D,)), optional
        From :func:`principal_direction` of the training split's embeddings; needed by ``pc1``,
        ``sorted`` and ``clustered``.

    Returns
    -------
    Arrangement
        With ``order="none"`` and ``grouping="arrival"``: ``take = arange(G*K) % B`` (padding
        repeats the batch's first inputs, as the evaluation did before orders existed).
    """
    x = _features("features", features)
    k = check_int("num_inputs", num_inputs, 1)
    _check_names(order, grouping)
    key = None
    if NEEDS_DIRECTION & {order, grouping}:
        key = _projection(x, direction)
    count = x.shape[0]
    groups = -(-count // k)
    if order == "none" and grouping == "arrival":
        slots = np.arange(groups * k)
        return Arrangement(slots % count, slots < count)
    members = _group(x, k, grouping, key)  # (G, K) input indices, -1 for padding
    take, real = _pad(members)
    ordered = order_groups(x[take], order, None if key is None else key[take])
    rows = np.arange(groups)[:, None]
    return Arrangement(take[rows, ordered].ravel(), real[rows, ordered].ravel())


def order_groups(features: np.ndarray, order: str, key: np.ndarray | None = None) -> np.ndarray:
    """The order of each group: a permutation of 0 .. K-1 per group.

    Parameters
    ----------
    features : ndarray, shape (G, K, D)
        The embeddings of each group's inputs.
    order : str
        One of :data:`ORDERS`.
    key : ndarray, shape (G, K), optional
        Each input's projection on the direction (``pc1`` sorts by it).

    Returns
    -------
    ndarray of int, shape (G, K)
        ``perm[g]`` lists group g's inputs (their places in ``features[g]``) in curve order.
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 3:
        raise ValueError(f"features must have shape (G, K, D), got {x.shape}")
    if order not in ORDERS:
        raise ValueError(f"order must be one of {', '.join(ORDERS)}, got {order!r}")
    g, k, _ = x.shape
    if order == "pc1":
        if key is None:
            raise ValueError("order pc1 needs key, the inputs' projections, got None")
        return np.argsort(np.asarray(key, dtype=np.float64), axis=1, kind="stable")
    if order == "none" or k <= 2:  # two inputs: either order is the same curve
        return np.broadcast_to(np.arange(k), (g, k)).copy()
    distances = _squared_distances(x)
    perm = _spectral(distances)
    if order in ("path", "proxy"):  # the proxy's embeddings are the caller's features
        perm = _two_opt(distances, perm)
    flip = perm[:, 0] > perm[:, -1]  # a path has no direction: the one from the lower index
    perm[flip] = perm[flip, ::-1]
    return perm


def neighbour_cost(features: np.ndarray, perm: np.ndarray) -> np.ndarray:
    """The sum of squared distances between neighbours of each group in order ``perm``.

    Parameters
    ----------
    features : ndarray, shape (G, K, D)
    perm : ndarray of int, shape (G, K)

    Returns
    -------
    ndarray, shape (G,)
    """
    x = np.asarray(features, dtype=np.float64)
    ordered = np.take_along_axis(x, np.asarray(perm)[:, :, None], axis=1)
    return (np.diff(ordered, axis=1) ** 2).sum(axis=(1, 2))


# -- internals -------------------------------------------------------------------------------


def _check_names(order: str, grouping: str) -> None:
    if order not in ORDERS:
        raise ValueError(f"order must be one of {', '.join(ORDERS)}, got {order!r}")
    if grouping not in GROUPINGS:
        raise ValueError(f"grouping must be one of {', '.join(GROUPINGS)}, got {grouping!r}")


def _features(name: str, value: object) -> np.ndarray:
    x = np.asarray(value, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must have shape (B, D) with B >= 1, got {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} must be finite, got {int((~np.isfinite(x)).sum())} non-finite")
    return x


def _projection(x: np.ndarray, direction: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
    if direction is None:
        raise ValueError(
            "direction must be (mean, vector) from principal_direction of the training split "
            "for pc1, sorted and clustered, got None"
        )
    mean, vector = (np.asarray(v, dtype=np.float64) for v in direction)
    if mean.shape != (x.shape[1],) or vector.shape != (x.shape[1],):
        raise ValueError(
            f"direction must be two vectors of length D={x.shape[1]}, got shapes "
            f"{mean.shape} and {vector.shape}"
        )
    return (x - mean) @ vector


def _group(x: np.ndarray, k: int, grouping: str, key: np.ndarray | None) -> np.ndarray:
    """(G, K) input indices of each group, -1 in the remainder group's empty slots."""
    count = x.shape[0]
    groups = -(-count // k)
    if grouping == "arrival":
        chosen = np.arange(count)
    else:
        assert key is not None
        chosen = np.argsort(key, kind="stable")
    members = np.full(groups * k, -1)
    members[:count] = chosen
    members = members.reshape(groups, k)
    if grouping == "clustered" and groups > 1:
        members = _balanced_kmeans(x, members, k)
    return members


def _balanced_kmeans(x: np.ndarray, members: np.ndarray, k: int) -> np.ndarray:
    """Balanced k-means from ``members``: each round, every unplaced input proposes to its
    nearest centre with room, and each centre takes the nearest of its proposers that fit (ties
    by input index), until every input is placed (each group takes K, the last one what is
    left); stops when the within-group squared distance stops falling."""
    count = x.shape[0]
    groups = members.shape[0]
    capacity = np.full(groups, k)
    capacity[-1] = count - k * (groups - 1)
    norms = (x**2).sum(axis=1)
    best, best_cost = members, _within(x, members)
    for _ in range(MAX_ROUNDS):
        centres = np.stack([x[row[row >= 0]].mean(axis=0) for row in best])
        distances = norms[:, None] - 2.0 * x @ centres.T + (centres**2).sum(axis=1)[None]
        assigned = _place(distances, capacity)
        rows = np.full((groups, k), -1)
        for c in range(groups):
            chosen = np.flatnonzero(assigned == c)
            rows[c, : chosen.size] = chosen
        cost = _within(x, rows)
        if cost >= best_cost - 1e-12 * max(best_cost, 1.0):
            break
        best, best_cost = rows, cost
    return best


def _place(distances: np.ndarray, capacity: np.ndarray) -> np.ndarray:
    """The centre of each input (B,) under the capacities: rounds of proposals to the nearest
    centre with room, each centre accepting its nearest proposers up to its room."""
    count, groups = distances.shape
    assigned = np.full(count, -1)
    room = capacity.copy()
    while (free := np.flatnonzero(assigned < 0)).size:
        d = np.where(room[None, :] > 0, distances[free], np.inf)
        choice = d.argmin(axis=1)
        dist = d[np.arange(free.size), choice]
        order = np.lexsort((dist, choice))  # by centre, then distance; stable: then by index
        ranked = choice[order]
        rank = np.arange(order.size) - np.searchsorted(ranked, ranked, side="left")
        accept = rank < room[ranked]
        assigned[free[order[accept]]] = ranked[accept]
        room -= np.bincount(ranked[accept], minlength=groups)
    return assigned


def _within(x: np.ndarray, members: np.ndarray) -> float:
    total = 0.0
    for row in members:
        points = x[row[row >= 0]]
        total += float(((points - points.mean(axis=0)) ** 2).sum())
    return total


def _pad(members: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fill the empty slots (-1) with copies of their group's last input."""
    take = members.copy()
    real = take >= 0
    for g in np.flatnonzero(~real.all(axis=1)):
        row = take[g]
        row[~real[g]] = row[real[g]][-1]
    return take, real


def _squared_distances(x: np.ndarray) -> np.ndarray:
    """(G, K, K) squared distances within each group."""
    norms = (x**2).sum(axis=2)
    d = norms[:, :, None] + norms[:, None, :] - 2.0 * x @ x.transpose(0, 2, 1)
    return np.maximum(d, 0.0)


def _spectral(distances: np.ndarray) -> np.ndarray:
    """Each group's inputs by ascending Fiedler vector of exp(-d^2 / median d^2)."""
    g, k, _ = distances.shape
    off = ~np.eye(k, dtype=bool)
    scale = np.median(distances[:, off], axis=1)
    scale = np.where(scale > 0, scale, 1.0)
    weights = np.exp(-distances / scale[:, None, None]) * off
    laplacian = np.eye(k) * weights.sum(axis=2)[:, :, None] - weights
    _, vectors = np.linalg.eigh(laplacian)
    fiedler = np.round(vectors[:, :, 1], 12)  # ties (equal inputs) by index
    return np.argsort(fiedler, axis=1, kind="stable")


def _two_opt(distances: np.ndarray, perm: np.ndarray) -> np.ndarray:
    """Improve each group's open path by the best 2-opt move (reverse perm[i..j]) until none
    lowers the sum of squared distances between neighbours."""
    g, k, _ = distances.shape
    perm = perm.copy()
    i, j = np.triu_indices(k, 1)
    rows = np.arange(g)
    for _ in range(MAX_MOVES):
        before_i = perm[:, np.maximum(i - 1, 0)]
        after_j = perm[:, np.minimum(j + 1, k - 1)]
        at_i, at_j = perm[:, i], perm[:, j]
        d = lambda a, b: distances[rows[:, None], a, b]  # noqa: E731
        has_left, has_right = i > 0, j < k - 1
        old = d(before_i, at_i) * has_left + d(at_j, after_j) * has_right
        new = d(before_i, at_j) * has_left + d(at_i, after_j) * has_right
        gain = old - new  # (G, moves)
        best = np.argmax(gain, axis=1)
        improving = gain[rows, best] > 1e-12 * (1.0 + old[rows, best])
        if not improving.any():
            break
        for group in np.flatnonzero(improving):
            a, b = i[best[group]], j[best[group]]
            perm[group, a : b + 1] = perm[group, a : b + 1][::-1].copy()
    return perm


class Arranger:
    """An arrangement rule fitted once: ``arranger(features)`` is :func:`arrange` of a batch
    with these settings.

    Parameters
    ----------
    num_inputs : int
        K.
    order, grouping : str
        One of :data:`ORDERS` and of :data:`GROUPINGS`.
    direction : (mean (D,), direction (D,)), optional
        From :func:`principal_direction` of the training split's embeddings; required by
        ``pc1``, ``sorted`` and ``clustered`` (checked here).
    """

    def __init__(
        self,
        num_inputs: int,
        order: str = "none",
        grouping: str = "arrival",
        direction: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        self.num_inputs = check_int("num_inputs", num_inputs, 1)
        _check_names(order, grouping)
        if direction is not None:
            direction = tuple(np.asarray(v, dtype=np.float64) for v in direction)  # type: ignore[assignment]
        if direction is None and NEEDS_DIRECTION & {order, grouping}:
            raise ValueError(
                f"direction must be (mean, vector) from principal_direction of the training "
                f"split for order={order}, grouping={grouping}, got None"
            )
        self.order, self.grouping, self.direction = order, grouping, direction

    @property
    def identity(self) -> bool:
        """Whether inputs keep their arrival order and groups (``none``, ``arrival``)."""
        return self.order == "none" and self.grouping == "arrival"

    def __call__(self, features: np.ndarray) -> Arrangement:
        """:func:`arrange` of ``features`` (B, D) with these settings."""
        return arrange(features, self.num_inputs, self.order, self.grouping, self.direction)

    def describe(self) -> dict[str, object]:
        """``order``, ``grouping`` and ``direction`` (the SHA-256 of the direction's bytes, or
        None): everything an arrangement depends on besides the inputs."""
        digest = None
        if self.direction is not None:
            digest = hashlib.sha256(b"".join(v.tobytes() for v in self.direction)).hexdigest()
        return {"order": self.order, "grouping": self.grouping, "direction": digest}
