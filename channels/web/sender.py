"""Delivering an agent's reply to the visitor's open WebSockets, through Redis pub/sub.

Every web process subscribes to the visitor channels and pushes to its own sockets; a
visitor who is not connected gets the reply from the history (or the socket's replay) later.
"""

from __future__ import annotations

from typing import Any

from contactcenter import events
from contactcenter.conns import Conns
from contactcenter.domain.messages import DeliveryFailed, OutboundMessage


def visitor_message(
    *, id: int, direction: str, text: str, created_at: Any, author_name: str | None
) -> dict[str, Any]:
    """A message as the visitor sees it, in history and on the socket alike."""
    return {
        "id": id,
        "direction": direction,
        "text": text,
        "created_at": created_at.isoformat(),
        "author_name": author_name if direction == "outbound" else None,
    }


class WebSender:
    def __init__(self, conns: Conns) -> None:
        self._conns = conns

    async def send(self, message: OutboundMessage) -> None:
        payload = {
            "type": "message",
            "message": visitor_message(
                id=message.message_id,
                direction="outbound",
                text=message.text,
                created_at=message.created_at,
                author_name=message.author_name,
            ),
        }
        if not await events.publish_to_visitor(self._conns, message.conversation_id, payload):
            raise DeliveryFailed(
                "pubsub_unavailable", "Redis did not take the reply", permanent=False
            )
