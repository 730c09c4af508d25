"""`make upload-cost`: what an upload costs add_record beside ffmpeg, this tree against another.

Starts the local stack of this checkout (limits lifted, a throwaway database) and, with --before
GITREV, a second one running GITREV's code, checked out into a temporary git worktree (removed at
the end), and alternates rounds between them. Each round measures, on each stack in turn:

- the CPU-seconds add_record's workers (the gunicorn master's children, from /proc/<pid>/stat;
  their ffmpeg children are not counted) spend per MiB of a batch of unthrottled 60 s WAV uploads;
- against bare ffmpeg on the same file, timed in turn with the uploads: a 1 s WAV's upload latency,
  a 60 s WAV's, and the throughput of two 60 s uploads at once against two bare ffmpegs at once.

Every figure is the median over the rounds. Wall-clock ratios are noisy on a shared machine;
CPU-seconds much less so (--cpu-only skips the ratios).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from bench.client import Gateway, timed
from bench.local import (
    MIB,
    Row,
    bare_ffmpeg,
    cpu_seconds,
    lifted_stack,
    median,
    print_table,
    verdict,
    workers,
)
from common.audio.ffmpeg import EncoderOptions
from common.config import Settings
from devstack.databases import DEFAULT_SERVER_URL
from devstack.stack import ROOT
from devstack.wavgen import seconds_wav

LATENCY_TARGETS = {1: 1.25, 60: 1.10}
"""Upload latency / bare ffmpeg latency, at most, by the WAV's seconds."""
THROUGHPUT_TARGET = 0.90
"""Two uploads at once / two bare ffmpegs at once, at least."""
LATENCY_RUNS = {1: 5, 60: 2}
"""Pairs (upload, bare ffmpeg) per round, by the WAV's seconds."""


def at_once(*actions: Callable[[], object]) -> Callable[[], None]:
    """`actions` run at once, each in a thread of its own, as one callable for timing."""

    def run() -> None:
        with ThreadPoolExecutor(len(actions)) as pool:
            for future in [pool.submit(action) for action in actions]:
                future.result()

    return run


@dataclass
class Tree:
    """One checkout's running stack and what was measured on it."""

    label: str
    gateway: Gateway
    user: dict[str, str]
    master: int
    cpu_ms_per_mib: list[float] = field(default_factory=list)
    latency: dict[int, tuple[list[float], list[float]]] = field(
        default_factory=lambda: {seconds: ([], []) for seconds in LATENCY_TARGETS}
    )
    pairs: tuple[list[float], list[float]] = field(default_factory=lambda: ([], []))

    def upload(self, wav: Path) -> None:
        self.gateway.upload(self.user, wav)

    def measure_cpu(self, wav: Path, uploads: int) -> None:
        """One batch of uploads, one after the other: worker CPU ms per MiB uploaded."""
        pids = workers(self.master)
        before = cpu_seconds(pids)
        for _ in range(uploads):
            self.upload(wav)
        if workers(self.master) != pids:
            raise RuntimeError(f"{self.label}: add_record's workers changed during the batch")
        spent = cpu_seconds(pids) - before
        self.cpu_ms_per_mib.append(1000 * spent / (uploads * wav.stat().st_size / MIB))

    def measure_wall(
        self,
        wavs: dict[int, Path],
        bare: dict[int, Callable[[], None]],
        other_bare_60: Callable[[], None],
    ) -> None:
        """Upload latencies and two-at-once times, each beside bare ffmpeg's, in turn (a second
        bare ffmpeg of the 60 s WAV writes a file of its own)."""
        for seconds, (service, reference) in self.latency.items():
            for _ in range(LATENCY_RUNS[seconds]):
                service.append(timed(self.upload, wavs[seconds]))
                reference.append(timed(bare[seconds]))
        upload_60 = partial(self.upload, wavs[60])
        self.pairs[0].append(timed(at_once(upload_60, upload_60)))
        self.pairs[1].append(timed(at_once(bare[60], other_bare_60)))

    def rows(self, baseline: Tree | None) -> list[Row]:
        cpu = median(self.cpu_ms_per_mib)
        compared = (
            ""
            if baseline is None
            else f"{cpu / median(baseline.cpu_ms_per_mib):.2f}x of {baseline.label}'s"
        )
        rows: list[Row] = [
            (
                f"add_record worker CPU per uploaded MiB [{self.label}]",
                f"{cpu:.2f} ms/MiB",
                "rounds " + ", ".join(f"{value:.2f}" for value in self.cpu_ms_per_mib),
                compared,
                "",
            )
        ]
        for seconds, (service, reference) in self.latency.items():
            if not service:
                continue
            ratio = median(service) / median(reference)
            target = LATENCY_TARGETS[seconds]
            rows.append(
                (
                    f"upload latency, {seconds} s WAV ({len(service)} runs) [{self.label}]",
                    f"median {median(service):.3f} s",
                    f"bare ffmpeg median {median(reference):.3f} s",
                    f"ratio {ratio:.3f}",
                    f"<= {target:.2f}: {verdict(ratio <= target)}",
                )
            )
        if self.pairs[0]:
            ratio = median(self.pairs[1]) / median(self.pairs[0])
            rows.append(
                (
                    f"two 60 s uploads at once ({len(self.pairs[0])} runs) [{self.label}]",
                    f"{2 / median(self.pairs[0]):.2f} uploads/s",
                    f"two bare ffmpegs {2 / median(self.pairs[1]):.2f} jobs/s",
                    f"ratio {ratio:.3f}",
                    f">= {THROUGHPUT_TARGET:.2f}: {verdict(ratio >= THROUGHPUT_TARGET)}",
                )
            )
        return rows


