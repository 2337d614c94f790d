"""Chaos for the queue, short form (bench/chaos_queue.py with small numbers): workers killed with
SIGKILL, Redis flushed, Redis killed and started again empty, all while web chats stream in
over HTTP to the real web and worker processes; then nothing is lost, nothing is done twice,
no agent is over capacity, and every SLA timer is back. And the fixes those runs called for,
each on its own: a route job whose worker died mid-job runs again at the reconciler's next
pass; a worker waits out Redis going away instead of exiting, also when the connection drops
while it claims a job."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from bench import chaos_queue
from bench.chaos_support import HEALTH_KEY, RedisServer
from contactcenter.clock import utc_now
from contactcenter.conns import Conns, create_redis
from contactcenter.domain.enums import Channel, IdentityKind
from contactcenter.domain.messages import Identity, InboundMessage
from contactcenter.services import reconcile
from contactcenter.services.ingest import ingest
from contactcenter.settings import Settings
from tests.helpers import eventually, make_agent, make_worker, start_chat, stop_worker

# about 3 s of messages per scenario; the runs take about 10 s each
MESSAGES = 60
KILLS = 3
WORKERS = 2
SHORT = {
    "messages": MESSAGES,
    "rate": 20.0,
    "kills": KILLS,
    "workers": WORKERS,
    "max_jobs": 4,
    "agents": 3,
    "capacity": 2,
    "hold": 0.2,
    "sla_seconds": 3.0,
    "redis_down": 1.5,
    "settle_timeout": 40.0,
    "keep_logs": None,
}


async def chaos(scenario: str, server_urls: tuple[str, str], tmp_path: Path) -> dict[str, Any]:
    args = argparse.Namespace(scenario=scenario, **SHORT)
    return await chaos_queue.run_scenario(scenario, args, server_urls[0], tmp_path / scenario)


def assert_nothing_lost(result: dict[str, Any]) -> None:
    """Every message acknowledged, stored and routed once; the day's chats assigned once within
    capacity; every breach fired, every pending timer armed."""
    sent = MESSAGES
    assert result["settled"], result
    assert result["ok"], result
    assert result["sent"] == sent
    assert result["acknowledged"] == sent
    assert result["stored"] == sent
    assert result["routed"] == sent
    assert result["lost"] == 0
    assert result["duplicated"] == 0
    assert result["over_capacity"] == 0
    night = sent // chaos_queue.NIGHT_SHARE
    assert result["assigned"] == sent - night
    assert result["unassigned"] == 0
    assert result["breaches_due"] == night
    assert result["breaches_fired"] == night
    assert result["timers_pending"] == night  # each night chat's resolution timer
    assert result["timers_recovered"] == night
    assert result["timers_overdue"] == 0


async def test_workers_killed_again_and_again(server_urls: tuple[str, str], tmp_path: Path) -> None:
    result = await chaos("worker_kill", server_urls, tmp_path)

    assert_nothing_lost(result)
    faults = result["faults"]
    kills, workers = KILLS, WORKERS
    assert faults["kills"] == kills
    assert len(set(faults["killed_pids"])) == kills
    assert faults["worker_starts"] == workers + kills
    assert faults["workers_alive_at_end"] == workers
    # every first worker was killed and replaced
    assert not set(faults["first_worker_pids"]) & set(faults["last_worker_pids"])
    # at least one kill cut a route job before its commit (the case that used to stall)
    assert sum(faults["route_jobs_cut_before_commit"]) >= 1


async def test_redis_flushed_mid_stream(server_urls: tuple[str, str], tmp_path: Path) -> None:
    result = await chaos("redis_flush", server_urls, tmp_path)

    assert_nothing_lost(result)
    faults = result["faults"]
    assert faults["flushes"] == 1
    assert faults["keys_flushed"] > 0
    # timers armed before the flush and due after it fired all the same
    assert faults["timers_across_fault"] > 0
    assert faults["worker_starts"] == WORKERS


async def test_redis_restarted_empty_mid_stream(
    server_urls: tuple[str, str], tmp_path: Path
) -> None:
    result = await chaos("redis_restart", server_urls, tmp_path)

    assert_nothing_lost(result)
    faults = result["faults"]
    assert faults["restarts"] == 1
    assert faults["keys_lost"] > 0
    # the web kept acknowledging (and storing) while Redis was down
    assert faults["acknowledged_while_down"] > 0
    assert faults["timers_across_fault"] > 0
    # no worker exited: each waited for Redis to come back
    assert faults["worker_starts"] == WORKERS
    assert faults["first_worker_pids"] == faults["last_worker_pids"]


# --- the fixes, on their own -----------------------------------------------------------------


async def test_a_route_job_whose_worker_died_runs_again(
    client: TestClient[Any, Any],
    conns: Conns,
    redis: ArqRedis,
    db: asyncpg.Pool,
    run_jobs: Callable[..., Awaitable[int]],
) -> None:
    """A worker killed inside a route job leaves arq's in-progress key (ten minutes); the
    reconciler lets the job go, and the next worker routes the conversation."""
    await make_agent(db)
    chat = await start_chat(client)
    job_id = f"route:{chat['conversation_id']}:1"
    # what the killed worker left: the job in the queue, marked as started
    await redis.psetex(in_progress_key_prefix + job_id, 610_000, b"1")

    later = Conns(db=conns.db, redis=conns.redis, settings=conns.settings, clock=_later(10))
    report = await reconcile.reconcile(later)

    assert report.routes_released == 1
    assert not await redis.exists(in_progress_key_prefix + job_id)
    await asyncio.wait_for(run_jobs(), 30)
    routed = await db.fetchrow(
        "SELECT route_requested_at, assignee_id FROM conversations WHERE id = $1",
        chat["conversation_id"],
    )
    assert routed is not None
    assert routed["route_requested_at"] is None
    assert routed["assignee_id"] is not None


async def test_a_route_job_still_queued_is_left_alone(
    client: TestClient[Any, Any], conns: Conns, redis: ArqRedis
) -> None:
    """A route job that waits in the queue (not started) keeps its place: nothing to release."""
    chat = await start_chat(client)
    later = Conns(db=conns.db, redis=conns.redis, settings=conns.settings, clock=_later(10))

    report = await reconcile.reconcile(later)

    assert report.routes_released == 0
    assert report.routes_enqueued == 0
    assert await redis.exists(f"arq:job:route:{chat['conversation_id']}:1")


def _later(seconds: float) -> Callable[[], datetime]:
    return lambda: utc_now() + timedelta(seconds=seconds)


@contextlib.asynccontextmanager
async def own_redis(tmp_path: Path) -> AsyncIterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_a_worker_waits_out_redis_going_away(
    settings: Settings,
    db: asyncpg.Pool,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Redis killed under a polling worker and started again, empty: the worker keeps running
    and takes the next job, instead of its polling loop failing and the process exiting."""
    caplog.set_level(logging.WARNING, logger="workers.settings")
    async with own_redis(tmp_path) as server:
        own = settings.replace(redis_url=server.url())
        worker = make_worker(own, poll_delay=0.01)
        task = asyncio.create_task(worker.async_run())
        redis = await create_redis(own.redis)
        try:
            await eventually(lambda: redis.exists(HEALTH_KEY), within=30)

            await server.kill()

            async def waiting() -> bool:
                return any(r.name == "workers.settings" for r in caplog.records)

            await eventually(waiting, within=10)
            assert not task.done()
            await server.start()
            await make_agent(db)
            conversation_id = await _chat_to_route(Conns(db=db, redis=redis, settings=own))

            await eventually(lambda: _routed(db, conversation_id), within=30)
            assert not task.done()
        finally:
            if not await server.ping():
                await server.start()  # for the worker to stop cleanly
            await stop_worker(worker, task)
            await redis.aclose()


