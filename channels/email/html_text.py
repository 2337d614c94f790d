"""HTML to plain text for a mail that has no text/plain part.

The stdlib's HTMLParser is enough: mail HTML needs its blocks turned into lines, scripts and
styles dropped and entities decoded, not a layout engine. Quoted replies (<blockquote>) come
out with "> " in front of their lines, so fold_quotes can fold them like plain-text quotes.
"""

from __future__ import annotations

from html.parser import HTMLParser

_BLOCK = frozenset(
    [
        "address",
        "article",
        "aside",
        "center",
        "dd",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hr",
        "li",
        "main",
        "nav",
        "ol",
        "p",
        "section",
        "table",
        "tbody",
        "thead",
        "tfoot",
        "tr",
        "ul",
    ]
)
_PARAGRAPH = frozenset(["p", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol"])
_SKIP = frozenset(["script", "style", "head", "title", "template", "noscript", "xml"])
_VOID = frozenset(
    [
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "source",
        "track",
        "wbr",
    ]
)


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self._line: list[str] = []
        self._skip = 0  # inside <script>, <style>, ...
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
        if tag in _SKIP:
            self._skip += 1
        elif tag == "br":
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
        if tag in _SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag == "blockquote":
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

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # <br/>, <hr/>: a void element's end tag would otherwise be taken for a closing one
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
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
    parser.feed(html)
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
