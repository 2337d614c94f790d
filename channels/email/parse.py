"""One raw mail in, what the e-mail channel needs out: pure, no I/O.

Real mail is mislabelled and broken: GBK declared as GB2312, HKSCS as Big5, raw UTF-8 or GBK
bytes in headers, missing boundaries, charsets nobody has heard of. One such mail must never
block a mailbox, so every step here has a lenient fallback, and only bytes with nothing
readable at all (no headers) raise EmailParseError, for the caller to quarantine.

The stdlib parser (policy.default) splits the MIME structure; headers are read raw and decoded
here, because the stdlib decodes RFC 2047 words strictly by their declared charset.
"""

from __future__ import annotations

import binascii
import codecs
import email
import email.utils
import hashlib
import io
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.generator import BytesGenerator
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.policy import EmailPolicy
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes

import nh3

from channels.email.html_text import html_to_text
from channels.email.quotes import fold_quotes

MAX_TEXT_CHARS = 1_000_000  # of body text and of HTML; the rest of a giant body is dropped
_MAX_TEXT_BYTES = 4 * MAX_TEXT_CHARS
MAX_DEPTH = 20  # multipart nesting followed; deeper parts are ignored
MAX_PARTS = 1000  # MIME parts looked at
MAX_REFERENCES = 100  # the first (the thread's root) and the newest
_MAX_FILENAME = 255


class EmailParseError(Exception):
    """The bytes are not a mail we can read at all (quarantine it)."""


@dataclass(frozen=True)
class Address:
    name: str | None
    address: str  # lower-cased addr-spec, e.g. "wang.fang@example.com"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "address": self.address}


@dataclass(frozen=True)
class Attachment:
    filename: str | None  # decoded (RFC 2047/2231), path components stripped
    content_type: str  # e.g. "application/pdf"
    size: int  # decoded byte size
    content: bytes | None  # None when over the size limit
    too_large: bool
    content_id: str | None  # without angle brackets, as a "cid:" URL names it
    inline: bool


@dataclass(frozen=True)
class Bounce:
    # the Message-ID of the mail that bounced, "<...>" form: from the message/rfc822 or
    # text/rfc822-headers part, else from In-Reply-To / References
    original_message_id: str | None
    recipient: str | None
    status: str | None  # e.g. "5.1.1"
    diagnostic: str | None  # the server's words, e.g. "550 5.1.1 user unknown"

    def to_json(self) -> dict[str, Any]:
        return {
            "original_message_id": self.original_message_id,
            "recipient": self.recipient,
            "status": self.status,
            "diagnostic": self.diagnostic,
        }


@dataclass(frozen=True)
class ParsedEmail:
    message_id: str | None  # normalised "<id@host>" (angle brackets, no spaces)
    in_reply_to: str | None  # normalised the same way
    references: tuple[str, ...]  # normalised, in order
    from_address: Address | None
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    reply_to: tuple[Address, ...]
    subject: str  # decoded, "" if absent
    date: datetime | None  # aware
    text: str  # text/plain part, else the HTML turned to text; never None
    text_folded: str  # `text` with quoted earlier replies folded away (for the agent's view)
    html_sanitized: str | None  # the text/html part sanitised with nh3; None if no HTML
    attachments: tuple[Attachment, ...]
    auto_submitted: bool  # an auto-reply, list or bulk mail, or any delivery report
    is_bounce: bool  # a delivery failure report (a delay warning is not one)
    bounce: Bounce | None

    def to_json(self) -> dict[str, Any]:
        """The JSON of `contactcenter email-parse` (API.md): from, to, cc, subject, text,
        html_sanitized, message_id, in_reply_to, references, attachments [{filename,
        content_type, size}], auto_submitted, is_bounce — plus date, text_folded and bounce."""
        return {
            "from": self.from_address.to_json() if self.from_address else None,
            "to": [address.to_json() for address in self.to],
            "cc": [address.to_json() for address in self.cc],
            "subject": self.subject,
            "date": self.date.isoformat() if self.date else None,
            "text": self.text,
            "text_folded": self.text_folded,
            "html_sanitized": self.html_sanitized,
            "message_id": self.message_id,
            "in_reply_to": self.in_reply_to,
            "references": list(self.references),
            "attachments": [
                {"filename": a.filename, "content_type": a.content_type, "size": a.size}
                for a in self.attachments
            ],
            "auto_submitted": self.auto_submitted,
            "is_bounce": self.is_bounce,
            "bounce": self.bounce.to_json() if self.bounce else None,
        }


