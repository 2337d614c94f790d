"""Property-based fuzzing of the e-mail parser (channels/email/parse.py) with hypothesis.

Whatever the bytes, parse_email returns a ParsedEmail or raises EmailParseError (and only for
bytes without headers); what it returns keeps the promises the rest of the channel relies on:
text PostgreSQL can store (valid Unicode), sanitised HTML with nothing that runs, bounded ids
and subjects after intake, attachments whose names are plain file names. The mails are built
from the parts real mail is made of (headers with encoded words in odd charsets, 8-bit bytes,
MIME trees with broken boundaries and transfer encodings, RFC 2231 file names, delivery
reports), as random bytes, and as byte-level mutations of the real mails in tests/mail.
The raw-mail webhook then takes such mails over HTTP: a 202 (stored or quarantined), never a
5xx.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import fields, is_dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import example, given
from hypothesis import strategies as st

from channels.email.intake import MAX_MESSAGE_ID, MAX_SUBJECT, to_inbound
from channels.email.parse import (
    MAX_REFERENCES,
    MAX_TEXT_CHARS,
    EmailParseError,
    ParsedEmail,
    parse_email,
)
from channels.email.quotes import fold_quotes
from contactcenter.api.app import create_app
from contactcenter.api.middleware import AccessLogger
from contactcenter.settings import Settings
from tests.fuzzing import fuzz_settings
from tests.openapi_check import OpenApiChecker

MAIL = Path(__file__).parent / "mail"
FIXTURES = sorted(path.read_bytes() for path in MAIL.glob("*.eml"))
LIMIT = 2_000  # max_attachment_bytes in these tests: small, so both sides of it are reached
WEBHOOK_SECRET = "fuzz-pipe-secret-0123456789"

Client = TestClient[Any, Any]

# ---- what mails are made of --------------------------------------------------------------

# charsets real mail declares, mislabels and invents, and codecs of Python's own that no mail
# charset means (bytes-to-bytes, str-to-str, or producing lone surrogates)
CHARSETS = [
    "utf-8",
    "UTF-8",
    '"utf-8"',
    "utf-8*en",
    "us-ascii",
    "iso-8859-1",
    "windows-1252",
    "iso-8859-8-i",
    "koi8-r",
    "gb2312",
    "gbk",
    "gb18030",
    "big5",
    "big5-hkscs",
    "iso-2022-jp",
    "shift_jis",
    "euc-kr",
    "utf-16",
    "utf-16le",
    "utf-32",
    "utf-7",
    "unknown-8bit",
    "x-unknown",
    "zlib",
    "base64",
    "rot13",
    "hex",
    "idna",
    "punycode",
    "unicode-escape",
    "raw-unicode-escape",
    "undefined",
    "",
    "no-such-charset",
]
charsets = st.sampled_from(CHARSETS) | st.text(max_size=12)

# a little of everything text holds: scripts, controls, CJK, quotes, marks
text = st.text(max_size=60) | st.sampled_from(
    [
        "退款 请尽快处理",
        "Grüße aus Köln",
        "> quoted line",
        "On Mon, 1 Jan 2024, Wang Fang <wang.fang@example.com> wrote:",
        "-----Original Message-----",
        "发件人: 王芳\n发送时间: 2024\n收件人: support",
        "\x00\x01\x1b[31m",
        "\u202e\ufeff\u200b",
        "Hi +2D0-",  # UTF-7 for half a surrogate pair
        "=?utf-8?q?not_a_word",
    ]
)


def encoded_word(charset: str, kind: str, data: bytes, garbage: str) -> str:
    if kind in "bB":
        payload = base64.b64encode(data).decode() + garbage
    else:
        payload = binascii.b2a_qp(data, header=True).decode("ascii").replace("?", "=3F")
    payload = re.sub(r"[\s?]", "", payload)
    return f"=?{charset}?{kind}?{payload}?="


encoded_words = st.builds(
    encoded_word,
    st.sampled_from(CHARSETS) | st.from_regex(r"\A[!-~]{1,10}\Z").filter(lambda s: "?" not in s),
    st.sampled_from("bBqQ"),
    st.binary(max_size=30)
    | st.sampled_from(
        [
            "退款".encode("gbk"),
            b"+2D0-",  # UTF-7 for a lone surrogate
            "\ufeff".encode("utf-16"),
            b"\xff\xfe\x00",
        ]
    ),
    st.sampled_from(["", "=", "A", "====", "!", "é"]),
)

header_pieces = st.one_of(
    text.map(lambda s: s.encode("utf-8")),
    encoded_words.map(str.encode),
    st.binary(max_size=20),  # raw 8-bit bytes, as broken mailers send
    st.sampled_from([b"\r\n ", b"\r\n\t", b" ", b";", b",", b"<", b">", b'"', b"(", b")"]),
)
header_values = st.lists(header_pieces, max_size=6).map(b"".join)

addresses = st.one_of(
    st.sampled_from(
        [
            b"wang.fang@example.com",
            b"Wang Fang <wang.fang@example.com>",
            b'"Li, Lei" <li.lei@example.cn>, support@example.com',
            b"=?gb2312?b?zfW3vA==?= <wang@example.cn>",
            b"MAILER-DAEMON@mx.example.com",
            b"Mail Delivery System <postmaster@example.com>",
            b"undisclosed-recipients:;",
            b"<>",
            b"a@b@c",
            b"\xe7\x8e\x8b <wang@example.com>",
        ]
    ),
    header_values,
)
message_ids = st.one_of(
    st.sampled_from([b"<a1@example.com>", b"<>", b"bare@example.com", b"< spaced id @ host >"]),
    st.text(max_size=30).map(lambda s: f"<{s}@example.com>".encode()),
    st.lists(st.from_regex(r"\A<[a-z0-9.]{0,12}@x>\Z"), max_size=150).map(
        lambda ids: " ".join(ids).encode()
    ),
    header_values,
)
TOP_HEADERS: dict[bytes, st.SearchStrategy[bytes]] = {
    b"From": addresses,
    b"To": addresses,
    b"Cc": addresses,
    b"Reply-To": addresses,
    b"Subject": header_values
    | st.sampled_from([b"Undelivered Mail Returned to Sender", b"Re: [#12-0123456789abcdef]"]),
    b"Date": header_values
    | st.sampled_from(
        [b"Mon, 1 Jan 2024 10:00:00 +0800", b"Tue, 31 Feb 99999 25:61:61 -9999", b"0"]
    ),
    b"Message-ID": message_ids,
    b"In-Reply-To": message_ids,
    b"References": message_ids,
    b"Auto-Submitted": st.sampled_from([b"auto-replied", b"no", b"auto-generated; x"]),
    b"Precedence": st.sampled_from([b"bulk", b"list", b"first-class"]),
    b"X-Autoreply": st.sampled_from([b"yes", b"no"]),
    b"Return-Path": st.sampled_from([b"<>", b"<bounce@example.com>"]),
    b"List-Id": header_values,
    b"MIME-Version": st.sampled_from([b"1.0", b"2.0"]),
}
header_names = st.sampled_from(list(TOP_HEADERS)) | st.from_regex(rb"\A[!-9;-~]{1,20}\Z")

CONTENT_TYPES = [
    "text/plain",
    "text/html",
    "TEXT/HTML",
    "multipart/mixed",
    "multipart/alternative",
    "multipart/related",
    "multipart/report; report-type=delivery-status",
    "multipart/report; report-type=disposition-notification",
    "message/rfc822",
    "message/delivery-status",
    "message/global-delivery-status",
    "text/rfc822-headers",
    "application/pdf",
    "image/png",
    "application/octet-stream",
    "text",
    "multipart/",
    "../../etc/passwd",
]
TRANSFER_ENCODINGS = ["7bit", "8bit", "binary", "base64", "quoted-printable", "x-uuencode", "b64"]
DISPOSITIONS = ["attachment", "inline", "ATTACHMENT", "form-data", ""]


@st.composite
def filenames(draw: st.DrawFn) -> bytes:
    """A file name parameter, in the forms mailers write it."""
    name = draw(
        st.sampled_from(["报价单.pdf", "../../etc/passwd", "C:\\boot.ini", "..", ".", "a" * 300])
        | text
    )
    charset = draw(st.sampled_from(CHARSETS))
    form = draw(st.integers(0, 3))
    if form == 0:
        return b'; filename="' + name.encode("utf-8") + b'"'
    if form == 1:
        data = name.encode("utf-8")
        quoted = "".join(f"%{b:02X}" for b in data)
        return f"; filename*={charset}''{quoted}".encode()
    if form == 2:  # RFC 2231 sections, maybe out of order or incomplete
        pieces = [name[i : i + 5] for i in range(0, len(name), 5)] or [""]
        order = draw(st.permutations(range(len(pieces))))
        return b"".join(f"; filename*{i}*=utf-8''{pieces[i]}".encode() for i in order)
    return b"; name=" + draw(encoded_words).encode()


def _transfer_encode(data: bytes, encoding: str) -> bytes:
    if encoding == "base64":
        return base64.encodebytes(data)
    if encoding == "quoted-printable":
        return binascii.b2a_qp(data)
    return data


bodies = st.one_of(
    st.binary(max_size=200),
    st.builds(lambda s, c: s.encode(c, "replace"), text, st.sampled_from(["utf-8", "gb18030"])),
    st.lists(
        st.sampled_from(
            [
                "<script>alert(1)</script>",
                "<img src=x onerror=alert(1)>",
                "<a href='javascript:alert(1)'>x</a>",
                "<blockquote>old</blockquote>",
                "<p>Hello</p>",
                "<table><tr><td>1</td></tr></table>",
                "<pre>a\n b</pre>",
                '<meta charset="utf-7">',
                "+2D0-",
                "<a <a <a",
                "&nbsp;&#0;&#xD800;",
            ]
        ),
        max_size=6,
    ).map(lambda parts: "".join(parts).encode()),
    st.just(b"=?utf-8?b?garbage\r\n=\r\n=ZZ\r\nbegin 644 x\r\n"),
)


def dsn_block(recipient: bytes, action: str, status: str) -> bytes:
    return (
        b"Reporting-MTA: dns; mx.example.com\r\n\r\n"
        b"Final-Recipient: rfc822; " + recipient + b"\r\n"
        b"Action: " + action.encode() + b"\r\n"
        b"Status: " + status.encode() + b"\r\n"
        b"Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n"
    )


@st.composite
def parts(draw: st.DrawFn, depth: int = 0) -> bytes:
    """One MIME part (its headers, a blank line, its body), maybe with parts inside."""
    ctype = draw(st.sampled_from(CONTENT_TYPES))
    headers = [b"Content-Type: " + ctype.encode()]
    if draw(st.booleans()):
        headers[0] += b"; charset=" + draw(charsets).encode("utf-8")
    encoding = draw(st.sampled_from(TRANSFER_ENCODINGS))
    if draw(st.booleans()):
        headers.append(b"Content-Transfer-Encoding: " + encoding.encode())
    if draw(st.booleans()):
        disposition = draw(st.sampled_from(DISPOSITIONS)).encode()
        headers.append(b"Content-Disposition: " + disposition + draw(filenames()))
    if draw(st.booleans()):
        headers.append(b"Content-ID: " + draw(message_ids))
    if ctype.startswith("multipart/") and depth < 3:
        boundary = draw(st.sampled_from([b"b1", b"==x==", b"", b" "]) | st.binary(max_size=8))
        headers[0] += b'; boundary="' + boundary + b'"'
        children = draw(st.lists(parts(depth + 1), max_size=3))
        closed = draw(st.booleans())
        body = b"".join(b"--" + boundary + b"\r\n" + child + b"\r\n" for child in children)
        body += b"--" + boundary + b"--\r\n" if closed else b""
    elif ctype == "message/rfc822" and depth < 3:
        body = draw(mails(depth + 1))
    elif ctype.endswith("delivery-status"):
        body = dsn_block(
            draw(addresses),
            draw(st.sampled_from(["failed", "delayed", "delivered", "FAILED", ""])),
            draw(st.sampled_from(["5.1.1", "4.4.7", "2.0.0", "9.9.9", ""])),
        )
    elif ctype == "text/rfc822-headers":
        body = b"Message-ID: " + draw(message_ids) + b"\r\nFrom: a@b.c\r\n"
    else:
        body = _transfer_encode(draw(bodies), encoding)
    return b"\r\n".join(headers) + b"\r\n\r\n" + body


@st.composite
def mails(draw: st.DrawFn, depth: int = 0) -> bytes:
    """A whole mail: top-level headers, then a MIME part; line ends as sent or as stored."""
    names = draw(st.lists(header_names, max_size=8))
    headers = []
    for name in names:
        value = draw(TOP_HEADERS.get(name, header_values))
        headers.append(name + b": " + value)
    mail = b"\r\n".join(headers) + b"\r\n" + draw(parts(depth))
    ending = draw(st.sampled_from([b"\r\n", b"\n", b"\r"]))
    return mail.replace(b"\r\n", ending) if ending != b"\r\n" else mail


@st.composite
def mutated_fixtures(draw: st.DrawFn) -> bytes:
    """A real mail from tests/mail with a few bytes deleted, replaced or inserted."""
    data = bytearray(draw(st.sampled_from(FIXTURES)))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data)))
        cut = draw(st.integers(0, 40))
        insert = draw(
            st.binary(max_size=20)
            | st.sampled_from([b"\r\n", b"\r\n\r\n", b"--", b"=?", b"?=", b"\x00", b"\xff"])
        )
        data[at : at + cut] = insert
    return bytes(data)


# ---- what a parsed mail promises ---------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_UNSAFE_TAGS = {
    "script",
    "style",
    "iframe",
    "frame",
    "frameset",
    "object",
    "embed",
    "form",
    "input",
    "button",
    "textarea",
    "select",
    "base",
    "meta",
    "link",
    "svg",
    "math",
}
_URL_ATTRIBUTES = {"href", "src", "cite", "action", "formaction", "background", "xlink:href"}
_SAFE_SCHEMES = {"http", "https", "mailto", "tel", "cid"}


def strings(value: Any) -> Iterator[str]:
    """Every str inside a value (dataclasses, tuples, lists, dicts)."""
    if isinstance(value, str):
        yield value
    elif is_dataclass(value) and not isinstance(value, type):
        for item in fields(value):
            yield from strings(getattr(value, item.name))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings(key)
            yield from strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from strings(item)


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))


def assert_inert(html: str) -> None:
    """Nothing in `html` runs in a browser: no script, style, frame or form elements, no
    event handler attributes, no URL with a scheme other than http(s), mailto, tel, cid."""
    assert not re.search(r"<\s*/?\s*(script|style|iframe)", html, re.I), html
    parser = _Elements()
    parser.feed(html)
    parser.close()
    for tag, attrs in parser.tags:
        assert tag not in _UNSAFE_TAGS, html
        for name, value in attrs:
            assert not name.startswith("on"), html
            assert name != "style", html
            if name in _URL_ATTRIBUTES and value:
                url = re.sub(r"[\x00-\x20]", "", value)
                scheme = re.match(r"([a-zA-Z][a-zA-Z0-9+.-]*):", url)
                assert scheme is None or scheme.group(1).lower() in _SAFE_SCHEMES, html


def check(raw: bytes) -> ParsedEmail | None:
    """Parse `raw` and assert every promise of ParsedEmail and of intake's InboundMessage."""
    try:
        parsed = parse_email(raw, max_attachment_bytes=LIMIT)
    except EmailParseError:
        # only bytes with no header at all are refused: a mail starting with one is read
        assert not re.match(rb"[!-9;-~]+:", raw), raw[:200]
        return None
    for value in strings(parsed):
        value.encode("utf-8")  # valid Unicode: no lone surrogate, storable in PostgreSQL
    assert len(parsed.text) <= MAX_TEXT_CHARS and "\r" not in parsed.text
    assert parsed.text_folded.strip() or not parsed.text.strip()
    assert not _CONTROL.search(parsed.subject)
    for found in (parsed.message_id, parsed.in_reply_to, *parsed.references):
        if found is not None:
            assert found.startswith("<") and found.endswith(">") and len(found) > 2, found
            assert not re.search(r"\s", found), found
    assert len(parsed.references) <= MAX_REFERENCES
    for address in (parsed.from_address, *parsed.to, *parsed.cc, *parsed.reply_to):
        if address is None:
            continue
        assert "@" in address.address and address.address == address.address.lower()
        assert " " not in address.address and not _CONTROL.search(address.address)
        assert address.name is None or (address.name and not _CONTROL.search(address.name))
    assert parsed.date is None or parsed.date.tzinfo is not None
    if parsed.html_sanitized is not None:
        assert_inert(parsed.html_sanitized)
    for attachment in parsed.attachments:
        assert attachment.size >= 0
        assert attachment.too_large == (attachment.size > LIMIT)
        assert (attachment.content is None) == attachment.too_large
        assert attachment.content is None or len(attachment.content) == attachment.size
        name = attachment.filename
        if name is not None:
            assert name not in ("", ".", "..") and len(name) <= 255
            assert not re.search(r"[/\\]", name) and not _CONTROL.search(name)
        assert re.fullmatch(r"[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+", attachment.content_type)
    assert (parsed.bounce is not None) == parsed.is_bounce
    assert parsed.auto_submitted or not parsed.is_bounce
    if parsed.bounce is not None and parsed.bounce.diagnostic is not None:
        assert len(parsed.bounce.diagnostic) <= 1000
    json.dumps(parsed.to_json())

    inbound = to_inbound(parsed, raw, None)
    assert inbound.email is not None
    assert 0 < len(inbound.external_id) <= MAX_MESSAGE_ID
    assert all(len(answer) <= MAX_MESSAGE_ID for answer in inbound.email.answers)
    assert inbound.subject is None or 0 < len(inbound.subject) <= MAX_SUBJECT
    for value in strings(inbound):
        assert "\x00" not in value
        value.encode("utf-8")
    return parsed


