"""A second tunable scheme end to end, known only through its declaration: Floater-Hormann BACC
(``scheme=floater_hormann``, node ``fh``, an integer degree ``d``; ``d = 0`` is BACC) evaluated
over a list of d, tuned over its declared grid into a table of its own, evaluated from that table,
calibrated with ``d=auto``, drawn by the figures task, and served by the frontend (Ray's calls
made in this process). Nothing outside nercc.coding names it: the tasks read
``FloaterHormann.tunables``."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from nercc.coding import FloaterHormann
from nercc.tasks.evaluate import evaluate
from nercc.tasks.tune import tune
from nercc.tuning import load_table

K, N = 4, 12
SMALL = [
    "data=synthetic",
    f"coding.num_inputs={K}",
    f"coding.num_workers={N}",
    "stragglers=[0,3,6]",
    "eval.batch_size=64",
    "eval.num_patterns=2",
    "logger=none",
    "optimized_metric=null",
    "trainer.enable_progress_bar=false",
]
# the scheme's own config, taking its published table (when it gives no d)
FH = ["scheme=floater_hormann", "++scheme.fh.lambdas=published"]


def by_s(rows, **where):
    return {r["num_stragglers"]: r for r in rows if all(r.get(k) == v for k, v in where.items())}


def test_a_list_of_d_is_a_row_each_and_d0_is_bacc(compose_config, checkpoints):
    ckpt = f"paths.checkpoint_dir={checkpoints}"
    cfg = compose_config("eval", [*SMALL, ckpt, "scheme=floater_hormann", "scheme.fh.d=[0,1,2]"])
    rows = evaluate(cfg)[0]["rows"]
    assert len(rows) == 3 * 3 and {r["scheme"] for r in rows} == {"fh"}
    assert sorted({r["d"] for r in rows}) == [0.0, 1.0, 2.0]  # the d column holds the value
    assert {r["variant"] for r in rows} == {"fh(d=0)", "fh(d=1)", "fh(d=2)"}
    bacc = by_s(evaluate(compose_config("eval", [*SMALL, ckpt, "scheme=bacc"]))[0]["rows"])
    fh0, fh2 = by_s(rows, d=0.0), by_s(rows, d=2.0)
    for s, row in bacc.items():  # the same patterns (same seed): d = 0 decodes as BACC
        assert fh0[s]["mse"] == pytest.approx(row["mse"], rel=1e-9, abs=1e-12), s
        assert fh0[s]["acc"] == row["acc"]
    assert any(fh2[s]["mse"] != pytest.approx(bacc[s]["mse"], rel=1e-6) for s in bacc)


def test_fh_is_tuned_published_evaluated_calibrated_and_served(
    compose_config, checkpoints, tmp_path, monkeypatch
):
    ckpt = f"paths.checkpoint_dir={checkpoints}"
    # tuned over its declared grid (tune.grid=null: d in 0..4), one refine round of d +- 1
    cfg = compose_config(
        "tune",
        [*SMALL, ckpt, *FH, "tune.scheme=fh", "tune.baseline=null", "tune.limit=null",
         "tune.num_patterns=2", "tune.refine=1", "tune.test=false"],
    )  # fmt: skip
    metrics, objects = tune(cfg)
    lambdas = tmp_path / "outputs" / "lambdas"
    path = lambdas / f"lenet5_synthetic_fh_K{K}_N{N}_chebyshev.json"
    assert metrics["published_table"] == str(path)
    assert sorted(p.name for p in lambdas.glob("*.json")) == [path.name]  # not NeRCC's name
    table = load_table(path)
    assert table.scheme == "fh" and table.found_by["space"] == {"d": [0.0, 1.0, 2.0, 3.0, 4.0]}
    grid = [r for r in objects["rows"] if r["variant"] != "fh(refine)"]
    refined = [r for r in objects["rows"] if r["variant"] == "fh(refine)"]
    assert {r["d"] for r in grid} == {0.0, 1.0, 2.0, 3.0, 4.0} and len(grid) == 5 * 3
    # refined by +-1 around each S's best on the grid (an integer: never by factors of 10)
    for s in (0, 3, 6):
        on_grid = min((r for r in grid if r["num_stragglers"] == s), key=lambda r: r["mse"])["d"]
        new = {on_grid - 1, on_grid + 1} - {0.0, 1.0, 2.0, 3.0, 4.0, -1.0}
        assert {r["d"] for r in refined if r["num_stragglers"] == s} == new, s
    for s in (0, 3, 6):
        best = min((r for r in grid + refined if r["num_stragglers"] == s), key=lambda r: r["mse"])
        assert table.by_stragglers[s] == {"d": best["d"]}

    # evaluated from its published table: d per S
    cfg = compose_config("eval", [*SMALL, ckpt, *FH, "scheme.fh.d=null"])
    rows = by_s(evaluate(cfg)[0]["rows"])
    for s, row in rows.items():
        assert row["d"] == table.by_stragglers[s]["d"] and row["params_source"] == f"table:{path}"

    # d=auto: calibrated from its declared candidates on the validation images
    cfg = compose_config(
        "eval", [*SMALL, ckpt, "scheme=floater_hormann", "scheme.fh.d=auto", "eval.auto_images=64"]
    )
    rows = by_s(evaluate(cfg)[0]["rows"])
    assert {r["params_source"] for r in rows.values()} == {"table:auto(val, 64 images)"}
    # the same images and patterns as the tuning grid: the same choice
    for s, row in rows.items():
        at = [r for r in grid if r["num_stragglers"] == s]
        assert row["d"] == min(at, key=lambda r: (r["mse"], r["d"]))["d"], s
    assert {r["d"] for r in rows.values()} <= set(FloaterHormann(K, N).auto_candidates("d"))

    _serve_from_the_table(compose_config, checkpoints, table, monkeypatch)


def _serve_from_the_table(compose_config, checkpoints, table, monkeypatch):
    """The serving plan builds fh with its table's d at the served S, and the frontend answers
    queries with it: the decode of the first N - S answers."""
    from nercc.runtime.checks import check_serve, expected_input
    from nercc.serving import frontend as frontend_module
    from nercc.serving import workers as workers_module
    from nercc.serving.frontend import Frontend
    from nercc.serving.plan import model_loader, serving_plan
    from nercc.serving.workers import Worker

    s = 3
    cfg = compose_config(
        "serve",
        [*FH, "scheme.fh.d=null", "serving.scheme=fh", "data=synthetic",
         f"coding.num_inputs={K}", f"coding.num_workers={N}", f"serving.num_stragglers={s}",
         "delay=none", f"paths.checkpoint_dir={checkpoints}"],
    )  # fmt: skip
    check_serve(cfg, http=False)
    plan = serving_plan(cfg, ["fh"])
    scheme = plan.schemes["fh"]
    assert isinstance(scheme, FloaterHormann) and scheme.d == table.by_stragglers[s]["d"]
    assert plan.tables["fh"].path == table.path
    assert plan.notes == [f"fh: d {scheme.d:.3g} from {table.path} (S={s})"]

    monkeypatch.setattr(workers_module, "freeze_startup_heap", lambda: None)
    monkeypatch.setattr(frontend_module, "ray", _InProcessRay)
    expected = expected_input(cfg)
    model = model_loader(cfg, expected)()
    workers = [_Actor(Worker(i, lambda: model)) for i in range(N)]
    images = np.random.default_rng(0).random((K, *expected["image_shape"]), dtype=np.float32)
    with Frontend(workers, scheme, "fh", plan.policies["fh"], max_wait_ms=1000) as front:
        answers = [f.result(timeout=60) for f in [front.submit(image) for image in images]]
    # the answers of the first N - S workers (the in-process wait returns the first ones asked)
    available = np.arange(N) < N - s
    coded = FloaterHormann(K, N, d=int(table.by_stragglers[s]["d"])).encode(images)
    with torch.inference_mode():
        outputs = model(torch.from_numpy(np.asarray(coded, dtype=np.float32))).numpy()
    want = FloaterHormann(K, N, d=int(scheme.d)).decode(outputs.astype(np.float64), available)
    for position, answer in enumerate(answers):
        assert answer.scheme == "fh" and answer.workers == tuple(range(N - s))
        np.testing.assert_allclose(answer.logits, want[position], rtol=1e-4, atol=1e-4)


class _Ref:
    """A finished call: what ``ray.get`` gives for it."""

    def __init__(self, value):
        self.value = value


class _Actor:
    """A worker in this process, called as Ray calls an actor (``compute.remote(message)``)."""

    def __init__(self, worker):
        self.compute = SimpleNamespace(remote=lambda message: _Ref(worker.compute(message)))
        self.ready = SimpleNamespace(remote=lambda: _Ref(worker.ready()))


class _InProcessRay:
    """What the frontend calls of Ray, for calls that have already finished."""

    class exceptions:  # noqa: N801 (ray.exceptions)
        RayError = RuntimeError

    @staticmethod
    def wait(refs, num_returns=1, timeout=None):
        return list(refs[:num_returns]), list(refs[num_returns:])

    @staticmethod
    def get(refs):
        return [ref.value for ref in refs] if isinstance(refs, list) else refs.value

    @staticmethod
    def kill(actor, no_restart=False):
        raise AssertionError("no worker is killed here")


def test_the_figures_task_tunes_and_draws_fh(compose_config, checkpoints, tmp_path):
    from nercc.tasks.figures import make_figures

    # the dry model (its classifier already published, no training) tunes fh where its table is
    # missing, then draws one run of fh from that table
    tune = ["scheme=floater_hormann", "++scheme.fh.lambdas=published", "tune.scheme=fh",
            "tune.baseline=null", "tune.refine=0", "tune.limit=null", "tune.num_patterns=1",
            "tune.heatmaps=0", "tune.test=false"]  # fmt: skip
    run = ["scheme=floater_hormann", "++scheme.fh.lambdas=published", "scheme.fh.d=null"]
    cfg = compose_config(
        "figures",
        ["figures.dry=true", "figure=[vs_stragglers]", "figures.switches.auto=false",
         "figures.dry_models.synthetic.tune=[" + ",".join(f'"{o}"' for o in tune) + "]",
         "figure.vs_stragglers.runs=[{label:FH tuned,needs_table:fh,overrides:["
         + ",".join(f'"{o}"' for o in run) + "]}]"],
    )  # fmt: skip
    scratch = tmp_path / "outputs" / "figures" / "dry" / "scratch"
    (scratch / "checkpoints").mkdir(parents=True)
    shutil.copy(checkpoints / "lenet5_synthetic.ckpt", scratch / "checkpoints")
    metrics, _ = make_figures(cfg)
    published = scratch / "lambdas" / "lenet5_synthetic_fh_K4_N12_chebyshev.json"
    table = load_table(published)
    (data,) = metrics["figures"]
    ((label,),) = [list(r["labels"].values()) for r in data["runs"]]
    assert label == "FH tuned" and data["file"] == "vs_stragglers_synthetic.png"
    drawn = [r for r in data["runs"][0]["rows"] if r["scheme"] == "fh"]
    assert drawn and all(r["params_source"] == f"table:{published}" for r in drawn)
    assert all(r["d"] == table.by_stragglers[r["num_stragglers"]]["d"] for r in drawn)
