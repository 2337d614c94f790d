"""Canned responses: admins write them (checked whole before anything is written, one
transaction each); agents list those for everyone and for their teams, and render one for a
conversation they can see.

A body is a template like the care templates (domain/templates.py): the same sandbox, the same
placeholders, refused when saved if it does not parse or uses what is not allowed. It is
rendered with the conversation's customer (name, salutation in their language) and the calling
agent's name. The unique shortcut and the team reference are the database's: two admins
creating the same shortcut at once get one row and one 409; a team deleted at the same moment
gives 422 unknown_team, never a row pointing nowhere.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import asyncpg

from contactcenter.conns import Conns
from contactcenter.domain import care
from contactcenter.domain.agents import Agent
from contactcenter.domain.audit import AuditAction
from contactcenter.domain.errors import Conflict, Invalid, NotFound
from contactcenter.domain.sla_policies import is_one_line
from contactcenter.domain.templates import (
    RenderFailed,
    check_source,
    render_text,
)
from contactcenter.services import audit
from contactcenter.services.templates import normalise_locale
from contactcenter.store import canned_responses as store
from contactcenter.store import care_settings, conversations
from contactcenter.store import templates as templates_store
from contactcenter.store.canned_responses import CannedResponse, PageQuery

logger = logging.getLogger(__name__)
ENTITY = "canned_response"

FIELDS = ("shortcut", "title", "body_text", "locale", "team_id")
REQUIRED = ("shortcut", "title", "body_text")
MAX_TITLE_CHARS = 200
MAX_BODY_CHARS = 5000
MAX_QUERY_CHARS = 200
SHORTCUT = re.compile(r"^[a-z0-9][a-z0-9-]{0,49}\Z")


def _shortcut(raw: str) -> str:
    shortcut = raw.strip().lower()
    if not SHORTCUT.match(shortcut):
        raise Invalid(
            "shortcut is 1 to 50 letters a-z, digits and hyphens, not starting with a hyphen",
            code="invalid_shortcut",
            details={"field": "shortcut"},
        )
    return shortcut


def _title(raw: str) -> str:
    title = raw.strip()
    if not title or len(title) > MAX_TITLE_CHARS or not is_one_line(title):
        raise Invalid(
            f"title is one line of 1 to {MAX_TITLE_CHARS} characters",
            code="invalid_title",
            details={"field": "title", "max": MAX_TITLE_CHARS},
        )
    return title


def _body(source: str) -> str:
    if not source.strip() or len(source) > MAX_BODY_CHARS:
        raise Invalid(
            f"body_text is 1 to {MAX_BODY_CHARS} characters, not blank",
            code="invalid_body",
            details={"field": "body_text", "max": MAX_BODY_CHARS},
        )
    return check_source(source, "body_text")


def check(response: CannedResponse) -> CannedResponse:
    """The response with its shortcut lower case and its locale normalised, or Invalid with
    the code of what is wrong: invalid_shortcut, invalid_title, invalid_body, invalid_locale,
    invalid_template (with the field and line)."""
    return replace(
        response,
        shortcut=_shortcut(response.shortcut),
        title=_title(response.title),
        body_text=_body(response.body_text),
        locale=None if response.locale is None else normalise_locale(response.locale),
    )


def draft(values: Mapping[str, Any]) -> CannedResponse:
    """A new response from what an admin sent (FIELDS), checked; id 0 until inserted."""
    for name in REQUIRED:
        if values.get(name) is None:
            raise Invalid(f"{name} is required", details={"field": name})
    return check(CannedResponse(**{name: values[name] for name in FIELDS if name in values}))


def _not_found() -> NotFound:
    # the same answer for an id that does not exist and one for a team the agent is not in
    return NotFound("no such canned response", code="canned_response_not_found")


def _refused(
    error: asyncpg.IntegrityConstraintViolationError, response: CannedResponse
) -> Exception:
    if isinstance(error, asyncpg.ForeignKeyViolationError):
        return Invalid(
            f"there is no team {response.team_id}",
            code="unknown_team",
            details={"field": "team_id", "team_id": response.team_id},
        )
    return Conflict(
        f"a canned response with the shortcut {response.shortcut} exists",
        code="canned_response_exists",
        details={"shortcut": response.shortcut},
    )


async def create(conns: Conns, agent: Agent, values: Mapping[str, Any]) -> asyncpg.Record:
    by = agent
    response = draft(values)
    try:
        async with conns.db.acquire() as conn, conn.transaction():
            row = await store.insert(conn, response, agent.id, conns.clock())
            await audit.record(conn, by, AuditAction.CREATE, ENTITY, row["id"], after=row)
    except (asyncpg.UniqueViolationError, asyncpg.ForeignKeyViolationError) as error:
        raise _refused(error, response) from None
    logger.info("canned response created", extra={"canned_response_id": row["id"]})
    return row


async def update(
    conns: Conns, response_id: int, changes: Mapping[str, Any], *, by: Agent | None = None
) -> asyncpg.Record:
    """The response with the change (a field left out keeps its value; locale and team_id set
    to null mean any language and everyone), checked whole."""
    response: CannedResponse | None = None
    try:
        async with conns.db.acquire() as conn, conn.transaction():
            stored = await store.get_for_update(conn, response_id)
            if stored is None:
                raise _not_found()
            given = {name: changes[name] for name in FIELDS if name in changes}
            response = check(replace(store.response_from_row(stored), **given))
            row = await store.update(conn, response, conns.clock())
            assert row is not None  # locked above
            await audit.record(
                conn, by, AuditAction.UPDATE, ENTITY, response_id, before=stored, after=row
            )
    except (asyncpg.UniqueViolationError, asyncpg.ForeignKeyViolationError) as error:
        assert response is not None
        raise _refused(error, response) from None
    logger.info("canned response changed", extra={"canned_response_id": response_id})
    return row


async def delete(conns: Conns, response_id: int, *, by: Agent | None = None) -> None:
    async with conns.db.acquire() as conn, conn.transaction():
        stored = await store.get_for_update(conn, response_id)
        if stored is None or not await store.delete(conn, response_id):
            raise _not_found()
        await audit.record(conn, by, AuditAction.DELETE, ENTITY, response_id, before=stored)
    logger.info("canned response deleted", extra={"canned_response_id": response_id})


async def get(conns: Conns, response_id: int) -> asyncpg.Record:
    row = await store.get(conns.db, response_id)
    if row is None:
        raise _not_found()
    return row


def _may_use(agent: Agent, team_id: int | None) -> bool:
    return agent.sees_everything or team_id is None or team_id in agent.team_ids


def like_pattern(text: str) -> str:
    """A case-insensitive "contains" pattern for ILIKE, with %, _ and \\ taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def search(
    conns: Conns,
    agent: Agent,
    *,
    q: str | None,
    team_id: int | None,
    after: str | None,
    limit: int,
) -> tuple[list[asyncpg.Record], str | None]:
    """A page of the responses the agent may use (for everyone and for their teams; all for
    supervisors and admins) in shortcut order, and the cursor of the next page (None: last)."""
    text = (q or "").strip()
    query = PageQuery(
        sees_everything=agent.sees_everything,
        team_ids=agent.team_ids,
        team_id=team_id,
        pattern=like_pattern(text) if text else None,
        after=after,
        limit=limit + 1,
    )
    rows = await store.page(conns.db, query)
    items = rows[:limit]
    return items, (items[-1]["shortcut"] if len(rows) > limit else None)


async def render_for(conns: Conns, agent: Agent, response_id: int, conversation_id: int) -> str:
    """The response's text for the conversation's customer: their name, a salutation in the
    response's language (else the customer's, else the default locale), and the agent's name.
    404 for a response or conversation the agent may not use or see, as for a missing one."""
    async with conns.db.acquire() as conn:
        row = await store.get(conn, response_id)
        if row is None or not _may_use(agent, row["team_id"]):
            raise _not_found()
        conversation = await conversations.get(conn, conversation_id)
        if conversation is None or not agent.can_see(
            conversation["team_id"], conversation["assignee_id"]
        ):
            raise NotFound("conversation not found", code="conversation_not_found")
        contact = await templates_store.contact_name_and_locale(conn, conversation["contact_id"])
        assert contact is not None  # a conversation's contact is never deleted before it
        locale = row["locale"] or contact["locale"]
        if locale is None:
            locale = (await care_settings.load(conn)).default_locale
    values = care.placeholder_values(name=contact["name"], locale=locale, agent=agent.name)
    try:
        return render_text(row["body_text"], values)
    except RenderFailed as error:
        raise Invalid(
            f"the canned response does not render: {error}", code="render_failed", details={}
        ) from None
