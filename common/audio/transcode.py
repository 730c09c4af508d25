"""A WAV byte stream in, an MP3 file out: header checked, audio counted and fed to ffmpeg."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from common.audio.ffmpeg import ConversionSlots, Encoder, EncoderOptions, mp3_sample_rate
from common.audio.mp3 import Mp3Info
from common.audio.wav import STREAMING_SIZES, BadWav, Readable, WavFormat, read_header

PIECE = 1 << 20
MOST_BITS_PER_S_UNDER = ((16000, 64_000), (32000, 160_000))
"""The highest bitrate the encoder gives under each sample rate: MPEG-2.5 (under 16 kHz) and
MPEG-2 (under 32 kHz) allow no more, whatever MP3_BITRATE asks."""


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
    admit: Callable[[WavFormat], object] = lambda wav: None,
    progress: Callable[[], object] = lambda: None,
) -> Transcoded:
    """Convert the WAV read from `stream` into the MP3 file `target`, never holding it whole.

    ffmpeg starts, in one of `slots`, once the header and the first audio have arrived: a client
    that has not sent them yet holds no converter. `admit` is given the header first and may
    refuse it (the upload path reserves the MP3's least size against the quota). `progress` is
    called after each piece handed to ffmpeg (the upload path stores the MP3's finished chunks
    meanwhile).
    """
    wav, piece = read_header(stream)
    admit(wav)
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


def least_mp3_bytes(wav: WavFormat, body_bytes: int | None, options: EncoderOptions) -> int:
    """The fewest bytes the MP3 of this WAV can take, from its header and the body's length (0
    when they cannot tell, a body of unknown length among them): the audio the header declares
    (or, written while streaming, the rest of the body), no more than the body holds, no longer
    than allowed, at the bitrate the encoder can give it, less a tenth."""
    if body_bytes is None:
        return 0  # a chunked body: a header cut short of its data must not be taken at its word
    in_body = body_bytes - wav.data_offset
    if wav.declared_data_bytes in STREAMING_SIZES:
        audio = in_body  # a WAV written while streaming: its audio runs to the body's end
    else:
        audio = min(wav.declared_data_bytes, in_body)
    seconds = wav.seconds(max(audio, 0))
    if seconds is None:
        return 0
    bits_per_s = int(options.bitrate.removesuffix("k")) * 1000
    rate = mp3_sample_rate(wav.sample_rate)
    for under, most in MOST_BITS_PER_S_UNDER:
        if rate < under:
            bits_per_s = min(bits_per_s, most)
            break
    return int(min(seconds, options.max_duration_s) * bits_per_s / 8 * 0.9)


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
