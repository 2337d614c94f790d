"""audit_log: written inside the transaction of the change it records, read by admins."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from contactcenter.db import Connection, Executor

COLUMNS = "id, at, agent_id, agent_name, action, entity, entity_id, before, after, request_id"

INSERT = """
INSERT INTO audit_log (agent_id, agent_name, action, entity, entity_id, before, after,
                       request_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
RETURNING id
"""
# newest first; the cursor is the last id of the previous page (ids grow with `at`)
PAGE = f"""
SELECT {COLUMNS} FROM audit_log
WHERE ($1::text IS NULL OR entity = $1)
  AND ($2::text IS NULL OR entity_id = $2)
  AND ($3::bigint IS NULL OR agent_id = $3)
  AND ($4::timestamptz IS NULL OR at >= $4)
  AND ($5::timestamptz IS NULL OR at < $5)
  AND id < $6
ORDER BY id DESC
LIMIT $7
"""


async def insert(
    conn: Connection,
    *,
    agent_id: int | None,
    agent_name: str | None,
    action: str,
    entity: str,
    entity_id: str | None,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    request_id: str | None,
) -> int:
    return int(
        await conn.fetchval(
            INSERT, agent_id, agent_name, action, entity, entity_id, before, after, request_id
        )
    )


async def page(
    conn: Executor,
    *,
    entity: str | None,
    entity_id: str | None,
    agent_id: int | None,
    since: datetime | None,
    until: datetime | None,
    before_id: int,
    limit: int,
) -> list[asyncpg.Record]:
    return list(await conn.fetch(PAGE, entity, entity_id, agent_id, since, until, before_id, limit))
