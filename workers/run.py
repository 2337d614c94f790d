"""The worker process: `contactcenter worker`."""

from __future__ import annotations

import asyncio
import contextlib

from contactcenter.settings import Settings
from workers.settings import create_worker


async def run_worker(settings: Settings) -> None:
    worker = create_worker(settings)  # built inside the loop it runs on
    try:
        with contextlib.suppress(asyncio.CancelledError):  # SIGTERM/SIGINT end the main task
            await worker.async_run()
    finally:
        await worker.close()