def parse_email(raw: bytes, *, max_attachment_bytes: int = 10 * 1024 * 1024) -> ParsedEmail:
    """Parse one RFC 822 message; raises EmailParseError only when it has no headers at all."""
    if not raw or not raw.strip():
        raise EmailParseError("empty message")
    msg = _parse_structure(bytes(raw))
    headers = _Headers(msg)
    if not headers.values:
        raise EmailParseError("no headers")
    found = _Found(limit=max(0, max_attachment_bytes))
    _walk(msg, found, depth=0)

    plain = "\n".join(found.plain)
    html = "\n".join(found.html) if found.html else None
    text = plain if plain.strip() or html is None else html_to_text(html)
    text = text[:MAX_TEXT_CHARS].strip("\n")
    from_address = next(iter(headers.addresses("from")), None)
    subject = headers.text("subject")
    is_bounce, bounce = _bounce(headers, found, from_address, subject, text)
    return ParsedEmail(
        message_id=headers.message_id(),
        in_reply_to=next(iter(_message_ids(headers.first("in-reply-to") or "")), None),
        references=_trim_references(_message_ids(" ".join(headers.all("references")))),
        from_address=from_address,
        to=headers.addresses("to"),
        cc=headers.addresses("cc"),
        reply_to=headers.addresses("reply-to"),
        subject=subject,
        date=_date(headers.first("date")),
        text=text,
        text_folded=fold_quotes(text),
        html_sanitized=_sanitize(html) if html is not None else None,
        attachments=tuple(found.attachments),
        auto_submitted=is_bounce or found.report or _is_automatic(headers),
        is_bounce=is_bounce,
        bounce=bounce,
    )


if TYPE_CHECKING:
    _EmailPolicy = EmailPolicy[EmailMessage]
else:  # not subscriptable at run time
    _EmailPolicy = EmailPolicy


class _Policy(_EmailPolicy):
    """policy.default, except that the stdlib parses at most the first 2,000 characters of a
    header: its parameter parser is quadratic (a 200 KB Content-Type takes 8 s), and the
    parser asks for Content-Type several times per part. The MIME structure only needs the
    type and boundary; everything else here reads the raw headers, whole and in linear time."""

    def header_fetch_parse(self, name: str, value: str) -> Any:
        if isinstance(value, str) and len(value) > _MAX_PARSED_HEADER:
            value = value[:_MAX_PARSED_HEADER]
        return super().header_fetch_parse(name, value)


_MAX_PARSED_HEADER = 2000
_POLICY = _Policy()  # == policy.default but for the bound above


def _parse_structure(raw: bytes) -> Message:
    try:
        return email.message_from_bytes(raw, policy=_POLICY)
    except Exception:  # a parser bug or recursion on hostile nesting
        # the headers, with the whole body as one text part: the agent still gets something
        return BytesParser(policy=_POLICY).parsebytes(raw, headersonly=True)


# -- charsets ------------------------------------------------------------------------------

