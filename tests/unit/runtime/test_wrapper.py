"""The task wrapper, the console filter of the jobs' logging and the W&B group resolver, in a single
run and in one job of a multirun."""

import errno
import json
import logging
import math
import os
import pickle
import re
import signal
import time

import pytest
from hydra.core.hydra_config import HydraConfig
from hydra.errors import CompactHydraException
from hydra.types import RunMode
from omegaconf import OmegaConf, open_dict, read_write

from nercc.runtime.logs import FILE_ONLY, ConsoleFilter, error_line, failure_line
from nercc.runtime.multirun import JobFailed
from nercc.runtime.resolvers import wandb_group
from nercc.runtime.run_folders import FAILED_FILE, mark_failed
from nercc.runtime.signals import Interrupted
from nercc.runtime.wrapper import check_objective_finite, task_wrapper
from nercc.utils.errors import ConfigError
from tests.wandb_offline import records

MARKER = re.compile(r"error: (?P<error>.+)\ntime: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d\n")


@pytest.fixture
def hydra_mode(compose_config, tmp_path):
    """``hydra_mode(RunMode.MULTIRUN)``: the eval config, with Hydra's config set in that mode
    (None: no Hydra config at all, as when a task is called directly)."""
    saved = HydraConfig.instance().cfg

    def _set(mode):
        cfg = compose_config("eval", ["data=synthetic", "logger=wandb"])
        with read_write(cfg.hydra):
            cfg.hydra.mode = mode
            cfg.hydra.sweep.dir = str(tmp_path / "sweep-7")
        if mode is None:
            HydraConfig.instance().cfg = None
        else:
            HydraConfig.instance().set_config(cfg)
        with open_dict(cfg):
            del cfg["hydra"]
        return cfg

    yield _set
    HydraConfig.instance().cfg = saved


def failing(error):
    @task_wrapper
    def task(cfg):
        raise error

    return task


def returning(value):
    @task_wrapper
    def task(cfg):
        return value

    return task


@pytest.mark.parametrize("mode", [None, RunMode.RUN])
def test_single_run_prints_one_line_and_exits_1(hydra_mode, capsys, mode):
    cfg = hydra_mode(mode)
    with pytest.raises(SystemExit) as exit_info:
        failing(ValueError("scheme.nercc.lam_dec must be >= 0,\n  got -1.0"))(cfg)
    assert exit_info.value.code == 1
    assert capsys.readouterr().err == "error: scheme.nercc.lam_dec must be >= 0, got -1.0\n"


def test_multirun_raises_one_compact_line_for_the_sweep_after_the_jobs_line(hydra_mode, capsys):
    cfg = hydra_mode(RunMode.MULTIRUN)
    error = FileNotFoundError("no checkpoint lenet5_synthetic.ckpt")
    with pytest.raises(JobFailed) as raised:
        failing(error)(cfg)
    assert raised.value.__cause__ is error
    assert raised.value.line == "FileNotFoundError: no checkpoint lenet5_synthetic.ckpt"
    assert isinstance(raised.value, CompactHydraException)  # Hydra prints its message alone
    assert "\n" not in str(raised.value) and raised.value.line in str(raised.value)
    assert capsys.readouterr().err == "error: no checkpoint lenet5_synthetic.ckpt\n"
    shipped = pickle.loads(pickle.dumps(raised.value))  # as joblib and submitit ship it back
    assert (type(shipped), str(shipped), shipped.line) == (
        JobFailed,
        str(raised.value),
        raised.value.line,
    )


