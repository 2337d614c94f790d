"""Agents: creation with a one-time token, authentication, presence."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

import asyncpg

from contactcenter import events
from contactcenter.conns import Conns
from contactcenter.db import Pool
from contactcenter.domain.agents import Agent
from contactcenter.domain.audit import AuditAction
from contactcenter.domain.enums import Presence, Role
from contactcenter.domain.errors import Conflict, Invalid
from contactcenter.domain.identities import normalise_email
from contactcenter.services import assignment, audit
from contactcenter.store import agents, teams

TOKEN_PREFIX = "cc_"
MAX_CAPACITY = 1000


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> bytes:
    """Tokens carry 256 random bits, so one SHA-256 is as strong as a slow hash would be."""
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True)
class CreatedAgent:
    id: int
    token: str  # shown once, never stored


async def create_agent(
    db: Pool,
    *,
    name: str,
    email: str,
    role: Role,
    team_name: str | None = None,
    capacity: int = 5,
) -> CreatedAgent:
    if not name.strip():
        raise Invalid("name must not be empty", code="invalid_name")
    if not 0 <= capacity <= MAX_CAPACITY:
        raise Invalid(f"capacity must be 0 to {MAX_CAPACITY}", code="invalid_capacity")
    email = normalise_email(email)
    token = new_token()
    async with db.acquire() as conn, conn.transaction():
        if team_name is None:
            team_id = await teams.default_team_id(conn)
        else:
            team_id = await teams.id_by_name(conn, team_name)
            if team_id is None:
                raise Invalid(f"no team named {team_name!r}", code="unknown_team")
        try:
            row = await agents.insert(conn, name.strip(), email, role, hash_token(token), capacity)
        except asyncpg.UniqueViolationError:
            raise Conflict(f"an agent with e-mail {email} exists", code="agent_exists") from None
        if team_id is not None:
            await agents.join_team(conn, team_id, row["id"])
        await audit.record(conn, None, AuditAction.CREATE, "agent", row["id"], after=row)
    return CreatedAgent(row["id"], token)


async def rotate_token(db: Pool, email: str) -> CreatedAgent | None:
    token = new_token()
    async with db.acquire() as conn, conn.transaction():
        row = await agents.set_token_by_email(conn, normalise_email(email), hash_token(token))
        if row is not None:  # that it happened, never the token or its hash
            after = {"token_rotated": True}
            await audit.record(conn, None, AuditAction.OTHER, "agent", row["id"], after=after)
    return None if row is None else CreatedAgent(row["id"], token)


async def authenticate(db: Pool, token: str) -> Agent | None:
    if not token.startswith(TOKEN_PREFIX):
        return None
    row = await agents.by_token_hash(db, hash_token(token))
    if row is None:
        return None
    return Agent(
        id=row["id"],
        name=row["name"],
        email=row["email"],
        role=Role(row["role"]),
        team_ids=tuple(row["team_ids"]),
    )


async def set_presence(conns: Conns, agent: Agent, presence: Presence) -> None:
    async with conns.db.acquire() as conn:
        await agents.set_presence(conn, agent.id, presence, conns.clock())
    if presence is Presence.ONLINE:
        # an agent who comes online takes the work waiting for them at once
        await assignment.fill_for_agent(conns, agent.id)
    for team_id in agent.team_ids:
        await events.publish_agent_event(
            conns,
            "agent.presence_changed",
            conversation_id=None,
            team_id=team_id,
            assignee_id=None,
            data={"agent_id": agent.id, "presence": presence},
        )
