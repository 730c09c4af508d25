"""`make bench`: the service against bare ffmpeg and its own targets, every figure from one run.

Starts the local stack on a throwaway PostgreSQL database (or uses BENCH_URL), generates its inputs
in BENCH_DIR (default .run/bench), and prints one table. Needs nginx, ffmpeg and wrk.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.client import Gateway, record_path, timed
from bench.local import (
    GIB,
    MIB,
    Row,
    bare_ffmpeg,
    lifted_stack,
    median,
    print_table,
    verdict,
    workers,
)
from bench.record_cache import record_cache_rows
from bench.throttled import Paced, Slowloris, held_upload, paced_upload
from bench.tus import tus_rows
from common.audio.ffmpeg import EncoderOptions
from common.audio.transcode import transcode
from common.config import Settings
from devstack.databases import DEFAULT_SERVER_URL
from devstack.stack import ROOT, Stack
from devstack.wavgen import seconds_wav, sized_wav

NORMAL_SOURCE = "127.0.0.2"
SLOWLORIS_SOURCES = [f"127.0.1.{n}" for n in range(1, 31)]
SLOWLORIS_WAIT_S = 40.0
HELD_UPLOADS = 8
HELD_MIB_S = 1
HELD_SETTLE_S = 8.0


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def spooled(wav: Path, out_dir: Path, options: EncoderOptions) -> Callable[[], None]:
    """The alternative: copy to a spool file in 1 MiB pieces, then ffmpeg on the file."""
    spool_path = out_dir / "spool.wav"
    shutil.copyfile(wav, spool_path)
    convert = bare_ffmpeg(spool_path, out_dir, options)

    def run() -> None:
        with wav.open("rb") as source, spool_path.open("wb") as spool:
            while piece := source.read(MIB):
                spool.write(piece)
        convert()

    return run


def piped(wav: Path, out_dir: Path, options: EncoderOptions) -> Callable[[], None]:
    """The upload path as built: the WAV fed to ffmpeg's stdin as it is read (transcode)."""
    target = out_dir / "piped.mp3"

    def run() -> None:
        with wav.open("rb") as source:
            transcode(source, target, options, title=wav.stem)
        target.unlink()

    return run


