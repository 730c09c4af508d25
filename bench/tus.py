"""Row j of `make bench`: resumable uploads (tus) beside their references in the same run.

- a 600 s WAV in one PATCH at 10 and 20 MiB/s: the answer after the last byte (target <= 0.5 s,
  as POST /record's row g);
- the same WAV cut at half and resumed at once (HEAD, then a PATCH of the rest): the answer after
  the last byte (target <= 1 s);
- a 60 s WAV from tuspy in 1 MiB PATCHes, unthrottled, against a plain POST of the same WAV
  (target <= 1.3x);
- WAL written for a 100 MB WAV uploaded by tus, against its MP3's size (target <= 1.5x: the WAV's
  own bytes are not in it);
- add_record's memory with 100 unfinished uploads, against idle (target within +16 MiB).
"""

from __future__ import annotations

import base64
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
from tusclient.client import TusClient

from bench.client import Gateway, timed
from bench.throttled import PACE_PIECE, paced_upload
from common.storage.db import libpq_url
from devstack.stack import Stack
from devstack.wavgen import seconds_wav, sized_wav

MIB = 1 << 20
Row = tuple[str, str, str, str, str]
OPEN_UPLOADS = 100


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def tus_headers(user: dict[str, str], **more: str) -> dict[str, str]:
    return {"Tus-Resumable": "1.0.0", "Authorization": f"Bearer {user['token']}", **more}


def create_upload(gateway: Gateway, user: dict[str, str], length: int) -> str:
    """POST /uploads; the upload's path."""
    meta = ",".join(
        f"{key} {base64.b64encode(value.encode()).decode()}"
        for key, value in (("user", user["id"]), ("filename", "bench.wav"))
    )
    conn = gateway.connect()
    conn.request(
        "POST",
        "/uploads",
        headers=tus_headers(user, **{"Upload-Length": str(length), "Upload-Metadata": meta}),
    )
    response = conn.getresponse()
    response.read()
    conn.close()
    if response.status != 201:
        raise RuntimeError(f"POST /uploads: {response.status}")
    return "/" + response.getheader("Location", "").split("/", 3)[3]


def offset_of(gateway: Gateway, user: dict[str, str], path: str) -> int:
    conn = gateway.connect()
    conn.request("HEAD", path, headers=tus_headers(user))
    response = conn.getresponse()
    response.read()
    conn.close()
    return int(response.getheader("Upload-Offset", "-1"))


def paced_patch(
    gateway: Gateway,
    user: dict[str, str],
    path: str,
    data: bytes,
    *,
    offset: int,
    rate: float,
    cut_after: int | None = None,
) -> tuple[float, float, str]:
    """PATCH `data` at `offset`, sent at `rate` bytes/s: (seconds from first to last byte sent,
    seconds from the last byte to the answer, the Record-Location). With `cut_after`, the
    connection is closed once that many bytes went out: (transfer, nan, "")."""
    conn = gateway.connect()
    conn.connect()
    conn.putrequest("PATCH", path, skip_accept_encoding=True)
    headers = tus_headers(
        user,
        **{
            "Upload-Offset": str(offset),
            "Content-Type": "application/offset+octet-stream",
            "Content-Length": str(len(data)),
        },
    )
    for name, value in headers.items():
        conn.putheader(name, value)
    start = time.perf_counter()
    conn.endheaders()
    sent = 0
    while sent < len(data) and (cut_after is None or sent < cut_after):
        piece = data[sent : sent + PACE_PIECE]
        ahead = start + (sent + len(piece)) / rate - time.perf_counter()
        if ahead > 0:
            time.sleep(ahead)
        conn.send(piece)
        sent += len(piece)
    last_byte = time.perf_counter()
    if cut_after is not None:
        conn.close()
        return last_byte - start, float("nan"), ""
    response = conn.getresponse()
    response.read()
    answered = time.perf_counter()
    conn.close()
    record = response.getheader("Record-Location")
    if response.status != 204 or record is None:
        raise RuntimeError(f"PATCH {path}: {response.status}")
    return last_byte - start, answered - last_byte, record


def resumed_at_once(
    gateway: Gateway, user: dict[str, str], wav: bytes, rate: float
) -> tuple[float, float]:
    """Cut at half, then resumed from the server's offset: (seconds sending, the answer after
    the last byte)."""
    path = create_upload(gateway, user, len(wav))
    first, _, _ = paced_patch(
        gateway, user, path, wav, offset=0, rate=rate, cut_after=len(wav) // 2
    )
    while True:  # the cut PATCH releases the upload as soon as add_record sees the cut
        kept = offset_of(gateway, user, path)
        try:
            rest, delay, _ = paced_patch(gateway, user, path, wav[kept:], offset=kept, rate=rate)
        except RuntimeError as refused:
            if "409" not in str(refused):
                raise
            time.sleep(0.05)
        else:
            return first + rest, delay


def judged(transfer: float, delay: float, ffmpeg: float, bound: float) -> str:
    """As row g judges POST /record: by the answer after the last byte when the network is the
    slower, by what the whole took past bare ffmpeg when the encoder is."""
    if transfer >= ffmpeg:
        return f"network-bound: {delay:.2f} s <= {bound:g}: {verdict(delay <= bound)}"
    beyond = transfer + delay - ffmpeg
    return f"encoder-bound: total - ffmpeg {beyond:.2f} s <= {bound:g}: {verdict(beyond <= bound)}"


