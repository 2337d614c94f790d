"""How late SLA breaches fire with 100,000 timers pending, and what a pending timer costs Redis.

Issue 6 asks: with 100,000 pending timers, the lag between a clock's due instant and the breach
recorded (p50, p99, max), and Redis memory per pending timer; aim: p99 lag under 1 s.

One freshly migrated database holds one SLA policy (calendar clock, first response in 4 hours,
no warning, a breach raises the priority to 5) and `--timers` open conversations waiting in the
default team, each with its clocks. The rows are written set-based (contacts and conversations
by INSERT ... SELECT, the clocks by COPY into the columns store/sla.py saves, the queue key
conversations.sla_due_at as its SAVE sets it), but every clock is a real SlaClocks made by
domain/sla.py `start`, with its state, next timer and measures from the same pure functions
services/sla.py saves with. So each conversation has exactly one timer, its first-response
breach; `--due` of them fall due evenly over `--window` seconds, starting LEAD_SECONDS after
the last one is armed, the rest between 1 and 3 hours from now.

- "product": `--workers` real worker processes (`python -m contactcenter worker`, as the
  Procfile runs it: workers/settings.py create_worker, the reconciler and its sweeper, the real
  clock) are started and idle; then every timer is armed by services/sla.arm ->
  jobs.enqueue_sla_timer from this process (ARM_CONCURRENCY tasks). Each breach's lag is
  sla_events.fired_at (the worker's clock as it acts) - sla_events.due_at.
- "floor": bare arq, the same way: the product workers stopped, the product's other timers
  still pending in the queue, `--due` jobs of a function doing one bare asyncpg INSERT of (due,
  now) into a scratch table, deferred to the same offsets in a fresh window, run by as many
  worker processes with the product's arq knobs (max_jobs, poll_delay, keep_result) and nothing
  else. Its lag is that now - due.
- "redis": used_memory (INFO memory) before arming and after arming all timers, per timer;
  and MEMORY USAGE of sample job keys and of the queue's sorted set per entry. The server may
  be shared: the INFO figure counts every database's changes, MEMORY USAGE only ours.

The sweeper's "every timer has its job" marker (services/sla.py REARM_KEY) is set before the
workers start, as in a running deployment; without it the first passes would arm every
pending timer a second time while this run arms them.

    python -m bench.sla_timers [--timers 100000] [--due 2000] [--window 20] [--workers 1]

Quick: `--timers 5000 --due 200 --window 5`. BENCH_DATABASE_URL (an admin URL: the run makes
and drops a database of its own) and BENCH_REDIS_URL (a Redis database of the run's own: it is
emptied at the start and at the end) name servers to use; without them embedded ones are
started and stopped. One JSON object goes to stdout; logs go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import secrets
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from arq.connections import ArqRedis
from arq.constants import default_queue_name, health_check_key_suffix, in_progress_key_prefix
from arq.constants import job_key_prefix as JOB_KEY_PREFIX
from arq.worker import Worker, func

from bench.ingest import machine, percentile, server_arguments, servers, stop
from contactcenter import db
from contactcenter.conns import Conns, create_redis
from contactcenter.domain import sla
from contactcenter.domain.enums import SlaClock
from contactcenter.domain.sla_policies import Escalation, SlaPolicy
from contactcenter.scratch import scratch_database
from contactcenter.services import sla as sla_service
from contactcenter.settings import Settings
from contactcenter.store import sla as sla_store
from contactcenter.store import sla_policies
from workers.settings import worker_options

logger = logging.getLogger("bench.sla_timers")

ROOT = Path(__file__).resolve().parents[1]
FIRST_RESPONSE = timedelta(hours=4)
RAISE_PRIORITY_TO = 5
# the timers not in the window: due evenly between these two offsets from now
FAR_FROM = timedelta(hours=1)
FAR_SPAN = timedelta(hours=2)
# the window starts this long after the last timer is armed
LEAD_SECONDS = 5.0
# after the window, how long a missing breach is waited for (beyond the sweeper's 2 s lateness
# and its 2 s clock, so a timer whose job was lost still shows, late, rather than missed)
GRACE_SECONDS = 10.0
ARM_CONCURRENCY = 32
WORKER_START_TIMEOUT_SECONDS = 120.0
IDLE_TIMEOUT_SECONDS = 120.0
# the key every arq worker of the queue writes at its first poll (and hourly after)
HEALTH_KEY = default_queue_name + health_check_key_suffix
MEMORY_SAMPLE_KEYS = 200
FLOOR_FUNCTION = "floor_timer"

INSERT_CONTACTS = """
INSERT INTO contacts (name) SELECT 'sla bench ' || n FROM generate_series(1, $1) AS n
"""
# open, waiting in the default team for agents who are all offline: the reconciler has nobody
# to give them to, as on a night with a backlog
INSERT_CONVERSATIONS = """
INSERT INTO conversations (contact_id, channel, status, team_id, tier, sla_policy_id,
                           waiting_since, team_since, last_message_at)
