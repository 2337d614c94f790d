"""Routing rules: saving them (validated whole, positions kept dense), evaluating them for the
route job, and the dry run that evaluates them on a sample and touches nothing.

A rule is checked before anything is written: its shape and expressions by
domain.rules.parse_rule, then every id it names against the database (held FOR SHARE until the
rule is written, so a team or calendar cannot vanish in between). Writes that move positions
take locks.routing_rules first, so two admins creating rules at once get positions 1..n.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from contactcenter.conns import Conns
from contactcenter.db import Connection, Executor
from contactcenter.domain.agents import Agent
from contactcenter.domain.audit import AuditAction
from contactcenter.domain.business_hours import is_open
from contactcenter.domain.errors import DomainError, Invalid, NotFound
from contactcenter.domain.language import detect_language
from contactcenter.domain.routing import RouteDecision, decide_route
from contactcenter.domain.rules import RoutingFacts, Rule, RulesOutcome, evaluate, parse_rule
from contactcenter.services import audit
from contactcenter.store import business_hours, contacts, locks, routing_rules, sla_policies, teams

logger = logging.getLogger(__name__)
ENTITY = "routing_rule"

# what each kind of id a rule names is called in an error code
UNKNOWN = {
    "teams": ("unknown_team", "no such team"),
    "sla_policies": ("unknown_sla_policy", "no such SLA policy"),
    "mailboxes": ("unknown_mailbox", "no such mailbox"),
    "sms_numbers": ("unknown_sms_number", "no such SMS number"),
    "calendars": ("unknown_business_hours", "no such business-hours calendar"),
}


@dataclass(frozen=True)
class RuleDraft:
    """A rule as an admin writes it (the API's model, dumped to JSON)."""

    name: str
    conditions: dict[str, Any]
    actions: list[dict[str, Any]]
    enabled: bool = True


def _not_found() -> NotFound:
    return NotFound("no such routing rule", code="rule_not_found")


def _parse(draft: RuleDraft, *, rule_id: int = 0, position: int = 1) -> Rule:
    return parse_rule(
        id=rule_id,
        name=draft.name,
        position=position,
        enabled=draft.enabled,
        conditions=draft.conditions,
        actions=draft.actions,
    )


async def check_references(conn: Executor, rule: Rule, *, lock: bool) -> None:
    """Invalid (422) with the path of the first id the rule names that does not exist."""
    refs = rule.references
    named: dict[str, Sequence[tuple[Any, str]]] = {
        "teams": refs.teams,
        "sla_policies": refs.sla_policies,
        "mailboxes": refs.mailboxes,
        "sms_numbers": refs.sms_numbers,
        "calendars": [(i, path) for i, path in refs.calendars if i is not None],
    }
    for kind, items in named.items():
        if not items:
            continue
        found = await routing_rules.existing(conn, kind, [i for i, _ in items], lock=lock)
        for value, path in items:
            if value not in found:
                code, message = UNKNOWN[kind]
                raise Invalid(f"{message}: {value}", code=code, details={"path": path})
    default_paths = [path for i, path in refs.calendars if i is None]
    if default_paths and await routing_rules.default_calendar_id(conn, lock=lock) is None:
        raise Invalid(
            "no calendar is the default: name one with calendar_id, or make one the default",
            code="no_default_business_hours",
            details={"path": default_paths[0]},
        )


async def _checked(conn: Connection, draft: RuleDraft) -> None:
    await check_references(conn, _parse(draft), lock=True)


# ---- reading and writing


async def list_rules(conns: Conns) -> list[asyncpg.Record]:
    return await routing_rules.list_all(conns.db)


async def get_rule(conns: Conns, rule_id: int) -> asyncpg.Record:
    row = await routing_rules.get(conns.db, rule_id)
    if row is None:
        raise _not_found()
    return row


async def create_rule(
    conns: Conns, draft: RuleDraft, position: int | None, *, by: Agent | None = None
) -> asyncpg.Record:
    """Insert at `position` (1-based; past the end, or None: last)."""
    _parse(draft)  # refuse a bad rule before taking any lock
    async with conns.db.acquire() as conn, conn.transaction():
        await locks.routing_rules(conn)
        await _checked(conn, draft)
        last = await routing_rules.count(conn) + 1
        row = await routing_rules.insert_at(
            conn,
            min(position or last, last),
            name=draft.name,
            enabled=draft.enabled,
            conditions=draft.conditions,
            actions=draft.actions,
        )
        await audit.record(conn, by, AuditAction.CREATE, ENTITY, row["id"], after=row)
    logger.info("routing rule created", extra={"rule_id": row["id"]})
    return row


async def update_rule(
    conns: Conns, rule_id: int, changes: Mapping[str, Any], *, by: Agent | None = None
) -> asyncpg.Record:
    """Change name, enabled, conditions, actions and position (past the end: last); the rule
    is checked whole, as it will be after the change."""
    async with conns.db.acquire() as conn, conn.transaction():
        await locks.routing_rules(conn)
        row = await routing_rules.get_for_update(conn, rule_id)
        if row is None:
            raise _not_found()
        draft = RuleDraft(
            name=changes.get("name", row["name"]),
            enabled=changes.get("enabled", row["enabled"]),
            conditions=changes.get("conditions", row["conditions"]),
            actions=changes.get("actions", row["actions"]),
        )
        await _checked(conn, draft)
        position = changes.get("position")
        if position is not None:
            new = min(position, await routing_rules.count(conn))
            await routing_rules.move(conn, rule_id, row["position"], new)
        updated = await routing_rules.update(
            conn,
            rule_id,
            name=draft.name,
            enabled=draft.enabled,
            conditions=draft.conditions,
            actions=draft.actions,
        )
        assert updated is not None  # locked above
        await audit.record(conn, by, AuditAction.UPDATE, ENTITY, rule_id, before=row, after=updated)
    logger.info("routing rule changed", extra={"rule_id": rule_id})
    return updated


async def delete_rule(conns: Conns, rule_id: int, *, by: Agent | None = None) -> None:
    async with conns.db.acquire() as conn, conn.transaction():
        await locks.routing_rules(conn)
        stored = await routing_rules.get_for_update(conn, rule_id)
        if stored is None or not await routing_rules.delete(conn, rule_id):
            raise _not_found()
        await audit.record(conn, by, AuditAction.DELETE, ENTITY, rule_id, before=stored)
    logger.info("routing rule deleted", extra={"rule_id": rule_id})


async def reorder(conns: Conns, ids: list[int], *, by: Agent | None = None) -> list[asyncpg.Record]:
    """Put the rules in the order given, which must name every rule exactly once."""
    async with conns.db.acquire() as conn, conn.transaction():
        await locks.routing_rules(conn)
        current = await routing_rules.ids_in_order(conn)
        if len(ids) != len(set(ids)) or set(ids) != set(current):
            raise Invalid(
                "the order must list every rule exactly once",
                code="order_mismatch",
                details={
                    "missing": sorted(set(current) - set(ids)),
                    "unknown": sorted(set(ids) - set(current)),
                    "repeated": sorted({i for i in ids if ids.count(i) > 1}),
                },
            )
        await routing_rules.reorder(conn, ids)
        order = {"before": {"order": current}, "after": {"order": ids}}
        await audit.record(conn, by, AuditAction.OTHER, "routing_rule_order", None, **order)
        rows = await routing_rules.list_all(conn)
    logger.info("routing rules reordered", extra={"count": len(ids)})
    return rows


# ---- evaluating


def parse_row(row: Mapping[str, Any]) -> Rule:
    return parse_rule(
        id=row["id"],
        name=row["name"],
        position=row["position"],
        enabled=row["enabled"],
        conditions=row["conditions"],
        actions=row["actions"],
    )


def _parse_rows(rows: Sequence[Mapping[str, Any]]) -> list[Rule]:
    rules = []
    for row in rows:
        try:
            rules.append(parse_row(row))
        except DomainError as error:
            # only a hand-edited row can get here (the API checks every rule it saves);
            # routing goes on without it rather than stop for everyone
            logger.error("routing rule skipped", extra={"rule_id": row["id"], "code": error.code})
    return rules


async def open_calendars(
    conn: Executor, rules: Sequence[Rule], at: datetime
) -> dict[int | None, bool]:
    """Whether `at` is inside each calendar the rules read; unknown calendars are left out."""
    wanted = sorted({c for rule in rules for c in rule.calendars}, key=lambda c: c or 0)
    found: dict[int | None, bool] = {}
    for calendar_id in wanted:
        calendar = await business_hours.load(conn, calendar_id)
        if calendar is not None:
            found[calendar_id] = is_open(calendar, at)
    return found


async def _evaluate(
    conn: Executor, rules: Sequence[Rule], facts: RoutingFacts
) -> tuple[RulesOutcome, RoutingFacts]:
    calendars = await open_calendars(conn, rules, facts.at)
    facts = dataclasses.replace(facts, open_calendars={**facts.open_calendars, **calendars})
    return evaluate(rules, facts), facts


# rules parsed by this process: id -> (row version, rule). Parsing fifty rules (and compiling
# their regular expressions) took longer than the rest of a route job. Only the version last
# seen is kept, so the cache holds at most the rules there are.
_parsed: dict[int, tuple[str, Rule]] = {}


async def enabled_rules(conn: Executor) -> list[Rule]:
    """The enabled rules in evaluation order, as they are in PostgreSQL now: their versions
    are read every time (a change is seen at once by every process), their text only when a
    version is new to this process."""
    versions = await routing_rules.enabled_versions(conn)
    missing = [r["id"] for r in versions if _parsed.get(r["id"], ("",))[0] != r["version"]]
    if missing:
        for row in await routing_rules.by_ids(conn, missing):
            # a rule changed between the two reads is taken as it is now
            for rule in _parse_rows([row]):
                _parsed[rule.id] = (row["version"], rule)
        gone = _parsed.keys() - {r["id"] for r in versions}
        for rule_id in gone:
            del _parsed[rule_id]
    return [_parsed[r["id"]][1] for r in versions if r["id"] in _parsed]


async def evaluate_for(conn: Executor, facts: RoutingFacts) -> RulesOutcome:
    """The enabled rules' outcome for `facts` (the route job's call), with the calendars the
    rules read judged at facts.at."""
    outcome, _ = await _evaluate(conn, await enabled_rules(conn), facts)
    return outcome


# ---- the dry run


@dataclass(frozen=True)
class SampleMessage:
    channel: str
    text: str
    subject: str | None = None
    mailbox_id: int | None = None
    sms_number_id: int | None = None
    at: datetime | None = None


@dataclass(frozen=True)
class SampleContact:
    tier: int = 4
    tags: tuple[str, ...] = ()
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DryRun:
    rules: tuple[Rule, ...]
    outcome: RulesOutcome
    route: RouteDecision
    facts: RoutingFacts
    # drafts were tested (their ids are their places in the list, from 1), not saved rules
    drafts: bool


def _draft_rules(drafts: Sequence[RuleDraft]) -> list[Rule]:
    rules = []
    for i, draft in enumerate(drafts):
        try:
            rules.append(_parse(draft, rule_id=i + 1, position=i + 1))
        except DomainError as error:
            raise _in_draft(error, i) from None
    return rules


def _in_draft(error: DomainError, index: int) -> Invalid:
    details = dict(error.details)
    if "path" in details:
        details["path"] = f"rules[{index}].{details['path']}"
    return Invalid(error.message, code=error.code, details=details)


async def _sample_contact(
    conn: Executor, contact: SampleContact | None, contact_id: int | None
) -> SampleContact:
    if contact_id is None:
        return contact or SampleContact()
    row = await contacts.routing_facts(conn, contact_id)
    if row is None:
        raise Invalid("no such contact", code="unknown_contact", details={"path": "contact_id"})
    return SampleContact(tier=row["tier"], tags=tuple(row["tags"]), fields=dict(row["fields"]))


async def dry_run(
    conns: Conns,
    message: SampleMessage,
    *,
    contact: SampleContact | None = None,
    contact_id: int | None = None,
    drafts: Sequence[RuleDraft] | None = None,
) -> DryRun:
    """What the rules (the saved ones, or `drafts` instead) would decide for a new
    conversation with this message from this contact. Read-only: it runs in a READ ONLY
    transaction, so PostgreSQL itself refuses any write, and it enqueues nothing."""
    draft_rules = None if drafts is None else _draft_rules(drafts)
    at = message.at or conns.clock()
    language = detect_language(
        f"{message.subject}\n{message.text}" if message.subject else message.text
    )
    async with conns.db.acquire() as conn, conn.transaction(readonly=True):
        if draft_rules is None:
            rules = _parse_rows(await routing_rules.list_enabled(conn))
        else:
            rules = draft_rules
            for i, rule in enumerate(rules):
                try:
                    await check_references(conn, rule, lock=False)
                except DomainError as error:
                    raise _in_draft(error, i) from None
        sample = await _sample_contact(conn, contact, contact_id)
        facts = RoutingFacts(
            channel=message.channel,
            mailbox_id=message.mailbox_id,
            sms_number_id=message.sms_number_id,
            tier=sample.tier,
            contact_tags=sample.tags,
            contact_fields=sample.fields,
            subject=message.subject,
            text=message.text,
            language=language,
            at=at,
        )
        outcome, facts = await _evaluate(conn, rules, facts)
        default_team_id = await teams.default_team_id(conn)
        tier_policy = await sla_policies.default_for_tier(conn, sample.tier)
    route = decide_route(
        outcome,
        tier=sample.tier,
        current_team_id=None,
        current_priority=0,
        default_team_id=default_team_id,
        tier_sla_policy_id=None if tier_policy is None else tier_policy.id,
    )
    return DryRun(tuple(rules), outcome, route, facts, drafts=draft_rules is not None)
