"""/v1/admin/teams: teams (queues), how they hand out work, where it overflows, and who is in
them (admins write, supervisors read)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import asyncpg
from aiohttp import web
from pydantic import AfterValidator, Field, StrictBool, StrictInt

from contactcenter.api.auth import require_agent
from contactcenter.api.errors import ApiError
from contactcenter.api.keys import CONNS
from contactcenter.api.openapi import Page, View, documented
from contactcenter.api.parsing import MAX_ID, Body, CleanStr, Patch, path_id, read_json
from contactcenter.api.serialize import jsonable
from contactcenter.domain.enums import AssignStrategy, Role
from contactcenter.services import teams as service
from contactcenter.store import teams

READERS = (Role.SUPERVISOR, Role.ADMIN)
WRITERS = (Role.ADMIN,)
# columns that hold a value always: null is refused, leave the field out to keep it
NOT_NULL = ("name", "skills", "strategy", "sticky_wait_seconds", "sticky_last_agent", "is_default")
MAX_MEMBERS = 1000


def one_line(value: str) -> str:
    value = value.strip()
    if not value or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValueError("must be one line of text, not blank")
    return value


Name = Annotated[CleanStr, Field(max_length=100), AfterValidator(one_line)]
# normalised and checked in the domain, which answers invalid_skill
Skills = Annotated[list[Annotated[CleanStr, Field(max_length=100)]], Field(max_length=500)]
Id = Annotated[StrictInt, Field(ge=1, le=MAX_ID)]


class TeamPatch(Patch):
    not_null = NOT_NULL

    name: Name | None = None
    skills: Skills | None = None
    strategy: AssignStrategy | None = None
    sticky_wait_seconds: Annotated[StrictInt, Field(ge=0, le=86_400)] | None = None
    sticky_last_agent: StrictBool | None = None
    # both or neither; null removes the overflow (and its wait)
    overflow_team_id: Id | None = None
    overflow_after_seconds: Annotated[StrictInt, Field(ge=1, le=604_800)] | None = None
    is_default: StrictBool | None = None


class TeamBody(TeamPatch):
    name: Name


class MembersBody(Body):
    agent_ids: Annotated[list[Id], Field(max_length=MAX_MEMBERS)]


class TeamView(View):
    id: int
    name: str
    is_default: bool
    skills: list[str]
    strategy: AssignStrategy
    sticky_wait_seconds: int
    sticky_last_agent: bool
    overflow_team_id: int | None
    overflow_after_seconds: int | None
    created_at: datetime
    updated_at: datetime
    agent_ids: list[int]
    waiting_count: int


def _view(row: asyncpg.Record) -> dict[str, Any]:
    return dict(jsonable(dict(row)))


@documented("List teams", access="readers", responses={200: Page[TeamView]})
async def list_teams(request: web.Request) -> web.Response:
    await require_agent(request, roles=READERS)
    rows = await teams.list_views(request.app[CONNS].db)
    return web.json_response({"items": [_view(r) for r in rows], "next_cursor": None})


@documented("Create a team", access="admin", body=TeamBody, responses={201: TeamView})
async def create_team(request: web.Request) -> web.Response:
    by = await require_agent(request, roles=WRITERS)
    body = await read_json(request, TeamBody)
    row = await service.create_team(request.app[CONNS], body.model_dump(exclude_unset=True), by=by)
    return web.json_response(_view(row), status=201)


@documented("A team", access="readers", responses={200: TeamView})
async def get_team(request: web.Request) -> web.Response:
    await require_agent(request, roles=READERS)
    row = await teams.view(request.app[CONNS].db, path_id(request))
    if row is None:
        raise ApiError(404, "team_not_found", "no such team")
    return web.json_response(_view(row))


@documented("Change a team", access="admin", body=TeamPatch, responses={200: TeamView})
async def update_team(request: web.Request) -> web.Response:
    by = await require_agent(request, roles=WRITERS)
    team_id = path_id(request)
    body = await read_json(request, TeamPatch)
    row = await service.update_team(
        request.app[CONNS], team_id, body.model_dump(exclude_unset=True), by=by
    )
    return web.json_response(_view(row))


@documented(
    "Delete a team (not the default, nor one with conversations)",
    access="admin",
    responses={204: None},
)
async def delete_team(request: web.Request) -> web.Response:
    by = await require_agent(request, roles=WRITERS)
    await service.delete_team(request.app[CONNS], path_id(request), by=by)
    return web.Response(status=204)


@documented("Replace a team's members", access="admin", body=MembersBody, responses={200: TeamView})
async def replace_members(request: web.Request) -> web.Response:
    by = await require_agent(request, roles=WRITERS)
    team_id = path_id(request)
    body = await read_json(request, MembersBody)
    row = await service.replace_members(request.app[CONNS], team_id, body.agent_ids, by=by)
    return web.json_response(_view(row))


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/v1/admin/teams", list_teams)
    app.router.add_post("/v1/admin/teams", create_team)
    app.router.add_get("/v1/admin/teams/{id}", get_team)
    app.router.add_patch("/v1/admin/teams/{id}", update_team)
    app.router.add_delete("/v1/admin/teams/{id}", delete_team)
    app.router.add_put("/v1/admin/teams/{id}/members", replace_members)
