"""What the e-mail channel needs from the core besides ingest: the IMAP checkpoint that moves
with each stored mail, and the quarantine for mails that cannot be read."""

from __future__ import annotations

import logging

from contactcenter.conns import Conns
from contactcenter.db import Connection
from contactcenter.services.ingest import IngestResult, InTransaction
from contactcenter.store import mailboxes

logger = logging.getLogger(__name__)


def checkpoint_to(mailbox_id: int, uidvalidity: int | None, uid: int | None) -> InTransaction:
    """Advance the mailbox's last taken UID, in the transaction that stores the mail: a UID is
    never past a mail that is not committed (invariant 1), and never before one that is."""

    async def advance(conn: Connection, result: IngestResult) -> None:
        if uidvalidity is not None and uid is not None:
            await mailboxes.set_checkpoint(conn, mailbox_id, uidvalidity, uid)

    return advance


async def checkpoint(conns: Conns, mailbox_id: int) -> tuple[int | None, int]:
    """(UIDVALIDITY, last UID taken) of the mailbox; (None, 0) before its first mail."""
    return await mailboxes.checkpoint(conns.db, mailbox_id)


async def advance(conns: Conns, mailbox_id: int, uidvalidity: int, uid: int) -> None:
    """Move on past a mail that needs nothing stored (one we sent ourselves, say)."""
    async with conns.db.acquire() as conn:
        await mailboxes.set_checkpoint(conn, mailbox_id, uidvalidity, uid)


async def quarantine(
    conns: Conns,
    mailbox_id: int | None,
    raw: bytes,
    error: str,
    *,
    uidvalidity: int | None = None,
    uid: int | None = None,
) -> int:
    """Keep a mail we cannot read for an admin, and go on past it: one bad mail never
    blocks a mailbox."""
    async with conns.db.acquire() as conn, conn.transaction():
        quarantine_id = await mailboxes.quarantine(conn, mailbox_id, uid, raw, error)
        if mailbox_id is not None and uidvalidity is not None and uid is not None:
            await mailboxes.set_checkpoint(conn, mailbox_id, uidvalidity, uid)
    logger.warning(
        "mail quarantined",
        extra={"mailbox_id": mailbox_id, "uid": uid, "quarantine_id": quarantine_id},
    )
    return quarantine_id
