"""Fixtures of the evaluation tests: a full file system for the output cache."""

import errno
import subprocess

import pytest


@pytest.fixture
def full_tmpfs(tmp_path):
    """A 64 KiB tmpfs mounted at ``tmp_path / "full"`` and filled up, unmounted after the test.

    Skips where mounting is refused (it needs root, or CAP_SYS_ADMIN, and a ``mount`` command):
    the tests that monkeypatch the writer to raise ENOSPC cover the same path everywhere.
    """
    folder = tmp_path / "full"
    folder.mkdir()
    try:
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        pytest.skip(f"cannot mount a tmpfs here ({error}): needs root and mount permission")
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip() or mounted.returncode}")
    try:
        with open(folder / "filler", "wb", buffering=0) as filler:
            with pytest.raises(OSError) as full:
                while True:
                    filler.write(b"\0" * 4096)
            assert full.value.errno == errno.ENOSPC
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=20)
