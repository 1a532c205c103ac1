"""Reading an offline W&B run file (``run-*.wandb``) in tests: config, summary and history.

The file is wandb's record log: a 7-byte header (``:W&B``, magic, version), then 32 KiB blocks of
records, each with a 7-byte header (CRC32, length, type: full, first, middle or last) and a
protobuf ``Record``. wandb 0.31 reads it in its Go core only, so the tests read it here.
"""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path
from typing import Any

from wandb.proto import wandb_internal_pb2

BLOCK = 32768
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: str | Path, finished: bool = True, timeout: float = 120.0) -> list[Any]:
    """Every protobuf Record of an offline run file, in order.

    wandb's core writes the file in its own process: ``wandb.finish()`` returns once the run's
    exit is handled, which can be before the last records reach the file (seen under load: a
    summary or the exit record missing). With ``finished`` (a run the test has finished), the
    file is read again until it holds the exit record, for at most ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        found = _read_records(path)
        if not finished or any(r.WhichOneof("record_type") == "exit" for r in found):
            return found
        assert time.monotonic() < deadline, f"{path} never got its exit record"
        time.sleep(0.05)


def _read_records(path: str | Path) -> list[Any]:
    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    offset, pending, found = HEADER, b"", []
    while offset + HEADER <= len(data):
        left = BLOCK - offset % BLOCK
        if left < HEADER:  # the block's tail is padding
            offset += left
            continue
        _, length, kind = struct.unpack("<IHB", data[offset : offset + HEADER])
        chunk = data[offset + HEADER : offset + HEADER + length]
        offset += HEADER + length
        if kind in (FULL, FIRST):
            pending = chunk
        else:
            pending += chunk
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            found.append(record)
    return found


def run_contents(path: str | Path) -> dict[str, Any]:
    """The run's group, its config and summary (merged updates, values decoded from JSON) and
    the keys of its history rows."""
    config: dict[str, Any] = {}
    summary: dict[str, Any] = {}
    history: set[str] = set()
    group = None
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            group = record.run.run_group or group
            for item in record.run.config.update:
                config[item.key or ".".join(item.nested_key)] = json.loads(item.value_json)
        elif kind == "config":
            for item in record.config.update:
                config[item.key or ".".join(item.nested_key)] = json.loads(item.value_json)
        elif kind == "summary":
            for item in record.summary.update:
                summary[item.key or ".".join(item.nested_key)] = json.loads(item.value_json)
        elif kind == "history":
            history.update(item.key or ".".join(item.nested_key) for item in record.history.item)
    return {"group": group, "config": config, "summary": summary, "history": history}
