"""What the inbox shows of the SLA: the state in the list, `?sla=at_risk|breached` to find what
needs attention, and the clocks and events in the conversation's detail."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from contactcenter.conns import Conns
from contactcenter.domain.enums import Role
from contactcenter.services import sla
from tests.helpers import bearer, error_code, make_agent
from tests.routing_helpers import T0, Clock, clocked, customer_writes, route_all


async def _policy(db: asyncpg.Pool) -> int:
    """First response in 10 minutes, warning at 50 %, every second counted."""
    policy_id = await db.fetchval(
        "INSERT INTO sla_policies (name, first_response_seconds, clock, warning_percent)"
        " VALUES ('Ten minutes', 600, 'calendar', 50) RETURNING id"
    )
    await db.execute("UPDATE tiers SET sla_policy_id = $1", policy_id)
    return int(policy_id)


async def _inbox(client: TestClient, token: str, query: str) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/inbox?{query}", headers=bearer(token))
    assert response.status == 200, await response.text()
    items: list[dict[str, Any]] = (await response.json())["items"]
    return items


async def test_the_inbox_finds_conversations_at_risk_and_breached(
    client: TestClient, db: asyncpg.Pool, conns: Conns
) -> None:
    await _policy(db)
    _, token = await make_agent(db, role=Role.SUPERVISOR)
    clock = Clock()
    timed = clocked(conns, clock)
    breached, _ = await customer_writes(timed, "first")
    clock.advance(240)
    at_risk, _ = await customer_writes(timed, "second")
    clock.advance(120)
    calm, _ = await customer_writes(timed, "third")
    await route_all(timed, [breached, at_risk, calm])

    # 10:10: the first is past its 10 minutes, the second (10:04) past its 5-minute warning,
    # the third (10:06) not yet
    clock.advance(240)
    for conversation_id in (breached, at_risk, calm):
        await sla.fire(timed, conversation_id)

    states = {i["id"]: i["sla_state"] for i in await _inbox(client, token, "view=all")}
    assert states == {breached: "breached", at_risk: "at_risk", calm: "ok"}
    assert [i["id"] for i in await _inbox(client, token, "sla=breached")] == [breached]
    assert [i["id"] for i in await _inbox(client, token, "sla=at_risk")] == [at_risk]
    both = {i["id"] for i in await _inbox(client, token, "sla=at_risk,breached")}
    assert both == {breached, at_risk}


async def test_an_unknown_sla_filter_is_refused(client: TestClient, db: asyncpg.Pool) -> None:
    _, token = await make_agent(db)
    response = await client.get("/v1/inbox?sla=late", headers=bearer(token))
    assert response.status == 422
    assert error_code(await response.json()) == "invalid_query"


async def test_the_detail_shows_the_clocks_and_what_fired(
    client: TestClient, db: asyncpg.Pool, conns: Conns
) -> None:
    policy_id = await _policy(db)
    _, token = await make_agent(db, role=Role.SUPERVISOR)
    clock = Clock()
    timed = clocked(conns, clock)
    conversation_id, _ = await customer_writes(timed, "hello")
    await route_all(timed, [conversation_id])
    clock.advance(300)
    await sla.fire(timed, conversation_id)

    response = await client.get(f"/v1/conversations/{conversation_id}", headers=bearer(token))
    assert response.status == 200
    shown = (await response.json())["sla"]
    assert shown["policy"] == {"id": policy_id, "name": "Ten minutes"}
    assert shown["state"] == "at_risk"
    assert shown["first_response"]["due_at"] == "2026-11-23T10:10:00+00:00"
    assert shown["resolution"]["paused"] is False
    assert [(e["kind"], e["stage"], e["due_at"]) for e in shown["events"]] == [
        ("first_response", "warning", "2026-11-23T10:05:00+00:00")
    ]


async def test_a_conversation_without_a_policy_has_no_sla(
    client: TestClient, db: asyncpg.Pool, conns: Conns
) -> None:
    _, token = await make_agent(db, role=Role.SUPERVISOR)
    conversation_id, _ = await customer_writes(conns, "hello")
    await route_all(conns, [conversation_id])
    response = await client.get(f"/v1/conversations/{conversation_id}", headers=bearer(token))
    assert (await response.json())["sla"] is None
    listed = await _inbox(client, token, "view=all")
    assert [(i["id"], i["sla_state"], i["sla_due_at"]) for i in listed] == [
        (conversation_id, "ok", None)
    ]


async def test_the_inbox_lists_by_priority_then_the_nearest_due_time_across_pages(
    client: TestClient, db: asyncpg.Pool, conns: Conns
) -> None:
    """API.md: ordered by priority, then nearest SLA due time (none last), then age; the
    cursor carries all of it, so paging one at a time gives the same order."""
    _, token = await make_agent(db, role=Role.SUPERVISOR)
    clock = Clock()
    timed = clocked(conns, clock)
    ids = []
    for _ in range(5):
        conversation_id, _ = await customer_writes(timed, "hello")
        ids.append(conversation_id)
        clock.advance(60)
    oldest, later_due, sooner_due, urgent, no_due = ids
    when = {later_due: 50, sooner_due: 20, urgent: 60}
    for conversation_id, minutes in when.items():
        await db.execute(
            "UPDATE conversations SET sla_due_at = $2 WHERE id = $1",
            conversation_id,
            T0 + timedelta(minutes=minutes),
        )
    await db.execute("UPDATE conversations SET priority = 5 WHERE id = $1", urgent)
    expected = [urgent, sooner_due, later_due, oldest, no_due]
    assert [i["id"] for i in await _inbox(client, token, "view=all")] == expected
    paged, cursor = [], None
    while True:
        query = "view=all&limit=1" + (f"&cursor={cursor}" if cursor else "")
        response = await client.get(f"/v1/inbox?{query}", headers=bearer(token))
        body = await response.json()
        paged += [i["id"] for i in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert paged == expected
