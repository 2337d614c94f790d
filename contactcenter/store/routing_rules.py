"""routing_rules: ordered by a dense position 1..n (then id), and what the rules refer to.

Writes that change positions run under locks.routing_rules, so positions stay 1..n.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from contactcenter.db import Connection, Executor

COLUMNS = "id, name, position, enabled, conditions, actions, created_at, updated_at"

LIST = f"SELECT {COLUMNS} FROM routing_rules ORDER BY position, id"
LIST_ENABLED = f"SELECT {COLUMNS} FROM routing_rules WHERE enabled ORDER BY position, id"
IDS = "SELECT id FROM routing_rules ORDER BY position, id"
# the enabled rules' ids and row versions (xmin changes with every write of the row), so a
# process can keep the rules it has parsed until one of them changes
ENABLED_VERSIONS = """
SELECT id, xmin::text AS version FROM routing_rules WHERE enabled ORDER BY position, id
"""
BY_IDS = f"SELECT {COLUMNS}, xmin::text AS version FROM routing_rules WHERE id = ANY($1::bigint[])"
COUNT = "SELECT count(*) FROM routing_rules"
GET = f"SELECT {COLUMNS} FROM routing_rules WHERE id = $1"
GET_FOR_UPDATE = f"SELECT {COLUMNS} FROM routing_rules WHERE id = $1 FOR NO KEY UPDATE"

INSERT = f"""
INSERT INTO routing_rules (name, position, enabled, conditions, actions)
VALUES ($1, $2, $3, $4, $5)
RETURNING {COLUMNS}
"""
UPDATE = f"""
UPDATE routing_rules SET name = $2, enabled = $3, conditions = $4, actions = $5,
    updated_at = now()
WHERE id = $1
RETURNING {COLUMNS}
"""
DELETE = "DELETE FROM routing_rules WHERE id = $1 RETURNING position"

# make room at a position, close the gap a rule leaves, move one rule within 1..n
MAKE_ROOM = "UPDATE routing_rules SET position = position + 1 WHERE position >= $1"
CLOSE_GAP = "UPDATE routing_rules SET position = position - 1 WHERE position > $1"
MOVE = """
UPDATE routing_rules SET
    position = CASE WHEN id = $1 THEN $3::integer
                    WHEN $3::integer < $2::integer THEN position + 1
                    ELSE position - 1 END
WHERE id = $1 OR position BETWEEN least($2::integer, $3::integer)
                              AND greatest($2::integer, $3::integer)
