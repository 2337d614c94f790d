"""contacts and contact_identities."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from contactcenter.db import Connection, Executor
from contactcenter.domain.contacts import CARE_ATTRIBUTES, CONSENT_CHANNELS
from contactcenter.domain.enums import IdentityKind
from contactcenter.domain.messages import Identity
from contactcenter.store import consents

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

# value as text: numeric(16, 2) keeps its cents, and JSON numbers might not; the birthday as
# YYYY-MM-DD text, as the API shows it
GET_CONTACT = """
SELECT c.id, c.name, c.profile, c.value::text AS value, c.tier, t.label AS tier_label,
       c.pinned_tier IS NOT NULL AS pinned, c.tags, c.fields, c.account_manager_id,
       a.name AS account_manager_name, to_char(c.birthday, 'YYYY-MM-DD') AS birthday,
       c.timezone, c.locale, c.preferred_channel, c.created_at, c.updated_at,
       (SELECT jsonb_build_object('score', s.score, 'comment', s.comment,
                                  'conversation_id', s.conversation_id, 'at', s.created_at)
        FROM satisfaction_scores s WHERE s.contact_id = c.id
        ORDER BY s.created_at DESC, s.id DESC LIMIT 1) AS last_satisfaction
FROM contacts c
JOIN tiers t ON t.rank = c.tier
LEFT JOIN agents a ON a.id = c.account_manager_id
WHERE c.id = $1
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
    """The contact as agents see it: name, value (a decimal string), tier {rank, label},
    pinned, tags, fields, account_manager {id, name} or None, birthday (YYYY-MM-DD) or None,
    timezone, locale, preferred_channel, consent {email, sms, web: {granted, source,
    changed_at} or None}, sms_opted_out, last_satisfaction {score, comment, conversation_id,
    at} or None, and identities."""
    row = await conn.fetchrow(GET_CONTACT, contact_id)
    if row is None:
        return None
    card = dict(row)
    card["tier"] = {"rank": card["tier"], "label": card.pop("tier_label")}
    manager_id, manager_name = card.pop("account_manager_id"), card.pop("account_manager_name")
    card["account_manager"] = (
        None if manager_id is None else {"id": manager_id, "name": manager_name}
    )
    card["consent"] = await consents.for_contact(conn, contact_id, CONSENT_CHANNELS)
    card["sms_opted_out"] = await consents.sms_opted_out(conn, contact_id)
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


# what routing needs to know of the customer
ROUTING_FACTS = """
SELECT c.tier, t.label AS tier_label, c.pinned_tier IS NOT NULL AS tier_pinned, c.tags, c.fields,
       c.account_manager_id, t.sla_policy_id AS tier_sla_policy_id
FROM contacts c JOIN tiers t ON t.rank = c.tier
WHERE c.id = $1
"""


