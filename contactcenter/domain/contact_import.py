"""Importing customers from CSV, the pure part: reading records out of a byte stream, the
header, each row into what it sets, and a batch of rows into what to write.

The file is UTF-8 (a BOM is skipped), lines end with LF or CRLF, the first record is the
header. Columns are named case-insensitively, in any order: email, phone, name, value, tags
(separated by ";"), tier (1 to 4 pins, "none" unpins), account_manager (an agent's e-mail) and
`field:<key>` (a contact field, its key as PATCH /v1/contacts takes it), and what care reads:
birthday (YYYY-MM-DD), timezone (IANA), locale (en, zh-CN ...), preferred_channel (email, sms,
web), consent_email and consent_sms (yes, no, true, false, 1 or 0: consent granted or
withdrawn, recorded with source "import"). An empty cell leaves what the contact has; a given
one sets it (tags replace the contact's tags, fields are set key by key, as strings). Rows are
checked with the same rules and codes as PATCH /v1/contacts.

A row is found by its identities (its e-mail and phone, normalised): the contact they belong
to is updated, or a new one is created with them; identities of two different contacts are
refused (conflicting_identities), never merged.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import phonenumbers

from contactcenter.domain.care import check_timezone
from contactcenter.domain.contacts import (
    CARE_ATTRIBUTES,
    check_birthday,
    check_channel,
    check_fields,
    merge_fields,
    normalise_locale,
    normalise_tags,
    parse_birthday,
)
from contactcenter.domain.enums import Channel, IdentityKind
from contactcenter.domain.errors import Invalid
from contactcenter.domain.identities import normalise_email, normalise_phone
from contactcenter.domain.messages import Identity
from contactcenter.domain.tiers import RANKS, parse_value

IDENTITY_COLUMNS = ("email", "phone")
# consent_<channel> column -> the channel it grants or withdraws
CONSENT_COLUMNS = {"consent_email": Channel.EMAIL, "consent_sms": Channel.SMS}
CONSENT_WORDS = {"yes": True, "true": True, "1": True, "no": False, "false": False, "0": False}
COLUMNS = frozenset(
    {
        *IDENTITY_COLUMNS,
        "name",
        "value",
        "tags",
        "tier",
        "account_manager",
        *CARE_ATTRIBUTES,
        *CONSENT_COLUMNS,
    }
)
FIELD_PREFIX = "field:"
TAG_SEPARATOR = ";"
UNPIN = "none"
# RFC 5321: a forward path holds at most 254 characters (and an index row must stay small)
MAX_EMAIL_CHARS = 254
MAX_ERROR_TEXT = 80
MAX_MESSAGE_CHARS = 300
BOM = codecs.BOM_UTF8

# the PATCH rule for names, handed in by the HTTP layer that owns it: the clean name or
# Invalid (code invalid_name)
NameCheck = Callable[[str], str]


# --- records out of bytes -------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    line: int  # where the record starts (the header is line 1)
    cells: list[str]


@dataclass(frozen=True)
class ReadError:
    """The file cannot be read on from here: the import stops at this line."""

    line: int
    code: str
    message: str


class _NeedMore(Exception):
    """The CSV reader wants a line that has not arrived yet."""


class _Lines(Iterator[str]):
    def __init__(self, lines: list[str], *, last: bool) -> None:
        self.lines = lines
        self.last = last
        self.taken = 0

    def __next__(self) -> str:
        if self.taken < len(self.lines):
            self.taken += 1
            return self.lines[self.taken - 1]
        if self.last:
            raise StopIteration
        raise _NeedMore


class RecordReader:
    """CSV records from bytes fed in pieces, with exact CSV rules (the csv module's, strict):
    a quoted cell may hold line breaks. Memory stays bounded by `max_row_bytes`: a line, or a
    record over several lines, that is longer stops the reading (row_too_long), as do bytes
    that are not UTF-8 (invalid_encoding) and malformed CSV (invalid_csv). Blank lines are
    skipped. After a ReadError nothing more comes out."""

    def __init__(self, max_row_bytes: int) -> None:
        self.max_row_bytes = max_row_bytes
        self._tail = b""  # after the last line break
        self._pending: list[str] = []  # the lines of a record not yet complete
        self._pending_bytes = 0
        self._line = 0  # the line before self._pending's first
        self._started = False
        self.stopped = False

    @property
    def next_line(self) -> int:
        """The line the next record starts at: where a reading cut here stops."""
        return self._line + 1

    def feed(self, chunk: bytes) -> list[Record | ReadError]:
        if self.stopped:
            return []
        data = self._tail + chunk
        end = data.rfind(b"\n") + 1
        self._tail = data[end:]
        out = self._lines(data[:end], last=False) if end else []
        if not self.stopped and self._pending_bytes + len(self._tail) > self.max_row_bytes:
            out.append(self._too_long(self._line + 1))
        return out

    def end(self) -> list[Record | ReadError]:
        """The rest, at the end of the stream (a last line without a line break included)."""
        if self.stopped:
            return []
        tail, self._tail = self._tail, b""
        return self._lines(tail, last=True)

    def _lines(self, data: bytes, *, last: bool) -> list[Record | ReadError]:
        if not self._started and data:
            self._started = True
            data = data.removeprefix(BOM)
        raw = data.split(b"\n")
        good, problem = raw, ""
        if max(map(len, raw)) > self.max_row_bytes:
            cut = next(i for i, piece in enumerate(raw) if len(piece) > self.max_row_bytes)
            good, problem = [*raw[:cut], b""], "row_too_long"
        try:
            lines = self._decoded(good)
        except UnicodeDecodeError as error:
            cut = data.count(b"\n", 0, error.start)
            lines, problem = self._decoded([*raw[:cut], b""]), "invalid_encoding"
        out = self._records(lines, last=last and not problem)
        if problem and not self.stopped:
            # the lines before it were read; the bad one is the next
            out.append(self._stop(self._line + len(self._pending) + 1, problem))
        return out

    @staticmethod
    def _decoded(raw: list[bytes]) -> list[str]:
        """The pieces of a split on line breaks as lines with their breaks (the last piece,
        after the last break, without one, and only if it is not empty)."""
        text = b"\n".join(raw).decode("utf-8")
        lines = [line + "\n" for line in text.split("\n")]
        lines[-1] = lines[-1][:-1]
        return lines if lines[-1] else lines[:-1]

    def _records(self, lines: list[str], *, last: bool) -> list[Record | ReadError]:
        if self.stopped:
            return []
        source = _Lines(self._pending + lines, last=last)
        reader = csv.reader(source, strict=True)
        out: list[Record | ReadError] = []
        done = 0  # lines of complete records
        try:
            for cells in reader:
                if cells:
                    out.append(Record(self._line + done + 1, cells))
                done = source.taken
        except _NeedMore:
            pass
        except csv.Error as error:
            out.append(self._stop(self._line + done + 1, "invalid_csv", str(error)))
            return out
        self._pending = source.lines[done:]
        self._pending_bytes = sum(len(line.encode("utf-8")) for line in self._pending)
        self._line += done
        if last and self._pending:  # cannot happen with strict CSV; never lose a row quietly
            out.append(self._stop(self._line + 1, "invalid_csv", "unexpected end of data"))
        return out

    def _too_long(self, line: int) -> ReadError:
        return self._stop(line, "row_too_long")

    def _stop(self, line: int, code: str, detail: str = "") -> ReadError:
        self.stopped = True
        messages = {
            "invalid_csv": "the CSV is malformed",
            "invalid_encoding": "the text is not UTF-8",
            "row_too_long": f"a row is longer than {self.max_row_bytes} bytes",
        }
        message = messages[code] + (f" ({detail})" if detail else "")
        return ReadError(line, code, message + "; the import stopped here")


# --- the header -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Header:
    # the position of each named column, and of each field column with its key
    positions: Mapping[str, int]
    fields: tuple[tuple[int, str], ...]
    width: int


def parse_header(cells: Sequence[str]) -> Header:
    """The columns, or Invalid: unknown_column, duplicate_column, invalid_field_key,
    too_many_fields, no_identity_column."""
    positions: dict[str, int] = {}
    fields: dict[str, int] = {}
    unknown: list[str] = []
    for position, raw in enumerate(cells):
        name = raw.strip()
        prefix, key = name[: len(FIELD_PREFIX)].lower(), name[len(FIELD_PREFIX) :].strip()
        taken = fields if prefix == FIELD_PREFIX else positions
        column = key if prefix == FIELD_PREFIX else name.lower()
        if prefix != FIELD_PREFIX and column not in COLUMNS:
            unknown.append(name[:MAX_ERROR_TEXT])
        elif column in taken:
            raise Invalid(
                f"the column {name[:MAX_ERROR_TEXT]!r} is there twice",
                code="duplicate_column",
                details={"column": name[:MAX_ERROR_TEXT]},
            )
        taken[column] = position
    if unknown:
        raise Invalid(
            f"unknown columns: {', '.join(repr(u) for u in unknown[:10])}; the columns are "
            f"{', '.join(sorted(COLUMNS))} and {FIELD_PREFIX}<key>",
            code="unknown_column",
            details={"columns": unknown[:10]},
        )
    check_fields(dict.fromkeys(fields))  # the keys, by the PATCH rules
    if not any(c in positions for c in IDENTITY_COLUMNS):
        raise Invalid(
            "the header needs an email or a phone column: rows are found by them",
            code="no_identity_column",
        )
    ordered = tuple(sorted((p, k) for k, p in fields.items()))
    return Header(positions, ordered, len(cells))


# --- a row ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pin:
    tier: int | None  # None: unpin


@dataclass(frozen=True)
class ImportRow:
    """What one row sets; None (or empty) leaves the contact's as it is."""

    line: int
    identities: tuple[Identity, ...]  # the e-mail first
    name: str | None = None
    value: Decimal | None = None
    tags: tuple[str, ...] | None = None
    fields: Mapping[str, str] = field(default_factory=dict)
    pin: Pin | None = None
    account_manager: str | None = None  # an agent's e-mail, lowercased
    birthday: date | None = None
    timezone: str | None = None
    locale: str | None = None
    preferred_channel: Channel | None = None
    consents: Mapping[str, bool] = field(default_factory=dict)  # channel -> granted


def is_blank(cells: Sequence[str]) -> bool:
    """A row of empty cells (a spreadsheet's trailing ",,,") is skipped, not an error."""
    return not any(cell.strip() for cell in cells)


def parse_row(
    header: Header,
    record: Record,
    *,
    region: str | None,
    check_name: NameCheck,
    now: datetime,
) -> ImportRow:
    """The row checked, or Invalid with the code of its first problem (`now`: the clock a
    birthday must not be after)."""
    cells = record.cells
    if len(cells) > header.width:
        raise Invalid(
            f"the row has {len(cells)} cells, the header {header.width}",
            code="too_many_cells",
        )
    if any("\x00" in cell for cell in cells):
        raise Invalid("the row holds a NUL character", code="invalid_character")

    def cell(column: str) -> str:
        position = header.positions.get(column)
        return cells[position].strip() if position is not None and position < len(cells) else ""

    name, value, tags, tier = cell("name"), cell("value"), cell("tags"), cell("tier")
    manager = cell("account_manager")
    return ImportRow(
        line=record.line,
        identities=_identities(cell("email"), cell("phone"), region),
        name=check_name(name) if name else None,
        value=parse_value(value) if value else None,
        tags=_tags(tags) if tags else None,
        fields=_fields(header, cells),
        pin=_pin(tier) if tier else None,
        account_manager=manager.lower() if manager else None,
        **_care(cell, now),
    )


def _care(cell: Callable[[str], str], now: datetime) -> dict[str, Any]:
    """What the row sets of what care reads (the ImportRow attributes), by the PATCH rules."""
    birthday, timezone = cell("birthday"), cell("timezone")
    locale, preferred = cell("locale"), cell("preferred_channel")
    return {
        "birthday": check_birthday(parse_birthday(birthday), now) if birthday else None,
        "timezone": check_timezone(timezone) if timezone else None,
        "locale": normalise_locale(locale) if locale else None,
        "preferred_channel": check_channel(preferred) if preferred else None,
        "consents": {
            str(channel): _consent(column, cell(column))
            for column, channel in CONSENT_COLUMNS.items()
            if cell(column)
        },
    }


def _consent(column: str, raw: str) -> bool:
    granted = CONSENT_WORDS.get(raw.lower())
    if granted is None:
        raise Invalid(
            f"{column} is yes, no, true, false, 1 or 0 (or empty to leave it)",
            code="invalid_consent",
            details={"field": column},
        )
    return granted


def parse_region(raw: str) -> str:
    """The region numbers without a country code are in (ISO 3166 code: CN, US ...)."""
    region = raw.strip().upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise Invalid(
            "region is a country code phone numbers know (CN, US, GB ...)",
            code="invalid_region",
            details={"field": "region"},
        )
    return region


def _email(raw: str) -> str:
    if len(raw) > MAX_EMAIL_CHARS:
        raise Invalid(
            f"an e-mail address has at most {MAX_EMAIL_CHARS} characters", code="invalid_email"
        )
    return normalise_email(raw)


def _tags(raw: str) -> tuple[str, ...]:
    """Separated by ";"; empty pieces are skipped (so ";" alone empties the tags)."""
    return tuple(normalise_tags([t for t in raw.split(TAG_SEPARATOR) if t.strip()]))


def _identities(email: str, phone: str, region: str | None) -> tuple[Identity, ...]:
    found: list[Identity] = []
    if email:
        found.append(Identity(IdentityKind.EMAIL, _email(email)))
    if phone:
        try:
            found.append(Identity(IdentityKind.PHONE, normalise_phone(phone, region)))
        except Invalid as error:
            hint = "" if region or phone.startswith("+") else " (without ?region=, use +<country>)"
            raise Invalid(error.message + hint, code=error.code) from None
    if not found:
        raise Invalid("the row has neither an e-mail nor a phone", code="missing_identity")
    return tuple(found)


def _fields(header: Header, cells: Sequence[str]) -> dict[str, str]:
    given = {
        key: cells[position].strip()
        for position, key in header.fields
        if position < len(cells) and cells[position].strip()
    }
    checked = check_fields(given)
    return {k: str(v) for k, v in checked.items()}


def _pin(raw: str) -> Pin:
    if raw.lower() == UNPIN:
        return Pin(None)
    if raw.isascii() and raw.isdigit() and int(raw) in RANKS:
        return Pin(int(raw))
    raise Invalid(
        f"tier is 1 to 4 (pins the tier), {UNPIN!r} (unpins) or empty (leaves it)",
        code="invalid_tier",
    )


# --- a batch --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContactState:
    """What an import can change on a contact."""

    name: str | None = None
    tags: tuple[str, ...] = ()
    fields: Mapping[str, Any] = field(default_factory=dict)
    account_manager_id: int | None = None
    value: Decimal = Decimal(0)
    pinned_tier: int | None = None
    birthday: date | None = None
    timezone: str | None = None
    locale: str | None = None
    preferred_channel: str | None = None
    consents: Mapping[str, bool] = field(default_factory=dict)  # channel -> granted

    def attributes(self) -> tuple[object, ...]:
        return (self.name, self.tags, dict(self.fields), self.account_manager_id)

    def care(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in CARE_ATTRIBUTES)


@dataclass(frozen=True)
class RowError:
    line: int
    code: str
    message: str


def row_error(line: int, error: Invalid) -> RowError:
    """A row's problem for the answer (messages quote the cell: kept short)."""
    return RowError(line, error.code, error.message[:MAX_MESSAGE_CHARS])


@dataclass
class Plan:
    """What to write for a batch. Contacts to create have negative ids (-1, -2 ...) until
    they get theirs."""

    created: dict[int, ContactState] = field(default_factory=dict)
    # existing contacts whose name, tags, fields or account manager change
    updated: dict[int, ContactState] = field(default_factory=dict)
    # contacts (new ones too) whose birthday, timezone, locale or preferred channel change
    care: dict[int, ContactState] = field(default_factory=dict)
    # (contact, channel) -> granted, where that changes
    consents: dict[tuple[int, str], bool] = field(default_factory=dict)
    identities: list[tuple[int, Identity]] = field(default_factory=list)
    values: dict[int, Decimal] = field(default_factory=dict)
    pins: dict[int, int | None] = field(default_factory=dict)
    # the line of the row (the first in the batch) that set each contact's pin
    pin_lines: dict[int, int] = field(default_factory=dict)
    created_rows: int = 0
    updated_rows: int = 0
    unchanged_rows: int = 0
    errors: list[RowError] = field(default_factory=list)


def identity_key(identity: Identity) -> str:
    """How an identity is named in locks and lookups (the form services.ingest locks)."""
    return f"{identity.kind}:{identity.value}"


def plan_batch(
    rows: Sequence[ImportRow],
    owners: Mapping[Identity, int],
    existing: Mapping[int, ContactState],
    managers: Mapping[str, int],
) -> Plan:
    """Apply the rows in order to the contacts as they are (`owners`: the contact of each
    known identity; `existing`: those contacts, locked; `managers`: agent e-mail -> id). A
    later row sees what an earlier one did: one creating a contact, the next finding it by the
    same address."""
    plan = Plan()
    known = dict(owners)
    current: dict[int, ContactState] = dict(existing)
    for row in rows:
        try:
            contact_id = _owner(row, known)
            manager_id = _manager(row, managers)
            before = current[contact_id] if contact_id is not None else ContactState()
            after = _applied(before, row, manager_id)
        except Invalid as error:
            plan.errors.append(row_error(row.line, error))
            continue
        added = [i for i in row.identities if i not in known]
        if contact_id is None:
            contact_id = -(len(plan.created) + 1)
            plan.created[contact_id] = after
            plan.created_rows += 1
        elif added or after != before:
            plan.updated_rows += 1
        else:
            plan.unchanged_rows += 1
        for identity in added:
            known[identity] = contact_id
            plan.identities.append((contact_id, identity))
        if row.pin is not None and after.pinned_tier != before.pinned_tier:
            plan.pin_lines.setdefault(contact_id, row.line)
        current[contact_id] = after
    _settle(plan, existing, current)
    return plan


def _settle(
    plan: Plan, existing: Mapping[int, ContactState], current: Mapping[int, ContactState]
) -> None:
    """The final state of each contact the batch touched, against where it started."""
    for contact_id, state in current.items():
        before = existing.get(contact_id, ContactState())
        if contact_id < 0:
            plan.created[contact_id] = state
        elif state.attributes() != before.attributes():
            plan.updated[contact_id] = state
        if state.care() != before.care():
            plan.care[contact_id] = state
        for channel, granted in state.consents.items():
            if before.consents.get(channel) != granted:
                plan.consents[(contact_id, channel)] = granted
        if state.value != before.value:
            plan.values[contact_id] = state.value
        if state.pinned_tier != before.pinned_tier:
            plan.pins[contact_id] = state.pinned_tier
    plan.pin_lines = {c: line for c, line in plan.pin_lines.items() if c in plan.pins}


def _owner(row: ImportRow, known: Mapping[Identity, int]) -> int | None:
    found = {known[i] for i in row.identities if i in known}
    if len(found) > 1:
        raise Invalid(
            "the row's e-mail and phone belong to two different contacts (merge them first)",
            code="conflicting_identities",
        )
    return found.pop() if found else None


def _manager(row: ImportRow, managers: Mapping[str, int]) -> int | None:
    if row.account_manager is None:
        return None
    if row.account_manager not in managers:
        raise Invalid("account_manager is not an agent's e-mail", code="unknown_agent")
    return managers[row.account_manager]


def _applied(state: ContactState, row: ImportRow, manager_id: int | None) -> ContactState:
    """The contact after the row (Invalid when its fields would be too many)."""
    changes: dict[str, Any] = {}
    if row.name is not None:
        changes["name"] = row.name
    if row.tags is not None:
        changes["tags"] = row.tags
    if row.fields:
        changes["fields"] = merge_fields(state.fields, row.fields)
    if manager_id is not None:
        changes["account_manager_id"] = manager_id
    if row.value is not None:
        changes["value"] = row.value
    if row.pin is not None:
        changes["pinned_tier"] = row.pin.tier
    for name in CARE_ATTRIBUTES:
        if getattr(row, name) is not None:
            changes[name] = getattr(row, name)
    if row.consents:
        changes["consents"] = {**state.consents, **row.consents}
    return replace(state, **changes)
