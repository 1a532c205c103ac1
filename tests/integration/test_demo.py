"""The coding demo: its task function, its Hydra config and its command line."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from nercc.demo import CONFIG_DIR, coding_demo, run

SMALL = dict(num_inputs=8, num_workers=30, stragglers=[0, 10], trials=5, features=6, logits=3)


def test_demo_rows_and_reproducibility():
    rows = coding_demo(**SMALL, nercc_lams=[(0.0, 0.0)], seed=3)
    assert [(r["scheme"], r["num_stragglers"]) for r in rows] == [
        ("bacc", 0),
        ("nercc(0, 0)", 0),
        ("bacc", 10),
        ("nercc(0, 0)", 10),
    ]
    assert rows == coding_demo(**SMALL, nercc_lams=[(0.0, 0.0)], seed=3)
    assert rows != coding_demo(**SMALL, nercc_lams=[(0.0, 0.0)], seed=4)
    mse = {(r["scheme"], r["num_stragglers"]): r["mse"] for r in rows}
    # Cubic splines approximate a smooth f far better than Berrut with every worker answering.
    assert mse[("nercc(0, 0)", 0)] < 0.5 * mse[("bacc", 0)]
    assert mse[("bacc", 10)] > mse[("bacc", 0)]


def test_demo_rejects_impossible_stragglers():
    with pytest.raises(ValueError, match="stragglers.*30"):
        coding_demo(**{**SMALL, "stragglers": [30]}, nercc_lams=[])


def test_config_composes_and_runs(tmp_path):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="demo", overrides=["trials=3", "stragglers=[0,40]"])
    rows = run(cfg, tmp_path)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved == rows and len(rows) == 2 * (1 + len(cfg.nercc_lams))
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
            f"hydra.run.dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "bacc" in result.stdout
    assert (tmp_path / ".hydra" / "config.yaml").exists()
    assert json.loads((tmp_path / "results.json").read_text())[0]["num_stragglers"] == 5


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
        "<= num_workers - 1 = 99, got [100]"
    )
    assert not (Path(tmp_path) / "results.json").exists()
