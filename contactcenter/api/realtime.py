"""Real-time push: one Redis follower per web process, fanned out to its sockets.

Agents' inbox events are read from a Redis stream, in the stream's order, and each socket
gets those its agent may see; a socket opened with the id of the last event a client saw is
first replayed what it missed. Visitors' replies arrive over pub/sub. After Redis comes back
from an outage, sockets are told to catch up from PostgreSQL ({"type": "resync"}).
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
from contactcenter.api.errors import ApiError
from contactcenter.api.event_frames import (
    EventFrame,
    EventId,
)
from contactcenter.api.keys import HUB
from contactcenter.api.openapi import Media, documented, left_out
from contactcenter.api.parsing import Body
from contactcenter.conns import REDIS_CALL_TIMEOUT_SECONDS
from contactcenter.domain.agents import Agent
from contactcenter.events import (
    agent_events_stream,
    event_key,
    events_after,
    latest_event_id,
    missed_beyond_recall,
    parse_event_id,
    read_entries,
    visitor_prefix,
)

logger = logging.getLogger(__name__)

QUEUE_SIZE = 1000
HEARTBEAT_SECONDS = 25.0
RESUBSCRIBE_BACKOFF = (0.1, 0.5, 1.0, 2.0, 5.0)
# the follower waits this long for new agent events per call (a Redis that stops answering
# is noticed after it and REDIS_CALL_TIMEOUT_SECONDS more)
STREAM_BLOCK_MS = 5000
STREAM_BATCH = 500
REPLAY_PAGE = 500

# what a socket receives when it may have missed something and must re-read
RESYNC: dict[str, Any] = {"type": "resync"}
# what a socket's queue receives when the socket must close
CLOSE: dict[str, Any] = {"type": "close"}


class RealtimeHub:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._agent_stream = agent_events_stream(redis)
        self._visitor_prefix = visitor_prefix(redis)
        self._agents: dict[asyncio.Queue[dict[str, Any]], Agent] = {}
        self._visitors: dict[int, set[asyncio.Queue[dict[str, Any]]]] = defaultdict(set)
        self._following = {"agents": False, "visitors": False}
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

    def _follows(self, what: str, up: bool) -> None:
        self._following[what] = up
        if all(self._following.values()):
            self.connected.set()
        else:
            self.connected.clear()

    async def run(self) -> None:
        """Follow agent events and visitor channels for the life of the process, reconnecting
        after Redis outages."""
        agents = asyncio.create_task(self._follow_agent_events(), name="realtime-agent-events")
        try:
            await self._follow_visitor_channels()
        finally:
            agents.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await agents

    async def _follow_agent_events(self) -> None:
        failures = 0
        cursor: str | None = None  # the id of the last entry dispatched
        while True:
            try:
                if cursor is None:
                    async with asyncio.timeout(REDIS_CALL_TIMEOUT_SECONDS):
                        cursor = await latest_event_id(self.redis)
                elif failures:
                    # what was published meanwhile is read on from the cursor; but a publish
                    # that failed while Redis was away is gone: clients re-read their inbox
                    logger.info("agent events followed again")
                    self._broadcast_agents(RESYNC)
                failures = 0
                self._follows("agents", True)
                while True:
                    async with asyncio.timeout(STREAM_BLOCK_MS / 1000 + REDIS_CALL_TIMEOUT_SECONDS):
                        answer = await self.redis.xread(
                            {self._agent_stream: cursor}, count=STREAM_BATCH, block=STREAM_BLOCK_MS
                        )
                    for _stream, entries in answer or ():
                        if entries:
                            cursor = _text(entries[-1][0])
                        for event in read_entries(entries):
                            self._dispatch_agent_event(event)
            except (RedisError, OSError) as exc:  # TimeoutError is an OSError
                self._follows("agents", False)
                delay = RESUBSCRIBE_BACKOFF[min(failures, len(RESUBSCRIBE_BACKOFF) - 1)]
                failures += 1
                logger.warning(
                    "agent events lost",
                    extra={"error": type(exc).__name__, "retry_in": delay},
                )
                await asyncio.sleep(delay)

    async def _follow_visitor_channels(self) -> None:
        failures = 0
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.psubscribe(self._visitor_prefix + "*")
                if failures:
                    logger.info("realtime resubscribed")
                    # replies published while we were away are gone: visitor sockets re-read
                    # them from PostgreSQL
                    self._broadcast_visitors(RESYNC)
                failures = 0
                self._follows("visitors", True)
                async for message in pubsub.listen():
                    try:
                        self._dispatch_visitor_message(message)
                    except Exception:  # one bad payload must not silence every socket
                        logger.exception("realtime payload not dispatched")
            except (RedisError, OSError) as exc:
                self._follows("visitors", False)
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

    def _dispatch_agent_event(self, event: dict[str, Any]) -> None:
        for queue, agent in list(self._agents.items()):
            if _agent_may_see(agent, event):
                _offer(queue, event)

    def _dispatch_visitor_message(self, message: dict[str, Any]) -> None:
        if message.get("type") != "pmessage":
            return
        channel = _text(message["channel"])
        try:
            payload = json.loads(message["data"])
        except (TypeError, ValueError):
            payload = None
        if not isinstance(payload, dict):
            logger.warning("unreadable realtime payload", extra={"channel": channel})
            return
        if channel.startswith(self._visitor_prefix):
            suffix = channel[len(self._visitor_prefix) :]
            if suffix.isascii() and suffix.isdigit():
                for queue in list(self._visitors.get(int(suffix), ())):
                    _offer(queue, payload)

    def _broadcast_agents(self, payload: dict[str, Any]) -> None:
        for queue in list(self._agents):
            _offer(queue, payload)

    def _broadcast_visitors(self, payload: dict[str, Any]) -> None:
        for queues in list(self._visitors.values()):
            for queue in list(queues):
                _offer(queue, payload)

    def close_all(self) -> None:
        self._broadcast_agents(CLOSE)
        self._broadcast_visitors(CLOSE)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


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


# --- what GET /v1/events sends: one JSON text frame per message --------------------------------


class EventsQuery(Body):
    """Documentation only: agent_events reads ?after= (or Last-Event-ID) and ?token= by hand."""

    after: EventId = left_out(
        "the id of the last event the client saw: the socket first replays the events since "
        "(the Last-Event-ID header says the same)"
    )
    token: str = left_out(
        "the agent's token, for browsers that cannot set Authorization on a WebSocket"
    )


def _resume_after(request: web.Request) -> str | None:
    """?after=<event id> (or the Last-Event-ID header): the last event the client saw."""
    after = request.query.get("after", request.headers.get("Last-Event-ID"))
    if after is not None and parse_event_id(after) is None:
        raise ApiError(
            400,
            "invalid_event_id",
            "after is the id of an event this server sent, such as 1712345678901-0",
            {"field": "after"},
        )
    return after


async def _catch_up(
    ws: web.WebSocketResponse, redis: Redis, agent: Agent, after: str | None
) -> tuple[int, int] | None:
    """Say hello, then send what the agent missed since `after` (or a resync when some of it
    is no longer kept); answer the id a live event must follow to be new to this socket."""
    try:
        async with asyncio.timeout(REDIS_CALL_TIMEOUT_SECONDS):
            latest = await latest_event_id(redis)
            lost = after is not None and await missed_beyond_recall(redis, after)
    except (RedisError, OSError):  # Redis is away: the hub sends a resync when it is back
        await ws.send_json({"type": "hello", "agent_id": agent.id, "last_event_id": after})
        await ws.send_json(RESYNC)
        return None if after is None else event_key(after)
    start = latest if after is None or lost else after
    await ws.send_json({"type": "hello", "agent_id": agent.id, "last_event_id": start})
    if lost:
        await ws.send_json(RESYNC)
    while True:
        try:
            async with asyncio.timeout(REDIS_CALL_TIMEOUT_SECONDS):
                page, read_to = await events_after(redis, start, REPLAY_PAGE)
        except (RedisError, OSError):
            await ws.send_json(RESYNC)
            return event_key(start)
        for event in page:
            if _agent_may_see(agent, event):
                await ws.send_json(event)
        if read_to == start:
            return event_key(start)
        start = read_to


@documented(
    "Inbox events as they happen (WebSocket)",
    access="any",
    query=EventsQuery,
    responses={
        101: Media(
            "application/json",
            EventFrame,
            "Switching Protocols. The socket then sends JSON text frames (this schema): first "
            "hello; then, with ?after=, the events since that id the caller may see (a resync "
            "instead when some are no longer kept); then each new event as it happens. A resync "
            "frame may come at any time: events may have been missed, so re-read the inbox. "
            "What the client sends is ignored.",
        )
    },
)
async def agent_events(request: web.Request) -> web.StreamResponse:
    """A WebSocket of the caller's inbox events: new messages and delivery statuses,
    assignments, queueing, status and tag changes, overflows, recoveries, SLA warnings and breaches,
    and their teams' presence changes, each only for conversations the caller may see. Each
    event has an id; reconnecting with ?after=<id> (or Last-Event-ID) replays what came
    since."""
    agent = await require_agent(request, allow_query=True)
    after = _resume_after(request)
    hub = request.app[HUB]
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT_SECONDS)
    await ws.prepare(request)
    # listen before reading the backlog, so nothing falls between the two
    queue = hub.add_agent(agent)
    reader = asyncio.create_task(drain_incoming(ws, queue))
    try:
        # events come in the stream's order, so one already sent is one not after this
        sent_up_to = await _catch_up(ws, hub.redis, agent, after)
        while True:
            event = await queue.get()
            if event is CLOSE:
                break
            event_id = event.get("id")
            if isinstance(event_id, str):
                if sent_up_to is not None and event_key(event_id) <= sent_up_to:
                    continue
                sent_up_to = event_key(event_id)
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
