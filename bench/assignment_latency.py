"""Time from a message's ingest commit to its conversation's assignment, at fixed offered loads.

Issue 9 asks: commit-to-assignment p50/p99 at 50 and 200 messages a second; target p99 under
50 ms at 200 msg/s.

One freshly migrated database holds `--agents` agents online in the default team, each with
room for MAX_CAPACITY conversations (nobody is full during a run: the wait measured is the
product's, not a queue of customers). Then:

- "product": `--workers` real worker processes (`python -m contactcenter worker`) and `--web`
  real web processes (`python -m contactcenter serve`), as production runs them. For each rate
  in `--rates`, new web chats (POST /v1/web/conversations, round-robin over the web
  processes) are offered on a fixed schedule for `--warmup` + `--seconds` seconds: open loop,
  each sent when due whatever the answers before it. Once every acknowledged conversation is
  assigned (or `--drain` seconds passed), the latency of each one sent after the warm-up is
  conversations.assigned_at - messages.created_at (the clock the web process read in the
  ingest transaction; assigned_at is the one the worker read as it began the assigning
  transaction). "commit_to_event" also times the conversation.assigned event agents' inboxes
  are fed (its Redis stream entry, added after the assignment committed), in ms.
- "floor" (unless --no-floor): bare arq, the product's processes stopped: this process writes
  the same rows by bare asyncpg (contact, identity, conversation, message: one transaction)
  at the same rates, and enqueues one job; `--workers` worker processes running nothing but
  that job (one UPDATE that assigns the conversation to an agent, with the product's arq
  knobs: max_jobs, poll_delay, keep_result) take it. Its latency is assigned_at (now() of
  that UPDATE) - created_at (now() of the ingest transaction).

Per rate: sent, acknowledged, errors, stored, assigned and unassigned (acknowledged but not
assigned when the drain ended: 0, or a message was lost), the client's own send lag (how
late it kept the schedule; the offered rate is real only if it stays small) and the
acknowledgement latency.

    python -m bench.assignment_latency [--rates 50,200] [--seconds 10] [--warmup 1]
                                       [--web 1] [--workers 1] [--agents 20]

BENCH_DATABASE_URL (an admin URL: the run makes and drops a database of its own) and
BENCH_REDIS_URL (a Redis database of the run's own: it is emptied at the start and at the
end) name servers to use; without them embedded ones are started and stopped. One JSON object
goes to stdout; logs go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import os
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from arq.connections import ArqRedis
from arq.constants import default_queue_name, health_check_key_suffix
from arq.worker import Worker, func

from bench.ingest import (
    POOL_MAX,
    POOL_MIN,
    TEXT,
    Refused,
    machine,
    server_arguments,
    servers,
    stop,
)
from bench.load_support import (
    AssignedEvents,
    OfferResult,
    fleet,
    offer,
    seed_agents,
    spread,
    start_worker,
    wait_idle,
)
from contactcenter import db
from contactcenter.conns import create_redis
from contactcenter.scratch import scratch_database
from contactcenter.services.agents import MAX_CAPACITY
from contactcenter.settings import Settings
from workers.settings import worker_options

logger = logging.getLogger("bench.assignment_latency")

TARGET_RATE = 200.0
TARGET_P99_MS = 50.0
# open loop: as many requests in flight as the product's answers keep open
MAX_IN_FLIGHT = 1000
FLOOR_QUEUE = "arq:queue:bench-assignment-floor"
FLOOR_FUNCTION = "floor_assign"

LATENCIES = """
SELECT c.id, extract(epoch FROM m.created_at)::float8 AS created,
       extract(epoch FROM c.assigned_at)::float8 AS assigned
