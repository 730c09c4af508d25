"""Every real WAV converts per contract: codecs, layouts, rates and header quirks, made by ffmpeg
and by hand inside the test, each checked for the MP3's length, channels and rate."""

from __future__ import annotations

import io
import struct
import tempfile
from pathlib import Path

import pytest

from common.audio.ffmpeg import EncoderOptions
from common.audio.transcode import transcode
from tests.helpers import ffmpeg, fmt_chunk, lavfi, pcm16, probe, riff, with_data_size

OPTIONS = EncoderOptions(bitrate="128k", timeout_s=60)


def ffmpeg_wav(codec: str, rate: int, channels: int, seconds: float, *extra: str) -> bytes:
    """A WAV written by ffmpeg itself: a tone in the given codec, layout and rate."""
    layout = f"aformat=channel_layouts={channels}c" if channels > 2 else "anull"
    return lavfi(
        f"sine=frequency=440:sample_rate={rate}:duration={seconds}",
        "-af",
        layout,
        "-ac",
        str(channels),
        "-c:a",
        codec,
        *extra,
        "-f",
        "wav",
    )


# (id, WAV bytes factory, seconds, expected MP3 rate, expected MP3 channels)
CASES = [
    ("pcm_u8", lambda: ffmpeg_wav("pcm_u8", 8000, 1, 1.5), 1.5, 8000, 1),
    ("pcm_s16", lambda: ffmpeg_wav("pcm_s16le", 44100, 2, 2), 2, 44100, 2),
    ("pcm_s24", lambda: ffmpeg_wav("pcm_s24le", 48000, 2, 1), 1, 48000, 2),
    ("pcm_s32", lambda: ffmpeg_wav("pcm_s32le", 96000, 1, 1), 1, 48000, 1),
    ("float32", lambda: ffmpeg_wav("pcm_f32le", 22050, 2, 1), 1, 22050, 2),
    ("float64", lambda: ffmpeg_wav("pcm_f64le", 16000, 1, 1), 1, 16000, 1),
    ("mu-law", lambda: ffmpeg_wav("pcm_mulaw", 8000, 1, 2), 2, 8000, 1),
    ("a-law", lambda: ffmpeg_wav("pcm_alaw", 8000, 2, 1), 1, 8000, 2),
    ("ima-adpcm", lambda: ffmpeg_wav("adpcm_ima_wav", 22050, 2, 2), 2, 22050, 2),
    ("ms-adpcm", lambda: ffmpeg_wav("adpcm_ms", 44100, 1, 2), 2, 44100, 1),
    ("3-channels", lambda: ffmpeg_wav("pcm_s16le", 48000, 3, 1), 1, 48000, 2),
    ("4-channels", lambda: ffmpeg_wav("pcm_s16le", 44100, 4, 1), 1, 44100, 2),
    ("6-channels-extensible", lambda: ffmpeg_wav("pcm_s24le", 48000, 6, 1), 1, 48000, 2),
    ("8-channels", lambda: ffmpeg_wav("pcm_s16le", 32000, 8, 1), 1, 32000, 2),
    ("11025", lambda: pcm16(1, 11025, 1), 1, 11025, 1),
    ("12000", lambda: pcm16(1, 12000, 2), 1, 12000, 2),
    ("24000", lambda: pcm16(1, 24000, 1), 1, 24000, 1),
    ("37800-up-to-44100", lambda: pcm16(1, 37800, 2), 1, 44100, 2),
    ("88200-down-to-48000", lambda: pcm16(1, 88200, 2), 1, 48000, 2),
    ("176400", lambda: ffmpeg_wav("pcm_s24le", 176400, 2, 1), 1, 48000, 2),
    ("192000", lambda: ffmpeg_wav("pcm_s32le", 192000, 2, 1), 1, 48000, 2),
    ("7000-up-to-8000", lambda: pcm16(1, 7000, 1), 1, 8000, 1),
    (
        "list-info-and-bext",
        lambda: ffmpeg_wav("pcm_s16le", 44100, 2, 1, "-metadata", "title=Tone", "-write_bext", "1"),
        1,
        44100,
        2,
    ),
    ("rf64-streamed", lambda: ffmpeg_wav("pcm_s16le", 44100, 2, 1, "-rf64", "always"), 1, 44100, 2),
    ("data-size-0", lambda: with_data_size(pcm16(1, 16000, 1), 0), 1, 16000, 1),
    ("data-size-ffffffff", lambda: with_data_size(pcm16(1, 16000, 1), 0xFFFFFFFF), 1, 16000, 1),
    ("declared-larger-than-file", lambda: pcm16(2, 16000, 1)[: 44 + 32000], 1, 16000, 1),
    ("streamed-riff-size-0", lambda: b"RIFF\0\0\0\0" + pcm16(1, 8000, 1)[8:], 1, 8000, 1),
]


def odd_chunks() -> bytes:
    """Chunks of odd sizes with their pad bytes, an unknown one, and `data` not last."""
    samples = pcm16(1, 22050, 1)[44:]
    return riff(
        [
            (b"JUNK", b"abc"),
            (b"fmt ", fmt_chunk(1, 1, 22050, 16)),
            (b"odd ", b"x" * 7),
            (b"data", samples),
            (b"LIST", b"INFOIART\x05\x00\x00\x00name\x00"),
        ]
    )


def extensible_by_hand() -> bytes:
    """WAVE_FORMAT_EXTENSIBLE written field by field: float samples in a 0xFFFE fmt chunk."""
    fmt = struct.pack("<HHIIHHHHI", 0xFFFE, 2, 44100, 44100 * 8, 8, 32, 22, 32, 3)
    fmt += struct.pack("<H", 3) + b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
    frames = struct.pack("<ff", 0.25, -0.25) * 44100
    return riff([(b"fmt ", fmt), (b"data", frames)])


def rf64_file() -> bytes:
    """RF64 as written to a seekable file: the real sizes in its ds64 chunk."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "rf64.wav"
        ffmpeg("-f", "lavfi", "-i", "sine=duration=1.5", "-ac", "2", "-rf64", "always", str(path))
        data = path.read_bytes()
    assert data[:4] == b"RF64"
    return data


CASES += [
    ("rf64-file", rf64_file, 1.5, 44100, 2),
    ("odd-sized-chunks", odd_chunks, 1, 22050, 1),
    ("extensible-float-by-hand", extensible_by_hand, 1, 44100, 2),
]


@pytest.mark.parametrize(
    ("case", "make", "seconds", "rate", "channels"), CASES, ids=[case[0] for case in CASES]
)
def test_real_wav_converts(
    tmp_path: Path, case: str, make: object, seconds: float, rate: int, channels: int
) -> None:
    data = make()  # type: ignore[operator]
    target = tmp_path / "out.mp3"
    result = transcode(io.BytesIO(data), target, OPTIONS, title=case)
    assert (result.mp3.sample_rate, result.mp3.channels) == (rate, channels)
    tolerance = max(seconds * 10, 60)
    assert result.mp3.duration_ms == pytest.approx(seconds * 1000, abs=tolerance)
    stream = probe(target)
    assert (stream["codec_name"], stream["sample_rate"], stream["channels"]) == (
        "mp3",
        str(rate),
        str(channels),
    )
