"""The ffmpeg wrapper, with the real ffmpeg, on WAVs generated here."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from common.ffmpeg import ConversionError, EncoderOptions, convert, mp3_sample_rate
from common.wav import parse
from tests.wavs import float32, fmt_chunk, pcm16, riff, with_data_size

OPTIONS = EncoderOptions(bitrate="128k", timeout_s=60)


def probe(path: Path) -> dict[str, str]:
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,channels,sample_rate",
            "-show_entries",
            "format_tags=title",
            "-of",
            "default=noprint_wrappers=1",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(line.split("=", 1) for line in out.splitlines())


def decoded_seconds(path: Path, rate: int, channels: int) -> float:
    """The duration ffmpeg decodes, encoder delay and padding excluded (gapless)."""
    pcm = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-f", "s16le", "-"],
        capture_output=True,
        check=True,
    ).stdout
    return len(pcm) / (2 * channels * rate)


def run(tmp_path: Path, data: bytes, title: str | None = None):
    source, target = tmp_path / "in.wav", tmp_path / "out.mp3"
    source.write_bytes(data)
    with source.open("rb") as stream:
        wav = parse(stream, len(data))
    return convert(source, target, wav, OPTIONS, title), target


@pytest.mark.parametrize(
    ("rate", "channels", "seconds", "mp3_rate", "mp3_channels"),
    [
        (44100, 2, 2.0, 44100, 2),
        (8000, 1, 1.0, 8000, 1),
        (22050, 1, 0.3, 22050, 1),
        (96000, 2, 1.0, 48000, 2),
        (44000, 2, 1.0, 44100, 2),
        (48000, 6, 1.0, 48000, 2),
        (11025, 2, 1.5, 11025, 2),
    ],
)
def test_pcm_converts_per_contract(
    tmp_path: Path, rate: int, channels: int, seconds: float, mp3_rate: int, mp3_channels: int
) -> None:
    info, target = run(tmp_path, pcm16(seconds, rate, channels), title="Запись")
    stream = probe(target)
    assert stream["codec_name"] == "mp3"
    assert (int(stream["sample_rate"]), int(stream["channels"])) == (mp3_rate, mp3_channels)
    assert stream["TAG:title"] == "Запись"
    assert info.duration_ms == pytest.approx(seconds * 1000, abs=max(seconds * 10, 60))
    assert decoded_seconds(target, mp3_rate, mp3_channels) == pytest.approx(
        seconds, abs=max(seconds * 0.01, 0.06)
    )


def test_float_wav_converts(tmp_path: Path) -> None:
    info, _ = run(tmp_path, float32(1.0, 48000, 1))
    assert (info.sample_rate, info.channels) == (48000, 1)
    assert info.duration_ms == pytest.approx(1000, abs=60)


def test_streamed_wav_with_zero_data_size_converts_what_is_there(tmp_path: Path) -> None:
    info, _ = run(tmp_path, with_data_size(pcm16(2.0, 16000, 1), 0))
    assert info.duration_ms == pytest.approx(2000, abs=60)


def test_truncated_data_converts_the_audio_present(tmp_path: Path) -> None:
    wav = pcm16(2.0, 16000, 1)
    info, _ = run(tmp_path, wav[: len(wav) // 2])
    assert info.duration_ms == pytest.approx(1000, abs=60)


def test_unknown_codec_is_a_conversion_error_with_a_reason(tmp_path: Path) -> None:
    data = riff([(b"fmt ", fmt_chunk(0x1234, 1, 8000, 16)), (b"data", bytes(16000))])
    with pytest.raises(ConversionError, match="could not be decoded") as raised:
        run(tmp_path, data)
    assert str(tmp_path) not in raised.value.reason


def test_timeout_kills_ffmpeg(tmp_path: Path) -> None:
    source, target = tmp_path / "in.wav", tmp_path / "out.mp3"
    source.write_bytes(pcm16(30.0, 48000, 2))
    with source.open("rb") as stream:
        wav = parse(stream, source.stat().st_size)
    with pytest.raises(ConversionError, match="longer than"):
        convert(source, target, wav, EncoderOptions(bitrate="320k", timeout_s=0.05))
    leftover = subprocess.run(["pgrep", "-f", str(source)], capture_output=True, check=False)
    assert leftover.stdout == b""


@pytest.mark.parametrize(
    ("rate", "expected"),
    [(8000, 8000), (7000, 8000), (9000, 11025), (44100, 44100), (46000, 48000), (192000, 48000)],
)
def test_mp3_sample_rate(rate: int, expected: int) -> None:
    assert mp3_sample_rate(rate) == expected
