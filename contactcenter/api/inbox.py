"""The unified inbox for agents, supervisors and admins."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from aiohttp import web
from pydantic import Field, StrictInt

from contactcenter.api.auth import require_agent
from contactcenter.api.conversation_views import (
    Assigned,
    ConversationDetail,
    InboxItem,
    NoteAdded,
    PresenceSet,
    ReplyQueued,
    SettableStatus,
    StatusChanged,
)
from contactcenter.api.errors import ApiError
from contactcenter.api.keys import CONNS
from contactcenter.api.openapi import Page, documented, left_out
from contactcenter.api.parsing import (
    MAX_ID,
    Body,
    CleanStr,
    DateTimeText,
    check_text,
    path_id,
    read_json,
    whole_number,
)
from contactcenter.api.serialize import decode_cursor, encode_cursor, jsonable
from contactcenter.domain.contacts import MAX_TAGS, normalise_tags
from contactcenter.domain.enums import (
    Channel,
    ConversationStatus,
    Presence,
)
from contactcenter.domain.errors import Invalid
from contactcenter.services import agents, assignment, inbox

VIEWS = ("mine", "team", "unassigned", "all")
# the inbox shows what needs attention: past a warning, or past a target
SLA_FILTERS = ("at_risk", "breached")
DEFAULT_LIMIT = 25
MAX_LIMIT = 100


# the statuses an agent may set (closed is the system's: an automatic message opens no work)


class ReplyBody(Body):
    text: CleanStr
    channel: Channel | None = None


class NoteBody(Body):
    text: CleanStr


class StatusBody(Body):
    status: SettableStatus
    until: DateTimeText | None = None


class AssignBody(Body):
    agent_id: Annotated[StrictInt, Field(ge=1, le=MAX_ID)] | None = None
    team_id: Annotated[StrictInt, Field(ge=1, le=MAX_ID)] | None = None


class PresenceBody(Body):
    status: Presence


def _list_of(*choices: str) -> str:
    """A pattern for a comma-separated list of the choices, each one given."""
    choice = "|".join(choices)
    return f"^({choice})(,({choice}))*$"


def _filter_of(*choices: str) -> str:
    """A pattern for a comma-separated list of the choices; empty items are skipped."""
    choice = "|".join(choices)
    return f"^({choice})?(,({choice})?)*$"


class InboxQuery(Body):
    """Documentation only: list_inbox reads the query by hand, with these names and values."""

    view: Literal["mine", "team", "unassigned", "all"] = Field(
        "all",
        description="mine: assigned to the caller; team: in the caller's teams; unassigned: "
        "nobody's yet; all: everything the caller may see",
    )
    status: str = Field(
        "open",
        pattern=_list_of(*ConversationStatus),
        description="comma-separated statuses (open, pending, snoozed, resolved, closed)",
    )
    channel: Channel = left_out()
    tier: str = Field(
        "",
        pattern=_filter_of("1", "2", "3", "4"),
        description="comma-separated tier ranks (1 is the top tier); empty: every tier",
    )
    sla: str = Field(
        "",
        pattern=_filter_of(*SLA_FILTERS),
        description="comma-separated SLA states the engine set (at_risk: past a warning, "
        "breached: past a target); empty: any",
    )
    tag: str = left_out(
        "comma-separated tags (compared trimmed and lowercased): conversations with any of them"
    )
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    cursor: str = left_out("the next_cursor of the previous page")


# --- what the inbox answers ------------------------------------------------------------------


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


def _query_tags(request: web.Request) -> tuple[str, ...]:
    """?tag=a,b: conversations with any of these tags, normalised as tags are stored."""
    raw = [tag for tag in request.query.get("tag", "").split(",") if tag.strip()]
    try:
        return tuple(normalise_tags(raw))
    except Invalid:
        raise ApiError(
            422,
            "invalid_query",
            f"tag is a comma-separated list of at most {MAX_TAGS} tags",
            {"field": "tag"},
        ) from None


@documented(
    "The inbox",
    access="any",
    query=InboxQuery,
    responses={200: Page[InboxItem]},
)
async def list_inbox(request: web.Request) -> web.Response:
    """The conversations the caller may see, filtered by view, status, channel, tier, SLA
    state and tag: the highest priority first, then the nearest SLA due time, then the
    oldest. A filter value it does not know is invalid_query."""
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
        tags=_query_tags(request),
    )
    return web.json_response({"items": jsonable(items), "next_cursor": encode_cursor(next_cursor)})


@documented("A conversation", access="any", responses={200: ConversationDetail})
async def get_conversation(request: web.Request) -> web.Response:
    """The conversation with its messages on every channel (notes included), its routing
    explanation, its SLA clocks, and the contact card with the contact's other conversations.
    A conversation the caller may not see is conversation_not_found."""
    agent = await require_agent(request)
    detail = await inbox.conversation_detail(request.app[CONNS], agent, path_id(request))
    return web.json_response(jsonable(detail))


@documented("Reply to the customer", access="any", body=ReplyBody, responses={202: ReplyQueued})
async def post_reply(request: web.Request) -> web.Response:
    """Queue a reply; it is sent in the background, and its delivery shows as the message's
    status (and a message.status_changed event). `channel` answers on another of the
    customer's channels (e-mail or SMS, to what a channel proved is theirs) and the reply stays
    in this conversation; a web chat is reached only in its own conversation. Refused at once,
    with nothing written: channel_not_available, no_recipient, recipient_opted_out,
    too_many_segments, no_sms_number."""
    agent = await require_agent(request)
    conversation_id = path_id(request)
    body = await read_json(request, ReplyBody)
    message = await inbox.reply(
        request.app[CONNS], agent, conversation_id, check_text(request, body.text), body.channel
    )
    return web.json_response({"message_id": message["id"], "status": message["status"]}, status=202)


@documented("Add an internal note", access="any", body=NoteBody, responses={201: NoteAdded})
async def post_note(request: web.Request) -> web.Response:
    """A note for colleagues, kept with the conversation and never sent to the customer."""
    agent = await require_agent(request)
    conversation_id = path_id(request)
    body = await read_json(request, NoteBody)
    note = await inbox.add_note(
        request.app[CONNS], agent, conversation_id, check_text(request, body.text)
    )
    return web.json_response({"message_id": note["id"]}, status=201)


@documented(
    "Change a conversation's status", access="any", body=StatusBody, responses={200: StatusChanged}
)
async def post_status(request: web.Request) -> web.Response:
    """Open, pending (waiting on the customer), snoozed (`until` a time within the coming
    year, given only with snoozed) or resolved. Resolving frees the assignee's slot; a resolved
    or closed conversation can only be reopened, and is then routed again."""
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


@documented(
    "Assign or transfer a conversation", access="any", body=AssignBody, responses={200: Assigned}
)
async def post_assign(request: web.Request) -> web.Response:
    """Give the conversation to an agent (within their capacity) or to a team's queue, or
    both. Agents may take an unassigned conversation or pass their own to a team; giving one to
    someone else is for supervisors and admins."""
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


@documented(
    "Set the caller's presence", access="any", body=PresenceBody, responses={200: PresenceSet}
)
async def put_presence(request: web.Request) -> web.Response:
    """Online, away or offline; an agent who comes online is given the work waiting for them
    at once."""
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
