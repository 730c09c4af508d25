"""Benchmark inputs: 44.1 kHz stereo 16-bit WAVs of a given length, written in pieces."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

RATE = 44100
CHANNELS = 2
FRAME_BYTES = 4


def write_wav(path: Path, frames: int, seed: int = 1) -> Path:
    """A tone plus noise (so the encoder has work to do), never held whole in memory."""
    data_bytes = frames * FRAME_BYTES
    header = b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE"
    header += b"fmt " + struct.pack(
        "<IHHIIHH", 16, 1, CHANNELS, RATE, RATE * FRAME_BYTES, FRAME_BYTES, 16
    )
    header += b"data" + struct.pack("<I", data_bytes)
    rng = np.random.default_rng(seed)
    with path.open("wb") as out:
        out.write(header)
        done = 0
        while done < frames:
            count = min(RATE * 10, frames - done)
            t = (np.arange(count) + done) / RATE
            tone = 8000 * np.sin(2 * np.pi * 440 * t) + rng.normal(0, 1500, count)
            stereo = np.repeat(tone[:, None], CHANNELS, axis=1).astype("<i2")
            out.write(stereo.tobytes())
            done += count
    return path


def seconds_wav(directory: Path, seconds: int) -> Path:
    path = directory / f"{seconds}s.wav"
    return path if path.exists() else write_wav(path, seconds * RATE)


def sized_wav(directory: Path, size_bytes: int) -> Path:
    path = directory / f"{size_bytes}b.wav"
    return path if path.exists() else write_wav(path, (size_bytes - 44) // FRAME_BYTES)
