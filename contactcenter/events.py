"""Real-time events over Redis pub/sub, so every web process can push them to its sockets.

Events are notifications, not storage: the truth is in PostgreSQL, and a publish that fails
is logged and dropped, never failing the unit of work that caused it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from contactcenter.conns import REDIS_CALL_TIMEOUT_SECONDS, Conns

logger = logging.getLogger(__name__)


def _namespace(redis: Redis) -> str:
    # pub/sub channels are global to a Redis server, not per database like keys: name them
    # after the database, so two deployments on one server never hear each other
    database = redis.connection_pool.connection_kwargs.get("db", 0)
    return f"cc:{database}:"


def agent_events_channel(redis: Redis) -> str:
    return _namespace(redis) + "events"


def visitor_prefix(redis: Redis) -> str:
    return _namespace(redis) + "visitor:"


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
    await _publish(
        conns,
        agent_events_channel(conns.redis),
        {
            "type": kind,
            "conversation_id": conversation_id,
            "team_id": team_id,
            "assignee_id": assignee_id,
            "data": data or {},
        },
    )


async def publish_to_visitor(conns: Conns, conversation_id: int, payload: dict[str, Any]) -> bool:
    channel = f"{visitor_prefix(conns.redis)}{conversation_id}"
    return await _publish(conns, channel, payload)
