"""The command-line runtime under every task: Hydra resolvers, the jobs' logging filter, run
folders and their ``FAILED`` marker, signals, the task wrapper, the multirun table and the config
checks.

Modules: :mod:`~nercc.runtime.resolvers` (``nercc_*`` resolvers, registered once on import),
:mod:`~nercc.runtime.logs`, :mod:`~nercc.runtime.run_folders`, :mod:`~nercc.runtime.signals`,
:mod:`~nercc.runtime.wrapper` (:func:`~nercc.runtime.wrapper.task_wrapper`),
:mod:`~nercc.runtime.multirun` (the Hydra callback) and :mod:`~nercc.runtime.checks`.
"""
