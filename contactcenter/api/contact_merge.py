"""POST /v1/contacts/merge and GET /v1/contacts/{id}/merges (supervisors and admins).

POST {"into_id", "from_id"} moves everything of `from` to `into` (identities, conversations,
care sends, satisfaction scores, consents, tier history; tags united, fields into's per key,
the higher value), deletes `from` and records the merge; 200 with the surviving card and
`merged` {"id", "counts"}. Errors: same_contact (422), contact_not_found (404),
too_many_tags / too_many_fields (422, nothing written).
"""

from __future__ import annotations

from typing import Annotated

from aiohttp import web
from pydantic import Field, StrictInt

from contactcenter.api.auth import require_agent
from contactcenter.api.keys import CONNS
from contactcenter.api.parsing import MAX_ID, Body, path_id, read_json
from contactcenter.api.serialize import jsonable
from contactcenter.domain.enums import Role
from contactcenter.services import contact_merge

MERGERS = (Role.SUPERVISOR, Role.ADMIN)
ContactId = Annotated[StrictInt, Field(ge=1, le=MAX_ID)]


class MergeBody(Body):
    into_id: ContactId
    from_id: ContactId


async def merge_contacts(request: web.Request) -> web.Response:
    agent = await require_agent(request, roles=MERGERS)
    body = await read_json(request, MergeBody)
    result = await contact_merge.merge(request.app[CONNS], agent, body.into_id, body.from_id)
    merged = {"id": result.merge_id, "from_id": body.from_id, "counts": result.counts}
    return web.json_response(jsonable({**result.card, "merged": merged}))


async def list_merges(request: web.Request) -> web.Response:
    await require_agent(request, roles=MERGERS)
    items = await contact_merge.merges_into(request.app[CONNS], path_id(request))
    return web.json_response({"items": jsonable(items), "next_cursor": None})


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/v1/contacts/merge", merge_contacts)
    app.router.add_get("/v1/contacts/{id}/merges", list_merges)
