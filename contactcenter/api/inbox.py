"""The unified inbox for agents, supervisors and admins."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from aiohttp import web
from pydantic import AwareDatetime, Field, StrictInt

from contactcenter.api.auth import require_agent
from contactcenter.api.errors import ApiError
from contactcenter.api.keys import CONNS
from contactcenter.api.parsing import (
    MAX_ID,
    Body,
    CleanStr,
    check_text,
    path_id,
    read_json,
    whole_number,
)
from contactcenter.api.serialize import decode_cursor, encode_cursor, jsonable
from contactcenter.domain.enums import Channel, ConversationStatus, Presence
from contactcenter.services import agents, assignment, inbox

VIEWS = ("mine", "team", "unassigned", "all")
# the inbox shows what needs attention: past a warning, or past a target
SLA_FILTERS = ("at_risk", "breached")
DEFAULT_LIMIT = 25
MAX_LIMIT = 100


class ReplyBody(Body):
    text: CleanStr
    channel: Channel | None = None


class NoteBody(Body):
    text: CleanStr


class StatusBody(Body):
    status: Literal["open", "pending", "snoozed", "resolved"]
    until: AwareDatetime | None = None


class AssignBody(Body):
    agent_id: Annotated[StrictInt, Field(ge=1, le=MAX_ID)] | None = None
    team_id: Annotated[StrictInt, Field(ge=1, le=MAX_ID)] | None = None


class PresenceBody(Body):
    status: Presence


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ApiError(
            422, "invalid_query", f"{name} must be one of {', '.join(allowed)}", {"field": name}
        )
    return value


def _query_limit(request: web.Request) -> int:
    limit = whole_number(request.query.get("limit", str(DEFAULT_LIMIT)), low=1, high=MAX_LIMIT)
    if limit is None:
        raise ApiError(
            422,
            "invalid_query",
            f"limit must be a number from 1 to {MAX_LIMIT}",
            {"field": "limit"},
        )
    return limit


async def list_inbox(request: web.Request) -> web.Response:
    agent = await require_agent(request)
    view = _choice("view", request.query.get("view", "all"), VIEWS)
    statuses = tuple(
        _choice("status", status, tuple(ConversationStatus))
        for status in request.query.get("status", "open").split(",")
    )
    channel = request.query.get("channel")
    if channel is not None:
        _choice("channel", channel, tuple(Channel))
    tiers = tuple(
        int(_choice("tier", tier, ("1", "2", "3", "4")))
        for tier in request.query.get("tier", "").split(",")
        if tier
    )
    sla_states = tuple(
        _choice("sla", state, SLA_FILTERS)
        for state in request.query.get("sla", "").split(",")
        if state
    )
    cursor = request.query.get("cursor")
    items, next_cursor = await inbox.list_inbox(
        request.app[CONNS],
        agent,
        view=view,
        statuses=statuses,
        channel=channel,
        limit=_query_limit(request),
        after=decode_cursor(cursor) if cursor else None,
        tiers=tiers,
        sla_states=sla_states,
    )
    return web.json_response({"items": jsonable(items), "next_cursor": encode_cursor(next_cursor)})


async def get_conversation(request: web.Request) -> web.Response:
    agent = await require_agent(request)
    detail = await inbox.conversation_detail(request.app[CONNS], agent, path_id(request))
    return web.json_response(jsonable(detail))


async def post_reply(request: web.Request) -> web.Response:
    agent = await require_agent(request)
    conversation_id = path_id(request)
    body = await read_json(request, ReplyBody)
    message = await inbox.reply(
        request.app[CONNS], agent, conversation_id, check_text(request, body.text), body.channel
    )
    return web.json_response({"message_id": message["id"], "status": message["status"]}, status=202)


async def post_note(request: web.Request) -> web.Response:
    agent = await require_agent(request)
    conversation_id = path_id(request)
    body = await read_json(request, NoteBody)
    note = await inbox.add_note(
        request.app[CONNS], agent, conversation_id, check_text(request, body.text)
    )
    return web.json_response({"message_id": note["id"]}, status=201)


async def post_status(request: web.Request) -> web.Response:
    agent = await require_agent(request)
    conversation_id = path_id(request)
    body = await read_json(request, StatusBody)
    until: datetime | None = body.until
    conversation = await inbox.change_status(
        request.app[CONNS], agent, conversation_id, ConversationStatus(body.status), until
    )
    return web.json_response(
        jsonable(
            {
                "id": conversation["id"],
                "status": conversation["status"],
                "assignee_id": conversation["assignee_id"],
                "snoozed_until": conversation["snoozed_until"],
                "resolved_at": conversation["resolved_at"],
            }
        )
    )


async def post_assign(request: web.Request) -> web.Response:
    agent = await require_agent(request)
    conversation_id = path_id(request)
    body = await read_json(request, AssignBody)
    conversation = await assignment.transfer(
        request.app[CONNS],
        agent,
        conversation_id,
        assignment.Transfer(agent_id=body.agent_id, team_id=body.team_id),
    )
    return web.json_response(
        jsonable(
            {
                "id": conversation["id"],
                "team_id": conversation["team_id"],
                "assignee_id": conversation["assignee_id"],
                "routing": conversation["routing"],
            }
        )
    )


async def put_presence(request: web.Request) -> web.Response:
    agent = await require_agent(request)
    body = await read_json(request, PresenceBody)
    await agents.set_presence(request.app[CONNS], agent, body.status)
    return web.json_response({"agent_id": agent.id, "status": body.status})


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/v1/inbox", list_inbox)
    app.router.add_get("/v1/conversations/{id}", get_conversation)
    app.router.add_post("/v1/conversations/{id}/replies", post_reply)
    app.router.add_post("/v1/conversations/{id}/notes", post_note)
    app.router.add_post("/v1/conversations/{id}/status", post_status)
    app.router.add_post("/v1/conversations/{id}/assign", post_assign)
    app.router.add_put("/v1/agents/me/presence", put_presence)
