"""The web chat API for customers: start a conversation, write, read, and listen for replies.

No agent token here: a visitor token, signed with SECRET_KEY, scopes exactly one conversation.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import uuid
from datetime import datetime
from typing import Annotated, Any

from aiohttp import web
from pydantic import Field

from channels.web.sender import visitor_message
from contactcenter.api.errors import ApiError
from contactcenter.api.keys import CONNS, HUB
from contactcenter.api.openapi import Page, View, documented
from contactcenter.api.parsing import (
    CHALLENGE,
    MAX_ID,
    Body,
    CleanStr,
    bearer_token,
    check_text,
    path_id,
    read_json,
    whole_number,
)
from contactcenter.api.realtime import CLOSE, HEARTBEAT_SECONDS, RESYNC, drain_incoming
from contactcenter.domain.enums import Channel, Direction, IdentityKind
from contactcenter.domain.identities import normalise_email, normalise_phone
from contactcenter.domain.messages import Identity, InboundMessage
from contactcenter.services import visitors
from contactcenter.services.ingest import ingest

# a conversation's first message id is global, so it must be unguessable (a UUID will do):
# a retry with it returns the conversation and its token
StartMessageId = Annotated[str, Field(pattern=r"^[A-Za-z0-9._:-]{16,128}$")]
MessageId = Annotated[str, Field(pattern=r"^[A-Za-z0-9._:-]{1,128}$")]
HISTORY_LIMIT = 100


class StartBody(Body):
    text: CleanStr
    client_message_id: StartMessageId
    name: Annotated[CleanStr, Field(max_length=200)] | None = None
    email: Annotated[CleanStr, Field(max_length=320)] | None = None
    phone: Annotated[CleanStr, Field(max_length=40)] | None = None


class MessageBody(Body):
    text: CleanStr
    client_message_id: MessageId


class HistoryQuery(Body):
    """Documentation only: get_messages reads ?after= by hand (_after_id)."""

    after: int = Field(
        0,
        ge=0,
        le=MAX_ID,
        description="a message id: only messages after it (a page's next_cursor goes here)",
    )


class SocketQuery(Body):
    """Documentation only: the handler reads ?after= by hand (_after_id), and ?token= with
    bearer_token(allow_query=True)."""

    after: int = Field(
        0,
        ge=0,
        le=MAX_ID,
        description="a message id: the replies after it are sent first (0: every reply)",
    )
    token: str | None = Field(
        None,
        description="the visitor token, for browsers that cannot set Authorization on a WebSocket",
    )


class ConversationStarted(View):
    conversation_id: int
    visitor_token: str
    message_id: int


class MessagePosted(View):
    conversation_id: int
    message_id: int


class VisitorMessage(View):
    """A message as the visitor sees it (channels.web.sender.visitor_message): in the history
    and on the socket, as {"type": "message", "message": ...}."""

    id: int
    direction: Direction
    text: str
    created_at: datetime
    # the agent's name on a reply, null on the visitor's own messages
    author_name: str | None


def _claimed(request: web.Request, body: StartBody) -> dict[str, str]:
    """What the visitor says about themselves. Anyone can type any address, so it is shown to
    agents as unverified and never links this chat to an existing customer."""
    claimed = {}
    if body.email:
        claimed["email"] = normalise_email(body.email)
    if body.phone:
        region = request.app[CONNS].settings.default_phone_region
        claimed["phone"] = normalise_phone(body.phone, region)
    return claimed


@documented(
    "Start a web chat",
    access="public",
    body=StartBody,
    responses={201: ConversationStarted, 200: ConversationStarted},
)
async def start_conversation(request: web.Request) -> web.Response:
    """Open a conversation with its first message and get the visitor token that reads and
    writes it. A retry with the same client_message_id and text answers 200 with the same
    conversation and a token for it."""
    body = await read_json(request, StartBody)
    conns = request.app[CONNS]
    result = await ingest(
        conns,
        InboundMessage(
            channel=Channel.WEB,
            # stored hashed: the id of a conversation's first message, with its text, is all a
            # retry needs to get the visitor token back, and agents can read the stored row
            external_id="new:" + hashlib.sha256(body.client_message_id.encode()).hexdigest(),
            text=check_text(request, body.text),
            # a fresh visitor id: each web conversation starts as its own contact
            identities=(Identity(IdentityKind.WEB, uuid.uuid4().hex),),
            contact_name=(body.name or "").strip() or None,
            claimed=_claimed(request, body),
            retry_must_match=True,
        ),
    )
    token = visitors.sign(conns.settings.secret, result.conversation_id, result.contact_id)
    return web.json_response(
        {
            "conversation_id": result.conversation_id,
            "visitor_token": token,
            "message_id": result.message_id,
        },
        status=200 if result.duplicate else 201,
    )


def _visitor_conversation(request: web.Request, *, allow_query: bool = False) -> int:
    """The conversation of the path, if the visitor token is for exactly that one."""
    conversation_id = path_id(request)
    token = bearer_token(request, allow_query=allow_query)
    if token is None:
        raise ApiError(
            401,
            "missing_token",
            "send the visitor token: Authorization: Bearer ...",
            headers=CHALLENGE,
        )
    settings = request.app[CONNS].settings
    try:
        visitors.verify(settings.secret, token, conversation_id, settings.visitor_token_ttl_seconds)
    except visitors.VisitorTokenError as error:
        if error.code == "token_scope_mismatch":
            raise ApiError(403, "forbidden", "this token is for another conversation") from None
        raise ApiError(
            401, error.code, "the visitor token is not valid", headers=CHALLENGE
        ) from None
    return conversation_id


@documented(
    "Write in a web chat",
    access="visitor",
    body=MessageBody,
    responses={201: MessagePosted, 200: MessagePosted},
)
async def post_message(request: web.Request) -> web.Response:
    """Add the visitor's message to the conversation; a retry with the same client_message_id
    answers 200 with the message stored the first time."""
    conversation_id = _visitor_conversation(request)
    body = await read_json(request, MessageBody)
    result = await ingest(
        request.app[CONNS],
        InboundMessage(
            channel=Channel.WEB,
            external_id=f"{conversation_id}:{body.client_message_id}",
            text=check_text(request, body.text),
            identities=(),
            conversation_id=conversation_id,
            retry_must_match=True,
        ),
    )
    return web.json_response(
        {"conversation_id": conversation_id, "message_id": result.message_id},
        status=200 if result.duplicate else 201,
    )


def _after_id(request: web.Request) -> int:
    after = whole_number(request.query.get("after", "0"))
    if after is None:
        raise ApiError(422, "invalid_query", "after must be a message id", {"field": "after"})
    return after


def _history_item(row: dict[str, Any]) -> dict[str, Any]:
    return visitor_message(
        id=row["id"],
        direction=row["direction"],
        text=row["body_text"],
        created_at=row["created_at"],
        author_name=row["author_name"],
    )


@documented(
    "A web chat's history",
    access="visitor",
    query=HistoryQuery,
    responses={200: Page[VisitorMessage]},
)
async def get_messages(request: web.Request) -> web.Response:
    """What the visitor can see of the conversation (never internal notes), oldest first, 100
    at a time: pass next_cursor as ?after= for the next page."""
    conversation_id = _visitor_conversation(request)
    rows = await visitors.history(
        request.app[CONNS], conversation_id, _after_id(request), HISTORY_LIMIT + 1
    )
    more = len(rows) > HISTORY_LIMIT
    items = [_history_item(row) for row in rows[:HISTORY_LIMIT]]
    return web.json_response(
        {"items": items, "next_cursor": str(items[-1]["id"]) if more else None}
    )


@documented(
    "Agent replies as they happen (WebSocket)",
    access="visitor",
    query=SocketQuery,
    responses={101: None},
)
async def replies_socket(request: web.Request) -> web.StreamResponse:
    """A WebSocket that sends each agent reply as a JSON text frame {"type": "message",
    "message": VisitorMessage}; with ?after=<message id> it first replays the replies since
    that message. What the visitor sends on it is ignored."""
    conversation_id = _visitor_conversation(request, allow_query=True)
    after = _after_id(request)
    conns = request.app[CONNS]
    hub = request.app[HUB]
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT_SECONDS)
    await ws.prepare(request)
    # listen before reading the backlog, so nothing falls between the two
    queue = hub.add_visitor(conversation_id)
    reader = asyncio.create_task(drain_incoming(ws, queue))
    # replies may be delivered out of id order (sends run concurrently, and retry), so what
    # was sent is remembered by id rather than by the highest id seen
    delivered: set[int] = set()
    try:
        await queue.put(RESYNC)
        while True:
            event = await queue.get()
            if event is CLOSE:
                break
            if event is RESYNC:
                rows = await visitors.all_replies_after(conns, conversation_id, after)
                replies = [_history_item(row) for row in rows]
            else:
                replies = [event["message"]] if event.get("type") == "message" else []
            for reply in replies:
                if reply["id"] > after and reply["id"] not in delivered:
                    await ws.send_json({"type": "message", "message": reply})
                    delivered.add(reply["id"])
    except (ConnectionResetError, RuntimeError):
        pass  # the visitor went away mid-send
    finally:
        hub.remove_visitor(conversation_id, queue)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        await ws.close()
    return ws


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/v1/web/conversations", start_conversation)
    app.router.add_post("/v1/web/conversations/{id}/messages", post_message)
    app.router.add_get("/v1/web/conversations/{id}/messages", get_messages)
    app.router.add_get("/v1/web/conversations/{id}/ws", replies_socket)
