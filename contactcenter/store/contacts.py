"""contacts and contact_identities."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from contactcenter.db import Connection, Executor
from contactcenter.domain.messages import Identity

# the contact of the first identity (in the order given) that is known
FIND_BY_IDENTITIES = """
SELECT ci.contact_id
FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS given (kind, value, position)
JOIN contact_identities ci ON ci.kind = given.kind AND ci.value = given.value
ORDER BY given.position
LIMIT 1
"""

CREATE_CONTACT = """
INSERT INTO contacts (name, profile) VALUES ($1, $2) RETURNING id
"""

# an identity that belongs to someone else stays theirs
ADD_IDENTITIES = """
INSERT INTO contact_identities (contact_id, kind, value)
SELECT $1, kind, value FROM unnest($2::text[], $3::text[]) AS given (kind, value)
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


def _columns(identities: tuple[Identity, ...]) -> tuple[list[str], list[str]]:
    return [str(i.kind) for i in identities], [i.value for i in identities]


async def find_by_identities(conn: Connection, identities: tuple[Identity, ...]) -> int | None:
    if not identities:
        return None
    contact_id = await conn.fetchval(FIND_BY_IDENTITIES, *_columns(identities))
    return None if contact_id is None else int(contact_id)


async def create(
    conn: Connection, name: str | None, profile: Mapping[str, object] | None = None
) -> int:
    return int(await conn.fetchval(CREATE_CONTACT, name, profile or {}))


async def add_identities(
    conn: Connection, contact_id: int, identities: tuple[Identity, ...]
) -> None:
    if identities:
        await conn.execute(ADD_IDENTITIES, contact_id, *_columns(identities))


async def fill_name(conn: Connection, contact_id: int, name: str) -> None:
    await conn.execute(FILL_NAME, contact_id, name)


async def get_card(conn: Connection, contact_id: int) -> dict[str, Any] | None:
    row = await conn.fetchrow(GET_CONTACT, contact_id)
    if row is None:
        return None
    card = dict(row)
    card["identities"] = [dict(r) for r in await conn.fetch(LIST_IDENTITIES, contact_id)]
    return card


# the addresses the contact gave proof of, the latest first
EMAIL_ADDRESSES = """
SELECT value FROM contact_identities WHERE contact_id = $1 AND kind = 'email'
ORDER BY id DESC
"""


async def email_addresses(conn: Executor, contact_id: int) -> list[str]:
    return [str(r["value"]) for r in await conn.fetch(EMAIL_ADDRESSES, contact_id)]


async def email_address(conn: Executor, contact_id: int) -> str | None:
    """The address the contact last gave proof of."""
    found = await email_addresses(conn, contact_id)
    return found[0] if found else None


HAS_IDENTITY = """
SELECT EXISTS (SELECT 1 FROM contact_identities WHERE contact_id = $1 AND kind = $2 AND value = $3)
"""


async def has_identity(conn: Executor, contact_id: int, kind: str, value: str) -> bool:
    return bool(await conn.fetchval(HAS_IDENTITY, contact_id, kind, value))


PHONE_NUMBER = """
SELECT value FROM contact_identities WHERE contact_id = $1 AND kind = 'phone'
ORDER BY id DESC LIMIT 1
"""


async def phone_number(conn: Executor, contact_id: int) -> str | None:
    value = await conn.fetchval(PHONE_NUMBER, contact_id)
    return None if value is None else str(value)
