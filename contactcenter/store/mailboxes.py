"""mailboxes, their IMAP checkpoint, and the quarantine of mails that could not be read."""

from __future__ import annotations

from typing import Any

import asyncpg

from contactcenter.db import Connection, Executor

COLUMNS = """
id, name, address, display_name, imap_host, imap_port, imap_security, imap_user, imap_password,
imap_folder, smtp_host, smtp_port, smtp_security, smtp_user, smtp_password, enabled,
from_environment, created_at, updated_at
"""
# what may be changed, and so written, through the admin API or the environment
WRITABLE = (
    "name",
    "address",
    "display_name",
    "imap_host",
    "imap_port",
    "imap_security",
    "imap_user",
    "imap_password",
    "imap_folder",
    "smtp_host",
    "smtp_port",
    "smtp_security",
    "smtp_user",
    "smtp_password",
    "enabled",
)

LIST = f"SELECT {COLUMNS} FROM mailboxes ORDER BY id"
LIST_LISTENING = f"""
SELECT {COLUMNS} FROM mailboxes WHERE enabled AND imap_host IS NOT NULL ORDER BY id
"""
GET = f"SELECT {COLUMNS} FROM mailboxes WHERE id = $1"
BY_ADDRESS = f"SELECT {COLUMNS} FROM mailboxes WHERE address = ANY($1::text[]) ORDER BY id LIMIT 1"
FIRST_ENABLED = f"SELECT {COLUMNS} FROM mailboxes WHERE enabled ORDER BY id LIMIT 1"
FIRST_SENDING = f"""
SELECT {COLUMNS} FROM mailboxes WHERE enabled AND smtp_host IS NOT NULL
ORDER BY from_environment DESC, id LIMIT 1
"""
DELETE = "DELETE FROM mailboxes WHERE id = $1 AND NOT from_environment RETURNING id"

UPSERT_ENVIRONMENT = f"""
INSERT INTO mailboxes (from_environment, {", ".join(WRITABLE)})
VALUES (true, {", ".join(f"${i}" for i in range(1, len(WRITABLE) + 1))})
ON CONFLICT (name) DO UPDATE SET
    {", ".join(f"{column} = excluded.{column}" for column in WRITABLE)},
    from_environment = true, updated_at = now()
RETURNING {COLUMNS}
"""

GET_CHECKPOINT = "SELECT uidvalidity, last_uid FROM imap_state WHERE mailbox_id = $1"
# only ever forward within one UIDVALIDITY; a new UIDVALIDITY starts again from 0
SET_CHECKPOINT = """
INSERT INTO imap_state (mailbox_id, uidvalidity, last_uid) VALUES ($1, $2, $3)
ON CONFLICT (mailbox_id) DO UPDATE SET
    last_uid = CASE WHEN imap_state.uidvalidity IS DISTINCT FROM excluded.uidvalidity
                    THEN excluded.last_uid
                    ELSE greatest(imap_state.last_uid, excluded.last_uid) END,
    uidvalidity = excluded.uidvalidity,
    updated_at = now()
"""

QUARANTINE = """
INSERT INTO email_quarantine (mailbox_id, uid, raw, error) VALUES ($1, $2, $3, $4) RETURNING id
"""
LIST_QUARANTINE = """
SELECT id, mailbox_id, uid, length(raw) AS size, error, created_at FROM email_quarantine
WHERE id < $1 ORDER BY id DESC LIMIT $2
"""
GET_QUARANTINED = (
    "SELECT id, mailbox_id, uid, raw, error, created_at FROM email_quarantine WHERE id = $1"
)


async def list_all(conn: Executor) -> list[asyncpg.Record]:
    return list(await conn.fetch(LIST))


async def list_listening(conn: Executor) -> list[asyncpg.Record]:
    return list(await conn.fetch(LIST_LISTENING))


async def get(conn: Executor, mailbox_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(GET, mailbox_id)


async def by_address(conn: Executor, addresses: list[str]) -> asyncpg.Record | None:
    return await conn.fetchrow(BY_ADDRESS, addresses)


async def first_enabled(conn: Executor) -> asyncpg.Record | None:
    return await conn.fetchrow(FIRST_ENABLED)


async def first_sending(conn: Executor) -> asyncpg.Record | None:
    """The mailbox our own notices go out through: the environment's, else the oldest."""
    return await conn.fetchrow(FIRST_SENDING)


async def insert(conn: Executor, values: dict[str, Any]) -> asyncpg.Record:
    columns = [c for c in WRITABLE if c in values]
    sql = (
        f"INSERT INTO mailboxes ({', '.join(columns)}) "
        f"VALUES ({', '.join(f'${i}' for i in range(1, len(columns) + 1))}) RETURNING {COLUMNS}"
    )
    row = await conn.fetchrow(sql, *(values[c] for c in columns))
    assert row is not None
    return row


async def update(conn: Executor, mailbox_id: int, values: dict[str, Any]) -> asyncpg.Record | None:
    columns = [c for c in WRITABLE if c in values]
    if not columns:
        return await get(conn, mailbox_id)
    assignments = ", ".join(f"{c} = ${i}" for i, c in enumerate(columns, start=2))
    sql = (
        f"UPDATE mailboxes SET {assignments}, updated_at = now() "
        f"WHERE id = $1 AND NOT from_environment RETURNING {COLUMNS}"
    )
    return await conn.fetchrow(sql, mailbox_id, *(values[c] for c in columns))


async def delete(conn: Executor, mailbox_id: int) -> bool:
    return await conn.fetchval(DELETE, mailbox_id) is not None


async def upsert_environment(conn: Executor, values: dict[str, Any]) -> asyncpg.Record:
    row = await conn.fetchrow(UPSERT_ENVIRONMENT, *(values.get(c) for c in WRITABLE))
    assert row is not None
    return row


async def checkpoint(conn: Executor, mailbox_id: int) -> tuple[int | None, int]:
    row = await conn.fetchrow(GET_CHECKPOINT, mailbox_id)
    return (None, 0) if row is None else (row["uidvalidity"], row["last_uid"])


async def set_checkpoint(
    conn: Connection, mailbox_id: int, uidvalidity: int, last_uid: int
) -> None:
    await conn.execute(SET_CHECKPOINT, mailbox_id, uidvalidity, last_uid)


async def quarantine(
    conn: Executor, mailbox_id: int | None, uid: int | None, raw: bytes, error: str
) -> int:
    return int(await conn.fetchval(QUARANTINE, mailbox_id, uid, raw, error))


async def list_quarantine(conn: Executor, before_id: int, limit: int) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(LIST_QUARANTINE, before_id, limit)]


async def get_quarantined(conn: Executor, quarantine_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(GET_QUARANTINED, quarantine_id)


FORGET_CHECKPOINT = "DELETE FROM imap_state WHERE mailbox_id = $1"


async def forget_checkpoint(conn: Executor, mailbox_id: int) -> None:
    await conn.execute(FORGET_CHECKPOINT, mailbox_id)
