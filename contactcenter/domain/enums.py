"""The allowed values of the database's CHECK constraints (migrations/); change both together."""

from __future__ import annotations

from enum import StrEnum


class Channel(StrEnum):
    WEB = "web"
    EMAIL = "email"
    SMS = "sms"


class IdentityKind(StrEnum):
    EMAIL = "email"
    PHONE = "phone"
    WEB = "web"


class ConversationStatus(StrEnum):
    OPEN = "open"
    PENDING = "pending"
    SNOOZED = "snoozed"
    RESOLVED = "resolved"
    CLOSED = "closed"


# the statuses that hold one of the assignee's slots
ACTIVE_STATUSES = (ConversationStatus.OPEN, ConversationStatus.PENDING, ConversationStatus.SNOOZED)


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class MessageStatus(StrEnum):
    RECEIVED = "received"
    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"


class Role(StrEnum):
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


class Presence(StrEnum):
    ONLINE = "online"
    AWAY = "away"
    OFFLINE = "offline"


class TierMethod(StrEnum):
    THRESHOLDS = "thresholds"
    SHARES = "shares"


class TierChangeReason(StrEnum):
    RECOMPUTE = "recompute"
    VALUE = "value"
    PIN = "pin"
    UNPIN = "unpin"


class AssignStrategy(StrEnum):
    LEAST_LOADED = "least_loaded"
    ROUND_ROBIN = "round_robin"


class SlaClock(StrEnum):
    # only time inside business hours counts
    BUSINESS = "business"
    # every second counts
    CALENDAR = "calendar"
