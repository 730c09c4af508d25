"""WAV stream -> ffmpeg -> MP3 file, with the real ffmpeg, on WAVs generated here."""

from __future__ import annotations

import io
import os
import signal
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest

from common.audio.ffmpeg import (
    DURATION_MARGIN_S,
    PIPE_BYTES,
    ConversionError,
    ConversionSlots,
    ConversionTimeout,
    ConverterBusy,
    ConverterFault,
    ConverterUnavailable,
    Encoder,
    EncoderOptions,
    command,
    mp3_sample_rate,
)
from common.audio.transcode import PIECE, TooLong, Transcoded, least_mp3_bytes, transcode
from common.audio.wav import BadWav, read_header
from common.config import CONVERSION_FOOTPRINT_BYTES, MIB
from tests.helpers import (
    decoded_seconds,
    float32,
    fmt_chunk,
    ima_adpcm,
    pcm16,
    probe,
    riff,
    with_data_size,
)

OPTIONS = EncoderOptions(bitrate="128k", timeout_s=60)


def run(tmp_path: Path, data: bytes, title: str | None = None) -> tuple[Transcoded, Path]:
    target = tmp_path / "out.mp3"
    return transcode(io.BytesIO(data), target, OPTIONS, title=title), target


def ffmpeg_processes() -> str:
    """The ffmpeg processes this test process started and has not reaped (any other ffmpeg on
    the machine is none of its business)."""
    return subprocess.run(
        ["pgrep", "-a", "-P", str(os.getpid()), "ffmpeg"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout


@pytest.mark.parametrize(
    ("rate", "channels", "seconds", "mp3_rate", "mp3_channels"),
    [
        (44100, 2, 2.0, 44100, 2),
        (8000, 1, 1.0, 8000, 1),
        (22050, 1, 0.3, 22050, 1),
        (96000, 2, 1.0, 48000, 2),
        (44000, 2, 1.0, 44100, 2),
        (48000, 6, 1.0, 48000, 2),
        (11025, 2, 1.5, 11025, 2),
    ],
)
def test_pcm_converts_per_contract(
    tmp_path: Path, rate: int, channels: int, seconds: float, mp3_rate: int, mp3_channels: int
) -> None:
    result, target = run(tmp_path, pcm16(seconds, rate, channels), title="Запись")
    stream = probe(target)
    assert stream["codec_name"] == "mp3"
    assert (int(stream["sample_rate"]), int(stream["channels"])) == (mp3_rate, mp3_channels)
    assert stream["TAG:title"] == "Запись"
    assert result.mp3.duration_ms == pytest.approx(seconds * 1000, abs=max(seconds * 10, 60))
    assert decoded_seconds(target) == pytest.approx(seconds, abs=max(seconds * 0.01, 0.06))
    assert result.wav_data_bytes == round(seconds * rate) * 2 * channels


def test_float_wav_converts(tmp_path: Path) -> None:
    result, _ = run(tmp_path, float32(1.0, 48000, 1))
    assert (result.mp3.sample_rate, result.mp3.channels) == (48000, 1)
    assert result.mp3.duration_ms == pytest.approx(1000, abs=60)


@pytest.mark.parametrize("declared", [0, 0xFFFFFFFF])
def test_streamed_wav_converts_what_is_there(tmp_path: Path, declared: int) -> None:
    result, _ = run(tmp_path, with_data_size(pcm16(2.0, 16000, 1), declared))
    assert result.mp3.duration_ms == pytest.approx(2000, abs=60)


def test_truncated_data_converts_the_audio_present(tmp_path: Path) -> None:
    wav = pcm16(2.0, 16000, 1)
    result, _ = run(tmp_path, wav[: len(wav) // 2])
    assert result.mp3.duration_ms == pytest.approx(1000, abs=60)


def test_chunks_after_data_are_not_audio(tmp_path: Path) -> None:
    wav = pcm16(1.0, 8000, 1)
    data = wav + b"LIST" + (40000).to_bytes(4, "little") + bytes(40000)
    data = data[:4] + (len(data) - 8).to_bytes(4, "little") + data[8:]
    result, _ = run(tmp_path, data)
    assert result.mp3.duration_ms == pytest.approx(1000, abs=60)


def test_zero_samples_is_bad_wav(tmp_path: Path) -> None:
    with pytest.raises(BadWav, match="no audio samples"):
        run(tmp_path, riff([(b"fmt ", fmt_chunk(1, 1, 8000, 16)), (b"data", b"")]))
    assert ffmpeg_processes() == ""


def test_a_codec_outside_the_accepted_ones_is_refused_before_ffmpeg_runs(tmp_path: Path) -> None:
    data = riff([(b"fmt ", fmt_chunk(0x1234, 1, 8000, 16)), (b"data", bytes(16000))])
    with pytest.raises(BadWav, match=r"codec \(format tag 0x1234\) is not accepted"):
        run(tmp_path, data)
    assert not (tmp_path / "out.mp3").exists()


def test_undecodable_audio_is_a_conversion_error_with_a_reason(tmp_path: Path) -> None:
    """MS ADPCM blocks whose predictor index (7) is out of range: ffmpeg refuses to decode them."""
    coefficients = [(256, 0), (512, -256), (0, 0), (192, 64), (240, 0), (460, -208), (392, -232)]
    extension = struct.pack("<HH", 500, 7) + b"".join(struct.pack("<hh", *c) for c in coefficients)
    fmt = struct.pack("<HHIIHHH", 2, 1, 8000, 4096, 256, 4, len(extension)) + extension
    data = riff([(b"fmt ", fmt), (b"data", b"\x07" * 2560)])
    with pytest.raises(ConversionError) as raised:
        run(tmp_path, data)
    assert 0 < len(raised.value.reason) < 400
    assert ffmpeg_processes() == ""


def test_timeout_kills_ffmpeg(tmp_path: Path) -> None:
    data = pcm16(30.0, 48000, 2)
    with pytest.raises(ConversionTimeout, match="longer than") as raised:
        transcode(
            io.BytesIO(data), tmp_path / "out.mp3", EncoderOptions(bitrate="320k", timeout_s=0.05)
        )
    assert isinstance(raised.value, ConverterFault)
    assert ffmpeg_processes() == ""


def test_an_error_while_feeding_kills_ffmpeg(tmp_path: Path) -> None:
    wav, prefix = read_header(io.BytesIO(pcm16(1.0)))
    with (  # noqa: PT012
        pytest.raises(RuntimeError, match="client went away"),
        Encoder(wav, tmp_path / "out.mp3", OPTIONS) as encoder,
    ):
        encoder.write(prefix)
        raise RuntimeError("client went away")
    assert ffmpeg_processes() == ""


def test_missing_binary_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(ConverterFault) as raised:
        transcode(
            io.BytesIO(pcm16(0.1)),
            tmp_path / "out.mp3",
            EncoderOptions(bitrate="128k", timeout_s=5, ffmpeg_path="/nonexistent/ffmpeg"),
        )
    assert isinstance(raised.value, ConverterUnavailable)


@pytest.mark.parametrize(
    ("rate", "expected"),
    [(8000, 8000), (7000, 8000), (9000, 11025), (44100, 44100), (46000, 48000), (192000, 48000)],
)
def test_mp3_sample_rate(rate: int, expected: int) -> None:
    assert mp3_sample_rate(rate) == expected


def test_ffmpeg_may_open_only_its_pipe_and_its_output(tmp_path: Path) -> None:
    wav, _ = read_header(io.BytesIO(pcm16(0.1)))
    args = command("pipe:0", tmp_path / "out.mp3", wav, OPTIONS, "t")
    before_input = args[: args.index("-i")]
    assert before_input[before_input.index("-protocol_whitelist") + 1] == "pipe"
    after_input = args[args.index("-i") :]
    assert after_input[after_input.index("-protocol_whitelist") + 1] == "file"
    assert "-nostdin" in args


def test_the_ffmpeg_child_runs_under_rlimits(tmp_path: Path) -> None:
    wav, prefix = read_header(io.BytesIO(pcm16(1.0)))
    options = EncoderOptions(
        bitrate="128k", timeout_s=30, max_duration_s=60, memory_bytes=512 << 20
    )
    with Encoder(wav, tmp_path / "out.mp3", options) as encoder:
        limits = Path(f"/proc/{encoder.pid}/limits").read_text()
        encoder.write(prefix)
        encoder.finish()
    rows = {line[:26].strip(): line[26:].split() for line in limits.splitlines()[1:]}
    assert rows["Max address space"][0] == str(512 << 20)
    assert rows["Max cpu time"][0] == "35"
    assert int(rows["Max file size"][0]) == int(60 * 320_000 / 8 * 1.1) + (16 << 20)


def test_ffmpeg_decodes_no_further_than_just_past_the_limit(tmp_path: Path) -> None:
    data = ima_adpcm(10)  # 10 KB claiming microseconds, decoding to 20 s
    target = tmp_path / "out.mp3"
    options = EncoderOptions(bitrate="128k", timeout_s=60, max_duration_s=1.0)
    with pytest.raises(TooLong, match="at most 1 s"):
        transcode(io.BytesIO(data), target, options)
    assert decoded_seconds(target) < 1.0 + DURATION_MARGIN_S + 0.5
    assert ffmpeg_processes() == ""


def test_the_duration_limit_is_on_ffmpeg_s_command_line(tmp_path: Path) -> None:
    wav, _ = read_header(io.BytesIO(pcm16(0.1)))
    options = EncoderOptions(bitrate="128k", timeout_s=60, max_duration_s=90.0)
    args = command("pipe:0", tmp_path / "out.mp3", wav, options, None)
    assert args[args.index("-t") + 1] == "91.000"
    assert args.index("-i") < args.index("-t")


def test_audio_as_long_as_the_limit_is_not_cut(tmp_path: Path) -> None:
    options = EncoderOptions(bitrate="128k", timeout_s=60, max_duration_s=2.0)
    result = transcode(io.BytesIO(pcm16(2.0, 8000, 1)), tmp_path / "out.mp3", options)
    assert result.mp3.duration_ms == 2000


def started(tmp_path: Path) -> tuple[Encoder, bytes]:
    """An Encoder fed the header and first audio of a long WAV, and the rest of that WAV."""
    data = pcm16(20.0, 44100, 2)
    wav, prefix = read_header(io.BytesIO(data))
    encoder = Encoder(wav, tmp_path / "out.mp3", OPTIONS)
    encoder.write(prefix)
    return encoder, data[len(prefix) :]


def feed(encoder: Encoder, rest: bytes) -> None:
    for at in range(0, len(rest), 1 << 16):
        if not encoder.write(rest[at : at + (1 << 16)]):
            break
    encoder.finish()


def wait_until_ffmpeg_handles(pid: int, sent: signal.Signals) -> None:
    """Wait until ffmpeg has its own handler for `sent` (as it has once it reads its input)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status = Path(f"/proc/{pid}/status").read_text()
        caught = int(status.split("SigCgt:")[1].split()[0], 16)
        if caught & (1 << (sent - 1)):
            return
        time.sleep(0.01)
    raise AssertionError(f"ffmpeg never handled signal {sent}")


def test_ffmpeg_killed_from_outside_is_a_converter_fault(tmp_path: Path) -> None:
    encoder, rest = started(tmp_path)
    with encoder:
        os.kill(encoder.pid, signal.SIGKILL)
        with pytest.raises(ConverterFault, match="stopped by signal 9"):
            feed(encoder, rest)
    assert ffmpeg_processes() == ""


def test_ffmpeg_terminated_from_outside_is_a_converter_fault(tmp_path: Path) -> None:
    """ffmpeg handles SIGTERM and then often exits with status 1, as for a bad input."""
    encoder, rest = started(tmp_path)
    with encoder:
        wait_until_ffmpeg_handles(encoder.pid, signal.SIGTERM)
        os.kill(encoder.pid, signal.SIGTERM)
        with pytest.raises(ConverterFault, match="stopped by a signal"):
            feed(encoder, rest)
    assert ffmpeg_processes() == ""


def test_a_full_disk_is_a_converter_fault_that_names_no_path() -> None:
    """The answer a client gets says what ran short, never where (second security review,
    finding 9: it quoted `file:<spool>/audiosvc-upload-<pid>-.../out.mp3`)."""
    wav, prefix = read_header(io.BytesIO(pcm16(1.0)))
    with Encoder(wav, Path("/dev/full"), OPTIONS) as encoder:
        encoder.write(prefix)
        with pytest.raises(ConverterFault) as fault:
            encoder.finish()
    assert str(fault.value).startswith("the converter ran short of disk space;")
    assert "/" not in str(fault.value)


def test_out_of_memory_is_a_converter_fault(tmp_path: Path) -> None:
    options = EncoderOptions(bitrate="128k", timeout_s=30, memory_bytes=100 << 20)
    with pytest.raises(ConverterFault, match="short of memory"):
        transcode(io.BytesIO(pcm16(1.0)), tmp_path / "out.mp3", options)
    assert ffmpeg_processes() == ""


def test_ffmpeg_runs_with_a_minimal_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://app:secret@db/audio")
    wav, prefix = read_header(io.BytesIO(pcm16(1.0)))
    with Encoder(wav, tmp_path / "out.mp3", OPTIONS) as encoder:
        encoder.write(prefix[:100])  # ffmpeg is running, waiting for the rest
        environ = Path(f"/proc/{encoder.pid}/environ").read_bytes()
        encoder.write(prefix[100:])
        encoder.finish()
    names = {entry.split(b"=", 1)[0] for entry in environ.split(b"\0") if entry}
    assert names == {b"PATH", b"LC_ALL"}
    assert b"secret" not in environ


def private_bytes(pid: int) -> int:
    """What a process holds of its own: anonymous pages and page tables (its libraries' pages
    are the page cache's, shared by every ffmpeg)."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return sum(int(fields[name].split()[0]) * 1024 for name in ("RssAnon", "VmPTE"))


@pytest.mark.parametrize("bitrate", ["192k", "320k"])
def test_a_conversion_holds_no_more_than_its_footprint(tmp_path: Path, bitrate: str) -> None:
    """CONVERSION_MEMORY_BYTES is spent in CONVERSION_FOOTPRINT_BYTES per conversion: ffmpeg's
    private memory once it has audio in hand (48 kHz stereo), plus its full input pipe, two
    pieces of WAV and a chunk of MP3 in the worker, fit in it."""
    stream = io.BytesIO(pcm16(30.0, rate=48000))
    wav, first = read_header(stream)
    options = EncoderOptions(bitrate=bitrate, timeout_s=60)
    with Encoder(wav, tmp_path / "out.mp3", options) as encoder:
        encoder.write(first + stream.read(4 * MIB))
        time.sleep(1.0)  # ffmpeg is encoding what it got, then waits for more, as for a slow client
        held = private_bytes(encoder.pid)
        encoder.write(stream.read())
        encoder.finish()
    worker = 2 * PIECE + MIB
    assert held + PIPE_BYTES + worker <= CONVERSION_FOOTPRINT_BYTES, held


def test_conversions_past_the_slots_are_refused_after_their_wait(tmp_path: Path) -> None:
    slots = ConversionSlots(tmp_path / "slots", 1, wait_s=0.3)
    started = time.monotonic()
    with slots.take(), pytest.raises(ConverterBusy, match="all 1 conversions this server has"):
        transcode(io.BytesIO(pcm16(0.1)), tmp_path / "out.mp3", OPTIONS, slots=slots)
    assert time.monotonic() - started >= 0.3
    assert transcode(io.BytesIO(pcm16(0.1)), tmp_path / "out.mp3", OPTIONS, slots=slots)


def test_a_conversion_waiting_for_a_slot_takes_it_when_freed(tmp_path: Path) -> None:
    slots = ConversionSlots(tmp_path / "slots", 1, wait_s=30)
    holder = slots.take()
    holder.__enter__()
    threading.Timer(0.3, holder.__exit__, (None, None, None)).start()
    result = transcode(io.BytesIO(pcm16(0.1)), tmp_path / "out.mp3", OPTIONS, slots=slots)
    assert result.mp3.duration_ms > 0


class SlowClient(io.BytesIO):
    """A WAV that arrives in pieces, the client pausing before each."""

    def read(self, size: int | None = -1, /) -> bytes:
        time.sleep(0.2)
        return super().read(2048)


def test_time_waiting_for_the_client_is_not_the_converters(tmp_path: Path) -> None:
    """FFMPEG_TIMEOUT_S bounds ffmpeg's own time: an upload that takes longer to arrive is not
    killed for it (here about 3 s of pauses against a 1 s budget)."""
    data = pcm16(2.0, 8000, 1)
    result = transcode(
        SlowClient(data), tmp_path / "out.mp3", EncoderOptions(bitrate="64k", timeout_s=1)
    )
    assert result.mp3.duration_ms == pytest.approx(2000, abs=60)


@pytest.mark.parametrize(
    ("rate", "channels", "bitrate"),
    [
        (44100, 2, "192k"),
        (8000, 1, "192k"),
        (12000, 2, "96k"),
        (22050, 2, "320k"),
        (48000, 1, "32k"),
    ],
)
def test_the_least_mp3_size_is_never_more_than_the_mp3(
    tmp_path: Path, rate: int, channels: int, bitrate: str
) -> None:
    """What an upload reserves against the quota before its conversion: never more than the MP3
    it becomes (else it could be refused though it fits), and most of it."""
    data = pcm16(3.0, rate=rate, channels=channels)
    options = EncoderOptions(bitrate=bitrate, timeout_s=60)
    wav, _ = read_header(io.BytesIO(data))
    target = tmp_path / "out.mp3"
    transcode(io.BytesIO(data), target, options)
    size = target.stat().st_size
    least = least_mp3_bytes(wav, len(data), options)
    assert 0.8 * size <= least <= size
    assert least_mp3_bytes(wav, len(data) // 3, options) <= size / 3
    assert least_mp3_bytes(wav, None, options) == 0  # chunked: a cut header is not believed
    streamed, _ = read_header(io.BytesIO(with_data_size(data, 0xFFFFFFFF)))
    assert least_mp3_bytes(streamed, len(data), options) == least
