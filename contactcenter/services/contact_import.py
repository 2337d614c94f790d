"""Importing customers from a CSV streamed in (POST /v1/admin/contacts/import).

The body is read as it arrives, never whole: records come out of
domain.contact_import.RecordReader, each row is checked on its own (a bad row is an error in
the answer, never a stop), and every `batch_rows` rows are written in one transaction of
their own. Nothing in a batch can fail in the database, so one bad row never costs the good
ones: every row is checked before anything is written (domain.contact_import.parse_row), and
what only the database knows (who an address belongs to, which agent an e-mail names) is read
under locks and decided in plan_batch before the writes.

A batch transaction takes, in this order: locks.tier_change (shared, before any contact row:
a recompute never waits on a row the batch holds while the batch waits on it), the identity
locks of all its addresses in one sorted statement (the same ones services.ingest takes, so a
first message from an address being imported waits for the batch, or the batch for it, and
the address makes one contact), then the rows of the contacts found, in id order.

Consents are read under the contacts' row locks and written where they change, with source
"import" (a repeat of what is recorded changes nothing); an SMS grant never lifts an opt-out.

Values go through services.tiers.set_values once a batch (it counts the customer base once a
call); pins are written with their history (reason 'pin' or 'unpin', the admin, the line).

Where the import stops early, everything before is kept: a record that cannot be read (bad
CSV, not UTF-8, too long) is reported as its line's error and the rows before it are written;
past `max_bytes` the rows that ended within the cap are written and nothing after it is read.
Importing the same file again changes nothing: every row comes back unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from contactcenter.conns import Conns
from contactcenter.db import Connection
from contactcenter.domain.contact_import import (
    ContactState,
    Header,
    ImportRow,
    NameCheck,
    Plan,
    ReadError,
    Record,
    RecordReader,
    RowError,
    identity_key,
    is_blank,
    parse_header,
    parse_row,
    plan_batch,
    row_error,
)
from contactcenter.domain.contacts import CARE_ATTRIBUTES, ConsentSource
from contactcenter.domain.enums import TierChangeReason
from contactcenter.domain.errors import Invalid
from contactcenter.services import tiers
from contactcenter.store import consents, contacts, locks
from contactcenter.store import tiers as tiers_store

logger = logging.getLogger(__name__)

BATCH_ROWS = 500
MAX_ERRORS = 1000
DEFAULT_MAX_BYTES = 50 * 1024 * 1024
MAX_ROW_BYTES = 64 * 1024


@dataclass(frozen=True)
class ImportOptions:
    # the PATCH rule for names (api.contacts), see domain.contact_import.NameCheck
    check_name: NameCheck
    # for phone numbers without a country code (None: they need one)
    region: str | None = None
    max_bytes: int = DEFAULT_MAX_BYTES
    max_row_bytes: int = MAX_ROW_BYTES
    batch_rows: int = BATCH_ROWS


@dataclass
class ImportReport:
    # rows read (blank ones aside): created + updated + unchanged + error_count
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)  # the first MAX_ERRORS, by line
    error_count: int = 0
    # the line the import stopped at before the end of the body (a record that cannot be
    # read, or the size cap): nothing from it on was written
    stopped_at_line: int | None = None
    # the body went past max_bytes (what ended within it was imported)
    too_large: bool = False

    def add_errors(self, errors: Iterable[RowError]) -> None:
        found = sorted(errors, key=lambda e: e.line)
        self.error_count += len(found)
        self.errors.extend(found[: MAX_ERRORS - len(self.errors)])


async def import_csv(
    conns: Conns, admin_id: int, chunks: AsyncIterable[bytes], options: ImportOptions
) -> ImportReport:
    """Import the CSV whose bytes come in `chunks`. The header is checked before any row is
    written (Invalid: missing_header, unknown_column, no_identity_column ...)."""
    work = _Import(conns, admin_id, options)
    received = 0
    async for chunk in chunks:
        received += len(chunk)
        if received > options.max_bytes:
            await work.take(work.reader.feed(chunk[: len(chunk) - received + options.max_bytes]))
            if not work.reader.stopped:
                work.too_large()
            break
        await work.take(work.reader.feed(chunk))
        if work.reader.stopped:
            break
    else:
        await work.take(work.reader.end())
    report = await work.finish()
    logger.info(
        "contacts imported",
        extra={
            "admin_id": admin_id,
            "rows": report.rows,
            # (not "created": a LogRecord attribute)
            "contacts_created": report.created,
            "contacts_updated": report.updated,
            "rows_unchanged": report.unchanged,
            "error_count": report.error_count,
            "stopped_at_line": report.stopped_at_line,
        },
    )
    return report


class _Import:
    def __init__(self, conns: Conns, admin_id: int, options: ImportOptions) -> None:
        self.conns = conns
        self.admin_id = admin_id
        self.options = options
        self.reader = RecordReader(options.max_row_bytes)
        self.header: Header | None = None
        self.batch: list[ImportRow] = []
        self.batch_errors: list[RowError] = []
        self.report = ImportReport()

    async def take(self, items: list[Record | ReadError]) -> None:
        for item in items:
            if isinstance(item, ReadError):
                self._stop(item)
            elif self.header is None:
                self.header = parse_header(item.cells)
            else:
                await self._row(self.header, item)

    def _stop(self, error: ReadError) -> None:
        if self.header is None:
            raise Invalid(
                f"the header cannot be read: {error.message}",
                code=error.code,
                details={"line": error.line},
            )
        self.report.rows += 1
        self.batch_errors.append(RowError(error.line, error.code, error.message))
        self.report.stopped_at_line = error.line

    def too_large(self) -> None:
        self.report.too_large = True
        self.report.stopped_at_line = self.reader.next_line

    async def _row(self, header: Header, record: Record) -> None:
        if is_blank(record.cells):
            return
        self.report.rows += 1
        try:
            row = parse_row(
                header,
                record,
                region=self.options.region,
                check_name=self.options.check_name,
                now=self.conns.clock(),
            )
        except Invalid as error:
            self.batch_errors.append(row_error(record.line, error))
        else:
            self.batch.append(row)
        if len(self.batch) + len(self.batch_errors) >= self.options.batch_rows:
            await self._flush()

    async def _flush(self) -> None:
        errors = self.batch_errors
        if self.batch:
            plan = await self._write(self.batch)
            self.report.created += plan.created_rows
            self.report.updated += plan.updated_rows
            self.report.unchanged += plan.unchanged_rows
            errors = errors + plan.errors
        self.report.add_errors(errors)
        self.batch, self.batch_errors = [], []

    async def finish(self) -> ImportReport:
        if self.header is None and not self.report.too_large:
            raise Invalid("the body has no header row", code="missing_header")
        await self._flush()
        return self.report

    async def _write(self, rows: list[ImportRow]) -> Plan:
        now = self.conns.clock()
        identities = {i for row in rows for i in row.identities}
        emails = sorted({r.account_manager for r in rows if r.account_manager is not None})
        async with self.conns.db.acquire() as conn, conn.transaction():
            await locks.tier_change(conn)  # before any contact row (see locks.tier_change)
            await locks.identities(conn, {identity_key(i) for i in identities})
            owners = await contacts.identity_owners(conn, sorted(identities, key=identity_key))
            found = await contacts.lock_for_import(conn, sorted(set(owners.values())))
            # read under the contacts' locks, which every consent writer takes first
            granted = await consents.granted_of_many(conn, [r["id"] for r in found])
            existing = {r["id"]: _state(r, granted.get(r["id"], {})) for r in found}
            # a contact deleted between the two reads: its addresses are free again
            owners = {i: c for i, c in owners.items() if c in existing}
            managers = await contacts.agent_ids_by_email(conn, emails)
            plan = plan_batch(rows, owners, existing, managers)
            await _apply(conn, plan, self.admin_id, now)
        return plan


def _state(row: asyncpg.Record, granted: dict[str, bool]) -> ContactState:
    return ContactState(
        name=row["name"],
        tags=tuple(row["tags"]),
        fields=row["fields"],
        account_manager_id=row["account_manager_id"],
        value=row["value"],
        pinned_tier=row["pinned_tier"],
        birthday=row["birthday"],
        timezone=row["timezone"],
        locale=row["locale"],
        preferred_channel=row["preferred_channel"],
        consents=granted,
    )


def _attributes(state: ContactState) -> dict[str, Any]:
    return {
        "name": state.name,
        "tags": state.tags,
        "fields": dict(state.fields),
        "account_manager_id": state.account_manager_id,
    }


def _care(state: ContactState) -> dict[str, Any]:
    return {name: getattr(state, name) for name in CARE_ATTRIBUTES}


async def _apply(conn: Connection, plan: Plan, admin_id: int, now: datetime) -> None:
    new_ids = await contacts.create_imported(
        conn, [_attributes(s) for s in plan.created.values()], now
    )
    ids = dict(zip(plan.created, new_ids, strict=True))  # the planned (negative) ids -> real

    def real(contact_id: int) -> int:
        return ids.get(contact_id, contact_id)

    await contacts.set_imported(conn, {c: _attributes(s) for c, s in plan.updated.items()}, now)
    await contacts.add_identities_of_many(conn, [(real(c), i) for c, i in plan.identities])
    await contacts.set_care_of_many(conn, {real(c): _care(s) for c, s in plan.care.items()}, now)
    await consents.record_many(
        conn,
        {(real(c), channel): granted for (c, channel), granted in plan.consents.items()},
        ConsentSource.IMPORT,
        now,
    )
    if plan.values:
        await tiers.set_values(conn, {real(c): v for c, v in plan.values.items()}, now)
    for contact_id, tier in plan.pins.items():
        await _pin(conn, real(contact_id), tier, admin_id, plan.pin_lines[contact_id], now)


async def _pin(
    conn: Connection, contact_id: int, tier: int | None, admin_id: int, line: int, now: datetime
) -> None:
    """What services.tiers.pin does, in the batch's transaction (tier_change is held)."""
    row = await tiers_store.lock_contact(conn, contact_id)
    assert row is not None  # locked or created by this transaction
    in_force = await tiers_store.set_tiers(conn, contact_id, row["computed_tier"], tier, now)
    reason = TierChangeReason.UNPIN if tier is None else TierChangeReason.PIN
    detail = {"note": f"CSV import, line {line}"}
    await tiers_store.record_change(
        conn, contact_id, row["tier"], in_force, reason, detail, now, changed_by=admin_id
    )
