"""E-mail parsing, pure: real-world mails from tests/mail, the rest built here with the stdlib.

Most mails are built in code (email.mime with the compat32 policy writes exactly the charsets
and encodings a test asks for); the .eml files keep the shapes real clients send.
"""

from __future__ import annotations

import base64
import email
import json
from datetime import UTC, datetime, timedelta, timezone
from email import policy
from email.header import Header
from email.message import Message
from email.mime.application import MIMEApplication
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formataddr
from pathlib import Path

import pytest

from channels.email.html_text import html_to_text
from channels.email.parse import (
    MAX_TEXT_CHARS,
    Address,
    Attachment,
    EmailParseError,
    ParsedEmail,
    parse_email,
)
from channels.email.quotes import fold_quotes

MAIL = Path(__file__).parent / "mail"


def fixture(name: str) -> ParsedEmail:
    return parse_email((MAIL / name).read_bytes())


def raw(*lines: str | bytes) -> bytes:
    """A mail from its lines, CRLF-terminated; str lines are UTF-8."""
    return b"".join((x.encode() if isinstance(x, str) else x) + b"\r\n" for x in lines)


def simple(*headers: str, body: str = "Hello") -> bytes:
    return raw("From: Wang Fang <wang.fang@example.com>", *headers, "", body)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# -- real-world shapes -----------------------------------------------------------------------


def test_outlook_reply() -> None:
    mail = fixture("outlook_reply.eml")

    assert mail.from_address == Address("Sarah Miller", "sarah.miller@contoso.com")
    assert mail.to == (Address("Example Support", "support@example.com"),)
    assert mail.cc == (Address("Jones, Tom", "tom.jones@contoso.com"),)
    assert mail.subject == "RE: Broken charger [#42-1a2b3c4d]"
    assert mail.date == datetime(2024, 3, 4, 9, 1, 29, tzinfo=UTC)
    # a Message-ID folded onto its own line comes back whole
    assert mail.message_id == (
        "<AM6PR08MB4215C1E4F3D0A1E2B3C4D5E6F7A8B9C0@AM6PR08MB4215.eurprd08.prod.outlook.com>"
    )
    assert mail.in_reply_to == "<cc.0f1e2d3c4b5a69788796a5b4c3d2e1f0@example.com>"
    assert mail.references == ("<cc.0f1e2d3c4b5a69788796a5b4c3d2e1f0@example.com>",)
    # the text/plain part is the text, the original kept; the folded view is the new part
    assert mail.text.startswith("Hi,\n\nYes, order 4711 is the right one.")
    assert "Could you confirm the order number?" in mail.text
    assert mail.text_folded == (
        "Hi,\n\nYes, order 4711 is the right one. Please send the replacement to our office."
        "\n\nKind regards,\nSarah Miller"
    )
    assert mail.html_sanitized is not None
    assert '<img src="cid:image001.png@01DA6E1F.8B3C0A20" alt="logo">' in mail.html_sanitized
    assert "<style" not in mail.html_sanitized
    assert "style=" not in mail.html_sanitized
    assert "P {margin-top" not in mail.html_sanitized
    (image,) = mail.attachments
    assert image.filename == "image001.png"
    assert image.content_type == "image/png"
    assert image.content_id == "image001.png@01DA6E1F.8B3C0A20"
    assert image.inline
    assert image.content is not None and image.content.startswith(b"\x89PNG")
    assert image.size == len(image.content)
    assert not mail.auto_submitted and not mail.is_bounce and mail.bounce is None


def test_gmail_reply() -> None:
    mail = fixture("gmail_reply.eml")

    assert mail.from_address == Address("王芳", "wang.fang.1988@gmail.com")
    assert mail.subject == "Re: 订单问题 [#43-2b3c4d5e]"
    assert mail.date == datetime(2024, 3, 5, 18, 13, 55, tzinfo=timezone(timedelta(hours=8)))
    assert mail.message_id == "<CAJ7xQ2=u9Ri4HNt+NZ_3qW2yK0xF5mVbXo@mail.gmail.com>"
    assert mail.in_reply_to == "<cc.6e2c1b3f4a5d4b7c9e0f1a2b3c4d5e6f@example.com>"
    assert mail.references == (
        "<cc.5d1b0a2e3f4c4a6b8d9e0f1a2b3c4d5e@example.com>",
        "<cc.6e2c1b3f4a5d4b7c9e0f1a2b3c4d5e6f@example.com>",
    )
    assert "> Your parcel left our warehouse today." in mail.text
    # the attribution wraps onto a second line ("...<support@example.com>\nwrote:")
    assert mail.text_folded == "收到了，谢谢！\nGot it, thanks!"
    assert mail.html_sanitized is not None
    assert "<blockquote>" in mail.html_sanitized
    assert 'href="mailto:support@example.com"' in mail.html_sanitized
    assert mail.attachments == ()


def test_gb2312_mail_with_gbk_characters_and_rfc2231_file_name() -> None:
    mail = fixture("gb2312_attachment.eml")

    # 喆 is GBK, not GB2312: the mail is mislabelled, as Foxmail and 163 mail often are
    assert mail.subject == "关于发票的问题（喆明公司）"
    assert mail.from_address == Address("李四", "lisi_2024@163.com")
    assert mail.to == (Address("support", "support@example.com"),)
    assert mail.text == "王经理，您好：\n\n附件是喆明公司的发票，请查收。\n\n李四"
    (invoice,) = mail.attachments
    # filename*= (RFC 2231) wins over the RFC 2047 name= beside it
    assert invoice.filename == "发票 2024年3月.pdf"
    assert invoice.content_type == "application/pdf"
    assert invoice.content == b"%PDF-1.4 fake invoice"
    assert invoice.size == 21
    assert not invoice.inline and not invoice.too_large


