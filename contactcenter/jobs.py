"""Enqueueing the worker's jobs by name, with deterministic ids.

PostgreSQL is the truth: a job that cannot be enqueued (Redis away) is found again by the
reconciler, so enqueueing never fails the caller's unit of work; it only logs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Any

from arq.constants import in_progress_key_prefix
from redis.exceptions import RedisError

from contactcenter.conns import REDIS_CALL_TIMEOUT_SECONDS, Conns

logger = logging.getLogger(__name__)

ROUTE_CONVERSATION = "route_conversation"
ASSIGN_WAITING = "assign_waiting"
SEND_MESSAGE = "send_message"
SLA_TIMER = "sla_timer"
SEND_SLA_NOTICE = "send_sla_notice"
CARE_SEND = "care_send"


async def _enqueue(
    conns: Conns,
    function: str,
    *args: Any,
    job_id: str | None,
    defer_until: datetime | None = None,
) -> bool:
    """True when a job was queued now; False when one with that id waits already, or on error."""
    try:
        async with asyncio.timeout(REDIS_CALL_TIMEOUT_SECONDS):
            job = await conns.redis.enqueue_job(
                function, *args, _job_id=job_id, _defer_until=defer_until
            )
    except (RedisError, OSError) as exc:  # TimeoutError is an OSError
        logger.warning(
            "enqueue failed; the reconciler will pick it up",
            extra={"job": function, "job_id": job_id, "error": type(exc).__name__},
        )
        return False
    return job is not None


def _route_job_id(conversation_id: int, route_version: int) -> str:
    return f"route:{conversation_id}:{route_version}"


async def enqueue_route(conns: Conns, conversation_id: int, route_version: int) -> bool:
    return await _enqueue(
        conns,
        ROUTE_CONVERSATION,
        conversation_id,
        job_id=_route_job_id(conversation_id, route_version),
    )


async def release_orphaned_route(conns: Conns, conversation_id: int, route_version: int) -> bool:
    """Let a route job that a worker started and never finished run again; True if it was.

    A worker killed mid-job leaves arq's in-progress key behind, and arq starts the job again
    only once that key expires (the worker's longest job timeout + 10 s: ten minutes), while
    its id, taken, keeps enqueue_route from queueing it anew. The reconciler calls this for a
    route due longer than its patience, when a route job takes milliseconds: without the key
    the job, still in the queue, is started again at the next poll. Had its worker lived after
    all, the job runs twice, which routing is safe to (invariant 5)."""
    key = in_progress_key_prefix + _route_job_id(conversation_id, route_version)
    try:
        async with asyncio.timeout(REDIS_CALL_TIMEOUT_SECONDS):
            released = await conns.redis.delete(key)
    except (RedisError, OSError) as exc:  # TimeoutError is an OSError
        logger.warning(
            "releasing a route job failed",
            extra={"conversation_id": conversation_id, "error": type(exc).__name__},
        )
        return False
    if released:
        logger.warning(
            "route job released to run again", extra={"conversation_id": conversation_id}
        )
    return bool(released)


async def enqueue_assign_waiting(conns: Conns, team_ids: list[int]) -> None:
    # no fixed id: a fill must run after every change that frees a slot, even while an
    # earlier fill for the same team is running
    for team_id in team_ids:
        await _enqueue(conns, ASSIGN_WAITING, team_id, job_id=None)


async def enqueue_send(conns: Conns, message_id: int) -> bool:
    return await _enqueue(conns, SEND_MESSAGE, message_id, job_id=f"send:{message_id}")


async def enqueue_sla_timer(conns: Conns, conversation_id: int, due_at: datetime) -> bool:
    """The conversation's SLA timer for `due_at`; the instant is part of the id, so a due time
    that moves arms a new job and the old one finds nothing to do.

    arq keeps a deferred job's instant in whole milliseconds and compares it with its own
    clock rounded too, so the job is deferred to the next whole millisecond after the instant
    (never a moment early, when it would find nothing due yet). An instant already past is
    deferred to now: arq gives a job a day from its instant to live, so one more than a day
    overdue would be dropped unrun."""
    micros = round(due_at.timestamp() * 1_000_000)
    run_at_ms = max(micros // 1000 + 1, time.time_ns() // 1_000_000)
    return await _enqueue(
        conns,
        SLA_TIMER,
        conversation_id,
        job_id=f"sla:{conversation_id}:{micros}",
        defer_until=datetime.fromtimestamp(run_at_ms / 1000, UTC),
    )


async def enqueue_sla_notice(conns: Conns, event_id: int) -> bool:
    return await _enqueue(conns, SEND_SLA_NOTICE, event_id, job_id=f"sla-notice:{event_id}")


async def enqueue_care_send(conns: Conns, care_send_id: int) -> bool:
    """The job that decides and queues one greeting or follow-up (once: PostgreSQL decides)."""
    return await _enqueue(conns, CARE_SEND, care_send_id, job_id=f"care:{care_send_id}")
