"""Transaction-scoped advisory locks: who waits for whom while a unit of work runs.

(Row locks elsewhere are FOR NO KEY UPDATE, never FOR UPDATE: a foreign-key check takes a
KEY SHARE lock on the row it points at, which FOR UPDATE would block. A reply, holding its
conversation, checks its author's agent row while an assignment, holding that agent, waits
for the conversation: with FOR UPDATE that was a deadlock.)

Each kind has its own namespace (the first key of the two-key form), so no two kinds, and
never the migration lock, can meet. The locks are released at commit or rollback.
"""

from __future__ import annotations

from contactcenter.db import Connection

_EXTERNAL_ID = 1001
_IDENTITY = 1002
_TEAM_QUEUE = 1003
_TIERS = 1010
_ROUTING_RULES = 1004


async def external_id(conn: Connection, channel: str, external_id: str) -> None:
    """The same channel message arriving twice at once: the second waits for the first."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext($2))", _EXTERNAL_ID, f"{channel}:{external_id}"
    )


async def identities(conn: Connection, keys: set[str]) -> None:
    """Two first messages from one new address at once must make one contact, not two. One
    statement; the keys go in sorted, so every transaction takes them in the same order."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext(key)) FROM unnest($2::text[]) AS key",
        _IDENTITY,
        sorted(keys),
    )


async def team_queue(conn: Connection, team_id: int) -> None:
    """One assignment at a time per team queue."""
    await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", _TEAM_QUEUE, team_id)


async def routing_rules(conn: Connection) -> None:
    """One change to the routing rules at a time: their positions stay a dense 1..n."""
    await conn.execute("SELECT pg_advisory_xact_lock($1, 0)", _ROUTING_RULES)


async def tier_rules(conn: Connection, *, wait_seconds: float | None = None) -> None:
    """A tier recompute, or a change of the tier rules, runs alone: a second recompute waits
    and then finds nothing to change, and no contact's value or pin changes under it."""
    await conn.execute("SELECT pg_advisory_xact_lock($1, 0)", _TIERS, timeout=wait_seconds)


async def tier_change(conn: Connection) -> None:
    """One contact's tier changes (its value, a pin): many at once, never during a recompute.
    Take it before locking any contact row, or a recompute waiting for that row deadlocks."""
    await conn.execute("SELECT pg_advisory_xact_lock_shared($1, 0)", _TIERS)