def test_iso_2022_jp_mail() -> None:
    mail = fixture("iso2022jp.eml")

    assert mail.subject == "注文について"
    assert mail.from_address == Address("山田太郎", "taro.yamada@example.co.jp")
    assert mail.text == "お世話になっております。\n注文番号１２３の件、ご確認ください。"


def test_big5_mail_with_hkscs_characters() -> None:
    mail = fixture("big5.eml")

    assert mail.subject == "訂單查詢"
    assert mail.from_address == Address("陳大文", "chan.taiman@example.com.hk")
    # 嘅 is in Big5-HKSCS only; the body is labelled plain Big5
    assert mail.text == "你好，我嘅訂單仲未到。\n陳大文"


def test_dsn_bounce() -> None:
    mail = fixture("dsn_bounce.eml")

    assert mail.is_bounce
    assert mail.auto_submitted
    assert mail.bounce is not None
    assert mail.bounce.original_message_id == "<cc.7f3d2c4e5b6a4c8d0e1f2a3b4c5d6e7f@example.com>"
    assert mail.bounce.recipient == "no.such.user@gmail.com"
    assert mail.bounce.status == "5.1.1"
    assert mail.bounce.diagnostic is not None
    assert mail.bounce.diagnostic.startswith(
        "550-5.1.1 The email account that you tried to reach does not exist. Please try"
    )
    assert "\n" not in mail.bounce.diagnostic
    assert mail.from_address == Address("Mail Delivery System", "mailer-daemon@mx.example.com")
    assert "could not\nbe delivered" in mail.text
    types = [a.content_type for a in mail.attachments]
    assert types == ["message/delivery-status", "message/rfc822"]
    returned = mail.attachments[1].content
    assert returned is not None and b"Your order has shipped." in returned


def test_auto_reply() -> None:
    mail = fixture("auto_reply.eml")

    assert mail.auto_submitted
    assert not mail.is_bounce
    assert mail.in_reply_to == "<cc.8a4e3d5f6c7b4d9e1f2a3b4c5d6e7f80@example.com>"


@pytest.mark.parametrize("path", sorted(MAIL.glob("*.eml")), ids=lambda p: p.name)
def test_every_fixture_parses_to_json(path: Path) -> None:
    mail = parse_email(path.read_bytes())
    assert mail.message_id is not None and mail.from_address is not None
    assert mail.text and mail.text_folded
    json.dumps(mail.to_json(), ensure_ascii=False)


# -- Chinese and Japanese encodings round trip -------------------------------------------------

ROUND_TRIPS = {
    # charset: (subject, display name, body, file name)
    "gb2312": ("订单问题：还没收到", "王芳", "您好，订单还没到。\n请帮忙查一下。", "报告.pdf"),
    "gbk": ("关于喆明公司的订单", "王喆", "喆明公司的订单还没到。", "喆明报告.pdf"),
    "gb18030": ("订单 𠮷 问题", "𠮷野", "𠮷野家的订单还没到。", "报告𠮷.pdf"),
    "big5": ("訂單查詢", "陳大文", "你好，訂單還沒到。", "報告.pdf"),
    "iso-2022-jp": ("注文について", "山田太郎", "注文番号１２３の件です。", "報告書.pdf"),
    "utf-8": ("订单 🚚 Bestellung ärger", "Zoë 王", "Grüße, 您好 🙂", "résumé 报告.pdf"),
}


def built_mail(
    charset: str,
    subject: str,
    name: str,
    body: str,
    filename: str,
    *,
    declared: str | None = None,
    encode_as: str | None = None,
) -> bytes:
    """A multipart mail as the stdlib writes it: RFC 2047 subject and display name, the body
    base64 in the charset, an RFC 2231 file name. `declared` labels it with another charset
    than the bytes are in (`encode_as`), as real mailers do."""
    codec = encode_as or charset
    label = declared or charset
    msg = MIMEMultipart()
    msg["Subject"] = f"=?{label}?b?{b64(subject.encode(codec))}?="
    msg["From"] = f"=?{label}?b?{b64(name.encode(codec))}?= <wang.fang@example.com>"
    msg["To"] = "support@example.com"
    msg["Message-ID"] = "<round.trip@example.com>"
    text = MIMEText(body, "plain", charset if encode_as is None else "utf-8")
    if encode_as is not None:
        text.set_payload(base64.encodebytes(body.encode(codec)).decode())
    text.set_param("charset", label)
    msg.attach(text)
    attachment = MIMEApplication(b"%PDF-1.4", "pdf")
    attachment.add_header("Content-Disposition", "attachment", filename=(codec, "", filename))
    if declared is not None:  # the file name labelled with the wrong charset too
        value = attachment["Content-Disposition"].replace(f"{codec}''", f"{label}''")
        attachment.replace_header("Content-Disposition", value)
    msg.attach(attachment)
    return msg.as_bytes()


@pytest.mark.parametrize("charset", list(ROUND_TRIPS))
def test_round_trip_in_charset(charset: str) -> None:
    subject, name, body, filename = ROUND_TRIPS[charset]

    mail = parse_email(built_mail(charset, subject, name, body, filename))

    assert mail.subject == subject
    assert mail.from_address == Address(name, "wang.fang@example.com")
    assert mail.text == body
    (attachment,) = mail.attachments
    assert attachment.filename == filename
    assert attachment.content == b"%PDF-1.4"


@pytest.mark.parametrize(
    ("declared", "actual", "charset"),
    [("gb2312", "gbk", "gbk"), ("gb2312", "gb18030", "gb18030"), ("big5", "big5hkscs", "big5")],
)
def test_mislabelled_charsets_decode_with_the_superset(
    declared: str, actual: str, charset: str
) -> None:
    subject, name, body, filename = ROUND_TRIPS[charset]
    if actual == "big5hkscs":  # characters only Hong Kong's extension has
        subject, name, body, filename = "我嘅訂單", "陳嘅", "佢嘅訂單仲未到。", "嘅報告.pdf"

    mail = parse_email(
        built_mail(charset, subject, name, body, filename, declared=declared, encode_as=actual)
    )

    assert mail.subject == subject
    assert mail.from_address is not None and mail.from_address.name == name
    assert mail.text == body
    assert mail.attachments[0].filename == filename


