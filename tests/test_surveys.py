"""Follow-up surveys through the real app: the signed survey page (tampered and expired links
refused, the page in the customer's language with everything escaped and locked-down
headers, an answer recorded once), the SMS digit answer through Twilio's signed webhook (a
score that reopens nothing; any other text is work as before), and the recovery conversation
a low score opens for the team's least loaded supervisor (or in the team's queue).

A sent follow-up is a care_sends row inserted as the care sender leaves it (status sent,
channel, sent_at, the resolved conversation)."""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from itsdangerous import URLSafeTimedSerializer

from contactcenter.api.app import create_app
from contactcenter.api.middleware import loggable_path
from contactcenter.conns import Conns
from contactcenter.domain.assignment import AgentLoad
from contactcenter.domain.enums import Role
from contactcenter.services.satisfaction import pick_supervisor
from contactcenter.services.surveys import SURVEY_PATH, survey_token
from contactcenter.settings import Settings
from contactcenter.store import contacts as contacts_store
from contactcenter.store import conversations
from tests.helpers import bearer, eventually, make_agent, table_digests
from tests.routing_helpers import Clock, clocked, customer_writes, route_all, team
from tests.test_sms_channel import with_twilio
from tests.twilio_fake import TwilioFake, inbound_sms_form, post_signed

Client = TestClient[Any, Any]
DAY = timedelta(days=1)
PUBLIC = "https://support.example.com"
OUR_NUMBER = "+15005550006"
CUSTOMER = "+8613800138000"
SCORE_TABLES = ("satisfaction_scores", "conversations", "messages", "care_sends")


@pytest.fixture(autouse=True)
async def default_care_settings(db: asyncpg.Pool) -> None:
    """care_settings is not reset between tests: these tests run with its defaults."""
    await db.execute(
        "UPDATE care_settings SET recovery_threshold = 2, recovery_priority = 9,"
        " survey_valid_days = 14, default_locale = 'en'"
    )


@pytest.fixture
def clock() -> Clock:
    # the survey token is dated by the real clock when it is made: the app's starts there
    return Clock(datetime.now(UTC))


@pytest.fixture
async def app(
    aiohttp_client: Callable[..., Awaitable[Client]], settings: Settings, clock: Clock
) -> Client:
    return await aiohttp_client(create_app(settings, clock=clock))


@pytest.fixture
def timed(conns: Conns, clock: Clock) -> Conns:
    return clocked(conns, clock)


async def resolved_conversation(
    conns: Conns,
    *,
    team_id: int | None = None,
    agent_id: int | None = None,
    tier: int = 2,
    locale: str | None = None,
    name: str | None = "Wang Fang",
) -> tuple[int, int]:
    """A web conversation of a customer of `tier`, held by `agent_id` in `team_id` when it
    was resolved; (conversation id, contact id)."""
    conversation_id, contact_id = await customer_writes(conns, "my order is late", tier=tier)
    await conns.db.execute(
        "UPDATE contacts SET locale = $2, name = $3 WHERE id = $1", contact_id, locale, name
    )
    await conns.db.execute(
        "UPDATE conversations SET team_id = coalesce($2, (SELECT id FROM teams WHERE is_default)),"
        " assignee_id = $3, tier = $4, route_requested_at = NULL WHERE id = $1",
        conversation_id,
        team_id,
        agent_id,
        tier,
    )
    async with conns.db.acquire() as conn, conn.transaction():
        await conversations.set_status(conn, conversation_id, "resolved", None, conns.clock())
    return conversation_id, contact_id


async def sent_follow_up(
    db: asyncpg.Pool,
    conversation_id: int,
    sent_at: datetime,
    *,
    channel: str = "web",
    kind: str = "follow_up",
    status: str = "sent",
    occasion: str | None = None,
) -> int:
    """The care_sends row of a follow-up visit that went out at `sent_at` (occasion:
    "conversation:<id>" unless another is named, for a second visit of one conversation)."""
    return int(
        await db.fetchval(
            "INSERT INTO care_sends (kind, occasion, contact_id, conversation_id, channel,"
            " locale, due_at, status, sent_at)"
            " SELECT $2, coalesce($6, 'conversation:' || id), contact_id, id, $3, 'en', $4, $5,"
            " CASE WHEN $5 = 'sent' THEN $4::timestamptz END"
            " FROM conversations WHERE id = $1 RETURNING id",
            conversation_id,
            kind,
            channel,
            sent_at,
            status,
            occasion,
        )
    )


