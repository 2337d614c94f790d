"""/v1/admin/routing-rules: ordered routing rules (admins write, supervisors read, agents
get 403) and the dry run, POST /v1/admin/routing-rules/test, which evaluates them on a sample
and touches nothing (so supervisors may run it too).

Rules are few, so the list is not paginated: it is every rule, in evaluation order. The models
here refuse bad shapes (422 validation_error, with the fields); the service then refuses a bad
regular expression (invalid_regex) and ids that do not exist (unknown_team, ...), with the
path of the offending value.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import asyncpg
from aiohttp import web
from pydantic import (
    AfterValidator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    model_validator,
)

from contactcenter.api.auth import require_agent
from contactcenter.api.keys import CONNS
from contactcenter.api.openapi import Page, View, documented
from contactcenter.api.parsing import Body, CleanStr, DateTimeText, Patch, path_id, read_json
from contactcenter.api.serialize import jsonable
from contactcenter.domain import rules as domain
from contactcenter.domain.enums import Channel, Role
from contactcenter.services import routing_rules as service
from contactcenter.services.routing_rules import DryRun, RuleDraft, SampleContact, SampleMessage

READERS = (Role.SUPERVISOR, Role.ADMIN)
WRITERS = (Role.ADMIN,)
MAX_RULES_IN_TEST = 20
# a dry run's sample is a message: as long as a message may be
MAX_SAMPLE_TEXT = 10_000
# regular expressions a dry run may compile and run: each costs up to ~25 ms of this process
MAX_REGEXES_IN_TEST = 100
# sample times the calendars can place
EARLIEST_SAMPLE = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_SAMPLE = datetime(2200, 1, 1, tzinfo=UTC)


def _one_line(value: str) -> str:
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValueError("must be one line without control characters")
    if not value.strip():
        raise ValueError("must not be blank")
    return value.strip()


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


Id = Annotated[StrictInt, Field(ge=1, le=domain.MAX_ID)]
Name = Annotated[CleanStr, Field(min_length=1, max_length=100), AfterValidator(_one_line)]
Tag = Annotated[CleanStr, AfterValidator(domain.normalise_tag)]
Skill = Annotated[StrictStr, AfterValidator(domain.normalise_skill)]
Language = Annotated[StrictStr, AfterValidator(domain.normalise_language)]
Keyword = Annotated[
    CleanStr, Field(min_length=1, max_length=domain.MAX_KEYWORD_CHARS), AfterValidator(_not_blank)
]
Regex = Annotated[
    CleanStr, Field(min_length=1, max_length=domain.MAX_REGEX_CHARS), AfterValidator(_not_blank)
]
FieldValue = (
    Annotated[CleanStr, Field(max_length=domain.MAX_FIELD_VALUE_CHARS)]
    | StrictInt
    | Annotated[StrictFloat, Field(allow_inf_nan=False)]
    | StrictBool
)


def _in() -> Any:
    return Field(alias="in", min_length=1, max_length=domain.MAX_VALUES)


def _exactly_one(model: Body, names: tuple[str, str]) -> None:
    given = [name for name in names if getattr(model, name) is not None]
    if len(given) != 1:
        raise ValueError(f"give exactly one of {names[0]} and {names[1]}")


# ---- conditions (each may say "not": true)


class _Condition(Body):
    negate: StrictBool = Field(False, alias="not")


class ChannelCondition(_Condition):
    type: Literal["channel"]
    values: list[Channel] = _in()


class MailboxCondition(_Condition):
    type: Literal["mailbox"]
    values: list[Id] = _in()


class SmsNumberCondition(_Condition):
    type: Literal["sms_number"]
    values: list[Id] = _in()


class TierCondition(_Condition):
    type: Literal["tier"]
    values: list[Annotated[StrictInt, Field(ge=1, le=4)]] = _in()


class LanguageCondition(_Condition):
    type: Literal["language"]
    values: list[Language] = _in()


class ContactTagCondition(_Condition):
    type: Literal["contact_tag"]
    any: list[Tag] | None = Field(None, min_length=1, max_length=domain.MAX_VALUES)
    all: list[Tag] | None = Field(None, min_length=1, max_length=domain.MAX_VALUES)

    @model_validator(mode="after")
    def _one(self) -> ContactTagCondition:
        _exactly_one(self, ("any", "all"))
        return self


class ContactFieldCondition(_Condition):
    type: Literal["contact_field"]
    field: Annotated[CleanStr, Field(min_length=1, max_length=domain.MAX_FIELD_NAME_CHARS)]
    values: list[FieldValue] | None = Field(
        None, alias="in", min_length=1, max_length=domain.MAX_VALUES
    )
    present: StrictBool | None = None

    @model_validator(mode="after")
    def _one(self) -> ContactFieldCondition:
        _exactly_one(self, ("values", "present"))
        return self


class TextCondition(_Condition):
    type: Literal["subject", "text"]
    keywords: list[Keyword] | None = Field(None, min_length=1, max_length=domain.MAX_KEYWORDS)
    regex: Regex | None = None

    @model_validator(mode="after")
    def _one(self) -> TextCondition:
        _exactly_one(self, ("keywords", "regex"))
        return self


class BusinessHoursCondition(_Condition):
    type: Literal["business_hours"]
    inside: StrictBool
    calendar_id: Id | None = None


Condition = Annotated[
    ChannelCondition
    | MailboxCondition
    | SmsNumberCondition
    | TierCondition
    | LanguageCondition
    | ContactTagCondition
    | ContactFieldCondition
    | TextCondition
    | BusinessHoursCondition,
    Field(discriminator="type"),
]


class Conditions(Body):
    match: Literal["all", "any"] = "all"
    conditions: list[Condition] = Field(default_factory=list, max_length=domain.MAX_CONDITIONS)


# ---- actions


class TeamAction(Body):
    type: Literal["team"]
    team_id: Id


class PriorityAction(Body):
    type: Literal["priority"]
    value: Annotated[StrictInt, Field(ge=0, le=domain.MAX_PRIORITY)]


class SlaPolicyAction(Body):
    type: Literal["sla_policy"]
    sla_policy_id: Id


class TagsAction(Body):
    type: Literal["tags"]
    add: list[Tag] = Field(min_length=1, max_length=domain.MAX_VALUES)


class SkillsAction(Body):
    type: Literal["skills"]
    require: list[Skill] = Field(min_length=1, max_length=domain.MAX_VALUES)


class FlagAction(Body):
    type: Literal["account_manager", "complaint", "stop"]


class AutoReplyAction(Body):
    type: Literal["auto_reply"]
    text: Annotated[
        CleanStr,
        Field(min_length=1, max_length=domain.MAX_AUTO_REPLY_CHARS),
        AfterValidator(_not_blank),
    ]


Action = Annotated[
    TeamAction
    | PriorityAction
    | SlaPolicyAction
    | TagsAction
    | SkillsAction
    | FlagAction
    | AutoReplyAction,
    Field(discriminator="type"),
]
Actions = Annotated[list[Action], Field(min_length=1, max_length=len(domain.ActionType))]


# ---- bodies


class RulePatch(Patch):
    # every field of a rule holds a value
    not_null = ("name", "enabled", "position", "conditions", "actions")

    name: Name | None = None
    enabled: StrictBool | None = None
    # 1-based; past the end puts the rule last
    position: Annotated[StrictInt, Field(ge=1, le=2**31 - 1)] | None = None
    conditions: Conditions | None = None
    actions: Actions | None = None


class RuleBody(RulePatch):
    name: Name
    enabled: StrictBool = True
    conditions: Conditions
    actions: Actions


class OrderBody(Body):
    ids: list[Id] = Field(max_length=10_000)


class SampleMessageBody(Body):
    channel: Channel
    text: Annotated[CleanStr, Field(max_length=MAX_SAMPLE_TEXT)]
    subject: Annotated[CleanStr, Field(max_length=1000)] | None = None
    mailbox_id: Id | None = None
    sms_number_id: Id | None = None
    # RFC 3339 with an offset; default now
    at: DateTimeText | None = None

    @model_validator(mode="after")
    def _a_time_calendars_know(self) -> SampleMessageBody:
        if self.at is not None and not EARLIEST_SAMPLE <= self.at < LATEST_SAMPLE:
            raise ValueError("at must be between 1970 and 2200")
        return self


class SampleContactBody(Body):
    tier: Annotated[StrictInt, Field(ge=1, le=4)] = 4
    tags: list[Tag] = Field(default_factory=list, max_length=domain.MAX_VALUES)
    fields: dict[str, Any] = Field(default_factory=dict)


class DryRunBody(Body):
    message: SampleMessageBody
    contact: SampleContactBody | None = None
    contact_id: Id | None = None
    # when given, these are tested instead of the saved rules (in the order given; a draft's
    # position is not used)
    rules: list[RuleBody] | None = Field(None, max_length=MAX_RULES_IN_TEST)

    @model_validator(mode="after")
    def _one_contact(self) -> DryRunBody:
        if self.contact is not None and self.contact_id is not None:
            raise ValueError("give contact or contact_id, not both")
        regexes = sum(
            1
            for rule in self.rules or ()
            for condition in rule.conditions.conditions
            if isinstance(condition, TextCondition) and condition.regex is not None
        )
        if regexes > MAX_REGEXES_IN_TEST:
            raise ValueError(f"at most {MAX_REGEXES_IN_TEST} regular expressions in one dry run")
        return self


# ---- what is answered


class RuleView(View):
    id: int
    name: str
    # 1-based place in evaluation order
    position: int
    enabled: bool
    # as they were saved: the shapes the request bodies take
    conditions: Conditions
    actions: list[Action]
    created_at: datetime
    updated_at: datetime


class MatchedRuleView(View):
    """A saved rule that matched."""

    id: int
    name: str


class MatchedDraftView(View):
    """A draft rule that matched: its place in the list tested, from 0."""

    id: None
    index: int
    name: str


class DryRunOutcomeView(View):
    """What the matched rules decided; null or empty where no rule said anything."""

    team_id: int | None
    priority: int | None
    sla_policy_id: int | None
    tags: list[str]
    skills: list[str]
    to_account_manager: bool
    complaint: bool
    auto_reply: str | None
    auto_reply_rule_id: int | None = Field(
        description="the saved rule whose auto-reply it is (null when drafts were tested)"
    )
    auto_reply_rule_index: int | None = Field(
        None,
        description="only when drafts were tested: the index (from 0) of the draft whose "
        "auto-reply it is",
    )


class DryRunRouteView(View):
    """Where a new conversation would go: the rules' outcome with the default team and the
    tier's SLA policy."""

    team_id: int | None
    team_source: Literal["rule", "current", "default"]
    priority: int
    tier: int
    sla_policy_id: int | None
    sla_policy_source: Literal["rule", "tier"] | None
    tags: list[str]
    required_skills: list[str]
    complaint: bool
    to_account_manager: bool