def test_stdlib_header_class_with_python_codec_names() -> None:
    # email.header.Header writes Python's codec names ("eucgb2312_cn", "big5_tw")
    msg = MIMEText("正文", "plain", "gb2312")
    msg["Subject"] = Header("订单问题", "gb2312").encode()
    msg["From"] = formataddr(("陳大文", "chan@example.com"), charset="big5")
    assert b"eucgb2312_cn" in msg.as_bytes() and b"big5_tw" in msg.as_bytes()

    mail = parse_email(msg.as_bytes())

    assert mail.subject == "订单问题"
    assert mail.from_address == Address("陳大文", "chan@example.com")
    assert mail.text == "正文"


def test_rfc2047_variants() -> None:
    chars = "中文主题".encode()
    split = f"=?UTF-8?B?{b64(chars[:4])}?= =?UTF-8?B?{b64(chars[4:])}?="  # 文 cut in two
    mail = parse_email(
        simple(
            f"Subject: Re: {split}",
            "To: =?iso-8859-1?Q?Fran=E7ois_M=FCller?= <francois@example.fr>,"
            " =?utf-8?q?=E5=BC=A0=E4=B8=89?= <zhang@example.com>",
            'Cc: "=?gbk?B?' + b64("李四".encode("gbk")) + '?=" <lisi@example.com>',
        )
    )

    assert mail.subject == "Re: 中文主题"
    assert mail.to == (
        Address("François Müller", "francois@example.fr"),
        Address("张三", "zhang@example.com"),
    )
    # an encoded word inside quotes is against RFC 2047, and what several clients send
    assert mail.cc == (Address("李四", "lisi@example.com"),)


def test_encoded_words_with_broken_base64_or_charset() -> None:
    mail = parse_email(
        simple("Subject: =?utf-8?B?5Lit5paH?= =?x-unknown?B?5Lit?= =?utf-8?B?!!!?= tail")
    )
    assert mail.subject.startswith("中文中")
    assert mail.subject.endswith("tail")


def test_rfc2231_file_name_sections_and_paths() -> None:
    name = "年度报告 final.pdf".encode()
    quoted = "".join(f"%{b:02X}" for b in name)
    mail = parse_email(
        raw(
            "From: a@example.com",
            "Content-Type: multipart/mixed; boundary=XX",
            "",
            "--XX",
            "Content-Type: text/plain",
            "",
            "see attached",
            "--XX",
            "Content-Type: application/pdf",
            "Content-Disposition: attachment;",
            f" filename*0*=utf-8'zh'{quoted[:21]};",
            f" filename*1*={quoted[21:]}",
            "Content-Transfer-Encoding: base64",
            "",
            "JVBERg==",
            "--XX",
            'Content-Type: application/octet-stream; name="..\\\\..\\\\windows\\\\evil.exe"',
            "",
            "MZ",
            "--XX",
            'Content-Type: application/octet-stream; name="/etc/passwd"',
            "Content-Disposition: attachment",
            "",
            "root",
            "--XX",
            'Content-Disposition: attachment; filename=".."',
            "Content-Type: application/octet-stream",
            "",
            "x",
            "--XX--",
        )
    )

    assert mail.text == "see attached"
    assert [a.filename for a in mail.attachments] == [
        "年度报告 final.pdf",
        "evil.exe",
        "passwd",
        None,
    ]
    assert mail.attachments[0].content == b"%PDF"


def test_raw_8bit_bytes_in_headers() -> None:
    utf8 = raw(
        "From: 王芳 <wang.fang@example.com>",
        "To: 客服 <support@example.com>",
        "Subject: 订单问题",
        "",
        "hi",
    )
    gbk = raw(
        b"From: " + "王芳".encode("gbk") + b" <wang.fang@example.com>",
        b"Subject: " + "订单问题".encode("gbk"),
        b"",
        b"hi",
    )

    for mail in (parse_email(utf8), parse_email(gbk)):
        assert mail.subject == "订单问题"
        assert mail.from_address == Address("王芳", "wang.fang@example.com")

    garbage = parse_email(raw(b"From: \xff\xfe\x80 <a@example.com>", b"Subject: \xff\x00\x81", b""))
    assert garbage.from_address is not None
    assert garbage.from_address.address == "a@example.com"
    assert "\x00" not in garbage.subject


# -- headers -----------------------------------------------------------------------------------


def test_message_ids_are_normalised() -> None:
    mail = parse_email(
        simple(
            "Message-ID:   < abc.123@host.example >  ",
            "In-Reply-To: Your message of Mon <prev@host.example> (comment)",
            "References: <a@x>",
            "  <b@x>\t<c",
            " @x>",
            "References: <d@x>",
        )
    )
    assert mail.message_id == "<abc.123@host.example>"
    assert mail.in_reply_to == "<prev@host.example>"
    assert mail.references == ("<a@x>", "<b@x>", "<c@x>", "<d@x>")

    bare = parse_email(simple("Message-ID: bare.id@host", "In-Reply-To: other@host"))
    assert bare.message_id == "<bare.id@host>"
    assert bare.in_reply_to == "<other@host>"

    none = parse_email(simple("Subject: no ids"))
    assert none.message_id is None and none.in_reply_to is None and none.references == ()


def test_long_references_keep_the_root_and_the_newest() -> None:
    ids = [f"<ref{i}@x>" for i in range(500)]
    mail = parse_email(simple("References: " + "\r\n ".join(ids)))
    assert len(mail.references) == 100
    assert mail.references[0] == "<ref0@x>"
    assert mail.references[-1] == "<ref499@x>"


