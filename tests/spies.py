"""Spies on the evaluation's internals, shared by the CPU and GPU tests."""

from __future__ import annotations

import pytest
import torch

from nercc.evaluation import module as evaluation_module


def record_decoded_dtypes(monkeypatch: pytest.MonkeyPatch) -> set[torch.dtype]:
    """Record the dtype of every estimate the evaluation decodes (through its one entry to the
    schemes' decoders); returns the set, filled as the evaluation runs."""
    dtypes: set[torch.dtype] = set()
    original = evaluation_module._decode

    def spy(scheme, outputs, available):
        result = original(scheme, outputs, available)
        dtypes.add(result[0].dtype)
        return result

    monkeypatch.setattr(evaluation_module, "_decode", spy)
    return dtypes
