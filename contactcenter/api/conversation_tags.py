"""POST /v1/conversations/{id}/tags: agents label a conversation they can see ("refund",
"vip-callback"), for the inbox's ?tag= filter and for routing rules that test tags."""

from __future__ import annotations

from typing import Annotated

from aiohttp import web
from pydantic import Field, StrictStr

from contactcenter.api.auth import require_agent
from contactcenter.api.keys import CONNS
from contactcenter.api.openapi import View, documented
from contactcenter.api.parsing import Body, path_id, read_json
from contactcenter.services import inbox

# normalised and checked by domain.contacts.normalise_tags (invalid_tag, too_many_tags)
TagList = Annotated[list[StrictStr], Field(max_length=100)]


class TagsBody(Body):
    add: TagList = Field(default_factory=list)
    remove: TagList = Field(default_factory=list)


class ConversationTags(View):
    conversation_id: int
    tags: list[str]


@documented(
    "Add and remove a conversation's tags",
    access="any",
    body=TagsBody,
    responses={200: ConversationTags},
)
async def change_tags(request: web.Request) -> web.Response:
    """Tags are trimmed and lowercased; adding one it has, or removing one it lacks, changes
    nothing. The answer is the tags it has now, and agents who see the conversation get
    conversation.tags_changed. Codes: invalid_tag, too_many_tags (at most 50),
    conflicting_tags (the same tag in add and remove)."""
    agent = await require_agent(request)
    conversation_id = path_id(request)
    body = await read_json(request, TagsBody)
    tags = await inbox.change_tags(
        request.app[CONNS], agent, conversation_id, add=body.add, remove=body.remove
    )
    return web.json_response({"conversation_id": conversation_id, "tags": tags})


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/v1/conversations/{id}/tags", change_tags)
