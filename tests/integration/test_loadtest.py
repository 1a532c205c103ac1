"""The serving commands: bad configs refused at once, and a whole load test on a tiny setup.

The tests that need Ray share one instance (``ray_session``, from the serving tests)."""

from __future__ import annotations

import csv
import json
import logging
import socket
import subprocess
import sys
import time

import pytest
import wandb

from tests.integration.test_serving import (  # noqa: F401 (fixtures)
    free_port,
    nothing_left_running,
    ray_session,
    shared_ray,
)
from tests.wandb_offline import run_contents

pytest.importorskip("ray", reason="the serve extra (ray[serve]) is installed by make test")


@pytest.mark.parametrize(
    ("module", "args", "message"),
    [
        ("serve", ["serving.scheme=mds"],
         "error: serving.scheme: must be one of uncoded, hedged, nercc, bacc, replication, "
         "got 'mds'"),
        ("serve", ["serving.num_stragglers=12"],
         "error: serving.num_stragglers: must be an integer >= 0 and <= 11, got 12"),
        ("serve", ["serving.port=abc"],
         "error: serving.port: must be an integer >= 1 and <= 65535, got 'abc'"),
        ("serve", ["delay.shape=0"], "error: delay.shape: must be a finite number > 0, got 0"),
        ("serve", ["scheme.nercc.lam_dec=gcv"], "error: scheme.nercc.lam_dec: serving takes a"),
        ("serve", ["coding.num_workers=10", "serving.scheme=replication"],
         "error: scheme.replication.replicas: equal cost needs replicas x K"),
        ("loadtest", ["loadtest.rate=0"],
         "error: loadtest.rate: must be a finite number > 0, got 0"),
        ("loadtest", ["loadtest.schemes=[nercc,nercc]"],
         "error: loadtest.schemes: must not repeat a scheme, got ['nercc', 'nercc']"),
        ("loadtest", ["loadtest.target=grpc"],
         "error: loadtest.target: must be one of frontend, http, got 'grpc'"),
        ("loadtest", ["serving.kill_every=0"],
         "error: serving.kill_every: must be null or an integer >= 1, got 0"),
        ("loadtest", ["data=synthetic", "loadtest.num_queries=300"],
         "error: loadtest.num_queries: the test split of synthetic has 256 images, got 300"),
        ("loadtest", ["loadtest.rates=[50,0]"],
         "error: loadtest.rates: must be null or a non-empty list of distinct numbers > 0"),
        ("loadtest", ["loadtest.trials=0"],
         "error: loadtest.trials: must be an integer >= 1, got 0"),
    ],
)  # fmt: skip
def test_bad_settings_fail_at_once_in_one_line(module, args, message, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", f"nercc.{module}", *args, f"hydra.run.dir={tmp_path / 'run'}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), result.stderr
    assert not (tmp_path / "run").exists()