class DryRunFactsView(View):
    at: datetime
    tier: int
    # the primary language subtag detected from subject and text; null if unknown
    language: str | None
    inside_business_hours: dict[str, bool] = Field(
        description="whether `at` is inside each calendar the rules read, by calendar id; "
        '"default" is the default calendar'
    )


class DryRunView(View):
    matched: list[MatchedRuleView | MatchedDraftView]
    outcome: DryRunOutcomeView
    route: DryRunRouteView
    facts: DryRunFactsView


def _conditions_json(conditions: Conditions) -> dict[str, Any]:
    return dict(conditions.model_dump(mode="json", by_alias=True, exclude_none=True))


def _actions_json(actions: list[Any]) -> list[dict[str, Any]]:
    return [dict(a.model_dump(mode="json", by_alias=True, exclude_none=True)) for a in actions]


def _draft(body: RuleBody) -> RuleDraft:
    return RuleDraft(
        name=body.name,
        enabled=body.enabled,
        conditions=_conditions_json(body.conditions),
        actions=_actions_json(body.actions),
    )


def _view(row: asyncpg.Record) -> dict[str, Any]:
    return dict(jsonable(dict(row)))


# ---- handlers


@documented(
    "List routing rules, in evaluation order", access="readers", responses={200: Page[RuleView]}
)
async def list_rules(request: web.Request) -> web.Response:
    """Every rule, in the order they are evaluated (not paginated: next_cursor is null)."""
    await require_agent(request, roles=READERS)
    rows = await service.list_rules(request.app[CONNS])
    return web.json_response({"items": [_view(r) for r in rows], "next_cursor": None})


