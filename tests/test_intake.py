"""Spooling an upload: bounded pieces, the limit enforced mid-stream, non-WAV refused early."""

from __future__ import annotations

import io
from pathlib import Path

import falcon
import pytest

from common.wav import NotWav
from functions.add_record.intake import PIECE, spool
from tests.wavs import pcm16


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
    assert spool(stream, tmp_path / "in.wav", limit=len(data)) == len(data)
    assert (tmp_path / "in.wav").read_bytes() == data
    assert stream.largest_read <= PIECE


def test_limit_is_enforced_while_streaming(tmp_path: Path) -> None:
    stream = CountingStream(pcm16(30.0))
    with pytest.raises(falcon.HTTPContentTooLarge):
        spool(stream, tmp_path / "in.wav", limit=2 * PIECE)
    assert stream.tell() <= 3 * PIECE


def test_not_a_wav_stops_at_the_first_piece(tmp_path: Path) -> None:
    stream = CountingStream(b"<html>" + bytes(10 * PIECE))
    with pytest.raises(NotWav):
        spool(stream, tmp_path / "in.wav", limit=100 * PIECE)
    assert stream.tell() == PIECE
