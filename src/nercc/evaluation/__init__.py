"""Coded-inference evaluation: schemes against a trained classifier over straggler counts.

The names load on first use, so that ``nercc.evaluation.variants`` (what the config checks need)
imports without Lightning.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "CodedInferenceModule": "nercc.evaluation.module",
    "CodedMetrics": "nercc.evaluation.metrics",
    "OutputCache": "nercc.evaluation.cache",
    "SchemeVariant": "nercc.evaluation.variants",
    "build_scheme": "nercc.evaluation.variants",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