@documented("Create a routing rule", access="admin", body=RuleBody, responses={201: RuleView})
async def create_rule(request: web.Request) -> web.Response:
    """Insert a rule at `position` (left out, or past the end: last)."""
    by = await require_agent(request, roles=WRITERS)
    body = await read_json(request, RuleBody)
    row = await service.create_rule(request.app[CONNS], _draft(body), body.position, by=by)
    return web.json_response(_view(row), status=201)


@documented("A routing rule", access="readers", responses={200: RuleView})
async def get_rule(request: web.Request) -> web.Response:
    """One rule, with its place in evaluation order."""
    await require_agent(request, roles=READERS)
    row = await service.get_rule(request.app[CONNS], path_id(request))
    return web.json_response(_view(row))


@documented("Change a routing rule", access="admin", body=RulePatch, responses={200: RuleView})
async def update_rule(request: web.Request) -> web.Response:
    """Change what is sent (a field left out keeps its value); the rule is checked whole."""
    by = await require_agent(request, roles=WRITERS)
    rule_id = path_id(request)
    body = await read_json(request, RulePatch)
    changes: dict[str, Any] = {
        name: getattr(body, name)
        for name in ("name", "enabled", "position")
        if name in body.model_fields_set
    }
    if body.conditions is not None:
        changes["conditions"] = _conditions_json(body.conditions)
    if body.actions is not None:
        changes["actions"] = _actions_json(body.actions)
    row = await service.update_rule(request.app[CONNS], rule_id, changes, by=by)
    return web.json_response(_view(row))


