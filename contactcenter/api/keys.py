"""Typed application state."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from contactcenter.conns import Conns

if TYPE_CHECKING:
    from contactcenter.api.realtime import RealtimeHub

CONNS = web.AppKey("conns", Conns)
HUB: web.AppKey[RealtimeHub] = web.AppKey("hub")
REQUEST_ID = web.RequestKey("request_id", str)
