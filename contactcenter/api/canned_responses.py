"""Canned responses: /v1/admin/canned-responses (admins write, supervisors read) and, for
every agent, GET /v1/canned-responses (those for everyone and for their teams) and
POST /v1/canned-responses/{id}/render (the text for one conversation's customer).

Bodies are templates with the care templates' placeholders and sandbox; the codes of what is
refused are services.canned_responses'.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import asyncpg
from aiohttp import web
from pydantic import Field, StrictInt

from contactcenter.api.auth import require_agent
from contactcenter.api.errors import ApiError
from contactcenter.api.keys import CONNS
from contactcenter.api.openapi import Page, View, documented
from contactcenter.api.parsing import (
    MAX_ID,
    Body,
    CleanStr,
    Patch,
    path_id,
    read_json,
    whole_number,
)
from contactcenter.api.serialize import jsonable
from contactcenter.domain.agents import Agent
from contactcenter.domain.enums import Role
from contactcenter.services import canned_responses as service

READERS = (Role.SUPERVISOR, Role.ADMIN)
WRITERS = (Role.ADMIN,)
DEFAULT_LIMIT = 25
MAX_LIMIT = 100

Id = Annotated[StrictInt, Field(ge=1, le=MAX_ID)]


class CannedResponsePatch(Patch):
    """A field left out keeps its value; locale and team_id take null (any language,
    everyone). Lengths and shapes are checked by the service, with their own codes."""

    not_null = service.REQUIRED

    # lowercased; ^[a-z0-9][a-z0-9-]{0,49}$ (invalid_shortcut)
    shortcut: CleanStr | None = None
    # one line, 1..200 (invalid_title)
    title: CleanStr | None = None
    # 1..5000, a template (invalid_body, invalid_template)
    body_text: CleanStr | None = None
    # normalised like the templates' (invalid_locale)
    locale: CleanStr | None = None
    # a team that exists (unknown_team)
    team_id: Id | None = None


class CannedResponseBody(CannedResponsePatch):
    shortcut: CleanStr
    title: CleanStr
    body_text: CleanStr


class RenderBody(Body):
    conversation_id: Id


class CannedResponsesQuery(Body):
    """Documentation only: the lists read the query by hand."""

    q: Annotated[str, Field(max_length=service.MAX_QUERY_CHARS)] | None = Field(
        None, description="text found in the shortcut, title or body (any case)"
    )
    team_id: Annotated[int, Field(ge=1, le=MAX_ID)] | None = Field(
        None, description="only this team's responses"
    )
    limit: Annotated[int, Field(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT
    cursor: str | None = Field(None, description="the next_cursor of the previous page")


class CannedResponseView(View):
    id: int
    shortcut: str
    title: str
    body_text: str
    # null: any language
    locale: str | None
    # null: every agent
    team_id: int | None
    # null: an agent since deleted
    created_by: int | None
    created_at: datetime
    updated_at: datetime


class RenderedText(View):
    text: str


def _view(row: asyncpg.Record) -> dict[str, Any]:
    return dict(jsonable(dict(row)))


def _invalid_query(field: str, message: str) -> ApiError:
    return ApiError(422, "invalid_query", message, {"field": field})


def _query_text(request: web.Request) -> str | None:
    q = request.query.get("q")
    if q is None:
        return None
    if len(q) > service.MAX_QUERY_CHARS or "\x00" in q:
        raise _invalid_query("q", f"q is at most {service.MAX_QUERY_CHARS} characters of text")
    return q


def _query_team(request: web.Request) -> int | None:
    raw = request.query.get("team_id")
    if raw is None:
        return None
    team_id = whole_number(raw, low=1)
    if team_id is None:
        raise _invalid_query("team_id", "team_id is a team's id")
    return team_id


def _query_limit(request: web.Request) -> int:
    limit = whole_number(request.query.get("limit", str(DEFAULT_LIMIT)), low=1, high=MAX_LIMIT)
    if limit is None:
        raise _invalid_query("limit", f"limit must be a number from 1 to {MAX_LIMIT}")
    return limit


def _query_cursor(request: web.Request) -> str | None:
    # the cursor is the last shortcut of the previous page
    cursor = request.query.get("cursor")
    if cursor is not None and not service.SHORTCUT.match(cursor):
        raise ApiError(400, "invalid_cursor", "the cursor is not one this server gave")
    return cursor


async def _page(request: web.Request, agent: Agent) -> web.Response:
    items, next_cursor = await service.search(
        request.app[CONNS],
        agent,
        q=_query_text(request),
        team_id=_query_team(request),
        after=_query_cursor(request),
        limit=_query_limit(request),
    )
    return web.json_response({"items": [_view(r) for r in items], "next_cursor": next_cursor})


# --- admins ----------------------------------------------------------------------------------


@documented(
    "List canned responses",
    access="readers",
    query=CannedResponsesQuery,
    responses={200: Page[CannedResponseView]},
)
async def admin_list(request: web.Request) -> web.Response:
    """Every canned response, in shortcut order."""
    return await _page(request, await require_agent(request, roles=READERS))


@documented(
    "Create a canned response",
    access="admin",
    body=CannedResponseBody,
    responses={201: CannedResponseView},
)
async def admin_create(request: web.Request) -> web.Response:
    """A response for every agent, or for one team's (team_id)."""
    agent = await require_agent(request, roles=WRITERS)
    body = await read_json(request, CannedResponseBody)
    row = await service.create(request.app[CONNS], agent, body.model_dump(exclude_unset=True))
    return web.json_response(_view(row), status=201)


