"""HTML to plain text for a mail that has no text/plain part.

Mail HTML needs its blocks turned into lines, scripts and styles dropped and entities decoded,
not a layout engine. nh3 (html5ever, linear time) first reduces the HTML to the few tags that
shape lines: the stdlib's HTMLParser goes quadratic on hostile unclosed tags ("<a <a <a ...")
and is only handed what html5ever wrote. Quoted replies (<blockquote>) come out with "> " in
front of their lines, so fold_quotes can fold them like plain-text quotes.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import nh3


def _names(words: str) -> frozenset[str]:
    return frozenset(re.findall(r"\w+", words))


_BLOCK = _names(
    "address article aside center dd div dl dt fieldset figcaption figure footer form h1 h2 h3"
    " h4 h5 h6 header hr li main nav ol p section table tbody thead tfoot tr ul"
)
_PARAGRAPH = _names("p h1 h2 h3 h4 h5 h6 table ul ol")
_KEPT = _BLOCK | _names("br td th blockquote pre")
_DROPPED = _names("script style head title template noscript xml")  # tag and content


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self._line: list[str] = []
        self._pre = 0
        self._quote = 0  # <blockquote> depth

    def _flush(self, *, blank: bool = False) -> None:
        text = "".join(self._line)
        self._line = []
        if not self._pre:
            text = " ".join(text.split())
        if text or blank:
            prefix = "> " * self._quote
            self.lines.append((prefix + text).rstrip() if text else prefix.rstrip())

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self._flush(blank=True)
        elif tag in ("td", "th"):
            self._line.append(" ")
        elif tag == "blockquote":
            self._flush()
            self._quote += 1
        elif tag == "pre":
            self._flush()
            self._pre += 1
        elif tag in _BLOCK:
            self._flush()
            if tag == "li":
                self._line.append("- ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "blockquote":
            self._flush()
            self._quote = max(0, self._quote - 1)
        elif tag == "pre":
            self._flush()
            self._pre = max(0, self._pre - 1)
        elif tag in _PARAGRAPH:
            self._flush()
            self.lines.append("> " * self._quote)
        elif tag in _BLOCK:
            self._flush()

    def handle_data(self, data: str) -> None:
        if not self._pre:
            self._line.append(data)
            return
        first, *rest = data.split("\n")
        self._line.append(first)
        for line in rest:
            self._flush(blank=True)
            self._line.append(line)

    def close(self) -> None:
        super().close()
        self._flush()


def html_to_text(html: str) -> str:
    """Readable text of an HTML mail: one line per block, at most one blank line in a row."""
    parser = _TextExtractor()
    parser.feed(nh3.clean(html, tags=set(_KEPT), clean_content_tags=set(_DROPPED), attributes={}))
    parser.close()
    lines: list[str] = []
    for raw in parser.lines:
        line = raw.replace("\xa0", " ").rstrip()
        # blank lines, and quote-only lines (">", "> >") between paragraphs, collapse to one
        if _is_blank(line) and (not lines or _is_blank(lines[-1])):
            continue
        lines.append(line)
    while lines and _is_blank(lines[-1]):
        lines.pop()
    return "\n".join(lines)


def _is_blank(line: str) -> bool:
    return not line.strip("> ")
