"""Running the real ffmpeg and ffprobe from the tests: making audio and looking at MP3s."""

from __future__ import annotations

import subprocess
from pathlib import Path


def ffmpeg(*args: str) -> bytes:
    """ffmpeg's standard output for `args` (quiet, failing loudly)."""
    command = ["ffmpeg", "-v", "error", *args]
    return subprocess.run(command, capture_output=True, check=True).stdout


def tone(source: str, *output: str) -> bytes:
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
