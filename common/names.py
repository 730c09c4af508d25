"""User names (checked, refused when unfit) and original file names (cleaned, never refused)."""

from __future__ import annotations

import unicodedata

MAX_USER_NAME = 64
MAX_FILE_NAME = 255
WHITESPACE = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
    "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
"""Unicode White_Space; str.strip() would also eat U+001C..U+001F, which are controls."""
BIDI_CONTROLS = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
"""The marks, embeddings, overrides and isolates that can make a name display as another."""


def is_control(char: str) -> bool:
    return unicodedata.category(char) == "Cc"


def is_surrogate(char: str) -> bool:
    """A lone UTF-16 surrogate (only a JSON escape such as \\ud800 yields one): not storable."""
    return unicodedata.category(char) == "Cs"


def clean_user_name(raw: object) -> str:
    """The name to store: trimmed, 1..64 code points as sent, no control characters; stored NFC.

    Raises ValueError with a reason fit for the client.
    """
    if not isinstance(raw, str):
        raise ValueError("name must be a string")
    name = raw.strip(WHITESPACE)
    if not name:
        raise ValueError("name must not be empty")
    if len(name) > MAX_USER_NAME:
        raise ValueError(f"name must be at most {MAX_USER_NAME} characters")
    if any(is_control(char) for char in name):
        raise ValueError("name must not contain control characters")
    if any(char in BIDI_CONTROLS for char in name):
        raise ValueError(
            "name must not contain Unicode bidirectional controls "
            "(U+200E, U+200F, U+202A..U+202E, U+2066..U+2069)"
        )
    if any(is_surrogate(char) for char in name):
        raise ValueError("name must not contain lone surrogates (U+D800..U+DFFF)")
    return unicodedata.normalize("NFC", name)


def file_stem(name: str | None) -> str | None:
    """The original file name's stem: no directories, no extension, no control characters."""
    base = original_name(name)
    if base is None:
        return None
    stem, dot, _extension = base.rpartition(".")
    return (stem if dot and stem else base).strip() or None


def original_name(name: str | None) -> str | None:
    """The file name as it will be stored: without directories, control characters, bidirectional
    controls or lone surrogates, at most 255 code points (the extension kept); None when empty."""
    if not name:
        return None
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(char for char in base if not _dropped_from_file_names(char)).strip()
    return _shortened(base) or None


def _dropped_from_file_names(char: str) -> bool:
    return is_control(char) or char in BIDI_CONTROLS or is_surrogate(char)


def _shortened(base: str) -> str:
    """`base` cut to MAX_FILE_NAME code points, from the stem when there is an extension to keep."""
    if len(base) <= MAX_FILE_NAME:
        return base
    stem, dot, extension = base.rpartition(".")
    kept = dot + extension
    if stem and len(kept) < MAX_FILE_NAME:
        return stem[: MAX_FILE_NAME - len(kept)].rstrip() + kept
    return base[:MAX_FILE_NAME].rstrip()