@contextmanager
def worktree(rev: str) -> Iterator[Path]:
    """`rev` checked out (detached) into a temporary git worktree, removed on exit."""
    base = Path(tempfile.mkdtemp(prefix="audiosvc-before-"))
    path = base / "tree"
    git = ["git", "-C", str(ROOT), "worktree"]
    subprocess.run([*git, "add", "--quiet", "--detach", str(path), rev], check=True)
    try:
        yield path
    finally:
        subprocess.run([*git, "remove", "--force", str(path)], check=False)
        shutil.rmtree(base, ignore_errors=True)
        subprocess.run([*git, "prune"], check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--before", metavar="GITREV", help="also measure the code at GITREV")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per tree (default 3)")
    parser.add_argument(
        "--uploads", type=int, default=6, help="60 s WAV uploads per CPU batch (default 6)"
    )
    parser.add_argument("--cpu-only", action="store_true", help="skip the wall-clock ratios")
    args = parser.parse_args()
    for tool in ("ffmpeg", "nginx"):
        if shutil.which(tool) is None:
            sys.exit(f"make upload-cost needs {tool}: sudo apt-get install {tool}")
    inputs = Path(os.environ.get("BENCH_DIR", ROOT / ".run" / "bench"))
    inputs.mkdir(parents=True, exist_ok=True)
    options = EncoderOptions.from_settings(Settings.from_env())
    server = os.environ.get("TEST_DATABASE_URL", DEFAULT_SERVER_URL)
    wavs = {seconds: seconds_wav(inputs, seconds) for seconds in LATENCY_TARGETS}
    print(
        f"load average before: {Path('/proc/loadavg').read_text().strip()}; {os.cpu_count()} cores",
        flush=True,
    )
    with ExitStack() as resources:
        scratch = Path(resources.enter_context(tempfile.TemporaryDirectory(dir=inputs)))
        bare = {seconds: bare_ffmpeg(wav, scratch, options) for seconds, wav in wavs.items()}
        other_bare_60 = bare_ffmpeg(wavs[60], scratch, options)
        roots = {"this tree": ROOT}
        if args.before:
            roots[args.before] = resources.enter_context(worktree(args.before))
        trees: list[Tree] = []
        for number, (label, root) in enumerate(roots.items()):
            spool = scratch / f"spool-{number}"
            spool.mkdir()
            stack, _ = resources.enter_context(
                lifted_stack(server, inputs / f"upload-cost-{number}", spool, root)
            )
            gateway = Gateway(stack.url)
            tree = Tree(label, gateway, gateway.create_user(), stack.processes["add_record"].pid)
            for _ in range(2):  # modules imported, pools filled, ffmpeg in the page cache
                tree.upload(wavs[60])
            trees.append(tree)
        for number in range(args.rounds):
            for tree in trees if number % 2 == 0 else trees[::-1]:
                tree.measure_cpu(wavs[60], args.uploads)
                if not args.cpu_only:
                    tree.measure_wall(wavs, bare, other_bare_60)
            print(f"  ... round {number + 1} of {args.rounds}", file=sys.stderr, flush=True)
    print(f"load average after: {Path('/proc/loadavg').read_text().strip()}")
    baseline = trees[-1] if len(trees) > 1 else None
    print_table(
        [row for tree in trees for row in tree.rows(None if tree is baseline else baseline)]
    )


if __name__ == "__main__":
    main()