_GB = ("gb18030",)
_BIG5 = ("big5", "big5hkscs", "cp950")
_JIS = ("iso2022_jp", "iso2022_jp_2", "iso2022_jp_ext", "iso2022_jp_3")
_LATIN = ("cp1252", "latin-1")
# what a declared charset is decoded with, in order: GB18030 is a superset of GB2312 and GBK
# (real mail declares GB2312 for GBK text), Windows code pages of their ISO or legacy parents.
# Keys are the names mail uses and the names Python's codecs.lookup() gives for them.
_CHARSETS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("gb2312", "gbk", "x-gbk", "cp936", "euc-cn", "gb_2312-80", "gb18030"), _GB),
    **dict.fromkeys(("csgb2312", "chinese", "x-euc-cn", "x-gb2312"), _GB),
    **dict.fromkeys(("big5", "big-5", "x-big5", "cn-big5", "csbig5", "cp950"), _BIG5),
    **dict.fromkeys(("big5-hkscs", "big5hkscs"), ("big5hkscs", "cp950")),
    **dict.fromkeys(("iso-2022-jp", "csiso2022jp", "iso2022_jp"), _JIS),
    **dict.fromkeys(("shift_jis", "shift-jis", "sjis", "x-sjis", "windows-31j"), ("cp932",)),
    **dict.fromkeys(("euc-kr", "euc_kr", "ks_c_5601-1987", "ks_c_5601"), ("cp949",)),
    **dict.fromkeys(("iso-8859-1", "iso8859-1", "latin1", "latin-1"), _LATIN),
    **dict.fromkeys(("us-ascii", "ascii"), ("ascii", "utf-8", *_LATIN)),
    "iso-8859-8-i": ("iso-8859-8",),
    # without a byte-order mark UTF-16 and UTF-32 are big-endian (RFC 2781), and Python's
    # incremental decoders refuse such text outright
    "utf-16": ("utf-16", "utf-16-be"),
    "utf-32": ("utf-32", "utf-32-be"),
    "unknown-8bit": (),
    "x-unknown": (),
}

# text codecs of Python's own that no mail charset means
_NOT_CHARSETS = frozenset({"unicode-escape", "raw-unicode-escape", "punycode", "idna"})


def _codec_names(charset: str | None) -> tuple[str, ...]:
    """Text codecs for a declared charset, best first; () when it names none we know."""
    if not charset:
        return ()
    name = charset.strip().strip("\"'").split("*")[0].lower()
    if name in _CHARSETS:
        return _CHARSETS[name]
    try:
        b"a".decode(name, "ignore")  # refuses bytes-to-bytes codecs (zlib, base64) and nonsense
        canonical = codecs.lookup(name).name
    except (LookupError, ValueError):
        return ()
    if canonical in _NOT_CHARSETS:
        return ()
    return _CHARSETS.get(canonical, (name,))


def _decode_bytes(data: bytes, charset: str | None, *, truncated: bool = False) -> str:
    """Text in the declared charset, else UTF-8, else the charset (or UTF-8) with U+FFFD;
    `truncated` keeps a multibyte character cut at the end from failing the strict tries."""
    names = _codec_names(charset)
    for name in dict.fromkeys((*names, "utf-8")):
        try:
            text = codecs.getincrementaldecoder(name)("strict").decode(data, final=not truncated)
        except ValueError:
            continue
        if not _LONE_SURROGATE.search(text):  # UTF-7 lets "+2D0-" through as half a pair
            return text
    fallback = names[0] if names else "utf-8"
    try:
        text = codecs.getincrementaldecoder(fallback)("replace").decode(data, final=True)
    except ValueError:  # UTF-16 or UTF-32 without a byte-order mark, refused even so
        text = codecs.getincrementaldecoder(names[-1])("replace").decode(data, final=True)
    return _LONE_SURROGATE.sub("\ufffd", text)


# not Unicode text: nh3 and PostgreSQL refuse a string that holds one
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


# -- headers -------------------------------------------------------------------------------

_SURROGATE = re.compile("[\udc80-\udcff]")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([qQbB])\?([^?\s]*)\?=")


def _unfold(value: str) -> str:
    """A raw header value on one line, its raw 8-bit bytes read as UTF-8, else GB18030."""
    value = re.sub(r"\r?\n|\r", "", value)
    if not _SURROGATE.search(value):
        return value
    data = value.encode("utf-8", "surrogateescape")
    for name in ("utf-8", "gb18030"):
        try:
            return data.decode(name)
        except ValueError:
            continue
    return data.decode("utf-8", "replace")


def _word_bytes(encoding: str, text: str) -> bytes:
    if encoding in "qQ":
        return binascii.a2b_qp(text.encode("ascii", "replace"), header=True)
    # base64 is ASCII: a stray 8-bit byte in the word is dropped (a2b_base64 refuses str with it)
    text = text.encode("ascii", "ignore").decode("ascii").rstrip("=")
    if len(text) % 4 == 1:  # one stray character: no base64 decoder takes it
        text = text[:-1]
    try:
        return binascii.a2b_base64(text + "=" * (-len(text) % 4))
    except binascii.Error:
        return text.encode("ascii", "replace")


