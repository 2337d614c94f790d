"""Business-hours calendars: validated whole before anything is written, one transaction each."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import asyncpg

from contactcenter.conns import Conns
from contactcenter.db import Connection
from contactcenter.domain.agents import Agent
from contactcenter.domain.audit import AuditAction
from contactcenter.domain.business_hours import Calendar, is_open, validate
from contactcenter.domain.errors import Conflict, NotFound
from contactcenter.services import audit
from contactcenter.store import business_hours, routing_rules

logger = logging.getLogger(__name__)
ENTITY = "business_hours"

# what a calendar is made of (is_default is a flag on top, handled apart)
FIELDS = ("name", "timezone", "weekly", "country", "subdivision", "closed_dates", "open_dates")


def _not_found() -> NotFound:
    return NotFound("no such business-hours calendar", code="business_hours_not_found")


def _unique(error: asyncpg.UniqueViolationError) -> Conflict:
    if error.constraint_name == "business_hours_one_default":
        return Conflict("the default calendar changed at the same time; try again")
    return Conflict("a calendar with that name exists", code="business_hours_exists")


def _stored(row: asyncpg.Record) -> dict[str, Any]:
    return {name: row[name] for name in FIELDS}


async def create(
    conns: Conns, values: dict[str, Any], *, by: Agent | None = None
) -> asyncpg.Record:
    is_default = bool(values.get("is_default"))
    calendar = validate(**{name: values[name] for name in FIELDS if name in values})
    try:
        async with conns.db.acquire() as conn, conn.transaction():
            if is_default:
                await business_hours.step_down_default(conn, -1)
            row = await business_hours.insert(conn, calendar, is_default=is_default)
            await audit.record(conn, by, AuditAction.CREATE, ENTITY, row["id"], after=row)
    except asyncpg.UniqueViolationError as error:
        raise _unique(error) from None
    logger.info("business hours created", extra={"business_hours_id": row["id"]})
    return row


async def update(
    conns: Conns, calendar_id: int, changes: dict[str, Any], *, by: Agent | None = None
) -> asyncpg.Record:
    try:
        async with conns.db.acquire() as conn, conn.transaction():
            row = stored = await business_hours.get_for_update(conn, calendar_id)
            if row is None:
                raise _not_found()
            merged = {**_stored(row), **{k: changes[k] for k in FIELDS if k in changes}}
            row = await business_hours.update(conn, validate(id=calendar_id, **merged))
            assert row is not None  # locked above
            wanted = changes.get("is_default")
            if wanted is not None and wanted != row["is_default"]:
                row = await _change_default(conn, calendar_id, wanted)
            await audit.record(
                conn, by, AuditAction.UPDATE, ENTITY, calendar_id, before=stored, after=row
            )
    except asyncpg.UniqueViolationError as error:
        raise _unique(error) from None
    logger.info("business hours changed", extra={"business_hours_id": calendar_id})
    return row


async def _change_default(conn: Connection, calendar_id: int, wanted: bool) -> asyncpg.Record:
    if wanted:
        await business_hours.step_down_default(conn, calendar_id)
        return await business_hours.set_default(conn, calendar_id, True)
    # no default any more: rules whose business-hours condition names no calendar would be
    # left without one (those naming this calendar by its id keep it)
    named_before = await routing_rules.referencing(conn, business_hours_id=calendar_id)
    row = await business_hours.set_default(conn, calendar_id, False)
    named_now = await routing_rules.referencing(conn, business_hours_id=calendar_id)
    if relying := sorted(set(named_before) - set(named_now)):
        raise Conflict(
            "routing rules use the default calendar: make another calendar the default instead",
            code="business_hours_in_use",
            details={"rule_ids": relying},
        )
    return row


async def delete(conns: Conns, calendar_id: int, *, by: Agent | None = None) -> None:
    try:
        async with conns.db.acquire() as conn, conn.transaction():
            stored = await business_hours.get_for_update(conn, calendar_id)
            if stored is None:
                raise _not_found()
            rule_ids = await routing_rules.referencing(conn, business_hours_id=calendar_id)
            if rule_ids:
                raise Conflict(
                    "routing rules use this calendar: change them first",
                    code="business_hours_in_use",
                    details={"rule_ids": rule_ids},
                )
            await business_hours.delete(conn, calendar_id)
            await audit.record(conn, by, AuditAction.DELETE, ENTITY, calendar_id, before=stored)
    except asyncpg.ForeignKeyViolationError:  # something else that points at it (a policy)
        raise Conflict("something uses this calendar", code="business_hours_in_use") from None
    logger.info("business hours deleted", extra={"business_hours_id": calendar_id})


async def open_at(conns: Conns, calendar_id: int, at: datetime) -> tuple[Calendar, bool]:
    calendar = await business_hours.load(conns.db, calendar_id)
    if calendar is None:
        raise _not_found()
    return calendar, is_open(calendar, at)
