"""The assignment engine's edges: transfers against stickiness, work nobody can take, deep
queues, preferred agents who cannot or no longer exist, and races of fills, transfers and
overflow that must never put an agent over capacity. Each found a bug in review once."""

from __future__ import annotations

import asyncio
import contextlib
import random
from datetime import timedelta
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from contactcenter.conns import Conns
from contactcenter.domain.agents import Agent
from contactcenter.domain.enums import Role
from contactcenter.domain.errors import Conflict
from contactcenter.services import assignment, reconcile, routing
from tests.helpers import bearer, make_agent
from tests.routing_helpers import (
    T0,
    Clock,
    assignee,
    clocked,
    customer_writes,
    default_team,
    rule,
    set_agent,
    team,
)


async def _serve_then_resolve(
    client: TestClient[Any, Any], conversation: int, token: str, text: str = "hi"
) -> None:
    reply = await client.post(
        f"/v1/conversations/{conversation}/replies", json={"text": text}, headers=bearer(token)
    )
    assert reply.status == 202, await reply.text()
    resolved = await client.post(
        f"/v1/conversations/{conversation}/status",
        json={"status": "resolved"},
        headers=bearer(token),
    )
    assert resolved.status == 200, await resolved.text()


# --- a transfer to a team is not undone by stickiness -------------------------------------


async def test_a_conversation_passed_to_a_team_does_not_bounce_back_to_its_sticky_agent(
    conns: Conns, db: asyncpg.Pool, client: TestClient[Any, Any]
) -> None:
    seniors = await team(db, "Seniors")
    first, token = await make_agent(db, name="First", capacity=5)
    senior, _ = await make_agent(db, name="Senior", team="Seniors", capacity=5)
    conversation, contact = await customer_writes(conns, "hello")
    await routing.route_conversation(conns, conversation)
    assert await assignee(db, conversation) == first
    await _serve_then_resolve(client, conversation, token)

    again, _ = await customer_writes(conns, "me again", contact_id=contact)
    await routing.route_conversation(conns, again)
    assert await assignee(db, again) == first  # sticky: the last agent

    # First passes it on to the seniors; the seniors' queue must not hand it straight back
    moved = await client.post(
        f"/v1/conversations/{again}/assign", json={"team_id": seniors}, headers=bearer(token)
    )
    assert moved.status == 200, await moved.text()
    await assignment.assign_waiting(conns, seniors)
    assert await assignee(db, again) == senior


# --- no head-of-line blocking: work nobody can take does not starve the rest ---------


async def _unservable(db: asyncpg.Pool, team_id: int, count: int, skills: list[str]) -> None:
    """`count` tier-1 conversations in the team's queue, waiting since before T0, needing
    `skills`."""
    contact = await db.fetchval("INSERT INTO contacts (name) VALUES ('hard') RETURNING id")
    await db.execute(
        """
        INSERT INTO conversations (contact_id, channel, team_id, tier, waiting_since, team_since,
                                   required_skills)
        SELECT $1, 'web', $2, 1, $3::timestamptz - make_interval(secs => n),
               $3::timestamptz, $4::text[]
        FROM generate_series(1, $5) AS n
        """,
        contact,
        team_id,
        T0 - timedelta(hours=1),
        skills,
        count,
    )


async def test_work_no_single_agent_can_take_does_not_starve_the_queue_behind_it(
    conns: Conns, db: asyncpg.Pool
) -> None:
    general = await default_team(db)
    li, _ = await make_agent(db, name="Li", capacity=5)
    bob, _ = await make_agent(db, name="Bob", capacity=5)
    await set_agent(db, li, skills=["mandarin"])
    await set_agent(db, bob, skills=["billing"])
    # the skills filter of LOCK_QUEUE_HEAD checks the UNION of the agents' skills: these pass
    # it, fill the LIMIT, and nobody can take them
    await _unservable(db, general, 100, ["billing", "mandarin"])
    easy, _ = await customer_writes(conns, "a simple question")
    await routing.route_conversation(conns, easy)
    for _ in range(3):  # the reconciler's fills do not help either
        await reconcile.reconcile(conns)
        await assignment.assign_waiting(conns, general)
    assert await assignee(db, easy) in (li, bob)


