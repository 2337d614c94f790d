"""POST /v1/contacts/merge and GET /v1/contacts/{id}/merges (supervisors and admins).

POST {"into_id", "from_id"} moves everything of `from` to `into` (identities, conversations,
care sends, satisfaction scores, consents, tier history; tags united, fields into's per key,
the higher value), deletes `from` and records the merge; 200 with the surviving card and
`merged` {"id", "counts"}. Errors: same_contact (422), contact_not_found (404),
too_many_tags / too_many_fields (422, nothing written).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from aiohttp import web
from pydantic import Field, StrictInt

from contactcenter.api.auth import require_agent
from contactcenter.api.contacts import ContactCard, Fields, Profile
from contactcenter.api.keys import CONNS
from contactcenter.api.openapi import Page, View, documented
from contactcenter.api.parsing import MAX_ID, Body, path_id, read_json
from contactcenter.api.serialize import jsonable
from contactcenter.domain.care import CareKind, CareStatus
from contactcenter.domain.contacts import ConsentSource
from contactcenter.domain.enums import Channel, IdentityKind, Role
from contactcenter.services import contact_merge

MERGERS = (Role.SUPERVISOR, Role.ADMIN)
ContactId = Annotated[StrictInt, Field(ge=1, le=MAX_ID)]


class MergeBody(Body):
    into_id: ContactId
    from_id: ContactId


class MergeCounts(View):
    """Rows moved from the merged contact to the survivor, per table; *_dropped: the merged
    contact's rows dropped for the survivor's (kept in the snapshot)."""

    identities: int
    conversations: int
    tier_changes: int
    satisfaction_scores: int
    care_sends: int
    consents: int
    care_sends_dropped: int
    consents_dropped: int


class MergeDone(View):
    id: int = Field(description="the merge's id (GET /v1/contacts/{id}/merges lists it)")
    from_id: int
    counts: MergeCounts


class MergedCard(ContactCard):
    """The surviving contact's card, and what the merge did."""

    merged: MergeDone


# the snapshot of the merged contact, as its rows were (PostgreSQL's to_jsonb of each)


class ContactRow(View):
    id: int
    name: str | None
    profile: Profile
    value: float
    computed_tier: int
    pinned_tier: int | None
    tier: int
    tags: list[str]
    fields: Fields
    account_manager_id: int | None
    birthday: date | None
    timezone: str | None
    locale: str | None
    preferred_channel: Channel | None
    created_at: datetime
    updated_at: datetime


class IdentityRow(View):
    kind: IdentityKind
    value: str


class SatisfactionRow(View):
    id: int
    care_send_id: int
    conversation_id: int
    contact_id: int
    agent_id: int | None
    team_id: int | None
    tier: int
    channel: Channel
    score: int
    comment: str | None
    answered_by: Literal["sms", "link"]
    recovery_conversation_id: int | None
    created_at: datetime


class CareSendRow(View):
    id: int
    kind: CareKind
    occasion: str
    contact_id: int
    conversation_id: int | None
    channel: Channel | None
    locale: str | None
    due_at: datetime
    status: CareStatus
    reason: str | None
    message_id: int | None
    sent_at: datetime | None
    attempts: int
    created_at: datetime
    updated_at: datetime
    satisfaction: list[SatisfactionRow]


class ConsentRow(View):
    contact_id: int
    channel: Channel
    granted: bool
    source: ConsentSource
    changed_at: datetime


class Dropped(View):
    care_sends: list[CareSendRow]
    consents: list[ConsentRow]


class MergeSnapshot(View):
    contact: ContactRow
    identities: list[IdentityRow]
    dropped: Dropped


class MergedBy(View):
    id: int | None = Field(description="null once the agent is deleted")
    name: str


class MergeRecord(View):
    id: int
    into_id: int
    from_id: int
    by: MergedBy | None
    merged_at: datetime
    counts: MergeCounts
    from_snapshot: MergeSnapshot


@documented("Merge two contacts", access="readers", body=MergeBody, responses={200: MergedCard})
async def merge_contacts(request: web.Request) -> web.Response:
    """Move everything of from_id to into_id (identities, conversations, care sends,
    satisfaction scores, consents, tier history), delete from_id and record the merge, all at
    once. into_id's attributes win where set; tags are united, fields merged (into's per key),
    and the value is the higher of the two."""
    agent = await require_agent(request, roles=MERGERS)
    body = await read_json(request, MergeBody)
    result = await contact_merge.merge(request.app[CONNS], agent, body.into_id, body.from_id)
    merged = {"id": result.merge_id, "from_id": body.from_id, "counts": result.counts}
    return web.json_response(jsonable({**result.card, "merged": merged}))


@documented("The merges into a contact", access="readers", responses={200: Page[MergeRecord]})
async def list_merges(request: web.Request) -> web.Response:
    """Every merge into the contact, and into the contacts merged into it, the latest first,
    each with a snapshot of the merged contact as it was (all in one page)."""
    await require_agent(request, roles=MERGERS)
    items = await contact_merge.merges_into(request.app[CONNS], path_id(request))
    return web.json_response({"items": jsonable(items), "next_cursor": None})


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/v1/contacts/merge", merge_contacts)
    app.router.add_get("/v1/contacts/{id}/merges", list_merges)
