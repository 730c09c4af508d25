"""A PgBouncer in transaction mode in front of a PostgreSQL server, on a free loopback port: the
pooler path of the test suite (`TEST_DATABASE_POOLER=pgbouncer`, run by `make test`).

Transaction pooling hands each transaction whichever server connection is free, so anything that
outlives a transaction on the server (prepared statements, SET, advisory locks, LISTEN) breaks
through it; running the functions' tests through a real one proves they use none.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from devstack.stack import free_port, wait_for_port

BINARY = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
RUN_AS = "postgres"
"""PgBouncer refuses to run as root; as root, it is started as this user."""


@contextmanager
def pgbouncer(database_url: str, pool_size: int = 40, wait_timeout_s: int = 120) -> Iterator[str]:
    """Start PgBouncer in front of the server of `database_url` (trust authentication, as the
    test server has), with `pool_size` server connections per database and user, and clients
    that waited `wait_timeout_s` for one disconnected; yield the same URL through it; stop it
    and remove its files on exit."""
    if not Path(BINARY).exists():
        raise RuntimeError("pgbouncer is not installed: apt-get install pgbouncer (.ci/run does)")
    with tempfile.TemporaryDirectory(prefix="audiosvc-pgbouncer-") as temp:
        yield from _run(sa.make_url(database_url), Path(temp), pool_size, wait_timeout_s)


def _run(url: sa.URL, directory: Path, pool_size: int, wait_timeout_s: int) -> Iterator[str]:
    port = free_port()
    config = directory / "pgbouncer.ini"
    config.write_text(
        "[databases]\n"
        f"* = host={url.host or '127.0.0.1'} port={url.port or 5432}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {directory / 'users.txt'}\n"
        "pool_mode = transaction\nmax_client_conn = 1000\n"
        f"default_pool_size = {pool_size}\nquery_wait_timeout = {wait_timeout_s}\n"
        "ignore_startup_parameters = extra_float_digits\n"
        f"logfile = {directory / 'pgbouncer.log'}\npidfile = {directory / 'pgbouncer.pid'}\n"
    )
    (directory / "users.txt").write_text(f'"{url.username or "postgres"}" ""\n')
    args = [BINARY, str(config)]
    if os.geteuid() == 0:
        shutil.chown(directory, RUN_AS)
        args[1:1] = ["-u", RUN_AS]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, process, time.monotonic() + 10)
        yield url.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
