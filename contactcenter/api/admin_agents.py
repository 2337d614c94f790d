"""/v1/admin/agents: agents, their capacity (in total and per channel), skills and teams
(admins write, supervisors read). A new agent's token is in the creation answer only; it is
stored as a hash, and no answer ever carries the hash."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import asyncpg
from aiohttp import web
from pydantic import Field, StrictInt

from contactcenter.api.admin_teams import Id, Name, Skills
from contactcenter.api.auth import require_agent
from contactcenter.api.errors import ApiError
from contactcenter.api.keys import CONNS
from contactcenter.api.openapi import Page, View, documented
from contactcenter.api.parsing import Body, CleanStr, Patch, path_id, read_json, whole_number
from contactcenter.api.serialize import jsonable
from contactcenter.domain.enums import Channel, Presence, Role
from contactcenter.services import teams as service
from contactcenter.store import agents

READERS = (Role.SUPERVISOR, Role.ADMIN)
WRITERS = (Role.ADMIN,)
NOT_NULL = ("name", "role", "capacity", "channel_capacity", "skills", "team_ids")
MAX_TEAMS = 1000
DEFAULT_PAGE = 50
MAX_PAGE = 200

Capacity = Annotated[StrictInt, Field(ge=0, le=100)]


class ChannelCapacity(Body):
    """At most this many conversations of a channel at once; a channel left out (or null) is
    bounded by the total capacity only. Above the total is allowed: the total still bounds."""

    email: Capacity | None = None
    sms: Capacity | None = None
    web: Capacity | None = None


class AgentPatch(Patch):
    not_null = NOT_NULL

    name: Name | None = None
    role: Role | None = None
    capacity: Capacity | None = None
    # replaces the whole map
    channel_capacity: ChannelCapacity | None = None
    skills: Skills | None = None
    team_ids: Annotated[list[Id], Field(max_length=MAX_TEAMS)] | None = None


class AgentBody(AgentPatch):
    name: Name
    email: Annotated[CleanStr, Field(max_length=320)]
    role: Role


class AgentView(View):
    """An agent as admins see it (never the token, nor its hash)."""

    id: int
    name: str
    email: str
    role: Role
    presence: Presence
    presence_changed_at: datetime
    capacity: int = Field(description="at most this many active conversations at once")
    channel_capacity: dict[Channel, int] = Field(
        description="per-channel limits; a channel left out is bounded by capacity only"
    )
    skills: list[str]
    last_assigned_at: datetime | None
    created_at: datetime
    updated_at: datetime
    team_ids: list[int]
    load: int = Field(description="the active (open, pending, snoozed) conversations held now")


class NewAgentView(AgentView):
    token: str = Field(description="the agent's token: shown in this answer only")


class AgentsQuery(Body):
    """Documentation only: list_agents reads the query by hand."""

    limit: int = Field(DEFAULT_PAGE, ge=1, le=MAX_PAGE)
    cursor: str | None = Field(
        None, pattern=r"^[0-9]{1,19}$", description="the next_cursor of the previous page"
    )


def _view(row: asyncpg.Record) -> dict[str, Any]:
    return dict(jsonable(dict(row)))


@documented("List agents", access="readers", query=AgentsQuery, responses={200: Page[AgentView]})
async def list_agents(request: web.Request) -> web.Response:
    """Agents in the order they were created, a page at a time."""
    await require_agent(request, roles=READERS)
    limit = whole_number(request.query.get("limit", str(DEFAULT_PAGE)), low=1, high=MAX_PAGE)
    if limit is None:
        raise ApiError(422, "invalid_query", f"limit is 1 to {MAX_PAGE}")
    # the cursor is the last id of the previous page
    after = whole_number(request.query.get("cursor", "0"))
    if after is None:
        raise ApiError(400, "invalid_cursor", "the cursor is not one this server gave")
    rows = await agents.page_views(request.app[CONNS].db, after, limit + 1)
    page = rows[:limit]
    next_cursor = str(page[-1]["id"]) if len(rows) > limit else None
    return web.json_response({"items": [_view(r) for r in page], "next_cursor": next_cursor})


@documented("Add an agent", access="admin", body=AgentBody, responses={201: NewAgentView})
async def create_agent(request: web.Request) -> web.Response:
    """A new agent, in the teams named (left out: the default team). The answer carries the
    agent's token, which no later answer shows."""
    by = await require_agent(request, roles=WRITERS)
    body = await read_json(request, AgentBody)
    values = body.model_dump(exclude_unset=True)
    created = await service.create_agent(request.app[CONNS], values, by=by)
    return web.json_response({**_view(created.view), "token": created.token}, status=201)


@documented("An agent", access="readers", responses={200: AgentView})
async def get_agent(request: web.Request) -> web.Response:
    """One agent: settings, teams and how many active conversations they hold."""
    await require_agent(request, roles=READERS)
    row = await agents.view(request.app[CONNS].db, path_id(request))
    if row is None:
        raise ApiError(404, "agent_not_found", "no such agent")
    return web.json_response(_view(row))


@documented("Change an agent", access="admin", body=AgentPatch, responses={200: AgentView})
async def update_agent(request: web.Request) -> web.Response:
    """Change the fields sent, keep the rest; team_ids and channel_capacity are replaced whole.
    The last admin cannot be demoted (409 last_admin)."""
    by = await require_agent(request, roles=WRITERS)
    agent_id = path_id(request)
    body = await read_json(request, AgentPatch)
    row = await service.update_agent(
        request.app[CONNS], agent_id, body.model_dump(exclude_unset=True), by=by
    )
    return web.json_response(_view(row))


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/v1/admin/agents", list_agents)
    app.router.add_post("/v1/admin/agents", create_agent)
    app.router.add_get("/v1/admin/agents/{id}", get_agent)
    app.router.add_patch("/v1/admin/agents/{id}", update_agent)
