"""The tasks: one module per command, each ``task(cfg) -> (metrics, objects)``.

``python -m nercc.<task>`` is a short ``@hydra.main`` shim over one of these; tests and other
tasks call them directly, with a composed config and without Hydra's global state.
"""

import nercc.runtime.resolvers  # noqa: F401  (registers the nercc_* resolvers the configs use)
