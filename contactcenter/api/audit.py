"""/v1/admin/audit: the log of admin changes, newest first (admins only).

Filters: entity, entity_id, agent_id, from (inclusive), to (exclusive) — a date (midnight UTC)
or a time with an offset; limit 1..200 (50); cursor: the next_cursor of the previous page.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Annotated, Any

import asyncpg
from aiohttp import web
from pydantic import AwareDatetime, Field

from contactcenter.api.auth import require_agent
from contactcenter.api.errors import ApiError
from contactcenter.api.keys import CONNS
from contactcenter.api.openapi import Page, View, documented
from contactcenter.api.parsing import MAX_ID, Body, whole_number
from contactcenter.api.serialize import jsonable
from contactcenter.domain.audit import AuditAction
from contactcenter.domain.enums import Role
from contactcenter.store import audit

READERS = (Role.ADMIN,)
DEFAULT_PAGE = 50
MAX_PAGE = 200
MAX_TEXT = 200


Text = Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]
# a date is midnight UTC
Instant = date | AwareDatetime


class AuditQuery(Body):
    """Documentation only: list_audit reads the query by hand."""

    entity: Text | None = Field(None, description='what was changed: "team", "routing_rule" ...')
    entity_id: Text | None = Field(None, description="the id of what was changed")
    agent_id: Annotated[int, Field(ge=1, le=MAX_ID)] | None = Field(
        None, description="who changed it"
    )
    from_: Instant | None = Field(
        None, alias="from", description="changes at or after: a date or a time with an offset"
    )
    to: Instant | None = Field(None, description="changes before: a date or a time with an offset")
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE
    cursor: str | None = Field(None, description="the next_cursor of the previous page")


class AuditEntryView(View):
    id: int
    at: datetime
    # who made the change (null: the system, or an agent since deleted)
    agent_id: int | None
    # the agent's name as it was then
    agent_name: str | None
    action: AuditAction
    entity: str
    entity_id: str | None
    # the row before and after: the whole row for a create or delete, only the fields that
    # changed for an update; secrets are never kept
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    request_id: str | None


def _invalid(field: str, message: str) -> ApiError:
    return ApiError(422, "invalid_query", message, {"field": field})


def _instant(field: str, raw: str | None) -> datetime | None:
    if raw is None:
        return None
    text = raw.strip().replace(" ", "+")  # a "+" of an offset arrives as a space
    try:
        if not text.isascii():
            raise ValueError("not ASCII")
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(), tzinfo=UTC)
        at = datetime.fromisoformat(text)
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError("no offset")
        return at.astimezone(UTC)
    except (ValueError, OverflowError):
        raise _invalid(field, f"{field} is a date or a time with an offset") from None


def _text(field: str, raw: str | None) -> str | None:
    if raw is not None and (not raw or len(raw) > MAX_TEXT or "\x00" in raw):
        raise _invalid(field, f"{field} is 1 to {MAX_TEXT} characters")
    return raw


def _view(row: asyncpg.Record) -> dict[str, Any]:
    return dict(jsonable(dict(row)))


@documented(
    "The audit log of admin changes",
    access="admin",
    query=AuditQuery,
    responses={200: Page[AuditEntryView]},
)
async def list_audit(request: web.Request) -> web.Response:
    """Who changed what and when, newest first, with the values before and after."""
    await require_agent(request, roles=READERS)
    query = request.query
    limit = whole_number(query.get("limit", str(DEFAULT_PAGE)), low=1, high=MAX_PAGE)
    if limit is None:
        raise _invalid("limit", f"limit is 1 to {MAX_PAGE}")
    before_id = whole_number(query.get("cursor", str(MAX_ID)), low=1)
    if before_id is None:
        raise ApiError(400, "invalid_cursor", "the cursor is not one this server gave")
    agent_id: int | None = None
    if "agent_id" in query:
        agent_id = whole_number(query["agent_id"], low=1)
        if agent_id is None:
            raise _invalid("agent_id", "agent_id is an agent's id")
    rows = await audit.page(
        request.app[CONNS].db,
        entity=_text("entity", query.get("entity")),
        entity_id=_text("entity_id", query.get("entity_id")),
        agent_id=agent_id,
        since=_instant("from", query.get("from")),
        until=_instant("to", query.get("to")),
        before_id=before_id,
        limit=limit + 1,
    )
    page = rows[:limit]
    next_cursor = str(page[-1]["id"]) if len(rows) > limit else None
    return web.json_response({"items": [_view(r) for r in page], "next_cursor": next_cursor})


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/v1/admin/audit", list_audit)
