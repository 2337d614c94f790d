"""sms_numbers and the consent ledger (sms_consent_events, and sms_consent as it stands)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from contactcenter.db import Connection, Executor

COLUMNS = """
id, name, account_sid, auth_token, from_number, messaging_service_sid, enabled, from_environment,
created_at, updated_at
"""

# the number a webhook is for: Twilio names our number in To, or the pool in
# MessagingServiceSid; the account must match either way
FOR_INBOUND = f"""
SELECT {COLUMNS} FROM sms_numbers
WHERE enabled AND account_sid = $1
  AND (from_number = $2 OR (messaging_service_sid IS NOT NULL AND messaging_service_sid = $3))
ORDER BY (from_number = $2) DESC NULLS LAST, id
LIMIT 1
"""
BY_ACCOUNT = f"""
SELECT {COLUMNS} FROM sms_numbers WHERE enabled AND account_sid = $1 ORDER BY id LIMIT 1
"""
GET = f"SELECT {COLUMNS} FROM sms_numbers WHERE id = $1"
FIRST_ENABLED = f"SELECT {COLUMNS} FROM sms_numbers WHERE enabled ORDER BY id LIMIT 1"

UPSERT_ENVIRONMENT = f"""
INSERT INTO sms_numbers (name, account_sid, auth_token, from_number, messaging_service_sid,
                         from_environment)
VALUES ($1, $2, $3, $4, $5, true)
ON CONFLICT (name) DO UPDATE SET
    account_sid = excluded.account_sid, auth_token = excluded.auth_token,
    from_number = excluded.from_number, messaging_service_sid = excluded.messaging_service_sid,
    from_environment = true, updated_at = now()
RETURNING {COLUMNS}
"""

INSERT_CONSENT_EVENT = """
INSERT INTO sms_consent_events (phone, opted_out, source, detail, message_id, created_at)
VALUES ($1, $2, $3, $4, $5, $6)
"""
SET_CONSENT = """
INSERT INTO sms_consent (phone, opted_out, changed_at) VALUES ($1, $2, $3)
ON CONFLICT (phone) DO UPDATE SET opted_out = excluded.opted_out, changed_at = excluded.changed_at
"""
OPTED_OUT = "SELECT opted_out FROM sms_consent WHERE phone = $1"


async def for_inbound(
    conn: Executor, account_sid: str, to_number: str | None, service_sid: str | None
) -> asyncpg.Record | None:
    return await conn.fetchrow(FOR_INBOUND, account_sid, to_number, service_sid)


async def by_account(conn: Executor, account_sid: str) -> asyncpg.Record | None:
    return await conn.fetchrow(BY_ACCOUNT, account_sid)


async def get(conn: Executor, number_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(GET, number_id)


async def first_enabled(conn: Executor) -> asyncpg.Record | None:
    return await conn.fetchrow(FIRST_ENABLED)


async def upsert_environment(conn: Executor, values: dict[str, Any]) -> asyncpg.Record:
    row = await conn.fetchrow(
        UPSERT_ENVIRONMENT,
        values["name"],
        values["account_sid"],
        values["auth_token"],
        values["from_number"],
        values["messaging_service_sid"],
    )
    assert row is not None
    return row


async def record_consent(
    conn: Connection,
    phone: str,
    *,
    opted_out: bool,
    source: str,
    detail: str | None,
    message_id: int | None,
    now: datetime,
) -> None:
    """Call inside a transaction: the ledger and the current state move together."""
    await conn.execute(INSERT_CONSENT_EVENT, phone, opted_out, source, detail, message_id, now)
    await conn.execute(SET_CONSENT, phone, opted_out, now)


async def opted_out(conn: Executor, phone: str) -> bool:
    return bool(await conn.fetchval(OPTED_OUT, phone))


LIST = f"SELECT {COLUMNS} FROM sms_numbers ORDER BY id"
INSERT = f"""
INSERT INTO sms_numbers (name, account_sid, auth_token, from_number, messaging_service_sid,
                         enabled)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING {COLUMNS}
"""
DELETE = "DELETE FROM sms_numbers WHERE id = $1 AND NOT from_environment RETURNING id"


async def list_all(conn: Executor) -> list[asyncpg.Record]:
    return list(await conn.fetch(LIST))


async def insert(conn: Executor, values: dict[str, Any]) -> asyncpg.Record:
    row = await conn.fetchrow(
        INSERT,
        values["name"],
        values["account_sid"],
        values["auth_token"],
        values.get("from_number"),
        values.get("messaging_service_sid"),
        values.get("enabled", True),
    )
    assert row is not None
    return row


async def delete(conn: Executor, number_id: int) -> bool:
    return await conn.fetchval(DELETE, number_id) is not None