def _decode_words(value: str) -> str:
    """RFC 2047 encoded-words decoded with the lenient charsets. Adjacent words of one charset
    are decoded together: mailers split a multibyte character across two words."""
    out: list[str] = []
    pending: list[tuple[str, bytes]] = []

    def flush() -> None:
        out.extend(_decode_bytes(data, charset) for charset, data in pending)
        pending.clear()

    position = 0
    for match in _ENCODED_WORD.finditer(value):
        between = value[position : match.start()]
        if between and (between.strip() or not pending):  # blanks between two words go
            flush()
            out.append(between)
        charset = match.group(1).split("*")[0].lower()
        data = _word_bytes(match.group(2), match.group(3))
        if pending and pending[-1][0] == charset:
            pending[-1] = (charset, pending[-1][1] + data)
        else:
            pending.append((charset, data))
        position = match.end()
    flush()
    out.append(value[position:])
    return "".join(out)


def _clean_text(value: str) -> str:
    return _CONTROL.sub(" ", value).replace("\t", " ").strip()


class _Headers:
    """A message's headers by lower-cased name, unfolded and with 8-bit bytes decoded."""

    def __init__(self, msg: Message) -> None:
        self.values: dict[str, list[str]] = {}
        for name, value in msg.raw_items():
            self.values.setdefault(str(name).strip().lower(), []).append(_unfold(str(value)))

    def all(self, name: str) -> list[str]:
        return self.values.get(name, [])

    def first(self, name: str) -> str | None:
        values = self.values.get(name)
        return values[0] if values else None

    def text(self, name: str) -> str:
        value = self.first(name)
        return _clean_text(_decode_words(value)) if value else ""

    def addresses(self, name: str) -> tuple[Address, ...]:
        return _addresses(self.all(name))

    def message_id(self) -> str | None:
        value = (self.first("message-id") or "").strip()
        ids = _message_ids(value)
        if ids:
            return ids[0]
        bare = re.sub(r"[\s<>]+", "", value)
        return f"<{bare}>" if bare else None


_ADDRESS_DELIMITERS = re.compile(r"[\s<>()\[\]\"',;:]+")


def _addresses(values: list[str]) -> tuple[Address, ...]:
    found: list[Address] = []
    try:
        pairs = email.utils.getaddresses(values)
    except Exception:  # an address list the stdlib cannot split
        pairs = []
    for name, addr in pairs:
        address = addr.strip().strip("<>").lower()
        if "@" not in address or _CONTROL.search(address) or " " in address:
            continue
        display = _clean_text(_decode_words(name)).strip("\"' ")
        found.append(Address(name=display or None, address=address))
    if not found:  # nothing the stdlib could split: take what looks like addresses
        for value in values:
            for token in _ADDRESS_DELIMITERS.split(value):
                local, at, domain = token.partition("@")
                if local and at and domain and "@" not in domain and not _CONTROL.search(token):
                    found.append(Address(None, token.lower()))
    return tuple(found)


_MESSAGE_ID = re.compile(r"<([^<>]*)>")


def _message_ids(value: str) -> list[str]:
    """'<id@host>' ids in order, blanks removed; bare ids ('id@host') where nothing is
    bracketed, as some mailers write them."""
    ids = [re.sub(r"\s+", "", found) for found in _MESSAGE_ID.findall(value)]
    if not any(ids):
        ids = [token for token in re.split(r"[\s,]+", value) if "@" in token]
    return [f"<{found}>" for found in ids if found]


def _trim_references(ids: list[str]) -> tuple[str, ...]:
    if len(ids) > MAX_REFERENCES:
        ids = ids[:1] + ids[-(MAX_REFERENCES - 1) :]
    return tuple(ids)


def _date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        date = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return date if date.tzinfo is not None else date.replace(tzinfo=UTC)