# ---- the properties ----------------------------------------------------------------------


@fuzz_settings(150)
@given(st.binary(max_size=3000))
@example(b"\r\n\r\n")
@example(b"From: a@b.c\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n" * 50)
def test_any_bytes_parse_or_are_refused_as_headerless(raw: bytes) -> None:
    check(raw)


@fuzz_settings(100)
@given(st.binary(max_size=2000))
def test_any_body_under_real_headers_parses(body: bytes) -> None:
    parsed = check(b"From: Wang Fang <wang.fang@example.com>\r\nSubject: x\r\n\r\n" + body)
    assert parsed is not None and parsed.from_address is not None


@fuzz_settings(250)
@given(mails())
# found by this test: UTF-7 decodes "+2D0-" to a lone surrogate, which nh3 (and PostgreSQL)
# cannot take: the mail was quarantined instead of stored
@example(b"From: a@b.c\r\nContent-Type: text/html; charset=utf-7\r\n\r\n+2D0-<b>x</b>")
@example(b"From: a@b.c\r\nSubject: =?utf-7?q?+2D0-?=\r\n\r\nHello")
@example(b"From: a@b.c\r\nContent-Type: text/plain; charset=utf-7\r\n\r\nHi +2D0-")
# found by this test: an attached mail whose multipart has no boundary was written out with a
# random one, so the same bytes parsed twice gave two different attachments
@example(
    b"From: wang.fang@example.com\r\nContent-Type: message/rfc822\r\n\r\n"
    b'From: wang.fang@example.com\r\nContent-Type: multipart/mixed; boundary=""\r\n\r\n'
    b"--\r\nContent-Type: text/plain\r\n\r\n\r\n"
)
# found by this test (in a randomized long run): UTF-16 without a byte-order mark raised even
# with errors="replace", and the mail went to quarantine
@example(b"Subject: =?utf16?b?AIA?=\r\nContent-Type: text/plain\r\n\r\n")
def test_built_mails_keep_every_promise(raw: bytes) -> None:
    parsed = check(raw)
    assert parsed == check(raw)  # the same bytes, the same mail