SELECT c.id, 'web', 'open', (SELECT id FROM teams WHERE is_default), 4, $1,
       now() - interval '4 hours', now() - interval '4 hours', now() - interval '4 hours'
FROM contacts c ORDER BY c.id
RETURNING id
"""
CLOCK_TABLE_COLUMNS = [
    "conversation_id",
    "policy_id",
    "fired_timers",
    "state",
    "next_timer_at",
    "first_response_time",
    "resolution_time",
    *sla_store.CLOCK_FIELDS,
]
# what store/sla.py SAVE sets beside the clocks: the queue's SLA key
SET_QUEUE_DUE = """
UPDATE conversations c SET sla_due_at = d.due_at
FROM unnest($1::bigint[], $2::timestamptz[]) AS d (id, due_at)
WHERE c.id = d.id
"""
PRODUCT_LAGS = """
SELECT conversation_id, extract(epoch FROM fired_at - due_at)::float8 AS lag
FROM sla_events WHERE kind = 'first_response' AND stage = 'breach'
"""
PRODUCT_FIRED = "SELECT count(*) FROM sla_events"
ESCALATED = "SELECT count(*) FROM conversations WHERE id = ANY($1::bigint[]) AND priority = $2"

FLOOR_TABLE = "CREATE TABLE bench_floor_timers (due_at timestamptz NOT NULL, fired_at timestamptz)"
FLOOR_INSERT = "INSERT INTO bench_floor_timers (due_at, fired_at) VALUES ($1, $2)"
FLOOR_LAGS = "SELECT extract(epoch FROM fired_at - due_at)::float8 AS lag FROM bench_floor_timers"
FLOOR_FIRED = "SELECT count(*) FROM bench_floor_timers"


# --- the data --------------------------------------------------------------------------------


async def seed_policy(conn: asyncpg.Connection) -> SlaPolicy:
    """The one policy: a first response in 4 hours on the calendar clock, no warning (one timer
    per conversation), and a breach that raises the priority (so it writes the conversation)."""
    draft = SlaPolicy(
        id=0,
        name="sla bench",
        first_response=FIRST_RESPONSE,
        clock=SlaClock.CALENDAR,
        escalation=Escalation(raise_priority_to=RAISE_PRIORITY_TO),
    )
    row = await sla_policies.insert(conn, draft)
    policy = await sla_policies.load(conn, row["id"])
    assert policy is not None
    return policy


async def seed_conversations(conn: asyncpg.Connection, count: int, policy_id: int) -> list[int]:
    await conn.execute(INSERT_CONTACTS, count)
    return [r["id"] for r in await conn.fetch(INSERT_CONVERSATIONS, policy_id)]


def clock_row(
    policy: SlaPolicy, conversation_id: int, due_at: datetime, now: datetime
) -> tuple[Any, ...]:
    """The conversation_sla row services/sla.py would save for clocks started FIRST_RESPONSE
    before `due_at`: the same pure functions give its state, next timer and measures."""
    clocks = sla.start(policy, None, due_at - FIRST_RESPONSE)
    pending = sla.pending_timers(clocks, frozenset())
    assert [t.due_at for t in pending] == [due_at], "one timer per conversation"
    measured = sla.measured(clocks, policy, None)
    head: tuple[Any, ...] = (
        conversation_id,
        policy.id,
        [],
        str(sla.live_state(clocks, now)),
        pending[0].due_at,
        measured.first_response,
        measured.resolution,
    )
    return head + tuple(getattr(clocks, name) for name in sla_store.CLOCK_FIELDS)


async def write_clocks(
    pool: asyncpg.Pool, policy: SlaPolicy, ids: Sequence[int], dues: Sequence[datetime]
) -> None:
    """COPY the clocks in, then set each conversation's queue key, as store/sla.py SAVE does."""
    now = datetime.now(UTC)
    rows = [clock_row(policy, i, due, now) for i, due in zip(ids, dues, strict=True)]
    async with pool.acquire() as conn, conn.transaction():
        await conn.copy_records_to_table(
            "conversation_sla", records=rows, columns=CLOCK_TABLE_COLUMNS
        )
        await conn.execute(SET_QUEUE_DUE, list(ids), list(dues))


