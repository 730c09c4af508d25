"""WAV files generated inside the tests: PCM through Python's `wave`, the rest by hand."""

from __future__ import annotations

import io
import struct
import wave

import numpy as np


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
