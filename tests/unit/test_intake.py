"""Reading uploads: the byte limit enforced while streaming, in bounded pieces."""

from __future__ import annotations

import io

import falcon
import pytest

from functions.add_record.intake import PIECE, LimitedReader
from tests.helpers import CountingStream, pcm16


def read_all(reader: LimitedReader) -> bytes:
    return b"".join(iter(reader.read, b""))


def test_reads_in_bounded_pieces() -> None:
    data = pcm16(30.0)
    stream = CountingStream(data)
    assert read_all(LimitedReader(stream, len(data))) == data
    assert stream.largest_read <= PIECE + 1


def test_limit_is_enforced_while_streaming() -> None:
    stream = CountingStream(pcm16(30.0))
    with pytest.raises(falcon.HTTPContentTooLarge):
        read_all(LimitedReader(stream, 2 * PIECE))
    assert stream.tell() <= 2 * PIECE + 1


def test_exactly_the_limit_is_accepted() -> None:
    reader = LimitedReader(io.BytesIO(b"x" * 10), 10)
    assert reader.read(100) == b"x" * 10
    assert reader.read(100) == b""
