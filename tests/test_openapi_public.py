"""The customer-facing routes answer what /v1/openapi.json says: web chat (the WebSocket's
frames too), the raw-mail and Twilio webhooks, the survey pages and the CSV import.

Most tests of these routes build their own app (other settings, a clock, import limits), so
the `client` fixture's check does not see them: here each route is called through an app with
the same check (tests/openapi_check.py), once for every status its operation documents.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from contactcenter.api import openapi
from contactcenter.api.app import create_app
from contactcenter.api.contact_import import IMPORT_LIMITS, ImportLimits
from contactcenter.api.middleware import AccessLogger
from contactcenter.clock import utc_now
from contactcenter.conns import Conns
from contactcenter.domain.enums import Role
from contactcenter.services.surveys import SURVEY_PATH, survey_token
from contactcenter.settings import Settings
from tests.helpers import bearer, make_agent, new_client_id
from tests.openapi_check import Document, OpenApiChecker
from tests.test_email_channel import mail
from tests.test_sms_channel import with_twilio
from tests.test_surveys import resolved_conversation, sent_follow_up
from tests.twilio_fake import (
    TwilioFake,
    inbound_sms_form,
    post_signed,
    send_status,
    status_callback_form,
)

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]
PUBLIC = "https://support.example.com"
OUR_NUMBER = "+15005550006"
CUSTOMER = "+8613800138000"
SECRET = "pipe-secret-0123456789"
CSV = {"Content-Type": "text/csv"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
async def checked(aiohttp_client: MakeClient) -> AsyncIterator[MakeClient]:
    """Make a client of the real app with these settings (and clock, import limits) whose
    every answer is checked against the document; what does not fit fails the test."""
    checkers: list[OpenApiChecker] = []

    async def make(
        settings: Settings, *, clock: Any = utc_now, limits: ImportLimits | None = None
    ) -> Client:
        app = create_app(settings, clock=clock)
        if limits is not None:
            app[IMPORT_LIMITS] = limits
        checker = OpenApiChecker()
        app.middlewares.insert(0, checker.middleware)
        checkers.append(checker)
        client: Client = await aiohttp_client(app, server_kwargs={"access_log_class": AccessLogger})
        return client

    yield make
    problems = [problem for checker in checkers for problem in checker.problems]
    assert not problems, "answers that do not fit /v1/openapi.json:\n" + "\n".join(problems)
    assert all(checker.checked for checker in checkers)


def schema_errors(app: web.Application, model: str, value: Any) -> list[str]:
    document = Document(openapi.build(app))
    validator = document.validator({"$ref": openapi.REF_TEMPLATE.format(model=model)})
    return [error.message for error in validator.iter_errors(value)]


# --- web chat --------------------------------------------------------------------------------


async def test_web_chat_answers_what_the_document_says(
    checked: MakeClient, settings: Settings, db: asyncpg.Pool
) -> None:
    client = await checked(settings)
    body = {"text": "Hello", "client_message_id": new_client_id(), "name": "Wang Fang"}
    first = await client.post("/v1/web/conversations", json=body)
    again = await client.post("/v1/web/conversations", json=body)
    assert (first.status, again.status) == (201, 200)
    started = await first.json()
    conversation_id, token = started["conversation_id"], started["visitor_token"]
    messages = f"/v1/web/conversations/{conversation_id}/messages"
    written = {"text": "Are you there?", "client_message_id": new_client_id()}
    posted = await client.post(messages, json=written, headers=bearer(token))
    repeated = await client.post(messages, json=written, headers=bearer(token))
    assert (posted.status, repeated.status) == (201, 200)
    assert (await client.post(messages, json=written)).status == 401

    # an agent's reply, and enough messages for a second page
    agent_id, _ = await make_agent(db, name="Li Lei", role=Role.AGENT)
    await db.execute(
        "INSERT INTO messages (conversation_id, direction, channel, author_agent_id, body_text,"
        " status) VALUES ($1, 'outbound', 'web', $2, 'Yes, how can I help?', 'sent')",
        conversation_id,
        agent_id,
    )
    await db.execute(
        "INSERT INTO messages (conversation_id, direction, channel, body_text, status)"
        " SELECT $1, 'inbound', 'web', 'more ' || n, 'received' FROM generate_series(1, 100) n",
        conversation_id,
    )
    page = await client.get(messages, headers=bearer(token))
    assert page.status == 200
    history = await page.json()
    assert len(history["items"]) == 100 and history["next_cursor"] is not None
    assert {m["author_name"] for m in history["items"]} == {None, "Li Lei"}
    rest = await client.get(
        messages, params={"after": history["next_cursor"]}, headers=bearer(token)
    )
    assert rest.status == 200
    assert (await rest.json())["next_cursor"] is None

    # the socket replays the reply since ?after=, as {"type": "message", "message": ...}
    socket = await client.ws_connect(
        f"/v1/web/conversations/{conversation_id}/ws", params={"token": token, "after": "0"}
    )
    frame = await socket.receive_json(timeout=10)
    await socket.close()
    assert frame["type"] == "message" and set(frame) == {"type", "message"}
    assert frame["message"]["author_name"] == "Li Lei"
    assert schema_errors(client.app, "VisitorMessage", frame["message"]) == []


# --- the raw-mail webhook --------------------------------------------------------------------


async def test_the_raw_mail_webhook_answers_what_the_document_says(
    checked: MakeClient, settings: Settings
) -> None:
    disabled = await checked(settings)
    assert (await disabled.post("/v1/webhooks/email/raw", data=mail())).status == 404
    client = await checked(settings.replace(email_webhook_secret=SECRET))
    headers = {"X-Webhook-Secret": SECRET, "Content-Type": "message/rfc822"}
    raw = mail("Piped", "From the MTA")
    stored = await client.post("/v1/webhooks/email/raw", data=raw, headers=headers)
    again = await client.post("/v1/webhooks/email/raw", data=raw, headers=headers)
    assert (stored.status, again.status) == (202, 202)
    assert [(await stored.json())["duplicate"], (await again.json())["duplicate"]] == [
        False,
        True,
    ]
    garbage = b"\x00\x01\x02 this is not a mail at all \xff\xfe"
    quarantined = await client.post("/v1/webhooks/email/raw", data=garbage, headers=headers)
    assert quarantined.status == 202
    assert set(await quarantined.json()) == {"quarantine_id"}
    wrong = {**headers, "X-Webhook-Secret": "not-the-secret"}
    assert (await client.post("/v1/webhooks/email/raw", data=raw, headers=wrong)).status == 403
    assert (await client.post("/v1/webhooks/email/raw", data=b" ", headers=headers)).status == 400


# --- Twilio's webhooks -----------------------------------------------------------------------


@pytest.fixture
def sms_settings(settings: Settings, twilio_fake: TwilioFake) -> Settings:
    return with_twilio(settings, twilio_fake)


async def test_twilios_webhooks_answer_what_the_document_says(
    checked: MakeClient, sms_settings: Settings, twilio_fake: TwilioFake, db: asyncpg.Pool
) -> None:
    client = await checked(sms_settings)
    sms, status = "/v1/webhooks/twilio/sms", "/v1/webhooks/twilio/status"

    async def text(body: str, **extra: Any) -> Any:
        form = inbound_sms_form(
            from_=CUSTOMER, to=OUR_NUMBER, body=body, account_sid=twilio_fake.account_sid, **extra
        )
        return await post_signed(
            PUBLIC + sms,
            form,
            auth_token=twilio_fake.auth_token,
            post_to=str(client.make_url(sms)),
        )

    plain = await text("Where is my parcel?", media=[("https://media.example/1", "image/png")])
    helped = await text("HELP")
    assert (plain.status, plain.content_type) == (200, "text/xml")
    assert plain.text.endswith("<Response></Response>")
    assert (helped.status, helped.content_type) == (200, "text/xml")
    assert "<Message>" in helped.text
    unsigned = await client.post(sms, data={"AccountSid": twilio_fake.account_sid}, headers=FORM)
    assert unsigned.status == 403

    # a status callback for a reply of ours, by our id (?m=) and Twilio's
    message_sid = "SM" + "0" * 32
    message_id = await db.fetchval(
        "INSERT INTO messages (conversation_id, direction, channel, external_id, body_text,"
        " status) SELECT conversation_id, 'outbound', 'sms', $1, 'On its way', 'queued'"
        " FROM messages WHERE channel = 'sms' LIMIT 1 RETURNING id",
        message_sid,
    )
    reported = await send_status(
        f"{PUBLIC}{status}?m={message_id}",
        message_sid,
        "delivered",
        account_sid=twilio_fake.account_sid,
        auth_token=twilio_fake.auth_token,
        post_to=str(client.make_url(f"{status}?m={message_id}")),
    )
    assert (reported.status, reported.text) == (204, "")
    assert await db.fetchval("SELECT status FROM messages WHERE id = $1", message_id) == (
        "delivered"
    )


async def test_the_twilio_forms_documented_are_what_twilio_sends(
    settings: Settings, twilio_fake: TwilioFake
) -> None:
    """The form schemas name the fields Twilio sends (as the fake sends them: urlencoded
    strings, NumMedia a number) and allow the ones we do not read."""
    app = create_app(settings)
    media = [("https://media.example/1", "image/png"), ("https://media.example/2", "text/vcard")]
    inbound = inbound_sms_form(
        from_=CUSTOMER,
        to=OUR_NUMBER,
        body="Hello",
        account_sid=twilio_fake.account_sid,
        media=media,
        messaging_service_sid="MG" + "1" * 32,
    )
    assert schema_errors(app, "InboundSmsForm", inbound | {"NumMedia": len(media)}) == []
    assert schema_errors(app, "InboundSmsForm", {"From": CUSTOMER}) != []
    callback = status_callback_form(
        "SM" + "2" * 32, "undelivered", account_sid=twilio_fake.account_sid, error_code=30003
    )
    assert schema_errors(app, "StatusCallbackForm", callback) == []


# --- the survey pages ------------------------------------------------------------------------


async def test_the_survey_pages_answer_what_the_document_says(
    checked: MakeClient, settings: Settings, conns: Conns, db: asyncpg.Pool
) -> None:
    await db.execute(
        "UPDATE care_settings SET recovery_threshold = 2, recovery_priority = 9,"
        " survey_valid_days = 14, default_locale = 'en'"
    )
    client = await checked(settings)
    now = datetime.now(UTC)
    conversation_id, _ = await resolved_conversation(conns)
    fresh = await sent_follow_up(db, conversation_id, now)
    old = await sent_follow_up(db, conversation_id, now - timedelta(days=30), occasion="old")
    page = SURVEY_PATH + survey_token(settings, fresh)

    async def html(method: str, path: str, **kwargs: Any) -> int:
        response = await client.request(method, path, **kwargs)
        assert response.content_type == "text/html", await response.text()
        return response.status

    assert await html("GET", page) == 200
    assert await html("GET", SURVEY_PATH + "not-a-link") == 400
    assert await html("GET", SURVEY_PATH + survey_token(settings, 10**9)) == 404
    assert await html("GET", SURVEY_PATH + survey_token(settings, old)) == 410
    assert await html("POST", page, data="score=5", headers={"Content-Type": "text/plain"}) == 415
    assert await html("POST", page, data={"score": "6", "comment": "hm"}) == 422
    assert await html("POST", page, data={"score": "5", "comment": "Thank you"}) == 200
    assert await html("GET", page) == 409
    assert await html("POST", page, data={"score": "4"}) == 409


# --- the CSV import --------------------------------------------------------------------------


async def test_the_contact_import_answers_what_the_document_says(
    checked: MakeClient, settings: Settings, db: asyncpg.Pool
) -> None:
    _, token = await make_agent(db, role=Role.ADMIN)
    admin = {**CSV, **bearer(token)}
    client = await checked(settings, limits=ImportLimits(max_bytes=200))
    csv = b"email,phone,name\nwang.fang@example.com,13800138000,Wang Fang\nnot-an-address,,X\n"
    imported = await client.post(
        "/v1/admin/contacts/import", params={"region": "cn"}, data=csv, headers=admin
    )
    assert imported.status == 200
    report = await imported.json()
    assert (report["created"], report["error_count"], report["stopped_at_line"]) == (1, 1, None)
    assert report["errors"][0]["row"] == 3
    too_large = csv + b"".join(f"c{i}@example.com,,C {i}\n".encode() for i in range(20))
    # too large by its Content-Length: refused whole; streamed: what came within the cap is in
    refused = await client.post("/v1/admin/contacts/import", data=too_large, headers=admin)
    assert refused.status == 413
    assert (await refused.json())["error"]["details"] == {"max_bytes": 200, "rows": 0}

    async def chunked() -> AsyncIterator[bytes]:
        yield too_large

    streamed = await client.post("/v1/admin/contacts/import", data=chunked(), headers=admin)
    assert streamed.status == 413
    details = (await streamed.json())["error"]["details"]
    assert details["stopped_at_line"] is not None and details["rows"] > 0
    del details["max_bytes"]
    assert schema_errors(client.app, "ImportReportView", details) == []
    not_csv = {**admin, "Content-Type": "application/octet-stream"}
    assert (await client.post("/v1/admin/contacts/import", data=csv, headers=not_csv)).status == (
        415
    )
