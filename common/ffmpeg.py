"""The ffmpeg wrapper: one WAV file in, one MP3 file out, typed errors, nothing left running.

The MP3 goes to a seekable file, never a pipe: only then can the muxer go back and fill in the
Xing/LAME header that carries the exact length (frames, encoder delay and padding).
"""

from __future__ import annotations

import subprocess
from bisect import bisect_left
from dataclasses import dataclass
from pathlib import Path

from common.mp3 import Mp3Info, NotMp3, read_info
from common.wav import WavInfo

MP3_SAMPLE_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
_STDERR_TAIL = 300


class ConversionError(Exception):
    """ffmpeg could not turn the input into an MP3 (422): `reason` is short and safe to show."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ConversionTimeout(ConversionError):
    """The conversion outlasted FFMPEG_TIMEOUT_S; ffmpeg was killed (422)."""


class ConverterUnavailable(Exception):
    """The ffmpeg binary cannot be run at all: a deployment fault, not the client's (503)."""


@dataclass(frozen=True)
class EncoderOptions:
    bitrate: str
    timeout_s: float
    ffmpeg_path: str = "ffmpeg"


def mp3_sample_rate(rate: int) -> int:
    """The MP3 rate for a WAV rate: kept where MP3 has it, else the next one up, at most 48 kHz."""
    index = bisect_left(MP3_SAMPLE_RATES, rate)
    return MP3_SAMPLE_RATES[min(index, len(MP3_SAMPLE_RATES) - 1)]


def mp3_channels(channels: int) -> int:
    return 1 if channels == 1 else 2


def command(
    source: Path, target: Path, wav: WavInfo, options: EncoderOptions, title: str | None
) -> list[str]:
    """The exact ffmpeg command line for one conversion (also what the benchmark runs bare)."""
    args = [
        options.ffmpeg_path,
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-protocol_whitelist",
        "file",
    ]
    if not wav.size_is_trustworthy:
        args += ["-ignore_length", "1"]
    args += [
        "-f",
        "wav",
        "-i",
        f"file:{source}",
        "-map",
        "0:a:0",
        "-map_metadata",
        "-1",
        "-c:a",
        "libmp3lame",
        "-b:a",
        options.bitrate,
        "-ar",
        str(mp3_sample_rate(wav.sample_rate)),
        "-ac",
        str(mp3_channels(wav.channels)),
        "-write_xing",
        "1",
        "-id3v2_version",
        "3",
    ]
    if title:
        args += ["-metadata", f"title={title}"]
    args += ["-f", "mp3", "-y", f"file:{target}"]
    return args


def convert(
    source: Path, target: Path, wav: WavInfo, options: EncoderOptions, title: str | None = None
) -> Mp3Info:
    """Encode `source` into `target`; raise ConversionError with a short reason on any failure."""
    args = command(source, target, wav, options, title)
    try:
        result = subprocess.run(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=options.timeout_s,
            check=False,
        )
    except FileNotFoundError:
        raise ConverterUnavailable(f"{options.ffmpeg_path} is not installed") from None
    except subprocess.TimeoutExpired:
        raise ConversionTimeout(
            f"the conversion took longer than {options.timeout_s:g} s and was stopped"
        ) from None
    if result.returncode != 0:
        raise ConversionError(_reason(result.returncode, result.stderr, source))
    try:
        with target.open("rb") as mp3:
            info = read_info(mp3)
    except (OSError, NotMp3):
        raise ConversionError("the audio could not be decoded") from None
    if info.frames == 0:
        raise ConversionError("the audio could not be decoded: no samples")
    return info


def _reason(returncode: int, stderr: bytes, source: Path) -> str:
    if returncode < 0:
        return f"the converter was stopped by signal {-returncode}"
    text = stderr.decode("utf-8", "replace").replace(f"file:{source}", "input")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    detail = lines[-1] if lines else f"ffmpeg exited with status {returncode}"
    return "the audio could not be decoded: " + detail[-_STDERR_TAIL:]
