"""One validation pass over a composed config, before any data, model or heavy import.

Every task (``nercc.tasks.*``) calls its ``check_*`` function first. A bad setting raises
:class:`ConfigError`, a ``ValueError`` whose message is ``<config key>: <what is wrong>, got
<value>``; the task wrapper prints it as one line ``error: ...`` and exits 1. The checks cover
types and ranges, the settings against each other (N >= K, integer S < N, the straggler model
against the S list, equal cost for the baselines), the logger's needs, the output and
publishing folders, and a memory estimate of the coded evaluation. What needs torch or the data
(the hardware, batches against processes) is in :func:`check_hardware` and :func:`check_batches`,
called after the imports they need.

Facts are read from their owners, not restated: a straggler or delay model's settings from its
class (``settings``, :class:`nercc.stragglers.Setting`, located by the node's ``_target_``),
a dataset's format from :data:`nercc.data.sources.FORMATS`, the point layouts from
:data:`nercc.coding.points.LAYOUTS`.

Modules: :mod:`~nercc.runtime.checks.readers` (one key each), ``common``, ``schemes``,
``evaluation``, ``tuning``, ``training`` and ``serving``; they import only the standard library,
OmegaConf and numpy-level code.
"""

from nercc.runtime.checks.common import (
    ACCELERATORS,
    PRECISIONS,
    check_batches,
    check_checkpoint_exists,
    check_data,
    check_hardware,
    check_loggers,
    check_seed,
    check_trainer,
    check_writable,
    expected_input,
)
from nercc.runtime.checks.evaluation import (
    available_memory_bytes,
    check_eval,
    coded_memory_bytes,
    coded_memory_terms,
)
from nercc.runtime.checks.readers import (
    MISSING,
    as_list,
    boolean,
    bounds_text,
    choice,
    get,
    integer,
    integer_list,
    is_int,
    is_number,
    number,
)
from nercc.runtime.checks.schemes import (
    AUTO_MEANING,
    check_schemes,
    check_straggler_node,
    declared_tunables,
    model_settings,
)
from nercc.runtime.checks.serving import (
    ENDPOINT_CPUS,
    LOOPBACK,
    check_loadtest,
    check_serve,
    served_schemes,
)
from nercc.runtime.checks.training import (
    check_model_input,
    check_train,
)
from nercc.runtime.checks.tuning import (
    check_tune,
)
from nercc.utils.errors import ConfigError

__all__ = [
    "ACCELERATORS",
    "AUTO_MEANING",
    "ConfigError",
    "ENDPOINT_CPUS",
    "LOOPBACK",
    "MISSING",
    "PRECISIONS",
    "as_list",
    "available_memory_bytes",
    "boolean",
    "bounds_text",
    "check_batches",
    "check_checkpoint_exists",
    "check_data",
    "check_eval",
    "check_hardware",
    "check_loadtest",
    "check_loggers",
    "check_model_input",
    "check_schemes",
    "check_seed",
    "check_serve",
    "check_straggler_node",
    "check_train",
    "check_trainer",
    "check_tune",
    "check_writable",
    "choice",
    "coded_memory_bytes",
    "coded_memory_terms",
    "declared_tunables",
    "expected_input",
    "get",
    "integer",
    "integer_list",
    "is_int",
    "is_number",
    "model_settings",
    "number",
    "served_schemes",
]
