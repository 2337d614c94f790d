"""Web visitors: their tokens (signed with SECRET_KEY, each scoping exactly one conversation)
and what they may read of it."""

from __future__ import annotations

from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from contactcenter.conns import Conns
from contactcenter.store import messages

_SALT = "contactcenter.visitor"
REPLAY_PAGE = 500


class VisitorTokenError(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def sign(secret_key: str, conversation_id: int, contact_id: int) -> str:
    serializer = URLSafeTimedSerializer(secret_key, salt=_SALT)
    return str(serializer.dumps({"c": conversation_id, "p": contact_id}))


def verify(secret_key: str, token: str, conversation_id: int, max_age_seconds: int) -> int:
    """The contact id the token was issued to, if it is valid for this conversation."""
    serializer = URLSafeTimedSerializer(secret_key, salt=_SALT)
    try:
        claims = serializer.loads(token, max_age=max_age_seconds)
    except SignatureExpired:
        raise VisitorTokenError("token_expired") from None
    except BadSignature:
        raise VisitorTokenError("invalid_token") from None
    if not isinstance(claims, dict) or claims.get("c") != conversation_id:
        raise VisitorTokenError("token_scope_mismatch")
    return int(claims["p"])


async def history(
    conns: Conns, conversation_id: int, after_id: int, limit: int
) -> list[dict[str, Any]]:
    """The customer-visible messages after `after_id`, oldest first."""
    return await messages.customer_history(conns.db, conversation_id, after_id, limit)


async def all_replies_after(
    conns: Conns, conversation_id: int, after_id: int
) -> list[dict[str, Any]]:
    """Every agent reply after `after_id`, read page by page."""
    replies: list[dict[str, Any]] = []
    while True:
        page = await messages.customer_history(
            conns.db, conversation_id, after_id, REPLAY_PAGE, replies_only=True
        )
        replies.extend(page)
        if len(page) < REPLAY_PAGE:
            return replies
        after_id = page[-1]["id"]
