"""SLA policies: validated whole before anything is written, one transaction each.

What a policy names (its calendar, its escalation team) is checked inside the transaction and
held FOR SHARE until the policy is written, so it cannot vanish in between (the foreign keys
would refuse it anyway; this gives the 422 its code). A policy in use is not deleted: not
while a routing rule names it, a tier has it as its default, or an open, pending or snoozed
conversation is held to it. Resolved and closed conversations lose the reference (the
foreign key sets it null); their history (due times, events) stays.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg

from contactcenter.conns import Conns
from contactcenter.db import Connection
from contactcenter.domain.agents import Agent
from contactcenter.domain.audit import AuditAction
from contactcenter.domain.errors import Conflict, Invalid, NotFound
from contactcenter.domain.sla_policies import SlaPolicy, apply_changes, draft
from contactcenter.services import audit
from contactcenter.store import routing_rules, sla_policies

logger = logging.getLogger(__name__)
ENTITY = "sla_policy"

# a foreign key a concurrent delete broke after our check: the same answer as the check
_FOREIGN_KEYS = {
    "sla_policies_business_hours_id_fkey": (
        "unknown_business_hours",
        "no such business-hours calendar",
        "business_hours_id",
    ),
    "sla_policies_escalation_team_id_fkey": ("unknown_team", "no such team", "escalation.team_id"),
}


def _not_found() -> NotFound:
    return NotFound("no such SLA policy", code="sla_policy_not_found")


def _exists() -> Conflict:
    return Conflict("an SLA policy with that name exists", code="sla_policy_exists")


def _unknown(constraint: str | None) -> Invalid:
    code, message, field = _FOREIGN_KEYS.get(
        constraint or "", ("validation_error", "something the policy names does not exist", "")
    )
    return Invalid(message, code=code, details={"field": field} if field else {})


async def _check_references(conn: Connection, policy: SlaPolicy) -> None:
    if policy.business_hours_id is not None:
        found = await routing_rules.existing(
            conn, "calendars", [policy.business_hours_id], lock=True
        )
        if not found:
            raise Invalid(
                f"no such business-hours calendar: {policy.business_hours_id}",
                code="unknown_business_hours",
                details={"field": "business_hours_id"},
            )
    team_id = policy.escalation.team_id
    if team_id is not None and not await routing_rules.existing(
        conn, "teams", [team_id], lock=True
    ):
        raise Invalid(
            f"no such team: {team_id}",
            code="unknown_team",
            details={"field": "escalation.team_id"},
        )


async def create(
    conns: Conns, values: dict[str, Any], *, by: Agent | None = None
) -> asyncpg.Record:
    policy = draft(values)
    try:
        async with conns.db.acquire() as conn, conn.transaction():
            await _check_references(conn, policy)
            row = await sla_policies.insert(conn, policy)
            await audit.record(conn, by, AuditAction.CREATE, ENTITY, row["id"], after=row)
    except asyncpg.UniqueViolationError:
        raise _exists() from None
    except asyncpg.ForeignKeyViolationError as error:
        raise _unknown(error.constraint_name) from None
    logger.info("sla policy created", extra={"sla_policy_id": row["id"]})
    return row


async def update(
    conns: Conns, policy_id: int, changes: dict[str, Any], *, by: Agent | None = None
) -> asyncpg.Record:
    try:
        async with conns.db.acquire() as conn, conn.transaction():
            stored = await sla_policies.get_for_update(conn, policy_id)
            if stored is None:
                raise _not_found()
            policy = apply_changes(sla_policies.policy_from_row(stored), changes)
            await _check_references(conn, policy)
            row = await sla_policies.update(conn, policy)
            assert row is not None  # locked above
            await audit.record(
                conn, by, AuditAction.UPDATE, ENTITY, policy_id, before=stored, after=row
            )
    except asyncpg.UniqueViolationError:
        raise _exists() from None
    except asyncpg.ForeignKeyViolationError as error:
        raise _unknown(error.constraint_name) from None
    logger.info("sla policy changed", extra={"sla_policy_id": policy_id})
    return row


async def delete(conns: Conns, policy_id: int, *, by: Agent | None = None) -> None:
    try:
        async with conns.db.acquire() as conn, conn.transaction():
            stored = await sla_policies.get_for_update(conn, policy_id)
            if stored is None:
                raise _not_found()
            await _refuse_in_use(conn, policy_id)
            await sla_policies.delete(conn, policy_id)
            await audit.record(conn, by, AuditAction.DELETE, ENTITY, policy_id, before=stored)
    except asyncpg.ForeignKeyViolationError:  # something named it at the same moment
        raise Conflict("something uses this SLA policy", code="sla_policy_in_use") from None
    logger.info("sla policy deleted", extra={"sla_policy_id": policy_id})


async def _refuse_in_use(conn: Connection, policy_id: int) -> None:
    rule_ids = await routing_rules.referencing(conn, sla_policy_id=policy_id)
    tier_ranks = await sla_policies.tiers_using(conn, policy_id)
    conversations = await sla_policies.active_conversations_using(conn, policy_id)
    if rule_ids or tier_ranks or conversations:
        raise Conflict(
            "the SLA policy is in use: by routing rules, tiers' defaults or open conversations",
            code="sla_policy_in_use",
            details={
                "rule_ids": rule_ids,
                "tier_ranks": tier_ranks,
                "open_conversations": conversations,
            },
        )
