"""Routing and assignment against real PostgreSQL, Redis and arq workers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient
from arq.connections import ArqRedis

from contactcenter import jobs
from contactcenter.clock import utc_now
from contactcenter.conns import Conns
from contactcenter.domain.enums import Channel, IdentityKind
from contactcenter.domain.messages import Identity, InboundMessage
from contactcenter.embedded import free_port
from contactcenter.services.ingest import ingest
from contactcenter.settings import Settings
from tests.helpers import (
    bearer,
    eventually,
    make_agent,
    make_worker,
    new_client_id,
    start_chat,
    stop_worker,
)
from tests.routing_helpers import loads

RunJobs = Callable[..., Awaitable[int]]


def inbound(n: int) -> InboundMessage:
    return InboundMessage(
        channel=Channel.WEB,
        external_id=f"new:{new_client_id()}",
        text=f"message {n}",
        identities=(Identity(IdentityKind.WEB, new_client_id()),),
    )


async def capacities(db: asyncpg.Pool) -> dict[int, int]:
    return {r["id"]: r["capacity"] for r in await db.fetch("SELECT id, capacity FROM agents")}


async def test_capacity_holds_while_several_workers_race(
    conns: Conns, db: asyncpg.Pool, settings: Settings
) -> None:
    # two teams share two of the agents, so fills of both teams compete for the same slots
    async with db.acquire() as conn:
        await conn.execute("INSERT INTO teams (name) VALUES ('Billing')")
    shared = [await make_agent(db, capacity=2) for _ in range(2)]
    for agent_id, _ in shared:
        await db.execute(
            "INSERT INTO team_members (team_id, agent_id) "
            "SELECT id, $1 FROM teams WHERE name = 'Billing'",
            agent_id,
        )
    for capacity in (1, 3, 2):
        await make_agent(db, capacity=capacity)
    for _ in range(2):
        await make_agent(db, team="Billing", capacity=2)
    total_capacity = sum((await capacities(db)).values())

    results = await asyncio.gather(*(ingest(conns, inbound(n)) for n in range(80)))
    # half of them belong to Billing; a rule would decide that, here SQL does
    billing_ids = [r.conversation_id for r in results[::2]]
    await db.execute(
        "UPDATE conversations SET team_id = (SELECT id FROM teams WHERE name = 'Billing') "
        "WHERE id = ANY($1::bigint[])",
        billing_ids,
    )
    # and every fill is asked for many times over, to make the workers collide
    for _ in range(20):
        for team in await db.fetch("SELECT id FROM teams"):
            await jobs.enqueue_assign_waiting(conns, [team["id"]])

    workers = [make_worker(settings, burst=True, max_jobs=10) for _ in range(4)]
    try:
        await asyncio.gather(*(worker.async_run() for worker in workers))
    finally:
        for worker in workers:
            await worker.close()

    current, limits = await loads(db), await capacities(db)
    assert all(current[a] <= limits[a] for a in limits), (current, limits)
    # and nobody idles while work waits: every slot is filled
    assert sum(current.values()) == total_capacity
    waiting = await db.fetchval(
        "SELECT count(*) FROM conversations WHERE assignee_id IS NULL AND waiting_since IS NOT NULL"
    )
    assert waiting == 80 - total_capacity
    assert (
        await db.fetchval("SELECT count(*) FROM conversations WHERE route_requested_at IS NOT NULL")
        == 0
    )


async def test_an_agent_who_comes_online_takes_the_longest_waiting(
    client: TestClient[Any, Any], db: asyncpg.Pool, run_jobs: RunJobs
) -> None:
    agent_id, token = await make_agent(db, capacity=2, online=False)
    chats = [await start_chat(client, f"question {n}") for n in range(3)]
    await run_jobs()
    assert (
        await db.fetchval("SELECT count(*) FROM conversations WHERE waiting_since IS NOT NULL") == 3
    )

    answer = await client.put(
        "/v1/agents/me/presence", json={"status": "online"}, headers=bearer(token)
    )
    assert answer.status == 200
    await run_jobs()

    mine = await db.fetch(
        "SELECT id FROM conversations WHERE assignee_id = $1 ORDER BY id", agent_id
    )
    assert [r["id"] for r in mine] == [chats[0]["conversation_id"], chats[1]["conversation_id"]]


async def test_a_resolution_frees_the_slot_for_the_next_in_line(
    client: TestClient[Any, Any], db: asyncpg.Pool, run_jobs: RunJobs
) -> None:
    agent_id, token = await make_agent(db, capacity=1)
    first, second = await start_chat(client, "first"), await start_chat(client, "second")
    await run_jobs()
    assert (
        await db.fetchval(
            "SELECT assignee_id FROM conversations WHERE id = $1", first["conversation_id"]
        )
        == agent_id
    )
    assert (
        await db.fetchval(
            "SELECT assignee_id FROM conversations WHERE id = $1", second["conversation_id"]
        )
        is None
    )

    resolved = await client.post(
        f"/v1/conversations/{first['conversation_id']}/status",
        json={"status": "resolved"},
        headers=bearer(token),
    )
    assert resolved.status == 200
    await run_jobs()
    assert (
        await db.fetchval(
            "SELECT assignee_id FROM conversations WHERE id = $1", second["conversation_id"]
        )
        == agent_id
    )


async def test_a_customer_writing_after_resolution_reopens_and_routes_again(
    client: TestClient[Any, Any], db: asyncpg.Pool, run_jobs: RunJobs
) -> None:
    agent_id, token = await make_agent(db, capacity=1)
    chat = await start_chat(client)
    conversation_id = chat["conversation_id"]
    await run_jobs()
    await client.post(
        f"/v1/conversations/{conversation_id}/status",
        json={"status": "resolved"},
        headers=bearer(token),
    )
    again = await client.post(
        f"/v1/web/conversations/{conversation_id}/messages",
        json={"text": "It broke again", "client_message_id": new_client_id()},
        headers=bearer(chat["visitor_token"]),
    )
    assert again.status == 201
    row = await db.fetchrow(
        "SELECT status, assignee_id FROM conversations WHERE id = $1", conversation_id
    )
    assert (row["status"], row["assignee_id"]) == ("open", None)
    await run_jobs()
    assert (
        await db.fetchval("SELECT assignee_id FROM conversations WHERE id = $1", conversation_id)
        == agent_id
    )


async def test_the_reconciler_routes_work_whose_job_was_lost(
    conns: Conns, db: asyncpg.Pool, redis: ArqRedis, settings: Settings
) -> None:
    agent_id, _ = await make_agent(db)
    # Redis is away while the message arrives: the ingest still commits and answers
    dead = ArqRedis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.2)
    try:
        offline = Conns(db=db, redis=dead, settings=settings)
        lost = await ingest(offline, inbound(1))
    finally:
        await dead.aclose()
    # a second one is enqueued, then Redis loses everything
    flushed = await ingest(conns, inbound(2))
    await redis.flushdb()
    assert await redis.zcard("arq:queue") == 0

    later = utc_now() + timedelta(seconds=settings.reconcile_after_seconds + 1)
    worker = make_worker(settings, cron=True, burst=True, clock=lambda: later)
    try:
        await worker.async_run()
    finally:
        await worker.close()

    assigned = await db.fetch(
        "SELECT id FROM conversations WHERE assignee_id = $1 ORDER BY id", agent_id
    )
    assert [r["id"] for r in assigned] == [lost.conversation_id, flushed.conversation_id]


async def test_a_route_job_run_twice_changes_nothing_the_second_time(
    conns: Conns, db: asyncpg.Pool, run_jobs: RunJobs
) -> None:
    agent_id, _ = await make_agent(db)
    result = await ingest(conns, inbound(1))
    await run_jobs()
    before = dict(
        await db.fetchrow("SELECT * FROM conversations WHERE id = $1", result.conversation_id)
    )
    await conns.redis.enqueue_job(jobs.ROUTE_CONVERSATION, result.conversation_id, _job_id="again")
    assert await run_jobs() == 1
    after = dict(
        await db.fetchrow("SELECT * FROM conversations WHERE id = $1", result.conversation_id)
    )
    assert after == before
    assert after["assignee_id"] == agent_id


async def test_a_snoozed_conversation_wakes_when_its_time_comes(
    client: TestClient[Any, Any], db: asyncpg.Pool, settings: Settings, run_jobs: RunJobs
) -> None:
    _, token = await make_agent(db)
    chat = await start_chat(client)
    conversation_id = chat["conversation_id"]
    await run_jobs()
    until = utc_now() + timedelta(hours=1)
    snoozed = await client.post(
        f"/v1/conversations/{conversation_id}/status",
        json={"status": "snoozed", "until": until.isoformat()},
        headers=bearer(token),
    )
    assert snoozed.status == 200
    assert (
        await db.fetchval("SELECT status FROM conversations WHERE id = $1", conversation_id)
        == "snoozed"
    )

    worker = make_worker(
        settings, cron=True, burst=True, clock=lambda: until + timedelta(seconds=1)
    )
    try:
        await worker.async_run()
    finally:
        await worker.close()
    assert (
        await db.fetchval("SELECT status FROM conversations WHERE id = $1", conversation_id)
        == "open"
    )


async def test_reopening_goes_back_through_routing_and_never_over_capacity(
    client: TestClient[Any, Any], db: asyncpg.Pool, run_jobs: RunJobs
) -> None:
    agent_id, token = await make_agent(db, capacity=1)
    first, second = await start_chat(client, "first"), await start_chat(client, "second")
    await run_jobs()
    await client.post(
        f"/v1/conversations/{first['conversation_id']}/status",
        json={"status": "resolved"},
        headers=bearer(token),
    )
    await run_jobs()  # the freed slot went to the second conversation
    reopened = await client.post(
        f"/v1/conversations/{first['conversation_id']}/status",
        json={"status": "open"},
        headers=bearer(token),
    )
    assert reopened.status == 200
    assert (await reopened.json())["assignee_id"] is None
    await run_jobs()
    assert (await loads(db))[agent_id] == 1
    row = await db.fetchrow(
        "SELECT assignee_id, waiting_since FROM conversations WHERE id = $1",
        first["conversation_id"],
    )
    assert row["assignee_id"] is None and row["waiting_since"] is not None

    # a resolved conversation is reopened, not moved to another status directly
    await client.post(
        f"/v1/conversations/{second['conversation_id']}/status",
        json={"status": "resolved"},
        headers=bearer(token),
    )
    pending = await client.post(
        f"/v1/conversations/{second['conversation_id']}/status",
        json={"status": "pending"},
        headers=bearer(token),
    )
    assert pending.status == 409
    assert (await pending.json())["error"]["code"] == "invalid_transition"


async def test_with_no_team_to_go_to_routing_stays_due(
    conns: Conns, db: asyncpg.Pool, run_jobs: RunJobs
) -> None:
    await db.execute("UPDATE teams SET is_default = false")
    result = await ingest(conns, inbound(1))
    await run_jobs()
    row = await db.fetchrow(
        "SELECT route_requested_at, waiting_since FROM conversations WHERE id = $1",
        result.conversation_id,
    )
    # not parked in a queue nobody serves: the reconciler keeps trying
    assert row["route_requested_at"] is not None and row["waiting_since"] is None
    await db.execute("UPDATE teams SET is_default = true")
    agent_id, _ = await make_agent(db)
    await conns.redis.enqueue_job(jobs.ROUTE_CONVERSATION, result.conversation_id)
    await run_jobs()
    assert (
        await db.fetchval(
            "SELECT assignee_id FROM conversations WHERE id = $1", result.conversation_id
        )
        == agent_id
    )


async def test_replies_while_the_queue_is_being_assigned_never_deadlock(
    client: TestClient[Any, Any], db: asyncpg.Pool, settings: Settings, run_jobs: RunJobs
) -> None:
    """A reply holds its conversation and checks its author's agent row; an assignment holds
    the agent and waits for the conversation. Both must go through, many times over."""
    agent_id, token = await make_agent(db, capacity=40, online=False)
    chats = [await start_chat(client, f"question {n}") for n in range(30)]
    await run_jobs()  # all wait in the team's queue
    worker = make_worker(settings, max_jobs=20)
    running = asyncio.create_task(worker.async_run())
    try:
        online = client.put(
            "/v1/agents/me/presence", json={"status": "online"}, headers=bearer(token)
        )
        replies = [
            client.post(
                f"/v1/conversations/{chat['conversation_id']}/replies",
                json={"text": "On it"},
                headers=bearer(token),
            )
            for chat in chats
        ]
        answers = await asyncio.gather(online, *replies)
        assert [a.status for a in answers] == [200] + [202] * len(chats)

        async def all_assigned() -> bool:
            count = await db.fetchval(
                "SELECT count(*) FROM conversations WHERE assignee_id = $1", agent_id
            )
            return bool(count == len(chats))

        await eventually(all_assigned)
    finally:
        await stop_worker(worker, running)
