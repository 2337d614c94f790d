"""`up --demo`: two teams, three agents, an admin, a routing rule and a platinum customer,
ready to try by hand."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from decimal import Decimal

from contactcenter.clock import utc_now
from contactcenter.db import Connection, Pool
from contactcenter.domain.enums import IdentityKind, Presence, Role, SlaClock, TierChangeReason
from contactcenter.domain.messages import Identity
from contactcenter.domain.sla_policies import Escalation, SlaPolicy
from contactcenter.services import agents, tiers
from contactcenter.store import agents as agents_store
from contactcenter.store import contacts, locks, routing_rules, sla_policies, teams
from contactcenter.store import tiers as tiers_store

DEMO_TEAM = "Support"
CARE_TEAM = "Care"
DEMO_AGENTS = (
    ("Alice Chen", "alice@demo.example", Role.AGENT, DEMO_TEAM),
    ("Bob Li", "bob@demo.example", Role.AGENT, DEMO_TEAM),
    ("Carol Wu", "carol@demo.example", Role.AGENT, CARE_TEAM),
    ("Ada Admin", "admin@demo.example", Role.ADMIN, DEMO_TEAM),
)
COMPLAINTS_RULE = "Complaints go to Care, first"
# every tier's default in the demo, short enough to watch: a chat nobody answers within a
# minute is breached, raised to priority 9 and moved to Care
DEMO_POLICY = SlaPolicy(
    id=0,
    name="Answer within a minute",
    first_response=timedelta(minutes=1),
    next_response=timedelta(minutes=5),
    resolution=timedelta(hours=1),
    clock=SlaClock.CALENDAR,
    warning_percent=50,
    description="the demo's standard: short enough to watch a breach escalate",
)
# Wang Fang is worth 250,000 a year: pinned to the top tier, so the demo shows it even with
# one customer (by shares, the top 1 % of one customer is nobody)
SAMPLE_VALUE = Decimal("250000")
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
        care_id = await teams.ensure(conn, CARE_TEAM)
        name, identities = SAMPLE_CUSTOMER
        if await contacts.find_by_identities(conn, identities) is None:
            contact_id = await contacts.create(conn, name)
            await contacts.add_identities(conn, contact_id, identities)
            await _make_platinum(conn, contact_id)
        if not any(r["name"] == COMPLAINTS_RULE for r in await routing_rules.list_all(conn)):
            await routing_rules.insert_at(
                conn,
                1,
                name=COMPLAINTS_RULE,
                enabled=True,
                conditions={
                    "match": "any",
                    "conditions": [
                        {"type": "text", "keywords": ["complaint", "refund", "投诉", "退款"]},
                        {"type": "subject", "keywords": ["complaint", "投诉"]},
                    ],
                },
                actions=[
                    {"type": "team", "team_id": care_id},
                    {"type": "priority", "value": 5},
                    {"type": "complaint"},
                    {"type": "tags", "add": ["complaint"]},
                    {
                        "type": "auto_reply",
                        "text": "We are sorry to hear that, $name. A senior agent is on it.",
                    },
                ],
            )
        await _seed_sla_policy(conn, care_id)
        team_ids = {DEMO_TEAM: team_id, CARE_TEAM: care_id}

    tokens: dict[str, str] = {}
    for name, email, role, team in DEMO_AGENTS:
        created = await agents.rotate_token(db, email)
        if created is None:
            created = await agents.create_agent(
                db, name=name, email=email, role=role, team_name=team, capacity=3
            )
        async with db.acquire() as conn:
            await agents_store.join_team(conn, team_ids[team], created.id)
            if role is Role.AGENT:
                await agents_store.set_presence(conn, created.id, Presence.ONLINE, utc_now())
        tokens[email] = created.token
    return DemoTokens(tokens)


async def _seed_sla_policy(conn: Connection, care_id: int) -> None:
    """The demo policy, every tier's default (left alone once it exists)."""
    if any(r["name"] == DEMO_POLICY.name for r in await sla_policies.list_all(conn)):
        return
    escalation = Escalation(raise_priority_to=9, team_id=care_id)
    row = await sla_policies.insert(conn, replace(DEMO_POLICY, escalation=escalation))
    await conn.execute("UPDATE tiers SET sla_policy_id = $1", row["id"])


async def _make_platinum(conn: Connection, contact_id: int) -> None:
    now = utc_now()
    await locks.tier_change(conn)
    await tiers.set_values(conn, {contact_id: SAMPLE_VALUE}, now)
    row = await tiers_store.lock_contact(conn, contact_id)
    assert row is not None
    in_force = await tiers_store.set_tiers(conn, contact_id, row["computed_tier"], 1, now)
    await tiers_store.record_change(
        conn, contact_id, row["tier"], in_force, TierChangeReason.PIN, {"note": "demo"}, now
    )
