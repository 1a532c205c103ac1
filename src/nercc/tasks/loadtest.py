"""The load-test task (``python -m nercc.loadtest``): Poisson load to each scheme, same workers.

Starts Ray and N worker actors once, then for each trial, each offered rate (``loadtest.rates``,
or ``[loadtest.rate]``) and each scheme of ``loadtest.schemes`` sends ``loadtest.num_queries``
test images at that rate to the frontend in this process or through HTTP. Each (rate, trial)
writes ``latency.csv``, ``summary.json`` and ``latency_cdf.png``: in the run folder
(``paths.output_dir``) when there is one of each, else in ``rate_<r>/trial_<t>/``. The load curves
(:func:`nercc.serving.load.aggregate_trials`, :func:`nercc.serving.load.saturation_points`) go to
``load_curves.csv``, ``load_curves.json`` and ``gap_vs_rate.png`` in the run folder.
"""

from __future__ import annotations

import logging
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from nercc.runtime.checks import check_loadtest, expected_input
from nercc.runtime.checks.loadcurves import check_load_curves, load_rates
from nercc.runtime.loggers import log_run
from nercc.serving.plan import model_loader, serving_plan, table_warnings
from nercc.tasks.setup import load_task_inputs
from nercc.utils.instantiate import build_all, plain

__all__ = ["loadtest"]

log = logging.getLogger("nercc.loadtest")  # the command's name in its log file

#: The summary keys shown in the printed table, with their headers.
COLUMNS = {
    "p50_ms": "p50 ms", "p90_ms": "p90 ms", "p99_ms": "p99 ms", "p99_9_ms": "p99.9 ms",
    "throughput_qps": "q/s", "accuracy": "accuracy", "agreement": "agreement",
    "sent": "sent", "answered": "answered", "failed": "failed",
}  # fmt: skip

#: How the load curves' spread is taken (said in load_curves.json).
SPREAD = "min-max over the trials"
#: Group numbers per trial: trial t's frontends number their groups from t x this (a load of
#: far fewer groups), so that no two trials draw the same worker delays.
TRIAL_GROUPS = 1_000_000

#: The saturation rule, as load_curves.json states it.
SATURATION_RULE = (
    "the lowest offered rate whose mean p50 exceeds saturation_factor x the mean p50 at the "
    "lowest rate (a rate with nothing answered counts as saturated); null: not reached"
)


@dataclass
class LoadRun:
    """One (rate, trial): every scheme's load at ``rate`` with arrivals seeded by ``seed``."""

    rate: float
    trial: int
    seed: int
    records: list
    summaries: dict[str, dict[str, Any]]


