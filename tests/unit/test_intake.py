"""Reading uploads: the byte limit enforced while streaming, spooling in bounded pieces."""

from __future__ import annotations

import io
from pathlib import Path

import falcon
import pytest

from common.audio.ffmpeg import ConverterFault
from functions.add_record.intake import PIECE, LimitedReader, spool
from tests.helpers import pcm16


class CountingStream(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.largest_read = 0

    def read(self, size: int | None = -1) -> bytes:
        piece = super().read(size)
        self.largest_read = max(self.largest_read, len(piece))
        return piece


def test_spool_copies_in_bounded_pieces(tmp_path: Path) -> None:
    data = pcm16(30.0)
    stream = CountingStream(data)
    assert spool(LimitedReader(stream, len(data)), tmp_path / "in.wav") == len(data)
    assert (tmp_path / "in.wav").read_bytes() == data
    assert stream.largest_read <= PIECE + 1


def test_limit_is_enforced_while_streaming(tmp_path: Path) -> None:
    stream = CountingStream(pcm16(30.0))
    with pytest.raises(falcon.HTTPContentTooLarge):
        spool(LimitedReader(stream, 2 * PIECE), tmp_path / "in.wav")
    assert stream.tell() <= 2 * PIECE + 1


def test_exactly_the_limit_is_accepted() -> None:
    reader = LimitedReader(io.BytesIO(b"x" * 10), 10)
    assert reader.read(100) == b"x" * 10
    assert reader.read(100) == b""


def test_a_full_disk_while_spooling_is_the_server_s_fault() -> None:
    data = pcm16(1.0)
    with pytest.raises(ConverterFault, match="no disk space"):
        spool(LimitedReader(io.BytesIO(data), len(data)), Path("/dev/full"))