def test_dates() -> None:
    def date(value: str) -> datetime | None:
        return parse_email(simple(f"Date: {value}")).date

    assert date("Tue, 5 Mar 2024 18:13:55 +0800") == datetime(2024, 3, 5, 10, 13, 55, tzinfo=UTC)
    unknown_zone = date("Tue, 5 Mar 2024 18:13:55 -0000")
    assert unknown_zone is not None and unknown_zone.tzinfo is not None
    assert date("yesterday, around noon") is None
    assert date("Tue, 99 Foo 2024 99:99:99 +9999") is None
    assert parse_email(simple("Subject: x")).date is None


def test_addresses() -> None:
    mail = parse_email(
        simple(
            "To: undisclosed-recipients:;",
            'Cc: "Doe, John" <John.Doe@Example.COM>, plain@example.com (Plain Person),'
            " <bracketed@example.com>",
            "Reply-To: Replies <replies@example.com>",
        )
    )
    assert mail.to == ()
    assert mail.cc == (
        Address("Doe, John", "john.doe@example.com"),
        Address("Plain Person", "plain@example.com"),
        Address(None, "bracketed@example.com"),
    )
    assert mail.reply_to == (Address("Replies", "replies@example.com"),)
    assert parse_email(raw("Subject: no sender", "", "x")).from_address is None


def test_subject_absent_or_with_control_characters() -> None:
    assert parse_email(raw("From: a@example.com", "", "x")).subject == ""
    assert parse_email(simple("Subject: a\x00b\x07c")).subject == "a b c"


# -- bodies ------------------------------------------------------------------------------------


def test_html_only_mail_becomes_text_and_is_sanitised() -> None:
    html = (
        "<html><head><style>body{color:red}</style><script>alert(1)</script></head><body>"
        '<p onclick="steal()">Hello <b>Wang</b> &amp; team,</p>'
        '<p>See <a href="javascript:alert(1)">this</a> and <a href="https://example.com/x">'
        "that</a>.</p>"
        '<img src="https://tracker.example/p.gif" onerror="alert(2)">'
        '<iframe src="https://evil.example"></iframe><form action="https://evil.example">'
        '<input name="password"></form><link rel="stylesheet" href="https://evil.example/a.css">'
        '<meta http-equiv="refresh" content="0;url=https://evil.example"><base href="https://e/">'
        '<div style="background:url(https://evil.example/bg.png)">tinted</div>'
        '<a href="vbscript:msgbox(1)">vb</a><img src="data:image/png;base64,AAAA">'
        "</body></html>"
    )
    mail = parse_email(
        raw(
            "From: a@example.com",
            "Content-Type: text/html; charset=utf-8",
            "",
            html,
        )
    )

    assert mail.text == "Hello Wang & team,\n\nSee this and that.\n\ntinted\nvb"
    clean = mail.html_sanitized
    assert clean is not None
    for banned in (
        "<script",
        "alert",
        "onclick",
        "onerror",
        "javascript:",
        "vbscript:",
        "<iframe",
        "<form",
        "<input",
        "<link",
        "<meta",
        "<base",
        "style",
        "data:",
        "url(",
    ):
        assert banned not in clean, banned
    assert '<a href="https://example.com/x" rel="noopener noreferrer nofollow">that</a>' in clean
    assert '<img src="https://tracker.example/p.gif">' in clean
    assert "Hello <b>Wang</b> &amp; team," in clean


def test_html_charset_from_meta_when_the_part_declares_none() -> None:
    html = '<html><head><meta charset="gbk"></head><body>订单号：123</body></html>'
    mail = parse_email(
        raw(
            b"From: a@example.com",
            b"Content-Type: text/html",
            b"Content-Transfer-Encoding: 8bit",
            b"",
            html.encode("gbk"),
        )
    )
    assert mail.text == "订单号：123"


def test_text_plain_preferred_to_html_and_parts_joined() -> None:
    msg = MIMEMultipart("mixed")
    alternative = MIMEMultipart("alternative")
    alternative.attach(MIMEText("plain version", "plain", "utf-8"))
    alternative.attach(MIMEText("<p>html version</p>", "html", "utf-8"))
    msg.attach(alternative)
    image = MIMEBase("image", "jpeg")
    image.set_payload(b"\xff\xd8\xff")
    msg.attach(image)
    msg.attach(MIMEText("after the picture", "plain", "utf-8"))
    msg["From"] = "a@example.com"

    mail = parse_email(msg.as_bytes())

    assert mail.text == "plain version\nafter the picture"
    assert mail.html_sanitized == "<p>html version</p>"
    (picture,) = mail.attachments
    assert picture.content_type == "image/jpeg"
    assert picture.filename is None
    assert picture.content == b"\xff\xd8\xff"


def test_blank_plain_part_falls_back_to_html() -> None:
    msg = MIMEMultipart("alternative")
    msg["From"] = "a@example.com"
    msg.attach(MIMEText(" \r\n", "plain", "utf-8"))
    msg.attach(MIMEText("<div>only here</div>", "html", "utf-8"))
    assert parse_email(msg.as_bytes()).text == "only here"


def test_text_attachment_is_not_body() -> None:
    msg = MIMEMultipart()
    msg["From"] = "a@example.com"
    msg.attach(MIMEText("the body", "plain", "utf-8"))
    log = MIMEText("log line", "plain", "utf-8")
    log.add_header("Content-Disposition", "attachment", filename="app.log")
    msg.attach(log)
    mail = parse_email(msg.as_bytes())
    assert mail.text == "the body"
    assert [(a.filename, a.content_type, a.content) for a in mail.attachments] == [
        ("app.log", "text/plain", b"log line")
    ]


