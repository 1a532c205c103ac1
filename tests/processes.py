"""Running code in other processes: one function in several at once (the tests of concurrent
writers), and a snippet in a fresh interpreter (what an import loads)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import Any


def run_together(context: Any, target: Callable[..., None], root: str, count: int) -> list[Any]:
    """Start ``count`` processes of ``context`` running ``target(root, index, barrier, queue)``
    (each waits at the barrier, then puts one list on the queue); return the lists' items, all
    processes joined and exited 0."""
    start, results = context.Barrier(count), context.Queue()
    processes = [
        context.Process(target=target, args=(root, index, start, results)) for index in range(count)
    ]
    for process in processes:
        process.start()
    found = [item for _ in processes for item in results.get(timeout=300)]
    for process in processes:
        process.join(timeout=60)
    assert all(process.exitcode == 0 for process in processes)
    return found


def fresh_python(code: str) -> str:
    """Run ``code`` in a fresh interpreter (this one's); return what it printed, stripped, after
    checking that it exited 0."""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()