def far_dues(count: int, now: datetime) -> list[datetime]:
    step = FAR_SPAN / max(count, 1)
    return [now + FAR_FROM + n * step for n in range(count)]


def window_dues(count: int, start: datetime, window: float) -> list[datetime]:
    """`count` instants evenly over `window` seconds from `start`."""
    step = timedelta(seconds=window) / max(count, 1)
    return [start + n * step for n in range(count)]


def split(ids: list[int], due: int) -> tuple[list[int], list[int]]:
    """(the `due` conversations of the window, spread over the ids; the rest)."""
    stride = max(len(ids) // max(due, 1), 1)
    chosen = set(ids[::stride][:due])
    return [i for i in ids if i in chosen], [i for i in ids if i not in chosen]


# --- arming ----------------------------------------------------------------------------------


async def arm_all(conns: Conns, ids: Sequence[int], dues: Sequence[datetime]) -> float:
    """Arm each timer by the product's path (services/sla.arm), ARM_CONCURRENCY at a time;
    the seconds it took."""
    pairs = list(zip(ids, dues, strict=True))
    started = time.perf_counter()

    async def arm_slice(part: list[tuple[int, datetime]]) -> None:
        for conversation_id, due_at in part:
            await sla_service.arm(conns, conversation_id, sla_service.Moved(next_timer_at=due_at))

    await asyncio.gather(*(arm_slice(pairs[n::ARM_CONCURRENCY]) for n in range(ARM_CONCURRENCY)))
    return time.perf_counter() - started


async def used_memory(redis: ArqRedis) -> int:
    info = await redis.info("memory")
    return int(info["used_memory"])


async def memory_per_timer(
    redis: ArqRedis, job_ids: Sequence[str], before: int, timers: int
) -> dict[str, Any]:
    """What a pending timer costs: the server's growth per timer, and by MEMORY USAGE its job
    key and its share of the queue's sorted set."""
    after = await used_memory(redis)
    sample = job_ids[:: max(len(job_ids) // MEMORY_SAMPLE_KEYS, 1)][:MEMORY_SAMPLE_KEYS]
    sizes = [await redis.memory_usage(JOB_KEY_PREFIX + job_id, samples=0) for job_id in sample]
    assert None not in sizes, "a sampled timer has no job key (is timer_job_id out of step?)"
    queued = await redis.zcard(default_queue_name)
    queue_bytes = await redis.memory_usage(default_queue_name, samples=0)
    job_key = sum(s or 0 for s in sizes) / max(len(sizes), 1)
    per_entry = (queue_bytes or 0) / max(queued, 1)
    return {
        "used_memory_before": before,
        "used_memory_after": after,
        "used_memory_per_timer_bytes": round((after - before) / timers, 1),
        "job_key_bytes": round(job_key, 1),
        "queue_entry_bytes": round(per_entry, 1),
        "job_key_plus_queue_entry_bytes": round(job_key + per_entry, 1),
        "queue_entries": queued,
    }


def timer_job_id(conversation_id: int, due_at: datetime) -> str:
    """The id jobs.enqueue_sla_timer gives, to find sampled job keys (memory_per_timer asserts
    that each one exists, so a change of the id shows)."""
    return f"sla:{conversation_id}:{round(due_at.timestamp() * 1_000_000)}"


# --- worker processes ------------------------------------------------------------------------


async def start_worker(
    argv: list[str], env: dict[str, str], log_path: Path, redis: ArqRedis
) -> asyncio.subprocess.Process:
    """A worker process, returned once it polls the queue (it wrote the health key, after its
    start-up: the pool, the language model). Started one at a time, so the key is its own."""
    await redis.delete(HEALTH_KEY)
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        process = await asyncio.create_subprocess_exec(
            *argv, cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=log_fd
        )
    finally:
        os.close(log_fd)
    deadline = time.monotonic() + WORKER_START_TIMEOUT_SECONDS
    while not await redis.exists(HEALTH_KEY):
        if process.returncode is not None or time.monotonic() > deadline:
            await stop(process)
            tail = (await asyncio.to_thread(log_path.read_text, errors="replace"))[-2000:]
            raise RuntimeError(f"a worker did not start:\n{tail}")
        await asyncio.sleep(0.1)
    return process


@contextlib.asynccontextmanager
async def worker_processes(
    argv: list[str], env: dict[str, str], count: int, workdir: Path, redis: ArqRedis, name: str
) -> AsyncIterator[None]:
    processes: list[asyncio.subprocess.Process] = []
    try:
        for n in range(count):
            log_path = workdir / f"{name}-worker-{n}.log"
            processes.append(await start_worker(argv, env, log_path, redis))
        logger.info("%s: %d worker process(es) polling", name, count)
        yield
    finally:
        await asyncio.gather(*(stop(process) for process in processes))


async def running_jobs(redis: ArqRedis) -> int:
    """Jobs started and not finished: an in-progress key whose job key is still there (arq
    keeps a cron job's in-progress key for a minute after it ends)."""
    prefix = in_progress_key_prefix.encode()
    running = 0
    async for key in redis.scan_iter(match=in_progress_key_prefix + "*"):
        running += await redis.exists(JOB_KEY_PREFIX.encode() + key[len(prefix) :])
    return running


async def wait_idle(redis: ArqRedis) -> None:
    """Until no job runs and none is due: the workers' start-up jobs (the reconciler, the tier
    recompute of a fresh database) are done, and the measurement starts from a quiet queue."""
    deadline = time.monotonic() + IDLE_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        due = await redis.zcount(default_queue_name, "-inf", time.time() * 1000)
        if not due and not await running_jobs(redis):
            return
        await asyncio.sleep(0.2)
    logger.warning("the workers did not become idle in %ss", IDLE_TIMEOUT_SECONDS)


async def wait_fired(pool: asyncpg.Pool, count_sql: str, expected: int, until: float) -> None:
    """Until `expected` rows are recorded, or the wall clock passes `until`."""
    while time.time() < until:
        if await pool.fetchval(count_sql) >= expected:
            return
        await asyncio.sleep(0.5)


def lag_summary(lags: list[float], expected: int) -> dict[str, Any]:
    ordered = sorted(lags)
    return {
        "expected": expected,
        "fired": len(ordered),
        "missed": expected - len(ordered),
        "lag_p50_ms": round(percentile(ordered, 50) * 1000, 1),
        "lag_p99_ms": round(percentile(ordered, 99) * 1000, 1),
        "lag_max_ms": round((ordered[-1] if ordered else 0.0) * 1000, 1),
        "lag_min_ms": round((ordered[0] if ordered else 0.0) * 1000, 1),
        "over_1s": sum(1 for lag in ordered if lag > 1.0),
    }


# --- the product -----------------------------------------------------------------------------


def product_worker_env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": settings.database,
        "REDIS_URL": settings.redis,
        "SECRET_KEY": settings.secret_key or "",
        "LOG_LEVEL": "INFO",  # the production default: arq logs each job
    }


async def measure_product(
    conns: Conns, policy: SlaPolicy, ids: list[int], args: argparse.Namespace, workdir: Path
) -> dict[str, Any]:
    """Workers up and idle; arm every timer; wait out the window; the lags of the breaches."""
    due_ids, far_ids = split(ids, args.due)
    argv = [sys.executable, "-m", "contactcenter", "worker"]
    env = product_worker_env(conns.settings)
    async with worker_processes(argv, env, args.workers, workdir, conns.redis, "product"):
        await wait_idle(conns.redis)
        before = await used_memory(conns.redis)
        dues = far_dues(len(far_ids), datetime.now(UTC))
        seconds = await arm_all(conns, far_ids, dues)
        # the window's clocks are written now, so that it starts LEAD_SECONDS after arming
        window_start = datetime.now(UTC) + timedelta(seconds=LEAD_SECONDS)
        window = window_dues(len(due_ids), window_start, args.window)
        await write_clocks(conns.db, policy, due_ids, window)
        seconds += await arm_all(conns, due_ids, window)
        margin = (window_start - datetime.now(UTC)).total_seconds()
        if margin < 0:
            logger.warning("arming ended %.1fs into the window: its first lags include it", -margin)
        logger.info("product: %d timers armed in %.1fs; window in %.1fs", len(ids), seconds, margin)
        queued = await conns.redis.zcard(default_queue_name)
        job_ids = [timer_job_id(i, due) for i, due in zip(far_ids, dues, strict=True)]
        memory = await memory_per_timer(conns.redis, job_ids, before, len(ids))
        until = window_start.timestamp() + args.window + GRACE_SECONDS
        await wait_fired(conns.db, PRODUCT_FIRED, len(due_ids), until)
    rows = await conns.db.fetch(PRODUCT_LAGS)
    wanted = set(due_ids)
    lags = [r["lag"] for r in rows if r["conversation_id"] in wanted]
    return {
        "lag": {
            **lag_summary(lags, len(due_ids)),
            "unexpected": len(rows) - len(lags),
            "escalated": await conns.db.fetchval(ESCALATED, due_ids, RAISE_PRIORITY_TO),
        },
        "arm": {
            "timers": len(ids),
            "seconds": round(seconds, 2),
            "per_second": round(len(ids) / seconds, 1),
            "concurrency": ARM_CONCURRENCY,
            "queued_after": queued,
            "window_margin_seconds": round(margin, 2),
        },
        "redis": memory,
    }


# --- the floor -------------------------------------------------------------------------------


async def floor_timer(ctx: dict[str, Any], due_at: datetime) -> None:
    """The least a timer job can do: note when it ran against when it was due."""
    fired_at = datetime.now(UTC)
    await ctx["pool"].execute(FLOOR_INSERT, due_at, fired_at)


def floor_worker(database_url: str, redis_url: str) -> Worker:
    """Bare arq with the product's knobs (max_jobs, poll_delay, keep_result, Redis settings):
    one function, no cron, no reconciler, no start-up work beyond its pool."""
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
        functions=[func(floor_timer, name=FLOOR_FUNCTION)],
        redis_settings=knobs["redis_settings"],
        on_startup=startup,
        on_shutdown=shutdown,
        max_jobs=knobs["max_jobs"],
        poll_delay=knobs["poll_delay"],
        keep_result=knobs["keep_result"],
    )


async def run_floor_worker(database_url: str, redis_url: str) -> None:
    """The floor worker process's life, as workers/run.py runs the product's."""
    worker = floor_worker(database_url, redis_url)
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await worker.async_run()
    finally:
        with contextlib.suppress(asyncio.CancelledError):
            await worker.close()


async def clear_due_jobs(redis: ArqRedis, before: datetime) -> int:
    """Drop every queued job due before `before` (the product's leftover reconciler runs), so
    the floor's queue holds only its own jobs and the product's pending timers."""
    score = before.timestamp() * 1000
    job_ids = await redis.zrangebyscore(default_queue_name, "-inf", score)
    if job_ids:
        await redis.zrem(default_queue_name, *job_ids)
        await redis.delete(*(JOB_KEY_PREFIX.encode() + job_id for job_id in job_ids))
    return len(job_ids)


async def enqueue_floor(redis: ArqRedis, dues: list[datetime]) -> None:
    async def enqueue_slice(part: list[tuple[int, datetime]]) -> None:
        for n, due_at in part:
            job_id = f"floor:{n}:{round(due_at.timestamp() * 1_000_000)}"
            job = await redis.enqueue_job(
                FLOOR_FUNCTION, due_at, _job_id=job_id, _defer_until=due_at
            )
            assert job is not None, f"floor job {job_id} was taken"

    pairs = list(enumerate(dues))
    await asyncio.gather(
        *(enqueue_slice(pairs[n::ARM_CONCURRENCY]) for n in range(ARM_CONCURRENCY))
    )


async def measure_floor(conns: Conns, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    database_url, redis_url = conns.settings.database, conns.settings.redis
    await conns.db.execute(FLOOR_TABLE)
    cleared = await clear_due_jobs(conns.redis, datetime.now(UTC) + FAR_FROM / 2)
    logger.info("floor: %d leftover jobs cleared", cleared)
    argv = [sys.executable, "-m", "bench.sla_timers", "--floor-worker"]
    argv += ["--database-url", database_url, "--redis-url", redis_url]
    async with worker_processes(
        argv, dict(os.environ), args.workers, workdir, conns.redis, "floor"
    ):
        await wait_idle(conns.redis)
        window_start = datetime.now(UTC) + timedelta(seconds=LEAD_SECONDS)
        dues = window_dues(args.due, window_start, args.window)
        await enqueue_floor(conns.redis, dues)
        pending = await conns.redis.zcard(default_queue_name)
        until = window_start.timestamp() + args.window + GRACE_SECONDS
        await wait_fired(conns.db, FLOOR_FIRED, args.due, until)
    lags = [r["lag"] for r in await conns.db.fetch(FLOOR_LAGS)]
    return {"lag": lag_summary(lags, args.due), "queued_at_start": pending}


# --- the run ---------------------------------------------------------------------------------


async def seed(conns: Conns, timers: int) -> tuple[SlaPolicy, list[int]]:
    """The policy, the conversations, and the clocks of all but the window's (written when the
    window is known); the sweeper's marker says every timer has its job."""
    async with conns.db.acquire() as conn, conn.transaction():
        policy = await seed_policy(conn)
        ids = await seed_conversations(conn, timers, policy.id)
    return policy, ids


async def run(args: argparse.Namespace, admin_url: str, redis_url: str, workdir: Path) -> Any:
    async with scratch_database(admin_url, prefix="bench_sla") as url:
        settings = Settings(database_url=url, redis_url=redis_url, secret_key=secrets.token_hex(24))
        pool = await db.create_pool(settings.database, min_size=2, max_size=ARM_CONCURRENCY)
        redis = await create_redis(settings.redis)
        try:
            await redis.flushdb()
            conns = Conns(db=pool, redis=redis, settings=settings)
            started = time.perf_counter()
            policy, ids = await seed(conns, args.timers)
            _, far_ids = split(ids, args.due)
            await write_clocks(pool, policy, far_ids, far_dues(len(far_ids), datetime.now(UTC)))
            await redis.set(sla_service.REARM_KEY, sla_service.REARM_DONE)
            logger.info("seeded %d conversations in %.1fs", len(ids), time.perf_counter() - started)
            product = await measure_product(conns, policy, ids, args, workdir)
            floor = await measure_floor(conns, args, workdir)
            await redis.flushdb()
        finally:
            await redis.aclose()
            await pool.close()
    return product, floor


def report(args: argparse.Namespace, product: dict[str, Any], floor: dict[str, Any]) -> Any:
    return {
        "benchmark": "sla_timers",
        "date": datetime.now(UTC).date().isoformat(),
        "machine": machine(),
        "pending_timers": args.timers,
        "due_in_window": args.due,
        "window_seconds": args.window,
        "workers": args.workers,
        "worker_kind": "processes",
        "aim_p99_ms": 1000,
        "product": product["lag"],
        "floor": floor["lag"],
        "arm": product["arm"],
        "redis": product["redis"],
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.sla_timers", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--timers", type=int, default=100_000, help="pending (default 100,000)")
    parser.add_argument("--due", type=int, default=2000, help="due in the window (default 2,000)")
    parser.add_argument("--window", type=float, default=20.0, help="seconds (default 20)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    # the floor's worker processes are this command too
    parser.add_argument("--floor-worker", action="store_true", help=argparse.SUPPRESS)
    server_arguments(parser)
    args = parser.parse_args(argv)
    if not 0 < args.due <= args.timers:
        parser.error("--due must be between 1 and --timers")
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
        tempfile.TemporaryDirectory(prefix="bench-sla-") as tmp,
        servers(Path(tmp), args.database_url, args.redis_url) as (admin_url, redis_url),
    ):
        product, floor = asyncio.run(run(args, admin_url, redis_url, Path(tmp)))
    print(json.dumps(report(args, product, floor), indent=2))


if __name__ == "__main__":
    main()
