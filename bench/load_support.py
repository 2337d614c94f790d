"""What the load benchmarks share: the product's processes, agents, open-loop offers, probes.

- `fleet`: `--web` web processes (`python -m contactcenter serve`, one SECRET_KEY, a port each)
  and `--workers` worker processes (`python -m contactcenter worker`) on one database and
  Redis, as a deployment scaled out runs them; each names itself to PostgreSQL
  (application_name) so its connections can be counted.
- `seed_agents`: agents online in the default team, created by the product's own service.
- `offer`: messages sent on a fixed schedule (open loop: a slow answer does not slow the
  next send), each timed.
- `AssignedEvents`: when each conversation.assigned event reached the agents' event stream.
- probes: a process's resident memory and open files (`rss_bytes`, `open_files`) and its
  connections as the servers see them (`connection_counts`: pg_stat_activity by
  application_name, Redis CLIENT LIST by the process's ports).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
from arq.connections import ArqRedis
from arq.constants import default_queue_name, health_check_key_suffix, in_progress_key_prefix
from arq.constants import job_key_prefix as JOB_KEY_PREFIX

from bench.ingest import ROOT, percentile, stop, web_process
from contactcenter.clock import utc_now
from contactcenter.domain.enums import Presence, Role
from contactcenter.events import EVENT_FIELD, agent_events_stream
from contactcenter.services.agents import create_agent
from contactcenter.store import agents as agents_store

try:  # psutil comes with pgserver; /proc does without it
    import psutil
except ImportError:  # pragma: no cover
    psutil = None

logger = logging.getLogger("bench.load_support")

WORKER_START_TIMEOUT_SECONDS = 120.0
IDLE_TIMEOUT_SECONDS = 120.0
HEALTH_KEY = default_queue_name + health_check_key_suffix
MIB = 1024 * 1024


# --- the product's processes -----------------------------------------------------------


@dataclass
class Member:
    """One process of the fleet."""

    name: str  # web-0, worker-1 ...: also its PostgreSQL application_name
    process: asyncio.subprocess.Process
    url: str | None = None  # a web process's base URL

    @property
    def pid(self) -> int:
        return self.process.pid


@dataclass
class Fleet:
    webs: list[Member] = field(default_factory=list)
    workers: list[Member] = field(default_factory=list)
    secret_key: str = ""

    @property
    def urls(self) -> list[str]:
        return [m.url for m in self.webs if m.url]

    @property
    def members(self) -> list[Member]:
        return [*self.webs, *self.workers]


def named_url(database_url: str, name: str) -> str:
    """The database URL with application_name=`name` (asyncpg passes unknown query parameters
    to the server as settings)."""
    parts = urlsplit(database_url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "application_name"]
    query.append(("application_name", name))
    return urlunsplit(parts._replace(query=urlencode(query)))


def worker_env(database_url: str, redis_url: str, secret_key: str, name: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": named_url(database_url, name),
        "REDIS_URL": redis_url,
        "SECRET_KEY": secret_key,
        "LOG_LEVEL": "INFO",  # the production default: arq logs each job
    }


async def start_worker(
    argv: list[str],
    env: dict[str, str],
    log_path: Path,
    redis: ArqRedis,
    health_key: str = HEALTH_KEY,
) -> asyncio.subprocess.Process:
    """A worker process, returned once it polls its queue (it wrote the health key, after its
    start-up). Started one at a time, so the key is its own."""
    await redis.delete(health_key)
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        process = await asyncio.create_subprocess_exec(
            *argv, cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=log_fd
        )
    finally:
        os.close(log_fd)
    deadline = time.monotonic() + WORKER_START_TIMEOUT_SECONDS
    while not await redis.exists(health_key):
        if process.returncode is not None or time.monotonic() > deadline:
            await stop(process)
            tail = (await asyncio.to_thread(log_path.read_text, errors="replace"))[-2000:]
            raise RuntimeError(f"a worker did not start:\n{tail}")
        await asyncio.sleep(0.1)
    return process


@contextlib.asynccontextmanager
async def fleet(
    database_url: str,
    redis_url: str,
    redis: ArqRedis,
    workdir: Path,
    *,
    web: int,
    workers: int,
    extra_env: dict[str, str] | None = None,
) -> AsyncIterator[Fleet]:
    """`web` web processes and `workers` worker processes, all up (stopped at the end, even
    when one fails to start)."""
    running = Fleet(secret_key=secrets.token_urlsafe(48))
    async with contextlib.AsyncExitStack() as stack:
        for n in range(workers):
            name = f"worker-{n}"
            argv = [sys.executable, "-m", "contactcenter", "worker"]
            env = {
                **worker_env(database_url, redis_url, running.secret_key, name),
                **(extra_env or {}),
            }
            process = await start_worker(argv, env, workdir / f"{name}.log", redis)
            stack.push_async_callback(stop, process)
            running.workers.append(Member(name, process))
        for n in range(web):
            name = f"web-{n}"
            started: list[asyncio.subprocess.Process] = []
            url = await stack.enter_async_context(
                web_process(
                    named_url(database_url, name),
                    redis_url,
                    workdir / f"{name}.log",
                    extra_env=extra_env,
                    secret_key=running.secret_key,
                    on_start=started.append,
                )
            )
            running.webs.append(Member(name, started[0], url))
        logger.info("%d web and %d worker process(es) up", web, workers)
        yield running


async def running_jobs(redis: ArqRedis) -> int:
    """Jobs started and not finished: an in-progress key whose job key is still there (arq
    keeps a cron job's in-progress key for a minute after it ends)."""
    prefix = in_progress_key_prefix.encode()
    running = 0
    async for key in redis.scan_iter(match=in_progress_key_prefix + "*"):
        running += await redis.exists(JOB_KEY_PREFIX.encode() + key[len(prefix) :])
    return running


async def wait_idle(redis: ArqRedis, queue: str = default_queue_name) -> bool:
    """Until no job runs and none is due (the workers' start-up jobs are done, the previous
    load is worked off); False if that did not happen in time."""
    deadline = time.monotonic() + IDLE_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        due = await redis.zcount(queue, "-inf", time.time() * 1000)
        if not due and not await running_jobs(redis):
            return True
        await asyncio.sleep(0.2)
    logger.warning("the workers did not become idle in %ss", IDLE_TIMEOUT_SECONDS)
    return False


# --- agents ------------------------------------------------------------------------------


async def seed_agents(pool: asyncpg.Pool, count: int, capacity: int) -> dict[int, str]:
    """`count` agents online in the default team; their ids and tokens."""
    tokens = {}
    for n in range(count):
        created = await create_agent(
            pool,
            name=f"Bench agent {n}",
            email=f"agent{n}@bench.example",
            role=Role.AGENT,
            team_name=None,
            capacity=capacity,
        )
        async with pool.acquire() as conn:
            await agents_store.set_presence(conn, created.id, Presence.ONLINE, utc_now())
        tokens[created.id] = created.token
    return tokens


# --- open-loop offers ------------------------------------------------------------------


@dataclass
class Offered:
    """One message sent on schedule."""

    due: float  # perf_counter when it was due to be sent
    measured: bool  # sent after the warm-up
    started: float = 0.0
    acked: float | None = None
    conversation_id: int | None = None
    error: str | None = None


@dataclass
class OfferResult:
    rate: float
    sent: list[Offered]
    elapsed: float  # from the first send due to the last one started

    @property
    def acknowledged(self) -> list[Offered]:
        return [o for o in self.sent if o.acked is not None and o.conversation_id is not None]

    def conversation_ids(self) -> list[int]:
        return [o.conversation_id for o in self.acknowledged if o.conversation_id is not None]

    def summary(self) -> dict[str, Any]:
        failed = [o for o in self.sent if o.error is not None]
        acks = sorted(o.acked - o.started for o in self.acknowledged if o.acked and o.measured)
        lags = sorted(o.started - o.due for o in self.sent if o.measured)
        return {
            "offered_per_second": self.rate,
            "sent": len(self.sent),
            "achieved_per_second": round(len(self.sent) / self.elapsed, 1) if self.elapsed else 0,
            "acknowledged": len(self.acknowledged),
            "errors": len(failed),
            "first_error": failed[0].error if failed else None,
            "ack_p50_ms": ms(percentile(acks, 50)),
            "ack_p99_ms": ms(percentile(acks, 99)),
            # how late the client sent (it must stay near 0 for the offered rate to be real)
            "send_lag_p99_ms": ms(percentile(lags, 99)),
        }


async def offer(
    rate: float, seconds: float, warmup: float, send: Callable[[], Awaitable[int]]
) -> OfferResult:
    """`rate` messages a second for `warmup` + `seconds`, each sent when due whatever the
    answers before it: `send` returns the conversation id the message went to."""
    count = max(1, round(rate * (warmup + seconds)))
    warm = round(rate * warmup)
    start = time.perf_counter() + 0.05
    sent: list[Offered] = []
    tasks: list[asyncio.Task[None]] = []

    async def one(item: Offered) -> None:
        item.started = time.perf_counter()
        try:
            item.conversation_id = await send()
        except Exception as exc:  # every failure counts; the first is reported
            item.error = f"{type(exc).__name__}: {exc}"[:300]
            return
        item.acked = time.perf_counter()

    for n in range(count):
        item = Offered(due=start + n / rate, measured=n >= warm)
        delay = item.due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        sent.append(item)
        tasks.append(asyncio.create_task(one(item)))
    elapsed = time.perf_counter() - start
    await asyncio.gather(*tasks)
    return OfferResult(rate=rate, sent=sent, elapsed=elapsed)


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def spread(values: Sequence[float]) -> dict[str, Any]:
    """p50, p99 and max, in ms, of latencies in seconds."""
    ordered = sorted(values)
    return {
        "p50_ms": ms(percentile(ordered, 50)),
        "p99_ms": ms(percentile(ordered, 99)),
        "max_ms": ms(ordered[-1] if ordered else 0.0),
    }


# --- assignment events ------------------------------------------------------------------


class AssignedEvents:
    """Follows the agents' event stream (what every inbox socket is fed): when each
    conversation.assigned event was added, by the stream entry id (Redis's clock, in ms),
    after the assignment committed."""

    def __init__(self, redis: ArqRedis) -> None:
        self.redis = redis
        self.at: dict[int, float] = {}  # conversation id -> epoch seconds of its first event
        self.assignee: dict[int, int] = {}  # conversation id -> the agent of its first event
        self.repeated = 0  # conversation.assigned events after a conversation's first
        self._task: asyncio.Task[None] | None = None
        self._waiters: dict[int, asyncio.Future[None]] = {}

    async def wait(self, conversation_id: int, *, within: float) -> int | None:
        """The agent the conversation was assigned to, once it is; None after `within`
        seconds."""
        if conversation_id not in self.assignee:
            waiter = self._waiters.setdefault(
                conversation_id, asyncio.get_running_loop().create_future()
            )
            try:
                await asyncio.wait_for(asyncio.shield(waiter), within)
            except TimeoutError:
                return None
            finally:
                self._waiters.pop(conversation_id, None)
        return self.assignee[conversation_id]

    async def __aenter__(self) -> AssignedEvents:
        newest = await self.redis.xrevrange(agent_events_stream(self.redis), count=1)
        last = newest[0][0] if newest else b"0-0"
        self._task = asyncio.create_task(self._follow(last))
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _follow(self, last: bytes | str) -> None:
        stream = agent_events_stream(self.redis)
        while True:
            answer = await self.redis.xread({stream: last}, count=1000, block=200)
            for _, entries in answer or []:
                for entry_id, fields in entries:
                    last = entry_id
                    self._take(entry_id, fields)

    def _take(self, entry_id: bytes | str, fields: dict[bytes, bytes]) -> None:
        try:
            event = json.loads(fields[EVENT_FIELD])
        except (KeyError, ValueError):
            return
        if not isinstance(event, dict) or event.get("type") != "conversation.assigned":
            return
        conversation_id, assignee_id = event.get("conversation_id"), event.get("assignee_id")
        if not isinstance(conversation_id, int) or not isinstance(assignee_id, int):
            return
        raw = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
        if conversation_id in self.at:
            self.repeated += 1
            return
        self.at[conversation_id] = int(raw.split("-")[0]) / 1000
        self.assignee[conversation_id] = assignee_id
        waiter = self._waiters.get(conversation_id)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


# --- probes ------------------------------------------------------------------------------


def rss_bytes(pid: int) -> int:
    if psutil is not None:
        return int(psutil.Process(pid).memory_info().rss)
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def local_tcp_ports(pid: int) -> set[int]:
    """The local ports of the process's TCP sockets."""
    if psutil is not None:
        return {c.laddr.port for c in psutil.Process(pid).net_connections(kind="tcp") if c.laddr}
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                columns = line.split()
                if len(columns) > 9 and columns[9] in inodes:
                    ports.add(int(columns[1].rsplit(":", 1)[1], 16))
    return ports


PG_CONNECTIONS = """
SELECT application_name, count(*) FROM pg_stat_activity
WHERE datname = current_database() GROUP BY 1
"""


async def connection_counts(
    pool: asyncpg.Pool, redis: ArqRedis, members: Sequence[Member]
) -> dict[str, dict[str, int | None]]:
    """Per process: its PostgreSQL connections (by application_name) and its Redis ones (the
    clients whose address is one of its ports)."""
    by_name = {r["application_name"]: r["count"] for r in await pool.fetch(PG_CONNECTIONS)}
    clients = await redis.client_list()
    redis_ports: list[int] = []
    for client in clients:
        host, _, port = str(client.get("addr", "")).rpartition(":")
        if host and port.isdigit():
            redis_ports.append(int(port))
    counts: dict[str, dict[str, int | None]] = {}
    for member in members:
        try:
            ports = local_tcp_ports(member.pid)
        except (OSError, ValueError):
            ports = set()
        counts[member.name] = {
            "pg_connections": by_name.get(member.name, 0),
            "redis_connections": sum(1 for port in redis_ports if port in ports),
        }
    return counts


def slope_per_minute(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) points, per minute (0 with fewer than 2)."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    cov = sum((t - mean_t) * (v - mean_v) for t, v in points)
    return cov / var * 60