def test_utf16_without_a_byte_order_mark_is_read_big_endian() -> None:
    # the same finding: such a body was dropped (its part raised), such a subject quarantined
    body = "退款 please".encode("utf-16-be")
    raw = b"From: a@example.com\r\nContent-Type: text/plain; charset=UTF-16\r\n\r\n" + body
    assert parse_email(raw).text == "退款 please"


@fuzz_settings(150)
@given(mutated_fixtures())
# found by this test: an address the stdlib could not split was taken with a NUL in it
@example(b"To: \x00chan.taiman@example.com.hk\r\nFrom: (\r\n\r\nHi")
# found by this test: an 8-bit byte inside a base64 encoded-word raised ValueError, and the
# whole mail went to quarantine
@example(b"From: a@example.com\r\nSubject: =?ISO-2022-JP?B?\x80GyRCQ21KOCRLJEQkJCRGGyhC?=\r\n\r\nx")
def test_damaged_real_mails_keep_every_promise(raw: bytes) -> None:
    check(raw)


html_fragments = st.lists(
    st.sampled_from(
        [
            "<script>alert(1)</script>",
            "<scr<script>ipt>alert(1)</script>",
            "<img src=x onerror=alert(1)>",
            "<a href='javascript:alert(1)'>x</a>",
            '<a href="jav&#x09;ascript:alert(1)">x</a>',
            "<a href=' javascript:alert(1)'>x</a>",
            "<svg onload=alert(1)>",
            "<math><mi xlink:href=javascript:alert(1)>x</mi></math>",
            "<style>body{}</style>",
            "<iframe src=//evil.example>",
            "<form action=//evil.example><input name=x>",
            "<base href=javascript:/>",
            "<meta http-equiv=refresh content='0;url=javascript:alert(1)'>",
            "<div style='background:url(javascript:alert(1))'>",
            "<!--",
            "-->",
            "<![CDATA[",
            "]]>",
            "<textarea>",
            "<noscript>",
            "<template>",
            "<title>",
            "<xmp>",
            "<plaintext>",
            "<blockquote>",
            "</blockquote>",
            "<p>",
            "<br>",
            "<table><tr><td>",
            "<pre>",
            "<font color=red face=x onclick=alert(1)>",
            "<img src=cid:logo>",
            "<a href=mailto:x@example.com>",
            "&lt;script&gt;",
            "&#0;",
            "&nbsp;",
            "<",
            ">",
            '"',
            "'",
            "=",
            "\x00",
        ]
    )
    | text,
    max_size=12,
).map("".join)


