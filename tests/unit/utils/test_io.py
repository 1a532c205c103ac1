"""Atomic result files."""

import json

import pytest

from nercc.utils.io import write_csv, write_json, write_text_atomic


class Unserialisable:
    pass


def test_json_and_csv_round_trip(tmp_path):
    rows = [{"scheme": "bacc", "mse": 0.5}, {"scheme": "nercc", "mse": 0.25}]
    write_json(tmp_path / "r.json", rows)
    write_csv(tmp_path / "sub" / "r.csv", rows)
    assert json.loads((tmp_path / "r.json").read_text()) == rows
    assert (tmp_path / "sub" / "r.csv").read_text() == "scheme,mse\nbacc,0.5\nnercc,0.25\n"


def test_failed_write_keeps_old_file_and_leaves_no_temporary(tmp_path):
    target = write_text_atomic(tmp_path / "r.json", "old")
    with pytest.raises(TypeError):
        write_json(target, {"x": Unserialisable()})
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_empty_rows_are_refused(tmp_path):
    with pytest.raises(ValueError, match="rows"):
        write_csv(tmp_path / "r.csv", [])


def test_interrupted_rename_removes_temporary(tmp_path, monkeypatch):
    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr("nercc.utils.io.os.replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        write_text_atomic(tmp_path / "r.json", "new")
    assert list(tmp_path.iterdir()) == []
