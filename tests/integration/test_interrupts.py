"""SIGTERM to the real commands while they work, as a scheduler's preemption or ``timeout``
sends it: the run ends as failed (status 143, a ``FAILED`` marker naming the signal), what it
had finished is kept and named, and nothing is published from an interrupted training."""

import re
import signal
import subprocess
import sys
import time

import pytest

from nercc.runtime.run_folders import FAILED_FILE

TERM_LINE = re.compile(r"error: interrupted by SIGTERM \(the run did not finish(; kept in .+)?\)")
LINE = r"error: interrupted by {} \(the run did not finish(; kept in .+)?\)"


def start(module, *overrides, cwd):
    command = [sys.executable, "-m", module, *overrides]
    return subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for(pattern, folder, process, timeout=240.0):
    """The first path matching ``pattern`` under ``folder``, once one exists."""
    deadline = time.monotonic() + timeout
    while True:
        found = sorted(folder.glob(pattern)) if folder.is_dir() else []
        if found:
            return found[0]
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"nothing matched {pattern} under {folder}"
        time.sleep(0.05)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_during_training_keeps_the_best_epoch_and_publishes_nothing(
    tmp_path, signum, code
):
    # Lightning turns a KeyboardInterrupt into sys.exit(1): Ctrl-C must still say SIGINT, 130
    run = tmp_path / "run"
    published = tmp_path / "published"
    process = start(
        "nercc.train", "data=synthetic", "logger=none", "trainer.max_epochs=200",
        "callbacks.early_stopping.patience=1000", "trainer.enable_progress_bar=false",
        f"paths.checkpoint_dir={published}", f"hydra.run.dir={run}", cwd=tmp_path,
    )  # fmt: skip
    checkpoint = wait_for("checkpoints/*.ckpt", run, process)  # an epoch has finished
    process.send_signal(signum)
    _, err = process.communicate(timeout=240)
    assert process.returncode == code, err[-3000:]
    (line,) = [line for line in err.splitlines() if line.startswith("error: ")]
    name = signal.Signals(signum).name
    assert re.fullmatch(LINE.format(name), line), line
    assert f"kept in {run}: checkpoints/" in line  # the best epoch's checkpoint is named
    assert any(path.is_file() for path in (run / "checkpoints").glob("*.ckpt"))
    assert checkpoint.parent == run / "checkpoints"
    assert (run / FAILED_FILE).read_text().startswith(f"error: Interrupted: interrupted by {name}")
    assert not list(published.glob("*.ckpt"))  # an interrupted training publishes nothing


def test_sigterm_during_an_evaluation_fails_it(checkpoints, tmp_path):
    run = tmp_path / "run"
    process = start(
        "nercc.eval", "data=synthetic", "logger=none", "coding.num_inputs=8",
        "coding.num_workers=20", "stragglers=[0,5]", "eval.batch_size=64",
        "eval.num_patterns=200", f"paths.checkpoint_dir={checkpoints}",
        f"paths.cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={run}", cwd=tmp_path,
    )  # fmt: skip
    wait_for(".running-*", run, process)  # the task has begun
    process.terminate()
    _, err = process.communicate(timeout=240)
    if process.returncode == 0:
        pytest.fail("the evaluation finished before the signal: make it longer")
    assert process.returncode == 143, err[-3000:]
    assert [line for line in err.splitlines() if line.startswith("error: ")] and TERM_LINE.search(
        err
    )
    assert "Traceback" not in err
    assert (run / FAILED_FILE).is_file()
    assert not (run / "results.json").exists()
