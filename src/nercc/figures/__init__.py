"""The paper's figures from the project's own evaluations: ``python -m nercc.figures``.

Each figure is a config (``conf/figure/<name>.yaml``) listing ``nercc.eval`` runs (overrides and
labels), the kind of plot (:data:`~nercc.figures.specs.KINDS`) and per-model settings; a figure
is the merge of its runs' rows, so that every number in it comes from one
``python -m nercc.eval ...`` command written beside it (summary.md, the data files).

This package is the library layer below the tasks (it imports no task):

- :mod:`nercc.figures.specs`: reading and checking the configs, expanding them into runs;
- :mod:`nercc.figures.plots`: the plots and the convergence slopes;
- :mod:`nercc.figures.adversarial`: A(N) = round(N^a) and the theory's slope of the figures
  under adversarial (Byzantine) workers;
- :mod:`nercc.figures.summary`: summary.md and summary.json.

The task itself (compose, evaluate, draw) is :func:`nercc.tasks.figures.make_figures`.
"""

from nercc.figures.specs import check_figures, plan_runs

__all__ = ["check_figures", "plan_runs"]
