"""Teams and their agents as admins set them up.

Each change is checked whole before anything is written and written in one transaction. A
change that can give a team more to work with (a capacity raised, skills changed, members
added, a team's strategy or skills changed) asks for its teams' queues to be filled at once.

Locks: a team change that reads other teams (an overflow target, the default) first locks
every team row in id order, so such changes queue behind each other and never deadlock; the
cycle check then reads the overflow graph as the last committed change left it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg

from contactcenter import jobs
from contactcenter.conns import Conns
from contactcenter.db import Connection
from contactcenter.domain.agents import Agent
from contactcenter.domain.audit import AuditAction
from contactcenter.domain.enums import AssignStrategy, Presence, Role
from contactcenter.domain.errors import Conflict, Invalid, NotFound
from contactcenter.domain.identities import normalise_email
from contactcenter.domain.skills import normalise_skills
from contactcenter.services import audit
from contactcenter.services.agents import hash_token, new_token
from contactcenter.store import agents, routing_rules, teams

logger = logging.getLogger(__name__)

TEAM_DEFAULTS: dict[str, Any] = {
    "skills": [],
    "strategy": AssignStrategy.LEAST_LOADED,
    "sticky_wait_seconds": 0,
    "sticky_last_agent": True,
    "overflow_team_id": None,
    "overflow_after_seconds": None,
}
TEAM_FIELDS = ("name", *TEAM_DEFAULTS)
# a change of any of these may let the team's waiting work move: its queue is filled after
FILL_AFTER = tuple(TEAM_DEFAULTS)
AGENT_FIELDS = ("name", "role", "capacity", "channel_capacity", "skills")
DEFAULT_CAPACITY = 5


# ---- teams ----


def _team_not_found() -> NotFound:
    return NotFound("no such team", code="team_not_found")


def _team_exists(error: asyncpg.UniqueViolationError) -> Conflict:
    if error.constraint_name == "teams_one_default":
        return Conflict("the default team changed at the same time; try again")
    return Conflict("a team with that name exists", code="team_exists")


def overflow_cycle(overflows: Mapping[int, int | None], team_id: int) -> list[int] | None:
    """The cycle through `team_id` in the overflow graph (team -> the team it overflows to),
    as the list of teams from `team_id` back to it, or None."""
    path = [team_id]
    current = overflows.get(team_id)
    while current is not None and current not in path:
        path.append(current)
        current = overflows.get(current)
    return [*path, team_id] if current == team_id else None


def _complete_overflow(settings: dict[str, Any]) -> None:
    if (settings["overflow_team_id"] is None) != (settings["overflow_after_seconds"] is None):
        raise Invalid(
            "overflow_team_id and overflow_after_seconds are set together, or neither",
            code="invalid_overflow",
        )


async def _check_overflow(conn: Connection, team_id: int | None, target: int | None) -> None:
    """Call with every team locked (teams.lock_overflows): the target exists, no cycle."""
    if target is None:
        return
    if target == team_id:
        raise Invalid("a team cannot overflow to itself", code="overflow_cycle")
    overflows = await teams.lock_overflows(conn)
    if target not in overflows:
        raise Invalid(f"no team {target} to overflow to", code="unknown_team")
    if team_id is None:
        return  # a new team: nothing points at it yet, so it closes no cycle
    cycle = overflow_cycle({**overflows, team_id: target}, team_id)
    if cycle is not None:
        raise Invalid(
            "this overflow would send work round in a circle",
            code="overflow_cycle",
            details={"cycle": cycle},
        )


async def create_team(
    conns: Conns, values: dict[str, Any], *, by: Agent | None = None
) -> asyncpg.Record:
    settings = {**TEAM_DEFAULTS, **{k: values[k] for k in TEAM_FIELDS if k in values}}
    settings["skills"] = list(normalise_skills(settings["skills"]))
    _complete_overflow(settings)
    try:
        async with conns.db.acquire() as conn, conn.transaction():
            if settings["overflow_team_id"] is not None or values.get("is_default"):
                await teams.lock_overflows(conn)
            await _check_overflow(conn, None, settings["overflow_team_id"])
            team_id = await teams.insert(conn, **settings)
            if values.get("is_default"):
                await teams.make_default(conn, team_id)
            row = await teams.view(conn, team_id)
            await audit.record(conn, by, AuditAction.CREATE, "team", team_id, after=row)
    except asyncpg.UniqueViolationError as error:
        raise _team_exists(error) from None
    assert row is not None
    logger.info("team created", extra={"team_id": team_id})
    return row


def _merge_team(stored: asyncpg.Record, changes: dict[str, Any]) -> dict[str, Any]:
    settings = {k: stored[k] for k in TEAM_FIELDS}
    settings.update({k: changes[k] for k in TEAM_FIELDS if k in changes})
    if "skills" in changes:
        settings["skills"] = list(normalise_skills(changes["skills"]))
    if changes.get("overflow_team_id", ...) is None and "overflow_after_seconds" not in changes:
        settings["overflow_after_seconds"] = None  # no overflow: no wait before it either
    _complete_overflow(settings)
    return settings


async def update_team(
    conns: Conns, team_id: int, changes: dict[str, Any], *, by: Agent | None = None
) -> asyncpg.Record:
    wanted_default = changes.get("is_default")
    try:
        async with conns.db.acquire() as conn, conn.transaction():
            if changes.get("overflow_team_id") is not None or wanted_default:
                await teams.lock_overflows(conn)
            stored = await teams.get_for_update(conn, team_id)
            if stored is None:
                raise _team_not_found()
            before = await teams.view(conn, team_id)
            settings = _merge_team(stored, changes)
            if settings["overflow_team_id"] != stored["overflow_team_id"]:
                await _check_overflow(conn, team_id, settings["overflow_team_id"])
            if wanted_default is False and stored["is_default"]:
                raise Conflict(
                    "a team must be the default: make another team the default instead",
                    code="default_team",
                )
            await teams.update(conn, team_id, **settings)
            if wanted_default and not stored["is_default"]:
                await teams.make_default(conn, team_id)
            row = await teams.view(conn, team_id)
            await audit.record(
                conn, by, AuditAction.UPDATE, "team", team_id, before=before, after=row
            )
    except asyncpg.UniqueViolationError as error:
        raise _team_exists(error) from None
    assert row is not None
    logger.info("team changed", extra={"team_id": team_id})
    if any(settings[k] != stored[k] for k in FILL_AFTER):
        await jobs.enqueue_assign_waiting(conns, [team_id])
    return row


async def delete_team(conns: Conns, team_id: int, *, by: Agent | None = None) -> None:
    try:
        async with conns.db.acquire() as conn, conn.transaction():
            stored = await teams.get_for_update(conn, team_id)
            if stored is None:
                raise _team_not_found()
            if stored["is_default"]:
                raise Conflict(
                    "the default team cannot be deleted: make another team the default first",
                    code="default_team",
                )
            await _refuse_team_in_use(conn, team_id)
            before = await teams.view(conn, team_id)
            await teams.delete(conn, team_id)
            await audit.record(conn, by, AuditAction.DELETE, "team", team_id, before=before)
    except (asyncpg.ForeignKeyViolationError, asyncpg.CheckViolationError):
        # a conversation routed to it, or a team set to overflow to it, at the same moment
        raise Conflict("the team is in use", code="team_in_use") from None
    logger.info("team deleted", extra={"team_id": team_id})


async def _refuse_team_in_use(conn: Connection, team_id: int) -> None:
    rule_ids = await routing_rules.referencing(conn, team_id=team_id)
    overflow_from = await teams.overflowing_into(conn, team_id)
    has_conversations = await teams.has_conversations(conn, team_id)
    if rule_ids or overflow_from or has_conversations:
        raise Conflict(
            "the team is in use: by conversations, routing rules or other teams' overflow",
            code="team_in_use",
            details={
                "conversations": has_conversations,
                "rule_ids": rule_ids,
                "overflow_from": overflow_from,
            },
        )


async def replace_members(
    conns: Conns, team_id: int, agent_ids: list[int], *, by: Agent | None = None
) -> asyncpg.Record:
    wanted = sorted(set(agent_ids))
    try:
        async with conns.db.acquire() as conn, conn.transaction():
            if await teams.get_for_update(conn, team_id) is None:
                raise _team_not_found()
            _refuse_unknown(wanted, await agents.existing(conn, wanted), "unknown_agent")
            before = await teams.view(conn, team_id)
            await teams.replace_members(conn, team_id, wanted)
            row = await teams.view(conn, team_id)
            await audit.record(
                conn, by, AuditAction.UPDATE, "team", team_id, before=before, after=row
            )
    except asyncpg.ForeignKeyViolationError:  # an agent removed at the same moment
        raise Invalid("an agent is unknown", code="unknown_agent") from None
    assert before is not None and row is not None
    logger.info("team members replaced", extra={"team_id": team_id, "members": len(wanted)})
    if set(wanted) - set(before["agent_ids"]):
        await jobs.enqueue_assign_waiting(conns, [team_id])
    return row


def _refuse_unknown(wanted: list[int], found: set[int], code: str) -> None:
    missing = [i for i in wanted if i not in found]
    if missing:
        kind = "agent" if code == "unknown_agent" else "team"
        raise Invalid(f"no such {kind}: {missing[:20]}", code=code, details={"ids": missing[:100]})


# ---- agents ----


@dataclass(frozen=True)
class NewAgent:
    view: asyncpg.Record
    token: str  # shown once, stored only as a hash


def _channel_capacity(raw: Mapping[str, int | None]) -> dict[str, int]:
    # a channel's limit above the total is allowed: the total still bounds the agent, so a
    # per-channel limit only ever lowers what that channel may take
    return {channel: limit for channel, limit in raw.items() if limit is not None}


async def create_agent(
    conns: Conns, values: dict[str, Any], *, by: Agent | None = None
) -> NewAgent:
    email = normalise_email(values["email"])
    skills = list(normalise_skills(values.get("skills") or ()))
    team_ids = values.get("team_ids")
    token = new_token()
    try:
        async with conns.db.acquire() as conn, conn.transaction():
            if team_ids is None:  # like `contactcenter create-agent`: the default team
                default = await teams.default_team_id(conn)
                team_ids = [] if default is None else [default]
            team_ids = sorted(set(team_ids))
            _refuse_unknown(team_ids, await teams.existing(conn, team_ids), "unknown_team")
            agent_id = await agents.insert_with_routing(
                conn,
                name=values["name"],
                email=email,
                role=values["role"],
                token_hash=hash_token(token),
                capacity=values.get("capacity", DEFAULT_CAPACITY),
                channel_capacity=_channel_capacity(values.get("channel_capacity") or {}),
                skills=skills,
            )
            await agents.replace_teams(conn, agent_id, team_ids)
            row = await agents.view(conn, agent_id)
            await audit.record(conn, by, AuditAction.CREATE, "agent", agent_id, after=row)
    except asyncpg.UniqueViolationError:
        raise Conflict(f"an agent with e-mail {email} exists", code="agent_exists") from None
    except asyncpg.ForeignKeyViolationError:  # a team deleted at the same moment
        raise Invalid("a team is unknown", code="unknown_team") from None
    assert row is not None
    logger.info("agent created", extra={"agent_id": agent_id, "role": values["role"]})
    return NewAgent(row, token)


def _adds_capacity(before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    """Whether the change can let the agent take work they could not take before."""
    if after["capacity"] > before["capacity"] or set(after["skills"]) != set(before["skills"]):
        return True
    old, new = before["channel_capacity"], after["channel_capacity"]
    for channel in old.keys() | new.keys():
        # no per-channel limit: only the total bounds the channel
        if channel in old and (channel not in new or new[channel] > old[channel]):
            return True
    return False


async def update_agent(
    conns: Conns, agent_id: int, changes: dict[str, Any], *, by: Agent | None = None
) -> asyncpg.Record:
    demoting = changes.get("role", Role.ADMIN) != Role.ADMIN
    try:
        async with conns.db.acquire() as conn, conn.transaction():
            stored, admin_ids = await agents.lock_for_change(conn, agent_id, with_admins=demoting)
            if stored is None:
                raise NotFound("no such agent", code="agent_not_found")
            if demoting and admin_ids == [agent_id]:
                raise Conflict("this is the last admin", code="last_admin")
            before = await agents.view(conn, agent_id)
            settings = {k: stored[k] for k in AGENT_FIELDS}
            settings.update({k: changes[k] for k in AGENT_FIELDS if k in changes})
            settings["skills"] = list(normalise_skills(settings["skills"]))
            settings["channel_capacity"] = _channel_capacity(settings["channel_capacity"])
            await agents.update_settings(conn, agent_id, **settings)
            teams_before = set(await agents.team_ids(conn, agent_id))
            if changes.get("team_ids") is not None:
                wanted = sorted(set(changes["team_ids"]))
                _refuse_unknown(wanted, await teams.existing(conn, wanted), "unknown_team")
                await agents.replace_teams(conn, agent_id, wanted)
            row = await agents.view(conn, agent_id)
            await audit.record(
                conn, by, AuditAction.UPDATE, "agent", agent_id, before=before, after=row
            )
    except asyncpg.ForeignKeyViolationError:
        raise Invalid("a team is unknown", code="unknown_team") from None
    assert row is not None
    logger.info("agent changed", extra={"agent_id": agent_id})
    joined = set(row["team_ids"]) - teams_before
    if stored["presence"] == Presence.ONLINE and (joined or _adds_capacity(stored, settings)):
        await jobs.enqueue_assign_waiting(conns, list(row["team_ids"]))
    return row
