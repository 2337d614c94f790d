"""contact_merges, and the statements that move one contact's rows onto another
(services/contact_merge.py runs them in one transaction, both contacts locked).

Every table with a foreign key to contacts has its move here (MOVED_TABLES names them; a test
compares that list with the database's foreign keys, so a new table is not forgotten).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import asyncpg

from contactcenter.db import Connection, Executor
from contactcenter.domain.enums import IdentityKind
from contactcenter.domain.messages import Identity

# (table, column) of every foreign key to contacts (id); each is moved below
MOVED_TABLES = (
    ("care_sends", "contact_id"),
    ("contact_consents", "contact_id"),
    ("contact_identities", "contact_id"),
    ("conversations", "contact_id"),
    ("satisfaction_scores", "contact_id"),
    ("tier_changes", "contact_id"),
)

IDENTITIES_OF = "SELECT kind, value FROM contact_identities WHERE contact_id = $1 ORDER BY id"

# what the merge reads of each contact; the snapshot is the whole row, as JSON
_CONTACT = """
SELECT id, name, value, tags, fields, profile, account_manager_id, birthday, timezone, locale,
       preferred_channel, to_jsonb(c) AS snapshot
FROM contacts c WHERE id = $1
"""
# the survivor's row changes (no key of it does); the merged one's is deleted, so FOR UPDATE:
# a row pointing at it (a conversation, a care send) now waits, and then fails its key check
LOCK_SURVIVOR = _CONTACT + "FOR NO KEY UPDATE"
LOCK_MERGED = _CONTACT + "FOR UPDATE"

# $1 the survivor, $2 the merged contact, throughout
MOVE_IDENTITIES = "UPDATE contact_identities SET contact_id = $1 WHERE contact_id = $2"
MOVE_CONVERSATIONS = "UPDATE conversations SET contact_id = $1 WHERE contact_id = $2"
MOVE_TIER_CHANGES = "UPDATE tier_changes SET contact_id = $1 WHERE contact_id = $2"
MOVE_SATISFACTION = "UPDATE satisfaction_scores SET contact_id = $1 WHERE contact_id = $2"
# one greeting per contact, kind and occasion: where both have one, the survivor's stays (it
# is what care acted on for the survivor); the other is kept in the audit, with any score
DROP_CONFLICTING_CARE_SENDS = """
DELETE FROM care_sends f
WHERE f.contact_id = $2
  AND EXISTS (SELECT 1 FROM care_sends i
              WHERE i.contact_id = $1 AND i.kind = f.kind AND i.occasion = f.occasion)
RETURNING to_jsonb(f) || jsonb_build_object(
    'satisfaction',
    (SELECT coalesce(jsonb_agg(to_jsonb(s)), '[]') FROM satisfaction_scores s
     WHERE s.care_send_id = f.id)) AS row
"""
MOVE_CARE_SENDS = "UPDATE care_sends SET contact_id = $1 WHERE contact_id = $2"
# the survivor's consent for a channel stays; the merged one's fills a channel never asked
DROP_CONFLICTING_CONSENTS = """
DELETE FROM contact_consents f
WHERE f.contact_id = $2
  AND EXISTS (SELECT 1 FROM contact_consents i WHERE i.contact_id = $1 AND i.channel = f.channel)
RETURNING to_jsonb(f) AS row
"""
MOVE_CONSENTS = "UPDATE contact_consents SET contact_id = $1 WHERE contact_id = $2"

# the account manager read FOR KEY SHARE: one deleted a moment ago leaves none, not an error
SET_SURVIVOR = """
UPDATE contacts
SET name = $2, tags = $3, fields = $4, profile = $5,
    account_manager_id = (SELECT id FROM agents WHERE id = $6 FOR KEY SHARE),
    birthday = $7, timezone = $8, locale = $9, preferred_channel = $10, updated_at = $11
WHERE id = $1
"""
DELETE_CONTACT = "DELETE FROM contacts WHERE id = $1"

INSERT_MERGE = """
INSERT INTO contact_merges
    (into_id, from_id, agent_id, agent_name, merged_at, from_snapshot, counts)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING id
"""
# the merges into the contact and, through them, into every contact merged into it
MERGES_INTO = """
WITH RECURSIVE merged (id) AS (
    SELECT $1::bigint
    UNION
    SELECT m.from_id FROM contact_merges m JOIN merged ON m.into_id = merged.id
)
SELECT m.id, m.into_id, m.from_id, m.agent_id, m.agent_name, m.merged_at, m.from_snapshot,
       m.counts
