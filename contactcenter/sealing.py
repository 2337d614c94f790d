"""Sealing the secrets admins configure (mailbox passwords): encrypted at rest in PostgreSQL
with a key derived from SECRET_KEY, so a database dump alone does not give them away.

Changing SECRET_KEY makes sealed secrets unreadable: they must be entered again.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken

_CONTEXT = b"contactcenter.sealing.v1:"


class UnsealError(Exception):
    """A sealed value that this SECRET_KEY cannot open."""


def _fernet(secret_key: str) -> Fernet:
    digest = hashlib.sha256(_CONTEXT + secret_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def seal(secret_key: str, value: str) -> str:
    return _fernet(secret_key).encrypt(value.encode()).decode()


def unseal(secret_key: str, sealed: str) -> str:
    try:
        return _fernet(secret_key).decrypt(sealed.encode()).decode()
    except InvalidToken:
        raise UnsealError("sealed with another SECRET_KEY; enter the secret again") from None
