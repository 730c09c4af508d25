"""HTTP Range (single byte range) and conditional requests, per RFC 9110."""

from __future__ import annotations

import re

_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


class Unsatisfiable(Exception):
    """The range lies wholly outside the representation (416)."""


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """[start, stop) for a single satisfiable range; None to send the whole representation.

    Malformed headers and multiple ranges are ignored (the whole file is a valid answer to both).
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
        suffix = int(last)
        if suffix == 0:
            raise Unsatisfiable
        return max(size - suffix, 0), size
    start = int(first)
    if last != "" and int(last) < start:
        return None
    if start >= size:
        raise Unsatisfiable
    stop = size if last == "" else min(int(last) + 1, size)
    return start, stop


def _tags(header: str) -> list[str]:
    return [tag.strip() for tag in header.split(",") if tag.strip()]


def none_match(header: str | None, etag: str) -> bool:
    """True when If-None-Match names this representation (weak comparison): answer 304."""
    if header is None:
        return False
    tags = _tags(header)
    return "*" in tags or any(tag.removeprefix("W/") == etag for tag in tags)


def if_range_holds(header: str | None, etag: str, last_modified: str) -> bool:
    """True when the Range may be honoured: no If-Range, or one that still matches (strongly)."""
    if header is None:
        return True
    value = header.strip()
    if value.startswith('"'):
        return value == etag
    if value.startswith("W/"):
        return False
    return value == last_modified