@pytest.mark.parametrize("mode", [None, RunMode.RUN, RunMode.MULTIRUN])
def test_unknown_errors_are_reraised_as_they_are(hydra_mode, capsys, mode):
    cfg = hydra_mode(mode)
    with pytest.raises(RuntimeError, match="CUDA out of memory"):
        failing(RuntimeError("CUDA out of memory"))(cfg)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_non_finite_objective_never_reaches_a_sweeper(hydra_mode, capsys, value):
    cfg = hydra_mode(RunMode.MULTIRUN)
    with pytest.raises(JobFailed, match="must be a finite number") as raised:
        returning(value)(cfg)
    expected = f"optimized_metric 'coded/nercc/mse' must be a finite number, got {value}"
    assert str(raised.value.__cause__) == expected
    assert capsys.readouterr().err == f"error: {expected}\n"
    cfg = hydra_mode(RunMode.RUN)
    with pytest.raises(SystemExit):
        returning(value)(cfg)


@pytest.mark.parametrize("value", [0.25, 3, None, {"rows": []}, "text"])
def test_other_return_values_pass_unchanged(hydra_mode, value):
    cfg = hydra_mode(RunMode.MULTIRUN)
    assert returning(value)(cfg) == value
    assert check_objective_finite(value) == value


def test_the_wandb_run_is_finished_and_marked_failed(hydra_mode, tmp_path):
    import wandb

    cfg = hydra_mode(RunMode.MULTIRUN)

    @task_wrapper
    def task(cfg):
        wandb.init(mode="offline", dir=str(tmp_path), project="nercc")
        raise ValueError("bad")

    with pytest.raises(JobFailed):
        task(cfg)
    assert wandb.run is None
    (run,) = (tmp_path / "wandb").glob("offline-run-*/run-*.wandb")
    exits = [r.exit.exit_code for r in records(run) if r.WhichOneof("record_type") == "exit"]
    assert exits == [1]


def test_error_line_joins_lines_and_names_an_empty_error():
    assert error_line(ValueError("a\n\n  b ")) == "a b"
    assert error_line(KeyError()) == "KeyError"


def test_wandb_group_is_one_per_sweep(hydra_mode):
    assert wandb_group("eval") == "eval"  # no Hydra config
    cfg = hydra_mode(RunMode.RUN)
    assert cfg.logger.wandb.group == "eval"
    cfg = hydra_mode(RunMode.MULTIRUN)
    assert cfg.logger.wandb.group == "eval-sweep-7"
    assert OmegaConf.to_container(cfg.logger, resolve=True)["wandb"]["group"] == "eval-sweep-7"


def test_failure_line_names_the_type_once():
    assert failure_line(ValueError("bad\n lambda")) == "ValueError: bad lambda"
    assert failure_line(KeyboardInterrupt()) == "KeyboardInterrupt"
    assert failure_line(SystemExit(1)) == "SystemExit: 1"


def _record(level, **extra):
    record = logging.LogRecord("nercc.eval", level, __file__, 1, "message", None, None)
    record.__dict__.update(extra)
    return record


def test_console_filter_splits_levels_and_skips_file_only_records():
    stdout, stderr = ConsoleFilter(below="WARNING"), ConsoleFilter()
    levels = [logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL]
    assert [stdout.filter(_record(level)) for level in levels] == [True, True, False, False, False]
    assert all(stderr.filter(_record(level)) for level in levels)
    for console in (stdout, stderr):
        assert not console.filter(_record(logging.INFO, **FILE_ONLY))
        assert not console.filter(_record(logging.ERROR, **FILE_ONLY))
    assert ConsoleFilter(below=logging.ERROR).below == logging.ERROR
    with pytest.raises(ValueError, match="below must name a logging level, got 'LOUD'"):
        ConsoleFilter(below="LOUD")