def test_attached_mail_is_an_attachment() -> None:
    inner = MIMEText("forwarded body", "plain", "utf-8")
    inner["Subject"] = "inner"
    inner["Message-ID"] = "<inner@example.com>"
    msg = MIMEMultipart()
    msg["From"] = "a@example.com"
    msg.attach(MIMEText("see the forwarded mail", "plain", "utf-8"))
    wrapper = MIMEBase("message", "rfc822")
    wrapper.attach(inner)
    msg.attach(wrapper)

    mail = parse_email(msg.as_bytes())

    assert mail.text == "see the forwarded mail"
    (forwarded,) = mail.attachments
    assert forwarded.content_type == "message/rfc822"
    assert forwarded.content is not None
    inner_again = email.message_from_bytes(forwarded.content)
    assert inner_again["Message-ID"] == "<inner@example.com>"
    assert inner_again.get_payload(decode=True) == b"forwarded body"
    assert not mail.is_bounce and mail.bounce is None


def test_line_endings_are_normalised() -> None:
    mail = parse_email(simple("Subject: x", body="one\r\ntwo\r\n\r\nthree"))
    assert mail.text == "one\ntwo\n\nthree"


# -- hostile and broken mail -------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"", b"   \r\n\r\n", b"\x00\xff\xfe\x80 not a mail at all", b"\r\n\r\nbody without headers"],
)
def test_nothing_readable_raises_parse_error(data: bytes) -> None:
    with pytest.raises(EmailParseError):
        parse_email(data)


def test_garbage_after_headers_still_parses() -> None:
    noise = bytes(range(256)) * 64
    mail = parse_email(raw(b"Subject: noise", b"Content-Type: text/plain", b"") + noise)
    assert mail.subject == "noise"
    assert isinstance(mail.text, str) and mail.text


@pytest.mark.parametrize(
    "content_type",
    [
        "multipart/mixed",  # no boundary at all
        "multipart/mixed; boundary=NOT-THERE",  # a boundary the body never uses
        'multipart/alternative; boundary="',  # an unterminated parameter
        "multipart/mixed; boundary=XX; boundary=YY",
        "text/",
        "garbage",
        "text/plain; charset=",
    ],
)
def test_broken_mime_structure(content_type: str) -> None:
    mail = parse_email(
        simple(f"Content-Type: {content_type}", "Subject: broken", body="readable words")
    )
    assert mail.subject == "broken"
    assert "readable words" in mail.text


def test_truncated_multipart_keeps_what_arrived() -> None:
    mail = parse_email(
        raw(
            "From: a@example.com",
            "Content-Type: multipart/mixed; boundary=XX",
            "",
            "--XX",
            "Content-Type: text/plain",
            "",
            "first part",
            "--XX",
            "Content-Type: application/pdf",
            "Content-Transfer-Encoding: base64",
            "",
            "JVBERi0xLjQK!!!not-base64",
        )
    )
    assert mail.text == "first part"
    assert len(mail.attachments) == 1


@pytest.mark.parametrize("charset", ["x-unknown", "utf-9", "unknown-8bit", "zlib", "base64", ""])
def test_unknown_charset_names(charset: str) -> None:
    data = simple(
        f'Content-Type: text/plain; charset="{charset}"',
        "Content-Transfer-Encoding: 8bit",
        body="Grüße 您好",
    )
    message = email.message_from_bytes(data, policy=policy.default)
    if charset in ("x-unknown", "utf-9", "zlib", "base64"):
        with pytest.raises(LookupError):  # the stdlib's own get_content() gives up here
            message.get_content()

    assert parse_email(data).text == "Grüße 您好"


def test_undecodable_body_is_replaced_not_raised() -> None:
    mail = parse_email(
        raw(
            b"From: a@example.com",
            b"Content-Type: text/plain; charset=utf-8",
            b"Content-Transfer-Encoding: 8bit",
            b"",
            b"ok \xff\xfe\xfd end",
        )
    )
    assert mail.text.startswith("ok ") and mail.text.endswith(" end")
    assert "\ufffd" in mail.text


def test_bad_transfer_encodings() -> None:
    for encoding in ("base64", "quoted-printable", "x-uuencode", "x-made-up"):
        mail = parse_email(
            simple(f"Content-Transfer-Encoding: {encoding}", body="=ZZ%%%begin 644 x\r\n!!!")
        )
        assert isinstance(mail.text, str)


