"""Temporary directories owned by a process: named after its pid, swept once it is dead.

add_record gives each upload one (the spool), and the workers of one gunicorn master one for their
conversion slots; gunicorn's master one for its workers' metrics. A
process killed mid-way (SIGKILL, OOM) cannot clean up after itself: the next one to start removes
every such directory whose owner is no longer alive.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from contextlib import AbstractContextManager
from pathlib import Path

PREFIX = "audiosvc-upload-"
SLOTS_PREFIX = "audiosvc-slots-"


def instance_directory(spool_dir: str) -> Path:
    """The directory the workers of one gunicorn master share (their conversion slots), named
    after the master: a worker's parent. Swept like the others once the master is dead."""
    return Path(spool_dir) / f"{SLOTS_PREFIX}{os.getppid()}-workers"


def upload_directory(spool_dir: str) -> AbstractContextManager[str]:
    """A fresh directory for one upload, removed when the block ends (on every path)."""
    return tempfile.TemporaryDirectory(prefix=owned_prefix(PREFIX), dir=spool_dir)


def owned_prefix(prefix: str) -> str:
    """`prefix` with this process's pid: what `sweep` reads the owner from."""
    return f"{prefix}{os.getpid()}-"


def sweep(parent: str, prefix: str = PREFIX) -> list[Path]:
    """Remove the directories of dead owners below `parent`; returns what was removed."""
    owned = re.compile(rf"^{re.escape(prefix)}(\d+)-")
    removed = []
    for path in Path(parent).glob(f"{prefix}*"):
        match = owned.match(path.name)
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
