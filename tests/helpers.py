"""What the tests share: WAVs made here, the real ffmpeg and ffprobe to look at MP3s, multipart
bodies built by hand, a stream that trickles, and one way to count stored rows."""

from __future__ import annotations

import io
import struct
import subprocess
import uuid
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from common.spool import SLOTS_PREFIX
from common.storage.db import record_chunks, records

# --- WAVs --------------------------------------------------------------------------------------


def tone(
    seconds: float, rate: int = 44100, channels: int = 2, frequency: float = 440.0
) -> np.ndarray:
    frames = round(seconds * rate)
    t = np.arange(frames) / rate
    signal = 0.3 * np.sin(2 * np.pi * frequency * t)
    return np.repeat(signal[:, None], channels, axis=1)


def pcm16(seconds: float = 1.0, rate: int = 44100, channels: int = 2) -> bytes:
    samples = (tone(seconds, rate, channels) * 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return buffer.getvalue()


def riff(
    chunks: list[tuple[bytes, bytes]], form: bytes = b"WAVE", riff_size: int | None = None
) -> bytes:
    """A RIFF file from (id, body) chunks, odd bodies padded, sizes as given."""
    body = form
    for chunk_id, data in chunks:
        body += chunk_id + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b"")
    size = len(body) if riff_size is None else riff_size
    return b"RIFF" + struct.pack("<I", size) + body


def fmt_chunk(format_tag: int, channels: int, rate: int, bits: int) -> bytes:
    block_align = channels * bits // 8
    return struct.pack("<HHIIHH", format_tag, channels, rate, rate * block_align, block_align, bits)


def float32(seconds: float = 1.0, rate: int = 48000, channels: int = 1) -> bytes:
    samples = tone(seconds, rate, channels).astype("<f4")
    return riff([(b"fmt ", fmt_chunk(3, channels, rate, 32)), (b"data", samples.tobytes())])


def with_data_size(wav: bytes, declared: int) -> bytes:
    """The same WAV with its data chunk size field overwritten (as a streaming writer leaves it)."""
    at = wav.index(b"data") + 4
    return wav[:at] + struct.pack("<I", declared) + wav[at + 4 :]


def two_fmt_chunks() -> bytes:
    """324 bytes whose first fmt chunk (the one ffmpeg uses) says 8-bit PCM at 1 Hz, 256 samples
    that would play for minutes, and whose second says 48 kHz, where they would last 5 ms."""
    return riff(
        [
            (b"fmt ", fmt_chunk(1, 1, 1, 8)),
            (b"fmt ", fmt_chunk(1, 1, 48000, 8)),
            (b"data", bytes(range(256))),
        ]
    )


def pcm8(rate: int, samples: int) -> bytes:
    """An honest 8-bit mono PCM file at `rate` Hz."""
    return riff([(b"fmt ", fmt_chunk(1, 1, rate, 8)), (b"data", bytes(samples))])


def ima_adpcm(blocks: int, rate: int = 1000, block_align: int = 1024) -> bytes:
    """Mono IMA ADPCM whose header claims a byte rate of 0xFFFFFFFF (so its bytes would last
    microseconds): each block decodes to 2 * (block_align - 4) + 1 samples, seconds at 1 kHz."""
    samples_per_block = 2 * (block_align - 4) + 1
    fmt = struct.pack("<HHIIHHHH", 0x11, 1, rate, 0xFFFFFFFF, block_align, 4, 2, samples_per_block)
    block = struct.pack("<hBB", 0, 20, 0) + bytes((7 * i) % 256 for i in range(block_align - 4))
    return riff([(b"fmt ", fmt), (b"data", block * blocks)])


# --- ffmpeg and ffprobe -----------------------------------------------------------------------


def ffmpeg(*args: str) -> bytes:
    """ffmpeg's standard output for `args` (quiet, failing loudly)."""
    command = ["ffmpeg", "-v", "error", *args]
    return subprocess.run(command, capture_output=True, check=True).stdout


