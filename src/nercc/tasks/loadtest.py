"""The load-test task (``python -m nercc.loadtest``): Poisson load to each scheme, same workers.

Starts Ray and N worker actors once, then for each scheme of ``loadtest.schemes`` sends
``loadtest.num_queries`` test images at ``loadtest.rate`` per second to the frontend in this
process or through HTTP, and writes ``latency.csv``, ``summary.json`` and ``latency_cdf.png`` in
the run folder (``paths.output_dir``).
"""

from __future__ import annotations

import logging
import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from nercc.runtime.checks import check_loadtest, expected_input
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


def loadtest(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run the load test of ``cfg``: each scheme's load on the same workers, its files written
    and its table printed.

    Parameters
    ----------
    cfg : DictConfig
        A load-test config (conf/loadtest.yaml), checked here first.

    Returns
    -------
    summary : dict
        ``settings`` (the run's) and ``schemes`` (name to its latency summary), as written to
        ``summary.json``.
    objects : dict
        ``plan`` (the :class:`~nercc.serving.plan.ServingPlan`), ``records`` (one
        :class:`~nercc.serving.load.QueryRecord` per query and scheme) and ``classifier``.
    """
    check_loadtest(cfg)
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
    records, summaries = _run(cfg, plan, images, labels, base)
    summary = _report(cfg, plan, records, summaries, classifier.info)
    return summary, {"plan": plan, "records": records, "classifier": classifier}


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


def _run(cfg: DictConfig, plan: Any, images: Any, labels: Any, base: Any) -> tuple[list, dict]:
    from nercc.serving import (
        flag_summary,
        freeze_startup_heap,
        latency_summary,
        poisson_arrivals,
        ray_cluster,
        start_workers,
        stop_workers,
        wait_ready,
    )

    serving, load = cfg.serving, cfg.loadtest
    arrivals = poisson_arrivals(len(labels), float(load.rate), int(cfg.seed))
    records: list = []
    summaries: dict[str, dict[str, Any]] = {}
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
        )
        freeze_startup_heap()
        try:
            for name in plan.schemes:
                # every worker up (a killed one restarted) before the next scheme's load
                wait_ready(workers)
                scheme, policy = plan.schemes[name], plan.policies[name]
                log.info(
                    f"{name}: {len(labels)} queries at {load.rate}/s to the {load.target} "
                    f"(K={scheme.num_inputs}, N={scheme.num_workers})"
                )
                done, kills, counts = _one_scheme(
                    cfg, plan, name, scheme, policy, workers, images, bodies, arrivals, read
                )
                for record in done:
                    record.label = int(labels[record.query])
                    record.base_prediction = int(base[record.query])
                records += done
                liars = [w for w in plan.adversaries if w < scheme.num_workers]
                summaries[name] = (
                    latency_summary(done)
                    | {"kills": kills, "adversarial_workers": liars}
                    | flag_summary(done, scheme.num_workers, liars)
                    | {"exclusions": counts["exclusions"]}
                )
                if summaries[name]["failed"] or summaries[name]["pending"]:
                    log.warning(
                        f"{name}: {summaries[name]['failed']} queries failed, "
                        f"{summaries[name]['pending']} unanswered"
                    )
        finally:
            stop_workers(workers)
    return records, summaries


def _one_scheme(
    cfg: DictConfig, plan: Any, name: str, scheme: Any, policy: Any, workers: list, images: Any,
    bodies: list[bytes] | None, arrivals: Any, read: Any,
) -> tuple[list, int | None, dict[str, Any]]:  # fmt: skip
    """The records of one scheme's load, how many workers it killed (fault injection; None
    over HTTP, where the frontend lives in the Serve replica), and the frontend's exclusions of
    lying workers (``exclusions``: ``{"group", "worker"}`` each, warm-up groups included)."""
    from nercc.serving import Frontend, run_load

    serving, load = cfg.serving, cfg.loadtest
    options = plan.frontend_options(cfg)
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
        return records, len(frontend.killed), _exclusions(frontend.exclusions)
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
    return records, None, _exclusions(stats.get("exclusions", []))


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


def _report(
    cfg: DictConfig, plan: Any, records: list, summaries: dict, model_info: dict
) -> dict[str, Any]:
    from rich.console import Console
    from rich.table import Table

    from nercc.serving.plots import plot_latency_cdf
    from nercc.serving.workers import slow_workers
    from nercc.utils.io import write_csv, write_json

    out = Path(cfg.paths.output_dir)
    settings = {
        "model": cfg.model_name,
        "dataset": cfg.data.name,
        "num_inputs": int(cfg.coding.num_inputs),
        "num_workers": int(cfg.coding.num_workers),
        "num_stragglers": int(cfg.serving.num_stragglers),
        "deadline_ms": cfg.serving.deadline_ms,
        "max_wait_ms": float(cfg.serving.max_wait_ms),
        "kill_every": cfg.serving.kill_every,
        "delay": plain(cfg)["delay"],
        "target": cfg.loadtest.target,
        "rate": float(cfg.loadtest.rate),
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
    summary = {"settings": settings, "schemes": summaries}
    write_csv(out / "latency.csv", [r.row() for r in records])
    write_json(out / "summary.json", summary)
    title = (
        f"{cfg.model_name} on {cfg.data.name}: K={settings['num_inputs']}, "
        f"N={settings['num_workers']}, S={settings['num_stragglers']}, "
        f"{settings['rate']:g} q/s, kill_every={settings['kill_every']}"
    )
    if plan.adversaries:
        kind = settings["adversary"]["_target_"].rsplit(".", 1)[-1]
        title += f", adversarial workers {plan.adversaries} ({kind})"
    screening = bool(plan.adversaries) or any(s.screens for s in plan.schemes.values())
    plot = plot_latency_cdf(records, out / "latency_cdf.png", title)
    table = Table(title=title)
    table.add_column("scheme")
    table.add_column("workers", justify="right")
    for header in COLUMNS.values():
        table.add_column(header, justify="right")
    if screening:
        table.add_column("flagged (groups)")
        table.add_column("excluded (times)")
    for name, row in summaries.items():
        cells = [_cell(row[k]) for k in COLUMNS]
        if screening:
            cells += [_flagged_cell(row["flagged_by_worker"]), _excluded_cell(row["exclusions"])]
        table.add_row(name, str(settings["workers"][name]), *cells)
    natural = Console(width=1000).measure(table).maximum  # as wide as the table needs
    Console(width=max(Console().width, natural)).print(table)
    # numbers to W&B; the per-worker counts as one metric each, the lists stay in summary.json
    scalars = {
        name: {k: v for k, v in row.items() if isinstance(v, int | float) or v is None}
        for name, row in summaries.items()
    }
    flags = {
        f"latency/{name}/flagged/worker_{w}": c
        for name, row in summaries.items()
        for w, c in row["flagged_by_worker"].items()
    }
    columns = ["scheme", *scalars[next(iter(scalars))]]
    log_run(
        build_all(cfg.get("logger")),
        {**plain(cfg), "classifier": model_info},
        metrics={
            f"latency/{name}/{key}": value
            for name, row in scalars.items()
            for key, value in row.items()
        }
        | flags,
        tables={
            "latency/summary": (columns, [[name, *row.values()] for name, row in scalars.items()])
        },
        images={"latency/cdf": plot},
    )
    log.info(f"results: {out}")
    return summary


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
