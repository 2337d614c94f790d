"""The e-mail channel against a real IMAP server (pymap) and a real SMTP server (aiosmtpd):
intake that never loses or repeats a mail, threading, noise, quarantine, threaded replies."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from arq.worker import Worker

from channels.email.intake import Taken
from channels.email.listener import MailboxListener
from contactcenter.aio import cancel_and_wait
from contactcenter.conns import Conns
from contactcenter.domain.enums import Role
from contactcenter.domain.mailboxes import Mailbox
from contactcenter.services import mailboxes as mailbox_service
from contactcenter.settings import Settings
from contactcenter.store import mailboxes
from tests.helpers import bearer, eventually, make_agent
from tests.mailservers import ImapServer, SmtpServer

SUPPORT = "support@example.com"


def mail(
    subject: str = "My parcel is late",
    text: str = "Hello, where is my parcel?",
    *,
    sender: str = "Wang Fang <wang.fang@example.com>",
    message_id: str | None = None,
    in_reply_to: str | None = None,
    headers: dict[str, str] | None = None,
    charset: str = "utf-8",
) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = SUPPORT
    message["Subject"] = subject
    message["Message-ID"] = message_id or make_msgid(domain="customer.example")
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
        message["References"] = in_reply_to
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(text, charset=charset)
    return bytes(message)


async def make_mailbox(conns: Conns, imap: ImapServer, smtp: SmtpServer | None) -> Mailbox:
    values = {
        "name": "support",
        "address": SUPPORT,
        "display_name": "Example Support",
        "imap_host": imap.host,
        "imap_port": imap.port,
        "imap_security": "none",
        "imap_user": imap.user,
        "imap_password": imap.password,
        "smtp_host": smtp.host if smtp else None,
        "smtp_port": smtp.port if smtp else None,
        "smtp_security": "none",
        "smtp_user": smtp.user if smtp else None,
        "smtp_password": smtp.password if smtp else None,
    }
    row = await mailboxes.insert(
        conns.db, mailbox_service.seal_secrets(conns.settings.secret, values)
    )
    return mailbox_service.to_mailbox(row, conns.settings.secret)


@contextlib.asynccontextmanager
async def listening(conns: Conns, mailbox: Mailbox) -> AsyncIterator[MailboxListener]:
    """A real listener on the mailbox, caught up before the test goes on."""
    listener = MailboxListener(conns, mailbox)
    task = asyncio.create_task(listener.run())
    try:
        await asyncio.wait_for(listener.idle.wait(), 15)
        yield listener
    finally:
        await cancel_and_wait(task)


async def email_messages(db: asyncpg.Pool) -> list[asyncpg.Record]:
    return list(
        await db.fetch(
            "SELECT id, conversation_id, external_id, direction, body_text, status, is_automatic,"
            " error_code, error_message FROM messages WHERE channel = 'email' ORDER BY id"
        )
    )


def count_at_least(db: asyncpg.Pool, n: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return len(await email_messages(db)) >= n

    return check


async def test_a_mail_becomes_a_routed_conversation_and_the_answer_goes_back_threaded(
    conns: Conns,
    db: asyncpg.Pool,
    client: TestClient[Any, Any],
    running_worker: Worker,
    imap_server: ImapServer,
    smtp_server: SmtpServer,
) -> None:
    agent_id, token = await make_agent(db, name="Alice Chen")
    mailbox = await make_mailbox(conns, imap_server, smtp_server)
    first_id = make_msgid(domain="customer.example")
    async with listening(conns, mailbox):
        await imap_server.append(mail(message_id=first_id))

        async def routed() -> asyncpg.Record | None:
            return await db.fetchrow(
                "SELECT id, assignee_id, mailbox_id, subject FROM conversations"
                " WHERE assignee_id IS NOT NULL"
            )

        conversation = await eventually(routed)
        assert (conversation["assignee_id"], conversation["mailbox_id"]) == (agent_id, mailbox.id)
        assert conversation["subject"] == "My parcel is late"

        answer = await client.post(
            f"/v1/conversations/{conversation['id']}/replies",
            json={"text": "It left our warehouse today.\n\nBest regards,\nAlice"},
            headers=bearer(token),
        )
        assert answer.status == 202
        [sent] = await smtp_server.wait_for(1, within=10)
        reply = sent.message
        assert reply["To"] == "wang.fang@example.com"
        assert reply["From"] == "Example Support <support@example.com>"
        assert reply["In-Reply-To"] == first_id
        assert first_id in reply["References"]
        assert reply["Subject"].startswith("Re: My parcel is late [#")
        assert reply.get_body(("plain",)).get_content().startswith("It left our warehouse today.")
        assert "<br>" in reply.get_body(("html",)).get_content()
        stored_id = await db.fetchval(
            "SELECT external_id FROM messages WHERE id = $1", (await answer.json())["message_id"]
        )
        assert reply["Message-ID"] == stored_id

        # the customer answers that mail: the same conversation, by In-Reply-To
        await imap_server.append(mail("Re: My parcel is late", "Thank you!", in_reply_to=stored_id))
        await eventually(count_at_least(db, 3))
        rows = await email_messages(db)
        assert {r["conversation_id"] for r in rows} == {conversation["id"]}
        assert rows[-1]["body_text"].startswith("Thank you!")

        # and a mail that only carries our subject token joins it too
        await imap_server.append(mail(reply["Subject"], "One more thing", in_reply_to=None))
        await eventually(count_at_least(db, 4))
        assert {r["conversation_id"] for r in await email_messages(db)} == {conversation["id"]}


async def test_the_same_subject_alone_never_threads(
    conns: Conns,
    db: asyncpg.Pool,
    imap_server: ImapServer,
) -> None:
    mailbox = await make_mailbox(conns, imap_server, None)
    async with listening(conns, mailbox):
        await imap_server.append(mail("Invoice"))
        await imap_server.append(mail("Invoice", sender="someone.else@example.org"))
        await imap_server.append(mail("Re: Invoice [#1-00000000]"))  # a forged token
        await eventually(count_at_least(db, 3))
    assert len({r["conversation_id"] for r in await email_messages(db)}) == 3


class RecordingListener(MailboxListener):
    """A real listener that also keeps what each take gave, to see any mail taken twice."""

    def __init__(self, conns: Conns, mailbox: Mailbox) -> None:
        super().__init__(conns, mailbox)
        self.taken: list[Taken] = []

    async def _take_one(self, raw: bytes, uid: int, uidvalidity: int) -> Taken:
        taken = await super()._take_one(raw, uid, uidvalidity)
        self.taken.append(taken)
        return taken


async def test_a_mail_listen_process_killed_mid_stream_misses_nothing_and_takes_nothing_twice(
    conns: Conns,
    db: asyncpg.Pool,
    settings: Settings,
    imap_server: ImapServer,
) -> None:
    mailbox = await make_mailbox(conns, imap_server, None)
    async with listening(conns, mailbox):
        pass  # the mailbox is known from now on
    ids = [make_msgid(domain="customer.example") for _ in range(12)]
    await imap_server.append_all([mail(message_id=message_id) for message_id in ids[:8]])

    env = {
        **os.environ,
        "DATABASE_URL": settings.database,
        "REDIS_URL": settings.redis,
        "SECRET_KEY": settings.secret,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "contactcenter", "mail-listen", env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        await eventually(count_at_least(db, 3), within=30)
    finally:
        process.kill()  # SIGKILL: no goodbye, wherever it was
        await process.wait()
    stored_before = len(await email_messages(db))
    await imap_server.append_all([mail(message_id=message_id) for message_id in ids[8:]])
    # its lease would expire within LEASE_SECONDS; let it expire now
    await conns.redis.delete(f"cc:mail-lease:{mailbox.id}")

    listener = RecordingListener(conns, mailbox)
    task = asyncio.create_task(listener.run())
    try:
        await eventually(count_at_least(db, 12))
        await asyncio.wait_for(listener.idle.wait(), 15)
    finally:
        await cancel_and_wait(task)
    taken = [r["external_id"] for r in await email_messages(db)]
    assert sorted(taken) == sorted(ids)
    # the restart began exactly where the killed process had committed: nothing taken twice
    assert [t.result.duplicate for t in listener.taken if t.result] == [False] * (
        12 - stored_before
    )
    validity, last_uid = await mailboxes.checkpoint(db, mailbox.id)
    assert validity == await imap_server.uid_validity()
    assert last_uid == max(m.uid for m in await imap_server.fetch_all())


async def test_a_new_uidvalidity_reads_again_and_dedupes_by_message_id(
    conns: Conns,
    db: asyncpg.Pool,
    imap_server: ImapServer,
) -> None:
    mailbox = await make_mailbox(conns, imap_server, None)
    async with listening(conns, mailbox) as listener:
        for _ in range(3):
            await imap_server.append(mail())
        await eventually(count_at_least(db, 3))
        listener.idle.clear()
        new_validity = await imap_server.restart(keep_mail=True)  # renumbered, mails kept
        await imap_server.append(mail("After the move"))
        await eventually(count_at_least(db, 4), within=20)
        await asyncio.wait_for(listener.idle.wait(), 20)
    rows = await email_messages(db)
    assert len(rows) == 4 and len({r["external_id"] for r in rows}) == 4
    assert (await mailboxes.checkpoint(db, mailbox.id))[0] == new_validity


async def test_two_listeners_on_one_mailbox_take_each_mail_once(
    conns: Conns,
    db: asyncpg.Pool,
    imap_server: ImapServer,
) -> None:
    mailbox = await make_mailbox(conns, imap_server, None)
    async with listening(conns, mailbox):
        second = MailboxListener(conns, mailbox)  # as a second mail-listen process would
        other = asyncio.create_task(second.run())
        try:
            for _ in range(5):
                await imap_server.append(mail())
            await eventually(count_at_least(db, 5))
            assert not second.idle.is_set()  # it never held the lease
        finally:
            other.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await other
    rows = await email_messages(db)
    assert len(rows) == 5


async def test_a_mail_that_cannot_be_read_is_quarantined_and_the_mailbox_goes_on(
    conns: Conns,
    db: asyncpg.Pool,
    client: TestClient[Any, Any],
    imap_server: ImapServer,
) -> None:
    _, admin = await make_agent(db, role=Role.ADMIN)
    mailbox = await make_mailbox(conns, imap_server, None)
    garbage = b"\x00\x01\x02 this is not a mail at all \xff\xfe"
    async with listening(conns, mailbox):
        await imap_server.append(garbage)
        await imap_server.append(mail("After the bad one"))
        await eventually(count_at_least(db, 1))

        async def quarantined() -> list[Any]:
            answer = await client.get("/v1/admin/email/quarantine", headers=bearer(admin))
            items: list[Any] = (await answer.json())["items"]
            return items

        [item] = await eventually(quarantined)
    raw = await client.get(f"/v1/admin/email/quarantine/{item['id']}/raw", headers=bearer(admin))
    assert raw.status == 200
    assert await raw.read() == garbage


async def test_auto_replies_are_kept_but_open_no_work(
    conns: Conns,
    db: asyncpg.Pool,
    running_worker: Worker,
    imap_server: ImapServer,
) -> None:
    await make_agent(db)
    mailbox = await make_mailbox(conns, imap_server, None)
    async with listening(conns, mailbox):
        await imap_server.append(
            mail("Out of office", "I am away", headers={"Auto-Submitted": "auto-replied"})
        )
        await imap_server.append(mail("Newsletter", "News", headers={"Precedence": "bulk"}))
        await eventually(count_at_least(db, 2))
    rows = await db.fetch("SELECT status, assignee_id, route_requested_at FROM conversations")
    assert [(r["status"], r["assignee_id"], r["route_requested_at"]) for r in rows] == [
        ("closed", None, None),
        ("closed", None, None),
    ]
    assert all(r["is_automatic"] for r in await email_messages(db))


async def test_a_bounce_marks_the_reply_failed_with_the_servers_words(
    conns: Conns,
    db: asyncpg.Pool,
    client: TestClient[Any, Any],
    running_worker: Worker,
    imap_server: ImapServer,
    smtp_server: SmtpServer,
) -> None:
    _, token = await make_agent(db)
    mailbox = await make_mailbox(conns, imap_server, smtp_server)
    async with listening(conns, mailbox):
        await imap_server.append(mail())
        await eventually(count_at_least(db, 1))
        conversation_id = (await email_messages(db))[0]["conversation_id"]
        answer = await client.post(
            f"/v1/conversations/{conversation_id}/replies",
            json={"text": "Here you are"},
            headers=bearer(token),
        )
        [sent] = await smtp_server.wait_for(1, within=10)
        await imap_server.append(dsn(sent.message["Message-ID"]))

        async def failed() -> asyncpg.Record | None:
            return await db.fetchrow(
                "SELECT status, error_code, error_message FROM messages"
                " WHERE id = $1 AND status = 'failed'",
                (await answer.json())["message_id"],
            )

        row = await eventually(failed)
    assert row["error_code"] == "bounced"
    assert "user unknown" in row["error_message"]


def dsn(original_message_id: str) -> bytes:
    """A delivery status notification, shaped as Postfix sends them."""
    boundary = "DSN-boundary"
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.com>\r\n"
        f"To: {SUPPORT}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        f"Message-ID: {make_msgid(domain='mx.example.com')}\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"\r\n'
        "\r\n"
        f"--{boundary}\r\n"
        "Content-Type: text/plain\r\n\r\n"
        "I'm sorry to have to inform you that your message could not be delivered.\r\n"
        f"--{boundary}\r\n"
        "Content-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.com\r\n\r\n"
        "Final-Recipient: rfc822; wang.fang@example.com\r\n"
        "Action: failed\r\n"
        "Status: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 <wang.fang@example.com>: user unknown\r\n"
        f"--{boundary}\r\n"
        "Content-Type: text/rfc822-headers\r\n\r\n"
        f"From: {SUPPORT}\r\n"
        "To: wang.fang@example.com\r\n"
        f"Message-ID: {original_message_id}\r\n"
        "Subject: Re: My parcel is late\r\n"
        f"--{boundary}--\r\n"
    ).encode()


async def test_chinese_mail_round_trips(
    conns: Conns,
    db: asyncpg.Pool,
    client: TestClient[Any, Any],
    running_worker: Worker,
    imap_server: ImapServer,
    smtp_server: SmtpServer,
) -> None:
    _, token = await make_agent(db)
    mailbox = await make_mailbox(conns, imap_server, smtp_server)
    async with listening(conns, mailbox):
        await imap_server.append(
            mail(
                "订单查询",
                "您好，我的订单还没有到。",
                sender="王芳 <wang@example.cn>",
                charset="gb2312",
            )
        )
        await eventually(count_at_least(db, 1))
        [row] = await email_messages(db)
        assert row["body_text"].strip() == "您好，我的订单还没有到。"
        conversation = await db.fetchrow(
            "SELECT c.subject, ct.name FROM conversations c"
            " JOIN contacts ct ON ct.id = c.contact_id"
        )
        assert (conversation["subject"], conversation["name"]) == ("订单查询", "王芳")
        await client.post(
            f"/v1/conversations/{row['conversation_id']}/replies",
            json={"text": "王女士，您好！包裹今天已发出。"},
            headers=bearer(token),
        )
        [sent] = await smtp_server.wait_for(1, within=10)
    assert sent.message["Subject"].startswith("Re: 订单查询 [#")
    assert (
        sent.message.get_body(("plain",)).get_content().strip() == "王女士，您好！包裹今天已发出。"
    )


async def test_a_4xx_is_retried_and_a_5xx_fails_with_the_servers_words(
    conns: Conns,
    db: asyncpg.Pool,
    client: TestClient[Any, Any],
    running_worker: Worker,
    imap_server: ImapServer,
    smtp_server: SmtpServer,
) -> None:
    _, token = await make_agent(db, role=Role.SUPERVISOR)
    events = await client.ws_connect("/v1/events", headers=bearer(token))
    assert (await events.receive_json(timeout=5))["type"] == "hello"
    mailbox = await make_mailbox(conns, imap_server, smtp_server)
    async with listening(conns, mailbox):
        await imap_server.append(mail())
        await eventually(count_at_least(db, 1))
    conversation_id = (await email_messages(db))[0]["conversation_id"]

    smtp_server.fail_next(1, code=451, message="4.7.1 Greylisted, try again")
    first = await client.post(
        f"/v1/conversations/{conversation_id}/replies", json={"text": "One"}, headers=bearer(token)
    )
    await smtp_server.wait_for(1, within=15)  # accepted on the retry
    first_id = (await first.json())["message_id"]

    async def sent() -> bool:
        row = await db.fetchrow(
            "SELECT status, send_attempts FROM messages WHERE id = $1", first_id
        )
        return bool(row["status"] == "sent" and row["send_attempts"] == 2)

    await eventually(sent)

    smtp_server.fail_next(1, code=550, message="5.7.1 Relaying denied")
    second = await client.post(
        f"/v1/conversations/{conversation_id}/replies", json={"text": "Two"}, headers=bearer(token)
    )
    second_id = (await second.json())["message_id"]

    async def failed_event() -> dict[str, Any] | None:
        event: dict[str, Any] = await events.receive_json(timeout=10)
        data = event.get("data", {})
        ours = event["type"] == "message.status_changed" and data.get("message_id") == second_id
        return event if ours and data.get("status") == "failed" else None

    event = await eventually(failed_event)
    assert event["data"]["error_code"] == "smtp_550"
    assert "Relaying denied" in event["data"]["error"]
    row = await db.fetchrow("SELECT status, error_message FROM messages WHERE id = $1", second_id)
    assert row["status"] == "failed" and "5.7.1 Relaying denied" in row["error_message"]
    await events.close()


@pytest.fixture
def webhook_settings(settings: Settings) -> Settings:
    return settings.replace(email_webhook_secret="pipe-secret-0123456789")


async def test_the_raw_mail_webhook_stores_a_mail_once_behind_its_secret(
    aiohttp_client: Any, webhook_settings: Settings, db: asyncpg.Pool
) -> None:
    from contactcenter.api.app import create_app

    http = await aiohttp_client(create_app(webhook_settings))
    raw = mail("Piped", "From the MTA")
    refused = await http.post("/v1/webhooks/email/raw", data=raw)
    assert refused.status == 403
    assert await db.fetchval("SELECT count(*) FROM messages") == 0
    headers = {"X-Webhook-Secret": "pipe-secret-0123456789", "Content-Type": "message/rfc822"}
    first = await http.post("/v1/webhooks/email/raw", data=raw, headers=headers)
    again = await http.post("/v1/webhooks/email/raw", data=raw, headers=headers)
    assert (first.status, again.status) == (202, 202)
    assert (await again.json())["duplicate"] is True
    assert await db.fetchval("SELECT count(*) FROM messages") == 1


async def test_hostile_mails_are_set_aside_and_intake_goes_on(
    conns: Conns, db: asyncpg.Pool, imap_server: ImapServer
) -> None:
    mailbox = await make_mailbox(conns, imap_server, None)
    nul = mail("Zero", "before\x00after")
    giant_id = mail("Long id", message_id="<" + "x" * 8000 + "@example.com>")
    async with listening(conns, mailbox):
        await imap_server.append_all([nul, giant_id, mail("The next one")])
        await eventually(count_at_least(db, 3))
    rows = await email_messages(db)
    assert [r["body_text"].strip() for r in rows] == ["beforeafter", "Hello, where is my parcel?",
                                                      "Hello, where is my parcel?"]  # fmt: skip
    assert rows[1]["external_id"].startswith("<sha256.")  # the giant id was replaced


async def test_the_first_connection_starts_from_now(
    conns: Conns, db: asyncpg.Pool, imap_server: ImapServer
) -> None:
    await imap_server.append_all([mail("Old, answered elsewhere") for _ in range(3)])
    mailbox = await make_mailbox(conns, imap_server, None)
    async with listening(conns, mailbox):
        await imap_server.append(mail("New"))
        await eventually(count_at_least(db, 1))
    assert [r["body_text"].strip() for r in await email_messages(db)] == [
        "Hello, where is my parcel?"
    ]
    assert await db.fetchval("SELECT subject FROM conversations") == "New"


async def test_a_connection_that_dies_without_a_word_is_noticed_at_once(
    conns: Conns, db: asyncpg.Pool, imap_server: ImapServer
) -> None:
    mailbox = await make_mailbox(conns, imap_server, None)
    async with listening(conns, mailbox) as listener:
        listener.idle.clear()
        port = imap_server.port
        await imap_server.crash()  # no BYE: the IDLE's socket just dies
        await imap_server.start()
        assert imap_server.port == port
        await imap_server.append(mail("After the crash"))
        # well before the IDLE period (minutes) would have run out
        await eventually(count_at_least(db, 1), within=15)


async def test_a_stranger_who_knows_a_message_id_gets_a_conversation_of_their_own(
    conns: Conns,
    db: asyncpg.Pool,
    client: TestClient[Any, Any],
    running_worker: Worker,
    imap_server: ImapServer,
    smtp_server: SmtpServer,
) -> None:
    _, token = await make_agent(db)
    mailbox = await make_mailbox(conns, imap_server, smtp_server)
    customer_id = make_msgid(domain="customer.example")
    async with listening(conns, mailbox):
        await imap_server.append(mail(message_id=customer_id))  # cc'd to Mallory, say
        await eventually(count_at_least(db, 1))
        await imap_server.append(
            mail(
                "Re: My parcel is late",
                "Send the invoice to me instead",
                sender="Mallory <mallory@evil.example>",
                in_reply_to=customer_id,
                headers={"Reply-To": "drop@evil.example"},
            )
        )
        await eventually(count_at_least(db, 2))
        first, second = await email_messages(db)
        assert first["conversation_id"] != second["conversation_id"]

        # the customer's bounce and auto-reply do not change where answers go either
        await imap_server.append(
            mail(
                "Out of office",
                "Away",
                sender="wang.fang@example.com",
                in_reply_to=customer_id,
                headers={"Auto-Submitted": "auto-replied", "Reply-To": "autoresponder@example.com"},
            )
        )
        await eventually(count_at_least(db, 3))
        answer = await client.post(
            f"/v1/conversations/{first['conversation_id']}/replies",
            json={"text": "Here is your invoice"},
            headers=bearer(token),
        )
        assert answer.status == 202
        [sent] = await smtp_server.wait_for(1, within=10)
    assert sent.message["To"] == "wang.fang@example.com"
    assert sent.message["In-Reply-To"] == customer_id


async def test_mails_that_share_one_message_id_are_each_kept(
    conns: Conns, db: asyncpg.Pool, imap_server: ImapServer
) -> None:
    mailbox = await make_mailbox(conns, imap_server, None)
    fixed = "<form@shop.example>"  # a web form that always sends the same Message-ID
    async with listening(conns, mailbox):
        await imap_server.append_all(
            [mail("Form", "first", message_id=fixed), mail("Form", "second", message_id=fixed)]
        )
        copy_uid = await imap_server.append(mail("Form", "first", message_id=fixed))  # a copy
        assert copy_uid is not None

        async def past_the_copy() -> bool:
            return (await mailboxes.checkpoint(db, mailbox.id))[1] >= copy_uid

        await eventually(past_the_copy)
    assert [r["body_text"].strip() for r in await email_messages(db)] == ["first", "second"]
