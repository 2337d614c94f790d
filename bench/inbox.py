"""How fast the inbox lists and opens conversations on a loaded database, against the floor.

Issue 9 asks: inbox list and conversation detail, p50/p99, with 1,000,000 messages in 100,000
conversations and 200 agents; floor = the same queries by bare asyncpg; aim: inbox p99 under
20 ms.

One freshly migrated database is filled set-based (INSERT ... SELECT over generate_series,
random() seeded by `--seed`, so a run is repeatable): `--teams` teams (the default team
counted), `--agents` agents (every 20th a supervisor, each in a team, every 4th in a second
one, capacity CAPACITY), one SLA policy, `--conversations` // 2 contacts (a tier each, mostly
the bottom one; an e-mail identity each, a phone and an e-mail consent for every second one),
`--conversations` conversations over the teams, the channels, the statuses (6 % open, 2 %
pending, 2 % snoozed, the rest resolved or closed: a contact center's history), priorities
(mostly 0), tiers and tags, the active ones created in the last three days, the rest in the
last 90; the active ones assigned up to the agents' capacity (the rest wait in their team's queue),
the others to an agent of their team. `--messages` messages spread evenly over the
conversations (inbound and outbound alternating, a note now and then). SLA rows where the inbox
and the detail read them: every conversation under the policy has its clocks
(conversation_sla, with the state ok, at_risk or breached the inbox filters on, and the nearest
due time the inbox orders by), a breach event for each breached one, and a satisfaction score
for one resolved conversation in ten. Then VACUUM ANALYZE, as autovacuum leaves tables that
have been there a while.

The real web process (`python -m contactcenter serve`, as production runs it, on a free port
of 127.0.0.1) is then asked over real HTTP with the agents' and supervisors' tokens, one
request at a time, `--requests` times each of:

- "mine", "team", "unassigned": GET /v1/inbox?view=... by a random agent (open conversations);
- "all": GET /v1/inbox?view=all by a random supervisor;
- "filtered": GET /v1/inbox with one of FILTERS in turn (views, statuses, channel, tier, SLA
  state, tag; agents and supervisors);
- "next_page": the pages after the first of each team, unassigned, all and filtered request,
  following next_cursor up to `--pages` pages in all;
- "detail": GET /v1/conversations/{id}: a supervisor opening any conversation, or an agent one
  of their teams' active ones, in turn.

"floor": right after each request, the same statements by bare asyncpg from this process (a
pool of the web process's size, without its codecs): the token lookup, then the inbox query as
contactcenter/store/inbox.py build() makes it, run as its list_conversations runs it (in a
transaction, after CUSTOM_PLAN), following its own cursors; or the detail's
statements (store/conversations.py GET and PAST_FOR_CONTACT, store/messages.py AGENT_VIEW,
store/contacts.py GET_CONTACT and LIST_IDENTITIES, store/consents.py FOR_CONTACT and
SMS_OPTED_OUT, store/sla.py VIEW and EVENTS_OF) on one connection, as services/inbox.py runs
them. Product and floor alternate request by request, so a busy moment of a shared machine
falls on both; the first `--warmup` asks are not counted. Each kind reports requests, rows
returned (the product's and the floor's must agree: "rows_match"), p50, p99 and max in ms;
"inbox" pools every inbox list request. `--explain` adds EXPLAIN (ANALYZE, BUFFERS) of the
first ask of each kind and filter.

    python -m bench.inbox [--messages 1000000] [--conversations 100000] [--agents 200]
                          [--requests 1000] [--pages 3] [--teams 10] [--warmup 50] [--seed 1]

Quick: `--messages 20000 --conversations 2000 --agents 20 --requests 50`. BENCH_DATABASE_URL
(an admin URL: the run makes and drops a database of its own) and BENCH_REDIS_URL name servers
to use; without them embedded ones are started and stopped. Nothing is written to Redis. One
JSON object goes to stdout; logs go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import asyncpg

from bench.ingest import (
    POOL_MAX,
    POOL_MIN,
    machine,
    percentile,
    server_arguments,
    servers,
    web_process,
)
from contactcenter.domain.enums import Role
from contactcenter.scratch import scratch_database
from contactcenter.services.agents import hash_token, new_token
from contactcenter.services.inbox import MESSAGES_IN_VIEW
from contactcenter.store import agents as agents_store
from contactcenter.store import consents, contacts, conversations, messages
from contactcenter.store import sla as sla_store
from contactcenter.store.inbox import CUSTOM_PLAN, InboxCursor, InboxQuery, build

logger = logging.getLogger("bench.inbox")

AIM_P99_MS = 20.0
PAGE_SIZE = 25
CAPACITY = 10
SUPERVISOR_EVERY = 20
SECOND_TEAM_EVERY = 4
ACTIVE = ("open", "pending", "snoozed")
INBOX_KINDS = ("mine", "team", "unassigned", "all", "filtered")
# the views whose pages after the first are asked too ("mine" rarely has a second page)
WALKED = ("team", "unassigned", "all", "filtered")
KINDS = (*INBOX_KINDS, "next_page", "detail")

# name -> (who asks, the query's parameters): the filters agents and supervisors use
FILTERS: tuple[tuple[str, Role, dict[str, str]], ...] = (
    (
        "team_open_pending_email",
        Role.AGENT,
        {"view": "team", "status": "open,pending", "channel": "email"},
    ),
    ("all_top_tiers", Role.SUPERVISOR, {"view": "all", "tier": "1,2"}),
    ("all_sla_at_risk_breached", Role.SUPERVISOR, {"view": "all", "sla": "at_risk,breached"}),
    ("agent_all_tag_refund", Role.AGENT, {"view": "all", "tag": "refund"}),
    (
        "unassigned_sms_tier1",
        Role.SUPERVISOR,
        {"view": "unassigned", "channel": "sms", "tier": "1"},
    ),
    ("team_breached_tiers_1_3", Role.AGENT, {"view": "team", "sla": "breached", "tier": "1,2,3"}),
    ("all_resolved_web", Role.SUPERVISOR, {"view": "all", "status": "resolved", "channel": "web"}),
    (
        "all_active_vip_web",
        Role.SUPERVISOR,
        {"view": "all", "status": "open,pending,snoozed", "tag": "vip", "channel": "web"},
    ),
)

# --- the data --------------------------------------------------------------------------------

INSERT_TEAMS = """
INSERT INTO teams (name) SELECT 'Bench team ' || n FROM generate_series(2, $1) AS n
"""
TEAM_IDS = "SELECT id FROM teams ORDER BY id"
INSERT_AGENTS = """
INSERT INTO agents (name, email, role, token_hash, capacity, presence)
SELECT 'Bench agent ' || a.n, 'agent' || a.n || '@bench.example', a.role, a.token_hash, $3,
       'online'
