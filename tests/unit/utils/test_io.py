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


def test_a_write_that_fails_names_the_file_and_leaves_nothing(tmp_path, monkeypatch):
    import errno as errno_module
    import os as os_module

    def full(fd):
        raise OSError(errno_module.ENOSPC, "No space left on device")  # as write/fsync: no name

    target = tmp_path / "results.json"
    target.write_text("old\n")
    monkeypatch.setattr(os_module, "fsync", full)
    with pytest.raises(OSError) as raised:
        write_text_atomic(target, "new\n")
    assert raised.value.filename == str(target)
    assert target.read_text() == "old\n"  # the old file stays whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]  # no staged file left
