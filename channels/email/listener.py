"""IMAP intake for one mailbox: IDLE (or polling), fetch by UID above the checkpoint, take each
mail in order, and advance the checkpoint only with the mail it covers.

- The checkpoint (UIDVALIDITY, last UID) lives in PostgreSQL and moves in the transaction that
  stores the mail, so a listener killed at any point misses nothing and takes nothing twice.
- A new UIDVALIDITY means the server renumbered the folder: the recent window is fetched again
  and the mails already stored are recognised by their Message-ID.
- One listener per mailbox across every process: a lease in Redis, renewed while it works.
- A dropped connection reconnects with backoff; IDLE runs under our own watchdog (aioimaplib
  can hang past its timeout when the server drops the socket) and is re-issued before the
  server's 30-minute limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl
import uuid
from collections.abc import Awaitable
from datetime import timedelta
from typing import Any

import aioimaplib
from redis.exceptions import RedisError

from channels.email.intake import Taken, take
from contactcenter.aio import cancel_and_wait
from contactcenter.conns import Conns
from contactcenter.domain.mailboxes import Mailbox, Security
from contactcenter.services import email_intake

logger = logging.getLogger(__name__)

LEASE_SECONDS = 30.0
RECONNECT_BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
# a renumbered folder (new UIDVALIDITY) is read again this far back
RESYNC_DAYS = 7
# mails fetched in one command: at most this many, and this many bytes
FETCH_BATCH = 20
FETCH_BATCH_BYTES = 20 * 1024 * 1024
IMAP_TIMEOUT_SECONDS = 30.0

_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]")
_UIDNEXT = re.compile(rb"\[UIDNEXT (\d+)\]")
_FETCH_SIZE = re.compile(rb"RFC822\.SIZE (\d+)")
_FETCH_UID = re.compile(rb"UID (\d+)")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class ImapError(Exception):
    """The server said no (a failed login, a missing folder), or went away: reconnect later."""


class LeaseLost(Exception):
    """Another listener holds this mailbox now."""


# ends of a session that are the network's or the server's doing, logged without a traceback
EXPECTED_ERRORS = (ImapError, LeaseLost, OSError, RedisError, aioimaplib.Abort)


class Lease:
    """One holder per mailbox: SET NX with a expiry, renewed by its holder only."""

    _RENEW = (
        "if redis.call('get', KEYS[1]) == ARGV[1] then "
        "return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"
    )
    _RELEASE = (
        "if redis.call('get', KEYS[1]) == ARGV[1] then "
        "return redis.call('del', KEYS[1]) else return 0 end"
    )

    def __init__(self, conns: Conns, mailbox_id: int, owner: str) -> None:
        self._redis = conns.redis
        self.key = f"cc:mail-lease:{mailbox_id}"
        self.owner = owner
        self._ttl_ms = int(LEASE_SECONDS * 1000)

    async def acquire(self) -> bool:
        if await self._redis.set(self.key, self.owner, nx=True, px=self._ttl_ms):
            return True
        return await self.renew()

    async def renew(self) -> bool:
        renewed = await self._redis.eval(  # type: ignore[misc]
            self._RENEW, 1, self.key, self.owner, str(self._ttl_ms)
        )
        return bool(renewed)

    async def release(self) -> None:
        with contextlib.suppress(Exception):
            await self._redis.eval(self._RELEASE, 1, self.key, self.owner)  # type: ignore[misc]


class MailboxListener:
    def __init__(self, conns: Conns, mailbox: Mailbox, *, owner: str | None = None) -> None:
        assert mailbox.imap is not None
        self.conns = conns
        self.mailbox = mailbox
        self.lease = Lease(conns, mailbox.id, owner or uuid.uuid4().hex)
        # set whenever the listener has caught up and waits for new mail (tests wait on it)
        self.idle = asyncio.Event()

    async def run(self) -> None:
        """Listen until cancelled."""
        failures = 0
        try:
            while True:
                if not await self._try_lease():
                    await asyncio.sleep(LEASE_SECONDS / 3)
                    continue
                try:
                    await self._session_holding_lease()
                except asyncio.CancelledError:
                    raise
                except Exception as error:  # never give a mailbox up: back off and go again
                    delay = RECONNECT_BACKOFF[min(failures, len(RECONNECT_BACKOFF) - 1)]
                    failures += 1
                    self.idle.clear()
                    expected = isinstance(error, EXPECTED_ERRORS)
                    (logger.warning if expected else logger.exception)(
                        "mailbox session ended",
                        extra={
                            "mailbox_id": self.mailbox.id,
                            "error": f"{type(error).__name__}: {error}",
                            "retry_in": delay,
                        },
                    )
                    await asyncio.sleep(delay)
                else:
                    failures = 0
        finally:
            await self.lease.release()

    async def _try_lease(self) -> bool:
        try:
            return await self.lease.acquire()
        except (OSError, RedisError) as error:
            logger.warning("lease unavailable", extra={"error": type(error).__name__})
            return False

    async def _session_holding_lease(self) -> None:
        """Run one IMAP session while renewing the lease; lose the lease, end the session."""
        session = asyncio.create_task(self._session())
        holder = asyncio.create_task(self._hold_lease())
        try:
            done, _ = await asyncio.wait({session, holder}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            # a cancellation swallowed inside the session must not keep this waiting forever
            await cancel_and_wait(session, holder)
        if session not in done:
            raise LeaseLost(self.lease.key)
        session.result()  # a session ends only by an error: raise it

    async def _hold_lease(self) -> None:
        """Returns only when the lease is lost."""
        while True:
            await asyncio.sleep(LEASE_SECONDS / 3)
            try:
                if not await self.lease.renew():
                    return
            except (OSError, RedisError):
                pass  # Redis away: keep going, the next renewal decides

    async def _session(self) -> None:
        client = await self._connect()
        try:
            uidvalidity, next_uid = await self._select(client)
            idle_capable = await self._can_idle(client)
            while True:
                # until a round finds nothing: a mail that arrived during a round was announced
                # in that round's answers (which aioimaplib drops), so IDLE would not tell it
                while await self._take_new(client, uidvalidity, next_uid):
                    pass
                self.idle.set()
                if idle_capable:
                    await self._idle(client)
                else:
                    await asyncio.sleep(self.conns.settings.mail_poll_seconds)
                    await self._ok(await client.noop(), "NOOP")
                self.idle.clear()
        finally:
            await self._disconnect(client)

    async def _disconnect(self, client: aioimaplib.IMAP4) -> None:
        """Log out politely if the connection allows it, and close it in any case (also when
        cancelled in the middle of an IDLE, which must be ended before LOGOUT)."""
        with contextlib.suppress(Exception):
            if client.has_pending_idle():
                client.idle_done()
            await asyncio.wait_for(client.logout(), 1)
        transport = client.protocol.transport
        if transport is not None:
            transport.close()

    async def _connect(self) -> aioimaplib.IMAP4:
        imap = self.mailbox.imap
        assert imap is not None
        if imap.security is Security.STARTTLS:
            raise ImapError("IMAP STARTTLS is not supported yet: use ssl (port 993)")
        client: aioimaplib.IMAP4
        if imap.security is Security.SSL:
            client = aioimaplib.IMAP4_SSL(
                imap.host, imap.port, timeout=IMAP_TIMEOUT_SECONDS,
                ssl_context=ssl.create_default_context(),
            )  # fmt: skip
        else:
            client = aioimaplib.IMAP4(imap.host, imap.port, timeout=IMAP_TIMEOUT_SECONDS)
        # a socket that dies without a word (no BYE) must end an IDLE at once, not in minutes
        self._connection_lost = asyncio.Event()
        client.protocol.conn_lost_cb = lambda _exc: self._connection_lost.set()
        await client.wait_hello_from_server()
        login = await client.login(aioimaplib.quoted(imap.user or ""), imap.password or "")
        await self._ok(login, "LOGIN")
        return client

    async def _select(self, client: aioimaplib.IMAP4) -> tuple[int, int | None]:
        """(UIDVALIDITY, UIDNEXT) of the folder."""
        response = await client.select(aioimaplib.quoted(self.mailbox.imap_folder))
        await self._ok(response, "SELECT")
        validity = next_uid = None
        for line in map(bytes, response.lines):
            if found := _UIDVALIDITY.search(line):
                validity = int(found.group(1))
            if found := _UIDNEXT.search(line):
                next_uid = int(found.group(1))
        if validity is None:
            raise ImapError("the server gave no UIDVALIDITY")
        return validity, next_uid

    async def _can_idle(self, client: aioimaplib.IMAP4) -> bool:
        # asked again after login: servers announce IDLE only then, and the list aioimaplib
        # gleans from the LOGIN answer is unreliable
        await asyncio.wait_for(client.protocol.capability(), IMAP_TIMEOUT_SECONDS)
        return bool(client.has_capability("IDLE"))

    async def _take_new(
        self, client: aioimaplib.IMAP4, uidvalidity: int, next_uid: int | None
    ) -> int:
        """Take the mails above the checkpoint; how many there were."""
        known_validity, last_uid = await email_intake.checkpoint(self.conns, self.mailbox.id)
        if known_validity is None and self.conns.settings.mail_first_sync_days == 0:
            # a mailbox connected for the first time starts from now: what it held before was
            # answered elsewhere, and must not flood the queues
            start = (next_uid or 1) - 1
            await email_intake.advance(self.conns, self.mailbox.id, uidvalidity, start)
            known_validity, last_uid = uidvalidity, start
        if known_validity != uidvalidity:
            if known_validity is not None:
                logger.warning(
                    "UIDVALIDITY changed; reading the recent window again",
                    extra={
                        "mailbox_id": self.mailbox.id,
                        "was": known_validity,
                        "now": uidvalidity,
                    },
                )
            days = (
                RESYNC_DAYS
                if known_validity is not None
                else self.conns.settings.mail_first_sync_days
            )
            uids = await self._search(client, self._since(days))
            if not uids:  # nothing to take, but remember the folder's numbering from now on
                await email_intake.advance(self.conns, self.mailbox.id, uidvalidity, 0)
        else:
            # "n:*" always includes the last mail, even one below n
            above = await self._search(client, f"UID {last_uid + 1}:*")
            uids = [uid for uid in above if uid > last_uid]
        sizes = await self._sizes(client, uids)
        limit = self.conns.settings.max_mail_bytes
        for batch in _batches(uids, sizes):
            wanted = [uid for uid in batch if sizes.get(uid, 0) <= limit]
            mails = dict(await self._fetch(client, wanted)) if wanted else {}
            for uid in batch:
                if sizes.get(uid, 0) > limit:
                    await self._set_aside_too_big(client, uid, uidvalidity, sizes[uid])
                elif uid in mails:
                    await self._take_one(mails[uid], uid, uidvalidity)
                else:
                    # expunged meanwhile, or the server would not give it: never step past
                    # it; the next round's search decides
                    raise ImapError(f"UID {uid} came back without its content")
        return len(uids)

    async def _take_one(self, raw: bytes, uid: int, uidvalidity: int) -> Taken:
        taken = await take(self.conns, self.mailbox, raw, uidvalidity=uidvalidity, uid=uid)
        logger.info(
            "mail taken",
            extra={
                "mailbox_id": self.mailbox.id,
                "uid": uid,
                "message_id": taken.result.message_id if taken.result else None,
                "quarantine_id": taken.quarantine_id,
            },
        )
        return taken

    async def _set_aside_too_big(
        self, client: aioimaplib.IMAP4, uid: int, uidvalidity: int, size: int
    ) -> None:
        """A mail over the size limit is quarantined with its headers, for an admin to see."""
        response = await client.uid("fetch", str(uid), "(UID BODY.PEEK[HEADER])")
        await self._ok(response, "UID FETCH")
        headers = next((bytes(line) for line in response.lines if isinstance(line, bytearray)), b"")
        limit = self.conns.settings.max_mail_bytes
        await email_intake.quarantine(
            self.conns,
            self.mailbox.id,
            headers,
            f"too large: {size} bytes (the limit is {limit}); its headers are kept",
            uidvalidity=uidvalidity,
            uid=uid,
        )

    async def _sizes(self, client: aioimaplib.IMAP4, uids: list[int]) -> dict[int, int]:
        sizes: dict[int, int] = {}
        for start in range(0, len(uids), 500):
            chunk = ",".join(map(str, uids[start : start + 500]))
            response = await client.uid("fetch", chunk, "(UID RFC822.SIZE)")
            await self._ok(response, "UID FETCH")
            for line in response.lines:
                uid = _FETCH_UID.search(line) if isinstance(line, bytes) else None
                size = _FETCH_SIZE.search(line) if isinstance(line, bytes) else None
                if uid and size:
                    sizes[int(uid.group(1))] = int(size.group(1))
        return sizes

    def _since(self, days: int) -> str:
        day = (self.conns.clock() - timedelta(days=days)).date()
        return f"SINCE {day.day:02d}-{_MONTHS[day.month - 1]}-{day.year}"

    async def _search(self, client: aioimaplib.IMAP4, criteria: str) -> list[int]:
        response = await client.uid_search(criteria, charset=None)
        await self._ok(response, "UID SEARCH")
        # the SEARCH data is the line of numbers alone: untagged "n EXISTS" or "n EXPUNGE"
        # lines in the same answer carry sequence numbers, never UIDs
        uids: list[int] = []
        for line in response.lines[:-1]:
            words = bytes(line).removeprefix(b"SEARCH").split()
            if words and all(word.isdigit() for word in words):
                uids.extend(int(word) for word in words)
        return sorted(set(uids))

    async def _fetch(self, client: aioimaplib.IMAP4, uids: list[int]) -> list[tuple[int, bytes]]:
        """(UID, raw mail) in UID order; BODY.PEEK leaves the mails unread for people."""
        response = await client.uid("fetch", ",".join(map(str, uids)), "(UID BODY.PEEK[])")
        await self._ok(response, "UID FETCH")
        mails: list[tuple[int, bytes]] = []
        lines = response.lines
        for index, literal in enumerate(lines):
            if not isinstance(literal, bytearray) or index == 0:
                continue
            # the UID may stand before the body or, as RFC 3501 allows, after it
            before = bytes(lines[index - 1])
            after = bytes(lines[index + 1]) if index + 1 < len(lines) else b""
            found = _FETCH_UID.search(before) or (
                None if b"FETCH" in after else _FETCH_UID.search(after)
            )
            if b"FETCH" in before and found:
                mails.append((int(found.group(1)), bytes(literal)))
        mails.sort()
        return mails

    async def _idle(self, client: aioimaplib.IMAP4) -> None:
        """Wait for the server to say something changed, for our IDLE period to end, or for
        the connection to drop."""
        idle_seconds = self.conns.settings.mail_idle_seconds
        idle = await self._unless_lost(
            client.idle_start(timeout=idle_seconds), IMAP_TIMEOUT_SECONDS
        )
        if idle is None:
            raise ImapError("the server did not start the IDLE")
        try:
            # our own watchdog too: aioimaplib may wait past its timeout on a dropped socket
            push = await self._unless_lost(
                client.wait_server_push(idle_seconds + 5), idle_seconds + 10
            )
            if any(
                b"BYE" in bytes(line) for line in push or [] if isinstance(line, bytes | bytearray)
            ):
                raise ImapError("the server said BYE")  # aioimaplib never ends the IDLE then
            client.idle_done()
            await self._unless_lost(idle, IMAP_TIMEOUT_SECONDS)
            if not idle.done():
                raise ImapError("the server did not end the IDLE")
        finally:
            idle.cancel()

    async def _unless_lost(self, awaitable: Awaitable[Any], seconds: float) -> Any:
        """Its result, or None after `seconds`; an ImapError as soon as the connection drops."""
        work = asyncio.ensure_future(awaitable)
        lost = asyncio.create_task(self._connection_lost.wait())
        try:
            done, _ = await asyncio.wait(
                {work, lost}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            lost.cancel()
        if lost in done or self._connection_lost.is_set():
            work.cancel()
            raise ImapError("the connection was lost")
        if work not in done:
            if work is not awaitable:
                work.cancel()
            return None
        return work.result()

    async def _ok(self, response: aioimaplib.Response, command: str) -> None:
        if response.result != "OK":
            raise ImapError(f"{command} answered {response.result}")


def _batches(uids: list[int], sizes: dict[int, int]) -> list[list[int]]:
    """Consecutive UIDs in groups of at most FETCH_BATCH mails and FETCH_BATCH_BYTES (a big
    mail goes alone), so memory stays bounded whatever the mailbox holds."""
    batches: list[list[int]] = []
    current: list[int] = []
    weight = 0
    for uid in uids:
        size = sizes.get(uid, 0)
        if current and (len(current) >= FETCH_BATCH or weight + size > FETCH_BATCH_BYTES):
            batches.append(current)
            current, weight = [], 0
        current.append(uid)
        weight += size
    if current:
        batches.append(current)
    return batches