@documented("A canned response", access="readers", responses={200: CannedResponseView})
async def admin_get(request: web.Request) -> web.Response:
    """One canned response, whoever it is for."""
    await require_agent(request, roles=READERS)
    row = await service.get(request.app[CONNS], path_id(request))
    return web.json_response(_view(row))


@documented(
    "Change a canned response",
    access="admin",
    body=CannedResponsePatch,
    responses={200: CannedResponseView},
)
async def admin_update(request: web.Request) -> web.Response:
    """Change what is sent (a field left out keeps its value); the response is checked whole."""
    by = await require_agent(request, roles=WRITERS)
    response_id = path_id(request)
    body = await read_json(request, CannedResponsePatch)
    changes = body.model_dump(exclude_unset=True)
    row = await service.update(request.app[CONNS], response_id, changes, by=by)
    return web.json_response(_view(row))


@documented("Delete a canned response", access="admin", responses={204: None})
async def admin_delete(request: web.Request) -> web.Response:
    """Delete a canned response."""
    by = await require_agent(request, roles=WRITERS)
    await service.delete(request.app[CONNS], path_id(request), by=by)
    return web.Response(status=204)


# --- agents ----------------------------------------------------------------------------------


@documented(
    "The canned responses the caller may use",
    access="any",
    query=CannedResponsesQuery,
    responses={200: Page[CannedResponseView]},
)
async def list_for_agent(request: web.Request) -> web.Response:
    """Those for everyone and those for the caller's teams (supervisors and admins see every
    one), in shortcut order."""
    return await _page(request, await require_agent(request))


@documented(
    "Render a canned response for a conversation",
    access="any",
    body=RenderBody,
    responses={200: RenderedText},
)
async def render(request: web.Request) -> web.Response:
    """The response's text for the conversation; writes nothing (the agent sends it, or edits
    it first, as a reply)."""
    agent = await require_agent(request)
    response_id = path_id(request)
    body = await read_json(request, RenderBody)
    text = await service.render_for(request.app[CONNS], agent, response_id, body.conversation_id)
    return web.json_response({"text": text})


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/v1/admin/canned-responses", admin_list)
    app.router.add_post("/v1/admin/canned-responses", admin_create)
    app.router.add_get("/v1/admin/canned-responses/{id}", admin_get)
    app.router.add_patch("/v1/admin/canned-responses/{id}", admin_update)
    app.router.add_delete("/v1/admin/canned-responses/{id}", admin_delete)
    app.router.add_get("/v1/canned-responses", list_for_agent)
    app.router.add_post("/v1/canned-responses/{id}/render", render)