FROM unnest($1::text[], $2::bytea[]) WITH ORDINALITY AS a (role, token_hash, n)
ORDER BY a.n
"""
AGENT_IDS = "SELECT id, email FROM agents"
INSERT_MEMBERS = """
INSERT INTO team_members (team_id, agent_id) SELECT * FROM unnest($1::bigint[], $2::bigint[])
"""
INSERT_POLICY = """
INSERT INTO sla_policies (name, first_response_seconds, resolution_seconds, clock,
                          warning_percent)
VALUES ('bench standard', 3600, 86400, 'calendar', 80)
RETURNING id
"""
# a tier each: 2 % top, 8 % second, 20 % third, the rest the bottom
INSERT_CONTACTS = """
INSERT INTO contacts (id, name, value, computed_tier, tier, created_at, updated_at)
SELECT n, 'Customer ' || n, round((1000000 * r ^ 8)::numeric, 2), t, t,
       now() - interval '400 days', now() - interval '400 days'
FROM (SELECT n, r, CASE WHEN r > 0.98 THEN 1 WHEN r > 0.90 THEN 2 WHEN r > 0.70 THEN 3
                        ELSE 4 END AS t
      FROM (SELECT n, random() AS r FROM generate_series(1, $1) AS n) AS g) AS d
"""
INSERT_IDENTITIES = """
INSERT INTO contact_identities (contact_id, kind, value)
SELECT n, 'email', 'customer' || n || '@bench.example' FROM generate_series(1, $1) AS n
UNION ALL
SELECT n, 'phone', '+1555' || lpad(n::text, 7, '0') FROM generate_series(2, $1, 2) AS n
"""
INSERT_CONSENTS = """
INSERT INTO contact_consents (contact_id, channel, granted, source)
SELECT n, 'email', true, 'import' FROM generate_series(1, $1, 2) AS n
"""
# $1 conversations, $2 contacts, $3 messages, $4 team ids, $5 agent ids (agent k is in team
# k % teams), $6 capacity, $7 the policy
INSERT_CONVERSATIONS = """
WITH draw AS (
    SELECT n, 1 + (n - 1) % $2 AS contact_id, random() AS r_channel, random() AS r_status,
           random() AS r_priority, random() AS r_team, random() AS r_assign,
           random() AS r_agent, random() AS r_age, random() AS r_due, random() AS r_tag,
           random() AS r_policy
    FROM generate_series(1, $1) AS n
), shaped AS (
    SELECT n, contact_id, r_agent, r_due, r_tag, r_policy,
           (ARRAY['web', 'email', 'sms'])[1 + floor(r_channel * 3)::int] AS channel,
           CASE WHEN r_status < 0.06 THEN 'open' WHEN r_status < 0.08 THEN 'pending'
                WHEN r_status < 0.10 THEN 'snoozed' WHEN r_status < 0.70 THEN 'resolved'
                ELSE 'closed' END AS status,
           CASE WHEN r_priority < 0.60 THEN 0
                WHEN r_priority < 0.90 THEN 1 + floor((r_priority - 0.60) * 10)::int
                WHEN r_priority < 0.98 THEN 4 + floor((r_priority - 0.90) * 50)::int
                ELSE least(10, 8 + floor((r_priority - 0.98) * 150)::int) END AS priority,
           floor(r_team * cardinality($4::bigint[]))::int AS team_index,
           r_status < 0.10 AS active,
           r_assign,
           CASE WHEN r_status < 0.10 THEN now() - interval '1 hour' - r_age * interval '3 days'
                ELSE now() - interval '3 days' - r_age * interval '87 days' END AS created_at
    FROM draw
), candidate AS (
    SELECT s.*,
           -- an agent of the conversation's team (agent k is in team k % teams)
           ($5::bigint[])[1 + team_index + cardinality($4::bigint[])
               * floor(r_agent * ((cardinality($5::bigint[]) - 1 - team_index)
                                  / cardinality($4::bigint[]) + 1))::int] AS agent_id
    FROM shaped s
), ranked AS (
    SELECT c.*,
           CASE WHEN NOT active THEN agent_id
                WHEN r_assign < 0.7 AND row_number() OVER (
                    PARTITION BY active AND r_assign < 0.7, agent_id ORDER BY n) <= $6
                THEN agent_id END AS assignee_id
    FROM candidate c
)
INSERT INTO conversations (id, contact_id, channel, status, priority, team_id, assignee_id,
                           subject, waiting_since, team_since, assigned_at, snoozed_until,
                           first_responded_at, resolved_at, last_message_at, created_at,
                           updated_at, tier, tags, sla_policy_id, sla_due_at)
