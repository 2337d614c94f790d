"""Errors the core raises for a caller's mistake; each carries a machine-readable code.

The HTTP layer maps each class to a status; the core knows nothing of HTTP.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    code = "invalid_request"

    def __init__(
        self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details or {}


class NotFound(DomainError):
    code = "not_found"


class Conflict(DomainError):
    code = "conflict"


class Invalid(DomainError):
    code = "validation_error"


class Forbidden(DomainError):
    code = "forbidden"