FROM conversations c JOIN messages m ON m.conversation_id = c.id AND m.direction = 'inbound'
WHERE c.id = ANY($1::bigint[])
"""
ASSIGNED = """
SELECT count(*) FROM conversations WHERE id = ANY($1::bigint[]) AND assigned_at IS NOT NULL
"""
OVER_CAPACITY = """
SELECT count(*) FROM (
    SELECT a.id FROM agents a JOIN conversations c ON c.assignee_id = a.id
    WHERE c.status = 'open' GROUP BY a.id, a.capacity HAVING count(*) > a.capacity
) AS over
"""

# the floor's ingest: the same rows as a new web chat, in one transaction
FLOOR_INGEST = """
WITH contact AS (INSERT INTO contacts DEFAULT VALUES RETURNING id),
identity AS (
    INSERT INTO contact_identities (contact_id, kind, value)
    SELECT id, 'web', $1 FROM contact
),
conversation AS (
    INSERT INTO conversations (contact_id, channel, route_requested_at, route_version,
                               last_message_at)
    SELECT id, 'web', now(), 1, now() FROM contact
    RETURNING id
)
INSERT INTO messages (conversation_id, direction, channel, external_id, body_text, status)
SELECT id, 'inbound', 'web', $2, $3, 'received' FROM conversation
RETURNING conversation_id
"""
FLOOR_ASSIGN = """
UPDATE conversations SET assignee_id = $2, assigned_at = now(), route_requested_at = NULL
WHERE id = $1
"""


# --- one rate ----------------------------------------------------------------------------


async def wait_assigned(pool: asyncpg.Pool, ids: list[int], drain: float) -> int:
    """Until every conversation of `ids` is assigned, or `drain` seconds; how many are."""
    deadline = time.monotonic() + drain
    while True:
        assigned: int = await pool.fetchval(ASSIGNED, ids)
        if assigned >= len(ids) or time.monotonic() > deadline:
            return assigned
        await asyncio.sleep(0.1)


async def latencies(
    pool: asyncpg.Pool, result: OfferResult, events: AssignedEvents | None
) -> dict[str, Any]:
    """Counts, and commit-to-assignment (and -event) latencies of the measured messages."""
    rows = await pool.fetch(LATENCIES, result.conversation_ids())
    measured = {o.conversation_id for o in result.acknowledged if o.measured}
    lags = [
        r["assigned"] - r["created"]
        for r in rows
        if r["id"] in measured and r["assigned"] is not None
    ]
    figures: dict[str, Any] = {
        "stored": len(rows),
        "assigned": sum(1 for r in rows if r["assigned"] is not None),
        "unassigned": len(result.acknowledged) - sum(1 for r in rows if r["assigned"] is not None),
        "measured": len(lags),
        "commit_to_assigned": spread(lags),
    }
    if events is not None:
        event_lags = [
            events.at[r["id"]] - r["created"]
            for r in rows
            if r["id"] in measured and r["id"] in events.at
        ]
        figures["commit_to_event"] = spread(event_lags)
        figures["events_missing"] = sum(
            1 for r in rows if r["assigned"] is not None and r["id"] not in events.at
        )
    return figures


async def measure_rate(
    rate: float,
    args: argparse.Namespace,
    pool: asyncpg.Pool,
    redis: ArqRedis,
    send: Callable[[], Awaitable[int]],
    events: AssignedEvents | None,
    queue: str,
) -> dict[str, Any]:
    if not await wait_idle(redis, queue):
        logger.warning("rate %s starts with work left over", rate)
    logger.info("%s msg/s for %ss after %ss", rate, args.seconds, args.warmup)
    repeated = events.repeated if events else 0
    result = await offer(rate, args.seconds, args.warmup, send)
    ids = result.conversation_ids()
    await wait_assigned(pool, ids, args.drain)
    figures = {**result.summary(), **await latencies(pool, result, events)}
    if events is not None:
        figures["events_repeated"] = events.repeated - repeated
    return figures


# --- the product -------------------------------------------------------------------------


def chat_sender(session: aiohttp.ClientSession, urls: list[str]) -> Callable[[], Awaitable[int]]:
    """A new web chat to the next web process in turn; its conversation id."""
    turn = itertools.cycle(urls)

    async def send() -> int:
        body = {"text": TEXT, "client_message_id": uuid.uuid4().hex}
        async with session.post(f"{next(turn)}/v1/web/conversations", json=body) as response:
            answer = await response.read()
            if response.status != 201:
                raise Refused(f"HTTP {response.status}: {answer[:200]!r}")
        return int(json.loads(answer)["conversation_id"])

    return send


async def measure_product(
    args: argparse.Namespace,
    database_url: str,
    redis_url: str,
    pool: asyncpg.Pool,
    redis: ArqRedis,
    workdir: Path,
) -> list[dict[str, Any]]:
    figures = []
    async with (
        fleet(database_url, redis_url, redis, workdir, web=args.web, workers=args.workers) as up,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=MAX_IN_FLIGHT)) as session,
        AssignedEvents(redis) as events,
    ):
        send = chat_sender(session, up.urls)
        for rate in args.rates:
            figures.append(
                await measure_rate(rate, args, pool, redis, send, events, default_queue_name)
            )
    return figures


# --- the floor ---------------------------------------------------------------------------


async def floor_assign(ctx: dict[str, Any], conversation_id: int, agent_id: int) -> None:
    """The least an assignment job can do: one UPDATE."""
    await ctx["pool"].execute(FLOOR_ASSIGN, conversation_id, agent_id)


def floor_worker(database_url: str, redis_url: str) -> Worker:
    """Bare arq with the product's knobs (max_jobs, poll_delay, keep_result, Redis settings):
    one function on a queue of its own, no cron, nothing at start-up but its pool."""
    settings = Settings(database_url=database_url, redis_url=redis_url, secret_key="f" * 40)
    knobs = worker_options(settings)

    async def startup(ctx: dict[str, Any]) -> None:
        ctx["pool"] = await asyncpg.create_pool(
            database_url, min_size=settings.db_pool_min, max_size=settings.db_pool_max
        )

    async def shutdown(ctx: dict[str, Any]) -> None:
        if "pool" in ctx:
            await ctx["pool"].close()

    return Worker(
        functions=[func(floor_assign, name=FLOOR_FUNCTION)],
        queue_name=FLOOR_QUEUE,
        redis_settings=knobs["redis_settings"],
        on_startup=startup,
        on_shutdown=shutdown,
        max_jobs=knobs["max_jobs"],
        poll_delay=knobs["poll_delay"],
        keep_result=knobs["keep_result"],
    )


async def run_floor_worker(database_url: str, redis_url: str) -> None:
    """A floor worker process's life, as workers/run.py runs the product's."""
    worker = floor_worker(database_url, redis_url)
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await worker.async_run()
    finally:
        with contextlib.suppress(asyncio.CancelledError):
            await worker.close()


@contextlib.asynccontextmanager
async def floor_workers(
    args: argparse.Namespace, database_url: str, redis_url: str, redis: ArqRedis, workdir: Path
) -> AsyncIterator[None]:
    argv = [sys.executable, "-m", "bench.assignment_latency", "--floor-worker"]
    argv += ["--database-url", database_url, "--redis-url", redis_url]
    processes: list[asyncio.subprocess.Process] = []
    try:
        for n in range(args.workers):
            log_path = workdir / f"floor-worker-{n}.log"
            health_key = FLOOR_QUEUE + health_check_key_suffix
            processes.append(
                await start_worker(argv, dict(os.environ), log_path, redis, health_key)
            )
        yield
    finally:
        await asyncio.gather(*(stop(process) for process in processes))


async def measure_floor(
    args: argparse.Namespace,
    database_url: str,
    redis_url: str,
    pool: asyncpg.Pool,
    redis: ArqRedis,
    agent_ids: list[int],
    workdir: Path,
) -> list[dict[str, Any]]:
    agents = itertools.cycle(agent_ids)
    figures = []
    async with (
        asyncpg.create_pool(database_url, min_size=POOL_MIN, max_size=POOL_MAX) as ingest_pool,
        floor_workers(args, database_url, redis_url, redis, workdir),
    ):

        async def send() -> int:
            conversation_id: int = await ingest_pool.fetchval(
                FLOOR_INGEST, uuid.uuid4().hex, f"new:{uuid.uuid4().hex}", TEXT
            )
            job = await redis.enqueue_job(
                FLOOR_FUNCTION, conversation_id, next(agents), _queue_name=FLOOR_QUEUE
            )
            if job is None:
                raise Refused("the floor job was not queued")
            return conversation_id

        for rate in args.rates:
            figures.append(await measure_rate(rate, args, pool, redis, send, None, FLOOR_QUEUE))
    return figures


# --- the run -----------------------------------------------------------------------------


async def run(
    args: argparse.Namespace, admin_url: str, redis_url: str, workdir: Path
) -> dict[str, Any]:
    async with scratch_database(admin_url, prefix="bench_assign") as database_url:
        pool = await db.create_pool(database_url, min_size=1, max_size=4)
        redis = await create_redis(redis_url)
        try:
            await redis.flushdb()
            tokens = await seed_agents(pool, args.agents, MAX_CAPACITY)
            product = await measure_product(args, database_url, redis_url, pool, redis, workdir)
            over = await pool.fetchval(OVER_CAPACITY)
            floor = None
            if not args.no_floor:
                floor = await measure_floor(
                    args, database_url, redis_url, pool, redis, list(tokens), workdir
                )
            await redis.flushdb()
        finally:
            await redis.aclose()
            await pool.close()
    return {"product": product, "floor": floor, "agents_over_capacity": over}


def report(args: argparse.Namespace, results: dict[str, Any]) -> dict[str, Any]:
    at_target = next(
        (r for r in results["product"] if r["offered_per_second"] == TARGET_RATE), None
    )
    met = None
    if at_target is not None and at_target["measured"]:
        met = at_target["commit_to_assigned"]["p99_ms"] < TARGET_P99_MS
    return {
        "benchmark": "assignment_latency",
        "date": datetime.now(UTC).date().isoformat(),
        "machine": machine(),
        "target": {"offered_per_second": TARGET_RATE, "p99_ms": TARGET_P99_MS, "met": met},
        **results,
        "settings": {
            "rates": args.rates,
            "seconds": args.seconds,
            "warmup": args.warmup,
            "drain": args.drain,
            "web_processes": args.web,
            "worker_processes": args.workers,
            "agents": args.agents,
            "agent_capacity": MAX_CAPACITY,
            "worker_max_jobs": Settings().worker_max_jobs,
        },
    }


def rates(text: str) -> list[float]:
    values = [float(part) for part in text.split(",") if part.strip()]
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError("a comma-separated list of positive rates")
    return values


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.assignment_latency", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--rates", type=rates, default=[50.0, 200.0], help="msg/s (50,200)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds (10)")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds (1)")
    parser.add_argument("--drain", type=float, default=30.0, help="wait for assignments (30)")
    parser.add_argument("--web", type=int, default=1, help="web processes (default 1)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--agents", type=int, default=20, help="agents online (default 20)")
    parser.add_argument("--no-floor", action="store_true", help="skip the bare arq floor")
    # the floor's worker processes are this command too
    parser.add_argument("--floor-worker", action="store_true", help=argparse.SUPPRESS)
    server_arguments(parser)
    args = parser.parse_args(argv)
    if args.web < 1 or args.workers < 1 or args.agents < 1:
        parser.error("--web, --workers and --agents must be at least 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    if args.floor_worker:
        asyncio.run(run_floor_worker(args.database_url, args.redis_url))
        return
    with (
        tempfile.TemporaryDirectory(prefix="bench-assign-") as tmp,
        servers(Path(tmp), args.database_url, args.redis_url) as (admin_url, redis_url),
    ):
        results = asyncio.run(run(args, admin_url, redis_url, Path(tmp)))
    print(json.dumps(report(args, results), indent=2))


if __name__ == "__main__":
    main()