async def test_with_fewer_blocked_than_a_batch_the_queue_behind_is_served(
    conns: Conns, db: asyncpg.Pool
) -> None:
    """The control for the test above: 99 blocked conversations, and the 100th row is served."""
    general = await default_team(db)
    li, _ = await make_agent(db, name="Li", capacity=5)
    bob, _ = await make_agent(db, name="Bob", capacity=5)
    await set_agent(db, li, skills=["mandarin"])
    await set_agent(db, bob, skills=["billing"])
    await _unservable(db, general, 99, ["billing", "mandarin"])
    easy, _ = await customer_writes(conns, "a simple question")
    await routing.route_conversation(conns, easy)
    assert await assignee(db, easy) in (li, bob)


async def test_a_free_account_manager_gets_their_customer_from_deep_in_a_busy_queue(
    conns: Conns, db: asyncpg.Pool
) -> None:
    """PREFERRED_AT_HEAD looks at the first 100 of the queue only: an account manager whose
    customer waits behind them is never locked, so never offered the customer."""
    general = await default_team(db)
    await db.execute("UPDATE teams SET sticky_wait_seconds = 600 WHERE is_default")
    await make_agent(db, name="Busy member", capacity=0)  # the team has nobody free
    manager, _ = await make_agent(db, name="Manager", capacity=3)
    await db.execute("DELETE FROM team_members WHERE agent_id = $1", manager)
    await rule(db, "Key accounts", [{"type": "account_manager"}])
    await _unservable(db, general, 100, [])  # a backlog of 100, ahead by tier
    conversation, contact = await customer_writes(conns, "hello")
    await db.execute("UPDATE contacts SET account_manager_id = $2 WHERE id = $1", contact, manager)
    await routing.route_conversation(conns, conversation)
    await assignment.fill_for_agent(conns, manager)
    await assignment.assign_waiting(conns, general)
    assert await assignee(db, conversation) == manager


# --- nobody waits for a preferred agent who can never take the work --


async def test_a_last_agent_with_no_capacity_does_not_hold_the_customer_for_the_sticky_wait(
    conns: Conns, db: asyncpg.Pool, client: TestClient[Any, Any]
) -> None:
    clock = Clock()
    timed = clocked(conns, clock)
    await db.execute("UPDATE teams SET sticky_wait_seconds = 600 WHERE is_default")
    agent, token = await make_agent(db, name="Agent", capacity=5)
    _, supervisor_token = await make_agent(db, name="Supervisor", role=Role.SUPERVISOR, capacity=0)
    conversation, contact = await customer_writes(timed, "hello")
    await routing.route_conversation(timed, conversation)
    assert await assignee(db, conversation) == agent
    # the supervisor chimes in once; the agent resolves it
    chimed = await client.post(
        f"/v1/conversations/{conversation}/replies",
        json={"text": "I'm the supervisor, we'll fix it"},
        headers=bearer(supervisor_token),
    )
    assert chimed.status == 202
    resolved = await client.post(
        f"/v1/conversations/{conversation}/status",
        json={"status": "resolved"},
        headers=bearer(token),
    )
    assert resolved.status == 200

    again, _ = await customer_writes(timed, "me again", contact_id=contact)
    await routing.route_conversation(timed, again)
    # the supervisor (capacity 0) is "the last agent": the customer waits ten minutes for
    # someone who can never take it, while the agent who served them is free
    assert await assignee(db, again) == agent


# --- a deleted preferred agent does not hide the conversation ----


