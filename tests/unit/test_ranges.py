"""Single byte ranges and conditional requests."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from functions.get_record.ranges import (
    MAX_POSITION,
    Unsatisfiable,
    byte_range,
    http_date,
    if_range_holds,
    modified_after,
    none_match,
    not_modified,
    strong_match,
)

MODIFIED = datetime(2026, 11, 27, 2, 0, 0, tzinfo=UTC)
DATE = "Fri, 27 Nov 2026 02:00:00 GMT"
EARLIER = "Fri, 27 Nov 2026 01:59:59 GMT"
LATER = "Fri, 27 Nov 2026 02:00:01 GMT"


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
        ("bytes=0-1,5-6", None),
        ("items=0-1", None),
        ("bytes=-", None),
        ("bytes=abc", None),
        ("bytes=" + "0" * 5000 + "7-" + "0" * 5000 + "9", (7, 10)),
        (f"bytes=0-{MAX_POSITION}", (0, 1000)),
        (f"bytes=-{MAX_POSITION}", (0, 1000)),
        ("bytes=\u0661-\u0662", None),
    ],
)
def test_byte_range(header: str | None, expected: tuple[int, int] | None) -> None:
    assert byte_range(header, 1000) == expected


@pytest.mark.parametrize(
    "header", ["bytes=1000-", "bytes=5000-6000", "bytes=-0", "bytes=-000", "bytes=5-4"]
)
def test_unsatisfiable(header: str) -> None:
    with pytest.raises(Unsatisfiable):
        byte_range(header, 1000)


@pytest.mark.parametrize(
    "header",
    [
        "bytes=" + "9" * 5000 + "-",
        "bytes=-" + "9" * 5000,
        "bytes=0-" + "9" * 5000,
        "bytes=" + "1" * 5000 + "-" + "2" * 5000,
        f"bytes={MAX_POSITION + 1}-",
        f"bytes=-{MAX_POSITION + 1}",
        f"bytes=0-{MAX_POSITION + 1}",
    ],
)
def test_numbers_too_large_to_parse_are_unsatisfiable(header: str) -> None:
    with pytest.raises(Unsatisfiable, match="too large"):
        byte_range(header, 1000)


def test_strong_match() -> None:
    etag = '"abc"'
    assert strong_match("*", etag)
    assert strong_match('"x", "abc"', etag)
    assert not strong_match('W/"abc"', etag)
    assert not strong_match('"x"', etag)


def test_none_match() -> None:
    etag = '"abc"'
    assert none_match('"abc"', etag)
    assert none_match('"x", W/"abc"', etag)
    assert none_match("*", etag)
    assert not none_match('"abd"', etag)
    assert not none_match(None, etag)


def test_if_range() -> None:
    etag = '"abc"'
    assert if_range_holds(None, etag, MODIFIED)
    assert if_range_holds('"abc"', etag, MODIFIED)
    assert not if_range_holds('"abd"', etag, MODIFIED)
    assert not if_range_holds('W/"abc"', etag, MODIFIED)
    assert if_range_holds(DATE, etag, MODIFIED)
    assert if_range_holds(f" {DATE} ", etag, MODIFIED)
    assert if_range_holds("Friday, 27-Nov-26 02:00:00 GMT", etag, MODIFIED)
    assert if_range_holds("Fri Nov 27 02:00:00 2026", etag, MODIFIED)
    assert not if_range_holds("Thu, 26 Nov 2026 02:00:00 GMT", etag, MODIFIED)
    assert not if_range_holds(LATER, etag, MODIFIED)
    assert not if_range_holds("Fri, 27 Nov 2026 02:00:00", etag, MODIFIED)
    assert not if_range_holds("", etag, MODIFIED)


@pytest.mark.parametrize(
    ("header", "parsed"),
    [
        (DATE, MODIFIED),
        ("Friday, 27-Nov-26 02:00:00 GMT", MODIFIED),
        ("Fri Nov 27 02:00:00 2026", MODIFIED),
        (None, None),
        ("", None),
        ("tomorrow", None),
        ("Fri, 27 Nov 2026 25:00:00 GMT", None),
        (f"{DATE}, {LATER}", None),
        ("9" * 5000, None),
    ],
)
def test_http_date(header: str | None, parsed: datetime | None) -> None:
    assert http_date(header) == parsed


def test_not_modified() -> None:
    etag = '"abc"'
    assert not_modified(None, DATE, etag, MODIFIED)
    assert not_modified(None, LATER, etag, MODIFIED)
    assert not not_modified(None, EARLIER, etag, MODIFIED)
    assert not not_modified(None, "garbage", etag, MODIFIED)
    assert not not_modified(None, None, etag, MODIFIED)
    assert not_modified('"abc"', EARLIER, etag, MODIFIED)
    assert not not_modified('"abd"', LATER, etag, MODIFIED)


def test_modified_after() -> None:
    assert modified_after(EARLIER, MODIFIED)
    assert not modified_after(DATE, MODIFIED)
    assert not modified_after(LATER, MODIFIED)
    assert not modified_after("garbage", MODIFIED)
    assert not modified_after(None, MODIFIED)
