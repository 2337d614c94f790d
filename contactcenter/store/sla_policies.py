"""sla_policies, and what uses one (tiers' defaults, conversations).

The SLA engine reads policies with load() and default_for_tier(); the admin API writes them
through services/sla_policies.py.
"""

from __future__ import annotations

from datetime import timedelta

import asyncpg

from contactcenter.db import Connection, Executor
from contactcenter.domain.enums import ACTIVE_STATUSES, SlaClock
from contactcenter.domain.sla_policies import Escalation, SlaPolicy

COLUMNS = """
id, name, description, first_response_seconds, next_response_seconds, resolution_seconds,
clock, business_hours_id, warning_percent, escalation, created_at, updated_at
"""
P_COLUMNS = """
p.id, p.name, p.description, p.first_response_seconds, p.next_response_seconds,
p.resolution_seconds, p.clock, p.business_hours_id, p.warning_percent, p.escalation,
p.created_at, p.updated_at
"""

LIST = f"SELECT {COLUMNS} FROM sla_policies ORDER BY id"
GET = f"SELECT {COLUMNS} FROM sla_policies WHERE id = $1"
GET_FOR_UPDATE = f"SELECT {COLUMNS} FROM sla_policies WHERE id = $1 FOR NO KEY UPDATE"
DEFAULT_FOR_TIER = f"""
SELECT {P_COLUMNS} FROM tiers t JOIN sla_policies p ON p.id = t.sla_policy_id WHERE t.rank = $1
"""

INSERT = f"""
INSERT INTO sla_policies (name, description, first_response_seconds, next_response_seconds,
                          resolution_seconds, clock, business_hours_id, warning_percent,
                          escalation)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
RETURNING {COLUMNS}
"""
# the service validates the whole policy (what was stored merged with the change) and writes
# all of it back
UPDATE = f"""
UPDATE sla_policies SET name = $2, description = $3, first_response_seconds = $4,
    next_response_seconds = $5, resolution_seconds = $6, clock = $7, business_hours_id = $8,
    warning_percent = $9, escalation = $10, updated_at = now()
WHERE id = $1
RETURNING {COLUMNS}
"""
DELETE = "DELETE FROM sla_policies WHERE id = $1 RETURNING id"

# FOR SHARE holds them until the caller's transaction ends, so a policy about to be named
# (by a tier) cannot be deleted in between: the delete locks the row first and then looks
EXISTING = "SELECT id FROM sla_policies WHERE id = ANY($1::bigint[])"
TIERS_USING = "SELECT rank FROM tiers WHERE sla_policy_id = $1 ORDER BY rank"
# routing names a policy (conversations.sla_policy_id, the latest routing's), and the clocks
# keep running by the one they started under (conversation_sla.policy_id): either holds it
ACTIVE_CONVERSATIONS_USING = """
SELECT count(*) FROM conversations c
WHERE c.status = ANY($2::text[])
  AND (c.sla_policy_id = $1
       OR EXISTS (SELECT 1 FROM conversation_sla s
                  WHERE s.conversation_id = c.id AND s.policy_id = $1))
"""


def _seconds(target: timedelta | None) -> int | None:
    return None if target is None else int(target.total_seconds())


def _target(seconds: int | None) -> timedelta | None:
    return None if seconds is None else timedelta(seconds=seconds)


def policy_from_row(row: asyncpg.Record) -> SlaPolicy:
    escalation = row["escalation"]
    return SlaPolicy(
        id=row["id"],
        name=row["name"],
        first_response=_target(row["first_response_seconds"]),
        next_response=_target(row["next_response_seconds"]),
        resolution=_target(row["resolution_seconds"]),
        clock=SlaClock(row["clock"]),
        business_hours_id=row["business_hours_id"],
        warning_percent=row["warning_percent"],
        escalation=Escalation(
            raise_priority_to=escalation.get("raise_priority_to"),
            team_id=escalation.get("team_id"),
            notify_email=escalation.get("notify_email"),
        ),
        description=row["description"],
    )


def _values(policy: SlaPolicy) -> tuple[object, ...]:
    return (
        policy.name,
        policy.description,
        _seconds(policy.first_response),
        _seconds(policy.next_response),
        _seconds(policy.resolution),
        str(policy.clock),
        policy.business_hours_id,
        policy.warning_percent,
        policy.escalation.as_json(),
    )


async def list_all(conn: Executor) -> list[asyncpg.Record]:
    return list(await conn.fetch(LIST))


async def get(conn: Executor, policy_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(GET, policy_id)


async def get_for_update(conn: Connection, policy_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(GET_FOR_UPDATE, policy_id)


async def load(conn: Executor, policy_id: int) -> SlaPolicy | None:
    """The policy with this id; None when there is none."""
    row = await conn.fetchrow(GET, policy_id)
    return None if row is None else policy_from_row(row)


async def default_for_tier(conn: Executor, tier: int) -> SlaPolicy | None:
    """The policy a conversation of this tier (rank 1..4) gets when no routing rule names one;
    None when the tier has no default."""
    row = await conn.fetchrow(DEFAULT_FOR_TIER, tier)
    return None if row is None else policy_from_row(row)


async def insert(conn: Connection, policy: SlaPolicy) -> asyncpg.Record:
    row = await conn.fetchrow(INSERT, *_values(policy))
    assert row is not None
    return row


async def update(conn: Connection, policy: SlaPolicy) -> asyncpg.Record | None:
    return await conn.fetchrow(UPDATE, policy.id, *_values(policy))


async def delete(conn: Connection, policy_id: int) -> bool:
    """Conversations that named it (closed ones: the service refuses while an active one
    does) lose it (ON DELETE SET NULL)."""
    return await conn.fetchval(DELETE, policy_id) is not None


async def existing(conn: Executor, policy_ids: list[int], *, lock: bool) -> set[int]:
    """Which of the ids are policies; with `lock`, held FOR SHARE until the transaction ends."""
    sql = EXISTING + (" FOR SHARE" if lock else "")
    return {int(row["id"]) for row in await conn.fetch(sql, policy_ids)}


async def tiers_using(conn: Executor, policy_id: int) -> list[int]:
    """The ranks of the tiers whose default this policy is."""
    return [int(row["rank"]) for row in await conn.fetch(TIERS_USING, policy_id)]


async def active_conversations_using(conn: Executor, policy_id: int) -> int:
    """How many open, pending or snoozed conversations are held to this policy."""
    statuses = [str(status) for status in ACTIVE_STATUSES]
    return int(await conn.fetchval(ACTIVE_CONVERSATIONS_USING, policy_id, statuses))
