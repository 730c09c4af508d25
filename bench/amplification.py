"""Upload amplification: stored MP3 bytes and conversion seconds per uploaded byte.

For a security review: how much MP3 (stored in PostgreSQL) and how much ffmpeg time can one upload
that the service accepts buy, as the service is configured by default (MAX_DURATION_S 14400,
MP3_BITRATE 192k, MAX_UPLOAD_BYTES 1 GiB). Every candidate is a WAV the header reader lets
through (one `fmt ` chunk, a declared rate of at least 1 kHz), built with ffmpeg's own WAV muxer
from silence (`anullsrc`) or by hand with struct, and sometimes with its `fmt ` rate, channels or
byte rate rewritten. Each is posted, one at a time, as a raw `audio/wav` body with a Bearer token
to the real add_record app (falcon.testing, real ffmpeg) on a throwaway PostgreSQL database.

Columns: the MP3's length, the upload and MP3 sizes, their ratio, the service's own conversion
time (its `audiosvc_conversion_seconds` histogram: body read + ffmpeg) and that time per uploaded
MiB. The last case is the longest audio the service keeps (MAX_DURATION_S) from the smallest
upload found.

    .venv/bin/python -m bench.amplification [--seconds 600] [--skip-limit]

Needs ffmpeg and PostgreSQL at TEST_DATABASE_URL (default postgresql+psycopg://postgres@127.0.0.1:
5432/test); the database it makes there is dropped at the end.
"""

from __future__ import annotations

import argparse
import logging
import os
import struct
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import falcon.testing
from prometheus_client import REGISTRY

from common.config import Settings
from common.storage.db import create_engine, utc_now
from common.storage.records import RecordStore
from devstack.databases import DEFAULT_SERVER_URL, throwaway_database
from functions.add_record.app import create_app as add_record_app
from functions.create_user.app import create_app as create_user_app

MIB = 1 << 20
DEFAULT_SECONDS = 600.0
CONVERSION_SUM = "audiosvc_conversion_seconds_sum"
REQUEST_LOG = "audiosvc.requests"

Build = Callable[[Path, float], bytes]
"""Make the WAV of a case: (scratch directory, seconds of audio it should decode to) -> bytes."""


# --- building the WAVs ------------------------------------------------------------------------


def riff(chunks: Sequence[tuple[bytes, bytes]]) -> bytes:
    """A RIFF/WAVE file of (id, body) chunks, odd bodies padded."""
    body = b"WAVE"
    for chunk_id, data in chunks:
        body += chunk_id + struct.pack("<I", len(data)) + data + b"\0" * (len(data) & 1)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def chunks(wav: bytes) -> dict[bytes, bytes]:
    """The chunks of a RIFF/WAVE file by id (the first of each)."""
    found: dict[bytes, bytes] = {}
    position = 12
    while position + 8 <= len(wav):
        chunk_id, size = struct.unpack_from("<4sI", wav, position)
        found.setdefault(chunk_id, wav[position + 8 : position + 8 + size])
        position += 8 + size + (size & 1)
    return found


def minimal(wav: bytes) -> bytes:
    """The same WAV with only its `fmt ` and `data` chunks (no fact, LIST...): fewer bytes."""
    found = chunks(wav)
    return riff([(b"fmt ", found[b"fmt "]), (b"data", found[b"data"])])


def patched(
    wav: bytes,
    *,
    rate: int | None = None,
    channels: int | None = None,
    byte_rate: int | None = None,
) -> bytes:
    """The WAV with fields of its `fmt ` chunk rewritten (the audio bytes left as they are)."""
    at = wav.index(b"fmt ") + 8
    out = bytearray(wav)
    if channels is not None:
        struct.pack_into("<H", out, at + 2, channels)
    if rate is not None:
        struct.pack_into("<I", out, at + 4, rate)
    if byte_rate is not None:
        struct.pack_into("<I", out, at + 8, byte_rate)
    return bytes(out)