def test_job_logging_is_nercc_unless_the_command_line_chooses_another(compose_config, tmp_path):
    logging_cfg = compose_config("eval").hydra.job_logging
    assert logging_cfg.root == {"level": "INFO", "handlers": ["stdout", "stderr", "file"]}
    assert logging_cfg.handlers.file.filename == str(tmp_path / "run" / "app.log")
    assert logging_cfg.formatters.message.format == "%(message)s"
    assert (logging_cfg.handlers.stdout.stream, logging_cfg.handlers.stderr.stream) == (
        "ext://sys.stdout", "ext://sys.stderr",
    )  # fmt: skip
    assert logging_cfg.filters.below_warning["()"] == "nercc.runtime.logs.ConsoleFilter"
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
        assert logging_cfg.loggers[name].propagate is True
    disabled = compose_config("eval", ["hydra/job_logging=disabled"]).hydra.job_logging
    assert OmegaConf.to_container(disabled) == {
        "version": 1, "root": {"level": "ERROR"}, "disable_existing_loggers": True,
    }  # fmt: skip
    default = compose_config("train", ["hydra/job_logging=default"]).hydra.job_logging
    assert default.root.handlers == ["console", "file"]


def run_folder(tmp_path, *extra):
    """The folder Hydra makes for a run of the composed config (job name ``app``): its
    ``.hydra/`` and log file, and ``extra`` files standing for the work done."""
    folder = tmp_path / "run"
    (folder / ".hydra").mkdir(parents=True)
    for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
        (folder / ".hydra" / name).write_text("{}\n")
    (folder / "app.log").write_text("")
    for name in extra:
        (folder / name).write_text("work\n")
    return folder


@pytest.fixture
def log_file():
    """``log_file(path)``: a file handler on the root logger, as Hydra's job logging adds one;
    removed at the end if the wrapper left it."""
    handlers = []

    def _add(path):
        handler = logging.FileHandler(path)
        logging.getLogger().addHandler(handler)
        handlers.append(handler)
        return handler

    yield _add
    for handler in handlers:
        logging.getLogger().removeHandler(handler)
        handler.close()


def test_a_single_run_that_failed_before_any_work_leaves_no_folder(hydra_mode, tmp_path, log_file):
    cfg = hydra_mode(RunMode.RUN)
    folder = run_folder(tmp_path)
    handler = log_file(folder / "app.log")
    with pytest.raises(SystemExit):
        failing(ConfigError("eval.batch_size", "must be an integer", "abc"))(cfg)
    assert not folder.exists() and tmp_path.is_dir()
    assert handler not in logging.getLogger().handlers and handler.stream is None  # closed


def test_the_error_line_is_logged_past_the_console(hydra_mode, caplog, capsys):
    cfg = hydra_mode(RunMode.RUN)
    with caplog.at_level(logging.INFO), pytest.raises(SystemExit):
        failing(ValueError("bad"))(cfg)
    (record,) = [r for r in caplog.records if r.name == "nercc.runtime.wrapper"]
    assert (record.levelname, record.getMessage()) == ("ERROR", "error: bad")
    assert record.nercc_file_only is True and not ConsoleFilter().filter(record)
    assert capsys.readouterr().err == "error: bad\n"  # printed once, by the wrapper


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (FileNotFoundError("no checkpoint lenet5_synthetic.ckpt"),
         "FileNotFoundError: no checkpoint lenet5_synthetic.ckpt"),
        (RuntimeError("CUDA out of\nmemory"), "RuntimeError: CUDA out of memory"),
        (KeyboardInterrupt(), "Interrupted: interrupted by SIGINT"),
        (SystemExit("stopped"), "SystemExit: stopped"),
    ],
)  # fmt: skip
def test_a_run_that_did_work_is_marked_failed(hydra_mode, tmp_path, error, line):
    cfg = hydra_mode(RunMode.RUN)
    folder = run_folder(tmp_path, "results.csv")
    with pytest.raises((type(error), SystemExit)):
        failing(error)(cfg)
    assert sorted(p.name for p in folder.iterdir()) == [
        ".hydra",
        FAILED_FILE,
        "app.log",
        "results.csv",
    ]
    match = MARKER.fullmatch((folder / FAILED_FILE).read_text())
    assert match and match["error"] == line
    assert not list(folder.glob(".*.tmp"))


