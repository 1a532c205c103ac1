"""Choosing scheme parameters: grids of variants, the objective of a sweep, published tables."""

from nercc.tuning.grid import TABLE_KEY, expand_schemes
from nercc.tuning.objective import check_objective, objective_value
from nercc.tuning.planning import scheme_tables
from nercc.tuning.tables import ParamTable, load_table, publish_table, resolve_table, table_path

__all__ = [
    "TABLE_KEY",
    "ParamTable",
    "check_objective",
    "expand_schemes",
    "load_table",
    "objective_value",
    "publish_table",
    "resolve_table",
    "scheme_tables",
    "table_path",
]
