"""scripts/gpu_check.py --smoke: every step of the prepared GPU run, on the CPU, with what the GPU
image has (W&B, Ray and Optuna made unimportable), gives its JSON without an error."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

BLOCKER = """
import importlib.abc, sys
class _Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("wandb", "ray", "optuna"):
            raise ModuleNotFoundError(f"No module named {name!r} (absent on the GPU image)")
sys.meta_path.insert(0, _Absent())
"""


@pytest.mark.slow
def test_the_smoke_run_gives_every_step(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(BLOCKER)
    out = tmp_path / "gpu_check.json"
    done = subprocess.run(
        [sys.executable, "scripts/gpu_check.py", "--smoke", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={"PYTHONPATH": f"{tmp_path}:{ROOT / 'src'}", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert json.loads(done.stdout.strip().splitlines()[-1]) == result
    for name in ("device", "tests", "training", "forward_ratio", "comparisons"):
        assert "error" not in result[name], (name, result[name])
    assert result["tests"]["skipped"] >= 30 and result["tests"]["failed"] == 0
    assert set(result["training"]) >= {"lenet5", "repvgg", "vit"}
    assert all("error" not in v for k, v in result["training"].items() if k != "step_s")
    assert result["forward_ratio"]["lenet5"]["forward_ratio"] > 1
    comparisons = result["comparisons"]
    assert comparisons["cpu_vs_gpu"]["same_cells"] and comparisons["ddp_vs_gpu"]["mse_within_1e-4"]