def test_a_part_that_breaks_does_not_lose_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    msg = MIMEMultipart()
    msg["From"] = "a@example.com"
    msg.attach(MIMEText("good text", "plain", "utf-8"))
    msg.attach(MIMEApplication(b"cursed", "octet-stream"))
    data = msg.as_bytes()
    original = Message.get_payload

    def get_payload(self: Message, *args: object, **kwargs: object) -> object:
        if self.get_content_type() == "application/octet-stream":
            raise RuntimeError("boom")
        return original(self, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(Message, "get_payload", get_payload)

    assert parse_email(data).text == "good text"


def test_huge_attachment_is_metadata_only() -> None:
    twenty_mb = 20 * 1024 * 1024
    msg = MIMEMultipart()
    msg["From"] = "a@example.com"
    msg.attach(MIMEText("see attachment", "plain", "utf-8"))
    big = MIMEApplication(b"\x00" * twenty_mb, "zip")
    big.add_header("Content-Disposition", "attachment", filename="backup.zip")
    msg.attach(big)
    small = MIMEApplication(b"small", "pdf")
    small.add_header("Content-Disposition", "attachment", filename="small.pdf")
    msg.attach(small)

    mail = parse_email(msg.as_bytes(), max_attachment_bytes=1024 * 1024)

    assert mail.text == "see attachment"
    huge, little = mail.attachments
    assert huge.filename == "backup.zip"
    assert huge.too_large and huge.content is None
    assert huge.size == twenty_mb
    assert not little.too_large and little.content == b"small"


def test_attachment_exactly_at_the_limit_is_kept() -> None:
    msg = MIMEMultipart()
    msg["From"] = "a@example.com"
    msg.attach(MIMEApplication(b"x" * 1000, "octet-stream"))
    msg.attach(MIMEApplication(b"x" * 1001, "octet-stream"))
    at, over = parse_email(msg.as_bytes(), max_attachment_bytes=1000).attachments
    assert (at.size, at.too_large, at.content is not None) == (1000, False, True)
    assert (over.size, over.too_large, over.content) == (1001, True, None)


def test_huge_text_body_is_capped() -> None:
    body = "长" * (MAX_TEXT_CHARS + 500_000)
    msg = MIMEText(body, "plain", "utf-8")
    msg["From"] = "a@example.com"
    mail = parse_email(msg.as_bytes())
    assert len(mail.text) == MAX_TEXT_CHARS
    assert set(mail.text) == {"长"}


def nested(depth: int) -> bytes:
    """A multipart nested `depth` deep, a text part at every level."""
    lines = ["From: a@example.com", "Subject: deep", "Content-Type: multipart/mixed; boundary=b0"]
    lines.append("")
    for level in range(depth):
        lines += [f"--b{level}", "Content-Type: text/plain", "", f"level {level}"]
        lines += [f"--b{level}", f"Content-Type: multipart/mixed; boundary=b{level + 1}", ""]
    lines += [f"--b{depth}", "Content-Type: text/plain", "", "bottom", f"--b{depth}--"]
    lines += [f"--b{level}--" for level in reversed(range(depth))]
    return raw(*lines)


def test_deep_nesting_is_cut_off() -> None:
    mail = parse_email(nested(100))
    assert mail.subject == "deep"
    assert mail.text.startswith("level 0\nlevel 1\n")
    assert "bottom" not in mail.text  # below the depth cap
    assert "level 19" in mail.text and "level 30" not in mail.text


def test_nesting_deeper_than_the_stdlib_parser_can_go() -> None:
    mail = parse_email(nested(1500))  # the stdlib parser recurses; it runs out of stack
    assert mail.subject == "deep"
    assert "level 0" in mail.text


@pytest.mark.parametrize(
    "header",
    [
        b"Content-Type: text/plain" + b"; a=b" * 200_000,  # the stdlib's parser is quadratic here
        b"Content-Transfer-Encoding: base64" + b"; a=b" * 200_000,
        b"From: " + b"a" * 1_000_000,
        b"Subject: " + b"=?utf-8?B?5Lit?= " * 60_000,
        b"References: " + b"<a@b> " * 200_000,
    ],
)
@pytest.mark.timeout(60)  # quadratic parsing of these takes many minutes: a hang, not a figure
def test_megabyte_headers_are_parsed(header: bytes) -> None:
    mail = parse_email(raw(b"Message-ID: <big@example.com>", header, b"", b"body"))
    assert mail.message_id == "<big@example.com>"


def test_many_parts_are_bounded() -> None:
    lines = ["From: a@example.com", "Content-Type: multipart/mixed; boundary=XX", ""]
    for n in range(3000):
        lines += ["--XX", "Content-Type: application/octet-stream", "", f"{n}"]
    lines.append("--XX--")
    mail = parse_email(raw(*lines))
    assert len(mail.attachments) < 1000


# -- automatic mail ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "automatic"),
    [
        ("Auto-Submitted: auto-replied", True),
        ("Auto-Submitted: auto-generated", True),
        ("Auto-Submitted: auto-notified; owner-email=x@example.com", True),
        ("Auto-Submitted: No", False),
        ("Precedence: bulk", True),
        ("Precedence: junk", True),
        ("Precedence: list", True),
        ("Precedence: first-class", False),
        ("X-Precedence: bulk", True),
        ("X-Autoreply: yes", True),
        ("X-Autorespond: Out of office", True),
        ("X-Auto-Response-Suppress: All", True),
        ("X-Auto-Response-Suppress: DR, OOF, AutoReply", True),
        ("X-Auto-Response-Suppress: DR, RN, NRN", False),
        ("X-Autogenerated: Reply", True),
        ("X-FC-MachineGenerated: true", True),
        ("Return-Path: <>", True),
        ("Return-Path: <wang.fang@example.com>", False),
        ("List-Id: <news.example.com>", False),
        ("List-Unsubscribe: <mailto:leave@example.com>", False),
    ],
)
def test_auto_submitted_headers(header: str, automatic: bool) -> None:
    assert parse_email(simple(header, "Subject: x")).auto_submitted is automatic


def test_list_mail_with_precedence_is_automatic() -> None:
    for list_header in ("List-Id: <news.example.com>", "List-Unsubscribe: <https://x/u>"):
        mail = parse_email(simple(list_header, "Precedence: first-class"))
        assert mail.auto_submitted


def test_ordinary_mail_is_not_automatic() -> None:
    mail = fixture("gmail_reply.eml")
    assert not mail.auto_submitted and not mail.is_bounce


# -- bounces -----------------------------------------------------------------------------------


def dsn(
    *,
    action: str = "failed",
    status: str = "5.1.1",
    returned: list[str] | None = None,
    extra_headers: tuple[str, ...] = (),
) -> bytes:
    lines = [
        "From: Mail Delivery Subsystem <MAILER-DAEMON@mx.example.net>",
        "To: support@example.com",
        "Subject: Delivery Status Notification",
        *extra_headers,
        'Content-Type: multipart/report; report-type="delivery-status"; boundary=RR',
        "",
        "--RR",
        "Content-Type: text/plain",
        "",
        "Your message could not be delivered.",
        "--RR",
        "Content-Type: message/delivery-status",
        "",
        "Reporting-MTA: dns; mx.example.net",
        "",
        "Final-Recipient: rfc822; <Someone@Example.net>",
        f"Action: {action}",
        f"Status: {status} (bad destination mailbox address)",
        "Diagnostic-Code: smtp; 550 5.1.1 <someone@example.net>: Recipient address",
        "    rejected: User unknown in virtual mailbox table",
        "",
    ]
    if returned is not None:
        lines += ["--RR", *returned]
    lines.append("--RR--")
    return raw(*lines)