SELECT r.n, r.contact_id, r.channel, r.status, r.priority, ($4::bigint[])[1 + r.team_index],
       r.assignee_id,
       CASE WHEN r.channel = 'email' THEN 'About my order ' || r.n END,
       CASE WHEN r.status = 'open' AND r.assignee_id IS NULL THEN r.created_at END,
       r.created_at,
       CASE WHEN r.assignee_id IS NOT NULL THEN r.created_at + interval '2 minutes' END,
       CASE WHEN r.status = 'snoozed' THEN now() + (1 + r.r_due * 48) * interval '1 hour' END,
       CASE WHEN r.assignee_id IS NOT NULL THEN r.created_at + interval '5 minutes' END,
       CASE WHEN NOT r.active THEN r.created_at + r.r_due * interval '2 days' END,
       r.created_at + (($3::int / $1::int) - CASE WHEN r.n > $3::int % $1::int THEN 1 ELSE 0 END)
                      * interval '1 minute',
       r.created_at, r.created_at, ct.tier,
       CASE WHEN r.r_tag < 0.05 THEN '{refund}' WHEN r.r_tag < 0.08 THEN '{vip}'
            WHEN r.r_tag < 0.09 THEN '{refund,vip}' ELSE '{}' END::text[],
       CASE WHEN r.r_policy < 0.8 THEN $7::bigint END,
       -- the nearest SLA due time of the running clocks: a quarter of them past
       CASE WHEN r.r_policy < 0.8 AND r.active
            THEN now() + (r.r_due * 8 - 2) * interval '1 hour' END
FROM ranked r JOIN contacts ct ON ct.id = r.contact_id
"""
# $1 messages, $2 conversations; message n is the ((n - 1) / conversations)th of conversation
# 1 + (n - 1) % conversations, a minute after the one before
INSERT_MESSAGES = """
INSERT INTO messages (id, conversation_id, direction, is_note, channel, external_id,
                      author_agent_id, body_text, status, sent_at, created_at)
SELECT g.n, c.id,
       CASE WHEN g.k % 2 = 0 THEN 'inbound' ELSE 'outbound' END,
       g.k % 10 = 5,
       c.channel,
       CASE WHEN g.k % 2 = 0 THEN 'bench:' || g.n END,
       CASE WHEN g.k % 2 = 1 THEN c.assignee_id END,
       (ARRAY['Hello, my parcel has not arrived yet. Can you help me find out where it is?',
              'Thank you for writing to us. I have looked up your order and it left our '
              || 'warehouse yesterday; it should reach you within two working days.',
              'I would like a copy of my invoice for October, please.',
              '我的订单还没有到,请帮我查一下物流信息,谢谢',
              'The app crashes when I open my account page. I am on the latest version.',
              'Could you change the delivery address to my office? It is the same city.'])
           [1 + g.n % 6] || ' (#' || g.n || ')',
       CASE WHEN g.k % 2 = 0 THEN 'received' WHEN g.k % 10 = 5 THEN 'sent'
            ELSE 'delivered' END,
       CASE WHEN g.k % 2 = 1 THEN c.created_at + g.k * interval '1 minute' END,
       c.created_at + g.k * interval '1 minute'
