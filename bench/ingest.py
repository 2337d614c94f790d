"""How fast the web ingest API accepts new conversations, against the floor beneath it.

Two measurements on one freshly migrated database, at the same concurrency and duration:

- "api": the real web process (`python -m contactcenter serve`, as production runs it) in a
  process of its own on 127.0.0.1, loaded over real HTTP by `--concurrency` aiohttp client
  tasks, each posting POST /v1/web/conversations with a fresh client message id;
- "floor": the same rows written by bare asyncpg from this process, one transaction per
  message (contact, web identity, conversation due for routing, inbound message), then one arq
  enqueue of route_conversation, with a pool of the web process's size and as many tasks.

Each reports accepted messages per second, p50 and p99 acknowledgement latency in ms, and the
errors; "ratio" is api / floor. Requests started during the warm-up are not counted. No worker
runs: the route jobs wait in Redis, for both, and are deleted at the end.

Run it from the repository root:

    python -m bench.ingest [--concurrency 32] [--seconds 10] [--warmup 2]

BENCH_DATABASE_URL (an admin URL: the run creates and drops a database of its own there) and
BENCH_REDIS_URL (a Redis database no worker listens to) name servers to use; without them,
embedded PostgreSQL and Redis are started in a temporary folder and stopped at the end.
One JSON object goes to stdout; logs go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import platform
import secrets
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.constants import default_queue_name, job_key_prefix

from contactcenter.embedded import (
    EmbeddedPostgres,
    EmbeddedRedis,
    free_port,
)
from contactcenter.scratch import scratch_database
from contactcenter.settings import Settings

logger = logging.getLogger("bench.ingest")

ROOT = Path(__file__).resolve().parents[1]
TEXT = "Hello, my parcel has not arrived yet. Can you help?"
SERVER_START_TIMEOUT_SECONDS = 30.0
SERVER_STOP_TIMEOUT_SECONDS = 15.0
# the web process's pool, pinned in its environment so the floor gets exactly the same
POOL_MIN = Settings().db_pool_min
POOL_MAX = Settings().db_pool_max

# the floor: what ingest of a new web conversation has to write, and nothing else
INSERT_CONTACT = "INSERT INTO contacts DEFAULT VALUES RETURNING id"
INSERT_IDENTITY = "INSERT INTO contact_identities (contact_id, kind, value) VALUES ($1, 'web', $2)"
INSERT_CONVERSATION = """
INSERT INTO conversations (contact_id, channel, route_requested_at, route_version,
                           last_message_at)
