"""GET /v1/reports/sla over the real app: exact compliance, medians and p90s (percentile_cont)
of first-response and resolution times, how each conversation is judged as of now, grouping by
tier, channel and team, the date range (from inclusive, to exclusive, dates as midnight UTC,
the default 30 days by the app's clock), filters, who may read it, and every bad parameter
refused with its code. One test builds its conversations through the product (routing under a
tier's default policy, replies, a customer's follow-up, timers firing, resolving); the others
insert clocks with known times so the figures are exact."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from contactcenter.api.app import create_app
from contactcenter.conns import Conns
from contactcenter.domain.enums import Channel, ConversationStatus, IdentityKind, Role
from contactcenter.domain.messages import Identity, InboundMessage
from contactcenter.services import agents, inbox, sla, sla_policies
from contactcenter.services.ingest import ingest
from contactcenter.settings import Settings
from tests.helpers import bearer, call, error_code, make_agent, new_client_id
from tests.openapi_check import checking
from tests.routing_helpers import T0, Clock, clocked, customer_writes, default_team, route_all, team

Client = TestClient[Any, Any]
REPORT = "/v1/reports/sla"
MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)
# a range around T0 (2026-11-23 10:00 UTC) that holds every conversation these tests make
AROUND_T0 = {"from": "2026-11-01", "to": "2026-12-01"}

EMPTY_BLOCK = {
    "conversations": 0,
    "first_response": {
        "with_target": 0,
        "met": 0,
        "breached": 0,
        "pending": 0,
        "resolved_unanswered": 0,
        "compliance": None,
        "median_seconds": None,
        "p90_seconds": None,
    },
    "next_response": {"breaches": 0},
    "resolution": {
        "with_target": 0,
        "resolved": 0,
        "met": 0,
        "breached": 0,
        "pending": 0,
        "compliance": None,
        "median_seconds": None,
        "p90_seconds": None,
    },
}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def reports(
    aiohttp_client: Callable[..., Awaitable[Client]], settings: Settings, clock: Clock
) -> AsyncIterator[Client]:
    """The real app, its "now" the test's clock (pending and breached are judged by it);
    every answer is checked against the OpenAPI document."""
    app = create_app(settings, clock=clock)
    checker = checking(app)
    yield await aiohttp_client(app)
    assert checker.problems == []


async def report(client: Client, headers: dict[str, str], **query: Any) -> dict[str, Any]:
    response = await client.get(REPORT, params=query, headers=headers)
    body: dict[str, Any] = await response.json()
    assert response.status == 200, body
    return body


async def policy(
    db: asyncpg.Pool,
    *,
    first_response: int | None = 300,
    next_response: int | None = None,
    resolution: int | None = 2700,
) -> int:
    """A calendar-clock policy with these targets in seconds."""
    return int(
        await db.fetchval(
            "INSERT INTO sla_policies (name, first_response_seconds, next_response_seconds,"
            " resolution_seconds, clock) VALUES ($1, $2, $3, $4, 'calendar') RETURNING id",
            f"policy {new_client_id()[:8]}",
            first_response,
            next_response,
            resolution,
        )
    )


async def held(
    db: asyncpg.Pool,
    *,
    started_at: datetime = T0,
    policy_id: int | None = None,
    tier: int = 4,
    channel: str = "web",
    team_id: int | None = None,
    first_due: datetime | None = None,
    first_at: datetime | None = None,
    first_stopped: datetime | None = None,
    resolution_due: datetime | None = None,
    resolution_breached: datetime | None = None,
    stopped_at: datetime | None = None,
) -> int:
    """A conversation held to a policy, its clocks as given; the measured times are the
    calendar time from the start to the reply, and to the resolve."""
    contact_id = await db.fetchval("INSERT INTO contacts (name) VALUES ('c') RETURNING id")
    conversation_id = int(
        await db.fetchval(
            "INSERT INTO conversations (contact_id, channel, tier, team_id, status)"
            " VALUES ($1, $2, $3, $4, $5) RETURNING id",
            contact_id,
            channel,
            tier,
            team_id or await default_team(db),
            "open" if stopped_at is None else "resolved",
        )
    )
    await db.execute(
        """
        INSERT INTO conversation_sla (conversation_id, policy_id, started_at, last_event_at,
            first_response_due_at, first_responded_at, first_response_stopped_at,
            resolution_due_at, resolution_breached_at, stopped_at, resolution_running_since,
            first_response_time, resolution_time)
        VALUES ($1, $2, $3, $3, $4, $5, $6, $7, $8, $9, $10,
                $5::timestamptz - $3::timestamptz, $9::timestamptz - $3::timestamptz)
        """,
        conversation_id,
        policy_id,
        started_at,
        first_due,
        first_at,
        first_stopped,
        resolution_due,
        resolution_breached,
        stopped_at,
        started_at if stopped_at is None else None,
    )
    return conversation_id


# --- exact figures -------------------------------------------------------------------------


async def test_compliance_median_and_p90_are_exact(
    db: asyncpg.Pool, reports: Client, supervisor: dict[str, str], clock: Clock
) -> None:
    # ten conversations answered after 1..10 minutes (due at 5: the reply at 5 is late) and
    # resolved after 10..100 minutes (due at 45)
    target = await policy(db, first_response=300, resolution=2700)
    for k in range(1, 11):
        await held(
            db,
            policy_id=target,
            first_due=T0 + 5 * MINUTE,
            first_at=T0 + k * MINUTE,
            resolution_breached=T0 + 45 * MINUTE if k * 10 >= 45 else None,
            stopped_at=T0 + k * 10 * MINUTE,
        )
    clock.now = T0 + DAY
    body = await report(reports, supervisor, **AROUND_T0)
    overall = body["overall"]
    assert overall["conversations"] == 10
    assert overall["first_response"] == {
        "with_target": 10,
        "met": 4,
        "breached": 6,
        "pending": 0,
        "resolved_unanswered": 0,
        "compliance": 0.4,
        "median_seconds": 330.0,
        "p90_seconds": 546.0,  # percentile_cont: 540 + 0.1 * (600 - 540)
    }
    assert overall["resolution"] == {
        "with_target": 10,
        "resolved": 10,
        "met": 4,
        "breached": 6,
        "pending": 0,
        "compliance": 0.4,
        "median_seconds": 3300.0,
        "p90_seconds": 5460.0,
    }
    assert overall["next_response"] == {"breaches": 0}
    # one tier, one channel, one team: each group is the whole
    assert [{k: v for k, v in g.items() if k != "tier"} for g in body["by_tier"]] == [overall]
    assert body["by_channel"] == [{"channel": "web", **overall}]
    general = await default_team(db)
    assert body["by_team"] == [{"team_id": general, "team_name": "General", **overall}]
    assert body["from"] == "2026-11-01T00:00:00+00:00"
    assert body["to"] == "2026-12-01T00:00:00+00:00"
    assert body["as_of"] == (T0 + DAY).isoformat()


async def test_each_conversation_is_judged_as_of_now(
    db: asyncpg.Pool, reports: Client, supervisor: dict[str, str], clock: Clock
) -> None:
    clock.now = T0 + 30 * MINUTE
    target = await policy(db, first_response=600, resolution=3600)
    past, future = T0 + 10 * MINUTE, T0 + 60 * MINUTE
    # first response: never answered and past due (breached), not yet due (pending), resolved
    # unanswered after the due instant (breached) and before it (neither side), answered on
    # the due instant (late), answered without a target (timed, not judged)
    await held(db, policy_id=target, first_due=past, resolution_due=future)
    await held(db, policy_id=target, first_due=future, resolution_due=future)
    await held(
        db,
        policy_id=target,
        first_due=past,
        first_stopped=past + MINUTE,
        stopped_at=past + MINUTE,
    )
    await held(
        db,
        policy_id=target,
        first_due=future,
        first_stopped=T0 + 2 * MINUTE,
        stopped_at=T0 + 2 * MINUTE,
    )
    await held(db, policy_id=target, first_due=past, first_at=past, resolution_due=future)
    untargeted = await policy(db, first_response=None, next_response=60, resolution=None)
    await held(db, policy_id=untargeted, first_at=T0 + 4 * MINUTE)
    # resolution: still running past its due instant (breached), paused (no due instant
    # while paused: pending by the policy's target), on a policy since deleted but breached
    await held(db, policy_id=target, resolution_due=T0 + 20 * MINUTE)
    paused = await held(db, policy_id=target)
    await db.execute(
        "UPDATE conversation_sla SET resolution_running_since = NULL WHERE conversation_id = $1",
        paused,
    )
    await held(db, resolution_breached=T0 + 5 * MINUTE, stopped_at=T0 + 8 * MINUTE)

    overall = (await report(reports, supervisor, **AROUND_T0))["overall"]
    assert overall["conversations"] == 9
    assert overall["first_response"] == {
        "with_target": 5,
        "met": 0,
        "breached": 3,
        "pending": 1,
        "resolved_unanswered": 1,
        "compliance": 0.0,
        "median_seconds": 420.0,  # the two answered: 4 and 10 minutes
        "p90_seconds": 564.0,
    }
    assert overall["resolution"] == {
        # every conversation on a policy with a resolution target, and the breached one
        "with_target": 8,
        "resolved": 3,
        "met": 2,
        "breached": 2,
        "pending": 4,
        "compliance": 0.5,
        "median_seconds": 480.0,  # resolved after 2, 8 and 11 minutes
        "p90_seconds": 624.0,
    }


async def test_next_response_breaches_are_counted_from_sla_events(
    db: asyncpg.Pool, reports: Client, supervisor: dict[str, str], clock: Clock
) -> None:
    clock.now = T0 + DAY
    target = await policy(db)
    twice = await held(db, policy_id=target, tier=1)
    once = await held(db, policy_id=target, tier=2)
    await held(db, policy_id=target, tier=2)
    for conversation_id, kind, stage, due in [
        (twice, "next_response", "breach", T0 + MINUTE),
        (twice, "next_response", "breach", T0 + 9 * MINUTE),
        (twice, "next_response", "warning", T0 + 8 * MINUTE),
        (once, "next_response", "breach", T0 + MINUTE),
        (once, "first_response", "breach", T0 + MINUTE),
    ]:
        await db.execute(
            "INSERT INTO sla_events (conversation_id, kind, stage, due_at, fired_at, tier,"
            " channel) VALUES ($1, $2, $3, $4, $4, 4, 'web')",
            conversation_id,
            kind,
            stage,
            due,
        )
    body = await report(reports, supervisor, **AROUND_T0)
    assert body["overall"]["next_response"] == {"breaches": 3}
    assert [(g["tier"], g["next_response"]["breaches"]) for g in body["by_tier"]] == [
        (1, 2),
        (2, 1),
    ]


# --- groups, range and filters -------------------------------------------------------------


async def test_groups_by_tier_channel_and_team(
    db: asyncpg.Pool, reports: Client, supervisor: dict[str, str], clock: Clock
) -> None:
    clock.now = T0 + DAY
    target = await policy(db, first_response=300)
    vip = await team(db, "VIP desk")
    general = await default_team(db)
    # (tier, channel, team, minutes to the first reply: 5 is due, so late)
    for tier, channel, team_id, minutes in [
        (1, "email", vip, 1),
        (1, "web", vip, 2),
        (2, "sms", general, 3),
        (2, "email", general, 7),
        (4, "email", general, 9),
    ]:
        await held(
            db,
            policy_id=target,
            tier=tier,
            channel=channel,
            team_id=team_id,
            first_due=T0 + 5 * MINUTE,
            first_at=T0 + minutes * MINUTE,
        )
    body = await report(reports, supervisor, **AROUND_T0)

    def summary(group: dict[str, Any]) -> tuple[int, int, int, float | None]:
        first = group["first_response"]
        return group["conversations"], first["met"], first["breached"], first["median_seconds"]

    assert summary(body["overall"]) == (5, 3, 2, 180.0)
    assert [(g["tier"], *summary(g)) for g in body["by_tier"]] == [
        (1, 2, 2, 0, 90.0),
        (2, 2, 1, 1, 300.0),
        (4, 1, 0, 1, 540.0),
    ]
    assert [(g["channel"], *summary(g)) for g in body["by_channel"]] == [
        ("email", 3, 1, 2, 420.0),
        ("sms", 1, 1, 0, 180.0),
        ("web", 1, 1, 0, 120.0),
    ]
    assert [(g["team_id"], g["team_name"], *summary(g)) for g in body["by_team"]] == [
        (general, "General", 3, 1, 2, 420.0),
        (vip, "VIP desk", 2, 2, 0, 90.0),
    ]
    assert body["by_tier"][0]["first_response"]["compliance"] == 1.0
    assert body["by_channel"][0]["first_response"]["compliance"] == pytest.approx(1 / 3)


async def test_the_range_takes_from_and_leaves_out_to(
    db: asyncpg.Pool, reports: Client, supervisor: dict[str, str]
) -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    end = datetime(2026, 11, 8, tzinfo=UTC)
    tick = timedelta(microseconds=1)
    for started_at, tier in [(start - tick, 1), (start, 2), (end - tick, 3), (end, 4)]:
        await held(db, started_at=started_at, tier=tier)

    async def tiers(**query: str) -> list[int]:
        body = await report(reports, supervisor, **query)
        return [group["tier"] for group in body["by_tier"]]

    # dates are midnight UTC
    assert await tiers(**{"from": "2026-11-01", "to": "2026-11-08"}) == [2, 3]
    # times with an offset, "+" encoded, sent raw (a space) or as Z
    assert await tiers(**{"from": "2026-11-01T08:00:00+08:00", "to": "2026-11-08T00:00:00Z"}) == [
        2,
        3,
    ]
    response = await reports.get(
        f"{REPORT}?from=2026-11-01T08:00:00+08:00&to=2026-11-08T08:00:00%2B08:00",
        headers=supervisor,
    )
    assert [g["tier"] for g in (await response.json())["by_tier"]] == [2, 3]
    assert await tiers(**{"from": "2026-10-31T23:59:59Z", "to": "2026-11-08T00:00:01Z"}) == [
        1,
        2,
        3,
        4,
    ]
    # exactly a year and a day (a leap year's worth) is allowed
    assert await tiers(**{"from": "2025-11-07", "to": "2026-11-08"}) == [1, 2, 3]


async def test_the_default_range_is_the_last_30_days_by_the_apps_clock(
    db: asyncpg.Pool, reports: Client, supervisor: dict[str, str], clock: Clock
) -> None:
    for started_at, tier in [
        (T0 - 30 * DAY - MINUTE, 1),
        (T0 - 30 * DAY, 2),
        (T0 - MINUTE, 3),
        (T0, 4),
    ]:
        await held(db, started_at=started_at, tier=tier)
    body = await report(reports, supervisor)
    assert (body["from"], body["to"]) == ((T0 - 30 * DAY).isoformat(), T0.isoformat())
    assert [group["tier"] for group in body["by_tier"]] == [2, 3]
    # only `from`: up to now; only `to`: the 30 days before it
    only_from = await report(reports, supervisor, **{"from": "2026-11-23"})
    assert (only_from["to"], [g["tier"] for g in only_from["by_tier"]]) == (T0.isoformat(), [3])
    only_to = await report(reports, supervisor, to="2026-11-23T10:00:00.000001+00:00")
    assert [g["tier"] for g in only_to["by_tier"]] == [3, 4]
    assert only_to["from"] == "2026-10-24T10:00:00.000001+00:00"


async def test_filters_narrow_every_block(
    db: asyncpg.Pool, reports: Client, supervisor: dict[str, str]
) -> None:
    vip = await team(db, "VIP desk")
    general = await default_team(db)
    for tier, channel, team_id in [
        (1, "email", vip),
        (1, "web", general),
        (2, "email", general),
        (3, "sms", vip),
    ]:
        await held(db, tier=tier, channel=channel, team_id=team_id)

    async def shape(**query: Any) -> tuple[int, list[int], list[str], list[int]]:
        body = await report(reports, supervisor, **AROUND_T0, **query)
        return (
            body["overall"]["conversations"],
            [g["tier"] for g in body["by_tier"]],
            [g["channel"] for g in body["by_channel"]],
            [g["team_id"] for g in body["by_team"]],
        )

    assert await shape(tier=1) == (2, [1], ["email", "web"], [general, vip])
    assert await shape(channel="email") == (2, [1, 2], ["email"], [general, vip])
    assert await shape(team_id=vip) == (2, [1, 3], ["email", "sms"], [vip])
    assert await shape(tier=1, channel="email", team_id=vip) == (1, [1], ["email"], [vip])
    assert await shape(tier=4) == (0, [], [], [])
    assert await shape(team_id=vip + 100) == (0, [], [], [])


async def test_an_empty_range_has_zeros_and_nulls(
    db: asyncpg.Pool, reports: Client, supervisor: dict[str, str]
) -> None:
    await held(db, started_at=T0)
    body = await report(reports, supervisor, **{"from": "2026-01-01", "to": "2026-02-01"})
    assert body == {
        "from": "2026-01-01T00:00:00+00:00",
        "to": "2026-02-01T00:00:00+00:00",
        "as_of": T0.isoformat(),
        "overall": EMPTY_BLOCK,
        "by_tier": [],
        "by_channel": [],
        "by_team": [],
    }


# --- through the product -------------------------------------------------------------------


async def reply_sent(conns: Conns, conversation_id: int) -> None:
    async with conns.db.acquire() as conn, conn.transaction():
        await sla.on_reply_sent(conn, conversation_id, conns.clock())


async def customer_follows_up(conns: Conns, conversation_id: int) -> None:
    await ingest(
        conns,
        InboundMessage(
            channel=Channel.WEB,
            external_id=f"again:{new_client_id()}",
            text="any news?",
            identities=(Identity(IdentityKind.WEB, new_client_id()),),
            conversation_id=conversation_id,
        ),
    )


async def test_conversations_handled_by_the_product_are_reported(
    db: asyncpg.Pool,
    conns: Conns,
    reports: Client,
    supervisor: dict[str, str],
    clock: Clock,
) -> None:
    """Tier 1 gets a policy by default (first response 10 min, next response 5, resolution
    60, every minute counting); tier 4 has none and is left out."""
    gold = await sla_policies.create(
        conns,
        {
            "name": "Gold",
            "first_response_minutes": 10,
            "next_response_minutes": 5,
            "resolution_minutes": 60,
            "clock": "calendar",
        },
    )
    await db.execute("UPDATE tiers SET sla_policy_id = $1 WHERE rank = 1", gold["id"])
    at = clocked(conns, clock)
    fast, _ = await customer_writes(at, tier=1)
    slow, _ = await customer_writes(at, tier=1)
    unheld, _ = await customer_writes(at, tier=4)
    await route_all(at, [fast, slow, unheld])

    clock.advance(4 * 60)
    await reply_sent(at, fast)  # 4 minutes: in time
    clock.advance(8 * 60)
    await reply_sent(at, slow)  # 12 minutes: late
    clock.advance(60)
    await customer_follows_up(at, fast)  # at 13 minutes: the next answer is due at 18
    clock.advance(6 * 60)
    fired = await sla.fire(at, fast)
    assert [(f.timer.kind, f.timer.stage) for f in fired] == [("next_response", "breach")]
    clock.advance(60)
    agent = await agents.authenticate(db, supervisor["Authorization"].removeprefix("Bearer "))
    assert agent is not None
    await inbox.change_status(at, agent, fast, ConversationStatus.RESOLVED, None)  # at 20
    clock.now = T0 + 61 * MINUTE
    fired = await sla.fire(at, slow)
    assert [(f.timer.kind, f.timer.stage) for f in fired] == [("resolution", "breach")]

    body = await report(reports, supervisor, **AROUND_T0)
    expected = {
        "conversations": 2,
        "first_response": {
            "with_target": 2,
            "met": 1,
            "breached": 1,
            "pending": 0,
            "resolved_unanswered": 0,
            "compliance": 0.5,
            "median_seconds": 480.0,
            "p90_seconds": 672.0,  # 240 + 0.9 * (720 - 240)
        },
        "next_response": {"breaches": 1},
        "resolution": {
            "with_target": 2,
            "resolved": 1,
            "met": 1,
            "breached": 1,
            "pending": 0,
            "compliance": 0.5,
            "median_seconds": 1200.0,
            "p90_seconds": 1200.0,
        },
    }
    assert body["overall"] == expected
    assert body["by_tier"] == [{"tier": 1, **expected}]
    assert body["by_channel"] == [{"channel": "web", **expected}]
    general = await default_team(db)
    assert body["by_team"] == [{"team_id": general, "team_name": "General", **expected}]


# --- who may read it, and bad parameters ---------------------------------------------------


async def test_supervisors_and_admins_read_it_agents_do_not(
    db: asyncpg.Pool, reports: Client, supervisor: dict[str, str], admin: dict[str, str]
) -> None:
    await held(db, started_at=T0 - MINUTE)
    _, agent_token = await make_agent(db, name="Agent", role=Role.AGENT, online=False)
    status, body = await call(reports, "GET", REPORT, bearer(agent_token))
    assert (status, error_code(body)) == (403, "forbidden")
    status, body = await call(reports, "GET", REPORT, {})
    assert (status, error_code(body)) == (401, "missing_token")
    # a bad parameter from a caller who may not read: the role is refused first
    status, body = await call(reports, "GET", f"{REPORT}?tier=9", bearer(agent_token))
    assert (status, error_code(body)) == (403, "forbidden")
    for headers in (supervisor, admin):
        assert (await report(reports, headers))["overall"]["conversations"] == 1


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("from=yesterday", "invalid_date"),
        ("from=2026-11-01T00:00:00", "invalid_date"),  # no offset
        ("to=2026-13-01", "invalid_date"),
        ("to=2026-02-30", "invalid_date"),
        ("from=", "invalid_date"),
        ("from=%D9%A2%D9%A0%D9%A2%D9%A6-11-01", "invalid_date"),  # Arabic-Indic digits
        ("to=0001-01-01", "invalid_date"),  # 30 days before it is no date
        ("from=9999-12-31T23:00:00-05:00", "invalid_date"),  # past the end in UTC
        ("from=2026-11-08&to=2026-11-08", "invalid_range"),
        ("from=2026-11-09&to=2026-11-08", "invalid_range"),
        ("from=2025-11-06&to=2026-11-08", "invalid_range"),  # 367 days
        ("from=2026-12-01", "invalid_range"),  # after now
        ("tier=0", "invalid_tier"),
        ("tier=5", "invalid_tier"),
        ("tier=gold", "invalid_tier"),
        ("tier=%C2%B2", "invalid_tier"),
        ("tier=", "invalid_tier"),
        ("channel=fax", "invalid_channel"),
        ("channel=WEB", "invalid_channel"),
        ("team_id=0", "invalid_team_id"),
        ("team_id=-1", "invalid_team_id"),
        ("team_id=99999999999999999999", "invalid_team_id"),
        ("team_id=x", "invalid_team_id"),
    ],
)
async def test_bad_parameters_are_refused_with_a_code(
    reports: Client, supervisor: dict[str, str], query: str, code: str
) -> None:
    status, body = await call(reports, "GET", f"{REPORT}?{query}", supervisor)
    assert (status, error_code(body)) == (422, code), body
    assert body["error"]["details"]["field"] == query.split("=")[0].split("&")[0]
