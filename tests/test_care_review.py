"""Review of issue 7 (scheduled care): failing tests that show real bugs.

1. An SMS digit sent to an agent in a NEW conversation (the customer wrote again after the
   follow-up visit went out) is hijacked as the old visit's score: it lands, automatic, in
   the resolved conversation, the agent never sees it, and a low digit opens a recovery.
2. A birthday task for an account manager who is in no team opens a conversation with no
   team, no assignee and no queue position: nobody ever sees it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from typing import Any

import asyncpg

from contactcenter.conns import Conns
from contactcenter.services import care
from tests.helpers import make_agent
from tests.routing_helpers import Clock, clocked, team
from tests.test_care import care_settings, contact, send_all_due, sends  # noqa: F401
from tests.test_surveys import (  # noqa: F401  (fixtures)
    DAY,
    clock,
    default_care_settings,
    resolved_sms_conversation,
    scores,
    sent_follow_up,
    sms_app,
    sms_settings,
    text,
    timed,
)


async def test_a_digit_answering_an_agent_in_a_new_conversation_is_not_a_score(
    text: Callable[[str], Awaitable[tuple[int, str]]],  # noqa: F811
    timed: Conns,  # noqa: F811
    db: asyncpg.Pool,
    clock: Clock,  # noqa: F811
) -> None:
    agent_id, _ = await make_agent(db, name="Li Lei")
    old = await resolved_sms_conversation(timed, text, agent_id)
    await sent_follow_up(db, old, clock.now - DAY, channel="sms")

    # the customer has a new problem: a new conversation, which an agent is working on
    status, _ = await text("The replacement parcel is broken too")
    assert status == 200
    new = int(await db.fetchval("SELECT id FROM conversations WHERE id <> $1", old))
    # the agent asks "reply 1 for a refund, 2 for another replacement"; the customer answers
    status, sid = await text("2")
    assert status == 200

    message = await db.fetchrow(
        "SELECT conversation_id, is_automatic FROM messages WHERE external_id = $1", sid
    )
    assert message is not None
    assert dict(message) == {"conversation_id": new, "is_automatic": False}
    assert await scores(db) == []
    assert await db.fetchval("SELECT count(*) FROM conversations WHERE care_kind = 'recovery'") == 0


async def test_a_birthday_task_for_a_manager_in_no_team_reaches_someone(
    conns: Conns,
    db: asyncpg.Pool,
    care_settings: Any,  # noqa: F811
) -> None:
    await db.execute("UPDATE care_settings SET birthday_task_tiers = '{1}'")
    await team(db, "Key accounts")
    manager_id, _ = await make_agent(db, name="Mei", team="Key accounts")
    # the manager moved on from their team (or was never put in one)
    await db.execute("DELETE FROM team_members WHERE agent_id = $1", manager_id)
    at_ten = clocked(conns, Clock(datetime(2026, 11, 23, 10, tzinfo=UTC)))
    vip = await contact(
        db, birthday=date(1970, 11, 23), timezone="UTC", tier=1, consents={"email": True}
    )
    await db.execute(
        "UPDATE contacts SET account_manager_id = $2, pinned_tier = 1 WHERE id = $1",
        vip,
        manager_id,
    )
    await care.schedule_birthdays(at_ten)
    await send_all_due(at_ten)
    [row] = await sends(db, vip)
    assert row["status"] == "task"
    task = await db.fetchrow(
        "SELECT team_id, assignee_id, waiting_since, route_requested_at FROM conversations"
        " WHERE id = $1",
        row["conversation_id"],
    )
    assert task is not None
    # promised: "a conversation assigned to them"; at the least it must wait in a queue
    # (a team) or be up for routing, or no one (but an admin) ever sees it
    reachable = (
        task["assignee_id"] == manager_id
        or (task["team_id"] is not None and task["waiting_since"] is not None)
        or task["route_requested_at"] is not None
    )
    assert reachable, dict(task)
