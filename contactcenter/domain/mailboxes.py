"""A mailbox: where customers write (IMAP) and where our replies leave from (SMTP)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Security(StrEnum):
    """Mirrors the CHECK constraints of mailboxes.imap_security / smtp_security."""

    SSL = "ssl"  # TLS from the first byte (IMAPS 993, SMTPS 465)
    STARTTLS = "starttls"  # plain, then upgraded; a server that will not upgrade is refused
    NONE = "none"  # only for a server on this machine or a trusted network


IMAP_PORTS = {Security.SSL: 993, Security.STARTTLS: 143, Security.NONE: 143}
SMTP_PORTS = {Security.SSL: 465, Security.STARTTLS: 587, Security.NONE: 25}


@dataclass(frozen=True)
class ServerAccount:
    host: str
    port: int
    security: Security
    user: str | None
    password: str | None  # unsealed; never logged, never returned by the API


@dataclass(frozen=True)
class Mailbox:
    id: int
    name: str
    address: str
    display_name: str | None
    imap: ServerAccount | None
    imap_folder: str
    smtp: ServerAccount | None
    enabled: bool
