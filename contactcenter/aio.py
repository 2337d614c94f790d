"""Small asyncio helpers the processes share."""

from __future__ import annotations

import asyncio

# how long to wait for cancelled tasks before cancelling them again
RECANCEL_SECONDS = 1.0


async def cancel_and_wait(*tasks: asyncio.Task[object]) -> None:
    """Cancel the tasks and wait until every one has ended, cancelling again those still
    running: Python 3.11's asyncio.wait_for can swallow a cancellation that arrives as its
    inner awaitable completes, and a task that lost its cancellation that way would otherwise
    be waited for forever (a listener that never stops, a shutdown that hangs)."""
    pending = {task for task in tasks if not task.done()}
    for task in pending:
        task.cancel()
    while pending:
        _, pending = await asyncio.wait(pending, timeout=RECANCEL_SECONDS)
        for task in pending:
            task.cancel()