FROM (SELECT n, 1 + (n - 1) % $2 AS conversation_id, (n - 1) / $2 AS k
      FROM generate_series(1, $1) AS n) AS g
JOIN conversations c ON c.id = g.conversation_id
"""
# every conversation under the policy has its clocks; the state the inbox filters on follows
# the due time of the running ones, one ended conversation in seven was breached
INSERT_CLOCKS = """
INSERT INTO conversation_sla (conversation_id, policy_id, started_at, last_event_at,
                              first_response_due_at, first_responded_at,
                              first_response_stopped_at, resolution_due_at,
                              resolution_running_since, resolution_breached_at, stopped_at,
                              first_response_time, resolution_time, next_timer_at, state)
SELECT c.id, c.sla_policy_id, c.created_at, c.last_message_at,
       c.created_at + interval '1 hour', c.first_responded_at, c.first_responded_at,
       coalesce(c.sla_due_at, c.created_at + interval '1 day'),
       CASE WHEN c.status = 'open' THEN c.created_at END,
       CASE WHEN c.resolved_at IS NOT NULL AND c.id % 7 = 0 THEN c.resolved_at END,
       c.resolved_at,
       c.first_responded_at - c.created_at, c.resolved_at - c.created_at,
       CASE WHEN c.sla_due_at > now() THEN c.sla_due_at END,
       CASE WHEN c.sla_due_at < now() THEN 'breached'
            WHEN c.sla_due_at < now() + interval '1 hour' THEN 'at_risk'
            WHEN c.sla_due_at IS NULL AND c.id % 7 = 0 THEN 'breached'
            ELSE 'ok' END
FROM conversations c WHERE c.sla_policy_id IS NOT NULL
"""
INSERT_BREACHES = """
INSERT INTO sla_events (conversation_id, policy_id, kind, stage, due_at, fired_at, team_id,
                        assignee_id, tier, channel)
SELECT c.id, c.sla_policy_id, 'first_response', 'breach', s.first_response_due_at,
       s.first_response_due_at + interval '1 second', c.team_id, c.assignee_id, c.tier,
       c.channel
FROM conversation_sla s JOIN conversations c ON c.id = s.conversation_id
WHERE s.state = 'breached'
"""
INSERT_SCORES = """
WITH sends AS (
    INSERT INTO care_sends (kind, occasion, contact_id, conversation_id, channel, due_at,
                            status, sent_at)
    SELECT 'follow_up', 'conversation:' || id, contact_id, id, channel,
           resolved_at + interval '1 day', 'sent', resolved_at + interval '1 day'
    FROM conversations WHERE resolved_at IS NOT NULL AND id % 10 = 0
    RETURNING id, contact_id, conversation_id, sent_at
)
INSERT INTO satisfaction_scores (care_send_id, conversation_id, contact_id, agent_id, team_id,
                                 tier, channel, score, answered_by, created_at)
SELECT s.id, s.conversation_id, s.contact_id, c.assignee_id, c.team_id, c.tier, c.channel,
       1 + s.id % 5, 'link', s.sent_at + interval '1 hour'
FROM sends s JOIN conversations c ON c.id = s.conversation_id
"""
SET_SEQUENCES = """
SELECT setval(pg_get_serial_sequence('contacts', 'id'), (SELECT max(id) FROM contacts)),
       setval(pg_get_serial_sequence('conversations', 'id'), (SELECT max(id) FROM conversations)),
       setval(pg_get_serial_sequence('messages', 'id'), (SELECT max(id) FROM messages))
"""
COUNTS = """
SELECT (SELECT count(*) FROM contacts) AS contacts,
       (SELECT count(*) FROM conversations) AS conversations,
       (SELECT count(*) FROM messages) AS messages,
       (SELECT count(*) FROM agents) AS agents,
       (SELECT count(*) FROM agents WHERE role = 'supervisor') AS supervisors,
       (SELECT count(*) FROM teams) AS teams,
       (SELECT count(*) FROM conversation_sla) AS sla_clocks,
       (SELECT count(*) FROM sla_events) AS sla_events,
       (SELECT count(*) FROM satisfaction_scores) AS satisfaction_scores,
       (SELECT count(*) FROM conversations WHERE assignee_id IS NOT NULL
          AND status IN ('open', 'pending', 'snoozed')) AS active_assigned,
       (SELECT count(*) FROM conversations WHERE waiting_since IS NOT NULL) AS waiting,
       pg_database_size(current_database()) AS database_bytes
