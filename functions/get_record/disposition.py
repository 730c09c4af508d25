"""Content-Disposition for a download, built safely from the original file name (RFC 6266/8187)."""

from __future__ import annotations

from urllib.parse import quote

_ATTR_CHARS = "!#$&+-.^_`|~"


def attachment(stem: str) -> str:
    fallback = "".join(
        char if 0x20 <= ord(char) < 0x7F and char not in '"\\' else "_" for char in stem
    )
    encoded = quote(stem, safe=_ATTR_CHARS)
    return f"attachment; filename=\"{fallback}.mp3\"; filename*=UTF-8''{encoded}.mp3"
