"""`make bench`, section k: downloads through the gateway's record cache, beside a bare nginx
serving the same bytes as static files, in the same run, alternating.

- repeat downloads of one record (a 600 s MP3): whole file with 1 and 4 connections, and 1 MiB
  ranges with 4 connections (wrk); with the CPU get_record and PostgreSQL spend meanwhile;
- what one revalidation costs: get_record answering If-None-Match (304) straight, with wrk;
- first downloads: --cold-records records, each fetched once, 4 connections, the cache emptied
  (and the gateway restarted) before each round;
- a 60 s upload while 4 clients download as fast as they can, beside the same upload idle;
- the gateway's access log of it all: requests and bytes by cache status.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path

from bench.client import Gateway, record_path, timed
from bench.local import (
    MIB,
    Row,
    cpu_seconds,
    database_backends,
    download_all,
    median,
    save_mp3s,
    static_nginx,
    upload_records,
    verdict,
    workers,
)
from devstack.stack import Stack
from devstack.wavgen import seconds_wav

CLIENTS = ("nice", "-n", "19", "wrk")
"""wrk as the downloading clients, at the lowest priority: in production they are elsewhere, and
the CPU they spend here reading what they receive is not the service's (they still take it when
nothing else wants it)."""
RANGES_SCRIPT = Path(__file__).with_name("ranges.lua")
WRK_SECONDS = 5
ROUNDS = 3
_TRANSFER = re.compile(r"Transfer/sec:\s+([\d.]+)([KMG]?B)")
_REQUESTS = re.compile(r"Requests/sec:\s+([\d.]+)")
_UNIT = {"B": 1.0, "KB": 1024.0, "MB": 1024.0**2, "GB": 1024.0**3}


def wrk(
    url: str,
    connections: int,
    *,
    seconds: int = WRK_SECONDS,
    script: Path | None = None,
    env: dict[str, str] | None = None,
    headers: tuple[str, ...] = (),
) -> tuple[float, float]:
    """wrk against `url`: MB/s (10^6 bytes) and requests per second."""
    args = [*CLIENTS, "-t", str(min(connections, 2)), "-c", str(connections), "-d", f"{seconds}s"]
    if script is not None:
        args += ["-s", str(script)]
    for header in headers:
        args += ["-H", header]
    out = subprocess.run(
        [*args, url],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **(env or {})},
    ).stdout
    transfer, requests = _TRANSFER.search(out), _REQUESTS.search(out)
    if transfer is None or requests is None:
        raise RuntimeError(f"wrk printed no rate: {out}")
    return float(transfer.group(1)) * _UNIT[transfer.group(2)] / 1e6, float(requests.group(1))


def whole_rate(url: str, connections: int) -> float:
    """MB/s of whole-file GETs of `url` (wrk)."""
    return wrk(url, connections)[0]


def alternating(
    ours: Callable[[], float], reference: Callable[[], float], rounds: int = ROUNDS
) -> tuple[float, float]:
    """Medians of `rounds` rounds of each, taken in turn."""
    mine, theirs = [], []
    for _ in range(rounds):
        mine.append(ours())
        theirs.append(reference())
    return median(mine), median(theirs)


def ratio_row(label: str, ours: float, reference: float, target: float | None) -> Row:
    ratio = ours / reference
    return (
        label,
        f"{ours:.0f} MB/s",
        f"static {reference:.0f} MB/s",
        f"{ratio:.2f}x",
        "" if target is None else f">= {target:.2f}x: {verdict(ratio >= target)}",
    )


@contextmanager
def cpu_meter(groups: dict[str, Callable[[], list[int]]]) -> Iterator[dict[str, float]]:
    """CPU-seconds each group of processes spends inside the block (filled in on exit)."""
    before = {name: pids() for name, pids in groups.items()}
    used = {name: cpu_seconds(pids) for name, pids in before.items()}
    spent: dict[str, float] = {}
    yield spent
    for name, pids in groups.items():
        spent[name] = cpu_seconds(sorted({*before[name], *pids()})) - used[name]


def empty_cache(stack: Stack) -> None:
    """Drop every entry: the gateway restarted on an empty cache directory."""
    assert stack.record_cache_dir is not None  # noqa: S101 - started with nginx
    for entry in stack.record_cache_dir.iterdir():
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    stack.restart_gateway()


def access_log_rows(log: str) -> list[Row]:
    """Requests and bytes sent by cache status, of GET/HEAD /record in the gateway's log."""
    counts: Counter[str] = Counter()
    sent: Counter[str] = Counter()
    for line in log.splitlines():
        if '"uri":"/record"' not in line or '"cache":' not in line:
            continue
        entry = json.loads(line[line.index("{") :])
        if entry["method"] not in ("GET", "HEAD"):
            continue
        status = entry["cache"] or "-"
        counts[status] += 1
        sent[status] += int(entry["bytes_out"])
    return [
        (
            f"k. access log, GET/HEAD /record, cache {status}",
            f"{counts[status]} requests",
            f"{sent[status] / MIB:.0f} MiB sent",
            "",
            "",
        )
        for status in sorted(counts)
    ]


