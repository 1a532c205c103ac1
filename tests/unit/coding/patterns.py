"""Availability patterns for the coding tests."""

import numpy as np


def random_patterns(num_workers, stragglers, count, seed=0):
    """``count`` masks of shape (num_workers,), each with ``stragglers`` workers off at random."""
    rng = np.random.default_rng(seed)
    masks = np.ones((count, num_workers), dtype=bool)
    for row in masks:
        row[rng.choice(num_workers, stragglers, replace=False)] = False
    return masks
