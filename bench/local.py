"""What the benchmarks share: the local stack, limits lifted; gunicorn's workers and the CPU
processes spend; bare ffmpeg; a bare nginx serving files; records uploaded and downloaded; the
median; the table."""

from __future__ import annotations

import os
import queue
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

from bench.client import Gateway, record_path
from common.audio.ffmpeg import EncoderOptions, command
from common.audio.wav import read_header
from common.storage.db import libpq_url
from devstack.databases import throwaway_database
from devstack.stack import ROOT, Stack, free_port, wait_for_port

GIB = 1 << 30
MIB = 1 << 20
Row = tuple[str, str, str, str, str]
CONN_LIMIT_LIFTED = "65535"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@contextmanager
def lifted_stack(
    server_url: str, run_dir: Path, spool_dir: Path, root: Path = ROOT
) -> Iterator[tuple[Stack, str]]:
    """The stack of `root` (this checkout unless given) behind nginx on a throwaway database of
    `server_url`'s server, its limits lifted as an operator would for a trusted client; yields it
    and its database's URL."""
    with throwaway_database(server_url, "audiosvc_bench") as database:
        stack = Stack(
            run_dir=run_dir,
            port=free_port(),
            use_nginx=True,
            root=root,
            env={
                "DATABASE_URL": database,
                "MAX_UPLOAD_BYTES": str(2 * GIB),
                "SPOOL_DIR": str(spool_dir),
                "USER_RATE_LIMIT": "100000r/s",
                "UPLOAD_RATE_LIMIT": "100000r/s",
                "UPLOAD_CONN_LIMIT": CONN_LIMIT_LIFTED,
                "MAX_OPEN_UPLOADS": "1000",
            },
        )
        stack.start()
        try:
            yield stack, database
        finally:
            stack.stop()


def workers(master: int) -> list[int]:
    """The child processes of `master` (of a gunicorn master: its workers)."""
    out = subprocess.run(
        ["pgrep", "-P", str(master)], capture_output=True, text=True, check=False
    ).stdout
    return [int(pid) for pid in out.split()]


def median(values: list[float]) -> float:
    return statistics.median(values)


def bare_ffmpeg(wav: Path, out_dir: Path, options: EncoderOptions) -> Callable[[], None]:
    """The ffmpeg command the service runs for this file, as a callable for timing."""
    with wav.open("rb") as stream:
        info, _ = read_header(stream)
    target = out_dir / f"{uuid.uuid4().hex}.mp3"
    args = command(f"file:{wav}", target, info, options, wav.stem)

    def run() -> None:
        subprocess.run(args, check=True, stdin=subprocess.DEVNULL, capture_output=True)
        target.unlink()

    return run


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


HEADERS: Row = ("measurement", "service", "reference", "ratio", "target")


def print_table(rows: list[Row], headers: Row = HEADERS) -> None:
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(5)]
    line = "+".join("-" * (width + 2) for width in widths)
    print("+" + line + "+")
    for row in [headers, *rows]:
        print(
            "| "
            + " | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
            + " |"
        )
        if row is headers:
            print("+" + line + "+")
    print("+" + line + "+")


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU-seconds the processes have used (0 for one that is gone)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def database_backends(database_url: str) -> Callable[[], list[int]]:
    """The pids of the server's backends connected to the database of `database_url`."""
    name = urlsplit(libpq_url(database_url)).path.lstrip("/")

    def pids() -> list[int]:
        with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            ).fetchall()
        return [int(row[0]) for row in rows]

    return pids


@contextmanager
def static_nginx(files: Path) -> Iterator[tuple[str, int]]:
    """A bare nginx serving the directory `files` (sendfile, as the gateway's own static files);
    yields its base URL and master's pid."""
    run_dir = Path(tempfile.mkdtemp(prefix="audiosvc-static-"))
    run_dir.chmod(0o755)
    port = free_port()
    config = run_dir / "nginx.conf"
    config.write_text(
        f"worker_processes auto;\nerror_log stderr crit;\npid {run_dir}/nginx.pid;\n"
        "events { worker_connections 1024; }\n"
        f"http {{ access_log off; sendfile on; tcp_nopush on; default_type audio/mpeg;\n"
        f"  client_body_temp_path {run_dir}/body; proxy_temp_path {run_dir}/proxy;\n"
        f"  fastcgi_temp_path {run_dir}/fcgi; uwsgi_temp_path {run_dir}/uwsgi;\n"
        f"  scgi_temp_path {run_dir}/scgi;\n"
        f"  server {{ listen 127.0.0.1:{port}; root {files}; }} }}\n"
    )
    process = subprocess.Popen(
        ["nginx", "-e", "stderr", "-p", str(run_dir), "-c", str(config), "-g", "daemon off;"],
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, process, time.monotonic() + 10)
        yield f"http://127.0.0.1:{port}", process.pid
    finally:
        process.terminate()
        process.wait(timeout=15)
        shutil.rmtree(run_dir, ignore_errors=True)


def download_all(base_url: str, paths: list[str], connections: int) -> tuple[int, float]:
    """Each path once, `connections` at a time on kept-alive connections, the bodies dropped;
    the bytes received and the seconds it took."""
    gateway = Gateway(base_url)
    todo: queue.SimpleQueue[str] = queue.SimpleQueue()
    for path in paths:
        todo.put(path)

    def drain() -> int:
        conn = gateway.connect()
        received = 0
        try:
            while True:
                try:
                    path = todo.get_nowait()
                except queue.Empty:
                    return received
                received += gateway.download(conn, path)
        finally:
            conn.close()

    start = time.perf_counter()
    with ThreadPoolExecutor(connections) as pool:
        received = sum(pool.map(lambda _: drain(), range(connections)))
    return received, time.perf_counter() - start


def upload_records(gateway: Gateway, wav: Path, count: int) -> list[str]:
    """`count` records of `wav`, two uploads at a time; their paths."""
    user = gateway.create_user()
    with ThreadPoolExecutor(2) as pool:
        records = list(pool.map(lambda _: gateway.upload(user, wav), range(count)))
    return [record_path(record, user) for record in records]


def save_mp3s(base_url: str, paths: list[str], directory: Path) -> list[str]:
    """The records' MP3s as files of `directory`, for the static nginx; their paths there."""
    gateway = Gateway(base_url)
    conn = gateway.connect()
    names = []
    for number, path in enumerate(paths):
        conn.request("GET", path)
        response = conn.getresponse()
        name = f"{number}.mp3"
        (directory / name).write_bytes(response.read())
        (directory / name).chmod(0o644)
        names.append(f"/{name}")
    conn.close()
    return names
