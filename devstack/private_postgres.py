"""PostgreSQL servers of a test's own, which it may stop and start: a primary, and streaming
replicas of it (`pg_basebackup -R`), on free loopback ports.

They run Debian's server binaries (/usr/lib/postgresql/<version>/bin), as the `postgres` user when
the caller is root (runuser: PostgreSQL refuses to run as root) and as the caller otherwise, trust
every local and loopback connection, and never touch the machine's own PostgreSQL service.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg

from devstack.stack import free_port

RUN_AS = "postgres"
REPLICATION_HBA = "host replication all 127.0.0.1/32 trust"
"""What a replica's pg_basebackup and walreceiver need of the primary's pg_hba.conf."""


def postgres_bin() -> Path | None:
    """The newest PostgreSQL server binaries installed, or None (or None for root without
    runuser)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    usable = found and (not _as_root() or shutil.which("runuser"))
    return Path(found[-1]).parent if usable else None


def _as_root() -> bool:
    return os.geteuid() == 0


class PrivatePostgres:
    """A PostgreSQL server of the test's own, so that it can be stopped and started.

    A new directory `directory` holds its data, socket and log. Without `primary`, the cluster is
    new (initdb); with one, it is a hot standby streaming from that (running) server.
    """

    def __init__(
        self, directory: Path, binaries: Path, primary: PrivatePostgres | None = None
    ) -> None:
        self.directory, self.binaries, self.port = directory, binaries, free_port()
        self.data = directory / "data"
        self.log = directory / "log"
        self.directory.mkdir()
        if _as_root():
            shutil.chown(self.directory, RUN_AS, RUN_AS)
        if primary is None:
            self._run(
                "initdb",
                "-D",
                str(self.data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-locale",
            )
            hba = self.data / "pg_hba.conf"
            rules = [line.split() for line in hba.read_text().splitlines()]
            if REPLICATION_HBA.split() not in rules:
                with hba.open("a") as out:
                    out.write(REPLICATION_HBA + "\n")
        else:
            self._run(
                "pg_basebackup",
                "-D",
                str(self.data),
                "-h",
                "127.0.0.1",
                "-p",
                str(primary.port),
                "-U",
                "postgres",
                "-X",
                "stream",
                "-R",
            )
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _command(self, tool: str, *args: str) -> list[str]:
        command = [str(self.binaries / tool), *args]
        return ["runuser", "-u", RUN_AS, "--", *command] if _as_root() else command

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(self._command(tool, *args), check=True, capture_output=True)

    def start(self, *settings: str) -> None:
        """Start the server; `settings` are extra `name=value` server settings."""
        options = [f"-p {self.port}", f"-k {self.directory}", "-c listen_addresses=127.0.0.1"]
        options += [f"-c {setting}" for setting in settings]
        log = str(self.log)
        self._run("pg_ctl", "-D", str(self.data), "-w", "-l", log, "-o", " ".join(options), "start")

    def stop(self) -> None:
        """Stop the server as an operator would (fast: sessions are ended, nothing is lost)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def running(self) -> bool:
        status = self._command("pg_ctl", "-D", str(self.data), "status")
        return subprocess.run(status, capture_output=True, check=False).returncode == 0

    def stop_if_running(self) -> None:
        stop = self._command("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop")
        subprocess.run(stop, capture_output=True, check=False)

    def query(self, sql: str, *params: Any) -> Any:
        """The first column of the first row `sql` answers, in a session of its own."""
        conninfo = f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
            row = conn.execute(sql, params).fetchone()
        return None if row is None else row[0]

    def wait_replayed(self, primary: PrivatePostgres, timeout: float = 30.0) -> None:
        """Return once this standby has replayed everything `primary` has written so far."""
        target = primary.query("SELECT pg_current_wal_lsn()::text")
        deadline = time.monotonic() + timeout
        while not self.query("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", target):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the standby on port {self.port} has not replayed {target}")
            time.sleep(0.05)

    def pause_replay(self) -> None:
        """Stop applying WAL: from now on, what the primary commits is missing here, as under
        replication lag (WAL still arrives, so `resume_replay` catches up at once)."""
        self.query("SELECT pg_wal_replay_pause()")

    def resume_replay(self) -> None:
        self.query("SELECT pg_wal_replay_resume()")