async def _chat_to_route(conns: Conns) -> int:
    """A web chat ingested as the web process does (its route job enqueued)."""
    result = await ingest(
        conns,
        InboundMessage(
            channel=Channel.WEB,
            external_id=f"new:{uuid.uuid4().hex}",
            text="Hello, anyone there?",
            identities=(Identity(IdentityKind.WEB, uuid.uuid4().hex),),
        ),
    )
    return result.conversation_id


async def _routed(db: asyncpg.Pool, conversation_id: int) -> bool:
    return bool(
        await db.fetchval(
            "SELECT route_requested_at IS NULL FROM conversations WHERE id = $1", conversation_id
        )
    )


async def test_a_claim_cut_by_redis_is_claimed_again(
    settings: Settings, conns: Conns, db: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the connection drops inside arq's claim of a job (a WATCH transaction), redis-py
    raises WatchError; the worker claims the job at its next poll, its slot given back (with
    one slot, a slot lost would leave the job unclaimed for ever), instead of exiting."""
    await make_agent(db)
    conversation_id = await _chat_to_route(conns)
    execute: Any = Pipeline.immediate_execute_command
    cut: list[tuple[Any, ...]] = []

    async def drop_once(self: Pipeline, *args: Any, **options: Any) -> Any:
        if args[0] == "EXISTS" and self.watching and not cut:
            cut.append(args)
            raise WatchError("A ConnectionError occurred on while watching one or more keys")
        return await execute(self, *args, **options)

    monkeypatch.setattr(Pipeline, "immediate_execute_command", drop_once)
    worker = make_worker(settings, burst=True, max_jobs=1)
    try:
        await asyncio.wait_for(worker.async_run(), 30)
    finally:
        await worker.close()

    assert cut, "the claim was not cut"
    assert await _routed(db, conversation_id)
