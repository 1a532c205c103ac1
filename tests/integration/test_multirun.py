"""Hydra multiruns of the evaluation: grids, Optuna, failing jobs, joblib and submitit launchers.

Each sweep runs ``python -m nercc.eval -m ...`` in a subprocess on the LeNet5 that the session's
``checkpoints`` fixture (tests/conftest.py) trains once on the synthetic images, writing only under
pytest's scratch folders.
"""

import csv
import fcntl
import json
import multiprocessing
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from hydra.core.utils import JobReturn, JobStatus
from hydra.types import RunMode
from omegaconf import OmegaConf

from nercc.runtime.multirun import (
    JOB_FILE,
    LOCK_FILE,
    MultirunSummary,
    mark_running_failed,
    summarize,
)
from nercc.runtime.run_folders import FAILED_FILE
from tests.wandb_offline import run_contents

SMALL = [
    "data=synthetic",
    "coding.num_inputs=8",
    "coding.num_workers=20",
    "stragglers=[0,5]",
    "eval.batch_size=64",
    "logger=none",
    "trainer.enable_progress_bar=false",
]
LAM_ENC, LAM_DEC = "scheme.nercc.lam_enc", "scheme.nercc.lam_dec"
# The config check's message for lam_dec=-1 (its wording is the evaluation's, not checked here).
BAD_LAM_DEC = re.compile(r"lam_dec\b.*>= 0.*got -1\b")


def sweep(args, checkpoints, tmp_path):
    """Run one multirun with the default sweep folder under ``tmp_path/outputs`` (as a user's
    would be under outputs/); return the process and the sweep folder."""
    command = [
        sys.executable, "-m", "nercc.eval", "-m", *SMALL,
        f"paths.checkpoint_dir={checkpoints}", f"paths.log_dir={tmp_path / 'outputs'}", *args,
    ]  # fmt: skip
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=600, cwd=tmp_path, check=False
    )
    sweeps = list((tmp_path / "outputs" / "eval" / "multiruns").glob("*"))
    assert len(sweeps) == 1, (sweeps, result.stderr[-3000:])
    return result, sweeps[0]