@documented("Delete a routing rule", access="admin", responses={204: None})
async def delete_rule(request: web.Request) -> web.Response:
    """Delete a rule; the rules after it move up."""
    by = await require_agent(request, roles=WRITERS)
    await service.delete_rule(request.app[CONNS], path_id(request), by=by)
    return web.Response(status=204)


@documented(
    "Put the routing rules in a new order",
    access="admin",
    body=OrderBody,
    responses={200: Page[RuleView]},
)
async def reorder_rules(request: web.Request) -> web.Response:
    """The ids of every rule, each once, in the new order; answers every rule in that order."""
    by = await require_agent(request, roles=WRITERS)
    body = await read_json(request, OrderBody)
    rows = await service.reorder(request.app[CONNS], body.ids, by=by)
    return web.json_response({"items": [_view(r) for r in rows], "next_cursor": None})


@documented(
    "Dry-run the routing rules on a sample message",
    access="readers",
    body=DryRunBody,
    responses={200: DryRunView},
)
async def test_rules(request: web.Request) -> web.Response:
    """What the saved rules (or the drafts in `rules`, instead) would decide for a new
    conversation with this message from this contact; changes nothing."""
    await require_agent(request, roles=READERS)
    body = await read_json(request, DryRunBody)
    message = SampleMessage(**body.message.model_dump())
    contact = None
    if body.contact is not None:
        contact = SampleContact(
            tier=body.contact.tier, tags=tuple(body.contact.tags), fields=body.contact.fields
        )
    result = await service.dry_run(
        request.app[CONNS],
        message,
        contact=contact,
        contact_id=body.contact_id,
        drafts=None if body.rules is None else [_draft(r) for r in body.rules],
    )
    return web.json_response(_dry_run_view(result))


def _dry_run_view(result: DryRun) -> dict[str, Any]:
    outcome = result.outcome

    def rule_ref(rule_id: int) -> dict[str, Any]:
        """A saved rule by its id; a draft by its index in the list tested (from 0)."""
        return {"id": None, "index": rule_id - 1} if result.drafts else {"id": rule_id}

    inside = {
        "default" if key is None else str(key): value
        for key, value in result.facts.open_calendars.items()
    }
    return {
        "matched": [{**rule_ref(m.id), "name": m.name} for m in outcome.matched],
        "outcome": {
            "team_id": outcome.team_id,
            "priority": outcome.priority,
            "sla_policy_id": outcome.sla_policy_id,
            "tags": list(outcome.tags),
            "skills": list(outcome.skills),
            "to_account_manager": outcome.to_account_manager,
            "complaint": outcome.complaint,
            "auto_reply": outcome.auto_reply,
            **_auto_reply_rule(result),
        },
        "route": jsonable(dataclasses.asdict(result.route)),
        "facts": {
            "at": result.facts.at.isoformat(),
            "tier": result.facts.tier,
            "language": result.facts.language,
            "inside_business_hours": inside,
        },
    }


def _auto_reply_rule(result: DryRun) -> dict[str, Any]:
    rule_id = result.outcome.auto_reply_rule_id
    if not result.drafts:
        return {"auto_reply_rule_id": rule_id}
    return {
        "auto_reply_rule_id": None,
        "auto_reply_rule_index": None if rule_id is None else rule_id - 1,
    }


def setup_routes(app: web.Application) -> None:
    # before /{id}, which would take "order" or "test" for an id
    app.router.add_put("/v1/admin/routing-rules/order", reorder_rules)
    app.router.add_post("/v1/admin/routing-rules/test", test_rules)
    app.router.add_get("/v1/admin/routing-rules", list_rules)
    app.router.add_post("/v1/admin/routing-rules", create_rule)
    app.router.add_get("/v1/admin/routing-rules/{id}", get_rule)
    app.router.add_patch("/v1/admin/routing-rules/{id}", update_rule)
    app.router.add_delete("/v1/admin/routing-rules/{id}", delete_rule)
