"""Recording admin changes: one call per write, on the write's own connection, inside its
transaction, so the audit row commits or rolls back with the change.

`by` is the acting agent (None: the command line or the system). Secrets are dropped by
domain/audit.py before anything is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from contactcenter.db import Connection
from contactcenter.domain.agents import Agent
from contactcenter.domain.audit import AuditAction, changed, to_json
from contactcenter.logs import request_id
from contactcenter.store import audit


async def record(
    conn: Connection,
    by: Agent | None,
    action: AuditAction,
    entity: str,
    entity_id: object,
    *,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
) -> None:
    """One audit row. An update keeps only the changed keys, and one that changed nothing
    writes nothing."""
    old: dict[str, Any] | None = None if before is None else to_json(dict(before))
    new: dict[str, Any] | None = None if after is None else to_json(dict(after))
    if action is AuditAction.UPDATE and old is not None and new is not None:
        old, new = changed(old, new)
        if not old and not new:
            return
    await audit.insert(
        conn,
        agent_id=None if by is None else by.id,
        agent_name=None if by is None else by.name,
        action=str(action),
        entity=entity,
        entity_id=None if entity_id is None else str(entity_id),
        before=old,
        after=new,
        request_id=request_id.get(),
    )
