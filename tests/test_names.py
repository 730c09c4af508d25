"""User names and file names."""

from __future__ import annotations

import pytest

from common.names import clean_user_name, file_stem, original_name
from functions.get_record.disposition import attachment


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (" alice ", "alice"),
        ("Вася Пупкин", "Вася Пупкин"),
        ("x" * 64, "x" * 64),
        ("e\u0301", "\u00e9"),
        ("\u3000名前\u3000", "名前"),
    ],
)
def test_valid_names(raw: str, expected: str) -> None:
    assert clean_user_name(raw) == expected


@pytest.mark.parametrize(
    "raw", ["", "   ", "x" * 65, "a\nb", "a\x00", "a\x7f", "a\x85b", 5, None, ["a"]]
)
def test_invalid_names(raw: object) -> None:
    with pytest.raises(ValueError, match="name"):
        clean_user_name(raw)


@pytest.mark.parametrize(
    ("name", "stem"),
    [
        ("song.wav", "song"),
        ("C:\\music\\take 1.WAV", "take 1"),
        ("../../etc/passwd", "passwd"),
        (".hidden", ".hidden"),
        ("a.b.wav", "a.b"),
        ("evil\r\nX: y.wav", "evilX: y"),
        ("", None),
        (None, None),
        ("dir/", None),
    ],
)
def test_file_stem(name: str | None, stem: str | None) -> None:
    assert file_stem(name) == stem


def test_original_name_drops_directories() -> None:
    assert original_name("/tmp/x/Запись 1.wav") == "Запись 1.wav"


def test_content_disposition_is_safe() -> None:
    header = attachment('Запись "1"\\ok')
    assert header == (
        'attachment; filename="______ _1__ok.mp3"; '
        "filename*=UTF-8''%D0%97%D0%B0%D0%BF%D0%B8%D1%81%D1%8C%20%221%22%5Cok.mp3"
    )
    assert "\r" not in attachment("a\rb")
    assert "\n" not in attachment("a\nb")