def base64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def survey_path(settings: Settings, care_send_id: int) -> str:
    return SURVEY_PATH + survey_token(settings, care_send_id)


def page_code(html: str) -> str:
    found = re.search(r'<body data-code="([a-z_]+)"', html)
    assert found, html
    return found.group(1)


async def answer(app: Client, path: str, score: str, comment: str = "") -> tuple[int, str]:
    response = await app.post(path, data={"score": score, "comment": comment})
    return response.status, await response.text()


async def scores(db: asyncpg.Pool) -> list[asyncpg.Record]:
    return list(await db.fetch("SELECT * FROM satisfaction_scores ORDER BY id"))


# --- the link --------------------------------------------------------------------------------


async def test_the_page_asks_for_a_score_and_keeps_the_answer_with_the_conversation(
    app: Client, timed: Conns, settings: Settings, db: asyncpg.Pool, clock: Clock
) -> None:
    support = await team(db, "Support")
    agent_id, _ = await make_agent(db, name="Li Lei", team="Support")
    conversation_id, contact_id = await resolved_conversation(
        timed, team_id=support, agent_id=agent_id, tier=2
    )
    care_send_id = await sent_follow_up(db, conversation_id, clock.now - DAY)
    path = survey_path(settings, care_send_id)

    page = await app.get(path)
    html = await page.text()
    assert page.status == 200 and page_code(html) == "survey"
    assert page.content_type == "text/html" and page.charset == "utf-8"
    assert page.headers["Content-Security-Policy"].startswith(
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"
    )
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert re.findall(r'name="score" value="(\d)"', html) == ["1", "2", "3", "4", "5"]
    assert f'<form method="post" action="{path}">' in html
    assert "Hello Wang Fang," in html and 'maxlength="2000"' in html
    assert "<script" not in html

    status, thanks = await answer(app, path, "4", "  Quick and kind.\r\nThank you  ")
    assert (status, page_code(thanks)) == (200, "thanks")
    assert "Thank you for your answer!" in thanks
    [score] = await scores(db)
    assert dict(score) == {
        "id": score["id"],
        "care_send_id": care_send_id,
        "conversation_id": conversation_id,
        "contact_id": contact_id,
        "agent_id": agent_id,
        "team_id": support,
        "tier": 2,
        "channel": "web",
        "score": 4,
        "comment": "Quick and kind.\nThank you",
        "answered_by": "link",
        "recovery_conversation_id": None,
        "created_at": clock.now,
    }
    # a good score opens nothing
    assert await db.fetchval("SELECT count(*) FROM conversations") == 1
    # the contact card shows it
    last = (await contact_card(timed, contact_id))["last_satisfaction"]
    # jsonb writes the instant as text (trailing zeros of the microseconds dropped)
    assert datetime.fromisoformat(last.pop("at")) == clock.now
    assert last == {
        "score": 4,
        "comment": "Quick and kind.\nThank you",
        "conversation_id": conversation_id,
    }


async def contact_card(conns: Conns, contact_id: int) -> dict[str, Any]:
    async with conns.db.acquire() as conn:
        card = await contacts_store.get_card(conn, contact_id)
    assert card is not None
    return card


def test_a_survey_links_token_never_reaches_the_access_log() -> None:
    assert loggable_path("/v1/care/survey/eyJzIjozfQ.awTL4g.sig") == "/v1/care/survey/..."
    assert loggable_path("/v1/inbox") == "/v1/inbox"


async def test_a_survey_takes_one_answer_and_the_second_is_refused(
    app: Client, timed: Conns, settings: Settings, db: asyncpg.Pool, clock: Clock
) -> None:
    conversation_id, _ = await resolved_conversation(timed)
    path = survey_path(settings, await sent_follow_up(db, conversation_id, clock.now - DAY))
    # two answers at once (two clicks, two tabs): the first wins, the other is refused
    answers = await asyncio.gather(answer(app, path, "5"), answer(app, path, "1"))
    assert sorted(status for status, _ in answers) == [200, 409]
    refused = next(html for status, html in answers if status == 409)
    assert page_code(refused) == "already_answered"
    [score] = await scores(db)
    # the winner's score, and no recovery for a refused 1
    winner = 5 if answers[0][0] == 200 else 1
    assert score["score"] == winner
    assert (score["recovery_conversation_id"] is None) == (winner == 5)

    again = await app.get(path)
    assert again.status == 409 and page_code(await again.text()) == "already_answered"
    before = await table_digests(db, SCORE_TABLES)
    status, html = await answer(app, path, "3")
    assert (status, page_code(html)) == (409, "already_answered")
    assert await table_digests(db, SCORE_TABLES) == before


