"""tiers, tier_settings, contacts' tier columns and tier_changes.

The recompute is one statement: it finds the value that opens each tier (the threshold, or by
shares the value at the position where the tier's share of the customers ends), updates the
contacts whose computed tier moved, and writes a tier_changes row for each whose tier in force
moved (a pinned contact's computed tier moves silently). Its sub-statements share one
snapshot, so the history reads every contact's tier from before the update.

By shares, the value at the position p that ends a tier opens it: a customer is in the top p
exactly when their value is at least that one (ties included), so nobody's position has to
be computed: a count of the customers and three walks down contacts_value (to the position
ending each tier) find the bounds, and the rest is the same CASE as by thresholds. (Ranking
every customer with rank() OVER (ORDER BY value DESC) gives the same tiers and costs a sort of
the whole base each night; bench/tiers.py measures both.)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from contactcenter.db import Connection, Executor
from contactcenter.domain.enums import TierChangeReason, TierMethod
from contactcenter.domain.tiers import Tier, TierConfig

GET_TIERS = "SELECT rank, label, min_value, share_percent, sla_policy_id FROM tiers ORDER BY rank"
GET_SETTINGS = "SELECT method, recomputed_at FROM tier_settings"
LOCK_SETTINGS = "SELECT method, recomputed_at FROM tier_settings FOR NO KEY UPDATE"

# labels are unique, and checked row by row: park them on names no label can have (a label
# has no control characters) so that two tiers can swap theirs
PARK_LABELS = "UPDATE tiers SET label = chr(1) || rank::text"
SAVE_TIERS = """
UPDATE tiers t
SET label = given.label, min_value = given.min_value, share_percent = given.share_percent,
    sla_policy_id = given.sla_policy_id, updated_at = $6
FROM unnest($1::smallint[], $2::text[], $3::numeric[], $4::numeric[], $5::bigint[])
     AS given (rank, label, min_value, share_percent, sla_policy_id)
WHERE t.rank = given.rank
"""
# a change of the rules makes the next scheduled check recompute (recomputed_at unknown)
SAVE_SETTINGS = """
UPDATE tier_settings
SET method = $1, updated_at = $2,
    recomputed_at = CASE WHEN $3 THEN NULL ELSE recomputed_at END
"""
MARK_RECOMPUTED = "UPDATE tier_settings SET recomputed_at = $1"
VACUUM_CONTACTS = "VACUUM contacts"

# the value that opens tiers 1..3, given
THRESHOLD_BOUNDS = """
bounds AS MATERIALIZED (SELECT $1::numeric AS b1, $2::numeric AS b2, $3::numeric AS b3)"""

# ...or found: $1..$3 are the cumulative shares (percent) of the customers (value > 0) that
# end tiers 1..3; the value at that position opens the tier (none when the position is 0).
# MATERIALIZED: computed once, not once per contact
SHARE_BOUNDS = """
customers AS (SELECT count(*) AS n FROM contacts WHERE value > 0),
ends AS (
    SELECT floor($1::numeric * n / 100)::bigint AS p1,
           floor($2::numeric * n / 100)::bigint AS p2,
           floor($3::numeric * n / 100)::bigint AS p3
    FROM customers
),
bounds AS MATERIALIZED (
    SELECT (SELECT value FROM contacts WHERE value > 0 AND p1 > 0
            ORDER BY value DESC OFFSET greatest(p1 - 1, 0) LIMIT 1) AS b1,
           (SELECT value FROM contacts WHERE value > 0 AND p2 > 0
            ORDER BY value DESC OFFSET greatest(p2 - 1, 0) LIMIT 1) AS b2,
           (SELECT value FROM contacts WHERE value > 0 AND p3 > 0
            ORDER BY value DESC OFFSET greatest(p3 - 1, 0) LIMIT 1) AS b3
    FROM ends
)"""

# a value of 0 is no evidence: the bottom tier, whatever the bounds
TIER_OF_VALUE = """(CASE WHEN c.value <= 0 THEN 4
      WHEN c.value >= b.b1 THEN 1 WHEN c.value >= b.b2 THEN 2 WHEN c.value >= b.b3 THEN 3
      ELSE 4 END)::smallint"""


def _retier(bounds: str, scope: str, reason: str, result: str) -> str:
    """The statement that moves computed tiers (of every contact, or of those in `scope`) and
    records each move of a tier in force. $4 is the method (for the history), $5 now."""
    return f"""WITH {bounds},
