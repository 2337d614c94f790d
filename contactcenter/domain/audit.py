"""The audit log's pure half: what a change looks like once made JSON, and what it never keeps.

A create keeps the row it made (`after`), a delete the row it removed (`before`); an update
keeps, in both, only the keys whose values changed. Secrets never reach the log: any key named
in SECRET_KEYS is dropped, at any depth, before anything is compared or written.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any


class AuditAction(StrEnum):
    """Mirrors the CHECK of audit_log.action (migrations/0012_audit_log.sql)."""

    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    OTHER = "other"


# tokens, their hashes, and the sealed passwords of mailboxes and SMS numbers
SECRET_KEYS = frozenset(
    {
        "token",
        "token_hash",
        "password",
        "smtp_password",
        "imap_password",
        "auth_token",
        "secret",
    }
)
# what churns on every write and says nothing of the change
NOISE_KEYS = frozenset({"updated_at"})


def to_json(value: Any) -> Any:
    """A row (or a part of one) as plain JSON, without its secrets."""
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items() if str(k) not in SECRET_KEYS}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_json(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return None  # never a secret's bytes (token hashes are bytea)
    if isinstance(value, StrEnum):
        return str(value)
    return value


def changed(
    before: Mapping[str, Any], after: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(before, after), each kept to the keys whose values differ; both empty: no change."""
    old, new = to_json(before), to_json(after)
    keys = [k for k in {**old, **new} if k not in NOISE_KEYS and old.get(k) != new.get(k)]
    return {k: old.get(k) for k in keys}, {k: new.get(k) for k in keys}
