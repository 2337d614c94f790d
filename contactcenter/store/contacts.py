"""contacts and contact_identities."""

from __future__ import annotations

from typing import Any

from contactcenter.db import Connection
from contactcenter.domain.messages import Identity

FIND_BY_IDENTITY = """
SELECT contact_id FROM contact_identities WHERE kind = $1 AND value = $2
"""

CREATE_CONTACT = """
INSERT INTO contacts (name) VALUES ($1) RETURNING id
"""

# an identity that belongs to someone else stays theirs
ADD_IDENTITY = """
INSERT INTO contact_identities (contact_id, kind, value) VALUES ($1, $2, $3)
ON CONFLICT (kind, value) DO NOTHING
"""

FILL_NAME = """
UPDATE contacts SET name = $2, updated_at = now() WHERE id = $1 AND name IS NULL
"""

GET_CONTACT = """
SELECT id, name, profile, created_at, updated_at FROM contacts WHERE id = $1
"""

LIST_IDENTITIES = """
SELECT kind, value, created_at FROM contact_identities WHERE contact_id = $1 ORDER BY id
"""


async def find_by_identities(conn: Connection, identities: tuple[Identity, ...]) -> int | None:
    for identity in identities:
        contact_id = await conn.fetchval(FIND_BY_IDENTITY, identity.kind, identity.value)
        if contact_id is not None:
            return int(contact_id)
    return None


async def create(conn: Connection, name: str | None) -> int:
    return int(await conn.fetchval(CREATE_CONTACT, name))


async def add_identities(
    conn: Connection, contact_id: int, identities: tuple[Identity, ...]
) -> None:
    await conn.executemany(
        ADD_IDENTITY, [(contact_id, identity.kind, identity.value) for identity in identities]
    )


async def fill_name(conn: Connection, contact_id: int, name: str) -> None:
    await conn.execute(FILL_NAME, contact_id, name)


async def get_card(conn: Connection, contact_id: int) -> dict[str, Any] | None:
    row = await conn.fetchrow(GET_CONTACT, contact_id)
    if row is None:
        return None
    card = dict(row)
    card["identities"] = [dict(r) for r in await conn.fetch(LIST_IDENTITIES, contact_id)]
    return card
