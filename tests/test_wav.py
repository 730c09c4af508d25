"""The WAV header sniffer and chunk walker."""

from __future__ import annotations

import io
import struct

import pytest

from common.wav import BadWav, NotWav, parse, sniff
from tests.wavs import fmt_chunk, pcm16, riff, with_data_size


def parsed(data: bytes):
    return parse(io.BytesIO(data), len(data))


def test_pcm_header_is_read() -> None:
    info = parsed(pcm16(0.5, 22050, 1))
    assert (info.container, info.format_tag, info.channels, info.sample_rate) == (
        "RIFF",
        1,
        1,
        22050,
    )
    assert info.frames == 11025
    assert info.size_is_trustworthy


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"hello",
        b"hello, this is text",
        b"ID3\x04" + bytes(60),
        b"fLaC" + bytes(60),
        riff([(b"fmt ", bytes(16))], form=b"AVI "),
    ],
)
def test_not_riff_wave_is_refused(body: bytes) -> None:
    with pytest.raises(NotWav):
        sniff(body[:12])


def test_truncated_riff_header_is_undecodable() -> None:
    with pytest.raises(BadWav, match="truncated"):
        sniff(b"RIFF\x10\x00")


def test_chunks_before_data_and_odd_sizes_are_skipped() -> None:
    samples = bytes(400)
    data = riff(
        [
            (b"LIST", b"INFOISFT\x03\x00\x00\x00ab\x00"),
            (b"fmt ", fmt_chunk(1, 2, 8000, 16)),
            (b"junk", b"x"),
            (b"data", samples),
        ]
    )
    info = parsed(data)
    assert info.data_bytes == 400
    assert info.frames == 100


@pytest.mark.parametrize("declared", [0, 0xFFFFFFFF, 10**9])
def test_streaming_or_overlong_sizes_count_the_bytes_present(declared: int) -> None:
    wav = pcm16(0.25, 8000, 1)
    info = parsed(with_data_size(wav, declared))
    assert info.frames == 2000
    assert not info.size_is_trustworthy


def test_rf64_takes_the_size_from_ds64() -> None:
    samples = bytes(800)
    ds64 = struct.pack("<QQQI", 0, len(samples), 400, 0)
    data = riff([(b"ds64", ds64), (b"fmt ", fmt_chunk(1, 1, 8000, 16))])
    data += b"data" + struct.pack("<I", 0xFFFFFFFF) + samples
    data = b"RF64" + data[4:]
    info = parsed(data)
    assert (info.container, info.data_bytes) == ("RF64", 800)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (riff([(b"data", bytes(100))]), "no fmt chunk"),
        (riff([(b"fmt ", fmt_chunk(1, 1, 8000, 16))]), "no data chunk"),
        (riff([(b"fmt ", fmt_chunk(1, 1, 8000, 16)), (b"data", b"")]), "no audio samples"),
        (riff([(b"fmt ", fmt_chunk(1, 0, 8000, 16)), (b"data", bytes(10))]), "zero channels"),
        (riff([(b"fmt ", bytes(8)), (b"data", bytes(10))]), "fmt chunk is truncated"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00", "truncated"),
        (riff([(b"LIST", bytes(4))])[:-4] + b"LIST\xff\xff\xff\x7f", "no fmt chunk"),
    ],
)
def test_undecodable_wavs_say_why(data: bytes, reason: str) -> None:
    with pytest.raises(BadWav, match=reason):
        parsed(data)
