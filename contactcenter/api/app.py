"""The web process: create_app(settings) and its resources."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from channels.email import webhook as email_webhook
from channels.sms import webhook as sms_webhook
from channels.web import api as web_channel
from contactcenter import db
from contactcenter.api import (
    admin_agents,
    admin_business_hours,
    admin_care,
    admin_channels,
    admin_routing_rules,
    admin_sla_policies,
    admin_teams,
    admin_templates,
    admin_tiers,
    audit,
    canned_responses,
    contact_import,
    contact_merge,
    contacts,
    conversation_tags,
    inbox,
    openapi,
    ops,
    realtime,
    reports,
    surveys,
)
from contactcenter.api.keys import CONNS, HUB
from contactcenter.api.middleware import error_envelope, request_context
from contactcenter.api.realtime import RealtimeHub
from contactcenter.clock import Clock, utc_now
from contactcenter.conns import Conns, create_redis
from contactcenter.services import mailboxes, sms
from contactcenter.settings import Settings

HUB_START_TIMEOUT_SECONDS = 5.0


def create_app(settings: Settings, *, clock: Clock = utc_now) -> web.Application:
    settings.require("database_url", "redis_url", "secret_key")
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[request_context, error_envelope],
    )

    async def resources(app: web.Application) -> AsyncIterator[None]:
        pool = await db.create_pool(
            settings.database,
            min_size=settings.db_pool_min,
            max_size=settings.db_pool_max,
            statement_cache_size=settings.db_statement_cache_size,
        )
        redis = await create_redis(settings.redis)
        app[CONNS] = Conns(db=pool, redis=redis, settings=settings, clock=clock)
        await mailboxes.sync_environment_mailbox(pool, settings)
        await sms.sync_environment_number(pool, settings)
        hub = RealtimeHub(redis)
        app[HUB] = hub
        hub_task = asyncio.create_task(hub.run(), name="realtime-hub")
        # start answering once subscribed, so the first events are not missed; a Redis that
        # is away does not keep the API down (the hub keeps trying)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(hub.connected.wait(), HUB_START_TIMEOUT_SECONDS)
        try:
            yield
        finally:
            hub.close_all()
            hub_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await hub_task
            await redis.aclose()
            await pool.close()

    async def close_sockets(app: web.Application) -> None:
        # open WebSockets would otherwise hold the shutdown for its whole grace period
        app[HUB].close_all()

    app.cleanup_ctx.append(resources)
    app.on_shutdown.append(close_sockets)
    ops.setup_routes(app)
    openapi.setup_routes(app)
    inbox.setup_routes(app)
    conversation_tags.setup_routes(app)
    realtime.setup_routes(app)
    admin_channels.setup_routes(app)
    admin_teams.setup_routes(app)
    admin_agents.setup_routes(app)
    admin_business_hours.setup_routes(app)
    admin_sla_policies.setup_routes(app)
    admin_routing_rules.setup_routes(app)
    admin_tiers.setup_routes(app)
    admin_templates.setup_routes(app)
    admin_care.setup_routes(app)
    audit.setup_routes(app)
    canned_responses.setup_routes(app)
    contacts.setup_routes(app)
    contact_merge.setup_routes(app)
    reports.setup_routes(app)
    surveys.setup_routes(app)
    contact_import.setup_routes(app, settings)
    web_channel.setup_routes(app)
    email_webhook.setup_routes(app)
    sms_webhook.setup_routes(app)
    return app
