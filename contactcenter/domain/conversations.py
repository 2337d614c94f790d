"""The lifecycle of a conversation as agents drive it."""

from __future__ import annotations

from datetime import datetime, timedelta

from contactcenter.domain.enums import ConversationStatus
from contactcenter.domain.errors import Conflict, Invalid

MAX_SNOOZE = timedelta(days=366)
_FINISHED = (ConversationStatus.RESOLVED, ConversationStatus.CLOSED)


def check_status_change(
    current: ConversationStatus,
    target: ConversationStatus,
    until: datetime | None,
    now: datetime,
) -> None:
    """An agent may move an active conversation to any active status or resolve it; a
    resolved one can only be reopened. Snoozing needs a time in the coming year."""
    if target is ConversationStatus.CLOSED:
        raise Invalid(
            "conversations are resolved, not closed, from the inbox", code="invalid_status"
        )
    if target is ConversationStatus.SNOOZED:
        if until is None or until <= now:
            raise Invalid("snoozing needs `until`, a time in the future", code="invalid_until")
        if until > now + MAX_SNOOZE:
            raise Invalid(f"snoozing is for at most {MAX_SNOOZE.days} days", code="invalid_until")
    elif until is not None:
        raise Invalid("`until` goes only with status snoozed", code="invalid_until")
    if current in _FINISHED and target is not ConversationStatus.OPEN:
        raise Conflict(
            f"a {current} conversation can only be reopened (status open)",
            code="invalid_transition",
        )
