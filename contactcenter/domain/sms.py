"""SMS rules, pure: how many segments a text costs, and what a keyword asks for.

Segments follow the carriers' encoding (3GPP TS 23.038): a text entirely in the GSM 7-bit
alphabet takes 160 characters in one segment or 153 per part when split (characters of the
extension table count twice); anything else is sent as UCS-2, 70 in one segment or 67 per
part, counted in UTF-16 units (Chinese text is UCS-2).
"""

from __future__ import annotations

import math
import re
from enum import StrEnum

_GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENSION = "^{}\\[~]|€\f"
_GSM_BASIC_SET = frozenset(_GSM_BASIC)
_GSM_EXTENSION_SET = frozenset(_GSM_EXTENSION)


class Encoding(StrEnum):
    GSM7 = "GSM-7"
    UCS2 = "UCS-2"


def encoding(text: str) -> Encoding:
    if all(c in _GSM_BASIC_SET or c in _GSM_EXTENSION_SET for c in text):
        return Encoding.GSM7
    return Encoding.UCS2


def segments(text: str) -> int:
    """How many SMS segments the text is sent as (at least 1)."""
    if encoding(text) is Encoding.GSM7:
        units = sum(2 if c in _GSM_EXTENSION_SET else 1 for c in text)
        single, part = 160, 153
    else:
        units = len(text.encode("utf-16-le")) // 2
        single, part = 70, 67
    return 1 if units <= single else math.ceil(units / part)


class Keyword(StrEnum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"


# the carriers' standard words (and China's 退订 / TD); the whole message must be the word
_KEYWORDS = {
    **dict.fromkeys(
        ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "TD", "退订"), Keyword.OPT_OUT
    ),
    **dict.fromkeys(("START", "UNSTOP", "YES"), Keyword.OPT_IN),
    **dict.fromkeys(("HELP",), Keyword.HELP),
}
_DECORATION = re.compile(r"[\s\.,!?;:。，！？；：]+")


def keyword(text: str) -> Keyword | None:
    """The consent keyword a message is, if it is one ("Stop.", " 退订！" count)."""
    word = _DECORATION.sub("", text).upper()
    return _KEYWORDS.get(word)
