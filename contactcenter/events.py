"""Real-time events over Redis pub/sub, so every web process can push them to its sockets.

Events are notifications, not storage: the truth is in PostgreSQL, and a publish that fails
is logged and dropped, never failing the unit of work that caused it.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from redis.exceptions import RedisError

from contactcenter.conns import Conns

logger = logging.getLogger(__name__)

AGENT_EVENTS = "cc:events"
VISITOR_PREFIX = "cc:visitor:"


def visitor_channel(conversation_id: int) -> str:
    return f"{VISITOR_PREFIX}{conversation_id}"


async def _publish(conns: Conns, channel: str, payload: dict[str, Any]) -> bool:
    try:
        await conns.redis.publish(channel, json.dumps(payload, default=str))
    except (RedisError, OSError) as exc:
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
        AGENT_EVENTS,
        {
            "type": kind,
            "conversation_id": conversation_id,
            "team_id": team_id,
            "assignee_id": assignee_id,
            "data": data or {},
        },
    )


async def publish_to_visitor(conns: Conns, conversation_id: int, payload: dict[str, Any]) -> bool:
    return await _publish(conns, visitor_channel(conversation_id), payload)
