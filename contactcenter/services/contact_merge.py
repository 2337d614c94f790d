"""Merging two contacts that are one customer: everything of `from` moves to `into`, then
`from` is deleted and the merge recorded (contact_merges), in one transaction.

Locks, in the order the CSV import takes them (services/contact_import.py): locks.tier_change
(shared; the survivor's value may change), the identity locks of every address of `from` (the
ones services.ingest takes before it looks an address up), then both contacts' rows in id
order. So a message from an address of `from` that is being ingested finishes first (and its
conversation is moved), and one that arrives during the merge waits, then finds the address
on `into`: it never lands on, nor recreates, the merged contact.

What survives: into's name, birthday, timezone, locale, preferred channel and account manager
unless null (then from's); the union of the tags (into's first); the fields, into's winning
per key; the profile likewise; into's pin. The value is the higher of the two, not their sum:
a value is what a customer is worth (an import from the CRM, an agent's PATCH), and two records
of one customer usually carry the same figure twice, so a sum would invent worth and could
lift the customer a tier on a duplicate; the higher loses nothing that was known, and from's
value stays in the audit. A higher value re-tiers the survivor (reason 'value'), as PATCH does.

Rows with a unique key per contact keep the survivor's where both have one: a care send of
the same kind and occasion, a consent for the same channel. The dropped rows are kept in the
audit's snapshot.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg

from contactcenter.conns import Conns
from contactcenter.db import Connection
from contactcenter.domain.agents import Agent
from contactcenter.domain.contact_import import identity_key
from contactcenter.domain.contacts import MAX_FIELDS, MAX_TAGS
from contactcenter.domain.errors import Invalid, NotFound
from contactcenter.services import tiers
from contactcenter.store import contact_merges as store
from contactcenter.store import contacts, locks

logger = logging.getLogger(__name__)

# a deadlock with another writer (a care job holding a care send while it waits for the
# contact) costs a retry, not an error
ATTEMPTS = 3
# the attributes where into's wins unless it is null
KEPT_UNLESS_NULL = (
    "name",
    "account_manager_id",
    "birthday",
    "timezone",
    "locale",
    "preferred_channel",
)


@dataclass(frozen=True)
class MergeResult:
    merge_id: int
    card: dict[str, Any]
    counts: dict[str, int]


def _not_found(contact_id: int) -> NotFound:
    return NotFound("no such contact", code="contact_not_found", details={"contact_id": contact_id})


def survivor_attributes(into: Mapping[str, Any], other: Mapping[str, Any]) -> dict[str, Any]:
    """What the survivor keeps of both (see the module's docstring); Invalid when the union of
    tags or fields is more than a contact may have."""
    kept = {
        name: into[name] if into[name] is not None else other[name] for name in KEPT_UNLESS_NULL
    }
    tags = list(dict.fromkeys([*into["tags"], *other["tags"]]))
    if len(tags) > MAX_TAGS:
        raise Invalid(
            f"together the contacts have more than {MAX_TAGS} tags",
            code="too_many_tags",
            details={"max": MAX_TAGS, "count": len(tags)},
        )
    fields = {**other["fields"], **into["fields"]}
    if len(fields) > MAX_FIELDS:
        raise Invalid(
            f"together the contacts have more than {MAX_FIELDS} fields",
            code="too_many_fields",
            details={"max": MAX_FIELDS, "count": len(fields)},
        )
    return {
        **kept,
        "tags": tags,
        "fields": fields,
        "profile": {**other["profile"], **into["profile"]},
    }


async def merge(conns: Conns, agent: Agent, into_id: int, from_id: int) -> MergeResult:
    """Merge `from_id` into `into_id` (see the module's docstring); NotFound
    (contact_not_found) for an unknown id, Invalid (same_contact, too_many_tags,
    too_many_fields) with nothing written."""
    if into_id == from_id:
        raise Invalid(
            "a contact cannot be merged into itself",
            code="same_contact",
            details={"into_id": into_id, "from_id": from_id},
        )
    for attempt in range(1, ATTEMPTS + 1):
        try:
            async with conns.db.acquire() as conn, conn.transaction():
                result = await _merge(conn, conns, agent, into_id, from_id)
        except asyncpg.DeadlockDetectedError:
            if attempt == ATTEMPTS:
                raise
            logger.warning("contact merge deadlocked, retrying", extra={"into_id": into_id})
            continue
        logger.info(
            "contacts merged",
            extra={"merge_id": result.merge_id, "into_id": into_id, "from_id": from_id},
        )
        return result
    raise AssertionError("unreachable")


async def _lock_identities(conn: Connection, contact_id: int) -> None:
    """Hold the identity lock of every address of the contact. An address may join it while
    we wait (an ingest holding one of its addresses attaches another): lock until no new one
    shows; once all are held, none can join (each writer holds the address it resolved by)."""
    held: set[str] = set()
    while True:
        keys = {identity_key(i) for i in await store.identities_of(conn, contact_id)}
        if keys <= held:
            return
        await locks.identities(conn, keys - held)
        held |= keys


async def _merge(
    conn: Connection, conns: Conns, agent: Agent, into_id: int, from_id: int
) -> MergeResult:
    now = conns.clock()
    await locks.tier_change(conn)  # before any contact row (see locks.tier_change)
    await _lock_identities(conn, from_id)
    into, other = await store.lock_pair(conn, into_id, from_id)
    if into is None:
        raise _not_found(into_id)
    if other is None:
        raise _not_found(from_id)
    attributes = survivor_attributes(into, other)
    snapshot: dict[str, Any] = {
        "contact": other["snapshot"],
        "identities": [
            {"kind": str(i.kind), "value": i.value}
            for i in await store.identities_of(conn, from_id)
        ],
    }

    counts = await store.move_simple(conn, into_id, from_id)
    counts["care_sends"], dropped_sends = await store.move_care_sends(conn, into_id, from_id)
    counts["consents"], dropped_consents = await store.move_consents(conn, into_id, from_id)
    counts["care_sends_dropped"] = len(dropped_sends)
    counts["consents_dropped"] = len(dropped_consents)
    snapshot["dropped"] = {"care_sends": dropped_sends, "consents": dropped_consents}

    await store.set_survivor(conn, into_id, attributes, now)
    await store.delete_contact(conn, from_id)
    if other["value"] > into["value"]:
        await tiers.set_value(conn, into_id, other["value"], now)
    merge_id = await store.record(
        conn,
        into_id=into_id,
        from_id=from_id,
        agent_id=agent.id,
        agent_name=agent.name,
        at=now,
        snapshot=snapshot,
        counts=counts,
    )
    card = await contacts.get_card(conn, into_id)
    assert card is not None  # locked by this transaction
    return MergeResult(merge_id, card, counts)


async def merges_into(conns: Conns, contact_id: int) -> list[dict[str, Any]]:
    """The merges into the contact (and into the contacts merged into it), latest first."""
    async with conns.db.acquire() as conn, conn.transaction(readonly=True):
        if not await store.contact_exists(conn, contact_id):
            raise _not_found(contact_id)
        rows = await store.merges_into(conn, contact_id)
    return [
        {
            "id": r["id"],
            "into_id": r["into_id"],
            "from_id": r["from_id"],
            "by": None
            if r["agent_name"] is None
            else {"id": r["agent_id"], "name": r["agent_name"]},
            "merged_at": r["merged_at"],
            "counts": r["counts"],
            "from_snapshot": r["from_snapshot"],
        }
        for r in rows
    ]
