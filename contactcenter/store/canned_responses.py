"""canned_responses: texts agents insert by a shortcut, for everyone or for one team.

Admins write them through services/canned_responses.py (checked whole before a row is
written); agents list and render those for everyone and for their teams.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from contactcenter.db import Connection, Executor

COLUMNS = "id, shortcut, title, body_text, locale, team_id, created_by, created_at, updated_at"

GET = f"SELECT {COLUMNS} FROM canned_responses WHERE id = $1"
GET_FOR_UPDATE = f"SELECT {COLUMNS} FROM canned_responses WHERE id = $1 FOR UPDATE"
INSERT = f"""
INSERT INTO canned_responses
    (shortcut, title, body_text, locale, team_id, created_by, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
RETURNING {COLUMNS}
"""
# the service merges the change into the stored response, checks it whole and writes it back
UPDATE = f"""
UPDATE canned_responses SET shortcut = $2, title = $3, body_text = $4, locale = $5,
    team_id = $6, updated_at = $7
WHERE id = $1
RETURNING {COLUMNS}
"""
DELETE = "DELETE FROM canned_responses WHERE id = $1 RETURNING id"
# a page in shortcut order after the cursor's shortcut. $1: the caller sees every response;
# else $2 their teams (those for everyone are always seen). $3 one team's only (null: any),
# $4 a LIKE pattern matched against shortcut, title and text (null: all), $5 the cursor
# (null: from the start), $6 how many
PAGE = f"""
SELECT {COLUMNS} FROM canned_responses
WHERE ($1::boolean OR team_id IS NULL OR team_id = ANY($2::bigint[]))
  AND ($3::bigint IS NULL OR team_id = $3)
  AND ($4::text IS NULL OR shortcut ILIKE $4 OR title ILIKE $4 OR body_text ILIKE $4)
  AND ($5::text IS NULL OR shortcut > $5)
ORDER BY shortcut
LIMIT $6
"""


@dataclass(frozen=True)
class CannedResponse:
    shortcut: str
    title: str
    body_text: str
    locale: str | None = None
    team_id: int | None = None
    id: int = 0


@dataclass(frozen=True)
class PageQuery:
    sees_everything: bool
    team_ids: tuple[int, ...]
    team_id: int | None
    pattern: str | None
    after: str | None
    limit: int


def response_from_row(row: asyncpg.Record) -> CannedResponse:
    return CannedResponse(
        id=row["id"],
        shortcut=row["shortcut"],
        title=row["title"],
        body_text=row["body_text"],
        locale=row["locale"],
        team_id=row["team_id"],
    )


def _values(response: CannedResponse) -> tuple[object, ...]:
    return (
        response.shortcut,
        response.title,
        response.body_text,
        response.locale,
        response.team_id,
    )


async def get(conn: Executor, response_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(GET, response_id)


async def get_for_update(conn: Connection, response_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(GET_FOR_UPDATE, response_id)


async def insert(
    conn: Connection, response: CannedResponse, created_by: int, now: datetime
) -> asyncpg.Record:
    row = await conn.fetchrow(INSERT, *_values(response), created_by, now)
    assert row is not None
    return row


async def update(
    conn: Connection, response: CannedResponse, now: datetime
) -> asyncpg.Record | None:
    return await conn.fetchrow(UPDATE, response.id, *_values(response), now)


async def delete(conn: Connection, response_id: int) -> bool:
    return await conn.fetchval(DELETE, response_id) is not None


async def page(conn: Executor, query: PageQuery) -> list[asyncpg.Record]:
    return list(
        await conn.fetch(
            PAGE,
            query.sees_everything,
            list(query.team_ids),
            query.team_id,
            query.pattern,
            query.after,
            query.limit,
        )
    )