_PARAM = re.compile(r';\s*([^\s=;"]+)\s*=\s*("(?:[^"\\]|\\.)*"?|[^;]*)')


def _header_params(value: str | None) -> tuple[str, dict[str, str]]:
    """A structured header's first token (lower-cased) and its parameters, RFC 2231 sections
    and charsets decoded, and the RFC 2047 words real mailers put in file names."""
    if not value:
        return "", {}
    head, _, rest = value.partition(";")
    params: dict[str, str] = {}
    sections: dict[str, list[tuple[int, bool, str]]] = {}
    for match in _PARAM.finditer(";" + rest):
        key, raw = match.group(1).lower(), match.group(2).strip()
        if raw.startswith('"'):
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1] if len(raw) > 1 and raw[-1] == '"' else raw[1:])
        # name=v; name*=charset'lang'%XX; name*0=v; name*1*=%XX (RFC 2231 sections)
        name, star, section = key.partition("*")
        number = section.rstrip("*") or "0"
        if not star:
            params.setdefault(name, _decode_words(raw) if "=?" in raw else raw)
        elif number.isdigit() and len(number) < 4:
            encoded = section == "" or section.endswith("*")
            sections.setdefault(name, []).append((int(number), encoded, raw))
    for name, parts in sections.items():
        params[name] = _rfc2231(sorted(parts))
    return head.strip().lower(), params


def _rfc2231(parts: list[tuple[int, bool, str]]) -> str:
    charset: str | None = "utf-8"
    data = b""
    for index, (_, encoded, raw) in enumerate(parts):
        if encoded and index == 0 and raw.count("'") >= 2:
            charset, _, raw = raw.split("'", 2)
        data += unquote_to_bytes(raw) if encoded else raw.encode("utf-8", "replace")
    return _decode_bytes(data, charset or "utf-8")


# -- the MIME tree -------------------------------------------------------------------------

_CONTENT_TYPE = re.compile(r"[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+")
_DSN_TYPES = ("message/delivery-status", "message/global-delivery-status")
_HEADERS_TYPES = ("text/rfc822-headers", "text/global-headers")
_DSN_REPORT_TYPES = ("delivery-status", "global-delivery-status")


@dataclass
class _Found:
    """What the walk through the parts collects."""

    limit: int
    plain: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    parts: int = 0
    report: bool = False  # a multipart/report of any kind: a machine wrote it
    delivery_report: bool = False
    dsn_fields: list[dict[str, str]] = field(default_factory=list)
    original_ids: list[str] = field(default_factory=list)


class _Part:
    """One MIME part's type, disposition and parameters, read from its raw headers."""

    def __init__(self, msg: Message) -> None:
        headers = _Headers(msg)
        ctype, self.params = _header_params(headers.first("content-type"))
        self.content_type = ctype if _CONTENT_TYPE.fullmatch(ctype) else msg.get_default_type()
        self.disposition, disposition_params = _header_params(headers.first("content-disposition"))
        self.filename = _clean_filename(
            disposition_params.get("filename") or self.params.get("name")
        )
        self.transfer_encoding = (headers.first("content-transfer-encoding") or "").strip().lower()
        content_id = re.sub(r"[\s<>]+", "", headers.first("content-id") or "")
        self.content_id = content_id or None


def _clean_filename(name: str | None) -> str | None:
    if not name:
        return None
    name = re.split(r"[/\\]", _CONTROL.sub("", name))[-1].strip()
    return name[-_MAX_FILENAME:] if name not in ("", ".", "..") else None


def _walk(msg: Message, found: _Found, depth: int) -> None:
    found.parts += 1
    if found.parts > MAX_PARTS:
        return
    try:
        part = _Part(msg)
        if msg.is_multipart() and not part.content_type.startswith("message/"):
            if part.content_type == "multipart/report":
                found.report = True
                report_type = part.params.get("report-type", "").lower()
                found.delivery_report |= report_type in _DSN_REPORT_TYPES
            if depth < MAX_DEPTH:
                for child in msg.get_payload():
                    if isinstance(child, Message):
                        _walk(child, found, depth + 1)
            return
        _leaf(msg, part, found)
    except Exception:  # one unreadable part must not lose the rest of the mail
        return


