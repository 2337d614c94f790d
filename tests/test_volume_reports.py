"""GET /v1/reports/volume over the real app (API.md): exact counts of conversations created and
resolved, customers' messages, agents' replies and automatic messages, overall, per local day
or hour, by channel and by team; the range (from inclusive, to exclusive); filters; who may
read it; bad parameters refused with their codes. Rows are inserted with known times; one
conversation comes through the product's own web chat. Responses are checked against the
OpenAPI document."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from contactcenter.api.app import create_app
from contactcenter.settings import Settings
from tests.helpers import bearer, call, error_code, make_agent, start_chat
from tests.openapi_check import checking
from tests.routing_helpers import T0, Clock, team

Client = TestClient[Any, Any]
REPORT = "/v1/reports/volume"
HOUR = timedelta(hours=1)
# T0 is 2026-11-23 10:00 UTC, 18:00 in Shanghai
WEEK = {"from": "2026-11-20", "to": "2026-11-27"}
QUIET = dict.fromkeys(
    ("conversations_created", "conversations_resolved", "messages_in", "replies", "automatic"), 0
)


def counts(**given: int) -> dict[str, int]:
    return {**QUIET, **given}


@pytest.fixture
async def reports(
    aiohttp_client: Callable[..., Awaitable[Client]], settings: Settings
) -> AsyncIterator[Client]:
    app = create_app(settings, clock=Clock(T0))
    checker = checking(app)
    yield await aiohttp_client(app)
    assert checker.problems == []


async def report(client: Client, headers: dict[str, str], **query: Any) -> dict[str, Any]:
    response = await client.get(REPORT, params=query, headers=headers)
    body: dict[str, Any] = await response.json()
    assert response.status == 200, body
    return body


async def conversation(
    db: asyncpg.Pool,
    created_at: datetime,
    *,
    channel: str = "web",
    team_id: int | None = None,
    resolved_at: datetime | None = None,
) -> int:
    contact = await db.fetchval("INSERT INTO contacts (name) VALUES ('c') RETURNING id")
    return int(
        await db.fetchval(
            "INSERT INTO conversations (contact_id, channel, team_id, created_at, resolved_at,"
            " status) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            contact,
            channel,
            team_id,
            created_at,
            resolved_at,
            "open" if resolved_at is None else "resolved",
        )
    )


async def message(
    db: asyncpg.Pool,
    conversation_id: int,
    at: datetime,
    kind: str,
    *,
    channel: str = "web",
) -> None:
    """kind: in, reply, automatic or note."""
    await db.execute(
        "INSERT INTO messages (conversation_id, direction, is_note, is_automatic, channel,"
        " body_text, status, created_at) VALUES ($1, $2, $3, $4, $5, 'x', $6, $7)",
        conversation_id,
        "inbound" if kind == "in" else "outbound",
        kind == "note",
        kind == "automatic",
        channel,
        "received" if kind == "in" else "sent",
        at,
    )


async def test_counts_overall_per_day_by_channel_and_by_team(
    reports: Client, db: asyncpg.Pool, supervisor: dict[str, str]
) -> None:
    billing = await team(db, "Billing")
    # Monday 23rd: a web chat in Billing, answered and resolved the same day
    web = await conversation(db, T0, team_id=billing, resolved_at=T0 + HOUR)
    await message(db, web, T0, "in")
    await message(db, web, T0 + HOUR / 2, "reply")
    await message(db, web, T0 + HOUR / 2, "note")  # never counted
    # Tuesday 24th: a text with no team, an auto-reply, then an e-mail answer to it
    sms = await conversation(db, T0 + 24 * HOUR, channel="sms")
    await message(db, sms, T0 + 24 * HOUR, "in", channel="sms")
    await message(db, sms, T0 + 24 * HOUR, "automatic", channel="sms")
    await message(db, sms, T0 + 25 * HOUR, "reply", channel="email")
    # outside the range: created before it, resolved in it
    old = await conversation(db, T0 - 10 * 24 * HOUR, resolved_at=T0 + 2 * HOUR)
    await message(db, old, T0 - 10 * 24 * HOUR, "in")

    body = await report(reports, supervisor, **WEEK)
    assert (body["from"], body["to"]) == ("2026-11-20T00:00:00+00:00", "2026-11-27T00:00:00+00:00")
    assert (body["interval"], body["timezone"]) == ("day", "UTC")
    assert body["overall"] == counts(
        conversations_created=2, conversations_resolved=2, messages_in=2, replies=2, automatic=1
    )
    assert body["by_period"] == [
        {"period": "2026-11-23T00:00:00+00:00", **counts(
            conversations_created=1, conversations_resolved=2, messages_in=1, replies=1)},
        {"period": "2026-11-24T00:00:00+00:00", **counts(
            conversations_created=1, messages_in=1, replies=1, automatic=1)},
    ]  # fmt: skip
    assert body["by_channel"] == [
        {"channel": "email", **counts(replies=1)},
        {"channel": "sms", **counts(conversations_created=1, messages_in=1, automatic=1)},
        {"channel": "web", **counts(
            conversations_created=1, conversations_resolved=2, messages_in=1, replies=1)},
    ]  # fmt: skip
    assert body["by_team"] == [
        {"team_id": billing, "team_name": "Billing", **counts(
            conversations_created=1, conversations_resolved=1, messages_in=1, replies=1)},
        {"team_id": None, "team_name": None, **counts(
            conversations_created=1, conversations_resolved=1, messages_in=1, replies=1,
            automatic=1)},
    ]  # fmt: skip

    only_sms = await report(reports, supervisor, channel="sms", **WEEK)
    assert only_sms["overall"] == counts(conversations_created=1, messages_in=1, automatic=1)
    only_billing = await report(reports, supervisor, team_id=billing, **WEEK)
    assert only_billing["overall"] == counts(
        conversations_created=1, conversations_resolved=1, messages_in=1, replies=1
    )


async def test_days_and_hours_are_local_to_the_time_zone(
    reports: Client, db: asyncpg.Pool, supervisor: dict[str, str]
) -> None:
    # 15:30 and 16:30 UTC on the 23rd: the 23rd and the 24th in Shanghai
    for at in (T0 + 5.5 * HOUR, T0 + 6.5 * HOUR):
        await conversation(db, at)
    shanghai = await report(reports, supervisor, timezone="Asia/Shanghai", **WEEK)
    assert [(p["period"], p["conversations_created"]) for p in shanghai["by_period"]] == [
        ("2026-11-23T00:00:00+08:00", 1),
        ("2026-11-24T00:00:00+08:00", 1),
    ]
    utc = await report(reports, supervisor, **WEEK)
    assert [(p["period"], p["conversations_created"]) for p in utc["by_period"]] == [
        ("2026-11-23T00:00:00+00:00", 2)
    ]
    hourly = await report(reports, supervisor, interval="hour", timezone="Asia/Kolkata", **WEEK)
    assert [p["period"] for p in hourly["by_period"]] == [
        "2026-11-23T21:00:00+05:30",
        "2026-11-23T22:00:00+05:30",
    ]


async def test_the_range_is_from_inclusive_to_exclusive_and_defaults_to_30_days(
    reports: Client, db: asyncpg.Pool, supervisor: dict[str, str]
) -> None:
    """The app's clock stands at T0."""
    await conversation(db, T0 - HOUR)
    await conversation(db, T0 - 31 * 24 * HOUR)

    async def created(**query: str) -> int:
        return int((await report(reports, supervisor, **query))["overall"]["conversations_created"])

    assert await created() == 1  # the 30 days up to now
    assert await created(**{"from": (T0 - HOUR).isoformat(), "to": T0.isoformat()}) == 1
    assert await created(to=(T0 - HOUR).isoformat()) == 0
    assert await created(**{"from": "2026-10-24", "to": "2026-11-01"}) == 0
    assert await created(**{"from": "2026-10-22", "to": "2026-10-24"}) == 1


