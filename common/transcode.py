"""A WAV byte stream in, an MP3 file out: header checked, audio counted and fed to ffmpeg."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from common.ffmpeg import Encoder, EncoderOptions
from common.mp3 import Mp3Info
from common.wav import BadWav, Readable, WavFormat, read_header

PIECE = 1 << 20


@dataclass(frozen=True)
class Transcoded:
    wav: WavFormat
    mp3: Mp3Info
    wav_data_bytes: int


def transcode(
    stream: Readable, target: Path, options: EncoderOptions, title: str | None = None
) -> Transcoded:
    """Convert the WAV read from `stream` into the MP3 file `target`, never holding it whole."""
    wav, prefix = read_header(stream)
    total = len(prefix)
    with Encoder(wav, target, options, title) as encoder:
        encoder.write(prefix)
        while piece := stream.read(PIECE):
            total += len(piece)
            encoder.write(piece)
        data_bytes = total - wav.data_offset
        if wav.declared_data_bytes not in (0, 0xFFFFFFFF):
            data_bytes = min(data_bytes, wav.declared_data_bytes)
        if data_bytes < wav.block_align:
            raise BadWav("the WAV contains no audio samples")
        mp3 = encoder.finish()
    return Transcoded(wav=wav, mp3=mp3, wav_data_bytes=data_bytes)