def loadtest(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run the load test of ``cfg``: each scheme's load at each rate, each trial, on the same
    workers, its files written and its table printed.

    Parameters
    ----------
    cfg : DictConfig
        A load-test config (conf/loadtest.yaml), checked here first.

    Returns
    -------
    summary : dict
        With one rate and one trial, ``settings`` (the run's) and ``schemes`` (name to its
        latency summary), as written to ``summary.json``; otherwise what ``load_curves.json``
        holds: ``settings``, ``curves`` (one aggregated row per scheme and rate) and
        ``saturation`` (scheme to its saturation rate, or None).
    objects : dict
        ``plan`` (the :class:`~nercc.serving.plan.ServingPlan`), ``records`` (one
        :class:`~nercc.serving.load.QueryRecord` per query, scheme, rate and trial), ``runs``
        (the :class:`LoadRun` of each rate and trial), ``curves`` (what ``load_curves.json``
        holds) and ``classifier``.
    """
    check_loadtest(cfg)
    check_load_curves(cfg)
    if cfg.loadtest.target == "http" and cfg.serving.address is None:
        from nercc.serving.address import check_bind

        check_bind(cfg.serving.host, int(cfg.serving.port))
    plan = serving_plan(cfg, list(cfg.loadtest.schemes))
    import torch

    loaded = load_task_inputs(cfg, hardware=False, seed=False)
    checkpoint, classifier = loaded.checkpoint, loaded.classifier
    images, labels = _queries(loaded.data, cfg.loadtest.split, int(cfg.loadtest.num_queries))
    with torch.inference_mode():
        base = classifier(torch.from_numpy(images)).argmax(dim=1).numpy()
    for note in plan.notes:
        log.info(f"note: {note}")
    for warning in table_warnings(plan, checkpoint, classifier.info["sha256"]):
        log.warning(warning)
    plan.check_parity_models(classifier)
    plan.arrange_with(cfg, loaded.data)
    runs = _run(cfg, plan, images, labels, base)
    summary, curves = _report(cfg, plan, runs, classifier.info)
    records = [record for run in runs for record in run.records]
    objects = {"plan": plan, "records": records, "runs": runs, "curves": curves}
    return summary, objects | {"classifier": classifier}


def _queries(data: Any, split: str, count: int) -> tuple[Any, Any]:
    """The first ``count`` images (float32, in [0, 1]) and labels of the split."""
    import numpy as np

    raw = data.raw_set(split)
    images, labels = raw.tensors
    if count > len(labels):
        from nercc.utils.errors import ConfigError

        raise ConfigError(
            "loadtest.num_queries", f"the {split} split has only {len(labels)} images", count
        )
    return (
        np.ascontiguousarray(images[:count].numpy(), dtype=np.float32),
        labels[:count].numpy(),
    )


def _run(cfg: DictConfig, plan: Any, images: Any, labels: Any, base: Any) -> list[LoadRun]:
    from nercc.serving import (
        freeze_startup_heap,
        poisson_arrivals,
        ray_cluster,
        start_workers,
        stop_workers,
    )

    serving, load = cfg.serving, cfg.loadtest
    rates, trials = load_rates(cfg), int(load.get("trials", 1))
    runs: list[LoadRun] = []
    # over HTTP each image travels as PNG: encoded once for every scheme
    bodies = [_png(image) for image in images] if load.target == "http" else None

    def read(record: Any, answer: Any) -> None:
        if isinstance(answer, dict):  # HTTP
            record.prediction, record.group = int(answer["class"]), int(answer["group"])
            record.answered_by = len(answer["workers"])
            record.failed_workers = len(answer["failed_workers"])
            record.underdetermined = bool(answer["underdetermined"])
            workers, flagged = answer["workers"], answer["flagged_workers"]
            excluded = answer["excluded_workers"]
        else:
            record.prediction, record.group = answer.prediction, answer.group
            record.answered_by, record.failed_workers = len(answer.workers), len(answer.failed)
            record.underdetermined = answer.underdetermined
            workers, flagged, excluded = answer.workers, answer.flagged, answer.excluded
        record.workers = " ".join(str(w) for w in workers)
        record.flagged = " ".join(str(w) for w in flagged)
        record.excluded = " ".join(str(w) for w in excluded)

    with ray_cluster(serving.address, serving.num_cpus):
        log.info(f"starting {plan.num_workers} workers")
        workers = start_workers(
            model_loader(cfg, expected_input(cfg)),
            plan.num_workers,
            plan.delays,
            int(cfg.seed),
            serving.worker_cpus,
            adversary=plan.adversary,
            adversaries=plan.adversaries,
            extra_models=plan.extra_models(),
        )
        freeze_startup_heap()
        try:
            # trials outermost: a machine that slows down for a while touches every rate
            for trial in range(trials):
                seed = int(cfg.seed) + trial
                for rate in rates:
                    arrivals = poisson_arrivals(len(labels), rate, seed)
                    run = LoadRun(rate, trial, seed, [], {})
                    for name in plan.schemes:
                        records, summary = _scheme_load(
                            cfg, plan, name, workers, images, labels, base, bodies, arrivals,
                            read, run,
                        )  # fmt: skip
                        run.records += records
                        run.summaries[name] = summary
                    runs.append(run)
        finally:
            stop_workers(workers)
    return runs


def _scheme_load(
    cfg: DictConfig, plan: Any, name: str, workers: list, images: Any, labels: Any, base: Any,
    bodies: list[bytes] | None, arrivals: Any, read: Any, run: LoadRun,
) -> tuple[list, dict[str, Any]]:  # fmt: skip
    """One scheme's load of ``run`` (every worker up first): its records and its summary."""
    from nercc.serving import flag_summary, latency_summary, wait_ready

    load = cfg.loadtest
    # every worker up (a killed one restarted) before the next scheme's load
    wait_ready(workers)
    scheme, policy = plan.schemes[name], plan.policies[name]
    trial = f", trial {run.trial} (seed {run.seed})" if _many(cfg) else ""
    log.info(
        f"{name}: {len(labels)} queries at {run.rate:g}/s to the {load.target}{trial} "
        f"(K={scheme.num_inputs}, N={scheme.num_workers})"
    )
    done, kills, counts = _one_scheme(
        cfg, plan, name, scheme, policy, workers, images, bodies, arrivals, read, run.seed,
        run.trial,
    )  # fmt: skip
    for record in done:
        record.label = int(labels[record.query])
        record.base_prediction = int(base[record.query])
    liars = [w for w in plan.adversaries if w < scheme.num_workers]
    summary = (
        latency_summary(done)
        | {"kills": kills, "adversarial_workers": liars}
        | flag_summary(done, scheme.num_workers, liars)
        | {"exclusions": counts["exclusions"]}
        | _hedges(counts["hedging"])
    )
    if summary["failed"] or summary["pending"]:
        log.warning(f"{name}: {summary['failed']} queries failed, {summary['pending']} unanswered")
    return done, summary


def _many(cfg: DictConfig) -> bool:
    """Whether the load test has more than one rate or trial (one folder each)."""
    return len(load_rates(cfg)) > 1 or int(cfg.loadtest.get("trials", 1)) > 1


def _one_scheme(
    cfg: DictConfig, plan: Any, name: str, scheme: Any, policy: Any, workers: list, images: Any,
    bodies: list[bytes] | None, arrivals: Any, read: Any, seed: int, trial: int = 0,
) -> tuple[list, int | None, dict[str, Any]]:  # fmt: skip
    """The records of one scheme's load, how many workers it killed (fault injection; None
    over HTTP, where the frontend lives in the Serve replica), and the frontend's exclusions of
    lying workers (``exclusions``: ``{"group", "worker"}`` each, warm-up groups included).
    ``seed`` (the trial's) draws the killed workers; the trial's groups are numbered from
    ``trial * TRIAL_GROUPS``, so that each trial draws other worker delays (a worker seeds its
    delay by (run seed, worker, group)) and trial 0 draws those of a one-trial run."""
    from nercc.serving import Frontend, run_load

    serving, load = cfg.serving, cfg.loadtest
    options = plan.frontend_options(cfg, name) | {"seed": seed, "first_group": trial * TRIAL_GROUPS}
    warmup = int(load.warmup)
    if load.target == "frontend":
        with Frontend(
            workers, scheme, name, policy, image_shape=images.shape[1:], **options
        ) as frontend:
            for i in range(warmup):  # not recorded: Ray's paths, worker threads, decoders
                frontend.predict(images[i % len(images)], timeout=load.timeout_s)
            records = run_load(
                lambda i: frontend.submit(images[i]), arrivals, name, read, load.timeout_s
            )
        return (
            records,
            len(frontend.killed),
            _exclusions(frontend.exclusions) | {"hedging": frontend.hedge_summary()},
        )
    from nercc.serving.endpoint import http_endpoint

    stats: dict[str, Any] = {}
    with (
        http_endpoint(
            workers, scheme, name, policy, expected_input(cfg)["image_shape"],
            host=serving.host, port=serving.port, shutdown=serving.address is None,
            stats=stats, **options,
        ) as url,
        ThreadPoolExecutor(64, thread_name_prefix="client") as pool,
    ):  # fmt: skip
        assert bodies is not None
        for i in range(warmup):
            _post(f"{url}/predict", bodies[i % len(bodies)], load.timeout_s)
        records = run_load(
            lambda i: pool.submit(_post, f"{url}/predict", bodies[i], load.timeout_s),
            arrivals,
            name,
            read,
            load.timeout_s,
        )
    return (
        records,
        None,
        _exclusions(stats.get("exclusions", [])) | {"hedging": stats.get("hedging", {})},
    )


def _hedges(hedging: dict[str, Any]) -> dict[str, Any]:
    """The hedged requests of a scheme's load (None for a scheme that does not hedge: every
    scheme has the keys, so that summary tables keep their columns)."""
    return {
        "hedges": hedging.get("hedges"),
        "hedge_fraction": hedging.get("hedge_fraction"),
        "hedge_after_ms": hedging.get("hedge_after_ms"),
        "hedging": hedging or None,
    }


def _exclusions(pairs: Any) -> dict[str, list[dict[str, int]]]:
    return {"exclusions": [{"group": int(g), "worker": int(w)} for g, w in pairs]}


def _png(image: Any) -> bytes:
    from nercc.serving.images import image_to_png

    return image_to_png(image)


def _post(url: str, body: bytes, timeout: float) -> dict[str, Any]:
    import json
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, data=body, headers={"Content-Type": "image/png"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        reason = error.read().decode(errors="replace")
        raise RuntimeError(f"HTTP {error.code}: {reason}") from None


def _settings(cfg: DictConfig, plan: Any) -> dict[str, Any]:
    """The settings every (rate, trial) of the run shares, as ``summary.json`` states them."""
    from nercc.serving.workers import slow_workers

    return {
        "model": cfg.model_name,
        "dataset": cfg.data.name,
        "num_inputs": int(cfg.coding.num_inputs),
        "num_workers": int(cfg.coding.num_workers),
        "num_stragglers": int(cfg.serving.num_stragglers),
        "deadline_ms": cfg.serving.deadline_ms,
        "max_wait_ms": float(cfg.serving.max_wait_ms),
        "order": str(cfg.coding.get("order", "none")),
        "grouping": str(cfg.coding.get("grouping", "arrival")),
        "buffer": int(cfg.serving.get("buffer", 1)),
        "kill_every": cfg.serving.kill_every,
        "delay": plain(cfg)["delay"],
        "target": cfg.loadtest.target,
        "rate": float(load_rates(cfg)[0]),
        "num_queries": int(cfg.loadtest.num_queries),
        "warmup": int(cfg.loadtest.warmup),
        "seed": int(cfg.seed),
        "params": {name: scheme.params() for name, scheme in plan.schemes.items()},
        "workers": {name: scheme.num_workers for name, scheme in plan.schemes.items()},
        "slow_workers": slow_workers(plan.delays, plan.num_workers, int(cfg.seed)),
        "adversaries": list(plan.adversaries),
        "adversary": plain(cfg)["adversary"] if plan.adversaries else None,
        "flag_fraction": float(cfg.serving.flag_fraction),
        "flag_window": int(cfg.serving.flag_window),
        "exclude_groups": int(cfg.serving.exclude_groups),
    }


def _report(
    cfg: DictConfig, plan: Any, runs: list[LoadRun], model_info: dict
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Write each (rate, trial)'s files and the load curves, print the table, log the run.
    Returns the summary :func:`loadtest` returns and the load curves' document."""
    from nercc.serving.load import aggregate_trials, saturation_points, trial_row
    from nercc.serving.plots import plot_gap_vs_rate
    from nercc.utils.io import write_csv, write_json

    out = Path(cfg.paths.output_dir)
    many = _many(cfg)
    shared = _settings(cfg, plan)
    summaries, plots = [], []
    for run in runs:
        settings = shared | {"rate": run.rate}
        if many:
            settings |= {"trial": run.trial, "trial_seed": run.seed}
        folder = out / f"rate_{run.rate:g}" / f"trial_{run.trial}" if many else out
        summary, plot = _write_run(cfg, plan, folder, run, settings, print_table=not many)
        summaries.append(summary)
        plots.append(plot)
    rows = [
        trial_row(name, shared["workers"][name], run.rate, run.trial, run.seed, summary)
        for run in runs
        for name, summary in run.summaries.items()
    ]
    curve = aggregate_trials(rows)
    factor = float(cfg.loadtest.get("saturation_factor", 3.0))
    saturation = saturation_points(curve, factor)
    rates = load_rates(cfg)
    curves = {
        "settings": {k: v for k, v in shared.items() if k != "rate"}
        | {
            "rates": rates,
            "trials": int(cfg.loadtest.get("trials", 1)),
            "trial_seeds": sorted({run.seed for run in runs}),
            "spread": SPREAD,
            "saturation_factor": factor,
            "saturation_rule": SATURATION_RULE,
        },
        "curves": curve,
        "saturation": saturation,
    }
    write_csv(out / "load_curves.csv", rows)
    write_json(out / "load_curves.json", curves)
    title = _title(cfg, plan, shared, ", ".join(f"{r:g}" for r in rates) + " q/s")
    gap_plot = plot_gap_vs_rate(curve, saturation, out / "gap_vs_rate.png", title)
    if many:
        _print_curves(title, curve, saturation)
    _log(cfg, runs, summaries, curves, plots[0], gap_plot, model_info, many)
    log.info(f"results: {out}")
    return (curves if many else summaries[0]), curves


def _title(cfg: DictConfig, plan: Any, settings: dict[str, Any], rates: str) -> str:
    title = (
        f"{cfg.model_name} on {cfg.data.name}: K={settings['num_inputs']}, "
        f"N={settings['num_workers']}, S={settings['num_stragglers']}, "
        f"{rates}, kill_every={settings['kill_every']}"
    )
    if plan.adversaries:
        kind = settings["adversary"]["_target_"].rsplit(".", 1)[-1]
        title += f", adversarial workers {plan.adversaries} ({kind})"
    return title


def _write_run(
    cfg: DictConfig, plan: Any, folder: Path, run: LoadRun, settings: dict[str, Any],
    print_table: bool,
) -> tuple[dict[str, Any], Path]:  # fmt: skip
    """One (rate, trial)'s ``latency.csv``, ``summary.json`` and ``latency_cdf.png`` in
    ``folder`` (and its table printed when asked). Returns the summary and the plot's path."""
    from rich.table import Table

    from nercc.serving.plots import plot_latency_cdf
    from nercc.utils.io import write_csv, write_json

    summaries = run.summaries
    summary = {"settings": settings, "schemes": summaries}
    write_csv(folder / "latency.csv", [r.row() for r in run.records])
    write_json(folder / "summary.json", summary)
    title = _title(cfg, plan, settings, f"{settings['rate']:g} q/s")
    if "trial" in settings:
        title += f", trial {settings['trial']}"
    plot = plot_latency_cdf(run.records, folder / "latency_cdf.png", title)
    if not print_table:
        return summary, plot
    screening = bool(plan.adversaries) or any(s.screens for s in plan.schemes.values())
    table = Table(title=title)
    table.add_column("scheme")
    table.add_column("workers", justify="right")
    for header in COLUMNS.values():
        table.add_column(header, justify="right")
    if screening:
        table.add_column("flagged (groups)")
        table.add_column("excluded (times)")
    hedging = any(row["hedges"] is not None for row in summaries.values())
    if hedging:
        table.add_column("hedges", justify="right")
        table.add_column("hedge ms", justify="right")
    for name, row in summaries.items():
        cells = [_cell(row[k]) for k in COLUMNS]
        if screening:
            cells += [_flagged_cell(row["flagged_by_worker"]), _excluded_cell(row["exclusions"])]
        if hedging:
            hedges = row["hedges"]
            share = f"{hedges} ({row['hedge_fraction']:.1%})" if hedges is not None else "-"
            cells += [share, _cell(row["hedge_after_ms"]) if hedges is not None else "-"]
        table.add_row(name, str(settings["workers"][name]), *cells)
    _print(table)
    return summary, plot


def _print(table: Any) -> None:
    from rich.console import Console

    natural = Console(width=1000).measure(table).maximum  # as wide as the table needs
    Console(width=max(Console().width, natural)).print(table)


def _print_curves(title: str, curve: list[dict], saturation: dict[str, float | None]) -> None:
    """The load curves' table: per (scheme, rate) the means over the trials, [min-max]."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(
        title=escape(f"{title}: mean [min-max] over trials"),
        caption="gap: p99.9 - p50; saturated: at or past the scheme's saturation rate",
    )
    headers = ("scheme", "workers", "rate", "trials", "p50 ms", "p99 ms", "p99.9 ms", "gap ms",
               "q/s", "accuracy", "agreement", "answered", "saturated")  # fmt: skip
    for header in headers:
        table.add_column(header, justify="left" if header == "scheme" else "right")
    for row in curve:
        at = saturation[row["scheme"]]
        table.add_row(
            row["scheme"], str(row["workers"]), f"{row['rate']:g}", str(row["trials"]),
            *(_spread(row, key) for key in ("p50_ms", "p99_ms", "p99_9_ms", "gap_ms",
                                            "throughput_qps", "accuracy", "agreement")),
            f"{row['answered']}/{row['sent']}",
            "not reached" if at is None else ("yes" if row["rate"] >= at else ""),
        )  # fmt: skip
    _print(table)
    for scheme, at in saturation.items():
        print(f"{scheme}: saturates at {at:g} q/s" if at is not None else f"{scheme}: not reached")


def _spread(row: dict[str, Any], key: str) -> str:
    mean, low, high = row[key], row[f"{key}_min"], row[f"{key}_max"]
    if row["trials"] == 1:
        return _cell(mean)
    return f"{_cell(mean)} \\[{_cell(low)}-{_cell(high)}]"  # escaped: rich markup


def _log(
    cfg: DictConfig, runs: list[LoadRun], summaries: list[dict], curves: dict[str, Any],
    cdf: Path, gap_plot: Path, model_info: dict, many: bool,
) -> None:  # fmt: skip
    """Numbers, tables and plots to the loggers: with one rate and one trial the latency
    summary (``latency/<scheme>/<key>``), else the load curves (``load/<scheme>/rate_<r>/<key>``,
    the means, and ``load/<scheme>/saturation_rate``)."""
    config = {**plain(cfg), "classifier": model_info}
    loggers = build_all(cfg.get("logger"))
    if not many:
        _log_one(loggers, config, runs[0].summaries, cdf, gap_plot)
        return
    from nercc.serving.load import CURVE_KEYS

    curve, saturation = curves["curves"], curves["saturation"]
    columns = ["scheme", "workers", "rate", "trials", *CURVE_KEYS]
    log_run(
        loggers,
        config,
        metrics={
            f"load/{row['scheme']}/rate_{row['rate']:g}/{key}": row[key]
            for row in curve
            for key in CURVE_KEYS
        }
        | {f"load/{s}/saturation_rate": r for s, r in saturation.items() if r is not None},
        tables={"load/curves": (columns, [[row[c] for c in columns] for row in curve])},
        images={"load/gap_vs_rate": gap_plot},
        summary={f"load/{s}/saturation_rate": r for s, r in saturation.items()},
    )


def _log_one(loggers: Any, config: dict, summaries: dict, cdf: Path, gap_plot: Path) -> None:
    # numbers to W&B; the per-worker counts as one metric each, the lists stay in summary.json
    # the keys that are numbers (or None) in every scheme's row: one table column each
    first = next(iter(summaries.values()))
    keys = [
        k
        for k in first
        if all(
            isinstance(row.get(k), int | float) or row.get(k) is None for row in summaries.values()
        )
    ]
    scalars = {name: {k: row.get(k) for k in keys} for name, row in summaries.items()}
    flags = {
        f"latency/{name}/flagged/worker_{w}": c
        for name, row in summaries.items()
        for w, c in row["flagged_by_worker"].items()
    }
    columns = ["scheme", *scalars[next(iter(scalars))]]
    log_run(
        loggers,
        config,
        metrics={
            f"latency/{name}/{key}": value
            for name, row in scalars.items()
            for key, value in row.items()
        }
        | flags,
        tables={
            "latency/summary": (columns, [[name, *row.values()] for name, row in scalars.items()])
        },
        images={"latency/cdf": cdf},
    )


def _flagged_cell(counts: dict[str, int]) -> str:
    """The flagged workers by name, most flagged first (at most 4 named): ``worker 2: 480``."""
    ranked = sorted(((c, int(w)) for w, c in counts.items() if c), key=lambda t: (-t[0], t[1]))
    named = ", ".join(f"worker {w}: {c}" for c, w in ranked[:4])
    more = f", +{len(ranked) - 4} more" if len(ranked) > 4 else ""
    return (named + more) or "none"


def _excluded_cell(exclusions: list[dict[str, int]]) -> str:
    """The workers excluded for lying: ``worker 2 (3x, first after group 11)``."""
    first: dict[int, int] = {}
    times: dict[int, int] = {}
    for item in exclusions:
        worker = item["worker"]
        first.setdefault(worker, item["group"])
        times[worker] = times.get(worker, 0) + 1
    named = [f"worker {w} ({times[w]}x, first after group {first[w]})" for w in sorted(first)]
    return ", ".join(named) or "none"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}" if value < 1 else f"{value:.1f}"
    return str(value)