async def test_a_conversation_whose_preferred_agent_is_gone_is_served_by_the_team(
    conns: Conns, db: asyncpg.Pool
) -> None:
    clock = Clock()
    timed = clocked(conns, clock)
    await db.execute("UPDATE teams SET sticky_wait_seconds = 600 WHERE is_default")
    manager, _ = await make_agent(db, name="Manager", capacity=1)
    colleague, _ = await make_agent(db, name="Colleague", capacity=5)
    # the manager is busy with another customer
    busy, _ = await customer_writes(timed, "first")
    await db.execute(
        "UPDATE conversations SET assignee_id = $2, route_requested_at = NULL WHERE id = $1",
        busy,
        manager,
    )
    await rule(db, "Key accounts", [{"type": "account_manager"}])
    conversation, contact = await customer_writes(timed, "hello")
    await db.execute("UPDATE contacts SET account_manager_id = $2 WHERE id = $1", contact, manager)
    await db.execute(
        "UPDATE conversations SET route_requested_at = $2 WHERE id = $1", conversation, T0
    )
    await routing.route_conversation(timed, conversation)
    assert await assignee(db, conversation) is None  # waits for the busy manager: right

    # the manager leaves the company: ON DELETE SET NULL clears preferred_agent_id but keeps
    # preferred_until, and LOCK_QUEUE_HEAD's `preferred_agent_id = ANY(...)` is NULL for it
    await db.execute("UPDATE conversations SET assignee_id = NULL WHERE id = $1", busy)
    await db.execute("DELETE FROM agents WHERE id = $1", manager)
    await assignment.assign_waiting(timed, await default_team(db))
    assert await assignee(db, conversation) == colleague


# --- a conversation not routed yet can be given to an agent -----------------


async def test_a_supervisor_can_assign_a_conversation_that_was_not_routed_yet(
    conns: Conns, db: asyncpg.Pool, client: TestClient[Any, Any]
) -> None:
    agent, _ = await make_agent(db, capacity=5)
    _, supervisor = await make_agent(db, role=Role.SUPERVISOR, capacity=0)
    conversation, _ = await customer_writes(conns, "hello")  # the route job has not run
    response = await client.post(
        f"/v1/conversations/{conversation}/assign",
        json={"agent_id": agent},
        headers=bearer(supervisor),
    )
    # 422 unknown_team ("no such team") for a request that named no team
    assert response.status == 200, await response.text()
    assert await assignee(db, conversation) == agent


# --- races: capacity holds -------------------------------------------------------------


async def test_two_route_jobs_at_once_send_one_auto_reply(conns: Conns, db: asyncpg.Pool) -> None:
    await rule(db, "Thanks", [{"type": "auto_reply", "text": "Thanks, we got it"}])
    conversation, _ = await customer_writes(conns, "hello")
    results = await asyncio.gather(
        *(routing.route_conversation(conns, conversation) for _ in range(4))
    )
    assert sum(r is not None for r in results) == 1
    replies = await db.fetchval(
        "SELECT count(*) FROM messages WHERE conversation_id = $1 AND author_rule_id IS NOT NULL",
        conversation,
    )
    assert replies == 1


