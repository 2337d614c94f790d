"""GET /v1/reports/csat over the real app: exact responses, averages, distributions and
recoveries, overall and by tier, channel, agent and team; the date range (from inclusive, to
exclusive, the default 30 days by the app's clock); the filters; who may read it; every bad
parameter refused with its code. Scores are inserted with known values and times, and one
comes through the product's own recording of an answer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from contactcenter.api.app import create_app
from contactcenter.conns import Conns
from contactcenter.services import satisfaction
from contactcenter.settings import Settings
from tests.helpers import bearer, call, error_code, make_agent
from tests.openapi_check import checking
from tests.routing_helpers import T0, Clock, team

Client = TestClient[Any, Any]
REPORT = "/v1/reports/csat"
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
# T0 is 2026-11-23 10:00 UTC
THAT_DAY = {"from": "2026-11-23", "to": "2026-11-24"}
MIDNIGHT = datetime.fromisoformat("2026-11-23T00:00:00+00:00")


def block(scores: list[int], recoveries: int = 0) -> dict[str, Any]:
    """The figures a group of these scores must show."""
    return {
        "responses": len(scores),
        "average": sum(scores) / len(scores) if scores else None,
        "distribution": {str(n): scores.count(n) for n in range(1, 6)},
        "recoveries": recoveries,
    }


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
async def reports(
    aiohttp_client: Callable[..., Awaitable[Client]], settings: Settings, clock: Clock
) -> AsyncIterator[Client]:
    app = create_app(settings, clock=clock)
    checker = checking(app)
    yield await aiohttp_client(app)
    assert checker.problems == []


async def report(client: Client, headers: dict[str, str], **query: Any) -> dict[str, Any]:
    response = await client.get(REPORT, params=query, headers=headers)
    body: dict[str, Any] = await response.json()
    assert response.status == 200, body
    return body


async def scored(
    db: asyncpg.Pool,
    score: int,
    at: datetime,
    *,
    tier: int = 4,
    channel: str = "web",
    agent_id: int | None = None,
    team_id: int | None = None,
    recovery: bool = False,
) -> int:
    """A customer's answer to a follow-up visit, given at `at`, kept with these values."""
    contact_id = await db.fetchval("INSERT INTO contacts (name) VALUES ('c') RETURNING id")
    conversation_id = await db.fetchval(
        "INSERT INTO conversations (contact_id, channel, status, resolved_at)"
        " VALUES ($1, $2, 'resolved', $3) RETURNING id",
        contact_id,
        channel,
        at - DAY,
    )
    care_send_id = await db.fetchval(
        "INSERT INTO care_sends (kind, occasion, contact_id, conversation_id, channel, due_at,"
        " status, sent_at) VALUES ('follow_up', 'conversation:' || $2::bigint, $1, $2, $3, $4,"
        " 'sent', $4) RETURNING id",
        contact_id,
        conversation_id,
        channel,
        at - HOUR,
    )
    recovery_id = None
    if recovery:
        recovery_id = await db.fetchval(
            "INSERT INTO conversations (contact_id, channel, care_kind) VALUES ($1, $2,"
            " 'recovery') RETURNING id",
            contact_id,
            channel,
        )
    return int(
        await db.fetchval(
            "INSERT INTO satisfaction_scores (care_send_id, conversation_id, contact_id,"
            " agent_id, team_id, tier, channel, score, answered_by, recovery_conversation_id,"
            " created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'link', $9, $10) RETURNING id",
            care_send_id,
            conversation_id,
            contact_id,
            agent_id,
            team_id,
            tier,
            channel,
            score,
            recovery_id,
            at,
        )
    )