"""
# every rule gets its place in the list given (which names every rule once)
REORDER = """
UPDATE routing_rules r SET position = o.place, updated_at = now()
FROM unnest($1::bigint[]) WITH ORDINALITY AS o (id, place)
WHERE r.id = o.id AND r.position <> o.place
"""

# the rules whose conditions or actions name an id ($6: the calendar is the default one, so
# rules that name no calendar use it too)
REFERENCING = """
SELECT id FROM routing_rules WHERE
    ($1::bigint IS NOT NULL
     AND jsonb_path_exists(actions, '$[*] ? (@.type == "team" && @.team_id == $v)',
                           jsonb_build_object('v', $1::bigint)))
 OR ($2::bigint IS NOT NULL
     AND jsonb_path_exists(actions,
                           '$[*] ? (@.type == "sla_policy" && @.sla_policy_id == $v)',
                           jsonb_build_object('v', $2::bigint)))
 OR ($3::bigint IS NOT NULL
     AND jsonb_path_exists(conditions,
                           '$.conditions[*] ? (@.type == "business_hours" && @.calendar_id == $v)',
                           jsonb_build_object('v', $3::bigint)))
 OR ($4::bigint IS NOT NULL
     AND jsonb_path_exists(conditions,
                           '$.conditions[*] ? (@.type == "mailbox" && @.in[*] == $v)',
                           jsonb_build_object('v', $4::bigint)))
 OR ($5::bigint IS NOT NULL
     AND jsonb_path_exists(conditions,
                           '$.conditions[*] ? (@.type == "sms_number" && @.in[*] == $v)',
                           jsonb_build_object('v', $5::bigint)))
 OR ($3::bigint IS NOT NULL
     AND EXISTS (SELECT 1 FROM business_hours WHERE id = $3 AND is_default)
     AND jsonb_path_exists(conditions,
                           '$.conditions[*] ? (@.type == "business_hours"
                                               && !(exists(@.calendar_id))
                                               || @.type == "business_hours"
                                               && @.calendar_id == null)'))
ORDER BY position, id
"""

# which of the ids a rule names exist; FOR SHARE holds them until the rule is written, so a
# delete that locks the row and then asks `referencing` either sees the rule or goes first
EXISTING = {
    "teams": "SELECT id FROM teams WHERE id = ANY($1::bigint[])",
    "sla_policies": "SELECT id FROM sla_policies WHERE id = ANY($1::bigint[])",
    "mailboxes": "SELECT id FROM mailboxes WHERE id = ANY($1::bigint[])",
    "sms_numbers": "SELECT id FROM sms_numbers WHERE id = ANY($1::bigint[])",
    "calendars": "SELECT id FROM business_hours WHERE id = ANY($1::bigint[])",
}
DEFAULT_CALENDAR = "SELECT id FROM business_hours WHERE is_default"


async def list_all(conn: Executor) -> list[asyncpg.Record]:
    return list(await conn.fetch(LIST))


async def list_enabled(conn: Executor) -> list[asyncpg.Record]:
    return list(await conn.fetch(LIST_ENABLED))


async def enabled_versions(conn: Executor) -> list[asyncpg.Record]:
    return list(await conn.fetch(ENABLED_VERSIONS))


async def by_ids(conn: Executor, rule_ids: list[int]) -> list[asyncpg.Record]:
    return list(await conn.fetch(BY_IDS, rule_ids))


async def ids_in_order(conn: Executor) -> list[int]:
    return [int(row["id"]) for row in await conn.fetch(IDS)]


async def count(conn: Executor) -> int:
    return int(await conn.fetchval(COUNT))


async def get(conn: Executor, rule_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(GET, rule_id)


async def get_for_update(conn: Connection, rule_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(GET_FOR_UPDATE, rule_id)


async def insert_at(
    conn: Connection,
    position: int,
    *,
    name: str,
    enabled: bool,
    conditions: dict[str, Any],
    actions: list[dict[str, Any]],
) -> asyncpg.Record:
    """Insert at `position` (1..n+1), the rules from there on one place down."""
    await conn.execute(MAKE_ROOM, position)
    row = await conn.fetchrow(INSERT, name, position, enabled, conditions, actions)
    assert row is not None
    return row


async def update(
    conn: Connection,
    rule_id: int,
    *,
    name: str,
    enabled: bool,
    conditions: dict[str, Any],
    actions: list[dict[str, Any]],
) -> asyncpg.Record | None:
    return await conn.fetchrow(UPDATE, rule_id, name, enabled, conditions, actions)


async def move(conn: Connection, rule_id: int, old: int, new: int) -> None:
    """Move a rule from position `old` to `new` (both within 1..n); the others close up."""
    if old != new:
        await conn.execute(MOVE, rule_id, old, new)


async def delete(conn: Connection, rule_id: int) -> bool:
    """Delete a rule; the rules after it move up one place."""
    position = await conn.fetchval(DELETE, rule_id)
    if position is None:
        return False
    await conn.execute(CLOSE_GAP, position)
    return True


async def reorder(conn: Connection, ids: list[int]) -> None:
    await conn.execute(REORDER, ids)


async def referencing(
    conn: Executor,
    *,
    team_id: int | None = None,
    sla_policy_id: int | None = None,
    business_hours_id: int | None = None,
    mailbox_id: int | None = None,
    sms_number_id: int | None = None,
) -> list[int]:
    """The rules (enabled or not, in evaluation order) whose conditions or actions name the
    id given. A default calendar is also named by every business-hours condition that names
    no calendar. Call it after locking the row about to be deleted (FOR NO KEY UPDATE): a rule
    being saved holds what it names FOR SHARE, so it is either seen here or refused there."""
    rows = await conn.fetch(
        REFERENCING, team_id, sla_policy_id, business_hours_id, mailbox_id, sms_number_id
    )
    return [int(row["id"]) for row in rows]


async def existing(conn: Executor, kind: str, ids: list[int], *, lock: bool) -> set[int]:
    """Which of `ids` exist in the table of `kind` (teams, sla_policies, mailboxes,
    sms_numbers, calendars); with `lock`, held FOR SHARE until the transaction ends."""
    sql = EXISTING[kind] + (" FOR SHARE" if lock else "")
    return {int(row["id"]) for row in await conn.fetch(sql, ids)}


async def default_calendar_id(conn: Executor, *, lock: bool) -> int | None:
    value = await conn.fetchval(DEFAULT_CALENDAR + (" FOR SHARE" if lock else ""))
    return None if value is None else int(value)