updated AS (
    UPDATE contacts c
    SET computed_tier = {TIER_OF_VALUE},
        tier = coalesce(c.pinned_tier, {TIER_OF_VALUE}),
        updated_at = $5
    FROM bounds b
    WHERE {scope}c.computed_tier <> {TIER_OF_VALUE}
    RETURNING c.id, c.tier, c.value
),
history AS (
    INSERT INTO tier_changes (contact_id, from_tier, to_tier, reason, detail, changed_at)
    SELECT u.id, before.tier, u.tier, '{reason}',
           jsonb_build_object('value', u.value::text, 'method', $4::text), $5
    FROM updated u
    JOIN contacts before ON before.id = u.id  -- the same snapshot: the row before the update
    WHERE before.tier <> u.tier
    RETURNING contact_id, from_tier, to_tier
)
{result}"""


COUNTS = """SELECT (SELECT count(*) FROM contacts) AS examined,
       (SELECT count(*) FROM updated) AS recomputed,
       (SELECT count(*) FROM history) AS changed,
       b1, b2, b3
FROM bounds"""
CHANGES = "SELECT contact_id, from_tier, to_tier FROM history ORDER BY contact_id"
BOUNDS = {TierMethod.THRESHOLDS: THRESHOLD_BOUNDS, TierMethod.SHARES: SHARE_BOUNDS}

# every contact, by the nightly run or an admin
RECOMPUTE = {method: _retier(BOUNDS[method], "", "recompute", COUNTS) for method in TierMethod}
# the contacts $6 whose value was just set, against the current ranking (theirs included)
RETIER_SOME = {
    method: _retier(BOUNDS[method], "c.id = any($6::bigint[]) AND ", "value", CHANGES)
    for method in TierMethod
}

LOCK_CONTACT = """
SELECT id, value, computed_tier, pinned_tier, tier FROM contacts WHERE id = $1
FOR NO KEY UPDATE
"""
# in id order, so that two transactions setting values of the same contacts cannot deadlock
LOCK_CONTACTS = """
SELECT id FROM contacts WHERE id = any($1::bigint[]) ORDER BY id FOR NO KEY UPDATE
"""
SET_VALUES = """
UPDATE contacts c SET value = given.value, updated_at = $3
FROM unnest($1::bigint[], $2::numeric[]) AS given (id, value)
WHERE c.id = given.id AND c.value <> given.value
RETURNING c.id
"""
SET_TIERS = """
UPDATE contacts
SET computed_tier = $2::smallint, pinned_tier = $3::smallint,
    tier = coalesce($3::smallint, $2::smallint), updated_at = $4