def _leaf(msg: Message, part: _Part, found: _Found) -> None:
    ctype = part.content_type
    if ctype in _DSN_TYPES:
        found.delivery_report = True
        text = _dsn_text(msg)
        found.dsn_fields.extend(_field_blocks(text))
        _attach(found, part, text.encode("utf-8"))
    elif ctype.startswith("message/") and msg.is_multipart():
        inner = msg.get_payload(0)
        if isinstance(inner, Message):
            found.original_ids.extend(_message_ids(_Headers(inner).first("message-id") or ""))
        _attach(found, part, _message_bytes(inner))
    elif ctype in _HEADERS_TYPES:
        text = _decode_bytes(_payload_bytes(msg), part.params.get("charset"))
        headers = {k: v for block in _field_blocks(text)[:1] for k, v in block.items()}
        found.original_ids.extend(_message_ids(headers.get("message-id", "")))
        _attach(found, part, text.encode("utf-8"))
    elif _is_body(part):
        _body(msg, part, found)
    else:
        _attach(found, part, None, msg)


def _is_body(part: _Part) -> bool:
    """Text the sender wrote, not a file: plain or HTML, not an attachment, no file name.
    A multipart left unsplit (no boundary, or none found) is read as plain text."""
    if part.disposition == "attachment" or part.filename:
        return False
    return part.content_type in ("text/plain", "text/html") or part.content_type.startswith(
        "multipart/"
    )


def _body(msg: Message, part: _Part, found: _Found) -> None:
    data = _payload_bytes(msg)
    truncated = len(data) > _MAX_TEXT_BYTES
    data = data[:_MAX_TEXT_BYTES]
    is_html = part.content_type == "text/html"
    charset = part.params.get("charset") or (_meta_charset(data) if is_html else None)
    text = _decode_bytes(data, charset, truncated=truncated)
    texts = found.html if is_html else found.plain
    budget = MAX_TEXT_CHARS - sum(map(len, texts))
    texts.append(text.replace("\r\n", "\n").replace("\r", "\n")[: max(0, budget)])


def _meta_charset(html: bytes) -> str | None:
    match = re.search(rb"<meta[^>]{0,200}?charset=[\"']?([\w.:-]{1,40})", html[:4096], re.I)
    return match.group(1).decode("ascii") if match else None


def _payload_bytes(msg: Message) -> bytes:
    try:
        data = msg.get_payload(decode=True)
    except Exception:  # a transfer encoding the stdlib chokes on: the raw bytes
        payload = msg.get_payload()
        return payload.encode("utf-8", "surrogateescape") if isinstance(payload, str) else b""
    return data if isinstance(data, bytes) else b""


def _message_bytes(inner: object) -> bytes:
    try:
        if not isinstance(inner, Message):
            return b""
        out = io.BytesIO()  # Message.as_bytes(), with the generator below
        _Generator(out, mangle_from_=False, policy=inner.policy).flatten(inner)
        return out.getvalue()
    except Exception:  # the generator refuses some broken messages
        return str(inner).encode("utf-8", "surrogateescape") if inner is not None else b""


class _Generator(BytesGenerator):
    """The stdlib's, except that a multipart without a boundary gets one made from its text
    rather than a random one: the same mail always parses to the same attachment."""

    @classmethod
    def _make_boundary(cls, text: bytes | str | None = None) -> str:
        data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text or b""
        boundary = f"==============={hashlib.sha256(data).hexdigest()[:19]}=="
        while f"--{boundary}".encode() in data:
            boundary += "."
        return boundary


def _attach(found: _Found, part: _Part, data: bytes | None, msg: Message | None = None) -> None:
    """An attachment; over the limit its content is dropped, and a base64 part that is plainly
    too large is measured without being decoded."""
    size: int | None = None
    if data is None and msg is not None:
        if part.transfer_encoding == "base64":
            raw = msg.get_payload()
            if isinstance(raw, str):
                size = len(re.sub(r"[^A-Za-z0-9+/]+", "", raw)) * 3 // 4
        if size is None or size <= found.limit:
            data = _payload_bytes(msg)
    if data is not None:
        size = len(data)
    size = size or 0
    too_large = size > found.limit
    inline = part.disposition == "inline" or (not part.disposition and part.content_id is not None)
    found.attachments.append(
        Attachment(
            filename=part.filename,
            content_type=part.content_type,
            size=size,
            content=None if too_large else (data or b""),
            too_large=too_large,
            content_id=part.content_id,
            inline=inline,
        )
    )


