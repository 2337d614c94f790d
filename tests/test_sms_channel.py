"""The SMS channel: the real twilio client against a Twilio-compatible server on loopback, and
webhooks signed with the twilio package's own validator."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from arq.worker import Worker

from contactcenter.api.app import create_app
from contactcenter.conns import Conns
from contactcenter.domain.enums import Role
from contactcenter.services import mailboxes as mailbox_service
from contactcenter.settings import Settings
from contactcenter.store import mailboxes as mailbox_store
from tests.helpers import bearer, eventually, make_agent, make_worker, stop_worker
from tests.mailservers import SmtpServer
from tests.twilio_fake import TwilioFake, inbound_sms_form, post_signed, send_status, sign

PUBLIC = "https://support.example.com"
OUR_NUMBER = "+15005550006"
CUSTOMER = "+8613800138000"


def with_twilio(settings: Settings, twilio_fake: TwilioFake) -> Settings:
    """`settings` sending SMS from OUR_NUMBER through the fake, reached at PUBLIC."""
    return settings.replace(
        public_base_url=PUBLIC,
        twilio_account_sid=twilio_fake.account_sid,
        twilio_auth_token=twilio_fake.auth_token,
        twilio_from_number=OUR_NUMBER,
        twilio_api_base=twilio_fake.url,
    )


@pytest.fixture
def sms_settings(settings: Settings, twilio_fake: TwilioFake) -> Settings:
    return with_twilio(settings, twilio_fake)


@pytest.fixture
async def app_client(aiohttp_client: Any, sms_settings: Settings) -> TestClient[Any, Any]:
    client: TestClient[Any, Any] = await aiohttp_client(create_app(sms_settings))
    return client


@pytest.fixture
async def sms_worker(sms_settings: Settings) -> AsyncIterator[Worker]:
    worker = make_worker(sms_settings)
    task = asyncio.create_task(worker.async_run())
    yield worker
    await stop_worker(worker, task)


class Twilio:
    """Twilio's side of the webhooks, for one test."""

    def __init__(self, fake: TwilioFake, app: TestClient[Any, Any]) -> None:
        self.fake = fake
        self.app = app

    def _to_app(self, path: str) -> str:
        return str(self.app.make_url(path))

    async def text(self, body: str, *, sender: str = CUSTOMER, **form: Any) -> Any:
        fields = inbound_sms_form(
            from_=sender, to=OUR_NUMBER, body=body, account_sid=self.fake.account_sid, **form
        )
        return await post_signed(
            PUBLIC + "/v1/webhooks/twilio/sms",
            fields,
            auth_token=self.fake.auth_token,
            post_to=self._to_app("/v1/webhooks/twilio/sms"),
        ), fields

    async def status(self, sid: str, status: str, **extra: Any) -> Any:
        return await send_status(
            PUBLIC + "/v1/webhooks/twilio/status",
            sid,
            status,
            account_sid=self.fake.account_sid,
            auth_token=self.fake.auth_token,
            post_to=self._to_app("/v1/webhooks/twilio/status"),
            **extra,
        )


@pytest.fixture
def twilio(twilio_fake: TwilioFake, app_client: TestClient[Any, Any]) -> Twilio:
    return Twilio(twilio_fake, app_client)


async def sms_rows(db: asyncpg.Pool) -> list[asyncpg.Record]:
    return list(
        await db.fetch(
            "SELECT id, conversation_id, direction, body_text, status, external_id, segments,"
            " error_code, is_automatic FROM messages WHERE channel = 'sms' ORDER BY id"
        )
    )


async def reply(app: TestClient[Any, Any], token: str, conversation_id: int, text: str) -> Any:
    return await app.post(
        f"/v1/conversations/{conversation_id}/replies", json={"text": text}, headers=bearer(token)
    )


