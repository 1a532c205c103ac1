"""What every scheme that screens its answers shares (RobustNeRCC, RobustBACC, LocatingBACC).

Such a scheme drops, per pattern, the answers it judges adversarial and decodes the rest with its
plain decoder: :meth:`ScreeningScheme._flag` says which answers to drop (a subclass's own rule),
and this class turns that into ``decode_each_flagged`` and every other decoding method (through
:meth:`nercc.coding.CodingScheme._decode_each_flagged`), and adds the cut ``screen`` to the
scheme's parameters, description and decoder key.
"""

from __future__ import annotations

import math
import numbers
from abc import abstractmethod
from typing import Any, ClassVar

import numpy as np

from nercc.coding import arrays
from nercc.coding.base import CodingScheme
from nercc.coding.params import Tunable

__all__ = ["ScreeningScheme", "check_screen", "screen_tunable"]


def check_screen(value: object) -> float:
    """Return the screening multiplier as a float if it is a finite number > 0.

    Raises
    ------
    ValueError
        Naming ``screen`` and the value it got.
    """
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        number = float(value)
        if math.isfinite(number) and number > 0:
            return number
    raise ValueError(f"screen must be a finite number > 0, got {value!r}")


def screen_tunable(meaning: str) -> Tunable:
    """Return the declaration of a screening scheme's cut ``screen``: a number > 0 on a log
    scale, searched in [3, 30], grid 5, 8, 15, one value for every pattern; ``meaning`` says what
    the cut compares."""
    return Tunable(
        name="screen",
        side="decoder",
        meaning=meaning,
        low=0.0,
        low_open=True,
        log=True,
        search=(3.0, 30.0),
        grid=(5.0, 8.0, 15.0),
        per_pattern="never",
    )


class ScreeningScheme(CodingScheme):
    """A scheme that drops the answers :meth:`_flag` rejects and decodes the rest plainly.

    A subclass sets ``screen`` (with :func:`check_screen`), declares it among its tunables and
    ``reported``, and implements :meth:`_flag`; it comes before its plain scheme in the bases
    (``class RobustBACC(..., BACC)``), whose decoder then decodes what is left.
    """

    screens: ClassVar[bool] = True
    screen: float

    @abstractmethod
    def _flag(self, values: np.ndarray, available: np.ndarray) -> np.ndarray:
        """The answers to drop (P, N) of float64 ``values`` (P, N, M) and patterns (P, N),
        always within ``available``."""

    def _decode_each_flagged(
        self, outputs: Any, available: np.ndarray, with_params: bool
    ) -> tuple[Any, dict[str, np.ndarray], np.ndarray]:
        flagged = self._flag(arrays.as_float64(outputs), available)
        estimates, params = self._decode_each(outputs, available & ~flagged, with_params)
        if with_params:
            params = {k: v for k, v in params.items() if k != "screen"}
            params["screen"] = np.full(available.shape[0], self.screen)
        return estimates, params, flagged

    def params(self) -> dict[str, float]:
        return {**super().params(), "screen": self.screen}

    def decoder_key(self) -> tuple[Any, ...]:
        # What is flagged depends on the outputs (summed over the output coordinates): outputs of
        # other encoders decoded side by side would join it, so the key keeps every setting.
        return CodingScheme.decoder_key(self)

    def _describe(self) -> dict[str, Any]:
        return {**super()._describe(), "screen": self.screen}
