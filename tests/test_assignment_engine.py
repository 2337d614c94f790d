"""The assignment engine against real PostgreSQL: tiers first, skills, per-channel capacity,
strategies, stickiness and overflow with a controlled clock, transfers, and explanations."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from contactcenter.conns import Conns
from contactcenter.domain.enums import Role
from contactcenter.services import assignment, reconcile, routing
from contactcenter.settings import Settings
from tests.helpers import bearer, eventually, make_agent, make_worker, stop_worker
from tests.routing_helpers import (
    Clock,
    assignee,
    clocked,
    customer_writes,
    default_team,
    explanation,
    loads,
    route_all,
    rule,
    set_agent,
    team,
)

RunJobs = Callable[..., Awaitable[int]]


async def test_the_top_tier_is_served_first_by_several_racing_workers(
    conns: Conns, db: asyncpg.Pool, settings: Settings
) -> None:
    # agents are away while 60 customers of every tier write in
    staff = [await make_agent(db, capacity=c, online=False) for c in (2, 3, 4)]
    written = [await customer_writes(conns, f"m{n}", tier=1 + n % 4) for n in range(60)]
    await route_all(conns, [c for c, _ in written])
    assert all(v == 0 for v in (await loads(db)).values())

    # they come online at once, while three workers race to fill the team
    workers = [make_worker(settings, max_jobs=5) for _ in range(3)]
    tasks = [asyncio.create_task(w.async_run()) for w in workers]
    try:
        await asyncio.gather(
            *(
                db.execute("UPDATE agents SET presence = 'online' WHERE id = $1", agent_id)
                for agent_id, _ in staff
            )
        )
        for agent_id, _ in staff:
            await assignment.fill_for_agent(conns, agent_id)
        for _ in range(3):
            await reconcile.reconcile(conns)  # more fills racing the same slots

        async def all_filled() -> bool:
            return sum((await loads(db)).values()) == 9

        await eventually(all_filled)
    finally:
        for worker, task in zip(workers, tasks, strict=True):
            await stop_worker(worker, task)

    per_agent = await loads(db)
    assert [per_agent[a] for a, _ in staff] == [2, 3, 4]
    served = await db.fetch("SELECT id, tier FROM conversations WHERE assignee_id IS NOT NULL")
    # nine slots, fifteen platinum customers: only platinum was served
    assert {r["tier"] for r in served} == {1}
    # and within the tier, those who had waited longest (they wrote first)
    platinum = [c for n, (c, _) in enumerate(written) if n % 4 == 0]
    assert sorted(r["id"] for r in served) == platinum[:9]


async def test_skills_must_match_and_a_channel_limit_holds(conns: Conns, db: asyncpg.Pool) -> None:
    billing = await team(db, "Billing", skills=["billing"])
    generalist, _ = await make_agent(db, team="Billing", capacity=5)
    specialist, _ = await make_agent(db, team="Billing", capacity=5, online=False)
    await set_agent(db, specialist, skills=["billing", "mandarin"], channel_capacity={"web": 1})
    first, _ = await customer_writes(conns, "one")
    second, _ = await customer_writes(conns, "two")
    await db.execute("UPDATE conversations SET team_id = $1", billing)
    await route_all(conns, [first, second])
    # the generalist lacks the team's skill; the specialist is away
    assert await assignee(db, first) is None
    assert generalist not in (await loads(db)) or (await loads(db))[generalist] == 0

    await db.execute("UPDATE agents SET presence = 'online' WHERE id = $1", specialist)
    await assignment.assign_waiting(conns, billing)
    # one web conversation at a time for the specialist, though five in all
    assert await assignee(db, first) == specialist
    assert await assignee(db, second) is None


async def test_round_robin_takes_turns_whatever_the_load(conns: Conns, db: asyncpg.Pool) -> None:
    rr = await team(db, "Rota", strategy="round_robin")
    a, _ = await make_agent(db, team="Rota", capacity=10)
    b, _ = await make_agent(db, team="Rota", capacity=10)
    written = [await customer_writes(conns, f"r{n}") for n in range(6)]
    await db.execute("UPDATE conversations SET team_id = $1", rr)
    await route_all(conns, [c for c, _ in written])
    order = [await assignee(db, c) for c, _ in written]
    assert order.count(a) == 3 and order.count(b) == 3
    assert all(x != y for x, y in itertools.pairwise(order))


async def test_the_account_manager_is_waited_for_then_the_team_takes_over(
    conns: Conns, db: asyncpg.Pool
) -> None:
    clock = Clock()
    timed = clocked(conns, clock)
    await db.execute("UPDATE teams SET sticky_wait_seconds = 120 WHERE is_default")
    manager, _ = await make_agent(db, name="Manager", team=None, capacity=1)
    # the manager is not in the team, and busy
    await db.execute("DELETE FROM team_members WHERE agent_id = $1", manager)
    colleague, _ = await make_agent(db, name="Colleague", capacity=5)
    busy, contact = await customer_writes(timed, "first")
    await db.execute("UPDATE conversations SET assignee_id = $2 WHERE id = $1", busy, manager)
    await db.execute("UPDATE contacts SET account_manager_id = $2 WHERE id = $1", contact, manager)
    await rule(db, "Key accounts", [{"type": "account_manager"}])

    conversation, _ = await customer_writes(timed, "a new question", contact_id=contact)
    await routing.route_conversation(timed, conversation)
    assert await assignee(db, conversation) is None  # waits for the manager

    clock.advance(119)
    await reconcile.reconcile(timed)
    await assignment.assign_waiting(timed, await default_team(db))
    assert await assignee(db, conversation) is None

    clock.advance(2)
    await assignment.assign_waiting(timed, await default_team(db))
    assert await assignee(db, conversation) == colleague
    why = await explanation(db, conversation)
    assert why["preferred"]["reason"] == "account_manager"
    assert why["assignment"]["reason"] == "least_loaded"


async def test_a_free_account_manager_takes_their_customer_at_once(
    conns: Conns, db: asyncpg.Pool
) -> None:
    await db.execute("UPDATE teams SET sticky_wait_seconds = 300 WHERE is_default")
    manager, _ = await make_agent(db, name="Manager", capacity=2)
    await db.execute("DELETE FROM team_members WHERE agent_id = $1", manager)
    await make_agent(db, name="Colleague", capacity=5)
    await rule(db, "Key accounts", [{"type": "account_manager"}])
    _, contact = await customer_writes(conns, "hello", tier=1)
    await db.execute("UPDATE contacts SET account_manager_id = $2 WHERE id = $1", contact, manager)
    conversation, _ = await customer_writes(conns, "again", contact_id=contact)
    await routing.route_conversation(conns, conversation)
    assert await assignee(db, conversation) == manager
    assert (await explanation(db, conversation))["assignment"]["reason"] == "account_manager"


async def test_the_agent_who_last_served_the_customer_gets_them_again(
    conns: Conns, db: asyncpg.Pool, client: TestClient[Any, Any]
) -> None:
    first_agent, token = await make_agent(db, name="First", capacity=5)
    conversation, contact = await customer_writes(conns, "hello")
    await routing.route_conversation(conns, conversation)
    assert await assignee(db, conversation) == first_agent
    reply = await client.post(
        f"/v1/conversations/{conversation}/replies", json={"text": "hi"}, headers=bearer(token)
    )
    assert reply.status == 202
    resolved = await client.post(
        f"/v1/conversations/{conversation}/status",
        json={"status": "resolved"},
        headers=bearer(token),
    )
    assert resolved.status == 200
    # another agent, less loaded, joins; the customer comes back on a new conversation
    other, _ = await make_agent(db, name="Other", capacity=5)
    await db.execute(
        "UPDATE agents SET served_seq = 0, last_assigned_at = NULL WHERE id = $1", other
    )
    again, _ = await customer_writes(conns, "me again", contact_id=contact)
    await routing.route_conversation(conns, again)
    assert await assignee(db, again) == first_agent
    assert (await explanation(db, again))["assignment"]["reason"] == "last_agent"


async def test_a_team_overflows_after_its_wait(conns: Conns, db: asyncpg.Pool) -> None:
    clock = Clock()
    timed = clocked(conns, clock)
    seniors = await team(db, "Seniors")
    await db.execute(
        "UPDATE teams SET overflow_team_id = $1, overflow_after_seconds = 300 WHERE is_default",
        seniors,
    )
    senior, _ = await make_agent(db, team="Seniors", capacity=3)
    conversation, _ = await customer_writes(timed, "anyone there?")
    await routing.route_conversation(timed, conversation)
    assert await assignee(db, conversation) is None  # the default team has nobody

    clock.advance(299)
    assert (await reconcile.reconcile(timed)).overflowed == 0
    clock.advance(1)
    report = await reconcile.reconcile(timed)
    assert report.overflowed == 1
    assert seniors in report.teams_filled
    await assignment.assign_waiting(timed, seniors)
    assert await assignee(db, conversation) == senior
    why = await explanation(db, conversation)
    assert why["overflows"][0]["to_team_id"] == seniors


async def test_a_transfer_moves_work_and_frees_the_slot_at_once(
    conns: Conns, db: asyncpg.Pool, client: TestClient[Any, Any], run_jobs: RunJobs
) -> None:
    seniors = await team(db, "Seniors")
    agent, agent_token = await make_agent(db, capacity=1)
    senior, _ = await make_agent(db, team="Seniors", capacity=1)
    _, supervisor = await make_agent(db, role=Role.SUPERVISOR, capacity=0, online=False)
    mine, _ = await customer_writes(conns, "first")
    waiting, _ = await customer_writes(conns, "second")
    await route_all(conns, [mine, waiting])
    assert await assignee(db, mine) == agent and await assignee(db, waiting) is None

    # an agent may pass work to a team, not to another person
    refused = await client.post(
        f"/v1/conversations/{mine}/assign", json={"agent_id": senior}, headers=bearer(agent_token)
    )
    assert refused.status == 403
    moved = await client.post(
        f"/v1/conversations/{mine}/assign", json={"team_id": seniors}, headers=bearer(agent_token)
    )
    assert moved.status == 200, await moved.text()
    await run_jobs()
    # the senior took it, and the agent's freed slot took the next waiting conversation
    assert await assignee(db, mine) == senior
    assert await assignee(db, waiting) == agent

    full = await client.post(
        f"/v1/conversations/{waiting}/assign", json={"agent_id": senior}, headers=bearer(supervisor)
    )
    assert full.status == 409
    assert (await full.json())["error"]["code"] == "agent_at_capacity"
    unknown = await client.post(
        f"/v1/conversations/{waiting}/assign", json={"team_id": 999999}, headers=bearer(supervisor)
    )
    assert unknown.status == 422
    assert await assignee(db, waiting) == agent


async def test_presence_online_serves_what_waits_for_the_agent_at_once(
    conns: Conns, db: asyncpg.Pool, client: TestClient[Any, Any], run_jobs: RunJobs
) -> None:
    agent, token = await make_agent(db, capacity=2, online=False)
    conversation, _ = await customer_writes(conns, "hello")
    await routing.route_conversation(conns, conversation)
    assert await assignee(db, conversation) is None
    response = await client.put(
        "/v1/agents/me/presence", json={"status": "online"}, headers=bearer(token)
    )
    assert response.status == 200
    await run_jobs()
    assert await assignee(db, conversation) == agent


async def test_the_sla_policy_is_the_rules_else_the_tiers_default(
    conns: Conns, db: asyncpg.Pool
) -> None:
    standard, fast = [
        int(
            await db.fetchval(
                "INSERT INTO sla_policies (name, first_response_seconds) VALUES ($1, $2)"
                " RETURNING id",
                name,
                seconds,
            )
        )
        for name, seconds in (("Standard", 3600), ("Platinum fast lane", 600))
    ]
    await db.execute("UPDATE tiers SET sla_policy_id = $1 WHERE rank = 1", standard)
    platinum, _ = await customer_writes(conns, "hello", tier=1)
    bronze, _ = await customer_writes(conns, "hello", tier=4)
    await route_all(conns, [platinum, bronze])
    policies = dict(
        await db.fetch(
            "SELECT id, sla_policy_id FROM conversations WHERE id = ANY($1::bigint[])",
            [platinum, bronze],
        )
    )
    assert policies == {platinum: standard, bronze: None}
    assert (await explanation(db, platinum))["sla_policy"] == {"id": standard, "source": "tier"}
    assert (await explanation(db, bronze))["sla_policy"] is None

    await rule(db, "Complaints fast", [{"type": "sla_policy", "sla_policy_id": fast}])
    again, _ = await customer_writes(conns, "hello again", tier=1)
    await routing.route_conversation(conns, again)
    assert (await explanation(db, again))["sla_policy"] == {"id": fast, "source": "rule"}