WHERE id = $1
RETURNING tier
"""
RECORD_CHANGE = """
INSERT INTO tier_changes (contact_id, from_tier, to_tier, reason, detail, changed_by, changed_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
"""

CONTACT_EXISTS = "SELECT EXISTS (SELECT 1 FROM contacts WHERE id = $1)"

HISTORY = """
SELECT h.id, h.from_tier, h.to_tier, h.reason, h.detail, h.changed_by,
       a.name AS changed_by_name, h.changed_at
FROM tier_changes h
LEFT JOIN agents a ON a.id = h.changed_by
WHERE h.contact_id = $1 AND h.id < $2
ORDER BY h.id DESC
LIMIT $3
"""


@dataclass(frozen=True)
class Recomputed:
    examined: int
    # contacts whose computed tier moved (pinned ones included)
    recomputed: int
    # contacts whose tier in force moved: one tier_changes row each
    changed: int
    # the value that opened tiers 1..3 (None: nobody could be in it)
    bounds: tuple[Decimal | None, Decimal | None, Decimal | None]


async def load_config(conn: Executor) -> TierConfig:
    rows = await conn.fetch(GET_TIERS)
    method = await conn.fetchval(GET_SETTINGS)
    return TierConfig(
        TierMethod(method),
        tuple(
            Tier(r["rank"], r["label"], r["min_value"], r["share_percent"], r["sla_policy_id"])
            for r in rows
        ),
    )


async def recomputed_at(conn: Executor) -> datetime | None:
    row = await conn.fetchrow(GET_SETTINGS)
    assert row is not None  # the one row of the migration
    value: datetime | None = row["recomputed_at"]
    return value


async def save_config(conn: Connection, config: TierConfig, now: datetime) -> None:
    """Write a validated configuration (each tier's default SLA policy included); a change of
    the rules (not of labels or SLA policies) makes the next scheduled check recompute."""
    await conn.fetchrow(LOCK_SETTINGS)
    before = await load_config(conn)
    await conn.execute(PARK_LABELS)
    await conn.execute(
        SAVE_TIERS,
        [t.rank for t in config.tiers],
        [t.label for t in config.tiers],
        [t.min_value for t in config.tiers],
        [t.share_percent for t in config.tiers],
        [t.sla_policy_id for t in config.tiers],
        now,
    )
    await conn.execute(SAVE_SETTINGS, str(config.method), now, config.rules_differ(before))


async def recompute(
    conn: Connection, config: TierConfig, now: datetime, *, limit_seconds: float
) -> Recomputed:
    """Recompute every contact's tier under `config` (the caller holds locks.tier_rules)."""
    row = await conn.fetchrow(
        RECOMPUTE[config.method], *config.bounds(), str(config.method), now, timeout=limit_seconds
    )
    assert row is not None
    await conn.execute(MARK_RECOMPUTED, now)
    return Recomputed(
        examined=row["examined"],
        recomputed=row["recomputed"],
        changed=row["changed"],
        bounds=(row["b1"], row["b2"], row["b3"]),
    )


async def vacuum_contacts(conn: Connection, *, limit_seconds: float) -> None:
    """Outside a transaction: mark the pages a recompute rewrote all-visible again."""
    await conn.execute(VACUUM_CONTACTS, timeout=limit_seconds)


async def lock_contact(conn: Connection, contact_id: int) -> asyncpg.Record | None:
    record: asyncpg.Record | None = await conn.fetchrow(LOCK_CONTACT, contact_id)
    return record


async def lock_contacts(conn: Connection, contact_ids: list[int]) -> set[int]:
    """Lock the contacts' rows (in id order); returns the ids that exist."""
    return {r["id"] for r in await conn.fetch(LOCK_CONTACTS, contact_ids)}


async def set_values(conn: Connection, values: dict[int, Decimal], now: datetime) -> list[int]:
    """Set the contacts' values; returns the ids whose value changed."""
    ids = sorted(values)
    rows = await conn.fetch(SET_VALUES, ids, [values[i] for i in ids], now)
    return sorted(r["id"] for r in rows)


async def retier(
    conn: Connection, config: TierConfig, contact_ids: list[int], now: datetime
) -> list[asyncpg.Record]:
    """Recompute these contacts' tiers against the current ranking (reason 'value');
    returns (contact_id, from_tier, to_tier) of each whose tier in force moved."""
    return list(
        await conn.fetch(
            RETIER_SOME[config.method],
            *config.bounds(),
            str(config.method),
            now,
            contact_ids,
        )
    )


async def set_tiers(
    conn: Connection, contact_id: int, computed: int, pinned: int | None, now: datetime
) -> int:
    """Set the computed and pinned tiers; returns the tier in force."""
    return int(await conn.fetchval(SET_TIERS, contact_id, computed, pinned, now))


async def record_change(
    conn: Connection,
    contact_id: int,
    from_tier: int,
    to_tier: int,
    reason: TierChangeReason,
    detail: dict[str, Any],
    now: datetime,
    changed_by: int | None = None,
) -> None:
    await conn.execute(
        RECORD_CHANGE, contact_id, from_tier, to_tier, str(reason), detail, changed_by, now
    )


async def contact_exists(conn: Executor, contact_id: int) -> bool:
    return bool(await conn.fetchval(CONTACT_EXISTS, contact_id))


async def history(
    conn: Executor, contact_id: int, before_id: int, limit: int
) -> list[asyncpg.Record]:
    """A contact's tier changes, newest first, with ids below `before_id`."""
    return list(await conn.fetch(HISTORY, contact_id, before_id, limit))