def test_serve_refuses_a_port_in_use_in_one_line_before_ray_starts(tmp_path):
    """The check itself is in tests/unit/serving/test_endpoint.py; here the command's line."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        start = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "nercc.serve", f"serving.port={port}",
             f"hydra.run.dir={tmp_path / 'run'}"],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        took = time.monotonic() - start
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines == [f"error: serving.port: 127.0.0.1:{port} is already in use, got {port}"], (
        result.stderr
    )
    assert "Ray" not in result.stdout + result.stderr  # refused before Ray started
    print(f"refused in {took:.1f} s")  # (no timing threshold: the machine may be busy)


def test_serve_refuses_a_nan_checkpoint_in_one_line_before_ray_starts(checkpoints, tmp_path):
    """The driver reads the checkpoint before Ray starts: no worker fails to start with it."""
    import torch

    payload = torch.load(checkpoints / "lenet5_synthetic.ckpt", weights_only=True)

    def poison(value):
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            return torch.full_like(value, float("nan"))
        if isinstance(value, dict):
            return {key: poison(item) for key, item in value.items()}
        return value

    folder = tmp_path / "published"
    folder.mkdir()
    torch.save(poison(payload), folder / "lenet5_synthetic.ckpt")
    result = subprocess.run(
        [sys.executable, "-m", "nercc.serve", "data=synthetic", f"paths.checkpoint_dir={folder}",
         f"serving.port={free_port()}", f"hydra.run.dir={tmp_path / 'run'}"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: checkpoint"), result.stderr
    assert "not finite" in lines[0], lines[0]
    assert "Ray" not in result.stdout + result.stderr  # refused before Ray started


@pytest.mark.usefixtures("ray_session")
def test_loadtest_compares_the_four_schemes_and_writes_its_results(
    compose_config, checkpoints, tmp_path
):
    from nercc.tasks.loadtest import loadtest

    cfg = compose_config(
        "loadtest",
        [
            "data=synthetic",
            f"paths.checkpoint_dir={checkpoints}",
            "coding.num_inputs=2",
            "coding.num_workers=6",
            "serving.num_stragglers=2",
            "serving.max_wait_ms=2",
            "delay=shifted_exponential",
            "delay.shift=1",
            "delay.rate=0.5",
            "loadtest.num_queries=40",
            "loadtest.warmup=2",
            "loadtest.rate=200",
            "loadtest.schemes=[uncoded,hedged,replication,bacc,nercc]",
            "logger=wandb",
        ],
    )
    summary, _ = loadtest(cfg)
    wandb.finish()  # as the CLI's task wrapper does
    run = tmp_path / "run"
    assert list(summary["schemes"]) == ["uncoded", "hedged", "replication", "bacc", "nercc"]
    assert summary["settings"]["workers"] == {
        "uncoded": 2, "hedged": 6, "replication": 6, "bacc": 6, "nercc": 6
    }  # fmt: skip
    saved = json.loads((run / "summary.json").read_text())
    assert saved == json.loads(json.dumps(summary))
    # the hedges are counted for hedged alone (every scheme has the keys)
    hedged = summary["schemes"]["hedged"]
    assert hedged["hedges"] == hedged["hedging"]["hedges"] >= 0
    assert hedged["hedge_fraction"] == hedged["hedging"]["hedge_fraction"]
    others = [s for n, s in summary["schemes"].items() if n != "hedged"]
    assert all(s["hedges"] is None and s["hedging"] is None for s in others)
    rows = list(csv.DictReader((run / "latency.csv").open()))
    assert len(rows) == 5 * 40
    for name, scheme in summary["schemes"].items():
        mine = [r for r in rows if r["scheme"] == name]
        assert sorted(int(r["query"]) for r in mine) == list(range(40))
        assert all(r["status"] == "ok" for r in mine)
        assert (scheme["sent"], scheme["answered"], scheme["failed"]) == (40, 40, 0)
        assert scheme["kills"] == 0 and scheme["worker_failures"] == 0
        assert scheme["underdetermined_groups"] == 0  # a quorum, N - S = 4 >= K = 2
        assert scheme["p50_ms"] <= scheme["p90_ms"] <= scheme["p99_ms"] <= scheme["p99_9_ms"]
        agree = sum(r["prediction"] == r["base_prediction"] for r in mine) / 40
        assert scheme["agreement"] == pytest.approx(agree)
        right = sum(r["prediction"] == r["label"] for r in mine) / 40
        assert scheme["accuracy"] == pytest.approx(right)
        # delays of at least 1 ms (shift) on every worker
        assert min(float(r["latency_ms"]) for r in mine) >= 1.0
    # uncoded, hedged and replication decode exact logits: the base model's predictions
    assert summary["schemes"]["uncoded"]["agreement"] == 1.0
    assert summary["schemes"]["hedged"]["agreement"] == 1.0
    assert summary["schemes"]["replication"]["agreement"] == 1.0
    assert (run / "latency_cdf.png").stat().st_size > 10_000
    (path,) = (run / "wandb").glob("offline-run-*/run-*.wandb")
    contents = run_contents(path)
    assert {"latency/nercc/p99_ms", "latency/uncoded/agreement"} <= set(contents["history"])
    assert contents["config"]["serving"]["num_stragglers"] == 2


@pytest.mark.usefixtures("ray_session")
def test_loadtest_sweeps_rates_and_trials_into_load_curves(
    compose_config, checkpoints, capsys, tmp_path
):
    """Two rates, two trials: each (rate, trial) has today's files in its folder, and the load
    curves hold every (scheme, rate), each the mean of its trials' rows, each row the percentiles
    of its latency.csv. Trial t numbers its groups from t x TRIAL_GROUPS (the workers seed their
    delays by group, so the trials draw other delays; trial 0 from 0, as a one-trial run)."""
    import numpy as np

    from nercc.tasks.loadtest import TRIAL_GROUPS, loadtest

    cfg = compose_config(
        "loadtest",
        [
            "data=synthetic",
            f"paths.checkpoint_dir={checkpoints}",
            "coding.num_inputs=2",
            "coding.num_workers=4",
            "serving.num_stragglers=1",
            "serving.max_wait_ms=2",
            "delay=shifted_exponential",
            "delay.shift=1",
            "delay.rate=0.5",
            "loadtest.schemes=[uncoded,nercc]",
            "loadtest.num_queries=24",
            "loadtest.warmup=1",
            "loadtest.rates=[200,100]",
            "loadtest.trials=2",
            "seed=5",
            "logger=wandb",
        ],
    )
    summary, objects = loadtest(cfg)
    wandb.finish()
    run = tmp_path / "run"
    saved = json.loads((run / "load_curves.json").read_text())
    assert saved == json.loads(json.dumps(summary)) and summary is objects["curves"]
    assert saved["settings"]["rates"] == [100.0, 200.0] and saved["settings"]["trials"] == 2
    assert saved["settings"]["trial_seeds"] == [5, 6]
    curve = {(c["scheme"], c["rate"]): c for c in saved["curves"]}
    assert list(curve) == [(s, r) for s in ("uncoded", "nercc") for r in (100.0, 200.0)]
    rows = list(csv.DictReader((run / "load_curves.csv").open()))
    assert len(rows) == 2 * 2 * 2
    for (scheme, rate), entry in curve.items():
        mine = [r for r in rows if r["scheme"] == scheme and float(r["rate"]) == rate]
        assert sorted((int(r["trial"]), int(r["seed"])) for r in mine) == [(0, 5), (1, 6)]
        assert entry["trials"] == 2 and (entry["sent"], entry["answered"]) == (48, 48)
        gaps = [float(r["p99_9_ms"]) - float(r["p50_ms"]) for r in mine]
        assert entry["gap_ms"] == pytest.approx(np.mean(gaps))
        assert entry["p50_ms"] == pytest.approx(np.mean([float(r["p50_ms"]) for r in mine]))
        for row in mine:
            folder = run / f"rate_{rate:g}" / f"trial_{row['trial']}"
            queries = [q for q in csv.DictReader((folder / "latency.csv").open())
                       if q["scheme"] == scheme]  # fmt: skip
            assert sorted(int(q["query"]) for q in queries) == list(range(24))
            groups = {int(q["group"]) for q in queries}
            first = int(row["trial"]) * TRIAL_GROUPS
            assert first <= min(groups) and max(groups) < first + 24  # warm-up's group first
            latencies = [float(q["latency_ms"]) for q in queries]
            assert float(row["p99_9_ms"]) == pytest.approx(np.percentile(latencies, 99.9))
            one = json.loads((folder / "summary.json").read_text())
            assert one["settings"]["rate"] == rate
            assert one["settings"]["trial_seed"] == int(row["seed"])
            assert one["schemes"][scheme]["p50_ms"] == pytest.approx(float(row["p50_ms"]))
            assert (folder / "latency_cdf.png").stat().st_size > 10_000
    assert set(saved["saturation"]) == {"uncoded", "nercc"}
    assert all(r in (None, 100.0, 200.0) for r in saved["saturation"].values())
    assert (run / "gap_vs_rate.png").stat().st_size > 10_000
    assert not (run / "summary.json").exists()  # one per rate and trial instead
    printed = capsys.readouterr().out.splitlines()
    for scheme, at in saved["saturation"].items():
        said = f"{scheme}: not reached" if at is None else f"{scheme}: saturates at {at:g} q/s"
        assert said in printed
    (path,) = (run / "wandb").glob("offline-run-*/run-*.wandb")
    assert "load/nercc/rate_200/gap_ms" in set(run_contents(path)["history"])


@pytest.mark.usefixtures("ray_session")
def test_loadtest_over_http(compose_config, checkpoints, tmp_path):
    from nercc.tasks.loadtest import loadtest

    cfg = compose_config(
        "loadtest",
        [
            "data=synthetic",
            f"paths.checkpoint_dir={checkpoints}",
            "coding.num_inputs=2",
            "coding.num_workers=4",
            "serving.num_stragglers=1",
            f"serving.port={free_port()}",
            "delay=none",
            "loadtest.target=http",
            "loadtest.schemes=[nercc]",
            "loadtest.num_queries=24",
            "loadtest.warmup=1",
            "loadtest.rate=100",
            "logger=none",
        ],
    )
    summary, _ = loadtest(cfg)
    assert summary["settings"]["target"] == "http"
    nercc = summary["schemes"]["nercc"]
    assert (nercc["sent"], nercc["answered"], nercc["failed"]) == (24, 24, 0)
    rows = list(csv.DictReader((tmp_path / "run" / "latency.csv").open()))
    assert sorted(int(r["query"]) for r in rows) == list(range(24))
    assert {int(r["answered_by"]) for r in rows} <= {3, 4}  # N - S = 3 or more decoded
    agree = sum(r["prediction"] == r["base_prediction"] for r in rows) / 24
    assert nercc["agreement"] == pytest.approx(agree) and agree >= 0.5


@pytest.mark.usefixtures("ray_session")
def test_serve_command_answers_a_png_until_stopped(compose_config, checkpoints, caplog):
    """It warns, as the evaluation does, that its table was tuned on another checkpoint; with
    the queries ordered and grouped it takes the table tuned for that arrangement."""
    import threading
    import urllib.request

    import numpy as np

    from nercc.serving.images import image_to_png
    from nercc.tasks.serve import serve
    from nercc.tuning.tables import table_document, table_path

    port = free_port()
    cfg = compose_config(
        "serve",
        [
            "data=synthetic",
            f"paths.checkpoint_dir={checkpoints}",
            "coding.num_inputs=2",
            "coding.num_workers=4",
            "serving.num_stragglers=1",
            f"serving.port={port}",
            "delay=none",
            "coding.order=path",  # the queries arranged: its table is the one for that
            "coding.grouping=sorted",
        ],
    )
    code = {"num_inputs": 2, "num_workers": 4, "points": "chebyshev", "order": "path"}
    code["grouping"] = "sorted"
    table = table_path(cfg.paths.lambdas_dir, "lenet5", "synthetic", "nercc", code)
    table.parent.mkdir(parents=True)
    table.write_text(json.dumps(table_document({
        "scheme": "nercc", "model": "lenet5", "dataset": "synthetic", "code": code,
        "params_by_stragglers": {"1": {"lam_enc": 0.0, "lam_dec": 0.0}},
        "checkpoint_sha256": "0" * 64,
    })))  # fmt: skip
    caplog.set_level(logging.INFO, logger="nercc.serve")
    ready, stop, errors = threading.Event(), threading.Event(), []

    def run():
        try:
            serve(cfg, ready=ready, stop=stop)
        except BaseException as error:  # reported by the test below
            errors.append(error)
            ready.set()

    thread = threading.Thread(target=run)
    thread.start()
    try:
        assert ready.wait(480) and not errors, errors  # a liveness bound: slow on a busy machine
        body = image_to_png(np.random.default_rng(0).random((28, 28)))
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/predict", data=body, headers={"Content-Type": "image/png"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read())
        assert answer["scheme"] == "nercc" and 0 <= answer["class"] < 10
        assert len(answer["logits"]) == 10 and len(answer["workers"]) >= 3
    finally:
        stop.set()
        thread.join(300)
    assert not thread.is_alive() and not errors
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    checkpoint = checkpoints / "lenet5_synthetic.ckpt"
    assert warned == [
        f"warning: {table} was tuned on another checkpoint than {checkpoint} (content hash "
        "differs): retune with python -m nercc.tune"
    ]


@pytest.mark.usefixtures("ray_session")
@pytest.mark.parametrize("target", ["frontend", pytest.param("http", marks=pytest.mark.slow)])
def test_loadtest_compares_plain_and_robust_decoding_of_a_lying_worker(
    compose_config, checkpoints, capsys, tmp_path, target
):
    """Worker 3 of 12 answers -100 x its logits: plain NeRCC flags nobody, robust NeRCC flags
    worker 3 (and excludes it: 3 flags of its last 4 groups); the summary says so per scheme,
    with the workers configured, and the printed table names it. Over HTTP the flags come in
    the answers and the exclusions from the replica's drain."""
    from nercc.tasks.loadtest import loadtest

    cfg = compose_config(
        "loadtest",
        [
            "data=synthetic",
            f"paths.checkpoint_dir={checkpoints}",
            "coding.num_inputs=4",
            "coding.num_workers=12",
            "serving.num_stragglers=2",
            f"serving.port={free_port()}",
            "scheme=byzantine",
            "loadtest.schemes=[nercc,nercc_robust]",
            "serving.adversaries=[3]",
            "serving.flag_window=4",
            "serving.exclude_groups=5",
            "adversary=sign_flip",
            "adversary.scale=100",
            "delay=none",
            f"loadtest.target={target}",
            "loadtest.num_queries=40",
            "loadtest.warmup=1",
            "loadtest.rate=100",
            "logger=none",
        ],
    )
    summary, _ = loadtest(cfg)
    assert summary["settings"]["adversaries"] == [3]
    assert summary["settings"]["adversary"]["scale"] == 100.0
    plain, robust = summary["schemes"]["nercc"], summary["schemes"]["nercc_robust"]
    for scheme in (plain, robust):
        assert (scheme["sent"], scheme["answered"], scheme["failed"]) == (40, 40, 0)
        assert scheme["adversarial_workers"] == [3]
    assert set(plain["flagged_by_worker"].values()) == {0} and plain["exclusions"] == []
    assert plain["answers_by_worker"]["3"] > 0  # its lies were decoded
    # the robust decoder drops most of its lies (how many is the decoder's business)
    flags, answers = robust["flagged_by_worker"], robust["answers_by_worker"]
    assert flags["3"] > answers["3"] / 2 and flags["3"] == max(flags.values())
    assert robust["flag_recall"] == flags["3"] / answers["3"]
    assert 3 in {e["worker"] for e in robust["exclusions"]}
    rows = list(csv.DictReader((tmp_path / "run" / "latency.csv").open()))
    assert all(r["flagged"] == "" for r in rows if r["scheme"] == "nercc")
    assert any("3" in r["flagged"].split() for r in rows if r["scheme"] == "nercc_robust")
    printed = capsys.readouterr().out
    assert "worker 3:" in printed and "adversarial workers [3]" in printed


