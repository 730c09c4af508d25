"""A resumable upload's WAV as it arrives: what a PATCH reads is kept as it goes, and the bytes an
earlier PATCH kept are read back before it.

Bytes are written to the database in pieces of up to CHUNK_BYTES, and at least every
FLUSH_EVERY_S while any wait: a worker that dies mid-PATCH loses only what it had not written yet,
and a client that goes away (a cut connection, a 408) keeps everything that arrived.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

import falcon

from common.audio.wav import Readable
from common.storage.uploads import LockLost, Patch
from functions.add_record.pace import STEP

FLUSH_EVERY_S = 2.0


class EndedShort(Exception):
    """The PATCH's body (chunked, so of no declared length) ended before the upload's last byte:
    not the last PATCH after all."""


class NotYetKnown(Exception):
    """The bytes so far end before the question asked of them (the WAV header) is answered."""


class Receiver:
    """The body of one PATCH, read like a stream and kept in the upload as it is read."""

    def __init__(
        self,
        body: Readable,
        patch: Patch,
        length: int,
        piece_bytes: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._body = body
        self._patch = patch
        self._length = length
        self._piece_bytes = piece_bytes
        self._clock = clock
        self._buffer = bytearray()
        self._flushed_at = clock()

    @property
    def offset(self) -> int:
        """The upload's bytes once this PATCH's so far are kept."""
        return self._patch.offset + len(self._buffer)

    def read(self, size: int = STEP, /) -> bytes:
        """Up to `size` bytes of the body; 413 (and nothing more of it kept) past the upload's
        length."""
        try:
            piece = self._body.read(min(size, STEP, self._length - self.offset + 1))
        except BaseException:
            with contextlib.suppress(LockLost):
                self.flush()
            raise
        if self.offset + len(piece) > self._length:
            self._buffer.clear()
            raise falcon.HTTPContentTooLarge(
                title="Past the upload's length",
                description=f"the body goes on past Upload-Length ({self._length})",
            )
        self._buffer += piece
        if not piece or (
            len(self._buffer) >= self._piece_bytes
            or self._clock() - self._flushed_at >= FLUSH_EVERY_S
        ):
            self.flush()
        return piece

    def drain(self) -> None:
        """Read (and keep) the rest of the body."""
        while self.read(STEP):
            pass

    def _flush_due(self) -> bool:
        return self._clock() - self._flushed_at >= FLUSH_EVERY_S

    def flush(self) -> None:
        if self._buffer:
            self._patch.append(bytes(self._buffer))
            self._buffer.clear()
        self._flushed_at = self._clock()


class UploadStream:
    """The upload's WAV from its first byte: the stored bytes, then the PATCH's as they come.

    `whole`: this PATCH brings the last byte, so the body's end is the WAV's end (EndedShort
    when it comes early). Otherwise the body's end is only where the bytes stop for now
    (NotYetKnown, for a reader that wanted more).
    """

    def __init__(
        self, stored: Iterator[bytes], receiver: Receiver, length: int, *, whole: bool
    ) -> None:
        self._stored = stored
        self._left = b""
        self._receiver = receiver
        self._length = length
        self._whole = whole

    def read(self, size: int = STEP, /) -> bytes:
        if not self._left:
            self._left = next(self._stored, b"")
        if self._left:
            piece, self._left = self._left[:size], self._left[size:]
            return piece
        piece = self._receiver.read(size)
        if not piece:
            if not self._whole:
                raise NotYetKnown
            if self._receiver.offset < self._length:
                raise EndedShort
        return piece
