"""Turning rows into the JSON shapes of API.md: times in RFC 3339, ids as integers."""

from __future__ import annotations

import base64
import json
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from contactcenter.api.errors import ApiError
from contactcenter.store.inbox import InboxCursor

INTERNAL_FIELDS = ("route_requested_at", "route_version")


def jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items() if k not in INTERNAL_FIELDS}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def rfc3339(moment: datetime) -> str:
    """`moment` in RFC 3339, whose offsets are whole minutes: a zone's local mean time (any
    zone before its standard time, e.g. Paris +00:09:21 before 1891) and an offset sent with
    seconds give the same instant at the offset rounded to the minute (in UTC when that would
    fall before year 1)."""
    offset = moment.utcoffset()
    if offset is not None and offset % timedelta(minutes=1):
        minutes = round(offset / timedelta(minutes=1))
        try:
            moment = moment.astimezone(timezone(timedelta(minutes=minutes)))
        except OverflowError:
            moment = moment.astimezone(UTC)
    return moment.isoformat()


def encode_cursor(cursor: InboxCursor | None) -> str | None:
    if cursor is None:
        return None
    due = None if cursor.sla_due_at is None else cursor.sla_due_at.isoformat()
    raw = json.dumps([cursor.priority, due, cursor.created_at.isoformat(), cursor.id])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(text: str) -> InboxCursor:
    try:
        padded = text + "=" * (-len(text) % 4)
        priority, due, created_at, conversation_id = json.loads(base64.urlsafe_b64decode(padded))
        cursor = InboxCursor(
            int(priority),
            None if due is None else datetime.fromisoformat(due),
            datetime.fromisoformat(created_at),
            int(conversation_id),
        )
        if not (-(2**15) <= cursor.priority < 2**15 and 0 < cursor.id < 2**63):
            raise ValueError("out of range")
        for instant in (cursor.sla_due_at, cursor.created_at):
            if instant is None:
                continue
            if instant.tzinfo is None:
                raise ValueError("no offset")
            instant.astimezone(UTC)  # out of range once in UTC: OverflowError
        return cursor
    except (ValueError, TypeError, OverflowError):
        raise ApiError(400, "invalid_cursor", "the cursor is not one this server gave") from None
