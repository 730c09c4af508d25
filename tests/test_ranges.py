"""Single byte ranges and conditional requests."""

from __future__ import annotations

import pytest

from functions.get_record.ranges import Unsatisfiable, byte_range, if_range_holds, none_match


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-99", (0, 100)),
        ("bytes=100-", (100, 1000)),
        ("bytes=-100", (900, 1000)),
        ("bytes=-5000", (0, 1000)),
        ("bytes=990-5000", (990, 1000)),
        ("BYTES = 1 - 2", (1, 3)),
        ("bytes=0-0", (0, 1)),
        ("bytes=5-4", None),
        ("bytes=0-1,5-6", None),
        ("items=0-1", None),
        ("bytes=-", None),
        ("bytes=abc", None),
    ],
)
def test_byte_range(header: str | None, expected: tuple[int, int] | None) -> None:
    assert byte_range(header, 1000) == expected


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=5000-6000", "bytes=-0"])
def test_unsatisfiable(header: str) -> None:
    with pytest.raises(Unsatisfiable):
        byte_range(header, 1000)


def test_none_match() -> None:
    etag = '"abc"'
    assert none_match('"abc"', etag)
    assert none_match('"x", W/"abc"', etag)
    assert none_match("*", etag)
    assert not none_match('"abd"', etag)
    assert not none_match(None, etag)


def test_if_range() -> None:
    etag, date = '"abc"', "Fri, 27 Nov 2026 02:00:00 GMT"
    assert if_range_holds(None, etag, date)
    assert if_range_holds('"abc"', etag, date)
    assert not if_range_holds('"abd"', etag, date)
    assert not if_range_holds('W/"abc"', etag, date)
    assert if_range_holds(date, etag, date)
    assert not if_range_holds("Thu, 26 Nov 2026 02:00:00 GMT", etag, date)