def test_dsn_with_rfc822_headers_part() -> None:
    mail = parse_email(
        dsn(
            returned=[
                "Content-Type: text/rfc822-headers",
                "",
                "From: support@example.com",
                "Message-ID:",
                " <cc.headers-only@example.com>",
                "Subject: Re: hello",
            ]
        )
    )
    assert mail.is_bounce
    assert mail.bounce is not None
    assert mail.bounce.original_message_id == "<cc.headers-only@example.com>"
    assert mail.bounce.recipient == "someone@example.net"
    assert mail.bounce.status == "5.1.1"
    assert mail.bounce.diagnostic == (
        "550 5.1.1 <someone@example.net>: Recipient address rejected: "
        "User unknown in virtual mailbox table"
    )
    assert mail.text == "Your message could not be delivered."


def test_dsn_without_the_returned_mail_uses_the_thread_headers() -> None:
    in_reply_to = parse_email(dsn(extra_headers=("In-Reply-To: <cc.ours@example.com>",)))
    references = parse_email(dsn(extra_headers=("References: <cc.root@example.com> <cc.b@x>",)))
    assert in_reply_to.bounce is not None and references.bounce is not None
    assert in_reply_to.bounce.original_message_id == "<cc.ours@example.com>"
    assert references.bounce.original_message_id == "<cc.b@x>"
    assert parse_email(dsn()).bounce == parse_email(dsn()).bounce


def test_delay_report_is_not_a_bounce() -> None:
    mail = parse_email(dsn(action="delayed", status="4.4.7"))
    assert not mail.is_bounce
    assert mail.bounce is None
    assert mail.auto_submitted  # still a machine's mail: it opens no work and gets no answer


def test_mailer_daemon_bounce_without_a_report() -> None:
    # qmail and several webmails send a plain-text bounce
    mail = parse_email(
        raw(
            "From: MAILER-DAEMON@mail.example.org",
            "To: support@example.com",
            "Subject: failure notice",
            "",
            "Hi. This is the qmail-send program at mail.example.org.",
            "I'm afraid I wasn't able to deliver your message to the following addresses.",
            "This is a permanent error; I've given up. Sorry it didn't work out.",
            "",
            "<gone@example.org>:",
            "Remote host said: 550 5.1.1 mailbox unavailable",
            "",
            "--- Below this line is a copy of the message.",
            "",
            "Message-ID: <cc.plain@example.com>",
            "Subject: Re: your question",
        )
    )
    assert mail.is_bounce and mail.auto_submitted
    assert mail.bounce is not None
    assert mail.bounce.recipient == "gone@example.org"
    assert mail.bounce.status == "5.1.1"
    assert mail.bounce.diagnostic == "Remote host said: 550 5.1.1 mailbox unavailable"
    assert mail.bounce.original_message_id == "<cc.plain@example.com>"


def test_chinese_webmail_bounce() -> None:
    mail = parse_email(
        raw(
            "From: =?utf-8?B?" + b64("系统退信".encode()) + "?= <postmaster@qq.com>",
            "Subject: =?utf-8?B?" + b64("退信通知".encode()) + "?=",
            "In-Reply-To: <cc.qq@example.com>",
            "",
            "很抱歉，您的邮件无法投递到 <nobody@qq.com>。",
        )
    )
    assert mail.is_bounce
    assert mail.bounce is not None
    assert mail.bounce.original_message_id == "<cc.qq@example.com>"
    assert mail.bounce.recipient == "nobody@qq.com"


def test_postmaster_writing_normally_is_not_a_bounce() -> None:
    mail = parse_email(
        raw("From: postmaster@example.org", "Subject: Your question about our SPF record", "", "Hi")
    )
    assert not mail.is_bounce and mail.bounce is None


# -- quote folding -----------------------------------------------------------------------------


def test_fold_gmail_style_top_post_keeps_the_signature() -> None:
    text = (
        "Thanks, that works.\n\n-- \nWang Fang\n\n"
        "On Mon, 1 Jan 2024 at 10:00, Support <support@example.com> wrote:\n"
        "> Please try again.\n>\n> Regards"
    )
    assert fold_quotes(text) == "Thanks, that works.\n\n-- \nWang Fang"


def test_fold_inline_answers_are_kept() -> None:
    text = "Answers below.\n\n> Which model?\nThe X200.\n\n> Since when?\nLast week.\n"
    assert fold_quotes(text) == "Answers below.\n\nThe X200.\n\nLast week."


def test_fold_attribution_wrapped_over_lines() -> None:
    text = (
        "Yes.\n\nOn Mon, Jan 1, 2024 at 10:00 AM Example Support Team <\n"
        "support@example.com> wrote:\n\n> old"
    )
    assert fold_quotes(text) == "Yes."


@pytest.mark.parametrize(
    "text",
    [
        "好的，谢谢！\n\n在 2024年1月1日 星期一 10:00，客服 <support@example.com> 写道：\n"
        "> 请重试。",
        "好的，谢谢！\n\n2024年1月1日 10:00，客服 <support@example.com> 写道:\n\n> 请重试。",
        "好的，谢谢！\n\n------------------ 原始邮件 ------------------\n"
        '发件人: "客服"<support@example.com>;\n发送时间: 2024年1月1日(星期一) 上午10:00\n'
        '收件人: "王芳"<wang@example.com>;\n主题: 回复：订单\n\n请重试',
        "好的，谢谢！\n\n发件人: 客服 <support@example.com>\n发送时间: 2024年1月1日 10:00\n"
        "收件人: 王芳 <wang@example.com>\n主题: 回复: 订单\n\n请重试",
        "好的，谢谢！\n\n-------- 原始邮件 --------\n请重试",
        "好的，谢谢！\n\n-----邮件原件-----\n发件人: 客服\n请重试",
        "好的，谢谢！\n\n寄件者: 客服 <support@example.com>\n寄件日期: 2024年1月1日\n"
        "收件者: 王芳\n主旨: 訂單\n\n請重試",
    ],
)
def test_fold_chinese_quotes(text: str) -> None:
    assert fold_quotes(text) == "好的，谢谢！"