# -- bounces and automatic mail ------------------------------------------------------------


def _dsn_text(msg: Message) -> str:
    """A delivery-status part as text, whether the stdlib split it into blocks or not."""
    payload = msg.get_payload()
    if not isinstance(payload, list):
        return _decode_bytes(_payload_bytes(msg), "utf-8")
    blocks: list[str] = []
    for block in payload:
        if isinstance(block, Message):
            blocks.append("\n".join(f"{k}: {_unfold(str(v))}" for k, v in block.raw_items()))
            body = block.get_payload()
            if isinstance(body, str) and body.strip():  # blocks the stdlib left unsplit
                blocks.append(body.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))
    return "\n\n".join(blocks)


def _field_blocks(text: str) -> list[dict[str, str]]:
    """'Name: value' blocks separated by blank lines, as in a delivery-status part."""
    blocks: list[dict[str, str]] = []
    for chunk in re.split(r"\n[ \t]*\n", text.replace("\r\n", "\n")):
        fields: dict[str, str] = {}
        for match in re.finditer(r"^([A-Za-z][\w-]*)[ \t]*:[ \t]*(.*(?:\n[ \t].*)*)", chunk, re.M):
            fields.setdefault(match.group(1).lower(), " ".join(match.group(2).split()))
        if fields:
            blocks.append(fields)
    return blocks


_STATUS = re.compile(r"\b[245]\.\d{1,3}\.\d{1,3}\b")
_SMTP_REPLY = re.compile(r"\b[45]\d\d[ -][^\n]*")
_DAEMON = re.compile(r"^(?:mailer-daemon|mailer_daemon|mailerdaemon|postmaster|mail-daemon)@", re.I)
_DAEMON_NAME = re.compile(r"mail delivery (?:system|subsystem)|系统退信", re.I)
_BOUNCE_WORDS = re.compile(
    r"undeliver|delivery status notification|delivery (?:has )?fail|mail delivery failed"
    r"|returned mail|failure notice|could not be delivered|permanent (?:error|failure)"
    r"|non-?delivery|退信|无法投递|投递失败|发送失败|未能送达|未送达",
    re.I,
)
_NOT_FAILED = frozenset({"delayed", "delivered", "relayed", "expanded"})


def _bounce(
    headers: _Headers, found: _Found, sender: Address | None, subject: str, text: str
) -> tuple[bool, Bounce | None]:
    """Whether this is a delivery failure, and what failed. A DSN that only reports a delay
    (or a success) is a report but no bounce: the mail may still arrive."""
    if found.delivery_report:
        recipients = [
            b for b in found.dsn_fields if "final-recipient" in b or "original-recipient" in b
        ]
        if recipients and all(b.get("action", "").lower() in _NOT_FAILED for b in recipients):
            return False, None
        chosen = _failed_recipient(recipients or found.dsn_fields)
    elif _from_daemon(sender) and (_BOUNCE_WORDS.search(subject) or _BOUNCE_WORDS.search(text)):
        chosen = {}
    else:
        return False, None
    recipient = _strip_type(chosen.get("final-recipient") or chosen.get("original-recipient"))
    if recipient is None:
        match = re.search(r"<([^<>\s]+@[^<>\s]+)>", text)
        recipient = match.group(1) if match else None
    status_match = _STATUS.search(chosen.get("status", "")) or _STATUS.search(text)
    diagnostic = _strip_type(chosen.get("diagnostic-code")) or _diagnostic_in(text)
    return True, Bounce(
        original_message_id=_original_id(headers, found, text),
        recipient=recipient.strip("<>").lower() if recipient else None,
        status=status_match.group(0) if status_match else None,
        diagnostic=diagnostic[:1000] if diagnostic else None,
    )


