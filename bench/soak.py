"""A bounded run at steady load: memory and connections of each process over time.

Issue 9 asks for a soak: steady load, the memory and open connections of each process
reported over time, and no growth after warm-up.

One freshly migrated database holds `--agents` agents online in the default team, with room.
`--web` web processes and `--workers` worker processes run as production runs them
(`python -m contactcenter serve` / `worker`). For `--minutes`, `--rate` new web chats a second
are started on a fixed schedule (open loop), and each lives a whole conversation: the visitor
writes (POST /v1/web/conversations), routing assigns it (seen on the agents' event stream),
the agent reads the inbox and replies (the worker sends the reply), the visitor answers and
reads the history, the agent resolves it (freeing the slot). So the work is steady: nothing
piles up in the queues or on the agents.

Every `--interval` seconds each process is sampled: its resident memory (psutil if installed,
else /proc), its open file descriptors, its PostgreSQL connections (pg_stat_activity, by the
application_name each process is given) and its Redis connections (CLIENT LIST, by the
process's TCP ports); with the queue's length. After the warm-up (`--warmup` seconds, a fifth
of the run by default) a least-squares line through each series gives its slope; a process is
"growing" when the fitted growth over the measured window passes a tolerance (memory: 8 MiB +
5% of its size after warm-up; descriptors and connections: 3), else "steady".

At the end the counts are checked against PostgreSQL: every acknowledged customer message and
agent reply stored, every reply sent.

    python -m bench.soak [--minutes 10] [--rate 10] [--interval 5] [--web 1] [--workers 1]

BENCH_DATABASE_URL (an admin URL: the run makes and drops a database of its own) and
BENCH_REDIS_URL (a Redis database of the run's own: it is emptied at the start and at the
end) name servers to use; without them embedded ones are started and stopped. One JSON object
goes to stdout; logs go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import itertools
import json
import logging
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from arq.connections import ArqRedis
from arq.constants import default_queue_name

from bench.ingest import Refused, machine, server_arguments, servers
from bench.load_support import (
    MIB,
    AssignedEvents,
    Fleet,
    Member,
    connection_counts,
    fleet,
    open_files,
    rss_bytes,
    seed_agents,
    slope_per_minute,
    wait_idle,
)
from contactcenter import db
from contactcenter.conns import create_redis
from contactcenter.scratch import scratch_database

logger = logging.getLogger("bench.soak")

AGENT_CAPACITY = 50
# how long a step waits for what it needs (an assignment) before it counts as failed
STEP_TIMEOUT_SECONDS = 30.0
# fitted growth over the measured window that counts as growth
RSS_TOLERANCE_MIB = 8.0
RSS_TOLERANCE_SHARE = 0.05
COUNT_TOLERANCE = 3.0
MIN_SAMPLES = 3
MAX_IN_FLIGHT = 1000

STORED = """
SELECT count(*) FILTER (WHERE direction = 'inbound') AS inbound,
       count(*) FILTER (WHERE direction = 'outbound' AND NOT is_note) AS replies,
       count(*) FILTER (WHERE direction = 'outbound' AND NOT is_note AND status <> 'queued')
           AS replies_sent
FROM messages
"""
RESOLVED = "SELECT count(*) FROM conversations WHERE status = 'resolved'"
REPLIES_QUEUED = """
SELECT count(*) FROM messages WHERE direction = 'outbound' AND NOT is_note AND status = 'queued'
"""


# --- the conversations --------------------------------------------------------------------


@dataclass
class Tally:
    """What the load did: each step that succeeded, each that failed (by step)."""

    done: collections.Counter[str] = field(default_factory=collections.Counter)
    failed: collections.Counter[str] = field(default_factory=collections.Counter)
    first_error: str | None = None

    def fail(self, step: str, error: BaseException | str) -> None:
        self.failed[step] += 1
        if self.first_error is None:
            self.first_error = f"{step}: {error}"[:300]


class Conversations:
    """Each new chat lives a whole conversation, visitor and agent in turn."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        urls: list[str],
        tokens: dict[int, str],
        events: AssignedEvents,
    ) -> None:
        self.session = session
        self.turn = itertools.cycle(urls)
        self.tokens = tokens
        self.events = events
        self.tally = Tally()

    async def _call(
        self, step: str, method: str, path: str, expect: int, token: str | None, body: Any = None
    ) -> dict[str, Any] | None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            async with self.session.request(
                method, f"{next(self.turn)}{path}", json=body, headers=headers
            ) as response:
                answer = await response.read()
                if response.status != expect:
                    raise Refused(f"HTTP {response.status}: {answer[:200]!r}")
        except (aiohttp.ClientError, TimeoutError, Refused) as exc:
            self.tally.fail(step, exc)
            return None
        self.tally.done[step] += 1
        result: dict[str, Any] = json.loads(answer) if answer else {}
        return result

    async def live_one(self) -> None:
        try:
            await self._live_one()
        except Exception as exc:  # a bench bug, or an answer of the wrong shape: counted
            self.tally.fail("unexpected", repr(exc))

    async def _live_one(self) -> None:
        started = await self._call(
            "start",
            "POST",
            "/v1/web/conversations",
            201,
            None,
            {"text": "Hello, where is my parcel?", "client_message_id": uuid.uuid4().hex},
        )
        if started is None:
            return
        conversation_id, visitor = started["conversation_id"], started["visitor_token"]
        agent_id = await self.events.wait(conversation_id, within=STEP_TIMEOUT_SECONDS)
        if agent_id is None:
            self.tally.fail("assigned", f"conversation {conversation_id} not assigned")
            return
        self.tally.done["assigned"] += 1
        agent = self.tokens[agent_id]
        path = f"/v1/conversations/{conversation_id}"
        steps: list[tuple[str, str, str, int, str, Any]] = [
            ("inbox", "GET", "/v1/inbox?view=mine&limit=20", 200, agent, None),
            ("reply", "POST", f"{path}/replies", 202, agent, {"text": "Let me check."}),
            (
                "visitor_message",
                "POST",
                f"/v1/web/conversations/{conversation_id}/messages",
                201,
                visitor,
                {"text": "Thank you", "client_message_id": uuid.uuid4().hex},
            ),
            (
                "history",
                "GET",
                f"/v1/web/conversations/{conversation_id}/messages",
                200,
                visitor,
                None,
            ),
            ("resolve", "POST", f"{path}/status", 200, agent, {"status": "resolved"}),
        ]
        for step in steps:
            if await self._call(*step) is None:
                return