"""
BY_STATUS = "SELECT status, count(*) AS n FROM conversations GROUP BY status ORDER BY status"
TARGETS = """
SELECT id, team_id, status IN ('open', 'pending', 'snoozed') AS active FROM conversations
"""


@dataclass(frozen=True)
class BenchAgent:
    id: int
    token: str
    role: Role
    team_ids: tuple[int, ...]

    @property
    def sees_everything(self) -> bool:
        return self.role in (Role.SUPERVISOR, Role.ADMIN)


@dataclass
class Dataset:
    agents: list[BenchAgent]
    # what an agent opens: their teams' active conversations; a supervisor: any
    active_by_team: dict[int, list[int]]
    all_ids: list[int]
    facts: dict[str, Any]


def role_of(index: int, count: int) -> Role:
    """Every SUPERVISOR_EVERY-th agent supervises; a small run still has one (the last)."""
    if index % SUPERVISOR_EVERY == SUPERVISOR_EVERY - 1:
        return Role.SUPERVISOR
    if count < SUPERVISOR_EVERY and index == count - 1:
        return Role.SUPERVISOR
    return Role.AGENT


async def seed_people(conn: asyncpg.Connection, args: argparse.Namespace) -> list[BenchAgent]:
    """The teams, the agents with their tokens, their teams."""
    await conn.execute(INSERT_TEAMS, args.teams)
    team_ids = [r["id"] for r in await conn.fetch(TEAM_IDS)]
    roles = [role_of(k, args.agents) for k in range(args.agents)]
    tokens = [new_token() for _ in range(args.agents)]
    await conn.execute(
        INSERT_AGENTS, [str(r) for r in roles], [hash_token(t) for t in tokens], CAPACITY
    )
    ids = {r["email"]: r["id"] for r in await conn.fetch(AGENT_IDS)}
    agent_ids = [ids[f"agent{k + 1}@bench.example"] for k in range(args.agents)]
    memberships: dict[int, list[int]] = {}
    for k, agent_id in enumerate(agent_ids):
        teams = [team_ids[k % len(team_ids)]]
        if k % SECOND_TEAM_EVERY == SECOND_TEAM_EVERY - 1 and len(team_ids) > 1:
            teams.append(team_ids[(k + 1) % len(team_ids)])
        memberships[agent_id] = sorted(teams)
    pairs = [(t, a) for a, teams in memberships.items() for t in teams]
    await conn.execute(INSERT_MEMBERS, [t for t, _ in pairs], [a for _, a in pairs])
    return [
        BenchAgent(agent_id, token, role, tuple(memberships[agent_id]))
        for agent_id, token, role in zip(agent_ids, tokens, roles, strict=True)
    ]


async def timed(conn: asyncpg.Connection, what: str, sql: str, *args: Any) -> float:
    started = time.perf_counter()
    status = await conn.execute(sql, *args)
    seconds = time.perf_counter() - started
    logger.info("%s: %s in %.1fs", what, status, seconds)
    return seconds


async def seed(database_url: str, args: argparse.Namespace) -> Dataset:
    contact_count = max(1, args.conversations // 2)
    started = time.perf_counter()
    steps: dict[str, float] = {}
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("SET synchronous_commit = off")
        # random() is repeatable from here on: the same --seed, the same data
        await conn.execute("SELECT setseed($1)", (args.seed % 1000) / 1000)
        async with conn.transaction():
            agents = await seed_people(conn, args)
            policy_id = await conn.fetchval(INSERT_POLICY)
            steps["contacts"] = await timed(conn, "contacts", INSERT_CONTACTS, contact_count)
            steps["identities"] = await timed(conn, "identities", INSERT_IDENTITIES, contact_count)
            steps["consents"] = await timed(conn, "consents", INSERT_CONSENTS, contact_count)
            team_ids = [r["id"] for r in await conn.fetch(TEAM_IDS)]
            steps["conversations"] = await timed(
                conn,
                "conversations",
                INSERT_CONVERSATIONS,
                args.conversations,
                contact_count,
                args.messages,
                team_ids,
                [a.id for a in agents],
                CAPACITY,
                policy_id,
            )
            steps["messages"] = await timed(
                conn, "messages", INSERT_MESSAGES, args.messages, args.conversations
            )
            steps["sla_clocks"] = await timed(conn, "sla clocks", INSERT_CLOCKS)
            steps["sla_events"] = await timed(conn, "sla events", INSERT_BREACHES)
            steps["satisfaction"] = await timed(conn, "satisfaction", INSERT_SCORES)
            await conn.execute(SET_SEQUENCES)
        steps["vacuum_analyze"] = await timed(conn, "vacuum", "VACUUM ANALYZE")
        facts = dict(await conn.fetchrow(COUNTS))
        facts["by_status"] = {r["status"]: r["n"] for r in await conn.fetch(BY_STATUS)}
        targets = await conn.fetch(TARGETS)
    finally:
        await conn.close()
    active_by_team: dict[int, list[int]] = defaultdict(list)
    for r in targets:
        if r["active"]:
            active_by_team[r["team_id"]].append(r["id"])
    facts["database_mb"] = round(facts.pop("database_bytes") / 1024**2, 1)
    facts["seed_seconds"] = round(time.perf_counter() - started, 1)
    facts["seed_steps_seconds"] = {k: round(v, 2) for k, v in steps.items()}
    logger.info("seeded in %.1fs: %s", facts["seed_seconds"], facts)
    return Dataset(agents, dict(active_by_team), [r["id"] for r in targets], facts)


# --- what is asked ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Ask:
    kind: str  # one of INBOX_KINDS, or detail
    who: BenchAgent
    params: dict[str, str] = field(default_factory=dict)
    label: str = ""  # the filter's name
    conversation_id: int = 0


def plan(data: Dataset, count: int, rng: random.Random) -> list[Ask]:
    """`count` asks of each kind, interleaved: the same list for the product and the floor."""
    agents = [a for a in data.agents if a.role is Role.AGENT]
    supervisors = [a for a in data.agents if a.role is Role.SUPERVISOR]
    asks: list[Ask] = []
    for n in range(count):
        for view in ("mine", "team", "unassigned"):
            asks.append(Ask(view, rng.choice(agents), {"view": view}))
        asks.append(Ask("all", rng.choice(supervisors), {"view": "all"}))
        label, role, params = FILTERS[n % len(FILTERS)]
        who = rng.choice(agents if role is Role.AGENT else supervisors)
        asks.append(Ask("filtered", who, dict(params), label))
        asks.append(detail_ask(data, n, agents, supervisors, rng))
    return asks


def detail_ask(
    data: Dataset,
    n: int,
    agents: Sequence[BenchAgent],
    supervisors: Sequence[BenchAgent],
    rng: random.Random,
) -> Ask:
    """A supervisor opening any conversation, or an agent one of their teams' active ones."""
    if n % 2 == 0:
        agent = rng.choice(agents)
        mine = [i for t in agent.team_ids for i in data.active_by_team.get(t, [])]
        if mine:
            return Ask("detail", agent, label="agent", conversation_id=rng.choice(mine))
    return Ask(
        "detail",
        rng.choice(supervisors),
        label="supervisor",
        conversation_id=rng.choice(data.all_ids),
    )