def html_mail(html: str) -> bytes:
    return b"From: a@example.com\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + html.encode(
        "utf-8"
    )


@fuzz_settings(200)
@given(html_fragments)
def test_sanitised_html_is_inert_and_sanitising_it_again_changes_nothing(html: str) -> None:
    parsed = check(html_mail(html))
    assert parsed is not None
    sanitized = parsed.html_sanitized
    assert sanitized is not None
    again = parse_email(html_mail(sanitized)).html_sanitized
    assert again == sanitized


@fuzz_settings(150)
@given(st.lists(text | st.sampled_from(["", "> a", ">> b", "wrote:", "-- "]), max_size=12))
def test_folding_quotes_never_leaves_nothing_of_something(lines: list[str]) -> None:
    written = "\n".join(lines)
    folded = fold_quotes(written)
    assert isinstance(folded, str)
    assert folded.strip() or not written.strip()


# ---- over HTTP: the raw-mail webhook ----------------------------------------------------


@pytest.fixture
async def mail_client(
    aiohttp_client: Callable[..., Awaitable[Client]], settings: Settings
) -> AsyncIterator[Client]:
    """The real app with the raw-mail webhook on; every answer checked against the document."""
    app = create_app(
        settings.replace(email_webhook_secret=WEBHOOK_SECRET, max_attachment_bytes=LIMIT)
    )
    checker = OpenApiChecker()
    app.middlewares.insert(0, checker.middleware)
    yield await aiohttp_client(app, server_kwargs={"access_log_class": AccessLogger})
    assert checker.checked
    assert not checker.problems, "answers that do not fit /v1/openapi.json:\n" + "\n".join(
        checker.problems
    )


@fuzz_settings(30)
@given(raw=mails() | mutated_fixtures() | st.binary(min_size=1, max_size=500))
# a subject with half a surrogate pair could not be stored: the mail went to quarantine
@example(raw=b"From: a@example.com\r\nSubject: =?utf-7?q?+2D0-?=\r\n\r\nHello")
async def test_the_webhook_stores_or_quarantines_any_mail(mail_client: Client, raw: bytes) -> None:
    response = await mail_client.post(
        "/v1/webhooks/email/raw",
        data=raw,
        headers={"X-Webhook-Secret": WEBHOOK_SECRET, "Content-Type": "message/rfc822"},
    )
    body = await response.json()
    if not raw.strip():
        assert response.status == 400 and body["error"]["code"] == "empty_mail"
        return
    assert response.status == 202, body
    # a mail the parser reads is stored; only one it refuses is kept aside in quarantine
    readable = check(raw) is not None
    assert ("message_id" in body) == readable and ("quarantine_id" in body) != readable, body