@pytest.mark.parametrize(
    "layout",
    ["results.csv", ".hydra/notes.txt", "wandb/", "app.log/", "other.log"],
)
def test_a_folder_holding_anything_else_is_never_removed(hydra_mode, tmp_path, layout):
    cfg = hydra_mode(RunMode.RUN)
    folder = run_folder(tmp_path)
    if layout == "app.log/":
        (folder / "app.log").unlink()
        (folder / "app.log").mkdir()
    elif layout.endswith("/"):
        (folder / layout).mkdir()
    else:
        (folder / layout).write_text("x")
    with pytest.raises(SystemExit):
        failing(ValueError("bad"))(cfg)
    assert MARKER.fullmatch((folder / FAILED_FILE).read_text())["error"] == "ValueError: bad"


def test_the_working_folder_is_never_removed(hydra_mode, tmp_path, monkeypatch):
    cfg = hydra_mode(RunMode.RUN)
    folder = run_folder(tmp_path)
    monkeypatch.chdir(folder)
    with pytest.raises(SystemExit):
        failing(ValueError("bad"))(cfg)
    assert (folder / FAILED_FILE).is_file()


def test_a_multirun_job_keeps_its_folder_and_marks_it(hydra_mode, tmp_path):
    cfg = hydra_mode(RunMode.MULTIRUN)
    folder = run_folder(tmp_path)
    with pytest.raises(JobFailed, match="bad"):
        failing(ValueError("bad"))(cfg)
    assert sorted(p.name for p in folder.iterdir()) == [".hydra", FAILED_FILE, "app.log"]
    assert MARKER.fullmatch((folder / FAILED_FILE).read_text())["error"] == "ValueError: bad"


def test_success_clears_a_stale_marker_and_no_folder_is_touched_outside_hydra(hydra_mode, tmp_path):
    cfg = hydra_mode(RunMode.RUN)
    folder = run_folder(tmp_path)
    mark_failed(folder, "ValueError: an earlier run")
    assert returning(0.5)(cfg) == 0.5
    assert not (folder / FAILED_FILE).exists()
    cfg = hydra_mode(None)  # a task called directly, as the tests do
    with pytest.raises(SystemExit):
        failing(ValueError("bad"))(cfg)
    assert sorted(p.name for p in folder.iterdir()) == [".hydra", "app.log"]


def test_sigterm_interrupts_the_task_marks_the_run_and_exits_143(hydra_mode, tmp_path, capsys):
    cfg = hydra_mode(RunMode.RUN)
    folder = run_folder(tmp_path, "results.csv")
    before = signal.getsignal(signal.SIGTERM)

    @task_wrapper
    def task(cfg):
        os.kill(os.getpid(), signal.SIGTERM)  # as a scheduler's preemption or `timeout` sends
        time.sleep(5)  # never reached: the handler raises at once
        return 1.0

    with pytest.raises(SystemExit) as exit_info:
        task(cfg)
    assert exit_info.value.code == 143
    assert MARKER.fullmatch((folder / FAILED_FILE).read_text())["error"] == (
        "Interrupted: interrupted by SIGTERM"
    )
    assert (folder / "results.csv").is_file()  # what was done before the signal is kept
    assert capsys.readouterr().err == (
        f"error: interrupted by SIGTERM (the run did not finish; kept in {folder}: results.csv)\n"
    )
    assert signal.getsignal(signal.SIGTERM) is before  # the previous handler is back


