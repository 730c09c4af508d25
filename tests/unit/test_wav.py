"""The WAV header sniffer and forward-only chunk walker."""

from __future__ import annotations

import io
import struct

import pytest

from common.audio.wav import (
    MAX_HEADER_BYTES,
    BadWav,
    EmptyWav,
    NotWav,
    WavFormat,
    read_header,
    sniff,
)
from tests.helpers import (
    CountingStream,
    Trickle,
    fmt_chunk,
    ima_adpcm,
    pcm8,
    pcm16,
    riff,
    two_fmt_chunks,
    with_data_size,
)


def header(data: bytes) -> WavFormat:
    """The format read from `data`; what is passed on is `data` less the chunks skipped."""
    wav, prefix = read_header(io.BytesIO(data))
    audio_at = wav.data_offset - wav.skipped
    assert prefix[audio_at - 8 : audio_at - 4] == b"data"
    assert data[wav.data_offset :].startswith(prefix[audio_at:])
    return wav


def test_pcm_header_is_read() -> None:
    wav = header(pcm16(0.5, 22050, 1))
    assert (wav.container, wav.format_tag, wav.channels) == ("RIFF", 1, 1)
    assert (wav.sample_rate, wav.block_align, wav.data_offset) == (22050, 2, 44)
    assert wav.declared_data_bytes == 22050


def test_prefix_holds_every_byte_read_even_from_a_trickling_stream() -> None:
    data = pcm16(0.1, 8000, 1)
    stream = Trickle(data)
    wav, prefix = read_header(stream)
    rest = b"".join(iter(lambda: stream.read(7), b""))
    assert prefix + rest == data
    assert wav.sample_rate == 8000


@pytest.mark.parametrize(
    "body",
    [
        b"hello",
        b"hello, this is text",
        b"ID3\x04" + bytes(60),
        b"fLaC" + bytes(60),
        riff([(b"fmt ", bytes(16))], form=b"AVI "),
    ],
)
def test_not_riff_wave_is_refused(body: bytes) -> None:
    with pytest.raises(NotWav):
        read_header(io.BytesIO(body))


def test_empty_is_its_own_error() -> None:
    with pytest.raises(EmptyWav):
        read_header(io.BytesIO(b""))


def test_truncated_riff_header_is_undecodable() -> None:
    with pytest.raises(BadWav, match="truncated"):
        sniff(b"RIFF\x10\x00")


def test_chunks_before_data_and_odd_sizes_are_skipped() -> None:
    data = riff(
        [
            (b"LIST", b"INFOISFT\x03\x00\x00\x00ab\x00"),
            (b"fmt ", fmt_chunk(1, 2, 8000, 16)),
            (b"junk", b"x"),
            (b"data", bytes(400)),
        ]
    )
    wav, prefix = read_header(io.BytesIO(data))
    assert wav.declared_data_bytes == 400
    assert data[wav.data_offset - 8 : wav.data_offset - 4] == b"data"
    assert b"LIST" not in prefix
    assert b"junk" not in prefix
    assert wav.skipped == 8 + 16 + 8 + 2


def test_a_large_chunk_before_data_is_passed_over_not_held() -> None:
    """Second security review, finding 8: an 8 MiB LIST before `data` cost 16 MB of worker
    memory per upload. It is read past in small pieces, and never handed on."""
    listing = bytes(MAX_HEADER_BYTES - 200)
    data = riff([(b"fmt ", fmt_chunk(1, 2, 8000, 16)), (b"LIST", listing), (b"data", bytes(400))])
    stream = CountingStream(data)
    wav, prefix = read_header(stream)
    assert wav.skipped == 8 + len(listing)
    assert len(prefix) < 200 * 1024
    assert stream.largest_read <= 64 * 1024


@pytest.mark.parametrize("declared", [0, 0xFFFFFFFF, 10**9])
def test_streaming_or_overlong_sizes_are_reported_as_declared(declared: int) -> None:
    assert header(with_data_size(pcm16(0.25, 8000, 1), declared)).declared_data_bytes == declared


def test_rf64_takes_the_size_from_ds64() -> None:
    ds64 = struct.pack("<QQQI", 0, 800, 400, 0)
    data = riff([(b"ds64", ds64), (b"fmt ", fmt_chunk(1, 1, 8000, 16))])
    data = b"RF64" + data[4:] + b"data" + struct.pack("<I", 0xFFFFFFFF) + bytes(800)
    wav = header(data)
    assert (wav.container, wav.declared_data_bytes) == ("RF64", 800)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (riff([(b"data", bytes(100))]), "no fmt chunk"),
        (riff([(b"fmt ", fmt_chunk(1, 1, 8000, 16))]), "no data chunk"),
        (riff([(b"fmt ", fmt_chunk(1, 0, 8000, 16)), (b"data", bytes(10))]), "zero channels"),
        (riff([(b"fmt ", fmt_chunk(1, 1, 0, 16)), (b"data", bytes(10))]), "sample rate of 0 Hz"),
        (riff([(b"fmt ", bytes(8)), (b"data", bytes(10))]), "fmt chunk is truncated"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00", "truncated"),
        (b"RIFF\x00\x00\x00\x00WAVE", "no fmt chunk"),
        (b"RIFF\x00\x00\x00\x00WAVELIST" + struct.pack("<I", MAX_HEADER_BYTES), "implausibly"),
    ],
)
def test_undecodable_wavs_say_why(data: bytes, reason: str) -> None:
    with pytest.raises(BadWav, match=reason):
        read_header(io.BytesIO(data))


def test_only_the_first_fmt_chunk_counts_and_a_second_is_refused() -> None:
    data = two_fmt_chunks()
    assert len(data) == 324
    with pytest.raises(BadWav, match="more than one fmt chunk"):
        read_header(io.BytesIO(data))


@pytest.mark.parametrize("rate", [1, 999])
def test_a_sample_rate_under_1000_hz_is_refused(rate: int) -> None:
    with pytest.raises(BadWav, match=f"sample rate of {rate} Hz, under 1000 Hz"):
        read_header(io.BytesIO(pcm8(rate, 300)))


def test_1000_hz_is_accepted() -> None:
    assert header(pcm8(1000, 300)).sample_rate == 1000


def test_a_compressed_codec_has_no_length_from_its_bytes() -> None:
    wav = header(ima_adpcm(10))
    assert wav.format_tag == 0x11
    assert wav.seconds(10**9) is None
    assert header(pcm8(8000, 300)).seconds(8000) == 1.0