@pytest.mark.usefixtures("ray_session")
@pytest.mark.parametrize("target", ["frontend", pytest.param("http", marks=pytest.mark.slow)])
def test_loadtest_serves_parm_beside_hedged_and_uncoded_at_one_extra_worker(
    compose_config, parity, tmp_path, target
):
    """K = 2, N = 3 with worker 0 ten times slower: ParM's parity worker runs the published
    parity model (every worker holds it; the frontend names it on row 2), each query answered
    once; a query decoded from both data workers is the classifier's own answer, one decoded
    with the parity worker is recovered by subtraction. ParM's queries are grouped and ordered
    (two groups' worth sorted, each group along a path), which the settings record."""
    from nercc.tasks.loadtest import loadtest

    root, _ = parity
    cfg = compose_config(
        "loadtest",
        [
            "data=synthetic",
            f"paths.checkpoint_dir={root}",
            "scheme=[nercc_vs_bacc,parm]",
            "coding.num_inputs=2",
            "coding.num_workers=3",
            "serving.num_stragglers=1",
            f"serving.port={free_port()}",
            "delay=one_slow_worker",
            "coding.order=path",  # ParM mixes inputs: its groups are arranged, the others' not
            "coding.grouping=sorted",
            "serving.buffer=2",
            f"loadtest.target={target}",
            "loadtest.schemes=[uncoded,hedged,parm]",
            "loadtest.num_queries=24",
            "loadtest.warmup=1",
            "loadtest.rate=100",
            "logger=none",
        ],
    )
    summary, objects = loadtest(cfg)
    plan = objects["plan"]
    path = str(root / "parity_lenet5_synthetic_k2.ckpt")
    assert plan.parity_models == {path: 2} and plan.row_models("parm") == [0, 0, 1]
    assert plan.row_models("hedged") is None and plan.row_models("uncoded") is None
    for name in ("uncoded", "hedged", "parm"):
        scheme = summary["schemes"][name]
        assert (scheme["sent"], scheme["answered"], scheme["failed"]) == (24, 24, 0), name
    rows = [r for r in csv.DictReader((tmp_path / "run" / "latency.csv").open())]
    parm = [r for r in rows if r["scheme"] == "parm"]
    assert sorted(int(r["query"]) for r in parm) == list(range(24))
    for row in parm:
        workers = set(row["workers"].split())
        assert workers in ({"0", "1"}, {"0", "2"}, {"1", "2"}, {"0", "1", "2"}), row
        if {"0", "1"} <= workers:
            assert row["prediction"] == row["base_prediction"]
    assert summary["settings"]["workers"]["parm"] == 3
    settings = summary["settings"]
    assert (settings["order"], settings["grouping"], settings["buffer"]) == ("path", "sorted", 2)
    assert plan.arranger.order == "path" and plan.arranger.direction is not None


def test_loadtest_refuses_parm_without_its_parity_model_before_ray_starts(
    compose_config, checkpoints, monkeypatch
):
    from nercc import serving
    from nercc.tasks.loadtest import loadtest

    def no_ray(*args, **kwargs):
        raise AssertionError("Ray was started")

    monkeypatch.setattr(serving, "ray_cluster", no_ray)

    cfg = compose_config(
        "loadtest",
        [
            "data=synthetic",
            f"paths.checkpoint_dir={checkpoints}",
            "scheme=[nercc_vs_bacc,parm]",
            "coding.num_inputs=2",
            "coding.num_workers=3",
            "serving.num_stragglers=1",
            "loadtest.schemes=[parm]",
            "loadtest.num_queries=4",
            "logger=none",
        ],
    )
    with pytest.raises(FileNotFoundError, match=r"experiment=parity/"):
        loadtest(cfg)
