"""The tus 1.0.0 request headers, parsed strictly (400 with the reason)."""

from __future__ import annotations

import base64
import binascii
import re

import falcon

TUS_VERSION = "1.0.0"
EXTENSIONS = "creation,creation-with-upload,termination,expiration"
OFFSET_STREAM = "application/offset+octet-stream"

_NUMBER = re.compile(r"^[0-9]{1,18}$")
_KEY = re.compile(r"^[!-+\--~]+$")
"""A metadata key: printable ASCII without spaces and commas."""


def byte_count(value: str | None, name: str) -> int | None:
    """A header holding a count of bytes (Upload-Length, Upload-Offset), None when absent."""
    if value is None:
        return None
    if not _NUMBER.match(value.strip()):
        raise falcon.HTTPBadRequest(
            title=f"Invalid {name}", description=f"{name} must be one non-negative integer"
        )
    return int(value)


def required_byte_count(value: str | None, name: str) -> int:
    count = byte_count(value, name)
    if count is None:
        raise falcon.HTTPBadRequest(title=f"Missing {name}", description=f"{name} is required")
    return count


def metadata(value: str | None) -> dict[str, str]:
    """Upload-Metadata: comma-separated pairs of a key and its base64 value (UTF-8 text here)."""
    pairs: dict[str, str] = {}
    if value is None or not value.strip():
        return pairs
    for pair in value.split(","):
        parts = pair.strip().split(" ")
        key = parts[0]
        if not _KEY.match(key) or len(parts) > 2:
            raise _bad_metadata(f"{pair.strip()!r} is not a key and a base64 value")
        if key in pairs:
            raise _bad_metadata(f"{key} is given more than once")
        try:
            raw = base64.b64decode(parts[1], validate=True) if len(parts) == 2 else b""
            pairs[key] = raw.decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise _bad_metadata(f"the value of {key} is not base64 of UTF-8 text") from None
    return pairs


def _bad_metadata(reason: str) -> falcon.HTTPBadRequest:
    return falcon.HTTPBadRequest(title="Invalid Upload-Metadata", description=reason)
