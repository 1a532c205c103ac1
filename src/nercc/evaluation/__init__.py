"""Coded-inference evaluation: schemes against a trained classifier over straggler counts."""

from nercc.evaluation.metrics import CodedMetrics
from nercc.evaluation.module import CodedInferenceModule
from nercc.evaluation.variants import SchemeVariant, expand_schemes

__all__ = ["CodedInferenceModule", "CodedMetrics", "SchemeVariant", "expand_schemes"]