def inbox_query(ask: Ask, viewer: asyncpg.Record, after: InboxCursor | None) -> InboxQuery:
    """The query api/inbox.py and services/inbox.py make of the ask's parameters."""
    params = ask.params

    def listed(name: str, default: str = "") -> list[str]:
        return [v for v in params.get(name, default).split(",") if v]

    return InboxQuery(
        viewer_id=viewer["id"],
        viewer_team_ids=tuple(viewer["team_ids"]),
        viewer_sees_everything=viewer["role"] in (Role.SUPERVISOR, Role.ADMIN),
        view=params.get("view", "all"),
        statuses=tuple(listed("status", "open")),
        channel=params.get("channel"),
        limit=PAGE_SIZE,
        after=after,
        tiers=tuple(int(t) for t in listed("tier")),
        sla_states=tuple(listed("sla")),
        tags=tuple(listed("tag")),
    )


# --- one ask, by the product and by the floor ------------------------------------------------


@dataclass
class Page:
    """One request: its kind, its latency in seconds, the rows it returned."""

    kind: str
    label: str
    seconds: float
    rows: int


class Refused(Exception):
    """An answer other than 200."""


async def product_ask(
    session: aiohttp.ClientSession, base_url: str, ask: Ask, pages: int
) -> list[Page]:
    headers = {"Authorization": f"Bearer {ask.who.token}"}
    if ask.kind == "detail":
        url = f"{base_url}/v1/conversations/{ask.conversation_id}"
        seconds, body = await get(session, url, headers)
        return [Page("detail", ask.label, seconds, len(body["messages"]))]
    done: list[Page] = []
    cursor: str | None = None
    for page in range(pages if ask.kind in WALKED else 1):
        query = {**ask.params, "limit": str(PAGE_SIZE)}
        if cursor is not None:
            query["cursor"] = cursor
        seconds, body = await get(session, f"{base_url}/v1/inbox?{urlencode(query)}", headers)
        kind = ask.kind if page == 0 else "next_page"
        done.append(Page(kind, ask.label, seconds, len(body["items"])))
        cursor = body["next_cursor"]
        if cursor is None:
            break
    return done


async def get(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str]
) -> tuple[float, Any]:
    """(seconds from sending the request to the last byte of the answer, the answer)."""
    started = time.perf_counter()
    async with session.get(url, headers=headers) as response:
        raw = await response.read()
    seconds = time.perf_counter() - started
    if response.status != 200:
        raise Refused(f"GET {url}: HTTP {response.status}: {raw[:300]!r}")
    return seconds, json.loads(raw)


