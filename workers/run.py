"""The worker process: `contactcenter worker`."""

from __future__ import annotations

import asyncio
import contextlib

from contactcenter.settings import Settings
from workers.settings import create_worker

SHUTDOWN_GRACE_SECONDS = 10


async def run_worker(settings: Settings) -> None:
    # built inside the loop it runs on; on SIGTERM it stops taking jobs and gives running ones
    # a grace period before cancelling them (a cancelled job is retried: every job is safe twice)
    worker = create_worker(settings, job_completion_wait=SHUTDOWN_GRACE_SECONDS)
    try:
        with contextlib.suppress(asyncio.CancelledError):  # SIGTERM/SIGINT end the main task
            await worker.async_run()
    finally:
        with contextlib.suppress(asyncio.CancelledError):  # jobs cancelled past the grace
            await worker.close()