def one_patch_rows(
    gateway: Gateway, user: dict[str, str], inputs: Path, bare: Callable[[], float]
) -> list[Row]:
    wav = seconds_wav(inputs, 600).read_bytes()
    rows: list[Row] = []
    for mib_s in (10, 20):
        whole: list[tuple[float, float]] = []
        resumed: list[tuple[float, float]] = []
        ffmpeg: list[float] = []
        for _ in range(3):
            ffmpeg.append(bare())
            path = create_upload(gateway, user, len(wav))
            whole.append(paced_patch(gateway, user, path, wav, offset=0, rate=mib_s * MIB)[:2])
            resumed.append(resumed_at_once(gateway, user, wav, mib_s * MIB))
        reference = statistics.median(ffmpeg)
        transfer, delay = (statistics.median(values) for values in zip(*whole, strict=True))
        cut_transfer, cut_delay = (
            statistics.median(values) for values in zip(*resumed, strict=True)
        )
        rows.append(
            (
                f"j. tus: 600 s WAV in one PATCH at {mib_s} MiB/s (3 runs)",
                f"after last byte {delay:.2f} s",
                f"cut at half, resumed: after last byte {cut_delay:.2f} s",
                f"bare ffmpeg {reference:.2f} s; transfer {transfer:.2f} s",
                f"{judged(transfer, delay, reference, 0.5)}; resumed "
                f"{judged(cut_transfer, cut_delay, reference, 1.0)}",
            )
        )
    return rows


def tuspy_row(gateway: Gateway, user: dict[str, str], base_url: str, inputs: Path) -> Row:
    wav = seconds_wav(inputs, 60)
    client = TusClient(f"{base_url}/uploads", headers={"Authorization": f"Bearer {user['token']}"})

    def with_tuspy() -> None:
        client.uploader(
            file_path=str(wav), chunk_size=MIB, metadata={"user": user["id"], "filename": "b.wav"}
        ).upload()

    tus_times, post_times = [], []
    for _ in range(5):
        tus_times.append(timed(with_tuspy))
        post_times.append(timed(paced_upload, gateway, user, wav))
    ratio = statistics.median(tus_times) / statistics.median(post_times)
    return (
        "j. tus: 60 s WAV from tuspy in 1 MiB PATCHes (5 runs)",
        f"median {statistics.median(tus_times):.3f} s",
        f"POST /record median {statistics.median(post_times):.3f} s",
        f"ratio {ratio:.3f}",
        f"<= 1.3: {verdict(ratio <= 1.3)}",
    )


def wal_row(gateway: Gateway, user: dict[str, str], database_url: str | None, inputs: Path) -> Row:
    label = "j. tus: WAL written for a 100 MB WAV"
    if database_url is None:
        return (label, "n/a with BENCH_URL", "", "", "")
    wav = sized_wav(inputs, 100_000_000).read_bytes()

    def wal_of(upload: Callable[[], object]) -> int:
        with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
            before = conn.execute("SELECT pg_current_wal_lsn()").fetchone()
            upload()
            after = conn.execute(
                "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s)", [before[0] if before else 0]
            ).fetchone()
        return int(after[0]) if after else 0

    path = create_upload(gateway, user, len(wav))
    records: list[str] = []
    by_tus = wal_of(
        lambda: records.append(paced_patch(gateway, user, path, wav, offset=0, rate=1e12)[2])
    )
    conn = gateway.connect()
    conn.request("HEAD", "/" + records[0].split("/", 3)[3])
    response = conn.getresponse()
    response.read()
    conn.close()
    mp3_bytes = int(response.getheader("Content-Length", "0"))
    ratio = by_tus / mp3_bytes
    return (
        label,
        f"{by_tus / MIB:.1f} MiB of WAL",
        f"MP3 {mp3_bytes / MIB:.1f} MiB; WAV {len(wav) / MIB:.1f} MiB",
        f"WAL/MP3 {ratio:.2f}",
        f"<= 1.5: {verdict(ratio <= 1.5)}",
    )


def open_uploads_row(
    gateway: Gateway,
    user: dict[str, str],
    stack: Stack | None,
    inputs: Path,
    footprint: Callable[[int], int],
) -> Row:
    label = f"j. tus: add_record memory with {OPEN_UPLOADS} unfinished uploads"
    if stack is None:
        return (label, "n/a with BENCH_URL", "", "", "")
    master = stack.processes["add_record"].pid
    wav = seconds_wav(inputs, 60).read_bytes()
    first = wav[: 256 * 1024]
    for _ in range(2):  # the workers' modules and pools warmed: the idle state
        path = create_upload(gateway, user, len(wav))
        paced_patch(gateway, user, path, wav, offset=0, rate=1e12)
    idle = footprint(master)
    for _ in range(OPEN_UPLOADS):
        path = create_upload(gateway, user, len(wav))
        conn = gateway.connect()
        conn.request(
            "PATCH",
            path,
            body=first,
            headers=tus_headers(
                user,
                **{"Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
            ),
        )
        response = conn.getresponse()
        response.read()
        conn.close()
        if response.status != 204:
            raise RuntimeError(f"PATCH {path}: {response.status}")
    held = footprint(master)
    growth = (held - idle) / MIB
    return (
        label,
        f"add_record {held / MIB:.1f} MiB",
        f"idle {idle / MIB:.1f} MiB",
        f"+{growth:.1f} MiB",
        f"<= +16 MiB: {verdict(growth <= 16)}",
    )


def tus_rows(
    gateway: Gateway,
    user: dict[str, str],
    *,
    base_url: str,
    stack: Stack | None,
    database_url: str | None,
    inputs: Path,
    footprint: Callable[[int], int],
    bare: Callable[[], float],
) -> list[Row]:
    """`bare`: seconds of the bare ffmpeg command on the 600 s WAV, run now."""
    return [
        *one_patch_rows(gateway, user, inputs, bare),
        tuspy_row(gateway, user, base_url, inputs),
        wal_row(gateway, user, database_url, inputs),
        open_uploads_row(gateway, user, stack, inputs, footprint),
    ]