async def test_a_text_is_routed_and_the_answer_goes_out_through_twilio(
    app_client: TestClient[Any, Any], twilio: Twilio, db: asyncpg.Pool, sms_worker: Worker
) -> None:
    agent_id, token = await make_agent(db)
    answer, _ = await twilio.text("我的快递还没到")
    assert answer.status == 200
    assert answer.content_type == "text/xml" and "<Response>" in answer.text

    async def routed() -> asyncpg.Record | None:
        return await db.fetchrow("SELECT id FROM conversations WHERE assignee_id = $1", agent_id)

    conversation = await eventually(routed)
    contact_phone = await db.fetchval("SELECT value FROM contact_identities WHERE kind = 'phone'")
    assert contact_phone == CUSTOMER

    sent = await reply(app_client, token, conversation["id"], "王女士您好，" + "包裹" * 33)
    assert sent.status == 202
    [request] = await twilio.fake.wait_for_sends(1, within=10)
    assert (request.form["To"], request.form["From"]) == (CUSTOMER, OUR_NUMBER)
    assert request.form["StatusCallback"].startswith(PUBLIC + "/v1/webhooks/twilio/status?m=")

    async def stored() -> asyncpg.Record | None:
        rows = [r for r in await sms_rows(db) if r["direction"] == "outbound"]
        return rows[0] if rows and rows[0]["status"] == "sent" else None

    row = await eventually(stored)
    assert row["external_id"] == request.sid
    assert row["segments"] == 2  # 71 Chinese characters: UCS-2, 67 per part

    # delivery reports arrive out of order: the status never moves back
    assert (await twilio.status(request.sid, "delivered")).status == 204
    assert (await twilio.status(request.sid, "sent")).status == 204
    assert (await twilio.status(request.sid, "failed", error_code=30007)).status == 204
    status = await db.fetchval("SELECT status FROM messages WHERE id = $1", row["id"])
    assert status == "delivered"


async def test_twilio_retries_and_replays_give_one_message(
    twilio: Twilio, db: asyncpg.Pool
) -> None:
    first, form = await twilio.text("Hello")
    again, _ = await twilio.text("Hello", message_sid=form["MessageSid"])
    assert (first.status, again.status) == (200, 200)
    assert len(await sms_rows(db)) == 1


@pytest.mark.parametrize("signature", ["", "bm90IGEgc2lnbmF0dXJl", "wrong-key"])
async def test_a_missing_or_wrong_signature_is_refused_and_writes_nothing(
    twilio: Twilio, db: asyncpg.Pool, signature: str
) -> None:
    form = inbound_sms_form(
        from_=CUSTOMER, to=OUR_NUMBER, body="Hi", account_sid=twilio.fake.account_sid
    )
    if signature == "wrong-key":
        signature = sign(PUBLIC + "/v1/webhooks/twilio/sms", form, "another-token")
    answer = await post_signed(
        PUBLIC + "/v1/webhooks/twilio/sms",
        form,
        auth_token=twilio.fake.auth_token,
        post_to=twilio._to_app("/v1/webhooks/twilio/sms"),
        signature=signature,
    )
    assert answer.status == 403
    assert await db.fetchval("SELECT count(*) FROM messages") == 0
    assert await db.fetchval("SELECT count(*) FROM contacts") == 0


async def test_a_signature_for_another_body_or_url_is_refused(
    twilio: Twilio, db: asyncpg.Pool
) -> None:
    form = inbound_sms_form(
        from_=CUSTOMER, to=OUR_NUMBER, body="Hi", account_sid=twilio.fake.account_sid
    )
    signed_for_other_body = sign(
        PUBLIC + "/v1/webhooks/twilio/sms", {**form, "Body": "Other"}, twilio.fake.auth_token
    )
    signed_for_other_url = sign("https://evil.example/hook", form, twilio.fake.auth_token)
    for signature in (signed_for_other_body, signed_for_other_url):
        answer = await post_signed(
            PUBLIC + "/v1/webhooks/twilio/sms",
            form,
            auth_token=twilio.fake.auth_token,
            post_to=twilio._to_app("/v1/webhooks/twilio/sms"),
            signature=signature,
        )
        assert answer.status == 403
    assert await db.fetchval("SELECT count(*) FROM messages") == 0


@pytest.mark.parametrize("stop_word", ["STOP", "退订", "TD"])
async def test_stop_is_honoured_and_start_opts_back_in(
    app_client: TestClient[Any, Any],
    twilio: Twilio,
    db: asyncpg.Pool,
    sms_worker: Worker,
    stop_word: str,
) -> None:
    _, token = await make_agent(db, role=Role.SUPERVISOR)
    await twilio.text("Where is my order?")
    conversation_id = await db.fetchval("SELECT id FROM conversations")
    await twilio.text(stop_word)

    refused = await reply(app_client, token, conversation_id, "It ships today")
    assert refused.status == 422
    assert (await refused.json())["error"]["code"] == "recipient_opted_out"
    ledger = await db.fetch("SELECT opted_out, source, detail FROM sms_consent_events")
    assert [(r["opted_out"], r["source"], r["detail"]) for r in ledger] == [
        (True, "keyword", stop_word)
    ]
    # the STOP is kept with the conversation, but opens no work
    assert [r["is_automatic"] for r in await sms_rows(db)] == [False, True]

    await twilio.text("START")
    allowed = await reply(app_client, token, conversation_id, "It ships today")
    assert allowed.status == 202
    await twilio.fake.wait_for_sends(1, within=10)
    assert (
        await db.fetchval("SELECT opted_out FROM sms_consent WHERE phone = $1", CUSTOMER) is False
    )


