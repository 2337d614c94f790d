"""SMS segments and consent keywords, pure."""

from __future__ import annotations

import pytest

from contactcenter.domain.sms import Encoding, Keyword, encoding, keyword, segments


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hello", 1),
        ("a" * 160, 1),
        ("a" * 161, 2),  # 153 per part once split
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("{" * 80, 1),  # extension characters take two septets
        ("{" * 81, 2),
        ("您好", 1),
        ("中" * 70, 1),
        ("中" * 71, 2),  # 67 per part once split
        ("中" * 134, 2),
        ("中" * 135, 3),
        ("a" * 69 + "😀", 2),  # an emoji is two UTF-16 units, and makes the text UCS-2
    ],
)
def test_segments_count_as_carriers_do(text: str, expected: int) -> None:
    assert segments(text) == expected


def test_the_encoding_is_gsm7_only_when_every_character_is_in_the_alphabet() -> None:
    assert encoding("Hello €10 [ok]") is Encoding.GSM7
    assert encoding("王女士，您好") is Encoding.UCS2
    assert encoding("naïve") is Encoding.UCS2  # ï is not in the GSM alphabet


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("STOP", Keyword.OPT_OUT),
        ("stop", Keyword.OPT_OUT),
        (" Stop. ", Keyword.OPT_OUT),
        ("STOPALL", Keyword.OPT_OUT),
        ("unsubscribe", Keyword.OPT_OUT),
        ("Cancel", Keyword.OPT_OUT),
        ("END", Keyword.OPT_OUT),
        ("quit!", Keyword.OPT_OUT),
        ("TD", Keyword.OPT_OUT),
        ("td", Keyword.OPT_OUT),
        ("退订", Keyword.OPT_OUT),
        ("退订！", Keyword.OPT_OUT),
        ("START", Keyword.OPT_IN),
        ("unstop", Keyword.OPT_IN),
        ("Yes", Keyword.OPT_IN),
        ("HELP", Keyword.HELP),
        ("please stop calling me", None),  # only the word alone is a keyword
        ("I want to cancel my order", None),
        ("", None),
    ],
)
def test_keywords(text: str, expected: Keyword | None) -> None:
    assert keyword(text) == expected