VALUES ($1, 'web', now(), 1, now())
RETURNING id
"""
INSERT_MESSAGE = """
INSERT INTO messages (conversation_id, direction, channel, external_id, body_text, status)
VALUES ($1, 'inbound', 'web', $2, $3, 'received')
"""

Send = Callable[[], Awaitable[None]]


class Refused(Exception):
    """A message that was not accepted (an answer other than 201, a job id already taken)."""


@dataclass
class LoadResult:
    elapsed: float
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str | None = None

    @property
    def rate(self) -> float:
        """Accepted messages per second."""
        return len(self.latencies) / self.elapsed if self.elapsed > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        return {
            "messages_per_second": round(self.rate, 1),
            "accepted": len(ordered),
            "p50_ms": round(percentile(ordered, 50) * 1000, 2),
            "p99_ms": round(percentile(ordered, 99) * 1000, 2),
            "errors": self.errors,
        }


def percentile(ordered: list[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending list (0.0 when it is empty)."""
    if not ordered:
        return 0.0
    rank = max(1, -(-len(ordered) * pct // 100))  # ceil(n * pct / 100), at least 1
    return ordered[int(rank) - 1]


async def run_load(send: Send, *, concurrency: int, warmup: float, seconds: float) -> LoadResult:
    """`concurrency` tasks call `send` back to back until the deadline; calls started during
    the warm-up are not counted, and the elapsed time runs until the last call returns."""
    measure_from = time.perf_counter() + warmup
    deadline = measure_from + seconds
    result = LoadResult(elapsed=0.0)

    async def one_client() -> None:
        while (started := time.perf_counter()) < deadline:
            try:
                await send()
            except Exception as exc:  # every kind of failure counts, the first is reported
                if started >= measure_from:
                    result.errors += 1
                    result.first_error = result.first_error or f"{type(exc).__name__}: {exc}"
                continue
            if started >= measure_from:
                result.latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(one_client() for _ in range(concurrency)))
    result.elapsed = time.perf_counter() - measure_from
    if result.errors:
        logger.warning("%d errors; the first: %s", result.errors, result.first_error)
    return result


# --- servers ----------------------------------------------------------------------------


@contextlib.contextmanager
def servers(
    workdir: Path, database_url: str | None, redis_url: str | None
) -> Iterator[tuple[str, str]]:
    """(PostgreSQL admin URL, Redis URL): the given servers, or embedded ones in `workdir`."""
    with contextlib.ExitStack() as stack:
        if not database_url:
            postgres = EmbeddedPostgres(workdir / "postgres")
            logger.info("starting embedded PostgreSQL")
            database_url = postgres.start("postgres")
            stack.callback(postgres.stop)
        if not redis_url:
            redis = EmbeddedRedis(workdir / "redis", persistent=False)
            logger.info("starting embedded Redis")
            redis_url = redis.start()
            stack.callback(redis.stop)
        yield database_url, redis_url


@contextlib.asynccontextmanager
async def web_process(database_url: str, redis_url: str, log_path: Path) -> AsyncIterator[str]:
    """`python -m contactcenter serve` on a free port; yields its base URL."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": secrets.token_urlsafe(48),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "DB_POOL_MIN": str(POOL_MIN),
        "DB_POOL_MAX": str(POOL_MAX),
        "LOG_LEVEL": "INFO",  # the production default: an access log line per request
    }
    # its JSON logs go to a file, read back only if it fails to start
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "contactcenter", "serve"),
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log_fd,
        )
    finally:
        os.close(log_fd)
    base_url = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(process, base_url, log_path)
        yield base_url
    finally:
        await stop(process)


async def wait_ready(process: asyncio.subprocess.Process, base_url: str, log_path: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_SECONDS
    async with aiohttp.ClientSession() as session:
        while True:
            if process.returncode is not None:
                tail = (await asyncio.to_thread(log_path.read_text, errors="replace"))[-2000:]
                raise RuntimeError(f"the web process exited at start:\n{tail}")
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"{base_url}/readyz") as response:
                    if response.status == 200:
                        return
            if time.monotonic() > deadline:
                raise RuntimeError("the web process did not become ready in time")
            await asyncio.sleep(0.1)


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    process.terminate()  # aiohttp shuts down gracefully on SIGTERM
    try:
        await asyncio.wait_for(process.wait(), SERVER_STOP_TIMEOUT_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()


@contextlib.asynccontextmanager
async def arq_redis(url: str) -> AsyncIterator[ArqRedis]:
    redis = await create_pool(RedisSettings.from_dsn(url))
    try:
        yield redis
    finally:
        await redis.aclose()


async def forget_route_jobs(redis: ArqRedis, database_url: str) -> None:
    """Delete the route jobs the run queued (every conversation of its database has one), so a
    later run on the same Redis finds no job ids taken."""
    conn = await asyncpg.connect(database_url)
    try:
        ids = [r["id"] for r in await conn.fetch("SELECT id FROM conversations")]
    finally:
        await conn.close()
    for start in range(0, len(ids), 1000):
        job_ids = [f"route:{i}:1" for i in ids[start : start + 1000]]
        async with redis.pipeline(transaction=False) as pipe:
            pipe.zrem(default_queue_name, *job_ids)
            pipe.delete(*(job_key_prefix + job_id for job_id in job_ids))
            await pipe.execute()
    logger.info("deleted %d queued route jobs", len(ids))


# --- the two measurements ---------------------------------------------------------------


async def measure_api(base_url: str, args: argparse.Namespace) -> LoadResult:
    url = f"{base_url}/v1/web/conversations"
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def post() -> None:
            body = {"text": TEXT, "client_message_id": uuid.uuid4().hex}
            async with session.post(url, json=body) as response:
                answer = await response.read()
                if response.status != 201:
                    raise Refused(f"HTTP {response.status}: {answer[:200]!r}")

        logger.info(
            "api: %d clients for %ss after %ss", args.concurrency, args.seconds, args.warmup
        )
        return await run_load(
            post, concurrency=args.concurrency, warmup=args.warmup, seconds=args.seconds
        )


async def measure_floor(database_url: str, redis: ArqRedis, args: argparse.Namespace) -> LoadResult:
    async with asyncpg.create_pool(database_url, min_size=POOL_MIN, max_size=POOL_MAX) as pool:

        async def write() -> None:
            async with pool.acquire() as conn, conn.transaction():
                contact_id = await conn.fetchval(INSERT_CONTACT)
                await conn.execute(INSERT_IDENTITY, contact_id, uuid.uuid4().hex)
                conversation_id = await conn.fetchval(INSERT_CONVERSATION, contact_id)
                await conn.execute(INSERT_MESSAGE, conversation_id, f"new:{uuid.uuid4().hex}", TEXT)
            job_id = f"route:{conversation_id}:1"
            if (
                await redis.enqueue_job("route_conversation", conversation_id, _job_id=job_id)
                is None
            ):
                raise Refused(f"job id {job_id} was taken")

        logger.info(
            "floor: %d tasks for %ss after %ss", args.concurrency, args.seconds, args.warmup
        )
        return await run_load(
            write, concurrency=args.concurrency, warmup=args.warmup, seconds=args.seconds
        )


async def measure(
    args: argparse.Namespace, admin_url: str, redis_url: str, workdir: Path
) -> dict[str, Any]:
    async with (
        scratch_database(admin_url, prefix="bench") as database_url,
        arq_redis(redis_url) as redis,
    ):
        waiting = await redis.zcard(default_queue_name)
        if waiting:
            logger.warning("%d jobs already wait in this Redis database's queue", waiting)
        try:
            async with web_process(database_url, redis_url, workdir / "web.log") as base_url:
                api = await measure_api(base_url, args)
            floor = await measure_floor(database_url, redis, args)
        finally:
            await forget_route_jobs(redis, database_url)
    return {
        "api": api.summary(),
        "floor": floor.summary(),
        "ratio": round(api.rate / floor.rate, 3) if floor.rate else None,
    }


# --- the command ------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    meminfo = Path("/proc/meminfo").read_text()
    total_kib = next(
        int(line.split()[1]) for line in meminfo.splitlines() if line.startswith("MemTotal:")
    )
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(total_kib / 1024**2, 1),
        "python": platform.python_version(),
    }


def server_arguments(parser: argparse.ArgumentParser) -> None:
    """--database-url and --redis-url, from BENCH_DATABASE_URL / BENCH_REDIS_URL by default."""
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL"),
        help="PostgreSQL admin URL (default: BENCH_DATABASE_URL, else an embedded server)",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("BENCH_REDIS_URL"),
        help="Redis URL (default: BENCH_REDIS_URL, else an embedded server)",
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ingest", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--concurrency", type=int, default=32, help="client tasks (default 32)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds (default 10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds (default 2)")
    server_arguments(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    given = [bool(args.database_url), bool(args.redis_url)]
    with (
        tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp,
        servers(Path(tmp), args.database_url, args.redis_url) as (admin_url, redis_url),
    ):
        results = asyncio.run(measure(args, admin_url, redis_url, Path(tmp)))
    report = {
        "machine": machine(),
        "date": datetime.now(UTC).date().isoformat(),
        **results,
        "settings": {
            "concurrency": args.concurrency,
            "seconds": args.seconds,
            "warmup": args.warmup,
            "servers": "given" if all(given) else "embedded" if not any(given) else "mixed",
        },
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