async def routing_facts(conn: Executor, contact_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(ROUTING_FACTS, contact_id)


# what PATCH /v1/contacts/{id} may change besides the value (services/tiers.set_value's)
LOCK_ATTRIBUTES = """
SELECT id, name, tags, fields, account_manager_id FROM contacts WHERE id = $1 FOR NO KEY UPDATE
"""
SET_ATTRIBUTES = """
UPDATE contacts
SET name = CASE WHEN $2 THEN $3 ELSE name END,
    tags = coalesce($4, tags),
    fields = coalesce($5, fields),
    account_manager_id = CASE WHEN $6 THEN $7 ELSE account_manager_id END,
    updated_at = $8
WHERE id = $1
"""
# what care reads (birthday, timezone, locale, preferred_channel); a flag per column says
# whether it is set, so a null clears it
SET_CARE = """
UPDATE contacts
SET birthday = CASE WHEN $2 THEN $3 ELSE birthday END,
    timezone = CASE WHEN $4 THEN $5 ELSE timezone END,
    locale = CASE WHEN $6 THEN $7 ELSE locale END,
    preferred_channel = CASE WHEN $8 THEN $9 ELSE preferred_channel END,
    updated_at = $10
WHERE id = $1
"""
AGENT_EXISTS = "SELECT EXISTS (SELECT 1 FROM agents WHERE id = $1)"
# who may see the contact's conversations (Agent.can_see decides)
CONVERSATION_OWNERS = """
SELECT DISTINCT team_id, assignee_id FROM conversations WHERE contact_id = $1
"""


async def lock_attributes(conn: Connection, contact_id: int) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(LOCK_ATTRIBUTES, contact_id)
    return row


async def set_attributes(
    conn: Connection, contact_id: int, changes: Mapping[str, Any], now: datetime
) -> None:
    """Set the attributes named in `changes` (name, tags, fields, account_manager_id)."""
    await conn.execute(
        SET_ATTRIBUTES,
        contact_id,
        "name" in changes,
        changes.get("name"),
        changes.get("tags"),
        changes.get("fields"),
        "account_manager_id" in changes,
        changes.get("account_manager_id"),
        now,
    )


async def set_care(
    conn: Connection, contact_id: int, changes: Mapping[str, Any], now: datetime
) -> None:
    """Set the care attributes named in `changes` (birthday, timezone, locale,
    preferred_channel; None clears one)."""
    flags_and_values: list[Any] = []
    for column in CARE_ATTRIBUTES:
        flags_and_values += [column in changes, changes.get(column)]
    await conn.execute(SET_CARE, contact_id, *flags_and_values, now)


async def agent_exists(conn: Executor, agent_id: int) -> bool:
    return bool(await conn.fetchval(AGENT_EXISTS, agent_id))


async def conversation_owners(
    conn: Executor, contact_id: int
) -> list[tuple[int | None, int | None]]:
    """(team_id, assignee_id) of the contact's conversations, each pair once."""
    rows = await conn.fetch(CONVERSATION_OWNERS, contact_id)
    return [(r["team_id"], r["assignee_id"]) for r in rows]


# --- the CSV import (services/contact_import.py): a batch of rows at a time ------------------

IDENTITY_OWNERS = """
SELECT ci.kind, ci.value, ci.contact_id
FROM unnest($1::text[], $2::text[]) AS given (kind, value)
JOIN contact_identities ci ON ci.kind = given.kind AND ci.value = given.value
"""
# in id order, so that two transactions locking some of the same contacts cannot deadlock
LOCK_FOR_IMPORT = """
SELECT id, name, tags, fields, account_manager_id, value, pinned_tier, birthday, timezone,
       locale, preferred_channel
FROM contacts WHERE id = any($1::bigint[])
ORDER BY id
FOR NO KEY UPDATE
"""
# KEY SHARE until the commit: an agent named account manager is not deleted before it is
# written (agents' addresses are unique whatever their case)
AGENTS_BY_EMAIL = """
SELECT id, lower(email) AS email FROM agents WHERE lower(email) = any($1::text[])
FOR KEY SHARE
"""
# ids first, so each new contact is known to be the row that asked for it
NEW_CONTACT_IDS = """
SELECT nextval(pg_get_serial_sequence('contacts', 'id')::regclass) AS id
FROM generate_series(1, $1)
"""
# tags and fields travel as JSON text: a text[][] cannot hold rows of different lengths (and
# asyncpg takes a list in a list for a second dimension)
CREATE_IMPORTED = """
INSERT INTO contacts (id, name, tags, fields, account_manager_id, created_at, updated_at)
SELECT g.id, g.name, ARRAY(SELECT jsonb_array_elements_text(g.tags::jsonb)), g.fields::jsonb,
       g.manager, $6, $6
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bigint[])
     AS g (id, name, tags, fields, manager)
"""
SET_IMPORTED = """
UPDATE contacts c
SET name = g.name, tags = ARRAY(SELECT jsonb_array_elements_text(g.tags::jsonb)),
    fields = g.fields::jsonb, account_manager_id = g.manager, updated_at = $6
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bigint[])
     AS g (id, name, tags, fields, manager)
WHERE c.id = g.id
"""
SET_CARE_OF_MANY = """
UPDATE contacts c
SET birthday = g.birthday, timezone = g.timezone, locale = g.locale,
    preferred_channel = g.preferred_channel, updated_at = $6
FROM unnest($1::bigint[], $2::date[], $3::text[], $4::text[], $5::text[])
     AS g (id, birthday, timezone, locale, preferred_channel)
WHERE c.id = g.id
"""
# an identity that belongs to someone else stays theirs
ADD_IDENTITIES_OF_MANY = """
INSERT INTO contact_identities (contact_id, kind, value)
SELECT contact_id, kind, value
FROM unnest($1::bigint[], $2::text[], $3::text[]) AS given (contact_id, kind, value)
ON CONFLICT (kind, value) DO NOTHING
"""


async def identity_owners(conn: Executor, identities: Sequence[Identity]) -> dict[Identity, int]:
    """The contact each known identity belongs to."""
    rows = await conn.fetch(IDENTITY_OWNERS, *_columns(tuple(identities)))
    return {Identity(IdentityKind(r["kind"]), r["value"]): int(r["contact_id"]) for r in rows}


async def lock_for_import(conn: Connection, contact_ids: Sequence[int]) -> list[asyncpg.Record]:
    """Lock the contacts' rows (in id order); what an import may change on each."""
    return list(await conn.fetch(LOCK_FOR_IMPORT, sorted(contact_ids)))


async def agent_ids_by_email(conn: Connection, emails: Sequence[str]) -> dict[str, int]:
    """Agent ids by lowercased e-mail, their rows held against deletion until the commit."""
    rows = await conn.fetch(AGENTS_BY_EMAIL, [e.lower() for e in emails])
    return {str(r["email"]): int(r["id"]) for r in rows}


def _attribute_columns(
    contacts: Sequence[Mapping[str, Any]],
) -> tuple[list[str | None], list[str], list[str], list[int | None]]:
    return (
        [c["name"] for c in contacts],
        [json.dumps(list(c["tags"])) for c in contacts],
        [json.dumps(c["fields"]) for c in contacts],
        [c["account_manager_id"] for c in contacts],
    )


async def create_imported(
    conn: Connection, contacts: Sequence[Mapping[str, Any]], now: datetime
) -> list[int]:
    """New contacts with name, tags, fields and account_manager_id; their ids, in order."""
    if not contacts:
        return []
    ids = [int(r["id"]) for r in await conn.fetch(NEW_CONTACT_IDS, len(contacts))]
    await conn.execute(CREATE_IMPORTED, ids, *_attribute_columns(contacts), now)
    return ids


async def set_imported(
    conn: Connection, contacts: Mapping[int, Mapping[str, Any]], now: datetime
) -> None:
    """Set name, tags, fields and account_manager_id of each contact (by id)."""
    if contacts:
        ids = sorted(contacts)
        columns = _attribute_columns([contacts[i] for i in ids])
        await conn.execute(SET_IMPORTED, ids, *columns, now)


async def set_care_of_many(
    conn: Connection, contacts: Mapping[int, Mapping[str, Any]], now: datetime
) -> None:
    """Set birthday, timezone, locale and preferred_channel of each contact (by id)."""
    if contacts:
        ids = sorted(contacts)
        columns = [[contacts[i][column] for i in ids] for column in CARE_ATTRIBUTES]
        await conn.execute(SET_CARE_OF_MANY, ids, *columns, now)


async def add_identities_of_many(
    conn: Connection, identities: Sequence[tuple[int, Identity]]
) -> None:
    """Attach (contact id, identity) pairs; one already someone's stays theirs."""
    if identities:
        await conn.execute(
            ADD_IDENTITIES_OF_MANY,
            [contact_id for contact_id, _ in identities],
            [str(i.kind) for _, i in identities],
            [i.value for _, i in identities],
        )
