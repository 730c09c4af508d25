"""HTTP Range (single byte range) and conditional requests, per RFC 9110."""

from __future__ import annotations

import re
from datetime import datetime

import falcon

_RANGE = re.compile(r"^\s*bytes\s*=\s*([0-9]*)\s*-\s*([0-9]*)\s*$", re.IGNORECASE)
MAX_POSITION = 2**63 - 1
"""The largest byte position taken (as nginx's off_t); a range beyond it is unsatisfiable."""


class Unsatisfiable(Exception):
    """The range lies wholly outside the representation (416); the message says how."""


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """[start, stop) for a single satisfiable range; None to send the whole representation.

    Malformed headers and multiple ranges are ignored (the whole file is a valid answer to both);
    a range that ends before it starts is unsatisfiable, as nginx answers it for a static file.
    """
    if header is None:
        return None
    match = _RANGE.match(header)
    if match is None:
        return None
    first, last = match.groups()
    if first == "" and last == "":
        return None
    if first == "":
        suffix = _position(last)
        if suffix == 0:
            raise Unsatisfiable("the range asks for the last 0 bytes")
        return max(size - suffix, 0), size
    start = _position(first)
    end = None if last == "" else _position(last)
    if end is not None and end < start:
        raise Unsatisfiable("the range ends before it starts")
    if start >= size:
        raise Unsatisfiable("the range starts at or past the end of the file")
    return start, size if end is None else min(end + 1, size)


def _position(digits: str) -> int:
    """A byte position of a range, never int() of thousands of digits (Python refuses those)."""
    significant = digits.lstrip("0") or "0"
    if len(significant) > len(str(MAX_POSITION)) or int(significant) > MAX_POSITION:
        raise Unsatisfiable(f"a byte position of the range is too large (over {MAX_POSITION})")
    return int(significant)


def _tags(header: str) -> list[str]:
    return [tag.strip() for tag in header.split(",") if tag.strip()]


def none_match(header: str | None, etag: str) -> bool:
    """True when If-None-Match names this representation (weak comparison): answer 304."""
    if header is None:
        return False
    tags = _tags(header)
    return "*" in tags or any(tag.removeprefix("W/") == etag for tag in tags)


def strong_match(header: str, etag: str) -> bool:
    """True when If-Match holds (RFC 9110 §13.1.1): `*`, or this representation's ETag, compared
    strongly (a weak tag never matches)."""
    tags = _tags(header)
    return "*" in tags or etag in tags


def http_date(header: str | None) -> datetime | None:
    """An HTTP-date in any of RFC 9110's three formats, as UTC; None when absent or malformed."""
    if header is None:
        return None
    try:
        return falcon.http_date_to_dt(header.strip(), obs_date=True)
    except ValueError:
        return None


def not_modified(
    if_none_match: str | None, if_modified_since: str | None, etag: str, modified: datetime
) -> bool:
    """True when a GET/HEAD is answered 304 (RFC 9110 §13.2.2 steps 3 and 4): If-None-Match names
    this representation, or, without If-None-Match, it is not newer than If-Modified-Since."""
    if if_none_match is not None:
        return none_match(if_none_match, etag)
    since = http_date(if_modified_since)
    return since is not None and modified <= since


def modified_after(if_unmodified_since: str | None, modified: datetime) -> bool:
    """True when the representation is newer than a valid If-Unmodified-Since date: answer 412."""
    since = http_date(if_unmodified_since)
    return since is not None and modified > since


def if_range_holds(header: str | None, etag: str, modified: datetime) -> bool:
    """True when the Range may be honoured: no If-Range, or one that still matches (strongly):
    the ETag, or an HTTP-date equal to Last-Modified (a malformed date matches nothing)."""
    if header is None:
        return True
    value = header.strip()
    if value.startswith('"'):
        return value == etag
    if value.startswith("W/"):
        return False
    return http_date(value) == modified
