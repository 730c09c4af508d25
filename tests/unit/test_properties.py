"""Property tests: the WAV header reader and the Range parser, on inputs hypothesis makes up."""

from __future__ import annotations

import contextlib
import io
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from common.audio.wav import (
    ACCEPTED_CODECS,
    FIXED_RATE_CODECS,
    MIN_SAMPLE_RATE,
    BadWav,
    EmptyWav,
    NotWav,
    read_header,
)
from functions.get_record.ranges import Unsatisfiable, byte_range
from tests.helpers import Trickle


@settings(max_examples=500)
@given(st.binary(max_size=300))
def test_any_bytes_are_a_header_or_a_clean_refusal(data: bytes) -> None:
    try:
        wav, prefix = read_header(io.BytesIO(data))
    except (NotWav, BadWav, EmptyWav):
        return
    assert data.startswith(prefix)
    assert data[wav.data_offset - 8 : wav.data_offset - 4] == b"data"


@settings(max_examples=300)
@given(st.binary(max_size=200), st.sampled_from([b"RIFF", b"RF64"]))
def test_riff_prefixed_noise_is_refused_cleanly(noise: bytes, magic: bytes) -> None:
    data = magic + struct.pack("<I", len(noise) + 4) + b"WAVE" + noise
    with contextlib.suppress(BadWav):
        read_header(io.BytesIO(data))


chunk_ids = st.binary(min_size=4, max_size=4).filter(
    lambda tag: tag not in (b"data", b"fmt ", b"ds64")
)


@settings(max_examples=300)
@given(
    format_tag=st.sampled_from(sorted(ACCEPTED_CODECS)),
    channels=st.integers(1, 16),
    rate=st.integers(MIN_SAMPLE_RATE, 384_000),
    bits=st.sampled_from([4, 8, 16, 24, 32, 64]),
    extra=st.lists(st.tuples(chunk_ids, st.binary(max_size=50)), max_size=4),
    audio=st.binary(min_size=0, max_size=500),
    step=st.integers(1, 64),
)
def test_well_formed_headers_are_read_exactly(
    format_tag: int,
    channels: int,
    rate: int,
    bits: int,
    extra: list[tuple[bytes, bytes]],
    audio: bytes,
    step: int,
) -> None:
    rate, channels = FIXED_RATE_CODECS.get(format_tag, (rate, channels))
    block = max(channels * bits // 8, 1)
    fmt = struct.pack("<HHIIHH", format_tag, channels, rate, rate * block, block, bits)
    body = b"WAVE"
    passed_on = b""
    for tag, payload in [*extra, (b"fmt ", fmt)]:
        chunk = tag + struct.pack("<I", len(payload)) + payload + b"\0" * (len(payload) % 2)
        body += chunk
        passed_on += chunk if tag in (b"fmt ", b"fact") else b""
    offset = 12 + len(body) - 4 + 8
    body += b"data" + struct.pack("<I", len(audio)) + audio
    data = b"RIFF" + struct.pack("<I", len(body)) + body
    wav, prefix = read_header(Trickle(data, step))
    assert (wav.format_tag, wav.channels, wav.sample_rate) == (format_tag, channels, rate)
    assert (wav.block_align, wav.data_offset, wav.declared_data_bytes) == (
        block,
        offset,
        len(audio),
    )
    # ffmpeg gets the RIFF header, the chunks it needs, the data chunk's header, then the audio
    # as sent; the other chunks are passed over.
    header = data[:12] + passed_on + b"data" + struct.pack("<I", len(audio))
    assert prefix.startswith(header)
    assert wav.skipped == offset - len(header)
    assert data[offset:].startswith(prefix[len(header) :])


@given(st.integers(1, 10**12), st.text(max_size=40))
def test_any_range_header_gives_a_valid_range_or_none(size: int, header: str) -> None:
    try:
        result = byte_range(header, size)
    except Unsatisfiable:
        return
    if result is not None:
        start, stop = result
        assert 0 <= start < stop <= size


@given(st.integers(1, 10**9), st.data())
def test_well_formed_ranges_select_the_asked_bytes(size: int, data: st.DataObject) -> None:
    first = data.draw(st.integers(0, size * 2))
    last = data.draw(st.integers(first, size * 3))
    suffix = data.draw(st.integers(0, size * 2))
    if first < size:
        assert byte_range(f"bytes={first}-{last}", size) == (first, min(last, size - 1) + 1)
        assert byte_range(f"bytes={first}-", size) == (first, size)
    else:
        for header in (f"bytes={first}-{last}", f"bytes={first}-"):
            try:
                byte_range(header, size)
            except Unsatisfiable:
                continue
            raise AssertionError(f"{header} should be unsatisfiable for {size} bytes")
    if suffix == 0:
        try:
            byte_range("bytes=-0", size)
        except Unsatisfiable:
            pass
        else:
            raise AssertionError("bytes=-0 should be unsatisfiable")
    else:
        assert byte_range(f"bytes=-{suffix}", size) == (max(size - suffix, 0), size)
