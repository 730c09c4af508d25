"""The ffmpeg wrapper: a WAV fed to ffmpeg's stdin as it arrives, an MP3 file out, typed errors.

The MP3 goes to a seekable file, never a pipe: only then can the muxer go back and fill in the
Xing/LAME header that carries the exact length (frames, encoder delay and padding). stderr goes to
a file (no pipe to fill up), stdin is the only pipe, and the process is killed and reaped on every
path out, a watchdog killing it at the deadline (FFMPEG_TIMEOUT_S of its own time: the time it
spends waiting for an upload's bytes does not count). ffmpeg itself stops a little past
MAX_DURATION_S of decoded audio, whatever the WAV's header claims, and runs with an environment of
its own.

Who is at fault decides the error: ffmpeg refusing the input is the WAV's (ConversionError, 422);
ffmpeg stopped from outside, short of memory or disk, or past its deadline is not (ConverterFault,
503).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import math
import os
import re
import resource
import subprocess
import tempfile
import threading
import time
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from common.audio.mp3 import Mp3Info, NotMp3, read_info
from common.audio.wav import STREAMING_SIZES, WavFormat
from common.config import Settings

MP3_SAMPLE_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
DURATION_MARGIN_S = 1.0
"""How far past MAX_DURATION_S ffmpeg decodes before it stops: audio within the limit is never
cut, and longer audio is known too long (by the MP3's exact length) after the limit's work only."""
logger = logging.getLogger(__name__)

_STDERR_TAIL = 300
_F_SETPIPE_SZ = 1031
PIPE_BYTES = 1 << 20
_LOG = ["-loglevel", "level+info", "-nostats"]
"""Errors tagged as such, and the info line that is the only sure sign of a signal ffmpeg handles
(SIGTERM, SIGINT, SIGXCPU): its exit status then says 1 as often as 255."""
_SIGNALLED = re.compile(r"received signal|received > 3 system signals", re.IGNORECASE)
_ERROR_TAG = re.compile(r"\[(?:error|fatal|panic)\] ")
_OUT_OF_DISK = re.compile(r"No space left|quota exceeded", re.IGNORECASE)
_PATH = re.compile(r"(?:file:)?/[^\s'\",]*")
"""A path in an ffmpeg message (`file:/tmp/audiosvc-upload-<pid>-.../out.mp3`): not for clients."""
_SHORT_OF_RESOURCES = (
    "Cannot allocate memory",
    "Error allocating",
    "No space left on device",
    "Disk quota exceeded",
    "error while loading shared libraries",
)
"""ffmpeg's words (in the C locale) for running out of memory or disk, not for a bad input."""
_TRY_AGAIN = "; nothing was stored, try again later"
_SLOT_POLL_S = 0.02
_SLOT_POLL_MAX_S = 0.25
"""How often a waiting upload looks for a free slot: soon at first, then every quarter second."""


class ConversionError(Exception):
    """ffmpeg could not turn the input into an MP3: the WAV is at fault (422). `reason` is short
    and safe to show."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ConverterFault(Exception):
    """The conversion failed for a reason that is not the input's (503 with Retry-After)."""


class ConversionTimeout(ConverterFault):
    """The conversion outlasted FFMPEG_TIMEOUT_S; ffmpeg was killed."""


class ConverterUnavailable(ConverterFault):
    """The ffmpeg binary cannot be run at all: a deployment fault."""


class ConverterBusy(ConverterFault):
    """Every conversion slot of this add_record instance is taken (503, a short Retry-After)."""


class ConversionSlots:
    """At most `size` ffmpeg processes at once among the processes sharing `directory` (the workers
    of one add_record instance): CONVERSION_MEMORY_BYTES in CONVERSION_FOOTPRINT_BYTES each.

    The bound is memory, not CPU: a conversion waiting for a slow client holds its memory and no
    CPU, so the budget admits many more conversions than there are cores (32 with the defaults),
    and a handful of trickling uploads cannot take every slot. Conversions that do have their
    bytes share the cores as the kernel schedules them. An upload past the slots waits up to
    `wait_s` for one (a burst of short uploads each gets its turn; the body waits in TCP
    meanwhile, and the wait holds only a thread), then is refused, so no one hangs.

    A slot is a lock file held with flock: any worker takes any free slot (gunicorn hands
    connections to whichever worker accepts first, not to the least busy), and the kernel frees
    the slots of a worker that dies.
    """

    def __init__(self, directory: Path, size: int, wait_s: float = 0.0) -> None:
        self.size = size
        self.wait_s = wait_s
        self._paths = [directory / f"slot-{index}" for index in range(size)]
        directory.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def take(self) -> Iterator[None]:
        deadline = time.monotonic() + self.wait_s
        pause = _SLOT_POLL_S
        while (slot := self._free_slot()) is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ConverterBusy(
                    f"all {self.size} conversions this server has memory for are in progress;"
                    " try again shortly"
                )
            time.sleep(min(pause, left))
            pause = min(pause * 2, _SLOT_POLL_MAX_S)
        try:
            yield
        finally:
            os.close(slot)

    def _free_slot(self) -> int | None:
        """A slot's descriptor, locked; None when every slot is taken."""
        for path in self._paths:
            slot = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(slot, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(slot)
                continue
            return slot
        return None


@dataclass(frozen=True)
class EncoderOptions:
    bitrate: str
    timeout_s: float
    ffmpeg_path: str = "ffmpeg"
    max_duration_s: float = 4 * 3600.0
    memory_bytes: int = 1 << 30

    @classmethod
    def from_settings(cls, settings: Settings) -> EncoderOptions:
        return cls(
            bitrate=settings.mp3_bitrate,
            timeout_s=settings.ffmpeg_timeout_s,
            ffmpeg_path=settings.ffmpeg_path,
            max_duration_s=settings.max_duration_s,
            memory_bytes=settings.ffmpeg_memory_bytes,
        )

    def limits(self) -> dict[int, int]:
        """rlimits of the ffmpeg child: address space, CPU seconds, and the largest MP3 it may
        write (the longest audio allowed at the highest bitrate, with room to spare)."""
        largest_mp3 = int(self.max_duration_s * 320_000 / 8 * 1.1) + (16 << 20)
        return {
            resource.RLIMIT_AS: self.memory_bytes,
            resource.RLIMIT_CPU: math.ceil(self.timeout_s) + 5,
            resource.RLIMIT_FSIZE: largest_mp3,
        }


def mp3_sample_rate(rate: int) -> int:
    """The MP3 rate for a WAV rate: kept where MP3 has it, else the next one up, at most 48 kHz."""
    index = bisect_left(MP3_SAMPLE_RATES, rate)
    return MP3_SAMPLE_RATES[min(index, len(MP3_SAMPLE_RATES) - 1)]


def mp3_channels(channels: int) -> int:
    return 1 if channels == 1 else 2


def command(
    source: str, target: Path, wav: WavFormat, options: EncoderOptions, title: str | None
) -> list[str]:
    """The ffmpeg command line of one conversion; `source` is `pipe:0` or `file:<path>`.

    The benchmark runs the same line on a file as the bare-ffmpeg reference.
    """
    protocol = source.split(":", 1)[0]
    args = [options.ffmpeg_path, "-nostdin", "-hide_banner", *_LOG]
    args += ["-protocol_whitelist", protocol, "-f", "wav"]
    if wav.declared_data_bytes in STREAMING_SIZES:
        args += ["-ignore_length", "1"]  # a WAV written while streaming: read to the end
    args += ["-i", source, "-map", "0:a:0", "-map_metadata", "-1"]
    args += ["-c:a", "libmp3lame", "-b:a", options.bitrate, "-write_xing", "1"]
    args += ["-ar", str(mp3_sample_rate(wav.sample_rate)), "-ac", str(mp3_channels(wav.channels))]
    args += ["-t", f"{options.max_duration_s + DURATION_MARGIN_S:.3f}", "-id3v2_version", "3"]
    if title:
        args += ["-metadata", f"title={title}"]
    args += ["-protocol_whitelist", "file", "-f", "mp3", "-y", f"file:{target}"]
    return args


class Encoder:
    """One running ffmpeg: `write()` the WAV bytes in order, then `finish()` for the MP3's facts.

    Use it as a context manager: leaving the block kills and reaps ffmpeg if it still runs.
    """

    def __init__(
        self, wav: WavFormat, target: Path, options: EncoderOptions, title: str | None = None
    ) -> None:
        self._target = target
        self._timeout_s = options.timeout_s
        self._deadline = time.monotonic() + options.timeout_s
        self._timed_out = threading.Event()
        self._ended = threading.Event()
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed by __exit__
        try:
            self._process = subprocess.Popen(
                command("pipe:0", target, wav, options, title),
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=self._stderr,
                env=_environment(),
            )
        except FileNotFoundError:
            self._stderr.close()
            raise ConverterUnavailable(f"{options.ffmpeg_path} is not installed") from None
        self._stdin: IO[bytes] = self._process.stdin  # type: ignore[assignment]
        # Set from here rather than in the child (preexec_fn is not safe in a threaded worker).
        # ffmpeg may still be loading its libraries then, which fit in any FFMPEG_MEMORY_BYTES
        # allowed; no input byte reaches it before the limits are in place.
        for limit, value in options.limits().items():
            with contextlib.suppress(ProcessLookupError):
                resource.prlimit(self._process.pid, limit, (value, value))
        with contextlib.suppress(OSError):
            fcntl.fcntl(self._stdin.fileno(), _F_SETPIPE_SZ, PIPE_BYTES)
        self._watchdog = threading.Thread(target=self._kill_on_deadline, daemon=True)
        self._watchdog.start()

    def __enter__(self) -> Encoder:
        return self

    @property
    def pid(self) -> int:
        return self._process.pid

    def allow(self, seconds: float) -> None:
        """Move the deadline by `seconds` the conversion spent waiting for its input:
        FFMPEG_TIMEOUT_S bounds ffmpeg's own time, not the client's (an upload streams in at the
        client's pace)."""
        self._deadline += seconds

    def write(self, data: bytes) -> bool:
        """Feed ffmpeg `data`; False when ffmpeg has ended well without taking it (it decoded
        as much as the duration limit lets it, or all the audio the header declares)."""
        try:
            self._stdin.write(data)
        except (BrokenPipeError, ValueError):
            failure = self._failure(self._process.wait())
            if failure is not None:
                raise failure from None
            return False
        return True

    def finish(self) -> Mp3Info:
        """Close ffmpeg's input, wait for it, and check what it wrote."""
        with contextlib.suppress(BrokenPipeError):
            self._stdin.close()
        # A plain blocking wait: the watchdog enforces the deadline, and wait(timeout) would poll
        # with sleeps of up to 50 ms, a third of the time a one-second file takes to convert.
        failure = self._failure(self._process.wait())
        if failure is not None:
            raise failure
        try:
            with self._target.open("rb") as mp3:
                info = read_info(mp3)
        except (OSError, NotMp3):
            raise ConversionError("the audio could not be decoded") from None
        if info.frames == 0:
            raise ConversionError("the audio could not be decoded: no samples")
        return info

    def __exit__(self, *exc_info: object) -> None:
        self._ended.set()
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        with contextlib.suppress(OSError, ValueError):
            self._stdin.close()
        self._stderr.close()

    def _kill_on_deadline(self) -> None:
        while not self._ended.wait(max(self._deadline - time.monotonic(), 0.0)):
            if time.monotonic() >= self._deadline:
                self._timed_out.set()
                if self._process.poll() is None:
                    self._process.kill()
                return

    def _failure(self, returncode: int) -> ConversionError | ConverterFault | None:
        """What went wrong, judging by how ffmpeg ended, or None when nothing did."""
        if self._timed_out.is_set():
            return ConversionTimeout(
                f"the conversion took longer than {self._timeout_s:g} s and was stopped"
                + _TRY_AGAIN
            )
        if returncode < 0:
            return ConverterFault(f"the converter was stopped by signal {-returncode}" + _TRY_AGAIN)
        self._stderr.seek(0)
        text = self._stderr.read().decode("utf-8", "replace")
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if any(_SIGNALLED.search(line) for line in lines):
            return ConverterFault("the converter was stopped by a signal" + _TRY_AGAIN)
        for line in lines:
            if any(words in line for words in _SHORT_OF_RESOURCES):
                logger.warning("ffmpeg ran short of resources: %s", line[-_STDERR_TAIL:])
                short = "disk space" if _OUT_OF_DISK.search(line) else "memory"
                return ConverterFault(f"the converter ran short of {short}" + _TRY_AGAIN)
        if returncode == 0:
            return None
        errors = [_ERROR_TAG.sub("", line) for line in lines if _ERROR_TAG.search(line)]
        detail = errors[-1] if errors else f"ffmpeg exited with status {returncode}"
        return ConversionError("the audio could not be decoded: " + _scrub(detail))


def _scrub(line: str) -> str:
    """An ffmpeg message fit for a client: no file paths (of the spool, with their pids)."""
    return _PATH.sub("the file", line)[-_STDERR_TAIL:]


def _environment() -> dict[str, str]:
    """ffmpeg's whole environment: where programs are, and the C locale (its messages in the
    words `_SHORT_OF_RESOURCES` knows). Nothing else of the worker's: no DATABASE_URL, no secret."""
    return {"PATH": os.environ.get("PATH", os.defpath), "LC_ALL": "C"}
