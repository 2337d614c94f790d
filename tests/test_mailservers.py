"""The mail servers the e-mail tests stand on (tests/mailservers.py) do what those tests assume:
pymap takes APPENDs, pushes EXISTS during IDLE and changes UIDVALIDITY on restart; aiosmtpd
records mail, authenticates, and fails the transactions it is told to fail."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
from email.message import EmailMessage
from typing import Any

import aiosmtplib
import pytest

from tests.mailservers import (
    ImapServer,
    SmtpServer,
    imap_server,  # noqa: F401
    smtp_server,  # noqa: F401
)

FETCH_NEW = "(UID RFC822.SIZE BODY.PEEK[])"


def raw_mail(n: int = 1, subject: str = "Order 42 never arrived") -> bytes:
    return (
        f"From: Customer <customer@example.org>\r\n"
        f"To: support@example.com\r\n"
        f"Subject: {subject}\r\n"
        f"Message-ID: <mail-{n}@example.org>\r\n"
        f"Date: Tue, 02 Jul 2024 10:00:00 +0000\r\n"
        f"\r\n"
        f"Hello, mail number {n}.\r\n"
    ).encode()


def fetched(lines: list[bytes | bytearray]) -> dict[int, bytes]:
    """UID -> body from a UID FETCH answer, ignoring FETCH data without a body."""
    bodies = {}
    for head, body in itertools.pairwise(lines):
        found = re.match(rb"\d+ FETCH \(UID (\d+) RFC822\.SIZE (\d+) BODY\[\] \{\d+\}$", head)
        if found and isinstance(body, bytearray):
            assert int(found.group(2)) == len(body)
            bodies[int(found.group(1))] = bytes(body)
    return bodies


def outgoing(subject: str = "Re: Order 42") -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Support <support@example.com>"
    message["To"] = "customer@example.org"
    message["Subject"] = subject
    message.set_content("We are on it.")
    return message


# ---------------------------------------------------------------------------------------- IMAP


async def test_pymap_offers_idle_and_uidplus(
    imap_server: ImapServer,  # noqa: F811
) -> None:
    async with imap_server.connect() as client:
        # IMAP4 has no capability(); the protocol's re-reads them, cleaner than after LOGIN
        await client.protocol.capability()
        assert {"IDLE", "UIDPLUS", "MOVE"} <= client.protocol.capabilities


async def test_append_returns_the_uid_and_uid_fetch_sees_the_mail(
    imap_server: ImapServer,  # noqa: F811
) -> None:
    first = await imap_server.append(raw_mail(1))
    second = await imap_server.append(raw_mail(2))

    assert first == 101  # pymap's UIDs start at 101
    assert second == first + 1
    async with imap_server.connect() as client:
        response = await client.uid("fetch", f"{second}:*", FETCH_NEW)
    assert response.result == "OK"
    assert fetched(response.lines) == {second: raw_mail(2)}


async def test_uid_fetch_above_the_last_uid_returns_the_last_mail(
    imap_server: ImapServer,  # noqa: F811
) -> None:
    """RFC 3501: `n:*` with n above the last UID still names the last mail; a listener
    fetching `last_uid+1:*` must drop what it already has."""
    last = await imap_server.append(raw_mail(1))
    assert last is not None

    async with imap_server.connect() as client:
        response = await client.uid("fetch", f"{last + 1}:*", FETCH_NEW)
    assert fetched(response.lines) == {last: raw_mail(1)}


async def test_idle_pushes_exists_when_another_connection_appends(
    imap_server: ImapServer,  # noqa: F811
) -> None:
    async with imap_server.connect() as client:
        idle = await client.idle_start(timeout=30)
        await imap_server.append(raw_mail(1))

        pushed = await client.wait_server_push(timeout=5)
        client.idle_done()
        done = await asyncio.wait_for(idle, 5)

    assert b"1 EXISTS" in pushed
    assert done.result == "OK"


async def test_restart_changes_uidvalidity_and_keeps_the_mail(
    imap_server: ImapServer,  # noqa: F811
) -> None:
    await imap_server.append(raw_mail(1), flags="(\\Seen)")
    await imap_server.append(raw_mail(2))
    before = await imap_server.fetch_all()
    old_validity = await imap_server.uid_validity()

    new_validity = await imap_server.restart()

    assert new_validity != old_validity
    assert await imap_server.uid_validity() == new_validity
    after = await imap_server.fetch_all()
    assert [(m.raw, m.flags - {"\\Recent"}) for m in after] == [
        (raw_mail(1), {"\\Seen"}),
        (raw_mail(2), frozenset()),
    ]
    # the same UIDs now name the mails of another UIDVALIDITY
    assert [m.uid for m in after] == [m.uid for m in before] == [101, 102]
    assert [m.internal_date for m in after] == [m.internal_date for m in before]


async def test_restart_without_mail_empties_the_mailbox(
    imap_server: ImapServer,  # noqa: F811
) -> None:
    await imap_server.append(raw_mail(1))
    old_validity = await imap_server.uid_validity()

    assert await imap_server.restart(keep_mail=False) != old_validity
    assert await imap_server.fetch_all() == []
    assert await imap_server.append(raw_mail(2)) == 101


async def test_restart_says_bye_to_an_idling_client(
    imap_server: ImapServer,  # noqa: F811
) -> None:
    async with imap_server.connect() as client:
        idle = await client.idle_start(timeout=30)
        await imap_server.restart()

        pushed = await client.wait_server_push(timeout=5)
        idle.cancel()  # aioimaplib 2.0 never completes an IDLE the server dropped
        with contextlib.suppress(asyncio.CancelledError):
            await idle

    assert any(line.startswith(b"BYE") for line in pushed)
    assert await imap_server.append(raw_mail(1)) == 101  # same port, serving again


# ---------------------------------------------------------------------------------------- SMTP


async def send(server: SmtpServer, message: EmailMessage, **options: Any) -> None:
    await aiosmtplib.send(
        message, hostname=server.host, port=server.port, start_tls=False, **options
    )


async def test_smtp_records_a_mail(
    smtp_server: SmtpServer,  # noqa: F811
) -> None:
    await send(smtp_server, outgoing())

    [mail] = await smtp_server.wait_for(1)
    assert mail.mail_from == "support@example.com"
    assert mail.rcpt_tos == ("customer@example.org",)
    assert mail.message["Subject"] == "Re: Order 42"
    assert mail.message.get_content().strip() == "We are on it."
    assert b"We are on it." in mail.raw
    assert mail.auth_user is None


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
async def test_smtp_login_is_recorded(mechanism: str) -> None:
    async with SmtpServer(auth_mechanisms=(mechanism,), require_auth=True) as server:
        await send(server, outgoing(), username=server.user, password=server.password)

        [mail] = await server.wait_for(1)
    assert mail.auth_user == server.user


async def test_smtp_refuses_a_wrong_password_and_a_missing_login() -> None:
    async with SmtpServer(require_auth=True) as server:
        with pytest.raises(aiosmtplib.SMTPAuthenticationError) as refused:
            await send(server, outgoing(), username=server.user, password="wrong")
        assert refused.value.code == 535

        with pytest.raises(aiosmtplib.SMTPSenderRefused) as unauthenticated:
            await send(server, outgoing())
        assert unauthenticated.value.code == 530
    assert server.messages == []


async def test_smtp_fails_with_451_once_then_accepts(
    smtp_server: SmtpServer,  # noqa: F811
) -> None:
    smtp_server.fail_next(1, code=451, message="4.7.1 try later")

    with pytest.raises(aiosmtplib.SMTPResponseException) as failed:
        await send(smtp_server, outgoing())
    assert (failed.value.code, failed.value.message) == (451, "4.7.1 try later")
    assert smtp_server.messages == []

    await send(smtp_server, outgoing())
    assert len(await smtp_server.wait_for(1)) == 1
    assert [(r.stage, r.code) for r in smtp_server.rejections] == [("DATA", 451)]


async def test_smtp_fails_with_550(
    smtp_server: SmtpServer,  # noqa: F811
) -> None:
    smtp_server.fail_next(1, code=550, message="5.1.1 user unknown")

    with pytest.raises(aiosmtplib.SMTPResponseException) as failed:
        await send(smtp_server, outgoing())

    assert (failed.value.code, failed.value.message) == (550, "5.1.1 user unknown")
    assert smtp_server.messages == []


async def test_smtp_refuses_recipients_at_rcpt(
    smtp_server: SmtpServer,  # noqa: F811
) -> None:
    smtp_server.fail_next(1, code=550, message="5.1.1 user unknown", at="RCPT")

    with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
        await send(smtp_server, outgoing())

    [recipient] = refused.value.recipients
    assert (recipient.code, recipient.recipient) == (550, "customer@example.org")
    assert smtp_server.rejections[0].rcpt_tos == ("customer@example.org",)


async def test_smtp_drops_the_connection_then_accepts(
    smtp_server: SmtpServer,  # noqa: F811
) -> None:
    smtp_server.drop_next(1)

    with pytest.raises(aiosmtplib.SMTPServerDisconnected):
        await send(smtp_server, outgoing())
    await send(smtp_server, outgoing())

    assert len(await smtp_server.wait_for(1)) == 1
    assert [(r.stage, r.code) for r in smtp_server.rejections] == [("DATA", None)]


async def test_smtp_wait_for_fails_when_nothing_arrives(
    smtp_server: SmtpServer,  # noqa: F811
) -> None:
    with pytest.raises(AssertionError, match="0 of 1 mails"):
        await smtp_server.wait_for(1, within=0.05)