async def test_fills_of_teams_sharing_agents_transfers_and_overflow_never_exceed_capacity(
    conns: Conns, db: asyncpg.Pool
) -> None:
    """Invariant 4 where the team lock does not serialise: two teams sharing agents, filled
    at once, with supervisors' transfers and overflow moving work between them. No deadlock,
    no agent past their total or per-channel capacity."""
    rng = random.Random(5)
    clock = Clock()
    timed = clocked(conns, clock)
    north = await team(db, "North")
    south = await team(db, "South")
    await db.execute(
        "UPDATE teams SET overflow_team_id = $2, overflow_after_seconds = 1 WHERE id = $1",
        north,
        south,
    )
    staff = []
    for n in range(6):
        agent_id, _ = await make_agent(db, name=f"A{n}", team="North", capacity=1 + n % 3)
        await db.execute(
            "INSERT INTO team_members (team_id, agent_id) VALUES ($1, $2)", south, agent_id
        )
        if n % 2:
            await set_agent(db, agent_id, channel_capacity={"email": 1, "sms": 0})
        staff.append(agent_id)
    supervisor_id, _ = await make_agent(db, role=Role.SUPERVISOR, capacity=0, online=False)
    supervisor = Agent(supervisor_id, "S", "s@example.com", Role.SUPERVISOR, ())
    contact = await db.fetchval("INSERT INTO contacts (name) VALUES ('many') RETURNING id")
    ids = [
        int(r["id"])
        for r in await db.fetch(
            """
            INSERT INTO conversations (contact_id, channel, team_id, tier, waiting_since,
                                       team_since)
            SELECT $1, (ARRAY['web', 'email', 'sms'])[1 + n % 3],
                   CASE WHEN n % 2 = 0 THEN $2::bigint ELSE $3::bigint END, 1 + n % 4,
                   $4::timestamptz - make_interval(secs => n), $4::timestamptz
            FROM generate_series(1, 600) AS n
            RETURNING id
            """,
            contact,
            north,
            south,
            T0,
        )
    ]

    async def fill(team_id: int) -> None:
        await assignment.assign_waiting(timed, team_id)

    async def transfer() -> None:
        with contextlib.suppress(Conflict):  # agent_at_capacity, or no longer active
            await assignment.transfer(
                timed,
                supervisor,
                rng.choice(ids),
                assignment.Transfer(agent_id=rng.choice(staff), team_id=None),
            )

    async def overflow() -> None:
        await reconcile.reconcile(timed)

    for _ in range(50):
        clock.advance(2)
        work = [fill(north) for _ in range(4)] + [fill(south) for _ in range(4)]
        work += [transfer() for _ in range(12)] + [overflow()]
        rng.shuffle(work)
        await asyncio.gather(*work)
        # free some slots so the next round races again
        await db.execute(
            """
            UPDATE conversations SET status = 'resolved'
            WHERE id IN (SELECT id FROM conversations WHERE assignee_id IS NOT NULL
                         AND status = 'open' ORDER BY random() LIMIT 8)
            """
        )
        over = await db.fetch(
            """
            SELECT a.id, a.capacity, a.channel_capacity, c.channel, count(*) AS n,
                   sum(count(*)) OVER (PARTITION BY a.id) AS total
            FROM agents a JOIN conversations c ON c.assignee_id = a.id
            WHERE c.status IN ('open', 'pending', 'snoozed')
            GROUP BY a.id, c.channel
            """
        )
        for r in over:
            assert r["total"] <= r["capacity"], dict(r)
            limit = r["channel_capacity"].get(r["channel"])
            assert limit is None or r["n"] <= limit, dict(r)


async def test_two_teams_sharing_agents_filled_at_once_never_exceed_capacity(
    conns: Conns, db: asyncpg.Pool
) -> None:
    """The race the team lock cannot serialise: each round frees one slot per agent, then the
    two teams' fills race for it (without the agents' row locks both take it)."""
    north = await team(db, "North")
    south = await team(db, "South")
    staff = []
    for n in range(4):
        agent_id, _ = await make_agent(db, name=f"A{n}", team="North", capacity=2)
        await db.execute(
            "INSERT INTO team_members (team_id, agent_id) VALUES ($1, $2)", south, agent_id
        )
        staff.append(agent_id)
    contact = await db.fetchval("INSERT INTO contacts (name) VALUES ('many') RETURNING id")
    await db.execute(
        """
        INSERT INTO conversations (contact_id, channel, team_id, waiting_since, team_since)
        SELECT $1, 'web', CASE WHEN n % 2 = 0 THEN $2::bigint ELSE $3::bigint END,
               $4::timestamptz - make_interval(secs => n), $4::timestamptz
        FROM generate_series(1, 400) AS n
        """,
        contact,
        north,
        south,
        T0,
    )
    for _ in range(15):
        await asyncio.gather(
            assignment.assign_waiting(conns, north), assignment.assign_waiting(conns, south)
        )
        over = await db.fetch(
            """
            SELECT a.id, a.capacity, count(c.id) AS load FROM agents a
            JOIN conversations c ON c.assignee_id = a.id AND c.status = 'open'
            GROUP BY a.id HAVING count(c.id) > a.capacity
            """
        )
        assert over == [], [dict(r) for r in over]
        # one slot free per agent for the next round
        await db.execute(
            """
            UPDATE conversations SET status = 'resolved'
            WHERE id IN (SELECT DISTINCT ON (assignee_id) id FROM conversations
                         WHERE assignee_id IS NOT NULL AND status = 'open'
                         ORDER BY assignee_id, id)
            """
        )
