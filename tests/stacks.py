"""The gateway stack as the end-to-end tests start it: nginx and three gunicorn functions."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from devstack.stack import Stack, free_port

needs_nginx = pytest.mark.skipif(
    shutil.which("nginx") is None,
    reason="nginx is not installed (make test installs it through .ci/run)",
)

UNLIMITED = {
    "USER_RATE_LIMIT": "100000r/s",
    "UPLOAD_RATE_LIMIT": "100000r/s",
    "USER_RATE_BURST": "1000",
    "UPLOAD_RATE_BURST": "1000",
}
"""Rate limits out of the way, for tests that send many requests on purpose."""


@contextmanager
def gateway(directory: Path, database_url: str, **env: str) -> Iterator[Stack]:
    """A running stack on a free port, its spool and logs in `directory`, stopped on exit."""
    spool = directory / "spool"
    spool.mkdir(parents=True, exist_ok=True)
    stack = Stack(
        run_dir=directory / "run",
        port=free_port(),
        use_nginx=True,
        env={"DATABASE_URL": database_url, "SPOOL_DIR": str(spool), **env},
    )
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()
