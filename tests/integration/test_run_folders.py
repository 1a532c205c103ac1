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

import pytest

from nercc.config import FAILED_FILE
from nercc.paths import CONFIG_DIR

PROBE = """
import logging
import os
from pathlib import Path

import hydra

if os.environ.get("PROBE_LIGHTNING"):  # imported before logging is set up, as by the entry points
    import pytorch_lightning  # noqa: F401

from nercc.config import task_wrapper
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
        ("interrupt", "KeyboardInterrupt", -signal.SIGINT),  # Python ends by the signal
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
        assert re.search(rf"{STAMP}\[nercc.config\]\[ERROR\] - error: probe: no such", log)
    else:  # Hydra or Python prints the traceback; the log file has it too
        assert errors(result.stderr) == [] and "Traceback" in result.stderr
        assert f"[nercc.config][ERROR] - error: {error}\nTraceback" in log


def test_a_multirun_goes_on_and_marks_its_failed_jobs(probe, tmp_path):
    sweep = tmp_path / "sweep"
    result = probe("-m", "mode=ok,config_error,work_error", f"hydra.sweep.dir={sweep}")
    assert result.returncode == 1  # the basic sweeper raises once its batch is done
    assert errors(result.stderr) == [
        "error: probe.size: must be an integer, got 'abc'",
        "error: probe: no such file /nowhere",
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