def test_lightnings_sigterm_exception_is_a_failure_not_a_success(hydra_mode, tmp_path):
    from pytorch_lightning.utilities.exceptions import SIGTERMException

    cfg = hydra_mode(RunMode.RUN)
    folder = run_folder(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        failing(SIGTERMException())(cfg)  # a SystemExit whose code is None
    assert exit_info.value.code == 143
    assert "SIGTERM" in (folder / FAILED_FILE).read_text()


def test_sigint_exits_130(hydra_mode, tmp_path):
    cfg = hydra_mode(RunMode.RUN)
    run_folder(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        failing(KeyboardInterrupt())(cfg)
    assert exit_info.value.code == 130


def test_interrupted_pickles_and_names_its_signal():
    error = pickle.loads(pickle.dumps(Interrupted(signal.SIGTERM)))
    assert (str(error), error.exit_code) == ("interrupted by SIGTERM", 143)
    assert not isinstance(error, Exception)  # no `except Exception` swallows it


@pytest.mark.parametrize("wrap", [False, True])
def test_a_full_disk_is_one_line_naming_the_folder(hydra_mode, tmp_path, capsys, wrap):
    cfg = hydra_mode(RunMode.RUN)
    folder = run_folder(tmp_path, "results.csv")
    full = OSError(errno.ENOSPC, "No space left on device", str(folder / "plot.png"))
    error = full
    if wrap:  # as libraries re-raise it (torch.save: RuntimeError from the OSError)
        try:
            try:
                raise full
            except OSError as inner:
                raise RuntimeError("PytorchStreamWriter failed writing file") from inner
        except RuntimeError as outer:
            error = outer
    with pytest.raises(SystemExit) as exit_info:
        failing(error)(cfg)
    assert exit_info.value.code == 1
    assert capsys.readouterr().err == (
        f"error: cannot write in {folder}: no space left on the device "
        "(files written before this one are kept whole)\n"
    )
    assert (folder / "results.csv").is_file() and (folder / FAILED_FILE).is_file()


def test_other_os_errors_keep_their_traceback(hydra_mode, tmp_path, capsys):
    cfg = hydra_mode(RunMode.RUN)
    run_folder(tmp_path)
    with pytest.raises(PermissionError):
        failing(PermissionError(errno.EACCES, "Permission denied"))(cfg)
    assert capsys.readouterr().err == ""


def test_a_ctrl_c_that_lightning_turned_into_exit_1_is_still_an_interruption(hydra_mode, tmp_path):
    cfg = hydra_mode(RunMode.RUN)
    folder = run_folder(tmp_path)

    @task_wrapper
    def task(cfg):
        try:  # what Lightning's _call_and_handle_interrupt does with a KeyboardInterrupt
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise SystemExit(1)  # noqa: B904 - as Lightning raises it

    with pytest.raises(SystemExit) as exit_info:
        task(cfg)
    assert exit_info.value.code == 130
    assert "SIGINT" in (folder / FAILED_FILE).read_text()


def test_a_multirun_job_ending_by_system_exit_records_its_row(hydra_mode, tmp_path):
    cfg = hydra_mode(RunMode.MULTIRUN)
    with read_write(HydraConfig.get()):
        HydraConfig.get().job.num = 4  # as Hydra sets it in a job
    folder = run_folder(tmp_path)
    with pytest.raises(SystemExit):
        failing(SystemExit(3))(cfg)
    record = json.loads((folder / "job.json").read_text())
    assert (record["job"], record["status"], record["error"]) == (4, "failed", "SystemExit: 3")
    assert MARKER.fullmatch((folder / FAILED_FILE).read_text())["error"] == "SystemExit: 3"


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_signal_whose_exception_python_dropped_still_fails_the_run(hydra_mode, tmp_path):
    cfg = hydra_mode(RunMode.RUN)
    folder = run_folder(tmp_path)

    class Finalised:
        def __del__(self):  # the handler's exception is raised here, printed and dropped
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.01)

    @task_wrapper
    def task(cfg):
        Finalised()
        return 1.0

    with pytest.raises(SystemExit) as exit_info:
        task(cfg)
    assert exit_info.value.code == 143
    assert "SIGTERM" in (folder / FAILED_FILE).read_text()


def test_a_full_disk_without_a_file_name_does_not_guess_the_folder(hydra_mode, tmp_path, capsys):
    cfg = hydra_mode(RunMode.RUN)
    run_folder(tmp_path)
    with pytest.raises(SystemExit):
        failing(OSError(errno.ENOSPC, "No space left on device"))(cfg)
    assert capsys.readouterr().err == (
        "error: cannot write a file: no space left on the device "
        "(files written before this one are kept whole)\n"
    )
