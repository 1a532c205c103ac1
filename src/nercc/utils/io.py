"""Writing result files atomically: a failing run leaves no half-written file behind."""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "copy_atomic",
    "file_mode",
    "fsync_folder",
    "name_file",
    "publish_lock",
    "save_figure",
    "stage_bytes",
    "write_bytes_atomic",
    "write_csv",
    "write_json",
    "write_text_atomic",
]


def file_mode() -> int:
    """The mode a new file gets under the process's umask (``0o666 & ~umask``).

    Temporary files (``mkstemp``) are created 0600; what is published from them gets this mode,
    so that results are as readable as any other file the user writes. The umask is read from
    /proc where Linux allows, without changing it (``os.umask`` alone must set it to read it).
    """
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def stage_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to a new file of a unique name beside ``path`` (``.<name>.<random>.tmp``),
    fsynced, with the umask's mode; return it. The caller renames it into place (or removes it).
    """
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(name, file_mode())
    except BaseException as error:
        Path(name).unlink(missing_ok=True)
        name_file(error, path)
        raise
    return Path(name)


def name_file(error: BaseException, path: str | os.PathLike[str]) -> None:
    """Give an ``OSError`` raised while writing ``path`` that file's name when it has none
    (``write`` and ``fsync`` errors name no file), so that its message says where the disk is
    full."""
    if isinstance(error, OSError) and error.filename is None:
        error.filename = str(path)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` through a staged file (:func:`stage_bytes`) and a rename.

    Readers see either the old file or the complete new one, never a partial write; the data
    reaches the disk (fsync) before the rename, so a crash right after leaves no empty file
    under the final name. The staging name is unique: concurrent writers of the same path never
    collide, the last rename wins. On any failure nothing is left but the old file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = stage_bytes(path, data)
    try:
        os.replace(staged, path)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically, as :func:`write_bytes_atomic` does."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def copy_atomic(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Make ``target`` a copy of ``source`` atomically: a hard link where the file system allows
    (no bytes copied), else a copy with its metadata, fsynced, under a unique temporary name,
    renamed."""
    target = Path(target)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        tmp.unlink()  # os.link needs a free name; mkstemp made it unique to this call
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copy2(source, tmp)
            with open(tmp, "rb+") as handle:  # the copy's bytes on disk before the rename
                os.fsync(handle.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def fsync_folder(folder: str | os.PathLike[str]) -> None:
    """Make the renames in ``folder`` durable, where the file system allows it."""
    with contextlib.suppress(OSError):
        handle = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)


LOCK_NAME = ".publish.lock"
_HELD: dict[Path, tuple[threading.RLock, int]] = {}  # per folder: its thread lock, depth
_HELD_GUARD = threading.Lock()


@contextlib.contextmanager
def publish_lock(directory: str | os.PathLike[str]) -> Iterator[None]:
    """Hold the publishing lock of ``directory``: an exclusive ``fcntl`` lock on its
    ``.publish.lock`` file (other processes, on this host or over a file system with POSIX
    locks, wait), reentrant within a thread (one thread lock per folder serialises threads).

    Whatever decides and writes a published file of the folder (a checkpoint, a lambda table)
    does so under it, so that two publishers decide one after the other and never interleave
    their writes.
    """
    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    with _HELD_GUARD:
        rlock, _ = _HELD.setdefault(directory, (threading.RLock(), 0))
    with rlock:
        with _HELD_GUARD:
            depth = _HELD[directory][1]
            _HELD[directory] = (rlock, depth + 1)
        try:
            if depth:  # this thread holds the file lock already
                yield
                return
            with open(directory / LOCK_NAME, "a") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)
        finally:
            with _HELD_GUARD:
                _HELD[directory] = (rlock, _HELD[directory][1] - 1)


def write_json(path: str | os.PathLike[str], data: Any) -> Path:
    """Write ``data`` as indented JSON, atomically."""
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_csv(path: str | os.PathLike[str], rows: Iterable[Mapping[str, Any]]) -> Path:
    """Write a list of flat dicts as CSV, atomically. The columns are every key in order of
    first appearance; a row without a column leaves it empty."""
    rows = list(rows)
    if not rows:
        raise ValueError(f"rows must not be empty when writing {path}")
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return write_text_atomic(path, buffer.getvalue())


def save_figure(figure: Any, path: str | os.PathLike[str]) -> Path:
    """Save a matplotlib figure as PNG with the atomic writer (:func:`write_bytes_atomic`), then
    close it."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    try:
        figure.savefig(buffer, format="png", dpi=120)
    finally:
        plt.close(figure)
    return write_bytes_atomic(path, buffer.getvalue())