async def test_help_is_answered_with_the_help_text(twilio: Twilio, sms_settings: Settings) -> None:
    answer, _ = await twilio.text("HELP")
    assert answer.status == 200
    assert f"<Message>{sms_settings.sms_help_reply}</Message>" in answer.text


async def test_mms_media_are_kept_as_attachments(twilio: Twilio, db: asyncpg.Pool) -> None:
    media = [
        ("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1", "image/jpeg")
    ]
    await twilio.text("Photo of the damage", media=media)
    row = await db.fetchrow("SELECT content_type, url, content FROM attachments")
    assert (row["content_type"], row["url"], row["content"]) == ("image/jpeg", media[0][0], None)


async def test_a_429_is_retried_and_permanent_errors_fail_with_their_code(
    app_client: TestClient[Any, Any], twilio: Twilio, db: asyncpg.Pool, sms_worker: Worker
) -> None:
    _, token = await make_agent(db, role=Role.SUPERVISOR)
    await twilio.text("Hello")
    conversation_id = await db.fetchval("SELECT id FROM conversations")

    twilio.fake.fail_next(1, status=429)
    await reply(app_client, token, conversation_id, "First")
    await twilio.fake.wait_for(1, within=15)  # created on the retry

    twilio.fake.reject_next(1, code=21610, status=400)
    second = await reply(app_client, token, conversation_id, "Second")
    second_id = (await second.json())["message_id"]

    async def failed() -> asyncpg.Record | None:
        return await db.fetchrow(
            "SELECT status, error_code FROM messages WHERE id = $1 AND status = 'failed'",
            second_id,
        )

    row = await eventually(failed)
    assert row["error_code"] == "twilio_21610"
    # the carrier says the customer unsubscribed: the ledger knows it too
    assert await db.fetchval("SELECT opted_out FROM sms_consent WHERE phone = $1", CUSTOMER)


async def test_a_failed_sms_falls_back_to_email_when_enabled(
    aiohttp_client: Any,
    sms_settings: Settings,
    twilio_fake: TwilioFake,
    db: asyncpg.Pool,
    smtp_server: SmtpServer,
) -> None:
    settings = sms_settings.replace(sms_fallback_to_email=True)
    app = await aiohttp_client(create_app(settings))
    twilio = Twilio(twilio_fake, app)
    worker = make_worker(settings)
    task = asyncio.create_task(worker.async_run())
    try:
        conns = Conns(db=db, redis=worker.pool, settings=settings)
        row = await mailbox_store.insert(
            db,
            mailbox_service.seal_secrets(
                settings.secret,
                {
                    "name": "support",
                    "address": "support@example.com",
                    "smtp_host": smtp_server.host,
                    "smtp_port": smtp_server.port,
                    "smtp_security": "none",
                },
            ),
        )
        assert row is not None and conns is not None
        _, token = await make_agent(db, role=Role.SUPERVISOR)
        await twilio.text("Hello")
        conversation_id = await db.fetchval("SELECT id FROM conversations")
        contact_id = await db.fetchval("SELECT contact_id FROM conversations")
        await db.execute(
            "INSERT INTO contact_identities (contact_id, kind, value)"
            " VALUES ($1, 'email', 'wang.fang@example.com')",
            contact_id,
        )
        twilio_fake.reject_next(1, code=21211, status=400)
        sent = await reply(app, token, conversation_id, "Your parcel left today")
        sms_id = (await sent.json())["message_id"]
        [mail] = await smtp_server.wait_for(1, within=15)
        assert mail.message["To"] == "wang.fang@example.com"
        assert mail.message.get_body(("plain",)).get_content().strip() == "Your parcel left today"
        copy = await db.fetchrow(
            "SELECT channel, fallback_of FROM messages WHERE fallback_of IS NOT NULL"
        )
        assert (copy["channel"], copy["fallback_of"]) == ("email", sms_id)
    finally:
        await stop_worker(worker, task)


async def test_a_yes_from_a_customer_who_never_opted_out_is_just_a_yes(
    twilio: Twilio, db: asyncpg.Pool
) -> None:
    await twilio.text("Yes")
    [row] = await sms_rows(db)
    assert row["is_automatic"] is False
    assert await db.fetchval("SELECT count(*) FROM sms_consent_events") == 0
    assert await db.fetchval("SELECT route_requested_at IS NOT NULL FROM conversations")