@pytest.fixture
async def answers(db: asyncpg.Pool) -> dict[str, int]:
    """Ann (Alpha) and Bob (Beta) served; five answers on 2026-11-23 (one at its first
    instant), one just before it and one at the next day's first instant."""
    alpha, beta = await team(db, "Alpha"), await team(db, "Beta")
    ann, _ = await make_agent(db, name="Ann", team="Alpha")
    bob, _ = await make_agent(db, name="Bob", team="Beta")
    ids = {"alpha": alpha, "beta": beta, "ann": ann, "bob": bob}
    await scored(db, 5, MIDNIGHT, tier=1, agent_id=ann, team_id=alpha)
    await scored(db, 5, T0, tier=1, agent_id=ann, team_id=alpha)
    await scored(db, 4, T0 + HOUR, tier=1, channel="email", agent_id=ann, team_id=alpha)
    await scored(
        db, 2, T0 + 2 * HOUR, tier=2, channel="sms", agent_id=bob, team_id=beta, recovery=True
    )
    await scored(db, 1, T0 + 3 * HOUR, channel="sms", team_id=alpha, recovery=True)
    # outside [from, to)
    await scored(db, 3, MIDNIGHT - timedelta(microseconds=1), agent_id=bob, team_id=beta)
    await scored(db, 3, MIDNIGHT + DAY, tier=2, agent_id=bob, team_id=beta)
    return ids


async def test_the_figures_are_exact_overall_and_by_tier_channel_agent_and_team(
    reports: Client, supervisor: dict[str, str], answers: dict[str, int]
) -> None:
    body = await report(reports, supervisor, **THAT_DAY)
    assert body["from"] == "2026-11-23T00:00:00+00:00"
    assert body["to"] == "2026-11-24T00:00:00+00:00"
    assert body["overall"] == block([5, 5, 4, 2, 1], recoveries=2)
    assert body["overall"]["average"] == 3.4
    assert body["by_tier"] == [
        {"tier": 1, **block([5, 5, 4])},
        {"tier": 2, **block([2], recoveries=1)},
        {"tier": 4, **block([1], recoveries=1)},
    ]
    assert body["by_channel"] == [
        {"channel": "email", **block([4])},
        {"channel": "sms", **block([2, 1], recoveries=2)},
        {"channel": "web", **block([5, 5])},
    ]
    assert body["by_agent"] == [
        {"agent_id": answers["ann"], "agent_name": "Ann", **block([5, 5, 4])},
        {"agent_id": answers["bob"], "agent_name": "Bob", **block([2], recoveries=1)},
        # nobody had answered that conversation
        {"agent_id": None, "agent_name": None, **block([1], recoveries=1)},
    ]
    assert body["by_team"] == [
        {"team_id": answers["alpha"], "team_name": "Alpha", **block([5, 5, 4, 1], recoveries=1)},
        {"team_id": answers["beta"], "team_name": "Beta", **block([2], recoveries=1)},
    ]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"tier": "1"}, ([5, 5, 4], 0)),
        ({"channel": "sms"}, ([2, 1], 2)),
        ({"agent": "bob"}, ([2], 1)),
        ({"team": "alpha"}, ([5, 5, 4, 1], 1)),
        ({"tier": "1", "channel": "web"}, ([5, 5], 0)),
        ({"tier": "3"}, ([], 0)),
    ],
)
async def test_filters_narrow_every_group(
    reports: Client,
    supervisor: dict[str, str],
    answers: dict[str, int],
    query: dict[str, str],
    expected: tuple[list[int], int],
) -> None:
    params = dict(THAT_DAY)
    for name, value in query.items():
        if name in ("agent", "team"):
            params[f"{name}_id"] = str(answers[value])
        else:
            params[name] = value
    body = await report(reports, supervisor, **params)
    scores, recoveries = expected
    assert body["overall"] == block(scores, recoveries)
    assert sum(group["responses"] for group in body["by_agent"]) == len(scores)
    assert sum(group["responses"] for group in body["by_tier"]) == len(scores)


async def test_an_empty_range_has_zeros_and_no_groups(
    reports: Client, supervisor: dict[str, str], answers: dict[str, int]
) -> None:
    body = await report(reports, supervisor, **{"from": "2025-01-01", "to": "2025-02-01"})
    assert body["overall"] == {
        "responses": 0,
        "average": None,
        "distribution": {"1": 0, "2": 0, "3": 0, "4": 0, "5": 0},
        "recoveries": 0,
    }
    assert (body["by_tier"], body["by_channel"], body["by_agent"], body["by_team"]) == (
        [],
        [],
        [],
        [],
    )


