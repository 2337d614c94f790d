"""Issue 8, item 2: an agent answers on another of the customer's channels (API.md:
POST /v1/conversations/{id}/replies {text, channel?}). The reply stays in the conversation and
goes out through the real channel (aiosmtpd for e-mail, the Twilio-compatible server for
SMS); the customer's answer to it comes back to the same conversation. A channel that cannot
reach the customer is refused at once, with nothing written."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from arq.worker import Worker

from contactcenter.api.app import create_app
from contactcenter.services import mailboxes as mailbox_service
from contactcenter.settings import Settings
from contactcenter.store import mailboxes as mailbox_store
from tests.helpers import (
    error_code,
    eventually,
    make_worker,
    stop_worker,
    table_digests,
)
from tests.mailservers import SmtpServer
from tests.test_sms_channel import CUSTOMER, Twilio, with_twilio
from tests.twilio_fake import TwilioFake

Client = TestClient[Any, Any]
WEBHOOK_SECRET = "pipe-secret-0123456789"
SUPPORT = "support@example.com"
CUSTOMER_MAIL = "wang.fang@example.com"


@pytest.fixture
def both_settings(settings: Settings, twilio_fake: TwilioFake) -> Settings:
    """SMS through the Twilio-compatible server, and the raw mail webhook."""
    return with_twilio(settings, twilio_fake).replace(email_webhook_secret=WEBHOOK_SECRET)


@pytest.fixture
async def app(aiohttp_client: Any, both_settings: Settings) -> Client:
    client: Client = await aiohttp_client(create_app(both_settings))
    return client


@pytest.fixture
async def worker(both_settings: Settings) -> AsyncIterator[Worker]:
    running = make_worker(both_settings)
    task = asyncio.create_task(running.async_run())
    yield running
    await stop_worker(running, task)


@pytest.fixture
async def mailbox(db: asyncpg.Pool, both_settings: Settings, smtp_server: SmtpServer) -> None:
    await mailbox_store.insert(
        db,
        mailbox_service.seal_secrets(
            both_settings.secret,
            {
                "name": "support",
                "address": SUPPORT,
                "smtp_host": smtp_server.host,
                "smtp_port": smtp_server.port,
                "smtp_security": "none",
            },
        ),
    )


async def add_identity(db: asyncpg.Pool, conversation_id: int, kind: str, value: str) -> None:
    await db.execute(
        "INSERT INTO contact_identities (contact_id, kind, value)"
        " SELECT contact_id, $2, $3 FROM conversations WHERE id = $1",
        conversation_id,
        kind,
        value,
    )


async def reply(app: Client, headers: dict[str, str], conversation_id: int, **body: Any) -> Any:
    response = await app.post(
        f"/v1/conversations/{conversation_id}/replies", json=body, headers=headers
    )
    return response.status, await response.json()


async def test_a_texting_customer_is_answered_by_mail_and_their_answer_comes_back(
    app: Client,
    worker: Worker,
    mailbox: None,
    supervisor: dict[str, str],
    db: asyncpg.Pool,
    smtp_server: SmtpServer,
    twilio_fake: TwilioFake,
) -> None:
    await Twilio(twilio_fake, app).text("Can you send me the invoice?")
    conversation_id = await db.fetchval("SELECT id FROM conversations")
    await add_identity(db, conversation_id, "email", CUSTOMER_MAIL)

    status, answer = await reply(
        app, supervisor, conversation_id, text="Here it is, attached.", channel="email"
    )
    assert status == 202, answer
    [mail] = await smtp_server.wait_for(1, within=15)
    assert mail.message["To"] == CUSTOMER_MAIL
    assert mail.message["Subject"].startswith("Your message to us [#")
    assert "Re:" not in mail.message["Subject"]
    assert mail.message.get_body(("plain",)).get_content().strip() == "Here it is, attached."

    async def sent() -> bool:
        row = await db.fetchrow(
            "SELECT channel, status, external_id FROM messages WHERE id = $1", answer["message_id"]
        )
        assert (row["channel"], row["external_id"]) == ("email", mail.message["Message-ID"])
        return bool(row["status"] == "sent")

    await eventually(sent)
    assert twilio_fake.messages == []  # nothing went by SMS

    # the customer answers the mail: it joins the same conversation
    answer_mail = EmailMessage()
    answer_mail["From"] = f"Wang Fang <{CUSTOMER_MAIL}>"
    answer_mail["To"] = SUPPORT
    answer_mail["Subject"] = "Re: " + mail.message["Subject"]
    answer_mail["Message-ID"] = make_msgid(domain="customer.example")
    answer_mail["In-Reply-To"] = mail.message["Message-ID"]
    answer_mail.set_content("Thank you!")
    piped = await app.post(
        "/v1/webhooks/email/raw",
        data=bytes(answer_mail),
        headers={"X-Webhook-Secret": WEBHOOK_SECRET, "Content-Type": "message/rfc822"},
    )
    assert piped.status == 202
    rows = await db.fetch(
        "SELECT conversation_id, channel, direction FROM messages WHERE NOT is_note ORDER BY id"
    )
    assert [(r["conversation_id"], r["channel"], r["direction"]) for r in rows] == [
        (conversation_id, "sms", "inbound"),
        (conversation_id, "email", "outbound"),
        (conversation_id, "email", "inbound"),
    ]
    assert await db.fetchval("SELECT count(*) FROM conversations") == 1


async def test_a_web_visitor_whose_number_we_know_is_answered_by_sms(
    app: Client,
    worker: Worker,
    supervisor: dict[str, str],
    db: asyncpg.Pool,
    twilio_fake: TwilioFake,
) -> None:
    """A number the visitor only typed is a claim, not an identity: it is never texted. One the
    customer is known by (from their texts, or a merge) is."""
    started = await app.post(
        "/v1/web/conversations",
        json={
            "text": "Call me back?",
            "client_message_id": "web-chat-start-0001",
            "phone": CUSTOMER,
        },
    )
    assert started.status == 201
    conversation_id = (await started.json())["conversation_id"]
    status, answer = await reply(app, supervisor, conversation_id, text="At 3?", channel="sms")
    assert (status, error_code(answer)) == (422, "no_recipient")
    await add_identity(db, conversation_id, "phone", CUSTOMER)
    status, answer = await reply(
        app, supervisor, conversation_id, text="We will, at 3 pm.", channel="sms"
    )
    assert status == 202, answer
    [sms] = await twilio_fake.wait_for(1, within=15)
    form = dict(sms.fields)
    assert (form["To"], form["Body"]) == (CUSTOMER, "We will, at 3 pm.")

    async def sent() -> bool:
        row = await db.fetchrow(
            "SELECT channel, status FROM messages WHERE id = $1", answer["message_id"]
        )
        return (row["channel"], row["status"]) == ("sms", "sent")

    await eventually(sent)


@pytest.mark.parametrize(
    ("channel", "code"),
    [("email", "no_recipient"), ("sms", "recipient_opted_out"), ("web", "channel_not_available")],
)
async def test_a_channel_that_cannot_reach_the_customer_is_refused_and_nothing_written(
    app: Client,
    supervisor: dict[str, str],
    db: asyncpg.Pool,
    twilio_fake: TwilioFake,
    channel: str,
    code: str,
) -> None:
    """A texting customer with no e-mail address; SMS to a number that texted STOP; web chat
    for a conversation that is not one."""
    await Twilio(twilio_fake, app).text("Hello")
    if channel == "sms":
        await Twilio(twilio_fake, app).text("STOP")
    conversation_id = await db.fetchval("SELECT id FROM conversations")
    before = await table_digests(db)
    status, answer = await reply(app, supervisor, conversation_id, text="Hi", channel=channel)
    assert (status, error_code(answer)) == (422, code)
    assert await table_digests(db) == before
