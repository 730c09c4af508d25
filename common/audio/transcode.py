"""A WAV byte stream in, an MP3 file out: header checked, audio counted and fed to ffmpeg."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from common.audio.ffmpeg import ConversionSlots, Encoder, EncoderOptions
from common.audio.mp3 import Mp3Info
from common.audio.wav import STREAMING_SIZES, BadWav, Readable, WavFormat, read_header

PIECE = 1 << 20


class TooLong(ValueError):
    """The audio plays longer than MAX_DURATION_S (422)."""


@dataclass(frozen=True)
class Transcoded:
    wav: WavFormat
    mp3: Mp3Info
    wav_data_bytes: int


def transcode(
    stream: Readable,
    target: Path,
    options: EncoderOptions,
    *,
    title: str | None = None,
    slots: ConversionSlots | None = None,
    progress: Callable[[], object] = lambda: None,
) -> Transcoded:
    """Convert the WAV read from `stream` into the MP3 file `target`, never holding it whole.

    ffmpeg starts, in one of `slots`, once the header and the first audio have arrived: a client
    that has not sent them yet holds no converter. `progress` is called after each piece handed
    to ffmpeg (the upload path stores the MP3's finished chunks meanwhile).
    """
    wav, piece = read_header(stream)
    total = wav.skipped  # bytes of the stream as sent, header chunks ffmpeg is not given included
    with (
        slots.take() if slots else contextlib.nullcontext(),
        Encoder(wav, target, options, title) as encoder,
    ):
        while piece:
            total += len(piece)
            # Uncompressed audio longer than allowed is known from its bytes: stop at once. For
            # the rest, ffmpeg stops itself just past the limit; the MP3's length then decides.
            refuse_too_long(wav, total, options)
            if not encoder.write(piece):
                break
            progress()
            waiting_since = time.monotonic()
            piece = stream.read(PIECE)
            encoder.allow(time.monotonic() - waiting_since)
        data_bytes = _audio_bytes(wav, total)
        if data_bytes < wav.block_align:
            raise BadWav("the WAV contains no audio samples")
        mp3 = encoder.finish()
    if mp3.duration_ms > options.max_duration_s * 1000:
        raise _too_long(options)
    return Transcoded(wav=wav, mp3=mp3, wav_data_bytes=data_bytes)


def refuse_too_long(wav: WavFormat, total: int, options: EncoderOptions) -> None:
    """TooLong when the first `total` bytes of this WAV hold more audio than allowed (known from
    the bytes for uncompressed audio only)."""
    seconds = wav.seconds(_audio_bytes(wav, total))
    if seconds is not None and seconds > options.max_duration_s:
        raise _too_long(options)


def _audio_bytes(wav: WavFormat, total: int) -> int:
    """Audio bytes among the first `total` bytes: those after the header, up to the declared size
    unless the header says 0 or 0xFFFFFFFF (a WAV written while streaming)."""
    present = total - wav.data_offset
    if wav.declared_data_bytes in STREAMING_SIZES:
        return present
    return min(present, wav.declared_data_bytes)


def _too_long(options: EncoderOptions) -> TooLong:
    return TooLong(f"the audio may be at most {options.max_duration_s:g} s long")