@pytest.mark.parametrize(
    "text",
    [
        "Yes please.\n\n________________________________\nFrom: Support <support@example.com>\n"
        "Sent: Monday, January 1, 2024 10:00 AM\nTo: Wang Fang <wang@example.com>\n"
        "Subject: RE: order\n\nPlease try again.",
        "Yes please.\n-----Original Message-----\nFrom: Support\nSent: Monday\nPlease try again.",
        "Yes please.\n\n-------- Original Message --------\nSubject: order\nPlease try again.",
        "Yes please.\n\nFrom: Support <s@example.com> Sent: Monday, January 1, 2024 10:00 AM "
        "To: Wang Fang <w@example.com> Subject: RE: order\n\nPlease try again.",
        "Yes please.\n\n*From:* Support <s@example.com>\n*Sent:* Monday\n*To:* Wang\n\nold",
        "Yes please.\n\nLe lun. 1 janv. 2024 à 10:00, Support <s@example.com> a écrit :\n> vieux",
        "Yes please.\n\nAm 01.01.2024 um 10:00 schrieb Support <s@example.com>:\n> alt",
        "Yes please.\n\nOn 1 Jan 2024, at 10:00, Support <s@example.com> wrote:\n\nPlease try.",
    ],
)
def test_fold_outlook_and_other_headers(text: str) -> None:
    assert fold_quotes(text) == "Yes please."


def test_fold_leaves_prose_that_only_looks_like_a_header() -> None:
    text = "On Monday I wrote: the charger is broken.\nFrom: my side, nothing changed."
    assert fold_quotes(text) == text


def test_fold_never_returns_empty() -> None:
    assert fold_quotes("> only\n> quoted") == "> only\n> quoted"
    assert fold_quotes("-----Original Message-----\nFrom: x") == (
        "-----Original Message-----\nFrom: x"
    )
    assert fold_quotes("") == ""


def test_fold_quotes_of_html_blockquotes() -> None:
    html = (
        "<div>New answer</div><div class=gmail_quote>On Mon, 1 Jan 2024 Support "
        "&lt;s@example.com&gt; wrote:<blockquote><p>Old</p><p>text</p></blockquote></div>"
    )
    assert fold_quotes(html_to_text(html)) == "New answer"


# -- HTML to text ------------------------------------------------------------------------------


def test_html_to_text() -> None:
    html = (
        "<html><head><title>t</title><style>p{}</style></head><body>"
        "<h1>Title</h1><p>Hello&nbsp;<b>Wang</b> &amp; &#20013;&#x6587;,</p>"
        "<p>line1<br>line2<br/>line3</p><script>alert(1)</script>"
        "<ul><li>one</li><li>two</li></ul>"
        "<table><tr><td>a</td><td>b</td></tr><tr><td>c</td><td>d</td></tr></table>"
        "<pre>keep   this\n  indent</pre>"
        "<div>   lots   of\n\n   space   </div><blockquote>quoted<blockquote>deeper</blockquote>"
        "</blockquote><p>end</p></body></html>"
    )
    assert html_to_text(html) == (
        "Title\n\nHello Wang & 中文,\n\nline1\nline2\nline3\n\n- one\n- two\n\na b\nc d\n\n"
        "keep   this\n  indent\nlots of space\n> quoted\n> > deeper\nend"
    )


@pytest.mark.timeout(60)  # the stdlib's HTMLParser alone takes many minutes on these
def test_html_to_text_of_hostile_html_finishes(  # html5ever (nh3) goes first
) -> None:
    for hostile in ("<a " * 100_000, "</" * 200_000, "<!--" + "x" * 1_000_000, "<" * 500_000):
        assert isinstance(html_to_text(hostile), str)


def test_html_to_text_of_broken_html() -> None:
    assert html_to_text("<p>unclosed <b>bold <i>both") == "unclosed bold both"
    assert html_to_text("</div></p>text<<>>&bogus;") == "text<<>>&bogus;"
    assert html_to_text("") == ""


# -- JSON --------------------------------------------------------------------------------------


def test_to_json_fields() -> None:
    mail = fixture("dsn_bounce.eml")
    data = mail.to_json()

    assert set(data) == {
        "from",
        "to",
        "cc",
        "subject",
        "date",
        "text",
        "text_folded",
        "html_sanitized",
        "message_id",
        "in_reply_to",
        "references",
        "attachments",
        "auto_submitted",
        "is_bounce",
        "bounce",
    }
    assert data["from"] == {
        "name": "Mail Delivery System",
        "address": "mailer-daemon@mx.example.com",
    }
    assert data["to"] == [{"name": None, "address": "support@example.com"}]
    assert data["date"] == "2024-03-09T12:00:03+01:00"
    assert data["attachments"][0] == {
        "filename": None,
        "content_type": "message/delivery-status",
        "size": mail.attachments[0].size,
    }
    assert data["bounce"] == {
        "original_message_id": "<cc.7f3d2c4e5b6a4c8d0e1f2a3b4c5d6e7f@example.com>",
        "recipient": "no.such.user@gmail.com",
        "status": "5.1.1",
        "diagnostic": mail.bounce.diagnostic if mail.bounce else None,
    }
    json.dumps(data)  # plain JSON types only


def test_to_json_of_a_minimal_mail() -> None:
    data = parse_email(raw("Subject: hi", "", "")).to_json()
    assert data["from"] is None
    assert data["references"] == []
    assert data["attachments"] == []
    assert data["date"] is None
    assert data["html_sanitized"] is None
    assert data["bounce"] is None
    assert data["text"] == ""


def test_attachment_dataclass_shape() -> None:
    attachment = fixture("gb2312_attachment.eml").attachments[0]
    assert attachment == Attachment(
        filename="发票 2024年3月.pdf",
        content_type="application/pdf",
        size=21,
        content=b"%PDF-1.4 fake invoice",
        too_large=False,
        content_id=None,
        inline=False,
    )
