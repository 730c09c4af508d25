"""WAV header sniffing: is it RIFF/WAVE (or RF64), what is its format, where does its audio start.

Python's `wave` module knows only PCM, so the chunks are walked here, reading forward only (the
upload is not seekable: it goes on to ffmpeg as it arrives). The header's sizes are not trusted: a
WAV written while streaming says 0 or 0xFFFFFFFF, a truncated one claims more than it has; the
audio actually present is what counts, and it is counted as it passes. Nor are its rates: only
uncompressed audio has a length that follows from its bytes; for the rest, ffmpeg's count decides.
Only the first `fmt ` chunk counts, as for ffmpeg: a WAV with two is refused; so is a codec that
is not one of ACCEPTED_CODECS.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Protocol

WAVE_FORMAT_EXTENSIBLE = 0xFFFE
_UNCOMPRESSED = frozenset({0x0001, 0x0003, 0x0006, 0x0007})
"""PCM, IEEE float, A-law, mu-law: a block per frame, whatever the header's byte rate says."""
ACCEPTED_CODECS = {
    0x0001: "PCM",
    0x0003: "IEEE float",
    0x0006: "A-law",
    0x0007: "mu-law",
    0x0002: "MS ADPCM",
    0x0011: "IMA ADPCM",
    0x0031: "GSM 6.10 (8 kHz mono)",
    0x0042: "G.723.1 (8 kHz mono)",
    0x0045: "G.726 (8 kHz mono)",
    0x028F: "G.722 (16 kHz mono)",
}
"""Codecs whose sample rate and channels are the header's, so the 1 kHz floor and the bitrate cap
bound what a byte can become (at most about 32 bytes of MP3 per uploaded byte). Codecs that carry
their own rate inside the audio (FLAC, AAC, MP3 in WAV) turned 1,088 bytes into a 4-hour, 346 MB
MP3 (bench/amplification.py), and are not WAV recordings a person makes: refused (422)."""
FIXED_RATE_CODECS = {
    0x0031: (8000, 1),
    0x0042: (8000, 1),
    0x0045: (8000, 1),
    0x028F: (16000, 1),
}
"""Telephony codecs (voicemail, call recordings) defined at one rate and one channel: the header
must say exactly that, so a header cannot stretch their few bits per sample over a lower rate
(GSM 6.10 at a declared 1 kHz would make 8 times the audio); at their own rate none makes more than
about 10 bytes of MP3 per uploaded byte (`make amplification`)."""
MIN_SAMPLE_RATE = 1000
"""Below this no real recording is made; above it, a few bytes cannot claim hours of audio."""
STREAMING_SIZES = (0, 0xFFFFFFFF)
"""Data sizes a WAV written while streaming carries: the length was not known yet."""
MAX_HEADER_BYTES = 8 << 20
"""Chunks before `data` (fmt, LIST, cover art...) beyond this are not a plausible WAV header."""
_READ = 64 << 10


class Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


class EmptyWav(ValueError):
    """There are no bytes at all: no file was sent (400)."""


class NotWav(ValueError):
    """The bytes are not RIFF/WAVE at all (415)."""


class BadWav(ValueError):
    """RIFF/WAVE, but there is nothing that can be decoded (422)."""


@dataclass(frozen=True)
class WavFormat:
    container: str
    format_tag: int
    channels: int
    sample_rate: int
    block_align: int
    bits_per_sample: int
    data_offset: int
    """Where the audio starts in the stream as sent."""
    declared_data_bytes: int
    skipped: int = 0
    """Header bytes not passed on to ffmpeg (chunks it does not need)."""

    def seconds(self, data_bytes: int) -> float | None:
        """How long `data_bytes` of uncompressed audio play (a block per frame); None for a
        compressed codec, whose header's byte rate is never trusted."""
        if self.format_tag not in _UNCOMPRESSED:
            return None
        return data_bytes / (self.block_align * self.sample_rate)


def sniff(head: bytes) -> None:
    """Raise unless `head` (the first bytes of a body, up to 12) starts like RIFF/WAVE or RF64."""
    if head[:4] in (b"RIFF", b"RF64"):
        if len(head) < 12:
            raise BadWav("the WAV header is truncated")
        if head[8:12] == b"WAVE":
            return
    raise NotWav("the body is not a RIFF/WAVE file")


class _Reader:
    """A forward-only stream, read a chunk at a time; what is read ahead is kept for the caller."""

    def __init__(self, stream: Readable) -> None:
        self._stream = stream
        self._ahead = bytearray()

    def take(self, size: int) -> bytes | None:
        """The next `size` bytes; None if the stream ends first."""
        while len(self._ahead) < size:
            piece = self._stream.read(max(size - len(self._ahead), _READ))
            if not piece:
                return None
            self._ahead += piece
        taken = bytes(self._ahead[:size])
        del self._ahead[:size]
        return taken

    def take_at_most(self, size: int) -> bytes:
        """The next `size` bytes, or all there are if the stream ends first."""
        taken = self.take(size)
        if taken is None:
            taken, self._ahead = bytes(self._ahead), bytearray()
        return taken

    def skip(self, size: int) -> bool:
        """Pass over the next `size` bytes without holding them; False if the stream ends first."""
        dropped = min(size, len(self._ahead))
        del self._ahead[:dropped]
        size -= dropped
        while size > 0:
            piece = self._stream.read(min(size, _READ))
            if not piece:
                return False
            size -= len(piece)
        return True

    def rest(self) -> bytes:
        """What was read ahead past the last byte taken."""
        return bytes(self._ahead)


