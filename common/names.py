"""Validation of user names and of original file names."""

from __future__ import annotations

import unicodedata

MAX_USER_NAME = 64
MAX_FILE_NAME = 255
WHITESPACE = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
    "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
"""Unicode White_Space; str.strip() would also eat U+001C..U+001F, which are controls."""


def is_control(char: str) -> bool:
    return unicodedata.category(char) == "Cc"


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
    return unicodedata.normalize("NFC", name)


def file_stem(name: str | None) -> str | None:
    """The original file name's stem: no directories, no extension, no control characters."""
    base = original_name(name)
    if base is None:
        return None
    stem, dot, _extension = base.rpartition(".")
    return (stem if dot and stem else base).strip() or None


def original_name(name: str | None) -> str | None:
    """The file name as it will be stored: without directories or control characters."""
    if not name:
        return None
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(char for char in base if not is_control(char)).strip()
    return base[:MAX_FILE_NAME] or None


def check_file_name(name: str | None) -> str | None:
    """The original file name as sent, or ValueError when it cannot be a file name."""
    if name is None or name == "":
        return None
    if "\ufffd" in name:
        raise ValueError("the file name is not valid UTF-8")
    if len(name) > MAX_FILE_NAME:
        raise ValueError(f"the file name may be at most {MAX_FILE_NAME} characters")
    return name