def read_table(sweep_dir):
    with open(sweep_dir / "multirun.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def results(sweep_dir, row):
    return json.loads((sweep_dir / row["dir"] / "results.json").read_text())


def check_completed(sweep_dir, row):
    """A completed row: its objective is the job's results.json objective, which is NeRCC's mse
    averaged over S; its lambdas are those of the job's result rows."""
    saved = results(sweep_dir, row)
    nercc = [r for r in saved["rows"] if r["scheme"] == "nercc"]
    assert [r["num_stragglers"] for r in nercc] == [0, 5]
    mean_mse = sum(r["mse"] for r in nercc) / len(nercc)
    assert saved["objective"]["name"] == "coded/nercc/mse"
    assert saved["objective"]["value"] == pytest.approx(mean_mse, rel=1e-12)
    assert float(row["objective"]) == saved["objective"]["value"]
    for key, column in (("lam_enc", LAM_ENC), ("lam_dec", LAM_DEC)):
        if column in row:
            assert {r[key] for r in nercc} == {float(row[column])}
    job = json.loads((sweep_dir / row["dir"] / JOB_FILE).read_text())
    assert job["job"] == int(row["job"]) and job["status"] == "completed"
    assert job["objective"] == saved["objective"]["value"] and job["error"] is None
    assert Path(job["dir"]) == (sweep_dir / row["dir"]).absolute()
    return saved


def failed_marker(folder):
    """The error line of a job folder's FAILED marker (nercc.runtime.run_folders.mark_failed)."""
    error, time = (folder / FAILED_FILE).read_text().splitlines()
    assert error.startswith("error: ") and time.startswith("time: ")
    return error.removeprefix("error: ")


def check_wandb_run(sweep_dir, row):
    """One offline W&B run per job, in the group named after the sweep folder."""
    runs = list((sweep_dir / row["dir"] / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 1
    contents = run_contents(runs[0])
    assert contents["group"] == f"eval-{sweep_dir.name}"
    assert contents["summary"]["objective"] == float(row["objective"])


def test_grid_multirun_gathers_its_jobs_in_one_table(checkpoints, tmp_path):
    args = ["scheme=nercc", f"{LAM_ENC}=0,1e-8", f"{LAM_DEC}=0,1e-9", "logger=wandb"]
    result, sweep_dir = sweep(args, checkpoints, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    table = read_table(sweep_dir)
    assert [r["job"] for r in table] == ["0", "1", "2", "3"]
    assert [r["dir"] for r in table] == ["0", "1", "2", "3"]
    assert [(r[LAM_ENC], r[LAM_DEC]) for r in table] == [
        ("0", "0"), ("0", "1e-09"), ("1e-08", "0"), ("1e-08", "1e-09"),
    ]  # fmt: skip
    columns = list(table[0])
    assert columns[:3] == ["job", "status", "objective"] and columns[-2:] == ["error", "dir"]
    assert {r["status"] for r in table} == {"completed"} and {r["error"] for r in table} == {""}
    objectives = [check_completed(sweep_dir, r)["objective"]["value"] for r in table]
    assert len(set(objectives)) == 4  # the lambdas reached the jobs
    for row in table:
        check_wandb_run(sweep_dir, row)


def test_optuna_sweep_writes_the_best_lambdas(checkpoints, tmp_path):
    result, sweep_dir = sweep(
        ["hparams_search=nercc_optuna", "hydra.sweeper.n_trials=3"], checkpoints, tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    table = read_table(sweep_dir)
    assert [r["job"] for r in table] == ["0", "1", "2"]
    for row in table:
        saved = check_completed(sweep_dir, row)
        assert {r["scheme"] for r in saved["rows"]} == {"nercc"}  # no BACC pass
        assert {r["num_inputs_evaluated"] for r in saved["rows"]} == {64}  # the val split
        assert 1e-10 <= float(row[LAM_ENC]) <= 1e-4 and 1e-10 <= float(row[LAM_DEC]) <= 1e-4
    best = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    winner = min(table, key=lambda r: float(r["objective"]))
    assert best["name"] == "optuna"
    assert best["best_value"] == float(winner["objective"])
    assert best["best_params"] == {LAM_ENC: float(winner[LAM_ENC]), LAM_DEC: float(winner[LAM_DEC])}


def test_optuna_sweep_goes_on_after_a_failing_trial(checkpoints, tmp_path):
    # With this seed, the three trials draw lam_dec = 1e-9, 1e-9, -1 (invalid).
    args = ["hparams_search=nercc_optuna", "hydra.sweeper.n_trials=3",
            "hydra.sweeper.sampler.seed=1234", f"{LAM_DEC}=choice(1e-9,-1.0)"]  # fmt: skip
    result, sweep_dir = sweep(args, checkpoints, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    table = read_table(sweep_dir)
    failed = [r for r in table if r["status"] == "failed"]
    completed = [r for r in table if r["status"] == "completed"]
    assert len(table) == 3 and failed and completed
    for row in failed:
        assert row[LAM_DEC] == "-1.0" and row["objective"] == ""
        assert BAD_LAM_DEC.search(row["error"])
    for row in completed:
        check_completed(sweep_dir, row)
    best = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert best["best_value"] == min(float(r["objective"]) for r in completed)
    assert best["best_params"][LAM_DEC] == 1e-9


def test_a_failing_job_is_recorded_and_the_others_complete(checkpoints, tmp_path):
    result, sweep_dir = sweep(["scheme=nercc", f"{LAM_DEC}=0,-1"], checkpoints, tmp_path)
    assert result.returncode != 0  # the basic sweeper raises once its batch is done
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 2 and BAD_LAM_DEC.search(errors[0])  # the job's line, then the sweep's
    assert errors[1].startswith("error: job 1 of the sweep failed (ConfigError: ")
    assert errors[1].endswith(f"every job: {sweep_dir / 'multirun.csv'}")
    assert "Traceback" not in result.stderr
    good, bad = read_table(sweep_dir)
    check_completed(sweep_dir, good)
    assert (bad["status"], bad["objective"], bad[LAM_DEC]) == ("failed", "", "-1")
    assert BAD_LAM_DEC.search(bad["error"]) and "\n" not in bad["error"]
    assert not (sweep_dir / bad["dir"] / "results.json").exists()
    job = json.loads((sweep_dir / bad["dir"] / JOB_FILE).read_text())
    assert (
        job["status"] == "failed" and job["objective"] is None and BAD_LAM_DEC.search(job["error"])
    )
    # The failed job's folder is kept and marked with the same error; each job has its log.
    assert failed_marker(sweep_dir / bad["dir"]) == job["error"] == bad["error"]
    assert not (sweep_dir / good["dir"] / FAILED_FILE).exists()
    good_log = (sweep_dir / good["dir"] / "eval.log").read_text()
    assert "[pytorch_lightning.utilities.rank_zero][INFO] - GPU available:" in good_log
    assert "Tip:" not in good_log + result.stdout + result.stderr
    bad_log = (sweep_dir / bad["dir"] / "eval.log").read_text()
    assert (
        f"[nercc.runtime.wrapper][ERROR] - {errors[0]}\n" in bad_log
    )  # the line printed on stderr


def bad_line(result):
    """The failed job's error as the job printed it, with its type (as job.json records it)."""
    (line,) = [line for line in result.stderr.splitlines() if BAD_LAM_DEC.search(line)][:1]
    return "ConfigError: " + line.removeprefix("error: ")


def test_a_joblib_sweep_survives_its_worst_job(checkpoints, tmp_path):
    # The bad job's error crosses a process boundary (loky pickles it): every exception the
    # project raises must unpickle, or the pool breaks and the good jobs are lost.
    args = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "scheme=nercc",
            f"{LAM_DEC}=0,-1,1e-9"]  # fmt: skip
    result, sweep_dir = sweep(args, checkpoints, tmp_path)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "BrokenProcessPool" not in result.stderr and "Traceback" not in result.stderr
    assert [line for line in result.stderr.splitlines() if line.startswith("error: job")] == [
        f"error: job 1 of the sweep failed ({bad_line(result)}); every job: "
        f"{sweep_dir / 'multirun.csv'}"
    ]
    first, bad, last = read_table(sweep_dir)
    check_completed(sweep_dir, first)
    check_completed(sweep_dir, last)
    assert bad["status"] == "failed" and BAD_LAM_DEC.search(bad["error"])
    assert failed_marker(sweep_dir / bad["dir"]) == bad["error"]


@pytest.mark.slow
def test_joblib_runs_jobs_in_parallel(checkpoints, tmp_path):
    args = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "scheme=nercc", f"{LAM_DEC}=0,1e-9"]
    result, sweep_dir = sweep(args, checkpoints, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Joblib.Parallel(n_jobs=2" in result.stdout
    table = read_table(sweep_dir)
    assert [(r["job"], r[LAM_DEC]) for r in table] == [("0", "0"), ("1", "1e-09")]
    for row in table:
        check_completed(sweep_dir, row)


@pytest.mark.slow
def test_submitit_local_runs_the_slurm_path(checkpoints, tmp_path):
    result, sweep_dir = sweep(
        ["hydra/launcher=submitit_local", "scheme=nercc", f"{LAM_DEC}=0,-1"], checkpoints, tmp_path
    )
    assert result.returncode != 0
    good, bad = read_table(sweep_dir)
    check_completed(sweep_dir, good)
    assert bad["status"] == "failed" and BAD_LAM_DEC.search(bad["error"])
    assert failed_marker(sweep_dir / bad["dir"]) == bad["error"]  # written in submitit's process
    assert list((sweep_dir / ".submitit").glob("*/*_result.pkl"))


def _job(sweep_dir: Path, num: int, status=JobStatus.COMPLETED, value=None):
    config = OmegaConf.create(
        {
            "optimized_metric": "coded/nercc/mse",
            "hydra": {
                "mode": "MULTIRUN",
                "sweep": {"dir": str(sweep_dir)},
                "job": {"num": num},
                "runtime": {"output_dir": str(sweep_dir / str(num))},
            },
        }
    )
    config.hydra.mode = RunMode.MULTIRUN
    ret = JobReturn(overrides=[f"{LAM_DEC}={num}e-9", "stragglers=[0,5]"], status=status)
    ret.return_value = value
    return config, ret


def _end_jobs(sweep_dir, worker, per_worker, barrier):
    barrier.wait()
    for num in range(worker * per_worker, (worker + 1) * per_worker):
        MultirunSummary().on_job_end(*_job(sweep_dir, num, value=num / 10))


def test_concurrent_job_ends_leave_a_complete_table(tmp_path):
    # Without the lock, a process that read the job files before another wrote its own could
    # overwrite the table last and drop that job.
    workers, per_worker = 4, 5
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(workers)
    processes = [
        context.Process(target=_end_jobs, args=(tmp_path, w, per_worker, barrier))
        for w in range(workers)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
    assert [p.exitcode for p in processes] == [0] * workers
    count = workers * per_worker
    table = read_table(tmp_path)
    assert [float(r["objective"]) for r in table] == [n / 10 for n in range(count)]
    assert [float(r[LAM_DEC]) for r in table] == [float(f"{n}e-9") for n in range(count)]
    assert {r["stragglers"] for r in table} == {"[0, 5]"}


def test_the_table_waits_for_the_sweep_lock(tmp_path):
    context = multiprocessing.get_context("fork")
    process = context.Process(target=_end_jobs, args=(tmp_path, 0, 1, context.Barrier(1)))
    with open(tmp_path / LOCK_FILE, "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        process.start()
        deadline = time.monotonic() + 60
        while not (tmp_path / "0" / JOB_FILE).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        assert process.is_alive() and not (tmp_path / "multirun.csv").exists()
        fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
    process.join(60)
    assert process.exitcode == 0 and len(read_table(tmp_path)) == 1


def test_job_record_of_a_failure_and_of_a_single_run(tmp_path):
    config, ret = _job(tmp_path, 3, JobStatus.FAILED, ValueError("bad\nlambda"))
    MultirunSummary().on_job_end(config, ret)
    job = json.loads((tmp_path / "3" / JOB_FILE).read_text())
    assert job == {
        "job": 3, "status": "failed", "objective": None, "optimized_metric": "coded/nercc/mse",
        "overrides": {LAM_DEC: 3e-9, "stragglers": [0, 5]}, "error": "ValueError: bad lambda",
        "dir": str(tmp_path / "3"),
    }  # fmt: skip
    assert failed_marker(tmp_path / "3") == "ValueError: bad lambda"  # no wrapper wrote it
    (tmp_path / "3" / FAILED_FILE).write_text("error: KeyError: kept\ntime: now\n")
    MultirunSummary().on_job_end(config, ret)  # the wrapper's own marker is kept
    assert failed_marker(tmp_path / "3") == "KeyError: kept"
    config, ret = _job(tmp_path, 3, value=0.5)  # a folder reused from a failure
    MultirunSummary().on_job_end(config, ret)
    assert not (tmp_path / "3" / FAILED_FILE).exists()
    assert summarize(tmp_path / "none") is None
    config, ret = _job(tmp_path / "single", 0, value=1.0)
    config.hydra.mode = RunMode.RUN
    MultirunSummary().on_job_end(config, ret)
    MultirunSummary().on_multirun_end(config)
    assert not (tmp_path / "single").exists()


def test_an_unreadable_job_record_is_left_out_of_the_table_with_a_warning(tmp_path, caplog):
    sweep_dir = tmp_path / "sweep"
    MultirunSummary().on_job_end(*_job(sweep_dir, 0, value=0.5))
    MultirunSummary().on_job_end(*_job(sweep_dir, 1, value=0.25))
    (sweep_dir / "1" / JOB_FILE).write_text('{"job": 1, "status": ')  # cut by a crash
    summarize(sweep_dir)
    assert [row["job"] for row in read_table(sweep_dir)] == ["0"]
    assert any("left out of the table" in r.getMessage() for r in caplog.records)


def test_running_jobs_of_an_interrupted_sweep_are_marked_failed(tmp_path):
    sweep_dir = tmp_path / "sweep"
    MultirunSummary().on_job_end(*_job(sweep_dir, 0, value=0.5))
    config, _ = _job(sweep_dir, 1)
    config.hydra.overrides = {"task": ["stragglers=[0,5]"]}
    MultirunSummary().on_job_start(config)
    assert json.loads((sweep_dir / "1" / JOB_FILE).read_text())["status"] == "running"
    assert mark_running_failed(sweep_dir, "Interrupted: the sweep was interrupted by SIGTERM") == [
        1
    ]
    rows = read_table(sweep_dir)
    assert [(r["job"], r["status"]) for r in rows] == [("0", "completed"), ("1", "failed")]
    assert failed_marker(sweep_dir / "1") == "Interrupted: the sweep was interrupted by SIGTERM"
