"""contact_consents: a contact's consent to automated care messages, per channel, as it stands
(granted or withdrawn, who said so, when it last changed); no row: never asked. And what the
SMS opt-out ledger (sms_consent, issue 3) says of the contact's phone numbers: an opt-out
always wins over a grant here.

Writers hold the contact's row (contacts FOR NO KEY UPDATE) first, as PATCH /v1/contacts and
the CSV import do, so a read under that lock is what the transaction writes against.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from contactcenter.db import Executor

FOR_CONTACT = """
SELECT channel, granted, source, changed_at FROM contact_consents WHERE contact_id = $1
"""
GRANTED_OF_MANY = """
SELECT contact_id, channel, granted FROM contact_consents WHERE contact_id = any($1::bigint[])
"""
# a repeat of what is recorded changes nothing: changed_at stays when it last changed, and
# source who changed it then
RECORD = """
INSERT INTO contact_consents (contact_id, channel, granted, source, changed_at)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (contact_id, channel) DO UPDATE
SET granted = excluded.granted, source = excluded.source, changed_at = excluded.changed_at
WHERE contact_consents.granted IS DISTINCT FROM excluded.granted
"""
RECORD_MANY = """
INSERT INTO contact_consents (contact_id, channel, granted, source, changed_at)
SELECT g.contact_id, g.channel, g.granted, $4, $5
FROM unnest($1::bigint[], $2::text[], $3::boolean[]) AS g (contact_id, channel, granted)
ON CONFLICT (contact_id, channel) DO UPDATE
SET granted = excluded.granted, source = excluded.source, changed_at = excluded.changed_at
WHERE contact_consents.granted IS DISTINCT FROM excluded.granted
"""
FORGET = "DELETE FROM contact_consents WHERE contact_id = $1 AND channel = $2"
# any of the contact's phone numbers opted out (STOP, TD, 退订)
SMS_OPTED_OUT = """
SELECT EXISTS (
    SELECT 1 FROM contact_identities ci JOIN sms_consent s ON s.phone = ci.value
    WHERE ci.contact_id = $1 AND ci.kind = 'phone' AND s.opted_out
)
"""


async def for_contact(
    conn: Executor, contact_id: int, channels: Sequence[str]
) -> dict[str, dict[str, Any] | None]:
    """Each channel's consent as the card shows it: {granted, source, changed_at}, or None
    when the contact was never asked."""
    rows = {r["channel"]: r for r in await conn.fetch(FOR_CONTACT, contact_id)}
    return {
        channel: None
        if channel not in rows
        else {
            "granted": rows[channel]["granted"],
            "source": rows[channel]["source"],
            "changed_at": rows[channel]["changed_at"],
        }
        for channel in channels
    }


async def granted_of_many(conn: Executor, contact_ids: Sequence[int]) -> dict[int, dict[str, bool]]:
    """Channel -> granted of each contact that has a consent recorded (never asked: no key)."""
    found: dict[int, dict[str, bool]] = {}
    if not contact_ids:
        return found
    for row in await conn.fetch(GRANTED_OF_MANY, list(contact_ids)):
        found.setdefault(int(row["contact_id"]), {})[row["channel"]] = row["granted"]
    return found


async def record(
    conn: Executor, contact_id: int, channel: str, granted: bool, source: str, now: datetime
) -> None:
    """A grant (True) or withdrawal (False) of consent to the channel."""
    await conn.execute(RECORD, contact_id, str(channel), granted, str(source), now)


async def record_many(
    conn: Executor,
    consents: Mapping[tuple[int, str], bool],
    source: str,
    now: datetime,
) -> None:
    """Grants and withdrawals, keyed by (contact id, channel), all from one source."""
    if consents:
        keys = sorted(consents)
        await conn.execute(
            RECORD_MANY,
            [contact_id for contact_id, _ in keys],
            [str(channel) for _, channel in keys],
            [consents[key] for key in keys],
            str(source),
            now,
        )


async def forget(conn: Executor, contact_id: int, channel: str) -> None:
    """Back to "never asked" on the channel."""
    await conn.execute(FORGET, contact_id, str(channel))


async def sms_opted_out(conn: Executor, contact_id: int) -> bool:
    """Whether any of the contact's phone numbers opted out of SMS."""
    return bool(await conn.fetchval(SMS_OPTED_OUT, contact_id))
