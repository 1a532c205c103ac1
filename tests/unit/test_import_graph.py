"""The layering of design.md holds: imports point down, no entry module is imported inside src/,
no import cycle (scripts/check_imports.py reads every import of the source)."""

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "check_imports.py"


def _checker():
    spec = importlib.util.spec_from_file_location("check_imports", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_source_imports_down_only_without_cycles(capsys):
    status = _checker().main()
    report = json.loads(capsys.readouterr().out)
    assert (report["upward"], report["entry_imported"], report["cycles"]) == ([], [], [])
    assert status == 0 and report["modules"] > 50


def test_the_checker_sees_an_upward_import_an_entry_import_and_a_cycle(
    tmp_path, monkeypatch, capsys
):
    checker = _checker()
    package = tmp_path / "nercc"
    (package / "coding").mkdir(parents=True)
    (package / "tasks").mkdir()
    for init in ("", "coding", "tasks"):
        (package / init / "__init__.py").write_text("")
    (package / "coding" / "a.py").write_text("from nercc.tasks.b import thing\n")
    (package / "tasks" / "b.py").write_text("import nercc.coding.a\nfrom nercc import eval\n")
    (package / "eval.py").write_text("")
    monkeypatch.setattr(checker, "SRC", tmp_path)
    assert checker.main() == 1
    report = json.loads(capsys.readouterr().out)
    assert report["upward"] == ["nercc.coding.a -> nercc.tasks.b", "nercc.tasks.b -> nercc.eval"]
    assert report["entry_imported"] == ["nercc.tasks.b -> nercc.eval"]
    assert report["cycles"] == ["nercc.coding.a -> nercc.tasks.b -> nercc.coding.a"]
