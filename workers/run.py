"""The worker process: `contactcenter worker`."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from contactcenter.settings import Settings
from workers.settings import create_worker

logger = logging.getLogger(__name__)

SHUTDOWN_GRACE_SECONDS = 10
# closing writes to Redis, which the worker would wait for: a stop while Redis is away ends
# after this (arq's health key is left to expire)
CLOSE_TIMEOUT_SECONDS = 5


async def run_worker(settings: Settings) -> None:
    # built inside the loop it runs on; on SIGTERM it stops taking jobs and gives running ones
    # a grace period before cancelling them (a cancelled job is retried: every job is safe twice)
    worker = create_worker(settings, job_completion_wait=SHUTDOWN_GRACE_SECONDS)
    try:
        with contextlib.suppress(asyncio.CancelledError):  # SIGTERM/SIGINT end the main task
            await worker.async_run()
    finally:
        try:
            with contextlib.suppress(asyncio.CancelledError):  # jobs cancelled past the grace
                async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
                    await worker.close()
        except TimeoutError:
            logger.warning("the worker stopped without closing: Redis did not answer")