def lavfi(source: str, *output: str) -> bytes:
    """A lavfi source (e.g. `sine=duration=1`) encoded as `output` says, to stdout."""
    return ffmpeg("-f", "lavfi", "-i", source, *output, "pipe:1")


def probe(path: Path) -> dict[str, str]:
    """codec_name, channels, sample_rate of the first audio stream, and TAG:title if any."""
    command = [
        "ffprobe",
        "-v",
        "error",
        "-select_streams",
        "a:0",
        "-show_entries",
        "stream=codec_name,channels,sample_rate:format_tags=title",
        "-of",
        "default=noprint_wrappers=1",
        str(path),
    ]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines())


def decoded_seconds(path: Path) -> float:
    """How long the MP3 plays as ffmpeg decodes it: encoder delay and padding excluded."""
    info = probe(path)
    channels, rate = int(info["channels"]), int(info["sample_rate"])
    pcm = ffmpeg("-i", str(path), "-f", "s16le", "pipe:1")
    return len(pcm) / (2 * channels * rate)


# --- multipart/form-data, byte for byte ------------------------------------------------------


def multipart(
    fields: dict[str, str], files: list[tuple[str, str, bytes]], files_first: bool = False
) -> tuple[bytes, str]:
    """Body and Content-Type of a form: text `fields`, (field, file name, bytes) `files`; the
    fields come first unless `files_first`."""
    boundary = uuid.uuid4().hex
    text = b""
    for name, value in fields.items():
        text += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        ).encode()
    attached = b""
    for name, filename, data in files:
        attached += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\nContent-Type: audio/wav\r\n\r\n'
        ).encode()
        attached += data + b"\r\n"
    body = attached + text if files_first else text + attached
    body += f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


# --- streams and rows ------------------------------------------------------------------------


class Trickle(io.BytesIO):
    """A stream handing out at most `step` bytes per read, as a socket may."""

    def __init__(self, data: bytes, step: int = 7) -> None:
        super().__init__(data)
        self._step = step

    def read(self, size: int | None = -1) -> bytes:
        wanted = self._step if size is None or size < 0 else min(size, self._step)
        return super().read(wanted)


class CountingStream(io.BytesIO):
    """A body that notes the largest read asked of it."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.largest_read = 0

    def read(self, size: int | None = -1) -> bytes:
        piece = super().read(size)
        self.largest_read = max(self.largest_read, len(piece))
        return piece


def left_in_spool(spool_dir: Path) -> list[Path]:
    """What uploads left in the spool: everything but the instance's conversion slots."""
    return [path for path in spool_dir.iterdir() if not path.name.startswith(SLOTS_PREFIX)]


def stored_rows(engine: Engine, record_id: uuid.UUID | None = None) -> tuple[int, int]:
    """(records, chunk rows) stored, of one record or of all."""
    count_records = sa.select(sa.func.count()).select_from(records)
    count_chunks = sa.select(sa.func.count()).select_from(record_chunks)
    if record_id is not None:
        count_records = count_records.where(records.c.id == record_id)
        count_chunks = count_chunks.where(record_chunks.c.record_id == record_id)
    with engine.connect() as conn:
        return conn.execute(count_records).scalar_one(), conn.execute(count_chunks).scalar_one()


def stored_rows_at(database_url: str) -> tuple[int, int]:
    """(records, chunk rows) stored in the database of `database_url`, by an engine of its own."""
    engine = sa.create_engine(database_url)
    try:
        return stored_rows(engine)
    finally:
        engine.dispose()


@contextmanager
def nothing_stored(engine: Engine, spool_dir: Path | None = None) -> Iterator[None]:
    """The block stores no record and no chunk row, and leaves the spool directory empty."""
    before = stored_rows(engine)
    yield
    assert stored_rows(engine) == before, "a refused upload left rows behind"
    if spool_dir is not None:
        assert left_in_spool(spool_dir) == [], "a refused upload left files in the spool"
