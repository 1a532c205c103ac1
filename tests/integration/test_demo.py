"""The coding demo: its Hydra config composes and runs, and its command line."""

import json
import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir

from nercc.paths import CONFIG_DIR
from nercc.tasks.demo import demo


def test_config_composes_and_runs(tmp_path):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(
            config_name="demo",
            overrides=["trials=3", "stragglers=[0,40]", f"output_dir={tmp_path}"],
        )
    metrics, objects = demo(cfg)
    rows = metrics["rows"]
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved == rows and len(rows) == 2 * (1 + len(cfg.nercc_lams))
    assert [r["num_stragglers"] for r in rows] == [0] * 3 + [40] * 3
    assert {(r["num_inputs"], r["num_workers"]) for r in rows} == {(20, 100)}  # coding.*
    assert objects["straggler"].func.__name__ == "FixedStragglers"  # straggler: fixed
    assert (tmp_path / "results.csv").read_text().startswith("scheme,num_inputs,num_workers")
    assert not list(tmp_path.glob(".*.tmp"))


def test_command_line_saves_resolved_config(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "nercc.demo",
            "trials=2",
            "stragglers=[5]",
            "coding.num_workers=60",
            "straggler=worst_case",
            f"hydra.run.dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "bacc" in result.stdout
    assert (tmp_path / ".hydra" / "config.yaml").exists()
    rows = json.loads((tmp_path / "results.json").read_text())
    assert {(r["num_stragglers"], r["num_workers"]) for r in rows} == {(5, 60)}


def test_command_line_reports_bad_config(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "nercc.demo", "stragglers=[100]", f"hydra.run.dir={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: stragglers: must be a non-empty list of integers >= 0 and "
        "<= coding.num_workers - 1 = 99, got [100]"
    )
    assert not (Path(tmp_path) / "results.json").exists()
