"""User names and file names."""

from __future__ import annotations

import pytest

from common.names import (
    BIDI_CONTROLS,
    MAX_FILE_NAME,
    clean_user_name,
    file_stem,
    original_name,
)
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


@pytest.mark.parametrize("control", sorted(BIDI_CONTROLS))
def test_user_names_with_bidirectional_controls_are_refused(control: str) -> None:
    with pytest.raises(ValueError, match="bidirectional controls"):
        clean_user_name(f"admin{control}gpj.exe")


@pytest.mark.parametrize("code", [0xD800, 0xDBFF, 0xDC00, 0xDFFF])
def test_user_names_with_lone_surrogates_are_refused(code: int) -> None:
    with pytest.raises(ValueError, match="surrogates"):
        clean_user_name(f"a{chr(code)}b")


def test_bidi_controls_are_exactly_those_v1_2_lists() -> None:
    listed = [0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
    assert {chr(code) for code in listed} == BIDI_CONTROLS


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


@pytest.mark.parametrize(
    ("name", "stored"),
    [
        ("\u202egpj.wav", "gpj.wav"),
        ("a\u200eb\u200f\u2066c\u2069.wav", "abc.wav"),
        ("\u202a\u202b\u202c\u202d\u2067\u2068", None),
        ("\x00\x01\x7f", None),
        ("  \u202e  ", None),
        (f"a{chr(0xD800)}b{chr(0xDFFF)}.wav", "ab.wav"),
        ("\ufffd\ufffd.wav", "\ufffd\ufffd.wav"),
    ],
)
def test_original_name_drops_bidi_controls_and_what_cannot_be_stored(
    name: str, stored: str | None
) -> None:
    assert original_name(name) == stored


@pytest.mark.parametrize(
    ("name", "stored"),
    [
        ("y" * 300 + ".wav", "y" * 251 + ".wav"),
        ("y" * 300, "y" * 255),
        ("a" * 300 + ".tar.gz", "a" * 252 + ".gz"),
        ("я" * 254 + ".wav", "я" * 251 + ".wav"),
        ("y" * 255, "y" * 255),
        ("a." + "x" * 300, "a." + "x" * 253),
        ("b" * 250 + "     c" * 20 + ".wav", "b" * 250 + ".wav"),
        ("/" + "d" * 300 + "/take.wav", "take.wav"),
    ],
)
def test_long_file_names_are_cut_to_255_keeping_the_extension(name: str, stored: str) -> None:
    assert original_name(name) == stored
    assert len(stored) <= MAX_FILE_NAME


def test_file_stem_of_a_long_name_is_the_cut_stem() -> None:
    assert file_stem("\u202e" + "z" * 400 + ".wav") == "z" * 251


def test_content_disposition_is_safe() -> None:
    header = attachment('Запись "1"\\ok')
    assert header == (
        'attachment; filename="______ _1__ok.mp3"; '
        "filename*=UTF-8''%D0%97%D0%B0%D0%BF%D0%B8%D1%81%D1%8C%20%221%22%5Cok.mp3"
    )
    assert "\r" not in attachment("a\rb")
    assert "\n" not in attachment("a\nb")
