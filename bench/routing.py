"""How long the route job takes per conversation, with rules, against the floor beneath it.

One freshly migrated database: 4 teams of 5 agents each (room for everyone), customers of
every tier, and `--rules` routing rules of every kind (keywords in English and Chinese,
regular expressions, tiers, languages, tags, business hours; most do not match, as in life).
`--conversations` web conversations are ingested (their route jobs are left in Redis, no
worker runs), then routed one after another in this process by the product's own
`route_conversation` — rules evaluated, queued, assigned, explained — and timed one by one.

The floor: the same writes by bare asyncpg in one transaction per conversation — lock the
conversation, queue it in its team, lock the team's agents, count their loads, assign it to
the least loaded, touch the agent — with no rules, language or explanation.

    python -m bench.routing [--conversations 2000] [--rules 50]

BENCH_DATABASE_URL (an admin URL: the run makes and drops a database of its own) and
BENCH_REDIS_URL name servers to use; without them embedded ones are started and stopped.
One JSON object goes to stdout; logs go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from arq.connections import ArqRedis

from bench.ingest import machine, server_arguments, servers
from contactcenter import db
from contactcenter.conns import Conns, create_redis
from contactcenter.domain import language
from contactcenter.domain.enums import Channel, IdentityKind
from contactcenter.domain.messages import Identity, InboundMessage
from contactcenter.scratch import scratch_database
from contactcenter.services import routing
from contactcenter.services.ingest import ingest
from contactcenter.settings import Settings

logger = logging.getLogger("bench.routing")

TEAMS = 4
AGENTS_PER_TEAM = 5
TEXTS = (
    "Where is my parcel? It has not arrived yet.",
    "我的订单还没有到,请帮我查一下",
    "I would like a copy of my invoice for October",
    "你好,我想修改收货地址",
    "The app crashes when I open my account page",
    "Can I change my delivery address?",
)

FLOOR = """
WITH queued AS (
    UPDATE conversations SET team_id = $2, route_requested_at = NULL,
           waiting_since = coalesce(waiting_since, route_requested_at, now())
    WHERE id = $1 RETURNING id
)
SELECT id FROM queued
"""
FLOOR_AGENTS = """
SELECT a.id, a.capacity FROM agents a JOIN team_members tm ON tm.agent_id = a.id
WHERE tm.team_id = $1 AND a.presence = 'online' ORDER BY a.id FOR NO KEY UPDATE OF a
"""
FLOOR_LOADS = """
SELECT assignee_id, count(*) FROM conversations
WHERE assignee_id = ANY($1::bigint[]) AND status = 'open' GROUP BY 1
"""
FLOOR_ASSIGN = """
UPDATE conversations SET assignee_id = $2, assigned_at = now(), waiting_since = NULL
WHERE id = $1
"""
FLOOR_TOUCH = "UPDATE agents SET last_assigned_at = now() WHERE id = $1"


def rule_bodies(count: int, team_ids: list[int]) -> list[tuple[str, dict[str, Any], Any]]:
    kinds = [
        lambda n: (
            {"match": "any", "conditions": [{"type": "text", "keywords": [f"word{n}", f"词{n}"]}]},
            [{"type": "team", "team_id": team_ids[n % len(team_ids)]}],
        ),
        lambda n: (
            {
                "match": "all",
                "conditions": [{"type": "text", "regex": f"(order|订单)\\s*#?{n}\\b"}],
            },
            [{"type": "priority", "value": n % 10}],
        ),
        lambda n: (
            {
                "match": "all",
                "conditions": [
                    {"type": "tier", "in": [1 + n % 4]},
                    {"type": "language", "in": ["zh" if n % 2 else "en"]},
                ],
            },
            [{"type": "tags", "add": [f"t{n}"]}],
        ),
        lambda n: (
            {"match": "all", "conditions": [{"type": "contact_tag", "any": [f"segment{n}"]}]},
            [{"type": "priority", "value": 1}],
        ),
        lambda n: (
            {"match": "all", "conditions": [{"type": "business_hours", "inside": n % 2 == 0}]},
            [{"type": "tags", "add": ["hours"]}],
        ),
    ]
    return [(f"rule {n}", *kinds[n % len(kinds)](n)) for n in range(count)]


async def seed(conn: asyncpg.Connection, rules: int) -> list[int]:
    await conn.execute(
        "INSERT INTO business_hours (name, timezone, weekly, is_default)"
        " VALUES ('office', 'Asia/Shanghai', $1, true)",
        {day: [["09:00", "18:00"]] for day in ("mon", "tue", "wed", "thu", "fri")},
    )
    team_ids = []
    for t in range(TEAMS):
        team_id = await conn.fetchval(
            "INSERT INTO teams (name) VALUES ($1) RETURNING id", f"team {t}"
        )
        team_ids.append(team_id)
        for a in range(AGENTS_PER_TEAM):
            agent_id = await conn.fetchval(
                "INSERT INTO agents (name, email, role, token_hash, capacity, presence)"
                " VALUES ($1, $2, 'agent', $3, 100000, 'online') RETURNING id",
                f"agent {t}.{a}",
                f"a{t}.{a}@bench.example",
                uuid.uuid4().bytes,
            )
            await conn.execute(
                "INSERT INTO team_members (team_id, agent_id) VALUES ($1, $2)", team_id, agent_id
            )
    # what no rule sends elsewhere goes to the first team
    await conn.execute("UPDATE teams SET is_default = false WHERE is_default")
    await conn.execute("UPDATE teams SET is_default = true WHERE id = $1", team_ids[0])
    for position, (name, conditions, actions) in enumerate(rule_bodies(rules, team_ids), 1):
        await conn.execute(
            "INSERT INTO routing_rules (name, position, conditions, actions)"
            " VALUES ($1, $2, $3, $4)",
            name,
            position,
            conditions,
            actions,
        )
    return team_ids


async def ingest_many(conns: Conns, count: int) -> list[int]:
    ids = []
    for n in range(count):
        result = await ingest(
            conns,
            InboundMessage(
                channel=Channel.WEB,
                external_id=f"new:{uuid.uuid4().hex}",
                text=TEXTS[n % len(TEXTS)],
                identities=(Identity(IdentityKind.WEB, uuid.uuid4().hex),),
            ),
        )
        ids.append(result.conversation_id)
    # customers of every tier
    await conns.db.execute(
        "UPDATE contacts SET computed_tier = 1 + id % 4, tier = 1 + id % 4,"
        " tags = ARRAY['segment' || (id % 60)]"
    )
    return ids


def summary(durations: list[float]) -> dict[str, float]:
    ordered = sorted(durations)
    return {
        "per_second": round(len(ordered) / sum(ordered), 1),
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p99_ms": round(ordered[int(len(ordered) * 0.99) - 1] * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
    }


async def product(conns: Conns, ids: list[int]) -> dict[str, float]:
    durations = []
    for conversation_id in ids:
        started = time.perf_counter()
        await routing.route_conversation(conns, conversation_id)
        durations.append(time.perf_counter() - started)
    unassigned = await conns.db.fetchval(
        "SELECT count(*) FROM conversations WHERE id = ANY($1::bigint[]) AND assignee_id IS NULL",
        ids,
    )
    assert unassigned == 0, f"{unassigned} conversations were not assigned"
    return summary(durations)


async def floor(pool: asyncpg.Pool, ids: list[int], team_ids: list[int]) -> dict[str, float]:
    durations = []
    for n, conversation_id in enumerate(ids):
        team_id = team_ids[n % len(team_ids)]
        started = time.perf_counter()
        async with pool.acquire() as conn, conn.transaction():
            await conn.fetchval(
                "SELECT id FROM conversations WHERE id = $1 FOR NO KEY UPDATE", conversation_id
            )
            await conn.fetchval(FLOOR, conversation_id, team_id)
            agents = await conn.fetch(FLOOR_AGENTS, team_id)
            loads = dict(await conn.fetch(FLOOR_LOADS, [a["id"] for a in agents]))
            chosen = min(agents, key=lambda a: (loads.get(a["id"], 0), a["id"]))
            await conn.execute(FLOOR_ASSIGN, conversation_id, chosen["id"])
            await conn.execute(FLOOR_TOUCH, chosen["id"])
        durations.append(time.perf_counter() - started)
    return summary(durations)


async def run(args: argparse.Namespace, admin_url: str, redis_url: str) -> dict[str, Any]:
    conversations, rules = args.conversations, args.rules
    async with scratch_database(admin_url, prefix="bench_routing") as url:
        settings = Settings(database_url=url, redis_url=redis_url, secret_key="b" * 40)
        pool = await db.create_pool(settings.database, min_size=2, max_size=4)
        redis: ArqRedis = await create_redis(settings.redis)
        try:
            conns = Conns(db=pool, redis=redis, settings=settings)
            async with pool.acquire() as conn:
                team_ids = await seed(conn, rules)
            language.load_model()  # as the worker does at start
            measured = await product(conns, await ingest_many(conns, conversations))
            floor_ids = await ingest_many(conns, conversations)
            measured_floor = await floor(pool, floor_ids, team_ids)
            await redis.flushdb()
        finally:
            await redis.aclose()
            await pool.close()
    return {
        "benchmark": "routing",
        "date": datetime.now(UTC).date().isoformat(),
        "machine": machine(),
        "conversations": conversations,
        "rules": rules,
        "agents": TEAMS * AGENTS_PER_TEAM,
        "route_job": measured,
        "floor": measured_floor,
        "ratio": round(measured["per_second"] / measured_floor["per_second"], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.routing", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--conversations", type=int, default=2000, help="(default 2,000)")
    parser.add_argument("--rules", type=int, default=50, help="routing rules (default 50)")
    server_arguments(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    with (
        tempfile.TemporaryDirectory(prefix="bench-routing-") as tmp,
        servers(Path(tmp), args.database_url, args.redis_url) as (admin_url, redis_url),
    ):
        report = asyncio.run(run(args, admin_url, redis_url))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