def lavfi(work: Path, rate: int, seconds: float, *codec: str) -> bytes:
    """`seconds` of mono silence at `rate` Hz through ffmpeg's encoder and WAV muxer."""
    target = work / "input.wav"
    source = ["-f", "lavfi", "-i", f"anullsrc=r={rate}:cl=mono", "-t", f"{seconds:.3f}"]
    output = ["-map_metadata", "-1", "-fflags", "+bitexact", "-f", "wav", "-y", str(target)]
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", *source, *codec, *output], check=True)
    return minimal(target.read_bytes())


def encoded(rate: int, *codec: str) -> Build:
    """An honest WAV: ffmpeg's encoder at `rate` Hz, header as its muxer writes it."""
    return lambda work, seconds: lavfi(work, rate, seconds, *codec)


def relabelled(
    encode_rate: int, header_rate: int, *codec: str, byte_rate: int | None = None
) -> Build:
    """Encoded at `encode_rate` Hz, declared at `header_rate` Hz: for a codec whose decoder takes
    the header's rate, as many samples as `seconds` at `header_rate` hold."""

    def build(work: Path, seconds: float) -> bytes:
        wav = lavfi(work, encode_rate, seconds * header_rate / encode_rate, *codec)
        return patched(wav, rate=header_rate, byte_rate=byte_rate)

    return build


def redeclared(encode_rate: int, header_rate: int, channels: int, *codec: str) -> Build:
    """Encoded at `encode_rate` Hz, the header claiming `header_rate` Hz and `channels`: for a
    codec whose decoder takes the rate from its own bitstream, so the audio lasts as long, and
    the service picks the MP3's rate (and so its bitrate cap) and channels from the header."""

    def build(work: Path, seconds: float) -> bytes:
        wav = lavfi(work, encode_rate, seconds, *codec)
        return patched(wav, rate=header_rate, channels=channels)

    return build


