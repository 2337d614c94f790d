"""/v1/admin/sla-policies: service standards, with targets in whole minutes (admins write,
supervisors read). Timers and escalation are the SLA engine's."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import asyncpg
from aiohttp import web
from pydantic import AfterValidator, Field, StrictInt

from contactcenter.api.auth import require_agent
from contactcenter.api.errors import ApiError
from contactcenter.api.keys import CONNS
from contactcenter.api.openapi import Page, View, documented, left_out
from contactcenter.api.parsing import MAX_ID, CleanStr, Patch, path_id, read_json
from contactcenter.api.serialize import jsonable
from contactcenter.domain.enums import Role, SlaClock
from contactcenter.domain.sla_policies import (
    MAX_DESCRIPTION_CHARS,
    MAX_NAME_CHARS,
    MAX_PRIORITY,
    is_one_line,
)
from contactcenter.services import sla_policies as service
from contactcenter.store import sla_policies

READERS = (Role.SUPERVISOR, Role.ADMIN)
WRITERS = (Role.ADMIN,)
# columns that hold a value always: null is refused, leave the field out to keep it
NOT_NULL = ("name", "clock", "escalation")
TARGETS = ("first_response", "next_response", "resolution")


def _name(value: str) -> str:
    value = value.strip()
    if not value or not is_one_line(value):
        raise ValueError("must be one line of text, not blank")
    return value


Name = Annotated[CleanStr, Field(max_length=MAX_NAME_CHARS), AfterValidator(_name)]
Description = Annotated[CleanStr, Field(max_length=MAX_DESCRIPTION_CHARS)]
Id = Annotated[StrictInt, Field(ge=1, le=MAX_ID)]


class SlaPolicyPatch(Patch):
    not_null = NOT_NULL

    name: Name | None = None
    description: Description | None = None
    # whole minutes, 1 to 90 days (checked in the domain: invalid_target); null: no target
    first_response_minutes: StrictInt | None = None
    next_response_minutes: StrictInt | None = None
    resolution_minutes: StrictInt | None = None
    clock: SlaClock | None = None
    # null: the default calendar (business clock)
    business_hours_id: Id | None = None
    # 1..99 (checked in the domain: invalid_warning_percent); null: no warning
    warning_percent: StrictInt | None = None
    # {"raise_priority_to", "team_id", "notify_email"}, replaced whole (checked in the domain)
    escalation: dict[str, Any] | None = None


class SlaPolicyBody(SlaPolicyPatch):
    name: Name


class EscalationView(View):
    """What a breach does; each action is there only when set ({}: nothing)."""

    raise_priority_to: Annotated[int, Field(ge=0, le=MAX_PRIORITY)] = left_out()
    team_id: int = left_out()
    notify_email: str = left_out()


# a target written to the database in seconds that are not whole minutes shows as a fraction
Minutes = Annotated[int | float | None, Field(description="in minutes; null: no such target")]


class SlaPolicyView(View):
    id: int
    name: str
    description: str | None
    first_response_minutes: Minutes
    next_response_minutes: Minutes
    resolution_minutes: Minutes
    clock: SlaClock = Field(
        description="business: only time inside business hours counts; calendar: every second"
    )
    business_hours_id: int | None = Field(
        description="the calendar of the business clock; null: the default calendar"
    )
    warning_percent: int | None = Field(description="warn at this share of each target")
    escalation: EscalationView
    created_at: datetime
    updated_at: datetime


def _minutes(seconds: int | None) -> int | float | None:
    """Targets are whole minutes; one written to the database in seconds shows as a fraction."""
    if seconds is None:
        return None
    return seconds // 60 if seconds % 60 == 0 else round(seconds / 60, 3)


def _view(row: asyncpg.Record) -> dict[str, Any]:
    view: dict[str, Any] = {"id": row["id"], "name": row["name"], "description": row["description"]}
    for target in TARGETS:
        view[f"{target}_minutes"] = _minutes(row[f"{target}_seconds"])
    for name in ("clock", "business_hours_id", "warning_percent", "escalation"):
        view[name] = row[name]
    view["created_at"], view["updated_at"] = row["created_at"], row["updated_at"]
    return dict(jsonable(view))


@documented("List SLA policies", access="readers", responses={200: Page[SlaPolicyView]})
async def list_policies(request: web.Request) -> web.Response:
    """Every SLA policy (one page)."""
    await require_agent(request, roles=READERS)
    rows = await sla_policies.list_all(request.app[CONNS].db)
    return web.json_response({"items": [_view(r) for r in rows], "next_cursor": None})


@documented("Add an SLA policy", access="admin", body=SlaPolicyBody, responses={201: SlaPolicyView})
async def create_policy(request: web.Request) -> web.Response:
    """A service standard: targets in whole minutes (at least one), the clock they run on, a
    warning share and what a breach escalates to."""
    by = await require_agent(request, roles=WRITERS)
    body = await read_json(request, SlaPolicyBody)
    row = await service.create(request.app[CONNS], body.model_dump(exclude_unset=True), by=by)
    return web.json_response(_view(row), status=201)


@documented("An SLA policy", access="readers", responses={200: SlaPolicyView})
async def get_policy(request: web.Request) -> web.Response:
    """One SLA policy."""
    await require_agent(request, roles=READERS)
    row = await sla_policies.get(request.app[CONNS].db, path_id(request))
    if row is None:
        raise ApiError(404, "sla_policy_not_found", "no such SLA policy")
    return web.json_response(_view(row))


@documented(
    "Change an SLA policy", access="admin", body=SlaPolicyPatch, responses={200: SlaPolicyView}
)
async def update_policy(request: web.Request) -> web.Response:
    """Change the fields sent, keep the rest (escalation is replaced whole); the whole policy
    is checked again."""
    by = await require_agent(request, roles=WRITERS)
    policy_id = path_id(request)
    body = await read_json(request, SlaPolicyPatch)
    changes = body.model_dump(exclude_unset=True)
    row = await service.update(request.app[CONNS], policy_id, changes, by=by)
    return web.json_response(_view(row))


@documented("Delete an SLA policy (not one in use)", access="admin", responses={204: None})
async def delete_policy(request: web.Request) -> web.Response:
    """Delete a policy nothing uses: a routing rule, a tier or an open conversation (409)."""
    by = await require_agent(request, roles=WRITERS)
    await service.delete(request.app[CONNS], path_id(request), by=by)
    return web.Response(status=204)


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/v1/admin/sla-policies", list_policies)
    app.router.add_post("/v1/admin/sla-policies", create_policy)
    app.router.add_get("/v1/admin/sla-policies/{id}", get_policy)
    app.router.add_patch("/v1/admin/sla-policies/{id}", update_policy)
    app.router.add_delete("/v1/admin/sla-policies/{id}", delete_policy)