def vm(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM in bytes, and Threads, of a process (a zombie has no Vm* lines)."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) * 1024
        elif name == "Threads":
            fields[name] = int(value)
    return fields


@dataclass(frozen=True)
class Footprint:
    """Summed over a gunicorn master's workers and their children: RSS bytes and threads; the
    workers' RSS and threads alone; each ffmpeg child's RSS."""

    rss: int
    threads: int
    worker_rss: int
    worker_threads: int
    ffmpeg_rss: list[int]


def footprint(master: int) -> Footprint:
    rss = threads = worker_rss = worker_threads = 0
    ffmpeg_rss: list[int] = []
    for worker in workers(master):
        for pid in [worker, *workers(worker)]:
            try:
                fields = vm(pid)
                name = Path(f"/proc/{pid}/comm").read_text().strip()
            except OSError:  # ended since it was listed
                continue
            rss += fields.get("VmRSS", 0)
            threads += fields.get("Threads", 0)
            if pid == worker:
                worker_rss += fields.get("VmRSS", 0)
                worker_threads += fields.get("Threads", 0)
            elif name == "ffmpeg":
                ffmpeg_rss.append(fields.get("VmRSS", 0))
    return Footprint(rss, threads, worker_rss, worker_threads, ffmpeg_rss)


@contextmanager
def peak_rss(master: int) -> Iterator[dict[str, float]]:
    """Peak RSS growth over idle of the busiest worker of a gunicorn master, while inside."""
    pids = workers(master)
    idle = {pid: vm(pid)["VmRSS"] for pid in pids}
    for pid in pids:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    result: dict[str, float] = {}
    yield result
    growth = {pid: vm(pid)["VmHWM"] - idle[pid] for pid in pids}
    busiest = max(growth, key=lambda pid: growth[pid])
    result.update(
        idle=idle[busiest] / MIB, peak=vm(busiest)["VmHWM"] / MIB, growth=growth[busiest] / MIB
    )


def latency_rows(
    gateway: Gateway, user: dict[str, str], inputs: Path, scratch: Path, options: EncoderOptions
) -> list[Row]:
    rows: list[Row] = []
    for seconds, runs, target in ((1, 21, 1.25), (60, 9, 1.10), (600, 5, 1.10)):
        wav = seconds_wav(inputs, seconds)
        bare = bare_ffmpeg(wav, scratch, options)
        service_times, bare_times = [], []
        gateway.upload(user, wav)
        for _ in range(runs):
            service_times.append(timed(gateway.upload, user, wav))
            bare_times.append(timed(bare))
        ratio = median(service_times) / median(bare_times)
        rows.append(
            (
                f"a. upload latency, {seconds} s WAV ({runs} runs)",
                f"median {median(service_times):.3f} s, p95 {p95(service_times):.3f} s",
                f"bare ffmpeg median {median(bare_times):.3f} s, p95 {p95(bare_times):.3f} s",
                f"ratio {ratio:.3f}",
                f"<= {target:.2f}: {verdict(ratio <= target)}",
            )
        )
    return rows


def throughput_rows(
    gateway: Gateway, user: dict[str, str], inputs: Path, scratch: Path, options: EncoderOptions
) -> list[Row]:
    rows: list[Row] = []
    wav = seconds_wav(inputs, 60)
    for concurrency in (1, 2, 4, 8):
        jobs = 8 * concurrency

        def rate(
            action: Callable[[], object], jobs: int = jobs, concurrency: int = concurrency
        ) -> float:
            start = time.perf_counter()
            with ThreadPoolExecutor(concurrency) as pool:
                for future in [pool.submit(action) for _ in range(jobs)]:
                    future.result()
            return jobs / (time.perf_counter() - start)

        service = rate(lambda: gateway.upload(user, wav))
        reference = rate(lambda: bare_ffmpeg(wav, scratch, options)())  # noqa: PLW0108
        ratio = service / reference
        target = f">= 0.90: {verdict(ratio >= 0.90)}" if concurrency >= 2 else "(no target)"
        rows.append(
            (
                f"b. upload throughput, 60 s WAV, concurrency {concurrency} ({jobs} jobs)",
                f"{service:.2f} req/s",
                f"bare ffmpeg {reference:.2f} jobs/s",
                f"ratio {ratio:.3f}",
                target,
            )
        )
    return rows


def memory_and_download_rows(
    gateway: Gateway, user: dict[str, str], stack: Stack | None, inputs: Path, big_bytes: int
) -> list[Row]:
    rows: list[Row] = []
    big = sized_wav(inputs, big_bytes)
    with ExitStack() as measuring:
        upload_rss = (
            measuring.enter_context(peak_rss(stack.processes["add_record"].pid)) if stack else None
        )
        big_record = gateway.upload(user, big)
    with ExitStack() as measuring:
        serve_rss = (
            measuring.enter_context(peak_rss(stack.processes["get_record"].pid)) if stack else None
        )
        conn = gateway.connect()
        size = gateway.download(conn, record_path(big_record, user))
        conn.close()
    for label, rss in (
        (f"c. add_record worker RSS, {big_bytes / GIB:.0f} GiB WAV upload", upload_rss),
        (f"c. get_record worker RSS, serving its {size / MIB:.0f} MiB MP3", serve_rss),
    ):
        if rss is None:
            rows.append((label, "n/a with BENCH_URL", "", "", ""))
            continue
        rows.append(
            (
                label,
                f"peak {rss['peak']:.1f} MiB",
                f"idle {rss['idle']:.1f} MiB",
                f"growth {rss['growth']:.1f} MiB",
                f"<= 32 MiB: {verdict(rss['growth'] <= 32)}",
            )
        )

    record = gateway.upload(user, seconds_wav(inputs, 600))
    path = record_path(record, user)
    conn = gateway.connect()
    whole_times, sizes = [], 0
    for _ in range(15):
        start = time.perf_counter()
        sizes = gateway.download(conn, path)
        whole_times.append(time.perf_counter() - start)
    whole = sizes / median(whole_times) / 1e6
    range_rates = []
    for _ in range(5):
        start = time.perf_counter()
        for offset in range(0, sizes, MIB):
            gateway.download(conn, path, (offset, min(offset + MIB, sizes) - 1))
        range_rates.append(sizes / (time.perf_counter() - start) / 1e6)
    conn.close()
    ranged = median(range_rates)
    rows.append(
        (
            f"d. download, 600 s MP3 ({sizes / MIB:.1f} MiB), whole (15 runs)",
            f"{whole:.0f} MB/s",
            "",
            "",
            f">= 200: {verdict(whole >= 200)}",
        )
    )
    rows.append(
        (
            "d. download, same MP3 as 1 MiB ranges (5 passes)",
            f"{ranged:.0f} MB/s",
            "",
            "",
            f">= 200: {verdict(ranged >= 200)}",
        )
    )
    return rows


def create_user_rows(base_url: str) -> list[Row]:
    script = Path(__file__).with_name("create_user.lua")
    warm_up = ["wrk", "-t", "2", "-c", "8", "-d", "3s", "-s", str(script), f"{base_url}/user"]
    subprocess.run(warm_up, capture_output=True, check=True)  # pools filled, statements prepared
    out = subprocess.run(
        ["wrk", "-t", "2", "-c", "8", "-d", "10s", "-s", str(script), f"{base_url}/user"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rate = float(
        next(line.split()[1] for line in out.splitlines() if line.startswith("Requests/sec"))
    )
    errors = next(
        (line.split(":")[1].strip() for line in out.splitlines() if "Non-2xx" in line), "0"
    )
    latency = next(line.split()[1] for line in out.splitlines() if "Latency" in line)
    return [
        (
            "e. POST /user, concurrency 8, 10 s (wrk)",
            f"{rate:.0f} req/s",
            f"mean latency {latency}, non-2xx {errors}",
            "",
            f">= 1000: {verdict(rate >= 1000)}",
        )
    ]


def conversion_path_rows(inputs: Path, scratch: Path, options: EncoderOptions) -> list[Row]:
    rows: list[Row] = []
    for seconds in (60, 600):
        wav = seconds_wav(inputs, seconds)
        spool, pipe = spooled(wav, scratch, options), piped(wav, scratch, options)
        spool_times, pipe_times = [], []
        for _ in range(5):
            spool_times.append(timed(spool))
            pipe_times.append(timed(pipe))
        rows.append(
            (
                f"f. WAV in: spool file vs stdin pipe, {seconds} s (5 runs)",
                f"spool median {median(spool_times):.3f} s",
                f"pipe median {median(pipe_times):.3f} s",
                f"pipe/spool {median(pipe_times) / median(spool_times):.3f}",
                "",
            )
        )
    return rows


def throttled_rows(
    gateway: Gateway, user: dict[str, str], inputs: Path, scratch: Path, options: EncoderOptions
) -> list[Row]:
    wav = seconds_wav(inputs, 600)
    bare = bare_ffmpeg(wav, scratch, options)
    bandwidths = (10, 20)
    runs: dict[int, list[Paced]] = {mib_s: [] for mib_s in bandwidths}
    bare_times = []
    paced_upload(gateway, user, wav)
    for _ in range(3):
        bare_times.append(timed(bare))
        for mib_s in bandwidths:
            runs[mib_s].append(paced_upload(gateway, user, wav, mib_s * MIB))
    ffmpeg = median(bare_times)
    rows: list[Row] = []
    for mib_s in bandwidths:
        transfer = median([run.transfer for run in runs[mib_s]])
        delay = median([run.delay for run in runs[mib_s]])
        total = median([run.total for run in runs[mib_s]])
        beyond = total - max(transfer, ffmpeg)
        if transfer >= ffmpeg:
            ok = delay <= 0.3 and total / transfer <= 1.06
            target = f"network-bound: <= 0.3 s and <= 1.06: {verdict(ok)}"
        else:
            target = (
                f"encoder-bound: response - max(transfer, ffmpeg) = {beyond:.2f} s"
                f" <= 0.3: {verdict(beyond <= 0.3)}"
            )
        rows.append(
            (
                f"g. throttled 600 s WAV at {mib_s} MiB/s (3 runs)",
                f"transfer {transfer:.2f} s",
                f"after last byte {delay:.2f} s",
                f"total/transfer {total / transfer:.3f}; bare ffmpeg {ffmpeg:.2f} s",
                target,
            )
        )
    return rows


def slowloris_rows(gateway: Gateway, user: dict[str, str], inputs: Path) -> list[Row]:
    wav = seconds_wav(inputs, 60)

    def normal_uploads() -> list[float]:
        return [timed(paced_upload, gateway, user, wav, None, NORMAL_SOURCE) for _ in range(10)]

    for _ in range(3):
        paced_upload(gateway, user, wav, None, NORMAL_SOURCE)
    unloaded = median(normal_uploads())
    with Slowloris(gateway, user, wav, SLOWLORIS_SOURCES) as slowloris:
        time.sleep(1)
        loaded = median(normal_uploads())
        slowloris.wait(slowloris.started + SLOWLORIS_WAIT_S)
        outcomes, answered_after = slowloris.outcomes()
    ratio = loaded / unloaded
    ended = ", ".join(f"{outcome} x{count}" for outcome, count in sorted(outcomes.items()))
    if answered_after is not None:
        ended += f" (answers after median {answered_after:.1f} s)"
    return [
        (
            f"h. 60 s WAV uploads beside {len(SLOWLORIS_SOURCES)} slowloris (10 runs each)",
            f"loaded median {loaded:.3f} s",
            f"unloaded median {unloaded:.3f} s",
            f"ratio {ratio:.3f}",
            f"<= 1.20: {verdict(ratio <= 1.20)}; slowloris by {SLOWLORIS_WAIT_S:.0f} s: {ended}",
        )
    ]


def inflight_rows(
    gateway: Gateway, user: dict[str, str], stack: Stack | None, inputs: Path
) -> list[Row]:
    label = f"i. memory per in-flight upload ({HELD_UPLOADS} uploads at {HELD_MIB_S} MiB/s)"
    if stack is None:
        return [(label, "n/a with BENCH_URL", "", "", "")]
    master = stack.processes["add_record"].pid
    for _ in range(2):  # modules imported and the workers' own threads started: the idle state
        paced_upload(gateway, user, seconds_wav(inputs, 1))
    wav = seconds_wav(inputs, 600)
    idle = footprint(master)
    stop = threading.Event()
    with ThreadPoolExecutor(HELD_UPLOADS) as pool:
        held = [
            pool.submit(held_upload, gateway, user, wav, HELD_MIB_S * MIB, stop)
            for _ in range(HELD_UPLOADS)
        ]
        try:
            time.sleep(HELD_SETTLE_S)
            samples = []
            for _ in range(3):
                samples.append(footprint(master))
                time.sleep(1)
        finally:
            stop.set()
        outcomes = Counter(future.result() for future in held)
    deadline = time.monotonic() + 30  # the next section starts on an idle stack
    while footprint(master).ffmpeg_rss and time.monotonic() < deadline:
        time.sleep(0.2)
    busy = max(samples, key=lambda sample: sample.rss)
    converting = len(busy.ffmpeg_rss)
    if not converting:
        raise RuntimeError(f"no held upload reached ffmpeg: {dict(outcomes)}")
    growth = (busy.rss - idle.rss) / MIB
    threads = max(sample.threads for sample in samples) - idle.threads
    in_workers = max(sample.worker_threads for sample in samples) - idle.worker_threads
    answers = ", ".join(f"{outcome} x{count}" for outcome, count in sorted(outcomes.items()))
    return [
        (
            label,
            f"add_record +{growth:.1f} MiB in all",
            f"per upload {growth / converting:.1f} MiB"
            f" (ffmpeg {statistics.mean(busy.ffmpeg_rss) / MIB:.1f} MiB,"
            f" worker {(busy.worker_rss - idle.worker_rss) / MIB / converting:.1f} MiB)",
            f"threads +{threads} ({threads / converting:.1f} per upload,"
            f" {in_workers / converting:.1f} in the worker)",
            f"{converting} of {HELD_UPLOADS} converting; uploads ended: {answers}",
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--big-bytes",
        type=int,
        default=GIB,
        help="size of the WAV for the memory figures (default 1 GiB)",
    )
    parser.add_argument(
        "--only",
        default="abcdefghijk",
        help="sections to run, e.g. 'ab' (default: all of abcdefghijk)",
    )
    args = parser.parse_args()
    for tool in ("ffmpeg", "wrk") + (() if os.environ.get("BENCH_URL") else ("nginx",)):
        if shutil.which(tool) is None:
            sys.exit(f"make bench needs {tool}: sudo apt-get install {tool}")
    inputs = Path(os.environ.get("BENCH_DIR", ROOT / ".run" / "bench"))
    inputs.mkdir(parents=True, exist_ok=True)
    settings = Settings.from_env()
    options = EncoderOptions.from_settings(settings)
    print(
        f"load average before: {Path('/proc/loadavg').read_text().strip()}; "
        f"{os.cpu_count()} cores; MP3_BITRATE {settings.mp3_bitrate}",
        flush=True,
    )
    with ExitStack() as resources:
        scratch = Path(resources.enter_context(tempfile.TemporaryDirectory(dir=inputs)))
        stack: Stack | None = None
        database: str | None = None
        base_url = os.environ.get("BENCH_URL")
        if base_url is None:
            # h's slow uploads come from an address each, so the per-address upload limit would
            # not bind them anyway.
            stack, database = resources.enter_context(
                lifted_stack(
                    os.environ.get("TEST_DATABASE_URL", DEFAULT_SERVER_URL),
                    inputs / "stack",
                    scratch,
                )
            )
            base_url = stack.url
        gateway = Gateway(base_url)
        user = gateway.create_user()

        rows: list[Row] = []
        sections: dict[str, Callable[[], list[Row]]] = {
            # POST /user first: the later sections leave PostgreSQL flushing a GiB of writes.
            "e": lambda: create_user_rows(base_url),
            # i early: add_record's thread pools grow on demand, and uploads run before would have
            # left threads idle in them for i's uploads to take.
            "i": lambda: inflight_rows(gateway, user, stack, inputs),
            "a": lambda: latency_rows(gateway, user, inputs, scratch, options),
            "b": lambda: throughput_rows(gateway, user, inputs, scratch, options),
            "cd": lambda: memory_and_download_rows(gateway, user, stack, inputs, args.big_bytes),
            "f": lambda: conversion_path_rows(inputs, scratch, options),
            "g": lambda: throttled_rows(gateway, user, inputs, scratch, options),
            "h": lambda: slowloris_rows(gateway, user, inputs),
            "j": lambda: tus_rows(
                gateway,
                user,
                base_url=base_url,
                stack=stack,
                database_url=database,
                inputs=inputs,
                footprint=lambda master: footprint(master).rss,
                bare=lambda: timed(bare_ffmpeg(seconds_wav(inputs, 600), scratch, options)),
            ),
            "k": lambda: (
                record_cache_rows(stack, database, user, inputs)
                if stack is not None and database is not None
                else [("k. record cache", "n/a with BENCH_URL", "", "", "")]
            ),
        }
        for letters, section in sections.items():
            if not set(letters) & set(args.only):
                continue
            rows += section()
            print(f"  ... {rows[-1][0]}", file=sys.stderr, flush=True)
    print(f"load average after: {Path('/proc/loadavg').read_text().strip()}")
    print_table(sorted(rows, key=lambda row: row[0][0]))


if __name__ == "__main__":
    main()
