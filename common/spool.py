"""The upload spool: one temporary directory per upload, named after the worker that owns it.

A worker killed mid-upload (SIGKILL, OOM) cannot clean up after itself; the next worker to start
removes every spool directory whose owner is no longer alive.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from contextlib import AbstractContextManager
from pathlib import Path

PREFIX = "audiosvc-upload-"
_OWNED = re.compile(rf"^{PREFIX}(\d+)-")


def upload_directory(spool_dir: str) -> AbstractContextManager[str]:
    """A fresh directory for one upload, removed when the block ends (on every path)."""
    return tempfile.TemporaryDirectory(prefix=f"{PREFIX}{os.getpid()}-", dir=spool_dir)


def sweep(spool_dir: str) -> list[Path]:
    """Remove the spool directories of dead workers; returns what was removed."""
    removed = []
    for path in Path(spool_dir).glob(f"{PREFIX}*"):
        match = _OWNED.match(path.name)
        if match and path.is_dir() and not _alive(int(match.group(1))):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
