"""Coded-inference evaluation: schemes against a trained classifier over straggler counts.

The names load on first use, so that ``nercc.evaluation.variants`` (what the config checks need)
imports without Lightning.
"""

from __future__ import annotations

from nercc.utils.lazy import lazy_attributes

_WHERE = {
    "CodedInferenceModule": "nercc.evaluation.module",
    "CodedMetrics": "nercc.evaluation.metrics",
    "OutputCache": "nercc.evaluation.cache",
    "SchemeVariant": "nercc.evaluation.variants",
    "build_scheme": "nercc.evaluation.variants",
    "run_coded": "nercc.evaluation.runner",
}

__all__ = sorted(_WHERE)


__getattr__ = lazy_attributes(__name__, _WHERE)