async def test_the_default_range_is_the_30_days_up_to_now(
    reports: Client, supervisor: dict[str, str], db: asyncpg.Pool, clock: Clock
) -> None:
    await scored(db, 4, T0 - HOUR)
    await scored(db, 2, T0 - 29 * DAY)
    await scored(db, 1, T0 - 31 * DAY)
    await scored(db, 5, T0 + HOUR)  # later than now
    body = await report(reports, supervisor)
    assert body["from"] == (T0 - 30 * DAY).isoformat()
    assert body["to"] == T0.isoformat()
    assert body["overall"] == block([4, 2])
    # offsets are read as instants
    body = await report(
        reports, supervisor, **{"from": "2026-11-23T16:30:00+08:00", "to": "2026-11-23T17:30+08:00"}
    )
    assert body["overall"] == block([4])


async def test_an_answer_recorded_by_the_product_is_in_the_report(
    reports: Client, supervisor: dict[str, str], conns: Conns, db: asyncpg.Pool
) -> None:
    support = await team(db, "Support")
    agent_id, _ = await make_agent(db, name="Li Lei", team="Support")
    await db.execute("UPDATE care_settings SET recovery_threshold = 2, survey_valid_days = 14")
    contact_id = await db.fetchval("INSERT INTO contacts (name) VALUES ('c') RETURNING id")
    conversation_id = await db.fetchval(
        "INSERT INTO conversations (contact_id, channel, status, team_id, assignee_id, tier)"
        " VALUES ($1, 'email', 'resolved', $2, $3, 3) RETURNING id",
        contact_id,
        support,
        agent_id,
    )
    care_send_id = await db.fetchval(
        "INSERT INTO care_sends (kind, occasion, contact_id, conversation_id, channel, due_at,"
        " status, sent_at) VALUES ('follow_up', 'x', $1, $2, 'email', $3, 'sent', $3)"
        " RETURNING id",
        contact_id,
        conversation_id,
        T0 - DAY,
    )
    async with db.acquire() as conn, conn.transaction():
        outcome = await satisfaction.record(conn, care_send_id, 3, "ok", "link", T0 - HOUR)
    await satisfaction.after_commit(conns, outcome)
    body = await report(reports, supervisor, **THAT_DAY)
    assert body["overall"] == block([3])
    assert body["by_agent"] == [{"agent_id": agent_id, "agent_name": "Li Lei", **block([3])}]
    assert body["by_tier"] == [{"tier": 3, **block([3])}]
    assert body["by_channel"] == [{"channel": "email", **block([3])}]
    assert body["by_team"] == [{"team_id": support, "team_name": "Support", **block([3])}]


async def test_supervisors_and_admins_read_it_agents_do_not(
    reports: Client, supervisor: dict[str, str], admin: dict[str, str], db: asyncpg.Pool
) -> None:
    _, agent_token = await make_agent(db, name="Agent")
    for headers in (supervisor, admin):
        status, _ = await call(reports, "GET", REPORT, headers)
        assert status == 200
    status, body = await call(reports, "GET", REPORT, bearer(agent_token))
    assert (status, error_code(body)) == (403, "forbidden")
    status, body = await call(reports, "GET", REPORT, {})
    assert (status, error_code(body)) == (401, "missing_token")


@pytest.mark.parametrize(
    ("query", "code", "field"),
    [
        ({"tier": "5"}, "invalid_tier", "tier"),
        ({"channel": "fax"}, "invalid_channel", "channel"),
        ({"agent_id": "Ann"}, "invalid_agent_id", "agent_id"),
        ({"agent_id": "0"}, "invalid_agent_id", "agent_id"),
        ({"team_id": "-1"}, "invalid_team_id", "team_id"),
        ({"from": "yesterday"}, "invalid_date", "from"),
        ({"to": "2026-11-23T10:00:00"}, "invalid_date", "to"),
        ({"from": "2026-11-24", "to": "2026-11-23"}, "invalid_range", "from"),
        ({"from": "2024-01-01", "to": "2026-01-01"}, "invalid_range", "from"),
    ],
)
async def test_bad_parameters_are_refused_with_their_code(
    reports: Client,
    supervisor: dict[str, str],
    query: dict[str, str],
    code: str,
    field: str,
) -> None:
    response = await reports.get(REPORT, params=query, headers=supervisor)
    body = await response.json()
    assert response.status == 422
    assert (body["error"]["code"], body["error"]["details"]["field"]) == (code, field)