def _failed_recipient(blocks: list[dict[str, str]]) -> dict[str, str]:
    for block in blocks:
        if block.get("action", "").lower() == "failed":
            return block
    for block in blocks:
        if block.get("status", "").startswith("5"):
            return block
    return next((b for b in blocks if "status" in b or "diagnostic-code" in b), {})


def _from_daemon(sender: Address | None) -> bool:
    if sender is None:
        return False
    return bool(_DAEMON.match(sender.address) or _DAEMON_NAME.search(sender.name or ""))


def _strip_type(value: str | None) -> str | None:
    """'rfc822; x@y' -> 'x@y', 'smtp; 550 ...' -> '550 ...'."""
    if not value:
        return None
    return re.sub(r"^\s*[\w.-]+\s*;\s*", "", value).strip() or None


def _diagnostic_in(text: str) -> str | None:
    """The server's words in a human-readable bounce: the first line quoting an SMTP reply."""
    for line in text.splitlines()[:200]:
        if _STATUS.search(line) or _SMTP_REPLY.search(line):
            return " ".join(line.split())
    return None


def _original_id(headers: _Headers, found: _Found, text: str) -> str | None:
    if found.original_ids:
        return found.original_ids[0]
    match = re.search(r"^\s*Message-ID:\s*(<[^<>\s]+>)", text, re.I | re.M)
    if match:
        return match.group(1)
    in_reply_to = _message_ids(headers.first("in-reply-to") or "")
    if in_reply_to:
        return in_reply_to[0]
    references = _message_ids(" ".join(headers.all("references")))
    return references[-1] if references else None


# header -> the values that make a mail automatic (None: any value other than "no"/"false")
_AUTOMATIC: dict[str, frozenset[str] | None] = {
    "x-autoreply": None,
    "x-autorespond": None,
    "x-autoreply-from": None,
    "x-mail-autoreply": None,
    "x-autogenerated": None,
    "precedence": frozenset({"bulk", "junk", "list", "auto_reply"}),
    "x-precedence": frozenset({"bulk", "junk", "list", "auto_reply"}),
    "x-auto-response-suppress": frozenset({"all", "oof"}),
    "x-fc-machinegenerated": frozenset({"true"}),
}


def _is_automatic(headers: _Headers) -> bool:
    """RFC 3834 Auto-Submitted and the vendors' older signs of an auto-reply or a list mail."""
    auto_submitted = (headers.first("auto-submitted") or "").split(";")[0].strip().lower()
    if auto_submitted and auto_submitted != "no":
        return True
    for name, values in _AUTOMATIC.items():
        for value in headers.all(name):
            tokens = {t.strip().lower() for t in re.split(r"[,;]", value) if t.strip()}
            if values is None and not tokens <= {"no", "false", "0"}:
                return True
            if values is not None and tokens & values:
                return True
    is_list = bool(headers.first("list-id") or headers.first("list-unsubscribe"))
    if is_list and headers.first("precedence") is not None:
        return True
    # a null reverse-path: bounces and auto-replies; RFC 5321 forbids answering them
    return (headers.first("return-path") or "").strip() == "<>"


_HTML_TAGS = nh3.ALLOWED_TAGS | {"font"}
_HTML_ATTRIBUTES: dict[str, set[str]] = {
    **{tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()},
    "font": {"color", "face", "size"},
    "td": set(nh3.ALLOWED_ATTRIBUTES["td"]) | {"width", "valign", "bgcolor"},
    "table": set(nh3.ALLOWED_ATTRIBUTES["table"]) | {"width", "border", "cellpadding"},
    "*": {"dir", "lang", "title"},
}


def _sanitize(html: str) -> str:
    """No scripts, styles, event handlers, forms or frames; links and images only over http(s),
    mailto, tel and cid: (an inline part). Remote images stay: the client decides to load."""
    return nh3.clean(
        html,
        tags=_HTML_TAGS,
        clean_content_tags={"script", "style"},
        attributes=_HTML_ATTRIBUTES,
        url_schemes={"http", "https", "mailto", "tel", "cid"},
        strip_comments=True,
        link_rel="noopener noreferrer nofollow",
    ).strip()
