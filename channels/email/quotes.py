"""Folding quoted earlier mail out of a reply, so the agent reads what is new.

Two shapes of quoting exist in the wild. Gmail, Apple Mail and Thunderbird prefix the earlier
mail with "> " under an "On ... wrote:" line; the reply may sit above it or be written
between the quoted lines, so only the quoted lines (and their attribution) go. Outlook and the
Chinese webmails (QQ, 163, Foxmail) paste the earlier mail unprefixed under a separator or a
"From: / Sent: / To: / Subject:" block; everything from there on is the earlier mail. The
full text is always kept elsewhere: folding only shapes the agent's first view.
"""

from __future__ import annotations

import re

# the line above a ">" quoted block: "On Mon, 1 Jan 2024 at 10:00, Wang Fang <...> wrote:"
_ATTRIBUTION = re.compile(
    r"""^\s*(?:
        On\s.+\swrote:
      | Le\s.+\sa\s+écrit\s*:
      | Am\s.+\sschrieb.*:
      | El\s.+\sescribió:
      | .*\S\s*(?:写道|寫道|書きました)\s*[:：]
    )\s*$""",
    re.IGNORECASE | re.VERBOSE,
)
_SEPARATOR = re.compile(
    r"""^\s*[-_=]{2,}\s*(?:
        original\s+message | 原始邮件 | 原始郵件 | 邮件原件 | 郵件原件
      | ursprüngliche\s+nachricht | message\s+d'origine | mensaje\s+original
    )\s*[-_=]{2,}\s*$""",
    re.IGNORECASE | re.VERBOSE,
)
_HEADER_FROM = re.compile(r"^\s*\**\s*(?:from|发件人|寄件者|寄件人|de|von)\s*\**\s*[:：]", re.I)
_HEADER_DATE = re.compile(
    r"^\s*\**\s*(?:sent|date|发送时间|发件时间|日期|时间|寄件日期|傳送時間|envoyé|gesendet)\s*\**\s*[:：]",
    re.I,
)
_HEADER_TO = re.compile(
    r"^\s*\**\s*(?:to|subject|收件人|主题|收件者|主旨|à|an|betreff|objet)\s*\**\s*[:：]", re.I
)
# Outlook's header block flattened onto one line by an HTML-to-text conversion
_HEADER_LINE = re.compile(
    r"^\s*\**(?:from|发件人)\**\s*[:：].+\s\**(?:sent|发送时间)\**\s*[:：].+\s\**(?:to|收件人)\**\s*[:：]",
    re.I,
)
_RULE = re.compile(r"^\s*_{10,}\s*$")  # Outlook's line above the header block
_QUOTED = re.compile(r"^\s*>")
_ATTRIBUTION_LINES = 3  # a long attribution wraps; Gmail wraps it onto a second line
_MARKER_MAX = 500  # longer lines are text, and not worth a regex with backtracking


def fold_quotes(text: str) -> str:
    """The new part of a reply, with quoted earlier mail folded away: '>' quoted blocks,
    'On ... wrote:' / 'Le ... a écrit :' / '在 ... 写道：' headers, Outlook
    '-----Original Message-----' and 'From: ... Sent: ... To: ... Subject:' blocks (and the
    Chinese '发件人: ... 发送时间:' variant), '-------- 原始邮件 --------' /
    '-------- Original Message --------'. Signature '-- ' lines are kept. Never returns empty
    for non-empty input: if everything looks quoted, return the original."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    cut = _earlier_mail_start(lines)
    kept = _drop_quoted(lines[:cut])
    folded = "\n".join(_squeeze_blank(kept)).strip("\n")
    return folded if folded.strip() else text


def _earlier_mail_start(lines: list[str]) -> int:
    """Where an unprefixed earlier mail begins (len(lines) when there is none)."""
    for i, line in enumerate(lines):
        if len(line) > _MARKER_MAX:
            continue
        if _SEPARATOR.match(line) or _HEADER_LINE.match(line) or _header_block_at(lines, i):
            return _with_rule_above(lines, i)
        span = _attribution_at(lines, i)
        # an attribution over unprefixed text (Outlook on the web, some webmails); it must look
        # like one (a date or an address in it) since nothing after it confirms it
        if span and not _quoted_follows(lines, i + span):
            joined = " ".join(lines[i : i + span])
            if re.search(r"\d|@", joined):
                return i
    return len(lines)


def _header_block_at(lines: list[str], i: int) -> bool:
    if not _HEADER_FROM.match(lines[i]):
        return False
    following = lines[i + 1 : i + 6]
    return any(_HEADER_DATE.match(line) for line in following) and any(
        _HEADER_TO.match(line) for line in following
    )


def _with_rule_above(lines: list[str], i: int) -> int:
    j = i - 1
    while j >= 0 and not lines[j].strip():
        j -= 1
    return j if j >= 0 and _RULE.match(lines[j]) else i


def _attribution_at(lines: list[str], i: int) -> int:
    """How many lines the attribution starting at line i spans (0 if there is none)."""
    if not lines[i].strip() or len(lines[i]) > _MARKER_MAX or _QUOTED.match(lines[i]):
        return 0
    for span in range(1, _ATTRIBUTION_LINES + 1):
        chunk = lines[i : i + span]
        if (
            len(chunk) < span
            or (span > 1 and not chunk[-1].strip())
            or len(chunk[-1]) > _MARKER_MAX
        ):
            return 0
        if _ATTRIBUTION.match(" ".join(part.strip() for part in chunk)):
            return span
    return 0


def _quoted_follows(lines: list[str], i: int) -> bool:
    while i < len(lines) and not lines[i].strip():
        i += 1
    return i < len(lines) and bool(_QUOTED.match(lines[i]))


def _drop_quoted(lines: list[str]) -> list[str]:
    """The lines without '>' quoted ones and the attribution lines that introduce them."""
    kept: list[str] = []
    i = 0
    while i < len(lines):
        span = _attribution_at(lines, i)
        if span and _quoted_follows(lines, i + span):
            i += span
            continue
        if not _QUOTED.match(lines[i]):
            kept.append(lines[i])
        i += 1
    return kept


def _squeeze_blank(lines: list[str]) -> list[str]:
    out: list[str] = []
    for line in lines:
        if not line.strip() and out and not out[-1].strip():
            continue
        out.append(line if line.strip() else "")  # "-- " keeps its space: it marks a signature
    return out
