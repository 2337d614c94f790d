"""A contact's card, and what supervisors and admins change on it (value, tags, fields, account
manager, and what care reads: birthday, time zone, locale, preferred channel, consent per
channel); a change of value moves the contact's tier in the same transaction.

A consent given here is recorded with source "api"; a repeat of what is recorded changes
nothing (changed_at stays when it last changed). A grant of SMS consent never lifts an SMS
opt-out (STOP): the card keeps showing sms_opted_out, and care never texts the number.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import asyncpg

from contactcenter.conns import Conns
from contactcenter.db import Connection
from contactcenter.domain.agents import Agent
from contactcenter.domain.contacts import (
    CARE_ATTRIBUTES,
    ConsentSource,
    FieldValue,
    check_birthday,
    merge_fields,
)
from contactcenter.domain.enums import Channel
from contactcenter.domain.errors import Invalid, NotFound
from contactcenter.services import tiers
from contactcenter.store import consents, contacts, locks

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ContactChanges:
    """What a PATCH changes, checked already (domain.contacts, domain.tiers.parse_value);
    `given` names the attributes it sets, so a null account manager is told from none."""

    given: frozenset[str]
    name: str | None = None
    value: Decimal | None = None
    tags: Sequence[str] | None = None
    fields: dict[str, FieldValue | None] = field(default_factory=dict)
    account_manager_id: int | None = None
    # care: a date not yet checked against the clock (update does), an IANA zone, a
    # normalised locale ("zh-CN"), a channel; None clears one named in `given`
    birthday: date | None = None
    timezone: str | None = None
    locale: str | None = None
    preferred_channel: Channel | None = None
    # channel -> granted (True), withdrawn (False) or never asked (None); channels left out
    # keep theirs
    consents: Mapping[Channel, bool | None] = field(default_factory=dict)


def _not_found() -> NotFound:
    return NotFound("no such contact", code="contact_not_found")


async def card(conns: Conns, agent: Agent, contact_id: int) -> dict[str, Any]:
    """The contact's card. Supervisors and admins see every contact; an agent sees a contact
    when it sees one of the contact's conversations (otherwise it does not exist for them)."""
    async with conns.db.acquire() as conn:
        if not agent.sees_everything:
            owners = await contacts.conversation_owners(conn, contact_id)
            if not any(agent.can_see(team_id, assignee_id) for team_id, assignee_id in owners):
                raise _not_found()
        found = await contacts.get_card(conn, contact_id)
    if found is None:
        raise _not_found()
    return found


async def update(conns: Conns, contact_id: int, changes: ContactChanges) -> dict[str, Any]:
    """Apply the changes in one transaction (all or nothing) and return the new card."""
    now = conns.clock()
    if changes.birthday is not None:
        check_birthday(changes.birthday, now)
    async with conns.db.acquire() as conn, conn.transaction():
        if changes.value is not None:
            await locks.tier_change(conn)  # before the contact's row (see locks.tier_change)
        row = await contacts.lock_attributes(conn, contact_id)
        if row is None:
            raise _not_found()
        await _set_attributes(conn, row, changes, now)
        await _set_care(conn, contact_id, changes, now)
        await _set_consents(conn, contact_id, changes.consents, now)
        if changes.value is not None:
            await tiers.set_value(conn, contact_id, changes.value, now)
        found = await contacts.get_card(conn, contact_id)
    assert found is not None
    logger.info(
        "contact updated", extra={"contact_id": contact_id, "changed": sorted(changes.given)}
    )
    return found


async def _set_attributes(
    conn: Connection, row: asyncpg.Record, changes: ContactChanges, now: datetime
) -> None:
    values: dict[str, Any] = {}
    if "name" in changes.given:
        values["name"] = changes.name
    if "tags" in changes.given and changes.tags is not None:
        values["tags"] = list(changes.tags)
    if "fields" in changes.given:
        values["fields"] = merge_fields(row["fields"], changes.fields)
    if "account_manager_id" in changes.given:
        manager = changes.account_manager_id
        if manager is not None and not await contacts.agent_exists(conn, manager):
            raise Invalid(
                "account_manager_id is not an agent",
                code="unknown_agent",
                details={"field": "account_manager_id"},
            )
        values["account_manager_id"] = manager
    if values:
        try:
            await contacts.set_attributes(conn, row["id"], values, now)
        except asyncpg.ForeignKeyViolationError:  # the agent was deleted a moment ago
            raise Invalid(
                "account_manager_id is not an agent",
                code="unknown_agent",
                details={"field": "account_manager_id"},
            ) from None


async def _set_care(
    conn: Connection, contact_id: int, changes: ContactChanges, now: datetime
) -> None:
    values = {name: getattr(changes, name) for name in CARE_ATTRIBUTES if name in changes.given}
    if values:
        await contacts.set_care(conn, contact_id, values, now)


async def _set_consents(
    conn: Connection, contact_id: int, given: Mapping[Channel, bool | None], now: datetime
) -> None:
    """Grants and withdrawals recorded as the API's; None forgets the channel's."""
    for channel, granted in given.items():
        if granted is None:
            await consents.forget(conn, contact_id, channel)
        else:
            await consents.record(conn, contact_id, channel, granted, ConsentSource.API, now)
