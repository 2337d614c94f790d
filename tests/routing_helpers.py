"""Factories and probes for the routing and assignment tests: customers of a tier writing in,
teams and agents with settings, rules, a clock the test moves, and what the database says."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from contactcenter.conns import Conns
from contactcenter.domain.enums import Channel, IdentityKind
from contactcenter.domain.messages import Identity, InboundMessage
from contactcenter.services import routing
from contactcenter.services.ingest import ingest
from tests.helpers import new_client_id

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


async def customer_writes(
    conns: Conns, text: str = "hello", *, tier: int = 4, contact_id: int | None = None
) -> tuple[int, int]:
    """A web message from a new customer of `tier` (or from `contact_id`).

    Returns (conversation id, contact id)."""
    identity = Identity(IdentityKind.WEB, new_client_id())
    if contact_id is not None:
        await conns.db.execute(
            "INSERT INTO contact_identities (contact_id, kind, value) VALUES ($1, 'web', $2)",
            contact_id,
            identity.value,
        )
    result = await ingest(
        conns,
        InboundMessage(
            channel=Channel.WEB,
            external_id=f"new:{new_client_id()}",
            text=text,
            identities=(identity,),
        ),
    )
    if contact_id is None:
        await set_tier(conns.db, result.contact_id, tier)
    return result.conversation_id, result.contact_id


async def set_tier(db: asyncpg.Pool, contact_id: int, tier: int) -> None:
    await db.execute(
        "UPDATE contacts SET computed_tier = $2, tier = $2 WHERE id = $1", contact_id, tier
    )


async def team(db: asyncpg.Pool, name: str, **settings: Any) -> int:
    team_id = int(await db.fetchval("INSERT INTO teams (name) VALUES ($1) RETURNING id", name))
    for column, value in settings.items():
        # column names come from this file only
        await db.execute(f"UPDATE teams SET {column} = $2 WHERE id = $1", team_id, value)
    return team_id


async def set_agent(db: asyncpg.Pool, agent_id: int, **settings: Any) -> None:
    for column, value in settings.items():
        await db.execute(f"UPDATE agents SET {column} = $2 WHERE id = $1", agent_id, value)


async def assignee(db: asyncpg.Pool, conversation_id: int) -> int | None:
    value = await db.fetchval(
        "SELECT assignee_id FROM conversations WHERE id = $1", conversation_id
    )
    return None if value is None else int(value)


async def loads(db: asyncpg.Pool) -> dict[int, int]:
    rows = await db.fetch(
        """
        SELECT a.id, count(c.id) AS load FROM agents a
        LEFT JOIN conversations c ON c.assignee_id = a.id
                                 AND c.status IN ('open', 'pending', 'snoozed')
        GROUP BY a.id
        """
    )
    return {r["id"]: r["load"] for r in rows}


def clocked(conns: Conns, clock: Clock) -> Conns:
    return replace(conns, clock=clock)


async def route_all(conns: Conns, conversation_ids: list[int]) -> None:
    for conversation_id in conversation_ids:
        await routing.route_conversation(conns, conversation_id)


async def default_team(db: asyncpg.Pool) -> int:
    return int(await db.fetchval("SELECT id FROM teams WHERE is_default"))


async def explanation(db: asyncpg.Pool, conversation_id: int) -> dict[str, Any]:
    value: dict[str, Any] = await db.fetchval(
        "SELECT routing FROM conversations WHERE id = $1", conversation_id
    )
    return value


async def rule(db: asyncpg.Pool, name: str, actions: list[dict[str, Any]]) -> int:
    return int(
        await db.fetchval(
            "INSERT INTO routing_rules (name, position, conditions, actions)"
            " VALUES ($1, (SELECT coalesce(max(position), 0) + 1 FROM routing_rules),"
            " $2, $3) RETURNING id",
            name,
            {"match": "all", "conditions": []},
            actions,
        )
    )