async def floor_ask(pool: asyncpg.Pool, ask: Ask, pages: int) -> list[Page]:
    token_hash = hash_token(ask.who.token)
    if ask.kind == "detail":
        started = time.perf_counter()
        viewer = await pool.fetchrow(agents_store.BY_TOKEN_HASH, token_hash)
        assert viewer is not None
        rows = await floor_detail(pool, viewer, ask.conversation_id)
        return [Page("detail", ask.label, time.perf_counter() - started, rows)]
    done: list[Page] = []
    after: InboxCursor | None = None
    for page in range(pages if ask.kind in WALKED else 1):
        started = time.perf_counter()
        viewer = await pool.fetchrow(agents_store.BY_TOKEN_HASH, token_hash)
        assert viewer is not None
        sql, args = build(inbox_query(ask, viewer, after))
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(CUSTOM_PLAN)
            rows = await conn.fetch(sql, *args)
        seconds = time.perf_counter() - started
        kind = ask.kind if page == 0 else "next_page"
        done.append(Page(kind, ask.label, seconds, min(len(rows), PAGE_SIZE)))
        if len(rows) <= PAGE_SIZE:
            break
        last = rows[PAGE_SIZE - 1]
        after = InboxCursor(last["priority"], last["sla_due_at"], last["created_at"], last["id"])
    return done


async def floor_detail(pool: asyncpg.Pool, viewer: asyncpg.Record, conversation_id: int) -> int:
    """services/inbox.py conversation_detail's statements, on one connection; the messages."""
    sees_everything = viewer["role"] in (Role.SUPERVISOR, Role.ADMIN)
    team_ids = list(viewer["team_ids"])
    async with pool.acquire() as conn:
        conversation = await conn.fetchrow(conversations.GET, conversation_id)
        assert conversation is not None
        visible = (
            sees_everything
            or conversation["assignee_id"] == viewer["id"]
            or conversation["team_id"] in team_ids
        )
        assert visible, f"conversation {conversation_id} is not the asker's"
        found = await conn.fetch(messages.AGENT_VIEW, conversation_id, MESSAGES_IN_VIEW)
        contact_id = conversation["contact_id"]
        await conn.fetchrow(contacts.GET_CONTACT, contact_id)
        await conn.fetch(consents.FOR_CONTACT, contact_id)
        await conn.fetchval(consents.SMS_OPTED_OUT, contact_id)
        await conn.fetch(contacts.LIST_IDENTITIES, contact_id)
        await conn.fetch(
            conversations.PAST_FOR_CONTACT,
            contact_id,
            conversation_id,
            sees_everything,
            viewer["id"],
            team_ids,
        )
        if await conn.fetchrow(sla_store.VIEW, conversation_id) is not None:
            await conn.fetch(sla_store.EVENTS_OF, conversation_id)
    return len(found)


# --- the run ---------------------------------------------------------------------------------


@dataclass
class Tally:
    seconds: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    rows: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    by_filter: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    def add(self, pages: list[Page]) -> None:
        for page in pages:
            self.seconds[page.kind].append(page.seconds)
            self.rows[page.kind] += page.rows
            if page.label:
                self.by_filter[f"{page.kind}:{page.label}"].append(page.seconds)

    def summary(self) -> dict[str, Any]:
        inbox = [s for kind in (*INBOX_KINDS, "next_page") for s in self.seconds[kind]]
        return {
            "inbox": latency(inbox),
            **{kind: {**latency(self.seconds[kind]), "rows": self.rows[kind]} for kind in KINDS},
            "by_filter": {name: latency(values) for name, values in sorted(self.by_filter.items())},
        }


def latency(seconds: list[float]) -> dict[str, Any]:
    ordered = sorted(seconds)
    return {
        "requests": len(ordered),
        "p50_ms": round(percentile(ordered, 50) * 1000, 2),
        "p99_ms": round(percentile(ordered, 99) * 1000, 2),
        "max_ms": round((ordered[-1] if ordered else 0.0) * 1000, 2),
    }