_KEPT_CHUNKS = (b"fmt ", b"ds64", b"fact")
"""The chunks before `data` that ffmpeg is given; the others (LIST, bext, cue, cover art...) are
read past without being held (ffmpeg is told to drop metadata anyway)."""
_MAX_KEPT_CHUNK = 64 << 10


def read_header(stream: Readable) -> tuple[WavFormat, bytes]:
    """Read the chunks up to `data`: the format, and the bytes to pass on before the rest of the
    stream (RIFF header, the chunks ffmpeg needs, the data chunk's header, perhaps the first
    audio). Other chunks are skipped as they are read, so no header costs more memory than its
    few useful bytes (an 8 MiB LIST cost 16 MB per upload)."""
    reader = _Reader(stream)
    head = reader.take_at_most(12)
    if not head:
        raise EmptyWav("the WAV file is empty")
    sniff(head)
    container = head[:4].decode("ascii")
    kept = bytearray(head)
    fmt: bytes | None = None
    ds64_data_size: int | None = None
    position = 12
    while True:
        chunk_head = reader.take(8)
        if chunk_head is None:
            raise BadWav("the WAV has no fmt chunk" if fmt is None else "the WAV has no data chunk")
        chunk_id, size = struct.unpack("<4sI", chunk_head)
        if chunk_id == b"data":
            if fmt is None:
                raise BadWav("the WAV has no fmt chunk before its data")
            if container == "RF64" and size == 0xFFFFFFFF and ds64_data_size is not None:
                size = ds64_data_size
            kept += chunk_head
            wav = _format(container, fmt, position + 8, size, skipped=position + 8 - len(kept))
            return wav, bytes(kept) + reader.rest()
        padded = size + (size & 1)
        end = position + 8 + padded
        if end > MAX_HEADER_BYTES:
            raise BadWav("the WAV's header chunks are implausibly large")
        if chunk_id in _KEPT_CHUNKS:
            if padded > _MAX_KEPT_CHUNK:
                raise BadWav(f"the WAV's {chunk_id.decode().strip()} chunk is implausibly large")
            body = reader.take(padded)
            if body is None:
                if chunk_id == b"fact":
                    raise BadWav("the WAV has no data chunk")
                raise BadWav("the WAV header is truncated")
            if chunk_id == b"fmt ":
                if fmt is not None:
                    raise BadWav("the WAV has more than one fmt chunk")
                fmt = body[:size]
            elif chunk_id == b"ds64" and size >= 16:
                ds64_data_size = struct.unpack_from("<Q", body, 8)[0]
            kept += chunk_head + body
        elif not reader.skip(padded):
            raise BadWav("the WAV has no fmt chunk" if fmt is None else "the WAV has no data chunk")
        position = end


def _format(container: str, fmt: bytes, data_offset: int, declared: int, skipped: int) -> WavFormat:
    if len(fmt) < 16:
        raise BadWav("the WAV's fmt chunk is truncated")
    format_tag, channels, sample_rate, _, block_align, bits = struct.unpack_from("<HHIIHH", fmt)
    if format_tag == WAVE_FORMAT_EXTENSIBLE and len(fmt) >= 26:
        format_tag = struct.unpack_from("<H", fmt, 24)[0]
    if format_tag not in ACCEPTED_CODECS:
        raise BadWav(
            f"the WAV's codec (format tag 0x{format_tag:04X}) is not accepted: send "
            + ", ".join(ACCEPTED_CODECS.values())
        )
    if format_tag in FIXED_RATE_CODECS and (sample_rate, channels) != (
        fixed := FIXED_RATE_CODECS[format_tag]
    ):
        raise BadWav(
            f"{ACCEPTED_CODECS[format_tag].split(' (')[0]} audio is {fixed[0]} Hz with"
            f" {fixed[1]} channel; this WAV's header says {sample_rate} Hz with {channels}"
        )
    if channels == 0:
        raise BadWav("the WAV declares zero channels")
    if sample_rate < MIN_SAMPLE_RATE:
        raise BadWav(
            f"the WAV declares a sample rate of {sample_rate} Hz, under {MIN_SAMPLE_RATE} Hz"
        )
    if block_align == 0:
        raise BadWav("the WAV declares a block size of zero")
    return WavFormat(
        container=container,
        format_tag=format_tag,
        channels=channels,
        sample_rate=sample_rate,
        block_align=block_align,
        bits_per_sample=bits,
        data_offset=data_offset,
        declared_data_bytes=declared,
        skipped=skipped,
    )
