"""Web visitor tokens: signed with SECRET_KEY, each scoping exactly one conversation."""

from __future__ import annotations

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

_SALT = "contactcenter.visitor"


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
