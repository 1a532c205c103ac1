"""Coded-inference evaluation: schemes against a trained classifier over straggler counts."""

from nercc.evaluation.cache import OutputCache
from nercc.evaluation.metrics import CodedMetrics
from nercc.evaluation.module import CodedInferenceModule
from nercc.evaluation.variants import SchemeVariant, build_scheme

__all__ = ["CodedInferenceModule", "CodedMetrics", "OutputCache", "SchemeVariant", "build_scheme"]
