"""An MP3's Xing/Info + LAME header: proof that ffmpeg encoded something, and its exact length.

The Xing frame counts the audio frames and the LAME tag records the encoder delay and padding, so
samples = frames * samples_per_frame - delay - padding, without decoding anything.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO

_SAMPLE_RATES = {
    3: (44100, 48000, 32000),  # MPEG-1
    2: (22050, 24000, 16000),  # MPEG-2
    0: (11025, 12000, 8000),  # MPEG-2.5
}
_XING_FLAG_FRAMES = 0x1
_XING_FLAG_BYTES = 0x2
_XING_FLAG_TOC = 0x4
_XING_FLAG_QUALITY = 0x8


class NotMp3(ValueError):
    """The encoder's output has no MPEG Layer III frame with a Xing/Info header."""


@dataclass(frozen=True)
class Mp3Info:
    mpeg_version: str
    sample_rate: int
    channels: int
    frames: int
    encoder_delay: int
    padding: int

    @property
    def samples(self) -> int:
        per_frame = 1152 if self.mpeg_version == "1" else 576
        return max(self.frames * per_frame - self.encoder_delay - self.padding, 0)

    @property
    def duration_ms(self) -> int:
        return round(self.samples * 1000 / self.sample_rate)


def read_info(stream: BinaryIO) -> Mp3Info:
    """Parse the first frame of an MP3 file (after any ID3v2 tag)."""
    stream.seek(0)
    head = stream.read(10)
    offset = 0
    if head[:3] == b"ID3" and len(head) == 10:
        tag_size = _syncsafe(head[6:10])
        offset = 10 + tag_size + (10 if head[5] & 0x10 else 0)
    stream.seek(offset)
    frame = stream.read(512)
    if len(frame) < 4:
        raise NotMp3("the encoder wrote no audio frames")
    header = struct.unpack(">I", frame[:4])[0]
    if header >> 21 != 0x7FF:
        raise NotMp3("the encoder's output does not start with an MPEG frame")
    version_bits = (header >> 19) & 0x3
    layer_bits = (header >> 17) & 0x3
    rate_index = (header >> 10) & 0x3
    if version_bits not in _SAMPLE_RATES or layer_bits != 0x1 or rate_index == 3:
        raise NotMp3("the encoder's output is not MPEG audio Layer III")
    mono = (header >> 6) & 0x3 == 0x3
    sample_rate = _SAMPLE_RATES[version_bits][rate_index]
    if version_bits == 3:
        side_info = 17 if mono else 32
    else:
        side_info = 9 if mono else 17
    position = 4 + side_info
    tag = frame[position : position + 4]
    if tag not in (b"Xing", b"Info"):
        raise NotMp3("the encoder's output has no Xing/Info header")
    flags = struct.unpack_from(">I", frame, position + 4)[0]
    position += 8
    if not flags & _XING_FLAG_FRAMES:
        raise NotMp3("the Xing header does not count frames")
    frames = struct.unpack_from(">I", frame, position)[0]
    position += 4
    for flag, length in ((_XING_FLAG_BYTES, 4), (_XING_FLAG_TOC, 100), (_XING_FLAG_QUALITY, 4)):
        if flags & flag:
            position += length
    delay = padding = 0
    lame = frame[position : position + 24]
    if len(lame) == 24:
        packed = int.from_bytes(lame[21:24], "big")
        delay, padding = packed >> 12, packed & 0xFFF
    return Mp3Info(
        mpeg_version={3: "1", 2: "2", 0: "2.5"}[version_bits],
        sample_rate=sample_rate,
        channels=1 if mono else 2,
        frames=frames,
        encoder_delay=delay,
        padding=padding,
    )


def _syncsafe(raw: bytes) -> int:
    return (raw[0] << 21) | (raw[1] << 14) | (raw[2] << 7) | raw[3]
