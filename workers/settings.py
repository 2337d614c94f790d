"""The worker's arq settings, built from our Settings (so tests can pass their own)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from arq import cron
from arq.connections import RedisSettings
from arq.worker import Worker, func
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.exceptions import WatchError

from channels.registry import build_senders
from contactcenter import db, metrics
from contactcenter.clock import Clock, utc_now
from contactcenter.conns import Conns, redis_settings
from contactcenter.domain import language
from contactcenter.services import mailboxes, sms
from contactcenter.settings import Settings
from workers import jobs

logger = logging.getLogger(__name__)

# how often the reconciler looks for work whose job was lost
RECONCILE_EVERY_SECONDS = 2

# short timeouts keep arq's in-progress lock short (the longest timeout + 10 s), so a job whose
# worker was killed is retried soon; the reconciler in PostgreSQL is the real guarantee
ROUTE_TIMEOUT = 15
# above the SMTP client's own 30 s per step, so a send is never cut between its steps
SEND_TIMEOUT = 120
CRON_TIMEOUT = 30
# the tier recompute is checked this often (it runs once a day, at TIER_RECOMPUTE_HOUR UTC,
# or at the first check after it when no worker was up), and may take this long (a million
# contacts take seconds; another worker's run is waited for)
TIER_CHECK_MINUTES = set(range(0, 60, 10))
TIER_RECOMPUTE_TIMEOUT = 600
# a million contacts' birthdays are scanned in well under a second; a backlog of sends is
# enqueued DISPATCH_BATCH at a time
CARE_TICK_TIMEOUT = 120


# Redis away (restarting, failing over): the worker waits for it, every call retried with a
# backoff growing to this, instead of its polling loop failing and the process exiting, as
# Celery's workers do. A job's own calls stay bounded (conns.REDIS_CALL_TIMEOUT_SECONDS), and
# the reconciler re-enqueues from PostgreSQL what an emptied Redis lost.
REDIS_RETRY_CAP_SECONDS = 2.0
# while it waits, a warning every this many failed attempts
REDIS_RETRY_LOG_EVERY = 30


class _WaitForRedis(ExponentialBackoff):
    def compute(self, failures: int) -> float:
        if failures % REDIS_RETRY_LOG_EVERY == 1:
            logger.warning("Redis is not answering; the worker waits", extra={"tries": failures})
        delay: float = super().compute(failures)
        return delay


def worker_redis_settings(url: str) -> RedisSettings:
    settings = redis_settings(url)
    settings.retry_on_error = [RedisConnectionError, RedisTimeoutError, OSError]
    settings.retry = Retry(_WaitForRedis(cap=REDIS_RETRY_CAP_SECONDS, base=0.05), retries=-1)
    return settings


class WaitingWorker(Worker):
    """arq's Worker, waiting out Redis going away (worker_redis_settings). One call is not
    retried: a command inside a WATCH transaction (arq claiming a job, or queueing a cron job),
    where redis-py raises WatchError when the connection drops, which would end arq's polling
    loop and the process. Here it ends that poll only; the next one claims the job again."""

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        try:
            await super().start_jobs(job_ids)
        except WatchError:
            # arq (0.28) took a slot for the job before it began claiming it: give it back
            self.job_counter -= 1
            self.sem.release()
            raise

    async def _poll_iteration(self) -> None:
        try:
            await super()._poll_iteration()
        except WatchError:
            logger.warning("Redis dropped the connection in a transaction; polling again")


def worker_options(settings: Settings, *, clock: Clock = utc_now) -> dict[str, Any]:
    # the secret unseals mailbox passwords and signs the conversation token of e-mail replies
    settings.require("database_url", "redis_url", "secret_key")

    async def startup(ctx: dict[str, Any]) -> None:
        # a send job holds a connection while its sender reads with another: with fewer than
        # two per job, a full worker would wait on itself
        pool = await db.create_pool(
            settings.database,
            min_size=settings.db_pool_min,
            max_size=max(settings.db_pool_max, 2 * settings.worker_max_jobs + 2),
            statement_cache_size=settings.db_statement_cache_size,
        )
        conns = Conns(db=pool, redis=ctx["redis"], settings=settings, clock=clock)
        ctx["conns"] = conns
        # replies can go out through the environment's mailbox without a mail process running
        await mailboxes.sync_environment_mailbox(pool, settings)
        await sms.sync_environment_number(pool, settings)
        ctx["senders"] = build_senders(conns)
        # routing rules read the language of every message
        await asyncio.to_thread(language.load_model)

    async def shutdown(ctx: dict[str, Any]) -> None:
        conns: Conns | None = ctx.get("conns")
        if conns is not None:
            await conns.db.close()

    return {
        "functions": [
            func(jobs.route_conversation, timeout=ROUTE_TIMEOUT, max_tries=10),
            func(jobs.assign_waiting, timeout=ROUTE_TIMEOUT, max_tries=10),
            # attempts are bounded in PostgreSQL (delivery.MAX_SEND_ATTEMPTS), not by arq
            func(jobs.send_message, timeout=SEND_TIMEOUT, max_tries=100),
            # a lost or failed timer is caught by the sweeper; a few tries cover a passing error
            func(jobs.sla_timer, timeout=ROUTE_TIMEOUT, max_tries=5),
            func(jobs.send_sla_notice, timeout=SEND_TIMEOUT, max_tries=100),
            func(jobs.care_send, timeout=ROUTE_TIMEOUT, max_tries=5),
        ],
        "cron_jobs": [
            cron(
                jobs.reconcile,
                second=set(range(0, 60, RECONCILE_EVERY_SECONDS)),
                timeout=CRON_TIMEOUT,
                run_at_startup=True,
            ),
            # every minute: a greeting goes at its local hour in every time zone, and what
            # quiet hours held back goes once they end
            cron(jobs.care_tick, second=30, timeout=CARE_TICK_TIMEOUT, run_at_startup=True),
            cron(
                jobs.recompute_tiers,
                minute=TIER_CHECK_MINUTES,
                timeout=TIER_RECOMPUTE_TIMEOUT,
                run_at_startup=True,
            ),
        ],
        "redis_settings": worker_redis_settings(settings.redis),
        "on_startup": startup,
        "on_shutdown": shutdown,
        "on_job_start": jobs.on_job_start,
        "on_job_end": metrics.job_ended,
        "max_jobs": settings.worker_max_jobs,
        "poll_delay": settings.worker_poll_seconds,
        "keep_result": 0,
        "job_timeout": SEND_TIMEOUT,
    }


def create_worker(settings: Settings, *, clock: Clock = utc_now, **overrides: Any) -> Worker:
    return WaitingWorker(**{**worker_options(settings, clock=clock), **overrides})