async def run_load(conversations: Conversations, rate: float, seconds: float) -> None:
    """`rate` new conversations a second for `seconds`, each started when due (open loop);
    returns once every one of them has ended."""
    tasks: list[asyncio.Task[None]] = []
    start = time.perf_counter()
    for n in range(max(1, round(rate * seconds))):
        delay = start + n / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(conversations.live_one()))
        if n % 100 == 0:  # keep the list short on a long run
            tasks = [t for t in tasks if not t.done()]
    await asyncio.gather(*tasks)


# --- sampling ------------------------------------------------------------------------------


async def sample(
    started: float, pool: asyncpg.Pool, redis: ArqRedis, members: list[Member]
) -> dict[str, Any]:
    counts = await connection_counts(pool, redis, members)
    processes = {}
    for member in members:
        try:
            rss, fds = rss_bytes(member.pid), open_files(member.pid)
        except (OSError, ValueError):  # it exited
            continue
        processes[member.name] = {
            "rss_mib": round(rss / MIB, 2),
            "fds": fds,
            **counts[member.name],
        }
    return {
        "t": round(time.perf_counter() - started, 1),
        "queued": await redis.zcard(default_queue_name),
        "processes": processes,
    }


async def sample_every(
    interval: float,
    started: float,
    pool: asyncpg.Pool,
    redis: ArqRedis,
    members: list[Member],
    into: list[dict[str, Any]],
) -> None:
    while True:
        into.append(await sample(started, pool, redis, members))
        await asyncio.sleep(interval - (time.perf_counter() - started) % interval)


def series(samples: list[dict[str, Any]], name: str, key: str, after: float) -> list[Any]:
    return [
        (s["t"], s["processes"][name][key])
        for s in samples
        if s["t"] >= after and name in s["processes"]
    ]


def judge(samples: list[dict[str, Any]], member: Member, kind: str, after: float) -> Any:
    """The growth of each of the process's series after the warm-up, and a verdict."""
    rss = series(samples, member.name, "rss_mib", after)
    window_minutes = (rss[-1][0] - rss[0][0]) / 60 if len(rss) > 1 else 0.0
    found: dict[str, Any] = {"kind": kind, "pid": member.pid, "samples_after_warmup": len(rss)}
    why = []
    tolerances = {"rss_mib": None, "fds": COUNT_TOLERANCE}
    tolerances |= {"pg_connections": COUNT_TOLERANCE, "redis_connections": COUNT_TOLERANCE}
    for key, tolerance in tolerances.items():
        points = series(samples, member.name, key, after)
        if not points:
            continue
        slope = slope_per_minute(points)
        growth = slope * window_minutes
        allowed = tolerance or RSS_TOLERANCE_MIB + RSS_TOLERANCE_SHARE * points[0][1]
        found[key] = {
            "first": points[0][1],
            "last": points[-1][1],
            "max": max(v for _, v in points),
            "slope_per_minute": round(slope, 3),
            "fitted_growth": round(growth, 2),
        }
        if growth > allowed:
            why.append(f"{key} grew {growth:.1f} (tolerance {allowed:.1f})")
    if len(rss) < MIN_SAMPLES:
        found["verdict"] = "unknown"
        why.append(f"fewer than {MIN_SAMPLES} samples after the warm-up")
    else:
        found["verdict"] = "growing" if why else "steady"
    found["why"] = why
    return found