async def measure(
    data: Dataset, database_url: str, base_url: str, args: argparse.Namespace
) -> tuple[Tally, Tally]:
    """Each ask by the product, then at once by the floor; the warm-up asks are not counted."""
    rng = random.Random(args.seed)
    warmup = plan(data, max(1, -(-args.warmup // 6)), rng)[: args.warmup]
    asks = plan(data, args.requests, rng)
    product, floor = Tally(), Tally()
    async with (
        asyncpg.create_pool(database_url, min_size=POOL_MIN, max_size=POOL_MAX) as pool,
        aiohttp.ClientSession() as session,
    ):
        for ask in warmup:
            await product_ask(session, base_url, ask, args.pages)
            await floor_ask(pool, ask, args.pages)
        logger.info("%d warm-up asks done; %d asks to measure", len(warmup), len(asks))
        started = time.perf_counter()
        for n, ask in enumerate(asks, 1):
            product.add(await product_ask(session, base_url, ask, args.pages))
            floor.add(await floor_ask(pool, ask, args.pages))
            if n % 1000 == 0:
                logger.info("%d/%d asks in %.0fs", n, len(asks), time.perf_counter() - started)
    return product, floor


async def explain(database_url: str, data: Dataset, rng: random.Random) -> dict[str, Any]:
    """EXPLAIN (ANALYZE, BUFFERS) of one inbox query of each kind and filter (first page)."""
    asks = plan(data, len(FILTERS), rng)
    firsts: dict[str, Ask] = {}
    for ask in asks:
        if ask.kind != "detail":
            firsts.setdefault(f"{ask.kind}:{ask.label}" if ask.label else ask.kind, ask)
    plans: dict[str, Any] = {}
    conn = await asyncpg.connect(database_url)
    try:
        for name, ask in firsts.items():
            viewer = await conn.fetchrow(agents_store.BY_TOKEN_HASH, hash_token(ask.who.token))
            assert viewer is not None
            sql, sql_args = build(inbox_query(ask, viewer, None))
            lines = [r[0] for r in await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql, *sql_args)]
            plans[name] = lines
    finally:
        await conn.close()
    return plans


async def run(args: argparse.Namespace, admin_url: str, redis_url: str, workdir: Path) -> Any:
    async with scratch_database(admin_url, prefix="bench_inbox") as database_url:
        data = await seed(database_url, args)
        async with web_process(database_url, redis_url, workdir / "web.log") as base_url:
            product, floor = await measure(data, database_url, base_url, args)
        plans = (
            await explain(database_url, data, random.Random(args.seed)) if args.explain else None
        )
    return data, product, floor, plans


def ratios(product: dict[str, Any], floor: dict[str, Any]) -> dict[str, Any]:
    """product p99 / floor p99, per kind."""
    return {
        kind: round(product[kind]["p99_ms"] / floor[kind]["p99_ms"], 2)
        if floor[kind]["p99_ms"]
        else None
        for kind in ("inbox", *KINDS)
    }


def report(
    args: argparse.Namespace,
    data: Dataset,
    product: Tally,
    floor: Tally,
    plans: dict[str, Any] | None,
) -> dict[str, Any]:
    mine, base = product.summary(), floor.summary()
    worst = max((*INBOX_KINDS, "next_page"), key=lambda kind: mine[kind]["p99_ms"])
    result: dict[str, Any] = {
        "benchmark": "inbox",
        "date": datetime.now(UTC).date().isoformat(),
        "machine": machine(),
        "data": data.facts,
        "settings": {
            "requests_per_kind": args.requests,
            "pages": args.pages,
            "page_size": PAGE_SIZE,
            "warmup": args.warmup,
            "seed": args.seed,
            "one_request_at_a_time": True,
        },
        "aim_inbox_p99_ms": AIM_P99_MS,
        "inbox_p99_ms": mine["inbox"]["p99_ms"],
        "inbox_met": mine["inbox"]["p99_ms"] < AIM_P99_MS,
        "worst_inbox_kind": {"kind": worst, "p99_ms": mine[worst]["p99_ms"]},
        "rows_match": all(mine[kind]["rows"] == base[kind]["rows"] for kind in KINDS),
        "product": mine,
        "floor": base,
        "p99_ratio": ratios(mine, base),
    }
    if plans is not None:
        result["explain"] = plans
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.inbox", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--messages", type=int, default=1_000_000, help="(default 1,000,000)")
    parser.add_argument("--conversations", type=int, default=100_000, help="(default 100,000)")
    parser.add_argument("--agents", type=int, default=200, help="(default 200)")
    parser.add_argument("--teams", type=int, default=10, help="the default one counted (10)")
    parser.add_argument(
        "--requests", type=int, default=1000, help="asks of each kind (default 1,000)"
    )
    parser.add_argument(
        "--pages", type=int, default=3, help="pages followed per walked ask (default 3)"
    )
    parser.add_argument("--warmup", type=int, default=50, help="asks not counted (default 50)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument(
        "--explain", action="store_true", help="add EXPLAIN ANALYZE of each inbox query"
    )
    server_arguments(parser)
    args = parser.parse_args(argv)
    if args.conversations < 1 or args.messages < args.conversations:
        parser.error("--conversations must be at least 1, --messages at least as many")
    if args.agents < 2 or not 1 <= args.teams <= args.agents:
        parser.error("--agents must be at least 2, --teams from 1 to --agents")
    if args.requests < 1 or args.pages < 1 or args.warmup < 0:
        parser.error("--requests and --pages must be at least 1, --warmup at least 0")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    with (
        tempfile.TemporaryDirectory(prefix="bench-inbox-") as tmp,
        servers(Path(tmp), args.database_url, args.redis_url) as (admin_url, redis_url),
    ):
        data, product, floor, plans = asyncio.run(run(args, admin_url, redis_url, Path(tmp)))
    print(json.dumps(report(args, data, product, floor, plans), indent=2))


if __name__ == "__main__":
    main()
