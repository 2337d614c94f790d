"""/v1/contacts/{id}: the contact card, and what supervisors and admins change on it.

PATCH takes any of name, value, tags, fields and account_manager_id. The value is a decimal
(a JSON number or a string, up to 14 digits before the point and 2 after) and comes back as a
string; tags replace the contact's tags; fields are merged key by key (null removes a key).

What care reads, each cleared by null: birthday ("YYYY-MM-DD", from 1900 to today by the
request's clock: invalid_birthday), timezone (IANA: invalid_timezone), locale (a language with
an optional region, normalised: "zh_cn" -> "zh-CN"; invalid_locale), preferred_channel (email,
sms or web: invalid_channel); and consent, by channel ({"email": true, "sms": false, "web":
null}: granted, withdrawn, never asked; a channel left out keeps its consent; another key is
invalid_channel).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from aiohttp import web
from pydantic import (
    AfterValidator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    StringConstraints,
)

from contactcenter.api.auth import require_agent
from contactcenter.api.keys import CONNS
from contactcenter.api.openapi import View, documented, left_out
from contactcenter.api.parsing import MAX_ID, CleanStr, Patch, path_id, read_json
from contactcenter.api.serialize import jsonable
from contactcenter.domain.care import check_timezone
from contactcenter.domain.contacts import (
    ConsentSource,
    check_channel,
    check_consents,
    check_fields,
    normalise_locale,
    normalise_tags,
    parse_birthday,
)
from contactcenter.domain.enums import Channel, IdentityKind, Role
from contactcenter.domain.tiers import parse_value
from contactcenter.services import contacts
from contactcenter.services.contacts import ContactChanges

EDITORS = (Role.SUPERVISOR, Role.ADMIN)
# attributes that always hold something: null is refused (send [] or {} to empty them)
NOT_NULL = ("value", "tags", "fields", "consent")


def _one_line(value: str) -> str:
    if not value.isprintable():
        raise ValueError("must be one line without control characters")
    return value


Name = Annotated[
    CleanStr,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_one_line),
]


class ContactPatch(Patch):
    not_null = NOT_NULL

    name: Name | None = None
    value: StrictInt | StrictFloat | StrictStr | None = None
    # checked and normalised by domain.contacts (codes invalid_tag, too_many_tags ...)
    tags: Annotated[list[StrictStr], Field(max_length=500)] | None = None
    fields: dict[str, Any] | None = None
    account_manager_id: Annotated[StrictInt, Field(ge=1, le=MAX_ID)] | None = None
    # care: strings checked by domain.contacts, so each refusal has its code (invalid_birthday
    # ...) rather than validation_error
    birthday: StrictStr | None = None
    timezone: StrictStr | None = None
    locale: StrictStr | None = None
    preferred_channel: StrictStr | None = None
    consent: dict[StrictStr, StrictBool | None] | None = None


TierRank = Annotated[int, Field(ge=1, le=4)]
FieldName = Annotated[str, Field(pattern=r"^[a-z0-9_]{1,64}$")]  # domain.contacts.FIELD_KEY
# a contact's own fields are flat: a string, a number or a boolean per name
Fields = dict[FieldName, str | int | float | bool]


class Claimed(View):
    email: str = left_out()
    phone: str = left_out()


class Profile(View):
    claimed: Claimed = left_out()


class ContactTier(View):
    rank: TierRank
    label: str


class AccountManager(View):
    id: int
    name: str


class Consent(View):
    granted: bool = Field(description="true: granted; false: withdrawn")
    source: ConsentSource
    changed_at: datetime


class Consents(View):
    """Per channel; null: never asked."""

    email: Consent | None
    sms: Consent | None
    web: Consent | None


class LastSatisfaction(View):
    score: Annotated[int, Field(ge=1, le=5)]
    comment: str | None
    conversation_id: int
    at: datetime


class IdentityView(View):
    kind: IdentityKind
    value: str
    created_at: datetime


class ContactCard(View):
    """The contact card (store.contacts.get_card)."""

    id: int
    name: str | None
    profile: Profile = Field(
        description="what the customer typed but nothing proved (claimed: a web visitor's "
        "e-mail or phone): shown to agents, never used to find the customer"
    )
    value: str = Field(
        pattern=r"^[0-9]{1,14}\.[0-9]{2}$", description="what the customer is worth, a decimal"
    )
    tier: ContactTier
    pinned: bool = Field(description="an admin pinned the tier; a change of value keeps it")
    tags: list[str]
    fields: Fields
    account_manager: AccountManager | None
    birthday: date | None
    timezone: str | None
    locale: str | None
    preferred_channel: Channel | None
    consent: Consents
    sms_opted_out: bool = Field(
        description="one of the contact's numbers opted out of SMS (STOP); care never texts it"
    )
    last_satisfaction: LastSatisfaction | None
    identities: list[IdentityView]
    created_at: datetime
    updated_at: datetime


def _changes(body: ContactPatch) -> ContactChanges:
    """Everything checked before anything is written (domain errors carry their codes)."""
    return ContactChanges(
        given=frozenset(body.model_fields_set),
        name=body.name,
        value=None if body.value is None else parse_value(body.value),
        tags=None if body.tags is None else normalise_tags(body.tags),
        fields={} if body.fields is None else check_fields(body.fields),
        account_manager_id=body.account_manager_id,
        birthday=None if body.birthday is None else parse_birthday(body.birthday),
        timezone=None if body.timezone is None else check_timezone(body.timezone),
        locale=None if body.locale is None else normalise_locale(body.locale),
        preferred_channel=(
            None if body.preferred_channel is None else check_channel(body.preferred_channel)
        ),
        consents={} if body.consent is None else check_consents(body.consent),
    )


@documented("A contact card", access="any", responses={200: ContactCard})
async def get_contact(request: web.Request) -> web.Response:
    """Supervisors and admins see every contact; an agent sees a contact whose conversations
    they may see (any other is contact_not_found)."""
    agent = await require_agent(request)
    card = await contacts.card(request.app[CONNS], agent, path_id(request))
    return web.json_response(jsonable(card))


@documented("Change a contact", access="readers", body=ContactPatch, responses={200: ContactCard})
async def patch_contact(request: web.Request) -> web.Response:
    """Change any of name, value, tags, fields, account manager, and what care reads
    (birthday, time zone, locale, preferred channel, consent per channel), all or nothing; the
    answer is the new card. A new value moves the contact's tier unless it is pinned."""
    await require_agent(request, roles=EDITORS)
    contact_id = path_id(request)
    changes = _changes(await read_json(request, ContactPatch))
    card = await contacts.update(request.app[CONNS], contact_id, changes)
    return web.json_response(jsonable(card))


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/v1/contacts/{id}", get_contact)
    app.router.add_patch("/v1/contacts/{id}", patch_contact)
