"""`contactcenter mail-listen`: a listener per mailbox, kept in step with the configuration."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import uuid

from channels.email.listener import MailboxListener
from contactcenter import db
from contactcenter.aio import cancel_and_wait
from contactcenter.conns import Conns, create_redis
from contactcenter.domain.mailboxes import Mailbox
from contactcenter.services import mailboxes
from contactcenter.settings import Settings

logger = logging.getLogger(__name__)

# how often the mailbox list is read again (an admin added, changed or disabled one)
RELOAD_SECONDS = 15.0


class MailListeners:
    """The running listeners, one per enabled mailbox with an IMAP server."""

    def __init__(self, conns: Conns) -> None:
        self.conns = conns
        self.owner = uuid.uuid4().hex  # this process, as lease holder
        self.running: dict[int, tuple[Mailbox, MailboxListener, asyncio.Task[None]]] = {}

    async def reload(self) -> None:
        wanted = {m.id: m for m in await mailboxes.listening(self.conns)}
        for mailbox_id, (mailbox, _, task) in list(self.running.items()):
            if wanted.get(mailbox_id) != mailbox:  # removed, disabled or changed
                await cancel_and_wait(task)
                del self.running[mailbox_id]
        for mailbox_id, mailbox in wanted.items():
            if mailbox_id not in self.running:
                listener = MailboxListener(self.conns, mailbox, owner=self.owner)
                task = asyncio.create_task(listener.run(), name=f"mailbox-{mailbox_id}")
                self.running[mailbox_id] = (mailbox, listener, task)
                logger.info("listening", extra={"mailbox_id": mailbox_id, "mailbox": mailbox.name})

    async def stop(self) -> None:
        await cancel_and_wait(*(task for _, _, task in self.running.values()))
        self.running.clear()


async def run_mail_listeners(settings: Settings) -> None:
    settings.require("database_url", "redis_url", "secret_key")
    pool = await db.create_pool(
        settings.database,
        min_size=1,
        max_size=settings.db_pool_max,
        statement_cache_size=settings.db_statement_cache_size,
    )
    redis = await create_redis(settings.redis)
    conns = Conns(db=pool, redis=redis, settings=settings)
    listeners = MailListeners(conns)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await mailboxes.sync_environment_mailbox(pool, settings)
        while not stop.is_set():
            await listeners.reload()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), RELOAD_SECONDS)
    finally:
        await listeners.stop()
        await redis.aclose()
        await pool.close()