def ima_adpcm_2bit(rate: int, block_align: int = 1024) -> Build:
    """IMA ADPCM at 2 bits per sample (ffmpeg decodes 2 to 5; its encoder writes only 4), by hand:
    a 4-byte block header, then (block_align - 4) * 4 samples, plus the header's one."""
    samples_per_block = (block_align - 4) * 4 + 1

    def build(work: Path, seconds: float) -> bytes:
        blocks = -(-round(seconds * rate) // samples_per_block)
        fmt = struct.pack(
            "<HHIIHHHH",
            0x0011,
            1,
            rate,
            rate * block_align // samples_per_block,
            block_align,
            2,
            2,
            samples_per_block,
        )
        block = struct.pack("<hBB", 0, 0, 0) + bytes((37 * i) % 256 for i in range(block_align - 4))
        return riff([(b"fmt ", fmt), (b"data", block * blocks)])

    return build


@dataclass(frozen=True)
class Case:
    label: str
    build: Build
    seconds: float | None = None
    """Audio length; None means the run's --seconds."""


FLAC_SILENCE = ("-c:a", "flac", "-frame_size", "65535")

CASES: tuple[Case, ...] = (
    Case("PCM u8 1 kHz", encoded(1000, "-c:a", "pcm_u8")),
    Case("mu-law 1 kHz", encoded(1000, "-c:a", "pcm_mulaw")),
    Case("A-law 1 kHz", encoded(1000, "-c:a", "pcm_alaw")),
    Case("IMA ADPCM 4-bit 8 kHz", encoded(8000, "-c:a", "adpcm_ima_wav")),
    Case("IMA ADPCM 4-bit 1 kHz", encoded(1000, "-c:a", "adpcm_ima_wav")),
    Case("IMA ADPCM 2-bit 1 kHz (hand)", ima_adpcm_2bit(1000)),
    Case("G.726 2-bit 8 kHz", encoded(8000, "-c:a", "g726", "-code_size", "2")),
    Case(
        "G.726 2-bit, hdr 1 kHz",
        relabelled(8000, 1000, "-c:a", "g726", "-code_size", "2", byte_rate=250),
    ),
    Case("GSM 6.10 8 kHz", encoded(8000, "-c:a", "libgsm_ms")),
    Case("GSM 6.10, hdr 1 kHz", relabelled(8000, 1000, "-c:a", "libgsm_ms", byte_rate=203)),
    Case("DFPWM 1-bit 1 kHz", encoded(1000, "-c:a", "dfpwm")),
    Case("G.723.1 6.3k 8 kHz", encoded(8000, "-c:a", "g723_1", "-b:a", "6300")),
    Case("G.722 16 kHz", encoded(16000, "-c:a", "g722")),
    Case("MP3 8k 8 kHz", encoded(8000, "-c:a", "libmp3lame", "-b:a", "8k")),
    Case(
        "MP3 8k 8 kHz, hdr 48k st",
        redeclared(8000, 48000, 2, "-c:a", "libmp3lame", "-b:a", "8k"),
    ),
    Case("AAC silence 8 kHz", encoded(8000, "-c:a", "aac", "-b:a", "8k")),
    Case("AAC silence, hdr 48k st", redeclared(8000, 48000, 2, "-c:a", "aac", "-b:a", "8k")),
    Case("FLAC silence 1 kHz", encoded(1000, *FLAC_SILENCE)),
    Case("FLAC 1 Hz, hdr 48k st", redeclared(1, 48000, 2, *FLAC_SILENCE)),
)


def limit_cases(settings: Settings) -> list[Case]:
    """The longest audio kept (MAX_DURATION_S) from the smallest upload found. One FLAC frame of
    it all is too much for ffmpeg's memory limit (it resamples a frame at once: 4 h at 48 kHz
    stereo in floats), and so are 600-s frames (ffmpeg's memory grows with the length); frames of
    200 samples (200 s) stay near 250 MB."""
    limit = settings.max_duration_s
    return [
        Case(
            f"FLAC 1 Hz 1 frame, hdr 48k st, {limit:g} s",
            redeclared(1, 48000, 2, *FLAC_SILENCE),
            limit,
        ),
        Case(
            f"FLAC 1 Hz 200-s frames, hdr 48k st, {limit:g} s",
            redeclared(1, 48000, 2, "-c:a", "flac", "-frame_size", "200"),
            limit,
        ),
    ]


# --- measuring --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    label: str
    status: int
    upload_bytes: int
    audio_s: float | None = None
    mp3_bytes: int | None = None
    conversion_s: float = 0.0
    detail: str = field(default="")

    @property
    def accepted(self) -> bool:
        return self.status == 201 and self.mp3_bytes is not None

    @property
    def size_ratio(self) -> float:
        return (self.mp3_bytes or 0) / self.upload_bytes

    @property
    def seconds_per_mib(self) -> float:
        return self.conversion_s / (self.upload_bytes / MIB)


def conversion_seconds() -> float:
    """The service's running total of successful conversion time (its own histogram)."""
    return REGISTRY.get_sample_value(CONVERSION_SUM, {"outcome": "converted"}) or 0.0


class Service:
    """add_record in-process, as the function tests run it, and one user to upload as."""

    def __init__(self, settings: Settings) -> None:
        self._engine = create_engine(settings.database_url)
        self._client = falcon.testing.TestClient(add_record_app(settings, self._engine))
        self._store = RecordStore(self._engine, settings.chunk_bytes, now=utc_now)
        users = falcon.testing.TestClient(create_user_app(settings, self._engine))
        created = users.simulate_post("/user", json={"name": f"amp-{uuid.uuid4().hex[:12]}"})
        if created.status_code != 201:
            raise RuntimeError(f"POST /user answered {created.status_code}: {created.text}")
        self._user = uuid.UUID(created.json["id"])
        self._token = str(created.json["token"])
        logging.getLogger(REQUEST_LOG).setLevel(logging.WARNING)  # the table alone on the terminal

    def upload(self, label: str, body: bytes) -> Row:
        """POST the WAV; read the stored MP3's size and length, then delete it (quota)."""
        before = conversion_seconds()
        started = time.perf_counter()
        result = self._client.simulate_post(
            "/record",
            params={"user": str(self._user), "name": "amp.wav"},
            body=body,
            headers={"Content-Type": "audio/wav", "Authorization": f"Bearer {self._token}"},
        )
        elapsed = time.perf_counter() - started
        converted = conversion_seconds() - before
        if result.status_code != 201:
            detail = str(result.json.get("description", "")) if result.json else result.text
            return Row(label, result.status_code, len(body), detail=detail)
        record_id = uuid.UUID(result.json["id"])
        record = self._store.find(record_id, self._user)
        if record is None:
            raise RuntimeError(f"record {record_id} answered 201 but is not stored")
        self._store.delete(record_id, self._user)
        return Row(
            label,
            result.status_code,
            len(body),
            audio_s=record.duration_ms / 1000,
            mp3_bytes=record.size,
            conversion_s=converted if converted > 0 else elapsed,
        )

    def close(self) -> None:
        self._engine.dispose()


# --- reporting --------------------------------------------------------------------------------

HEADER = (
    f"{'codec / rate':<44} {'status':>6} {'audio s':>8} {'upload B':>10} {'MP3 B':>11} "
    f"{'MP3/upload':>10} {'conv s':>7} {'conv s/MiB':>11}"
)


def line(row: Row) -> str:
    if not row.accepted:
        return f"{row.label:<44} {row.status:>6} {'':>8} {row.upload_bytes:>10}  {row.detail}"
    return (
        f"{row.label:<44} {row.status:>6} {row.audio_s or 0:>8.1f} {row.upload_bytes:>10} "
        f"{row.mp3_bytes or 0:>11} {row.size_ratio:>10.1f} {row.conversion_s:>7.2f} "
        f"{row.seconds_per_mib:>11.1f}"
    )


def worst(rows: Sequence[Row]) -> str:
    accepted = [row for row in rows if row.accepted]
    if not accepted:
        return "worst: no case was accepted"
    by_size = max(accepted, key=lambda row: row.size_ratio)
    by_time = max(accepted, key=lambda row: row.seconds_per_mib)
    return (
        f"worst MP3/upload: {by_size.label} ({by_size.size_ratio:.1f}x); "
        f"worst conversion s per uploaded MiB: {by_time.label} ({by_time.seconds_per_mib:.1f})"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--seconds", type=float, default=DEFAULT_SECONDS, help="audio length of each case"
    )
    parser.add_argument(
        "--skip-limit", action="store_true", help="skip the MAX_DURATION_S (4 h) case"
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    server = os.environ.get("TEST_DATABASE_URL", DEFAULT_SERVER_URL)
    with (
        tempfile.TemporaryDirectory(prefix="amp-") as scratch,
        throwaway_database(server, "audiosvc_amp") as url,
    ):
        work = Path(scratch)
        spool = work / "spool"
        spool.mkdir()
        settings = Settings(database_url=url, spool_dir=str(spool))
        cases = list(CASES) + ([] if args.skip_limit else limit_cases(settings))
        service = Service(settings)
        rows: list[Row] = []
        print(
            f"defaults: MP3_BITRATE {settings.mp3_bitrate}, MAX_DURATION_S "
            f"{settings.max_duration_s:g}, MAX_UPLOAD_BYTES {settings.max_upload_bytes}"
        )
        print(HEADER)
        try:
            for case in cases:
                body = case.build(work, case.seconds or args.seconds)
                rows.append(service.upload(case.label, body))
                print(line(rows[-1]), flush=True)
        finally:
            service.close()
    print(worst(rows))
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