async def test_a_chat_through_the_product_is_counted(
    reports: Client, db: asyncpg.Pool, supervisor: dict[str, str]
) -> None:
    await start_chat(reports)
    body = await report(reports, supervisor, **WEEK)  # the app's clock stands at T0
    assert body["overall"]["conversations_created"] == 1
    assert body["overall"]["messages_in"] == 1


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ({"interval": "week"}, "invalid_interval"),
        ({"timezone": "Mars/Olympus"}, "invalid_timezone"),
        ({"timezone": ""}, "invalid_timezone"),
        ({"channel": "fax"}, "invalid_channel"),
        ({"team_id": "0"}, "invalid_team_id"),
        ({"from": "yesterday"}, "invalid_date"),
        ({"from": "2026-11-24", "to": "2026-11-23"}, "invalid_range"),
        ({"from": "2024-01-01", "to": "2026-01-01"}, "invalid_range"),
    ],
)
async def test_bad_parameters_are_refused_with_a_code(
    reports: Client, supervisor: dict[str, str], query: dict[str, str], code: str
) -> None:
    response = await reports.get(REPORT, params=query, headers=supervisor)
    assert (response.status, error_code(await response.json())) == (422, code)


async def test_agents_may_not_read_it(reports: Client, db: asyncpg.Pool) -> None:
    _, agent = await make_agent(db, name="Agent", online=False)
    status, body = await call(reports, "GET", REPORT, bearer(agent))
    assert (status, error_code(body)) == (403, "forbidden")