def record_cache_rows(
    stack: Stack, database_url: str, user: dict[str, str], inputs: Path, cold_records: int = 20
) -> list[Row]:
    gateway = Gateway(stack.url)
    rows: list[Row] = []
    log_before = len(stack.log("nginx"))  # the run directory's log may hold earlier runs
    with ExitStack() as resources:
        record = gateway.upload(user, seconds_wav(inputs, 600))
        path = record_path(record, user)
        cold = upload_records(gateway, seconds_wav(inputs, 600), cold_records)
        files = Path(resources.enter_context(tempfile.TemporaryDirectory()))
        files.chmod(0o755)
        direct = f"http://127.0.0.1:{stack.function_ports['get_record']}"
        static_paths = save_mp3s(direct, [path, *cold], files)
        static_url, _ = resources.enter_context(static_nginx(files))
        one, one_static = stack.url + path, static_url + static_paths[0]
        size = (files / "0.mp3").stat().st_size
        gateway.download(gateway.connect(), path)

        def function() -> list[int]:
            return workers(stack.processes["get_record"].pid)

        backends = database_backends(database_url)
        for connections in (1, 4):
            ours, theirs = alternating(
                partial(whole_rate, one, connections), partial(whole_rate, one_static, connections)
            )
            rows.append(
                ratio_row(
                    f"k. repeat download, 600 s MP3 ({size / MIB:.1f} MiB), whole, "
                    f"{connections} connection(s)",
                    ours,
                    theirs,
                    0.8 if connections == 4 else None,
                )
            )
        ranges = {"SIZE": str(size)}
        with cpu_meter({"get_record": function, "postgres": backends}) as spent:
            started = time.perf_counter()
            ours, theirs = alternating(
                lambda: wrk(one, 4, script=RANGES_SCRIPT, env=ranges)[0],
                lambda: wrk(one_static, 4, script=RANGES_SCRIPT, env=ranges)[0],
            )
            elapsed = time.perf_counter() - started
        rows.append(ratio_row("k. repeat download, 1 MiB ranges, 4 connections", ours, theirs, 0.7))
        rows.append(
            (
                "k. repeat downloads: CPU beside them (ranges rounds, both ways)",
                f"get_record {100 * spent['get_record'] / elapsed:.1f} % of a core",
                f"PostgreSQL {100 * spent['postgres'] / elapsed:.1f} % of a core",
                "",
                "near idle",
            )
        )

        etag = f'"{hashlib.sha256((files / "0.mp3").read_bytes()).hexdigest()}"'
        with cpu_meter({"get_record": function, "postgres": backends}) as spent:
            _, answered = wrk(
                direct + path, 4, headers=(f"If-None-Match: {etag}",), seconds=WRK_SECONDS
            )
        revalidations = answered * WRK_SECONDS
        rows.append(
            (
                "k. one revalidation (get_record's 304, straight, 4 connections)",
                f"{answered:.0f} per s",
                f"get_record {1000 * spent['get_record'] / revalidations:.2f} ms CPU",
                f"PostgreSQL {1000 * spent['postgres'] / revalidations:.2f} ms CPU",
                "at most 1 per record per s",
            )
        )

        def cold_round() -> float:
            empty_cache(stack)
            received, seconds = download_all(stack.url, cold, 4)
            return received / seconds / 1e6

        def cold_static() -> float:
            received, seconds = download_all(static_url, static_paths[1:], 4)
            return received / seconds / 1e6

        ours, theirs = alternating(cold_round, cold_static)
        rows.append(
            ratio_row(
                f"k. first downloads, cold cache, {cold_records} records, 4 connections",
                ours,
                theirs,
                0.4,
            )
        )

        upload = seconds_wav(inputs, 60)
        idle = median([timed(gateway.upload, user, upload) for _ in range(ROUNDS)])
        load = subprocess.Popen(
            [*CLIENTS, "-t", "2", "-c", "4", "-d", "600s", one],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(1)
            busy = median([timed(gateway.upload, user, upload) for _ in range(ROUNDS)])
        finally:
            load.terminate()
            load.wait()
        rows.append(
            (
                "k. 60 s upload while 4 clients download (wrk), vs idle",
                f"{busy:.2f} s",
                f"idle {idle:.2f} s",
                f"{busy / idle:.2f}x",
                f"<= 1.20x: {verdict(busy / idle <= 1.2)}",
            )
        )
    return rows + access_log_rows(stack.log("nginx")[log_before:])