@pytest.mark.parametrize(
    "tamper", ["other_id", "flip", "cut", "other_key", "other_salt", "garbage"]
)
async def test_a_tampered_link_is_refused_and_writes_nothing(
    app: Client,
    timed: Conns,
    settings: Settings,
    db: asyncpg.Pool,
    clock: Clock,
    tamper: str,
) -> None:
    conversation_id, _ = await resolved_conversation(timed)
    care_send_id = await sent_follow_up(db, conversation_id, clock.now - DAY)
    token = survey_token(settings, care_send_id)
    payload, signed_at, signature = token.split(".")
    middle = len(signature) // 2
    forged = {
        # another visit's id under this visit's signature
        "other_id": ".".join((base64url(b'{"s":%d}' % (care_send_id + 1)), signed_at, signature)),
        "flip": ".".join(
            (
                payload,
                signed_at,
                signature[:middle]
                + ("A" if signature[middle] != "A" else "B")
                + signature[middle + 1 :],
            )
        ),
        "cut": token[: len(token) // 2],
        "other_key": URLSafeTimedSerializer(
            "another-secret-key-0123456789abcdef", salt="contactcenter.care.survey.v1"
        ).dumps({"s": care_send_id}),
        "other_salt": URLSafeTimedSerializer(settings.secret, salt="visitor").dumps(
            {"s": care_send_id}
        ),
        "garbage": "not-a-token-at-all",
    }[tamper]
    before = await table_digests(db, SCORE_TABLES)
    page = await app.get(SURVEY_PATH + forged)
    assert page.status == 400 and page_code(await page.text()) == "invalid_link"
    assert page.headers["X-Frame-Options"] == "DENY"
    status, html = await answer(app, SURVEY_PATH + forged, "1", "hello")
    assert (status, page_code(html)) == (400, "invalid_link")
    assert await table_digests(db, SCORE_TABLES) == before


async def test_an_expired_link_is_refused(
    app: Client, timed: Conns, settings: Settings, db: asyncpg.Pool, clock: Clock
) -> None:
    conversation_id, _ = await resolved_conversation(timed)
    path = survey_path(settings, await sent_follow_up(db, conversation_id, clock.now))
    clock.advance((14 * DAY + timedelta(minutes=1)).total_seconds())
    page = await app.get(path)
    assert page.status == 410 and page_code(await page.text()) == "link_expired"
    status, html = await answer(app, path, "5")
    assert (status, page_code(html)) == (410, "link_expired")
    assert await scores(db) == []


async def test_a_visit_sent_too_long_ago_takes_no_answer_even_with_a_fresh_link(
    app: Client, timed: Conns, settings: Settings, db: asyncpg.Pool, clock: Clock
) -> None:
    conversation_id, _ = await resolved_conversation(timed, locale="zh-CN", name="王芳")
    path = survey_path(settings, await sent_follow_up(db, conversation_id, clock.now - 15 * DAY))
    page = await app.get(path)
    html = await page.text()
    assert page.status == 410 and page_code(html) == "link_expired"
    assert '<html lang="zh-CN">' in html and "此调查已结束" in html
    status, _ = await answer(app, path, "5")
    assert status == 410
    assert await scores(db) == []


@pytest.mark.parametrize(("kind", "status"), [("birthday", "sent"), ("follow_up", "scheduled")])
async def test_a_link_to_a_visit_that_asks_nothing_is_not_found(
    app: Client,
    timed: Conns,
    settings: Settings,
    db: asyncpg.Pool,
    clock: Clock,
    kind: str,
    status: str,
) -> None:
    conversation_id, _ = await resolved_conversation(timed)
    care_send_id = await sent_follow_up(
        db, conversation_id, clock.now - DAY, kind=kind, status=status
    )
    page = await app.get(survey_path(settings, care_send_id))
    assert page.status == 404 and page_code(await page.text()) == "survey_not_found"
    answered, _ = await answer(app, survey_path(settings, care_send_id), "5")
    assert answered == 404
    assert await scores(db) == []


async def test_the_page_speaks_chinese_and_escapes_what_it_shows(
    app: Client, timed: Conns, settings: Settings, db: asyncpg.Pool, clock: Clock
) -> None:
    conversation_id, _ = await resolved_conversation(
        timed, locale="zh-CN", name='<script>alert("x")</script>'
    )
    path = survey_path(settings, await sent_follow_up(db, conversation_id, clock.now - DAY))
    html = await (await app.get(path)).text()
    assert '<html lang="zh-CN">' in html and "满意度调查" in html and "非常满意" in html
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html

    status, thanks = await answer(app, path, "5", "很好")
    assert (status, page_code(thanks)) == (200, "thanks") and "感谢您的评价" in thanks


@pytest.mark.parametrize(
    ("form", "code"),
    [
        ({"score": "6"}, "invalid_score"),
        ({"score": "0"}, "invalid_score"),
        ({"score": "²"}, "invalid_score"),
        ({"comment": "no score"}, "invalid_score"),
        ({"score": "3", "comment": "x" * 2001}, "comment_too_long"),
    ],
)
async def test_a_bad_answer_gets_the_form_again_and_writes_nothing(
    app: Client,
    timed: Conns,
    settings: Settings,
    db: asyncpg.Pool,
    clock: Clock,
    form: dict[str, str],
    code: str,
) -> None:
    conversation_id, _ = await resolved_conversation(timed)
    path = survey_path(settings, await sent_follow_up(db, conversation_id, clock.now - DAY))
    before = await table_digests(db, SCORE_TABLES)
    response = await app.post(path, data=form)
    html = await response.text()
    assert response.status == 422 and page_code(html) == code
    assert 'name="score"' in html  # the form again, to answer properly
    assert await table_digests(db, SCORE_TABLES) == before
    # a comment of exactly 2000 characters is taken
    status, _ = await answer(app, path, "3", "y" * 2000)
    assert status == 200


async def test_an_answer_that_is_not_a_form_is_refused(
    app: Client, timed: Conns, settings: Settings, db: asyncpg.Pool, clock: Clock
) -> None:
    conversation_id, _ = await resolved_conversation(timed)
    path = survey_path(settings, await sent_follow_up(db, conversation_id, clock.now - DAY))
    response = await app.post(path, json={"score": 5})
    assert response.status == 415 and page_code(await response.text()) == "unsupported_media_type"
    assert await scores(db) == []


async def test_without_an_assignee_the_agent_who_last_wrote_is_credited(
    app: Client, timed: Conns, settings: Settings, db: asyncpg.Pool, clock: Clock
) -> None:
    first, _ = await make_agent(db, name="First")
    last, _ = await make_agent(db, name="Last")
    conversation_id, _ = await resolved_conversation(timed, agent_id=None)
    for author, is_note in ((first, False), (last, False), (first, True)):
        await db.execute(
            "INSERT INTO messages (conversation_id, direction, is_note, channel, author_agent_id,"
            " body_text, status) VALUES ($1, 'outbound', $2, 'web', $3, 'text', 'sent')",
            conversation_id,
            is_note,
            author,
        )
    path = survey_path(settings, await sent_follow_up(db, conversation_id, clock.now - DAY))
    status, _ = await answer(app, path, "4")
    assert status == 200
    [score] = await scores(db)
    assert score["agent_id"] == last  # a note is not a word to the customer


# --- recovery --------------------------------------------------------------------------------


async def test_a_low_score_opens_a_recovery_for_the_teams_least_loaded_supervisor(
    app: Client, timed: Conns, settings: Settings, db: asyncpg.Pool, clock: Clock
) -> None:
    support = await team(db, "Support")
    agent_id, _ = await make_agent(db, name="Agent", team="Support")
    busy, _ = await make_agent(db, name="Busy", role=Role.SUPERVISOR, team="Support")
    free, free_token = await make_agent(
        db, name="Free", role=Role.SUPERVISOR, team="Support", capacity=2
    )
    elsewhere, _ = await make_agent(db, name="Elsewhere", role=Role.SUPERVISOR)
    # Busy holds one conversation; Free none; Elsewhere supervises another team
    await resolved_conversation(timed, team_id=support, agent_id=None)
    await db.execute(
        "UPDATE conversations SET status = 'open', resolved_at = NULL, assignee_id = $1"
        " WHERE id = (SELECT min(id) FROM conversations)",
        busy,
    )
    conversation_id, contact_id = await resolved_conversation(
        timed, team_id=support, agent_id=agent_id, tier=1
    )
    care_send_id = await sent_follow_up(db, conversation_id, clock.now - DAY)
    events = await app.ws_connect("/v1/events", headers=bearer(free_token))
    assert (await events.receive_json(timeout=5))["type"] == "hello"

    status, thanks = await answer(
        app, survey_path(settings, care_send_id), "2", "Still broken <b>again</b>"
    )
    assert (status, page_code(thanks)) == (200, "thanks")
    assert "A supervisor will contact you shortly." in thanks

    [score] = await scores(db)
    recovery = await db.fetchrow(
        "SELECT * FROM conversations WHERE id = $1", score["recovery_conversation_id"]
    )
    assert recovery is not None
    original = await db.fetchrow("SELECT * FROM conversations WHERE id = $1", conversation_id)
    assert {
        "contact_id": recovery["contact_id"],
        "channel": recovery["channel"],
        "status": recovery["status"],
        "care_kind": recovery["care_kind"],
        "priority": recovery["priority"],
        "team_id": recovery["team_id"],
        "assignee_id": recovery["assignee_id"],
        "assigned_at": recovery["assigned_at"],
        "waiting_since": recovery["waiting_since"],
        "tags": recovery["tags"],
        "is_complaint": recovery["is_complaint"],
        "tier": recovery["tier"],
        "subject": recovery["subject"],
        "route_requested_at": recovery["route_requested_at"],
    } == {
        "contact_id": contact_id,
        "channel": "web",
        "status": "open",
        "care_kind": "recovery",
        "priority": 9,
        "team_id": support,
        "assignee_id": free,
        "assigned_at": clock.now,
        "waiting_since": None,
        "tags": ["recovery"],
        "is_complaint": True,
        "tier": 1,
        "subject": f"Recovery: satisfaction 2/5 on conversation #{conversation_id}",
        "route_requested_at": None,
    }
    assert original is not None and original["status"] == "resolved"
    [note] = await db.fetch(
        "SELECT is_note, direction, status, body_text FROM messages WHERE conversation_id = $1",
        recovery["id"],
    )
    assert (note["is_note"], note["direction"], note["status"]) == (True, "outbound", "sent")
    assert "2/5" in note["body_text"] and "Still broken <b>again</b>" in note["body_text"]
    assert f"#{conversation_id}" in note["body_text"]

    async def recovery_event() -> dict[str, Any] | None:
        event: dict[str, Any] = await events.receive_json(timeout=5)
        return event if event["type"] == "conversation.recovery" else None

    event = await eventually(recovery_event)
    assert (event["conversation_id"], event["assignee_id"], event["team_id"]) == (
        recovery["id"],
        free,
        support,
    )
    assert event["data"]["score"] == 2
    assert event["data"]["from_conversation_id"] == conversation_id
    await events.close()
    assert elsewhere != recovery["assignee_id"]


async def test_a_full_supervisor_is_passed_over_and_with_none_the_recovery_waits_in_the_team(
    app: Client, timed: Conns, settings: Settings, db: asyncpg.Pool, clock: Clock
) -> None:
    support = await team(db, "Support")
    full, _ = await make_agent(db, name="Full", role=Role.SUPERVISOR, team="Support", capacity=0)
    await make_agent(db, name="Offline agent", team="Support", online=False)
    conversation_id, _ = await resolved_conversation(timed, team_id=support)
    care_send_id = await sent_follow_up(db, conversation_id, clock.now - DAY)

    status, _ = await answer(app, survey_path(settings, care_send_id), "1")
    assert status == 200
    [score] = await scores(db)
    recovery = await db.fetchrow(
        "SELECT team_id, assignee_id, waiting_since, team_since, status, priority"
        " FROM conversations WHERE id = $1",
        score["recovery_conversation_id"],
    )
    assert recovery is not None
    assert dict(recovery) == {
        "team_id": support,
        "assignee_id": None,
        "waiting_since": clock.now,
        "team_since": clock.now,
        "status": "open",
        "priority": 9,
    }
    assert full  # has no room: capacity is never exceeded


async def test_a_waiting_recovery_goes_to_whoever_in_the_team_has_room(
    app: Client, timed: Conns, settings: Settings, db: asyncpg.Pool, clock: Clock
) -> None:
    support = await team(db, "Support")
    online_agent, _ = await make_agent(db, name="Online", team="Support")
    conversation_id, _ = await resolved_conversation(timed, team_id=support)
    care_send_id = await sent_follow_up(db, conversation_id, clock.now - DAY)
    status, _ = await answer(app, survey_path(settings, care_send_id), "1")
    assert status == 200
    # no supervisor: the team's queue is served at once, as for any waiting conversation
    assert (
        await db.fetchval("SELECT assignee_id FROM conversations WHERE care_kind = 'recovery'")
        == online_agent
    )


async def test_the_threshold_is_the_care_settings(
    app: Client, timed: Conns, settings: Settings, db: asyncpg.Pool, clock: Clock
) -> None:
    await db.execute("UPDATE care_settings SET recovery_threshold = 3, recovery_priority = 7")
    opened = []
    for given in ("4", "3"):
        conversation_id, _ = await resolved_conversation(timed)
        care_send_id = await sent_follow_up(db, conversation_id, clock.now - DAY)
        status, _ = await answer(app, survey_path(settings, care_send_id), given)
        assert status == 200
        opened.append(
            await db.fetchval(
                "SELECT recovery_conversation_id FROM satisfaction_scores WHERE care_send_id = $1",
                care_send_id,
            )
        )
    assert opened[0] is None and opened[1] is not None
    assert await db.fetchval("SELECT priority FROM conversations WHERE id = $1", opened[1]) == 7


# --- the SMS digit ---------------------------------------------------------------------------


@pytest.fixture
def sms_settings(settings: Settings, twilio_fake: TwilioFake) -> Settings:
    return with_twilio(settings, twilio_fake)


@pytest.fixture
async def sms_app(
    aiohttp_client: Callable[..., Awaitable[Client]], sms_settings: Settings, clock: Clock
) -> AsyncIterator[Client]:
    yield await aiohttp_client(create_app(sms_settings, clock=clock))


@pytest.fixture
def text(sms_app: Client, twilio_fake: TwilioFake) -> Callable[[str], Awaitable[tuple[int, str]]]:
    """The customer texts us: Twilio's signed webhook; (status, MessageSid)."""

    async def send(body: str) -> tuple[int, str]:
        form = inbound_sms_form(
            from_=CUSTOMER, to=OUR_NUMBER, body=body, account_sid=twilio_fake.account_sid
        )
        answer = await post_signed(
            PUBLIC + "/v1/webhooks/twilio/sms",
            form,
            auth_token=twilio_fake.auth_token,
            post_to=str(sms_app.make_url("/v1/webhooks/twilio/sms")),
        )
        return answer.status, form["MessageSid"]

    return send


async def resolved_sms_conversation(
    conns: Conns, text: Callable[[str], Awaitable[tuple[int, str]]], agent_id: int
) -> int:
    """The customer texts, the conversation is routed to the agent and resolved."""
    status, _ = await text("My parcel never came")
    assert status == 200
    conversation_id = int(await conns.db.fetchval("SELECT id FROM conversations"))
    await route_all(conns, [conversation_id])
    assert (
        await conns.db.fetchval(
            "SELECT assignee_id FROM conversations WHERE id = $1", conversation_id
        )
        == agent_id
    )
    async with conns.db.acquire() as conn, conn.transaction():
        await conversations.set_status(conn, conversation_id, "resolved", None, conns.clock())
    # the customer wrote a week ago: the visits below came after it (a digit answers a visit
    # only while it is the last thing said)
    await conns.db.execute(
        "UPDATE messages SET created_at = created_at - interval '7 days'"
        " WHERE conversation_id = $1",
        conversation_id,
    )
    return conversation_id


async def test_a_digit_by_sms_is_a_score_that_reopens_nothing(
    text: Callable[[str], Awaitable[tuple[int, str]]],
    timed: Conns,
    db: asyncpg.Pool,
    clock: Clock,
) -> None:
    agent_id, _ = await make_agent(db, name="Li Lei")
    conversation_id = await resolved_sms_conversation(timed, text, agent_id)
    await sent_follow_up(db, conversation_id, clock.now - 3 * DAY, channel="sms", occasion="old")
    latest = await sent_follow_up(db, conversation_id, clock.now - DAY, channel="sms")
    before = await db.fetchrow("SELECT * FROM conversations WHERE id = $1", conversation_id)

    status, sid = await text(" ５ ")  # a full-width digit, spaces around
    assert status == 200
    [score] = await scores(db)
    assert (score["care_send_id"], score["score"], score["answered_by"]) == (latest, 5, "sms")
    assert (score["agent_id"], score["channel"], score["comment"]) == (agent_id, "sms", None)
    message = await db.fetchrow(
        "SELECT conversation_id, is_automatic, body_text FROM messages WHERE external_id = $1",
        sid,
    )
    assert dict(message) == {
        "conversation_id": conversation_id,
        "is_automatic": True,
        "body_text": " ５ ",
    }
    after = await db.fetchrow("SELECT * FROM conversations WHERE id = $1", conversation_id)
    # not reopened, not routed, nobody's attention asked
    assert dict(after) == dict(before)
    assert await db.fetchval("SELECT count(*) FROM conversations") == 1


async def test_a_low_digit_opens_the_recovery_on_sms(
    text: Callable[[str], Awaitable[tuple[int, str]]],
    timed: Conns,
    db: asyncpg.Pool,
    clock: Clock,
) -> None:
    agent_id, _ = await make_agent(db, name="Li Lei")
    supervisor, _ = await make_agent(db, name="Boss", role=Role.SUPERVISOR, online=False)
    conversation_id = await resolved_sms_conversation(timed, text, agent_id)
    await sent_follow_up(db, conversation_id, clock.now - DAY, channel="sms")

    status, _ = await text("1")
    assert status == 200
    [score] = await scores(db)
    recovery = await db.fetchrow(
        "SELECT r.channel, r.sms_number_id = o.sms_number_id AS same_number, r.assignee_id,"
        " r.care_kind FROM conversations r, conversations o WHERE r.id = $1 AND o.id = $2",
        score["recovery_conversation_id"],
        conversation_id,
    )
    assert recovery is not None
    assert dict(recovery) == {
        "channel": "sms",
        "same_number": True,
        "assignee_id": supervisor,  # offline, but the one supervisor with room
        "care_kind": "recovery",
    }


async def test_other_texts_are_work_as_before(
    text: Callable[[str], Awaitable[tuple[int, str]]],
    timed: Conns,
    db: asyncpg.Pool,
    clock: Clock,
) -> None:
    agent_id, _ = await make_agent(db, name="Li Lei")
    conversation_id = await resolved_sms_conversation(timed, text, agent_id)
    await sent_follow_up(db, conversation_id, clock.now - DAY, channel="sms")

    for body in ("5 stars!", "6", "55"):
        status, sid = await text(body)
        assert status == 200
        message = await db.fetchrow(
            "SELECT m.is_automatic, c.id, c.status, c.route_requested_at IS NOT NULL AS routed"
            " FROM messages m JOIN conversations c ON c.id = m.conversation_id"
            " WHERE m.external_id = $1",
            sid,
        )
        assert message is not None
        # a text after a resolve opens a conversation for the agents, as always
        assert (message["is_automatic"], message["status"], message["routed"]) == (
            False,
            "open",
            True,
        )
        assert message["id"] != conversation_id
    assert await scores(db) == []


async def test_a_digit_with_no_open_follow_up_is_work_as_before(
    text: Callable[[str], Awaitable[tuple[int, str]]],
    timed: Conns,
    db: asyncpg.Pool,
    clock: Clock,
) -> None:
    agent_id, _ = await make_agent(db, name="Li Lei")
    conversation_id = await resolved_sms_conversation(timed, text, agent_id)
    # by e-mail, expired, and answered already: none of them waits for a digit by SMS
    await sent_follow_up(db, conversation_id, clock.now - DAY, channel="email", occasion="a")
    await sent_follow_up(db, conversation_id, clock.now - 15 * DAY, channel="sms", occasion="b")
    answered = await sent_follow_up(db, conversation_id, clock.now - 2 * DAY, channel="sms")
    status, _ = await text("4")
    assert status == 200
    [first] = await scores(db)
    assert first["care_send_id"] == answered

    status, sid = await text("3")
    assert status == 200
    assert len(await scores(db)) == 1
    reopened = await db.fetchrow(
        "SELECT m.is_automatic, c.status FROM messages m"
        " JOIN conversations c ON c.id = m.conversation_id WHERE m.external_id = $1",
        sid,
    )
    assert reopened is not None
    assert (reopened["is_automatic"], reopened["status"]) == (False, "open")


async def test_twilio_retrying_a_digit_records_one_score(
    sms_app: Client,
    twilio_fake: TwilioFake,
    text: Callable[[str], Awaitable[tuple[int, str]]],
    timed: Conns,
    db: asyncpg.Pool,
    clock: Clock,
) -> None:
    agent_id, _ = await make_agent(db, name="Li Lei")
    conversation_id = await resolved_sms_conversation(timed, text, agent_id)
    await sent_follow_up(db, conversation_id, clock.now - DAY, channel="sms")
    form = inbound_sms_form(
        from_=CUSTOMER, to=OUR_NUMBER, body="4", account_sid=twilio_fake.account_sid
    )
    for _ in range(2):
        answer = await post_signed(
            PUBLIC + "/v1/webhooks/twilio/sms",
            form,
            auth_token=twilio_fake.auth_token,
            post_to=str(sms_app.make_url("/v1/webhooks/twilio/sms")),
        )
        assert answer.status == 200
    assert len(await scores(db)) == 1
    assert (
        await db.fetchval(
            "SELECT count(*) FROM messages WHERE external_id = $1", form["MessageSid"]
        )
        == 1
    )
    # the retry reopened nothing either
    assert await db.fetchval("SELECT status FROM conversations WHERE id = $1", conversation_id) == (
        "resolved"
    )
    assert await db.fetchval("SELECT count(*) FROM conversations") == 1


async def test_a_recovery_is_held_to_the_customers_tier_standard(
    app: Client, timed: Conns, settings: Settings, db: asyncpg.Pool, clock: Clock
) -> None:
    policy_id = await db.fetchval(
        "INSERT INTO sla_policies (name, first_response_seconds, clock)"
        " VALUES ('Gold', 600, 'calendar') RETURNING id"
    )
    await db.execute("UPDATE tiers SET sla_policy_id = $1 WHERE rank = 2", policy_id)
    await make_agent(db, name="Boss", role=Role.SUPERVISOR)
    conversation_id, _ = await resolved_conversation(timed, tier=2)
    care_send_id = await sent_follow_up(db, conversation_id, clock.now - DAY)
    status, _ = await answer(app, survey_path(settings, care_send_id), "2")
    assert status == 200
    recovery = await db.fetchrow(
        "SELECT sla_policy_id, sla_due_at FROM conversations WHERE care_kind = 'recovery'"
    )
    assert recovery is not None
    assert (recovery["sla_policy_id"], recovery["sla_due_at"]) == (
        policy_id,
        clock.now + timedelta(seconds=600),
    )


def test_the_supervisor_chosen_has_room_is_online_if_any_and_least_loaded() -> None:
    def load(agent_id: int, load: int, capacity: int = 3, **extra: Any) -> AgentLoad:
        return AgentLoad(agent_id, capacity, load, **extra)

    assert pick_supervisor([], "web") is None
    # online first, even when busier
    chosen = pick_supervisor([(load(1, 0), False), (load(2, 2), True)], "web")
    assert chosen is not None and chosen.id == 2
    # then the least loaded, then the lowest id
    chosen = pick_supervisor([(load(3, 1), True), (load(4, 0), True), (load(5, 0), True)], "web")
    assert chosen is not None and chosen.id == 4
    # never past capacity, in total or on the channel
    full = [
        (load(6, 3), True),
        (load(7, 1, channel_capacity={"sms": 1}, channel_load={"sms": 1}), True),
    ]
    assert pick_supervisor(full, "sms") is None
    chosen = pick_supervisor(full, "email")
    assert chosen is not None and chosen.id == 7
