"""WAV header sniffing: is it RIFF/WAVE (or RF64), and where is its audio.

Python's `wave` module knows only PCM, so the chunks are walked here. The header's sizes are not
trusted: a WAV written while streaming says 0 or 0xFFFFFFFF, a truncated one claims more than it
has; the audio actually present is what counts.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO

WAVE_FORMAT_EXTENSIBLE = 0xFFFE
_STREAMING_SIZES = (0, 0xFFFFFFFF)
_MAX_HEADER_CHUNK = 1 << 20
"""fmt and ds64 are a few dozen bytes; anything larger before `data` is skipped, never read."""


class NotWav(ValueError):
    """The bytes are not RIFF/WAVE at all (415)."""


class BadWav(ValueError):
    """RIFF/WAVE, but there is nothing that can be decoded (422)."""


@dataclass(frozen=True)
class WavInfo:
    container: str
    format_tag: int
    channels: int
    sample_rate: int
    block_align: int
    bits_per_sample: int
    data_offset: int
    data_bytes: int
    declared_data_bytes: int

    @property
    def size_is_trustworthy(self) -> bool:
        """False for streamed or truncated WAVs, whose demuxing must ignore the declared length."""
        return self.declared_data_bytes == self.data_bytes

    @property
    def frames(self) -> int:
        return self.data_bytes // self.block_align


def sniff(head: bytes) -> None:
    """Raise NotWav unless `head` (the first bytes of a body) starts like RIFF/WAVE or RF64."""
    if len(head) >= 12:
        if head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
            return
        raise NotWav("the body is not a RIFF/WAVE file")
    if head[:4] in (b"RIFF", b"RF64") and len(head) >= 4:
        raise BadWav("the WAV header is truncated")
    raise NotWav("the body is not a RIFF/WAVE file")


def parse(stream: BinaryIO, size: int) -> WavInfo:
    """Walk the chunks of a seekable WAV file of `size` bytes up to its `data` chunk."""
    stream.seek(0)
    head = stream.read(12)
    sniff(head)
    container = head[:4].decode("ascii")
    fmt: bytes | None = None
    ds64_data_size: int | None = None
    position = 12
    while True:
        chunk_header = stream.read(8)
        if len(chunk_header) < 8:
            if fmt is None:
                raise BadWav("the WAV has no fmt chunk")
            raise BadWav("the WAV has no data chunk")
        chunk_id, chunk_size = struct.unpack("<4sI", chunk_header)
        body_offset = position + 8
        if chunk_id == b"data":
            if fmt is None:
                raise BadWav("the WAV has no fmt chunk before its data")
            if container == "RF64" and chunk_size == 0xFFFFFFFF and ds64_data_size is not None:
                chunk_size = ds64_data_size
            return _info(container, fmt, body_offset, chunk_size, size - body_offset)
        if chunk_id in (b"fmt ", b"ds64"):
            if chunk_size > _MAX_HEADER_CHUNK:
                raise BadWav(
                    f"the WAV's {chunk_id.decode('latin-1').strip()} chunk is implausibly large"
                )
            body = stream.read(chunk_size)
            if len(body) < chunk_size:
                raise BadWav("the WAV header is truncated")
            if chunk_id == b"fmt ":
                fmt = body
            elif len(body) >= 16:
                ds64_data_size = struct.unpack_from("<Q", body, 8)[0]
        position = body_offset + chunk_size + (chunk_size & 1)
        if position >= size:
            raise BadWav("the WAV has no fmt chunk" if fmt is None else "the WAV has no data chunk")
        stream.seek(position)


def _info(container: str, fmt: bytes, data_offset: int, declared: int, available: int) -> WavInfo:
    if len(fmt) < 16:
        raise BadWav("the WAV's fmt chunk is truncated")
    format_tag, channels, sample_rate, _byte_rate, block_align, bits = struct.unpack_from(
        "<HHIIHH", fmt
    )
    if format_tag == WAVE_FORMAT_EXTENSIBLE and len(fmt) >= 26:
        format_tag = struct.unpack_from("<H", fmt, 24)[0]
    if channels == 0:
        raise BadWav("the WAV declares zero channels")
    if sample_rate == 0:
        raise BadWav("the WAV declares a sample rate of zero")
    if block_align == 0:
        raise BadWav("the WAV declares a block size of zero")
    available = max(available, 0)
    if declared in _STREAMING_SIZES or declared > available:
        data_bytes = available
    else:
        data_bytes = declared
    if data_bytes < block_align:
        raise BadWav("the WAV contains no audio samples")
    return WavInfo(
        container=container,
        format_tag=format_tag,
        channels=channels,
        sample_rate=sample_rate,
        block_align=block_align,
        bits_per_sample=bits,
        data_offset=data_offset,
        data_bytes=data_bytes,
        declared_data_bytes=declared,
    )
