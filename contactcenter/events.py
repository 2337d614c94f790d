"""Real-time events through Redis, so every web process can push them to its sockets.

Agents' inbox events are appended to a Redis stream: the stream entry id is the event's `id`,
and a client that reconnects with the last id it saw is replayed what it missed (while the
stream still holds it: the newest STREAM_MAXLEN events, about). Visitors' replies travel over
pub/sub. Events are notifications, not storage: the truth is in PostgreSQL, and a publish
that fails is logged and dropped, never failing the unit of work that caused it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from contactcenter.conns import REDIS_CALL_TIMEOUT_SECONDS, Conns

logger = logging.getLogger(__name__)

# how many agent events the stream keeps for reconnecting sockets (trimmed approximately)
STREAM_MAXLEN = 10_000
# the one field of a stream entry: the event as JSON, without its id (the entry id is that)
EVENT_FIELD = b"event"
# an id before every entry: the start of the stream
STREAM_START = "0-0"

_EVENT_ID = re.compile(r"([0-9]{1,20})-([0-9]{1,20})")
_U64 = 2**64


def _namespace(redis: Redis) -> str:
    # pub/sub channels are global to a Redis server, not per database like keys: name them
    # after the database, so two deployments on one server never hear each other
    database = redis.connection_pool.connection_kwargs.get("db", 0)
    return f"cc:{database}:"


def agent_events_stream(redis: Redis) -> str:
    return _namespace(redis) + "events"


def visitor_prefix(redis: Redis) -> str:
    return _namespace(redis) + "visitor:"


def parse_event_id(text: str) -> tuple[int, int] | None:
    """A stream entry id ("1712345678901-0") as a comparable pair, or None if it is not one."""
    match = _EVENT_ID.fullmatch(text)
    if match is None:
        return None
    millis, sequence = int(match[1]), int(match[2])
    if millis >= _U64 or sequence >= _U64:
        return None
    return millis, sequence


def event_key(event_id: str) -> tuple[int, int]:
    """The order of two ids this server gave (they always parse)."""
    return parse_event_id(event_id) or (0, 0)


async def _publish(conns: Conns, channel: str, payload: dict[str, Any]) -> bool:
    try:
        async with asyncio.timeout(REDIS_CALL_TIMEOUT_SECONDS):
            await conns.redis.publish(channel, json.dumps(payload, default=str))
    except (RedisError, OSError) as exc:  # TimeoutError is an OSError
        logger.warning("publish failed", extra={"channel": channel, "error": type(exc).__name__})
        return False
    return True


async def publish_agent_event(
    conns: Conns,
    kind: str,
    *,
    conversation_id: int | None,
    team_id: int | None,
    assignee_id: int | None,
    data: dict[str, Any] | None = None,
) -> None:
    """An event for the inbox; each socket shows it only to agents who may see the conversation."""
    stream = agent_events_stream(conns.redis)
    payload = {
        "type": kind,
        "conversation_id": conversation_id,
        "team_id": team_id,
        "assignee_id": assignee_id,
        "data": data or {},
    }
    try:
        async with asyncio.timeout(REDIS_CALL_TIMEOUT_SECONDS):
            await conns.redis.xadd(
                stream,
                {EVENT_FIELD: json.dumps(payload, default=str)},
                maxlen=STREAM_MAXLEN,
                approximate=True,
            )
    except (RedisError, OSError) as exc:  # TimeoutError is an OSError
        logger.warning("publish failed", extra={"channel": stream, "error": type(exc).__name__})


def read_entries(entries: list[tuple[bytes | str, dict[bytes, bytes]]]) -> list[dict[str, Any]]:
    """Stream entries as events, each with its id; an unreadable entry is logged and skipped."""
    events = []
    for raw_id, fields in entries:
        event_id = _text(raw_id)
        try:
            event = json.loads(fields[EVENT_FIELD])
        except (KeyError, TypeError, ValueError):
            event = None
        if not isinstance(event, dict):
            logger.warning("unreadable agent event", extra={"event_id": event_id})
            continue
        event["id"] = event_id
        events.append(event)
    return events


async def latest_event_id(redis: Redis) -> str:
    """The id of the newest agent event (STREAM_START if there is none yet)."""
    newest = await redis.xrevrange(agent_events_stream(redis), count=1)
    if not newest:
        return STREAM_START
    return _text(newest[0][0])


async def events_after(redis: Redis, after: str, count: int) -> tuple[list[dict[str, Any]], str]:
    """Up to `count` agent events after the id `after`, oldest first, and the id to read on
    from (that of the last entry read, readable or not; `after` if there was none)."""
    entries = await redis.xrange(agent_events_stream(redis), min=f"({after}", count=count)
    return read_entries(entries), (_text(entries[-1][0]) if entries else after)


async def missed_beyond_recall(redis: Redis, after: str) -> bool:
    """Whether some event after `after` may no longer be in the stream (trimmed, or lost with
    Redis), so that replaying what is left would not be everything."""
    try:
        info = await redis.xinfo_stream(agent_events_stream(redis))
    except ResponseError:  # no stream at all: the events after `after`, if any, are gone
        return after != STREAM_START
    after_key = event_key(after)
    last = event_key(_text(info.get("last-generated-id") or STREAM_START))
    if after_key > last:  # newer than anything this stream gave: Redis started again empty
        return True
    first_entry = info.get("first-entry")
    if not first_entry or first_entry[0] is None:  # all trimmed: lost if any came after
        return after_key < last
    # trimming removes the oldest entries, so a held id (or one past the oldest) loses
    # nothing; one before the oldest may have lost what followed it (unless nothing was ever
    # removed and the client began at the very start)
    trimmed = int(info.get("entries-added", 0)) > int(info.get("length", 0))
    first = event_key(_text(first_entry[0]))
    return after_key < first and (after != STREAM_START or trimmed)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def publish_to_visitor(conns: Conns, conversation_id: int, payload: dict[str, Any]) -> bool:
    channel = f"{visitor_prefix(conns.redis)}{conversation_id}"
    return await _publish(conns, channel, payload)
