"""gunicorn's metrics directory: one per master, removed at exit, those of dead masters swept."""

from __future__ import annotations

import tempfile
from pathlib import Path

from devstack.stack import Stack, free_port

METRICS = Path(tempfile.gettempdir())


def test_the_metrics_directory_lives_as_long_as_its_master(
    database_url: str, tmp_path: Path
) -> None:
    stale = METRICS / "audiosvc-metrics-999999999-x"
    stale.mkdir(exist_ok=True)
    stack = Stack(
        run_dir=tmp_path, env={"DATABASE_URL": database_url}, port=free_port(), use_nginx=True
    )
    stack.start_function("create_user")
    try:
        stack.wait_function("create_user")
        assert "ok" in stack.function_get("create_user", "/healthz")  # a worker answers: all set up
        (own,) = METRICS.glob(f"audiosvc-metrics-{stack.processes['create_user'].pid}-*")
        assert own.is_dir()
        assert not stale.exists(), "a dead master's directory was left"
    finally:
        stack.stop()
    assert not own.exists(), "the directory outlived its master"