FROM contact_merges m JOIN merged ON m.into_id = merged.id
ORDER BY m.id DESC
"""
CONTACT_EXISTS = "SELECT EXISTS (SELECT 1 FROM contacts WHERE id = $1)"


def _rows(status: str) -> int:
    """The row count of an UPDATE / DELETE status ("UPDATE 3")."""
    return int(status.rsplit(" ", 1)[-1])


async def identities_of(conn: Executor, contact_id: int) -> list[Identity]:
    rows = await conn.fetch(IDENTITIES_OF, contact_id)
    return [Identity(IdentityKind(r["kind"]), r["value"]) for r in rows]


async def lock_pair(
    conn: Connection, into_id: int, from_id: int
) -> tuple[asyncpg.Record | None, asyncpg.Record | None]:
    """Lock both contacts' rows, in id order (two merges of the same pair cannot deadlock);
    (survivor, merged), None for one that does not exist."""
    found: dict[int, asyncpg.Record | None] = {}
    for contact_id in sorted((into_id, from_id)):
        query = LOCK_SURVIVOR if contact_id == into_id else LOCK_MERGED
        found[contact_id] = await conn.fetchrow(query, contact_id)
    return found[into_id], found[from_id]


async def move_simple(conn: Connection, into_id: int, from_id: int) -> dict[str, int]:
    """Move the rows that cannot conflict; rows moved per table."""
    return {
        "identities": _rows(await conn.execute(MOVE_IDENTITIES, into_id, from_id)),
        "conversations": _rows(await conn.execute(MOVE_CONVERSATIONS, into_id, from_id)),
        "tier_changes": _rows(await conn.execute(MOVE_TIER_CHANGES, into_id, from_id)),
        "satisfaction_scores": _rows(await conn.execute(MOVE_SATISFACTION, into_id, from_id)),
    }


async def move_care_sends(
    conn: Connection, into_id: int, from_id: int
) -> tuple[int, list[dict[str, Any]]]:
    """(rows moved, the merged contact's rows dropped for the survivor's)."""
    dropped = [r["row"] for r in await conn.fetch(DROP_CONFLICTING_CARE_SENDS, into_id, from_id)]
    return _rows(await conn.execute(MOVE_CARE_SENDS, into_id, from_id)), dropped


async def move_consents(
    conn: Connection, into_id: int, from_id: int
) -> tuple[int, list[dict[str, Any]]]:
    """(rows moved, the merged contact's rows dropped for the survivor's)."""
    dropped = [r["row"] for r in await conn.fetch(DROP_CONFLICTING_CONSENTS, into_id, from_id)]
    return _rows(await conn.execute(MOVE_CONSENTS, into_id, from_id)), dropped


async def set_survivor(
    conn: Connection, contact_id: int, attributes: Mapping[str, Any], now: datetime
) -> None:
    """Set name, tags, fields, profile, account_manager_id, birthday, timezone, locale and
    preferred_channel."""
    await conn.execute(
        SET_SURVIVOR,
        contact_id,
        attributes["name"],
        list(attributes["tags"]),
        attributes["fields"],
        attributes["profile"],
        attributes["account_manager_id"],
        attributes["birthday"],
        attributes["timezone"],
        attributes["locale"],
        attributes["preferred_channel"],
        now,
    )


async def delete_contact(conn: Connection, contact_id: int) -> None:
    await conn.execute(DELETE_CONTACT, contact_id)


async def record(
    conn: Connection,
    *,
    into_id: int,
    from_id: int,
    agent_id: int,
    agent_name: str,
    at: datetime,
    snapshot: Mapping[str, Any],
    counts: Mapping[str, int],
) -> int:
    return int(
        await conn.fetchval(
            INSERT_MERGE, into_id, from_id, agent_id, agent_name, at, snapshot, counts
        )
    )


async def merges_into(conn: Executor, contact_id: int) -> list[asyncpg.Record]:
    """The merges into the contact, and into the contacts merged into it; the latest first."""
    return list(await conn.fetch(MERGES_INTO, contact_id))


async def contact_exists(conn: Executor, contact_id: int) -> bool:
    return bool(await conn.fetchval(CONTACT_EXISTS, contact_id))
