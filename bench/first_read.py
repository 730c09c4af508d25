"""`make first-read`: the first download of records, get_record's and the gateway's, beside nginx.

What the gateway's cache does on a miss: one whole GET of a record's MP3, no Range. Uploads
--records records of a --seconds WAV to the local stack (limits lifted, a throwaway database), then
downloads each record once, in turn, with 1 and 4 connections: straight from get_record's port
(--rounds times), from a bare nginx serving the same bytes as static files (as often), and through
the gateway once, each connection count on records of its own, so that every download there is a
miss of the gateway's record cache (the misses its access log counts are shown). Prints MB/s (10^6
bytes; the median of the rounds), the ratio to static, and the CPU-seconds per MiB served of
get_record's workers, of the database's backends and of nginx's workers. Wall-clock rates are
noisy on a shared machine; CPU-seconds much less so.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from bench.client import Gateway
from bench.local import (
    MIB,
    Row,
    cpu_seconds,
    database_backends,
    download_all,
    lifted_stack,
    print_table,
    save_mp3s,
    static_nginx,
    upload_records,
    workers,
)
from devstack.databases import DEFAULT_SERVER_URL
from devstack.stack import ROOT, Stack
from devstack.wavgen import seconds_wav

CONNECTIONS = (1, 4)


@dataclass(frozen=True)
class Way:
    """One way to the bytes: its label, base URL, the paths of each connection count, the rounds
    and the processes whose CPU counts (name -> lister of their pids)."""

    label: str
    base_url: str
    paths: Callable[[int], list[str]]
    rounds: int
    cpu: dict[str, Callable[[], list[int]]]


def measure(way: Way, connections: int) -> tuple[float, dict[str, float]]:
    """The median MB/s over the way's rounds, and CPU-milliseconds per MiB of each of `way.cpu`."""
    rates: list[float] = []
    spent = dict.fromkeys(way.cpu, 0.0)
    total = 0
    paths = way.paths(connections)
    for _ in range(way.rounds):
        before = {name: list_pids() for name, list_pids in way.cpu.items()}
        used = {name: cpu_seconds(pids) for name, pids in before.items()}
        received, seconds = download_all(way.base_url, paths, connections)
        for name, list_pids in way.cpu.items():
            spent[name] += cpu_seconds(sorted({*before[name], *list_pids()})) - used[name]
        rates.append(received / seconds / 1e6)
        total += received
    per_mib = {name: 1000 * cpu / (total / MIB) for name, cpu in spent.items()}
    return statistics.median(rates), per_mib


def cache_misses(stack: Stack) -> int:
    """The gateway's record cache misses so far (its access log's)."""
    return stack.log("nginx").count('"cache":"MISS"')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=20, help="records uploaded (default 20)")
    parser.add_argument("--seconds", type=int, default=600, help="their WAV's length (600)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per figure (default 3)")
    parser.add_argument(
        "--root", type=Path, default=ROOT, help="the checkout whose stack runs (default this one)"
    )
    args = parser.parse_args()
    if shutil.which("nginx") is None:
        sys.exit("make first-read needs nginx: sudo apt-get install nginx")
    inputs = Path(os.environ.get("BENCH_DIR", ROOT / ".run" / "bench")).resolve()
    inputs.mkdir(parents=True, exist_ok=True)
    print(f"load average before: {Path('/proc/loadavg').read_text().strip()}", flush=True)
    with ExitStack() as resources:
        scratch = Path(resources.enter_context(tempfile.TemporaryDirectory(dir=inputs)))
        server = os.environ.get("TEST_DATABASE_URL", DEFAULT_SERVER_URL)
        stack, database = resources.enter_context(
            lifted_stack(server, inputs / "first-read-stack", scratch, args.root)
        )
        direct = f"http://127.0.0.1:{stack.function_ports['get_record']}"
        wav = seconds_wav(inputs, args.seconds)
        paths = upload_records(Gateway(stack.url), wav, args.records)
        uncached = {n: upload_records(Gateway(stack.url), wav, args.records) for n in CONNECTIONS}
        files = Path(resources.enter_context(tempfile.TemporaryDirectory()))
        files.chmod(0o755)
        static_paths = save_mp3s(direct, paths, files)
        static_url, static_master = resources.enter_context(static_nginx(files))

        def function() -> list[int]:
            return workers(stack.processes["get_record"].pid)

        def gateway_nginx() -> list[int]:
            return workers(stack.processes["nginx"].pid)

        backends = database_backends(database)
        ways = [
            Way(
                "static",
                static_url,
                lambda _: static_paths,
                args.rounds,
                {"nginx": lambda: workers(static_master)},
            ),
            Way(
                "get_record",
                direct,
                lambda _: paths,
                args.rounds,
                {"get_record": function, "postgres": backends},
            ),
            Way(
                "gateway, cache misses",
                stack.url,
                uncached.__getitem__,
                1,
                {"get_record": function, "postgres": backends, "nginx": gateway_nginx},
            ),
        ]
        size = sum((files / name.lstrip("/")).stat().st_size for name in static_paths)
        print(f"{args.records} records, {size / MIB:.1f} MiB in all", file=sys.stderr, flush=True)
        rows: list[Row] = []
        for connections in CONNECTIONS:
            static_rate = 0.0
            for way in ways:
                misses = cache_misses(stack)
                rate, cpu = measure(way, connections)
                missed = cache_misses(stack) - misses
                static_rate = static_rate or rate
                rows.append(
                    (
                        f"{way.label}, {connections} connection(s)"
                        + (f" ({missed} misses)" if missed else ""),
                        f"{rate:.0f} MB/s",
                        f"static {static_rate:.0f} MB/s",
                        f"ratio {rate / static_rate:.3f}",
                        ", ".join(f"{name} {ms:.2f} ms/MiB" for name, ms in cpu.items()),
                    )
                )
                print(f"  ... {rows[-1][0]}: {rows[-1][1]}", file=sys.stderr, flush=True)
    print(f"load average after: {Path('/proc/loadavg').read_text().strip()}")
    print_table(rows, ("way", "rate", "static", "ratio", "CPU"))


if __name__ == "__main__":
    main()