async def test_a_report_that_outruns_the_send_still_finds_its_message(
    app_client: TestClient[Any, Any], twilio: Twilio, db: asyncpg.Pool, sms_worker: Worker
) -> None:
    _, token = await make_agent(db, role=Role.SUPERVISOR)
    await twilio.text("Hello")
    conversation_id = await db.fetchval("SELECT id FROM conversations")
    twilio.fake.stall_next(1)  # Twilio takes the message but its answer is slow
    sent = await reply(app_client, token, conversation_id, "On its way")
    message_id = (await sent.json())["message_id"]
    [request] = await twilio.fake.wait_for_sends(1, within=10)
    assert request.form["StatusCallback"].endswith(f"?m={message_id}")
    # the delivery report comes before our send has committed the SID
    report = asyncio.create_task(
        send_status(
            request.form["StatusCallback"],
            request.sid or "",
            "undelivered",
            error_code=30003,
            account_sid=twilio.fake.account_sid,
            auth_token=twilio.fake.auth_token,
            post_to=twilio._to_app(f"/v1/webhooks/twilio/status?m={message_id}"),
        )
    )
    twilio.fake.release()
    assert (await report).status == 204
    row = await db.fetchrow("SELECT status, error_code FROM messages WHERE id = $1", message_id)
    assert (row["status"], row["error_code"]) == ("undelivered", "twilio_30003")


async def test_another_accounts_token_cannot_report_on_our_messages(
    app_client: TestClient[Any, Any],
    twilio: Twilio,
    db: asyncpg.Pool,
    sms_settings: Settings,
    sms_worker: Worker,
) -> None:
    _, admin = await make_agent(db, role=Role.ADMIN)
    other_account, other_token = "AC" + "1" * 32, "other-account-token"
    created = await app_client.post(
        "/v1/admin/channels/sms",
        json={
            "name": "other",
            "account_sid": other_account,
            "auth_token": other_token,
            "from_number": "+14155552671",
        },
        headers=bearer(admin),
    )
    assert created.status == 201
    await twilio.text("Hello")
    conversation_id = await db.fetchval("SELECT id FROM conversations")
    sent = await reply(app_client, admin, conversation_id, "Hi there")
    [request] = await twilio.fake.wait_for(1, within=10)

    async def stored() -> bool:
        status = await db.fetchval(
            "SELECT status FROM messages WHERE id = $1", (await sent.json())["message_id"]
        )
        return bool(status == "sent")

    await eventually(stored)
    forged = await send_status(
        PUBLIC + "/v1/webhooks/twilio/status",
        request.sid or "",
        "failed",
        error_code=30008,
        account_sid=other_account,
        auth_token=other_token,
        post_to=twilio._to_app("/v1/webhooks/twilio/status"),
    )
    assert forged.status == 204  # a valid request of account B, about nothing of B's
    status = await db.fetchval(
        "SELECT status FROM messages WHERE id = $1", (await sent.json())["message_id"]
    )
    assert status == "sent"


async def test_hostile_webhooks_get_a_4xx_never_a_500(
    twilio: Twilio, app_client: TestClient[Any, Any], db: asyncpg.Pool
) -> None:
    path = "/v1/webhooks/twilio/sms"
    as_json = await app_client.post(path, json={"From": CUSTOMER})
    assert as_json.status == 415
    nul_account = await app_client.post(
        path, data={"AccountSid": "AC\x00", "From": CUSTOMER, "Body": "x"}
    )
    assert nul_account.status == 403
    answer, _ = await twilio.text("Photo", num_media=9 * 10**20, extra=[("MediaUrl0", "x\x00")])
    assert answer.status == 200
    assert await db.fetchval("SELECT count(*) FROM attachments") == 0


async def test_texts_to_two_of_our_numbers_are_two_conversations(
    app_client: TestClient[Any, Any], twilio: Twilio, db: asyncpg.Pool
) -> None:
    _, admin = await make_agent(db, role=Role.ADMIN)
    sales = "+14155552671"
    await app_client.post(
        "/v1/admin/channels/sms",
        json={
            "name": "sales",
            "account_sid": twilio.fake.account_sid,
            "auth_token": twilio.fake.auth_token,
            "from_number": sales,
        },
        headers=bearer(admin),
    )
    await twilio.text("To support")
    fields = inbound_sms_form(
        from_=CUSTOMER, to=sales, body="To sales", account_sid=twilio.fake.account_sid
    )
    await post_signed(
        PUBLIC + "/v1/webhooks/twilio/sms",
        fields,
        auth_token=twilio.fake.auth_token,
        post_to=twilio._to_app("/v1/webhooks/twilio/sms"),
    )
    assert await db.fetchval("SELECT count(DISTINCT conversation_id) FROM messages") == 2
