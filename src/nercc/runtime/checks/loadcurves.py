"""Load-curve settings of a load test (``nercc.loadtest``): the offered rates, the trials, the
saturation rule."""

from __future__ import annotations

from omegaconf import DictConfig

from nercc.runtime.checks.readers import as_list, get, integer, is_number, number
from nercc.utils.errors import ConfigError

__all__ = ["check_load_curves", "load_rates"]


def check_load_curves(cfg: DictConfig) -> None:
    """Check the load-curve keys of a load-test config.

    ``loadtest.rates`` is null (one rate: ``loadtest.rate``) or a non-empty list of distinct
    finite numbers > 0 (queries per second); ``loadtest.trials`` an integer >= 1;
    ``loadtest.saturation_factor`` a finite number > 1 (the multiple of the lowest rate's median
    latency past which a scheme counts as saturated). A config without these keys means one
    rate, one trial and a factor of 3.

    Raises
    ------
    ConfigError
        One line naming the key, e.g. ``loadtest.rates: must be null or a non-empty list of
        distinct numbers > 0 (queries per second), got [20, 0]``.
    """
    value = get(cfg, "loadtest.rates", None)
    if value is not None:
        items = as_list(value)
        what = "must be null or a non-empty list of distinct numbers > 0 (queries per second)"
        if not items or not all(is_number(r) and r > 0 for r in items):
            raise ConfigError("loadtest.rates", what, value)
        if len({float(r) for r in items}) != len(items):
            raise ConfigError("loadtest.rates", f"{what}: no rate twice", value)
    integer(cfg, "loadtest.trials", 1, default=1)
    number(cfg, "loadtest.saturation_factor", 1.0, low_open=True, default=3.0)


def load_rates(cfg: DictConfig) -> list[float]:
    """The offered rates of a checked load-test config, ascending: ``loadtest.rates``, or
    ``[loadtest.rate]`` when it is null (or absent)."""
    value = get(cfg, "loadtest.rates", None)
    if value is None:
        return [float(get(cfg, "loadtest.rate"))]
    return sorted(float(r) for r in value)
