"""The task wrapper and the W&B group resolver, in a single run and in one job of a multirun."""

import math

import pytest
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import OmegaConf, open_dict, read_write

from nercc.config import check_objective_finite, error_line, task_wrapper, wandb_group
from tests.wandb_offline import records


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


def test_multirun_reraises_the_known_error_after_one_line(hydra_mode, capsys):
    cfg = hydra_mode(RunMode.MULTIRUN)
    error = FileNotFoundError("no checkpoint lenet5_synthetic.ckpt")
    with pytest.raises(FileNotFoundError) as raised:
        failing(error)(cfg)
    assert raised.value is error
    assert capsys.readouterr().err == "error: no checkpoint lenet5_synthetic.ckpt\n"


@pytest.mark.parametrize("mode", [None, RunMode.RUN, RunMode.MULTIRUN])
def test_unknown_errors_are_reraised_as_they_are(hydra_mode, capsys, mode):
    cfg = hydra_mode(mode)
    with pytest.raises(RuntimeError, match="CUDA out of memory"):
        failing(RuntimeError("CUDA out of memory"))(cfg)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_non_finite_objective_never_reaches_a_sweeper(hydra_mode, capsys, value):
    cfg = hydra_mode(RunMode.MULTIRUN)
    with pytest.raises(ValueError, match="must be a finite number") as raised:
        returning(value)(cfg)
    expected = f"optimized_metric 'coded/nercc/mse' must be a finite number, got {value}"
    assert str(raised.value) == expected
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

    with pytest.raises(ValueError):
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
