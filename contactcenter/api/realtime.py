"""Real-time push: one Redis pub/sub subscription per web process, fanned out to its sockets.

Agents' inbox events and visitors' replies are published by any process (web or worker) to
Redis; every web process receives them and hands each to the local sockets it concerns.
After Redis comes back from an outage, visitor sockets are told to catch up from PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import defaultdict
from typing import Any

from aiohttp import WSMsgType, web
from redis.asyncio import Redis
from redis.exceptions import RedisError

from contactcenter.api.auth import require_agent
from contactcenter.api.keys import HUB
from contactcenter.domain.agents import Agent
from contactcenter.events import agent_events_channel, visitor_prefix

logger = logging.getLogger(__name__)

QUEUE_SIZE = 1000
HEARTBEAT_SECONDS = 25.0
RESUBSCRIBE_BACKOFF = (0.1, 0.5, 1.0, 2.0, 5.0)

# what a visitor socket receives when it may have missed something and must re-read
RESYNC: dict[str, Any] = {"type": "resync"}
# what a socket's queue receives when the socket must close
CLOSE: dict[str, Any] = {"type": "close"}


class RealtimeHub:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._agent_channel = agent_events_channel(redis)
        self._visitor_prefix = visitor_prefix(redis)
        self._agents: dict[asyncio.Queue[dict[str, Any]], Agent] = {}
        self._visitors: dict[int, set[asyncio.Queue[dict[str, Any]]]] = defaultdict(set)
        self.connected = asyncio.Event()

    def add_agent(self, agent: Agent) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        self._agents[queue] = agent
        return queue

    def remove_agent(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self._agents.pop(queue, None)

    def add_visitor(self, conversation_id: int) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        self._visitors[conversation_id].add(queue)
        return queue

    def remove_visitor(self, conversation_id: int, queue: asyncio.Queue[dict[str, Any]]) -> None:
        queues = self._visitors.get(conversation_id)
        if queues is not None:
            queues.discard(queue)
            if not queues:
                del self._visitors[conversation_id]

    async def run(self) -> None:
        """Stay subscribed for the life of the process, reconnecting after Redis outages."""
        failures = 0
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(self._agent_channel)
                await pubsub.psubscribe(self._visitor_prefix + "*")
                if failures:
                    logger.info("realtime resubscribed")
                    self._after_outage()
                failures = 0
                self.connected.set()
                async for message in pubsub.listen():
                    try:
                        self._dispatch(message)
                    except Exception:  # one bad payload must not silence every socket
                        logger.exception("realtime payload not dispatched")
            except (RedisError, OSError) as exc:
                self.connected.clear()
                delay = RESUBSCRIBE_BACKOFF[min(failures, len(RESUBSCRIBE_BACKOFF) - 1)]
                failures += 1
                logger.warning(
                    "realtime subscription lost",
                    extra={"error": type(exc).__name__, "retry_in": delay},
                )
                await asyncio.sleep(delay)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _dispatch(self, message: dict[str, Any]) -> None:
        if message.get("type") not in ("message", "pmessage"):
            return
        channel = message["channel"]
        channel = channel.decode() if isinstance(channel, bytes) else channel
        try:
            payload = json.loads(message["data"])
        except (TypeError, ValueError):
            payload = None
        if not isinstance(payload, dict):
            logger.warning("unreadable realtime payload", extra={"channel": channel})
            return
        if channel == self._agent_channel:
            for queue, agent in list(self._agents.items()):
                if _agent_may_see(agent, payload):
                    _offer(queue, payload)
        elif channel.startswith(self._visitor_prefix):
            suffix = channel[len(self._visitor_prefix) :]
            if suffix.isascii() and suffix.isdigit():
                for queue in list(self._visitors.get(int(suffix), ())):
                    _offer(queue, payload)

    def _after_outage(self) -> None:
        """Events published while we were away are gone: visitor sockets re-read their replies
        from PostgreSQL, agent clients are told to re-read their inbox."""
        self._broadcast_visitors(RESYNC)
        for queue in list(self._agents):
            _offer(queue, {"type": "resync"})

    def _broadcast_visitors(self, payload: dict[str, Any]) -> None:
        for queues in list(self._visitors.values()):
            for queue in list(queues):
                _offer(queue, payload)

    def close_all(self) -> None:
        for queue in list(self._agents):
            _offer(queue, CLOSE)
        self._broadcast_visitors(CLOSE)


def _agent_may_see(agent: Agent, event: dict[str, Any]) -> bool:
    if event.get("conversation_id") is None:  # team-level news, such as presence
        return agent.sees_everything or event.get("team_id") in agent.team_ids
    return agent.can_see(event.get("team_id"), event.get("assignee_id"))


def _offer(queue: asyncio.Queue[dict[str, Any]], payload: dict[str, Any]) -> None:
    """A socket too slow to keep up is closed rather than let its queue grow without end."""
    try:
        queue.put_nowait(payload)
    except asyncio.QueueFull:
        with contextlib.suppress(asyncio.QueueEmpty):
            while True:
                queue.get_nowait()
        queue.put_nowait(CLOSE)


async def drain_incoming(ws: web.WebSocketResponse, queue: asyncio.Queue[dict[str, Any]]) -> None:
    """Read (and ignore) what the client sends until it goes; then wake the sender loop."""
    try:
        async for message in ws:
            if message.type == WSMsgType.ERROR:
                break
    finally:
        _offer(queue, CLOSE)


async def agent_events(request: web.Request) -> web.StreamResponse:
    """GET /v1/events: the signed-in agent's inbox events, as they happen."""
    agent = await require_agent(request, allow_query=True)
    hub = request.app[HUB]
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT_SECONDS)
    await ws.prepare(request)
    queue = hub.add_agent(agent)
    reader = asyncio.create_task(drain_incoming(ws, queue))
    try:
        await ws.send_json({"type": "hello", "agent_id": agent.id})
        while True:
            event = await queue.get()
            if event is CLOSE:
                break
            await ws.send_json(event)
    except (ConnectionResetError, RuntimeError):
        pass  # the client went away mid-send
    finally:
        hub.remove_agent(queue)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        await ws.close()
    return ws


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/v1/events", agent_events)
