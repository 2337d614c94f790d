"""templates: what care messages and auto-replies say, one row per purpose, channel and locale.

Admins write them through services/templates.py (checked whole before a row is written); the
care sender reads them with services.templates.load_for().
"""

from __future__ import annotations

import asyncpg

from contactcenter.db import Connection, Executor
from contactcenter.domain.templates import Purpose, Template

COLUMNS = "id, purpose, channel, locale, subject, body_text, body_html, created_at, updated_at"

# every filter is optional (null: any)
LIST = f"""
SELECT {COLUMNS} FROM templates
WHERE ($1::text IS NULL OR purpose = $1)
  AND ($2::text IS NULL OR channel = $2)
  AND ($3::text IS NULL OR lower(locale) = lower($3))
ORDER BY purpose, channel, locale, id
"""
GET = f"SELECT {COLUMNS} FROM templates WHERE id = $1"
GET_FOR_UPDATE = f"SELECT {COLUMNS} FROM templates WHERE id = $1 FOR UPDATE"
# the rows pick() chooses a locale among, oldest first so the choice is stable
FOR_PURPOSE_AND_CHANNEL = f"""
SELECT {COLUMNS} FROM templates WHERE purpose = $1 AND channel = $2 ORDER BY id
"""
INSERT = f"""
INSERT INTO templates (purpose, channel, locale, subject, body_text, body_html)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING {COLUMNS}
"""
# the service merges the change into the stored template, checks it whole and writes it back
UPDATE = f"""
UPDATE templates SET purpose = $2, channel = $3, locale = $4, subject = $5, body_text = $6,
    body_html = $7, updated_at = now()
WHERE id = $1
RETURNING {COLUMNS}
"""
DELETE = "DELETE FROM templates WHERE id = $1 RETURNING id"


def template_from_row(row: asyncpg.Record) -> Template:
    return Template(
        id=row["id"],
        purpose=Purpose(row["purpose"]),
        channel=row["channel"],
        locale=row["locale"],
        subject=row["subject"],
        body_text=row["body_text"],
        body_html=row["body_html"],
    )


def _values(template: Template) -> tuple[object, ...]:
    return (
        str(template.purpose),
        template.channel,
        template.locale,
        template.subject,
        template.body_text,
        template.body_html,
    )


async def list_all(
    conn: Executor,
    *,
    purpose: str | None = None,
    channel: str | None = None,
    locale: str | None = None,
) -> list[asyncpg.Record]:
    return list(await conn.fetch(LIST, purpose, channel, locale))


async def get(conn: Executor, template_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(GET, template_id)


async def get_for_update(conn: Connection, template_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(GET_FOR_UPDATE, template_id)


async def for_purpose_and_channel(conn: Executor, purpose: str, channel: str) -> list[Template]:
    """Every locale's template for the purpose on the channel."""
    rows = await conn.fetch(FOR_PURPOSE_AND_CHANNEL, purpose, channel)
    return [template_from_row(row) for row in rows]


async def insert(conn: Connection, template: Template) -> asyncpg.Record:
    row = await conn.fetchrow(INSERT, *_values(template))
    assert row is not None
    return row


async def update(conn: Connection, template: Template) -> asyncpg.Record | None:
    return await conn.fetchrow(UPDATE, template.id, *_values(template))


async def delete(conn: Connection, template_id: int) -> bool:
    return await conn.fetchval(DELETE, template_id) is not None


# what a preview renders a template with: the contact's name and locale (as the care sender
# reads them); kept here, beside the templates it is for, as the only read of contacts
CONTACT_NAME_AND_LOCALE = "SELECT name, locale FROM contacts WHERE id = $1"


async def contact_name_and_locale(conn: Executor, contact_id: int) -> asyncpg.Record | None:
    """(name, locale) of the contact, either null; None when there is no such contact."""
    return await conn.fetchrow(CONTACT_NAME_AND_LOCALE, contact_id)
