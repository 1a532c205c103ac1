"""Run folders from the command line: the log file of every run, and a failed run never looking
finished (its folder marked FAILED, or removed when it failed before any work).

Most runs use a small probe task (``probe.py``, written to pytest's scratch folder): a
``@hydra.main`` function wrapped by ``task_wrapper`` whose config takes the project's ``paths``
and ``hydra`` groups, so that it runs with the project's job logging and run folders; its
``mode`` chooses how it ends. One run goes through ``python -m nercc.eval``.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from nercc.paths import CONFIG_DIR
from nercc.runtime.run_folders import FAILED_FILE

PROBE = """
import logging
import os
from pathlib import Path

import hydra

if os.environ.get("PROBE_LIGHTNING"):  # imported before logging is set up, as by the entry points
    import pytorch_lightning  # noqa: F401

from nercc.runtime.wrapper import task_wrapper
from nercc.utils.errors import ConfigError

log = logging.getLogger("probe")


@hydra.main(version_base="1.3", config_path=".", config_name="probe")
@task_wrapper
def main(cfg):
    if cfg.mode == "config_error":
        raise ConfigError("probe.size", "must be an integer", "abc")
    (Path(cfg.paths.output_dir) / "results.txt").write_text("work\\n")
    log.info("probe info")
    log.warning("probe warning")
    if os.environ.get("PROBE_LIGHTNING"):
        from lightning_fabric.utilities.seed import seed_everything

        seed_everything(3)
    if cfg.mode == "work_error":
        raise FileNotFoundError("probe: no such file /nowhere")
    if cfg.mode == "crash":
        raise RuntimeError("probe crashed")
    if cfg.mode == "interrupt":
        raise KeyboardInterrupt
    if cfg.mode == "sleep":  # waits to be killed; says when it has begun
        Path(cfg.paths.output_dir, "ready").write_text("")
        import time

        time.sleep(120)
    if cfg.mode == "fill":  # results bigger than the disk holds
        from nercc.utils.io import write_text_atomic

        write_text_atomic(Path(cfg.paths.output_dir) / "big.txt", "x" * 4_000_000)
    with open("ran.txt", "a") as ran:  # in the working folder: one line per run that finished
        ran.write(f"{cfg.mode}\\n")
    return 1.5


if __name__ == "__main__":
    main()
"""

CONFIG = """
defaults:
  - paths: default
  - hydra: default
  - _self_
task_name: probe
mode: ok
hydra:
  searchpath:
    - file://{config_dir}
