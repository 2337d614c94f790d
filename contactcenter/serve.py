"""The web process."""

from __future__ import annotations

import logging

from aiohttp import web

from contactcenter.api.app import create_app
from contactcenter.api.middleware import AccessLogger
from contactcenter.settings import Settings

logger = logging.getLogger(__name__)


def serve(settings: Settings) -> None:
    app = create_app(settings)

    async def announce(app: web.Application) -> None:
        logger.info("listening", extra={"url": f"http://{settings.host}:{settings.port}"})

    app.on_startup.append(announce)
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        access_log_class=AccessLogger,
        print=None,
        shutdown_timeout=10,
    )
