"""`up --demo`: a team, two agents, an admin and a sample customer, ready to try by hand."""

from __future__ import annotations

from dataclasses import dataclass

from contactcenter.clock import utc_now
from contactcenter.db import Pool
from contactcenter.domain.enums import IdentityKind, Presence, Role
from contactcenter.domain.messages import Identity
from contactcenter.services import agents
from contactcenter.store import agents as agents_store
from contactcenter.store import contacts, teams

DEMO_TEAM = "Support"
DEMO_AGENTS = (
    ("Alice Chen", "alice@demo.example", Role.AGENT),
    ("Bob Li", "bob@demo.example", Role.AGENT),
    ("Ada Admin", "admin@demo.example", Role.ADMIN),
)
SAMPLE_CUSTOMER = (
    "Wang Fang",
    (
        Identity(IdentityKind.EMAIL, "wang.fang@example.com"),
        Identity(IdentityKind.PHONE, "+8613800138000"),
    ),
)


@dataclass(frozen=True)
class DemoTokens:
    by_email: dict[str, str]


async def seed(db: Pool) -> DemoTokens:
    """Idempotent: a second run finds everything and only issues fresh tokens."""
    async with db.acquire() as conn, conn.transaction():
        team_id = await teams.ensure(conn, DEMO_TEAM)
        # new conversations go to the demo team
        await teams.make_default(conn, team_id)
        name, identities = SAMPLE_CUSTOMER
        if await contacts.find_by_identities(conn, identities) is None:
            contact_id = await contacts.create(conn, name)
            await contacts.add_identities(conn, contact_id, identities)

    tokens: dict[str, str] = {}
    for name, email, role in DEMO_AGENTS:
        created = await agents.rotate_token(db, email)
        if created is None:
            created = await agents.create_agent(
                db, name=name, email=email, role=role, team_name=DEMO_TEAM, capacity=3
            )
        async with db.acquire() as conn:
            await agents_store.join_team(conn, team_id, created.id)
            if role is Role.AGENT:
                await agents_store.set_presence(conn, created.id, Presence.ONLINE, utc_now())
        tokens[email] = created.token
    return DemoTokens(tokens)