"""

STAMP = r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\]"
MARKER = re.compile(r"error: (?P<error>.+)\ntime: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d\n")


@pytest.fixture
def probe(tmp_path):
    """``probe(*overrides, lightning=False)``: run the probe task in a subprocess, with its
    output folders under ``tmp_path/outputs``; return the finished process."""
    (tmp_path / "probe.py").write_text(PROBE)
    (tmp_path / "probe.yaml").write_text(CONFIG.format(config_dir=CONFIG_DIR))

    def _run(*overrides, lightning=False):
        env = {k: v for k, v in os.environ.items() if k != "PROBE_LIGHTNING"}
        if lightning:
            env["PROBE_LIGHTNING"] = "1"
        command = [sys.executable, str(tmp_path / "probe.py"), *overrides,
                   f"paths.log_dir={tmp_path / 'outputs'}"]  # fmt: skip
        return subprocess.run(
            command, capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env
        )

    return _run


def lines(text):
    return [line for line in text.splitlines() if line.strip()]


def errors(text):
    return [line for line in text.splitlines() if line.startswith("error: ")]


def marker(folder):
    match = MARKER.fullmatch((folder / FAILED_FILE).read_text())
    assert match, (folder / FAILED_FILE).read_text()
    return match["error"]


def test_the_log_file_holds_every_message_the_console_shows_bare(probe, tmp_path):
    result = probe(f"hydra.run.dir={tmp_path / 'run'}", lightning=True)
    assert result.returncode == 0, result.stderr
    assert lines(result.stdout) == ["probe info", "Seed set to 3"]  # Lightning's too, no prefix
    assert "probe warning" in lines(result.stderr)
    assert "probe info" not in result.stderr and "probe warning" not in result.stdout
    log = (tmp_path / "run" / "probe.log").read_text().splitlines()
    assert [re.sub(STAMP, "[time]", line) for line in log] == [
        "[time][probe][INFO] - probe info",
        "[time][probe][WARNING] - probe warning",
        "[time][lightning_fabric.utilities.seed][INFO] - Seed set to 3",
    ]
    assert not (tmp_path / "run" / FAILED_FILE).exists()


def test_hydra_job_logging_disabled_still_works(probe, tmp_path):
    result = probe(f"hydra.run.dir={tmp_path / 'run'}", "hydra/job_logging=disabled")
    assert result.returncode == 0, result.stderr
    assert "probe info" not in result.stdout and "probe warning" not in result.stderr
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [".hydra", "results.txt"]


def test_a_config_error_prints_one_line_and_leaves_no_folder(probe, tmp_path):
    result = probe("mode=config_error")  # the default run folder, under tmp_path/outputs
    assert result.returncode == 1
    assert result.stderr == "error: probe.size: must be an integer, got 'abc'\n"
    runs = tmp_path / "outputs" / "probe" / "runs"
    assert runs.is_dir() and not list(runs.iterdir())


@pytest.mark.parametrize(
    ("mode", "error", "code"),
    [
        ("work_error", "FileNotFoundError: probe: no such file /nowhere", 1),
        ("crash", "RuntimeError: probe crashed", 1),
        ("interrupt", "Interrupted: interrupted by SIGINT", 130),  # 128 + SIGINT, as a shell
    ],
)
def test_a_run_that_failed_after_work_began_is_marked(probe, tmp_path, mode, error, code):
    folder = tmp_path / "run"
    result = probe(f"mode={mode}", f"hydra.run.dir={folder}")
    assert result.returncode == code
    assert sorted(p.name for p in folder.iterdir()) == [
        ".hydra", FAILED_FILE, "probe.log", "results.txt",
    ]  # fmt: skip
    assert marker(folder) == error
    log = (folder / "probe.log").read_text()
    if mode == "work_error":  # a known error: one line, no traceback
        assert errors(result.stderr) == ["error: probe: no such file /nowhere"]
        assert "Traceback" not in result.stderr + log
        assert re.search(rf"{STAMP}\[nercc.runtime.wrapper\]\[ERROR\] - error: probe: no such", log)
    elif mode == "interrupt":  # one line, the signal named
        assert errors(result.stderr) == [
            f"error: interrupted by SIGINT (the run did not finish; kept in {folder}: results.txt)"
        ]
    else:  # Hydra or Python prints the traceback; the log file has it too
        assert errors(result.stderr) == [] and "Traceback" in result.stderr
        assert f"[nercc.runtime.wrapper][ERROR] - error: {error}\nTraceback" in log


def test_a_multirun_goes_on_and_marks_its_failed_jobs(probe, tmp_path):
    sweep = tmp_path / "sweep"
    result = probe("-m", "mode=ok,config_error,work_error", f"hydra.sweep.dir={sweep}")
    assert result.returncode == 1  # the basic sweeper raises once its batch is done
    assert errors(result.stderr) == [
        "error: probe.size: must be an integer, got 'abc'",
        "error: probe: no such file /nowhere",
        "error: job 1 of the sweep failed (ConfigError: probe.size: must be an integer, got "
        f"'abc'); every job: {sweep / 'multirun.csv'}",  # the sweep's end: one line, no traceback
    ]
    jobs = [json.loads((sweep / str(n) / "job.json").read_text()) for n in range(3)]
    assert [j["status"] for j in jobs] == ["completed", "failed", "failed"]
    assert jobs[0]["objective"] == 1.5 and not (sweep / "0" / FAILED_FILE).exists()
    assert (sweep / "0" / "results.txt").is_file()
    # the config error's folder is kept (job.json and the table point at it), marked as the other
    assert sorted(p.name for p in (sweep / "1").iterdir()) == [
        ".hydra", FAILED_FILE, "job.json", "probe.log",
    ]  # fmt: skip
    for n in (1, 2):
        assert marker(sweep / str(n)) == jobs[n]["error"]
    assert jobs[1]["error"] == "ConfigError: probe.size: must be an integer, got 'abc'"
    table = (sweep / "multirun.csv").read_text().splitlines()
    assert [row.split(",")[:2] for row in table] == [
        ["job", "status"], ["0", "completed"], ["1", "failed"], ["2", "failed"],
    ]  # fmt: skip


def test_eval_without_its_checkpoint_fails_in_one_line_and_leaves_no_folder(tmp_path):
    folder = tmp_path / "runs" / "eval"
    result = subprocess.run(
        [sys.executable, "-m", "nercc.eval", "data=synthetic", "logger=none",
         f"paths.checkpoint_dir={tmp_path / 'nonexistent'}", f"paths.log_dir={tmp_path / 'out'}",
         f"hydra.run.dir={folder}"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1
    assert errors(result.stderr) == lines(result.stderr), result.stderr
    (line,) = errors(result.stderr)
    assert "no trained lenet5 for synthetic" in line and str(tmp_path / "nonexistent") in line
    assert not folder.exists() and folder.parent.is_dir()
    assert not (tmp_path / "out").exists()


def start_probe(tmp_path, *overrides):
    """Start the probe (written by the ``probe`` fixture) without waiting for it."""
    command = [sys.executable, str(tmp_path / "probe.py"), *overrides,
               f"paths.log_dir={tmp_path / 'outputs'}"]  # fmt: skip
    return subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for(path, process, timeout=120.0):
    """Wait until ``path`` exists (the probe's ``ready`` file); fail if the process ends first."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_ends_the_run_as_failed_with_its_status(probe, tmp_path, signum, code):
    probe("mode=ok", f"hydra.run.dir={tmp_path / 'warm'}")  # writes probe.py, warms the imports
    folder = tmp_path / "run"
    process = start_probe(tmp_path, "mode=sleep", f"hydra.run.dir={folder}")
    wait_for(folder / "ready", process)
    process.send_signal(signum)
    out, err = process.communicate(timeout=120)
    assert process.returncode == code, err
    name = signal.Signals(signum).name
    assert errors(err) == [
        f"error: interrupted by {name} (the run did not finish; kept in {folder}: ready, "
        "results.txt)"
    ]
    assert "Traceback" not in err
    assert marker(folder) == f"Interrupted: interrupted by {name}"
    assert (folder / "results.txt").read_text() == "work\n"  # what was done is kept
    assert not list(folder.glob(".running-*"))


def test_a_sigterm_in_a_sweep_records_the_job_and_a_resumed_sweep_skips_finished_jobs(
    probe, tmp_path
):
    probe("mode=ok", f"hydra.run.dir={tmp_path / 'warm'}")
    sweep = tmp_path / "sweep"
    process = start_probe(tmp_path, "-m", "mode=ok,sleep,ok", f"hydra.sweep.dir={sweep}")
    wait_for(sweep / "1" / "ready", process)
    process.terminate()  # SIGTERM, as a scheduler's preemption
    _, err = process.communicate(timeout=120)
    assert process.returncode == 143, err
    jobs = {n: json.loads((sweep / str(n) / "job.json").read_text()) for n in (0, 1)}
    assert jobs[0]["status"] == "completed"
    assert jobs[1]["status"] == "failed"
    assert jobs[1]["error"] == "Interrupted: interrupted by SIGTERM" == marker(sweep / "1")
    assert not (sweep / "2").exists()  # the sweep stopped at the signal
    table = (sweep / "multirun.csv").read_text().splitlines()
    assert [row.split(",")[:2] for row in table] == [
        ["job", "status"], ["0", "completed"], ["1", "failed"],
    ]  # fmt: skip
    assert (tmp_path / "ran.txt").read_text().splitlines() == ["ok", "ok"]  # warm, 0
    # Resumed into the same folder, with the slow job fixed by hand: only jobs 1 and 2 run again.
    jobs_file = sweep / "1" / "job.json"
    jobs_file.unlink()
    result = probe("-m", "mode=ok,ok,ok", f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "ran.txt").read_text().splitlines() == ["ok"] * 4
    table = (sweep / "multirun.csv").read_text().splitlines()
    assert [row.split(",")[:2] for row in table] == [
        ["job", "status"], ["0", "completed"], ["1", "completed"], ["2", "completed"],
    ]  # fmt: skip
    assert not (sweep / "1" / FAILED_FILE).exists()


def test_a_resumed_job_runs_again_when_its_overrides_differ(probe, tmp_path):
    sweep = tmp_path / "sweep"
    assert probe("-m", "mode=ok", f"hydra.sweep.dir={sweep}").returncode == 0
    assert probe("-m", "mode=ok", f"hydra.sweep.dir={sweep}").returncode == 0  # skipped
    assert probe("-m", "mode=crash", f"hydra.sweep.dir={sweep}").returncode != 0  # another job
    assert (tmp_path / "ran.txt").read_text().splitlines() == ["ok"]
    assert json.loads((sweep / "0" / "job.json").read_text())["status"] == "failed"


def test_runs_started_in_the_same_second_get_their_own_folders(probe, tmp_path):
    probe("mode=ok", f"hydra.run.dir={tmp_path / 'warm'}")
    processes = [start_probe(tmp_path, "mode=ok") for _ in range(4)]
    for process in processes:
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
    runs = sorted((tmp_path / "outputs" / "probe" / "runs").iterdir())
    assert len(runs) == 4
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_[0-9a-f]{8}", r.name) for r in runs)
    for run in runs:
        assert (run / "results.txt").read_text() == "work\n"
        assert (run / "probe.log").read_text().count("probe info") == 1  # one run wrote it


@pytest.fixture
def full_disk(tmp_path):
    """A 1 MiB tmpfs at ``tmp_path/full`` (root can mount one, as CI runs; skipped elsewhere)."""
    folder = tmp_path / "full"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_full_disk_is_one_line_naming_the_folder_and_keeps_what_was_written(
    probe, tmp_path, full_disk
):
    folder = full_disk / "run"
    result = probe("mode=fill", f"hydra.run.dir={folder}")
    assert result.returncode == 1, result.stderr
    assert errors(result.stderr) == [
        f"error: cannot write in {folder}: no space left on the device "
        "(files written before this one are kept whole)"
    ]
    assert "Traceback" not in result.stderr
    assert (folder / "results.txt").read_text() == "work\n"
    assert not (folder / "big.txt").exists() and not list(folder.glob(".big.txt.*"))
    assert marker(folder).startswith("OSError: [Errno 28] No space left on device")


def test_a_sigterm_to_a_parallel_sweep_marks_its_running_jobs_failed(probe, tmp_path):
    probe("mode=ok", f"hydra.run.dir={tmp_path / 'warm'}")
    sweep = tmp_path / "sweep"
    process = start_probe(
        tmp_path, "-m", "mode=sleep,sleep", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
        f"hydra.sweep.dir={sweep}",
    )  # fmt: skip
    wait_for(sweep / "0" / "ready", process)
    wait_for(sweep / "1" / "ready", process)
    process.terminate()  # the sweep's own process only: its workers run the jobs
    _, err = process.communicate(timeout=120)
    assert process.returncode == 143, err
    assert "error: the sweep was interrupted by SIGTERM" in err.splitlines()
    line = "Interrupted: the sweep was interrupted by SIGTERM"
    for job in (0, 1):
        record = json.loads((sweep / str(job) / "job.json").read_text())
        assert (record["status"], record["error"]) == ("failed", line)
        assert marker(sweep / str(job)) == line
    table = (sweep / "multirun.csv").read_text().splitlines()
    assert [row.split(",")[:2] for row in table] == [
        ["job", "status"], ["0", "failed"], ["1", "failed"],
    ]  # fmt: skip
