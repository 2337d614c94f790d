"""A Twilio number (or Messaging Service) we receive on and send from."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SmsNumber:
    id: int
    name: str
    account_sid: str
    auth_token: str  # unsealed; never logged, never returned by the API
    from_number: str | None
    messaging_service_sid: str | None