# --- the run --------------------------------------------------------------------------------


async def check_counts(pool: asyncpg.Pool, redis: ArqRedis, tally: Tally) -> dict[str, Any]:
    """What PostgreSQL holds against what was acknowledged (replies sent once the queue is
    worked off)."""
    deadline = time.monotonic() + STEP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if not await pool.fetchval(REPLIES_QUEUED):
            break
        await asyncio.sleep(0.2)
    await wait_idle(redis)
    stored = await pool.fetchrow(STORED)
    assert stored is not None
    inbound_acked = tally.done["start"] + tally.done["visitor_message"]
    return {
        "inbound_acknowledged": inbound_acked,
        "inbound_stored": stored["inbound"],
        "inbound_lost": inbound_acked - stored["inbound"],
        "replies_acknowledged": tally.done["reply"],
        "replies_stored": stored["replies"],
        "replies_sent": stored["replies_sent"],
        "resolved_acknowledged": tally.done["resolve"],
        "resolved_stored": await pool.fetchval(RESOLVED),
    }


async def soak(
    args: argparse.Namespace, up: Fleet, pool: asyncpg.Pool, redis: ArqRedis, tokens: dict[int, str]
) -> dict[str, Any]:
    samples: list[dict[str, Any]] = []
    started = time.perf_counter()
    connector = aiohttp.TCPConnector(limit=MAX_IN_FLIGHT)
    timeout = aiohttp.ClientTimeout(total=STEP_TIMEOUT_SECONDS)
    async with (
        aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
        AssignedEvents(redis) as events,
    ):
        sampler = asyncio.create_task(
            sample_every(args.interval, started, pool, redis, up.members, samples)
        )
        try:
            conversations = Conversations(session, up.urls, tokens, events)
            await run_load(conversations, args.rate, args.minutes * 60)
            samples.append(await sample(started, pool, redis, up.members))
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
    counts = await check_counts(pool, redis, conversations.tally)
    warmup = args.warmup if args.warmup is not None else args.minutes * 60 / 5
    kinds = {m.name: "web" for m in up.webs} | {m.name: "worker" for m in up.workers}
    judged = {m.name: judge(samples, m, kinds[m.name], warmup) for m in up.members}
    verdicts = {j["verdict"] for j in judged.values()}
    verdict = next((v for v in ("growing", "unknown") if v in verdicts), "steady")
    return {
        "load": {
            "done": dict(conversations.tally.done),
            "failed": dict(conversations.tally.failed),
            "first_error": conversations.tally.first_error,
            "assigned_events_repeated": events.repeated,
        },
        "counts": counts,
        "processes": judged,
        "verdict": verdict,
        "warmup_seconds": warmup,
        "samples": samples,
    }


async def run(
    args: argparse.Namespace, admin_url: str, redis_url: str, workdir: Path
) -> dict[str, Any]:
    async with scratch_database(admin_url, prefix="bench_soak") as database_url:
        pool = await db.create_pool(database_url, min_size=1, max_size=4)
        redis = await create_redis(redis_url)
        try:
            await redis.flushdb()
            tokens = await seed_agents(pool, args.agents, AGENT_CAPACITY)
            async with fleet(
                database_url, redis_url, redis, workdir, web=args.web, workers=args.workers
            ) as up:
                await wait_idle(redis)
                logger.info("%s chats/s for %s minutes", args.rate, args.minutes)
                result = await soak(args, up, pool, redis, tokens)
            await redis.flushdb()
        finally:
            await redis.aclose()
            await pool.close()
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="load minutes (default 10)")
    parser.add_argument("--rate", type=float, default=10.0, help="new chats a second (10)")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between samples (5)")
    parser.add_argument("--warmup", type=float, help="seconds not judged (a fifth of the run)")
    parser.add_argument("--web", type=int, default=1, help="web processes (default 1)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--agents", type=int, default=10, help="agents online (default 10)")
    server_arguments(parser)
    args = parser.parse_args(argv)
    if min(args.web, args.workers, args.agents) < 1 or args.rate <= 0 or args.interval <= 0:
        parser.error("--web, --workers, --agents, --rate and --interval must be positive")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    with (
        tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp,
        servers(Path(tmp), args.database_url, args.redis_url) as (admin_url, redis_url),
    ):
        result = asyncio.run(run(args, admin_url, redis_url, Path(tmp)))
    report = {
        "benchmark": "soak",
        "date": datetime.now(UTC).date().isoformat(),
        "machine": machine(),
        **result,
        "settings": {
            "minutes": args.minutes,
            "rate": args.rate,
            "interval": args.interval,
            "web_processes": args.web,
            "worker_processes": args.workers,
            "agents": args.agents,
            "agent_capacity": AGENT_CAPACITY,
        },
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
